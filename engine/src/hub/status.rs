//! What the hub remembers of each source between requests, and the rules that turn it
//! into the health shown in `/api/sources`: the last success, the last error, the last
//! probe. Pure data and rules; the entry that owns a status records into it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::report::ErrorReport;

/// A source's health as `/api/sources` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Something succeeded and nothing failed since.
    Ok,
    /// The last fetch failed, or a probe failed after the last good fetch.
    Failing,
    /// Nothing asked yet.
    Unknown,
    /// The file says `enabled: false`.
    Disabled,
}

/// Outcome of one health probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProbeStatus {
    Ok,
    Down,
}

/// One source in `GET /api/health`, and the answer of a re-check.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceHealth {
    pub id: String,
    pub status: ProbeStatus,
    pub latency_ms: u64,
    pub error: Option<String>,
    pub checked_at: DateTime<Utc>,
}

/// What happened to a source lately.
#[derive(Debug, Default)]
pub struct SourceStatus {
    pub initialized: bool,
    pub last_success: Option<DateTime<Utc>>,
    pub last_error: Option<(DateTime<Utc>, ErrorReport)>,
    pub last_latency: Option<Duration>,
    pub last_check: Option<SourceHealth>,
    /// The service said it was rate limited: the hub does not ask it again before this.
    pub rate_limited_until: Option<DateTime<Utc>>,
}

impl SourceStatus {
    /// `Failing` when the last fetch failed, or a health probe failed after the last
    /// successful fetch; `Ok` when something succeeded; `Unknown` before anything
    /// happened. A passing probe does not clear a failed fetch: it only shows the source
    /// can be reached, not that its queries work; the next successful fetch does.
    pub fn health(&self) -> Health {
        let fetch_failing = match (&self.last_error, self.last_success) {
            (Some((failed, _)), Some(succeeded)) => *failed > succeeded,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let probe_failing = self.last_check.as_ref().is_some_and(|check| {
            check.status == ProbeStatus::Down
                && self.last_success.is_none_or(|at| check.checked_at > at)
        });
        if fetch_failing || probe_failing {
            Health::Failing
        } else if self.initialized || self.last_success.is_some() || self.last_check.is_some() {
            Health::Ok
        } else {
            Health::Unknown
        }
    }

    /// A successful upstream fetch.
    pub fn succeeded(&mut self, at: DateTime<Utc>, latency: Duration) {
        self.initialized = true;
        self.last_success = Some(at);
        self.last_latency = Some(latency);
    }

    /// The service answered rate-limited, asking to wait `wait`: hold off until then.
    pub fn hold_off(&mut self, now: DateTime<Utc>, wait: Duration) {
        let until = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
        self.rate_limited_until = Some(until);
    }

    /// How long the hub still holds off asking the service, if it does.
    pub fn holding_off(&self, now: DateTime<Utc>) -> Option<Duration> {
        let left = self.rate_limited_until? - now;
        left.to_std().ok().filter(|left| !left.is_zero())
    }

    /// A failed fetch or start.
    pub fn failed(&mut self, error: ErrorReport) {
        self.last_error = Some((Utc::now(), error));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(at: DateTime<Utc>, ok: bool) -> SourceHealth {
        SourceHealth {
            id: "s".into(),
            status: if ok {
                ProbeStatus::Ok
            } else {
                ProbeStatus::Down
            },
            latency_ms: 1,
            error: None,
            checked_at: at,
        }
    }

    #[test]
    fn health_follows_fetches_and_failed_probes() {
        let t = |s: i64| DateTime::<Utc>::from_timestamp(1_700_000_000 + s, 0).unwrap();
        let error = |at| {
            Some((
                at,
                ErrorReport {
                    code: "query_failed",
                    message: "x".into(),
                },
            ))
        };
        let mut status = SourceStatus::default();
        assert_eq!(status.health(), Health::Unknown);
        status.initialized = true;
        assert_eq!(status.health(), Health::Ok);
        status.last_success = Some(t(10));
        status.last_error = error(t(20));
        assert_eq!(status.health(), Health::Failing);
        // A passing probe does not clear a failed query; only a successful fetch does.
        status.last_check = Some(check(t(30), true));
        assert_eq!(status.health(), Health::Failing);
        status.last_success = Some(t(40));
        assert_eq!(status.health(), Health::Ok);
        // A failed probe after the last good fetch marks the source failing at once...
        status.last_check = Some(check(t(50), false));
        assert_eq!(status.health(), Health::Failing);
        // ...until a fetch succeeds again.
        status.last_success = Some(t(60));
        assert_eq!(status.health(), Health::Ok);

        // A source only ever probed follows its probe.
        let mut probed = SourceStatus {
            last_check: Some(check(t(1), true)),
            ..SourceStatus::default()
        };
        assert_eq!(probed.health(), Health::Ok);
        probed.last_check = Some(check(t(2), false));
        assert_eq!(probed.health(), Health::Failing);
    }

    #[test]
    fn a_rate_limit_holds_off_for_as_long_as_asked() {
        let now = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        let mut status = SourceStatus::default();
        assert_eq!(status.holding_off(now), None);
        status.hold_off(now, Duration::from_secs(7));
        let later = now + chrono::Duration::seconds(2);
        assert_eq!(status.holding_off(later), Some(Duration::from_secs(5)));
        assert_eq!(status.holding_off(now + chrono::Duration::seconds(7)), None);
    }

    #[test]
    fn health_serializes_as_the_api_spells_it() {
        let shown: Vec<String> = [
            Health::Ok,
            Health::Failing,
            Health::Unknown,
            Health::Disabled,
        ]
        .iter()
        .map(|h| serde_json::to_string(h).unwrap())
        .collect();
        assert_eq!(
            shown,
            [r#""ok""#, r#""failing""#, r#""unknown""#, r#""disabled""#]
        );
    }
}
