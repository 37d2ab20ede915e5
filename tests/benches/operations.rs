//! What operating the hub for months costs, each as a ratio against a baseline measured in
//! the same run:
//!
//! 1. Metrics: cached `/api/metrics` throughput with recording on against recording off
//!    (`serve --no-metrics`), alternating off, on, off, on. Target: on / off >= 0.95.
//! 2. Stale while revalidate: 64 connections for 60 s against a hub whose source has a
//!    2 s TTL and `stale_while_revalidate`, and against the same hub with a TTL longer
//!    than the run; the upstream answers after 20 ms. Target: p99 within 1.5x, i.e. no
//!    request waits for the upstream after warm-up. Reports the upstream queries caused.
//! 3. Reload: 100 source files, one changed: the time from the change to the new
//!    generation serving (through `POST /api/admin/reload`, and through the watcher with
//!    its debounce), against a reload where all 100 changed; checks that the 99 unchanged
//!    sources caused no new upstream query.
//!
//! `cargo bench -p metrics-hub-tests --bench operations` (`BENCH_QUICK=1` for a smoke run)

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use axum::routing::get;
use axum::{Json, Router};
use common::{load, ms, summarize, Verdict, ANY_LENGTH};
use metrics_hub::hub::{watch, HubSettings};
use metrics_hub::telemetry;
use metrics_hub_tests::{serve_in_background, sources_dir, Background, TestHub};
use serde_json::json;
use tokio::runtime::Runtime;

const NAME: &str = "operations";
const CONNECTIONS: usize = 64;

fn addr(hub: &TestHub) -> anyhow::Result<SocketAddr> {
    Ok(hub
        .base
        .strip_prefix("http://")
        .context("not http")?
        .parse()?)
}

/// Starts a hub over `dir` on the server runtime, so its tasks live there.
async fn start_hub(
    servers: &Runtime,
    dir: &Path,
    settings: HubSettings,
) -> anyhow::Result<TestHub> {
    let path = dir.to_owned();
    let hub = servers
        .spawn(async move { TestHub::start(&path, &HashMap::new(), settings).await })
        .await??;
    Ok(hub)
}

/// The length of the body `path` answers once warm (asked twice).
async fn warm(hub: &TestHub, path: &str) -> anyhow::Result<usize> {
    let client = reqwest::Client::new();
    let mut length = 0;
    for _ in 0..2 {
        let answer = client.get(hub.url(path)).send().await?;
        ensure!(
            answer.status().is_success(),
            "{path} answered {}",
            answer.status()
        );
        length = answer.bytes().await?.len();
    }
    Ok(length)
}

async fn metrics_cost(servers: &Runtime, quick: bool, verdict: &mut Verdict) -> anyhow::Result<()> {
    println!("-- 1. /metrics instrumentation on the cached path");
    let duration = if quick {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(5)
    };
    let dir = sources_dir(&[("demo.yaml", common::shipped_source("demo.yaml")?)])?;
    let settings = HubSettings {
        answer_ttl: Duration::from_secs(3_600),
        ..HubSettings::default()
    };
    let hub = start_hub(servers, dir.path(), settings).await?;
    const PATH: &str = "/api/metrics?days=30";
    let length = warm(&hub, PATH).await?;
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for round in 1..=2 {
        for (enabled, runs) in [(false, &mut off), (true, &mut on)] {
            telemetry::set_enabled(enabled);
            let run = load(addr(&hub)?, PATH, CONNECTIONS, duration, length, None).await?;
            let rate = run.requests as f64 / run.elapsed.as_secs_f64();
            println!(
                "  round {round}: metrics {:<3} {rate:>9.0} req/s",
                if enabled { "on" } else { "off" }
            );
            runs.push(run);
        }
    }
    telemetry::set_enabled(true);
    let (off_rate, _, off_errors) = summarize("recording off", &off);
    let (on_rate, _, on_errors) = summarize("recording on", &on);
    verdict.check(
        off_errors + on_errors == 0,
        format!("every answer was 200 ({} errors)", off_errors + on_errors),
    );
    let ratio = on_rate / off_rate;
    verdict.target(
        quick,
        ratio >= 0.95,
        format!("throughput with metrics / without = {ratio:.3} (target >= 0.95)"),
    );
    hub.stop().await
}

/// An upstream answering `{"total_users": 7}` after `delay`, counting requests.
async fn upstream(delay: Duration) -> anyhow::Result<(String, Arc<AtomicUsize>, Background)> {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = Router::new().route(
        "/stats",
        get(move || {
            let hits = counted.clone();
            async move {
                hits.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(delay).await;
                Json(json!({"total_users": 7}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    Ok((base, hits, serve_in_background(listener, app)))
}

fn rest_source(base: &str, cache: &str) -> String {
    format!(
        "id: api\nname: API\nkind: rest\ntimeout: 5s\ncache:\n{cache}connection:\n  base_url: {base}\nqueries:\n  summary:\n    path: /stats\n"
    )
}

async fn stale_under_load(
    servers: &Runtime,
    quick: bool,
    verdict: &mut Verdict,
) -> anyhow::Result<()> {
    println!("-- 2. stale_while_revalidate under load");
    let duration = if quick {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(60)
    };
    let (base, hits, _upstream) = servers.spawn(upstream(Duration::from_millis(20))).await??;
    let mut runs = Vec::new();
    for (label, cache) in [
        ("TTL longer than the run", "  ttl: 1h\n"),
        (
            "TTL 2 s + stale_while_revalidate",
            "  ttl: 2s\n  stale_while_revalidate: 1h\n",
        ),
    ] {
        let dir = sources_dir(&[("api.yaml", rest_source(&base, cache))])?;
        let hub = start_hub(servers, dir.path(), HubSettings::default()).await?;
        const PATH: &str = "/api/metrics?days=7";
        // Warm-up: the first fetch is the only one a request waits for.
        warm(&hub, PATH).await?;
        let before = hits.load(Ordering::Relaxed);
        // Rebuilt answers carry a new timestamp (and `stale`), so lengths vary: any 200.
        let run = load(addr(&hub)?, PATH, CONNECTIONS, duration, ANY_LENGTH, None).await?;
        let queries = hits.load(Ordering::Relaxed) - before;
        let (_, p99, errors) = summarize(label, std::slice::from_ref(&run));
        println!("    {queries} upstream queries during the run");
        runs.push((p99, errors, queries));
        hub.stop().await?;
    }
    let ((long_p99, long_errors, long_queries), (swr_p99, swr_errors, swr_queries)) =
        (runs[0], runs[1]);
    verdict.check(
        long_errors + swr_errors == 0,
        format!("every answer was 200 ({} errors)", long_errors + swr_errors),
    );
    verdict.check(
        long_queries == 0,
        format!("the long TTL caused no upstream query ({long_queries})"),
    );
    let expected = duration.as_secs() / 2;
    verdict.check(
        swr_queries >= 1 && swr_queries as u64 <= expected + 2,
        format!("the 2 s TTL refreshed in the background about every 2 s: {swr_queries} upstream queries in {} s", duration.as_secs()),
    );
    let ratio = swr_p99.as_secs_f64() / long_p99.as_secs_f64();
    verdict.target(
        quick,
        ratio <= 1.5,
        format!("p99 with 2 s TTL + stale_while_revalidate / p99 with long TTL = {} / {} = {ratio:.2} (target <= 1.5)", ms(swr_p99), ms(long_p99)),
    );
    Ok(())
}

fn sql_source(i: usize, users: usize) -> String {
    format!(
        "id: s{i:03}\nname: Source {i}\nkind: sql\ncache:\n  ttl: 1h\nconnection:\n  driver: sqlite\n  url: \"sqlite::memory:\"\nqueries:\n  summary:\n    sql: SELECT {users} AS total_users\n"
    )
}

/// Upstream queries so far, by source id (a rebuilt source counts from zero).
fn upstream_by_id(hub: &TestHub) -> std::collections::BTreeMap<String, u64> {
    let entries = hub.hub.entries();
    entries
        .iter()
        .map(|e| (e.spec.id.clone(), e.upstream_fetches()))
        .collect()
}

/// Rewrites `changed` of the 100 files, reloads, and returns the time until the new
/// generation answers.
async fn timed_reload(
    hub: &TestHub,
    dir: &Path,
    changed: usize,
    users: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for i in 0..changed {
        std::fs::write(dir.join(format!("s{i:03}.yaml")), sql_source(i, users))?;
    }
    let answer = reqwest::Client::new()
        .post(hub.url("/api/admin/reload"))
        .send()
        .await?;
    ensure!(
        answer.status().is_success(),
        "reload answered {}",
        answer.status()
    );
    let report: serde_json::Value = answer.json().await?;
    let took = started.elapsed();
    let changed_ids = report["data"]["changed"].as_array().map_or(0, Vec::len);
    ensure!(
        changed_ids == changed,
        "reload changed {changed_ids}, expected {changed}: {report}"
    );
    Ok(took)
}

async fn reload(servers: &Runtime, quick: bool, verdict: &mut Verdict) -> anyhow::Result<()> {
    println!("-- 3. reload of 100 sources, one changed");
    let files: Vec<(String, String)> = (0..100)
        .map(|i| (format!("s{i:03}.yaml"), sql_source(i, 1)))
        .collect();
    let named: Vec<(&str, String)> = files.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
    let dir = sources_dir(&named)?;
    let settings = HubSettings {
        sources_dir: Some(dir.path().to_owned()),
        ..HubSettings::default()
    };
    let hub = start_hub(servers, dir.path(), settings).await?;
    let all = "/api/metrics?days=7";
    warm(&hub, all).await?;
    let rounds = if quick { 2 } else { 10 };
    let (mut one, mut every) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let before = upstream_by_id(&hub);
        one.push(timed_reload(&hub, dir.path(), 1, 100 + round).await?);
        warm(&hub, all).await?;
        let after = upstream_by_id(&hub);
        let unchanged_queries: u64 = before
            .iter()
            .filter(|(id, _)| id.as_str() != "s000")
            .map(|(id, count)| after.get(id).copied().unwrap_or(0).saturating_sub(*count))
            .sum();
        let changed_queries = after.get("s000").copied().unwrap_or(0);
        verdict.check(
            unchanged_queries == 0 && changed_queries == 1,
            format!("round {round}: after a reload with one change, the 99 unchanged sources made {unchanged_queries} upstream queries and the rebuilt one {changed_queries}"),
        );
        every.push(timed_reload(&hub, dir.path(), 100, 1_000 + round).await?);
        warm(&hub, all).await?;
    }
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let (one, every) = (median(&mut one), median(&mut every));
    println!("  reload, 1 of 100 changed:   median {}", ms(one));
    println!("  reload, 100 of 100 changed: median {}", ms(every));
    println!(
        "  one changed / all changed = {:.2}",
        one.as_secs_f64() / every.as_secs_f64()
    );

    let debounce = Duration::from_millis(100);
    let _watch = watch::watch_dir(hub.hub.clone(), dir.path(), debounce)?;
    let generation = hub.hub.current().number;
    let started = Instant::now();
    std::fs::write(dir.path().join("s050.yaml"), sql_source(50, 7))?;
    while hub.hub.current().number == generation {
        ensure!(
            started.elapsed() < Duration::from_secs(10),
            "the watcher never reloaded"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "  through the watcher: change to new generation {} (debounce {})",
        ms(started.elapsed()),
        ms(debounce)
    );
    hub.stop().await
}

fn run(quick: bool, verdict: &mut Verdict) -> anyhow::Result<()> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = |name: &str| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(name)
            .enable_all()
            .build()
    };
    let (servers, clients) = (runtime("servers")?, runtime("load")?);
    clients.block_on(async {
        metrics_cost(&servers, quick, verdict).await?;
        stale_under_load(&servers, quick, verdict).await?;
        reload(&servers, quick, verdict).await
    })?;
    drop(clients);
    servers.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}

fn main() {
    let quick = common::quick();
    common::announce(NAME, quick);
    let mut verdict = Verdict::default();
    if let Err(err) = run(quick, &mut verdict) {
        verdict.check(false, format!("the benchmark could not run: {err:#}"));
    }
    verdict.finish(NAME);
}
