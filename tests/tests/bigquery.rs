//! End-to-end: the shipped `ga4-bigquery` source against a local BigQuery REST v2 stand-in,
//! driven through the real `gcp-bigquery-client`, merged with the shipped SQLite demo.
//! The stand-in holds the demo's events as GA4 export rows and executes the shipped SQL
//! over them; the expected numbers are computed independently from the same events
//! (`metrics_hub_tests::expected`). tests/ga4_fidelity.rs compares the port with the
//! original queries.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use metrics_hub::hub::HubSettings;
use metrics_hub::kinds::bigquery::Credentials;
use metrics_hub::kinds::bigquery::{dry_run, DryRunError};
use metrics_hub::kinds::sql::demo::{self, DemoEvent};
use metrics_hub::kinds::KindSpec;
use metrics_hub::load;
use metrics_hub::model::{Dataset, QueryParams};
use metrics_hub::template::BindValue;
use metrics_hub_tests::bigquery_standin::{Behaviour, BigqueryStandin, Data, Failure, Recorded};
use metrics_hub_tests::expected::{expected, Narrow};
use metrics_hub_tests::ga4_export::Ga4Export;
use metrics_hub_tests::{details, get, repo_root, sources_dir, TestHub};
use serde_json::{json, Value};

const PROJECT: &str = "standin-project";
const DATASET: &str = "analytics_489035450";
/// Not US or EU: BigQuery finds such jobs only when getQueryResults names the location.
const LOCATION: &str = "europe-west2";
/// Small pages, so every list dataset takes several.
const PAGE_SIZE: usize = 7;

fn shipped(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("sources.d").join(name)).unwrap()
}

/// The shipped ga4-bigquery.yaml, enabled and pointed at the stand-in: credentials `none`
/// (which the config accepts only with a loopback base URL), small pages and fast polls.
/// Everything else, the queries above all, is the shipped file.
fn ga4_against(standin: &BigqueryStandin, timeout: &str) -> String {
    let text = shipped("ga4-bigquery.yaml");
    let replace = |text: String, from: &str, to: &str| {
        assert!(
            text.contains(from),
            "the shipped file no longer has {from:?}"
        );
        text.replacen(from, to, 1)
    };
    let text = replace(
        text,
        "enabled: \"${GOOGLE_APPLICATION_CREDENTIALS_JSON:+true}\"",
        "enabled: true",
    );
    let text = replace(
        text,
        "    type: inline_json\n    json: \"${GOOGLE_APPLICATION_CREDENTIALS_JSON:-}\"\n",
        &format!("    type: none\n  base_url: {}\n", standin.base_url),
    );
    let text = replace(
        text,
        "  page_size: 10000\n",
        &format!("  page_size: {PAGE_SIZE}\n  poll_interval: 10ms\n"),
    );
    replace(text, "timeout: 15s\n", &format!("timeout: {timeout}\n"))
}

struct Setup {
    hub: TestHub,
    standin: BigqueryStandin,
    events: Vec<DemoEvent>,
    today: NaiveDate,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// The shipped demo and ga4-bigquery sources; the stand-in holds the very events the demo
/// generates into its SQLite database.
async fn setup(behaviour: Behaviour, timeout: &str, env: &[(&str, &str)]) -> Setup {
    let today = Utc::now().date_naive();
    setup_with(demo::generate(today), today, behaviour, timeout, env).await
}

async fn setup_with(
    events: Vec<DemoEvent>,
    today: NaiveDate,
    behaviour: Behaviour,
    timeout: &str,
    env: &[(&str, &str)],
) -> Setup {
    let export = Ga4Export::daily(&events);
    let standin = BigqueryStandin::start(PROJECT, DATASET, Data::Export(export.into()))
        .await
        .unwrap();
    standin.set(behaviour);
    standin.set_today(today);
    let data = tempfile::tempdir().unwrap();
    let sources = sources_dir(&[
        ("demo.yaml", shipped("demo.yaml")),
        ("ga4-bigquery.yaml", ga4_against(&standin, timeout)),
    ])
    .unwrap();
    let mut variables = HashMap::from([
        (
            "METRICS_HUB_DATA_DIR".to_owned(),
            data.path().display().to_string(),
        ),
        ("GOOGLE_CLOUD_PROJECT".to_owned(), PROJECT.to_owned()),
        ("BIGQUERY_LOCATION".to_owned(), LOCATION.to_owned()),
    ]);
    for (name, value) in env {
        variables.insert((*name).to_owned(), (*value).to_owned());
    }
    let hub = TestHub::start(sources.path(), &variables, HubSettings::default())
        .await
        .unwrap();
    Setup {
        hub,
        standin,
        events,
        today,
        _dirs: (data, sources),
    }
}

async fn clear_caches(hub: &TestHub) {
    let response = reqwest::Client::new()
        .post(hub.url("/api/cache/clear"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

fn queries(requests: &[Recorded]) -> Vec<&Recorded> {
    requests.iter().filter(|r| r.method == "POST").collect()
}

fn yyyymmdd(date: NaiveDate) -> String {
    date.format("%Y%m%d").to_string()
}

/// The daily tables of `from..=to`.
fn tables_between(from: NaiveDate, to: NaiveDate) -> Vec<String> {
    from.iter_days()
        .take_while(|day| *day <= to)
        .map(|day| format!("events_{}", yyyymmdd(day)))
        .collect()
}

/// The typed parameters of a recorded jobs.query, by name: (type, value).
fn parameters(request: &Recorded) -> BTreeMap<String, (String, String)> {
    request.body.as_ref().unwrap()["queryParameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                (
                    p["parameterType"]["type"].as_str().unwrap().to_owned(),
                    p["parameterValue"]["value"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect()
}

fn sql(request: &Recorded) -> &str {
    request.body.as_ref().unwrap()["query"].as_str().unwrap()
}

/// Every jobs.query carries standard SQL, named typed parameters, the cost guard, the
/// default dataset, the location, the page size and the source's labels.
fn assert_well_formed(request: &Recorded, maximum_bytes_billed: &str) {
    let body = request.body.as_ref().unwrap();
    assert_eq!(
        request.path,
        format!("/bigquery/v2/projects/{PROJECT}/queries")
    );
    assert_eq!(body["useLegacySql"], false, "{body}");
    assert_eq!(body["parameterMode"], "NAMED");
    assert_eq!(body["maximumBytesBilled"], maximum_bytes_billed);
    assert_eq!(
        body["defaultDataset"],
        json!({"projectId": PROJECT, "datasetId": DATASET})
    );
    assert_eq!(body["location"], LOCATION);
    assert_eq!(body["maxResults"], PAGE_SIZE);
    assert_eq!(body["labels"]["metrics_hub_source"], "ga4-bigquery");
    assert!(body["requestId"].as_str().is_some_and(|id| id.len() == 36));
    assert_eq!(
        request.authorization.as_deref(),
        Some("Bearer metrics-hub-no-credentials")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ga4_bigquery_and_the_demo_merge_to_independently_computed_numbers() {
    let s = setup(
        Behaviour {
            pending_polls: 2,
            ..Behaviour::default()
        },
        "15s",
        &[],
    )
    .await;
    let start = s.today - chrono::Days::new(30);

    let (status, body) = get(&s.hub, "/api/metrics?days=30").await;
    assert_eq!(status, 200, "{body}");
    let want = expected(&s.events, start, s.today, &Narrow::default(), 2);
    assert_eq!(body["data"], want);
    assert_eq!(body["metadata"]["sources"], json!(["demo", "ga4-bigquery"]));
    let bigquery = details(&body, "ga4-bigquery");
    assert_eq!(bigquery["status"], "ok", "{bigquery}");
    assert_eq!(bigquery["missingDatasets"], json!([]));

    // One job per dataset, each well formed, the window sent as typed STRING parameters
    // that the SQL names, never as text inside it.
    let requests = s.standin.requests();
    let posted = queries(&requests);
    let mut labels: Vec<&str> = posted.iter().filter_map(|r| r.dataset_label()).collect();
    labels.sort();
    assert_eq!(labels, vec!["clients", "daily", "features", "summary"]);
    let (from, to) = (yyyymmdd(start), yyyymmdd(s.today));
    for request in &posted {
        assert_well_formed(request, "1000000000");
        let text = |value: &str| ("STRING".to_owned(), value.to_owned());
        assert_eq!(
            parameters(request),
            BTreeMap::from([
                ("p1".to_owned(), text(&from)),
                ("p2".to_owned(), text(&to)),
                ("p3".to_owned(), text(&format!("intraday_{from}"))),
                ("p4".to_owned(), text(&format!("intraday_{to}"))),
            ])
        );
        let text = sql(request);
        assert!(
            text.contains("_TABLE_SUFFIX BETWEEN @p1 AND @p2")
                && text.contains("_TABLE_SUFFIX BETWEEN @p3 AND @p4"),
            "{text}"
        );
        // Named fully qualified, from the connection's project and dataset.
        assert!(
            text.contains(&format!("FROM `{PROJECT}.{DATASET}.events_*`")),
            "{text}"
        );
        assert!(!text.contains(&from) && !text.contains(&to), "{text}");
    }

    // Each job answered jobComplete false twice (jobs.query, then one poll), so each was
    // polled twice without a page token; then every further page was fetched by token.
    let gets: Vec<&Recorded> = requests.iter().filter(|r| r.method == "GET").collect();
    for get in &gets {
        assert_eq!(
            get.query.get("location").map(String::as_str),
            Some(LOCATION)
        );
        assert_eq!(get.query.get("maxResults"), Some(&PAGE_SIZE.to_string()));
        assert!(get.query.contains_key("timeoutMs"));
    }
    let polls = gets
        .iter()
        .filter(|g| !g.query.contains_key("pageToken"))
        .count();
    assert_eq!(polls, 2 * 4);
    let rows = |key: &str| want[key].as_array().unwrap().len();
    let pages = |n: usize| n.div_ceil(PAGE_SIZE).max(1) - 1;
    assert!(rows("dailyMetrics") > 2 * PAGE_SIZE && rows("clientMetrics") > PAGE_SIZE);
    assert_eq!(
        gets.len() - polls,
        pages(rows("dailyMetrics")) + pages(rows("featureMetrics")) + pages(rows("clientMetrics"))
    );

    // Filters travel the same way: an explicit window, a client and an event name.
    s.standin.clear_requests();
    let (from, to) = (
        s.today - chrono::Days::new(20),
        s.today - chrono::Days::new(5),
    );
    let client = want["clientMetrics"][3]["client"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!(
        "/api/metrics?start_date={from}&end_date={to}&client={client}&event_name=page_view"
    );
    let (status, narrowed) = get(&s.hub, &path).await;
    assert_eq!(status, 200, "{narrowed}");
    let narrow = Narrow {
        client: Some(&client),
        event_name: Some("page_view"),
    };
    assert_eq!(narrowed["data"], expected(&s.events, from, to, &narrow, 2));
    for request in queries(&s.standin.requests()) {
        let params = parameters(request);
        let values: Vec<&(String, String)> = params.values().collect();
        assert!(
            values.contains(&&("STRING".to_owned(), client.clone())),
            "{params:?}"
        );
        assert!(values.contains(&&("STRING".to_owned(), "page_view".to_owned())));
        assert!(!sql(request).contains(&client), "{}", sql(request));
    }

    // A value that would break out of a pasted string is only ever a parameter value: it
    // matches no client, so the answer is the empty one computed for that client.
    s.standin.clear_requests();
    let hostile = "acme' OR '1'='1";
    let path = format!(
        "/api/metrics?days=30&source=ga4-bigquery&client={}",
        hostile
            .replace('\'', "%27")
            .replace(' ', "%20")
            .replace('=', "%3D")
    );
    let (status, body) = get(&s.hub, &path).await;
    assert_eq!(status, 200, "{body}");
    let narrow = Narrow {
        client: Some(hostile),
        event_name: None,
    };
    assert_eq!(
        body["data"],
        expected(&s.events, start, s.today, &narrow, 1)
    );
    assert_eq!(body["data"]["summary"]["total_events"], 0);
    for request in queries(&s.standin.requests()) {
        assert!(parameters(request)
            .values()
            .any(|(kind, value)| kind == "STRING" && value == hostile));
        assert!(!sql(request).contains("'1'='1"), "{}", sql(request));
    }

    // The health probe is a dry run of SELECT 1: no job, no bytes.
    s.standin.clear_requests();
    let (status, health) = get(&s.hub, "/api/health").await;
    assert_eq!(status, 200);
    let probe = health["data"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == "ga4-bigquery")
        .unwrap();
    assert_eq!(probe["status"], "ok", "{health}");
    let requests = s.standin.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body.as_ref().unwrap()["dryRun"], true);
    s.hub.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bigquery_errors_are_per_source_while_the_demo_answers() {
    let s = setup(Behaviour::default(), "15s", &[]).await;
    let start = s.today - chrono::Days::new(30);
    let demo_only = expected(&s.events, start, s.today, &Narrow::default(), 1);

    let cases = [
        (
            Failure::new(
                400,
                "INVALID_ARGUMENT",
                "invalidQuery",
                "Syntax error: Unexpected keyword FROM at [3:7]",
            ),
            "upstream_error",
            "the service answered HTTP 400; see the hub log",
        ),
        (
            Failure::new(
                403,
                "PERMISSION_DENIED",
                "accessDenied",
                "Access Denied: Table standin-project:analytics_489035450.events_20260101: User does not have permission",
            ),
            "auth_failed",
            "the service refused the credentials; see the hub log",
        ),
        (
            Failure::new(
                429,
                "RESOURCE_EXHAUSTED",
                "rateLimitExceeded",
                "Exceeded rate limits: too many concurrent queries for this project",
            ),
            "rate_limited",
            "rate limited by the service",
        ),
        (
            Failure::new(404, "NOT_FOUND", "notFound", "Not found: Dataset standin-project:analytics_489035450"),
            "upstream_error",
            "the service answered HTTP 404; see the hub log",
        ),
    ];
    for (failure, code, message) in cases {
        clear_caches(&s.hub).await;
        s.standin.clear_requests();
        s.standin.set(Behaviour {
            fail: Some(failure.clone()),
            fail_dataset: Some("daily".to_owned()),
            ..Behaviour::default()
        });
        let (status, body) = get(&s.hub, "/api/metrics?days=30").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"], demo_only, "{}", failure.reason);
        assert_eq!(body["metadata"]["sources"], json!(["demo"]));
        assert_eq!(details(&body, "demo")["status"], "ok");
        let bigquery = details(&body, "ga4-bigquery");
        assert_eq!(bigquery["status"], "error", "{bigquery}");
        assert_eq!(bigquery["error"]["code"], code, "{bigquery}");
        assert_eq!(bigquery["error"]["message"], message);
        let text = body.to_string();
        for leak in [failure.message.as_str(), "FROM", PROJECT, "events_"] {
            assert!(!text.contains(leak), "{leak} leaked: {text}");
        }
        // Rate limits are retried with backoff before giving up, each retry with the same
        // request id so BigQuery would not start a second job; the others are final.
        let requests = s.standin.requests();
        let daily: Vec<&Recorded> = queries(&requests)
            .into_iter()
            .filter(|r| r.dataset_label() == Some("daily"))
            .collect();
        let attempts = if code == "rate_limited" { 4 } else { 1 };
        assert_eq!(daily.len(), attempts, "{}", failure.reason);
        let id = |r: &Recorded| r.body.as_ref().unwrap()["requestId"].clone();
        assert!(daily.iter().all(|r| id(r) == id(daily[0])));
    }

    // A backend error that clears up is retried into a full answer.
    clear_caches(&s.hub).await;
    s.standin.set(Behaviour {
        fail: Some(Failure::new(
            503,
            "UNAVAILABLE",
            "backendError",
            "Error encountered during execution. Retrying may solve the problem.",
        )),
        fail_times: 2,
        ..Behaviour::default()
    });
    let (_, body) = get(&s.hub, "/api/metrics?days=30").await;
    assert_eq!(details(&body, "ga4-bigquery")["status"], "ok", "{body}");
    assert_eq!(
        body["data"],
        expected(&s.events, start, s.today, &Narrow::default(), 2)
    );

    // A token BigQuery refuses: 401 authError.
    clear_caches(&s.hub).await;
    s.standin.set(Behaviour {
        require_token: Some("a-real-token".to_owned()),
        ..Behaviour::default()
    });
    let (_, body) = get(&s.hub, "/api/metrics?days=30").await;
    assert_eq!(
        details(&body, "ga4-bigquery")["error"]["code"],
        "auth_failed"
    );

    // /api/sources remembers the last error, without BigQuery's text.
    let (_, sources) = get(&s.hub, "/api/sources").await;
    let entry = sources["data"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == "ga4-bigquery")
        .unwrap()
        .clone();
    assert_eq!(entry["kind"], "bigquery");
    assert_eq!(entry["health"], "failing");
    assert_eq!(entry["lastError"]["code"], "auth_failed");
    assert!(
        !entry.to_string().contains("Request had invalid"),
        "{entry}"
    );
    s.hub.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cost_guard_is_sent_with_every_query_and_enforced() {
    // A guard between what one day and what thirty days of tables scan.
    let today = Utc::now().date_naive();
    let start = today - chrono::Days::new(30);
    let events = demo::generate(today);
    let export = Ga4Export::daily(&events);
    let day = yyyymmdd(today - chrono::Days::new(1));
    let one_day_bytes = export.bytes_of(&[format!("events_{day}")]);
    let month_bytes = export.bytes_of(&tables_between(start, today));
    assert!(2 * one_day_bytes < month_bytes);
    let guard = (2 * one_day_bytes).to_string();
    let s = setup_with(
        events,
        today,
        Behaviour::default(),
        "15s",
        &[("BIGQUERY_MAXIMUM_BYTES_BILLED", &guard)],
    )
    .await;

    let (status, body) = get(&s.hub, "/api/metrics?days=30").await;
    assert_eq!(status, 200, "{body}");
    let bigquery = details(&body, "ga4-bigquery");
    assert_eq!(bigquery["error"]["code"], "upstream_error", "{bigquery}");
    assert_eq!(
        body["data"],
        expected(&s.events, start, s.today, &Narrow::default(), 1)
    );
    for request in queries(&s.standin.requests()) {
        assert_well_formed(request, &guard);
    }

    let one_day = s.today - chrono::Days::new(1);
    let (_, body) = get(
        &s.hub,
        &format!("/api/metrics?start_date={one_day}&end_date={one_day}"),
    )
    .await;
    assert_eq!(details(&body, "ga4-bigquery")["status"], "ok", "{body}");
    assert_eq!(
        body["data"],
        expected(&s.events, one_day, one_day, &Narrow::default(), 2)
    );
    s.hub.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_that_never_completes_times_out_within_the_source_deadline() {
    let s = setup(
        Behaviour {
            pending_polls: u32::MAX,
            ..Behaviour::default()
        },
        "800ms",
        &[],
    )
    .await;
    let started = Instant::now();
    let (status, body) = get(&s.hub, "/api/metrics?days=30").await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let bigquery = details(&body, "ga4-bigquery");
    assert_eq!(bigquery["status"], "timeout", "{bigquery}");
    assert_eq!(details(&body, "demo")["status"], "ok");
    // It kept polling until then, pausing poll_interval between polls.
    let polls = s
        .standin
        .requests()
        .iter()
        .filter(|r| r.method == "GET")
        .count();
    assert!((8..=4 * 80).contains(&polls), "{polls} polls");
    s.hub.stop().await.unwrap();
}

/// A result with every kind of cell, nested ones included, as BigQuery encodes them.
fn typed_table() -> (Value, Vec<Value>) {
    let schema = json!({"fields": [
        {"name": "feature", "type": "STRING", "mode": "NULLABLE"},
        {"name": "views", "type": "INTEGER", "mode": "NULLABLE"},
        {"name": "share", "type": "FLOAT", "mode": "NULLABLE"},
        {"name": "revenue", "type": "NUMERIC", "mode": "NULLABLE"},
        {"name": "active", "type": "BOOLEAN", "mode": "NULLABLE"},
        {"name": "day", "type": "DATE", "mode": "NULLABLE"},
        {"name": "first_seen", "type": "TIMESTAMP", "mode": "NULLABLE"},
        {"name": "tags", "type": "STRING", "mode": "REPEATED"},
        {"name": "params", "type": "RECORD", "mode": "REPEATED", "fields": [
            {"name": "key", "type": "STRING", "mode": "NULLABLE"},
            {"name": "value", "type": "RECORD", "mode": "NULLABLE", "fields": [
                {"name": "string_value", "type": "STRING", "mode": "NULLABLE"},
                {"name": "int_value", "type": "INTEGER", "mode": "NULLABLE"}
            ]}
        ]},
        {"name": "device", "type": "RECORD", "mode": "NULLABLE", "fields": [
            {"name": "category", "type": "STRING", "mode": "NULLABLE"},
            {"name": "web_info", "type": "RECORD", "mode": "NULLABLE", "fields": [
                {"name": "browser", "type": "STRING", "mode": "NULLABLE"}
            ]}
        ]}
    ]});
    let row = |feature: &str, views: i64, null_device: bool| {
        json!({"f": [
            {"v": feature}, {"v": views.to_string()}, {"v": "0.125"}, {"v": "1234.50"},
            {"v": "true"}, {"v": "2026-01-31"}, {"v": "1.7040672E9"},
            {"v": [{"v": "a"}, {"v": "b"}]},
            {"v": [
                {"v": {"f": [{"v": "page_location"}, {"v": {"f": [{"v": "https://acme.8020rei.com/home"}, {"v": null}]}}]}},
                {"v": {"f": [{"v": "ga_session_id"}, {"v": {"f": [{"v": null}, {"v": "1704067200"}]}}]}}
            ]},
            if null_device { json!({"v": null}) } else {
                json!({"v": {"f": [{"v": "desktop"}, {"v": {"f": [{"v": "Chrome"}]}}]}})
            }
        ]})
    };
    let rows = (0..5)
        .map(|i| row(&format!("Feature {i}"), 100 - i, i == 4))
        .collect();
    (schema, rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn typed_and_nested_cells_decode_through_the_real_client_across_pages() {
    let (schema, rows) = typed_table();
    let standin = BigqueryStandin::start(
        PROJECT,
        DATASET,
        Data::Table {
            schema,
            rows,
            bytes: 42,
        },
    )
    .await
    .unwrap();
    standin.set(Behaviour {
        pending_polls: 1,
        ..Behaviour::default()
    });
    let file = format!(
        "id: typed\nname: Typed cells\nkind: bigquery\nconnection:\n  project: {PROJECT}\n  dataset: {DATASET}\n  credentials:\n    type: none\n  base_url: {}\n  maximum_bytes_billed: 1000\n  page_size: 2\n  poll_interval: 10ms\nqueries:\n  features:\n    sql: |\n      SELECT * FROM `events_*` WHERE _TABLE_SUFFIX BETWEEN {{{{ bind(start_date | yyyymmdd) }}}} AND {{{{ bind(end_date | yyyymmdd) }}}}\n",
        standin.base_url
    );
    let dir = sources_dir(&[("typed.yaml", file)]).unwrap();
    let hub = TestHub::start(dir.path(), &HashMap::new(), HubSettings::default())
        .await
        .unwrap();
    let params = QueryParams::last_days(7, Utc::now().date_naive());
    let data = hub.hub.query_source("typed", &params).await.unwrap();
    let features = data.features.unwrap();
    assert_eq!(features.len(), 5, "all three pages");
    assert_eq!(
        Value::Object(features[0].clone()),
        json!({
            "feature": "Feature 0", "views": 100,
            "share": 0.125, "revenue": 1234.5, "active": true, "day": "2026-01-31",
            "first_seen": "2024-01-01T00:00:00Z", "tags": ["a", "b"],
            "params": [
                {"key": "page_location", "value": {"string_value": "https://acme.8020rei.com/home", "int_value": null}},
                {"key": "ga_session_id", "value": {"string_value": null, "int_value": 1704067200}}
            ],
            "device": {"category": "desktop", "web_info": {"browser": "Chrome"}}
        })
    );
    assert_eq!(features[4]["device"], Value::Null);
    assert_eq!(features[4]["views"], 96);
    assert_eq!(data.summary, None, "no query, no invented summary");
    let gets: Vec<Recorded> = standin
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect();
    // One poll (it completes with the first page), then two pages by token.
    assert_eq!(gets.len(), 3);
    assert_eq!(
        gets.iter()
            .filter(|g| g.query.contains_key("pageToken"))
            .count(),
        2
    );
    hub.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dry_run_reports_what_each_query_would_scan_without_running_it() {
    let today = Utc::now().date_naive();
    let events = demo::generate(today);
    let standin = BigqueryStandin::start(
        PROJECT,
        DATASET,
        Data::Export(Ga4Export::daily(&events).into()),
    )
    .await
    .unwrap();
    standin.set_today(today);
    let dir = sources_dir(&[
        ("ga4-bigquery.yaml", ga4_against(&standin, "15s")),
        ("demo.yaml", shipped("demo.yaml")),
    ])
    .unwrap();
    let env = |name: &str| match name {
        "GOOGLE_CLOUD_PROJECT" => Some(PROJECT.to_owned()),
        "BIGQUERY_LOCATION" => Some(LOCATION.to_owned()),
        _ => None,
    };
    let loaded = load::load_dir_with(dir.path(), &env).unwrap();
    assert!(loaded.broken.is_empty(), "{:?}", loaded.broken);
    let spec = |id: &str| loaded.sources.iter().find(|s| s.id == id).unwrap();

    let params = QueryParams::last_days(30, today);
    let report = dry_run(spec("ga4-bigquery"), &params).await.unwrap();
    assert_eq!(report.maximum_bytes_billed, 1_000_000_000);
    let estimates = report.estimates;
    // The window's daily tables; it has no intraday ones.
    let bytes = standin.bytes_of(&tables_between(params.start_date, params.end_date));
    assert!(bytes > 0);
    assert_eq!(
        estimates
            .iter()
            .map(|e| (e.dataset, e.bytes))
            .collect::<Vec<_>>(),
        Dataset::ALL.iter().map(|d| (*d, bytes)).collect::<Vec<_>>()
    );
    let requests = standin.requests();
    assert_eq!(requests.len(), 4, "four dry runs, no polling, no pages");
    for request in &requests {
        assert_eq!(request.body.as_ref().unwrap()["dryRun"], true);
        assert_well_formed(request, "1000000000");
    }

    match dry_run(spec("demo"), &params).await {
        Err(err @ DryRunError::NotBigquery { .. }) => assert_eq!(
            err.to_string(),
            "--dry-run applies to bigquery sources only; `demo` is a sql source"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_shipped_file_loads_disabled_without_credentials_and_enabled_with_them() {
    let dir = sources_dir(&[("ga4-bigquery.yaml", shipped("ga4-bigquery.yaml"))]).unwrap();
    let load = |variables: &[(&str, &str)]| {
        let variables: HashMap<String, String> = variables
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        load::load_dir_with(dir.path(), &|name| variables.get(name).cloned()).unwrap()
    };

    let loaded = load(&[]);
    assert!(loaded.broken.is_empty(), "{:?}", loaded.broken);
    let spec = &loaded.sources[0];
    assert_eq!((spec.id.as_str(), spec.enabled), ("ga4-bigquery", false));
    let KindSpec::Bigquery(bigquery) = &spec.kind else {
        panic!("not bigquery: {:?}", spec.kind)
    };
    assert_eq!(bigquery.project, "web-app-production-451214");
    assert_eq!(bigquery.dataset, "analytics_489035450");
    assert_eq!(bigquery.maximum_bytes_billed, 1_000_000_000);
    assert_eq!(bigquery.location, None);
    assert_eq!(
        bigquery.datasets.iter().copied().collect::<Vec<_>>(),
        Dataset::ALL.to_vec()
    );
    // Every query prunes by table suffix with the window as two STRING parameters.
    let params = QueryParams::between(
        NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
        NaiveDate::from_ymd_opt(2026, 1, 31).unwrap(),
    );
    for dataset in Dataset::ALL {
        let query = bigquery
            .templates
            .render(dataset.as_str(), &params)
            .unwrap();
        assert!(query.sql.contains("_TABLE_SUFFIX BETWEEN @p1 AND @p2"));
        assert!(query.sql.contains("_TABLE_SUFFIX BETWEEN @p3 AND @p4"));
        let text = |t: &str| BindValue::Text(t.into());
        assert_eq!(
            query.binds,
            vec![
                text("20260101"),
                text("20260131"),
                text("intraday_20260101"),
                text("intraday_20260131")
            ]
        );
    }

    let key = r#"{"type": "service_account", "project_id": "p", "private_key_id": "1",
        "private_key": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
        "client_email": "hub@p.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token"}"#;
    let loaded = load(&[
        ("GOOGLE_APPLICATION_CREDENTIALS_JSON", key),
        ("GOOGLE_CLOUD_PROJECT", "other-project-1"),
        ("BIGQUERY_DATASET", "analytics_1"),
    ]);
    assert!(loaded.broken.is_empty(), "{:?}", loaded.broken);
    let spec = &loaded.sources[0];
    assert!(spec.enabled);
    let KindSpec::Bigquery(bigquery) = &spec.kind else {
        unreachable!()
    };
    assert_eq!(
        (bigquery.project.as_str(), bigquery.dataset.as_str()),
        ("other-project-1", "analytics_1")
    );
    assert!(matches!(bigquery.credentials, Credentials::InlineJson(_)));
    assert_eq!(
        format!("{:?}", bigquery.credentials),
        "InlineJson(Secret(***))",
        "the key is never printed"
    );

    // A variable holding something else is an error at the key that reads it, which does
    // not quote the value.
    let loaded = load(&[("GOOGLE_APPLICATION_CREDENTIALS_JSON", "not-json-hunter2")]);
    let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("/connection/credentials/json"),
        "{errors:?}"
    );
    assert!(!errors[0].contains("hunter2"), "{errors:?}");
}
