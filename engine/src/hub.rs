//! The orchestrator: the registry of sources with their status, request validation, the
//! fan-out of one request to every selected source in parallel under deadlines, the merge,
//! and the answers the HTTP layer serves. Nothing here knows about HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use futures::future::join_all;
use serde::Serialize;

use crate::cache::{AnswerCache, AnswerKey, CacheStats, CachedAnswer, Fetched, SourceCache};
use crate::config::{ConfigError, FilterSpec, LoadedSources, SourceSpec};
use crate::merge::{merge, Merged, Policies};
use crate::model::{Dataset, QueryParams, SourceData};
use crate::sources::{self, DataSource, SourceError};

/// Limits of `days` and of an explicit window, in days.
pub const MAX_DAYS: u32 = 3650;
const DEFAULT_DAYS: u32 = 30;

/// Hub-wide settings (per-source ones live in each YAML file).
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// Deadline for a whole metrics request; each source also has its own timeout.
    pub request_deadline: Duration,
    /// How long a merged answer stays cached.
    pub answer_ttl: Duration,
    /// How many clients the merged answer keeps.
    pub top_clients: usize,
    /// Deadline of one health probe.
    pub health_timeout: Duration,
}

impl Default for HubSettings {
    fn default() -> Self {
        HubSettings {
            request_deadline: Duration::from_secs(15),
            answer_ttl: Duration::from_secs(60),
            top_clients: 20,
            health_timeout: Duration::from_secs(2),
        }
    }
}

/// A request the client got wrong: answered with 400 and this code and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    pub code: &'static str,
    pub message: String,
}

fn bad(code: &'static str, message: impl Into<String>) -> RequestError {
    RequestError {
        code,
        message: message.into(),
    }
}

/// A validated metrics request.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsRequest {
    pub params: QueryParams,
    /// Selected source ids, sorted; all enabled sources when the request named none.
    pub sources: Vec<String>,
}

/// An answer ready to send: status and JSON body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorReport {
    code: &'static str,
    message: String,
}

#[derive(Debug, Default)]
struct SourceStatus {
    initialized: bool,
    last_success: Option<DateTime<Utc>>,
    last_error: Option<(DateTime<Utc>, ErrorReport)>,
    last_latency: Option<Duration>,
    last_check: Option<SourceHealth>,
}

impl SourceStatus {
    /// `failing` when the last fetch failed, or a health probe failed after the last
    /// successful fetch; `ok` when something succeeded; `unknown` before anything
    /// happened. A passing probe does not clear a failed fetch: it only shows the source
    /// can be reached, not that its queries work; the next successful fetch does.
    fn health(&self) -> &'static str {
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
            "failing"
        } else if self.initialized || self.last_success.is_some() || self.last_check.is_some() {
            "ok"
        } else {
            "unknown"
        }
    }
}

/// One declared source with its implementation, cache and status.
pub struct SourceEntry {
    pub spec: SourceSpec,
    source: Arc<dyn DataSource>,
    cache: SourceCache,
    // A std Mutex: it is held only to copy a few fields, never across an await.
    status: Mutex<SourceStatus>,
    upstream_fetches: AtomicU64,
}

impl SourceEntry {
    fn new(spec: SourceSpec) -> SourceEntry {
        SourceEntry {
            source: sources::build(&spec),
            cache: SourceCache::new(spec.cache_ttl),
            spec,
            status: Mutex::new(SourceStatus::default()),
            upstream_fetches: AtomicU64::new(0),
        }
    }

    fn status(&self) -> std::sync::MutexGuard<'_, SourceStatus> {
        self.status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Times this source was queried upstream (cache misses).
    pub fn upstream_fetches(&self) -> u64 {
        self.upstream_fetches.load(Ordering::Relaxed)
    }

    fn record(&self, outcome: &Result<Arc<Fetched>, SourceError>, cached: bool) {
        let mut status = self.status();
        match outcome {
            Ok(fetched) if !cached => {
                status.initialized = true;
                status.last_success = Some(fetched.fetched_at);
                status.last_latency = Some(fetched.latency);
            }
            Ok(_) => {}
            Err(err) => {
                status.last_error = Some((
                    Utc::now(),
                    ErrorReport {
                        code: err.code(),
                        message: err.public_message(),
                    },
                ))
            }
        }
    }

    /// This source's data for `params`, through its cache, under `deadline`.
    async fn fetch(
        &self,
        params: &QueryParams,
        deadline: Duration,
    ) -> (Result<Arc<Fetched>, SourceError>, bool) {
        let upstream = async {
            self.upstream_fetches.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let data = tokio::time::timeout(self.spec.timeout, self.source.fetch_metrics(params))
                .await
                .map_err(|_| SourceError::Timeout(self.spec.timeout))??;
            Ok(Fetched {
                data,
                fetched_at: Utc::now(),
                latency: started.elapsed(),
            })
        };
        let (outcome, cached) =
            match tokio::time::timeout(deadline, self.cache.get_or_fetch(params, upstream)).await {
                Ok(result) => result,
                Err(_) => (Err(SourceError::Timeout(deadline)), false),
            };
        if let Err(err) = &outcome {
            tracing::warn!(source = %self.spec.id, code = err.code(), "fetch failed: {err}");
        }
        self.record(&outcome, cached);
        (outcome, cached)
    }
}

/// Per-source part of an answer's metadata.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct SourceReport {
    id: String,
    name: String,
    badge: String,
    /// `ok`, `error`, `timeout` or `skipped`.
    status: &'static str,
    error: Option<ErrorReport>,
    latency_ms: Option<u64>,
    cached: bool,
    fetched_at: Option<DateTime<Utc>>,
    record_count: usize,
    missing_datasets: Vec<Dataset>,
    /// The summary fields this source supplied, so a dashboard can say where a total comes from.
    summary_fields: Vec<String>,
    warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Window {
    days: u32,
    start_date: NaiveDate,
    end_date: NaiveDate,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    /// Ids of the sources whose data is in the answer (the original field).
    sources: Vec<String>,
    timestamp: DateTime<Utc>,
    cached: bool,
    window: Window,
    source_details: Vec<SourceReport>,
}

#[derive(Debug, Serialize)]
struct MetricsBody<'a> {
    success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Merged>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorReport>,
    metadata: &'a Metadata,
}

/// The hub: every declared source, the caches and the settings.
pub struct Hub {
    entries: Vec<Arc<SourceEntry>>,
    broken: BTreeMap<PathBuf, Vec<ConfigError>>,
    policies: Policies,
    answers: AnswerCache,
    settings: HubSettings,
}

/// An answer that must not be cached, shared with the requests that waited for it.
struct Uncached(Answer);

impl Hub {
    /// Builds the registry from loaded declarations; nothing is connected yet.
    pub fn new(loaded: LoadedSources, settings: HubSettings) -> Hub {
        let mut policies = Policies::new();
        for spec in &loaded.sources {
            for (dataset, fields) in &spec.merge {
                for (field, policy) in fields {
                    policies.insert((*dataset, field.clone()), *policy);
                }
            }
        }
        Hub {
            entries: loaded
                .sources
                .into_iter()
                .map(|s| Arc::new(SourceEntry::new(s)))
                .collect(),
            broken: loaded.broken,
            policies,
            answers: AnswerCache::new(settings.answer_ttl),
            settings,
        }
    }

    /// Every declared, valid source, sorted by id.
    pub fn entries(&self) -> &[Arc<SourceEntry>] {
        &self.entries
    }

    fn entry(&self, id: &str) -> Option<&Arc<SourceEntry>> {
        self.entries.iter().find(|e| e.spec.id == id)
    }

    fn enabled(&self) -> impl Iterator<Item = &Arc<SourceEntry>> {
        self.entries.iter().filter(|e| e.spec.enabled)
    }

    /// Connects every enabled source in parallel. A failure is logged and recorded; the
    /// source retries on its next request.
    pub async fn initialize(&self) {
        join_all(self.enabled().map(|entry| async move {
            match tokio::time::timeout(entry.spec.timeout, entry.source.initialize()).await {
                Ok(Ok(())) => {
                    entry.status().initialized = true;
                    tracing::info!(source = %entry.spec.id, "source ready");
                }
                Ok(Err(err)) => {
                    tracing::error!(source = %entry.spec.id, "initialization failed: {err}");
                    entry.status().last_error = Some((
                        Utc::now(),
                        ErrorReport {
                            code: err.code(),
                            message: err.public_message(),
                        },
                    ));
                }
                Err(_) => {
                    let err = SourceError::Timeout(entry.spec.timeout);
                    tracing::error!(source = %entry.spec.id, "initialization failed: {err}");
                    entry.status().last_error = Some((
                        Utc::now(),
                        ErrorReport {
                            code: err.code(),
                            message: err.public_message(),
                        },
                    ));
                }
            }
        }))
        .await;
    }

    /// Releases every source's resources.
    pub async fn cleanup(&self) {
        join_all(self.entries.iter().map(|entry| entry.source.cleanup())).await;
    }

    /// Validates the query string of a metrics request against the declared sources.
    pub fn parse_request(
        &self,
        query: &str,
        today: NaiveDate,
    ) -> Result<MetricsRequest, RequestError> {
        let mut days = None;
        let mut start = None;
        let mut end = None;
        let mut selected = BTreeSet::new();
        let mut filters: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let once = |slot: &Option<String>| match slot {
                Some(_) => Err(bad(
                    "duplicate_parameter",
                    format!("`{name}` is given more than once"),
                )),
                None => Ok(Some(value.to_string())),
            };
            match name.as_ref() {
                "days" => days = once(&days)?,
                "start_date" => start = once(&start)?,
                "end_date" => end = once(&end)?,
                "source" => {
                    for id in value.split(',').map(str::trim).filter(|id| !id.is_empty()) {
                        selected.insert(id.to_owned());
                    }
                }
                filter => {
                    if filters
                        .insert(filter.to_owned(), value.to_string())
                        .is_some()
                    {
                        return Err(bad(
                            "duplicate_parameter",
                            format!("`{filter}` is given more than once"),
                        ));
                    }
                }
            }
        }

        let mut params = match (days, start, end) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(bad(
                    "invalid_window",
                    "give either days or start_date and end_date, not both",
                ))
            }
            (days, None, None) => {
                let days = match days {
                    None => DEFAULT_DAYS,
                    Some(text) => match text.trim().parse::<i64>() {
                        Ok(n) if (1..=i64::from(MAX_DAYS)).contains(&n) => n as u32,
                        _ => {
                            return Err(bad(
                                "invalid_days",
                                format!("days must be a whole number from 1 to {MAX_DAYS}"),
                            ))
                        }
                    },
                };
                QueryParams::last_days(days, today)
            }
            (None, Some(start), Some(end)) => {
                let date = |name: &str, text: &str| {
                    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
                        bad(
                            "invalid_date",
                            format!("{name} must be a date written YYYY-MM-DD"),
                        )
                    })
                };
                let (start, end) = (date("start_date", &start)?, date("end_date", &end)?);
                if start > end {
                    return Err(bad(
                        "invalid_window",
                        "start_date must not be after end_date",
                    ));
                }
                if (end - start).num_days() > i64::from(MAX_DAYS) {
                    return Err(bad(
                        "invalid_window",
                        format!("the window may span at most {MAX_DAYS} days"),
                    ));
                }
                QueryParams::between(start, end)
            }
            (None, _, _) => {
                return Err(bad("invalid_window", "give both start_date and end_date"));
            }
        };

        let sources: Vec<&Arc<SourceEntry>> = if selected.is_empty() {
            self.enabled().collect()
        } else {
            let mut chosen = Vec::new();
            for id in &selected {
                match self.entry(id) {
                    Some(entry) if entry.spec.enabled => chosen.push(entry),
                    Some(_) => {
                        return Err(bad("source_disabled", format!("source `{id}` is disabled")))
                    }
                    None => {
                        return Err(bad(
                            "unknown_source",
                            format!("there is no source `{id}`; GET /api/sources lists them"),
                        ))
                    }
                }
            }
            chosen
        };
        for (name, value) in filters {
            let declared: Vec<&FilterSpec> = sources
                .iter()
                .filter_map(|e| e.spec.filters.get(&name))
                .collect();
            let Some(spec) = declared.first() else {
                return Err(bad(
                    "unknown_filter",
                    format!(
                        "`{name}` is not a parameter or a filter declared by the selected sources"
                    ),
                ));
            };
            // Sources may declare the same filter differently; the value must suit each.
            let mut parsed = spec.parse(&value);
            for other in &declared[1..] {
                if parsed.is_ok() {
                    parsed = other.parse(&value);
                }
            }
            let parsed =
                parsed.map_err(|why| bad("invalid_filter", format!("filter `{name}` {why}")))?;
            params.filters.insert(name, parsed);
        }
        Ok(MetricsRequest {
            params,
            sources: sources.iter().map(|e| e.spec.id.clone()).collect(),
        })
    }

    /// Answers a metrics request: from the answer cache, or by asking every selected
    /// source in parallel and merging what came back. Concurrent identical requests share
    /// one build.
    pub async fn metrics(&self, request: MetricsRequest) -> Answer {
        let key = AnswerKey {
            sources: request.sources.clone(),
            params: request.params.clone(),
        };
        if let Some(hit) = self.answers.get(&key).await {
            return Answer {
                status: 200,
                body: hit.cached,
            };
        }
        let ran_here = AtomicBool::new(false);
        let built = self
            .answers
            .get_or_build(key, async {
                ran_here.store(true, Ordering::Relaxed);
                self.build(&request).await
            })
            .await;
        match built {
            // The request that built the answer says `cached: false`; those that waited
            // for it get the copy marked cached, as later hits do.
            Ok(answer) if ran_here.load(Ordering::Relaxed) => Answer {
                status: 200,
                body: answer.fresh,
            },
            Ok(answer) => Answer {
                status: 200,
                body: answer.cached,
            },
            Err(uncached) => uncached.0.clone(),
        }
    }

    /// Fans out, merges and serializes. `Err` for answers that must not be cached.
    async fn build(&self, request: &MetricsRequest) -> Result<CachedAnswer, Uncached> {
        let params = &request.params;
        let deadline = self.settings.request_deadline;
        let selected: Vec<&Arc<SourceEntry>> = request
            .sources
            .iter()
            .filter_map(|id| self.entry(id))
            .collect();
        let outcomes = join_all(selected.iter().map(|entry| async move {
            // A source that does not declare a requested filter cannot honour it; its
            // unfiltered numbers would be wrong in a filtered answer, so it sits out.
            let unsupported: Vec<&str> = params
                .filters
                .keys()
                .filter(|name| !entry.spec.filters.contains_key(*name))
                .map(String::as_str)
                .collect();
            if !unsupported.is_empty() {
                return Outcome::Skipped(format!(
                    "does not support filter {}",
                    unsupported.join(", ")
                ));
            }
            let started = Instant::now();
            let (result, cached) = entry.fetch(params, deadline).await;
            Outcome::Done {
                result,
                cached,
                waited: started.elapsed(),
            }
        }))
        .await;

        let mut reports = Vec::new();
        let mut answered: Vec<&SourceData> = Vec::new();
        let mut contributors = Vec::new();
        let mut complete = true;
        for (entry, outcome) in selected.iter().zip(&outcomes) {
            let mut report = SourceReport {
                id: entry.spec.id.clone(),
                name: entry.spec.name.clone(),
                badge: entry.spec.badge.clone(),
                status: "ok",
                error: None,
                latency_ms: None,
                cached: false,
                fetched_at: None,
                record_count: 0,
                missing_datasets: Vec::new(),
                summary_fields: Vec::new(),
                warnings: Vec::new(),
            };
            match outcome {
                Outcome::Skipped(why) => {
                    report.status = "skipped";
                    report.error = Some(ErrorReport {
                        code: "filter_not_supported",
                        message: why.clone(),
                    });
                }
                Outcome::Done {
                    result: Ok(fetched),
                    cached,
                    waited,
                } => {
                    report.cached = *cached;
                    report.latency_ms =
                        Some(if *cached { waited } else { &fetched.latency }.as_millis() as u64);
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
                    answered.push(&fetched.data);
                    contributors.push(entry.spec.id.clone());
                }
                Outcome::Done {
                    result: Err(err),
                    waited,
                    ..
                } => {
                    complete = false;
                    report.status = if matches!(err, SourceError::Timeout(_)) {
                        "timeout"
                    } else {
                        "error"
                    };
                    report.error = Some(ErrorReport {
                        code: err.code(),
                        message: err.public_message(),
                    });
                    report.latency_ms = Some(waited.as_millis() as u64);
                }
            }
            reports.push(report);
        }

        let merged = merge(&answered, &self.policies, self.settings.top_clients);
        let mut metadata = Metadata {
            sources: contributors,
            timestamp: Utc::now(),
            cached: false,
            window: Window {
                days: params.days,
                start_date: params.start_date,
                end_date: params.end_date,
            },
            source_details: reports,
        };
        if answered.is_empty() {
            let body = MetricsBody {
                success: false,
                data: None,
                error: Some(ErrorReport {
                    code: "all_sources_failed",
                    message: "none of the selected sources answered; metadata.sourceDetails has each one's error".into(),
                }),
                metadata: &metadata,
            };
            return Err(Uncached(Answer {
                status: 503,
                body: to_bytes(&body),
            }));
        }
        let fresh = to_bytes(&MetricsBody {
            success: true,
            data: Some(&merged),
            error: None,
            metadata: &metadata,
        });
        if !complete {
            return Err(Uncached(Answer {
                status: 200,
                body: fresh,
            }));
        }
        metadata.cached = true;
        let cached = to_bytes(&MetricsBody {
            success: true,
            data: Some(&merged),
            error: None,
            metadata: &metadata,
        });
        Ok(CachedAnswer { fresh, cached })
    }
}

enum Outcome {
    Skipped(String),
    Done {
        result: Result<Arc<Fetched>, SourceError>,
        cached: bool,
        waited: Duration,
    },
}

fn to_bytes<T: Serialize>(body: &T) -> Bytes {
    // Serializing these plain structs cannot fail: keys are strings, numbers finite.
    Bytes::from(serde_json::to_vec(body).unwrap_or_default())
}

/// One source in `GET /api/sources`. No connection details: they may hold secrets.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceInfo {
    id: String,
    name: String,
    badge: String,
    kind: &'static str,
    enabled: bool,
    description: Option<String>,
    file: PathBuf,
    /// `ok`, `failing`, `unknown` (not asked yet) or `disabled`.
    health: &'static str,
    initialized: bool,
    last_success: Option<DateTime<Utc>>,
    last_error: Option<LastError>,
    latency_ms: Option<u64>,
    /// The last health probe: from `GET /api/health` or a re-check of this source.
    last_check: Option<SourceHealth>,
    upstream_fetches: u64,
    datasets: Vec<Dataset>,
    filters: BTreeMap<String, &'static str>,
    cache_ttl_seconds: u64,
    cache: CacheStats,
    timeout_ms: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LastError {
    at: DateTime<Utc>,
    code: &'static str,
    message: String,
}

/// A file that could not be loaded, with all of its errors.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvalidFile {
    file: PathBuf,
    errors: Vec<ConfigError>,
}

/// `GET /api/sources`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourcesReport {
    sources: Vec<SourceInfo>,
    invalid_files: Vec<InvalidFile>,
}

/// Outcome of one health probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeStatus {
    Ok,
    Down,
}

/// One source in `GET /api/health`, and the answer of a re-check.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceHealth {
    id: String,
    status: ProbeStatus,
    latency_ms: u64,
    error: Option<String>,
    checked_at: DateTime<Utc>,
}

/// `GET /api/health`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    /// `ok`, `degraded` (some sources fail) or `down` (none can serve).
    pub status: &'static str,
    sources: Vec<SourceHealth>,
    invalid_files: usize,
    timestamp: DateTime<Utc>,
}

impl Hub {
    /// What `GET /api/sources` shows.
    pub fn sources_report(&self) -> SourcesReport {
        let sources = self
            .entries
            .iter()
            .map(|entry| {
                let spec = &entry.spec;
                // Before taking the status lock, which is meant to be held only briefly.
                let cache = entry.cache.stats();
                let status = entry.status();
                let health = if spec.enabled {
                    status.health()
                } else {
                    "disabled"
                };
                SourceInfo {
                    id: spec.id.clone(),
                    name: spec.name.clone(),
                    badge: spec.badge.clone(),
                    kind: spec.kind.name(),
                    enabled: spec.enabled,
                    description: spec.description.clone(),
                    file: spec.file.clone(),
                    health,
                    initialized: status.initialized,
                    last_success: status.last_success,
                    last_error: status.last_error.as_ref().map(|(at, e)| LastError {
                        at: *at,
                        code: e.code,
                        message: e.message.clone(),
                    }),
                    latency_ms: status.last_latency.map(|l| l.as_millis() as u64),
                    last_check: status.last_check.clone(),
                    upstream_fetches: entry.upstream_fetches(),
                    datasets: spec.kind.datasets().iter().copied().collect(),
                    filters: spec
                        .filters
                        .iter()
                        .map(|(name, filter)| {
                            let kind = match filter {
                                FilterSpec::Text { .. } => "string",
                                FilterSpec::Integer { .. } => "integer",
                                FilterSpec::Date => "date",
                                FilterSpec::Enum { .. } => "enum",
                            };
                            (name.clone(), kind)
                        })
                        .collect(),
                    cache_ttl_seconds: spec.cache_ttl.as_secs(),
                    cache,
                    timeout_ms: spec.timeout.as_millis() as u64,
                }
            })
            .collect();
        let invalid_files = self
            .broken
            .iter()
            .map(|(file, errors)| InvalidFile {
                file: file.clone(),
                errors: errors.clone(),
            })
            .collect();
        SourcesReport {
            sources,
            invalid_files,
        }
    }

    /// Probes every enabled source in parallel, each under the health deadline.
    pub async fn health(&self) -> HealthReport {
        let sources: Vec<SourceHealth> =
            join_all(self.enabled().map(|entry| self.probe(entry))).await;
        let up = sources
            .iter()
            .filter(|s| s.status == ProbeStatus::Ok)
            .count();
        let status = if up == 0 {
            "down"
        } else if up < sources.len() || !self.broken.is_empty() {
            "degraded"
        } else {
            "ok"
        };
        HealthReport {
            status,
            sources,
            invalid_files: self.broken.len(),
            timestamp: Utc::now(),
        }
    }

    /// Probes one enabled source now (the admin page's re-check) and records the outcome.
    pub async fn check_source(&self, id: &str) -> Result<SourceHealth, RequestError> {
        match self.entry(id) {
            Some(entry) if entry.spec.enabled => Ok(self.probe(entry).await),
            Some(_) => Err(bad("source_disabled", format!("source `{id}` is disabled"))),
            None => Err(bad(
                "unknown_source",
                format!("there is no source `{id}`; GET /api/sources lists them"),
            )),
        }
    }

    /// Runs a source's health check under the health deadline and keeps the outcome as
    /// its `lastCheck`.
    async fn probe(&self, entry: &SourceEntry) -> SourceHealth {
        let limit = self.settings.health_timeout;
        let started = Instant::now();
        let outcome = match tokio::time::timeout(limit, entry.source.health_check()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(SourceError::Timeout(limit)),
        };
        if let Err(err) = &outcome {
            tracing::warn!(source = %entry.spec.id, "health check failed: {err}");
        }
        let health = SourceHealth {
            id: entry.spec.id.clone(),
            status: if outcome.is_ok() {
                ProbeStatus::Ok
            } else {
                ProbeStatus::Down
            },
            latency_ms: started.elapsed().as_millis() as u64,
            error: outcome.err().map(|e| e.public_message()),
            checked_at: Utc::now(),
        };
        entry.status().last_check = Some(health.clone());
        health
    }

    /// Empties the cache of one source, or of all; merged answers are dropped either way
    /// since they hold every source's data. Returns the ids cleared.
    pub fn clear_cache(&self, source: Option<&str>) -> Result<Vec<String>, RequestError> {
        let cleared: Vec<&Arc<SourceEntry>> = match source {
            None => self.entries.iter().collect(),
            Some(id) => vec![self
                .entry(id)
                .ok_or_else(|| bad("unknown_source", format!("there is no source `{id}`")))?],
        };
        for entry in &cleared {
            entry.cache.clear();
        }
        self.answers.clear();
        Ok(cleared.iter().map(|e| e.spec.id.clone()).collect())
    }

    /// Fetches one source directly, bypassing caches (for `metrics-hub query`).
    pub async fn query_source(
        &self,
        id: &str,
        params: &QueryParams,
    ) -> Result<SourceData, QueryError> {
        let entry = self
            .entry(id)
            .ok_or_else(|| QueryError::UnknownSource(id.to_owned()))?;
        let fetched = tokio::time::timeout(entry.spec.timeout, entry.source.fetch_metrics(params))
            .await
            .map_err(|_| SourceError::Timeout(entry.spec.timeout))??;
        Ok(fetched)
    }
}

/// Why `metrics-hub query` could not answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("there is no valid source `{0}`")]
    UnknownSource(String),
    #[error(transparent)]
    Source(#[from] SourceError),
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
        assert_eq!(status.health(), "unknown");
        status.initialized = true;
        assert_eq!(status.health(), "ok");
        status.last_success = Some(t(10));
        status.last_error = error(t(20));
        assert_eq!(status.health(), "failing");
        // A passing probe does not clear a failed query; only a successful fetch does.
        status.last_check = Some(check(t(30), true));
        assert_eq!(status.health(), "failing");
        status.last_success = Some(t(40));
        assert_eq!(status.health(), "ok");
        // A failed probe after the last good fetch marks the source failing at once...
        status.last_check = Some(check(t(50), false));
        assert_eq!(status.health(), "failing");
        // ...until a fetch succeeds again.
        status.last_success = Some(t(60));
        assert_eq!(status.health(), "ok");

        // A source only ever probed follows its probe.
        let mut probed = SourceStatus {
            last_check: Some(check(t(1), true)),
            ..SourceStatus::default()
        };
        assert_eq!(probed.health(), "ok");
        probed.last_check = Some(check(t(2), false));
        assert_eq!(probed.health(), "failing");
    }
}
