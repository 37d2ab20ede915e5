//! The one error type of the HTTP layer: a status and a stable JSON body
//! `{success:false, error:{code, message}}`, never internal error text. The refusals the
//! edge makes before a request reaches a handler (a head too large, a timeout, too many
//! connections) use the same shape, through [`refusal`].

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::hub::{ReloadError, RequestError};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// The same error with one more response header (`WWW-Authenticate`, `Retry-After`).
    pub fn with_header(mut self, name: HeaderName, value: &str) -> ApiError {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }

    /// One of the edge's refusals (see [`refusal`]).
    pub fn refused(status: StatusCode) -> ApiError {
        let (_, code, message) = refusal(status.as_u16());
        ApiError::new(status, code, message)
    }

    /// A refusal that says when to try again.
    pub fn retry_after(status: StatusCode, seconds: u64) -> ApiError {
        ApiError::refused(status).with_header(header::RETRY_AFTER, &seconds.max(1).to_string())
    }

    pub fn not_found() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint: GET /api/openapi.json describes every one",
        )
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this endpoint does not take that method",
        )
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }
}

/// Reason phrase, code and message of each refusal the hub makes itself, before a
/// handler sees the request: at the edge (unparseable or oversized heads, timeouts, the
/// connection cap) and in the request limits.
pub fn refusal(status: u16) -> (&'static str, &'static str, &'static str) {
    match status {
        400 => (
            "Bad Request",
            "bad_request",
            "the request is not valid HTTP/1.1",
        ),
        408 => (
            "Request Timeout",
            "request_timeout",
            "the request's head did not arrive in time",
        ),
        413 => (
            "Payload Too Large",
            "body_too_large",
            "the request's body is larger than the hub accepts",
        ),
        414 => (
            "URI Too Long",
            "uri_too_long",
            "the request's path and query string are longer than the hub accepts",
        ),
        429 => (
            "Too Many Requests",
            "rate_limited",
            "too many admin requests with this token: wait and try again",
        ),
        431 => (
            "Request Header Fields Too Large",
            "headers_too_large",
            "the request's headers are too large or too many",
        ),
        503 => (
            "Service Unavailable",
            "overloaded",
            "the hub is at capacity: try again shortly",
        ),
        _ => ("Error", "refused", "the hub refused the request"),
    }
}

impl From<RequestError> for ApiError {
    fn from(err: RequestError) -> Self {
        // A client mistake, not a server fault: debug level, not an error log line.
        tracing::debug!(code = err.code, "bad request: {}", err.message);
        ApiError::new(StatusCode::BAD_REQUEST, err.code, err.message)
    }
}

impl From<ReloadError> for ApiError {
    fn from(err: ReloadError) -> Self {
        // Admin-only, so the directory's path may be named.
        let (status, code) = match err {
            ReloadError::NoDirectory => (StatusCode::CONFLICT, "no_sources_directory"),
            ReloadError::Directory(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "sources_directory_unreadable",
            ),
            ReloadError::EnvFile(_) => (StatusCode::INTERNAL_SERVER_ERROR, "env_file_invalid"),
        };
        tracing::error!("reload failed: {err}");
        ApiError::new(status, code, err.to_string())
    }
}

/// The body of every error answer of the API itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody<'a> {
    /// Always false.
    success: bool,
    error: ErrorDetail<'a>,
}

/// What went wrong: a code that stays the same across releases, and a message for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail<'a> {
    /// e.g. `invalid_days`, `unknown_source`, `missing_token`, `rate_limited`.
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            success: false,
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        response.headers_mut().extend(self.headers);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn the_error_body_is_the_one_dashboards_already_read() {
        let response = ApiError::new(StatusCode::BAD_REQUEST, "invalid_days", "no").into_response();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            &body[..],
            br#"{"success":false,"error":{"code":"invalid_days","message":"no"}}"#
        );
    }
}
