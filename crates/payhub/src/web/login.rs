//! Sign-in, sign-out and the one-time first-run page. Before a session exists, forms are protected by a
//! double-submit token: a random value in an HttpOnly cookie that the form must repeat.

use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use maud::html;
use serde::Deserialize;

use super::{page, text_field};
use crate::auth::http::{client_source, cookie, SESSION_COOKIE};
use crate::auth::{self, tokens, Principal, SignIn, SESSION_HOURS};
use crate::error::ServiceError;
use crate::state::AppState;

const FORM_COOKIE: &str = "payhub_form";

fn set_cookie(state: &AppState, name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if state.config.public_url.scheme() == "https" { "; Secure" } else { "" };
    let text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("payhub_invalid=1"))
}

/// Only same-site paths are followed after sign-in.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/",
    }
}

/// Query of the sign-in page.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// Fields of the sign-in form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    email: Option<String>,
    password: Option<String>,
    next: Option<String>,
    form_token: Option<String>,
}

fn login_page(state: &AppState, next: &str, email: &str, error: Option<&str>, status: StatusCode) -> Response {
    let token = tokens::new_token("");
    let body = html! {
        div.card style="max-width:480px;margin:3rem auto" {
            h1 { "Sign in" }
            @if let Some(error) = error { div.alert role="alert" { (error) } }
            form method="post" action="/login" {
                input type="hidden" name="form_token" value=(token);
                input type="hidden" name="next" value=(next);
                (text_field("email", "Email", "email", email, None, None))
                (text_field("password", "Password", "password", "", None, None))
                button type="submit" { "Sign in" }
            }
        }
    };
    let mut response = page("Sign in", None, body);
    *response.status_mut() = status;
    response.headers_mut().append(header::SET_COOKIE, set_cookie(state, FORM_COOKIE, &token, 3600));
    response
}

fn form_token_ok(headers: &HeaderMap, sent: Option<&str>) -> bool {
    match (cookie(headers, FORM_COOKIE), sent) {
        (Some(expected), Some(sent)) if !expected.is_empty() => tokens::tokens_match(sent, expected),
        _ => false,
    }
}

/// `GET /login`
pub async fn form(State(state): State<AppState>, Query(query): Query<LoginQuery>) -> Response {
    login_page(&state, safe_next(query.next.as_deref()), "", None, StatusCode::OK)
}

/// `POST /login`
pub async fn submit(State(state): State<AppState>, request: Request) -> Response {
    let source = client_source(&request);
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 16 * 1024).await else {
        return super::bad_request("The form is too large.");
    };
    let Ok(form) = serde_urlencoded::from_bytes::<LoginForm>(&bytes) else {
        return super::bad_request("The form could not be read.");
    };
    let next = safe_next(form.next.as_deref()).to_owned();
    let email = form.email.unwrap_or_default();
    if !form_token_ok(&parts.headers, form.form_token.as_deref()) {
        return login_page(
            &state,
            &next,
            &email,
            Some("The form expired. Please sign in again."),
            StatusCode::BAD_REQUEST,
        );
    }
    match auth::sign_in(
        &state.store,
        &email,
        form.password.as_deref().unwrap_or_default(),
        &source,
        state.jobs.queue.now(),
    )
    .await
    {
        Ok(SignIn::Session(session)) => {
            let mut response = Redirect::to(&next).into_response();
            response
                .headers_mut()
                .append(header::SET_COOKIE, set_cookie(&state, SESSION_COOKIE, &session, SESSION_HOURS * 3600));
            response.headers_mut().append(header::SET_COOKIE, set_cookie(&state, FORM_COOKIE, "", 0));
            response
        }
        Ok(SignIn::Refused) => {
            login_page(&state, &next, &email, Some("Email or password is wrong."), StatusCode::UNAUTHORIZED)
        }
        Ok(SignIn::Locked(minutes)) => login_page(
            &state,
            &next,
            &email,
            Some(&format!("Too many failed sign-ins. Wait {minutes} minutes and try again.")),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Err(error) => super::internal_error(&error.into()),
    }
}

/// `POST /logout`
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Extension(_who): Extension<Principal>,
) -> Response {
    if let Some(session) = cookie(&headers, SESSION_COOKIE) {
        if let Err(error) = auth::sign_out(&state.store, session).await {
            return super::internal_error(&error.into());
        }
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(header::SET_COOKIE, set_cookie(&state, SESSION_COOKIE, "", 0));
    response
}

/// Query and form of the first-run page.
#[derive(Debug, Deserialize)]
pub struct FirstRunForm {
    token: Option<String>,
    email: Option<String>,
    password: Option<String>,
    form_token: Option<String>,
}

fn first_run_page(state: &AppState, token: &str, email: &str, errors: &[crate::domain::FieldError]) -> Response {
    let form_token = tokens::new_token("");
    let error_for = |f: &str| errors.iter().find(|e| e.field == f).map(|e| e.message.as_str());
    let body = html! {
        div.card style="max-width:520px;margin:3rem auto" {
            h1 { "Welcome to payhub" }
            p { "Create the first admin user. This link works once." }
            form method="post" action="/first-run" {
                input type="hidden" name="form_token" value=(form_token);
                input type="hidden" name="token" value=(token);
                (text_field("email", "Email", "email", email, None, error_for("email")))
                (text_field("password", "Password", "password", "", Some("At least 10 characters."), error_for("password")))
                button type="submit" { "Create admin" }
            }
        }
    };
    let mut response = page("First run", None, body);
    if !errors.is_empty() {
        *response.status_mut() = StatusCode::BAD_REQUEST;
    }
    response.headers_mut().append(header::SET_COOKIE, set_cookie(state, FORM_COOKIE, &form_token, 3600));
    response
}

/// `GET /first-run?token=…`
pub async fn first_run_form(State(state): State<AppState>, Query(form): Query<FirstRunForm>) -> Response {
    let token = form.token.unwrap_or_default();
    match auth::setup_link_is_live(&state.store, &token).await {
        Ok(true) => first_run_page(&state, &token, "", &[]),
        Ok(false) => super::message_page(
            StatusCode::NOT_FOUND,
            "Link not valid",
            "This setup link was used already or has expired.",
        ),
        Err(error) => super::internal_error(&error.into()),
    }
}

/// `POST /first-run`
pub async fn first_run_submit(State(state): State<AppState>, request: Request) -> Response {
    let source = client_source(&request);
    let (parts, body) = request.into_parts();
    let bytes: Bytes = match axum::body::to_bytes(body, 16 * 1024).await {
        Ok(bytes) => bytes,
        Err(_) => return super::bad_request("The form is too large."),
    };
    let Ok(form) = serde_urlencoded::from_bytes::<FirstRunForm>(&bytes) else {
        return super::bad_request("The form could not be read.");
    };
    let token = form.token.unwrap_or_default();
    let email = form.email.unwrap_or_default();
    let password = form.password.unwrap_or_default();
    if !form_token_ok(&parts.headers, form.form_token.as_deref()) {
        return super::bad_request("The form expired. Open the setup link again.");
    }
    let at = state.jobs.queue.now();
    match auth::create_first_admin(&state.store, &token, &email, &password, &source, at).await {
        Ok(_) => match auth::sign_in(&state.store, &email, &password, &source, at).await {
            Ok(SignIn::Session(session)) => {
                let mut response = Redirect::to("/setup").into_response();
                response
                    .headers_mut()
                    .append(header::SET_COOKIE, set_cookie(&state, SESSION_COOKIE, &session, SESSION_HOURS * 3600));
                response
            }
            Ok(SignIn::Refused | SignIn::Locked(_)) => Redirect::to("/login").into_response(),
            Err(error) => super::internal_error(&error.into()),
        },
        Err(ServiceError::Invalid(errors)) => first_run_page(&state, &token, &email, &errors),
        Err(ServiceError::NotFound(_)) => super::message_page(
            StatusCode::NOT_FOUND,
            "Link not valid",
            "This setup link was used already or has expired.",
        ),
        Err(error) => super::internal_error(&error.into()),
    }
}
