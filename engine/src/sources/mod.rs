//! The `DataSource` contract every source kind implements, and the constructor that picks
//! the implementation for a validated [`SourceSpec`]. One file per kind.

pub mod bigquery;
pub mod rest;
pub mod sql;
pub mod wasm;

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
    /// The remote service could not be reached (connection refused, TLS, reset).
    #[error("cannot reach the service: {0}")]
    Unreachable(String),
    /// The remote service refused the credentials.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The remote service asked us to slow down and retries ran out within the deadline.
    #[error("rate limited{}", .retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    RateLimited {
        retry_after: Option<std::time::Duration>,
    },
    /// The remote service answered with an error status or error body.
    #[error("the service answered {status}: {message}")]
    Upstream { status: u16, message: String },
    /// The answer did not have the declared shape; `message` names the path.
    #[error("unexpected response: {0}")]
    BadResponse(String),
    /// The answer was larger than the source's cap.
    #[error("response larger than {0} bytes")]
    TooLarge(u64),
    /// A WebAssembly plugin failed: trapped, ran out of memory, refused its config or a
    /// request, or answered invalid data. The plugin error has its own code and message.
    #[error(transparent)]
    Plugin(crate::plugin::PluginError),
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
            SourceError::Unreachable(_) => "unreachable",
            SourceError::Auth(_) => "auth_failed",
            SourceError::RateLimited { .. } => "rate_limited",
            SourceError::Upstream { .. } => "upstream_error",
            SourceError::BadResponse(_) => "bad_response",
            SourceError::TooLarge(_) => "response_too_large",
            SourceError::Plugin(err) => err.code(),
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
            SourceError::Unreachable(_) => {
                "the service could not be reached; see the hub log".into()
            }
            SourceError::Auth(_) => "the service refused the credentials; see the hub log".into(),
            SourceError::RateLimited { retry_after } => match retry_after {
                Some(wait) => format!(
                    "rate limited by the service (retry after {} s)",
                    wait.as_secs()
                ),
                None => "rate limited by the service".into(),
            },
            SourceError::Upstream { status, .. } => {
                format!("the service answered HTTP {status}; see the hub log")
            }
            // Names a JSON path of the declared shape, nothing from the body itself.
            SourceError::BadResponse(message) => message.clone(),
            SourceError::TooLarge(limit) => format!("the response exceeded {limit} bytes"),
            SourceError::Plugin(err) => err.public_message(),
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
        KindSpec::Rest(rest) => Arc::new(rest::RestSource::new(spec, rest.clone())),
        KindSpec::Bigquery(bigquery) => {
            Arc::new(bigquery::BigquerySource::new(spec, bigquery.clone()))
        }
        KindSpec::Wasm(wasm) => Arc::new(wasm::WasmSource::new(spec, wasm.clone())),
    }
}
