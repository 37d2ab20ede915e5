//! Cold answer versus the same queries run directly: the hub's cost on top of the database.
//!
//! One PostgreSQL server holds the demo events; the hub serves `sources.d/postgres.yaml`
//! over it. Each hub iteration empties the caches and times a whole HTTP
//! `GET /api/metrics?days=30` (7 in quick mode). The baseline runs the same four SQL
//! statements (rendered once from the same declaration, with the same binds) in parallel
//! with sqlx on its own pool of the same size, fetching every row. A third series times `Hub::query_source`, the source
//! layer without HTTP, caches or merging, to show where any overhead sits. The series are
//! interleaved, their order rotating, so drift in the machine affects them alike.
//!
//! Target: median hub / median direct <= 1.10.
//!
//! `cargo bench -p metrics-hub-tests --bench cold_vs_direct` (`BENCH_QUICK=1` for a smoke run)

mod common;

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use chrono::Utc;
use common::{bind_values, ms, percentile, Verdict};
use futures::future::try_join_all;
use metrics_hub::hub::HubSettings;
use metrics_hub::kinds::KindSpec;
use metrics_hub::load;
use metrics_hub::model::QueryParams;
use metrics_hub::template::RenderedQuery;
use metrics_hub_tests::{sources_dir, TestHub};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

const NAME: &str = "cold_vs_direct";
const TARGET_RATIO: f64 = 1.10;
/// The dashboard's default window; quick runs use a week so that they take seconds.
const DAYS: u32 = 30;
const QUICK_DAYS: u32 = 7;

/// Runs the four statements in parallel, fetching every row; returns the row count.
async fn direct(pool: &PgPool, queries: &[RenderedQuery]) -> anyhow::Result<usize> {
    let counts = try_join_all(queries.iter().map(|query| async move {
        let rows = bind_values(sqlx::query(&query.sql), &query.binds)
            .fetch_all(pool)
            .await?;
        Ok::<_, sqlx::Error>(rows.len())
    }))
    .await?;
    Ok(counts.iter().sum())
}

/// One cold HTTP answer: caches emptied (untimed), then the request timed to the last byte.
async fn hub_cold(hub: &TestHub, client: &reqwest::Client, url: &str) -> anyhow::Result<Duration> {
    hub.hub.clear_cache(None)?;
    let fetches_before = hub.hub.entries()[0].upstream_fetches();
    let started = Instant::now();
    let response = client.get(url).send().await?;
    let status = response.status();
    let body = response.bytes().await?;
    let elapsed = started.elapsed();
    ensure!(status.is_success(), "hub answered {status}: {body:?}");
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    ensure!(
        json["metadata"]["sourceDetails"][0]["cached"] == false,
        "the answer came from a cache: {}",
        json["metadata"]
    );
    ensure!(
        hub.hub.entries()[0].upstream_fetches() == fetches_before + 1,
        "the request did not query PostgreSQL exactly once"
    );
    Ok(elapsed)
}

struct Series {
    name: &'static str,
    samples: Vec<Duration>,
}

impl Series {
    fn new(name: &'static str) -> Series {
        Series {
            name,
            samples: Vec::new(),
        }
    }

    fn median(&self) -> Duration {
        percentile(&self.samples, 50.0)
    }

    fn print(&self) {
        println!(
            "  {:<34} median {:>12}  p90 {:>12}  min {:>12}  max {:>12}  (n={})",
            self.name,
            ms(self.median()),
            ms(percentile(&self.samples, 90.0)),
            ms(percentile(&self.samples, 0.0)),
            ms(percentile(&self.samples, 100.0)),
            self.samples.len()
        );
    }
}

/// The median of `a[i] - b[i]` over iterations, in seconds (may be negative).
fn median_difference(a: &Series, b: &Series) -> f64 {
    let mut differences: Vec<f64> = a
        .samples
        .iter()
        .zip(&b.samples)
        .map(|(x, y)| x.as_secs_f64() - y.as_secs_f64())
        .collect();
    differences.sort_by(f64::total_cmp);
    differences
        .get(differences.len() / 2)
        .copied()
        .unwrap_or(0.0)
}

fn signed_ms(seconds: f64) -> String {
    format!("{:+.3} ms", seconds * 1e3)
}

async fn run(quick: bool, verdict: &mut Verdict) -> anyhow::Result<()> {
    let (warmup, iterations, days) = if quick {
        (1, 3, QUICK_DAYS)
    } else {
        (5, 30, DAYS)
    };
    let today = Utc::now().date_naive();
    let (pg, _loader) = common::postgres_with_demo_events(today).await?;
    let env = common::postgres_env(pg.url());
    let dir = sources_dir(&[("postgres.yaml", common::shipped_source("postgres.yaml")?)])?;

    // The baseline reads the very same declaration: same SQL, binds and pool size.
    let loaded = load::load_dir_with(dir.path(), &|name| env.get(name).cloned())?;
    if !loaded.broken.is_empty() {
        bail!("postgres.yaml does not load: {:?}", loaded.broken);
    }
    let spec = loaded
        .sources
        .first()
        .context("postgres.yaml declares no source")?;
    let KindSpec::Sql(sql) = &spec.kind else {
        bail!("postgres.yaml is not a sql source");
    };
    let params = QueryParams::last_days(days, today);
    let queries: Vec<RenderedQuery> = sql
        .datasets
        .iter()
        .map(|dataset| sql.templates.render(dataset.as_str(), &params))
        .collect::<Result<_, _>>()?;
    let direct_pool = PgPoolOptions::new()
        .max_connections(sql.max_connections)
        .connect(pg.url())
        .await?;
    println!(
        "{} statements, pool of {} connections on each side, window days={days}",
        queries.len(),
        sql.max_connections
    );

    let hub = TestHub::start(dir.path(), &env, HubSettings::default()).await?;
    let client = reqwest::Client::new();
    let url = hub.url(&format!("/api/metrics?days={days}"));

    let mut http = Series::new("hub: cold GET /api/metrics (HTTP)");
    let mut layer = Series::new("hub: query_source (no HTTP/cache)");
    let mut base = Series::new("direct: 4 statements via sqlx");
    let mut rows = 0;
    for iteration in 0..warmup + iterations {
        let mut times = [Duration::ZERO; 3];
        // Rotate the order so no series always runs first (or right after another).
        for step in 0..3 {
            match (iteration + step) % 3 {
                0 => times[0] = hub_cold(&hub, &client, &url).await?,
                1 => {
                    let started = Instant::now();
                    hub.hub.query_source(&spec.id, &params).await?;
                    times[1] = started.elapsed();
                }
                _ => {
                    let started = Instant::now();
                    rows = direct(&direct_pool, &queries).await?;
                    times[2] = started.elapsed();
                }
            }
        }
        if iteration >= warmup {
            http.samples.push(times[0]);
            layer.samples.push(times[1]);
            base.samples.push(times[2]);
        }
    }
    println!(
        "{iterations} timed iterations after {warmup} warm-up; the direct side fetched {rows} rows per run"
    );
    for series in [&http, &layer, &base] {
        series.print();
    }
    let ratio = http.median().as_secs_f64() / base.median().as_secs_f64();
    let layer_ratio = layer.median().as_secs_f64() / base.median().as_secs_f64();
    // Differences within one iteration cancel most of the database's own variation.
    println!(
        "  paired medians: HTTP answer - direct = {}, HTTP answer - source layer = {}, source layer - direct = {}",
        signed_ms(median_difference(&http, &base)),
        signed_ms(median_difference(&http, &layer)),
        signed_ms(median_difference(&layer, &base)),
    );
    println!("  source layer / direct = {layer_ratio:.3}");
    verdict.target(
        quick,
        ratio <= TARGET_RATIO,
        format!("cold hub / direct = {ratio:.3} (target <= {TARGET_RATIO:.2})"),
    );
    hub.stop().await?;
    direct_pool.close().await;
    Ok(())
}

#[tokio::main]
async fn main() {
    let quick = common::quick();
    common::announce(NAME, quick);
    let mut verdict = Verdict::default();
    if let Err(err) = run(quick, &mut verdict).await {
        verdict.check(false, format!("the benchmark could not run: {err:#}"));
    }
    verdict.finish(NAME);
}
