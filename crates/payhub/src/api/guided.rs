//! The admin API of Guided Matching and settlement files (finance and admin roles), snake_case JSON, errors in
//! the admin API's envelope: upload a settlement file, list the queue, read an item with its suggestions, take
//! the next one, and decide (match, create, ignore, undo), or run the rules again on every open item.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::error::{ApiError, ErrorEnvelope};
use super::json::ApiJson;
use crate::auth::Principal;
use crate::reconcile::file_import::{self, FileImported, ImportError};
use crate::reconcile::queue::{self, Booked, CreateInput, ItemDetail, Retried, Who};
use crate::state::AppState;
use crate::store::guided::ListFilter;
use crate::store::match_queue::QueueItem;

/// The admin API's settlement file import and Guided Matching queue, for `/openapi.json`.
#[derive(OpenApi)]
#[openapi(paths(
    import_file,
    list_queue,
    next_item,
    retry,
    get_item,
    match_item,
    create_and_match,
    ignore_item,
    undo_item
))]
pub struct Doc;

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

/// Answer of `POST /admin/api/reconciliation/files`.
#[derive(Serialize, ToSchema)]
pub struct FileImportAnswer {
    /// What the import did.
    pub import: FileImported,
    /// The counts in words: "n new, m already imported".
    pub summary: String,
}

/// `POST /admin/api/reconciliation/files?account=NAME`: the settlement CSV as the body. Imported whole or not at
/// all; `201` with the counts ("n new, m already imported").
#[utoipa::path(post, path = "/admin/api/reconciliation/files", tag = "Reconciliation",
    summary = "Import a settlement file",
    description = "The portal's settlement CSV (the Details export or the older semicolon export) as the body, at \
        most 32 MiB. Imported whole or not at all: a malformed file changes nothing and the error names its line \
        and column. Importing the same rows again is harmless: they count as already imported. New \
        Vipps-number payments go to the Guided Matching queue.",
    params(("account" = String, Query, description = "The merchant account (by name) the file belongs to")),
    request_body(content = String, content_type = "text/csv", description = "The settlement file as exported from the portal"),
    responses(
        (status = 201, description = "Imported; the counts", body = FileImportAnswer),
        (status = 400, description = "No account named, or the file is malformed (nothing was written)", body = ErrorEnvelope),
        (status = 404, description = "No account of that name", body = ErrorEnvelope),
        (status = 409, description = "The file names a ledger the Report API import has not discovered yet", body = ErrorEnvelope),
        (status = 413, description = "The file is larger than 32 MiB", body = ErrorEnvelope)))]
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
    Ok((StatusCode::CREATED, Json(FileImportAnswer { import: imported, summary })).into_response())
}

/// Query of `GET /admin/api/reconciliation/queue`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct QueueQuery {
    /// `open` (default), `matched`, `ignored` or `all`.
    #[param(pattern = "^(open|matched|ignored|all)$")]
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

/// Answer of `GET /admin/api/reconciliation/queue`.
#[derive(Serialize, ToSchema)]
pub struct QueuePage {
    /// The items, oldest first.
    pub items: Vec<QueueItem>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub next_after: Option<String>,
}

/// `GET /admin/api/reconciliation/queue`: oldest first, keyset-paged.
#[utoipa::path(get, path = "/admin/api/reconciliation/queue", tag = "Reconciliation",
    summary = "List the Guided Matching queue",
    description = "Settlement lines the matching rules could not book, oldest first, a page at a time.",
    params(QueueQuery),
    responses(
        (status = 200, description = "One page of items", body = QueuePage),
        (status = 400, description = "An unknown status or parameter", body = ErrorEnvelope),
        (status = 404, description = "No account of that name", body = ErrorEnvelope)))]
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
    Ok(Json(QueuePage { items, next_after }).into_response())
}

/// `GET /admin/api/reconciliation/queue/{id}`: the item, its raw line and up to five ranked suggestions.
#[utoipa::path(get, path = "/admin/api/reconciliation/queue/{id}", tag = "Reconciliation",
    summary = "Read a queue item",
    params(("id" = String, Path, description = "The item's id (`mq_…`)")),
    responses(
        (status = 200, description = "The item, its line as received and up to five ranked suggestions", body = ItemDetail),
        (status = 404, description = "No such item", body = ErrorEnvelope)))]
pub async fn get_item(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(queue::detail(&state.store, &id).await?).into_response())
}

/// Query of `POST /admin/api/reconciliation/queue/next`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
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

/// JSON `null`, in an answer that says "nothing".
#[derive(Debug, Clone, Copy)]
pub struct Null;

impl Serialize for Null {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_none()
    }
}

impl utoipa::PartialSchema for Null {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::Null).into()
    }
}

impl ToSchema for Null {}

/// Answer of `POST /admin/api/reconciliation/queue/next` when no item is free.
#[derive(Serialize, ToSchema)]
pub struct NoneFree {
    /// Always `null`: every open item is decided or leased to someone else.
    pub item: Null,
}

/// Answer of `POST /admin/api/reconciliation/queue/next`.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum NextAnswer {
    /// The item now leased to the caller, with its suggestions.
    Taken(Box<ItemDetail>),
    /// No item is free.
    NoneFree(NoneFree),
}

/// `POST /admin/api/reconciliation/queue/next`: leases the oldest item nobody is working on to the caller →
/// the item with suggestions, or `{"item": null}` when none is free.
#[utoipa::path(post, path = "/admin/api/reconciliation/queue/next", tag = "Reconciliation",
    summary = "Take the next item",
    description = "Leases the oldest open item nobody is working on to the caller for ten minutes (others' Next \
        passes it by), and answers it with its suggestions; `{\"item\": null}` when none is free. No body.",
    params(NextQuery),
    responses(
        (status = 200, description = "The item leased to the caller, or `{\"item\": null}`", body = NextAnswer),
        (status = 404, description = "No account of that name", body = ErrorEnvelope)))]
pub async fn next_item(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Query(q): Query<NextQuery>,
) -> Result<Response, ApiError> {
    match take_next(&state, &caller, q.account.as_deref()).await? {
        Some(id) => Ok(Json(NextAnswer::Taken(Box::new(queue::detail(&state.store, &id).await?))).into_response()),
        None => Ok(Json(NextAnswer::NoneFree(NoneFree { item: Null })).into_response()),
    }
}

/// Body of `POST …/queue/{id}/match`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchInput {
    /// The installments, in the order the amount fills them.
    pub installment_ids: Vec<String>,
}

/// `POST /admin/api/reconciliation/queue/{id}/match`
#[utoipa::path(post, path = "/admin/api/reconciliation/queue/{id}/match", tag = "Reconciliation",
    summary = "Match an item to installments",
    description = "Books the line's amount on the installments named, in order; what the amount leaves over \
        follows the account's `remainder_handling`. Each installment gets a Payment from the line's Inbound \
        Report. Audited; undone with `…/undo`.",
    params(("id" = String, Path, description = "The item's id (`mq_…`)")),
    request_body = MatchInput,
    responses(
        (status = 200, description = "What was booked", body = Booked),
        (status = 400, description = "No installments, or one that cannot take money", body = ErrorEnvelope),
        (status = 404, description = "No such item or installment", body = ErrorEnvelope),
        (status = 409, description = "The item is decided already, or leased to someone else", body = ErrorEnvelope)))]
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
#[utoipa::path(post, path = "/admin/api/reconciliation/queue/{id}/create", tag = "Reconciliation",
    summary = "Create a payer and installment for an item, and match it",
    description = "For a gift nobody asked for: a payer (or the one with the same email) and an installment of \
        the line's amount due on its ledger date, then the match, in one transaction. Audited.",
    params(("id" = String, Path, description = "The item's id (`mq_…`)")),
    request_body = CreateInput,
    responses(
        (status = 201, description = "Created and booked", body = Booked),
        (status = 400, description = "Invalid fields", body = ErrorEnvelope),
        (status = 404, description = "No such item", body = ErrorEnvelope),
        (status = 409, description = "The item is decided already, or leased to someone else", body = ErrorEnvelope)))]
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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IgnoreInput {
    /// Why (required).
    pub remark: String,
}

/// Query of `POST …/queue/{id}/ignore`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IgnoreQuery {
    /// `true`: Ignore & Next (the answer names the next item, leased to the caller).
    pub next: Option<bool>,
}

/// Answer of `POST …/queue/{id}/ignore`.
#[derive(Serialize, ToSchema)]
pub struct Ignored {
    /// The item ignored.
    pub ignored: String,
    /// With `next=true` only: the next item, now leased to the caller (`null` when none is free).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub next_id: Option<Option<String>>,
}

/// `POST /admin/api/reconciliation/queue/{id}/ignore[?next=true]`
#[utoipa::path(post, path = "/admin/api/reconciliation/queue/{id}/ignore", tag = "Reconciliation",
    summary = "Ignore an item",
    description = "The line stays unbooked, with the remark saying why. With `next=true` the answer also names \
        the next free item, leased to the caller (Ignore & Next). Audited.",
    params(("id" = String, Path, description = "The item's id (`mq_…`)"), IgnoreQuery),
    request_body = IgnoreInput,
    responses(
        (status = 200, description = "Ignored", body = Ignored),
        (status = 400, description = "No remark", body = ErrorEnvelope),
        (status = 404, description = "No such item", body = ErrorEnvelope),
        (status = 409, description = "The item is decided already, or leased to someone else", body = ErrorEnvelope)))]
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
        return Ok(Json(Ignored { ignored: id, next_id: Some(next) }).into_response());
    }
    Ok(Json(Ignored { ignored: id, next_id: None }).into_response())
}

/// `POST /admin/api/reconciliation/queue/{id}/undo`: undoes a person's match.
#[utoipa::path(post, path = "/admin/api/reconciliation/queue/{id}/undo", tag = "Reconciliation",
    summary = "Undo a decision",
    description = "Takes back a person's match (its Payments and bookings) or ignore; the item is open again. \
        The rules' own bookings are not undone here. No body. Audited.",
    params(("id" = String, Path, description = "The item's id (`mq_…`)")),
    responses(
        (status = 200, description = "The item, open again, with its suggestions", body = ItemDetail),
        (status = 404, description = "No such item", body = ErrorEnvelope),
        (status = 409, description = "Nothing a person decided to undo", body = ErrorEnvelope)))]
pub async fn undo_item(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    queue::undo(&state.store, &id, &who(&caller), now(&state)).await?;
    Ok(Json(queue::detail(&state.store, &id).await?).into_response())
}

/// `POST /admin/api/reconciliation/queue/retry`: the rules again on every open item.
#[utoipa::path(post, path = "/admin/api/reconciliation/queue/retry", tag = "Reconciliation",
    summary = "Run the rules again on every open item",
    description = "For after new installments exist: every open item whose reference or message names exactly \
        one open installment, with exactly the line's amount open, is booked on it. No body.",
    responses((status = 200, description = "How many were tried and matched", body = Retried)))]
pub async fn retry(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
) -> Result<Response, ApiError> {
    Ok(Json(queue::retry(&state.store, &who(&caller), now(&state)).await?).into_response())
}
