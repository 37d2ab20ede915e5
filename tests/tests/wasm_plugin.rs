//! End-to-end: `kind: wasm` sources served by the hub beside the SQLite demo, through the
//! `test-trivial` plugin (synthetic metrics computed from the window, no HTTP), checked
//! against the same formula computed here independently. Also the loader on its own:
//! precompiled cache, world check, and what `plugin check` prints.
//!
//! The components come from `plugins/build.sh` (tests/run.sh runs it first).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use metrics_hub::hub::HubSettings;
use metrics_hub::plugin::cache::Origin;
use metrics_hub::plugin::{PluginError, Runtime};
use metrics_hub_tests::{details, get, plugin_component, repo_root, sources_dir, TestHub};
use serde_json::{json, Value};

/// What `test-trivial` answers for `start..=end`, computed from its documented formula.
fn trivial_expected(start: NaiveDate, end: NaiveDate, client: Option<&str>) -> Value {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    let bonus = client.map_or(0, |c| c.len() as i64);
    let (first, last) = ((start - epoch).num_days(), (end - epoch).num_days());
    let days = last - first + 1;
    let daily: Vec<Value> = (first..=last)
        .map(|n| {
            let users = 100 + n % 17 + bonus;
            let date = epoch + chrono::Days::new(n as u64);
            json!({"date": date.format("%Y-%m-%d").to_string(), "users": users, "events": 3 * users + n % 5, "epoch_day": n})
        })
        .collect();
    let total_users: i64 = daily.iter().map(|d| d["users"].as_i64().unwrap()).sum();
    let total_events: i64 = daily.iter().map(|d| d["events"].as_i64().unwrap()).sum();
    json!({
        "summary": {"total_users": total_users, "total_events": total_events, "page_views": total_events / 2, "active_clients": 2, "synthetic": true},
        "dailyMetrics": daily,
        "featureMetrics": [
            {"feature": "Plugin Reports", "views": days * 10},
            {"feature": "Plugin Alerts", "views": days * 4},
        ],
        "clientMetrics": [
            {"client": "trivial-one", "events": days * 7, "users": days * 3, "page_views": days * 2},
            {"client": "trivial-two", "events": days * 5, "users": days, "page_views": days, "ratio": 0.5},
        ],
    })
}

fn trivial_yaml(id: &str, extra: &str) -> String {
    format!(
        "id: {id}\nname: Trivial plugin {id}\nkind: wasm\ntimeout: 5s\ncache:\n  ttl: 0s\nfilters:\n  client:\n    type: string\nconnection:\n  component: {}\n{extra}",
        plugin_component("test-trivial").display()
    )
}

struct Setup {
    hub: TestHub,
    today: NaiveDate,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// The shipped demo plus `files`.
async fn setup(files: &[(&str, String)]) -> Setup {
    let data = tempfile::tempdir().unwrap();
    let mut all = vec![(
        "demo.yaml",
        std::fs::read_to_string(repo_root().join("sources.d/demo.yaml")).unwrap(),
    )];
    all.extend(files.iter().cloned());
    let sources = sources_dir(&all).unwrap();
    let env = HashMap::from([(
        "METRICS_HUB_DATA_DIR".to_owned(),
        data.path().display().to_string(),
    )]);
    let settings = HubSettings {
        answer_ttl: std::time::Duration::ZERO,
        ..HubSettings::default()
    };
    let hub = TestHub::start(sources.path(), &env, settings)
        .await
        .unwrap();
    Setup {
        hub,
        today: Utc::now().date_naive(),
        _dirs: (data, sources),
    }
}

#[tokio::test]
async fn a_plugin_source_answers_and_merges_with_the_demo() {
    let s = setup(&[
        ("trivial.yaml", trivial_yaml("trivial", "")),
        (
            "partial.yaml",
            trivial_yaml(
                "partial",
                "  config:\n    omit: clients\nqueries:\n  summary: {}\n  clients: {}\n",
            ),
        ),
    ])
    .await;
    let week = s.today - chrono::Days::new(7);

    // The plugin alone, exactly its formula.
    let (status, body) = get(&s.hub, "/api/metrics?days=7&source=trivial").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], trivial_expected(week, s.today, None));
    let d = details(&body, "trivial");
    assert_eq!(d["status"], "ok");
    assert_eq!(d["missingDatasets"], json!([]));
    assert_eq!(d["recordCount"], 1 + 8 + 2 + 2);

    // Filters reach the plugin typed, and an explicit window too.
    let (from, to) = (
        NaiveDate::from_ymd_opt(2026, 2, 20).unwrap(),
        NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
    );
    let (status, body) = get(
        &s.hub,
        &format!("/api/metrics?start_date={from}&end_date={to}&source=trivial&client=acme"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], trivial_expected(from, to, Some("acme")));

    // Declared datasets only, and what the plugin left out is reported, not zeroed.
    let (_, body) = get(&s.hub, "/api/metrics?days=7&source=partial").await;
    let d = details(&body, "partial");
    assert_eq!(d["status"], "ok", "{body}");
    assert_eq!(
        d["missingDatasets"],
        json!(["daily", "features", "clients"])
    );
    assert_eq!(body["data"]["dailyMetrics"], json!([]));

    // Merged with the demo: every number is the demo's plus the plugin's.
    let (_, demo) = get(&s.hub, "/api/metrics?days=7&source=demo").await;
    let (status, merged) = get(&s.hub, "/api/metrics?days=7&source=demo,trivial").await;
    assert_eq!(status, 200, "{merged}");
    assert_eq!(merged["metadata"]["sources"], json!(["demo", "trivial"]));
    let plugin = trivial_expected(week, s.today, None);
    for field in [
        "total_users",
        "total_events",
        "page_views",
        "active_clients",
    ] {
        assert_eq!(
            merged["data"]["summary"][field].as_i64().unwrap(),
            demo["data"]["summary"][field].as_i64().unwrap()
                + plugin["summary"][field].as_i64().unwrap(),
            "{field}"
        );
    }
    let demo_days = demo["data"]["dailyMetrics"].as_array().unwrap();
    for day in merged["data"]["dailyMetrics"].as_array().unwrap() {
        let date = &day["date"];
        let from_demo = demo_days.iter().find(|d| &d["date"] == date);
        let from_plugin = plugin["dailyMetrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| &d["date"] == date);
        for field in ["users", "events"] {
            let part = |d: Option<&Value>| d.map_or(0, |d| d[field].as_i64().unwrap());
            assert_eq!(
                day[field].as_i64().unwrap(),
                part(from_demo) + part(from_plugin),
                "{date} {field}"
            );
        }
    }
    let features = merged["data"]["featureMetrics"].as_array().unwrap();
    assert!(features.iter().any(|f| f["feature"] == "Plugin Reports"));
    assert!(features.iter().any(|f| f["feature"] == "Home Dashboard"));

    // The registry shows the kind and its state.
    let (_, sources) = get(&s.hub, "/api/sources").await;
    let trivial = sources["data"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "trivial")
        .unwrap();
    assert_eq!(trivial["kind"], "wasm");
    assert_eq!(trivial["health"], "ok");
    let (status, health) = get(&s.hub, "/api/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["data"]["status"], "ok", "{health}");
    s.hub.stop().await.unwrap();
}

#[tokio::test]
async fn a_plugin_is_told_how_long_its_call_has() {
    // timeout 5s and no cpu_deadline: the call has the source's 5 s, less a moment.
    let s = setup(&[(
        "trivial.yaml",
        trivial_yaml("trivial", "  config:\n    report_deadline: true\n"),
    )])
    .await;
    let (status, body) = get(&s.hub, "/api/metrics?days=3&source=trivial").await;
    assert_eq!(status, 200, "{body}");
    let left = body["data"]["summary"]["deadline_ms"].as_i64().unwrap();
    assert!((4_000..=5_000).contains(&left), "deadline_ms {left}");
    s.hub.stop().await.unwrap();
}

#[tokio::test]
async fn concurrent_requests_share_the_pool_correctly() {
    let s = setup(&[(
        "trivial.yaml",
        trivial_yaml("trivial", "  sandbox:\n    instances: 2\n"),
    )])
    .await;
    let client = reqwest::Client::new();
    let requests = (1..=24u64).map(|days| {
        let client = client.clone();
        let url = s
            .hub
            .url(&format!("/api/metrics?days={days}&source=trivial"));
        async move {
            let body: Value = client.get(url).send().await?.json().await?;
            Ok::<_, reqwest::Error>((days, body))
        }
    });
    for outcome in futures::future::join_all(requests).await {
        let (days, body) = outcome.unwrap();
        let start = s.today - chrono::Days::new(days);
        assert_eq!(
            body["data"],
            trivial_expected(start, s.today, None),
            "days={days}"
        );
    }
    s.hub.stop().await.unwrap();
}

#[tokio::test]
async fn a_missing_component_is_a_per_source_error_until_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let component = dir.path().join("later.wasm");
    let yaml = format!(
        "id: later\nname: Later\nkind: wasm\ncache:\n  ttl: 0s\nconnection:\n  component: {}\n",
        component.display()
    );
    let s = setup(&[("later.yaml", yaml)]).await;
    let (status, body) = get(&s.hub, "/api/metrics?days=7").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(details(&body, "demo")["status"], "ok");
    let later = details(&body, "later");
    assert_eq!(later["status"], "error");
    assert_eq!(later["error"]["code"], "plugin_unavailable");
    // The plugin is built (copied here): the next request loads it.
    std::fs::copy(plugin_component("test-trivial"), &component).unwrap();
    let (_, body) = get(&s.hub, "/api/metrics?days=7&source=later").await;
    assert_eq!(details(&body, "later")["status"], "ok", "{body}");
    s.hub.stop().await.unwrap();
}

#[test]
fn components_are_compiled_once_then_loaded_precompiled() {
    let cache = tempfile::tempdir().unwrap();
    let path = plugin_component("test-trivial");
    let cold = Runtime::new(Some(cache.path().to_owned())).unwrap();
    let first = cold.load(&path).unwrap();
    assert_eq!(first.origin, Origin::Compiled);
    // Same runtime: the loaded plugin is shared, not compiled again.
    assert!(Arc::ptr_eq(&first, &cold.load(&path).unwrap()));
    // A new runtime (a restart) takes the artefact from disk.
    let warm = Runtime::new(Some(cache.path().to_owned())).unwrap();
    assert_eq!(warm.load(&path).unwrap().origin, Origin::Cache);
    let entries: Vec<_> = std::fs::read_dir(cache.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "one artefact per component and engine");

    // Corrupt the artefact: the next start compiles again instead of trusting it.
    let entry = entries[0].as_ref().unwrap().path();
    let mut bytes = std::fs::read(&entry).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&entry, &bytes).unwrap();
    let again = Runtime::new(Some(cache.path().to_owned())).unwrap();
    assert_eq!(again.load(&path).unwrap().origin, Origin::Compiled);

    let description = first.describe(cold.engine());
    let exports = description.exports.join("\n");
    for export in ["initialize", "fetch-metrics", "health-check", "cleanup"] {
        assert!(exports.contains(export), "{exports}");
    }
    assert!(description
        .imports
        .iter()
        .any(|i| i.starts_with("metrics-hub:source/clock@0.2.0")));
}

#[test]
fn what_is_not_a_data_source_component_is_refused_clearly() {
    let runtime = Runtime::new(None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let not_wasm = dir.path().join("notes.wasm");
    std::fs::write(&not_wasm, "not a component").unwrap();
    // A core module (what a wasm32-unknown-unknown build gives), not a component.
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    // A component that exports nothing.
    let empty = dir.path().join("empty.wasm");
    std::fs::write(&empty, b"\0asm\x0d\0\x01\0").unwrap();
    for (path, expected) in [
        (dir.path().join("missing.wasm"), "cannot read it"),
        (not_wasm, "not a valid WebAssembly component"),
        (core, "not a valid WebAssembly component"),
        (
            empty,
            "does not implement the metrics-hub:source/data-source world",
        ),
    ] {
        match runtime.load(&path) {
            Err(err @ PluginError::Load { .. }) => {
                assert!(err.to_string().contains(expected), "{err}");
                assert_eq!(err.code(), "plugin_unavailable");
            }
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("{} loaded", path.display()),
        }
    }
}
