//! History: a source's settled days kept in a store, so a request queries only the days
//! that can still change. Below the hub (which wraps a source that declares `history:` in
//! a [`Historical`]) and above the kinds and the model.
//!
//! - [`store`]: SQLite or PostgreSQL, one schema, embedded migrations.
//! - [`compose`]: which days are settled, and how days add up to a window (pure).
//! - [`source`]: [`Core`], which answers a window from the store where that is exact.
//! - [`backfill`]: fills the store in the background, paced; also the CLI's backfill.
//! - [`progress`]: where a backfill is.
//! - [`verify`]: re-queries stored days and reports any difference.

pub mod backfill;
pub mod compose;
pub mod progress;
pub mod source;
pub mod store;
pub mod verify;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::Serialize;

pub use progress::{Progress, State};
pub use source::Core;
pub use store::{Store, StoreError, StoreSize};

use crate::config::HistorySpec;
use crate::kinds::{DataSource, SourceError, SourceSpec};
use crate::model::{Dataset, QueryParams, SourceData};

/// A source with `history:`, as the hub runs it: answers through its [`Core`] and runs
/// the background backfill from its first initialization until it is dropped.
pub struct Historical {
    core: Arc<Core>,
    backfill: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Historical {
    pub fn new(
        spec: &SourceSpec,
        history: HistorySpec,
        inner: Arc<dyn DataSource>,
        store: Arc<Store>,
    ) -> Historical {
        Historical {
            core: Arc::new(Core::new(spec, history, inner, store)),
            backfill: Mutex::new(None),
        }
    }

    /// The shared part, for status reports and the backfill command.
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    fn task(&self) -> std::sync::MutexGuard<'_, Option<tokio::task::AbortHandle>> {
        self.backfill
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Historical {
    fn drop(&mut self) {
        if let Some(task) = self.task().take() {
            task.abort();
        }
    }
}

#[async_trait]
impl DataSource for Historical {
    /// Connects the source and starts its background backfill (once).
    async fn initialize(&self) -> Result<(), SourceError> {
        self.core.inner.initialize().await?;
        let mut task = self.task();
        if task.is_none() {
            *task = Some(tokio::spawn(backfill::run(self.core.clone())).abort_handle());
        }
        Ok(())
    }

    async fn fetch_metrics(&self, params: &QueryParams) -> Result<SourceData, SourceError> {
        self.core.answer(params).await
    }

    async fn health_check(&self) -> Result<(), SourceError> {
        self.core.inner.health_check().await
    }

    async fn cleanup(&self) {
        if let Some(task) = self.task().take() {
            task.abort();
        }
        self.core.inner.cleanup().await;
    }

    fn memory_high_water(&self) -> Option<u64> {
        self.core.inner.memory_high_water()
    }
}

/// A source's history in `GET /api/sources`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryInfo {
    /// Where the store is (no credentials).
    pub store: String,
    /// How long after a UTC day ends it counts as settled.
    pub settle_seconds: u64,
    pub retention_days: u32,
    /// The datasets answered from stored days; the others are queried for the window.
    pub stored_datasets: Vec<Dataset>,
    pub backfill: Progress,
}

impl Core {
    /// What `/api/sources` shows of this source's history.
    pub fn info(&self) -> HistoryInfo {
        HistoryInfo {
            store: self.store.place().to_owned(),
            settle_seconds: self.spec.settle.as_secs(),
            retention_days: self.spec.retention_days,
            stored_datasets: self.stored.iter().copied().collect(),
            backfill: self.progress_now(),
        }
    }
}
