//! Guided Matching pages (finance and admin): the queue with **Next** and **Retry unmatched**, an item with its
//! raw line, ranked suggestions and the actions (match, create, ignore, Ignore & Next, undo), and the upload of
//! a settlement file. Server-rendered, one column on a phone, every form with the session's CSRF token.
//!
//! A browser form cannot carry a file without multipart encoding, which the CSRF check does not read, so the
//! upload page takes the file's text pasted into a field (up to the request size limit); larger files go
//! through `POST /admin/api/reconciliation/files` or `payhub reconcile import-file`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;

use super::{csrf_field, page, text_field};
use crate::auth::Principal;
use crate::error::ServiceError;
use crate::reconcile::file_import;
use crate::reconcile::queue::{self, CreateInput, ItemDetail, Who};
use crate::state::AppState;
use crate::store::guided::ListFilter;

fn now(state: &AppState) -> DateTime<Utc> {
    (state.jobs.queue.clock())()
}

fn who(p: &Principal) -> Who<'_> {
    Who { label: &p.label, source: &p.source }
}

fn kroner(ore: i64) -> String {
    let sign = if ore < 0 { "-" } else { "" };
    format!("{sign}{},{:02}", ore.unsigned_abs() / 100, ore.unsigned_abs() % 100)
}

fn form_fields(body: &Bytes) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().filter(|(k, _)| k != "csrf_token").collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A refused action shown on the page it came from: field problems and conflicts in words, anything else as
/// the error page.
// A page handler answers with a page either way; boxing it would only add noise.
#[allow(clippy::result_large_err)]
fn refused(error: ServiceError) -> Result<String, Response> {
    match error {
        ServiceError::Invalid(errors) | ServiceError::Conflict(errors) => {
            Ok(errors.into_iter().map(|e| e.message).collect::<Vec<_>>().join(" "))
        }
        ServiceError::NotFound(_) => Err(super::not_found()),
        ServiceError::Internal(cause) => Err(super::internal_error(&cause)),
    }
}

fn fail(error: ServiceError) -> Response {
    match refused(error) {
        Ok(message) => super::bad_request(&message),
        Err(page) => page,
    }
}

/// Query of the queue page.
#[derive(Debug, Deserialize)]
pub struct QueuePageQuery {
    /// `open` (default), `matched`, `ignored`, `all`.
    pub status: Option<String>,
    /// The page after this item.
    pub after: Option<String>,
    /// A note to show (after Retry or an empty Next).
    pub note: Option<String>,
}

/// `GET /reconciliation/queue`
pub async fn queue_page(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<QueuePageQuery>,
) -> Response {
    let status = match q.status.as_deref() {
        Some("all") => None,
        Some(s @ ("matched" | "ignored")) => Some(s),
        _ => Some("open"),
    };
    let filter = ListFilter { status, reason: None, account_id: None, after: q.after.as_deref(), limit: 50 };
    let items = match queue::list(&state.store, &filter).await {
        Ok(items) => items,
        Err(e) => return fail(e),
    };
    let next_after = (items.len() == 50).then(|| items.last().map(|i| i.id.clone())).flatten();
    page(
        "Guided Matching",
        Some(&who),
        html! {
            h1 { "Guided Matching" }
            @if let Some(note) = &q.note { div.flash role="status" { (note) } }
            div.actions style="flex-wrap:wrap;margin-bottom:1rem" {
                form method="post" action="/reconciliation/queue/next" { (csrf_field(&who)) button type="submit" { "Next" } }
                form method="post" action="/reconciliation/queue/retry" { (csrf_field(&who)) button.secondary type="submit" { "Retry unmatched" } }
                a.button.secondary href="/reconciliation/files" { "Upload a settlement file" }
            }
            p { "Show: "
                a href="/reconciliation/queue" { "open" } " · "
                a href="/reconciliation/queue?status=matched" { "matched" } " · "
                a href="/reconciliation/queue?status=ignored" { "ignored" } " · "
                a href="/reconciliation/queue?status=all" { "all" } }
            @if items.is_empty() { div.card { p { "Nothing here." } } }
            @else {
                div style="overflow-x:auto" {
                    table {
                        thead { tr { th { "Date" } th { "Amount" } th { "Line" } th { "Why" } th { "Status" } } }
                        tbody {
                            @for item in &items {
                                tr {
                                    td { (item.entry.ledger_date) }
                                    td style="white-space:nowrap" { (kroner(item.entry.amount_ore)) " " (item.entry.currency) }
                                    td {
                                        a href={ "/reconciliation/queue/" (item.id) } {
                                            (item.entry.payer_name.as_deref().unwrap_or(&item.entry.psp_reference))
                                        }
                                        @if let Some(m) = &item.entry.payer_message { div.hint { (m) } }
                                    }
                                    td { span.badge { (item.reason) } }
                                    td { (item.status)
                                        @if let (Some(by), Some(until)) = (&item.worked_by, item.lease_until) {
                                            @if item.status == "open" && until > now(&state) { div.hint { "taken by " (by) } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                @if let Some(after) = next_after {
                    p { a href={ "/reconciliation/queue?after=" (after) "&status=" (status.unwrap_or("all")) } { "Older →" } }
                }
            }
        },
    )
}

/// `POST /reconciliation/queue/next`: to the item leased to the caller, or back to the queue when none is free.
pub async fn next(State(state): State<AppState>, Extension(p): Extension<Principal>) -> Response {
    match queue::next(&state.store, &who(&p), None, now(&state)).await {
        Ok(Some(id)) => Redirect::to(&format!("/reconciliation/queue/{id}")).into_response(),
        Ok(None) => Redirect::to("/reconciliation/queue?note=Every+open+item+is+taken+or+decided.").into_response(),
        Err(e) => fail(e),
    }
}

/// `POST /reconciliation/queue/retry`
pub async fn retry(State(state): State<AppState>, Extension(p): Extension<Principal>) -> Response {
    match queue::retry(&state.store, &who(&p), now(&state)).await {
        Ok(r) => {
            let note = format!("The rules looked at {} open items and booked {}.", r.tried, r.matched);
            let note: String = url::form_urlencoded::byte_serialize(note.as_bytes()).collect();
            Redirect::to(&format!("/reconciliation/queue?note={note}")).into_response()
        }
        Err(e) => fail(e),
    }
}

fn item_page(who: &Principal, d: &ItemDetail, message: Option<&str>) -> Response {
    let item = &d.item;
    let e = &item.entry;
    let open = item.status == "open";
    let raw: Vec<(String, String)> = d.raw["raw"]
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
        .unwrap_or_else(|| {
            d.raw.as_object().map(|o| o.iter().map(|(k, v)| (k.clone(), v.to_string())).collect()).unwrap_or_default()
        });
    let action = |what: &str| format!("/reconciliation/queue/{}/{what}", item.id);
    page(
        "Queue item",
        Some(who),
        html! {
            p { a href="/reconciliation/queue" { "← Guided Matching" } }
            h1 { (kroner(e.amount_ore)) " " (e.currency) " · " (e.ledger_date) }
            @if let Some(m) = message { div.alert role="alert" { (m) } }
            div.card {
                p { strong { (item.status) } " · " (d.reason_text) }
                @if let Some(by) = &item.decided_by { p.hint { "Decided by " (by) @if let Some(r) = &item.remark { ": " (r) } } }
                @if let Some(by) = &item.worked_by { p.hint { "Last worked on by " (by) } }
                h2 { "The line as received" }
                div style="overflow-x:auto" { table { tbody {
                    @for (k, v) in &raw { @if !v.is_empty() { tr { th { (k) } td style="white-space:pre-wrap" { (v) } } } }
                } } }
            }
            @if open {
                div.card {
                    h2 { "Suggestions" }
                    @if d.suggestions.is_empty() { p { "No installment is open for this line. Create one below." } }
                    @for s in &d.suggestions {
                        form method="post" action=(action("match")) style="border-bottom:1px solid var(--line);padding:.5rem 0" {
                            (csrf_field(who))
                            input type="hidden" name="installment_ids" value=(s.suggestion.installment_id);
                            p { strong { (s.payer_name) } " · " (s.payment_reference) " · " (kroner(s.amount_open_ore)) " open · due " (s.due_date) }
                            p.hint { (s.suggestion.why.join("; ")) }
                            button type="submit" { "Match" }
                        }
                    }
                    form method="post" action=(action("match")) style="margin-top:1rem" {
                        (csrf_field(who))
                        (text_field("installment_ids", "Match to installments", "text", "", Some("One or more ids (ins_…), separated by spaces or commas, in the order the amount fills them."), None))
                        button.secondary type="submit" { "Match" }
                    }
                }
                form.card method="post" action=(action("create")) {
                    h2 { "Create payer and installment, and match" }
                    (csrf_field(who))
                    (text_field("first_name", "First name", "text", "", Some("Blank: from the line's name."), None))
                    (text_field("last_name", "Last name", "text", "", None, None))
                    (text_field("email", "Email", "email", "", Some("Optional; an existing payer with this email is used."), None))
                    (text_field("product", "What it was for", "text", "", None, None))
                    button type="submit" { "Create and match" }
                }
                form.card method="post" action=(action("ignore")) {
                    h2 { "Ignore" }
                    (csrf_field(who))
                    (text_field("remark", "Why", "text", "", Some("Required."), None))
                    div.actions {
                        button.secondary type="submit" name="then" value="stay" { "Ignore" }
                        button type="submit" name="then" value="next" { "Ignore & Next" }
                    }
                }
            }
            @if item.status == "matched" {
                form.card method="post" action=(action("undo")) {
                    (csrf_field(who))
                    p { "Booked on " (e.installment_id.as_deref().unwrap_or("?")) "." }
                    button.danger type="submit" { "Undo this match" }
                }
            }
        },
    )
}

async fn show(state: &AppState, who: &Principal, id: &str, message: Option<&str>) -> Response {
    match queue::detail(&state.store, id).await {
        Ok(d) => item_page(who, &d, message),
        Err(e) => fail(e),
    }
}

/// `GET /reconciliation/queue/{id}`
pub async fn item(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    show(&state, &who, &id, None).await
}

/// After an action: back to the item, with the refusal in words when there was one.
async fn after(state: &AppState, who: &Principal, id: &str, outcome: Result<(), ServiceError>) -> Response {
    match outcome {
        Ok(()) => Redirect::to(&format!("/reconciliation/queue/{id}")).into_response(),
        Err(e) => match refused(e) {
            Ok(message) => show(state, who, id, Some(&message)).await,
            Err(page) => page,
        },
    }
}

/// `POST /reconciliation/queue/{id}/match`
pub async fn match_item(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let fields = form_fields(&body);
    let ids: Vec<String> = fields
        .iter()
        .filter(|(k, _)| k == "installment_ids")
        .flat_map(|(_, v)| {
            v.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>()
        })
        .collect();
    let outcome = queue::match_item(&state.store, &id, &ids, &who(&p), now(&state)).await.map(|_| ());
    after(&state, &p, &id, outcome).await
}

/// `POST /reconciliation/queue/{id}/create`
pub async fn create(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let fields = form_fields(&body);
    let text = |name: &str| field(&fields, name).map(str::to_owned).filter(|v| !v.trim().is_empty());
    let input = CreateInput {
        first_name: text("first_name"),
        last_name: text("last_name"),
        email: text("email"),
        product: text("product"),
    };
    let outcome = queue::create_and_match(&state.store, &id, &input, &who(&p), now(&state)).await.map(|_| ());
    after(&state, &p, &id, outcome).await
}

/// `POST /reconciliation/queue/{id}/ignore` (`then=next`: Ignore & Next)
pub async fn ignore(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let fields = form_fields(&body);
    let remark = field(&fields, "remark").unwrap_or_default();
    match queue::ignore(&state.store, &id, remark, &who(&p), now(&state)).await {
        Ok(()) if field(&fields, "then") == Some("next") => next(State(state), Extension(p)).await,
        outcome => after(&state, &p, &id, outcome).await,
    }
}

/// `POST /reconciliation/queue/{id}/undo`
pub async fn undo(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    let outcome = queue::undo(&state.store, &id, &who(&p), now(&state)).await;
    after(&state, &p, &id, outcome).await
}

fn upload_form(who: &Principal, accounts: &[String], message: Option<Markup>) -> Response {
    page(
        "Upload a settlement file",
        Some(who),
        html! {
            p { a href="/reconciliation/queue" { "← Guided Matching" } }
            h1 { "Upload a settlement file" }
            @if let Some(m) = message { (m) }
            form.card method="post" action="/reconciliation/files" {
                (csrf_field(who))
                div.field {
                    label for="account" { "Account" }
                    select id="account" name="account" { @for a in accounts { option value=(a) { (a) } } }
                }
                div.field {
                    label for="csv" { "The settlement report (CSV)" }
                    textarea id="csv" name="csv" rows="10" style="width:100%;font-family:monospace" {}
                    div.hint { "Open the report downloaded from the Vipps MobilePay portal (Details, CSV) in a text editor and paste it here. Larger files: payhub reconcile import-file." }
                }
                button type="submit" { "Import" }
            }
        },
    )
}

async fn account_names(state: &AppState) -> Vec<String> {
    state.accounts.list().await.map(|a| a.into_iter().map(|a| a.name).collect()).unwrap_or_default()
}

/// `GET /reconciliation/files`
pub async fn upload_page(State(state): State<AppState>, Extension(who): Extension<Principal>) -> Response {
    upload_form(&who, &account_names(&state).await, None)
}

/// `POST /reconciliation/files`: imports the pasted file whole, or shows why not (nothing written).
pub async fn upload(State(state): State<AppState>, Extension(p): Extension<Principal>, body: Bytes) -> Response {
    let fields = form_fields(&body);
    let accounts = account_names(&state).await;
    let name = field(&fields, "account").unwrap_or_default();
    let mut conn = match state.store.pool().acquire().await {
        Ok(c) => c,
        Err(e) => return super::internal_error(&e.into()),
    };
    let account = match crate::store::accounts::get_by_name(&mut conn, name).await {
        Ok(Some(a)) => a,
        Ok(None) => return upload_form(&p, &accounts, Some(html! { div.alert role="alert" { "Choose an account." } })),
        Err(e) => return super::internal_error(&e.into()),
    };
    drop(conn);
    let csv = field(&fields, "csv").unwrap_or_default().as_bytes().to_vec();
    match file_import::import_file(&state.store, &account, &csv, &p.label, now(&state), &|_, _| {}).await {
        Ok(done) => upload_form(
            &p,
            &accounts,
            Some(
                html! { div.flash role="status" { "Imported: " (done.summary()) ". " (done.queued) " went to the queue. " a href="/reconciliation/queue" { "Open the queue" } } },
            ),
        ),
        Err(file_import::ImportError::Store(e)) => super::internal_error(&e.into()),
        Err(refused) => upload_form(
            &p,
            &accounts,
            Some(html! { div.alert role="alert" { "Not imported (nothing was written): " (refused.to_string()) } }),
        ),
    }
}
