//! The commands of the `metrics-hub` binary as plain functions: their arguments (parsed
//! by clap in `main.rs`), what they print to the writer they are given, and typed errors,
//! so each is unit-tested without spawning the binary.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;

use crate::api::access::proxy::Cidr;
use crate::api::access::{tokens, Access, AccessSettings, Rate, Scope, TokenStore, TrustedProxy};
use crate::api::edge::{self, conn::Timeouts, EdgeSettings};
use crate::api::layers::RequestLimits;
use crate::api::serve::{self, ServeSettings};
use crate::api::ApiSettings;
use crate::cache::StaleWindows;
use crate::hub::{request, watch, Hub, HubSettings, QueryError, RequestError, MAX_DAYS};
use crate::kinds::{bigquery, KindSpec, SourceSpec};
use crate::load::{self, DirectoryError, LoadedSources};
use crate::model::QueryParams;
use crate::plugin::{self, PluginError};
use crate::scaffold;

pub mod history;
pub use history::{HistoryBackfillArgs, HistoryVerifyArgs};

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
    /// Fetches of one source that may wait for a free slot (its `concurrency:`); beyond
    /// them, a request that needs a new upstream fetch is answered 503 with Retry-After.
    #[arg(long, env = "METRICS_HUB_FETCH_QUEUE", default_value_t = 32)]
    pub fetch_queue: usize,
    /// Default `cache.stale_while_revalidate` of sources that do not set it: serve an
    /// expired result this long past its TTL while one background refresh runs.
    #[arg(long, env = "METRICS_HUB_STALE_WHILE_REVALIDATE", default_value = "0s", value_parser = humantime::parse_duration)]
    pub stale_while_revalidate: Duration,
    /// Default `cache.stale_if_error` of sources that do not set it: serve a result up to
    /// this old past its TTL when a fresh fetch fails.
    #[arg(long, env = "METRICS_HUB_STALE_IF_ERROR", default_value = "0s", value_parser = humantime::parse_duration)]
    pub stale_if_error: Duration,
    /// Do not reload when files under the sources directory change (SIGHUP and
    /// POST /api/admin/reload still do).
    #[arg(long, env = "METRICS_HUB_NO_WATCH")]
    pub no_watch: bool,
    /// Quiet time after a change under the sources directory before reloading.
    #[arg(long, default_value = "300ms", value_parser = humantime::parse_duration)]
    pub reload_debounce: Duration,
    /// A file of NAME=VALUE lines that `${NAME}` in source files resolves from (before the
    /// process environment); read at start-up and at every reload.
    #[arg(long, env = "METRICS_HUB_ENV_FILE")]
    pub env_file: Option<PathBuf>,
    /// Record no metrics and answer /metrics with 404.
    #[arg(long, env = "METRICS_HUB_NO_METRICS")]
    pub no_metrics: bool,
    /// The history store of sources that declare `history:`: a postgres:// URL to share
    /// one among several hubs (default: history.sqlite in the data directory).
    #[arg(long, env = "METRICS_HUB_STORE", value_name = "URL")]
    pub store: Option<String>,
    #[command(flatten)]
    pub access: AccessArgs,
    #[command(flatten)]
    pub edge: EdgeArgs,
}

/// Who may call the API. Tokens also come from METRICS_HUB_READ_TOKENS and
/// METRICS_HUB_ADMIN_TOKENS (comma-separated; read from the environment only, never
/// shown).
#[derive(Debug, clap::Args)]
pub struct AccessArgs {
    /// A file of `SCOPE NAME SHA256` lines (see `metrics-hub token new`).
    #[arg(long, env = "METRICS_HUB_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,
    /// Serve read endpoints without a token (admin endpoints still need one).
    #[arg(long, env = "METRICS_HUB_ALLOW_ANONYMOUS_READ")]
    pub allow_anonymous_read: bool,
    /// Serve /api/health without a token, for load balancers.
    #[arg(long, env = "METRICS_HUB_PUBLIC_HEALTH")]
    pub public_health: bool,
    /// An origin (e.g. https://dash.example.com) whose pages may call the API; repeatable;
    /// `*` for any.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,
    /// A header naming the user that a trusted reverse proxy authenticated, e.g.
    /// X-Forwarded-User (with --trusted-proxy).
    #[arg(long, value_name = "HEADER")]
    pub trust_proxy_header: Option<String>,
    /// An address block the trusted proxy connects from, e.g. 10.0.0.0/8; repeatable.
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    pub trusted_proxies: Vec<String>,
    /// A proxy-authenticated user given the admin scope (others get read); repeatable.
    #[arg(long = "proxy-admin", value_name = "USER")]
    pub proxy_admins: Vec<String>,
    /// Admin requests allowed per caller, e.g. 10/s, 600/m or 10/s,burst=30.
    #[arg(long, default_value = "10/s,burst=30", value_parser = Rate::parse)]
    pub admin_rate: Rate,
}

/// Limits of the HTTP edge.
#[derive(Debug, clap::Args)]
pub struct EdgeArgs {
    /// How long a client may take to send a request's head (then 408).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request.
    #[arg(long, default_value = "75s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// Connections served at once (default: from the open-file limit).
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Connections kept beyond the cap for /api/health, /metrics and admin requests.
    #[arg(long, default_value_t = 16)]
    pub reserve_connections: usize,
    /// Largest request head (request line and headers), in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_header_bytes: usize,
    /// Most headers in one request.
    #[arg(long, default_value_t = 100)]
    pub max_headers: usize,
    /// Longest path and query string, in bytes.
    #[arg(long, default_value_t = 32 * 1024)]
    pub max_uri_bytes: usize,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_body_bytes: u64,
    /// How long shutdown waits for requests being answered.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
}

/// `metrics-hub token new`: a fresh token and its line for the tokens file.
#[derive(Debug, clap::Args)]
pub struct TokenNewArgs {
    /// read or admin.
    #[arg(long, value_parser = ["read", "admin"])]
    pub scope: String,
    /// The name logs show for this token, e.g. ci or grafana.
    #[arg(long)]
    pub name: String,
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

/// `metrics-hub plugin new`: a plugin skeleton and its source file.
#[derive(Debug, clap::Args)]
pub struct PluginNewArgs {
    /// The plugin's name, which is also the source's id: lowercase letters, digits and
    /// dashes, e.g. my-api.
    pub name: String,
    /// The language to write it in.
    #[arg(long, value_enum, default_value = "rust")]
    pub lang: scaffold::Lang,
    /// The plugin workspace (the repository's plugins/ directory).
    #[arg(long, default_value = "./plugins")]
    pub plugins: PathBuf,
    /// Directory of source files, where the source file goes.
    #[arg(long, env = "METRICS_HUB_SOURCES", default_value = "./sources.d")]
    pub sources: PathBuf,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    EnvFile(#[from] load::EnvFileError),
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
    #[error(transparent)]
    Scaffold(#[from] scaffold::ScaffoldError),
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
    #[error(transparent)]
    UnsafeDefaults(#[from] crate::api::access::UnsafeDefaults),
    #[error(transparent)]
    Store(#[from] crate::history::StoreError),
    #[error("{0}")]
    Settings(String),
    #[error("cannot watch the sources directory (use --no-watch to do without): {0}")]
    Watch(notify::Error),
}

/// Logs every error of every invalid file.
fn log_errors(loaded: &LoadedSources) {
    for err in loaded.errors() {
        tracing::error!("{err}");
    }
}

/// Serves until SIGINT or SIGTERM, then drains and cleans up.
pub async fn serve(args: ServeArgs) -> Result<(), CliError> {
    let settings = serve_settings(&args)?;
    crate::telemetry::set_enabled(!args.no_metrics);
    check_data_dir(&data_dir())?;
    let env = load::environment(args.env_file.as_deref())?;
    let loaded = load::load_dir_with(&args.sources, &env)?;
    log_errors(&loaded);
    if args.strict && !loaded.broken.is_empty() {
        return Err(CliError::Strict(loaded.broken.len()));
    }
    let hub_settings = HubSettings {
        request_deadline: args.request_deadline,
        answer_ttl: args.answer_ttl,
        top_clients: args.top_clients,
        fetch_queue: args.fetch_queue,
        stale: StaleWindows {
            while_revalidate: args.stale_while_revalidate,
            if_error: args.stale_if_error,
        },
        sources_dir: Some(args.sources.clone()),
        env_file: args.env_file.clone(),
        history_store: Some(history::open_store(args.store.as_deref()).await?),
        ..HubSettings::default()
    };
    let hub = Arc::new(Hub::new(loaded, hub_settings));
    hub.initialize().await;
    let _hangups = watch::reload_on_hangup(hub.clone())?;
    let _watch = if args.no_watch {
        None
    } else {
        Some(
            watch::watch_dir(hub.clone(), &args.sources, args.reload_debounce)
                .map_err(CliError::Watch)?,
        )
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| CliError::Listen {
            addr: args.listen,
            source,
        })?;
    tracing::info!("serving on http://{}", listener.local_addr()?);
    serve::run_with(listener, hub, settings, serve::shutdown_signal()).await?;
    Ok(())
}

/// The access rules and edge limits `serve` was asked for; refuses unsafe defaults
/// before anything starts.
fn serve_settings(args: &ServeArgs) -> Result<ServeSettings, CliError> {
    let access = Access::for_listener(args.listen, access_settings(&args.access)?)?;
    if access.is_open() {
        tracing::info!("no tokens configured on a loopback address: every endpoint is open");
    }
    let files = match edge::raise_fd_limit() {
        Ok((before, now)) => {
            tracing::info!(soft_before = before, soft_now = now, "open-file limit");
            now
        }
        Err(err) => {
            tracing::warn!("cannot read or raise the open-file limit: {err}");
            1024
        }
    };
    let edge = &args.edge;
    Ok(ServeSettings {
        api: ApiSettings {
            access: Arc::new(access),
            cors_origins: args.access.cors_origins.clone(),
            limits: RequestLimits {
                max_uri_bytes: edge.max_uri_bytes,
                max_body_bytes: edge.max_body_bytes,
            },
        },
        edge: EdgeSettings {
            timeouts: Timeouts {
                header_read: edge.header_timeout,
                idle: edge.idle_timeout,
            },
            max_connections: edge
                .max_connections
                .unwrap_or_else(|| EdgeSettings::connections_for(files)),
            reserve_connections: edge.reserve_connections,
            max_header_bytes: edge.max_header_bytes,
            max_headers: edge.max_headers,
            max_request_line: edge.max_uri_bytes,
            drain_timeout: edge.drain_timeout,
        },
    })
}

/// Tokens from the environment and the tokens file, and the trusted proxy.
fn access_settings(args: &AccessArgs) -> Result<AccessSettings, CliError> {
    let mut tokens = TokenStore::default();
    for (scope, variable) in [
        (Scope::Read, "METRICS_HUB_READ_TOKENS"),
        (Scope::Admin, "METRICS_HUB_ADMIN_TOKENS"),
    ] {
        if let Ok(list) = std::env::var(variable) {
            tokens.add_env_list(scope, &list);
        }
    }
    if let Some(file) = &args.tokens_file {
        tokens.add_file(file).map_err(|errors| {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            CliError::Settings(lines.join("\n"))
        })?;
    }
    Ok(AccessSettings {
        tokens,
        allow_anonymous_read: args.allow_anonymous_read,
        public_health: args.public_health,
        proxy: trusted_proxy(args)?,
        admin_rate: Some(args.admin_rate),
    })
}

fn trusted_proxy(args: &AccessArgs) -> Result<Option<TrustedProxy>, CliError> {
    let Some(header) = &args.trust_proxy_header else {
        return Ok(None);
    };
    if args.trusted_proxies.is_empty() {
        return Err(CliError::Settings(
            "--trust-proxy-header needs --trusted-proxy CIDR: the addresses the proxy connects from".into(),
        ));
    }
    let header = header
        .parse()
        .map_err(|_| CliError::Settings(format!("`{header}` is not a header name")))?;
    let networks = args
        .trusted_proxies
        .iter()
        .map(|text| Cidr::parse(text).map_err(CliError::Settings))
        .collect::<Result<_, _>>()?;
    Ok(Some(TrustedProxy {
        header,
        networks,
        admins: args.proxy_admins.clone(),
    }))
}

/// Where the hub keeps what it writes (the demo database, precompiled plugins):
/// `$METRICS_HUB_DATA_DIR`, else `./data`.
pub fn data_dir() -> PathBuf {
    std::env::var_os("METRICS_HUB_DATA_DIR").map_or_else(|| PathBuf::from("./data"), PathBuf::from)
}

/// Makes sure the data directory exists and takes a write, so that a read-only or full
/// disk is one clear error at start instead of failures later.
pub fn check_data_dir(dir: &Path) -> Result<(), CliError> {
    let fix = "set METRICS_HUB_DATA_DIR to a writable directory with free space";
    let unusable = |what: &str, err: std::io::Error| {
        let why = match err.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => "is full",
            Some(libc::EROFS) => "is on a read-only file system",
            Some(libc::EACCES) | Some(libc::EPERM) => "is not writable",
            _ => what,
        };
        CliError::Settings(format!(
            "the data directory {} {why} ({err}): {fix}",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(|err| unusable("cannot be created", err))?;
    let probe = dir.join(".metrics-hub-write-check");
    let written = std::fs::File::create(&probe).and_then(|mut file| {
        // Enough to catch a full disk, small enough not to matter.
        file.write_all(&[0u8; 64 * 1024])?;
        file.sync_all()
    });
    let _ = std::fs::remove_file(&probe);
    written.map_err(|err| unusable("cannot be written", err))
}

/// Prints a new token once, with the line for the tokens file and the variable to use
/// instead.
pub fn token_new(args: &TokenNewArgs, out: &mut impl Write) -> Result<(), CliError> {
    let token = tokens::new_token();
    let hash = tokens::hash_hex(&token);
    let variable = if args.scope == "admin" {
        "METRICS_HUB_ADMIN_TOKENS"
    } else {
        "METRICS_HUB_READ_TOKENS"
    };
    writeln!(out, "token (shown once; give it to the caller): {token}")?;
    writeln!(out, "line for the tokens file (--tokens-file):")?;
    writeln!(out, "{} {} {hash}", args.scope, args.name)?;
    writeln!(
        out,
        "or set {variable} to a comma-separated list that includes the token"
    )?;
    Ok(())
}

/// Prints a line per valid source and per error; `Ok(false)` when anything is invalid.
pub fn validate(dir: &Path, out: &mut impl Write) -> Result<bool, CliError> {
    let loaded = load::load_dir(dir)?;
    let mut valid = loaded.broken.is_empty();
    for spec in &loaded.sources {
        valid &= validate_source(spec, out)?;
    }
    for metric in &loaded.derived {
        let (file, name) = (metric.file.display(), &metric.name);
        writeln!(out, "ok    {file} (derived metric {name})")?;
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
        "ok    {} implements metrics-hub:source/data-source@{} ({} bytes, sha256 {}, {origin})",
        file.display(),
        loaded.contract(),
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

/// Writes a plugin skeleton and its source file, and says what to do next.
pub fn plugin_new(args: &PluginNewArgs, out: &mut impl Write) -> Result<(), CliError> {
    if !args.plugins.join("Cargo.toml").is_file() {
        return Err(CliError::Settings(format!(
            "{} is not the plugin workspace (no Cargo.toml there): run this in the repository, or pass --plugins",
            args.plugins.display()
        )));
    }
    let written = scaffold::write(&scaffold::Request {
        name: args.name.clone(),
        lang: args.lang,
        plugins: args.plugins.clone(),
        sources: args.sources.clone(),
    })?;
    for file in &written.files {
        writeln!(out, "wrote {}", file.display())?;
    }
    writeln!(out, "next:")?;
    writeln!(out, "  test   {}", written.test)?;
    writeln!(
        out,
        "  build  {}  (-> {})",
        written.build,
        written.component.display()
    )?;
    writeln!(
        out,
        "  edit   base_url and allowed_hosts in the source file, then"
    )?;
    writeln!(
        out,
        "  run    {}=... metrics-hub query --source {} --days 7",
        written.key_var, args.name
    )?;
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
    let entries = hub.entries();
    let declared: Vec<&SourceSpec> = entries.iter().map(|e| &e.spec).collect();
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
