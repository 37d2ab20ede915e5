//! The backfill: fills a source's store with its settled days, newest first, one fetch at a
//! time at the source's `backfill_every` pace, and deletes days past its retention. It runs
//! in the background for every source with `history:` (waking again when a day settles or
//! a request finds days missing), and in the foreground for `metrics-hub history backfill`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, Utc};

use super::compose;
use super::progress::{Progress, State};
use super::source::Core;
use crate::kinds::SourceError;

/// The longest pause after failures, and between checks for a newly settled day.
const MAX_PAUSE: Duration = Duration::from_secs(3_600);
const MAX_FAILURE_PAUSE: Duration = Duration::from_secs(300);

impl Core {
    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A copy of the progress now.
    pub fn progress_now(&self) -> Progress {
        self.progress().clone()
    }

    fn update(&self, change: impl FnOnce(&mut Progress)) -> Progress {
        let mut progress = self.progress();
        change(&mut progress);
        progress.updated_at = Some(Utc::now());
        progress.clone()
    }
}

/// The background loop: passes until the source is dropped (the task is aborted then).
pub async fn run(core: Arc<Core>) {
    let mut failures = 0u32;
    loop {
        let every = core.spec.backfill_every;
        let pause = match pass(&core, core.spec.backfill_days, every, &mut |_| {}).await {
            Ok(()) => {
                failures = 0;
                until_next_settles(Utc::now(), core.spec.settle).min(MAX_PAUSE)
            }
            Err(err) => {
                failures = failures.saturating_add(1);
                tracing::warn!(source = %core.id, "backfill paused after a failed fetch: {err}");
                failure_pause(&err, every, failures)
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = core.wake.notified() => {}
        }
    }
}

/// One pass over the newest `days` settled days: deletes days past retention, then
/// fetches and stores each missing one, newest first, at most one per `every`.
/// `on_day` sees the progress after each day.
pub async fn pass(
    core: &Core,
    days: u32,
    every: Duration,
    on_day: &mut (dyn FnMut(&Progress) + Send),
) -> Result<(), SourceError> {
    let newest = compose::newest_settled(Utc::now(), core.spec.settle);
    let oldest = newest - Days::new(u64::from(days.max(1) - 1));
    let expired = newest - Days::new(u64::from(core.spec.retention_days));
    if let Err(err) = core.store.prune(&core.id, expired).await {
        tracing::warn!(source = %core.id, "old history days not deleted: {err}");
    }
    let stored = core
        .store
        .stored_days(&core.id, &core.definition, oldest, newest)
        .await
        .map_err(|err| SourceError::Connect(err.to_string()))?;
    let skip = core.progress().unstorable.clone();
    let missing: Vec<NaiveDate> = compose::DayRun {
        first: oldest,
        last: newest,
    }
    .iter()
    .rev()
    .filter(|day| !stored.contains(day) && !skip.contains(day))
    .collect();
    let mut count = u32::try_from(stored.len()).unwrap_or(u32::MAX);
    on_day(&core.update(|p| {
        p.target_days = days;
        p.stored_days = count;
        p.state = if missing.is_empty() {
            State::Done
        } else {
            State::Running
        };
    }));
    for (index, day) in missing.iter().enumerate() {
        if index > 0 {
            tokio::time::sleep(every).await;
        }
        let data = core.fetch_day(*day).await.inspect_err(|err| {
            core.update(|p| {
                p.state = State::Failing;
                p.last_error = Some(err.public_message());
            });
        })?;
        let kept = core.keep(*day, &data).await;
        count += u32::from(kept);
        on_day(&core.update(|p| {
            p.stored_days = count;
            if !kept && p.unstorable.insert(*day) {
                p.unstorable_days += 1;
            }
        }));
    }
    let size = core.store.size(&core.id).await.ok();
    on_day(&core.update(|p| {
        p.state = State::Done;
        p.last_error = None;
        p.size = size;
    }));
    Ok(())
}

/// How long until the next day settles.
fn until_next_settles(now: DateTime<Utc>, settle: Duration) -> Duration {
    let newest = compose::newest_settled(now, settle);
    let next_end = (newest + Days::new(2))
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    let at = next_end + chrono::Duration::from_std(settle).unwrap_or_default();
    (at - now).to_std().unwrap_or(Duration::from_secs(1)) + Duration::from_secs(1)
}

/// The pause after `failures` failures in a row: what a rate limit asked for, else
/// doubling from `every`, at most five minutes.
fn failure_pause(err: &SourceError, every: Duration, failures: u32) -> Duration {
    if let SourceError::RateLimited {
        retry_after: Some(wait),
    }
    | SourceError::HeldOff(wait) = err
    {
        return (*wait).min(MAX_FAILURE_PAUSE);
    }
    let base = every.max(Duration::from_secs(1));
    base.saturating_mul(1 << failures.min(16))
        .min(MAX_FAILURE_PAUSE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_day_settles_when_its_settle_time_has_passed() {
        let now: DateTime<Utc> = "2026-03-05T10:00:00Z".parse().unwrap();
        // With 2d, 2026-03-02 is the newest settled; 2026-03-03 settles at 03-06 00:00.
        let wait = until_next_settles(now, Duration::from_secs(2 * 86_400));
        assert_eq!(wait, Duration::from_secs(14 * 3_600 + 1));
        assert_eq!(
            until_next_settles(now, Duration::ZERO),
            Duration::from_secs(14 * 3_600 + 1)
        );
    }

    #[test]
    fn failures_back_off_and_rate_limits_are_honoured() {
        let upstream = SourceError::Upstream {
            status: 500,
            message: String::new(),
        };
        let every = Duration::from_secs(1);
        assert_eq!(failure_pause(&upstream, every, 1), Duration::from_secs(2));
        assert_eq!(failure_pause(&upstream, every, 3), Duration::from_secs(8));
        assert_eq!(failure_pause(&upstream, every, 30), MAX_FAILURE_PAUSE);
        let limited = SourceError::RateLimited {
            retry_after: Some(Duration::from_secs(42)),
        };
        assert_eq!(failure_pause(&limited, every, 5), Duration::from_secs(42));
    }
}
