//! End-to-end in a real browser: the built-in dashboard (`/`) and admin page
//! (`/admin/sources`) in headless Chromium, over one hub with the shipped demo (SQLite) and
//! postgres sources, a source that fails at fetch time and an invalid source file. Every
//! number a page shows is checked against the hub's own API asked with the same
//! parameters; the DOM read here is the pages' contract (ids and data-* attributes).
//!
//! Each step opens the state it needs by URL, so one failing step does not hide the
//! others: failures are collected and reported together at the end, each with a
//! screenshot (`failed-*.png`) beside the named ones in the artefacts directory.

use std::collections::HashMap;
use std::future::Future;
use std::time::Instant;

use anyhow::{bail, ensure, Context};
use chrono::{Days, NaiveDate, Utc};
use fantoccini::Locator;
use metrics_hub::demo;
use metrics_hub::hub::HubSettings;
use metrics_hub_tests::browser::Browser;
use metrics_hub_tests::{repo_root, sources_dir, Postgres, TestHub};
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
    let sources = sources_dir(&[
        ("demo.yaml", shipped("demo.yaml")),
        ("postgres.yaml", shipped("postgres.yaml")),
        ("broken.yaml", broken),
        ("bad.yaml", bad),
    ])
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let env = HashMap::from([
        ("DATABASE_URL".to_owned(), pg_url),
        (
            "METRICS_HUB_DATA_DIR".to_owned(),
            data.path().display().to_string(),
        ),
    ]);
    let hub = TestHub::start(sources.path(), &env, HubSettings::default())
        .await
        .unwrap();
    Setup {
        hub,
        today,
        _dirs: (data, sources),
    }
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

/// Whether a scorecard's `data-value` is the API's number (`""` for a field no source
/// supplied).
fn same_number(shown: &str, expected: &Value) -> bool {
    match expected.as_f64() {
        Some(number) => shown.parse::<f64>().is_ok_and(|n| n == number),
        None => shown.is_empty(),
    }
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
    let mut problems = Vec::new();
    for metric in METRICS {
        let card = &cards[metric];
        if card["found"] != true {
            problems.push(format!("no [data-metric={metric}]"));
            continue;
        }
        let expected = &body["data"]["summary"][metric];
        match card["value"].as_str() {
            Some(shown) if same_number(shown, expected) => {}
            Some(shown) => problems.push(format!(
                "{metric}: data-value {shown:?}, the API says {expected}"
            )),
            None => problems.push(format!("{metric}: no .value[data-value]")),
        }
        let supplied: Vec<String> = details(&body)
            .iter()
            .filter(|d| {
                d["status"] == "ok" && strings(&d["summaryFields"]).iter().any(|f| f == metric)
            })
            .filter_map(|d| d["id"].as_str().map(str::to_owned))
            .collect();
        let badges = sorted(strings(&card["badges"]));
        if badges != sorted(supplied.clone()) {
            problems.push(format!(
                "{metric}: badges {badges:?}, the sources that supplied it are {supplied:?}"
            ));
        }
    }
    ensure!(
        problems.is_empty(),
        "scorecards for {query}:\n  {}",
        problems.join("\n  ")
    );
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

/// The `data-health` of the broken source's row (on its health cell or inside it).
async fn broken_health(browser: &Browser) -> anyhow::Result<String> {
    let health = browser
        .script(
            "const cell = document.querySelector('tr[data-source=broken] td[data-field=health]');
             if (!cell) return 'no td[data-field=health] for broken';
             const marked = cell.matches('[data-health]') ? cell : cell.querySelector('[data-health]');
             return marked ? marked.getAttribute('data-health') : 'no [data-health]';",
            vec![],
        )
        .await?;
    Ok(health.as_str().unwrap_or_default().to_owned())
}

/// Runs the steps, keeping every failure.
struct Steps<'a> {
    browser: &'a Browser,
    failures: Vec<String>,
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
            self.failures.push(format!(
                "{name} (screenshot {shot}):\n{}",
                failed.join("\n")
            ));
        }
    }
}

#[tokio::test]
async fn dashboard_and_admin_pages_show_what_the_api_answers() {
    let started = Instant::now();
    // The browser first: without one the test fails at once, naming tests/run.sh.
    let browser = Browser::start()
        .await
        .expect("a browser for the page tests");
    let s = setup().await;
    let hub = &s.hub;
    eprintln!("screenshots in {}", browser.artifacts().display());
    let badges: HashMap<String, String> = api(hub, "/api/sources").await.unwrap()["data"]
        ["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|source| {
            (
                source["id"].as_str().unwrap().to_owned(),
                source["badge"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
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
                series.as_deref() == Some("Users|Events"),
                "canvas#daily-chart data-series is {series:?}, not Users|Events"
            );
            let labels = attribute(b, "canvas#features-chart", "data-labels").await?;
            let features: Vec<&str> = body["data"]["featureMetrics"]
                .as_array()
                .context("no featureMetrics")?
                .iter()
                .filter_map(|f| f["feature"].as_str())
                .collect();
            ensure!(
                labels.as_deref() == Some(features.join("|").as_str()),
                "canvas#features-chart data-labels is {labels:?}, the API's features are {features:?}"
            );
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
            let answering: Vec<String> = details(&body)
                .iter()
                .filter(|d| d["status"] == "ok")
                .filter_map(|d| badges.get(d["id"].as_str()?).cloned())
                .collect();
            ensure!(
                answering.len() == 2,
                "expected demo and postgres to answer: {answering:?}"
            );
            let expected = sorted(answering);
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
            }
            b.screenshot("dashboard-compare.png").await?;

            // The same view opened from its URL.
            open_dashboard(b, hub, "/?days=30&compare=1&metric=users", "days=30").await?;
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
            let query = "days=30&source=broken";
            let response = reqwest::get(hub.url(&format!("/api/metrics?{query}"))).await?;
            ensure!(
                response.status() == 503,
                "GET /api/metrics?{query} answered {}, not 503",
                response.status()
            );
            let body: Value = response.json().await?;
            let message = body["error"]["message"]
                .as_str()
                .context("the 503 has no error.message")?
                .to_owned();
            b.client().goto(&hub.url(&format!("/?{query}"))).await?;
            b.wait_until("main#dashboard[data-status=error]", || async {
                let state = b.script(DASHBOARD_STATE, vec![]).await?;
                Ok(if state["status"] == "error" {
                    Ok(())
                } else {
                    Err(state.to_string())
                })
            })
            .await?;
            let error = b.client().find(Locator::Css("#error")).await?;
            let text = error.text().await?;
            ensure!(
                error.is_displayed().await? && text.contains(&message),
                "#error reads {text:?} (visible: {}); the API says {message:?}",
                error.is_displayed().await?
            );
            // Chromium logs every 503 it receives; that one is expected here, nothing else.
            let unexpected: Vec<String> = b
                .console_errors()
                .await?
                .into_iter()
                .filter(|e| !(e.contains(&format!("/api/metrics?{query} ")) && e.contains("503")))
                .collect();
            ensure!(
                unexpected.is_empty(),
                "browser console errors: {unexpected:#?}"
            );
            Ok(())
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
            ensure!(
                shown.as_array().map(|r| sorted(r.iter().map(Value::to_string).collect()))
                    == Some(sorted(expected.iter().map(Value::to_string).collect())),
                "table#clients rows {shown}\n  the API's clientMetrics {expected:?}"
            );
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
                let widths = b
                    .script(
                        "return [document.documentElement.scrollWidth, window.innerWidth]",
                        vec![],
                    )
                    .await?;
                let (scroll, inner) = (widths[0].as_u64(), widths[1].as_u64());
                let wide = b
                    .script(
                        "return [...document.querySelectorAll('body *')]
                           .filter(el => el.getBoundingClientRect().right > window.innerWidth + 1)
                           .slice(0, 5)
                           .map(el => el.outerHTML.slice(0, el.outerHTML.indexOf('>') + 1));",
                        vec![],
                    )
                    .await?;
                b.screenshot("dashboard-phone.png").await?;
                ensure!(
                    scroll <= inner,
                    "horizontal overflow at 390 px: scrollWidth {scroll:?} > innerWidth {inner:?}; widest: {wide}"
                );
                Ok(())
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
            let health = broken_health(b).await?;
            ensure!(
                health == "failing",
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
            check_labels(b).await?;
            b.screenshot("admin.png").await?;
            Ok(())
        })
        .await;

    steps
        .run("admin re-check", async {
            open_admin(b, hub).await?;
            click(b, "button[data-action=check][data-source=broken]").await?;
            // The probe's outcome is shown beside the health, which follows it: the notice
            // is written only by the re-check's own answer.
            let outcome = b
                .wait_until("broken's re-check to show it down", || async {
                    let notice = b
                        .client()
                        .find(Locator::Css("#notice"))
                        .await?
                        .text()
                        .await?;
                    let check = attribute(
                        b,
                        "tr[data-source=broken] td[data-field=health] [data-check]",
                        "data-check",
                    )
                    .await
                    .ok()
                    .flatten();
                    let health = broken_health(b).await?;
                    Ok(
                        if notice.contains("broken is down")
                            && check.as_deref() == Some("down")
                            && health == "failing"
                        {
                            Ok(())
                        } else {
                            Err(format!(
                                "notice {notice:?}, check {check:?}, health {health:?}"
                            ))
                        },
                    )
                })
                .await;
            let report = api(hub, "/api/sources").await?;
            let last_check = report["data"]["sources"]
                .as_array()
                .and_then(|s| s.iter().find(|s| s["id"] == "broken"))
                .map(|s| s["lastCheck"].clone());
            ensure!(
                last_check.as_ref().is_some_and(|c| c["status"] == "down"),
                "the re-check did not reach the hub: lastCheck {last_check:?}"
            );
            outcome
        })
        .await;

    steps
        .run("admin clear cache", async {
            open_admin(b, hub).await?;
            click(b, "button[data-action=clear][data-source=demo]").await?;
            b.wait_until("#notice to report the cleared demo cache", || async {
                let notice = b.client().find(Locator::Css("#notice")).await?;
                let text = notice.text().await?;
                Ok(if text.contains("demo") && notice.is_displayed().await? {
                    Ok(())
                } else {
                    Err(format!("{text:?}"))
                })
            })
            .await?;
            let role = attribute(b, "#notice", "role").await?;
            ensure!(
                role.as_deref() == Some("status"),
                "#notice has role {role:?}, not status"
            );
            let report = api(hub, "/api/sources").await?;
            let entries = report["data"]["sources"]
                .as_array()
                .and_then(|s| s.iter().find(|s| s["id"] == "demo"))
                .map(|s| s["cache"]["entries"].clone());
            ensure!(
                entries == Some(json!(0)),
                "demo's cache still has {entries:?} entries after clear"
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

    let failures = std::mem::take(&mut steps.failures);
    browser.close().await.unwrap();
    s.hub.stop().await.unwrap();
    eprintln!(
        "browser tests took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} step(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
