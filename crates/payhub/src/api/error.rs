//! Errors of the JSON APIs, in one envelope shared with the Payment API (FinDock's):
//! `{"Errors": [{"error_code": "200", "error_message": "…", "field": "…"}], "RequestId": "…"}`.
//!
//! Policy: client errors carry a message safe to show and change nothing; an internal error is logged with its
//! cause and answered with an opaque message and the request id, so an operator can find the log line.
//! Codes: `010` missing parameter, `200` invalid data, `098` no default configured, `401` not authenticated,
//! `403` not allowed, `404` not found, `409` conflict, `413` body too large, `415` not JSON, `500` provider
//! failure, `503` not answered within the time limit (repeat with the same IdempotencyKey), `999` internal.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::FieldError;
use crate::error::ServiceError;
use crate::ops::current_request_id;

pub use crate::error::ErrorItem;

/// An error answer of a JSON API.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    items: Vec<ErrorItem>,
}

impl ApiError {
    /// An error with one item.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>, field: Option<String>) -> Self {
        Self { status, items: vec![ErrorItem { error_code: code, error_message: message.into(), field }] }
    }

    /// An error with several items (every problem of one request).
    pub fn items(status: StatusCode, items: Vec<ErrorItem>) -> Self {
        Self { status, items }
    }

    /// 401: no valid credentials.
    pub fn unauthenticated() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "401", "A valid API key is required (Authorization: Bearer <key>).", None)
    }

    /// 403: credentials valid, role not enough.
    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "403", "This API key's role does not allow this operation.", None)
    }

    /// 404 for a missing record of the named kind.
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "404", format!("No such {what}."), None)
    }

    /// 400 for field errors (code 010 for missing values, 200 for invalid ones).
    pub fn fields(status: StatusCode, errors: Vec<FieldError>) -> Self {
        let items = errors
            .into_iter()
            .map(|e| ErrorItem {
                error_code: if e.missing { "010" } else { "200" },
                error_message: e.message,
                field: Some(e.field.to_owned()),
            })
            .collect();
        Self { status, items }
    }

    /// 500 with an opaque body; the cause goes to the log with the request id.
    pub fn internal(cause: &anyhow::Error) -> Self {
        tracing::error!(error = ?cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "999",
            "Internal error. Quote the RequestId when reporting it.",
            None,
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The envelope's items.
    pub fn error_items(&self) -> &[ErrorItem] {
        &self.items
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Invalid(errors) => ApiError::fields(StatusCode::BAD_REQUEST, errors),
            ServiceError::Conflict(errors) => {
                let mut e = ApiError::fields(StatusCode::CONFLICT, errors);
                e.items.iter_mut().for_each(|i| i.error_code = "409");
                e
            }
            ServiceError::NotFound(what) => ApiError::not_found(what),
            ServiceError::Internal(cause) => ApiError::internal(&cause),
        }
    }
}

/// The error envelope of both APIs (FinDock's): every problem of the request, and the request id to quote.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorEnvelope {
    /// Every problem found, at least one.
    #[serde(rename = "Errors")]
    #[schema(min_items = 1)]
    pub errors: Vec<ErrorItem>,
    /// The request's id (also in the `x-request-id` header), to find its log lines.
    #[serde(rename = "RequestId", skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The record the failed request made, when it made one before the failure (a Payment Intent or refund
    /// Vipps refused): read it for its outcome.
    #[serde(rename = "Id", skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorEnvelope { errors: self.items, request_id: current_request_id(), id: None };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Rewrites an error answer made by the framework itself (method not allowed, a malformed query string, the
/// request time limit) into the envelope, so every error of a JSON API has one shape. Answers that are already
/// JSON pass unchanged. A request cut by the time limit (503) is told how to learn its outcome: work claimed
/// under an IdempotencyKey goes on, and a repeat with that key gets its answer (`Retry-After: 1`).
pub async fn envelope_framework_errors(response: Response) -> Response {
    let status = response.status();
    let is_json =
        response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text =
        axum::body::to_bytes(body, 4096).await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let (code, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => ("405", "This endpoint does not accept that method.".to_owned()),
        StatusCode::NOT_FOUND => ("404", "No such endpoint.".to_owned()),
        StatusCode::PAYLOAD_TOO_LARGE => ("413", "The request body is too large.".to_owned()),
        StatusCode::SERVICE_UNAVAILABLE => (
            "503",
            "payhub did not answer within its time limit, but work taken on under an IdempotencyKey goes on: repeat \
             the request with the same IdempotencyKey for its answer. Without a key, read the record before sending \
             the request again."
                .to_owned(),
        ),
        s if s.is_client_error() => ("200", if text.is_empty() { "The request is invalid.".to_owned() } else { text }),
        _ => ("999", "Internal error. Quote the RequestId when reporting it.".to_owned()),
    };
    let mut rewritten = ApiError::new(status, code, message, None).into_response();
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        rewritten.headers_mut().insert(header::ALLOW, allow.clone());
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        rewritten.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    rewritten
}
