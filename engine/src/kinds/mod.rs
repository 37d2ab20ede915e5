//! Source kinds: the closed list of built-in kinds (sql, rest, bigquery, wasm), each in
//! its own folder with its part of a source file (`config.rs`: raw shape and compile) and
//! its runtime (`source.rs`: the [`DataSource`] implementation). Openness comes from
//! WebAssembly plugins (`kind: wasm`), not from more variants here.
//!
//! This module holds what every kind shares: the [`DataSource`] contract, [`SourceError`],
//! the validated [`SourceSpec`] with its [`KindSpec`], and the two dispatches [`compile`]
//! (a file's kind part -> `KindSpec`) and [`build`] (`SourceSpec` -> running source).
//! Adding a kind is a folder, a variant here and its schema (docs/adding-a-kind.md).

pub mod bigquery;
mod context;
pub mod rest;
pub mod schema;
pub mod sql;
pub mod wasm;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use schemars::SchemaGenerator;

pub use context::{
    check_query_templates, compile_sql_queries, compile_sql_queries_with, sample_params,
    KindContext, SqlQueryConfig,
};
pub use schema::KindSchema;

use crate::config::{
    FilterSpec, HistorySpec, Mappings, MergePolicies, MergePolicy, Problems, StaleConfig,
};
use crate::mapping::MappingError;
use crate::model::{Dataset, QueryParams, SourceData};
use crate::plugin::PluginError;

/// The kind-specific, validated part of a source.
#[derive(Debug, Clone)]
pub enum KindSpec {
    Sql(sql::SqlSpec),
    Rest(rest::RestSpec),
    Bigquery(bigquery::BigquerySpec),
    Wasm(wasm::WasmSpec),
}

/// A kind's contribution to the schema.
pub type SchemaFn = fn(&mut SchemaGenerator) -> KindSchema;

/// Every kind: its `kind:` value and its part of the schema, in the order the schema
/// lists them.
pub const KINDS: [(&str, SchemaFn); 4] = [
    ("sql", sql::schema),
    ("rest", rest::schema),
    ("bigquery", bigquery::schema),
    ("wasm", wasm::schema),
];

impl KindSpec {
    /// The `kind:` value as written.
    pub fn name(&self) -> &'static str {
        match self {
            KindSpec::Sql(_) => "sql",
            KindSpec::Rest(_) => "rest",
            KindSpec::Bigquery(_) => "bigquery",
            KindSpec::Wasm(_) => "wasm",
        }
    }

    /// Datasets the source has a query for.
    pub fn datasets(&self) -> &BTreeSet<Dataset> {
        match self {
            KindSpec::Sql(spec) => &spec.datasets,
            KindSpec::Rest(spec) => &spec.datasets,
            KindSpec::Bigquery(spec) => &spec.datasets,
            KindSpec::Wasm(spec) => &spec.datasets,
        }
    }
}

/// Compiles the kind-specific part of a source file (`connection`, `queries`) for the
/// kind named by `kind:`, recording problems under their pointers.
pub fn compile(kind: &str, context: &KindContext<'_>, problems: &mut Problems) -> Option<KindSpec> {
    match kind {
        "sql" => sql::compile(context, problems).map(KindSpec::Sql),
        "rest" => rest::compile(context, problems).map(KindSpec::Rest),
        "bigquery" => bigquery::compile(context, problems).map(KindSpec::Bigquery),
        "wasm" => wasm::compile(context, problems).map(KindSpec::Wasm),
        other => {
            problems.add(
                "/kind",
                format!(
                    "`{other}` is not a kind: use one of {}",
                    kind_names().join(", ")
                ),
            );
            None
        }
    }
}

/// Every kind's `kind:` value.
pub fn kind_names() -> Vec<&'static str> {
    KINDS.iter().map(|(name, _)| *name).collect()
}

/// Builds the running source for a validated declaration; nothing is connected yet.
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

/// A validated source declaration.
#[derive(Clone)]
pub struct SourceSpec {
    pub id: String,
    pub name: String,
    /// Short label for dashboards: the YAML `badge`, or the name.
    pub badge: String,
    pub description: Option<String>,
    pub enabled: bool,
    /// The file it came from.
    pub file: PathBuf,
    /// `Duration::ZERO` turns caching off for this source.
    pub cache_ttl: Duration,
    /// How long past its TTL a cached result may still be served.
    pub stale: StaleConfig,
    pub timeout: Duration,
    /// Upstream fetches that may run at once.
    pub concurrency: usize,
    pub filters: BTreeMap<String, FilterSpec>,
    pub mappings: Mappings,
    pub merge: MergePolicies,
    pub kind: KindSpec,
    /// `history:`: settled days kept in the history store; `None` when not declared.
    pub history: Option<HistorySpec>,
    /// Values that came from the environment: redacted from every message about this source.
    pub secrets: Arc<Vec<String>>,
    /// A digest of everything the source was built from (see `load`): equal fingerprints
    /// mean a reload may keep the running source with its caches and connections.
    pub fingerprint: [u8; 32],
    /// A digest of what decides the source's numbers (kind, connection as written, queries,
    /// mappings, referenced files): history days stored under another are not used.
    pub definition: String,
}

/// Only what identifies the source: the environment values in `secrets` and the kind's
/// connection details must not reach a log line through `{:?}`.
impl fmt::Debug for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceSpec")
            .field("id", &self.id)
            .field("kind", &self.kind.name())
            .field("enabled", &self.enabled)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl SourceSpec {
    /// Files besides its own that the source is built from.
    pub fn referenced_files(&self) -> Vec<PathBuf> {
        match &self.kind {
            KindSpec::Wasm(wasm) => vec![wasm.component_path(&self.file)],
            _ => Vec::new(),
        }
    }

    /// Every merge policy the file declares, as (dataset, field, policy).
    pub fn merge_policies(&self) -> impl Iterator<Item = (Dataset, &str, MergePolicy)> {
        self.merge.iter().flat_map(|(dataset, fields)| {
            fields
                .iter()
                .map(move |(field, policy)| (*dataset, field.as_str(), *policy))
        })
    }
}

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
    /// The service said it was rate limited a moment ago: the hub holds off asking it
    /// again for as long as it asked (what is left of that is given).
    #[error("rate limited: not asked again for {}s", .0.as_secs().max(1))]
    HeldOff(std::time::Duration),
    /// The remote service answered with an error status or error body.
    #[error("the service answered {status}: {message}")]
    Upstream { status: u16, message: String },
    /// The answer did not have the declared shape; `message` names the path.
    #[error("unexpected response: {0}")]
    BadResponse(String),
    /// The answer was larger than the source's cap.
    #[error("response larger than {0} bytes")]
    TooLarge(u64),
    /// The hub did not query the source: as many fetches as its `concurrency` run, and
    /// as many wait as the hub queues.
    #[error("too many fetches running and waiting")]
    Overloaded,
    /// A WebAssembly plugin failed: trapped, ran out of memory, refused its config or a
    /// request, or answered invalid data. The plugin error has its own code and message.
    #[error(transparent)]
    Plugin(PluginError),
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
            SourceError::RateLimited { .. } | SourceError::HeldOff(_) => "rate_limited",
            SourceError::Upstream { .. } => "upstream_error",
            SourceError::BadResponse(_) => "bad_response",
            SourceError::TooLarge(_) => "response_too_large",
            SourceError::Overloaded => "overloaded",
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
            SourceError::HeldOff(left) => format!(
                "rate limited by the service: the hub asks it again in {} s",
                left.as_secs().max(1)
            ),
            SourceError::Upstream { status, .. } => {
                format!("the service answered HTTP {status}; see the hub log")
            }
            // Names a JSON path of the declared shape, nothing from the body itself.
            SourceError::BadResponse(message) => message.clone(),
            SourceError::TooLarge(limit) => format!("the response exceeded {limit} bytes"),
            SourceError::Overloaded => {
                "the hub is running as many queries of this source as it allows: try again shortly"
                    .into()
            }
            SourceError::Plugin(err) => err.public_message(),
        }
    }
}

/// A plugin's failure as a source's: a deadline is a timeout like any other source's, and
/// what the plugin reports of its service (credentials refused, rate limited, a response
/// over the cap) is reported as any source's would be.
impl From<PluginError> for SourceError {
    fn from(err: PluginError) -> SourceError {
        match err {
            PluginError::Deadline(limit) => SourceError::Timeout(limit),
            PluginError::Setup(message) => SourceError::Connect(message),
            PluginError::TooLarge(limit) => SourceError::TooLarge(limit),
            PluginError::Auth(message) => SourceError::Auth(message),
            PluginError::RateLimited { retry_after } => SourceError::RateLimited { retry_after },
            other => SourceError::Plugin(other),
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
    /// Answers only `datasets` (the history store asks for fewer than all). Kinds that run
    /// one query per dataset run only those; others fetch everything and drop the rest.
    async fn fetch_datasets(
        &self,
        params: &QueryParams,
        datasets: &BTreeSet<Dataset>,
    ) -> Result<SourceData, SourceError> {
        let mut data = self.fetch_metrics(params).await?;
        data.keep(datasets);
        Ok(data)
    }
    /// Cheap liveness probe.
    async fn health_check(&self) -> Result<(), SourceError>;
    /// Releases connections at shutdown.
    async fn cleanup(&self);
    /// For a plugin: the largest linear memory one of its instances has reached, in bytes.
    fn memory_high_water(&self) -> Option<u64> {
        None
    }
}
