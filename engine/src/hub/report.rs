//! The answers of a metrics request, built from what each source did: per-source reports
//! (`metadata.sourceDetails`), the merged data, and the JSON body in the original
//! dashboard's shape. Pure functions of the outcomes; nothing here waits or fetches.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::cache::{CachedAnswer, Fetched};
use crate::derived::{evaluate, DerivedValue, Metric};
use crate::kinds::{SourceError, SourceSpec};
use crate::merge::{
    clients_schema, daily_schema, features_schema, merge, summary_schema, Merged, Policies,
};
use crate::model::{Dataset, HistoryNote, QueryParams, Record, SourceData};

/// An error as clients see it: a stable code and a message without internals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorReport {
    pub code: &'static str,
    pub message: String,
}

impl From<&SourceError> for ErrorReport {
    fn from(err: &SourceError) -> ErrorReport {
        ErrorReport {
            code: err.code(),
            message: err.public_message(),
        }
    }
}

/// What happened to one selected source during a request.
#[derive(Debug)]
pub enum Outcome {
    /// It sat the request out, and why.
    Skipped(String),
    /// It was asked: its data or error, whether from its cache, and how long it took.
    Done {
        result: Result<Arc<Fetched>, SourceError>,
        cached: bool,
        waited: Duration,
        /// Set when the data is a cached result past its TTL.
        stale: Option<Staleness>,
    },
}

/// Why expired data was served.
#[derive(Debug, Clone)]
pub enum Staleness {
    /// `stale_while_revalidate`: a refresh runs in the background.
    Revalidating,
    /// `stale_if_error`: the fresh fetch failed with this.
    AfterError(ErrorReport),
}

/// An answer ready to send. Whether it means failure is for the HTTP layer to say.
#[derive(Debug, Clone)]
pub struct Answer {
    pub body: Bytes,
    /// No selected source answered; the body still has each one's error.
    pub all_failed: bool,
    /// The hub shed the request (a source's fetch queue was full): ask again after this.
    pub retry_after: Option<Duration>,
}

impl Answer {
    /// An answer with data.
    pub fn served(body: Bytes) -> Answer {
        Answer {
            body,
            all_failed: false,
            retry_after: None,
        }
    }
}

/// How long a shed request is asked to wait.
const SHED_RETRY_AFTER: Duration = Duration::from_secs(1);

/// What a request's outcomes make.
#[derive(Debug)]
pub enum Built {
    /// Every source answered: cache it.
    Complete(CachedAnswer),
    /// Some source failed: send it, never cache it.
    Uncached(Answer),
}

/// What one source did in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum ReportStatus {
    /// It answered (perhaps from its cache).
    Ok,
    /// It failed; `error` says how.
    Error,
    /// It did not answer within its timeout.
    Timeout,
    /// It sat the request out: it does not declare a requested filter.
    Skipped,
}

/// Per-source part of an answer's metadata.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SourceReport {
    id: String,
    name: String,
    badge: String,
    status: ReportStatus,
    error: Option<ErrorReport>,
    latency_ms: Option<u64>,
    cached: bool,
    /// The data is a cached result past its TTL (`fetchedAt` says from when; `error`,
    /// when set, why a fresh one could not be had). Absent when false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stale: bool,
    fetched_at: Option<DateTime<Utc>>,
    record_count: usize,
    missing_datasets: Vec<Dataset>,
    /// The summary fields this source supplied, so a dashboard can say where a total comes from.
    summary_fields: Vec<String>,
    warnings: Vec<String>,
    /// How the history store took part (only for sources that declare `history:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    history: Option<HistoryNote>,
}

/// The days the answer covers, both ends included.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Window {
    days: u32,
    start_date: NaiveDate,
    end_date: NaiveDate,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    /// Ids of the sources whose data is in the answer (the original field).
    sources: Vec<String>,
    timestamp: DateTime<Utc>,
    cached: bool,
    window: Window,
    source_details: Vec<SourceReport>,
}

/// The body of `GET /api/metrics`, in the original dashboard's shape: `data` when any
/// selected source answered, else `error`; `metadata` always.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricsBody<'a> {
    success: bool,
    // Left out rather than null when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    data: Option<Data<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    error: Option<ErrorReport>,
    metadata: &'a Metadata,
}

/// `data`: the merged datasets and, when `metrics.d/` declares any, the derived metrics.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Data<'a> {
    /// Every summary field, zero where no source gave it.
    #[schema(schema_with = summary_schema)]
    summary: &'a Record,
    /// By date, oldest first.
    #[schema(schema_with = daily_schema)]
    daily_metrics: &'a [Record],
    #[schema(schema_with = features_schema)]
    feature_metrics: &'a [Record],
    /// The top clients by events.
    #[schema(schema_with = clients_schema)]
    client_metrics: &'a [Record],
    /// The derived metrics of `metrics.d/`, each with its value for the window, its daily
    /// series, the inputs it read and those this answer lacked. Absent when none are declared.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    derived: &'a [DerivedValue],
}

impl<'a> Data<'a> {
    fn of(merged: &'a Merged, derived: &'a [DerivedValue]) -> Data<'a> {
        Data {
            summary: &merged.summary,
            daily_metrics: &merged.daily_metrics,
            feature_metrics: &merged.feature_metrics,
            client_metrics: &merged.client_metrics,
            derived,
        }
    }
}

/// How the answer is put together.
pub struct Assembly<'a> {
    pub params: &'a QueryParams,
    pub policies: &'a Policies,
    pub derived: &'a [Metric],
    pub top_clients: usize,
    pub now: DateTime<Utc>,
}

impl Assembly<'_> {
    /// The answer of `outcomes`, one per selected source in id order.
    pub fn build(&self, outcomes: &[(&SourceSpec, Outcome)]) -> Built {
        let reports = outcomes
            .iter()
            .map(|(spec, outcome)| source_report(spec, outcome))
            .collect();
        let answered = answered(outcomes);
        // Failed or stale parts make an answer not worth keeping: the next request asks
        // the sources' caches again and finds what the refresh brought.
        let complete = outcomes.iter().all(|(_, outcome)| {
            !matches!(
                outcome,
                Outcome::Done { result: Err(_), .. } | Outcome::Done { stale: Some(_), .. }
            )
        });
        let data: Vec<&SourceData> = answered.iter().map(|(_, data)| *data).collect();
        let merged = merge(&data, self.policies, self.top_clients);
        let derived = evaluate(self.derived, &answered, &merged);
        let data = Data::of(&merged, &derived);
        let mut metadata = Metadata {
            sources: answered.iter().map(|(id, _)| (*id).to_owned()).collect(),
            timestamp: self.now,
            cached: false,
            window: Window {
                days: self.params.days,
                start_date: self.params.start_date,
                end_date: self.params.end_date,
            },
            source_details: reports,
        };
        let shed = outcomes.iter().any(|(_, outcome)| {
            matches!(
                outcome,
                Outcome::Done {
                    result: Err(SourceError::Overloaded),
                    ..
                }
            )
        });
        if shed {
            return Built::Uncached(Answer {
                body: failure(&metadata, "overloaded", "the hub is running as many queries as it allows for a selected source: try again shortly; metadata.sourceDetails says which"),
                all_failed: answered.is_empty(),
                retry_after: Some(SHED_RETRY_AFTER),
            });
        }
        if answered.is_empty() {
            return Built::Uncached(Answer {
                body: failure(&metadata, "all_sources_failed", "none of the selected sources answered; metadata.sourceDetails has each one's error"),
                all_failed: true,
                retry_after: None,
            });
        }
        let fresh = success(&data, &metadata);
        if !complete {
            return Built::Uncached(Answer::served(fresh));
        }
        metadata.cached = true;
        let cached = success(&data, &metadata);
        let ttl = outcomes
            .iter()
            .filter(|(_, outcome)| matches!(outcome, Outcome::Done { .. }))
            .map(|(spec, _)| spec.cache_ttl)
            .min()
            .unwrap_or(Duration::ZERO);
        Built::Complete(CachedAnswer { fresh, cached, ttl })
    }
}

/// The data of every source that answered, by id, in the order of `outcomes`.
pub fn answered<'a>(outcomes: &'a [(&'a SourceSpec, Outcome)]) -> Vec<(&'a str, &'a SourceData)> {
    outcomes
        .iter()
        .filter_map(|(spec, outcome)| match outcome {
            Outcome::Done { result: Ok(f), .. } => Some((spec.id.as_str(), &f.data)),
            _ => None,
        })
        .collect()
}

fn success(data: &Data<'_>, metadata: &Metadata) -> Bytes {
    to_bytes(&MetricsBody {
        success: true,
        data: Some(*data),
        error: None,
        metadata,
    })
}

/// A body without data: why, and each source's report.
fn failure(metadata: &Metadata, code: &'static str, message: &str) -> Bytes {
    to_bytes(&MetricsBody {
        success: false,
        data: None,
        error: Some(ErrorReport {
            code,
            message: message.into(),
        }),
        metadata,
    })
}

/// One source's entry in `metadata.sourceDetails`.
fn source_report(spec: &SourceSpec, outcome: &Outcome) -> SourceReport {
    let mut report = SourceReport {
        id: spec.id.clone(),
        name: spec.name.clone(),
        badge: spec.badge.clone(),
        status: ReportStatus::Ok,
        error: None,
        latency_ms: None,
        cached: false,
        stale: false,
        fetched_at: None,
        record_count: 0,
        missing_datasets: Vec::new(),
        summary_fields: Vec::new(),
        warnings: Vec::new(),
        history: None,
    };
    match outcome {
        Outcome::Skipped(why) => {
            report.status = ReportStatus::Skipped;
            report.error = Some(ErrorReport {
                code: "filter_not_supported",
                message: why.clone(),
            });
        }
        Outcome::Done {
            result: Ok(fetched),
            cached,
            waited,
            stale,
        } => {
            report.cached = *cached;
            report.stale = stale.is_some();
            if let Some(Staleness::AfterError(error)) = stale {
                report.error = Some(error.clone());
            }
            let latency = if *cached { waited } else { &fetched.latency };
            report.latency_ms = Some(latency.as_millis() as u64);
            report.fetched_at = Some(fetched.fetched_at);
            report.record_count = fetched.data.record_count();
            report.missing_datasets = fetched.data.missing_datasets();
            report.summary_fields = fetched
                .data
                .summary
                .as_ref()
                .map(|summary| summary.keys().cloned().collect())
                .unwrap_or_default();
            report.warnings = fetched.data.warnings.clone();
            report.history = fetched.data.history.clone();
        }
        Outcome::Done {
            result: Err(err),
            waited,
            ..
        } => {
            report.status = if matches!(err, SourceError::Timeout(_)) {
                ReportStatus::Timeout
            } else {
                ReportStatus::Error
            };
            report.error = Some(ErrorReport::from(err));
            report.latency_ms = Some(waited.as_millis() as u64);
        }
    }
    report
}

fn to_bytes<T: Serialize>(body: &T) -> Bytes {
    // Serializing these plain structs cannot fail: keys are strings, numbers finite.
    Bytes::from(serde_json::to_vec(body).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::load::load_source;

    fn spec(id: &str) -> SourceSpec {
        let text = format!("id: {id}\nname: {id}\nkind: sql\nconnection:\n  driver: sqlite\n  url: \"sqlite::memory:\"\nqueries:\n  summary:\n    sql: SELECT 1 AS total_users\n");
        load_source(Path::new("t.yaml"), &text, &|_| None).unwrap()
    }

    fn answered(users: i64) -> Outcome {
        let mut data = SourceData::default();
        let mut row = crate::model::Record::new();
        row.insert("total_users".into(), users.into());
        data.set(Dataset::Summary, vec![row]);
        Outcome::Done {
            result: Ok(Arc::new(Fetched {
                data,
                fetched_at: DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap(),
                latency: Duration::from_millis(12),
            })),
            cached: false,
            waited: Duration::from_millis(12),
            stale: None,
        }
    }

    fn failed() -> Outcome {
        Outcome::Done {
            result: Err(SourceError::Timeout(Duration::from_secs(1))),
            cached: false,
            waited: Duration::from_millis(1000),
            stale: None,
        }
    }

    fn build(outcomes: &[(&SourceSpec, Outcome)]) -> Built {
        let params = QueryParams::last_days(7, NaiveDate::from_ymd_opt(2026, 11, 25).unwrap());
        Assembly {
            params: &params,
            policies: &Policies::new(),
            derived: &[],
            top_clients: 20,
            now: DateTime::<Utc>::from_timestamp(1_700_000_100, 0).unwrap(),
        }
        .build(outcomes)
    }

    fn json(bytes: &Bytes) -> serde_json::Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn a_complete_answer_is_cacheable_in_both_forms() {
        let (a, b) = (spec("a"), spec("b"));
        let Built::Complete(answer) = build(&[(&a, answered(3)), (&b, answered(4))]) else {
            panic!("every source answered");
        };
        let (fresh, cached) = (json(&answer.fresh), json(&answer.cached));
        assert_eq!(fresh["data"]["summary"]["total_users"], 7);
        assert_eq!(
            (
                fresh["metadata"]["cached"].as_bool(),
                cached["metadata"]["cached"].as_bool()
            ),
            (Some(false), Some(true))
        );
        assert_eq!(fresh["metadata"]["sources"], serde_json::json!(["a", "b"]));
        assert_eq!(fresh["metadata"]["sourceDetails"][0]["latencyMs"], 12);
    }

    #[test]
    fn a_partial_answer_is_sent_but_not_cached_and_names_the_failure() {
        let (a, b) = (spec("a"), spec("b"));
        let Built::Uncached(answer) = build(&[(&a, answered(3)), (&b, failed())]) else {
            panic!("a source failed");
        };
        assert!(!answer.all_failed);
        let body = json(&answer.body);
        assert_eq!(body["data"]["summary"]["total_users"], 3);
        let details = &body["metadata"]["sourceDetails"][1];
        assert_eq!(
            (
                details["status"].as_str(),
                details["error"]["code"].as_str()
            ),
            (Some("timeout"), Some("timeout"))
        );
        assert_eq!(body["metadata"]["sources"], serde_json::json!(["a"]));
    }

    #[test]
    fn stale_data_is_served_marked_and_never_cached() {
        let (a, b) = (spec("a"), spec("b"));
        let stale = |staleness| match answered(3) {
            Outcome::Done {
                result,
                cached,
                waited,
                ..
            } => Outcome::Done {
                result,
                cached,
                waited,
                stale: Some(staleness),
            },
            skipped => skipped,
        };
        let error = ErrorReport::from(&SourceError::Timeout(Duration::from_secs(1)));
        let outcomes = [
            (&a, stale(Staleness::Revalidating)),
            (&b, stale(Staleness::AfterError(error))),
        ];
        let Built::Uncached(answer) = build(&outcomes) else {
            panic!("a stale answer is not kept");
        };
        let body = json(&answer.body);
        assert_eq!(body["data"]["summary"]["total_users"], 6);
        let details = &body["metadata"]["sourceDetails"];
        assert_eq!(details[0]["stale"], true);
        assert!(details[0]["error"].is_null());
        assert_eq!(details[1]["stale"], true);
        assert_eq!(details[1]["status"], "ok");
        assert_eq!(details[1]["error"]["code"], "timeout");
        assert_eq!(details[1]["fetchedAt"], "2023-11-14T22:13:20Z");
        // A fresh answer carries no `stale` key at all, as before the field existed.
        let Built::Complete(fresh) = build(&[(&a, answered(3))]) else {
            panic!("fresh");
        };
        assert!(json(&fresh.fresh)["metadata"]["sourceDetails"][0]
            .get("stale")
            .is_none());
    }

    #[test]
    fn when_nothing_answered_the_body_still_has_each_error() {
        let a = spec("a");
        let Built::Uncached(answer) = build(&[(&a, failed())]) else {
            panic!("nothing answered");
        };
        assert!(answer.all_failed);
        let body = json(&answer.body);
        assert_eq!(body["success"], false);
        assert!(body.get("data").is_none());
        assert_eq!(body["error"]["code"], "all_sources_failed");
        assert_eq!(body["metadata"]["sourceDetails"][0]["status"], "timeout");
    }

    #[test]
    fn a_skipped_source_neither_fails_nor_contributes() {
        let (a, b) = (spec("a"), spec("b"));
        let skipped = Outcome::Skipped("does not support filter client".into());
        let Built::Complete(answer) = build(&[(&a, answered(3)), (&b, skipped)]) else {
            panic!("a skip is not a failure");
        };
        let body = json(&answer.fresh);
        let details = &body["metadata"]["sourceDetails"][1];
        assert_eq!(
            (
                details["status"].as_str(),
                details["error"]["code"].as_str()
            ),
            (Some("skipped"), Some("filter_not_supported"))
        );
        assert_eq!(body["metadata"]["sources"], serde_json::json!(["a"]));
    }
}
