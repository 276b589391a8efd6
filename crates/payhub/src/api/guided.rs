//! The admin API of Guided Matching and settlement files (finance and admin roles), snake_case JSON, errors in
//! the admin API's envelope: upload a settlement file, list the queue, read an item with its suggestions, take
//! the next one, and decide (match, create, ignore, undo), or run the rules again on every open item.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::json::ApiJson;
use crate::auth::Principal;
use crate::reconcile::file_import::{self, ImportError};
use crate::reconcile::queue::{self, CreateInput, Who};
use crate::state::AppState;
use crate::store::guided::ListFilter;

/// Largest settlement file taken (a year of a busy sales unit's rows fits many times over).
pub const MAX_FILE_BYTES: usize = 32 * 1024 * 1024;

fn now(state: &AppState) -> DateTime<Utc> {
    (state.jobs.queue.clock())()
}

fn who(caller: &Principal) -> Who<'_> {
    Who { label: &caller.label, source: &caller.source }
}

/// Query of `POST /admin/api/reconciliation/files`.
#[derive(Debug, Deserialize)]
pub struct FileQuery {
    /// The account (by name) the file belongs to.
    pub account: Option<String>,
}

/// The account named `name`, or the envelope's error naming the parameter.
async fn account_named(
    state: &AppState,
    name: Option<&str>,
) -> Result<crate::store::accounts::AccountRecord, ApiError> {
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "010",
            "Name the account: ?account=NAME.",
            Some("account".into()),
        ));
    };
    let mut conn = state.store.pool().acquire().await.map_err(|e| ApiError::internal(&e.into()))?;
    crate::store::accounts::get_by_name(&mut conn, name).await.map_err(|e| ApiError::internal(&e.into()))?.ok_or_else(
        || ApiError::new(StatusCode::NOT_FOUND, "404", format!("No account named {name}."), Some("account".into())),
    )
}

/// The envelope's answer to a refused import: where the file is wrong (400), or what must happen first (409).
pub fn import_error(error: ImportError) -> ApiError {
    match error {
        ImportError::Refused(e) => {
            let field = e.header.clone().map(|h| format!("line {}, column {} ({h})", e.line, e.column.unwrap_or(0)));
            ApiError::new(StatusCode::BAD_REQUEST, "200", format!("The file was not imported: {e}"), field)
        }
        e @ ImportError::LedgerNotDiscovered(_) => ApiError::new(StatusCode::CONFLICT, "409", e.to_string(), None),
        ImportError::Store(e) => ApiError::internal(&e.into()),
    }
}

/// `POST /admin/api/reconciliation/files?account=NAME`: the settlement CSV as the body. Imported whole or not at
/// all; `201` with the counts ("n new, m already imported").
pub async fn import_file(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Query(query): Query<FileQuery>,
    body: Body,
) -> Result<Response, ApiError> {
    let account = account_named(&state, query.account.as_deref()).await?;
    let bytes = axum::body::to_bytes(body, MAX_FILE_BYTES).await.map_err(|_| {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "413", "The file is larger than 32 MiB; split it by date.", None)
    })?;
    let imported = file_import::import_file(&state.store, &account, &bytes, &caller.label, now(&state), &|_, _| {})
        .await
        .map_err(import_error)?;
    let summary = imported.summary();
    Ok((StatusCode::CREATED, Json(json!({"import": imported, "summary": summary}))).into_response())
}

/// Query of `GET /admin/api/reconciliation/queue`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueQuery {
    /// `open` (default), `matched`, `ignored` or `all`.
    pub status: Option<String>,
    /// Only this reason (`vipps_number_payment`, `no_candidate`, …).
    pub reason: Option<String>,
    /// Only this account (by name).
    pub account: Option<String>,
    /// The page after this item id (the previous page's `next_after`).
    pub after: Option<String>,
    /// At most this many (default 50, max 500).
    pub limit: Option<i64>,
}

/// `GET /admin/api/reconciliation/queue`: oldest first, keyset-paged.
pub async fn list_queue(State(state): State<AppState>, Query(q): Query<QueueQuery>) -> Result<Response, ApiError> {
    let status = match q.status.as_deref().unwrap_or("open") {
        "all" => None,
        s @ ("open" | "matched" | "ignored") => Some(s),
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "200",
                "status must be open, matched, ignored or all.",
                Some("status".into()),
            ))
        }
    };
    let account = match q.account.as_deref() {
        Some(name) => Some(account_named(&state, Some(name)).await?.id),
        None => None,
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let filter = ListFilter {
        status,
        reason: q.reason.as_deref(),
        account_id: account.as_deref(),
        after: q.after.as_deref(),
        limit,
    };
    let items = queue::list(&state.store, &filter).await?;
    let next_after = (items.len() as i64 == limit).then(|| items.last().map(|i| i.id.clone())).flatten();
    Ok(Json(json!({"items": items, "next_after": next_after})).into_response())
}

/// `GET /admin/api/reconciliation/queue/{id}`: the item, its raw line and up to five ranked suggestions.
pub async fn get_item(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(queue::detail(&state.store, &id).await?).into_response())
}

/// Query of `POST /admin/api/reconciliation/queue/next`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NextQuery {
    /// Only items of this account (by name).
    pub account: Option<String>,
}

async fn take_next(state: &AppState, caller: &Principal, account: Option<&str>) -> Result<Option<String>, ApiError> {
    let account = match account {
        Some(name) => Some(account_named(state, Some(name)).await?.id),
        None => None,
    };
    Ok(queue::next(&state.store, &who(caller), account.as_deref(), now(state)).await?)
}

/// `POST /admin/api/reconciliation/queue/next`: leases the oldest item nobody is working on to the caller →
/// the item with suggestions, or `{"item": null}` when none is free.
pub async fn next_item(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Query(q): Query<NextQuery>,
) -> Result<Response, ApiError> {
    match take_next(&state, &caller, q.account.as_deref()).await? {
        Some(id) => Ok(Json(queue::detail(&state.store, &id).await?).into_response()),
        None => Ok(Json(json!({"item": null})).into_response()),
    }
}

/// Body of `POST …/queue/{id}/match`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchInput {
    /// The installments, in the order the amount fills them.
    pub installment_ids: Vec<String>,
}

/// `POST /admin/api/reconciliation/queue/{id}/match`
pub async fn match_item(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<MatchInput>,
) -> Result<Response, ApiError> {
    let booked = queue::match_item(&state.store, &id, &input.installment_ids, &who(&caller), now(&state)).await?;
    Ok(Json(booked).into_response())
}

/// `POST /admin/api/reconciliation/queue/{id}/create`: creates a payer and an installment for the line and
/// matches it.
pub async fn create_and_match(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<CreateInput>,
) -> Result<Response, ApiError> {
    let booked = queue::create_and_match(&state.store, &id, &input, &who(&caller), now(&state)).await?;
    Ok((StatusCode::CREATED, Json(booked)).into_response())
}

/// Body of `POST …/queue/{id}/ignore`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IgnoreInput {
    /// Why (required).
    pub remark: String,
}

/// Query of `POST …/queue/{id}/ignore`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IgnoreQuery {
    /// `true`: Ignore & Next (the answer names the next item, leased to the caller).
    pub next: Option<bool>,
}

/// `POST /admin/api/reconciliation/queue/{id}/ignore[?next=true]`
pub async fn ignore_item(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<IgnoreQuery>,
    ApiJson(input): ApiJson<IgnoreInput>,
) -> Result<Response, ApiError> {
    queue::ignore(&state.store, &id, &input.remark, &who(&caller), now(&state)).await?;
    if q.next == Some(true) {
        let next = take_next(&state, &caller, None).await?;
        return Ok(Json(json!({"ignored": id, "next_id": next})).into_response());
    }
    Ok(Json(json!({"ignored": id})).into_response())
}

/// `POST /admin/api/reconciliation/queue/{id}/undo`: undoes a person's match.
pub async fn undo_item(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    queue::undo(&state.store, &id, &who(&caller), now(&state)).await?;
    Ok(Json(queue::detail(&state.store, &id).await?).into_response())
}

/// `POST /admin/api/reconciliation/queue/retry`: the rules again on every open item.
pub async fn retry(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
) -> Result<Response, ApiError> {
    Ok(Json(queue::retry(&state.store, &who(&caller), now(&state)).await?).into_response())
}
