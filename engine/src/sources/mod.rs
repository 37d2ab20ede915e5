//! The `DataSource` contract every source kind implements, and the constructor that picks
//! the implementation for a validated [`SourceSpec`]. One file per kind.

pub mod sql;

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{KindSpec, SourceSpec};
use crate::mapping::MappingError;
use crate::model::{Dataset, QueryParams, SourceData};

/// What went wrong in one source. `Display` is the full story for logs (secrets already
/// redacted); [`SourceError::public_message`] is what clients may see.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("query `{dataset}` failed: {message}")]
    Query { dataset: Dataset, message: String },
    #[error("query `{dataset}` could not be rendered: {message}")]
    Template { dataset: Dataset, message: String },
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
}

impl SourceError {
    /// A stable code for dashboards and alerting.
    pub fn code(&self) -> &'static str {
        match self {
            SourceError::Connect(_) => "connect_failed",
            SourceError::Query { .. } => "query_failed",
            SourceError::Template { .. } => "template_failed",
            SourceError::Mapping(_) => "mapping_failed",
            SourceError::Timeout(_) => "timeout",
        }
    }

    /// A message without driver text or SQL: those stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            SourceError::Connect(_) => "the source could not be reached; see the hub log".into(),
            SourceError::Query { dataset, .. } => {
                format!("the `{dataset}` query failed; see the hub log")
            }
            SourceError::Template { dataset, .. } => {
                format!("the `{dataset}` query could not be rendered; see the hub log")
            }
            // Names a column and a value of the source's own data, which is what an admin
            // needs to fix the mapping; it holds no SQL or credentials.
            SourceError::Mapping(err) => err.to_string(),
            SourceError::Timeout(limit) => format!("no answer within {} ms", limit.as_millis()),
        }
    }
}

/// The contract of a metrics source, as the original design defined it.
#[async_trait]
pub trait DataSource: Send + Sync {
    /// Sets up connections; called once at start-up for enabled sources, and again lazily
    /// when it failed then.
    async fn initialize(&self) -> Result<(), SourceError>;
    /// Runs the source's queries for `params` and maps them into the unified model.
    async fn fetch_metrics(&self, params: &QueryParams) -> Result<SourceData, SourceError>;
    /// Cheap liveness probe.
    async fn health_check(&self) -> Result<(), SourceError>;
    /// Releases connections at shutdown.
    async fn cleanup(&self);
}

/// Builds the implementation for a validated declaration.
pub fn build(spec: &SourceSpec) -> Arc<dyn DataSource> {
    match &spec.kind {
        KindSpec::Sql(sql) => Arc::new(sql::SqlSource::new(spec, sql.clone())),
    }
}
