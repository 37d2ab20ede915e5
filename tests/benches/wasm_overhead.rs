//! The host's cost of one `fetch-metrics` through a plugin, excluding the plugin's own work.
//!
//! A `kind: wasm` source over `test-trivial` (no HTTP; it computes a few records from the
//! window and reports the nanoseconds it spent doing so, measured with the host clock, as
//! the summary field `work_ns`). Each sample times `DataSource::fetch_metrics` as the hub
//! calls it: waiting for a pooled instance, switching to the call's fiber, lowering the
//! parameters, the call into the warm instance, lifting the answer and checking it into
//! unified records. Overhead = that time minus `work_ns`. Two windows: 1 day (6 records)
//! and 30 days (35 records), to show what the answer's size costs.
//!
//! Baseline, measured in the same run: one round trip to tokio's blocking pool
//! (`spawn_blocking(|| ()).await`), which is what every call paid before calls ran as
//! fibers in the caller's task.
//!
//! Targets (1-day window): median overhead <= 10 microseconds, and at most the baseline's
//! median (a ratio <= 1, which holds on a slow machine as on a fast one).
//!
//! `cargo bench -p metrics-hub-tests --bench wasm_overhead` (`BENCH_QUICK=1` for a smoke run;
//! the plugins must be built first: `plugins/build.sh`)

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use common::{percentile, Verdict};
use metrics_hub::kinds::wasm::WasmSource;
use metrics_hub::kinds::DataSource;
use metrics_hub::kinds::KindSpec;
use metrics_hub::load;
use metrics_hub::model::QueryParams;
use metrics_hub::plugin::Runtime;
use metrics_hub_tests::plugin_component;

const NAME: &str = "wasm_overhead";
const TARGET: Duration = Duration::from_micros(10);

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn main() -> anyhow::Result<()> {
    let quick = common::quick();
    common::announce(NAME, quick);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(quick))
}

async fn run(quick: bool) -> anyhow::Result<()> {
    let (warmup, samples) = if quick { (100, 1_000) } else { (2_000, 20_000) };
    let component = plugin_component("test-trivial");
    let yaml = format!(
        "id: trivial\nname: Trivial\nkind: wasm\ntimeout: 5s\nconnection:\n  component: {}\n  config:\n    report_work: true\n",
        component.display()
    );
    let spec = load::load_source(Path::new("bench.yaml"), &yaml, &|_| None)
        .map_err(|errors| anyhow::anyhow!("{errors:?}"))?;
    let KindSpec::Wasm(wasm) = spec.kind.clone() else {
        bail!("not a wasm source");
    };
    let source = WasmSource::with_runtime(&spec, wasm, Runtime::new(None)?);
    source.initialize().await?;
    let today = chrono::Utc::now().date_naive();
    let mut verdict = Verdict::default();
    let hop = hop_baseline(warmup, samples).await?;
    for days in [0u32, 29] {
        let params = QueryParams::last_days(days, today);
        for _ in 0..warmup {
            source.fetch_metrics(&params).await?;
        }
        let mut totals = Vec::with_capacity(samples);
        let mut works = Vec::with_capacity(samples);
        let mut overheads = Vec::with_capacity(samples);
        let mut records = 0;
        for _ in 0..samples {
            let started = Instant::now();
            let data = source.fetch_metrics(&params).await?;
            let total = started.elapsed();
            let work = data
                .summary
                .as_ref()
                .and_then(|s| s.get("work_ns"))
                .and_then(|w| w.as_u64())
                .context("the plugin did not report work_ns")?;
            let work = Duration::from_nanos(work);
            records = data.record_count();
            totals.push(total);
            works.push(work);
            overheads.push(total.saturating_sub(work));
        }
        println!(
            "window of {} day(s), {records} records, {samples} calls after {warmup} warm-up calls:",
            days + 1
        );
        for (label, series) in [
            ("whole fetch", &totals),
            ("plugin's own work", &works),
            ("host overhead", &overheads),
        ] {
            println!(
                "  {label:<18} median {:>9}  p90 {:>9}  p99 {:>9}",
                micros(percentile(series, 50.0)),
                micros(percentile(series, 90.0)),
                micros(percentile(series, 99.0)),
            );
        }
        if days == 0 {
            let median = percentile(&overheads, 50.0);
            verdict.target(
                quick,
                median <= TARGET,
                format!(
                    "median host overhead of one fetch {} <= {}",
                    micros(median),
                    micros(TARGET)
                ),
            );
            let ratio = median.as_secs_f64() / hop.as_secs_f64();
            verdict.target(
                quick,
                ratio <= 1.0,
                format!(
                    "median host overhead / one blocking-pool round trip ({}) = {ratio:.2} <= 1.00",
                    micros(hop)
                ),
            );
        }
    }
    source.cleanup().await;
    verdict.finish(NAME);
    Ok(())
}

/// The median round trip of an empty closure through tokio's blocking pool, as the hub's
/// runtime runs it.
async fn hop_baseline(warmup: usize, samples: usize) -> anyhow::Result<Duration> {
    for _ in 0..warmup {
        tokio::task::spawn_blocking(|| ()).await?;
    }
    let mut hops = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        tokio::task::spawn_blocking(|| ()).await?;
        hops.push(started.elapsed());
    }
    println!(
        "baseline: one blocking-pool round trip, {samples} calls: median {:>9}  p99 {:>9}",
        micros(percentile(&hops, 50.0)),
        micros(percentile(&hops, 99.0)),
    );
    Ok(percentile(&hops, 50.0))
}
