//! Stale answers instead of empty panels, against a real hub and a real HTTP upstream
//! that can be made slow or failing: `stale_if_error` serves the last result marked with
//! the error, `stale_while_revalidate` answers at once while exactly one background
//! refresh runs, and clearing the cache empties stale entries too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_hub::hub::HubSettings;
use metrics_hub_tests::{
    details, get as get_json, post, serve_in_background, sources_dir, Background, TestHub,
};
use serde_json::json;

#[derive(Default)]
struct Upstream {
    users: AtomicU64,
    failing: AtomicBool,
    delay_ms: AtomicU64,
    hits: AtomicUsize,
}

async fn stats(State(up): State<Arc<Upstream>>) -> Response {
    up.hits.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(up.delay_ms.load(Ordering::SeqCst))).await;
    if up.failing.load(Ordering::SeqCst) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response();
    }
    Json(json!({"total_users": up.users.load(Ordering::SeqCst)})).into_response()
}

async fn upstream(users: u64) -> (String, Arc<Upstream>, Background) {
    let state = Arc::new(Upstream::default());
    state.users.store(users, Ordering::SeqCst);
    let app = Router::new()
        .route("/stats", get(stats))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (base, state, serve_in_background(listener, app))
}

/// A REST source over `/stats` with a 1 s TTL and the given extra `cache:` lines.
fn source(id: &str, base: &str, cache: &str) -> String {
    format!(
        "id: {id}\nname: Source {id}\nkind: rest\ntimeout: 5s\ncache:\n  ttl: 1s\n{cache}connection:\n  base_url: {base}\n  retries: 0\nqueries:\n  summary:\n    path: /stats\n"
    )
}

#[tokio::test]
async fn stale_if_error_serves_the_last_result_marked_with_the_error() {
    let (base, up, _server) = upstream(11).await;
    let dir = sources_dir(&[
        ("kept.yaml", source("kept", &base, "  stale_if_error: 1h\n")),
        ("plain.yaml", source("plain", &base, "")),
    ])
    .unwrap();
    let hub = TestHub::start(dir.path(), &HashMap::new(), HubSettings::default())
        .await
        .unwrap();
    let (status, body) = get_json(&hub, "/api/metrics").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["summary"]["total_users"], 22);
    let fetched_at = details(&body, "kept")["fetchedAt"].clone();

    up.failing.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, body) = get_json(&hub, "/api/metrics").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["summary"]["total_users"], 11,
        "only kept's stale part"
    );
    let kept = details(&body, "kept");
    assert_eq!(kept["stale"], true);
    assert_eq!(kept["status"], "ok");
    assert_eq!(kept["fetchedAt"], fetched_at, "the time of the data served");
    assert_eq!(kept["error"]["code"], "upstream_error");
    let plain = details(&body, "plain");
    assert_eq!(
        plain["status"], "error",
        "without the window the panel is empty"
    );
    assert!(plain.get("stale").is_none());
    let (_, sources) = get_json(&hub, "/api/sources").await;
    let kept_info = &sources["data"]["sources"][0];
    assert_eq!(kept_info["id"], "kept");
    assert_eq!(kept_info["cache"]["staleEntries"], 1);
    assert_eq!(kept_info["staleIfErrorSeconds"], 3600);

    let (status, _) = post(&hub, "/api/cache/clear").await;
    assert_eq!(status, 200);
    let (status, body) = get_json(&hub, "/api/metrics").await;
    assert_eq!(status, 503, "nothing stale is left to serve: {body}");
    hub.stop().await.unwrap();
}

#[tokio::test]
async fn stale_while_revalidate_answers_at_once_and_refreshes_once() {
    let (base, up, _server) = upstream(11).await;
    let dir = sources_dir(&[(
        "swr.yaml",
        source("swr", &base, "  stale_while_revalidate: 1h\n"),
    )])
    .unwrap();
    let hub = TestHub::start(dir.path(), &HashMap::new(), HubSettings::default())
        .await
        .unwrap();
    let (_, body) = get_json(&hub, "/api/metrics").await;
    assert_eq!(body["data"]["summary"]["total_users"], 11);
    assert_eq!(up.hits.load(Ordering::SeqCst), 1);

    up.users.store(12, Ordering::SeqCst);
    up.delay_ms.store(1_500, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let answers = futures::future::join_all((0..20).map(|_| get_json(&hub, "/api/metrics"))).await;
    // All twenty were answered while the one refresh was still sleeping upstream.
    assert_eq!(
        up.hits.load(Ordering::SeqCst),
        2,
        "one background refresh for the key"
    );
    for (status, body) in &answers {
        assert_eq!(*status, 200);
        assert_eq!(body["data"]["summary"]["total_users"], 11);
        assert_eq!(details(body, "swr")["stale"], true);
        assert!(details(body, "swr")["error"].is_null());
    }
    let mut refreshed = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, body) = get_json(&hub, "/api/metrics").await;
        if body["data"]["summary"]["total_users"] == 12 {
            refreshed = Some(body);
            break;
        }
    }
    let body = refreshed.expect("the refresh landed");
    assert!(
        details(&body, "swr").get("stale").is_none(),
        "fresh again: {body}"
    );
    assert_eq!(up.hits.load(Ordering::SeqCst), 2);
    hub.stop().await.unwrap();
}
