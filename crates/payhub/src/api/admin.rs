//! The admin API: merchant accounts, API keys, users and the audit log, as JSON. Admin role only.
//! Secrets are write-only: responses say whether each is set, never what it is.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{OpenApi, ToSchema};

use super::error::ApiError;
use super::json::ApiJson;
use crate::auth::{self, Principal};
use crate::domain::account::AccountInput;
use crate::domain::role::Role;
use crate::secrets::Secret;
use crate::state::AppState;
use crate::store::audit;
use crate::vipps::accounts::AccountView;

/// The admin API's accounts, keys, users and audit operations, for `/openapi.json`.
#[derive(OpenApi)]
#[openapi(paths(list_accounts))]
pub struct Doc;

/// Answer of `GET /admin/api/accounts`.
#[derive(Serialize, ToSchema)]
pub struct AccountList {
    /// Every merchant account, by name.
    pub accounts: Vec<AccountView>,
}

/// `GET /admin/api/accounts`
#[utoipa::path(get, path = "/admin/api/accounts", tag = "Accounts and access",
    summary = "List merchant accounts",
    responses((status = 200, description = "Every merchant account; secrets only as whether they are set", body = AccountList)))]
pub async fn list_accounts(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(AccountList { accounts: state.accounts.list().await? }).into_response())
}

/// `POST /admin/api/accounts`
pub async fn create_account(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    ApiJson(input): ApiJson<AccountInput>,
) -> Result<Response, ApiError> {
    let account = state.accounts.create(&input, &caller.actor()).await?;
    Ok((StatusCode::CREATED, Json(account)).into_response())
}

/// `GET /admin/api/accounts/{id}`
pub async fn get_account(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(state.accounts.get(&id).await?).into_response())
}

/// `PATCH /admin/api/accounts/{id}` (absent fields keep their value)
pub async fn update_account(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<AccountInput>,
) -> Result<Response, ApiError> {
    Ok(Json(state.accounts.update(&id, &input, &caller.actor()).await?).into_response())
}

/// `DELETE /admin/api/accounts/{id}`
pub async fn delete_account(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state.accounts.delete(&id, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Body of `POST /admin/api/keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// A label for the key.
    pub name: String,
    /// The key's role.
    pub role: Role,
}

/// `GET /admin/api/keys`
pub async fn list_keys(State(state): State<AppState>) -> Result<Response, ApiError> {
    let mut conn = state.store.pool().acquire().await.map_err(|e| ApiError::internal(&e.into()))?;
    let keys = crate::store::users::list_keys(&mut conn).await.map_err(|e| ApiError::internal(&e.into()))?;
    Ok(Json(json!({ "keys": keys })).into_response())
}

/// `POST /admin/api/keys`: the key itself is in this response only.
pub async fn create_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    ApiJson(input): ApiJson<NewKey>,
) -> Result<Response, ApiError> {
    let (record, secret) = auth::create_api_key(&state.store, &input.name, input.role, &caller.actor()).await?;
    Ok((StatusCode::CREATED, Json(json!({ "key": record, "secret": secret }))).into_response())
}

/// `DELETE /admin/api/keys/{id}`: revokes the key at once.
pub async fn revoke_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    auth::revoke_api_key(&state.store, &id, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Body of `POST /admin/api/users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Sign-in email.
    pub email: String,
    /// Initial password (at least 10 characters).
    pub password: Secret,
    /// The user's role.
    pub role: Role,
}

/// `GET /admin/api/users`
pub async fn list_users(State(state): State<AppState>) -> Result<Response, ApiError> {
    let mut conn = state.store.pool().acquire().await.map_err(|e| ApiError::internal(&e.into()))?;
    let users = crate::store::users::list_users(&mut conn).await.map_err(|e| ApiError::internal(&e.into()))?;
    Ok(Json(json!({ "users": users })).into_response())
}

/// `POST /admin/api/users`
pub async fn create_user(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    ApiJson(input): ApiJson<NewUser>,
) -> Result<Response, ApiError> {
    let user =
        auth::create_user(&state.store, &input.email, input.password.expose(), input.role, &caller.actor()).await?;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

/// `DELETE /admin/api/users/{id}`: disables the user and ends their sessions.
pub async fn disable_user(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if id == caller.id {
        return Err(ApiError::new(StatusCode::CONFLICT, "409", "You cannot disable yourself.", None));
    }
    auth::disable_user(&state.store, &id, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Query of `GET /admin/api/audit`.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    /// Only entries about this record.
    pub object_id: Option<String>,
    /// At most this many (default 100, max 1000).
    pub limit: Option<i64>,
}

/// `GET /admin/api/audit`: newest first.
pub async fn audit_log(State(state): State<AppState>, Query(query): Query<AuditQuery>) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let mut conn = state.store.pool().acquire().await.map_err(|e| ApiError::internal(&e.into()))?;
    let entries =
        audit::recent(&mut conn, query.object_id.as_deref(), limit).await.map_err(|e| ApiError::internal(&e.into()))?;
    Ok(Json(json!({ "entries": entries })).into_response())
}
