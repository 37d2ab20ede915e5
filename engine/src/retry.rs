//! Retry timing shared by the hub's HTTP clients (the REST kind and the plugin host's
//! gate): `Retry-After` read as delay-seconds or an HTTP date, and exponential backoff
//! with equal jitter. A leaf: time arithmetic only.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// `Retry-After` as delay-seconds or an HTTP date (a date in the past means now).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `base * 2^attempt`, capped at `max`, then jittered into its upper half so that clients
/// retrying together do not hit the server in lockstep.
pub fn backoff(base: Duration, attempt: u32, max: Duration) -> Duration {
    let full = base
        .saturating_mul(2u32.saturating_pow(attempt.min(16)))
        .min(max);
    let half = full / 2;
    half + full
        .saturating_sub(half)
        .mul_f64(rand::thread_rng().gen::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Fri, 06 Nov 2026 08:49:37 GMT").unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Fri, 06 Nov 2026 08:49:40 GMT", now),
            Some(Duration::from_secs(3))
        );
        // A date in the past: retry now.
        assert_eq!(
            parse_retry_after("Fri, 06 Nov 2026 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        for bad in ["", "-1", "1.5", "soon", "Fri, 06 Nov"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_in_the_upper_half_and_is_capped() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(10);
        for attempt in 0..4 {
            let full = base * 2u32.pow(attempt);
            for _ in 0..50 {
                let wait = backoff(base, attempt, max);
                assert!(wait >= full / 2 && wait <= full, "{attempt}: {wait:?}");
            }
        }
        assert!(backoff(base, 40, max) <= max);
    }
}
