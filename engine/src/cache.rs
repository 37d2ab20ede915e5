//! Caches: one moka cache per source (its own TTL and stale windows, keyed by normalised
//! parameters) and one for whole answers. Both load through `try_get_with`, so concurrent
//! identical misses share a single upstream fetch; errors are handed to every waiter and
//! never cached. A whole answer lives no longer than the shortest TTL of its sources.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use moka::future::Cache;
use moka::Expiry;
use tokio::time::Instant;

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

/// How long past its TTL an entry may still be served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StaleWindows {
    /// Served at once while one background refresh runs.
    pub while_revalidate: Duration,
    /// Served in place of a failed fresh fetch.
    pub if_error: Duration,
}

impl StaleWindows {
    fn horizon(&self) -> Duration {
        self.while_revalidate.max(self.if_error)
    }
}

/// How usable a stored entry is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Within its TTL.
    Fresh,
    /// Expired, within `stale_while_revalidate`: serve it and refresh in the background.
    Revalidate,
    /// Expired, within `stale_if_error` only: serve it only if a fresh fetch fails.
    IfError,
}

/// A stored entry and how usable it is.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub fetched: Arc<Fetched>,
    pub freshness: Freshness,
}

#[derive(Clone)]
struct Stored {
    fetched: Arc<Fetched>,
    at: Instant,
}

/// The per-source cache. Entries are kept past their TTL for the stale windows and the
/// caller decides from [`Freshness`] what to do; fetches go through a separate single-flight
/// table, so concurrent identical misses (or refreshes) share one upstream query. A TTL of
/// zero stores nothing unless a stale window asks for it.
pub struct SourceCache {
    stored: Cache<QueryParams, Stored>,
    loads: Cache<QueryParams, Arc<Fetched>>,
    refreshing: Arc<Mutex<HashSet<QueryParams>>>,
    ttl: Duration,
    stale: StaleWindows,
}

/// Entries per source: a dashboard asks for few distinct windows and filter sets.
const SOURCE_CAPACITY: u64 = 1_000;

impl SourceCache {
    pub fn new(ttl: Duration, stale: StaleWindows) -> SourceCache {
        // moka needs a positive TTL; the caller's windows are checked against `Stored::at`.
        let keep = (ttl + stale.horizon()).max(Duration::from_millis(1));
        SourceCache {
            stored: Cache::builder()
                .max_capacity(SOURCE_CAPACITY)
                .time_to_live(keep)
                .build(),
            loads: Cache::builder().max_capacity(SOURCE_CAPACITY).build(),
            refreshing: Arc::default(),
            ttl,
            stale,
        }
    }

    /// How long past its TTL an entry may be served.
    pub fn stale_windows(&self) -> StaleWindows {
        self.stale
    }

    /// The stored entry for `params` if it may still be served in some way.
    pub async fn lookup(&self, params: &QueryParams) -> Option<Lookup> {
        let stored = self.stored.get(params).await?;
        let age = stored.at.elapsed();
        let freshness = if age < self.ttl {
            Freshness::Fresh
        } else if age < self.ttl + self.stale.while_revalidate {
            Freshness::Revalidate
        } else if age < self.ttl + self.stale.if_error {
            Freshness::IfError
        } else {
            return None;
        };
        Some(Lookup {
            fetched: stored.fetched,
            freshness,
        })
    }

    /// Runs `fetch` once for all concurrent callers with the same `params` and stores a
    /// success. The flag is true when this call did not run the fetch itself.
    pub async fn load<F>(
        &self,
        params: &QueryParams,
        fetch: F,
    ) -> (Result<Arc<Fetched>, SourceError>, bool)
    where
        F: Future<Output = Result<Fetched, SourceError>>,
    {
        let ran_here = AtomicBool::new(false);
        let store = !(self.ttl + self.stale.horizon()).is_zero();
        let result = self
            .loads
            .try_get_with_by_ref(params, async {
                ran_here.store(true, Ordering::Relaxed);
                let fetched = Arc::new(fetch.await?);
                if store {
                    let at = Instant::now();
                    let stored = Stored {
                        fetched: fetched.clone(),
                        at,
                    };
                    self.stored.insert(params.clone(), stored).await;
                }
                Ok(fetched)
            })
            .await
            .map_err(|err: Arc<SourceError>| (*err).clone());
        let ran_here = ran_here.load(Ordering::Relaxed);
        if ran_here {
            // The table only joins callers of one fetch; later ones read `stored`.
            self.loads.invalidate(params).await;
        }
        (result, !ran_here)
    }

    /// The fresh entry for `params`, or the result of `fetch` (see [`Self::load`]); stale
    /// entries are not served here.
    pub async fn get_or_fetch<F>(
        &self,
        params: &QueryParams,
        fetch: F,
    ) -> (Result<Arc<Fetched>, SourceError>, bool)
    where
        F: Future<Output = Result<Fetched, SourceError>>,
    {
        match self.lookup(params).await {
            Some(hit) if hit.freshness == Freshness::Fresh => (Ok(hit.fetched), true),
            _ => self.load(params, fetch).await,
        }
    }

    /// The right to run the one background refresh of `params`; `None` while another
    /// runs. Dropping the claim ends it.
    pub fn claim_refresh(&self, params: &QueryParams) -> Option<RefreshClaim> {
        let mut refreshing = lock(&self.refreshing);
        refreshing.insert(params.clone()).then(|| RefreshClaim {
            refreshing: self.refreshing.clone(),
            params: params.clone(),
        })
    }

    /// Empties the cache, stale entries included.
    pub fn clear(&self) {
        self.stored.invalidate_all();
    }

    /// What the cache holds now: live entries (stale ones counted apart) and the fetch
    /// times of the oldest and newest.
    pub fn stats(&self) -> CacheStats {
        let mut stats = CacheStats::default();
        // moka's iterator skips entries past every window.
        for (_, stored) in self.stored.iter() {
            stats.entries += 1;
            if stored.at.elapsed() >= self.ttl {
                stats.stale_entries += 1;
            }
            let at = stored.fetched.fetched_at;
            stats.oldest_fetched_at = Some(stats.oldest_fetched_at.map_or(at, |t| t.min(at)));
            stats.newest_fetched_at = Some(stats.newest_fetched_at.map_or(at, |t| t.max(at)));
        }
        stats
    }
}

/// A running background refresh of one key; see [`SourceCache::claim_refresh`].
pub struct RefreshClaim {
    refreshing: Arc<Mutex<HashSet<QueryParams>>>,
    params: QueryParams,
}

impl Drop for RefreshClaim {
    fn drop(&mut self) {
        lock(&self.refreshing).remove(&self.params);
    }
}

// A std Mutex: it guards a set for an insert or a remove, never across an await.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A snapshot of one source's cache, for the admin page.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheStats {
    pub entries: u64,
    /// Entries past their TTL, kept for a stale window.
    pub stale_entries: u64,
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
    /// How long it may be served: the shortest TTL of its sources.
    pub ttl: Duration,
}

/// Each answer expires after its own `ttl` (or the hub-wide one, whichever is shorter).
struct AnswerExpiry;

impl Expiry<AnswerKey, CachedAnswer> for AnswerExpiry {
    fn expire_after_create(
        &self,
        _key: &AnswerKey,
        answer: &CachedAnswer,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(answer.ttl)
    }
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
                .expire_after(AnswerExpiry)
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
        let cache = SourceCache::new(Duration::from_secs(60), StaleWindows::default());
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
        let cache = SourceCache::new(Duration::from_secs(60), StaleWindows::default());
        let (result, _) = cache
            .get_or_fetch(&params(), async {
                Err(SourceError::Timeout(Duration::from_secs(1)))
            })
            .await;
        assert!(result.is_err());
        let (result, cached) = cache.get_or_fetch(&params(), async { Ok(fetched()) }).await;
        assert!(result.is_ok() && !cached);

        let uncached = SourceCache::new(Duration::ZERO, StaleWindows::default());
        for _ in 0..2 {
            let (_, cached) = uncached
                .get_or_fetch(&params(), async { Ok(fetched()) })
                .await;
            assert!(!cached);
        }
    }

    fn windows(while_revalidate: u64, if_error: u64) -> StaleWindows {
        StaleWindows {
            while_revalidate: Duration::from_secs(while_revalidate),
            if_error: Duration::from_secs(if_error),
        }
    }

    async fn store(cache: &SourceCache) {
        let (result, _) = cache.load(&params(), async { Ok(fetched()) }).await;
        result.unwrap();
    }

    async fn freshness(cache: &SourceCache) -> Option<Freshness> {
        cache.lookup(&params()).await.map(|hit| hit.freshness)
    }

    #[tokio::test(start_paused = true)]
    async fn an_entry_ages_through_its_windows() {
        let cache = SourceCache::new(Duration::from_secs(10), windows(20, 60));
        store(&cache).await;
        assert_eq!(freshness(&cache).await, Some(Freshness::Fresh));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(freshness(&cache).await, Some(Freshness::Revalidate));
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(freshness(&cache).await, Some(Freshness::IfError));
        tokio::time::advance(Duration::from_secs(40)).await;
        assert_eq!(freshness(&cache).await, None);
        // Without windows an expired entry is gone at once.
        let plain = SourceCache::new(Duration::from_secs(10), StaleWindows::default());
        store(&plain).await;
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(freshness(&plain).await, None);
        let (_, cached) = plain.get_or_fetch(&params(), async { Ok(fetched()) }).await;
        assert!(!cached, "an expired entry is fetched again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_ttl_with_a_stale_window_keeps_entries_only_for_errors() {
        let cache = SourceCache::new(Duration::ZERO, windows(0, 60));
        store(&cache).await;
        assert_eq!(freshness(&cache).await, Some(Freshness::IfError));
        assert_eq!(cache.stats().stale_entries, 1);
        cache.clear();
        assert_eq!(
            freshness(&cache).await,
            None,
            "clear empties stale entries too"
        );
    }

    #[test]
    fn one_refresh_per_key_at_a_time() {
        let cache = SourceCache::new(Duration::from_secs(1), windows(60, 0));
        let claim = cache.claim_refresh(&params()).expect("the first claims it");
        assert!(cache.claim_refresh(&params()).is_none());
        let other = QueryParams::last_days(30, params().end_date);
        assert!(
            cache.claim_refresh(&other).is_some(),
            "other keys are independent"
        );
        drop(claim);
        assert!(cache.claim_refresh(&params()).is_some());
    }

    #[tokio::test]
    async fn stats_count_live_entries_with_their_fetch_times() {
        let cache = SourceCache::new(Duration::from_secs(60), StaleWindows::default());
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
