//! The HTTP edge measured: the cost of API tokens on the cached path, and what 1,000 slow
//! clients cost the well-behaved ones.
//!
//! - Soak: 64 keep-alive connections on the cached `/api/metrics` of a hub that checks a
//!   read token on every request, against the same load on an open hub, alternating in
//!   the same run (6 x 10 s per side). Targets: 0 errors, authenticated throughput >= 0.9
//!   x open throughput, and the process's resident memory flat within 5 MiB from the
//!   start of the soak to its end, not counting the latency samples the load generator
//!   (in this same process) keeps. p99 latencies are reported.
//! - Slow clients: the same 64 connections' throughput while 1,000 other connections each
//!   trickle a request head one byte a second, as a ratio of the throughput without them
//!   (reported; target >= 0.8).
//!
//! `cargo bench -p metrics-hub-tests --bench edge_soak` (`BENCH_QUICK=1` for a smoke run)

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use common::{load, ms, resident_bytes, summarize, Run, Verdict};
use metrics_hub::api::access::{Access, AccessSettings, Scope, TokenStore};
use metrics_hub::api::edge::conn::Timeouts;
use metrics_hub::api::edge::EdgeSettings;
use metrics_hub::api::serve::ServeSettings;
use metrics_hub::api::ApiSettings;
use metrics_hub::hub::HubSettings;
use metrics_hub_tests::{sources_dir, TestHub};
use tokio::io::AsyncWriteExt;
use tokio::runtime::Runtime;

const NAME: &str = "edge_soak";
const CONNECTIONS: usize = 64;
const PATH: &str = "/api/metrics?days=30";
const TOKEN: &str = "mh_soak_read_token_0123456789abcdef0123456789abcdef0123456789ab";
const AUTH_RATIO: f64 = 0.9;
const SLOW_RATIO: f64 = 0.8;
const FLAT_BYTES: u64 = 5 << 20;
const SLOW_CLIENTS: usize = 1000;

fn serve_settings(token: bool) -> ServeSettings {
    let mut tokens = TokenStore::default();
    if token {
        tokens.add_env_list(Scope::Read, TOKEN);
    }
    let access = Access::for_listener(
        "127.0.0.1:0".parse().unwrap(),
        AccessSettings {
            tokens,
            ..AccessSettings::default()
        },
    )
    .unwrap();
    ServeSettings {
        api: ApiSettings {
            access: Arc::new(access),
            ..ApiSettings::default()
        },
        edge: EdgeSettings {
            // Slow clients must stay connected for the whole run.
            timeouts: Timeouts {
                header_read: Duration::from_secs(600),
                idle: Duration::from_secs(600),
            },
            max_connections: 4096,
            ..EdgeSettings::default()
        },
    }
}

/// A hub over the demo, warm; its address and the cached body's length.
async fn start(
    servers: &Runtime,
    data: &std::path::Path,
    token: bool,
) -> anyhow::Result<(TestHub, SocketAddr, usize)> {
    let dir = sources_dir(&[("demo.yaml", common::shipped_source("demo.yaml")?)])?;
    let env = HashMap::from([(
        "METRICS_HUB_DATA_DIR".to_owned(),
        data.display().to_string(),
    )]);
    let settings = HubSettings {
        answer_ttl: Duration::from_secs(3_600),
        ..HubSettings::default()
    };
    let path = dir.path().to_owned();
    let serve = serve_settings(token);
    let hub = servers
        .spawn(async move { TestHub::start_with(&path, &env, settings, serve).await })
        .await??;
    let client = reqwest::Client::new();
    let mut body = Vec::new();
    for _ in 0..2 {
        let request = client.get(hub.url(PATH)).bearer_auth(TOKEN);
        body = request
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?
            .to_vec();
    }
    let addr = hub.base.strip_prefix("http://").context("http")?.parse()?;
    Ok((hub, addr, body.len()))
}

/// Resident bytes of the latencies `runs` hold (written pages only).
fn latency_bytes(runs: &[Run]) -> u64 {
    let samples: usize = runs.iter().map(|run| run.latencies.len()).sum();
    (samples * std::mem::size_of::<Duration>()) as u64
}

/// Connections that each send a request head one byte a second and never finish it.
async fn slow_clients(
    addr: SocketAddr,
    count: usize,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    for _ in 0..count {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        tasks.push(tokio::spawn(async move {
            let head = b"GET /api/metrics?days=30 HTTP/1.1\r\nHost: slow\r\nX-Slow: ";
            for byte in head.iter().chain(std::iter::repeat(&b'a')) {
                if stream.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }));
    }
    Ok(tasks)
}

fn run(quick: bool, verdict: &mut Verdict) -> anyhow::Result<()> {
    let (rounds, duration) = if quick {
        (1, Duration::from_millis(500))
    } else {
        (6, Duration::from_secs(10))
    };
    let _ = metrics_hub::api::edge::raise_fd_limit();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let build = |name: &str| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(name)
            .enable_all()
            .build()
    };
    let (servers, clients) = (build("servers")?, build("load")?);
    let data = tempfile::tempdir()?;
    clients.block_on(async {
        let (open, open_addr, open_len) = start(&servers, data.path(), false).await?;
        let (guarded, guarded_addr, guarded_len) = start(&servers, data.path(), true).await?;
        println!("{CONNECTIONS} connections; {rounds} x {} s per side", duration.as_secs_f64());
        let (mut open_runs, mut guarded_runs): (Vec<Run>, Vec<Run>) = (Vec::new(), Vec::new());
        let rss_start = resident_bytes();
        for _ in 0..rounds {
            open_runs.push(load(open_addr, PATH, CONNECTIONS, duration, open_len, None).await?);
            guarded_runs.push(load(guarded_addr, PATH, CONNECTIONS, duration, guarded_len, Some(TOKEN)).await?);
        }
        // The load generator runs in this process and keeps every latency it measured;
        // those buffers are the client's, not the hub's, so they are taken out.
        let rss_end = resident_bytes().saturating_sub(latency_bytes(&open_runs) + latency_bytes(&guarded_runs));
        let (open_rate, open_p99, open_errors) = summarize("open hub", &open_runs);
        let (guarded_rate, guarded_p99, guarded_errors) = summarize("hub checking a read token", &guarded_runs);
        verdict.check(open_errors + guarded_errors == 0, format!("every answer was 200 with the cached body (errors: open {open_errors}, token {guarded_errors})"));
        println!("  p99: open {}, with token {}", ms(open_p99), ms(guarded_p99));
        let ratio = guarded_rate / open_rate;
        verdict.target(quick, ratio >= AUTH_RATIO, format!("token / open throughput = {ratio:.3} (target >= {AUTH_RATIO})"));
        let grew = rss_end.saturating_sub(rss_start);
        println!("  resident memory: {} MiB at the start of the soak, {} MiB at its end (without the load generator's latency samples)", rss_start >> 20, rss_end >> 20);
        verdict.target(quick, grew <= FLAT_BYTES, format!("memory grew {:.2} MiB over the soak (target <= 5 MiB)", grew as f64 / 1048576.0));

        let before = load(guarded_addr, PATH, CONNECTIONS, duration, guarded_len, Some(TOKEN)).await?;
        let slow = slow_clients(guarded_addr, if quick { 100 } else { SLOW_CLIENTS }).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let during = load(guarded_addr, PATH, CONNECTIONS, duration, guarded_len, Some(TOKEN)).await?;
        for task in &slow {
            task.abort();
        }
        let (calm, _, _) = summarize("without slow clients", &[before]);
        let (busy, _, errors) = summarize("with slow clients connected", &[during]);
        verdict.check(errors == 0, format!("no errors while slow clients were connected ({errors})"));
        let ratio = busy / calm;
        verdict.target(quick, ratio >= SLOW_RATIO, format!("throughput with {} slow clients / without = {ratio:.3} (target >= {SLOW_RATIO})", slow.len()));
        open.stop().await?;
        guarded.stop().await
    })?;
    drop(clients);
    servers.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}

fn main() {
    // The load generator shares this process and frees a 256 KiB latency buffer per
    // connection after every run. glibc raises its mmap threshold after the first such
    // free and keeps the later ones in its arenas (28 MiB over the soak, none of it the
    // hub's); a fixed threshold returns them, so the RSS delta measures the hub.
    // SAFETY: mallopt only tunes the allocator; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
    let quick = common::quick();
    common::announce(NAME, quick);
    let mut verdict = Verdict::default();
    if let Err(err) = run(quick, &mut verdict) {
        verdict.check(false, format!("the benchmark could not run: {err:#}"));
    }
    verdict.finish(NAME);
}
