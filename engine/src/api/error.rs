//! The one error type of the HTTP layer: a status and a stable JSON body
//! `{success:false, error:{code, message}}`, never internal error text.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::hub::RequestError;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint: see /api/metrics, /api/sources, /api/health and POST /api/cache/clear",
        )
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this endpoint does not take that method",
        )
    }
}

impl From<RequestError> for ApiError {
    fn from(err: RequestError) -> Self {
        // A client mistake, not a server fault: debug level, not an error log line.
        tracing::debug!(code = err.code, "bad request: {}", err.message);
        ApiError::new(StatusCode::BAD_REQUEST, err.code, err.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "success": false,
            "error": {"code": self.code, "message": self.message},
        });
        (self.status, Json(body)).into_response()
    }
}
