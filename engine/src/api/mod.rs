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
//! - [`openapi`]: the description of every route at `GET /api/openapi.json`. A route is
//!   added with `.routes(routes!(handler))` in its group and a `#[utoipa::path]` on the
//!   handler, which registers it with the router and the description at once.

pub mod access;
pub mod edge;
mod error;
pub mod layers;
pub mod openapi;
mod pages;
pub mod serve;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{middleware, Extension, Json, Router};
use chrono::Utc;
use serde::Serialize;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{refusal, ApiError, ErrorBody};

use crate::hub::insights::{AnomalyReport, CorrelationReport, ForecastReport};
use crate::hub::request::Given;
use crate::hub::status::SourceHealth;
use crate::hub::{Answer, HealthReport, Hub, MetricsBody, Overall, ReloadReport, SourcesReport};
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

/// The routes of the hub, each group behind its access check, and their description.
pub fn app(hub: Arc<Hub>, settings: &ApiSettings) -> Router {
    let read = OpenApiRouter::new()
        .routes(routes!(metrics))
        .routes(routes!(anomalies))
        .routes(routes!(forecasts))
        .routes(routes!(correlations))
        .routes(routes!(sources))
        .routes(routes!(health))
        .routes(routes!(openapi::document))
        .routes(routes!(prometheus));
    let admin = OpenApiRouter::new()
        .routes(routes!(clear_cache))
        .routes(routes!(check_source))
        .routes(routes!(reload));
    let (router, description) = OpenApiRouter::with_openapi(openapi::base())
        .merge(guarded(read, Scope::Read, settings))
        .merge(guarded(admin, Scope::Admin, settings))
        .merge(pages::routes().route_layer(middleware::from_fn(layers::mark_route)))
        .split_for_parts();
    let description = openapi::Served::new(&openapi::finish(description));
    let mut router = router
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .with_state(hub)
        .layer(Extension(description))
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

/// A route group behind the access check of `scope`, described as needing it.
fn guarded(
    group: OpenApiRouter<Arc<Hub>>,
    scope: Scope,
    settings: &ApiSettings,
) -> OpenApiRouter<Arc<Hub>> {
    let guard = middleware::from_fn_with_state((settings.access.clone(), scope), access::require);
    // The route mark goes outside the guard, so refusals are counted by route too.
    let mut group = group
        .route_layer(guard)
        .route_layer(middleware::from_fn(layers::mark_route));
    openapi::require_scope(group.get_openapi_mut(), scope);
    group
}

/// The body of a successful answer other than metrics: `{success, data}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Answered<T> {
    success: bool,
    data: T,
}

impl<T> Answered<T> {
    fn ok(data: T) -> Json<Answered<T>> {
        Json(Answered {
            success: true,
            data,
        })
    }
}

/// What `POST /api/cache/clear` did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cleared {
    /// Ids of the sources whose cache was emptied.
    cleared: Vec<String>,
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

/// The merged metrics of the selected sources.
///
/// Each source's report is in `metadata.sourceDetails`: a source that fails is reported
/// there while the others are served with 200; only when none answers is the answer a 503.
#[utoipa::path(
    get,
    path = "/api/metrics",
    tag = "metrics",
    params(Given),
    responses(
        (status = 200, description = "Merged metrics: every selected source answered, or some did (the others' errors are in metadata.sourceDetails).", body = MetricsBody),
        (status = 400, description = "A parameter is wrong: `invalid_days`, `invalid_date`, `invalid_window`, `duplicate_parameter`, `unknown_source`, `source_disabled`, `unknown_filter` or `invalid_filter`.", body = ErrorBody),
        (status = 503, description = "`all_sources_failed`: no selected source answered; or `overloaded`: a source's fetch queue is full (with `Retry-After`). Each source's report is still in metadata.", body = MetricsBody,
            headers(("Retry-After" = String, description = "Seconds to wait, when overloaded."))),
    ),
)]
async fn metrics(
    State(hub): State<Arc<Hub>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = query.as_deref().unwrap_or_default();
    let answer = hub.answer_query(query, Utc::now().date_naive()).await?;
    Ok(json_bytes(answer))
}

/// The unusual days of every daily series in the window.
///
/// Takes the parameters of `/api/metrics` and asks the sources through the same caches.
/// Checks each source's daily fields, the merged daily series and the derived metrics'
/// daily series. A day is listed when it falls outside the band around the median of the
/// same weekday in the nearest weeks. A series shorter than 21 days is listed as skipped.
#[utoipa::path(
    get,
    path = "/api/insights/anomalies",
    tag = "metrics",
    params(Given),
    responses(
        (status = 200, description = "Every series checked, with its anomalies.", body = Answered<AnomalyReport>),
        (status = 400, description = "A parameter is wrong, as for /api/metrics.", body = ErrorBody),
    ),
)]
async fn anomalies(
    State(hub): State<Arc<Hub>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = query.as_deref().unwrap_or_default();
    let report = hub.anomalies_query(query, Utc::now().date_naive()).await?;
    Ok(Answered::ok(report).into_response())
}

/// The next 14 days of every daily series in the window, with 80% and 95% intervals.
///
/// Takes the parameters of `/api/metrics`; the forecast starts the day after the window's
/// last day. Fits exponential smoothing with a damped trend and a weekly season to each
/// series; a series shorter than 21 days is listed as skipped.
#[utoipa::path(
    get,
    path = "/api/insights/forecast",
    tag = "metrics",
    params(Given),
    responses(
        (status = 200, description = "Every series, with its forecast or why it has none.", body = Answered<ForecastReport>),
        (status = 400, description = "A parameter is wrong, as for /api/metrics.", body = ErrorBody),
    ),
)]
async fn forecasts(
    State(hub): State<Arc<Hub>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = query.as_deref().unwrap_or_default();
    let report = hub.forecast_query(query, Utc::now().date_naive()).await?;
    Ok(Answered::ok(report).into_response())
}

/// The strongest relations between daily series of different sources in the window.
///
/// Takes the parameters of `/api/metrics`. Every pair of source daily series is compared
/// at lags from -14 to +14 days on the series freed of their trend and weekday pattern;
/// pairs with p < 0.05 are listed, strongest first, each with a sentence in words.
#[utoipa::path(
    get,
    path = "/api/insights/correlations",
    tag = "metrics",
    params(Given),
    responses(
        (status = 200, description = "The pairs that move together, at their best lag.", body = Answered<CorrelationReport>),
        (status = 400, description = "A parameter is wrong, as for /api/metrics.", body = ErrorBody),
    ),
)]
async fn correlations(
    State(hub): State<Arc<Hub>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = query.as_deref().unwrap_or_default();
    let report = hub
        .correlations_query(query, Utc::now().date_naive())
        .await?;
    Ok(Answered::ok(report).into_response())
}

/// Every declared source, and the source files that failed to load.
///
/// Each source's kind, health, last success and error, latency, cache and filters; each
/// invalid file's errors with their line, path and fix.
#[utoipa::path(
    get,
    path = "/api/sources",
    tag = "sources",
    responses((status = 200, description = "Every source and every invalid file.", body = Answered<SourcesReport>)),
)]
async fn sources(State(hub): State<Arc<Hub>>) -> Response {
    Answered::ok(hub.sources_report()).into_response()
}

/// Probes every enabled source now.
///
/// With `--public-health` it needs no token.
#[utoipa::path(
    get,
    path = "/api/health",
    tag = "sources",
    responses(
        (status = 200, description = "`ok`, or `degraded`: some source fails its probe or some file is invalid.", body = Answered<HealthReport>),
        (status = 503, description = "`down`: no source can serve (`success` is false).", body = Answered<HealthReport>),
    ),
)]
async fn health(State(hub): State<Arc<Hub>>) -> Response {
    let report = hub.health().await;
    // 200 while the hub can serve anything; degraded sources are marked in the body.
    let status = if report.status == Overall::Down {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = Answered {
        success: status.is_success(),
        data: report,
    };
    (status, Json(body)).into_response()
}

/// Probes one source now.
///
/// The outcome is kept as its `lastCheck`; a failed probe marks the source `failing`
/// until its next successful fetch.
#[utoipa::path(
    post,
    path = "/api/sources/{id}/check",
    tag = "admin",
    params(("id" = String, Path, description = "The source's id.")),
    responses(
        (status = 200, description = "The probe's outcome, up or down.", body = Answered<SourceHealth>),
        (status = 400, description = "`unknown_source` or `source_disabled`.", body = ErrorBody),
    ),
)]
async fn check_source(
    State(hub): State<Arc<Hub>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let health = hub.check_source(&id).await?;
    Ok(Answered::ok(health).into_response())
}

/// The hub's metrics in the Prometheus (OpenMetrics) text format.
///
/// Requests by route and status, per-source fetches, cache lookups, upstream queries and
/// rows, plugin traps, reloads, the configuration generation and the build.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "OpenMetrics text.", body = String, content_type = "application/openmetrics-text"),
        (status = 404, description = "`metrics_off`: the hub runs with --no-metrics.", body = ErrorBody),
    ),
)]
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

/// Reloads the sources directory now.
///
/// Validates every file as start-up does, then switches to the new set at once; unchanged
/// sources keep their caches and connections, a broken file keeps its last good version.
#[utoipa::path(
    post,
    path = "/api/admin/reload",
    tag = "admin",
    responses(
        (status = 200, description = "What was added, changed, removed, kept and rejected.", body = Answered<ReloadReport>),
        (status = 409, description = "`no_sources_directory`: the hub was not started from a directory.", body = ErrorBody),
        (status = 500, description = "`sources_directory_unreadable` or `env_file_invalid`.", body = ErrorBody),
    ),
)]
async fn reload(State(hub): State<Arc<Hub>>) -> Result<Response, ApiError> {
    let report = hub.reload().await?;
    Ok(Answered::ok(report).into_response())
}

/// Empties every source's cache, or one source's.
///
/// The merged answers are dropped either way, since they hold every source's data.
#[utoipa::path(
    post,
    path = "/api/cache/clear",
    tag = "admin",
    params(("source" = Option<String>, Query, description = "Only this source's cache (merged answers are emptied either way).")),
    responses(
        (status = 200, description = "The ids of the sources cleared.", body = Answered<Cleared>),
        (status = 400, description = "`unknown_source`, or `unknown_parameter`: a parameter other than source.", body = ErrorBody),
    ),
)]
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
    Ok(Answered::ok(Cleared { cleared }).into_response())
}

#[cfg(test)]
mod tests;
