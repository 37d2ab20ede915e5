//! Metrics Hub gathers business metrics from many systems into one HTTP API for dashboards.
//!
//! The pipeline, in the order data flows: [`load`] reads `sources.d/*.yaml` (each file
//! `${ENV}`-interpolated, checked against the JSON Schema, parsed into [`config`]'s raw
//! shapes, its common fields validated and its kind's part compiled by [`kinds`], every
//! error of every file collected); the [`hub`] builds each valid source's implementation,
//! parses each request, fans it out to the selected sources in parallel through their
//! [`cache`]s under deadlines, the sources render their [`template`]s into bind-only
//! queries and [`mapping`] turns their rows into the unified [`model`], [`merge`] combines
//! the sources' answers, and the [`api`] serves the result as JSON (and the built-in
//! pages) over axum.
//!
//! Modules, lowest first:
//! - [`secret`]: `Secret` and redaction. [`model`]: the unified model and query parameters.
//!   [`telemetry`]: the Prometheus metrics everyone records into. [`retry`]: `Retry-After`
//!   and backoff timing for the HTTP clients (REST kind, plugin host). [`scaffold`]: the
//!   plugin skeletons `plugin new` writes.
//! - [`mapping`]: rows -> unified records. [`config`]: what a source file says up to where
//!   kinds differ (raw shapes, interpolation, schema, lines, problems, name rules).
//! - [`template`]: minijinja queries whose request values become bind parameters.
//!   [`merge`]: sources' answers combined by policy. [`insights`]: anomalies in daily
//!   series (pure). [`plugin`]: the wasmtime host.
//! - [`kinds`]: the `DataSource` contract and one folder per kind (sql, rest, bigquery,
//!   wasm), each with its config and its runtime.
//! - [`derived`]: derived metrics (`metrics.d/`), checked against the sources and
//!   evaluated over an answer.
//! - [`load`]: a directory -> validated sources. [`cache`]: per-source and merged
//!   answers (moka, single flight). [`history`]: settled days in SQLite or PostgreSQL, so
//!   requests query only the days that can still change.
//! - [`hub`]: registry, request parsing, fan-out, reports, status, admin views.
//! - [`api`]: router, thin handlers, `ApiError`, pages, serving. [`cli`]: the commands.
//!
//! Every import points down this list: a module uses only modules above it in the list
//! (`api -> hub -> kinds -> {plugin, config, template, mapping, model}`), never one below,
//! and `config` uses nothing but `model`, `mapping` and `secret`. The test
//! `engine/tests/layers.rs` reads every source file and enforces it, and that no two sibling
//! files import each other.

pub mod api;
pub mod cache;
pub mod cli;
pub mod config;
pub mod derived;
pub mod history;
pub mod hub;
pub mod insights;
pub mod kinds;
pub mod load;
pub mod mapping;
pub mod merge;
pub mod model;
pub mod plugin;
pub mod retry;
pub mod scaffold;
pub mod secret;
pub mod telemetry;
pub mod template;
