//! One `oneshot` test per handler, against a hub with two in-memory SQLite sources (one
//! that answers, one whose query fails); the end-to-end tests run the same routes on a
//! real socket.

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::*;
use crate::hub::HubSettings;
use crate::load::load_texts;

fn source(id: &str, sql: &str) -> (PathBuf, Result<String, crate::config::ConfigError>) {
    let text = format!(
        "id: {id}\nname: {id}\nkind: sql\nconnection:\n  driver: sqlite\n  url: \"sqlite::memory:\"\nfilters:\n  client: {{ type: string }}\nqueries:\n  summary:\n    sql: {sql}\n"
    );
    (PathBuf::from(format!("{id}.yaml")), Ok(text))
}

fn hub() -> Arc<Hub> {
    let loaded = load_texts(
        vec![
            source("good", "SELECT 7 AS total_users"),
            source("broken", "SELECT * FROM no_such_table"),
            (PathBuf::from("bad.yaml"), Ok("id: Bad\n".to_owned())),
        ],
        &|_| None,
    );
    Arc::new(Hub::new(loaded, HubSettings::default()))
}

async fn call(hub: &Arc<Hub>, method: &str, uri: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    let response = router(hub.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn metrics_answers_200_when_one_source_does_and_503_when_none_does() {
    let hub = hub();
    let (status, body) = call(&hub, "GET", "/api/metrics?days=7").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["summary"]["total_users"], 7);
    assert_eq!(body["metadata"]["sourceDetails"][0]["status"], "error");
    let (status, body) = call(&hub, "GET", "/api/metrics?source=broken").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "all_sources_failed");
}

#[tokio::test]
async fn a_bad_metrics_request_is_a_400_with_its_code() {
    let (status, body) = call(&hub(), "GET", "/api/metrics?days=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["success"], false);
    assert_eq!(body["error"]["code"], "invalid_days");
}

#[tokio::test]
async fn sources_lists_sources_and_invalid_files() {
    let (status, body) = call(&hub(), "GET", "/api/sources").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = body["data"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["broken", "good"]);
    assert_eq!(body["data"]["invalidFiles"][0]["file"], "bad.yaml");
}

#[tokio::test]
async fn health_is_200_while_anything_can_serve() {
    let (status, body) = call(&hub(), "GET", "/api/health").await;
    // Both probes pass (SELECT 1 works on either), but a file is invalid.
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["status"], "degraded");
}

#[tokio::test]
async fn check_probes_one_source_and_refuses_unknown_ones() {
    let hub = hub();
    let (status, body) = call(&hub, "POST", "/api/sources/good/check").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["status"], "ok");
    let (status, body) = call(&hub, "POST", "/api/sources/nope/check").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "unknown_source");
}

#[tokio::test]
async fn cache_clear_empties_all_or_one_and_refuses_other_parameters() {
    let hub = hub();
    let (status, body) = call(&hub, "POST", "/api/cache/clear").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["data"]["cleared"],
        serde_json::json!(["broken", "good"])
    );
    let (_, body) = call(&hub, "POST", "/api/cache/clear?source=good").await;
    assert_eq!(body["data"]["cleared"], serde_json::json!(["good"]));
    let (status, body) = call(&hub, "POST", "/api/cache/clear?everything=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "unknown_parameter");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let hub = hub();
    let (status, body) = call(&hub, "GET", "/api/nothing").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, body) = call(&hub, "DELETE", "/api/metrics").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
}
