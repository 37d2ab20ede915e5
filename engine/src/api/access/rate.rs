//! A token bucket per caller for admin requests, so that no one token (or address, for
//! callers without one) can turn cache clears or re-checks into a flood of upstream
//! queries. Small enough to keep here rather than pull in a rate-limiting crate.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// So many requests per period, with bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

impl Default for Rate {
    /// Ten a second, thirty at once: far above what an admin clicks, far below a flood.
    fn default() -> Self {
        Rate {
            per_second: 10.0,
            burst: 30,
        }
    }
}

impl Rate {
    /// Parses `N/s`, `N/m` or `N/h`, with an optional `,burst=B`.
    pub fn parse(text: &str) -> Result<Rate, String> {
        let fail = || format!("`{text}` is not a rate: write e.g. 10/s, 600/m or 10/s,burst=30");
        let (rate, burst) = match text.split_once(",burst=") {
            Some((rate, burst)) => (rate, Some(burst.trim().parse::<u32>().map_err(|_| fail())?)),
            None => (text, None),
        };
        let (count, unit) = rate.trim().split_once('/').ok_or_else(fail)?;
        let count: f64 = count.trim().parse().map_err(|_| fail())?;
        let seconds = match unit.trim() {
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(fail()),
        };
        if count <= 0.0 {
            return Err(fail());
        }
        let per_second = count / seconds;
        Ok(Rate {
            per_second,
            burst: burst.unwrap_or_else(|| (per_second * 3.0).ceil().max(1.0) as u32),
        })
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets by caller name.
#[derive(Debug)]
pub struct RateLimiter {
    rate: Rate,
    // A std Mutex: held for one arithmetic update, never across an await.
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Callers remembered at most; past this the fullest buckets (idle callers) are dropped.
const MAX_CALLERS: usize = 10_000;

impl RateLimiter {
    pub fn new(rate: Rate) -> RateLimiter {
        RateLimiter {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `caller`'s bucket, or says how long until one is free.
    pub fn check(&self, caller: &str) -> Result<(), Duration> {
        self.check_at(caller, Instant::now())
    }

    fn check_at(&self, caller: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= MAX_CALLERS && !buckets.contains_key(caller) {
            let rate = self.rate;
            buckets.retain(|_, b| refill(b, now, rate) < f64::from(rate.burst));
        }
        let bucket = buckets.entry(caller.to_owned()).or_insert(Bucket {
            tokens: f64::from(self.rate.burst),
            at: now,
        });
        let tokens = refill(bucket, now, self.rate);
        if tokens >= 1.0 {
            bucket.tokens = tokens - 1.0;
            Ok(())
        } else {
            bucket.tokens = tokens;
            Err(Duration::from_secs_f64(
                (1.0 - tokens) / self.rate.per_second,
            ))
        }
    }
}

/// The bucket's tokens now, after refilling since it was last used.
fn refill(bucket: &mut Bucket, now: Instant, rate: Rate) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    bucket.at = now;
    (bucket.tokens + elapsed * rate.per_second).min(f64::from(rate.burst))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_units_and_bursts() {
        assert_eq!(
            Rate::parse("10/s").unwrap(),
            Rate {
                per_second: 10.0,
                burst: 30
            }
        );
        assert_eq!(
            Rate::parse("60/m,burst=5").unwrap(),
            Rate {
                per_second: 1.0,
                burst: 5
            }
        );
        for bad in ["10", "x/s", "10/d", "0/s", "5/s,burst=x"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_burst_is_allowed_then_callers_wait_alone() {
        let limiter = RateLimiter::new(Rate {
            per_second: 2.0,
            burst: 3,
        });
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at("ci", start).is_ok());
        }
        let wait = limiter.check_at("ci", start).unwrap_err();
        assert!(
            (Duration::from_millis(490)..=Duration::from_millis(510)).contains(&wait),
            "{wait:?}"
        );
        assert!(
            limiter.check_at("other", start).is_ok(),
            "buckets are per caller"
        );
        assert!(limiter
            .check_at("ci", start + Duration::from_millis(500))
            .is_ok());
    }
}
