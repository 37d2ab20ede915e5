//! `metrics-hub history backfill | verify | clear`: a source's history store from the
//! terminal. Backfill fills the newest settled days at the source's pace with a progress
//! bar; verify re-queries a sample of stored days and prints every difference; clear
//! deletes a source's stored days (after pointing it at other data through the
//! environment, which its definition digest cannot see).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{data_dir, log_errors, CliError};
use crate::history::{backfill, verify, Core, Progress, Store};
use crate::kinds;
use crate::load;

/// Which source, where its file and the store are.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// Source id.
    #[arg(long)]
    pub source: String,
    /// Directory of source files.
    #[arg(long, env = "METRICS_HUB_SOURCES", default_value = "./sources.d")]
    pub sources: PathBuf,
    /// The history store (default: history.sqlite in the data directory).
    #[arg(long, env = "METRICS_HUB_STORE", value_name = "URL")]
    pub store: Option<String>,
}

/// `metrics-hub history backfill`.
#[derive(Debug, clap::Args)]
pub struct HistoryBackfillArgs {
    #[command(flatten)]
    pub target: Target,
    /// Settled days to fill, counting back from the newest.
    #[arg(long, default_value_t = 90)]
    pub days: u32,
    /// At most one fetch per this interval (default: the source's `backfill_every`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub every: Option<Duration>,
}

/// `metrics-hub history verify`.
#[derive(Debug, clap::Args)]
pub struct HistoryVerifyArgs {
    #[command(flatten)]
    pub target: Target,
    /// The newest settled days to look at.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Stored days to re-query among them, spread evenly.
    #[arg(long, default_value_t = 7)]
    pub sample: usize,
}

/// The store `serve` and these commands use: `url`, else the embedded SQLite file.
pub async fn open_store(url: Option<&str>) -> Result<Arc<Store>, CliError> {
    let store = match url {
        Some(url) => Store::open(url).await?,
        None => Store::open_in(&data_dir()).await?,
    };
    Ok(Arc::new(store))
}

/// The source's history core, its own source connected.
async fn core(target: &Target) -> Result<Arc<Core>, CliError> {
    let loaded = load::load_dir(&target.sources)?;
    log_errors(&loaded);
    let spec = loaded
        .sources
        .iter()
        .find(|spec| spec.id == target.source)
        .ok_or_else(|| {
            CliError::Settings(format!(
                "there is no valid source `{}` in {}",
                target.source,
                target.sources.display()
            ))
        })?;
    let history = spec.history.clone().ok_or_else(|| {
        CliError::Settings(format!(
            "source `{}` declares no `history:`: add one to {} to keep its days",
            spec.id,
            spec.file.display()
        ))
    })?;
    let store = open_store(target.store.as_deref()).await?;
    let inner = kinds::build(spec);
    inner.initialize().await.map_err(fetch_failed)?;
    Ok(Arc::new(Core::new(spec, history, inner, store)))
}

fn fetch_failed(err: kinds::SourceError) -> CliError {
    CliError::Settings(format!("the source failed: {err}"))
}

/// Fills the newest `days` settled days, drawing a bar on a terminal (a line per tenth
/// of the way otherwise).
pub async fn backfill_command(
    args: &HistoryBackfillArgs,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let core = core(&args.target).await?;
    if args.days > core.spec.retention_days {
        return Err(CliError::Settings(format!(
            "--days {} is beyond the source's retention ({}d): days older would be deleted again",
            args.days, core.spec.retention_days
        )));
    }
    let every = args.every.unwrap_or(core.spec.backfill_every);
    let terminal = std::io::stderr().is_terminal();
    let mut last_tenth = None;
    let mut draw = |progress: &Progress| {
        let line = bar(progress);
        let tenth = progress.stored_days * 10 / progress.target_days.max(1);
        if terminal {
            eprint!("\r{line}");
        } else if last_tenth != Some(tenth) {
            eprintln!("{line}");
            last_tenth = Some(tenth);
        }
    };
    let outcome = backfill::pass(&core, args.days, every, &mut draw).await;
    if terminal {
        eprintln!();
    }
    core.inner.cleanup().await;
    outcome.map_err(fetch_failed)?;
    let done = core.progress_now();
    writeln!(
        out,
        "{}: {} of {} settled days stored ({} not storable: their answers had warnings)",
        core.id, done.stored_days, done.target_days, done.unstorable_days
    )?;
    Ok(())
}

/// `[#####.....] 45/90 days`.
fn bar(progress: &Progress) -> String {
    const WIDTH: u32 = 30;
    let filled =
        progress.stored_days.min(progress.target_days) * WIDTH / progress.target_days.max(1);
    format!(
        "[{}{}] {}/{} days",
        "#".repeat(filled as usize),
        ".".repeat((WIDTH - filled) as usize),
        progress.stored_days,
        progress.target_days
    )
}

/// Prints every difference; `Ok(false)` when there is one.
pub async fn verify_command(
    args: &HistoryVerifyArgs,
    out: &mut impl Write,
) -> Result<bool, CliError> {
    let core = core(&args.target).await?;
    let report = verify::verify(&core, args.days, args.sample).await;
    core.inner.cleanup().await;
    let report = report.map_err(fetch_failed)?;
    for difference in &report.differences {
        writeln!(
            out,
            "differs {} {}: stored {} now {}",
            difference.day, difference.dataset, difference.stored, difference.fresh
        )?;
    }
    writeln!(
        out,
        "{}: {} stored day(s) checked, {} difference(s)",
        core.id,
        report.checked,
        report.differences.len()
    )?;
    Ok(report.differences.is_empty())
}

/// Deletes the source's stored days.
pub async fn clear_command(target: &Target, out: &mut impl Write) -> Result<(), CliError> {
    let store = open_store(target.store.as_deref()).await?;
    let deleted = store.clear(&target.source).await?;
    writeln!(out, "{}: {deleted} stored day(s) deleted", target.source)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_the_stored_days() {
        let mut progress = Progress::new(90);
        progress.stored_days = 45;
        assert_eq!(
            bar(&progress),
            format!("[{}{}] 45/90 days", "#".repeat(15), ".".repeat(15))
        );
    }
}
