//! Derived metrics: figures computed from the sources' answers, such as page views per
//! user or a conversion rate across two sources, declared one per file in `metrics.d/`
//! (the directory beside `sources.d/`).
//!
//! - [`config`]: a metric file's shape, its JSON Schema (`schemas/metric.schema.json`) and
//!   the load of the directory into checked [`Metric`]s, every problem reported with file,
//!   line, path and fix like a source file's.
//! - [`eval`]: the metrics evaluated over one answer (each source's data and the merged
//!   answer) into `data.derived`: a value, a daily series, the inputs used and the ones
//!   the answer lacked.
//!
//! Expressions are minijinja expressions, the language of the REST kind's record
//! expressions, so a hub has one expression language. They read `SOURCE.summary.FIELD`
//! or `SOURCE.daily.FIELD` (a source id with `_` for `-`) and `merged.…` for the merged
//! answer; they run with a fuel limit and never see configuration or secrets. Division by
//! zero, a missing input or a value that is not a finite number gives `null`.

pub mod config;
pub mod eval;

pub use config::{load_dir, metrics_dir, Format, Loaded, Metric};
pub use eval::{evaluate, DerivedValue};
