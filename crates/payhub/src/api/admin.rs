//! The admin API: merchant accounts, API keys, users and the audit log, as JSON. Admin role only.
//! Secrets are write-only: responses say whether each is set, never what it is.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::error::ApiError;
use super::error::ErrorEnvelope;
use super::json::ApiJson;
use crate::auth::{self, Principal};
use crate::domain::account::AccountInput;
use crate::domain::role::Role;
use crate::secrets::Secret;
use crate::state::AppState;
use crate::store::audit::{self, AuditEntry};
use crate::store::users::{ApiKeyRecord, UserRecord};
use crate::vipps::accounts::AccountView;

/// The admin API's accounts, keys, users and audit operations, for `/openapi.json`.
#[derive(OpenApi)]
#[openapi(paths(
    list_accounts,
    create_account,
    get_account,
    update_account,
    delete_account,
    list_keys,
    create_key,
    revoke_key,
    list_users,
    create_user,
    disable_user,
    audit_log
))]
pub struct Doc;

/// The whole admin API (`/admin/api`): accounts and access, webhooks and jobs, reconciliation and Guided
/// Matching, Giving Pages.
pub fn document() -> utoipa::openapi::OpenApi {
    Doc::openapi()
        .merge_from(super::webhooks_admin::Doc::openapi())
        .merge_from(super::guided::Doc::openapi())
        .merge_from(super::reconciliation::Doc::openapi())
        .merge_from(super::giving_pages::Doc::openapi())
}

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
#[utoipa::path(post, path = "/admin/api/accounts", tag = "Accounts and access",
    summary = "Create a merchant account",
    description = "Adds a Vipps sales unit. `name`, `merchant_serial_number`, `client_key`, `client_secret` and \
        `subscription_key` are required; the secrets are sealed and never shown again (answers say only whether \
        each is set). Audited.",
    request_body = AccountInput,
    responses(
        (status = 201, description = "The account as stored", body = AccountView),
        (status = 400, description = "Invalid or missing fields; nothing was stored", body = ErrorEnvelope),
        (status = 409, description = "An account of that name exists already", body = ErrorEnvelope)))]
pub async fn create_account(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    ApiJson(input): ApiJson<AccountInput>,
) -> Result<Response, ApiError> {
    let account = state.accounts.create(&input, &caller.actor()).await?;
    Ok((StatusCode::CREATED, Json(account)).into_response())
}

/// `GET /admin/api/accounts/{id}`
#[utoipa::path(get, path = "/admin/api/accounts/{id}", tag = "Accounts and access",
    summary = "Read a merchant account",
    params(("id" = String, Path, description = "The account's id (`acc_…`)")),
    responses(
        (status = 200, description = "The account; secrets only as whether they are set", body = AccountView),
        (status = 404, description = "No such account", body = ErrorEnvelope)))]
pub async fn get_account(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(state.accounts.get(&id).await?).into_response())
}

/// `PATCH /admin/api/accounts/{id}` (absent fields keep their value)
#[utoipa::path(patch, path = "/admin/api/accounts/{id}", tag = "Accounts and access",
    summary = "Change a merchant account",
    description = "Absent fields keep their value; an empty text clears an optional one. A secret given replaces \
        the stored one. The result is checked whole. Audited.",
    params(("id" = String, Path, description = "The account's id (`acc_…`)")),
    request_body = AccountInput,
    responses(
        (status = 200, description = "The account after the change", body = AccountView),
        (status = 400, description = "Invalid fields; nothing changed", body = ErrorEnvelope),
        (status = 404, description = "No such account", body = ErrorEnvelope),
        (status = 409, description = "Another account has that name", body = ErrorEnvelope)))]
pub async fn update_account(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<AccountInput>,
) -> Result<Response, ApiError> {
    Ok(Json(state.accounts.update(&id, &input, &caller.actor()).await?).into_response())
}

/// `DELETE /admin/api/accounts/{id}`
#[utoipa::path(delete, path = "/admin/api/accounts/{id}", tag = "Accounts and access",
    summary = "Remove a merchant account",
    description = "Refused (409) while records refer to the account. Audited.",
    params(("id" = String, Path, description = "The account's id (`acc_…`)")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such account", body = ErrorEnvelope),
        (status = 409, description = "Records refer to the account", body = ErrorEnvelope)))]
pub async fn delete_account(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state.accounts.delete(&id, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Body of `POST /admin/api/keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// A label for the key (1 to 80 characters after trimming, on one line).
    pub name: String,
    /// The key's role.
    pub role: Role,
}

/// Answer of `GET /admin/api/keys`.
#[derive(Serialize, ToSchema)]
pub struct KeyList {
    /// Every API key, revoked ones included; never the key itself.
    pub keys: Vec<ApiKeyRecord>,
}

/// Answer of `POST /admin/api/keys`: the only answer that carries the key itself.
#[derive(Serialize, ToSchema)]
pub struct KeyCreated {
    /// The key as stored.
    pub key: ApiKeyRecord,
    /// The key itself (`phk_…`), for `Authorization: Bearer`. Shown in this answer only: payhub keeps just a hash.
    pub secret: String,
}

/// `GET /admin/api/keys`
#[utoipa::path(get, path = "/admin/api/keys", tag = "Accounts and access",
    summary = "List API keys",
    responses((status = 200, description = "Every key with its prefix, never the key itself", body = KeyList)))]
pub async fn list_keys(State(state): State<AppState>) -> Result<Response, ApiError> {
    let mut conn = state.store.pool().acquire().await.map_err(|e| ApiError::internal(&e.into()))?;
    let keys = crate::store::users::list_keys(&mut conn).await.map_err(|e| ApiError::internal(&e.into()))?;
    Ok(Json(KeyList { keys }).into_response())
}

/// `POST /admin/api/keys`: the key itself is in this response only.
#[utoipa::path(post, path = "/admin/api/keys", tag = "Accounts and access",
    summary = "Create an API key",
    description = "The answer's `secret` is the key itself, shown this once: payhub stores only its hash, so a \
        lost key is revoked and replaced, never read again. Audited.",
    request_body = NewKey,
    responses(
        (status = 201, description = "The key, with its secret (the only time it is shown)", body = KeyCreated),
        (status = 400, description = "Invalid name or role", body = ErrorEnvelope)))]
pub async fn create_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    ApiJson(input): ApiJson<NewKey>,
) -> Result<Response, ApiError> {
    let (key, secret) = auth::create_api_key(&state.store, &input.name, input.role, &caller.actor()).await?;
    Ok((StatusCode::CREATED, Json(KeyCreated { key, secret })).into_response())
}

/// `DELETE /admin/api/keys/{id}`: revokes the key at once.
#[utoipa::path(delete, path = "/admin/api/keys/{id}", tag = "Accounts and access",
    summary = "Revoke an API key",
    description = "The key authenticates nothing from now on; it stays in the list with `revoked_at`. Audited.",
    params(("id" = String, Path, description = "The key's id (`key_…`)")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such key", body = ErrorEnvelope)))]
pub async fn revoke_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    auth::revoke_api_key(&state.store, &id, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Body of `POST /admin/api/users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Sign-in email (`name@domain`, at most 254 characters).
    pub email: String,
    /// Initial password (10 to 1024 characters); write-only.
    #[schema(value_type = String, format = Password, min_length = 10, max_length = 1024)]
    pub password: Secret,
    /// The user's role.
    pub role: Role,
}

/// Answer of `GET /admin/api/users`.
#[derive(Serialize, ToSchema)]
pub struct UserList {
    /// Every user, disabled ones included; never a password.
    pub users: Vec<UserRecord>,
}

/// `GET /admin/api/users`
#[utoipa::path(get, path = "/admin/api/users", tag = "Accounts and access",
    summary = "List users",
    responses((status = 200, description = "Every user of the web UI", body = UserList)))]
pub async fn list_users(State(state): State<AppState>) -> Result<Response, ApiError> {
    let mut conn = state.store.pool().acquire().await.map_err(|e| ApiError::internal(&e.into()))?;
    let users = crate::store::users::list_users(&mut conn).await.map_err(|e| ApiError::internal(&e.into()))?;
    Ok(Json(UserList { users }).into_response())
}

/// `POST /admin/api/users`
#[utoipa::path(post, path = "/admin/api/users", tag = "Accounts and access",
    summary = "Create a user",
    description = "A person who signs in to the web UI. The password is write-only. Audited.",
    request_body = NewUser,
    responses(
        (status = 201, description = "The user", body = UserRecord),
        (status = 400, description = "Invalid email or password", body = ErrorEnvelope),
        (status = 409, description = "A user with this email exists", body = ErrorEnvelope)))]
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
#[utoipa::path(delete, path = "/admin/api/users/{id}", tag = "Accounts and access",
    summary = "Disable a user",
    description = "The user can no longer sign in and their sessions end at once. A caller cannot disable \
        themselves (409). Audited.",
    params(("id" = String, Path, description = "The user's id (`usr_…`)")),
    responses(
        (status = 204, description = "Disabled"),
        (status = 404, description = "No such user", body = ErrorEnvelope),
        (status = 409, description = "The caller's own user", body = ErrorEnvelope)))]
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
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries about this record (its id).
    pub object_id: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// Answer of `GET /admin/api/audit`.
#[derive(Serialize, ToSchema)]
pub struct AuditLog {
    /// The entries, newest first.
    pub entries: Vec<AuditEntry>,
}

/// `GET /admin/api/audit`: newest first.
#[utoipa::path(get, path = "/admin/api/audit", tag = "Accounts and access",
    summary = "Read the audit log",
    params(AuditQuery),
    responses((status = 200, description = "Entries, newest first", body = AuditLog)))]
pub async fn audit_log(State(state): State<AppState>, Query(query): Query<AuditQuery>) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let mut conn = state.store.pool().acquire().await.map_err(|e| ApiError::internal(&e.into()))?;
    let entries =
        audit::recent(&mut conn, query.object_id.as_deref(), limit).await.map_err(|e| ApiError::internal(&e.into()))?;
    Ok(Json(AuditLog { entries }).into_response())
}
