//! Server-rendered pages (no front-end build step, no JavaScript needed): sign-in, first run, Setup with the
//! Vipps extension's accounts, API keys, users and the audit log, and the finance records lists. Every form carries the session's CSRF token.

pub mod api_docs;
pub mod audit;
mod charts;
mod dashboard;
pub mod give;
mod give_form;
pub mod giving_pages;
pub mod login;
pub mod pay;
pub mod payer_return;
pub mod reconciliation;
pub mod record_actions;
pub mod record_detail;
pub mod record_pages;
pub mod records;
pub mod renew;
pub mod setup;
mod timeline;
pub mod users;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::auth::Principal;
use crate::domain::role::Role;

const STYLE: &str = r#"
:root { --ink:#1f2430; --muted:#5c6370; --line:#dde1e7; --brand:#c2410c; --bg:#f6f7f9; --ok:#1a7f37; --bad:#c62828; }
* { box-sizing: border-box; }
body { margin:0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--ink); background:var(--bg); }
header { background:#fff; border-bottom:1px solid var(--line); padding:.6rem 1.5rem; display:flex; gap:1.2rem; align-items:center; }
header .brand { font-weight:700; color:var(--brand); text-decoration:none; margin-right:1rem; }
header a { color:var(--ink); text-decoration:none; } header a:hover { text-decoration:underline; }
header form { margin-left:auto; } header .who { color:var(--muted); font-size:.9rem; }
main { max-width: 980px; margin: 1.5rem auto; padding: 0 1.5rem; }
h1 { font-size:1.5rem; margin:.2rem 0 1rem; }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:1.2rem 1.4rem; margin-bottom:1rem; }
.tiles { display:grid; grid-template-columns: repeat(auto-fill, minmax(220px,1fr)); gap:1rem; }
.tile { display:block; background:#fff; border:1px solid var(--line); border-radius:8px; padding:1.2rem; color:var(--ink); text-decoration:none; }
.tile:hover { border-color: var(--brand); } .tile strong { display:block; font-size:1.1rem; margin-bottom:.3rem; }
table { width:100%; border-collapse:collapse; background:#fff; }
th, td { text-align:left; padding:.55rem .6rem; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-size:.85rem; color:var(--muted); font-weight:600; }
.field { margin-bottom:1rem; } .field label { display:block; font-weight:600; margin-bottom:.25rem; }
.field .hint { color:var(--muted); font-size:.85rem; }
input[type=text], input[type=password], input[type=email], input[type=number], input[type=date], input[type=url], select {
  width:100%; max-width:460px; padding:.45rem .55rem; border:1px solid #c5cad3; border-radius:6px; font:inherit; }
.field.has-error input, .field.has-error select { border-color: var(--bad); }
.error { color:var(--bad); font-size:.9rem; margin-top:.2rem; }
.check label { display:inline; font-weight:600; }
button, .button { display:inline-block; background:var(--brand); color:#fff; border:0; border-radius:6px; padding:.5rem 1rem; font:inherit; cursor:pointer; text-decoration:none; }
button.secondary, .button.secondary { background:#fff; color:var(--ink); border:1px solid #c5cad3; }
button.danger { background: var(--bad); }
button.link { background:none; color:var(--ink); padding:0; text-decoration:underline; }
.flash { padding:.7rem 1rem; border-radius:6px; margin-bottom:1rem; background:#e8f5ec; color:var(--ok); border:1px solid #b7dfc3; }
.alert { padding:.7rem 1rem; border-radius:6px; margin-bottom:1rem; background:#fdecea; color:var(--bad); border:1px solid #f5c2bd; }
.badge { display:inline-block; font-size:.75rem; padding:.05rem .45rem; border-radius:99px; background:#eef0f3; color:var(--muted); }
.badge.default { background:#fff0ea; color:var(--brand); }
code.secret { background:#fff6d6; padding:.3rem .5rem; border-radius:4px; font-size:1rem; word-break:break-all; }
.actions { display:flex; gap:.6rem; align-items:center; margin-top:1rem; }
.muted { color:var(--muted); }
table.log { table-layout:fixed; } table.log td { overflow-wrap:anywhere; }
details summary { cursor:pointer; color:var(--muted); font-size:.85rem; }
details pre { white-space:pre-wrap; overflow-wrap:anywhere; font-size:.8rem; margin:.3rem 0; background:var(--bg); padding:.4rem .5rem; border-radius:4px; }
form.filters { display:flex; flex-wrap:wrap; gap:.6rem 1rem; align-items:flex-end; }
form.search { display:flex; gap:.5rem; margin-bottom:1rem; } form.search input { flex:1; max-width:none; padding:.45rem .55rem; border:1px solid #c5cad3; border-radius:6px; font:inherit; }
nav.lists { display:flex; flex-wrap:wrap; gap:.4rem 1.2rem; margin-bottom:.6rem; font-size:.95rem; }
.scroll { overflow-x:auto; } table.records td { overflow-wrap:normal; } table.records { table-layout:auto; font-size:.9rem; }
th.num, td.num { text-align:right; font-variant-numeric: tabular-nums; white-space:nowrap; }
form.filters .field { margin:0; } form.filters input { width:auto; max-width:14rem; }
table.timeline td.at { width:11rem; } table.timeline td.source { width:6.5rem; }
table.facts th { width:30%; } .card td { overflow-wrap:anywhere; } header .who { overflow-wrap:anywhere; } form.action { display:inline-block; margin:0 .6rem .6rem 0; } form.action .field { margin-bottom:.4rem; }
@media (max-width: 640px) { main { padding:0 .7rem; } header { flex-wrap:wrap; padding:.6rem .7rem; gap:.6rem; }
  table.timeline td.at { width:5.5rem; font-size:.8rem; } table.timeline td.source { width:4.5rem; } th, td { padding:.45rem .35rem; } }
figure.chart { margin:.4rem 0 1rem; } figure.chart svg { max-width:100%; height:auto; } .bad { color:var(--bad); } .ok { color:var(--ok); }
"#;

/// A whole page: head, navigation for the signed-in `who`, and `body`.
pub fn page(title: &str, who: Option<&Principal>, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · payhub" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a.brand href="/" { "payhub" }
                    @if let Some(who) = who {
                        a href="/" { "Dashboard" }
                        @if who.role.allows(crate::domain::role::Access::Finance) {
                            a href="/reconciliation/queue" { "Guided Matching" }
                            a href="/installments" { "Records" }
                        }
                        @if who.role == Role::Admin {
                            a href="/setup" { "Setup" }
                            a href="/setup/keys" { "API keys" }
                            a href="/setup/users" { "Users" }
                            a href="/setup/audit" { "Audit log" }
                            a href="/setup/giving-pages" { "Giving Pages" }
                        }
                        form method="post" action="/logout" {
                            span.who { (who.label.split_once(' ').map(|(_, e)| e).unwrap_or(&who.label)) " · " (who.role) " " }
                            (csrf_field(who))
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    };
    Html(markup.into_string()).into_response()
}

/// The hidden CSRF field every form of a signed-in page carries.
pub fn csrf_field(who: &Principal) -> Markup {
    html! { input type="hidden" name="csrf_token" value=(who.csrf_token.as_deref().unwrap_or_default()); }
}

fn message_page(status: StatusCode, title: &str, message: &str) -> Response {
    let mut response =
        page(title, None, html! { div.card { h1 { (title) } p { (message) } p { a href="/" { "Back to payhub" } } } });
    *response.status_mut() = status;
    response
}

/// 403 page: signed in, but the role does not allow this page.
pub fn forbidden() -> Response {
    message_page(
        StatusCode::FORBIDDEN,
        "Not allowed",
        "Your role does not allow this page. Ask an admin if you need it.",
    )
}

/// 404 page.
pub fn not_found() -> Response {
    message_page(StatusCode::NOT_FOUND, "Not found", "There is no such page.")
}

/// 400 page with a message safe to show.
pub fn bad_request(message: &str) -> Response {
    message_page(StatusCode::BAD_REQUEST, "Request refused", message)
}

/// 500 page; the cause is logged with the request id.
pub fn internal_error(cause: &anyhow::Error) -> Response {
    tracing::error!(error = ?cause, "internal error on a page");
    let id = crate::ops::current_request_id().unwrap_or_default();
    message_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        &format!("The error was logged with request id {id}."),
    )
}

/// A text input with its label, hint and error.
pub fn text_field(name: &str, label: &str, kind: &str, value: &str, hint: Option<&str>, error: Option<&str>) -> Markup {
    html! {
        div.field.has-error[error.is_some()] {
            label for=(name) { (label) }
            input type=(kind) id=(name) name=(name) value=(value) autocomplete="off";
            @if let Some(hint) = hint { div.hint { (hint) } }
            @if let Some(error) = error { div.error role="alert" { (error) } }
        }
    }
}

/// A checkbox with its label and error.
pub fn check_field(name: &str, label: &str, checked: bool, error: Option<&str>) -> Markup {
    html! {
        div.field.check.has-error[error.is_some()] {
            input type="checkbox" id=(name) name=(name) value="on" checked[checked];
            " "
            label for=(name) { (label) }
            @if let Some(error) = error { div.error role="alert" { (error) } }
        }
    }
}
