//! A Vipps number's ledger exported as the business portal's settlement report (the csv of its *Details*
//! sheet): what an organisation downloads for payments made straight to its Vipps number, which never reach
//! the Report API. So a test makes a real file from real simulated payments instead of writing one by hand.
//!
//! Columns and words as the portal writes them (Norwegian by default, English with `lang=en`): one row per
//! balance-changing entry, times in Oslo local time without a zone, dot decimals with two places, quoted
//! fields where a value holds the separator, a quote or a newline. Each capture names the fee it costs
//! (`Gebyr`, `Nettobeløp`) as the portal does; the simulator's Vipps-number ledgers do not close days, so no
//! fee or payout rows follow.

use axum::extract::{Path, Query, State};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use chrono_tz::Europe::Oslo;
use http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::book::capture_fee;
use crate::reply::{sim_error, Reply};
use crate::state::SharedSim;

const NORWEGIAN: [&str; 21] = [
    "Salgssted",
    "MSN/Vippsnummer",
    "Land",
    "Betalingsløsning",
    "Tidspunkt",
    "Bokføringsdato",
    "Type",
    "Beløp",
    "Balanse",
    "Gebyr",
    "Nettobeløp",
    "Valuta",
    "Kundens navn",
    "Kundens telefonnummer",
    "Melding",
    "Kategori",
    "PSP-referanse",
    "Ordre-ID/Referanse",
    "Utbetalingsnummer",
    "Bankkonto for utbetaling",
    "Planlagt utbetalingsdato",
];

const ENGLISH: [&str; 21] = [
    "Sales unit",
    "MSN/Vipps number",
    "Country",
    "Payment solution",
    "Time",
    "Booking date",
    "Type",
    "Amount",
    "Balance",
    "Fee",
    "Net amount",
    "Currency",
    "Customer name",
    "Customer phone number",
    "Message",
    "Category",
    "PSP reference",
    "Order ID/Reference",
    "Payout number",
    "Payout account",
    "Scheduled payout date",
];

/// Query of the export.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportQuery {
    /// `no` (default) or `en`.
    #[serde(default)]
    lang: Option<String>,
}

/// `GET /_sim/vipps-number-payments/{number}/settlement.csv[?lang=no|en]`: the number's ledger as the portal's
/// settlement report → `200 text/csv` (UTF-8 with a byte order mark, as the portal's download), `404` for a
/// number nobody paid.
pub(crate) async fn export(
    State(sim): State<SharedSim>,
    Path(number): Path<String>,
    Query(query): Query<ExportQuery>,
) -> Reply {
    let english = match query.lang.as_deref() {
        None | Some("no") => false,
        Some("en") => true,
        Some(_) => return sim_error(StatusCode::BAD_REQUEST, "lang must be no or en"),
    };
    let db = sim.lock();
    let Some(ledger) = db.report.vipps_numbers.get(&number) else {
        return sim_error(StatusCode::NOT_FOUND, "no payments to that Vipps number");
    };
    let body = render(&number, &ledger.rows, english);
    Reply {
        status: StatusCode::OK,
        content_type: Some("text/csv; charset=utf-8"),
        body: Bytes::from(body),
        retry_after: None,
    }
}

/// The file for `rows` (Report API entries of the number's ledger, in booking order).
fn render(number: &str, rows: &[Value], english: bool) -> String {
    let header = if english { ENGLISH } else { NORWEGIAN };
    let mut out = String::from("\u{feff}");
    push_line(&mut out, header.iter().map(|h| (*h).to_owned()));
    for row in rows {
        let text = |key: &str| row.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
        let amount = row.get("amount").and_then(Value::as_i64).unwrap_or(0);
        let balance = row.get("balanceAfter").and_then(Value::as_i64).unwrap_or(0);
        let capture = text("entryType") == "capture";
        let fee = if capture { Some(capture_fee(amount)) } else { None };
        let phone = row.get("maskedPhoneNo").and_then(Value::as_str).map(|m| format!("+47 {m}")).unwrap_or_default();
        let (when, date) = oslo_time(&text("time"));
        let fields = [
            format!("Vippsnummer {number}"),
            number.to_owned(),
            if english { "Norway" } else { "Norge" }.to_owned(),
            if english { "Optional amount" } else { "Valgfritt beløp" }.to_owned(),
            when,
            if text("ledgerDate").is_empty() { date } else { text("ledgerDate") },
            match (capture, english) {
                (true, false) => "Belastning".to_owned(),
                (true, true) => "Capture".to_owned(),
                (false, _) => text("entryType"),
            },
            kroner(amount),
            kroner(balance),
            fee.map(|f| kroner(-f)).unwrap_or_default(),
            fee.map(|f| kroner(amount - f)).unwrap_or_default(),
            text("currency"),
            text("name"),
            phone,
            text("message"),
            String::new(),
            text("pspReference"),
            text("reference"),
            String::new(),
            String::new(),
            String::new(),
        ];
        push_line(&mut out, fields.into_iter());
    }
    out
}

/// Øre as the portal writes kroner: sign, whole kroner, a dot, two decimals.
fn kroner(ore: i64) -> String {
    let sign = if ore < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", ore.unsigned_abs() / 100, ore.unsigned_abs() % 100)
}

/// A Report API time (UTC) as the portal's Oslo local time, and its Oslo date.
fn oslo_time(rfc3339: &str) -> (String, String) {
    match DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => {
            let local = t.with_timezone(&Utc).with_timezone(&Oslo);
            (local.format("%Y-%m-%d %H:%M:%S").to_string(), local.format("%Y-%m-%d").to_string())
        }
        Err(_) => (String::new(), String::new()),
    }
}

/// One CSV line (RFC 4180): a field with a comma, a quote or a line break is quoted, its quotes doubled.
fn push_line(out: &mut String, fields: impl Iterator<Item = String>) {
    for (i, field) in fields.enumerate() {
        if i > 0 {
            out.push(',');
        }
        if field.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&field);
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_capture_becomes_a_portal_row_with_oslo_time_fee_and_quoted_message() {
        let row = serde_json::json!({
            "pspReference": "7000000001", "time": "2026-02-10T07:01:02.000000Z", "ledgerDate": "2026-02-10",
            "entryType": "capture", "reference": "7000000001", "currency": "NOK", "amount": 25000,
            "balanceBefore": 0, "balanceAfter": 25000, "recipientHandle": "NO:57860",
            "message": "Gave,\n\"til\" leiren", "name": "Kari Test", "maskedPhoneNo": "xxxx 1234"
        });
        let csv = render("57860", &[row], false);
        let lines: Vec<&str> = csv.lines().collect();
        assert!(lines[0].starts_with("\u{feff}Salgssted,MSN/Vippsnummer,"));
        assert_eq!(
            lines[1],
            "Vippsnummer 57860,57860,Norge,Valgfritt beløp,2026-02-10 08:01:02,2026-02-10,Belastning,250.00,250.00,\
             -5.38,244.62,NOK,Kari Test,+47 xxxx 1234,\"Gave,"
        );
        assert_eq!(lines[2], "\"\"til\"\" leiren\",,7000000001,7000000001,,,");
    }

    #[test]
    fn kroner_have_two_decimals_and_a_sign() {
        assert_eq!(kroner(-5), "-0.05");
        assert_eq!(kroner(123_456), "1234.56");
    }
}
