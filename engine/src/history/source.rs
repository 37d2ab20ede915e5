//! The answering side of a source with `history:`: [`Core`] holds the source's own
//! [`DataSource`] and answers a
//! window from settled stored days plus a fresh fetch of the open days, queries the
//! datasets that do not add up across days for the whole window, and falls back to the
//! direct query whenever the store cannot answer exactly (filters, too many missing days,
//! a store error). Caches, timeouts and concurrency stay the hub's, around this.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use futures::future::{join_all, OptionFuture};
use tokio::sync::Notify;

use super::compose::{self, DayRun};
use super::progress::Progress;
use super::store::Store;
use crate::config::HistorySpec;
use crate::kinds::{DataSource, SourceError, SourceSpec};
use crate::model::{Dataset, HistoryNote, QueryParams, SourceData};

/// Missing settled days a request fetches one by one itself (typically the day that has
/// just settled); with more missing, it asks the source directly and wakes the backfill.
pub const INLINE_DAYS: usize = 3;

/// What the answering path and the backfill share.
pub struct Core {
    pub id: String,
    pub inner: Arc<dyn DataSource>,
    pub spec: HistorySpec,
    /// Datasets the source provides, and those of them the store answers.
    pub provided: BTreeSet<Dataset>,
    pub stored: BTreeSet<Dataset>,
    pub definition: String,
    pub store: Arc<Store>,
    pub timeout: Duration,
    pub progress: Mutex<Progress>,
    /// Woken when a request found days missing.
    pub wake: Notify,
}

impl Core {
    pub fn new(
        spec: &SourceSpec,
        history: HistorySpec,
        inner: Arc<dyn DataSource>,
        store: Arc<Store>,
    ) -> Core {
        let provided = spec.kind.datasets().clone();
        let stored = compose::stored_datasets(&history, &provided);
        Core {
            id: spec.id.clone(),
            inner,
            progress: Mutex::new(Progress::new(history.backfill_days)),
            spec: history,
            provided,
            stored,
            definition: spec.definition.clone(),
            store,
            timeout: spec.timeout,
            wake: Notify::new(),
        }
    }

    /// The window's answer, from the store where it can be exact.
    pub async fn answer(&self, params: &QueryParams) -> Result<SourceData, SourceError> {
        if !params.filters.is_empty() {
            return self
                .direct(params, "requests with filters are queried directly")
                .await;
        }
        let newest = compose::newest_settled(Utc::now(), self.spec.settle);
        let split = compose::split(params, newest);
        let Some(settled) = split.settled.filter(|_| !self.stored.is_empty()) else {
            return self.direct(params, "no settled day in the window").await;
        };
        let mut days = match self.stored_days(settled).await {
            Ok(days) => days,
            Err(err) => {
                tracing::warn!(source = %self.id, "history store unreadable, querying directly: {err}");
                return self
                    .direct(params, "the history store could not be read")
                    .await;
            }
        };
        let missing: Vec<NaiveDate> = settled.iter().filter(|d| !days.contains_key(d)).collect();
        if missing.len() > INLINE_DAYS {
            self.wake.notify_one();
            let why = format!("{} settled days are not stored yet", missing.len());
            return self.direct(params, &why).await;
        }
        let whole: BTreeSet<Dataset> = self.provided.difference(&self.stored).copied().collect();
        let open_window = split.open.map(DayRun::params);
        let open = (open_window.as_ref()).map(|run| self.inner.fetch_datasets(run, &self.stored));
        let rest = (!whole.is_empty()).then(|| self.inner.fetch_datasets(params, &whole));
        let (fetched, open, rest) = tokio::join!(
            join_all(missing.iter().map(|day| self.fetch_day(*day))),
            OptionFuture::from(open),
            OptionFuture::from(rest),
        );
        for (day, data) in missing.iter().zip(fetched) {
            let data = data?;
            self.keep(*day, &data).await;
            days.insert(*day, data);
        }
        let open = open.transpose()?;
        let mut data =
            compose::combine(&self.spec, &self.stored, days.values().chain(open.as_ref()));
        if let Some(rest) = rest.transpose()? {
            take_datasets(&mut data, rest, &whole);
        }
        data.history = Some(HistoryNote {
            datasets: self.stored.iter().copied().collect(),
            stored_days: settled.len() - missing.len(),
            fetched_days: missing.len(),
            open_days: split.open.map_or(0, DayRun::len),
            bypassed: None,
        });
        Ok(data)
    }

    /// The source's own answer for the window, noting why the store was not used.
    async fn direct(&self, params: &QueryParams, why: &str) -> Result<SourceData, SourceError> {
        let mut data = self.inner.fetch_metrics(params).await?;
        data.history = Some(HistoryNote {
            bypassed: Some(why.to_owned()),
            ..HistoryNote::default()
        });
        Ok(data)
    }

    async fn stored_days(
        &self,
        run: DayRun,
    ) -> Result<std::collections::BTreeMap<NaiveDate, SourceData>, super::StoreError> {
        let mut days = self
            .store
            .days(&self.id, &self.definition, run.first, run.last)
            .await?;
        days.retain(|_, day| compose::complete(day, &self.stored));
        Ok(days)
    }

    /// One settled day of the stored datasets, fetched from the source.
    pub async fn fetch_day(&self, day: NaiveDate) -> Result<SourceData, SourceError> {
        let window = DayRun::day(day).params();
        let fetch = self.inner.fetch_datasets(&window, &self.stored);
        let mut data = tokio::time::timeout(self.timeout, fetch)
            .await
            .map_err(|_| SourceError::Timeout(self.timeout))??;
        data.history = None;
        Ok(data)
    }

    /// Stores a fetched settled day, unless its answer carried warnings (a page limit hit,
    /// records left out): a day that may be incomplete is fetched again next time rather
    /// than kept. A store error only costs the saving.
    pub async fn keep(&self, day: NaiveDate, data: &SourceData) -> bool {
        if !data.warnings.is_empty() {
            tracing::info!(source = %self.id, %day, "day not stored: its answer has warnings ({})", data.warnings.join("; "));
            return false;
        }
        match self
            .store
            .put_day(&self.id, &self.definition, day, data)
            .await
        {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(source = %self.id, %day, "day not stored: {err}");
                false
            }
        }
    }
}

/// Moves `datasets` of `from` into `into`, with its warnings.
fn take_datasets(into: &mut SourceData, from: SourceData, datasets: &BTreeSet<Dataset>) {
    let keep = |dataset| datasets.contains(&dataset);
    if keep(Dataset::Summary) {
        into.summary = from.summary;
    }
    if keep(Dataset::Daily) {
        into.daily = from.daily;
    }
    if keep(Dataset::Features) {
        into.features = from.features;
    }
    if keep(Dataset::Clients) {
        into.clients = from.clients;
    }
    into.warnings.extend(from.warnings);
}
