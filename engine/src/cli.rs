//! The commands of the `metrics-hub` binary as plain functions: their arguments (parsed
//! by clap in `main.rs`), what they print to the writer they are given, and typed errors,
//! so each is unit-tested without spawning the binary.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;

use crate::api::serve;
use crate::hub::{request, Hub, HubSettings, QueryError, RequestError, MAX_DAYS};
use crate::kinds::{bigquery, KindSpec, SourceSpec};
use crate::load::{self, DirectoryError, LoadedSources};
use crate::model::QueryParams;
use crate::plugin::{self, PluginError};

/// `metrics-hub serve`: the HTTP API over the sources of a directory.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "METRICS_HUB_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory of source files.
    #[arg(long, env = "METRICS_HUB_SOURCES", default_value = "./sources.d")]
    pub sources: PathBuf,
    /// Refuse to start when any source file is invalid.
    #[arg(long, env = "METRICS_HUB_STRICT")]
    pub strict: bool,
    /// Deadline of a whole metrics request.
    #[arg(long, env = "METRICS_HUB_REQUEST_DEADLINE", default_value = "15s", value_parser = humantime::parse_duration)]
    pub request_deadline: Duration,
    /// How long merged answers stay cached.
    #[arg(long, env = "METRICS_HUB_ANSWER_TTL", default_value = "1m", value_parser = humantime::parse_duration)]
    pub answer_ttl: Duration,
    /// How many clients a merged answer keeps.
    #[arg(long, env = "METRICS_HUB_TOP_CLIENTS", default_value_t = 20)]
    pub top_clients: usize,
}

/// `metrics-hub validate`: check every source file of a directory.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Directory of source files.
    #[arg(env = "METRICS_HUB_SOURCES", default_value = "./sources.d")]
    pub dir: PathBuf,
}

/// `metrics-hub query`: one source's unified JSON, bypassing caches.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// Source id.
    #[arg(long)]
    pub source: String,
    /// Window length in days, ending today.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_DAYS)))]
    pub days: u32,
    /// Filters as NAME=VALUE, repeatable.
    #[arg(long = "filter", value_name = "NAME=VALUE")]
    pub filters: Vec<String>,
    /// Directory of source files.
    #[arg(long, env = "METRICS_HUB_SOURCES", default_value = "./sources.d")]
    pub sources: PathBuf,
    /// For a bigquery source: dry-run each query and print the bytes it would scan,
    /// without running or billing anything.
    #[arg(long)]
    pub dry_run: bool,
}

/// `metrics-hub plugin check`: load a component and describe it.
#[derive(Debug, clap::Args)]
pub struct PluginCheckArgs {
    /// The component (.wasm).
    pub file: PathBuf,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error("{0} invalid source file(s) and --strict is set")]
    Strict(usize),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("--filter takes NAME=VALUE")]
    FilterSyntax,
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    DryRun(#[from] bigquery::DryRunError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// Logs every error of every invalid file.
fn log_errors(loaded: &LoadedSources) {
    for err in loaded.errors() {
        tracing::error!("{err}");
    }
}

/// Serves until SIGINT or SIGTERM, then drains and cleans up.
pub async fn serve(args: ServeArgs) -> Result<(), CliError> {
    let loaded = load::load_dir(&args.sources)?;
    log_errors(&loaded);
    if args.strict && !loaded.broken.is_empty() {
        return Err(CliError::Strict(loaded.broken.len()));
    }
    let settings = HubSettings {
        request_deadline: args.request_deadline,
        answer_ttl: args.answer_ttl,
        top_clients: args.top_clients,
        ..HubSettings::default()
    };
    let hub = Arc::new(Hub::new(loaded, settings));
    hub.initialize().await;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| CliError::Listen {
            addr: args.listen,
            source,
        })?;
    tracing::info!("serving on http://{}", listener.local_addr()?);
    serve::run(listener, hub, serve::shutdown_signal()).await?;
    Ok(())
}

/// Prints a line per valid source and per error; `Ok(false)` when anything is invalid.
pub fn validate(dir: &Path, out: &mut impl Write) -> Result<bool, CliError> {
    let loaded = load::load_dir(dir)?;
    let mut valid = loaded.broken.is_empty();
    for spec in &loaded.sources {
        valid &= validate_source(spec, out)?;
    }
    for err in loaded.errors() {
        writeln!(out, "error {err}")?;
    }
    Ok(valid)
}

/// One valid source's line. A wasm source must point at a loadable component; a disabled
/// one only warns, so that sources waiting for credentials need no built plugin.
fn validate_source(spec: &SourceSpec, out: &mut impl Write) -> Result<bool, CliError> {
    if let KindSpec::Wasm(wasm) = &spec.kind {
        let path = wasm.component_path(&spec.file);
        // A check, not a start: compile without reading or writing the precompiled cache
        // (which lives under the data directory).
        let runtime = plugin::Runtime::init_shared(None);
        if let Err(err) = runtime.and_then(|rt| rt.load(&path)) {
            let label = if spec.enabled { "error" } else { "warn " };
            let file = spec.file.display();
            writeln!(out, "{label} {file}: at /connection/component: {err}")?;
            return Ok(!spec.enabled);
        }
    }
    let state = if spec.enabled { "enabled" } else { "disabled" };
    let (file, id, kind) = (spec.file.display(), &spec.id, spec.kind.name());
    writeln!(out, "ok    {file} ({id}, {kind}, {state})")?;
    Ok(true)
}

/// Prints what a component imports and exports.
pub fn plugin_check(file: &Path, out: &mut impl Write) -> Result<(), CliError> {
    let runtime = plugin::Runtime::shared()?;
    let loaded = runtime.load(file)?;
    let description = loaded.describe(runtime.engine());
    let origin = match loaded.origin {
        plugin::cache::Origin::Cache => "precompiled artefact from the cache",
        plugin::cache::Origin::Compiled => "compiled",
    };
    writeln!(
        out,
        "ok    {} implements metrics-hub:source/data-source ({} bytes, sha256 {}, {origin})",
        file.display(),
        loaded.size,
        plugin::cache::hex(&loaded.digest),
    )?;
    writeln!(out, "imports:")?;
    for line in &description.imports {
        writeln!(out, "  {line}")?;
    }
    writeln!(out, "exports:")?;
    for line in &description.exports {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

/// Prints one source's unified JSON for the last `days` days ending `today`, or with
/// `--dry-run` the bytes each bigquery query would scan.
pub async fn query(
    args: QueryArgs,
    today: NaiveDate,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let loaded = load::load_dir(&args.sources)?;
    log_errors(&loaded);
    let hub = Hub::new(loaded, HubSettings::default());
    let declared: Vec<&SourceSpec> = hub.entries().iter().map(|e| &e.spec).collect();
    // The same checks as `?source=ID` in the API: the source exists and is enabled.
    let selected = request::select(&[args.source.clone()].into(), &declared)?;
    let spec = selected[0];
    let mut params = QueryParams::last_days(args.days, today);
    params.filters = request::filters(&selected, filter_pairs(&args.filters)?)?;
    if args.dry_run {
        let report = bigquery::dry_run(spec, &params).await?;
        write!(out, "{report}")?;
        return Ok(());
    }
    let data = hub.query_source(&args.source, &params).await;
    hub.cleanup().await;
    writeln!(out, "{}", serde_json::to_string_pretty(&data?)?)?;
    Ok(())
}

/// `--filter NAME=VALUE` arguments as a map; a name given twice keeps the last value.
fn filter_pairs(
    filters: &[String],
) -> Result<std::collections::BTreeMap<String, String>, CliError> {
    filters
        .iter()
        .map(|filter| {
            let (name, value) = filter.split_once('=').ok_or(CliError::FilterSyntax)?;
            Ok((name.to_owned(), value.to_owned()))
        })
        .collect()
}
