//! `kind: wasm`: a source answered by a WebAssembly plugin, run in the sandbox of
//! [`crate::plugin`]. The plugin answers unified fields itself; this kind checks them.

mod config;
mod source;

pub use config::{compile, schema, PluginConfig, WasmSpec};
pub use source::{query_params, to_source_data, WasmSource};
