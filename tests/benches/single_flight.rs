//! Single flight: 50 concurrent identical cold requests cause exactly one upstream query
//! per source, counted by PostgreSQL itself.
//!
//! Each of the four queries of the `probe` source calls `nextval` on a sequence of its own
//! (`probe_summary`, `probe_daily`, ...) exactly once per execution (a materialized CTE read
//! through an uncorrelated subquery), so a sequence's position is the number of times that
//! query ran, whatever the engine believes. The summary query also sleeps, so the fetch
//! stays in flight while all 50 requests arrive; every request taking at least that long
//! proves that none was served by an earlier, finished fetch.
//!
//! Rounds alternate between 50 identical requests (one merged-answer build) and 50 requests
//! split between `source=probe` and `source=probe,peer` (two different merged answers over
//! the same `probe` parameters: the per-source cache alone must coalesce them). Caches are
//! emptied before each round; a request after the round must not query again.
//!
//! `cargo bench -p metrics-hub-tests --bench single_flight` (`BENCH_QUICK=1` for a smoke run)

mod common;

use std::time::{Duration, Instant};

use anyhow::ensure;
use chrono::Utc;
use common::{ms, percentile, Verdict};
use futures::future::join_all;
use metrics_hub::hub::HubSettings;
use metrics_hub_tests::{sources_dir, TestHub};
use sqlx::PgPool;

const NAME: &str = "single_flight";
const CONCURRENT: usize = 50;
/// How long the summary query holds the fetch in flight, in seconds.
const SLEEP_SECONDS: f64 = 0.3;
const DATASETS: [&str; 4] = ["summary", "daily", "features", "clients"];

/// The probed source. `SLEEP` is replaced by [`SLEEP_SECONDS`] (templates may not
/// interpolate anything but bind parameters, so it is spelled out in the SQL).
const PROBE_YAML: &str = r#"
id: probe
name: Probed PostgreSQL events
kind: sql
connection:
  driver: postgres
  url: "${DATABASE_URL}"
  max_connections: 4
cache:
  ttl: 5m
queries:
  summary:
    sql: |
      WITH probe AS MATERIALIZED (SELECT nextval('probe_summary') AS probe FROM pg_sleep(SLEEP))
      SELECT COUNT(DISTINCT user_pseudo_id) AS total_users,
             COUNT(*) AS total_events,
             COUNT(*) FILTER (WHERE event_name = 'page_view') AS page_views,
             (SELECT probe FROM probe) AS probe
      FROM events
      WHERE event_date >= {{ bind(start_date | yyyymmdd) }}
        AND event_date <= {{ bind(end_date | yyyymmdd) }}
  daily:
    sql: |
      WITH probe AS MATERIALIZED (SELECT nextval('probe_daily') AS probe)
      SELECT event_date AS date,
             COUNT(DISTINCT user_pseudo_id) AS users,
             COUNT(*) AS events,
             (SELECT probe FROM probe) AS probe
      FROM events
      WHERE event_date >= {{ bind(start_date | yyyymmdd) }}
        AND event_date <= {{ bind(end_date | yyyymmdd) }}
      GROUP BY event_date
      ORDER BY event_date
  features:
    sql: |
      WITH probe AS MATERIALIZED (SELECT nextval('probe_features') AS probe)
      SELECT event_name AS feature, COUNT(*) AS views, (SELECT probe FROM probe) AS probe
      FROM events
      WHERE event_date >= {{ bind(start_date | yyyymmdd) }}
        AND event_date <= {{ bind(end_date | yyyymmdd) }}
      GROUP BY event_name
      ORDER BY views DESC, feature
  clients:
    sql: |
      WITH probe AS MATERIALIZED (SELECT nextval('probe_clients') AS probe)
      SELECT substring(page_location || '/' from '^https://([^./]+)\.8020rei\.com[/?#:]') AS client,
             COUNT(*) AS events,
             COUNT(DISTINCT user_pseudo_id) AS users,
             (SELECT probe FROM probe) AS probe
      FROM events
      WHERE event_date >= {{ bind(start_date | yyyymmdd) }}
        AND event_date <= {{ bind(end_date | yyyymmdd) }}
        AND page_location LIKE 'https://%.8020rei.com%'
      GROUP BY 1
      ORDER BY events DESC, client
      LIMIT 20
"#;

/// A second source, so that two requests can differ in their merged answer while asking
/// `probe` for the same parameters.
const PEER_YAML: &str = r#"
id: peer
name: Another view of the events
kind: sql
connection:
  driver: postgres
  url: "${DATABASE_URL}"
  max_connections: 2
queries:
  summary:
    sql: |
      SELECT COUNT(*) AS total_events FROM events
      WHERE event_date >= {{ bind(start_date | yyyymmdd) }}
        AND event_date <= {{ bind(end_date | yyyymmdd) }}
"#;

/// How many times each probed query has run, from the sequences.
async fn executions(pool: &PgPool) -> anyhow::Result<[i64; 4]> {
    let mut counts = [0; 4];
    for (count, dataset) in counts.iter_mut().zip(DATASETS) {
        // The name is one of the constants above, not input.
        let (last, called): (i64, bool) = sqlx::query_as(&format!(
            "SELECT last_value, is_called FROM probe_{dataset}"
        ))
        .fetch_one(pool)
        .await?;
        *count = if called { last } else { 0 };
    }
    Ok(counts)
}

/// The engine's own count of upstream fetches of source `id`.
fn fetches(hub: &TestHub, id: &str) -> u64 {
    hub.hub
        .entries()
        .iter()
        .find(|e| e.spec.id == id)
        .map_or(0, |e| e.upstream_fetches())
}

/// One request; its latency when it succeeded.
async fn get(client: &reqwest::Client, url: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let response = client.get(url).send().await?;
    let status = response.status();
    let body = response.bytes().await?;
    let elapsed = started.elapsed();
    ensure!(status.is_success(), "answered {status}: {body:?}");
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    ensure!(json["success"] == true, "unsuccessful answer: {json}");
    Ok(elapsed)
}

async fn round(
    number: usize,
    mixed: bool,
    hub: &TestHub,
    client: &reqwest::Client,
    pool: &PgPool,
    verdict: &mut Verdict,
) -> anyhow::Result<()> {
    hub.hub.clear_cache(None)?;
    let queries_before = executions(pool).await?;
    let fetches_before = (fetches(hub, "probe"), fetches(hub, "peer"));
    let urls: Vec<String> = (0..CONCURRENT)
        .map(|i| {
            let sources = if mixed && i % 2 == 1 {
                "probe,peer"
            } else {
                "probe"
            };
            hub.url(&format!("/api/metrics?days=30&source={sources}"))
        })
        .collect();
    let started = Instant::now();
    let outcomes = join_all(urls.iter().map(|url| get(client, url))).await;
    let wall = started.elapsed();
    let queries_after = executions(pool).await?;
    let fetches_after = (fetches(hub, "probe"), fetches(hub, "peer"));

    let latencies: Vec<Duration> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok())
        .copied()
        .collect();
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().err().map(|e| format!("{e:#}")))
        .collect();
    let ran: Vec<i64> = queries_after
        .iter()
        .zip(queries_before)
        .map(|(after, before)| after - before)
        .collect();
    let probe_fetches = fetches_after.0 - fetches_before.0;
    let peer_fetches = fetches_after.1 - fetches_before.1;
    let kind = if mixed {
        "mixed: source=probe | source=probe,peer"
    } else {
        "identical: source=probe"
    };
    println!(
        "round {number} ({kind}): {CONCURRENT} requests in {}, latency min {} median {} max {}",
        ms(wall),
        ms(percentile(&latencies, 0.0)),
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 100.0)),
    );
    println!(
        "  PostgreSQL executions summary/daily/features/clients = {ran:?}; engine upstream fetches probe={probe_fetches} peer={peer_fetches}"
    );
    verdict.check(
        failed.is_empty(),
        format!(
            "round {number}: all {CONCURRENT} requests succeeded ({} failed{})",
            failed.len(),
            failed
                .first()
                .map(|e| format!(", first: {e}"))
                .unwrap_or_default()
        ),
    );
    verdict.check(
        ran == [1, 1, 1, 1],
        format!("round {number}: each probed query ran exactly once in PostgreSQL (ran {ran:?})"),
    );
    verdict.check(
        probe_fetches == 1 && peer_fetches == u64::from(mixed),
        format!(
            "round {number}: upstream_fetches probe={probe_fetches} (want 1), peer={peer_fetches} (want {})",
            u64::from(mixed)
        ),
    );
    // Below the sleep, a request would have been answered by a fetch that had finished
    // before it arrived, and would prove nothing about coalescing.
    let floor = Duration::from_secs_f64(SLEEP_SECONDS * 0.9);
    verdict.check(
        latencies.iter().all(|l| *l >= floor),
        format!(
            "round {number}: every request overlapped the one in-flight fetch (min latency {} >= {})",
            ms(percentile(&latencies, 0.0)),
            ms(floor)
        ),
    );

    get(client, &urls[0]).await?;
    let again = executions(pool).await?;
    verdict.check(
        again == queries_after,
        format!("round {number}: a later request was served from cache (executions {again:?})"),
    );
    Ok(())
}

async fn run(quick: bool, verdict: &mut Verdict) -> anyhow::Result<()> {
    let rounds = if quick { 2 } else { 6 };
    let today = Utc::now().date_naive();
    let (pg, pool) = common::postgres_with_demo_events(today).await?;
    for dataset in DATASETS {
        sqlx::query(&format!("CREATE SEQUENCE probe_{dataset}"))
            .execute(&pool)
            .await?;
    }
    let env = common::postgres_env(pg.url());
    let dir = sources_dir(&[
        (
            "probe.yaml",
            PROBE_YAML.replace("SLEEP", &SLEEP_SECONDS.to_string()),
        ),
        ("peer.yaml", PEER_YAML.to_owned()),
    ])?;
    let hub = TestHub::start(dir.path(), &env, HubSettings::default()).await?;
    let ids: Vec<String> = hub
        .hub
        .entries()
        .iter()
        .map(|e| e.spec.id.clone())
        .collect();
    ensure!(ids == ["peer", "probe"], "unexpected sources {ids:?}");
    let client = reqwest::Client::new();
    for number in 1..=rounds {
        round(number, number % 2 == 0, &hub, &client, &pool, verdict).await?;
    }
    hub.stop().await?;
    pool.close().await;
    drop(pg);
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
