//! Shared pieces of the benchmark binaries: the quick/full mode switch, latency statistics,
//! PostgreSQL loaded with the demo events, and the pass/fail verdict.
//!
//! Each bench binary includes this with `mod common;` and uses only part of it, hence the
//! `dead_code` allowance below: what one binary leaves unused another one needs.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::header;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Barrier;

use anyhow::Context;
use chrono::NaiveDate;
use metrics_hub::template::BindValue;
use metrics_hub_tests::{repo_root, Postgres};
use sqlx::PgPool;

/// Quick mode: a smoke run of a few seconds that proves the bench works, not a measurement.
///
/// On when `BENCH_QUICK` is set to anything but `0` or empty, and also when the binary is
/// not given `--bench` (that is, `cargo test --benches` runs it as a test, the way
/// criterion's test mode does); `cargo bench` always passes `--bench`.
pub fn quick() -> bool {
    let forced = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    forced || !std::env::args().any(|arg| arg == "--bench")
}

/// Prints the mode line every bench starts with.
pub fn announce(name: &str, quick: bool) {
    let mode = if quick {
        "QUICK (smoke run: figures are indicative, targets are not enforced)"
    } else {
        "FULL"
    };
    println!("== {name} — mode {mode}");
}

/// The value at percentile `p` (0..=100) of `samples`, by nearest rank.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds with three decimals, for printing.
pub fn ms(duration: Duration) -> String {
    format!("{:.3} ms", duration.as_secs_f64() * 1e3)
}

/// This process's resident set size (VmRSS), in bytes.
pub fn rss() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS in /proc/self/status"))?;
    Ok(kb * 1024)
}

/// `bytes` in MiB.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// A source file shipped in the repository's `sources.d/`.
pub fn shipped_source(name: &str) -> anyhow::Result<String> {
    let path: PathBuf = repo_root().join("sources.d").join(name);
    std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
}

/// A PostgreSQL server whose `events` table holds the demo events ending `today`, vacuumed
/// and analyzed so that plans and hint bits do not change during the measurement.
pub async fn postgres_with_demo_events(today: NaiveDate) -> anyhow::Result<(Postgres, PgPool)> {
    let pg = Postgres::start()?;
    let pool = PgPool::connect(pg.url()).await?;
    let events = metrics_hub::kinds::sql::demo::generate(today);
    metrics_hub::kinds::sql::demo::load_postgres(&pool, &events).await?;
    sqlx::query("VACUUM ANALYZE events").execute(&pool).await?;
    println!(
        "PostgreSQL at {} holds {} demo events ending {today}",
        pg.url(),
        events.len()
    );
    Ok((pg, pool))
}

/// The env map a hub loads `postgres.yaml` with.
pub fn postgres_env(url: &str) -> HashMap<String, String> {
    HashMap::from([("DATABASE_URL".to_owned(), url.to_owned())])
}

/// Binds rendered values in order with their SQL types, as a hand-written client would.
pub fn bind_values<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    binds: &[BindValue],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    for value in binds {
        query = match value {
            BindValue::Text(text) => query.bind(text.clone()),
            BindValue::Integer(number) => query.bind(*number),
            BindValue::Float(number) => query.bind(*number),
            BindValue::Bool(flag) => query.bind(*flag),
            BindValue::Date(date) => query.bind(*date),
        };
    }
    query
}

/// What one load run measured.
pub struct Run {
    pub requests: usize,
    pub errors: usize,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
}

/// For [`load`]: accept any body length (answers whose bytes change, such as rebuilt
/// ones with a fresh timestamp).
pub const ANY_LENGTH: usize = usize::MAX;

/// Drives `connections` keep-alive connections to `addr` for `duration`, each sending
/// `GET path` back to back (with `Authorization: Bearer token` when given) and checking
/// that the answer is 200 with `expected_len` bytes.
pub async fn load(
    addr: SocketAddr,
    path: &'static str,
    connections: usize,
    duration: Duration,
    expected_len: usize,
    token: Option<&'static str>,
) -> anyhow::Result<Run> {
    // Everyone connects first, then starts together, so the clock covers only requests.
    let ready = Arc::new(Barrier::new(connections + 1));
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let ready = ready.clone();
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            let driver = tokio::spawn(connection);
            let mut latencies = Vec::with_capacity(16_384);
            let mut errors = 0usize;
            ready.wait().await;
            let deadline = Instant::now() + duration;
            while Instant::now() < deadline {
                let mut request = hyper::Request::get(path).header(header::HOST, addr.to_string());
                if let Some(token) = token {
                    request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
                }
                let request = request.body(Empty::<Bytes>::new())?;
                let sent = Instant::now();
                sender.ready().await?;
                let response = sender.send_request(request).await?;
                let ok = response.status() == hyper::StatusCode::OK;
                let body = response.into_body().collect().await?.to_bytes();
                latencies.push(sent.elapsed());
                if !ok || (expected_len != ANY_LENGTH && body.len() != expected_len) {
                    errors += 1;
                }
            }
            drop(sender);
            let _ = driver.await;
            Ok::<_, anyhow::Error>((latencies, errors))
        }));
    }
    ready.wait().await;
    let started = Instant::now();
    let mut run = Run {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for task in tasks {
        let (latencies, errors) = task.await??;
        run.requests += latencies.len();
        run.errors += errors;
        run.latencies.extend(latencies);
    }
    run.elapsed = started.elapsed();
    Ok(run)
}

/// Sums runs of one target: requests over total time, latencies pooled.
pub fn summarize(label: &str, runs: &[Run]) -> (f64, Duration, usize) {
    let requests: usize = runs.iter().map(|r| r.requests).sum();
    let errors: usize = runs.iter().map(|r| r.errors).sum();
    let seconds: f64 = runs.iter().map(|r| r.elapsed.as_secs_f64()).sum();
    let latencies: Vec<Duration> = runs.iter().flat_map(|r| r.latencies.clone()).collect();
    let rate = requests as f64 / seconds;
    let p99 = percentile(&latencies, 99.0);
    println!(
        "  {label:<28} {rate:>10.0} req/s  p50 {:>10}  p99 {:>10}  max {:>10}  ({requests} requests, {errors} errors, {seconds:.1} s)",
        ms(percentile(&latencies, 50.0)),
        ms(p99),
        ms(percentile(&latencies, 100.0)),
    );
    (rate, p99, errors)
}

/// Resident memory of this process, in bytes (from /proc).
pub fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// A benchmark's `main`: announces `name` and its mode, runs `bench` on a multi-threaded
/// runtime and turns its verdict into the process exit code.
pub fn main(
    name: &str,
    bench: impl AsyncFnOnce(bool, &mut Verdict) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let quick = quick();
    announce(name, quick);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut verdict = Verdict::default();
    runtime.block_on(bench(quick, &mut verdict))?;
    verdict.finish(name);
    Ok(())
}

/// Collects target checks and turns them into the process exit code.
#[derive(Default)]
pub struct Verdict {
    failures: Vec<String>,
}

impl Verdict {
    /// A performance target: enforced in full mode only, since quick runs take too few
    /// samples to mean anything.
    pub fn target(&mut self, quick: bool, passed: bool, what: String) {
        let tag = match (passed, quick) {
            (true, _) => "PASS",
            (false, true) => "MISS (not enforced in quick mode)",
            (false, false) => "FAIL",
        };
        println!("[{tag}] {what}");
        if !passed && !quick {
            self.failures.push(what);
        }
    }

    /// A correctness check: enforced in every mode.
    pub fn check(&mut self, passed: bool, what: String) {
        println!("[{}] {what}", if passed { "PASS" } else { "FAIL" });
        if !passed {
            self.failures.push(what);
        }
    }

    /// Exits non-zero when anything enforced failed.
    pub fn finish(self, name: &str) {
        if self.failures.is_empty() {
            println!("== {name}: all enforced checks passed");
        } else {
            println!(
                "== {name}: {} enforced check(s) failed:",
                self.failures.len()
            );
            for failure in &self.failures {
                println!("   - {failure}");
            }
            std::process::exit(1);
        }
    }
}
