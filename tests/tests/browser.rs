//! End-to-end in a real browser: the built-in dashboard (`/`) and admin page
//! (`/admin/sources`) in headless Chromium, over one hub with the shipped demo (SQLite) and
//! postgres sources, a source that fails at fetch time and an invalid source file. Every
//! number a page shows is checked against the hub's own API asked with the same
//! parameters; the DOM read here is the pages' contract (ids and data-* attributes),
//! written down in docs/pages.md.
//!
//! Each step opens the state it needs by URL, so one failing step does not hide the
//! others: failures are collected and reported together at the end, each with a
//! screenshot (`failed-*.png`) beside the named ones in the artefacts directory.
//!
//! A run that crosses UTC midnight may see the page and the API answer different days:
//! then a number that differs from the API's ([`Mismatch`]) is reported as a note, not a
//! failure.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::time::Instant;

use anyhow::{bail, ensure, Context};
use chrono::{DateTime, Days, NaiveDate, Utc};
use fantoccini::Locator;
use metrics_hub::hub::HubSettings;
use metrics_hub::kinds::sql::demo;
use metrics_hub_tests::browser::Browser;
use metrics_hub_tests::{planted, repo_root, sources_dir, Postgres, TestHub};
use serde_json::{json, Value};
use tempfile::TempDir;

/// The scorecards of the dashboard, by `data-metric`.
const METRICS: [&str; 4] = [
    "total_users",
    "total_events",
    "page_views",
    "active_clients",
];

fn shipped(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("sources.d").join(name)).unwrap()
}

struct Setup {
    hub: TestHub,
    today: NaiveDate,
    _dirs: (TempDir, TempDir),
}

/// The hub under test: the shipped demo and postgres sources, `broken` and `bad.yaml`.
async fn setup() -> Setup {
    let today = Utc::now().date_naive();
    let events = demo::generate(today);
    let pg_url = Postgres::shared().database("browser").await.unwrap();
    let pool = sqlx::PgPool::connect(&pg_url).await.unwrap();
    // Every third event, so that postgres's numbers differ from the demo's and a page
    // showing one source's numbers for another fails.
    let subset: Vec<demo::DemoEvent> = events.iter().step_by(3).cloned().collect();
    demo::load_postgres(&pool, &subset).await.unwrap();
    pool.close().await;

    // A database the server does not have: the source fails at once when it connects,
    // at start, on every fetch and on its health check. (A closed port would not do:
    // the driver retries a refused connection until the source's timeout, which makes
    // every page load slow and the outcome a race between `error` and `timeout`.)
    let server = pg_url.rsplit_once('/').unwrap().0;
    let broken = format!(
        "id: broken\nname: Broken warehouse\nkind: sql\ntimeout: 5s\nconnection:\n  driver: postgres\n  url: {server}/no_such_database\nqueries:\n  summary:\n    sql: SELECT COUNT(*) AS total_users FROM events\n"
    );
    // Invalid: `timeout` is not a duration (line 4, /timeout).
    let bad = "id: bad\nname: Bad file\nkind: sql\ntimeout: soon\nconnection:\n  driver: sqlite\n  url: \"sqlite::memory:\"\nqueries:\n  summary:\n    sql: SELECT 1 AS total_users\n".to_owned();
    // sources.d and the shipped metrics.d side by side, as in the repository.
    let root = tempfile::tempdir().unwrap();
    let sources = root.path().join("sources.d");
    let files = [
        ("demo.yaml", shipped("demo.yaml")),
        ("postgres.yaml", shipped("postgres.yaml")),
        ("broken.yaml", broken),
        ("bad.yaml", bad),
    ];
    std::fs::create_dir(&sources).unwrap();
    for (name, text) in files {
        std::fs::write(sources.join(name), text).unwrap();
    }
    copy_dir(
        &repo_root().join("metrics.d"),
        &root.path().join("metrics.d"),
    );
    let data = tempfile::tempdir().unwrap();
    let env = HashMap::from([
        ("DATABASE_URL".to_owned(), pg_url),
        (
            "METRICS_HUB_DATA_DIR".to_owned(),
            data.path().display().to_string(),
        ),
    ]);
    let store = metrics_hub::history::Store::open_in(data.path())
        .await
        .unwrap();
    let settings = HubSettings {
        history_store: Some(std::sync::Arc::new(store)),
        ..HubSettings::default()
    };
    let hub = TestHub::start(&sources, &env, settings).await.unwrap();
    Setup {
        hub,
        today,
        _dirs: (data, root),
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

/// Checks the derived-metric cards and their daily chart against the API's `data.derived`.
async fn check_derived(browser: &Browser, body: &Value) -> anyhow::Result<()> {
    let derived = body["data"]["derived"]
        .as_array()
        .context("no data.derived")?;
    ensure!(
        !derived.is_empty(),
        "the shipped metrics.d gives no derived metrics"
    );
    for metric in derived {
        let name = metric["name"].as_str().unwrap_or_default();
        let shown = attribute(
            browser,
            &format!("[data-derived=\"{name}\"] .value"),
            "data-value",
        )
        .await?;
        let expected = metric.get("value").filter(|v| v.is_number());
        same_as_api(
            shown.as_deref().is_some_and(|s| same_number(s, expected)),
            || {
                format!(
                    "derived card {name} shows {shown:?}, the API says {}",
                    metric["value"]
                )
            },
        )?;
    }
    let chart = chart_data(browser, "canvas#derived-chart").await?;
    for metric in derived
        .iter()
        .filter(|m| m["daily"].as_array().is_some_and(|d| !d.is_empty()))
    {
        let label = metric["label"].as_str().unwrap_or_default();
        let expected: Vec<Option<f64>> = metric["daily"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["value"].as_f64())
            .collect();
        let drawn = chart.data(label)?;
        same_as_api(drawn == expected.as_slice(), || {
            format!("derived line {label}: drawn {drawn:?}, the API says {expected:?}")
        })?;
    }
    Ok(())
}

/// Checks the daily chart's marked days against `GET /api/insights/anomalies?query`.
async fn check_anomaly_marks(browser: &Browser, hub: &TestHub, query: &str) -> anyhow::Result<()> {
    let report = api(hub, &format!("/api/insights/anomalies?{query}")).await?;
    let marked = attribute(browser, "canvas#daily-chart", "data-anomalies").await?;
    let marked: Value = serde_json::from_str(marked.as_deref().unwrap_or("null"))?;
    for field in ["users", "events"] {
        let name = format!("merged.daily.{field}");
        let series = report["data"]["series"].as_array().into_iter().flatten();
        let expected: Vec<String> = series
            .filter(|s| s["name"] == name.as_str())
            .flat_map(|s| s["anomalies"].as_array().cloned().unwrap_or_default())
            .filter_map(|a| a["date"].as_str().map(str::to_owned))
            .collect();
        let shown = strings(&marked[field]);
        same_as_api(sorted(shown.clone()) == sorted(expected.clone()), || {
            format!("daily chart marks {field} on {shown:?}, the API flags {expected:?}")
        })?;
    }
    Ok(())
}

/// `GET path` on the hub; the JSON body of a 200.
async fn api(hub: &TestHub, path: &str) -> anyhow::Result<Value> {
    let response = reqwest::get(hub.url(path)).await?;
    let status = response.status();
    let body: Value = response.json().await?;
    ensure!(status == 200, "GET {path}: {status} {body}");
    Ok(body)
}

/// A query string as sorted name/value pairs, with `source` lists sorted too: the pages
/// may encode `,` as `%2C` and order parameters or sources as they like.
fn normalized(query: &str) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(name, value)| {
            let value = if name == "source" {
                let mut ids: Vec<&str> = value.split(',').collect();
                ids.sort_unstable();
                ids.join(",")
            } else {
                value.into_owned()
            };
            (name.into_owned(), value)
        })
        .collect();
    pairs.sort();
    pairs
}

fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// `metadata.sourceDetails` entries of an answer.
fn details(body: &Value) -> &[Value] {
    body["metadata"]["sourceDetails"]
        .as_array()
        .map_or(&[], Vec::as_slice)
}

/// What the page shows differs from the API's numbers (or dates) for the same query.
/// Kept apart from other failures because a run crossing UTC midnight may see it
/// legitimately: the page and the test then asked on different days.
#[derive(Debug)]
struct Mismatch(String);

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Mismatch {}

/// Fails with a [`Mismatch`] saying `message` unless `same`.
fn same_as_api(same: bool, message: impl FnOnce() -> String) -> anyhow::Result<()> {
    if same {
        Ok(())
    } else {
        Err(Mismatch(message()).into())
    }
}

/// Whether a scorecard's `data-value` is `expected`: the API's number, or `""` when no
/// source supplied the field (`None`; the API's 0 there is a placeholder).
fn same_number(shown: &str, expected: Option<&Value>) -> bool {
    match expected.and_then(Value::as_f64) {
        Some(number) => shown.parse::<f64>().is_ok_and(|n| n == number),
        None => shown.is_empty(),
    }
}

/// Each item a number, `None` for null (a gap in a series) or anything else.
fn numbers(value: &Value) -> Vec<Option<f64>> {
    value
        .as_array()
        .map(|items| items.iter().map(Value::as_f64).collect())
        .unwrap_or_default()
}

/// The API's `dailyMetrics` of an answer, `field` by date.
fn daily(body: &Value, field: &str) -> anyhow::Result<BTreeMap<String, Option<f64>>> {
    let rows = body["data"]["dailyMetrics"]
        .as_array()
        .with_context(|| format!("no data.dailyMetrics in {body}"))?;
    Ok(rows
        .iter()
        .map(|row| {
            (
                row["date"].as_str().unwrap_or_default().to_owned(),
                row[field].as_f64(),
            )
        })
        .collect())
}

/// What a Chart.js chart holds: its labels and each dataset's label and data.
struct ChartData {
    labels: Vec<String>,
    series: Vec<(String, Vec<Option<f64>>)>,
}

impl ChartData {
    fn names(&self) -> Vec<&str> {
        self.series.iter().map(|(name, _)| name.as_str()).collect()
    }

    fn data(&self, name: &str) -> anyhow::Result<&[Option<f64>]> {
        self.series
            .iter()
            .find(|(label, _)| label == name)
            .map(|(_, data)| data.as_slice())
            .with_context(|| format!("no dataset {name:?} in the chart: {:?}", self.names()))
    }
}

/// `Chart.getChart(canvas).data` of the chart drawn on `selector`.
async fn chart_data(browser: &Browser, selector: &str) -> anyhow::Result<ChartData> {
    let data = browser
        .script(
            r#"
            const canvas = document.querySelector(arguments[0]);
            const chart = canvas && window.Chart ? Chart.getChart(canvas) : null;
            if (!chart) return null;
            return {
              labels: [...chart.data.labels],
              datasets: chart.data.datasets.map(d => ({label: d.label, data: [...d.data]})),
            };
            "#,
            vec![json!(selector)],
        )
        .await?;
    ensure!(!data.is_null(), "no Chart.js chart on {selector}");
    let labels = data["labels"]
        .as_array()
        .map(|labels| {
            labels
                .iter()
                .map(|l| l.as_str().map_or_else(|| l.to_string(), str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let series = data["datasets"]
        .as_array()
        .map(|sets| {
            sets.iter()
                .map(|set| {
                    (
                        set["label"].as_str().unwrap_or_default().to_owned(),
                        numbers(&set["data"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(ChartData { labels, series })
}

/// Checks the daily chart of the normal view against the API's answer `body` and the
/// forecast of the same window (`GET /api/insights/forecast?query`): one label per
/// `dailyMetrics` date and then one per forecast day; `Users` and `Events` their values
/// (nothing on the forecast days); and for each, when forecast, a dashed line and an 80%
/// band that start at the last observed day and go on with the API's figures.
async fn check_daily_chart(
    browser: &Browser,
    hub: &TestHub,
    query: &str,
    body: &Value,
) -> anyhow::Result<()> {
    let ahead = api(hub, &format!("/api/insights/forecast?{query}")).await?;
    let chart = chart_data(browser, "canvas#daily-chart").await?;
    let users = daily(body, "users")?;
    ensure!(
        !users.is_empty(),
        "the API has no dailyMetrics: nothing to compare the chart with"
    );
    let forecast = |field: &str| -> Vec<Value> {
        let series = ahead["data"]["series"].as_array().into_iter().flatten();
        let mut named = series.filter(|s| s["name"] == format!("merged.daily.{field}").as_str());
        named
            .next()
            .and_then(|s| s["forecast"]["points"].as_array().cloned())
            .unwrap_or_default()
    };
    let mut names = vec!["Users".to_owned(), "Events".to_owned()];
    for (label, field) in [("Users", "users"), ("Events", "events")] {
        if !forecast(field).is_empty() {
            names.extend(["forecast", "80% low", "80% high"].map(|line| format!("{label} {line}")));
        }
    }
    ensure!(
        chart.names() == names,
        "the daily chart's datasets are {:?}, not {names:?}",
        chart.names()
    );
    let future: Vec<String> = forecast("users")
        .iter()
        .map(|p| p["date"].as_str().unwrap_or_default().to_owned())
        .collect();
    let labels: Vec<String> = users.keys().cloned().chain(future.clone()).collect();
    same_as_api(chart.labels == labels, || {
        format!(
            "the daily chart's labels are {:?}, the API's dates and forecast days {labels:?}",
            chart.labels
        )
    })?;
    for (name, field) in [("Users", "users"), ("Events", "events")] {
        let observed: Vec<Option<f64>> = daily(body, field)?.into_values().collect();
        let mut expected = observed.clone();
        expected.resize(labels.len(), None);
        let shown = chart.data(name)?;
        same_as_api(shown == expected, || {
            format!("the daily chart's {name} are {shown:?}, the API's {field} {expected:?}")
        })?;
        let points = forecast(field);
        for (line, key) in [
            ("forecast", "value"),
            ("80% low", "lower80"),
            ("80% high", "upper80"),
        ] {
            if points.is_empty() {
                break;
            }
            let mut expected = vec![None; observed.len()];
            *expected.last_mut().unwrap() = *observed.last().unwrap();
            expected.extend(points.iter().map(|p| p[key].as_f64()));
            let label = format!("{name} {line}");
            let shown = chart.data(&label)?;
            same_as_api(shown == expected, || {
                format!("the daily chart's {label} are {shown:?}, the API's {expected:?}")
            })?;
        }
    }
    Ok(())
}

/// Checks the features chart against the API's answer `body`: every feature of
/// `featureMetrics` with its views, most viewed first, and `data-labels` naming the bars.
async fn check_features_chart(browser: &Browser, body: &Value) -> anyhow::Result<()> {
    let features = body["data"]["featureMetrics"]
        .as_array()
        .context("no featureMetrics")?;
    ensure!(
        !features.is_empty(),
        "the API has no featureMetrics: nothing to compare the chart with"
    );
    let expected: BTreeMap<String, Option<f64>> = features
        .iter()
        .map(|f| {
            (
                f["feature"].as_str().unwrap_or_default().to_owned(),
                f["views"].as_f64(),
            )
        })
        .collect();
    let chart = chart_data(browser, "canvas#features-chart").await?;
    ensure!(
        chart.names() == ["Views"],
        "the features chart's datasets are {:?}, not Views",
        chart.names()
    );
    let views = chart.data("Views")?;
    ensure!(
        views.len() == chart.labels.len(),
        "the features chart has {} labels and {} values",
        chart.labels.len(),
        views.len()
    );
    let shown: BTreeMap<String, Option<f64>> = chart
        .labels
        .iter()
        .cloned()
        .zip(views.iter().copied())
        .collect();
    ensure!(
        shown.len() == chart.labels.len(),
        "the features chart repeats a feature: {:?}",
        chart.labels
    );
    same_as_api(shown == expected, || {
        format!("the features chart shows {shown:?}, the API's featureMetrics are {expected:?}")
    })?;
    ensure!(
        views.windows(2).all(|w| w[0] >= w[1]),
        "the features are not sorted by views descending: {:?}",
        chart.labels.iter().zip(views).collect::<Vec<_>>()
    );
    let labels = attribute(browser, "canvas#features-chart", "data-labels").await?;
    ensure!(
        labels.as_deref() == Some(chart.labels.join("|").as_str()),
        "canvas#features-chart data-labels is {labels:?}, its bars are {:?}",
        chart.labels
    );
    Ok(())
}

/// Checks the comparison chart of the view `window` (its `days` or dates) for `metric`:
/// one series per `(id, badge)` in `answering`, labelled with the badge, each that
/// source's own `dailyMetrics[metric]` on the union of their dates (null where a source
/// has no point).
async fn check_compare_chart(
    browser: &Browser,
    hub: &TestHub,
    window: &str,
    metric: &str,
    answering: &[(String, String)],
) -> anyhow::Result<()> {
    let mut expected = Vec::new();
    for (id, badge) in answering {
        let body = api(hub, &format!("/api/metrics?{window}&source={id}")).await?;
        expected.push((badge, daily(&body, metric)?));
    }
    let dates: Vec<&String> = expected
        .iter()
        .flat_map(|(_, points)| points.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    ensure!(
        !dates.is_empty(),
        "no source has dailyMetrics: nothing to compare the chart with"
    );
    let chart = chart_data(browser, "canvas#daily-chart").await?;
    let badges = sorted(expected.iter().map(|(badge, _)| badge.as_str()).collect());
    ensure!(
        sorted(chart.names()) == badges,
        "the comparison chart's series are {:?}, the answering sources' badges {badges:?}",
        chart.names()
    );
    same_as_api(chart.labels.iter().collect::<Vec<_>>() == dates, || {
        format!(
            "the comparison chart's labels are {:?}, the sources' dates {dates:?}",
            chart.labels
        )
    })?;
    for (badge, points) in &expected {
        let wanted: Vec<Option<f64>> = dates
            .iter()
            .map(|date| points.get(*date).copied().flatten())
            .collect();
        let shown = chart.data(badge)?;
        same_as_api(shown == wanted, || {
            format!("{metric} of {badge} in the comparison chart: {shown:?}, the API: {wanted:?}")
        })?;
    }
    Ok(())
}

/// The `data-status`, `data-request` and `#error` text of the dashboard.
const DASHBOARD_STATE: &str = r#"
    const main = document.querySelector('main#dashboard');
    const error = document.querySelector('#error');
    return {
      status: main ? main.getAttribute('data-status') : 'no main#dashboard',
      request: main ? main.getAttribute('data-request') : null,
      error: error ? error.textContent.trim() : null,
    };
"#;

/// Waits until the dashboard finished rendering the answer to `query`.
async fn wait_ready(browser: &Browser, query: &str) -> anyhow::Result<()> {
    let expected = normalized(query);
    browser
        .wait_until(
            &format!("main#dashboard[data-status=ready][data-request={query}]"),
            || async {
                let state = browser.script(DASHBOARD_STATE, vec![]).await?;
                let request = state["request"].as_str().unwrap_or_default();
                let same = normalized(request) == expected;
                match state["status"].as_str() {
                    Some("ready") if same => Ok(Ok(())),
                    Some("error") if same => {
                        bail!("the dashboard shows a whole-request error: {state}")
                    }
                    _ => Ok(Err(state.to_string())),
                }
            },
        )
        .await
}

/// Waits until the dashboard shows a whole-request error for `query` and returns the
/// text of `#error` after checking that it is visible.
async fn wait_error(browser: &Browser, query: &str) -> anyhow::Result<String> {
    let expected = normalized(query);
    browser
        .wait_until(
            &format!("main#dashboard[data-status=error][data-request={query}]"),
            || async {
                let state = browser.script(DASHBOARD_STATE, vec![]).await?;
                let request = state["request"].as_str().unwrap_or_default();
                Ok(
                    if state["status"] == "error" && normalized(request) == expected {
                        Ok(())
                    } else {
                        Err(state.to_string())
                    },
                )
            },
        )
        .await?;
    let error = browser.client().find(Locator::Css("#error")).await?;
    let text = error.text().await?;
    ensure!(
        error.is_displayed().await?,
        "#error is hidden; it reads {text:?}"
    );
    Ok(text.trim().to_owned())
}

/// Opens the dashboard on `query`, which the API answers with `status`: the page must
/// end in `data-status=error` showing the API's own message, and Chromium's console must
/// hold that one failed load and nothing else.
async fn shows_the_api_error(
    b: &Browser,
    hub: &TestHub,
    query: &str,
    status: u16,
) -> anyhow::Result<()> {
    let response = reqwest::get(hub.url(&format!("/api/metrics?{query}"))).await?;
    ensure!(
        response.status() == status,
        "GET /api/metrics?{query} answered {}, not {status}",
        response.status()
    );
    let body: Value = response.json().await?;
    let message = body["error"]["message"]
        .as_str()
        .with_context(|| format!("the {status} has no error.message"))?
        .to_owned();
    b.client().goto(&hub.url(&format!("/?{query}"))).await?;
    let text = wait_error(b, query).await?;
    ensure!(
        text == message,
        "#error reads {text:?}; the API says {message:?}"
    );
    one_failed_load(b, query, status).await
}

/// Reads the console, which must hold exactly one entry: Chromium's "Failed to load
/// resource" for the `status` answer to `/api/metrics?query`.
async fn one_failed_load(browser: &Browser, query: &str, status: u16) -> anyhow::Result<()> {
    let (expected, unexpected): (Vec<String>, Vec<String>) =
        browser.console_errors().await?.into_iter().partition(|e| {
            e.contains(&format!("/api/metrics?{query} "))
                && e.contains("Failed to load resource")
                && e.contains(&format!("status of {status}"))
        });
    ensure!(
        expected.len() == 1 && unexpected.is_empty(),
        "the console should hold exactly one failed load of /api/metrics?{query} ({status}); \
         it has {expected:#?} and besides {unexpected:#?}"
    );
    Ok(())
}

/// Checks that the page has no horizontal overflow at the current width (a table may
/// scroll inside its own `.table-scroll`), after saving a screenshot as `shot`.
async fn check_no_overflow(browser: &Browser, shot: &str) -> anyhow::Result<()> {
    let widths = browser
        .script(
            "return [document.documentElement.scrollWidth, window.innerWidth]",
            vec![],
        )
        .await?;
    let (scroll, inner) = (widths[0].as_u64(), widths[1].as_u64());
    let wide = browser
        .script(
            // Inside a .table-scroll only what escapes its clipping counts: an absolutely
            // positioned element whose containing block lies outside the unpositioned wrapper.
            "return [...document.querySelectorAll('body *')]
               .filter(el => {
                 const scroller = el.parentElement.closest('.table-scroll');
                 return !scroller
                   || (['absolute', 'fixed'].includes(getComputedStyle(el).position)
                       && getComputedStyle(scroller).position === 'static');
               })
               .filter(el => el.getBoundingClientRect().right > window.innerWidth + 1)
               .slice(0, 5)
               .map(el => el.outerHTML.slice(0, el.outerHTML.indexOf('>') + 1));",
            vec![],
        )
        .await?;
    browser.screenshot(shot).await?;
    ensure!(
        scroll.is_some() && scroll <= inner,
        "horizontal overflow: scrollWidth {scroll:?} > innerWidth {inner:?}; widest: {wide}"
    );
    Ok(())
}

/// Opens `path` on the hub and waits for the dashboard's answer to `query`.
async fn open_dashboard(
    browser: &Browser,
    hub: &TestHub,
    path: &str,
    query: &str,
) -> anyhow::Result<()> {
    browser.client().goto(&hub.url(path)).await?;
    wait_ready(browser, query).await
}

/// Each scorecard's `data-value` and badge ids, by metric.
async fn scorecards(browser: &Browser) -> anyhow::Result<Value> {
    browser
        .script(
            r#"
            const cards = {};
            for (const metric of arguments[0]) {
              const card = document.querySelector(`[data-metric="${metric}"]`);
              const value = card && card.querySelector('.value[data-value]');
              cards[metric] = {
                found: !!card,
                value: value ? value.getAttribute('data-value') : null,
                badges: card
                  ? [...card.querySelectorAll('.badges .badge[data-source]')].map(b => b.getAttribute('data-source'))
                  : [],
              };
            }
            return cards;
            "#,
            vec![json!(METRICS)],
        )
        .await
}

/// Checks the scorecards against `GET /api/metrics?query` and returns that answer.
async fn check_scorecards(browser: &Browser, hub: &TestHub, query: &str) -> anyhow::Result<Value> {
    let body = api(hub, &format!("/api/metrics?{query}")).await?;
    let cards = scorecards(browser).await?;
    // Numbers apart from the rest: only they may differ across midnight.
    let (mut numbers, mut problems) = (Vec::new(), Vec::new());
    for metric in METRICS {
        let card = &cards[metric];
        if card["found"] != true {
            problems.push(format!("no [data-metric={metric}]"));
            continue;
        }
        let supplied: Vec<String> = details(&body)
            .iter()
            .filter(|d| {
                d["status"] == "ok" && strings(&d["summaryFields"]).iter().any(|f| f == metric)
            })
            .filter_map(|d| d["id"].as_str().map(str::to_owned))
            .collect();
        // No answering source supplied the field: the API's number is a placeholder and
        // the card shows a dash with an empty data-value.
        let expected = if supplied.is_empty() {
            None
        } else {
            body["data"]["summary"].get(metric)
        };
        match card["value"].as_str() {
            Some(shown) if same_number(shown, expected) => {}
            Some(shown) => numbers.push(format!(
                "{metric}: data-value {shown:?}, expected {} (the API says {}, supplied by {supplied:?})",
                expected.map_or_else(|| "\"\"".to_owned(), Value::to_string),
                body["data"]["summary"][metric]
            )),
            None => problems.push(format!("{metric}: no .value[data-value]")),
        }
        let badges = sorted(strings(&card["badges"]));
        if badges != sorted(supplied.clone()) {
            problems.push(format!(
                "{metric}: badges {badges:?}, the sources that supplied it are {supplied:?}"
            ));
        }
    }
    problems.extend(numbers.iter().cloned());
    ensure!(
        problems.len() == numbers.len(),
        "scorecards for {query}:\n  {}",
        problems.join("\n  ")
    );
    same_as_api(numbers.is_empty(), || {
        format!("scorecards for {query}:\n  {}", numbers.join("\n  "))
    })?;
    Ok(body)
}

/// The query parameters of the page's URL.
async fn url_query(browser: &Browser) -> anyhow::Result<Vec<(String, String)>> {
    let url = browser.client().current_url().await?;
    Ok(normalized(url.query().unwrap_or_default()))
}

async fn attribute(
    browser: &Browser,
    selector: &str,
    name: &str,
) -> anyhow::Result<Option<String>> {
    let element = browser
        .client()
        .find(Locator::Css(selector))
        .await
        .with_context(|| format!("no {selector}"))?;
    Ok(element.attr(name).await?)
}

async fn is_checked(browser: &Browser, selector: &str) -> anyhow::Result<bool> {
    let element = browser
        .client()
        .find(Locator::Css(selector))
        .await
        .with_context(|| format!("no {selector}"))?;
    Ok(element.is_selected().await?)
}

/// Clicks a control as a user would; a checkbox styled away (invisible) is clicked
/// through its `<label for>`, which the contract requires anyway.
async fn click(browser: &Browser, selector: &str) -> anyhow::Result<()> {
    let element = browser
        .client()
        .find(Locator::Css(selector))
        .await
        .with_context(|| format!("no {selector}"))?;
    if element.click().await.is_ok() {
        return Ok(());
    }
    let id = element.attr("id").await?.with_context(|| {
        format!("{selector} cannot be clicked and has no id to find its label by")
    })?;
    browser
        .client()
        .find(Locator::Css(&format!("label[for=\"{id}\"]")))
        .await
        .with_context(|| format!("{selector} cannot be clicked and has no label[for={id}]"))?
        .click()
        .await
        .with_context(|| format!("neither {selector} nor its label can be clicked"))
}

/// Every interactive control without an accessible name, as its opening tag.
async fn unlabelled_controls(browser: &Browser) -> anyhow::Result<Vec<String>> {
    let found = browser
        .script(
            r#"
            const named = (el) => {
              if ((el.getAttribute('aria-label') || '').trim()) return true;
              const by = el.getAttribute('aria-labelledby');
              if (by && by.split(/\s+/).some(id => (document.getElementById(id)?.textContent || '').trim())) return true;
              if (el.id && [...document.querySelectorAll('label[for]')].some(l => l.htmlFor === el.id && l.textContent.trim())) return true;
              if (el.closest('label') && el.closest('label').textContent.trim()) return true;
              if (el.tagName === 'BUTTON') return !!(el.textContent.trim() || (el.getAttribute('title') || '').trim());
              return false;
            };
            return [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
              .filter(el => !named(el))
              .map(el => el.outerHTML.slice(0, el.outerHTML.indexOf('>') + 1));
            "#,
            vec![],
        )
        .await?;
    Ok(strings(&found))
}

async fn check_labels(browser: &Browser) -> anyhow::Result<()> {
    let unlabelled = unlabelled_controls(browser).await?;
    ensure!(
        unlabelled.is_empty(),
        "controls without a label[for] or aria-label: {unlabelled:?}"
    );
    Ok(())
}

/// Opens the admin page and waits until it has rendered `/api/sources`.
async fn open_admin(browser: &Browser, hub: &TestHub) -> anyhow::Result<()> {
    browser.client().goto(&hub.url("/admin/sources")).await?;
    browser
        .wait_until("main#admin[data-status=ready]", || async {
            let status = browser
                .script(
                    "return document.querySelector('main#admin')?.getAttribute('data-status') ?? 'no main#admin'",
                    vec![],
                )
                .await?;
            Ok(if status == "ready" {
                Ok(())
            } else {
                Err(status.to_string())
            })
        })
        .await
}

/// The `data-health` and `data-check` of a source's row on the admin page (on its health
/// cell or inside it), `None` where missing.
async fn shown_health(
    browser: &Browser,
    id: &str,
) -> anyhow::Result<(Option<String>, Option<String>)> {
    let shown = browser
        .script(
            "const cell = document.querySelector(`tr[data-source=\"${CSS.escape(arguments[0])}\"] td[data-field=health]`);
             const read = (name) => {
               if (!cell) return null;
               const marked = cell.matches(`[${name}]`) ? cell : cell.querySelector(`[${name}]`);
               return marked ? marked.getAttribute(name) : null;
             };
             return [read('data-health'), read('data-check')];",
            vec![json!(id)],
        )
        .await?;
    let read = |i: usize| shown[i].as_str().map(str::to_owned);
    Ok((read(0), read(1)))
}

/// Source `id` in `GET /api/sources`.
async fn source_report(hub: &TestHub, id: &str) -> anyhow::Result<Value> {
    let report = api(hub, "/api/sources").await?;
    report["data"]["sources"]
        .as_array()
        .and_then(|sources| sources.iter().find(|s| s["id"] == id))
        .cloned()
        .with_context(|| format!("/api/sources has no {id}: {report}"))
}

/// When source `id` was last probed, by `/api/sources`: `None` if never.
async fn last_checked(hub: &TestHub, id: &str) -> anyhow::Result<Option<DateTime<Utc>>> {
    let report = source_report(hub, id).await?;
    let check = &report["lastCheck"];
    if check.is_null() {
        return Ok(None);
    }
    let at = check["checkedAt"]
        .as_str()
        .with_context(|| format!("{id}'s lastCheck has no checkedAt: {check}"))?;
    let at = DateTime::parse_from_rfc3339(at)
        .with_context(|| format!("{id}'s lastCheck.checkedAt is not RFC 3339: {at:?}"))?;
    Ok(Some(at.with_timezone(&Utc)))
}

/// Clicks Re-check for `id` on the admin page and waits until a probe newer than the one
/// before reached the hub, `#notice` contains `notice` and the redrawn row shows
/// `[data-check=check]`; returns the row's `data-health` then.
async fn recheck(
    browser: &Browser,
    hub: &TestHub,
    id: &str,
    notice: &str,
    check: &str,
) -> anyhow::Result<Option<String>> {
    open_admin(browser, hub).await?;
    let before = last_checked(hub, id).await?;
    click(
        browser,
        &format!("button[data-action=check][data-source={id}]"),
    )
    .await?;
    // The notice is written by the re-check's answer, just before the table reloads:
    // with data-status back at ready, the row is the one drawn after the probe.
    browser
        .wait_until(
            &format!(
                "{id}'s re-check: #notice containing {notice:?}, [data-check={check}] and a \
                 lastCheck newer than {before:?}"
            ),
            || async {
                let text = browser
                    .client()
                    .find(Locator::Css("#notice"))
                    .await?
                    .text()
                    .await?;
                let status = browser
                    .script(
                        "return document.querySelector('main#admin')?.getAttribute('data-status')",
                        vec![],
                    )
                    .await?;
                let (health, shown) = shown_health(browser, id).await?;
                let checked = last_checked(hub, id).await?;
                let newer = checked.is_some_and(|at| before.is_none_or(|then| at > then));
                Ok(
                    if text.contains(notice)
                        && status == "ready"
                        && shown.as_deref() == Some(check)
                        && newer
                    {
                        Ok(health)
                    } else {
                        Err(format!(
                            "notice {text:?}, status {status}, check {shown:?}, \
                             lastCheck.checkedAt {checked:?}"
                        ))
                    },
                )
            },
        )
        .await
}

/// A failed step: its report, and whether the only thing wrong was a [`Mismatch`].
struct Failure {
    report: String,
    mismatch_only: bool,
}

/// Runs the steps, keeping every failure.
struct Steps<'a> {
    browser: &'a Browser,
    failures: Vec<Failure>,
}

impl<'a> Steps<'a> {
    /// Starts with the failure screenshots of earlier runs removed, so that those in the
    /// artefacts directory are this run's.
    fn new(browser: &'a Browser) -> Steps<'a> {
        if let Ok(entries) = std::fs::read_dir(browser.artifacts()) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with("failed-") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Steps {
            browser,
            failures: Vec::new(),
        }
    }

    /// Runs one step, then reads the console: errors logged during a step fail it too.
    async fn run(&mut self, name: &str, step: impl Future<Output = anyhow::Result<()>>) {
        let started = Instant::now();
        let outcome = step.await;
        let console = self.browser.console_errors().await;
        let mut failed = Vec::new();
        let mismatch = outcome
            .as_ref()
            .is_err_and(|err| err.chain().any(|e| e.is::<Mismatch>()));
        if let Err(err) = outcome {
            failed.push(format!("{err:#}"));
        }
        match console {
            Ok(errors) if errors.is_empty() => {}
            Ok(errors) => failed.push(format!("browser console errors: {errors:#?}")),
            Err(err) => failed.push(format!("{err:#}")),
        }
        eprintln!(
            "{} {name} ({:.1} s)",
            if failed.is_empty() { "ok  " } else { "FAIL" },
            started.elapsed().as_secs_f64()
        );
        if !failed.is_empty() {
            let shot = format!(
                "failed-{}.png",
                name.replace(|c: char| !c.is_alphanumeric(), "-")
            );
            let _ = self.browser.screenshot(&shot).await;
            self.failures.push(Failure {
                report: format!("{name} (screenshot {shot}):\n{}", failed.join("\n")),
                mismatch_only: mismatch && failed.len() == 1,
            });
        }
    }
}

#[tokio::test]
async fn dashboard_and_admin_pages_show_what_the_api_answers() {
    let started = Instant::now();
    let day = Utc::now().date_naive();
    // The browser first: without one the test fails at once, naming tests/run.sh.
    let browser = Browser::start()
        .await
        .expect("a browser for the page tests");
    let s = setup().await;
    let hub = &s.hub;
    eprintln!("screenshots in {}", browser.artifacts().display());
    let mut steps = Steps::new(&browser);
    let b = &browser;

    steps
        .run("dashboard opens on 30 days", async {
            open_dashboard(b, hub, "/", "days=30").await?;
            let body = check_scorecards(b, hub, "days=30").await?;
            let strip = b
                .script(
                    "return [...document.querySelectorAll('ul#source-status > li[data-source]')]
                       .map(li => [li.getAttribute('data-source'), li.getAttribute('data-status')]);",
                    vec![],
                )
                .await?;
            let expected: Vec<Value> = details(&body)
                .iter()
                .map(|d| json!([d["id"], d["status"]]))
                .collect();
            ensure!(
                strip.as_array().map(|a| sorted(a.iter().map(Value::to_string).collect()))
                    == Some(sorted(expected.iter().map(Value::to_string).collect())),
                "ul#source-status shows {strip}, metadata.sourceDetails has {expected:?}"
            );
            let series = attribute(b, "canvas#daily-chart", "data-series").await?;
            ensure!(
                series.as_deref().is_some_and(|s| s.starts_with("Users|Events|Users forecast")),
                "canvas#daily-chart data-series is {series:?}, not Users|Events and their forecasts"
            );
            check_daily_chart(b, hub, "days=30", &body).await?;
            check_features_chart(b, &body).await?;
            check_derived(b, &body).await?;
            check_anomaly_marks(b, hub, "days=30").await?;
            check_labels(b).await?;
            b.screenshot("dashboard.png").await?;
            Ok(())
        })
        .await;

    steps
        .run("range select switches to 7 days", async {
            open_dashboard(b, hub, "/", "days=30").await?;
            b.client()
                .find(Locator::Css("select#range"))
                .await?
                .select_by_value("7")
                .await?;
            wait_ready(b, "days=7").await?;
            let week = check_scorecards(b, hub, "days=7").await?;
            check_daily_chart(b, hub, "days=7", &week).await?;
            let month = api(hub, "/api/metrics?days=30").await?;
            ensure!(
                week["data"]["summary"] != month["data"]["summary"],
                "7 and 30 days have the same summary: the test data cannot tell them apart"
            );
            let query = url_query(b).await?;
            ensure!(
                query.contains(&("days".to_owned(), "7".to_owned())),
                "the URL does not carry days=7: {query:?}"
            );

            // The back button returns to the 30 days the page opened on.
            b.client().back().await?;
            wait_ready(b, "days=30").await?;
            let month = check_scorecards(b, hub, "days=30").await?;
            check_daily_chart(b, hub, "days=30", &month).await?;
            let range = b
                .script(
                    "return document.querySelector('select#range').value",
                    vec![],
                )
                .await?;
            ensure!(
                range == "30",
                "after going back select#range shows {range}, not 30"
            );
            let query = url_query(b).await?;
            ensure!(
                !query
                    .iter()
                    .any(|(name, value)| name == "days" && value != "30"),
                "after going back the URL is still {query:?}"
            );
            Ok(())
        })
        .await;

    steps
        .run("source filter", async {
            open_dashboard(b, hub, "/?days=7", "days=7").await?;
            let all = api(hub, "/api/metrics?days=7").await?;

            click(b, "input.source-option[value=postgres]").await?;
            wait_ready(b, "days=7&source=postgres").await?;
            let postgres = check_scorecards(b, hub, "days=7&source=postgres").await?;
            ensure!(
                postgres["data"]["summary"] != all["data"]["summary"],
                "postgres alone and all sources have the same summary"
            );
            ensure!(
                !is_checked(b, "input#source-all").await?,
                "All sources stays checked after checking postgres"
            );

            // Unchecking the last source returns to All.
            click(b, "input.source-option[value=postgres]").await?;
            wait_ready(b, "days=7").await?;
            ensure!(
                is_checked(b, "input#source-all").await?,
                "All sources is not checked after unchecking the last source"
            );

            click(b, "input.source-option[value=demo]").await?;
            wait_ready(b, "days=7&source=demo").await?;
            let demo = check_scorecards(b, hub, "days=7&source=demo").await?;
            ensure!(
                demo["data"]["summary"] != postgres["data"]["summary"],
                "demo and postgres have the same summary"
            );

            click(b, "input.source-option[value=postgres]").await?;
            wait_ready(b, "days=7&source=demo,postgres").await?;
            check_scorecards(b, hub, "days=7&source=demo,postgres").await?;

            // Checking All unchecks the others.
            click(b, "input#source-all").await?;
            wait_ready(b, "days=7").await?;
            for id in ["demo", "postgres"] {
                ensure!(
                    !is_checked(b, &format!("input.source-option[value={id}]")).await?,
                    "{id} stays checked after checking All sources"
                );
            }
            Ok(())
        })
        .await;

    let (from, to) = (s.today - Days::new(20), s.today - Days::new(6));
    let custom = format!("start_date={from}&end_date={to}");
    steps
        .run("custom range", async {
            open_dashboard(b, hub, "/?days=30", "days=30").await?;
            b.client()
                .find(Locator::Css("select#range"))
                .await?
                .select_by_value("custom")
                .await?;
            for id in ["start-date", "end-date", "apply-range"] {
                let element = b.client().find(Locator::Id(id)).await?;
                ensure!(
                    element.is_displayed().await?,
                    "#{id} is not visible with range=custom"
                );
            }
            // Typing into a date input depends on the browser's locale; set the value and
            // fire the events a picker fires, then apply with a real click.
            b.script(
                "for (const [id, value] of [['start-date', arguments[0]], ['end-date', arguments[1]]]) {
                   const input = document.getElementById(id);
                   input.value = value;
                   input.dispatchEvent(new Event('input', {bubbles: true}));
                   input.dispatchEvent(new Event('change', {bubbles: true}));
                 }",
                vec![json!(from.to_string()), json!(to.to_string())],
            )
            .await?;
            click(b, "button#apply-range").await?;
            wait_ready(b, &custom).await?;
            check_scorecards(b, hub, &custom).await?;
            let query = url_query(b).await?;
            ensure!(
                query.contains(&("start_date".to_owned(), from.to_string()))
                    && query.contains(&("end_date".to_owned(), to.to_string())),
                "the URL does not carry {custom}: {query:?}"
            );
            Ok(())
        })
        .await;

    steps
        .run("comparison mode", async {
            open_dashboard(b, hub, "/?days=30", "days=30").await?;
            let body = api(hub, "/api/metrics?days=30").await?;
            // (id, badge) of every source that answered: one series each.
            let answering: Vec<(String, String)> = details(&body)
                .iter()
                .filter(|d| d["status"] == "ok")
                .map(|d| {
                    (
                        d["id"].as_str().unwrap_or_default().to_owned(),
                        d["badge"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            ensure!(
                sorted(answering.iter().map(|(id, _)| id.as_str()).collect())
                    == ["demo", "postgres"],
                "expected demo and postgres to answer: {answering:?}"
            );
            let expected = sorted(answering.iter().map(|(_, badge)| badge.clone()).collect());
            click(b, "input#compare").await?;
            let metric = b
                .client()
                .find(Locator::Css("select#compare-metric"))
                .await?;
            b.wait_until("select#compare-metric to show", || async {
                Ok(if metric.is_displayed().await? {
                    Ok(())
                } else {
                    Err("hidden".to_owned())
                })
            })
            .await?;
            for choice in ["users", "events"] {
                metric.select_by_value(choice).await?;
                // Both metrics have the same series labels: wait for the URL to name the
                // choice and the render to finish as well.
                let wanted = [
                    ("compare".to_owned(), "1".to_owned()),
                    ("metric".to_owned(), choice.to_owned()),
                ];
                b.wait_until(
                    &format!(
                        "compare=1&metric={choice} in the URL, a finished render and \
                         canvas#daily-chart[data-series] listing {expected:?}"
                    ),
                    || async {
                        let query = url_query(b).await?;
                        let state = b.script(DASHBOARD_STATE, vec![]).await?;
                        let series = attribute(b, "canvas#daily-chart", "data-series").await?;
                        let shown = sorted(
                            series
                                .as_deref()
                                .unwrap_or_default()
                                .split('|')
                                .map(str::to_owned)
                                .collect(),
                        );
                        Ok(
                            if wanted.iter().all(|pair| query.contains(pair))
                                && state["status"] == "ready"
                                && shown == expected
                            {
                                Ok(())
                            } else {
                                Err(format!("URL {query:?}, {state}, data-series {series:?}"))
                            },
                        )
                    },
                )
                .await?;
                check_compare_chart(b, hub, "days=30", choice, &answering).await?;
            }
            b.screenshot("dashboard-compare.png").await?;

            // The same view opened from its URL.
            open_dashboard(b, hub, "/?days=30&compare=1&metric=users", "days=30").await?;
            check_compare_chart(b, hub, "days=30", "users", &answering).await?;
            ensure!(
                is_checked(b, "input#compare").await?,
                "compare=1 leaves #compare unchecked"
            );
            let chosen = b
                .script(
                    "return document.querySelector('select#compare-metric').value",
                    vec![],
                )
                .await?;
            ensure!(chosen == "users", "metric=users selects {chosen}");
            Ok(())
        })
        .await;

    steps
        .run("broken source warning", async {
            open_dashboard(b, hub, "/?days=30", "days=30").await?;
            let body = check_scorecards(b, hub, "days=30").await?;
            let broken = details(&body)
                .iter()
                .find(|d| d["id"] == "broken")
                .context("no sourceDetails for broken")?;
            ensure!(broken["status"] == "error", "broken did not fail: {broken}");
            let message = broken["error"]["message"].as_str().context("no error message")?;
            let warning = b
                .client()
                .find(Locator::Css("#warnings .warning[data-source=broken]"))
                .await
                .context("no #warnings .warning[data-source=broken]")?;
            ensure!(warning.is_displayed().await?, "the warning for broken is hidden");
            let text = warning.text().await?;
            ensure!(
                text.contains("Broken warehouse") && text.contains(message),
                "the warning for broken reads {text:?}; it should name Broken warehouse and say {message:?}"
            );
            let others = b
                .script(
                    "return [...document.querySelectorAll('#warnings .warning[data-source]')].map(w => w.getAttribute('data-source'))",
                    vec![],
                )
                .await?;
            ensure!(others == json!(["broken"]), "warnings for {others}, only broken failed");
            Ok(())
        })
        .await;

    steps
        .run("whole-request error", async {
            // Only the broken source selected: every selected source fails, a 503.
            shows_the_api_error(b, hub, "days=30&source=broken", 503).await
        })
        .await;

    steps
        .run("rejected request", async {
            // The start after the end: the API answers 400 and the page shows its message.
            shows_the_api_error(b, hub, "start_date=2026-01-10&end_date=2026-01-01", 400).await
        })
        .await;

    steps
        .run("shareable URL", async {
            open_dashboard(b, hub, "/?days=7&source=demo", "days=7&source=demo").await?;
            check_scorecards(b, hub, "days=7&source=demo").await?;
            let range = b
                .script(
                    "return document.querySelector('select#range').value",
                    vec![],
                )
                .await?;
            ensure!(range == "7", "select#range shows {range}, not 7");
            ensure!(
                is_checked(b, "input.source-option[value=demo]").await?,
                "demo is not checked"
            );
            ensure!(
                !is_checked(b, "input.source-option[value=postgres]").await?,
                "postgres is checked"
            );
            ensure!(
                !is_checked(b, "input#source-all").await?,
                "All sources is checked"
            );
            Ok(())
        })
        .await;

    steps
        .run("clients table", async {
            open_dashboard(b, hub, "/?days=30", "days=30").await?;
            let body = api(hub, "/api/metrics?days=30").await?;
            let rows = || async {
                b.script(
                    "return [...document.querySelectorAll('table#clients tbody tr[data-client]')].map(tr => {
                       const cell = (f) => tr.querySelector(`td[data-field=${f}]`)?.getAttribute('data-value');
                       return [tr.getAttribute('data-client'), cell('events'), cell('users'), cell('page_views')];
                     })",
                    vec![],
                )
                .await
            };
            let expected: Vec<Value> = body["data"]["clientMetrics"]
                .as_array()
                .context("no clientMetrics")?
                .iter()
                .map(|c| {
                    json!([c["client"], c["events"].to_string(), c["users"].to_string(), c["page_views"].to_string()])
                })
                .collect();
            ensure!(!expected.is_empty(), "the API has no clients");
            let events = |rows: &Value| -> Vec<i64> {
                rows.as_array()
                    .map(|r| r.iter().filter_map(|row| row[1].as_str()?.parse().ok()).collect())
                    .unwrap_or_default()
            };
            let shown = rows().await?;
            same_as_api(
                shown.as_array().map(|r| sorted(r.iter().map(Value::to_string).collect()))
                    == Some(sorted(expected.iter().map(Value::to_string).collect())),
                || format!("table#clients rows {shown}\n  the API's clientMetrics {expected:?}"),
            )?;
            ensure!(
                events(&shown).windows(2).all(|w| w[0] >= w[1]),
                "the clients are not sorted by events descending: {:?}",
                events(&shown)
            );
            let sort = attribute(b, "th:has(button[data-sort=events])", "aria-sort").await?;
            ensure!(sort.as_deref() == Some("descending"), "events th has aria-sort {sort:?}");

            click(b, "button[data-sort=events]").await?;
            let ascending = b
                .wait_until("the clients sorted by events ascending", || async {
                    let shown = rows().await?;
                    let events = events(&shown);
                    Ok(if events.windows(2).all(|w| w[0] <= w[1]) {
                        Ok(shown)
                    } else {
                        Err(format!("{events:?}"))
                    })
                })
                .await?;
            ensure!(
                ascending.as_array().map(Vec::len) == Some(expected.len()),
                "sorting changed the rows: {ascending}"
            );
            let sort = attribute(b, "th:has(button[data-sort=events])", "aria-sort").await?;
            ensure!(sort.as_deref() == Some("ascending"), "events th has aria-sort {sort:?} after the flip");
            Ok(())
        })
        .await;

    steps
        .run("phone width", async {
            b.set_viewport(390, 844).await?;
            let outcome = async {
                open_dashboard(b, hub, "/?days=30", "days=30").await?;
                check_no_overflow(b, "dashboard-phone.png").await
            }
            .await;
            b.set_viewport(1280, 1500).await?;
            outcome
        })
        .await;

    steps
        .run("admin lists the sources and the broken one's error", async {
            open_admin(b, hub).await?;
            let report = api(hub, "/api/sources").await?;
            let sources = report["data"]["sources"]
                .as_array()
                .context("no sources")?;
            let rows = b
                .script(
                    "return [...document.querySelectorAll('table#sources tbody tr[data-source]')].map(tr => tr.getAttribute('data-source'))",
                    vec![],
                )
                .await?;
            let ids: Vec<Value> = sources.iter().map(|s| s["id"].clone()).collect();
            ensure!(
                rows.as_array()
                    .map(|r| sorted(r.iter().map(Value::to_string).collect()))
                    == Some(sorted(ids.iter().map(Value::to_string).collect())),
                "table#sources rows {rows}, the API lists {ids:?}"
            );
            let (health, _) = shown_health(b, "broken").await?;
            ensure!(
                health.as_deref() == Some("failing"),
                "broken's health is {health:?}, not failing"
            );
            let broken = sources
                .iter()
                .find(|s| s["id"] == "broken")
                .context("/api/sources has no broken")?;
            let code = broken["lastError"]["code"]
                .as_str()
                .context("broken has no lastError")?;
            let message = broken["lastError"]["message"].as_str().unwrap_or_default();
            let last_error = b
                .client()
                .find(Locator::Css(
                    "tr[data-source=broken] td[data-field=last-error]",
                ))
                .await
                .context("no last-error cell for broken")?
                .text()
                .await?;
            ensure!(
                last_error.contains(code) && last_error.contains(message),
                "broken's last-error reads {last_error:?}; it should hold {code} and {message:?}"
            );
            // The demo keeps history: its row says how much of the backfill is stored.
            let demo = sources.iter().find(|s| s["id"] == "demo").context("no demo")?;
            let backfill = &demo["history"]["backfill"];
            let shown = b
                .client()
                .find(Locator::Css("tr[data-source=demo] [data-history-state]"))
                .await
                .context("no history line for demo")?
                .text()
                .await?;
            // (The backfill may store a day between the page's read and this one.)
            let expected = format!("/{} settled days stored", backfill["targetDays"]);
            ensure!(shown.contains(&expected), "demo's history reads {shown:?}, not {expected:?}");
            check_labels(b).await?;
            b.screenshot("admin.png").await?;
            Ok(())
        })
        .await;

    steps
        .run("admin at phone width", async {
            b.set_viewport(390, 844).await?;
            let outcome = async {
                open_admin(b, hub).await?;
                check_no_overflow(b, "admin-phone.png").await
            }
            .await;
            b.set_viewport(1280, 1500).await?;
            outcome
        })
        .await;

    steps
        .run("admin re-check of a source that is down", async {
            let health = recheck(b, hub, "broken", "broken is down", "down").await?;
            // broken never fetched successfully: failing by its fetches and by the probe.
            ensure!(
                health.as_deref() == Some("failing"),
                "broken's health is {health:?} after the re-check, not failing"
            );
            let report = source_report(hub, "broken").await?;
            ensure!(
                report["lastCheck"]["status"] == "down",
                "the hub has broken's lastCheck {}, not down",
                report["lastCheck"]
            );
            Ok(())
        })
        .await;

    steps
        .run("admin re-check of a source that is up", async {
            let health = recheck(b, hub, "demo", "demo answered its health check", "ok").await?;
            let report = source_report(hub, "demo").await?;
            ensure!(
                health.as_deref() == Some("ok") && report["health"] == "ok",
                "demo's health is {health:?} on the page and {} in /api/sources after a \
                 passing re-check, not ok",
                report["health"]
            );
            ensure!(
                report["lastCheck"]["status"] == "ok",
                "the hub has demo's lastCheck {}, not ok",
                report["lastCheck"]
            );
            Ok(())
        })
        .await;

    steps
        .run("admin clear cache", async {
            // Fill demo's cache whatever ran before, so that the clear has something to do.
            api(hub, "/api/metrics?days=30&source=demo").await?;
            let report = source_report(hub, "demo").await?;
            let before = &report["cache"]["entries"];
            ensure!(
                before.as_u64().is_some_and(|n| n > 0),
                "demo's cache has {before} entries before the clear: nothing to clear"
            );
            open_admin(b, hub).await?;
            click(b, "button[data-action=clear][data-source=demo]").await?;
            b.wait_until("#notice to say \"Cache cleared for demo\"", || async {
                let notice = b.client().find(Locator::Css("#notice")).await?;
                let text = notice.text().await?;
                Ok(
                    if text.contains("Cache cleared for demo") && notice.is_displayed().await? {
                        Ok(())
                    } else {
                        Err(format!("{text:?}"))
                    },
                )
            })
            .await?;
            let role = attribute(b, "#notice", "role").await?;
            ensure!(
                role.as_deref() == Some("status"),
                "#notice has role {role:?}, not status"
            );
            let report = source_report(hub, "demo").await?;
            let after = &report["cache"]["entries"];
            ensure!(
                after == &json!(0),
                "demo's cache still has {after} entries after the clear"
            );
            Ok(())
        })
        .await;

    steps
        .run("admin lists the invalid file", async {
            open_admin(b, hub).await?;
            let report = api(hub, "/api/sources").await?;
            let invalid = report["data"]["invalidFiles"]
                .as_array()
                .and_then(|files| {
                    files.iter().find(|f| {
                        f["file"]
                            .as_str()
                            .is_some_and(|p| p.ends_with("bad.yaml"))
                    })
                })
                .context("/api/sources does not list bad.yaml as invalid")?;
            let file = invalid["file"].as_str().unwrap_or_default();
            let items = b
                .script(
                    "const file = [...document.querySelectorAll('#invalid-files .invalid-file[data-file]')]
                       .find(f => f.getAttribute('data-file') === arguments[0]);
                     return file ? [...file.querySelectorAll('li')].map(li => li.textContent.trim()) : null;",
                    vec![json!(file)],
                )
                .await?;
            let listed = b
                .script(
                    "return [...document.querySelectorAll('#invalid-files .invalid-file')].map(f => f.getAttribute('data-file'))",
                    vec![],
                )
                .await?;
            let items = strings(&items);
            ensure!(
                !items.is_empty(),
                "no #invalid-files .invalid-file[data-file={file:?}] with errors; listed: {listed}"
            );
            let errors = invalid["errors"]
                .as_array()
                .context("bad.yaml has no errors")?;
            ensure!(
                items.len() == errors.len(),
                "bad.yaml lists {items:?}, the API has {} errors",
                errors.len()
            );
            for (item, error) in items.iter().zip(errors) {
                let expected = format!(
                    "line {} · {}: {}",
                    error["line"],
                    error["path"].as_str().unwrap_or_default(),
                    error["message"].as_str().unwrap_or_default()
                );
                ensure!(
                    item.contains(&expected),
                    "bad.yaml's error reads {item:?}, expected {expected:?}"
                );
            }
            Ok(())
        })
        .await;

    steps
        .run("related series are listed in words", async {
            let planted = related_hub(day).await?;
            let result = check_correlations(b, &planted).await;
            planted.hub.stop().await?;
            result
        })
        .await;

    let failures = std::mem::take(&mut steps.failures);
    browser.close().await.unwrap();
    s.hub.stop().await.unwrap();
    eprintln!(
        "browser tests took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Across UTC midnight the page and the API may have answered different days: numbers
    // that differ are a note then, not a failure.
    let crossed_midnight = Utc::now().date_naive() != day;
    let (notes, failures): (Vec<Failure>, Vec<Failure>) = failures
        .into_iter()
        .partition(|f| crossed_midnight && f.mismatch_only);
    for note in &notes {
        eprintln!(
            "note: the run crossed UTC midnight, so this is not a failure:\n{}",
            note.report
        );
    }
    let failures: Vec<String> = failures.into_iter().map(|f| f.report).collect();
    assert!(
        failures.is_empty(),
        "{} step(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// A hub on the planted fixture of the insights tests: unusual days, and a source whose
/// contacts follow another's users by three days.
struct RelatedHub {
    hub: TestHub,
    _sources: TempDir,
}

async fn related_hub(today: NaiveDate) -> anyhow::Result<RelatedHub> {
    let (lead, follow) = planted::lagged_sources(today);
    let sources = sources_dir(&[
        ("plant.yaml", planted::anomalies_source(today)),
        ("lead.yaml", lead),
        ("follow.yaml", follow),
    ])?;
    let hub = TestHub::start(sources.path(), &HashMap::new(), HubSettings::default()).await?;
    Ok(RelatedHub {
        hub,
        _sources: sources,
    })
}

/// Opens the dashboard on 90 days of `planted` and checks the `#correlations` list says,
/// in order, the sentences of `GET /api/insights/correlations`, the planted pair first.
async fn check_correlations(browser: &Browser, planted: &RelatedHub) -> anyhow::Result<()> {
    let hub = &planted.hub;
    open_dashboard(browser, hub, "/?days=90", "days=90").await?;
    let report = api(hub, "/api/insights/correlations?days=90").await?;
    let pairs = report["data"]["pairs"].as_array().context("no pairs")?;
    ensure!(!pairs.is_empty(), "the API lists no related pair: {report}");
    let expected: Vec<Value> = pairs
        .iter()
        .map(|p| {
            json!([
                format!(
                    "{}|{}",
                    p["a"].as_str().unwrap_or_default(),
                    p["b"].as_str().unwrap_or_default()
                ),
                p["lag"].to_string(),
                p["sentence"]
            ])
        })
        .collect();
    let shown = browser
        .script(
            "const section = document.querySelector('section#correlations');
             return section.hidden ? null : [...section.querySelectorAll('li')]
               .map(li => [li.dataset.pair, li.dataset.lag, li.textContent]);",
            vec![],
        )
        .await?;
    same_as_api(shown == Value::Array(expected.clone()), || {
        format!("section#correlations lists {shown}, the API {expected:?}")
    })?;
    ensure!(
        expected[0][0] == "follow.daily.contacts|lead.daily.users",
        "the strongest pair is {}, not the planted one",
        expected[0][0]
    );
    browser.screenshot("correlations.png").await?;
    Ok(())
}

/// The API's tokens for [`a_token_is_asked_for_and_kept_for_the_session`].
const READ_TOKEN: &str = "mh_browser_read_token_0123456789abcdef0123456789abcdef01234567";
const ADMIN_TOKEN: &str = "mh_browser_admin_token_0123456789abcdef0123456789abcdef0123456";

/// Waits for the token dialog and returns the reason it shows.
async fn token_dialog(browser: &Browser) -> anyhow::Result<String> {
    browser
        .wait_until("dialog#token-dialog[open]", || async {
            let reason = browser
                .script(
                    "const d = document.querySelector('dialog#token-dialog');
                     return d && d.open ? document.querySelector('#token-reason').textContent : null;",
                    vec![],
                )
                .await?;
            Ok(reason.as_str().map(str::to_owned).ok_or("no open dialog".to_owned()))
        })
        .await
}

/// Types `token` into the dialog and submits it.
async fn give_token(browser: &Browser, token: &str) -> anyhow::Result<()> {
    let input = browser.client().find(Locator::Css("#token-input")).await?;
    input.clear().await?;
    input.send_keys(token).await?;
    browser
        .client()
        .find(Locator::Css("#token-submit"))
        .await?
        .click()
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_asked_for_and_kept_for_the_session() {
    use metrics_hub::api::access::{Access, AccessSettings, Scope, TokenStore};
    use metrics_hub::api::serve::ServeSettings;
    use metrics_hub::api::ApiSettings;

    let browser = Browser::start()
        .await
        .expect("a browser for the page tests");
    let data = tempfile::tempdir().unwrap();
    let sources = sources_dir(&[("demo.yaml", shipped("demo.yaml"))]).unwrap();
    let env = HashMap::from([(
        "METRICS_HUB_DATA_DIR".to_owned(),
        data.path().display().to_string(),
    )]);
    let mut tokens = TokenStore::default();
    tokens.add_env_list(Scope::Read, READ_TOKEN);
    tokens.add_env_list(Scope::Admin, ADMIN_TOKEN);
    let access = Access::for_listener(
        "127.0.0.1:0".parse().unwrap(),
        AccessSettings {
            tokens,
            ..AccessSettings::default()
        },
    )
    .unwrap();
    let serve = ServeSettings {
        api: ApiSettings {
            access: std::sync::Arc::new(access),
            ..ApiSettings::default()
        },
        ..ServeSettings::default()
    };
    let hub = TestHub::start_with(sources.path(), &env, HubSettings::default(), serve)
        .await
        .unwrap();
    let b = &browser;
    let outcome: anyhow::Result<()> = async {
        b.client().goto(&hub.url("/?days=7")).await?;
        let reason = token_dialog(b).await?;
        ensure!(reason.contains("needs a token"), "the dialog says {reason:?}");
        give_token(b, "mh_not_a_token_this_hub_knows").await?;
        let reason = token_dialog(b).await?;
        ensure!(reason.contains("not one this hub knows"), "a wrong token: {reason:?}");
        give_token(b, READ_TOKEN).await?;
        wait_ready(b, "days=7").await?;
        let shown = scorecards(b).await?;
        let expected = reqwest::Client::new()
            .get(hub.url("/api/metrics?days=7"))
            .bearer_auth(READ_TOKEN)
            .send()
            .await?
            .json::<Value>()
            .await?;
        ensure!(
            same_number(shown["total_users"]["value"].as_str().unwrap_or_default(), Some(&expected["data"]["summary"]["total_users"])),
            "users shown {shown}, API {}", expected["data"]["summary"]
        );
        // Kept for the session: a reload asks nothing, and the URL never holds it.
        b.client().refresh().await?;
        wait_ready(b, "days=7").await?;
        let href = b.script("return location.href;", vec![]).await?;
        ensure!(!href.to_string().contains(READ_TOKEN), "the token is in the URL: {href}");
        // The read token cannot clear caches: the admin page asks for an admin one.
        b.client().goto(&hub.url("/admin/sources")).await?;
        b.wait_until("the admin table", || async {
            let rows = b.script("return document.querySelectorAll('#sources tbody tr').length;", vec![]).await?;
            Ok(if rows.as_u64() > Some(0) { Ok(()) } else { Err("no rows".to_owned()) })
        })
        .await?;
        b.client().find(Locator::Css("#clear-all")).await?.click().await?;
        let reason = token_dialog(b).await?;
        ensure!(reason.contains("admin scope"), "a read token on an admin action: {reason:?}");
        give_token(b, ADMIN_TOKEN).await?;
        b.wait_until("the clear to succeed", || async {
            let open = b.script("const d = document.querySelector('dialog#token-dialog'); return !!(d && d.open);", vec![]).await?;
            Ok(if open == json!(false) { Ok(()) } else { Err("dialog still open".to_owned()) })
        })
        .await?;
        b.screenshot("token-admin.png").await?;
        Ok(())
    }
    .await;
    if outcome.is_err() {
        let _ = b.screenshot("failed-token.png").await;
    }
    browser.close().await.unwrap();
    hub.stop().await.unwrap();
    outcome.unwrap();
}
