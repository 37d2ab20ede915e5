//! The host side of the WIT contract: one `bindgen!` over the top-level `wit/` (the
//! current version) and one over `wit/compat/v0.1.0` (components built before summary
//! fields became optional). Every type exchanged with plugins comes from here; nothing
//! else writes ABI types by hand. `super::compat` adapts the old version to the new.

// Calls run on the hub's runtime as wasmtime fibers (see pool.rs): the exports are
// async, and so is `http.send`, which waits on the network without blocking a worker.
wasmtime::component::bindgen!({
    world: "data-source",
    path: "../wit",
    imports: { "metrics-hub:source/http.send": async },
    exports: { default: async },
});

pub use self::metrics_hub::source::clock;
pub use self::metrics_hub::source::http;
pub use self::metrics_hub::source::log;
pub use self::metrics_hub::source::types;

/// The 0.1.0 contract, as components built against it see it.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        world: "data-source",
        path: "../wit/compat/v0.1.0",
        imports: { "metrics-hub:source/http.send": async },
        exports: { default: async },
    });

    pub use self::metrics_hub::source::clock;
    pub use self::metrics_hub::source::http;
    pub use self::metrics_hub::source::log;
    pub use self::metrics_hub::source::types;
}
