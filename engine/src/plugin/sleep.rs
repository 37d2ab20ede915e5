//! Sleeps that end at the call's deadline.
//!
//! A guest sleeps through WASI's monotonic clock (`std::thread::sleep`, Python's
//! `time.sleep` and JavaScript's timers all subscribe to it and poll). The host awaits
//! that poll outside WebAssembly, where the epoch deadline cannot interrupt it, so a
//! plugin sleeping for a minute would hold its instance for a minute after its call had
//! timed out (until the whole request gave up on it). So the host shadows wasmtime-wasi's
//! `subscribe-duration` and `subscribe-instant` with ones whose pollable is ready at the
//! earlier of the requested time and just past the call's deadline. The call then ends
//! as a timeout whatever the guest does next: once such a pollable fires at the deadline,
//! the pool treats the call like one the epoch interrupted (a guest may return before it
//! reaches an epoch check). `now` is shadowed too, so that an instant the guest computes
//! and the host's reading of it come from one clock (the same as the `clock`
//! interface's).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Linker, Resource};
use wasmtime::StoreContextMut;
use wasmtime_wasi::p2::{subscribe, DynPollable, Pollable};

use super::host::HostState;
use super::EPOCH_TICK;

/// The `wasi:clocks` version wasmtime-wasi 48 defines (guests built against an earlier
/// 0.2 release resolve to it).
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// A pollable that is ready at `at`; `cut` is the call's flag to raise when it fires
/// there instead of at the time the guest asked for.
struct Wake {
    at: tokio::time::Instant,
    cut: Option<Arc<AtomicBool>>,
}

// The trait is declared with `#[async_trait]`; this is the signature it expands to.
impl Pollable for Wake {
    fn ready<'life0, 'async_trait>(
        &'life0 mut self,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            tokio::time::sleep_until(self.at).await;
            if let Some(cut) = &self.cut {
                cut.store(true, Ordering::Relaxed);
            }
        })
    }
}

/// Replaces the clock's `now` and subscriptions in `linker`, which already holds
/// wasmtime-wasi's.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap("now", |store: StoreContextMut<'_, HostState>, (): ()| {
        Ok((store.data().monotonic_nanos(),))
    })?;
    clock.func_wrap(
        "subscribe-duration",
        |store: StoreContextMut<'_, HostState>, (nanos,): (u64,)| {
            wake_after(store, Duration::from_nanos(nanos)).map(|r| (r,))
        },
    )?;
    clock.func_wrap(
        "subscribe-instant",
        |store: StoreContextMut<'_, HostState>, (when,): (u64,)| {
            let now = store.data().monotonic_nanos();
            wake_after(store, Duration::from_nanos(when.saturating_sub(now))).map(|r| (r,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

fn wake_after(
    mut store: StoreContextMut<'_, HostState>,
    wanted: Duration,
) -> wasmtime::Result<Resource<DynPollable>> {
    let state = store.data_mut();
    // Two ticks past the deadline: by then the epoch has surely passed it too.
    let cap = state.time_left() + 2 * EPOCH_TICK;
    let cut = (wanted > cap).then(|| state.sleep_cut());
    let at = tokio::time::Instant::now() + wanted.min(cap);
    let table = state.table();
    let wake = table.push(Wake { at, cut })?;
    subscribe(table, wake)
}
