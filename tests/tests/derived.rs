//! Derived metrics through a real hub on a socket: `metrics.d/` beside `sources.d/`, values
//! across two sources and per day checked against numbers the sources were given, `null`
//! and `missing` when a source sits a request out, and a reload that reports a bad metric
//! file with line and path while serving a new good one.

use std::collections::HashMap;
use std::path::Path;

use std::time::{Duration, Instant};

use metrics_hub::hub::{watch, HubSettings};
use metrics_hub_tests::{get, post, TestHub};
use serde_json::{json, Value};

/// Source `web`: 4 users and 10 page views; yesterday 2 users and 6 events, today 0 and 3.
const WEB: &str = r#"id: web
name: Web
kind: sql
connection:
  driver: sqlite
  url: "sqlite::memory:"
queries:
  summary:
    sql: SELECT 4 AS total_users, 10 AS page_views
  daily:
    sql: >-
      SELECT date('now', '-1 day') AS date, 2 AS users, 6 AS events
      UNION ALL SELECT date('now') AS date, 0 AS users, 3 AS events
"#;

/// Source `crm-leads`: 2 users (leads).
const CRM: &str = "id: crm-leads\nname: CRM\nkind: sql\nconnection:\n  driver: sqlite\n  url: \"sqlite::memory:\"\nqueries:\n  summary:\n    sql: SELECT 2 AS total_users\n";

const RATIO: &str = "name: leads_per_page_view\nlabel: Leads per page view\nformat: percent\nsummary: crm_leads.summary.total_users / web.summary.page_views\ndaily: web.daily.events / web.daily.users\n";

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

async fn derived(hub: &TestHub, query: &str) -> Vec<Value> {
    let (status, body) = get(hub, &format!("/api/metrics?{query}")).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["derived"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn derived_metrics_are_served_checked_and_reloaded() {
    let root = tempfile::tempdir().unwrap();
    let sources = root.path().join("sources.d");
    let metrics = root.path().join("metrics.d");
    std::fs::create_dir_all(&sources).unwrap();
    std::fs::create_dir_all(&metrics).unwrap();
    write(&sources, "web.yaml", WEB);
    write(&sources, "crm.yaml", CRM);
    write(&metrics, "ratio.yaml", RATIO);
    let settings = HubSettings {
        sources_dir: Some(sources.clone()),
        ..HubSettings::default()
    };
    let hub = TestHub::start(&sources, &HashMap::new(), settings)
        .await
        .unwrap();

    let all = derived(&hub, "days=7").await;
    assert_eq!(all.len(), 1, "{all:?}");
    let ratio = &all[0];
    assert_eq!(ratio["value"], json!(0.2), "2 leads over 10 page views");
    assert_eq!(ratio["format"], "percent");
    let days: Vec<Value> = ratio["daily"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["value"].clone())
        .collect();
    assert_eq!(
        days,
        [json!(3.0), Value::Null],
        "6/2, then 3 events over 0 users"
    );
    assert_eq!(
        ratio["inputs"],
        json!([
            "crm-leads.summary.total_users",
            "web.summary.page_views",
            "web.daily.events",
            "web.daily.users"
        ])
    );
    assert_eq!(ratio["missing"], json!([]));

    // Only `web` asked: the CRM's input is missing, the value null, the daily line intact.
    let web_only = derived(&hub, "days=7&source=web").await;
    assert_eq!(web_only[0]["value"], Value::Null);
    assert_eq!(
        web_only[0]["missing"],
        json!(["crm-leads.summary.total_users"])
    );
    assert_eq!(web_only[0]["daily"][0]["value"], json!(3.0));

    // A typo is reported with its line and path; a new good file serves at once.
    write(
        &metrics,
        "typo.yaml",
        "name: typo\nlabel: Typo\nsummary: web.summary.page_veiws / 2\n",
    );
    write(&metrics, "views.yaml", "name: views_per_user\nlabel: Views per user\nsummary: web.summary.page_views / web.summary.total_users\n");
    let (status, report) = post(&hub, "/api/admin/reload").await;
    assert_eq!(status, 200, "{report}");
    let (_, listing) = get(&hub, "/api/sources").await;
    let invalid = listing["data"]["invalidFiles"].as_array().unwrap();
    let typo = invalid
        .iter()
        .find(|f| f["file"].as_str().unwrap().ends_with("typo.yaml"))
        .unwrap_or_else(|| panic!("typo.yaml not reported: {listing}"));
    let error = &typo["errors"][0];
    assert_eq!(
        (error["line"].clone(), error["path"].clone()),
        (json!(3), json!("/summary"))
    );
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("did you mean page_views?"),
        "{error}"
    );
    let names: Vec<Value> = derived(&hub, "days=7")
        .await
        .iter()
        .map(|m| m["name"].clone())
        .collect();
    assert_eq!(
        names,
        [json!("leads_per_page_view"), json!("views_per_user")]
    );
    assert_eq!(derived(&hub, "days=7").await[1]["value"], json!(2.5));

    // metrics.d/ is watched beside sources.d/: removing a file reloads by itself.
    let _watch = watch::watch_dir(hub.hub.clone(), &sources, Duration::from_millis(100)).unwrap();
    std::fs::remove_file(metrics.join("views.yaml")).unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while derived(&hub, "days=7").await.len() != 1 {
        assert!(
            Instant::now() < until,
            "the removal of views.yaml was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
