//! The WebAssembly plugin host (wasmtime, component model).
//!
//! - [`bindings`] is the `bindgen!` over `wit/`: the contract's types and traits, and
//!   those of the 0.1.0 contract, which [`compat`] adapts so older components still run.
//! - [`Runtime`] owns the single wasmtime `Engine` (epoch interruption, driven by a
//!   background ticker thread), the `Linker` with the capabilities granted to guests, and
//!   the [`cache`] of precompiled components; [`Runtime::load`] turns a `.wasm` file into a
//!   [`Plugin`]: compiled once (or deserialized from the cache), checked against the world
//!   and pre-instantiated.
//! - [`pool`] keeps each source's initialized instances and runs calls under the
//!   [`sandbox`] limits, turning traps, timeouts and refusals into per-source errors.
//! - [`host`] and [`http`] are the host functions guests import: HTTP to allowed hosts,
//!   logging and clocks, plus an empty WASI context; [`outgoing`] routes `wasi:http`
//!   requests through the same HTTP gate, and [`sleep`] ends a guest's sleep at its
//!   call's deadline.

pub mod allowlist;
pub mod bindings;
pub mod cache;
mod compat;
mod error;
mod host;
pub mod http;
mod outgoing;
pub mod pool;
pub mod sandbox;
mod sleep;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::types::{ComponentExtern, ComponentItem};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine};

pub use error::PluginError;

use bindings::{v0_1, DataSource};
use cache::{ArtefactCache, Origin};
use compat::Pre;
use host::HostState;

/// How often the epoch advances; call deadlines are counted in these ticks, so a runaway
/// guest is stopped at most one tick after its deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Largest component file the host reads.
const MAX_COMPONENT_BYTES: u64 = 64 * 1024 * 1024;

/// The engine configuration every plugin is compiled for. Precompiled artefacts are only
/// valid for the same configuration, which is part of their cache key.
pub(crate) fn engine() -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // Deadlines: cheap checks at loop headers and function entries, driven by a ticker.
    config.epoch_interruption(true);
    Engine::new(&config)
}

/// Where precompiled plugins are kept unless told otherwise:
/// `$METRICS_HUB_PLUGIN_CACHE` (empty turns the cache off), else
/// `${METRICS_HUB_DATA_DIR:-./data}/plugin-cache`.
pub fn default_cache_dir() -> Option<PathBuf> {
    match std::env::var_os("METRICS_HUB_PLUGIN_CACHE") {
        Some(dir) if dir.is_empty() => None,
        Some(dir) => Some(PathBuf::from(dir)),
        None => Some(
            std::env::var_os("METRICS_HUB_DATA_DIR")
                .map_or_else(|| PathBuf::from("./data"), PathBuf::from)
                .join("plugin-cache"),
        ),
    }
}

/// The wasmtime engine, linker and component cache shared by every plugin source.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cache: ArtefactCache,
    // A std Mutex: held only to look up or insert, never across a compile or an await.
    loaded: Mutex<HashMap<[u8; 32], Arc<Plugin>>>,
    // Held for a whole compile (on a blocking thread, never in async code).
    compiling: Mutex<()>,
}

impl Runtime {
    /// A runtime with its own engine and epoch ticker, caching artefacts in `cache_dir`.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Arc<Runtime>, PluginError> {
        let failed = |err: wasmtime::Error| PluginError::Load {
            path: PathBuf::new(),
            message: format!("cannot set up the WebAssembly engine: {err:#}"),
        };
        let engine = engine().map_err(failed)?;
        let mut linker = Linker::new(&engine);
        // WASI p2 because Rust's std (and other languages' runtimes) import it; the
        // context behind it is empty (see host.rs), so it grants nothing.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(failed)?;
        // wasi:http's outgoing handler, for guests whose HTTP client speaks it; every
        // request goes through the same gate as `http.send` (see outgoing.rs).
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(failed)?;
        // A sleep ends at the call's deadline (see sleep.rs).
        sleep::add_to_linker(&mut linker).map_err(failed)?;
        // Both contract versions' imports; a component's exports pick one (compat.rs).
        DataSource::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state).map_err(failed)?;
        v0_1::DataSource::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(failed)?;
        let weak = engine.weak();
        // A plain thread rather than a tokio task: it must tick even while every runtime
        // worker is busy, and it ends by itself once the engine is dropped.
        std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || loop {
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            })
            .map_err(|err| PluginError::Load {
                path: PathBuf::new(),
                message: format!("cannot start the epoch ticker: {err}"),
            })?;
        Ok(Arc::new(Runtime {
            engine,
            linker,
            cache: ArtefactCache::new(cache_dir),
            loaded: Mutex::new(HashMap::new()),
            compiling: Mutex::new(()),
        }))
    }

    /// The process-wide runtime, created on first use with [`default_cache_dir`].
    pub fn shared() -> Result<Arc<Runtime>, PluginError> {
        Runtime::init_shared(default_cache_dir())
    }

    /// The process-wide runtime, created with `cache_dir` unless it already exists (a
    /// process that wants another cache directory calls this before any source loads).
    pub fn init_shared(cache_dir: Option<PathBuf>) -> Result<Arc<Runtime>, PluginError> {
        static SHARED: OnceLock<Result<Arc<Runtime>, PluginError>> = OnceLock::new();
        SHARED.get_or_init(|| Runtime::new(cache_dir)).clone()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Where precompiled artefacts go, when caching is on.
    pub fn cache_dir(&self) -> Option<&Path> {
        self.cache.dir()
    }

    /// Reads, compiles (or takes from the cache) and pre-instantiates a component. The
    /// same bytes loaded twice (two sources on one plugin) share one [`Plugin`].
    pub fn load(&self, path: &Path) -> Result<Arc<Plugin>, PluginError> {
        let fail = |message: String| PluginError::Load {
            path: path.to_owned(),
            message,
        };
        let size = std::fs::metadata(path)
            .map_err(|err| fail(format!("cannot read it: {err}")))?
            .len();
        if size > MAX_COMPONENT_BYTES {
            return Err(fail(format!(
                "it is {size} bytes, over the {MAX_COMPONENT_BYTES}-byte limit"
            )));
        }
        let bytes = std::fs::read(path).map_err(|err| fail(format!("cannot read it: {err}")))?;
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        if let Some(plugin) = self.loaded().get(&digest) {
            return Ok(plugin.clone());
        }
        // One compile at a time: sources sharing a component (or a retry after a timed-out
        // start) wait for the first compile instead of repeating it; Cranelift already
        // uses every core for one component.
        let _compiling = self
            .compiling
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(plugin) = self.loaded().get(&digest) {
            return Ok(plugin.clone());
        }
        let (component, origin) = self
            .cache
            .load(&self.engine, &bytes, &digest)
            .map_err(|err| fail(format!("not a valid WebAssembly component: {err:#}")))?;
        let pre = self.linker.instantiate_pre(&component).map_err(|err| {
            fail(format!(
                "it imports something the host does not grant: {err:#}"
            ))
        })?;
        let pre = Pre::new(pre).map_err(|err| {
            fail(format!(
                "it does not implement the metrics-hub:source/data-source world: {err:#}"
            ))
        })?;
        tracing::debug!(plugin = %path.display(), ?origin, contract = pre.version(), "plugin loaded");
        let plugin = Arc::new(Plugin {
            path: path.to_owned(),
            digest,
            size,
            origin,
            component,
            pre,
        });
        Ok(self.loaded().entry(digest).or_insert(plugin).clone())
    }

    fn loaded(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Arc<Plugin>>> {
        self.loaded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A loaded component: compiled, checked against the world, ready to instantiate.
pub struct Plugin {
    pub path: PathBuf,
    /// SHA-256 of the component file.
    pub digest: [u8; 32],
    pub size: u64,
    /// Whether it came from the precompiled cache.
    pub origin: Origin,
    component: Component,
    pre: Pre,
}

impl Plugin {
    /// The version of the WIT contract the component was built against.
    pub fn contract(&self) -> &'static str {
        self.pre.version()
    }

    /// What the component imports and exports, as `name: type` lines (for `plugin check`).
    pub fn describe(&self, engine: &Engine) -> Description {
        let ty = self.component.component_type();
        let item = |(name, item): (&str, ComponentExtern<'_>)| {
            format!("{name}: {}", kind(&item.ty, engine))
        };
        Description {
            imports: ty.imports(engine).map(item).collect(),
            exports: ty.exports(engine).map(item).collect(),
        }
    }
}

fn kind(item: &ComponentItem, engine: &Engine) -> String {
    match item {
        ComponentItem::ComponentFunc(func) => {
            let params: Vec<String> = func.params().map(|(name, _)| name.to_owned()).collect();
            format!("func({})", params.join(", "))
        }
        ComponentItem::CoreFunc(_) => "core func".into(),
        ComponentItem::Module(_) => "module".into(),
        ComponentItem::Component(_) => "component".into(),
        ComponentItem::ComponentInstance(instance) => {
            let names: Vec<&str> = instance.exports(engine).map(|(name, _)| name).collect();
            format!("instance {{ {} }}", names.join(", "))
        }
        ComponentItem::Type(_) => "type".into(),
        ComponentItem::Resource(_) => "resource".into(),
    }
}

/// The imports and exports of a component.
#[derive(Debug, Clone)]
pub struct Description {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}
