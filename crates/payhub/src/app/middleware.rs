//! The middleware every request passes: its id, its span, its metrics, and the API's error envelope for
//! errors the framework answers itself.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use super::is_api_path;
use crate::ops::{with_request_id, REQUEST_ID_HEADER};
use crate::state::AppState;

/// Gives every request an id (the caller's `x-request-id` when it is sane, else a new one), makes it
/// available to error bodies and logs, echoes it on the response, and records metrics.
pub async fn request_context(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let route =
        request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let method = request.method().clone();
    let api = is_api_path(request.uri().path());
    let span = tracing::info_span!("request", request_id = %id, %method, route = %route);
    let started = Instant::now();
    let mut response = with_request_id(id.clone(), async move {
        let response = tracing::Instrument::instrument(next.run(request), span).await;
        if api {
            crate::api::error::envelope_framework_errors(response).await
        } else {
            response
        }
    })
    .await;
    state.metrics.observe(method.as_str(), &route, response.status().as_u16(), started.elapsed().as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}
