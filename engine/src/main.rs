//! The `metrics-hub` command: parses the CLI, sets up logging and calls into the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use metrics_hub::config::{self, KindSpec, LoadedSources};
use metrics_hub::hub::{Hub, HubSettings, MAX_DAYS};
use metrics_hub::model::QueryParams;
use metrics_hub::plugin;

#[derive(Parser)]
#[command(
    name = "metrics-hub",
    version,
    about = "Business metrics from declared sources, merged behind one HTTP API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API over the sources of a directory.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "METRICS_HUB_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Directory of source files.
        #[arg(long, env = "METRICS_HUB_SOURCES", default_value = "./sources.d")]
        sources: PathBuf,
        /// Refuse to start when any source file is invalid.
        #[arg(long, env = "METRICS_HUB_STRICT")]
        strict: bool,
        /// Deadline of a whole metrics request.
        #[arg(long, env = "METRICS_HUB_REQUEST_DEADLINE", default_value = "15s", value_parser = humantime::parse_duration)]
        request_deadline: Duration,
        /// How long merged answers stay cached.
        #[arg(long, env = "METRICS_HUB_ANSWER_TTL", default_value = "1m", value_parser = humantime::parse_duration)]
        answer_ttl: Duration,
        /// How many clients a merged answer keeps.
        #[arg(long, env = "METRICS_HUB_TOP_CLIENTS", default_value_t = 20)]
        top_clients: usize,
    },
    /// Check every source file of a directory; exit non-zero when any is invalid.
    Validate {
        /// Directory of source files.
        #[arg(env = "METRICS_HUB_SOURCES", default_value = "./sources.d")]
        dir: PathBuf,
    },
    /// Inspect WebAssembly plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Print one source's unified JSON, bypassing caches.
    Query {
        /// Source id.
        #[arg(long)]
        source: String,
        /// Window length in days, ending today.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_DAYS)))]
        days: u32,
        /// Filters as NAME=VALUE, repeatable.
        #[arg(long = "filter", value_name = "NAME=VALUE")]
        filters: Vec<String>,
        /// Directory of source files.
        #[arg(long, env = "METRICS_HUB_SOURCES", default_value = "./sources.d")]
        sources: PathBuf,
        /// For a bigquery source: dry-run each query and print the bytes it would scan,
        /// without running or billing anything.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Load a component, check that it implements the data-source world, print its imports
    /// and exports.
    Check {
        /// The component (.wasm).
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn report(loaded: &LoadedSources) {
    for err in loaded.errors() {
        tracing::error!("{err}");
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve {
            listen,
            sources,
            strict,
            request_deadline,
            answer_ttl,
            top_clients,
        } => {
            let loaded = config::load_dir(&sources)?;
            report(&loaded);
            if strict && !loaded.broken.is_empty() {
                anyhow::bail!(
                    "{} invalid source file(s) and --strict is set",
                    loaded.broken.len()
                );
            }
            let settings = HubSettings {
                request_deadline,
                answer_ttl,
                top_clients,
                ..HubSettings::default()
            };
            let hub = Arc::new(Hub::new(loaded, settings));
            hub.initialize().await;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            tracing::info!("serving on http://{}", listener.local_addr()?);
            metrics_hub::server::run(listener, hub, metrics_hub::server::shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { dir } => {
            let loaded = config::load_dir(&dir)?;
            let mut failed = !loaded.broken.is_empty();
            for spec in &loaded.sources {
                let state = if spec.enabled { "enabled" } else { "disabled" };
                // A wasm source must point at a loadable component; a disabled one only
                // warns, so that sources waiting for credentials need no built plugin.
                if let KindSpec::Wasm(wasm) = &spec.kind {
                    let path = wasm.component_path(&spec.file);
                    // A check, not a start: compile without reading or writing the
                    // precompiled cache (which lives under the data directory).
                    let runtime = plugin::Runtime::init_shared(None);
                    if let Err(err) = runtime.and_then(|rt| rt.load(&path)) {
                        let label = if spec.enabled { "error" } else { "warn " };
                        println!(
                            "{label} {}: at /connection/component: {err}",
                            spec.file.display()
                        );
                        failed |= spec.enabled;
                        continue;
                    }
                }
                println!(
                    "ok    {} ({}, {}, {state})",
                    spec.file.display(),
                    spec.id,
                    spec.kind.name()
                );
            }
            for err in loaded.errors() {
                println!("error {err}");
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Plugin {
            command: PluginCommand::Check { file },
        } => {
            let runtime = plugin::Runtime::shared()?;
            let loaded = runtime.load(&file)?;
            let description = loaded.describe(runtime.engine());
            println!(
                "ok    {} implements metrics-hub:source/data-source ({} bytes, sha256 {}, {})",
                file.display(),
                loaded.size,
                plugin::cache::hex(&loaded.digest),
                match loaded.origin {
                    plugin::cache::Origin::Cache => "precompiled artefact from the cache",
                    plugin::cache::Origin::Compiled => "compiled",
                }
            );
            println!("imports:");
            for line in &description.imports {
                println!("  {line}");
            }
            println!("exports:");
            for line in &description.exports {
                println!("  {line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Query {
            source,
            days,
            filters,
            sources,
            dry_run,
        } => {
            let loaded = config::load_dir(&sources)?;
            report(&loaded);
            let hub = Hub::new(loaded, HubSettings::default());
            let today = chrono::Utc::now().date_naive();
            let mut query = format!("days={days}&source={source}");
            for filter in &filters {
                let (name, value) = filter
                    .split_once('=')
                    .context("--filter takes NAME=VALUE")?;
                query.push('&');
                query.push_str(
                    &form_urlencoded::Serializer::new(String::new())
                        .append_pair(name, value)
                        .finish(),
                );
            }
            let request = hub.parse_request(&query, today)?;
            let params: QueryParams = request.params;
            if dry_run {
                let entry = hub
                    .entries()
                    .iter()
                    .find(|e| e.spec.id == source)
                    .context("the source vanished")?;
                let report = metrics_hub::sources::bigquery::dry_run(&entry.spec, &params).await?;
                print!("{report}");
                return Ok(ExitCode::SUCCESS);
            }
            let data = hub.query_source(&source, &params).await;
            hub.cleanup().await;
            println!("{}", serde_json::to_string_pretty(&data?)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
