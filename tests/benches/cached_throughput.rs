//! Cached answers under load versus a bare axum handler sending the same bytes.
//!
//! The hub serves the SQLite demo source (no PostgreSQL needed) with a warm cache; the
//! baseline is an axum router with one route returning the hub's exact cached body as
//! `application/json`. Both servers run on one runtime, the load generator on another (as
//! separate processes would), all on the same machine: 64 connections, each a keep-alive
//! HTTP/1.1 connection of its own driven by a task that sends requests back to back for a
//! fixed time and records each latency. Runs alternate baseline, hub, baseline, hub.
//!
//! Target: hub requests/s >= 0.5 x baseline requests/s.
//!
//! `cargo bench -p metrics-hub-tests --bench cached_throughput` (`BENCH_QUICK=1` for a smoke run)

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{ensure, Context};
use axum::http::header;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use common::{load, ms, summarize, Verdict};
use metrics_hub::hub::HubSettings;
use metrics_hub_tests::{sources_dir, TestHub};
use tokio::runtime::Runtime;

const NAME: &str = "cached_throughput";
const TARGET_RATIO: f64 = 0.5;
const CONNECTIONS: usize = 64;
const PATH: &str = "/api/metrics?days=30";

/// Starts the hub over the demo source and the bare baseline, both on `servers`.
async fn start_servers(
    servers: &Runtime,
    data_dir: &std::path::Path,
) -> anyhow::Result<(TestHub, SocketAddr, Bytes)> {
    let dir = sources_dir(&[("demo.yaml", common::shipped_source("demo.yaml")?)])?;
    let env = HashMap::from([(
        "METRICS_HUB_DATA_DIR".to_owned(),
        data_dir.display().to_string(),
    )]);
    // Answers live longer than the run, so no rebuild lands in the middle of it.
    let settings = HubSettings {
        answer_ttl: Duration::from_secs(3_600),
        ..HubSettings::default()
    };
    let path = dir.path().to_owned();
    // Spawned on the server runtime so the hub's own tasks live there.
    let hub = servers
        .spawn(async move { TestHub::start(&path, &env, settings).await })
        .await??;
    drop(dir);

    let client = reqwest::Client::new();
    let first = client.get(hub.url(PATH)).send().await?;
    ensure!(
        first.status().is_success(),
        "hub answered {}",
        first.status()
    );
    first.bytes().await?;
    let second = client.get(hub.url(PATH)).send().await?;
    ensure!(
        second
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.as_bytes())
            == Some(b"application/json".as_slice()),
        "unexpected content type"
    );
    let body = second.bytes().await?;
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    ensure!(
        json["metadata"]["cached"] == true,
        "the second answer was not cached"
    );

    let bare_body = body.clone();
    let bare = Router::new().route(
        "/api/metrics",
        get(move || {
            let body = bare_body.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], body) }
        }),
    );
    let listener = servers
        .spawn(async { tokio::net::TcpListener::bind("127.0.0.1:0").await })
        .await??;
    let bare_addr = listener.local_addr()?;
    servers.spawn(async move { axum::serve(listener, bare).await });
    Ok((hub, bare_addr, body))
}

fn run(quick: bool, verdict: &mut Verdict) -> anyhow::Result<()> {
    let duration = if quick {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(5)
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("servers")
        .enable_all()
        .build()?;
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("load")
        .enable_all()
        .build()?;
    let data = tempfile::tempdir()?;

    clients.block_on(async {
        let (hub, bare_addr, body) = start_servers(&servers, data.path()).await?;
        let hub_addr: SocketAddr = hub
            .base
            .strip_prefix("http://")
            .context("hub base is not http://")?
            .parse()?;
        println!(
            "body {} bytes; {CONNECTIONS} connections; {} s per run; {threads} worker threads per side",
            body.len(),
            duration.as_secs_f64()
        );
        let fetches_before = hub.hub.entries()[0].upstream_fetches();
        let mut bare_runs = Vec::new();
        let mut hub_runs = Vec::new();
        for round in 1..=2 {
            let bare = load(bare_addr, PATH, CONNECTIONS, duration, body.len(), None).await?;
            println!(
                "  round {round}: bare axum {:>8.0} req/s",
                bare.requests as f64 / bare.elapsed.as_secs_f64()
            );
            bare_runs.push(bare);
            let served = load(hub_addr, PATH, CONNECTIONS, duration, body.len(), None).await?;
            println!(
                "  round {round}: hub       {:>8.0} req/s",
                served.requests as f64 / served.elapsed.as_secs_f64()
            );
            hub_runs.push(served);
        }
        let (bare_rate, _, bare_errors) = summarize("bare axum, same bytes", &bare_runs);
        let (hub_rate, hub_p99, hub_errors) = summarize("hub, cached /api/metrics", &hub_runs);
        let ratio = hub_rate / bare_rate;
        let fetches = hub.hub.entries()[0].upstream_fetches() - fetches_before;
        verdict.check(
            bare_errors == 0 && hub_errors == 0,
            format!("every answer was 200 with the expected body (errors: bare {bare_errors}, hub {hub_errors})"),
        );
        verdict.check(
            fetches == 0,
            format!("the hub served from cache throughout ({fetches} upstream fetches during load)"),
        );
        println!("  hub p99 latency {}", ms(hub_p99));
        verdict.target(
            quick,
            ratio >= TARGET_RATIO,
            format!("cached hub / bare axum throughput = {ratio:.3} (target >= {TARGET_RATIO:.2})"),
        );
        hub.stop().await
    })?;
    // Dropping a runtime from inside another one panics, so the servers go last, here.
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
