//! The HTTP API over axum: `router(hub)` builds the routes, handlers only extract, call
//! the hub and respond, and this is the only place that picks HTTP status codes. The
//! built-in pages are in `pages`; serving (listener, shutdown) is in [`serve`].

mod error;
mod pages;
pub mod serve;

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde_json::json;

pub use error::ApiError;

use crate::hub::{Answer, Hub, Overall};

/// The routes of the hub, over shared state.
pub fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/api/metrics", get(metrics))
        .route("/api/sources", get(sources))
        .route("/api/health", get(health))
        .route("/api/cache/clear", post(clear_cache))
        .route("/api/sources/{id}/check", post(check_source))
        .merge(pages::routes())
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .with_state(hub)
}

/// A metrics answer: 503 when no selected source answered (the body says why), else 200.
fn json_bytes(answer: Answer) -> Response {
    let status = if answer.all_failed {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        answer.body,
    )
        .into_response()
}

async fn metrics(
    State(hub): State<Arc<Hub>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let request = hub.parse_request(
        query.as_deref().unwrap_or_default(),
        Utc::now().date_naive(),
    )?;
    Ok(json_bytes(hub.metrics(request).await))
}

async fn sources(State(hub): State<Arc<Hub>>) -> Response {
    Json(json!({"success": true, "data": hub.sources_report()})).into_response()
}

async fn health(State(hub): State<Arc<Hub>>) -> Response {
    let report = hub.health().await;
    // 200 while the hub can serve anything; degraded sources are marked in the body.
    let status = if report.status == Overall::Down {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        status,
        Json(json!({"success": status.is_success(), "data": report})),
    )
        .into_response()
}

async fn check_source(
    State(hub): State<Arc<Hub>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let health = hub.check_source(&id).await?;
    Ok(Json(json!({"success": true, "data": health})).into_response())
}

async fn clear_cache(
    State(hub): State<Arc<Hub>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut source = None;
    for (name, value) in form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "source" => source = Some(value.into_owned()),
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "unknown_parameter",
                    format!(
                        "`{other}` is not a parameter of cache/clear; use ?source=ID or nothing"
                    ),
                ))
            }
        }
    }
    let cleared = hub.clear_cache(source.as_deref())?;
    Ok(Json(json!({"success": true, "data": {"cleared": cleared}})).into_response())
}

#[cfg(test)]
mod tests;
