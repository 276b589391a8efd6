//! The middleware every request passes: its id, its span, its metrics, and the API's error envelope for
//! errors the framework answers itself.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

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
    let method = method_label(request.method());
    let api = is_api_path(request.uri().path());
    // No record has a NUL in its id (and PostgreSQL cannot even compare one): such a path names nothing.
    let nul_in_path = request.uri().path().to_ascii_lowercase().contains("%00");
    // `account` and `record` are filled in by the handler once it knows them (the intent's account and id, the
    // webhook's account), so every line logged for the request names what it concerns.
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        %method,
        route = %route,
        account = tracing::field::Empty,
        record = tracing::field::Empty
    );
    let started = Instant::now();
    let mut response = with_request_id(id.clone(), async move {
        if nul_in_path {
            return if api {
                crate::api::error::ApiError::not_found("record").into_response()
            } else {
                crate::web::not_found()
            };
        }
        let response = tracing::Instrument::instrument(next.run(request), span).await;
        if api {
            crate::api::error::envelope_framework_errors(response).await
        } else {
            response
        }
    })
    .await;
    state.metrics.observe(method, &route, response.status().as_u16(), started.elapsed().as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    protect(response.headers_mut(), api);
    response
}

/// Headers every answer carries: nothing payhub sends (payment data, a key shown once) is kept by a cache
/// unless a handler says otherwise, no answer is sniffed into another type, and no page can be framed by
/// another site (a framed payment or setup page invites clickjacking).
fn protect(headers: &mut axum::http::HeaderMap, api: bool) {
    use axum::http::header;
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if !api {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers
            .entry(header::CONTENT_SECURITY_POLICY)
            .or_insert(HeaderValue::from_static("frame-ancestors 'none'; base-uri 'self'"));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    }
}

/// The method as a metrics label: the methods payhub serves by name, anything else as `other`, so a caller
/// inventing methods cannot grow the metrics without bound.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        let invented = Method::from_bytes(b"BREW").unwrap_or(Method::GET);
        assert_eq!(method_label(&invented), "other");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
    }
}
