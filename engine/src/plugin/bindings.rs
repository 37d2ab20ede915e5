//! The host side of the WIT contract: one `bindgen!` over the top-level `wit/` (the
//! current version) and one over `wit/compat/v0.1.0` (components built before summary
//! fields became optional). Every type exchanged with plugins comes from here; nothing
//! else writes ABI types by hand. `super::compat` adapts the old version to the new.

wasmtime::component::bindgen!({
    world: "data-source",
    path: "../wit",
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
    });

    pub use self::metrics_hub::source::clock;
    pub use self::metrics_hub::source::http;
    pub use self::metrics_hub::source::log;
    pub use self::metrics_hub::source::types;
}
