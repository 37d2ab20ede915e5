//! Caches: one moka cache per source (its own TTL, keyed by normalised parameters) and one
//! for whole answers. Both load through `try_get_with`, so concurrent identical misses
//! share a single upstream fetch; errors are handed to every waiter and never cached.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use moka::future::Cache;

use crate::kinds::SourceError;
use crate::model::{QueryParams, SourceData};

/// A source's answer and when it was fetched upstream.
#[derive(Debug)]
pub struct Fetched {
    pub data: SourceData,
    pub fetched_at: DateTime<Utc>,
    /// How long the upstream fetch took.
    pub latency: Duration,
}

/// The per-source cache. A TTL of zero means no caching, but concurrent identical calls
/// are still coalesced into one fetch.
pub struct SourceCache {
    cache: Cache<QueryParams, Arc<Fetched>>,
    ttl: Duration,
}

/// Entries per source: a dashboard asks for few distinct windows and filter sets.
const SOURCE_CAPACITY: u64 = 1_000;

impl SourceCache {
    pub fn new(ttl: Duration) -> SourceCache {
        // moka needs a positive TTL; a zero one is served by invalidating after each load.
        let cache = Cache::builder()
            .max_capacity(SOURCE_CAPACITY)
            .time_to_live(ttl.max(Duration::from_millis(1)))
            .build();
        SourceCache { cache, ttl }
    }

    /// The cached answer for `params`, or the result of `fetch`, run once for all
    /// concurrent callers. The flag is true when this call did not run the fetch itself.
    pub async fn get_or_fetch<F>(
        &self,
        params: &QueryParams,
        fetch: F,
    ) -> (Result<Arc<Fetched>, SourceError>, bool)
    where
        F: Future<Output = Result<Fetched, SourceError>>,
    {
        let ran_here = AtomicBool::new(false);
        let result = self
            .cache
            .try_get_with_by_ref(params, async {
                ran_here.store(true, Ordering::Relaxed);
                fetch.await.map(Arc::new)
            })
            .await
            .map_err(|err: Arc<SourceError>| (*err).clone());
        let ran_here = ran_here.load(Ordering::Relaxed);
        if self.ttl.is_zero() && ran_here {
            self.cache.invalidate(params).await;
        }
        (result, !ran_here)
    }

    pub fn clear(&self) {
        self.cache.invalidate_all();
    }

    /// What the cache holds now: live entries and the fetch times of the oldest and newest.
    pub fn stats(&self) -> CacheStats {
        let mut stats = CacheStats::default();
        // moka's iterator skips expired entries, so this counts what would be served.
        for (_, fetched) in self.cache.iter() {
            stats.entries += 1;
            let at = fetched.fetched_at;
            stats.oldest_fetched_at = Some(stats.oldest_fetched_at.map_or(at, |t| t.min(at)));
            stats.newest_fetched_at = Some(stats.newest_fetched_at.map_or(at, |t| t.max(at)));
        }
        stats
    }
}

/// A snapshot of one source's cache, for the admin page.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheStats {
    pub entries: u64,
    pub oldest_fetched_at: Option<DateTime<Utc>>,
    pub newest_fetched_at: Option<DateTime<Utc>>,
}

/// Key of a whole answer: which sources and which parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AnswerKey {
    pub sources: Vec<String>,
    pub params: QueryParams,
}

/// A serialized answer twice: as first sent (`cached: false`) and as served afterwards
/// (`cached: true`), so a cache hit is a lookup and a copy of bytes.
#[derive(Debug, Clone)]
pub struct CachedAnswer {
    pub fresh: Bytes,
    pub cached: Bytes,
}

/// Whole answers, cached only when every source answered.
pub struct AnswerCache {
    cache: Cache<AnswerKey, CachedAnswer>,
}

impl AnswerCache {
    pub fn new(ttl: Duration) -> AnswerCache {
        AnswerCache {
            cache: Cache::builder()
                .max_capacity(1_000)
                .time_to_live(ttl.max(Duration::from_millis(1)))
                .build(),
        }
    }

    /// A cached answer, if any.
    pub async fn get(&self, key: &AnswerKey) -> Option<CachedAnswer> {
        self.cache.get(key).await
    }

    /// Loads once for concurrent identical misses. `Err` carries an answer that must not
    /// be cached (some source failed) yet is still shared with every waiter.
    pub async fn get_or_build<F, E>(&self, key: AnswerKey, build: F) -> Result<CachedAnswer, Arc<E>>
    where
        F: Future<Output = Result<CachedAnswer, E>>,
        E: Send + Sync + 'static,
    {
        self.cache.try_get_with(key, build).await
    }

    pub fn clear(&self) {
        self.cache.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn params() -> QueryParams {
        QueryParams::last_days(7, chrono::NaiveDate::from_ymd_opt(2026, 1, 8).unwrap())
    }

    fn fetched() -> Fetched {
        Fetched {
            data: SourceData::default(),
            fetched_at: Utc::now(),
            latency: Duration::ZERO,
        }
    }

    #[tokio::test]
    async fn concurrent_identical_misses_fetch_once() {
        let cache = SourceCache::new(Duration::from_secs(60));
        let calls = AtomicUsize::new(0);
        let fetch = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(fetched())
        };
        let key = params();
        let results =
            futures::future::join_all((0..50).map(|_| cache.get_or_fetch(&key, fetch()))).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(results.iter().all(|(r, _)| r.is_ok()));
        assert_eq!(results.iter().filter(|(_, cached)| !cached).count(), 1);
        let (_, cached) = cache.get_or_fetch(&params(), fetch()).await;
        assert!(cached);
        cache.clear();
        let (_, cached) = cache.get_or_fetch(&params(), fetch()).await;
        assert!(!cached);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn errors_are_shared_but_not_cached_and_zero_ttl_does_not_cache() {
        let cache = SourceCache::new(Duration::from_secs(60));
        let (result, _) = cache
            .get_or_fetch(&params(), async {
                Err(SourceError::Timeout(Duration::from_secs(1)))
            })
            .await;
        assert!(result.is_err());
        let (result, cached) = cache.get_or_fetch(&params(), async { Ok(fetched()) }).await;
        assert!(result.is_ok() && !cached);

        let uncached = SourceCache::new(Duration::ZERO);
        for _ in 0..2 {
            let (_, cached) = uncached
                .get_or_fetch(&params(), async { Ok(fetched()) })
                .await;
            assert!(!cached);
        }
    }

    #[tokio::test]
    async fn stats_count_live_entries_with_their_fetch_times() {
        let cache = SourceCache::new(Duration::from_secs(60));
        assert_eq!(cache.stats(), CacheStats::default());
        let early = Utc::now() - chrono::Duration::seconds(90);
        let other = QueryParams::last_days(30, params().end_date);
        let at = |fetched_at| async move {
            Ok(Fetched {
                fetched_at,
                ..fetched()
            })
        };
        cache.get_or_fetch(&params(), at(early)).await.0.unwrap();
        let late = Utc::now();
        cache.get_or_fetch(&other, at(late)).await.0.unwrap();
        let stats = cache.stats();
        assert_eq!(stats.entries, 2);
        assert_eq!(stats.oldest_fetched_at, Some(early));
        assert_eq!(stats.newest_fetched_at, Some(late));
        cache.clear();
        assert_eq!(cache.stats().entries, 0);
    }
}
