//! `kind: bigquery`: Google BigQuery (REST v2) through standard-SQL templates whose
//! request values are typed named parameters, with the cost guard on every query and
//! dry runs for `metrics-hub query --dry-run`.

mod config;
mod decode;
mod dry_run;
mod source;

pub use config::{compile, schema, BigquerySpec, Credentials};
pub use dry_run::{dry_run, DryRun, DryRunError, ScanEstimate};
pub use source::{query_parameters, BigquerySource};
