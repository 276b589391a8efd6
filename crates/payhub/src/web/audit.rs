//! The audit log page: who changed what, newest first, with people, keys and records by name (the raw ids in a
//! tooltip), each entry's details folded away so the table fits a laptop screen, and filters in the URL (action
//! or its family, who, which record, a date range) paged by key.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::Response;
use axum::Extension;
use chrono::NaiveDate;
use maud::{html, Markup};
use serde::Deserialize;

use super::page;
use crate::auth::Principal;
use crate::state::AppState;
use crate::store::audit::{self as audit_store, AuditEntry, AuditFilter};

/// Entries per page.
const PAGE: i64 = 100;

/// The audit page's filters, as the URL carries them (an empty field is no filter).
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    action: Option<String>,
    actor: Option<String>,
    record: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<i64>,
}

fn given(value: &Option<String>) -> Option<String> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(|v| v.chars().take(200).collect())
}

/// A day the reader typed, or `None` with the reason shown beside the form.
fn day(value: &Option<String>, errors: &mut Vec<String>, label: &str) -> Option<NaiveDate> {
    let text = given(value)?;
    match text.parse::<NaiveDate>() {
        Ok(day) => Some(day),
        Err(_) => {
            errors.push(format!("{label} must be a date like 2026-12-01; it was left out."));
            None
        }
    }
}

/// Who did it, as a reader names them: a user's email, a key's name, the operator at the command line.
fn actor_name(label: &str) -> String {
    let rest = |prefix: &str| label.strip_prefix(prefix).map(|r| r.split_once(' ').map_or(r, |(_, name)| name));
    if let Some(email) = rest("user:") {
        email.to_owned()
    } else if let Some(name) = rest("key:") {
        format!("{name} (API key)")
    } else if let Some(user) = label.strip_prefix("cli:") {
        format!("{user} (command line)")
    } else {
        label.to_owned()
    }
}

/// The link to the page of a record, where there is one.
fn record_link(kind: &str, id: &str) -> Option<String> {
    match kind {
        "account" => Some(format!("/setup/vipps/{id}")),
        _ => None,
    }
}

fn record_cell(entry: &AuditEntry, names: &HashMap<(String, String), String>) -> Markup {
    let name = names.get(&(entry.object_type.clone(), entry.object_id.clone()));
    let shown = name.cloned().unwrap_or_else(|| entry.object_id.clone());
    html! {
        span.badge { (entry.object_type.replace('_', " ")) } " "
        @match record_link(&entry.object_type, &entry.object_id) {
            Some(href) => a href=(href) title=(entry.object_id) { (shown) },
            None => span title=(entry.object_id) { (shown) },
        }
    }
}

fn filter_link(query: &AuditQuery, before: i64) -> String {
    let mut url = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in [
        ("action", &query.action),
        ("actor", &query.actor),
        ("record", &query.record),
        ("from", &query.from),
        ("to", &query.to),
    ] {
        if let Some(value) = given(value) {
            url.append_pair(name, &value);
        }
    }
    url.append_pair("before", &before.to_string());
    format!("/setup/audit?{}", url.finish())
}

/// `GET /setup/audit`: newest first, filtered by the URL's `action`, `actor`, `record`, `from`, `to`, paged
/// by `before`.
pub async fn audit(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(query): Query<AuditQuery>,
) -> Response {
    let mut errors = Vec::new();
    let filter = AuditFilter {
        action: given(&query.action),
        actor: given(&query.actor),
        record: given(&query.record),
        from: day(&query.from, &mut errors, "From"),
        to: day(&query.to, &mut errors, "To"),
        before: query.before,
    };
    let (entries, names) = {
        let mut conn = match state.store.pool().acquire().await {
            Ok(conn) => conn,
            Err(error) => return super::internal_error(&error.into()),
        };
        let entries = match audit_store::search(&mut conn, &filter, PAGE).await {
            Ok(entries) => entries,
            Err(error) => return super::internal_error(&error.into()),
        };
        let records: Vec<(String, String)> =
            entries.iter().map(|(_, e)| (e.object_type.clone(), e.object_id.clone())).collect();
        match audit_store::record_names(&mut conn, &records).await {
            Ok(names) => (entries, names),
            Err(error) => return super::internal_error(&error.into()),
        }
    };
    let value = |v: &Option<String>| given(v).unwrap_or_default();
    page(
        "Audit log",
        Some(&who),
        html! {
            h1 { "Audit log" }
            form.card.filters method="get" action="/setup/audit" {
                div.field { label for="action" { "Action" }
                    input type="text" id="action" name="action" value=(value(&query.action)) placeholder="refund, account, user.sign_in_failed"; }
                div.field { label for="actor" { "Who" }
                    input type="text" id="actor" name="actor" value=(value(&query.actor)) placeholder="email or key name"; }
                div.field { label for="record" { "Record id" }
                    input type="text" id="record" name="record" value=(value(&query.record)); }
                div.field { label for="from" { "From" } input type="date" id="from" name="from" value=(value(&query.from)); }
                div.field { label for="to" { "To" } input type="date" id="to" name="to" value=(value(&query.to)); }
                div.field { button type="submit" { "Filter" } " " a href="/setup/audit" { "Clear" } }
            }
            @for error in &errors { div.alert role="alert" { (error) } }
            @if entries.is_empty() { p { "No entries match." } }
            @else {
                table.log {
                    colgroup { col style="width:10.5rem"; col style="width:30%"; col style="width:30%"; col; }
                    thead { tr { th { "When (UTC)" } th { "Who" } th { "What" } th { "Record" } } }
                    tbody {
                        @for (_, e) in &entries {
                            tr {
                                td { (e.at.format("%Y-%m-%d %H:%M:%S")) }
                                td title=(e.actor) { (actor_name(&e.actor)) br; small.muted { (e.source) } }
                                td { code { (e.action) }
                                     details { summary { "Details" } pre { (serde_json::to_string_pretty(&e.details).unwrap_or_default()) } } }
                                td { (record_cell(e, &names)) }
                            }
                        }
                    }
                }
                @if let Some((last, _)) = entries.last().filter(|_| entries.len() as i64 == PAGE) {
                    p { a href=(filter_link(&query, *last)) { "Older entries →" } }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_read_as_people_keys_and_operators() {
        assert_eq!(actor_name("user:usr_1 kari@example.org"), "kari@example.org");
        assert_eq!(actor_name("key:key_1 donation form"), "donation form (API key)");
        assert_eq!(actor_name("cli:ops"), "ops (command line)");
        assert_eq!(actor_name("anonymous"), "anonymous");
    }
}
