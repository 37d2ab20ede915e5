//! One metrics request fanned out: every selected source asked in parallel, each through
//! its cache (fresh, or stale within its windows) and under both its own timeout and the
//! request's deadline, and the merged answer cached when every source answered fresh. Concurrent identical requests share one
//! build, and each source's concurrent identical misses share one upstream query.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::join_all;
use tracing::Instrument;

use super::report::{Answer, Assembly, Built, ErrorReport, Outcome, Staleness};
use super::request::MetricsRequest;
use super::{Generation, Hub, SourceEntry};
use crate::cache::{AnswerKey, Fetched, Freshness};
use crate::kinds::{SourceError, SourceSpec};
use crate::model::{QueryParams, SourceData};
use crate::plugin::PluginError;
use crate::telemetry::{self, LookupLabels, OutcomeLabels, SourceLabels, TrapLabels};

/// How long the hub holds off a source that answered rate-limited without saying for how
/// long, and the longest it holds off whatever the source said.
const HOLD_OFF: Duration = Duration::from_secs(1);
const MAX_HOLD_OFF: Duration = Duration::from_secs(3_600);

/// What one source's cache and upstream gave a request.
struct Served {
    result: Result<Arc<Fetched>, SourceError>,
    cached: bool,
    stale: Option<Staleness>,
}

impl SourceEntry {
    /// This source's data for `params` under `deadline`: fresh from the cache, stale from
    /// it while a background refresh runs (`stale_while_revalidate`), from upstream, or
    /// stale in place of a failed fetch (`stale_if_error`).
    async fn fetch(self: &Arc<Self>, params: &QueryParams, deadline: Duration) -> Served {
        let mut fallback = None;
        if let Some(hit) = self.cache.lookup(params).await {
            let served = |stale| Served {
                result: Ok(hit.fetched.clone()),
                cached: true,
                stale,
            };
            match hit.freshness {
                Freshness::Fresh => {
                    self.count_lookup("hit");
                    return served(None);
                }
                Freshness::Revalidate => {
                    self.count_lookup("stale");
                    self.revalidate(params);
                    return served(Some(Staleness::Revalidating));
                }
                Freshness::IfError => fallback = Some(hit.fetched),
            }
        }
        let load = self.cache.load(params, self.upstream(params.clone()));
        let (result, cached) = match tokio::time::timeout(deadline, load).await {
            Ok(loaded) => loaded,
            Err(_) => (Err(SourceError::Timeout(deadline)), false),
        };
        self.record(&result, cached);
        let counted = match (&result, &fallback) {
            (Err(_), Some(_)) => "stale",
            (Ok(_), _) if cached => "hit",
            _ => "miss",
        };
        self.count_lookup(counted);
        match (result, fallback) {
            (Err(err), Some(stale)) => Served {
                result: Ok(stale),
                cached: true,
                stale: Some(Staleness::AfterError(ErrorReport::from(&err))),
            },
            (result, _) => Served {
                result,
                cached,
                stale: None,
            },
        }
    }

    /// One upstream fetch under the source's slot and timeout; owns what it needs, so a
    /// background refresh can outlive the request that started it.
    fn upstream(
        self: &Arc<Self>,
        params: QueryParams,
    ) -> impl Future<Output = Result<Fetched, SourceError>> + Send + 'static {
        let entry = self.clone();
        let span = tracing::info_span!("upstream", source = %self.spec.id);
        async move {
            if let Some(left) = entry.status().holding_off(Utc::now()) {
                return Err(SourceError::HeldOff(left));
            }
            let _slot = entry.slot().await?;
            entry.count_upstream_fetch();
            let started = Instant::now();
            let timeout = entry.spec.timeout;
            let data = tokio::time::timeout(timeout, entry.source.fetch_metrics(&params))
                .await
                .map_err(|_| SourceError::Timeout(timeout))
                .and_then(|fetched| fetched);
            entry.observe_upstream(&data, started.elapsed());
            if let Err(SourceError::RateLimited { retry_after }) = &data {
                let wait = retry_after.unwrap_or(HOLD_OFF).min(MAX_HOLD_OFF);
                entry.status().hold_off(Utc::now(), wait);
            }
            let data = data?;
            Ok(Fetched {
                data,
                fetched_at: Utc::now(),
                latency: started.elapsed(),
            })
        }
        .instrument(span)
    }

    /// Starts the one background refresh of `params`, unless it already runs.
    fn revalidate(self: &Arc<Self>, params: &QueryParams) {
        let Some(claim) = self.cache.claim_refresh(params) else {
            return;
        };
        let entry = self.clone();
        let params = params.clone();
        tokio::spawn(async move {
            let _claim = claim;
            let (result, cached) = entry
                .cache
                .load(&params, entry.upstream(params.clone()))
                .await;
            entry.record(&result, cached);
        });
    }

    fn count_lookup(&self, result: &'static str) {
        if let Some(t) = telemetry::get() {
            let source = self.spec.id.clone();
            t.cache_lookups
                .get_or_create(&LookupLabels { source, result })
                .inc();
        }
    }

    /// Counts one upstream fetch by outcome, its duration, rows and plugin traps.
    fn observe_upstream(&self, result: &Result<SourceData, SourceError>, took: Duration) {
        let Some(t) = telemetry::get() else { return };
        let source = self.spec.id.clone();
        let outcome = match result {
            Ok(_) => "ok",
            Err(err) => err.code(),
        };
        t.fetches
            .get_or_create(&OutcomeLabels {
                source: source.clone(),
                outcome: outcome.to_owned(),
            })
            .inc();
        let labels = SourceLabels { source };
        t.fetch_duration
            .get_or_create(&labels)
            .observe(telemetry::seconds(took));
        match result {
            Ok(data) => {
                t.rows
                    .get_or_create(&labels)
                    .inc_by(data.record_count() as u64);
            }
            Err(SourceError::Plugin(err)) => {
                if let Some(reason) = trap_reason(err) {
                    let source = labels.source;
                    t.plugin_traps
                        .get_or_create(&TrapLabels { source, reason })
                        .inc();
                }
            }
            Err(_) => {}
        }
    }

    /// Records what a fetch did in the source's status and the log.
    fn record(&self, result: &Result<Arc<Fetched>, SourceError>, cached: bool) {
        match result {
            Ok(fetched) if !cached => self.status().succeeded(fetched.fetched_at, fetched.latency),
            Ok(_) => {}
            // Shedding is the hub's choice, not the source failing: its health stays.
            Err(SourceError::Overloaded) => {
                tracing::warn!(source = %self.spec.id, "fetch shed: the source's queue is full");
            }
            // Not a new failure: the rate limit that caused it is already recorded.
            Err(err @ SourceError::HeldOff(_)) => {
                tracing::debug!(source = %self.spec.id, "fetch not sent: {err}");
            }
            Err(err) => {
                tracing::warn!(source = %self.spec.id, code = err.code(), "fetch failed: {err}");
                self.status().failed(ErrorReport::from(err));
            }
        }
    }

    /// Asks this source for `params`, unless it cannot honour a requested filter: its
    /// unfiltered numbers would be wrong in a filtered answer, so it sits out.
    async fn outcome(self: &Arc<Self>, params: &QueryParams, deadline: Duration) -> Outcome {
        let unsupported: Vec<&str> = params
            .filters
            .keys()
            .filter(|name| !self.spec.filters.contains_key(*name))
            .map(String::as_str)
            .collect();
        if !unsupported.is_empty() {
            return Outcome::Skipped(format!(
                "does not support filter {}",
                unsupported.join(", ")
            ));
        }
        let started = Instant::now();
        let span = tracing::info_span!("source_fetch", source = %self.spec.id);
        let served = self.fetch(params, deadline).instrument(span).await;
        Outcome::Done {
            result: served.result,
            cached: served.cached,
            waited: started.elapsed(),
            stale: served.stale,
        }
    }
}

/// Why a plugin call trapped, for `metrics_hub_plugin_traps_total`.
fn trap_reason(err: &PluginError) -> Option<&'static str> {
    match err {
        PluginError::Trap(_) => Some("crash"),
        PluginError::OutOfMemory(_) => Some("memory"),
        PluginError::Deadline(_) => Some("deadline"),
        _ => None,
    }
}

impl Hub {
    /// Answers a metrics request: from the answer cache, or by asking every selected
    /// source in parallel and merging what came back. Concurrent identical requests share
    /// one build.
    pub async fn metrics(&self, request: MetricsRequest) -> Answer {
        self.metrics_in(&self.current(), request).await
    }

    /// [`Self::metrics`] against one generation.
    pub(super) async fn metrics_in(
        &self,
        generation: &Generation,
        request: MetricsRequest,
    ) -> Answer {
        let key = AnswerKey {
            sources: request.sources.clone(),
            params: request.params.clone(),
        };
        if let Some(hit) = self.answers.get(&key).await {
            return Answer::served(hit.cached);
        }
        let ran_here = AtomicBool::new(false);
        let built = self
            .answers
            .get_or_build(key, async {
                ran_here.store(true, Ordering::Relaxed);
                match self.build(generation, &request).await {
                    Built::Complete(answer) => Ok(answer),
                    Built::Uncached(answer) => Err(answer),
                }
            })
            .await;
        match built {
            // The request that built the answer says `cached: false`; those that waited
            // for it get the copy marked cached, as later hits do.
            Ok(answer) if ran_here.load(Ordering::Relaxed) => Answer::served(answer.fresh),
            Ok(answer) => Answer::served(answer.cached),
            Err(uncached) => (*uncached).clone(),
        }
    }

    /// Asks every selected source of `request`, in parallel, through its cache.
    pub(super) async fn outcomes<'g>(
        &self,
        generation: &'g Generation,
        request: &MetricsRequest,
    ) -> Vec<(&'g SourceSpec, Outcome)> {
        let deadline = self.settings.request_deadline;
        let selected: Vec<&Arc<SourceEntry>> = request
            .sources
            .iter()
            .filter_map(|id| generation.entry(id))
            .collect();
        let asked = selected
            .iter()
            .map(|entry| entry.outcome(&request.params, deadline));
        let outcomes = join_all(asked).await;
        selected
            .iter()
            .map(|entry| &entry.spec)
            .zip(outcomes)
            .collect()
    }

    /// Asks every selected source and assembles what came back.
    async fn build(&self, generation: &Generation, request: &MetricsRequest) -> Built {
        let params = &request.params;
        let outcomes = self.outcomes(generation, request).await;
        Assembly {
            params,
            policies: &generation.policies,
            derived: &generation.derived,
            top_clients: self.settings.top_clients,
            now: Utc::now(),
        }
        .build(&outcomes)
    }
}
