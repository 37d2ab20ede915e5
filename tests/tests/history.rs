//! The history store end to end: the shipped demo (SQLite) and postgres sources with
//! `history:`, their settled days backfilled into a store on the harness's PostgreSQL and
//! in an embedded SQLite file, and every window answered from the store checked against
//! the same hub's sources asked directly. Also: days missing from the store, filters, a
//! changed definition, and `verify` finding a day the source changed after it was stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate, Utc};
use metrics_hub::history::{compose, verify, Core, Store};
use metrics_hub::hub::HubSettings;
use metrics_hub::kinds::sql::demo;
use metrics_hub::model::{Dataset, QueryParams, SourceData};
use metrics_hub_tests::{details, get, repo_root, sources_dir, Postgres, TestHub};
use serde_json::Value;

fn shipped(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("sources.d").join(name)).unwrap()
}

/// The shipped postgres source with `history:` (settled after a day, `backfill` days).
fn postgres_with_history(backfill: &str) -> String {
    let file = shipped("postgres.yaml");
    let history = format!(
        "timeout: 10s\nhistory:\n  settle: 1d\n  backfill: {backfill}\n  backfill_every: 0s\n"
    );
    assert!(
        file.contains("timeout: 10s\n"),
        "postgres.yaml changed shape"
    );
    file.replacen("timeout: 10s\n", &history, 1)
}

struct Setup {
    /// With the store, and the same sources without it.
    stored: TestHub,
    direct: TestHub,
    pg_url: String,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// Both hubs over `files`, the postgres database loaded with the demo's events.
async fn setup(database: &str, store: Arc<Store>, files: &[(&str, String)]) -> Setup {
    let today = Utc::now().date_naive();
    let pg_url = Postgres::shared().database(database).await.unwrap();
    let pool = sqlx::PgPool::connect(&pg_url).await.unwrap();
    demo::load_postgres(&pool, &demo::generate(today))
        .await
        .unwrap();
    pool.close().await;
    let data = tempfile::tempdir().unwrap();
    let sources = sources_dir(files).unwrap();
    let env = HashMap::from([
        ("DATABASE_URL".to_owned(), pg_url.clone()),
        (
            "METRICS_HUB_DATA_DIR".to_owned(),
            data.path().display().to_string(),
        ),
    ]);
    let with_store = HubSettings {
        history_store: Some(store),
        ..HubSettings::default()
    };
    let stored = TestHub::start(sources.path(), &env, with_store)
        .await
        .unwrap();
    let direct = TestHub::start(sources.path(), &env, HubSettings::default())
        .await
        .unwrap();
    Setup {
        stored,
        direct,
        pg_url,
        _dirs: (data, sources),
    }
}

fn core(hub: &TestHub, id: &str) -> Arc<Core> {
    let entries = hub.hub.entries();
    let entry = entries.iter().find(|e| e.spec.id == id).unwrap();
    entry.history().expect("the source has history").clone()
}

/// Waits until every source with history reports its backfill done in `/api/sources`.
async fn backfilled(hub: &TestHub, ids: &[&str]) {
    let started = Instant::now();
    loop {
        let (_, body) = get(hub, "/api/sources").await;
        let sources = body["data"]["sources"].as_array().unwrap();
        let done = ids.iter().all(|id| {
            let source = sources
                .iter()
                .find(|s| s["id"] == *id)
                .unwrap_or_else(|| panic!("no {id}: {body}"));
            source["history"]["backfill"]["state"] == "done"
        });
        if done {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "backfill not done: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One dataset with its rows in key order.
fn rows(data: &SourceData, dataset: Dataset) -> Value {
    let mut rows = match dataset {
        Dataset::Summary => data.summary.iter().cloned().collect(),
        Dataset::Daily => data.daily.clone().unwrap(),
        Dataset::Features => data.features.clone().unwrap(),
        Dataset::Clients => data.clients.clone().unwrap(),
    };
    if let Some(key) = dataset.key_field() {
        rows.sort_by_key(|row| row[key].to_string());
    }
    Value::Array(rows.into_iter().map(Value::Object).collect())
}

fn newest_settled() -> NaiveDate {
    compose::newest_settled(Utc::now(), Duration::from_secs(86_400))
}

#[tokio::test]
async fn stored_days_answer_exactly_what_the_sources_answer() {
    let store_url = Postgres::shared().database("history_store").await.unwrap();
    let store = Arc::new(Store::open(&store_url).await.unwrap());
    // A second hub on the same store applies no migration twice.
    Store::open(&store_url).await.unwrap();
    let files = [
        ("demo.yaml", shipped("demo.yaml")),
        ("postgres.yaml", postgres_with_history("90d")),
    ];
    let s = setup("history_exact", store, &files).await;
    backfilled(&s.stored, &["demo", "postgres"]).await;
    let (_, sources) = get(&s.stored, "/api/sources").await;
    let demo_history = &sources["data"]["sources"][0]["history"];
    assert_eq!(demo_history["backfill"]["storedDays"], 90, "{demo_history}");
    assert_eq!(
        demo_history["storedDatasets"],
        serde_json::json!(["daily", "features"])
    );
    assert_eq!(demo_history["backfill"]["size"]["days"], 90);
    assert!(!demo_history["store"]
        .as_str()
        .unwrap()
        .contains("postgres@"));

    let today = Utc::now().date_naive();
    for days in [0u32, 6, 29, 89] {
        let params = QueryParams::last_days(days, today);
        let settled = compose::split(&params, newest_settled());
        for id in ["demo", "postgres"] {
            let from_store = s.stored.hub.query_source(id, &params).await.unwrap();
            let direct = s.direct.hub.query_source(id, &params).await.unwrap();
            for dataset in Dataset::ALL {
                assert_eq!(
                    rows(&from_store, dataset),
                    rows(&direct, dataset),
                    "{id} {dataset} over {days} days"
                );
            }
            let note = from_store.history.unwrap();
            let stored_days = settled.settled.map_or(0, compose::DayRun::len);
            if stored_days == 0 {
                assert_eq!(
                    note.bypassed.as_deref(),
                    Some("no settled day in the window")
                );
                continue;
            }
            assert_eq!(note.bypassed, None, "{id} {days}");
            assert_eq!(
                (note.stored_days, note.fetched_days),
                (stored_days, 0),
                "{id} {days}"
            );
            assert_eq!(note.open_days, settled.open.map_or(0, compose::DayRun::len));
        }
    }
    // The merged answer says how the store took part.
    let (status, body) = get(&s.stored, "/api/metrics?days=29&source=demo,postgres").await;
    assert_eq!(status, 200, "{body}");
    let history = &details(&body, "postgres")["history"];
    assert_eq!(history["storedDays"], 28, "{body}");
    assert_eq!(
        history["datasets"],
        serde_json::json!(["daily", "features"])
    );
    let (_, direct) = get(&s.direct, "/api/metrics?days=29&source=demo,postgres").await;
    assert_eq!(body["data"]["summary"], direct["data"]["summary"]);
    assert_eq!(body["data"]["dailyMetrics"], direct["data"]["dailyMetrics"]);
    assert_eq!(
        body["data"]["featureMetrics"],
        direct["data"]["featureMetrics"]
    );
    assert_eq!(details(&direct, "postgres").get("history"), None);
}

#[tokio::test]
async fn missing_days_filters_changed_definitions_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_in(dir.path()).await.unwrap());
    // Only the newest settled day is backfilled.
    let files = [("postgres.yaml", postgres_with_history("1d"))];
    let s = setup("history_missing", store.clone(), &files).await;
    backfilled(&s.stored, &["postgres"]).await;
    let today = Utc::now().date_naive();
    let newest = newest_settled();

    // A month: too many days missing, so the source is asked directly, exactly.
    let month = QueryParams::last_days(29, today);
    let answer = s.stored.hub.query_source("postgres", &month).await.unwrap();
    let note = answer.history.clone().unwrap();
    assert_eq!(
        note.bypassed.as_deref(),
        Some("27 settled days are not stored yet")
    );
    let direct = s.direct.hub.query_source("postgres", &month).await.unwrap();
    assert_eq!(rows(&answer, Dataset::Daily), rows(&direct, Dataset::Daily));

    // Three settled days with one stored: the other two are fetched and kept.
    let window = QueryParams::between(newest - Days::new(2), today);
    let first = s
        .stored
        .hub
        .query_source("postgres", &window)
        .await
        .unwrap();
    let note = first.history.clone().unwrap();
    assert_eq!((note.stored_days, note.fetched_days), (1, 2), "{note:?}");
    let again = s
        .stored
        .hub
        .query_source("postgres", &window)
        .await
        .unwrap();
    assert_eq!(again.history.as_ref().unwrap().stored_days, 3);
    let direct = s
        .direct
        .hub
        .query_source("postgres", &window)
        .await
        .unwrap();
    for dataset in Dataset::ALL {
        assert_eq!(rows(&first, dataset), rows(&direct, dataset), "{dataset}");
        assert_eq!(rows(&again, dataset), rows(&direct, dataset), "{dataset}");
    }

    // Filtered requests are not answered from days stored unfiltered.
    let mut filtered = window.clone();
    filtered.filters.insert(
        "event_name".into(),
        metrics_hub::model::FilterValue::Text("page_view".into()),
    );
    let answer = s
        .stored
        .hub
        .query_source("postgres", &filtered)
        .await
        .unwrap();
    assert_eq!(
        answer.history.unwrap().bypassed.as_deref(),
        Some("requests with filters are queried directly")
    );

    // Verify agrees with the source, until the source changes a stored day.
    let postgres = core(&s.stored, "postgres");
    let clean = verify::verify(&postgres, 3, 3).await.unwrap();
    assert_eq!((clean.checked, clean.differences.len()), (3, 0));
    let changed = newest - Days::new(1);
    let pool = sqlx::PgPool::connect(&s.pg_url).await.unwrap();
    let late = demo::DemoEvent {
        event_date: changed.format("%Y%m%d").to_string(),
        event_timestamp: changed
            .and_hms_opt(12, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_micros(),
        event_name: "page_view".into(),
        user_pseudo_id: "late.1".into(),
        page_location: Some("https://acme.8020rei.com/buybox/deals".into()),
    };
    demo::load_postgres(&pool, &[late]).await.unwrap();
    pool.close().await;
    let report = verify::verify(&postgres, 3, 3).await.unwrap();
    let found: Vec<(NaiveDate, Dataset)> = report
        .differences
        .iter()
        .map(|d| (d.day, d.dataset))
        .collect();
    assert_eq!(
        found,
        [(changed, Dataset::Daily), (changed, Dataset::Features)]
    );

    // Another definition of the source (a changed query) does not read these days.
    let edited = postgres_with_history("1d").replacen("SELECT", "SELECT /* edited */", 1);
    let other = setup("history_edited", store, &[("postgres.yaml", edited)]).await;
    let fresh = core(&other.stored, "postgres");
    assert_ne!(fresh.definition, postgres.definition);
    let size = fresh.store.size("postgres").await.unwrap();
    assert!(size.days >= 3, "{size:?}");
    let stored = fresh
        .store
        .stored_days(
            "postgres",
            &fresh.definition,
            newest - Days::new(2),
            newest - Days::new(1),
        )
        .await
        .unwrap();
    assert!(stored.is_empty(), "{stored:?}");
}
