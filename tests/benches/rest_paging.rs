//! `kind: rest` performance: paging memory and throughput, record transforms, fan-out latency.
//!
//! 1. Paging: one REST source pages through N generated events, 1,000 per page, from a
//!    stand-in running in a process of its own (this binary re-run with
//!    `REST_PAGING_STANDIN` set), folding them into daily rows as pages arrive. Reported:
//!    records per second, and the peak of bytes allocated by this process during the fetch
//!    above what was allocated before it (a counting global allocator; the stand-in's
//!    memory is not in it). Run for N and 10 x N.
//!    Targets: >= 100,000 records/s at 100,000 records; the peak at 10 x N below twice the
//!    peak at N (memory follows the page size, not the total).
//! 2. Transforms: the same listing of 10 x N events feeding all four datasets through
//!    `compute:`, `classify:`, `where:` and per-field `where:` (the client from the URL's
//!    subdomain, the feature from its path, page views by type), against the same listing
//!    feeding the same four aggregations without transforms (grouped by the records' own
//!    `client` and `feature` fields), both measured in this run; step 1's single daily
//!    aggregation is shown beside them. Reported: records per second and peak heap of
//!    each. Targets: the transformed listing at least half as fast as the untransformed
//!    one (seven expressions a record cost, but not more than the rest of the work), and
//!    its peak heap at 10 x N below twice its peak at N (still bounded by the page size).
//! 3. Fan-out: ten REST sources, each answering after 100 ms, behind one hub; caches are
//!    cleared before each request to `/api/metrics`. Target: median wall time < 150 ms
//!    (parallel; serial would be over 1 s).
//!
//! `cargo bench -p metrics-hub-tests --bench rest_paging` (`BENCH_QUICK=1` for a smoke run
//! with 2,000 and 20,000 records and fewer rounds; targets are then reported, not enforced).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use common::{ms, percentile, Verdict};
use metrics_hub::hub::HubSettings;
use metrics_hub::load;
use metrics_hub::model::QueryParams;
use metrics_hub_tests::rest_standin::{first_day, RestStandIn, DAYS};
use metrics_hub_tests::{sources_dir, TestHub};

const NAME: &str = "rest_paging";
const STANDIN_ENV: &str = "REST_PAGING_STANDIN";
const PAGE: u64 = 1_000;
const FULL_RECORDS: u64 = 100_000;
const QUICK_RECORDS: u64 = 20_000;
const TARGET_RECORDS_PER_SECOND: f64 = 100_000.0;
const MAX_MEMORY_RATIO: f64 = 2.0;
/// Transformed throughput over plain, at least.
const MIN_TRANSFORM_RATIO: f64 = 0.5;
const SOURCES: usize = 10;
const DELAY_MS: u64 = 100;
const TARGET_FAN_OUT: Duration = Duration::from_millis(150);

/// Counts live heap bytes and their peak, so a measurement can say how much memory a fetch
/// needed on top of what was already there.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the counters are
// plain atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            if new_size > layout.size() {
                let grown = new_size - layout.size();
                let live = LIVE.fetch_add(grown, Ordering::Relaxed) + grown;
                PEAK.fetch_max(live, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn mib(bytes: usize) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// A line of /proc/self/status, e.g. `VmHWM` (peak resident set).
fn status(key: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_else(|| "n/a".to_owned())
}

fn main() -> anyhow::Result<()> {
    if let Ok(records) = std::env::var(STANDIN_ENV) {
        return serve_standin(records.parse()?);
    }
    let quick = common::quick();
    common::announce(NAME, quick);
    let records = if quick { QUICK_RECORDS } else { FULL_RECORDS };
    let mut standin = StandInProcess::spawn(records)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut verdict = Verdict::default();
    let outcome = runtime.block_on(async {
        let plain = paging(quick, records, &standin.base, &mut verdict).await?;
        transforms(quick, records, &standin.base, &plain, &mut verdict).await?;
        fan_out(quick, &standin.base, &mut verdict).await
    });
    standin.stop();
    outcome?;
    println!("command: cargo bench -p metrics-hub-tests --bench {NAME}   (BENCH_QUICK=1 for the smoke run)");
    verdict.finish(NAME);
    Ok(())
}

/// The stand-in, in a child process so that its allocations stay out of the counts.
struct StandInProcess {
    child: Child,
    base: String,
}

impl StandInProcess {
    fn spawn(records: u64) -> anyhow::Result<StandInProcess> {
        let mut child = Command::new(std::env::current_exe()?)
            .env(STANDIN_ENV, records.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the stand-in process")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let base = line
            .trim()
            .strip_prefix("LISTENING ")
            .context("the stand-in did not say where it listens")?
            .to_owned();
        Ok(StandInProcess { child, base })
    }

    fn stop(&mut self) {
        // Closing its stdin is the signal; kill only if it lingers.
        drop(self.child.stdin.take());
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for StandInProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The child: serve `records` events until stdin closes (so it never outlives the bench).
fn serve_standin(records: u64) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let standin = RestStandIn::serve(listener, first_day(), records)?;
        println!("LISTENING {}", standin.base());
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await?;
        drop(standin);
        Ok(())
    })
}

fn paging_source(base: &str, take: u64) -> String {
    format!(
        r#"id: paging
name: Paging
kind: rest
timeout: 120s
cache:
  ttl: 0s
connection:
  base_url: {base}
queries:
  daily:
    path: /open/cursor
    query: {{ take: {take}, limit: {PAGE} }}
    records: data.items
    pagination: {{ type: cursor, cursor_path: paging.next.after, param: after, max_pages: 100000 }}
    aggregate:
      group_by: {{ field: created_at }}
      fields:
        events: {{ op: count }}
        users: {{ op: count_distinct, field: contact.id }}
        revenue: {{ op: sum, field: amount }}
"#
    )
}

/// The listing every dataset of [`transformed_source`] sends: one fetch feeds them all.
fn listing(take: u64) -> String {
    format!(
        "    path: /open/cursor\n    query: {{ take: {take}, limit: {PAGE} }}\n    records: data.items\n    pagination: {{ type: cursor, cursor_path: paging.next.after, param: after, max_pages: 100000 }}\n"
    )
}

/// The four datasets of the original dashboard from raw events, as `rest_transforms.rs`
/// tests them.
fn transformed_source(base: &str, take: u64) -> String {
    let listing = listing(take);
    let client = r"record.url | regex_capture('^https://([a-z0-9-]+)\\.8020rei\\.com/')";
    format!(
        r#"id: paging
name: Paging
kind: rest
timeout: 120s
cache:
  ttl: 0s
connection:
  base_url: {base}
queries:
  summary:
{listing}    compute:
      client: "{client}"
    aggregate:
      fields:
        total_events: {{ op: count }}
        page_views: {{ op: count, where: "record.type == 'page_view'" }}
        total_users: {{ op: count_distinct, field: contact.id }}
        active_clients: {{ op: count_distinct, field: client }}
  daily:
{listing}    compute:
      day: "record.created_at | date"
    aggregate:
      group_by: {{ field: day }}
      fields:
        events: {{ op: count }}
        users: {{ op: count_distinct, field: contact.id }}
        page_views: {{ op: count, where: "record.type == 'page_view'" }}
  features:
{listing}    where: "record.type == 'page_view'"
    classify:
      feature:
        from: "record.url | url_path"
        rules:
          - {{ prefix: /buybox/deals, value: "Buybox - Deals" }}
          - {{ prefix: /buybox, value: Buybox }}
          - {{ equals: /, value: Home Dashboard }}
          - {{ regex: "^/properties(/|$)", value: Properties }}
          - {{ contains: importer, value: Importer }}
        otherwise: drop
    aggregate:
      group_by: {{ field: feature }}
      fields:
        events: {{ op: count }}
        users: {{ op: count_distinct, field: contact.id }}
  clients:
{listing}    compute:
      client: "{client}"
    aggregate:
      group_by: {{ field: client }}
      fields:
        events: {{ op: count }}
        users: {{ op: count_distinct, field: contact.id }}
"#
    )
}

/// The same four aggregations as [`transformed_source`] over the records' own fields,
/// with no `compute:`, `classify:` or `where:`: what the transforms are measured against.
fn untransformed_source(base: &str, take: u64) -> String {
    let listing = listing(take);
    format!(
        r#"id: paging
name: Paging
kind: rest
timeout: 120s
cache:
  ttl: 0s
connection:
  base_url: {base}
queries:
  summary:
{listing}    aggregate:
      fields:
        total_events: {{ op: count }}
        total_users: {{ op: count_distinct, field: contact.id }}
        active_clients: {{ op: count_distinct, field: client }}
  daily:
{listing}    aggregate:
      group_by: {{ field: created_at }}
      fields:
        events: {{ op: count }}
        users: {{ op: count_distinct, field: contact.id }}
  features:
{listing}    aggregate:
      group_by: {{ field: feature }}
      fields:
        views: {{ op: count }}
        users: {{ op: count_distinct, field: contact.id }}
  clients:
{listing}    aggregate:
      group_by: {{ field: client }}
      fields:
        events: {{ op: count }}
        users: {{ op: count_distinct, field: contact.id }}
"#
    )
}

struct Paged {
    records_per_second: f64,
    elapsed: Duration,
    peak: usize,
    /// Heap already live when the fetch started (hub, config, HTTP client).
    baseline: usize,
}

async fn page_through(text: &str, take: u64, rounds: usize) -> anyhow::Result<Paged> {
    let spec = load::load_source(std::path::Path::new("paging.yaml"), text, &|_| None)
        .map_err(|errors| anyhow::anyhow!("{errors:?}"))?;
    let source = metrics_hub::kinds::build(&spec);
    source.initialize().await?;
    let end = first_day() + chrono::Days::new(DAYS);
    let params = QueryParams::between(first_day(), end);
    // A warm-up opens the connection and sizes the allocator's pools.
    source.fetch_metrics(&params).await?;
    let mut best = Duration::MAX;
    let mut peak = 0;
    let mut baseline = 0;
    for _ in 0..rounds {
        let before = LIVE.load(Ordering::Relaxed);
        baseline = before;
        PEAK.store(before, Ordering::Relaxed);
        let started = Instant::now();
        let data = source.fetch_metrics(&params).await?;
        let elapsed = started.elapsed();
        peak = peak.max(PEAK.load(Ordering::Relaxed).saturating_sub(before));
        best = best.min(elapsed);
        let events: u64 = match &data.summary {
            Some(summary) => summary["total_events"].as_u64().unwrap_or(0),
            None => data
                .daily
                .as_ref()
                .context("no daily rows")?
                .iter()
                .map(|row| row["events"].as_u64().unwrap_or(0))
                .sum(),
        };
        ensure!(
            events == take,
            "aggregated {events} events, expected {take}"
        );
        ensure!(data.warnings.is_empty(), "warnings: {:?}", data.warnings);
    }
    source.cleanup().await;
    Ok(Paged {
        records_per_second: take as f64 / best.as_secs_f64(),
        elapsed: best,
        peak,
        baseline,
    })
}

async fn paging(
    quick: bool,
    records: u64,
    base: &str,
    verdict: &mut Verdict,
) -> anyhow::Result<Paged> {
    let rounds = if quick { 1 } else { 3 };
    let small = records / 10;
    println!("-- paging: {PAGE} records per page, daily aggregation, best of {rounds} round(s)");
    let few = page_through(&paging_source(base, small), small, rounds).await?;
    let many = page_through(&paging_source(base, records), records, rounds).await?;
    for (n, paged) in [(small, &few), (records, &many)] {
        println!(
            "   {n:>7} records: {} ({:.0} records/s), peak heap during the fetch +{} over {} live before it",
            ms(paged.elapsed),
            paged.records_per_second,
            mib(paged.peak),
            mib(paged.baseline)
        );
    }
    println!(
        "   peak resident set of this process, stand-in excluded (VmHWM): {}",
        status("VmHWM")
    );
    verdict.check(
        true,
        format!("every record of {small} and {records} aggregated, no warnings"),
    );
    verdict.target(
        quick,
        many.records_per_second >= TARGET_RECORDS_PER_SECOND,
        format!(
            "{:.0} records/s at {records} records (target >= {TARGET_RECORDS_PER_SECOND:.0})",
            many.records_per_second
        ),
    );
    let ratio = many.peak as f64 / few.peak.max(1) as f64;
    verdict.target(
        quick,
        ratio < MAX_MEMORY_RATIO,
        format!(
            "peak memory x{ratio:.2} for 10x the records ({} vs {}; target < x{MAX_MEMORY_RATIO})",
            mib(many.peak),
            mib(few.peak)
        ),
    );
    Ok(many)
}

/// Step 2: the four-dataset transformed listing against `plain` (step 1 at `records`).
async fn transforms(
    quick: bool,
    records: u64,
    base: &str,
    plain: &Paged,
    verdict: &mut Verdict,
) -> anyhow::Result<()> {
    let rounds = if quick { 1 } else { 3 };
    let small = records / 10;
    println!("-- transforms: one listing into four datasets (compute, classify, where), best of {rounds} round(s)");
    let few = page_through(&transformed_source(base, small), small, rounds).await?;
    let many = page_through(&transformed_source(base, records), records, rounds).await?;
    let untransformed = page_through(&untransformed_source(base, records), records, rounds).await?;
    for (what, n, paged) in [
        ("transformed  ", small, &few),
        ("transformed  ", records, &many),
        ("untransformed", records, &untransformed),
        ("plain daily  ", records, plain),
    ] {
        println!(
            "   {what} {n:>7} records: {} ({:.0} records/s), peak heap +{}",
            ms(paged.elapsed),
            paged.records_per_second,
            mib(paged.peak)
        );
    }
    let speed = many.records_per_second / untransformed.records_per_second;
    verdict.target(
        quick,
        speed >= MIN_TRANSFORM_RATIO,
        format!(
            "transformed at x{speed:.2} the untransformed rate ({:.0} vs {:.0} records/s; target >= x{MIN_TRANSFORM_RATIO})",
            many.records_per_second, untransformed.records_per_second
        ),
    );
    let ratio = many.peak as f64 / few.peak.max(1) as f64;
    verdict.target(
        quick,
        ratio < MAX_MEMORY_RATIO,
        format!(
            "transformed peak memory x{ratio:.2} for 10x the records ({} vs {}; target < x{MAX_MEMORY_RATIO})",
            mib(many.peak),
            mib(few.peak)
        ),
    );
    Ok(())
}

async fn fan_out(quick: bool, base: &str, verdict: &mut Verdict) -> anyhow::Result<()> {
    let rounds = if quick { 3 } else { 20 };
    let files: Vec<(String, String)> = (0..SOURCES)
        .map(|i| {
            let id = format!("slow-{i}");
            let text = format!(
                "id: {id}\nname: {id}\nkind: rest\ntimeout: 5s\nconnection:\n  base_url: {base}\nqueries:\n  summary:\n    path: /open/stats-summary\n    query: {{ delay_ms: {DELAY_MS}, take: 100 }}\n    records: data\nmappings:\n  summary:\n    total_users: unique_contacts\n    total_events: deals\n    active_clients: companies\n"
            );
            (format!("{id}.yaml"), text)
        })
        .collect();
    let files: Vec<(&str, String)> = files.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
    let dir = sources_dir(&files)?;
    let hub = TestHub::start(dir.path(), &HashMap::new(), HubSettings::default()).await?;
    let client = reqwest::Client::new();
    let mut samples = Vec::new();
    for round in 0..=rounds {
        client.post(hub.url("/api/cache/clear")).send().await?;
        let started = Instant::now();
        let body: serde_json::Value = client
            .get(hub.url("/api/metrics?days=30"))
            .send()
            .await?
            .json()
            .await?;
        let took = started.elapsed();
        let answered = body["metadata"]["sources"].as_array().map_or(0, Vec::len);
        ensure!(
            answered == SOURCES,
            "only {answered} sources answered: {body}"
        );
        ensure!(
            body["metadata"]["cached"] == false,
            "served from the cache: {body}"
        );
        // The first round also opens ten connections; it is not a sample.
        if round > 0 {
            samples.push(took);
        }
    }
    hub.stop().await?;
    let median = percentile(&samples, 50.0);
    println!(
        "-- fan-out: {SOURCES} sources answering after {DELAY_MS} ms each, caches cleared, {rounds} requests"
    );
    println!(
        "   wall time: min {}, median {}, p90 {}, max {} (serial would be >= {} ms)",
        ms(percentile(&samples, 0.0)),
        ms(median),
        ms(percentile(&samples, 90.0)),
        ms(percentile(&samples, 100.0)),
        SOURCES as u64 * DELAY_MS
    );
    verdict.target(
        quick,
        median < TARGET_FAN_OUT,
        format!(
            "median {} for {SOURCES} sources of {DELAY_MS} ms (target < {})",
            ms(median),
            ms(TARGET_FAN_OUT)
        ),
    );
    Ok(())
}
