//! A 90-day window answered from the history store versus the source asked directly.
//!
//! The demo (SQLite) and the PostgreSQL source over the same demo events, each with
//! `history:` and its 90 settled days backfilled into an embedded SQLite store. Two
//! declarations per source: the additive datasets alone (daily and features, which the
//! store answers from stored days plus the open days), and the full file (whose summary
//! and clients hold distinct counts and are queried for the window either way). Each
//! sample is a cold answer (no cache in the way) of the source layer: the store path
//! (`Core::answer`) and the direct path (the same source's `fetch_metrics`), interleaved.
//! Every stored answer is checked equal to the direct one first.
//!
//! Target: median stored / median direct < 0.1 for the additive datasets of each source;
//! the full answer's ratio is reported.
//!
//! `cargo bench -p metrics-hub-tests --bench history` (`BENCH_QUICK=1` for a smoke run)

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::Utc;
use common::{ms, percentile, Verdict};
use metrics_hub::history::{backfill, Core, Store};
use metrics_hub::kinds;
use metrics_hub::load;
use metrics_hub::model::QueryParams;
use metrics_hub_tests::sources_dir;

const NAME: &str = "history";
const TARGET_RATIO: f64 = 0.1;
const DAYS: u32 = 89;

fn main() -> anyhow::Result<()> {
    common::main(NAME, run)
}

/// The shipped `file` with `history:` backfilled at full speed, and with only its
/// additive datasets (daily and features) when `additive_only`.
fn declaration(file: &str, additive_only: bool) -> anyhow::Result<String> {
    let mut document: serde_yaml::Value = serde_yaml::from_str(file)?;
    let map = document.as_mapping_mut().context("not a mapping")?;
    let history = "{settle: 1d, backfill: 90d, backfill_every: 0s}";
    map.insert("history".into(), serde_yaml::from_str(history)?);
    if additive_only {
        let queries = map
            .get_mut("queries")
            .and_then(serde_yaml::Value::as_mapping_mut)
            .context("no queries")?;
        queries.remove("summary");
        queries.remove("clients");
    }
    Ok(serde_yaml::to_string(&document)?)
}

struct Case {
    label: String,
    core: Arc<Core>,
}

async fn case(
    name: &str,
    yaml: String,
    env: &HashMap<String, String>,
    store: &Arc<Store>,
) -> anyhow::Result<Case> {
    let dir = sources_dir(&[(name, yaml)])?;
    let loaded = load::load_dir_with(dir.path(), &|key| env.get(key).cloned())?;
    if !loaded.broken.is_empty() {
        bail!("{name} does not load: {:?}", loaded.broken);
    }
    let spec = loaded.sources.first().context("no source")?;
    let history = spec.history.clone().context("no history")?;
    let inner = kinds::build(spec);
    inner.initialize().await?;
    let core = Arc::new(Core::new(spec, history, inner, store.clone()));
    let started = Instant::now();
    backfill::pass(&core, 90, Duration::ZERO, &mut |_| {}).await?;
    let datasets: Vec<&str> = spec.kind.datasets().iter().map(|d| d.as_str()).collect();
    let label = format!("{} [{}]", spec.id, datasets.join(", "));
    println!(
        "{label}: 90 settled days backfilled in {}",
        ms(started.elapsed())
    );
    Ok(Case { label, core })
}

/// Median stored and direct times of `case` over `samples` interleaved pairs.
async fn measure(
    case: &Case,
    params: &QueryParams,
    samples: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let stored = case.core.answer(params).await?;
    let mut direct = case.core.inner.fetch_metrics(params).await?;
    let mut compared = stored.clone();
    compared.history = None;
    compared.warnings.clear();
    for rows in [
        &mut compared.features,
        &mut direct.features,
        &mut compared.clients,
        &mut direct.clients,
    ]
    .into_iter()
    .flatten()
    {
        rows.sort_by_key(|row| serde_json::Value::Object(row.clone()).to_string());
    }
    if compared != direct {
        bail!(
            "{}: the stored answer differs from the direct one",
            case.label
        );
    }
    let note = stored.history.context("no history note")?;
    if note.bypassed.is_some() || note.stored_days < 80 {
        bail!("{}: the store did not answer: {note:?}", case.label);
    }
    let (mut from_store, mut from_source) = (Vec::new(), Vec::new());
    for i in 0..samples {
        for first in [i % 2 == 0, i % 2 == 1] {
            let started = Instant::now();
            if first {
                case.core.answer(params).await?;
                from_store.push(started.elapsed());
            } else {
                case.core.inner.fetch_metrics(params).await?;
                from_source.push(started.elapsed());
            }
        }
    }
    Ok((percentile(&from_store, 0.5), percentile(&from_source, 0.5)))
}

async fn run(quick: bool, verdict: &mut Verdict) -> anyhow::Result<()> {
    let samples = if quick { 3 } else { 30 };
    let today = Utc::now().date_naive();
    let (pg, _loader) = common::postgres_with_demo_events(today).await?;
    let data = tempfile::tempdir()?;
    let mut env = common::postgres_env(pg.url());
    env.insert(
        "METRICS_HUB_DATA_DIR".into(),
        data.path().display().to_string(),
    );
    let store = Arc::new(Store::open_in(data.path()).await?);
    let params = QueryParams::last_days(DAYS, today);
    println!(
        "window: {} to {} (90 days), {samples} samples per side",
        params.start_date, params.end_date
    );
    for name in ["demo.yaml", "postgres.yaml"] {
        let file = common::shipped_source(name)?;
        for additive_only in [true, false] {
            let case = case(name, declaration(&file, additive_only)?, &env, &store).await?;
            let (stored, direct) = measure(&case, &params, samples).await?;
            let ratio = stored.as_secs_f64() / direct.as_secs_f64();
            println!(
                "{}: stored {} vs direct {} (median), ratio {ratio:.3}",
                case.label,
                ms(stored),
                ms(direct)
            );
            if additive_only {
                verdict.target(
                    quick,
                    ratio < TARGET_RATIO,
                    format!("{}: stored/direct {ratio:.3} < {TARGET_RATIO}", case.label),
                );
            }
            case.core.inner.cleanup().await;
        }
    }
    Ok(())
}
