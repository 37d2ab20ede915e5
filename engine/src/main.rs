//! The `metrics-hub` command: parses the CLI, sets up logging and calls into the library.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use metrics_hub::cli::{self, PluginCheckArgs, QueryArgs, ServeArgs, TokenNewArgs, ValidateArgs};

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
    Serve(Box<ServeArgs>),
    /// Check every source file of a directory; exit non-zero when any is invalid.
    Validate(ValidateArgs),
    /// Inspect WebAssembly plugins.
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
    let command = Cli::parse().command;
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
            Command::Token {
                command: TokenCommand::New(args),
            } => cli::token_new(&args, &mut out).map(|()| true),
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
