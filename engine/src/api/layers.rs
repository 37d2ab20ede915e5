//! What every request goes through before its route: a request id (taken from
//! `x-request-id` or made, returned on the response, and on every log line of the
//! request), its count and duration in the metrics, and the request limits the hub answers itself in JSON: a path and query
//! string too long (414) or a body too large (413).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::ApiError;
use crate::telemetry::{self, HttpLabels, RouteLabels};

/// The header of a request's id.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A request's id, in its extensions for handlers and logs.
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

/// Limits of one request, each with a flag.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Longest path and query string, in bytes.
    pub max_uri_bytes: usize,
    /// Largest body, in bytes.
    pub max_body_bytes: u64,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_uri_bytes: 32 * 1024,
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// An id the client sent, when it is short, printable ASCII; else a new one.
fn request_id(request: &Request) -> HeaderValue {
    let given = request.headers().get(&REQUEST_ID).filter(|value| {
        let bytes = value.as_bytes();
        !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(|b| b.is_ascii_graphic())
    });
    given.cloned().unwrap_or_else(new_id)
}

/// A process nonce and a counter: unique, ordered, and cheaper than a random id.
fn new_id() -> HeaderValue {
    static NONCE: OnceLock<u32> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nonce = NONCE.get_or_init(rand::random);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    HeaderValue::from_str(&format!("{nonce:08x}-{n:010x}")).unwrap_or(HeaderValue::from_static("0"))
}

/// Gives the request its id and a span that carries it into every log line.
pub async fn with_request_id(mut request: Request, next: Next) -> Response {
    let id = request_id(&request);
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!(
        "request",
        id = %id.to_str().unwrap_or_default(),
        method = %request.method(),
        path = %request.uri().path()
    );
    let mut response = next.run(request).instrument(span).await;
    response.headers_mut().insert(REQUEST_ID.clone(), id);
    response
}

/// The route template a request matched, carried out on its response so the outer
/// [`observe`] can label by route (it runs before routing, when there is none yet).
#[derive(Debug, Clone)]
struct MatchedRoute(MatchedPath);

/// Put on each route group with `route_layer`: marks the response with its route.
pub async fn mark_route(request: Request, next: Next) -> Response {
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(request).await;
    if let Some(matched) = matched {
        response.extensions_mut().insert(MatchedRoute(matched));
    }
    response
}

/// Counts every request by route, method and status, with its duration.
pub async fn observe(request: Request, next: Next) -> Response {
    let Some(t) = telemetry::get() else {
        return next.run(request).await;
    };
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    let route = response
        .extensions()
        .get::<MatchedRoute>()
        .map_or("unmatched", |m| m.0.as_str())
        .to_owned();
    let status = response.status().as_u16();
    let duration = telemetry::seconds(started.elapsed());
    t.http_duration
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(duration);
    t.http_requests
        .get_or_create(&HttpLabels {
            route,
            method,
            status,
        })
        .inc();
    response
}

/// Refuses a request over the limits before its handler runs; bodies without a length
/// are cut off at the limit while they are read.
pub async fn limit(
    State(limits): State<Arc<RequestLimits>>,
    request: Request,
    next: Next,
) -> Response {
    let uri_bytes = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if uri_bytes > limits.max_uri_bytes {
        return ApiError::refused(StatusCode::URI_TOO_LONG).into_response();
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limits.max_body_bytes) {
        return ApiError::refused(StatusCode::PAYLOAD_TOO_LARGE).into_response();
    }
    let max = usize::try_from(limits.max_body_bytes).unwrap_or(usize::MAX);
    let request = request.map(|body| Body::new(http_body_util::Limited::new(body, max)));
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_taken_when_sane_and_made_otherwise() {
        let with = |value: &str| {
            Request::builder()
                .header("x-request-id", value)
                .body(Body::empty())
                .unwrap()
        };
        assert_eq!(request_id(&with("abc-123")), "abc-123");
        assert_ne!(request_id(&with("has space")), "has space");
        assert_ne!(request_id(&with(&"x".repeat(200))).len(), 200);
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
    }
}
