//! Pacing and retries for plugin HTTP, applied by the host on both HTTP paths so that a
//! plugin does not have to (and cannot forget to) honour its service's rate limit.
//!
//! - [`RateLimit`] (`sandbox.rate_limit`): a token bucket per origin, shared by every
//!   instance of the source, so concurrent calls of one source share its budget. A request
//!   waits for its token before it is sent; one whose wait would outlast the call's
//!   deadline is not sent at all.
//! - [`Retry`] (`sandbox.retry`): a 429 or 503 answer is retried after `Retry-After` (in
//!   seconds or as an HTTP date) or, without it, after an exponential backoff with jitter
//!   (both timed by [`crate::retry`], as the REST kind's retries are),
//!   at most `max_tries` times in all, and only when the wait fits in the time left.
//!   Every try counts against `max_requests_per_call`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::plugin::sandbox::{RateLimit, Retry};
use crate::retry;

impl Retry {
    /// Whether an answer with `status` is worth trying again.
    pub fn retries(status: u16) -> bool {
        status == 429 || status == 503
    }

    /// How long to wait before try `tries + 1`, after `tries` tries: what `Retry-After`
    /// asked for, else `initial_backoff * 2^(tries-1)` capped at `max_backoff`, with
    /// jitter (see [`crate::retry::backoff`]).
    pub fn backoff(&self, tries: u32, retry_after: Option<Duration>) -> Duration {
        retry_after.unwrap_or_else(|| {
            retry::backoff(
                self.initial_backoff,
                tries.saturating_sub(1),
                self.max_backoff,
            )
        })
    }
}

/// The token buckets of one source, one per origin.
#[derive(Debug)]
pub(crate) struct Buckets {
    limit: Option<RateLimit>,
    // A std Mutex: held only to update one bucket, never across a wait.
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    /// Tokens left; negative when requests are queued behind the ones already promised.
    tokens: f64,
    updated: Instant,
}

impl Buckets {
    pub(crate) fn new(limit: Option<RateLimit>) -> Buckets {
        Buckets {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Reserves the next token for `origin` and says how long to wait for it, or `None`
    /// (and reserves nothing) when that wait would end after `deadline`.
    pub(crate) fn reserve(
        &self,
        origin: &str,
        now: Instant,
        deadline: Instant,
    ) -> Option<Duration> {
        let Some(limit) = self.limit else {
            return Some(Duration::ZERO);
        };
        let burst = f64::from(limit.burst.max(1));
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let bucket = buckets.entry(origin.to_owned()).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * limit.per_second).min(burst);
        bucket.updated = now.max(bucket.updated);
        let wait = if bucket.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - bucket.tokens) / limit.per_second)
        };
        if now + wait > deadline {
            return None;
        }
        bucket.tokens -= 1.0;
        Some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_goes_at_once_then_requests_are_spaced() {
        let buckets = Buckets::new(Some(RateLimit {
            per_second: 5.0,
            burst: 2,
        }));
        let now = Instant::now();
        let far = now + Duration::from_secs(60);
        let waits: Vec<u128> = (0..5)
            .map(|_| {
                buckets
                    .reserve("https://api.example.com", now, far)
                    .unwrap()
                    .as_millis()
            })
            .collect();
        assert_eq!(waits, [0, 0, 200, 400, 600]);
        // Another origin has its own bucket.
        assert_eq!(
            buckets.reserve("https://other.example.com", now, far),
            Some(Duration::ZERO)
        );
        // A second later five tokens came back, three of them owed: two go at once.
        let later = now + Duration::from_millis(1_000);
        let waits: Vec<u128> = (0..3)
            .map(|_| {
                buckets
                    .reserve("https://api.example.com", later, far)
                    .unwrap()
                    .as_millis()
            })
            .collect();
        assert_eq!(waits, [0, 0, 200]);
    }

    #[test]
    fn a_wait_past_the_deadline_reserves_nothing() {
        let buckets = Buckets::new(Some(RateLimit {
            per_second: 1.0,
            burst: 1,
        }));
        let now = Instant::now();
        let soon = now + Duration::from_millis(500);
        assert_eq!(buckets.reserve("o", now, soon), Some(Duration::ZERO));
        assert_eq!(buckets.reserve("o", now, soon), None);
        assert_eq!(
            buckets.reserve("o", now, now + Duration::from_secs(2)),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn no_limit_never_waits() {
        let buckets = Buckets::new(None);
        let now = Instant::now();
        for _ in 0..1000 {
            assert_eq!(buckets.reserve("o", now, now), Some(Duration::ZERO));
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_honours_retry_after() {
        let retry = Retry {
            max_tries: 5,
            initial_backoff: Duration::from_millis(400),
            max_backoff: Duration::from_millis(1_000),
        };
        for _ in 0..100 {
            let first = retry.backoff(1, None);
            assert!((200..=400).contains(&first.as_millis()), "{first:?}");
            let second = retry.backoff(2, None);
            assert!((400..=800).contains(&second.as_millis()), "{second:?}");
            let capped = retry.backoff(6, None);
            assert!((500..=1_000).contains(&capped.as_millis()), "{capped:?}");
        }
        assert_eq!(
            retry.backoff(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert!(Retry::retries(429) && Retry::retries(503) && !Retry::retries(500));
    }
}
