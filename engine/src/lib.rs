//! Metrics Hub gathers business metrics from many systems into one HTTP API for dashboards.
//!
//! The pipeline, in the order data flows:
//! - [`config`] reads `sources.d/*.yaml`: `${ENV}` interpolation, the JSON Schema in
//!   `schemas/`, typed parsing and validation, every error of every file collected.
//! - [`template`] renders each source's minijinja queries so request values reach SQL only
//!   as bind parameters.
//! - [`sources`] holds the `DataSource` contract and one implementation per kind.
//! - [`mapping`] turns rows into the unified [`model`]; [`merge`] combines sources.
//! - [`cache`] keeps per-source and merged answers (moka, single flight).
//! - [`plugin`] is the WebAssembly host behind `kind: wasm` sources: one wasmtime engine,
//!   components compiled once (precompiled on disk), sandboxed instances per source.
//! - [`hub`] is the orchestrator: registry, request validation, parallel fan-out under
//!   deadlines, per-source status.
//! - [`api`] is the axum router: the JSON API and the built-in dashboard and admin pages
//!   (`engine/assets/`, embedded in the binary); [`server`] serves it with graceful shutdown.
//! - [`demo`] generates the embedded demo's synthetic GA4 events.

pub mod api;
pub mod cache;
pub mod config;
pub mod demo;
pub mod hub;
pub mod mapping;
pub mod merge;
pub mod model;
pub mod plugin;
pub mod server;
pub mod sources;
pub mod template;
