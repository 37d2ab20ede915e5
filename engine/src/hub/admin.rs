//! What the admin side of the hub shows and does: every source's status and cache
//! (`/api/sources`), live probes (`/api/health`, a re-check of one source) and clearing
//! caches. The views hold no connection details: they may carry secrets.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use serde::Serialize;
use utoipa::ToSchema;

use super::request::{bad, unknown_source, RequestError};
use super::status::{Health, ProbeStatus, SourceHealth};
use super::{Generation, Hub, SourceEntry};
use crate::cache::CacheStats;
use crate::config::ConfigError;
use crate::history::HistoryInfo;
use crate::kinds::SourceError;
use crate::model::Dataset;

/// One source in `GET /api/sources`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceInfo {
    id: String,
    name: String,
    badge: String,
    kind: &'static str,
    enabled: bool,
    description: Option<String>,
    #[schema(value_type = String)]
    file: PathBuf,
    health: Health,
    initialized: bool,
    last_success: Option<DateTime<Utc>>,
    last_error: Option<LastError>,
    latency_ms: Option<u64>,
    /// The last health probe: from `GET /api/health` or a re-check of this source.
    last_check: Option<SourceHealth>,
    upstream_fetches: u64,
    /// The service answered rate-limited: the hub does not ask it again before this
    /// (answering from the cache, a stale entry, or with a `rate_limited` error).
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limited_until: Option<DateTime<Utc>>,
    datasets: Vec<Dataset>,
    /// Each declared filter's type, by name.
    filters: BTreeMap<String, &'static str>,
    cache_ttl_seconds: u64,
    stale_while_revalidate_seconds: u64,
    stale_if_error_seconds: u64,
    cache: CacheStats,
    /// When the file changed and the new version is invalid: its errors. This (the last
    /// good) version keeps serving until the file is fixed.
    #[serde(skip_serializing_if = "Option::is_none")]
    rejected_change: Option<Vec<ConfigError>>,
    timeout_ms: u64,
    /// For a source with `history:`: the store, what it answers and the backfill.
    #[serde(skip_serializing_if = "Option::is_none")]
    history: Option<HistoryInfo>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct LastError {
    at: DateTime<Utc>,
    code: &'static str,
    message: String,
}

/// A file that could not be loaded, with all of its errors.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvalidFile {
    #[schema(value_type = String)]
    file: PathBuf,
    errors: Vec<ConfigError>,
}

/// `GET /api/sources`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourcesReport {
    generation: GenerationInfo,
    sources: Vec<SourceInfo>,
    invalid_files: Vec<InvalidFile>,
}

/// Which configuration generation serves, and since when.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GenerationInfo {
    pub number: u64,
    pub loaded_at: DateTime<Utc>,
}

impl GenerationInfo {
    pub fn of(generation: &Generation) -> GenerationInfo {
        GenerationInfo {
            number: generation.number,
            loaded_at: generation.loaded_at,
        }
    }
}

/// The hub's overall state in `GET /api/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Overall {
    /// Every enabled source answers its probe and every file loaded.
    Ok,
    /// Some sources fail their probe, or some file is invalid.
    Degraded,
    /// No source can serve.
    Down,
}

/// `GET /api/health`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    pub status: Overall,
    sources: Vec<SourceHealth>,
    invalid_files: usize,
    timestamp: DateTime<Utc>,
}

impl SourceEntry {
    /// This source's line in `/api/sources`.
    fn info(&self, generation: &Generation) -> SourceInfo {
        let spec = &self.spec;
        // Before taking the status lock, which is meant to be held only briefly.
        let cache = self.cache.stats();
        let status = self.status();
        SourceInfo {
            id: spec.id.clone(),
            name: spec.name.clone(),
            badge: spec.badge.clone(),
            kind: spec.kind.name(),
            enabled: spec.enabled,
            description: spec.description.clone(),
            file: spec.file.clone(),
            health: if spec.enabled {
                status.health()
            } else {
                Health::Disabled
            },
            initialized: status.initialized,
            last_success: status.last_success,
            last_error: status.last_error.as_ref().map(|(at, e)| LastError {
                at: *at,
                code: e.code,
                message: e.message.clone(),
            }),
            latency_ms: status.last_latency.map(|l| l.as_millis() as u64),
            last_check: status.last_check.clone(),
            upstream_fetches: self.upstream_fetches(),
            rate_limited_until: status
                .rate_limited_until
                .filter(|until| *until > Utc::now()),
            datasets: spec.kind.datasets().iter().copied().collect(),
            filters: spec
                .filters
                .iter()
                .map(|(name, filter)| (name.clone(), filter.type_name()))
                .collect(),
            cache_ttl_seconds: spec.cache_ttl.as_secs(),
            stale_while_revalidate_seconds: self.cache.stale_windows().while_revalidate.as_secs(),
            stale_if_error_seconds: self.cache.stale_windows().if_error.as_secs(),
            cache,
            rejected_change: generation
                .last_good
                .get(&spec.file)
                .filter(|id| **id == spec.id)
                .and_then(|_| generation.broken.get(&spec.file))
                .cloned(),
            timeout_ms: spec.timeout.as_millis() as u64,
            history: self.history().map(|core| core.info()),
        }
    }
}

impl Hub {
    /// What `GET /api/sources` shows.
    pub fn sources_report(&self) -> SourcesReport {
        let generation = self.current();
        SourcesReport {
            generation: GenerationInfo::of(&generation),
            sources: generation
                .entries
                .iter()
                .map(|entry| entry.info(&generation))
                .collect(),
            invalid_files: generation
                .broken
                .iter()
                .map(|(file, errors)| InvalidFile {
                    file: file.clone(),
                    errors: errors.clone(),
                })
                .collect(),
        }
    }

    /// Probes every enabled source in parallel, each under the health deadline.
    pub async fn health(&self) -> HealthReport {
        let generation = self.current();
        let sources: Vec<SourceHealth> =
            join_all(generation.enabled().map(|entry| self.probe(entry))).await;
        let up = sources
            .iter()
            .filter(|s| s.status == ProbeStatus::Ok)
            .count();
        let status = if up == 0 {
            Overall::Down
        } else if up < sources.len() || !generation.broken.is_empty() {
            Overall::Degraded
        } else {
            Overall::Ok
        };
        HealthReport {
            status,
            sources,
            invalid_files: generation.broken.len(),
            timestamp: Utc::now(),
        }
    }

    /// Probes one enabled source now (the admin page's re-check) and records the outcome.
    pub async fn check_source(&self, id: &str) -> Result<SourceHealth, RequestError> {
        match self.current().entry(id) {
            Some(entry) if entry.spec.enabled => Ok(self.probe(entry).await),
            Some(_) => Err(bad("source_disabled", format!("source `{id}` is disabled"))),
            None => Err(unknown_source(id)),
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
    /// since they hold every source's data. An admin clearing a cache asks for the
    /// sources to be queried again, so a rate-limit hold-off ends too. Returns the ids
    /// cleared.
    pub fn clear_cache(&self, source: Option<&str>) -> Result<Vec<String>, RequestError> {
        let generation = self.current();
        let cleared: Vec<&Arc<SourceEntry>> = match source {
            None => generation.entries.iter().collect(),
            Some(id) => vec![generation
                .entry(id)
                .ok_or_else(|| bad("unknown_source", format!("there is no source `{id}`")))?],
        };
        for entry in &cleared {
            entry.cache.clear();
            entry.status().rate_limited_until = None;
        }
        self.answers.clear();
        Ok(cleared.iter().map(|e| e.spec.id.clone()).collect())
    }
}
