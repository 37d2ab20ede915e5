//! Resident memory of the hub with two plugin sources, idle and after many plugin-backed
//! requests: instances are reused, so memory must plateau rather than grow per request.
//!
//! The hub serves `test-trivial` and `test-malformed` (in its well-formed mode) as two
//! `kind: wasm` sources with every cache off (source TTL 0s, merged-answer TTL 0), so each
//! HTTP request to `/api/metrics` calls both plugins. Resident set size (VmRSS of this
//! process, which holds the hub and its small HTTP client) is read after a warm-up
//! (idle), halfway and at the end; the windows vary between 1 and 30 days.
//!
//! Target: no growth beyond noise between halfway and the end (<= 4 MiB).
//!
//! `cargo bench -p metrics-hub-tests --bench wasm_memory` (`BENCH_QUICK=1` for a smoke run;
//! the plugins must be built first: `plugins/build.sh`)

mod common;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::ensure;
use common::{mib, rss, Verdict};
use metrics_hub::hub::HubSettings;
use metrics_hub_tests::{plugin_component, sources_dir, TestHub};

const NAME: &str = "wasm_memory";
const NOISE: u64 = 4 * 1024 * 1024;

fn main() -> anyhow::Result<()> {
    let quick = common::quick();
    common::announce(NAME, quick);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(quick))
}

async fn requests(
    hub: &TestHub,
    client: &reqwest::Client,
    range: std::ops::Range<usize>,
) -> anyhow::Result<()> {
    for i in range {
        let days = 1 + i % 30;
        let response = client
            .get(hub.url(&format!("/api/metrics?days={days}")))
            .send()
            .await?;
        ensure!(
            response.status().is_success(),
            "status {}",
            response.status()
        );
        let body: serde_json::Value = response.json().await?;
        ensure!(
            body["metadata"]["sources"] == serde_json::json!(["malformed", "trivial"]),
            "a plugin failed: {body}"
        );
    }
    Ok(())
}

async fn run(quick: bool) -> anyhow::Result<()> {
    let total = if quick { 1_000 } else { 10_000 };
    let source = |id: &str, plugin: &str, config: &str| {
        format!(
            "id: {id}\nname: {id}\nkind: wasm\ntimeout: 5s\ncache:\n  ttl: 0s\nconnection:\n  component: {}\n  config:\n{config}",
            plugin_component(plugin).display()
        )
    };
    let dir = sources_dir(&[
        (
            "trivial.yaml",
            source("trivial", "test-trivial", "    report_work: false\n"),
        ),
        (
            "malformed.yaml",
            source("malformed", "test-malformed", "    mode: well-formed\n"),
        ),
    ])?;
    let settings = HubSettings {
        answer_ttl: Duration::ZERO,
        ..HubSettings::default()
    };
    // Loading source files compiles the JSON Schema once per process, which takes a large
    // share of the hub's memory by itself; do it first so that the plugins' share shows.
    let _ = metrics_hub::load::load_source(
        std::path::Path::new("warm-up.yaml"),
        "id: x\nname: x\nkind: wasm\nconnection:\n  component: x.wasm\n",
        &|_| None,
    );
    let before = rss()?;
    let hub = TestHub::start(dir.path(), &HashMap::new(), settings).await?;
    let started_hub = rss()?;
    let client = reqwest::Client::new();
    requests(&hub, &client, 0..100).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle = rss()?;
    let started = std::time::Instant::now();
    requests(&hub, &client, 0..total / 2).await?;
    let half = rss()?;
    requests(&hub, &client, total / 2..total).await?;
    let end = rss()?;
    let took = started.elapsed();
    println!(
        "hub with two plugin sources, {total} requests in {took:?} (each calls both plugins):"
    );
    println!("  RSS before the hub (schema compiled)   {}", mib(before));
    println!(
        "  RSS with the hub started (plugins in)  {}",
        mib(started_hub)
    );
    println!("  RSS idle (after 100 warm-up requests)  {}", mib(idle));
    println!(
        "  RSS after {:>6} requests              {}",
        total / 2,
        mib(half)
    );
    println!("  RSS after {total:>6} requests              {}", mib(end));
    hub.stop().await?;

    let mut verdict = Verdict::default();
    let growth = end.saturating_sub(half);
    verdict.target(
        quick,
        growth <= NOISE,
        format!(
            "RSS growth over the second half {} <= {}",
            mib(growth),
            mib(NOISE)
        ),
    );
    verdict.finish(NAME);
    Ok(())
}
