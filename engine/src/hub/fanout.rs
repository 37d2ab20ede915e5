//! One metrics request fanned out: every selected source asked in parallel, each through
//! its cache and under both its own timeout and the request's deadline, and the merged
//! answer cached when every source answered. Concurrent identical requests share one
//! build, and each source's concurrent identical misses share one upstream query.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::join_all;

use super::report::{Answer, Assembly, Built, ErrorReport, Outcome};
use super::request::MetricsRequest;
use super::{Hub, SourceEntry};
use crate::cache::{AnswerKey, Fetched};
use crate::kinds::{SourceError, SourceSpec};
use crate::model::QueryParams;

impl SourceEntry {
    /// This source's data for `params`, through its cache, under `deadline`; the bool
    /// says whether it came from the cache.
    async fn fetch(
        &self,
        params: &QueryParams,
        deadline: Duration,
    ) -> (Result<Arc<Fetched>, SourceError>, bool) {
        let upstream = async {
            let _slot = self.slot().await?;
            self.count_upstream_fetch();
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
        match &outcome {
            Ok(fetched) if !cached => self.status().succeeded(fetched.fetched_at, fetched.latency),
            Ok(_) => {}
            // Shedding is the hub's choice, not the source failing: its health stays.
            Err(SourceError::Overloaded) => {
                tracing::warn!(source = %self.spec.id, "fetch shed: the source's queue is full");
            }
            Err(err) => {
                tracing::warn!(source = %self.spec.id, code = err.code(), "fetch failed: {err}");
                self.status().failed(ErrorReport::from(err));
            }
        }
        (outcome, cached)
    }

    /// Asks this source for `params`, unless it cannot honour a requested filter: its
    /// unfiltered numbers would be wrong in a filtered answer, so it sits out.
    async fn outcome(&self, params: &QueryParams, deadline: Duration) -> Outcome {
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
        let (result, cached) = self.fetch(params, deadline).await;
        Outcome::Done {
            result,
            cached,
            waited: started.elapsed(),
        }
    }
}

impl Hub {
    /// Answers a metrics request: from the answer cache, or by asking every selected
    /// source in parallel and merging what came back. Concurrent identical requests share
    /// one build.
    pub async fn metrics(&self, request: MetricsRequest) -> Answer {
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
                match self.build(&request).await {
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

    /// Asks every selected source and assembles what came back.
    async fn build(&self, request: &MetricsRequest) -> Built {
        let params = &request.params;
        let deadline = self.settings.request_deadline;
        let selected: Vec<&Arc<SourceEntry>> = request
            .sources
            .iter()
            .filter_map(|id| self.entry(id))
            .collect();
        let outcomes = join_all(selected.iter().map(|entry| entry.outcome(params, deadline))).await;
        let outcomes: Vec<(&SourceSpec, Outcome)> = selected
            .iter()
            .map(|entry| &entry.spec)
            .zip(outcomes)
            .collect();
        Assembly {
            params,
            policies: &self.policies,
            top_clients: self.settings.top_clients,
            now: Utc::now(),
        }
        .build(&outcomes)
    }
}
