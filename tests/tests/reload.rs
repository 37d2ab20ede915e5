//! Hot reload against a real hub serving on a socket: unchanged sources keep their caches
//! (counted in upstream queries), changed, added and removed ones are applied at once, an
//! invalid file keeps its last good version serving, a duplicate id rejects the newcomer,
//! the watcher and env files are honoured, and a request in flight finishes against the
//! generation it started with.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use metrics_hub::hub::{watch, HubSettings};
use metrics_hub_tests::{
    details, get as get_json, post, serve_in_background, sources_dir, TestHub,
};
use serde_json::{json, Value};

/// A SQLite source answering `users` as its total, cached for an hour.
fn source(id: &str, users: &str) -> String {
    format!(
        "id: {id}\nname: Source {id}\nkind: sql\ncache:\n  ttl: 1h\nconnection:\n  driver: sqlite\n  url: \"sqlite::memory:\"\nqueries:\n  summary:\n    sql: SELECT {users} AS total_users\n"
    )
}

async fn start(dir: &Path, env: HashMap<String, String>, env_file: Option<&Path>) -> TestHub {
    let settings = HubSettings {
        sources_dir: Some(dir.to_owned()),
        env_file: env_file.map(Path::to_owned),
        ..HubSettings::default()
    };
    TestHub::start(dir, &env, settings).await.unwrap()
}

fn upstream(hub: &TestHub, id: &str) -> u64 {
    let entries = hub.hub.entries();
    let entry = entries.iter().find(|e| e.spec.id == id).unwrap();
    entry.upstream_fetches()
}

async fn total(hub: &TestHub, sources: &str) -> (Value, Value) {
    let (status, body) = get_json(hub, &format!("/api/metrics?source={sources}")).await;
    assert_eq!(status, 200, "{body}");
    (body["data"]["summary"]["total_users"].clone(), body)
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn ids(report: &Value, key: &str) -> Vec<String> {
    let list = report[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {report}"));
    list.iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_reload_keeps_unchanged_sources_and_applies_the_rest_at_once() {
    let dir = sources_dir(&[
        ("a.yaml", source("a", "1")),
        ("b.yaml", source("b", "2")),
        ("c.yaml", source("c", "3")),
    ])
    .unwrap();
    let hub = start(dir.path(), HashMap::new(), None).await;
    assert_eq!(total(&hub, "a,b,c").await.0, 6);
    let a_before = upstream(&hub, "a");

    // `a` only gains a comment and a different key order: the same source.
    let reordered =
        source("a", "1").replace("name: Source a\nkind: sql\n", "kind: sql\nname: Source a\n");
    write(dir.path(), "a.yaml", &format!("# reviewed\n{reordered}"));
    write(dir.path(), "b.yaml", &source("b", "20"));
    std::fs::remove_file(dir.path().join("c.yaml")).unwrap();
    write(dir.path(), "d.yaml", &source("d", "4"));
    let (status, body) = post(&hub, "/api/admin/reload").await;
    assert_eq!(status, 200, "{body}");
    let report = &body["data"];
    assert_eq!(ids(report, "kept"), ["a"]);
    assert_eq!(ids(report, "changed"), ["b"]);
    assert_eq!(ids(report, "removed"), ["c"]);
    assert_eq!(ids(report, "added"), ["d"]);
    assert_eq!(report["rejected"], json!([]));
    assert_eq!(report["generation"]["number"], 2);

    let (users, body) = total(&hub, "a,b,d").await;
    assert_eq!(users, 25);
    assert_eq!(
        details(&body, "a")["cached"],
        true,
        "a kept its cache entry"
    );
    assert_eq!(upstream(&hub, "a"), a_before, "no new upstream query for a");
    let (status, body) = get_json(&hub, "/api/metrics?source=c").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("unknown_source"))
    );
    let (_, sources) = get_json(&hub, "/api/sources").await;
    assert_eq!(sources["data"]["generation"]["number"], 2);
    assert!(sources["data"]["generation"]["loadedAt"].is_string());
    hub.stop().await.unwrap();
}

#[tokio::test]
async fn an_invalid_file_keeps_its_last_good_version_serving() {
    let dir = sources_dir(&[("a.yaml", source("a", "1"))]).unwrap();
    let hub = start(dir.path(), HashMap::new(), None).await;
    assert_eq!(total(&hub, "a").await.0, 1);
    let broken = source("a", "2").replace("ttl: 1h", "ttl: soon");
    write(dir.path(), "a.yaml", &broken);
    let (_, body) = post(&hub, "/api/admin/reload").await;
    let rejected = &body["data"]["rejected"][0];
    assert_eq!(rejected["keptServing"], "a", "{body}");
    assert_eq!(rejected["errors"][0]["path"], "/cache/ttl");
    assert_eq!(rejected["errors"][0]["line"], 5);
    assert!(body["data"]["removed"].as_array().unwrap().is_empty());

    let (users, _) = total(&hub, "a").await;
    assert_eq!(users, 1, "the last good version answers");
    assert_eq!(upstream(&hub, "a"), 1, "from its cache");
    let (_, sources) = get_json(&hub, "/api/sources").await;
    let running = &sources["data"]["sources"][0];
    assert_eq!(running["id"], "a");
    let errors = running["rejectedChange"]
        .as_array()
        .expect("the rejection is shown");
    assert!(
        errors[0]["message"].as_str().unwrap().contains("soon"),
        "{errors:?}"
    );
    assert_eq!(sources["data"]["invalidFiles"].as_array().unwrap().len(), 1);

    write(dir.path(), "a.yaml", &source("a", "2"));
    let (_, body) = post(&hub, "/api/admin/reload").await;
    assert_eq!(ids(&body["data"], "changed"), ["a"]);
    assert_eq!(total(&hub, "a").await.0, 2);
    let (_, sources) = get_json(&hub, "/api/sources").await;
    assert!(sources["data"]["sources"][0]
        .get("rejectedChange")
        .is_none());

    std::fs::remove_file(dir.path().join("a.yaml")).unwrap();
    let (_, body) = post(&hub, "/api/admin/reload").await;
    assert_eq!(
        ids(&body["data"], "removed"),
        ["a"],
        "a deleted file removes its source"
    );
    hub.stop().await.unwrap();
}

#[tokio::test]
async fn a_duplicate_id_in_a_new_file_rejects_the_new_file_not_the_running_source() {
    let dir = sources_dir(&[("z.yaml", source("a", "1"))]).unwrap();
    let hub = start(dir.path(), HashMap::new(), None).await;
    assert_eq!(total(&hub, "a").await.0, 1);
    // Sorts before the running file, which would win a cold start.
    write(dir.path(), "a.yaml", &source("a", "9"));
    let (_, body) = post(&hub, "/api/admin/reload").await;
    let report = &body["data"];
    assert_eq!(ids(report, "kept"), ["a"], "{report}");
    let rejected = &report["rejected"][0];
    assert!(rejected["file"].as_str().unwrap().ends_with("a.yaml"));
    let message = rejected["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("already used by") && message.contains("z.yaml"),
        "{message}"
    );
    assert_eq!(total(&hub, "a").await.0, 1);
    hub.stop().await.unwrap();
}

#[tokio::test]
async fn a_change_under_the_directory_is_reloaded_by_the_watcher() {
    let dir = sources_dir(&[("a.yaml", source("a", "1"))]).unwrap();
    let hub = start(dir.path(), HashMap::new(), None).await;
    let _watch = watch::watch_dir(hub.hub.clone(), dir.path(), Duration::from_millis(100)).unwrap();
    write(dir.path(), "b.yaml", &source("b", "2"));
    let mut generation = 1;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        generation = hub.hub.current().number;
        if generation > 1 {
            break;
        }
    }
    assert_eq!(generation, 2, "one debounced reload");
    assert_eq!(total(&hub, "a,b").await.0, 3);
    hub.stop().await.unwrap();
}

#[tokio::test]
async fn env_file_values_are_read_again_at_reload() {
    let dir = sources_dir(&[("a.yaml", source("a", "${USERS}"))]).unwrap();
    let env_dir = tempfile::tempdir().unwrap();
    let env_file = env_dir.path().join("hub.env");
    std::fs::write(&env_file, "USERS=5\n").unwrap();
    let env = HashMap::from([("USERS".to_owned(), "5".to_owned())]);
    let hub = start(dir.path(), env, Some(&env_file)).await;
    assert_eq!(total(&hub, "a").await.0, 5);
    std::fs::write(&env_file, "# rotated\nexport USERS=\"7\"\n").unwrap();
    let (_, body) = post(&hub, "/api/admin/reload").await;
    assert_eq!(ids(&body["data"], "changed"), ["a"], "{body}");
    assert_eq!(total(&hub, "a").await.0, 7);
    hub.stop().await.unwrap();
}

/// An upstream that answers after `delay`, counting its requests.
async fn slow_upstream(
    delay: Duration,
) -> (String, Arc<AtomicUsize>, metrics_hub_tests::Background) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = Router::new().route(
        "/stats",
        get(move || {
            let hits = counted.clone();
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                Json(json!({"total_users": 11}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (base, hits, serve_in_background(listener, app))
}

#[tokio::test]
async fn a_request_in_flight_finishes_against_the_generation_it_started_with() {
    let (base, hits, _upstream) = slow_upstream(Duration::from_millis(800)).await;
    let slow = format!(
        "id: slow\nname: Slow\nkind: rest\ntimeout: 10s\nconnection:\n  base_url: {base}\nqueries:\n  summary:\n    path: /stats\n"
    );
    let dir = sources_dir(&[("slow.yaml", slow)]).unwrap();
    let hub = Arc::new(start(dir.path(), HashMap::new(), None).await);
    let asking = hub.clone();
    let in_flight = tokio::spawn(async move { total(&asking, "slow").await });
    while hits.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    std::fs::remove_file(dir.path().join("slow.yaml")).unwrap();
    write(dir.path(), "a.yaml", &source("a", "1"));
    let (_, body) = post(&hub, "/api/admin/reload").await;
    assert_eq!(ids(&body["data"], "removed"), ["slow"]);
    let (users, answer) = in_flight.await.unwrap();
    assert_eq!(
        users, 11,
        "the removed source still answered the request it had started"
    );
    assert_eq!(answer["metadata"]["sources"], json!(["slow"]));
    let (status, _) = get_json(&hub, "/api/metrics?source=slow").await;
    assert_eq!(status, 400, "later requests see the new generation");
}
