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
//! - [`insights`]: every daily series of a window checked for anomalies.
//! - [`watch`]: reloads on changes under the sources directory and on SIGHUP.
//! - [`reload`]: a new load of the sources directory applied as the next [`Generation`],
//!   keeping every unchanged source as it is and the last good version of a broken file.

pub mod admin;
mod fanout;
pub mod insights;
pub mod reload;
pub mod report;
pub mod request;
pub mod status;
pub mod watch;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use futures::future::join_all;
use tokio::sync::{Semaphore, SemaphorePermit};

pub use admin::{HealthReport, Overall, SourcesReport};
pub use reload::{ReloadError, ReloadReport};
pub use report::{Answer, ErrorReport, MetricsBody};
pub use request::{MetricsRequest, RequestError, MAX_DAYS};

use crate::cache::{AnswerCache, SourceCache, StaleWindows};
use crate::config::ConfigError;
use crate::derived::Metric;
use crate::history::{self, Historical, Store};
use crate::kinds::{self, DataSource, SourceError, SourceSpec};
use crate::load::LoadedSources;
use crate::merge::Policies;
use crate::model::{QueryParams, SourceData};
use crate::telemetry::{self, SourceLabels};
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
    /// Stale windows of sources whose files leave them out.
    pub stale: StaleWindows,
    /// Where the sources came from, for reloads; `None` when they were given in memory.
    pub sources_dir: Option<PathBuf>,
    /// An env file whose variables a reload reads anew (before the process environment).
    pub env_file: Option<PathBuf>,
    /// The history store of sources that declare `history:`; without one they are
    /// queried directly.
    pub history_store: Option<Arc<Store>>,
}

impl Default for HubSettings {
    fn default() -> Self {
        HubSettings {
            request_deadline: Duration::from_secs(15),
            answer_ttl: Duration::from_secs(60),
            top_clients: 20,
            health_timeout: Duration::from_secs(2),
            fetch_queue: 32,
            stale: StaleWindows::default(),
            sources_dir: None,
            env_file: None,
            history_store: None,
        }
    }
}

/// One declared source with its implementation, cache and status.
pub struct SourceEntry {
    pub spec: SourceSpec,
    source: Arc<dyn DataSource>,
    /// For a source with `history:`: the store's side of it (progress, backfill).
    history: Option<Arc<history::Core>>,
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
    fn new(spec: SourceSpec, settings: &HubSettings) -> SourceEntry {
        let stale = StaleWindows {
            while_revalidate: (spec.stale.while_revalidate)
                .unwrap_or(settings.stale.while_revalidate),
            if_error: spec.stale.if_error.unwrap_or(settings.stale.if_error),
        };
        let (source, history) = with_history(&spec, kinds::build(&spec), settings);
        SourceEntry {
            source,
            history,
            cache: SourceCache::new(spec.cache_ttl, stale),
            slots: Semaphore::new(spec.concurrency),
            spec,
            status: Mutex::new(SourceStatus::default()),
            upstream_fetches: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            queue: settings.fetch_queue,
        }
    }

    /// The store's side of a source with `history:`.
    pub fn history(&self) -> Option<&Arc<history::Core>> {
        self.history.as_ref()
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
        if let Some(t) = telemetry::get() {
            let source = self.spec.id.clone();
            t.upstream_queries
                .get_or_create(&SourceLabels { source })
                .inc();
        }
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

/// `source` wrapped to answer from the history store, when it declares `history:` and
/// the hub has a store.
fn with_history(
    spec: &SourceSpec,
    source: Arc<dyn DataSource>,
    settings: &HubSettings,
) -> (Arc<dyn DataSource>, Option<Arc<history::Core>>) {
    match (&spec.history, &settings.history_store) {
        (Some(declared), Some(store)) => {
            let historical = Historical::new(spec, declared.clone(), source, store.clone());
            let core = historical.core().clone();
            (Arc::new(historical), Some(core))
        }
        _ => (source, None),
    }
}

/// One configuration generation: the sources of one load of the sources directory.
/// A request takes the generation current when it starts and uses only that one, so a
/// reload never shows it half of one and half of another.
pub struct Generation {
    /// 1 at start-up, one more per reload.
    pub number: u64,
    pub loaded_at: DateTime<Utc>,
    entries: Vec<Arc<SourceEntry>>,
    broken: BTreeMap<PathBuf, Vec<ConfigError>>,
    /// Files that became invalid while their last good version keeps serving: file ->
    /// the id still served from it.
    last_good: BTreeMap<PathBuf, String>,
    policies: Policies,
    /// The derived metrics every answer of this generation carries.
    derived: Vec<Metric>,
}

impl Generation {
    fn entry(&self, id: &str) -> Option<&Arc<SourceEntry>> {
        self.entries.iter().find(|e| e.spec.id == id)
    }

    fn enabled(&self) -> impl Iterator<Item = &Arc<SourceEntry>> {
        self.entries.iter().filter(|e| e.spec.enabled)
    }

    fn declared(&self) -> Vec<&SourceSpec> {
        self.entries.iter().map(|e| &e.spec).collect()
    }
}

/// The hub: the current generation of sources, the merged-answer cache and the settings.
pub struct Hub {
    // A std RwLock: held only to clone or replace the Arc, never across an await.
    current: RwLock<Arc<Generation>>,
    answers: AnswerCache,
    settings: HubSettings,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
}

impl Hub {
    /// Builds the registry from loaded declarations; nothing is connected yet.
    pub fn new(loaded: LoadedSources, settings: HubSettings) -> Hub {
        let generation = Generation {
            number: 1,
            loaded_at: Utc::now(),
            entries: loaded
                .sources
                .into_iter()
                .map(|s| Arc::new(SourceEntry::new(s, &settings)))
                .collect(),
            broken: loaded.broken,
            last_good: BTreeMap::new(),
            policies: loaded.policies,
            derived: loaded.derived,
        };
        Hub {
            current: RwLock::new(Arc::new(generation)),
            answers: AnswerCache::new(settings.answer_ttl),
            settings,
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    /// Sets the metrics read at scrape time: each source's cache entries, each plugin's
    /// memory high-water mark, and the generation. Sources a reload removed disappear from them.
    pub fn observe(&self) {
        let Some(t) = telemetry::get() else { return };
        let generation = self.current();
        t.generation.set(generation.number as i64);
        t.cache_entries.clear();
        t.plugin_memory.clear();
        for entry in &generation.entries {
            let labels = SourceLabels {
                source: entry.spec.id.clone(),
            };
            let entries = entry.cache.stats().entries as i64;
            t.cache_entries.get_or_create(&labels).set(entries);
            if let Some(bytes) = entry.source.memory_high_water() {
                t.plugin_memory.get_or_create(&labels).set(bytes as i64);
            }
        }
    }

    /// The generation serving now.
    pub fn current(&self) -> Arc<Generation> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Every declared, valid source of the current generation, sorted by id.
    pub fn entries(&self) -> Vec<Arc<SourceEntry>> {
        self.current().entries.clone()
    }

    /// Connects every enabled source in parallel. A failure is logged and recorded; the
    /// source retries on its next request.
    pub async fn initialize(&self) {
        let generation = self.current();
        join_all(generation.enabled().map(|entry| entry.initialize())).await;
    }

    /// Releases every source's resources.
    pub async fn cleanup(&self) {
        let generation = self.current();
        join_all(
            generation
                .entries
                .iter()
                .map(|entry| entry.source.cleanup()),
        )
        .await;
    }

    /// Validates the query string of a metrics request against the declared sources.
    pub fn parse_request(
        &self,
        query: &str,
        today: NaiveDate,
    ) -> Result<MetricsRequest, RequestError> {
        request::parse(query, today, &self.current().declared())
    }

    /// Parses a metrics request and answers it, both against one generation.
    pub async fn answer_query(
        &self,
        query: &str,
        today: NaiveDate,
    ) -> Result<Answer, RequestError> {
        let generation = self.current();
        let request = request::parse(query, today, &generation.declared())?;
        Ok(self.metrics_in(&generation, request).await)
    }

    /// Fetches one source directly, bypassing caches (for `metrics-hub query`).
    pub async fn query_source(
        &self,
        id: &str,
        params: &QueryParams,
    ) -> Result<SourceData, QueryError> {
        let generation = self.current();
        let entry = generation
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
