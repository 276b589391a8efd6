//! Pages for API keys (created keys are shown once) and users.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;

use super::{csrf_field, page, text_field};
use crate::auth::{self, Principal};
use crate::domain::role::Role;
use crate::domain::FieldError;
use crate::error::ServiceError;
use crate::state::AppState;
use crate::store::users as user_store;

fn role_select(selected: Option<Role>) -> Markup {
    html! {
        div.field {
            label for="role" { "Role" }
            select id="role" name="role" {
                @for role in Role::ALL {
                    option value=(role.as_str()) selected[selected == Some(role)] { (role.as_str()) }
                }
            }
            div.hint { "admin: everything · finance: records, refunds, reconciliation · integrator: the Payment API only" }
        }
    }
}

async fn keys_page(state: &AppState, who: &Principal, created: Option<(&str, &str)>, error: Option<&str>) -> Response {
    let keys = {
        let mut conn = match state.store.pool().acquire().await {
            Ok(conn) => conn,
            Err(error) => return super::internal_error(&error.into()),
        };
        match user_store::list_keys(&mut conn).await {
            Ok(keys) => keys,
            Err(error) => return super::internal_error(&error.into()),
        }
    };
    let mut response = page(
        "API keys",
        Some(who),
        html! {
            h1 { "API keys" }
            @if let Some((name, secret)) = created {
                div.card {
                    p { "Key " strong { (name) } " created. Copy it now: it will not be shown again." }
                    p { code.secret { (secret) } }
                }
            }
            @if !keys.is_empty() {
                table {
                    thead { tr { th { "Name" } th { "Role" } th { "Starts with" } th { "Created" } th { "Status" } th {} } }
                    tbody {
                        @for key in &keys {
                            tr {
                                td { (key.name) } td { (key.role) } td { code { (key.prefix) "…" } }
                                td { (key.created_at.format("%Y-%m-%d %H:%M")) }
                                td { @if key.revoked_at.is_some() { "revoked" } @else { "active" } }
                                td {
                                    @if key.revoked_at.is_none() {
                                        form method="post" action={ "/setup/keys/" (key.id) "/revoke" } {
                                            (csrf_field(who))
                                            button.secondary type="submit" { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form.card method="post" action="/setup/keys" style="margin-top:1rem" {
                h2 { "New key" }
                (csrf_field(who))
                (text_field("name", "Name", "text", "", Some("E.g. the donation form."), error))
                (role_select(Some(Role::Integrator)))
                button type="submit" { "Create key" }
            }
        },
    );
    if error.is_some() {
        *response.status_mut() = StatusCode::BAD_REQUEST;
    }
    response
}

/// `GET /setup/keys`
pub async fn keys(State(state): State<AppState>, Extension(who): Extension<Principal>) -> Response {
    keys_page(&state, &who, None, None).await
}

/// Fields of the new-key and new-user forms.
#[derive(Debug, Deserialize)]
pub struct NewForm {
    name: Option<String>,
    email: Option<String>,
    password: Option<String>,
    role: Option<String>,
}

// A page handler answers with a page either way; boxing it would only add noise.
#[allow(clippy::result_large_err)]
fn read(bytes: &Bytes) -> Result<(NewForm, Role), Response> {
    let form = serde_urlencoded::from_bytes::<NewForm>(bytes)
        .map_err(|_| super::bad_request("The form could not be read."))?;
    let role = form.role.as_deref().unwrap_or_default().parse::<Role>().map_err(|e| super::bad_request(&e))?;
    Ok((form, role))
}

/// `POST /setup/keys`: creates a key and shows it once.
pub async fn create_key(State(state): State<AppState>, Extension(who): Extension<Principal>, bytes: Bytes) -> Response {
    let (form, role) = match read(&bytes) {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let name = form.name.unwrap_or_default();
    match auth::create_api_key(&state.store, &name, role, &who.actor()).await {
        Ok((record, secret)) => keys_page(&state, &who, Some((&record.name, &secret)), None).await,
        Err(ServiceError::Invalid(errors)) => {
            keys_page(&state, &who, None, errors.first().map(|e| e.message.as_str())).await
        }
        Err(error) => super::internal_error(&error.into()),
    }
}

/// `POST /setup/keys/{id}/revoke`
pub async fn revoke_key(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    match auth::revoke_api_key(&state.store, &id, &who.actor()).await {
        Ok(()) => Redirect::to("/setup/keys").into_response(),
        Err(ServiceError::NotFound(_)) => super::not_found(),
        Err(error) => super::internal_error(&error.into()),
    }
}

async fn users_page(state: &AppState, who: &Principal, email: &str, errors: &[FieldError]) -> Response {
    let users = {
        let mut conn = match state.store.pool().acquire().await {
            Ok(conn) => conn,
            Err(error) => return super::internal_error(&error.into()),
        };
        match user_store::list_users(&mut conn).await {
            Ok(users) => users,
            Err(error) => return super::internal_error(&error.into()),
        }
    };
    let error_for = |f: &str| errors.iter().find(|e| e.field == f).map(|e| e.message.as_str());
    let mut response = page(
        "Users",
        Some(who),
        html! {
            h1 { "Users" }
            table {
                thead { tr { th { "Email" } th { "Role" } th { "Created" } th { "Status" } } }
                tbody {
                    @for user in &users {
                        tr { td { (user.email) } td { (user.role) } td { (user.created_at.format("%Y-%m-%d")) }
                             td { @if user.disabled_at.is_some() { "disabled" } @else { "active" } } }
                    }
                }
            }
            form.card method="post" action="/setup/users" style="margin-top:1rem" {
                h2 { "New user" }
                (csrf_field(who))
                (text_field("email", "Email", "email", email, None, error_for("email")))
                (text_field("password", "Password", "password", "", Some("At least 10 characters."), error_for("password")))
                (role_select(Some(Role::Finance)))
                button type="submit" { "Create user" }
            }
        },
    );
    if !errors.is_empty() {
        *response.status_mut() = StatusCode::BAD_REQUEST;
    }
    response
}

/// `GET /setup/users`
pub async fn users(State(state): State<AppState>, Extension(who): Extension<Principal>) -> Response {
    users_page(&state, &who, "", &[]).await
}

/// `POST /setup/users`
pub async fn create_user(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    bytes: Bytes,
) -> Response {
    let (form, role) = match read(&bytes) {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let email = form.email.unwrap_or_default();
    match auth::create_user(&state.store, &email, form.password.as_deref().unwrap_or_default(), role, &who.actor())
        .await
    {
        Ok(_) => Redirect::to("/setup/users").into_response(),
        Err(ServiceError::Invalid(errors) | ServiceError::Conflict(errors)) => {
            users_page(&state, &who, &email, &errors).await
        }
        Err(error) => super::internal_error(&error.into()),
    }
}
