//! Insights on a year: anomalies, forecasts and correlations of 10 daily series of 365
//! days (5 SQLite sources of users and events, one pair related at a lag), through a real
//! hub on a socket.
//!
//! Each insight is asked with the sources' answers already cached, so what is timed is
//! the computation (and its HTTP answer), not the fetch. The baseline, in the same run,
//! is what a dashboard pays for the same window anyway: a cold `/api/metrics?days=365`
//! (cache cleared before each sample). Every answer is checked first: all 10 source
//! series checked and forecast, and the planted pair found at its lag.
//!
//! Target: the slowest insight under 0.5× the cold answer. The dashboard asks for the
//! three at once, after the answer itself, so what a viewer waits for on top of the
//! window is the slowest of them; the sum is reported too (what one core spends).
//!
//! `cargo bench -p metrics-hub-tests --bench insights` (`BENCH_QUICK=1` for a smoke run)

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use chrono::Utc;
use common::{ms, percentile, Verdict};
use metrics_hub::hub::HubSettings;
use metrics_hub_tests::planted::{year_sources, LAG};
use metrics_hub_tests::{sources_dir, TestHub};
use serde_json::Value;

const NAME: &str = "insights";
const TARGET_RATIO: f64 = 0.5;
const SOURCES: usize = 5;
const DAYS: u64 = 365;
const INSIGHTS: [&str; 3] = ["anomalies", "forecast", "correlations"];

fn main() -> anyhow::Result<()> {
    common::main(NAME, run)
}

async fn run(quick: bool, verdict: &mut Verdict) -> anyhow::Result<()> {
    let files = year_sources(Utc::now().date_naive(), SOURCES, DAYS);
    let files: Vec<(&str, String)> = files.iter().map(|(n, f)| (n.as_str(), f.clone())).collect();
    let dir = sources_dir(&files)?;
    let hub = TestHub::start(dir.path(), &HashMap::new(), HubSettings::default()).await?;
    let client = reqwest::Client::new();
    let window = format!("days={DAYS}");
    check(&client, &hub, &window, verdict).await?;

    let samples = if quick { 3 } else { 30 };
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    let mut timed: Vec<Vec<Duration>> = vec![Vec::new(); INSIGHTS.len()];
    for _ in 0..samples {
        client.post(hub.url("/api/cache/clear")).send().await?;
        cold.push(timed_get(&client, &hub, &format!("/api/metrics?{window}")).await?);
        warm.push(timed_get(&client, &hub, &format!("/api/metrics?{window}")).await?);
        for (kind, into) in INSIGHTS.iter().zip(&mut timed) {
            into.push(timed_get(&client, &hub, &format!("/api/insights/{kind}?{window}")).await?);
        }
    }
    let baseline = percentile(&cold, 50.0);
    println!(
        "cold /api/metrics?{window}, {SOURCES} sources: median {}, p95 {}",
        ms(baseline),
        ms(percentile(&cold, 95.0))
    );
    println!(
        "cached /api/metrics?{window}: median {}",
        ms(percentile(&warm, 50.0))
    );
    let (mut total, mut slowest) = (Duration::ZERO, Duration::ZERO);
    for (kind, samples) in INSIGHTS.iter().zip(&timed) {
        let median = percentile(samples, 50.0);
        total += median;
        slowest = slowest.max(median);
        println!(
            "/api/insights/{kind}: median {}, p95 {}",
            ms(median),
            ms(percentile(samples, 95.0))
        );
    }
    let of_cold = |d: Duration| d.as_secs_f64() / baseline.as_secs_f64();
    println!(
        "all three, one after another: {} = {:.2} x the cold answer",
        ms(total),
        of_cold(total)
    );
    let ratio = of_cold(slowest);
    verdict.target(
        quick,
        ratio < TARGET_RATIO,
        format!("slowest insight of 10 series x {DAYS} days: {} = {ratio:.2} x the cold answer (target < {TARGET_RATIO})", ms(slowest)),
    );
    hub.stop().await
}

/// Every source series is checked and forecast, and the planted pair is the strongest.
async fn check(
    client: &reqwest::Client,
    hub: &TestHub,
    window: &str,
    verdict: &mut Verdict,
) -> anyhow::Result<()> {
    let answer = |kind: &str| {
        let url = hub.url(&format!("/api/insights/{kind}?{window}"));
        async move { anyhow::Ok(client.get(url).send().await?.json::<Value>().await?) }
    };
    let series_of = |report: &Value| -> Vec<Value> {
        let all = report["data"]["series"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        all.into_iter()
            .filter(|s| s["name"].as_str().is_some_and(|n| n.starts_with("series")))
            .collect()
    };
    let anomalies = answer("anomalies").await?;
    let checked = series_of(&anomalies);
    let all_checked =
        checked.len() == 2 * SOURCES && checked.iter().all(|s| s["skipped"].is_null());
    verdict.check(
        all_checked,
        format!(
            "anomalies: {} source series checked over {DAYS} days",
            checked.len()
        ),
    );
    let forecast = answer("forecast").await?;
    let made = series_of(&forecast);
    let all_made = made.len() == 2 * SOURCES
        && made.iter().all(|s| {
            s["forecast"]["points"]
                .as_array()
                .is_some_and(|p| p.len() == 14)
        });
    verdict.check(
        all_made,
        format!("forecast: {} source series forecast 14 days", made.len()),
    );
    let correlations = answer("correlations").await?;
    let top = correlations["data"]["pairs"]
        .get(0)
        .context("no correlated pair")?;
    let planted =
        top["a"] == "series0.daily.users" && top["b"] == "series1.daily.users" && top["lag"] == LAG;
    verdict.check(
        planted,
        format!(
            "correlations: strongest pair {} / {} at lag {}",
            top["a"], top["b"], top["lag"]
        ),
    );
    ensure!(
        all_checked && all_made && planted,
        "the insights are wrong; not timing them"
    );
    Ok(())
}

async fn timed_get(
    client: &reqwest::Client,
    hub: &TestHub,
    path: &str,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let response = client.get(hub.url(path)).send().await?;
    ensure!(
        response.status() == 200,
        "GET {path}: {}",
        response.status()
    );
    response.bytes().await?;
    Ok(started.elapsed())
}
