//! The finance records lists (finance and admin roles): a page per record family with one search box, filters
//! in the URL (so a view can be bookmarked and shared), keyset paging, and the same list as CSV at the same path
//! with `.csv`, streamed page by page so a million rows never sit in memory. `format=excel-no` writes what
//! Norwegian Excel opens as it is: `;` between fields, a decimal comma, and a UTF-8 byte order mark.
//!
//! Installments, payments, refunds, recurring payments, mandates, inbound reports, messages, outbound webhook
//! deliveries and jobs. Reconciliation runs, payouts and the Guided Matching queue, once they exist, get a
//! [`Family`] of their own in `store::listing` and a path pair here, and share the search box, filters and CSV
//! writer.

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::NaiveDate;
use futures::StreamExt;
use maud::{html, Markup};
use serde::Deserialize;

use super::page;
use crate::auth::Principal;
use crate::domain::money::Money;
use crate::domain::search::recognise;
use crate::state::AppState;
use crate::store::listing::{self, Cell, Cursor, DateField, Family, Kind, Line, ListFilter};

/// A list's path (its CSV is the path with `.csv`) and title.
fn place(family: Family) -> (&'static str, &'static str) {
    match family {
        Family::Installments => ("/installments", "Installments"),
        Family::Payments => ("/payments", "Payments"),
        Family::Refunds => ("/refunds", "Refunds"),
        Family::Recurring => ("/recurring", "Recurring payments"),
        Family::Mandates => ("/mandates", "Mandates"),
        Family::Reports => ("/reports", "Inbound reports"),
        Family::Messages => ("/messages", "Messages"),
        Family::Deliveries => ("/deliveries", "Webhook deliveries"),
        Family::Jobs => ("/jobs", "Jobs"),
    }
}

/// Whether a list's records have a detail page at the list's path and the record's id.
fn has_page(family: Family) -> bool {
    match family {
        Family::Installments
        | Family::Payments
        | Family::Refunds
        | Family::Recurring
        | Family::Mandates
        | Family::Deliveries => true,
        Family::Reports | Family::Messages | Family::Jobs => false,
    }
}

/// The lists, in the order the navigation shows them.
pub const LISTS: [Family; 9] = [
    Family::Installments,
    Family::Payments,
    Family::Refunds,
    Family::Recurring,
    Family::Mandates,
    Family::Reports,
    Family::Messages,
    Family::Deliveries,
    Family::Jobs,
];

/// Lines per page on screen.
const PAGE: i64 = 50;

/// Lines per database read of a CSV export: large enough that the reads cost little, small enough that memory
/// stays flat.
const CSV_PAGE: i64 = 2000;

/// A list's URL query. Every field is text so that a mistyped one is shown back with its problem, not refused.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    status: Option<String>,
    account: Option<String>,
    campaign: Option<String>,
    origin: Option<String>,
    date: Option<String>,
    from: Option<String>,
    to: Option<String>,
    min: Option<String>,
    max: Option<String>,
    after: Option<String>,
    format: Option<String>,
}

fn given(value: &Option<String>) -> Option<String> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(|v| v.chars().take(200).collect())
}

impl ListQuery {
    /// The filter it asks for, and what was left out with the reason.
    fn filter(&self) -> (ListFilter, Vec<String>) {
        let mut problems = Vec::new();
        let mut day = |value: &Option<String>, label: &str| {
            let text = given(value)?;
            text.parse::<NaiveDate>()
                .map_err(|_| problems.push(format!("{label} must be a date like 2026-12-01; it was left out.")))
                .ok()
        };
        let from = day(&self.from, "From");
        let to = day(&self.to, "To");
        let mut amount = |value: &Option<String>, label: &str| {
            let text = given(value)?.replace(',', ".");
            Money::parse_kroner(&text)
                .map(Money::ore)
                .map_err(|_| {
                    problems.push(format!("{label} must be an amount in NOK like 100 or 99.50; it was left out."))
                })
                .ok()
        };
        let min_ore = amount(&self.min, "Minimum amount");
        let max_ore = amount(&self.max, "Maximum amount");
        let date_field = match self.date.as_deref() {
            Some("due") => DateField::Due,
            Some("collected") => DateField::Collected,
            _ => DateField::Created,
        };
        let filter = ListFilter {
            status: given(&self.status),
            account_id: given(&self.account),
            campaign: given(&self.campaign),
            origin: given(&self.origin),
            date_field,
            from,
            to,
            min_ore,
            max_ore,
            lookup: self.q.as_deref().and_then(recognise),
        };
        (filter, problems)
    }

    /// The query again (without the page cursor and format), for links to the next page and the CSV.
    fn encoded(&self) -> String {
        let mut url = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("q", &self.q),
            ("status", &self.status),
            ("account", &self.account),
            ("campaign", &self.campaign),
            ("origin", &self.origin),
            ("date", &self.date),
            ("from", &self.from),
            ("to", &self.to),
            ("min", &self.min),
            ("max", &self.max),
        ] {
            if let Some(value) = given(value) {
                url.append_pair(name, &value);
            }
        }
        url.finish()
    }

    fn excel_no(&self) -> bool {
        self.format.as_deref() == Some("excel-no")
    }
}

/// The search box every records page carries.
pub fn search_box(action: &str, q: &str) -> Markup {
    html! {
        form.search method="get" action=(action) role="search" {
            input type="search" name="q" value=(q) aria-label="Search"
                placeholder="pi-… reference, ins_/agr_/mdt_/rp_ id, Vipps reference, phone, email or payer's name";
            " " button type="submit" { "Search" }
        }
    }
}

fn text_input(name: &str, label: &str, kind: &str, value: &Option<String>) -> Markup {
    html! {
        div.field { label for=(name) { (label) }
            input type=(kind) id=(name) name=(name) value=(given(value).unwrap_or_default()); }
    }
}

fn filters(family: Family, query: &ListQuery, accounts: &[(String, String)]) -> Markup {
    let (path, _) = place(family);
    let status = given(&query.status).unwrap_or_default();
    let account = given(&query.account).unwrap_or_default();
    let date = query.date.as_deref().unwrap_or("created");
    let (due, collected) = family.dates();
    let dates = [("created", "Created", true), ("due", "Due", due), ("collected", "Collected", collected)];
    html! {
        form.card.filters method="get" action=(path) {
            @if let Some(q) = given(&query.q) { input type="hidden" name="q" value=(q); }
            div.field { label for="status" { @if family == Family::Payments { "Type" } @else { "Status" } }
                select id="status" name="status" {
                    option value="" { "Any" }
                    @for s in family.statuses() { option value=(s) selected[status == *s] { (s) } }
                } }
            div.field { label for="account" { "Account" }
                select id="account" name="account" {
                    option value="" { "Any" }
                    @for (id, name) in accounts { option value=(id) selected[&account == id] { (name) } }
                } }
            div.field { label for="date" { "Date" }
                select id="date" name="date" {
                    @for (value, label, _) in dates.iter().filter(|d| d.2) {
                        option value=(value) selected[date == *value] { (label) }
                    }
                } }
            (text_input("from", "From", "date", &query.from))
            (text_input("to", "To", "date", &query.to))
            (text_input("min", "Min NOK", "text", &query.min))
            (text_input("max", "Max NOK", "text", &query.max))
            (text_input("campaign", "Campaign", "text", &query.campaign))
            (text_input("origin", "Origin", "text", &query.origin))
            div.field { button type="submit" { "Filter" } " " a href=(path) { "Clear" } }
        }
    }
}

fn kroner(ore: i64) -> String {
    Money::from_ore(ore).kroner_string()
}

/// The navigation between the lists.
fn lists_nav(current: Family) -> Markup {
    html! {
        nav.lists {
            @for family in LISTS {
                @let (path, title) = place(family);
                @if family == current { strong { (title) } } @else { a href=(path) { (title) } }
            }
        }
    }
}

/// A list page: `family` newest first, filtered and searched by the URL, 50 a page.
async fn list_page(state: AppState, who: Principal, family: Family, query: ListQuery) -> Response {
    let (path, title) = place(family);
    let (filter, problems) = query.filter();
    let after = query.after.as_deref().and_then(Cursor::decode);
    let (lines, accounts) = {
        let mut conn = match state.store.pool().acquire().await {
            Ok(conn) => conn,
            Err(error) => return super::internal_error(&error.into()),
        };
        let lines = match listing::lines(&mut conn, family, &filter, after.as_ref(), PAGE).await {
            Ok(lines) => lines,
            Err(error) => return super::internal_error(&error.into()),
        };
        match listing::account_choices(&mut conn).await {
            Ok(accounts) => (lines, accounts),
            Err(error) => return super::internal_error(&error.into()),
        }
    };
    let encoded = query.encoded();
    let joined = |extra: &str| {
        let parts: Vec<&str> = [encoded.as_str(), extra].into_iter().filter(|s| !s.is_empty()).collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    };
    let next = lines.last().filter(|_| lines.len() as i64 == PAGE).map(|last| {
        let cursor: String = url::form_urlencoded::byte_serialize(last.cursor().encode().as_bytes()).collect();
        format!("{path}{}", joined(&format!("after={cursor}")))
    });
    let columns = family.columns();
    page(
        title,
        Some(&who),
        html! {
            (lists_nav(family))
            h1 { (title) }
            (search_box(path, &given(&query.q).unwrap_or_default()))
            (filters(family, &query, &accounts))
            @for problem in &problems { div.alert role="alert" { (problem) } }
            p.muted {
                "Amounts in NOK, times in UTC. Export this list: "
                a href={ (path) ".csv" (joined("")) } download { "CSV" } " · "
                a href={ (path) ".csv" (joined("format=excel-no")) } download { "CSV for Norwegian Excel" }
            }
            @if lines.is_empty() { p { "Nothing matches." } }
            @else {
                div.scroll { table.log.records {
                    thead { tr { @for (name, kind) in columns.iter().skip(1) {
                        @if *kind == Kind::Money { th.num { (name.trim_end_matches(" (NOK)")) } } @else { th { (name) } }
                    } } }
                    tbody {
                        @for line in &lines {
                            tr title=(line.id) {
                                @for (n, cell) in line.cells.iter().skip(1).enumerate() {
                                    @match cell {
                                        Cell::Money(ore) => td.num { (kroner(*ore)) },
                                        // A record opens its page from the list's first column.
                                        Cell::Text(text) if n == 0 && has_page(family) => td {
                                            a href={ (path) "/" (line.id) } { (shown(text)) } },
                                        Cell::Text(text) => td { (shown(text)) },
                                    }
                                }
                            }
                        }
                    }
                } }
                @if let Some(next) = next { p { a href=(next) { "Next page →" } } }
            }
        },
    )
}

/// A stored timestamp to the minute; other text as it is.
fn shown(text: &str) -> String {
    let stamp = text.len() > 20 && text.as_bytes().get(10) == Some(&b'T') && text.ends_with('Z');
    if stamp {
        text.get(..16).unwrap_or(text).replace('T', " ")
    } else {
        text.to_owned()
    }
}

macro_rules! list_handlers {
    ($($page:ident, $csv:ident, $family:expr, $path:literal;)*) => {$(
        #[doc = concat!("`GET ", $path, "`: the list page.")]
        pub async fn $page(
            State(state): State<AppState>,
            Extension(who): Extension<Principal>,
            Query(query): Query<ListQuery>,
        ) -> Response {
            list_page(state, who, $family, query).await
        }

        #[doc = concat!("`GET ", $path, ".csv`: the filtered list as CSV, streamed.")]
        pub async fn $csv(State(state): State<AppState>, Query(query): Query<ListQuery>) -> Response {
            csv(state, $family, query)
        }
    )*};
}

list_handlers! {
    installments, installments_csv, Family::Installments, "/installments";
    payments, payments_csv, Family::Payments, "/payments";
    refunds, refunds_csv, Family::Refunds, "/refunds";
    recurring, recurring_csv, Family::Recurring, "/recurring";
    mandates, mandates_csv, Family::Mandates, "/mandates";
    reports, reports_csv, Family::Reports, "/reports";
    messages, messages_csv, Family::Messages, "/messages";
    deliveries, deliveries_csv, Family::Deliveries, "/deliveries";
    jobs, jobs_csv, Family::Jobs, "/jobs";
}

/// How a CSV is written: the field separator and decimal mark.
#[derive(Debug, Clone, Copy)]
struct CsvStyle {
    separator: char,
    decimal_comma: bool,
}

impl CsvStyle {
    /// An amount in kroner, as [`Money::kroner_string`] writes it but with this style's decimal mark, written in
    /// place: three amounts a line, a million lines, were six short-lived strings a line.
    fn amount(self, out: &mut String, ore: i64) {
        use std::fmt::Write;
        let mark = if self.decimal_comma { ',' } else { '.' };
        let _ = write!(out, "{}{mark}{:02}", ore / 100, (ore % 100).abs());
    }

    /// One field, quoted when it must be; text a spreadsheet would run as a formula is defused with a `'`.
    fn field(self, out: &mut String, text: &str) {
        let formula = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
        let quote = formula || text.contains([self.separator, '"', '\n', '\r']);
        if quote {
            out.push('"');
            if formula {
                out.push('\'');
            }
            out.push_str(&text.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(text);
        }
    }

    fn row<'a>(self, out: &mut String, fields: impl IntoIterator<Item = &'a str>) {
        for (n, field) in fields.into_iter().enumerate() {
            if n > 0 {
                out.push(self.separator);
            }
            self.field(out, field);
        }
        out.push_str("\r\n");
    }

    fn line(self, out: &mut String, line: &Line) {
        for (n, cell) in line.cells.iter().enumerate() {
            if n > 0 {
                out.push(self.separator);
            }
            match cell {
                // Amounts are our own numbers, never formulas: written as they are.
                Cell::Money(ore) => self.amount(out, *ore),
                Cell::Text(text) => self.field(out, text),
            }
        }
        out.push_str("\r\n");
    }
}

/// A list as CSV: all of it (not one page), streamed. A reader task reads keyset page after page while the
/// previous page is written out, at most one page ahead, so memory stays at two pages however long the list; it
/// stops when the client goes away (its next page has nowhere to go).
fn csv(state: AppState, family: Family, query: ListQuery) -> Response {
    let (filter, _) = query.filter();
    let style = if query.excel_no() {
        CsvStyle { separator: ';', decimal_comma: true }
    } else {
        CsvStyle { separator: ',', decimal_comma: false }
    };
    let mut head = String::new();
    if query.excel_no() {
        head.push('\u{feff}');
    }
    style.row(&mut head, family.columns().iter().map(|(name, _)| *name));
    let store = state.store.clone();
    let (pages, mut read) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let mut after: Option<Cursor> = None;
        loop {
            let page = async {
                let mut conn = store.pool().acquire().await?;
                listing::lines(&mut conn, family, &filter, after.as_ref(), CSV_PAGE).await
            }
            .await;
            let next = match &page {
                Ok(lines) if lines.len() as i64 == CSV_PAGE => lines.last().map(Line::cursor),
                _ => None,
            };
            if pages.send(page).await.is_err() || next.is_none() {
                break;
            }
            after = next;
        }
    });
    let written = futures::stream::poll_fn(move |cx| read.poll_recv(cx)).map(move |page| {
        Ok::<Bytes, std::io::Error>(match page {
            Ok(lines) => {
                let mut chunk = String::with_capacity(lines.len() * 160);
                for line in &lines {
                    style.line(&mut chunk, line);
                }
                Bytes::from(chunk)
            }
            Err(error) => {
                // The header is sent already: the export ends with a line that says it is cut short.
                tracing::error!(%error, "CSV export stopped");
                Bytes::from("\r\nEXPORT INCOMPLETE: the database read failed; try again.\r\n")
            }
        })
    });
    let body = futures::stream::once(async move { Ok(Bytes::from(head)) }).chain(written);
    let file = format!("attachment; filename=\"{}.csv\"", place(family).0.trim_start_matches('/'));
    (
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, file)],
        Body::from_stream(body),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norwegian_excel_gets_semicolons_and_decimal_commas_and_formulas_are_defused() {
        let style = CsvStyle { separator: ';', decimal_comma: true };
        let mut out = String::new();
        style.amount(&mut out, 123_450);
        assert_eq!(out, "1234,50");
        out.clear();
        style.row(&mut out, ["a;b", "=HYPERLINK(\"x\")", "plain"]);
        assert_eq!(out, "\"a;b\";\"'=HYPERLINK(\"\"x\"\")\";plain\r\n");
        let plain = CsvStyle { separator: ',', decimal_comma: false };
        for ore in [3600, 5, -1000, 123_456_789] {
            let mut out = String::new();
            plain.amount(&mut out, ore);
            assert_eq!(out, Money::from_ore(ore).kroner_string(), "{ore}");
        }
    }
}
