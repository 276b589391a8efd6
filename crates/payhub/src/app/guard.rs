//! The guard every non-public route passes: who is calling (API key or browser session), whether their role
//! allows the route, and, for browser forms, whether the CSRF token is right.
//!
//! JSON routes (`/admin/api/…`, `/v2/…`) authenticate with `Authorization: Bearer <key>` and answer in the
//! error envelope; pages authenticate with the session cookie, send strangers to the sign-in page, and check
//! the `csrf_token` field of every form they receive.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::is_api_path;
use crate::api::error::ApiError;
use crate::auth::http::{client_source, from_bearer, from_session};
use crate::auth::tokens;
use crate::domain::role::Access;
use crate::state::AppState;
use crate::web;

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

/// Guard for routes that need [`Access::ApiRead`].
pub async fn require_api_read(state: State<AppState>, request: Request, next: Next) -> Response {
    guard(state, request, next, Access::ApiRead).await
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
        from_bearer(&state.store, request.headers(), &source, state.jobs.queue.now()).await
    } else {
        from_session(&state.store, request.headers(), &source, state.jobs.queue.now()).await
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
