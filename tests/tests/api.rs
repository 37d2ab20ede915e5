//! End-to-end: the hub over the shipped `demo` (SQLite) and `postgres` sources, the latter
//! on a real PostgreSQL server, checked against numbers computed independently from the
//! generated events.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use metrics_hub::hub::HubSettings;
use metrics_hub::kinds::sql::demo;
use metrics_hub_tests::expected::{expected, Narrow};
use metrics_hub_tests::{details, get, post, repo_root, sources_dir, Postgres, TestHub};
use serde_json::Value;

fn shipped(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("sources.d").join(name)).unwrap()
}

struct Setup {
    hub: TestHub,
    events: Vec<demo::DemoEvent>,
    today: NaiveDate,
    pg_url: String,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// The shipped demo and postgres sources, plus `extra` files, over one PostgreSQL database
/// loaded with the very events the demo generates.
async fn setup(database: &str, extra: &[(&str, String)]) -> Setup {
    let today = Utc::now().date_naive();
    let events = demo::generate(today);
    let pg_url = Postgres::shared().database(database).await.unwrap();
    let pool = sqlx::PgPool::connect(&pg_url).await.unwrap();
    demo::load_postgres(&pool, &events).await.unwrap();
    pool.close().await;

    let data = tempfile::tempdir().unwrap();
    let mut files = vec![
        ("demo.yaml", shipped("demo.yaml")),
        ("postgres.yaml", shipped("postgres.yaml")),
    ];
    files.extend(extra.iter().cloned());
    let sources = sources_dir(&files).unwrap();
    let env = HashMap::from([
        ("DATABASE_URL".to_owned(), pg_url.clone()),
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
        events,
        today,
        pg_url,
        _dirs: (data, sources),
    }
}

#[tokio::test]
async fn demo_and_postgres_merge_to_independently_computed_numbers() {
    let s = setup("merge", &[]).await;
    let days = 30;
    let start = s.today - chrono::Days::new(days);

    let (status, body) = get(&s.hub, "/api/metrics?days=30").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(
        body["data"],
        expected(&s.events, start, s.today, &Narrow::default(), 2)
    );
    assert_eq!(
        body["metadata"]["sources"],
        serde_json::json!(["demo", "postgres"])
    );
    assert_eq!(body["metadata"]["cached"], false);
    for id in ["demo", "postgres"] {
        let d = details(&body, id);
        assert_eq!(d["status"], "ok");
        assert_eq!(d["missingDatasets"], serde_json::json!([]));
        assert!(d["recordCount"].as_u64().unwrap() > 30);
        assert!(d["fetchedAt"].is_string());
    }

    // Served again from the merged-answer cache.
    let (_, again) = get(&s.hub, "/api/metrics?days=30").await;
    assert_eq!(again["metadata"]["cached"], true);
    assert_eq!(again["data"], body["data"]);

    // One source, an explicit window and both filters.
    let (from, to) = (
        s.today - chrono::Days::new(20),
        s.today - chrono::Days::new(5),
    );
    let client = body["data"]["clientMetrics"][3]["client"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/metrics?start_date={from}&end_date={to}&source=postgres&client={client}&event_name=page_view");
    let (status, narrowed) = get(&s.hub, &path).await;
    assert_eq!(status, 200, "{narrowed}");
    let narrow = Narrow {
        client: Some(&client),
        event_name: Some("page_view"),
    };
    assert_eq!(narrowed["data"], expected(&s.events, from, to, &narrow, 1));
    assert_eq!(
        narrowed["metadata"]["sources"],
        serde_json::json!(["postgres"])
    );

    // The SQLite demo alone, comma-separated selection syntax.
    let (_, sqlite) = get(&s.hub, "/api/metrics?days=7&source=demo,demo").await;
    let week = s.today - chrono::Days::new(7);
    assert_eq!(
        sqlite["data"],
        expected(&s.events, week, s.today, &Narrow::default(), 1)
    );
    s.hub.stop().await.unwrap();
}

/// A source whose query fails and one that hangs past its timeout.
fn broken_sources(pg_url: &str) -> Vec<(&'static str, String)> {
    let source = |id: &str, timeout: &str, sql: &str| {
        format!(
            "id: {id}\nname: {id}\nkind: sql\ntimeout: {timeout}\nconnection:\n  driver: postgres\n  url: {pg_url}\nqueries:\n  summary:\n    sql: \"{sql}\"\n"
        )
    };
    vec![
        (
            "failing.yaml",
            source(
                "failing",
                "5s",
                "SELECT COUNT(*) AS total_users FROM no_such_table",
            ),
        ),
        (
            "hanging.yaml",
            source("hanging", "1s", "SELECT pg_sleep(30), 1 AS total_users"),
        ),
    ]
}

#[tokio::test]
async fn a_failing_and_a_hanging_source_do_not_break_the_answer() {
    let pg_url = Postgres::shared()
        .database("isolation_probe")
        .await
        .unwrap();
    let s = setup("isolation", &broken_sources(&pg_url)).await;
    let started = Instant::now();
    let (status, body) = get(&s.hub, "/api/metrics?days=30").await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(
        took < Duration::from_secs(5),
        "the hanging source held the answer for {took:?}"
    );
    let start = s.today - chrono::Days::new(30);
    assert_eq!(
        body["data"],
        expected(&s.events, start, s.today, &Narrow::default(), 2)
    );
    assert_eq!(
        body["metadata"]["sources"],
        serde_json::json!(["demo", "postgres"])
    );

    let failing = details(&body, "failing");
    assert_eq!(failing["status"], "error");
    assert_eq!(failing["error"]["code"], "query_failed");
    let hanging = details(&body, "hanging");
    assert_eq!(hanging["status"], "timeout");
    assert_eq!(hanging["error"]["code"], "timeout");
    // No SQL or driver text reaches clients.
    let text = body.to_string();
    for leak in [
        "no_such_table",
        "relation",
        "pg_sleep",
        "SQLSTATE",
        "postgres://",
    ] {
        assert!(!text.contains(leak), "{leak} leaked: {text}");
    }
    // A partial answer is not cached: the next request asks the failed sources again.
    let (_, again) = get(&s.hub, "/api/metrics?days=30").await;
    assert_eq!(again["metadata"]["cached"], false);

    // Only when every selected source fails is the answer a 503, with each error.
    let (status, body) = get(&s.hub, "/api/metrics?days=30&source=failing,hanging").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["success"], false);
    assert_eq!(body["error"]["code"], "all_sources_failed");
    assert_eq!(
        body["metadata"]["sourceDetails"].as_array().unwrap().len(),
        2
    );

    // /api/sources and /api/health mark the broken ones; the hub still serves.
    let (_, sources) = get(&s.hub, "/api/sources").await;
    let failing = sources["data"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == "failing")
        .unwrap();
    assert_eq!(failing["health"], "failing");
    assert_eq!(failing["lastError"]["code"], "query_failed");
    let (status, health) = get(&s.hub, "/api/health").await;
    assert_eq!(status, 200);
    assert_eq!(health["data"]["status"], "ok", "{health}");
    let _ = s.pg_url;
    s.hub.stop().await.unwrap();
}

#[tokio::test]
async fn concurrent_identical_cold_requests_query_each_source_once() {
    // Each dataset of the probe source advances its own PostgreSQL sequence, so the count
    // of upstream queries comes from the database, not from the hub's own bookkeeping.
    let pg_url = Postgres::shared().database("single_flight").await.unwrap();
    let pool = sqlx::PgPool::connect(&pg_url).await.unwrap();
    for dataset in ["summary", "daily"] {
        sqlx::query(&format!("CREATE SEQUENCE probe_{dataset}"))
            .execute(&pool)
            .await
            .unwrap();
    }
    let probe = format!(
        "id: probe\nname: Probe\nkind: sql\nconnection:\n  driver: postgres\n  url: {pg_url}\nqueries:\n  summary:\n    sql: SELECT nextval('probe_summary') AS probe, pg_sleep(0.2)::text AS slept\n  daily:\n    sql: SELECT '2026-01-01' AS date, nextval('probe_daily') AS events\n"
    );
    let s = setup("single_flight_data", &[("probe.yaml", probe)]).await;
    for round in 1..=3i64 {
        s.hub.hub.clear_cache(None).unwrap();
        let requests = (0..50).map(|_| get(&s.hub, "/api/metrics?days=30"));
        let answers = futures::future::join_all(requests).await;
        assert!(answers.iter().all(|(status, _)| *status == 200));
        assert_eq!(
            answers
                .iter()
                .filter(|(_, b)| b["metadata"]["cached"] == false)
                .count(),
            1
        );
        for dataset in ["summary", "daily"] {
            let last: i64 = sqlx::query_scalar(&format!("SELECT last_value FROM probe_{dataset}"))
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(
                last, round,
                "{dataset} was queried {last} times after {round} rounds"
            );
        }
        for entry in s.hub.hub.entries().iter().filter(|e| e.spec.enabled) {
            assert_eq!(entry.upstream_fetches(), round as u64, "{}", entry.spec.id);
        }
    }
    s.hub.stop().await.unwrap();
}

#[tokio::test]
async fn hostile_requests_get_clear_4xx_and_change_nothing() {
    let s = setup("hostile", &[]).await;
    let pool = sqlx::PgPool::connect(&s.pg_url).await.unwrap();
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM events")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let before = count().await;
    let huge = "x".repeat(20_000);
    let hostile: Vec<(String, &str)> = vec![
        ("days=-1".into(), "invalid_days"),
        ("days=0".into(), "invalid_days"),
        ("days=99999".into(), "invalid_days"),
        ("days=30;DROP%20TABLE%20events".into(), "invalid_days"),
        ("days=1e3".into(), "invalid_days"),
        ("days=%F0%9F%92%A5".into(), "invalid_days"),
        ("days=7&days=8".into(), "duplicate_parameter"),
        (
            "start_date=2026-02-30&end_date=2026-03-01".into(),
            "invalid_date",
        ),
        ("start_date=yesterday&end_date=today".into(), "invalid_date"),
        (
            "start_date=2026-03-01&end_date=2026-02-01".into(),
            "invalid_window",
        ),
        ("start_date=2026-03-01".into(), "invalid_window"),
        (
            "start_date=1900-01-01&end_date=2026-01-01".into(),
            "invalid_window",
        ),
        (
            "days=7&start_date=2026-01-01&end_date=2026-01-02".into(),
            "invalid_window",
        ),
        ("source=nope".into(), "unknown_source"),
        ("source=demo'--".into(), "unknown_source"),
        ("region=emea".into(), "unknown_filter"),
        (
            "client=x%27%3B%20DROP%20TABLE%20events%3B%20--&source=nope".into(),
            "unknown_source",
        ),
        (format!("client={huge}"), "invalid_filter"),
        ("client=a%00b".into(), "invalid_filter"),
        (
            "event_name=page_view%27%20OR%201%3D1".into(),
            "invalid_filter",
        ),
        ("event_name=%E2%80%AEpage_view".into(), "invalid_filter"),
    ];
    for (query, code) in &hostile {
        let (status, body) = get(&s.hub, &format!("/api/metrics?{query}")).await;
        let shown: String = query.chars().take(80).collect();
        assert_eq!(status, 400, "{shown}: {body}");
        assert_eq!(body["success"], false);
        assert_eq!(body["error"]["code"], *code, "{shown}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            !message.is_empty() && message.len() < 300,
            "{shown}: {message}"
        );
    }
    // Hostile values that are valid strings are bound, not executed: they match nothing.
    for client in [
        "x'; DROP TABLE events; --",
        "\" OR \"\"=\"",
        "*/ SELECT 1 /*",
        "😀 ünïcödé",
        "%' OR '1'='1",
    ] {
        let url = reqwest::Url::parse_with_params(
            &s.hub.url("/api/metrics"),
            &[("client", client), ("days", "30")],
        )
        .unwrap();
        let response = reqwest::get(url).await.unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["data"]["summary"]["total_events"], 0,
            "{client}: {body}"
        );
        for id in ["demo", "postgres"] {
            assert_eq!(details(&body, id)["status"], "ok", "{client}: {body}");
        }
    }
    assert_eq!(count().await, before, "the events table changed");
    s.hub.stop().await.unwrap();
}

#[tokio::test]
async fn endpoints_report_sources_health_and_clear_caches_without_secrets() {
    // A password in the URL: trust authentication accepts it, and it must never be shown.
    let secret = "Sup3r-Secret-Pw";
    let s = setup("endpoints", &[]).await;
    let with_password = s
        .pg_url
        .replace("postgres@", &format!("postgres:{secret}@"));
    let dir = sources_dir(&[
        ("postgres.yaml", shipped("postgres.yaml")),
        (
            "broken.yaml",
            "id: broken\nname: x\nkind: sql\nqueires: {}\n".to_owned(),
        ),
    ])
    .unwrap();
    let env = HashMap::from([("DATABASE_URL".to_owned(), with_password)]);
    let hub = TestHub::start(dir.path(), &env, HubSettings::default())
        .await
        .unwrap();
    let mut seen = String::new();
    for path in ["/api/metrics?days=30", "/api/sources", "/api/health"] {
        let (status, body) = get(&hub, path).await;
        assert_eq!(status, 200, "{path}: {body}");
        seen.push_str(&body.to_string());
    }
    assert!(!seen.contains(secret), "a secret leaked: {seen}");
    let (_, sources) = get(&hub, "/api/sources").await;
    let invalid = &sources["data"]["invalidFiles"];
    assert_eq!(invalid.as_array().unwrap().len(), 1, "{sources}");
    let errors = invalid[0]["errors"].to_string();
    assert!(
        errors.contains("queires") && errors.contains("connection"),
        "{errors}"
    );
    let pg = &sources["data"]["sources"][0];
    assert_eq!(
        (pg["id"].as_str(), pg["health"].as_str()),
        (Some("postgres"), Some("ok"))
    );
    assert_eq!(pg["upstreamFetches"], 1);
    // What the pages show: the badge, the cache's contents, the supplied summary fields.
    assert_eq!(pg["badge"], "DB");
    assert_eq!(pg["cache"]["entries"], 1, "{pg}");
    assert!(pg["cache"]["newestFetchedAt"].is_string(), "{pg}");
    let (_, metrics) = get(&hub, "/api/metrics?days=30").await;
    let detail = &metrics["metadata"]["sourceDetails"][0];
    assert_eq!(detail["badge"], "DB");
    assert_eq!(
        detail["summaryFields"],
        serde_json::json!([
            "total_users",
            "total_events",
            "page_views",
            "active_clients"
        ])
    );
    let (_, health) = get(&hub, "/api/health").await;
    assert_eq!(
        health["data"]["status"], "degraded",
        "an invalid file degrades health: {health}"
    );

    // Clearing one source's cache makes the next request fetch it again.
    let (_, cleared) = post(&hub, "/api/cache/clear?source=postgres").await;
    assert_eq!(cleared["data"]["cleared"], serde_json::json!(["postgres"]));
    let (_, sources) = get(&hub, "/api/sources").await;
    assert_eq!(sources["data"]["sources"][0]["cache"]["entries"], 0);
    get(&hub, "/api/metrics?days=30").await;
    assert_eq!(hub.hub.entries()[0].upstream_fetches(), 2);
    assert_eq!(post(&hub, "/api/cache/clear?source=nope").await.0, 400);

    // A re-check probes the source now and is kept as its lastCheck.
    let (_, checked) = post(&hub, "/api/sources/postgres/check").await;
    assert_eq!(checked["data"]["status"], "ok", "{checked}");
    let (_, sources) = get(&hub, "/api/sources").await;
    let last_check = &sources["data"]["sources"][0]["lastCheck"];
    assert_eq!(last_check["checkedAt"], checked["data"]["checkedAt"]);
    let seen = format!("{checked}{sources}");
    assert!(!seen.contains(secret), "a secret leaked: {seen}");
    let (status, unknown) = post(&hub, "/api/sources/nope/check").await;
    assert_eq!(
        (status, &unknown["error"]["code"]),
        (400, &serde_json::json!("unknown_source"))
    );
    let wrong_method = reqwest::Client::new()
        .get(hub.url("/api/cache/clear"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    let (status, missing) = get(&hub, "/api/nothing").await;
    assert_eq!(
        (status, missing["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    hub.stop().await.unwrap();
    s.hub.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let pg_url = Postgres::shared().database("drain").await.unwrap();
    let slow = format!(
        "id: slow\nname: Slow\nkind: sql\nconnection:\n  driver: postgres\n  url: {pg_url}\nqueries:\n  summary:\n    sql: SELECT 5 AS total_users, pg_sleep(1)::text AS slept\n"
    );
    let dir = sources_dir(&[("slow.yaml", slow)]).unwrap();
    let hub = TestHub::start(dir.path(), &HashMap::new(), HubSettings::default())
        .await
        .unwrap();
    let url = hub.url("/api/metrics?days=1");
    let in_flight = tokio::spawn(async move {
        reqwest::get(url)
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    hub.stop().await.unwrap();
    let body = in_flight.await.unwrap();
    assert_eq!(body["data"]["summary"]["total_users"], 5, "{body}");
}

#[tokio::test]
async fn a_source_unreachable_at_start_is_reported_not_fatal() {
    let unreachable = "id: gone\nname: Gone\nkind: sql\ntimeout: 2s\nconnection:\n  driver: postgres\n  url: postgres://nobody:Hidden-Pass-1@127.0.0.1:1/none\nqueries:\n  summary:\n    sql: SELECT 1 AS total_users\n".to_owned();
    let data = tempfile::tempdir().unwrap();
    let dir = sources_dir(&[
        ("demo.yaml", shipped("demo.yaml")),
        ("gone.yaml", unreachable),
    ])
    .unwrap();
    let env = HashMap::from([(
        "METRICS_HUB_DATA_DIR".to_owned(),
        data.path().display().to_string(),
    )]);
    let hub = TestHub::start(dir.path(), &env, HubSettings::default())
        .await
        .unwrap();
    let (_, sources) = get(&hub, "/api/sources").await;
    let gone = sources["data"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "gone")
        .unwrap()
        .clone();
    assert_eq!(
        (gone["health"].as_str(), gone["initialized"].as_bool()),
        (Some("failing"), Some(false)),
        "{gone}"
    );
    assert_eq!(gone["lastError"]["code"], "connect_failed");
    let (status, body) = get(&hub, "/api/metrics?days=7").await;
    assert_eq!(status, 200, "{body}");
    // Refused at once or still retrying when the source's 2 s run out: either way a
    // per-source failure beside a served answer.
    let gone_status = details(&body, "gone")["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        matches!(gone_status.as_str(), "error" | "timeout"),
        "{body}"
    );
    assert_eq!(details(&body, "demo")["status"], "ok");
    let (status, health) = get(&hub, "/api/health").await;
    assert_eq!(
        (status, health["data"]["status"].as_str()),
        (200, Some("degraded")),
        "{health}"
    );
    assert!(!format!("{sources}{body}{health}").contains("Hidden-Pass-1"));
    hub.stop().await.unwrap();
}
