//! The HTTP edge measured: the cost of API tokens on the cached path, and what 1,000 slow
//! clients cost the well-behaved ones.
//!
//! - Soak: 64 keep-alive connections on the cached `/api/metrics` of a hub that checks a
//!   read token on every request, against the same load on an open hub, alternating in
//!   the same run (6 x 10 s per side). Targets: 0 errors, authenticated throughput >= 0.9
//!   x open throughput, and the hubs' resident memory flat within 5 MiB from the start of
//!   the soak to its end. p99 latencies are reported. The load generator is this same
//!   binary re-run as a child process (`--load-generator`) that sends back counts and a
//!   fixed-size latency histogram, so the resident memory read from `/proc/self` is the
//!   hubs' and not the client's; it is printed after every round as well.
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
use common::{ms, resident_bytes, Verdict};
use metrics_hub::api::access::{Access, AccessSettings, Scope, TokenStore};
use metrics_hub::api::edge::conn::Timeouts;
use metrics_hub::api::edge::EdgeSettings;
use metrics_hub::api::serve::ServeSettings;
use metrics_hub::api::ApiSettings;
use metrics_hub::hub::HubSettings;
use metrics_hub_tests::{sources_dir, TestHub};
use std::io::Write;
use tokio::io::AsyncWriteExt;
use tokio::runtime::Runtime;

const NAME: &str = "edge_soak";
/// The argument that makes this binary the load generator instead of the benchmark.
const GENERATOR: &str = "--load-generator";
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
    let (servers, clients) = (build("servers")?, build("driver")?);
    let data = tempfile::tempdir()?;
    clients.block_on(async {
        let (open, open_addr, open_len) = start(&servers, data.path(), false).await?;
        let (guarded, guarded_addr, guarded_len) = start(&servers, data.path(), true).await?;
        println!("{CONNECTIONS} connections; {rounds} x {} s per side", duration.as_secs_f64());
        // Allocated before the first reading, and merged into in place: what this
        // process holds for the client stays the same size however long the soak runs.
        let (mut open_runs, mut guarded_runs) = (Tally::default(), Tally::default());
        let rss_start = resident_bytes();
        for round in 1..=rounds {
            open_runs.add(&load(open_addr, duration, open_len, false).await?);
            guarded_runs.add(&load(guarded_addr, duration, guarded_len, true).await?);
            let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count());
            println!("  round {round}: hubs' resident memory {:.1} MiB, {fds} open files", resident_bytes() as f64 / 1048576.0);
        }
        let rss_end = resident_bytes();
        let (open_rate, open_p99, open_errors) = open_runs.summarize("open hub");
        let (guarded_rate, guarded_p99, guarded_errors) = guarded_runs.summarize("hub checking a read token");
        verdict.check(open_errors + guarded_errors == 0, format!("every answer was 200 with the cached body (errors: open {open_errors}, token {guarded_errors})"));
        println!("  p99: open {}, with token {}", ms(open_p99), ms(guarded_p99));
        let ratio = guarded_rate / open_rate;
        verdict.target(quick, ratio >= AUTH_RATIO, format!("token / open throughput = {ratio:.3} (target >= {AUTH_RATIO})"));
        let grew = rss_end.saturating_sub(rss_start);
        println!("  hubs' resident memory: {:.1} MiB at the start of the soak, {:.1} MiB at its end", rss_start as f64 / 1048576.0, rss_end as f64 / 1048576.0);
        verdict.target(quick, grew <= FLAT_BYTES, format!("memory grew {:.2} MiB over the soak (target <= 5 MiB)", grew as f64 / 1048576.0));

        let before = load(guarded_addr, duration, guarded_len, true).await?;
        let slow = slow_clients(guarded_addr, if quick { 100 } else { SLOW_CLIENTS }).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let during = load(guarded_addr, duration, guarded_len, true).await?;
        for task in &slow {
            task.abort();
        }
        let (calm, _, _) = before.summarize("without slow clients");
        let (busy, _, errors) = during.summarize("with slow clients connected");
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

/// Latencies are counted in buckets of this width, up to [`BUCKETS`] of them (the last
/// takes everything slower).
const BUCKET: Duration = Duration::from_micros(10);
const BUCKETS: usize = 20_000;

/// What load runs measured, summed: counts and a fixed-size latency histogram, so that
/// the memory this process reads is the hubs' and not a growing list of samples.
struct Tally {
    requests: u64,
    errors: u64,
    elapsed: Duration,
    histogram: Vec<u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            requests: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            histogram: vec![0; BUCKETS],
        }
    }
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        for (mine, theirs) in self.histogram.iter_mut().zip(&other.histogram) {
            *mine += theirs;
        }
    }

    /// The latency below which `p` percent of requests were answered (bucket resolution).
    fn percentile(&self, p: f64) -> Duration {
        let rank = ((p / 100.0) * self.requests as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, count) in self.histogram.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return BUCKET * (bucket as u32 + 1);
            }
        }
        BUCKET * BUCKETS as u32
    }

    /// Prints the line `common::summarize` prints; returns rate, p99 and errors.
    fn summarize(&self, label: &str) -> (f64, Duration, u64) {
        let seconds = self.elapsed.as_secs_f64();
        let rate = self.requests as f64 / seconds;
        let p99 = self.percentile(99.0);
        println!(
            "  {label:<28} {rate:>10.0} req/s  p50 {:>10}  p99 {:>10}  max {:>10}  ({} requests, {} errors, {seconds:.1} s)",
            ms(self.percentile(50.0)),
            ms(p99),
            ms(self.percentile(100.0)),
            self.requests,
            self.errors,
        );
        (rate, p99, self.errors)
    }
}

/// Runs [`common::load`] in a child process (this binary with `--load-generator`), so
/// the client's connections and buffers never count towards the resident memory this
/// process reads for its hubs.
async fn load(
    addr: SocketAddr,
    duration: Duration,
    expected_len: usize,
    token: bool,
) -> anyhow::Result<Tally> {
    let output = tokio::process::Command::new(std::env::current_exe()?)
        .arg(GENERATOR)
        .arg(addr.to_string())
        .arg(duration.as_millis().to_string())
        .arg(expected_len.to_string())
        .arg(if token { "token" } else { "open" })
        .stderr(std::process::Stdio::inherit())
        .output()
        .await?;
    anyhow::ensure!(
        output.status.success(),
        "the load generator failed: {}",
        output.status
    );
    let text = String::from_utf8(output.stdout)?;
    let mut numbers = text.split_ascii_whitespace().map(str::parse::<u64>);
    let mut next = || {
        numbers
            .next()
            .context("short load generator output")?
            .context("a number")
    };
    let mut tally = Tally {
        requests: next()?,
        errors: next()?,
        elapsed: Duration::from_nanos(next()?),
        ..Tally::default()
    };
    for bucket in &mut tally.histogram {
        *bucket = next()?;
    }
    Ok(tally)
}

/// The child side of [`load`]: `ADDR MILLIS EXPECTED_LEN token|open`; prints requests,
/// errors, elapsed nanoseconds, then the count of every latency bucket.
fn load_generator(args: &[String]) -> anyhow::Result<()> {
    let [addr, millis, expected_len, token] = args else {
        anyhow::bail!("usage: {GENERATOR} ADDR MILLIS EXPECTED_LEN token|open");
    };
    let duration = Duration::from_millis(millis.parse()?);
    let token = (token == "token").then_some(TOKEN);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let run = runtime.block_on(common::load(
        addr.parse()?,
        PATH,
        CONNECTIONS,
        duration,
        expected_len.parse()?,
        token,
    ))?;
    let mut histogram = vec![0u64; BUCKETS];
    for latency in &run.latencies {
        let bucket = (latency.as_nanos() / BUCKET.as_nanos()) as usize;
        histogram[bucket.min(BUCKETS - 1)] += 1;
    }
    let mut out = format!(
        "{} {} {}\n",
        run.requests,
        run.errors,
        run.elapsed.as_nanos()
    );
    for count in histogram {
        out.push_str(&count.to_string());
        out.push('\n');
    }
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(GENERATOR) {
        if let Err(err) = load_generator(&args[1..]) {
            eprintln!("{GENERATOR}: {err:#}");
            std::process::exit(2);
        }
        return;
    }
    let quick = common::quick();
    common::announce(NAME, quick);
    let mut verdict = Verdict::default();
    if let Err(err) = run(quick, &mut verdict) {
        verdict.check(false, format!("the benchmark could not run: {err:#}"));
    }
    verdict.finish(NAME);
}
