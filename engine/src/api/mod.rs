//! The HTTP API over axum: [`app`] builds the routes of a hub, handlers only extract,
//! call the hub and respond, and this is the only place that picks HTTP status codes.
//!
//! - Routes come in three groups: public (the pages' static files), read and admin; the
//!   [`access`] middleware of a group checks the caller's scope, so a new endpoint
//!   chooses its group where it is added.
//! - [`layers`]: request ids and the request limits; CORS for dashboards on other
//!   origins; the built-in [`pages`].
//! - [`edge`] serves it all over hyper with the connection limits a network needs, and
//!   [`serve`] wires edge, router and hub together with graceful shutdown.

pub mod access;
pub mod edge;
mod error;
pub mod layers;
mod pages;
pub mod serve;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use chrono::Utc;
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use error::{refusal, ApiError};

use crate::hub::{Answer, Hub, Overall};
use crate::telemetry;
use access::{Access, Scope};
use layers::{RequestLimits, REQUEST_ID};

/// How the API is exposed: who may call it, from which origins, within which limits.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub access: Arc<Access>,
    /// Origins of dashboards served elsewhere that may call the API from a browser;
    /// `*` for any (no credentials are ever allowed, so no cookie rides along).
    pub cors_origins: Vec<String>,
    pub limits: RequestLimits,
}

impl Default for ApiSettings {
    /// Open, as on loopback with nothing configured.
    fn default() -> Self {
        ApiSettings {
            access: Arc::new(Access::open()),
            cors_origins: Vec::new(),
            limits: RequestLimits::default(),
        }
    }
}

/// The routes of the hub with the default (open) settings.
pub fn router(hub: Arc<Hub>) -> Router {
    app(hub, &ApiSettings::default())
}

/// The routes of the hub, each group behind its access check.
pub fn app(hub: Arc<Hub>, settings: &ApiSettings) -> Router {
    let guard = |scope: Scope| {
        middleware::from_fn_with_state((settings.access.clone(), scope), access::require)
    };
    let read = Router::new()
        .route("/api/metrics", get(metrics))
        .route("/api/sources", get(sources))
        .route("/api/health", get(health))
        .route("/metrics", get(prometheus))
        .route_layer(guard(Scope::Read))
        .route_layer(middleware::from_fn(layers::mark_route));
    let admin = Router::new()
        .route("/api/cache/clear", post(clear_cache))
        .route("/api/sources/{id}/check", post(check_source))
        .route("/api/admin/reload", post(reload))
        .route_layer(guard(Scope::Admin))
        .route_layer(middleware::from_fn(layers::mark_route));
    let mut router = Router::new()
        .merge(read)
        .merge(admin)
        .merge(pages::routes().route_layer(middleware::from_fn(layers::mark_route)))
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .with_state(hub)
        .layer(middleware::from_fn_with_state(
            Arc::new(settings.limits),
            layers::limit,
        ));
    if let Some(cors) = cors(&settings.cors_origins) {
        router = router.layer(cors);
    }
    router
        .layer(middleware::from_fn(layers::with_request_id))
        .layer(middleware::from_fn(layers::observe))
}

/// CORS for the listed origins: preflights are answered before any access check, and
/// credentials (cookies) are never allowed: callers send their token as a header.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                REQUEST_ID.clone(),
            ])
            .expose_headers([
                REQUEST_ID.clone(),
                header::RETRY_AFTER,
                header::WWW_AUTHENTICATE,
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// A metrics answer: 503 when no selected source answered or the hub shed the request
/// (the body says why, and `Retry-After` when to come back), else 200.
fn json_bytes(answer: Answer) -> Response {
    let status = if answer.all_failed || answer.retry_after.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        answer.body,
    )
        .into_response();
    if let Some(wait) = answer.retry_after {
        let seconds = HeaderValue::from(wait.as_secs().max(1));
        response.headers_mut().insert(header::RETRY_AFTER, seconds);
    }
    response
}

async fn metrics(
    State(hub): State<Arc<Hub>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = query.as_deref().unwrap_or_default();
    let answer = hub.answer_query(query, Utc::now().date_naive()).await?;
    Ok(json_bytes(answer))
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

/// The metrics in the Prometheus (OpenMetrics) text format.
async fn prometheus(State(hub): State<Arc<Hub>>) -> Response {
    if telemetry::get().is_none() {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "metrics_off",
            "this hub runs with --no-metrics",
        )
        .into_response();
    }
    hub.observe();
    (
        [(header::CONTENT_TYPE, telemetry::CONTENT_TYPE)],
        telemetry::encode(),
    )
        .into_response()
}

/// Reloads the sources directory; the answer says what was added, changed, removed,
/// kept and rejected.
async fn reload(State(hub): State<Arc<Hub>>) -> Result<Response, ApiError> {
    let report = hub.reload().await?;
    Ok(Json(json!({"success": true, "data": report})).into_response())
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
