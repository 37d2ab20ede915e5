//! The host side of the WIT contract: the one `bindgen!` over the top-level `wit/`. Every
//! type exchanged with plugins comes from here; nothing else writes ABI types by hand.

wasmtime::component::bindgen!({
    world: "data-source",
    path: "../wit",
});

pub use self::metrics_hub::source::clock;
pub use self::metrics_hub::source::http;
pub use self::metrics_hub::source::log;
pub use self::metrics_hub::source::types;
