//! The `metrics-hub` command: parses the CLI, sets up logging and calls into the library.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use metrics_hub::cli::{
    self, history, HistoryBackfillArgs, HistoryVerifyArgs, PluginCheckArgs, PluginNewArgs,
    QueryArgs, ServeArgs, TokenNewArgs, ValidateArgs,
};

#[derive(Parser)]
#[command(
    name = "metrics-hub",
    version,
    about = "Business metrics from declared sources, merged behind one HTTP API"
)]
struct Cli {
    /// Log lines as text, or as one JSON object per line for log shippers.
    #[arg(long, global = true, env = "METRICS_HUB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Also log when each span (request, source fetch, upstream query) closes, with
    /// its duration.
    #[arg(long, global = true, env = "METRICS_HUB_LOG_SPANS")]
    log_spans: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Logs to stderr, filtered by RUST_LOG (default: info, sqlx at warn).
fn init_logging(format: LogFormat, spans: bool) {
    use tracing_subscriber::fmt::format::FmtSpan;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn".into());
    let events = if spans { FmtSpan::CLOSE } else { FmtSpan::NONE };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(events)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API over the sources of a directory.
    Serve(Box<ServeArgs>),
    /// Check every source file of a directory; exit non-zero when any is invalid.
    Validate(ValidateArgs),
    /// Inspect WebAssembly plugins, or start a new one.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Print one source's unified JSON, bypassing caches.
    Query(QueryArgs),
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Fill, check or clear a source's history store.
    History {
        #[command(subcommand)]
        command: HistoryCommand,
    },
}

#[derive(Subcommand)]
enum HistoryCommand {
    /// Store the newest settled days of a source now, at its pace, with a progress bar.
    Backfill(HistoryBackfillArgs),
    /// Re-query a sample of stored days and print every difference; non-zero exit on one.
    Verify(HistoryVerifyArgs),
    /// Delete every stored day of a source.
    Clear(history::Target),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a random token; prints it once with the line for the tokens file.
    New(TokenNewArgs),
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Load a component, check that it implements the data-source world, print its imports
    /// and exports.
    Check(PluginCheckArgs),
    /// Write a plugin skeleton (Rust, Python or JavaScript) and the source file for it.
    New(PluginNewArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, cli.log_spans);
    let command = cli.command;
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let outcome = runtime.block_on(async {
        match command {
            Command::Serve(args) => cli::serve(*args).await.map(|()| true),
            Command::Validate(args) => cli::validate(&args.dir, &mut out),
            Command::Plugin {
                command: PluginCommand::Check(args),
            } => cli::plugin_check(&args.file, &mut out).map(|()| true),
            Command::Plugin {
                command: PluginCommand::New(args),
            } => cli::plugin_new(&args, &mut out).map(|()| true),
            Command::Token {
                command: TokenCommand::New(args),
            } => cli::token_new(&args, &mut out).map(|()| true),
            Command::History { command } => match command {
                HistoryCommand::Backfill(args) => history::backfill_command(&args, &mut out)
                    .await
                    .map(|()| true),
                HistoryCommand::Verify(args) => history::verify_command(&args, &mut out).await,
                HistoryCommand::Clear(target) => history::clear_command(&target, &mut out)
                    .await
                    .map(|()| true),
            },
            Command::Query(args) => {
                let today = chrono::Utc::now().date_naive();
                cli::query(args, today, &mut out).await.map(|()| true)
            }
        }
    });
    let _ = out.flush();
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
