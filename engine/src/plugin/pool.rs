//! The instances of one plugin source and the calls into them.
//!
//! Each instance lives in its own `Store`, is initialized once with the source's `config:`
//! and then reused call after call; no guest state is ever shared between sources. A call
//! that traps (panic, memory limit, deadline) discards its instance, and the next call
//! starts and initializes a fresh one.
//!
//! Concurrency: a small pool (`sandbox.instances`, default 2) rather than one instance
//! behind a lock. A plugin spends most of a call waiting on its remote service, so with a
//! single instance one slow request (say, 90 days of Salesforce paging) would hold up
//! every other window the dashboard asks for; the per-source cache already merges
//! identical requests, so the pool only serves different ones. It stays small because each
//! instance may use up to the memory limit and multiplies load on the remote API. A call
//! waits for a free instance (within the source's timeout) and creates one lazily if none
//! is idle.
//!
//! A call runs in the caller's task, as a wasmtime fiber (`call_async`): no hop to another
//! thread, so a warm call costs what the guest costs. It never holds a runtime worker for
//! long: the host's I/O (`http.send`, `wasi:http`, sleeps) is awaited, suspending the
//! fiber, and a guest that computes yields to the runtime at every epoch tick until its
//! deadline, where the next tick interrupts it. A caller that stops waiting (its request
//! deadline passed) drops the call, which ends the guest there; the instance, whose state
//! is then unknown, is dropped with it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use wasmtime::{Store, Trap, UpdateDeadline};

use super::bindings::types::{self, ConfigEntry};
use super::compat::Bindings;
use super::host::HostState;
use super::http::{HttpGate, Refused};
use super::sandbox::Sandbox;
use super::{Plugin, PluginError, Runtime};
use crate::secret::redact;

/// One initialized instance.
struct Instance {
    store: Store<HostState>,
    bindings: Bindings,
}

/// The instances of one source.
pub struct Pool {
    source: Arc<str>,
    runtime: Arc<Runtime>,
    plugin: Arc<Plugin>,
    config: Arc<Vec<ConfigEntry>>,
    secrets: Arc<Vec<String>>,
    http: Arc<HttpGate>,
    memory_bytes: usize,
    /// The largest linear memory any instance reached.
    high_water: Arc<AtomicUsize>,
    deadline: Duration,
    handle: tokio::runtime::Handle,
    // A std Mutex: held only to push or pop, never across a call or an await.
    idle: Mutex<Vec<Instance>>,
    permits: Arc<Semaphore>,
}

/// What to call in an instance.
enum Export {
    Fetch(types::QueryParams),
    Health,
}

impl Pool {
    /// A pool for `plugin` with the source's settings; no instance is created yet. Must be
    /// called within a tokio runtime (HTTP from guests runs on it).
    pub fn new(
        source: &str,
        runtime: Arc<Runtime>,
        plugin: Arc<Plugin>,
        config: Vec<(String, String)>,
        secrets: Arc<Vec<String>>,
        sandbox: &Sandbox,
        deadline: Duration,
    ) -> Result<Arc<Pool>, PluginError> {
        let http = HttpGate::new(source, sandbox)
            .map_err(|err| PluginError::Setup(format!("cannot set up plugin HTTP: {err}")))?;
        Ok(Arc::new(Pool {
            source: source.into(),
            runtime,
            plugin,
            config: Arc::new(
                config
                    .into_iter()
                    .map(|(key, value)| ConfigEntry { key, value })
                    .collect(),
            ),
            secrets,
            http: Arc::new(http),
            memory_bytes: sandbox.memory_bytes,
            high_water: Arc::default(),
            deadline,
            handle: tokio::runtime::Handle::current(),
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(sandbox.instances.max(1))),
        }))
    }

    /// The largest linear memory one instance has reached, in bytes.
    pub fn memory_high_water(&self) -> usize {
        self.high_water.load(Ordering::Relaxed)
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Instance>> {
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes sure one instance is up (instantiated and initialized), so that start-up
    /// reports a broken plugin or configuration at once.
    pub async fn warm_up(self: &Arc<Self>) -> Result<(), PluginError> {
        self.run(None).await.map(drop)
    }

    /// Calls `fetch-metrics`.
    pub async fn fetch(
        self: &Arc<Self>,
        params: types::QueryParams,
    ) -> Result<types::Metrics, PluginError> {
        match self.run(Some(Export::Fetch(params))).await? {
            Some(metrics) => Ok(metrics),
            None => unreachable!("a fetch call returns metrics"),
        }
    }

    /// Calls `health-check`.
    pub async fn health(self: &Arc<Self>) -> Result<(), PluginError> {
        self.run(Some(Export::Health)).await.map(drop)
    }

    /// Calls `cleanup` on every idle instance and drops them all.
    pub async fn cleanup(self: &Arc<Self>) {
        let instances: Vec<Instance> = std::mem::take(&mut *self.idle());
        for mut instance in instances {
            self.arm(&mut instance.store, Duration::from_secs(1));
            if let Err(err) = instance.bindings.call_cleanup(&mut instance.store).await {
                tracing::warn!(source = %self.source, "plugin cleanup trapped: {err:#}");
            }
        }
    }

    /// Takes an instance (waiting for a permit), runs `export` in it, and puts the
    /// instance back unless it trapped (or the caller stopped waiting).
    async fn run(&self, export: Option<Export>) -> Result<Option<types::Metrics>, PluginError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PluginError::Setup("the plugin pool is closed".into()))?;
        let popped = self.idle().pop();
        let mut instance = match popped {
            Some(instance) => instance,
            None => self.start().await?,
        };
        let outcome = match export {
            None => Ok(None),
            Some(Export::Fetch(params)) => self.fetch_in(&mut instance, params).await.map(Some),
            Some(Export::Health) => {
                self.arm(&mut instance.store, self.deadline);
                let outcome = instance
                    .bindings
                    .call_health_check(&mut instance.store)
                    .await;
                self.classify(&instance.store, outcome).map(|()| None)
            }
        };
        match outcome {
            Err(Failure::Trapped(err)) => Err(err),
            Err(Failure::Refused(err)) => {
                self.idle().push(instance);
                Err(err)
            }
            Ok(value) => {
                self.idle().push(instance);
                Ok(value)
            }
        }
    }

    /// `fetch-metrics`, told how long it has.
    async fn fetch_in(
        &self,
        instance: &mut Instance,
        mut params: types::QueryParams,
    ) -> Result<types::Metrics, Failure> {
        self.arm(&mut instance.store, self.deadline);
        params.deadline_ms = instance.store.data().time_left().as_millis() as u64;
        let outcome = instance
            .bindings
            .call_fetch_metrics(&mut instance.store, &params)
            .await;
        self.classify(&instance.store, outcome)
    }

    /// Starts a call that must end within `limit`: the wall-clock deadline the host's
    /// functions and the epoch callback read, and the next epoch check.
    fn arm(&self, store: &mut Store<HostState>, limit: Duration) {
        store.data_mut().begin(Instant::now() + limit);
        store.set_epoch_deadline(1);
    }

    /// Instantiates and initializes a fresh instance.
    async fn start(&self) -> Result<Instance, PluginError> {
        let state = HostState::new(
            self.source.clone(),
            self.secrets.clone(),
            self.http.clone(),
            self.handle.clone(),
            self.memory_bytes,
            self.high_water.clone(),
        );
        let mut store = Store::new(self.runtime.engine(), state);
        store.limiter(|state| &mut state.limits);
        // At every tick: past the call's deadline, interrupt (a timeout); before it, let
        // the runtime run other tasks, then go on for one more tick.
        store.epoch_deadline_callback(|store| {
            Ok(if store.data().time_left().is_zero() {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        self.arm(&mut store, self.deadline);
        let bindings = match self.plugin.pre.instantiate(&mut store).await {
            Ok(bindings) => bindings,
            Err(err) => return Err(self.trapped(&store, err)),
        };
        let mut instance = Instance { store, bindings };
        self.arm(&mut instance.store, self.deadline);
        let outcome = instance
            .bindings
            .call_initialize(&mut instance.store, &self.config)
            .await;
        match self.classify(&instance.store, outcome) {
            Ok(()) => {
                tracing::debug!(source = %self.source, "plugin instance initialized");
                Ok(instance)
            }
            // A refused configuration is not retried on this instance: the next call
            // starts over, so a fixed environment (e.g. a rotated secret) is picked up.
            Err(Failure::Trapped(err) | Failure::Refused(err)) => Err(err),
        }
    }

    /// What one export's call came to.
    fn classify<T>(
        &self,
        store: &Store<HostState>,
        mut outcome: wasmtime::Result<Result<T, types::SourceError>>,
    ) -> Result<T, Failure> {
        if store.data().sleep_was_cut() {
            // It slept past its deadline: a timeout, as if the epoch had interrupted it.
            outcome = Err(Trap::Interrupt.into());
        }
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(reported)) => Err(Failure::Refused(self.reported(store, reported))),
            Err(err) => Err(Failure::Trapped(self.trapped(store, err))),
        }
    }

    /// An error the plugin returned. When the host refused one of its requests during the
    /// call, that refusal is the clearer cause and is reported instead.
    fn reported(&self, store: &Store<HostState>, reported: types::SourceError) -> PluginError {
        match store.data().tally().refusal() {
            Some(Refused::Denied(why)) => return PluginError::Denied(why),
            Some(Refused::TooLarge(limit)) => return PluginError::TooLarge(limit),
            Some(Refused::TooMany) => return PluginError::TooManyRequests(self.http_limit()),
            None => {}
        }
        let clean = |text: String| redact(&text, &self.secrets);
        match reported {
            types::SourceError::Auth(message) => PluginError::Auth(clean(message)),
            types::SourceError::RateLimited(seconds) => PluginError::RateLimited {
                retry_after: seconds.map(|s| Duration::from_secs(u64::from(s))),
            },
            types::SourceError::Upstream(message) => PluginError::Upstream(clean(message)),
            types::SourceError::InvalidConfig(message) => {
                PluginError::InvalidConfig(clean(message))
            }
            types::SourceError::Internal(message) => PluginError::Internal(clean(message)),
        }
    }

    fn http_limit(&self) -> u32 {
        self.http.max_requests()
    }

    /// A trap: out of memory, past the deadline, or a crash. Logs what the guest printed.
    fn trapped(&self, store: &Store<HostState>, err: wasmtime::Error) -> PluginError {
        let state = store.data();
        let output = state.output();
        let error = if state.limits.memory_exhausted {
            PluginError::OutOfMemory(self.memory_bytes)
        } else if err.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            PluginError::Deadline(self.deadline)
        } else {
            PluginError::Trap(redact(&format!("{err:#}"), &self.secrets))
        };
        tracing::warn!(
            source = %self.source,
            guest_output = %output,
            "plugin instance discarded: {error}"
        );
        error
    }
}

/// How a call failed: `Trapped` discards the instance, `Refused` (an error the plugin
/// returned) keeps it.
enum Failure {
    Trapped(PluginError),
    Refused(PluginError),
}
