//! The orchestrator: the registry of sources, each with its running implementation,
//! cache and status, and what the API asks of them. Nothing here knows about HTTP: the
//! answers say what happened (an answer where every source failed, a request the client
//! got wrong) and the API picks the status codes.
//!
//! - [`request`]: a metrics request's query string -> a validated request (pure).
//! - [`fanout`]: the request asked of every selected source in parallel, through caches.
//! - [`report`]: the outcomes -> the merged answer in the dashboard's shape (pure).
//! - [`status`]: what the hub remembers of each source, and the health rules (pure).
//! - [`admin`]: `/api/sources`, `/api/health`, re-checks, cache clearing.

pub mod admin;
mod fanout;
pub mod report;
pub mod request;
pub mod status;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDate;
use futures::future::join_all;
use tokio::sync::{Semaphore, SemaphorePermit};

pub use admin::{HealthReport, Overall, SourcesReport};
pub use report::{Answer, ErrorReport, MetricsBody};
pub use request::{MetricsRequest, RequestError, MAX_DAYS};

use crate::cache::{AnswerCache, SourceCache};
use crate::config::ConfigError;
use crate::kinds::{self, DataSource, SourceError, SourceSpec};
use crate::load::LoadedSources;
use crate::merge::Policies;
use crate::model::{QueryParams, SourceData};
use status::SourceStatus;

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
    /// Fetches of one source that may wait for one of its `concurrency` slots; one more
    /// is refused (503, Retry-After) instead of queued.
    pub fetch_queue: usize,
}

impl Default for HubSettings {
    fn default() -> Self {
        HubSettings {
            request_deadline: Duration::from_secs(15),
            answer_ttl: Duration::from_secs(60),
            top_clients: 20,
            health_timeout: Duration::from_secs(2),
            fetch_queue: 32,
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
    /// One permit per fetch that may run at once (`concurrency:`).
    slots: Semaphore,
    /// Fetches waiting for a slot, and how many may.
    waiting: AtomicUsize,
    queue: usize,
}

impl SourceEntry {
    fn new(spec: SourceSpec, queue: usize) -> SourceEntry {
        SourceEntry {
            source: kinds::build(&spec),
            cache: SourceCache::new(spec.cache_ttl),
            slots: Semaphore::new(spec.concurrency),
            spec,
            status: Mutex::new(SourceStatus::default()),
            upstream_fetches: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            queue,
        }
    }

    /// A slot for one upstream fetch: at once when one is free, after a wait when the
    /// queue has room, else `Overloaded`, so the cold path sheds load instead of piling up.
    async fn slot(&self) -> Result<SemaphorePermit<'_>, SourceError> {
        if let Ok(permit) = self.slots.try_acquire() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(SourceError::Overloaded);
        }
        let permit = self.slots.acquire().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        permit.map_err(|_| SourceError::Overloaded)
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

    fn count_upstream_fetch(&self) {
        self.upstream_fetches.fetch_add(1, Ordering::Relaxed);
    }

    /// Connects the source under its timeout, recording the outcome.
    async fn initialize(&self) {
        let outcome = match tokio::time::timeout(self.spec.timeout, self.source.initialize()).await
        {
            Ok(outcome) => outcome,
            Err(_) => Err(SourceError::Timeout(self.spec.timeout)),
        };
        match outcome {
            Ok(()) => {
                self.status().initialized = true;
                tracing::info!(source = %self.spec.id, "source ready");
            }
            Err(err) => {
                tracing::error!(source = %self.spec.id, "initialization failed: {err}");
                self.status().failed(ErrorReport::from(&err));
            }
        }
    }
}

/// The hub: every declared source, the caches and the settings.
pub struct Hub {
    entries: Vec<Arc<SourceEntry>>,
    broken: BTreeMap<PathBuf, Vec<ConfigError>>,
    policies: Policies,
    answers: AnswerCache,
    settings: HubSettings,
}

impl Hub {
    /// Builds the registry from loaded declarations; nothing is connected yet.
    pub fn new(loaded: LoadedSources, settings: HubSettings) -> Hub {
        Hub {
            entries: loaded
                .sources
                .into_iter()
                .map(|s| Arc::new(SourceEntry::new(s, settings.fetch_queue)))
                .collect(),
            broken: loaded.broken,
            policies: loaded.policies,
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
        join_all(self.enabled().map(|entry| entry.initialize())).await;
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
        let declared: Vec<&SourceSpec> = self.entries.iter().map(|e| &e.spec).collect();
        request::parse(query, today, &declared)
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
