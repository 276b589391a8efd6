//! The guard every non-public route passes: who is calling (API key or browser session), whether their role
//! allows the route, and, for browser forms, whether the CSRF token is right.
//!
//! JSON routes (`/admin/api/…`, `/v2/…`) authenticate with `Authorization: Bearer <key>` and answer in the
//! error envelope; pages authenticate with the session cookie, send strangers to the sign-in page, and check
//! the `csrf_token` field of every form they receive.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::{tokens, Principal};
use crate::api::error::ApiError;
use crate::app::AppState;
use crate::domain::role::Access;
use crate::web;

/// Name of the browser session cookie.
pub const SESSION_COOKIE: &str = "payhub_session";

/// Whether a path belongs to a JSON API (bearer keys, JSON errors) rather than the pages.
pub fn is_api_path(path: &str) -> bool {
    path.starts_with("/admin/api/") || path.starts_with("/v2/") || path == "/admin/api"
}

/// A cookie's value from the request headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The client's address, for the audit log.
pub fn client_source(request: &Request) -> String {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Guard for routes that need [`Access::Admin`].
pub async fn require_admin(state: State<AppState>, request: Request, next: Next) -> Response {
    guard(state, request, next, Access::Admin).await
}

/// Guard for routes that need [`Access::Finance`].
pub async fn require_finance(state: State<AppState>, request: Request, next: Next) -> Response {
    guard(state, request, next, Access::Finance).await
}

/// Guard for routes that need [`Access::PaymentApi`].
pub async fn require_payment_api(state: State<AppState>, request: Request, next: Next) -> Response {
    guard(state, request, next, Access::PaymentApi).await
}

/// Guard for routes that need [`Access::Refunds`].
pub async fn require_refunds(state: State<AppState>, request: Request, next: Next) -> Response {
    guard(state, request, next, Access::Refunds).await
}

/// Guard for routes that need [`Access::SignedIn`].
pub async fn require_signed_in(state: State<AppState>, request: Request, next: Next) -> Response {
    guard(state, request, next, Access::SignedIn).await
}

async fn guard(State(state): State<AppState>, mut request: Request, next: Next, access: Access) -> Response {
    let api = is_api_path(request.uri().path());
    let source = client_source(&request);
    let found = if api {
        from_bearer(&state, request.headers(), &source).await
    } else {
        from_session(&state, request.headers(), &source).await
    };
    let principal = match found {
        Ok(Some(principal)) => principal,
        Ok(None) if api => return ApiError::unauthenticated().into_response(),
        Ok(None) => {
            let next_path = request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let target = format!(
                "/login?next={}",
                url::form_urlencoded::byte_serialize(next_path.as_bytes()).collect::<String>()
            );
            return Redirect::to(&target).into_response();
        }
        Err(error) if api => return ApiError::internal(&error).into_response(),
        Err(error) => return web::internal_error(&error),
    };
    if !principal.role.allows(access) {
        tracing::info!(caller = %principal.label, path = %request.uri().path(), "role does not allow this route");
        return if api { ApiError::forbidden().into_response() } else { web::forbidden() };
    }
    if !api && request.method() != Method::GET && request.method() != Method::HEAD {
        let (parts, body) = request.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, state.config.max_body_bytes).await else {
            return web::bad_request("The form is too large.");
        };
        let sent = url::form_urlencoded::parse(&bytes).find(|(k, _)| k == "csrf_token").map(|(_, v)| v.into_owned());
        let expected = principal.csrf_token.as_deref().unwrap_or_default();
        if !sent.as_deref().is_some_and(|sent| tokens::tokens_match(sent, expected)) {
            tracing::warn!(caller = %principal.label, "form rejected: CSRF token missing or wrong");
            return web::bad_request(
                "This form has expired or did not come from payhub. Go back, reload the page and try again.",
            );
        }
        request = Request::from_parts(parts, Body::from(bytes));
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

async fn from_bearer(state: &AppState, headers: &HeaderMap, source: &str) -> anyhow::Result<Option<Principal>> {
    let Some(key) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 200)
    else {
        return Ok(None);
    };
    let record = super::authenticate_key(&state.store, key).await?;
    Ok(record.map(|k| Principal {
        label: format!("key:{} {}", k.id, k.name),
        id: k.id,
        role: k.role,
        csrf_token: None,
        source: source.to_owned(),
    }))
}

async fn from_session(state: &AppState, headers: &HeaderMap, source: &str) -> anyhow::Result<Option<Principal>> {
    let Some(cookie) = cookie(headers, SESSION_COOKIE).filter(|c| !c.is_empty() && c.len() <= 200) else {
        return Ok(None);
    };
    let session = super::session(&state.store, cookie).await?;
    Ok(session.map(|s| Principal {
        label: format!("user:{} {}", s.user.id, s.user.email),
        id: s.user.id,
        role: s.user.role,
        csrf_token: Some(s.csrf_token),
        source: source.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; payhub_session=abc; payhub_session_x=zzz".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "missing"), None);
        assert!(is_api_path("/admin/api/accounts") && is_api_path("/v2/PaymentIntent") && !is_api_path("/setup/vipps"));
    }
}
