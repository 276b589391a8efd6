//! The finance records lists (finance and admin roles): a page per record family with one search box, filters
//! in the URL (so a view can be bookmarked and shared), keyset paging, and the same list as CSV at the same path
//! with `.csv`, streamed page by page so a million rows never sit in memory. `format=excel-no` writes what
//! Norwegian Excel opens as it is: `;` between fields, a decimal comma, and a UTF-8 byte order mark.
//!
//! Today: installments. The other families (payments, recurring payments, mandates, refunds, inbound reports,
//! messages, deliveries, jobs; reconciliation runs, payouts and the Guided Matching queue once they exist) get a
//! `Family` of their own beside [`installments`] and share the search box, filters and CSV writer.

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::NaiveDate;
use maud::{html, Markup};
use serde::Deserialize;

use super::page;
use crate::auth::Principal;
use crate::domain::money::Money;
use crate::domain::search::recognise;
use crate::domain::status::InstallmentStatus;
use crate::state::AppState;
use crate::store::listing::{self, Cursor, DateField, InstallmentLine, ListFilter};

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

fn filters(query: &ListQuery, accounts: &[(String, String)]) -> Markup {
    let status = given(&query.status).unwrap_or_default();
    let account = given(&query.account).unwrap_or_default();
    let date = query.date.as_deref().unwrap_or("created");
    html! {
        form.card.filters method="get" action="/installments" {
            @if let Some(q) = given(&query.q) { input type="hidden" name="q" value=(q); }
            div.field { label for="status" { "Status" }
                select id="status" name="status" {
                    option value="" { "Any" }
                    @for s in InstallmentStatus::ALL { option value=(s.as_str()) selected[status == s.as_str()] { (s.as_str()) } }
                } }
            div.field { label for="account" { "Account" }
                select id="account" name="account" {
                    option value="" { "Any" }
                    @for (id, name) in accounts { option value=(id) selected[&account == id] { (name) } }
                } }
            div.field { label for="date" { "Date" }
                select id="date" name="date" {
                    @for (value, label) in [("created", "Created"), ("due", "Due"), ("collected", "Collected")] {
                        option value=(value) selected[date == value] { (label) }
                    }
                } }
            (text_input("from", "From", "date", &query.from))
            (text_input("to", "To", "date", &query.to))
            (text_input("min", "Min NOK", "text", &query.min))
            (text_input("max", "Max NOK", "text", &query.max))
            (text_input("campaign", "Campaign", "text", &query.campaign))
            (text_input("origin", "Origin", "text", &query.origin))
            div.field { button type="submit" { "Filter" } " " a href="/installments" { "Clear" } }
        }
    }
}

fn kroner(ore: i64) -> String {
    Money::from_ore(ore).kroner_string()
}

/// `GET /installments`: installments newest first, filtered and searched by the URL, 50 a page.
pub async fn installments(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(query): Query<ListQuery>,
) -> Response {
    let (filter, problems) = query.filter();
    let after = query.after.as_deref().and_then(Cursor::decode);
    let (lines, accounts) = {
        let mut conn = match state.store.pool().acquire().await {
            Ok(conn) => conn,
            Err(error) => return super::internal_error(&error.into()),
        };
        let lines = match listing::installments(&mut conn, &filter, after.as_ref(), PAGE).await {
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
        format!("/installments{}", joined(&format!("after={cursor}")))
    });
    page(
        "Installments",
        Some(&who),
        html! {
            h1 { "Installments" }
            (search_box("/installments", &given(&query.q).unwrap_or_default()))
            (filters(&query, &accounts))
            @for problem in &problems { div.alert role="alert" { (problem) } }
            p.muted {
                "Amounts in NOK, times in UTC. Export this list: "
                a href={ "/installments.csv" (joined("")) } download { "CSV" } " · "
                a href={ "/installments.csv" (joined("format=excel-no")) } download { "CSV for Norwegian Excel" }
            }
            @if lines.is_empty() { p { "No installments match." } }
            @else {
                table.log.records {
                    thead { tr { th { "Created" } th { "Due" } th { "Payer" } th { "Reference" } th.num { "Amount" }
                                 th.num { "Open" } th.num { "Refunded" } th { "Status" } th { "Account" } } }
                    tbody {
                        @for line in &lines {
                            tr {
                                td { (line.created_at.get(..16).unwrap_or_default().replace('T', " ")) }
                                td { (line.due_date) }
                                td { (line.payer_name) @if let Some(email) = &line.payer_email { br; small.muted { (email) } } }
                                td { code title=(line.id) { (line.payment_reference) } }
                                td.num { (kroner(line.amount_ore)) }
                                td.num { (kroner(line.amount_open_ore.max(0))) }
                                td.num { @if line.refunded_ore > 0 { (kroner(line.refunded_ore)) } }
                                td { span.badge { (line.status) } }
                                td { (line.account_name.as_deref().unwrap_or_default()) }
                            }
                        }
                    }
                }
                @if let Some(next) = next { p { a href=(next) { "Next page →" } } }
            }
        },
    )
}

/// The CSV header of the installments list.
const INSTALLMENT_HEADER: [&str; 15] = [
    "Id",
    "Created (UTC)",
    "Due date",
    "Status",
    "Amount (NOK)",
    "Amount open (NOK)",
    "Amount refunded (NOK)",
    "Payment reference",
    "Payer",
    "Email",
    "Phone",
    "Account",
    "Campaign",
    "Origin",
    "Recurring payment",
];

/// How a CSV is written: the field separator and decimal mark.
#[derive(Debug, Clone, Copy)]
struct CsvStyle {
    separator: char,
    decimal_comma: bool,
}

impl CsvStyle {
    fn amount(self, ore: i64) -> String {
        let text = Money::from_ore(ore).kroner_string();
        if self.decimal_comma {
            text.replace('.', ",")
        } else {
            text
        }
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

    fn installment(self, out: &mut String, line: &InstallmentLine) {
        // Amounts are our own numbers, never formulas: written as they are.
        let amounts =
            [self.amount(line.amount_ore), self.amount(line.amount_open_ore.max(0)), self.amount(line.refunded_ore)];
        let due = line.due_date.to_string();
        let cells: [&str; 15] = [
            &line.id,
            &line.created_at,
            &due,
            &line.status,
            "",
            "",
            "",
            &line.payment_reference,
            &line.payer_name,
            line.payer_email.as_deref().unwrap_or_default(),
            line.payer_phone.as_deref().unwrap_or_default(),
            line.account_name.as_deref().unwrap_or_default(),
            line.campaign.as_deref().unwrap_or_default(),
            line.origin.as_deref().unwrap_or_default(),
            line.recurring_id.as_deref().unwrap_or_default(),
        ];
        for (n, cell) in cells.iter().enumerate() {
            if n > 0 {
                out.push(self.separator);
            }
            match n {
                4..=6 => out.push_str(&amounts[n - 4]),
                _ => self.field(out, cell),
            }
        }
        out.push_str("\r\n");
    }
}

/// `GET /installments.csv`: the filtered list (all of it, not one page) as CSV, streamed: each chunk is one
/// keyset page read from the database after the previous chunk was taken by the client.
pub async fn installments_csv(State(state): State<AppState>, Query(query): Query<ListQuery>) -> Response {
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
    style.row(&mut head, INSTALLMENT_HEADER);
    let store = state.store.clone();
    // State: the next page's cursor, or `None` once the list is done; `Some(None)` is the first page.
    let pages = futures::stream::unfold(Some(None::<Cursor>), move |next| {
        let store = store.clone();
        let filter = filter.clone();
        async move {
            let after = next?;
            let read = async {
                let mut conn = store.pool().acquire().await?;
                listing::installments(&mut conn, &filter, after.as_ref(), CSV_PAGE).await
            };
            match read.await {
                Ok(lines) if lines.is_empty() => None,
                Ok(lines) => {
                    let mut chunk = String::with_capacity(lines.len() * 160);
                    for line in &lines {
                        style.installment(&mut chunk, line);
                    }
                    let more = (lines.len() as i64 == CSV_PAGE).then(|| lines.last().map(InstallmentLine::cursor));
                    Some((Ok::<Bytes, std::io::Error>(Bytes::from(chunk)), more))
                }
                Err(error) => {
                    // The header is sent already: the export ends with a line that says it is cut short.
                    tracing::error!(%error, "CSV export stopped");
                    Some((Ok(Bytes::from("\r\nEXPORT INCOMPLETE: the database read failed; try again.\r\n")), None))
                }
            }
        }
    });
    let body = futures::StreamExt::chain(futures::stream::once(async move { Ok(Bytes::from(head)) }), pages);
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"installments.csv\""),
        ],
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
        assert_eq!(style.amount(123_450), "1234,50");
        let mut out = String::new();
        style.row(&mut out, ["a;b", "=HYPERLINK(\"x\")", "plain"]);
        assert_eq!(out, "\"a;b\";\"'=HYPERLINK(\"\"x\"\")\";plain\r\n");
        let plain = CsvStyle { separator: ',', decimal_comma: false };
        assert_eq!(plain.amount(3600), "36.00");
    }
}
