//! A plugin that traps on every call, under load: the pool replaces its instances, the
//! other sources keep answering, the process does not grow, and `/metrics` counts every
//! trap. Alone in its test
//! binary, so the memory measured is this hub's and nothing else's.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::join_all;
use metrics_hub::hub::HubSettings;
use metrics_hub_tests::{details, plugin_component, repo_root, sources_dir, TestHub};
use serde_json::Value;

/// This process's resident memory, in bytes (from /proc).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn demo_yaml() -> String {
    std::fs::read_to_string(repo_root().join("sources.d/demo.yaml")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plugin_trapping_on_every_call_under_load_is_replaced_without_growing() {
    let plugin = format!(
        "id: panicky\nname: Panicking plugin\nkind: wasm\ntimeout: 5s\ncache:\n  ttl: 0s\nconcurrency: 64\nconnection:\n  component: {}\n  sandbox:\n    instances: 4\n",
        plugin_component("test-panic").display()
    );
    let sources = sources_dir(&[("demo.yaml", demo_yaml()), ("panicky.yaml", plugin)]).unwrap();
    let data = tempfile::tempdir().unwrap();
    let env = HashMap::from([(
        "METRICS_HUB_DATA_DIR".to_owned(),
        data.path().display().to_string(),
    )]);
    let settings = HubSettings {
        answer_ttl: Duration::ZERO,
        ..HubSettings::default()
    };
    let hub = TestHub::start(sources.path(), &env, settings)
        .await
        .unwrap();
    // test-panic traps whenever the window is 13 days. Each answer is checked as it
    // comes and then dropped, so the test's own memory stays flat.
    let client = reqwest::Client::new();
    let round = |calls: usize| {
        let (url, client) = (hub.url("/api/metrics?days=13"), client.clone());
        async move {
            join_all((0..16).map(|_| async {
                for _ in 0..calls / 16 {
                    let response = client.get(&url).send().await.unwrap();
                    assert_eq!(response.status(), 200);
                    let body: Value = response.json().await.unwrap();
                    assert_eq!(details(&body, "demo")["status"], "ok");
                    let code = &details(&body, "panicky")["error"]["code"];
                    assert_eq!(code, "plugin_crashed", "{body}");
                }
            }))
            .await;
        }
    };
    // Warm up until the allocator and wasmtime hold what they keep, then measure.
    for _ in 0..3 {
        round(1600).await;
    }
    let before = resident_bytes();
    for _ in 0..3 {
        round(1600).await;
    }
    let grew = resident_bytes().saturating_sub(before);
    assert!(
        grew < 8 << 20,
        "4,800 more traps grew the process by {} MiB",
        grew >> 20
    );
    // A fresh instance still answers a window that does not trap.
    let (_, body) = metrics_hub_tests::get(&hub, "/api/metrics?days=7").await;
    assert_eq!(details(&body, "panicky")["status"], "ok", "{body}");
    // Every trap was counted, and the pool's memory high-water mark is exposed.
    let scrape = client.get(hub.url("/metrics")).send().await.unwrap();
    let text = scrape.text().await.unwrap();
    let sample = |prefix: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(prefix));
        let line = line.unwrap_or_else(|| panic!("no {prefix} in:\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let traps = sample(r#"metrics_hub_plugin_traps_total{source="panicky",reason="crash"}"#);
    let entries = hub.hub.entries();
    let panicky = entries.iter().find(|e| e.spec.id == "panicky").unwrap();
    // Every upstream call trapped but the last, the 7-day one.
    assert_eq!(traps, (panicky.upstream_fetches() - 1) as f64);
    assert!(traps >= 100.0, "{traps}");
    let memory = sample(r#"metrics_hub_plugin_memory_high_water_bytes{source="panicky"}"#);
    assert!(memory >= 65_536.0, "at least one wasm page: {memory}");
    hub.stop().await.unwrap();
}
