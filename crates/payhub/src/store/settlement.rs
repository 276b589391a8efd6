//! What matching reads and writes, set-based: the Payments and installments a batch of ledger rows may name
//! (one statement per kind of candidate for the whole batch, never one per row), and the bookings the rules
//! decided (one statement per table for the whole batch).

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use sqlx::AnyConnection;

use super::together::statements::{text, BatchConn, Steps};
use super::{timestamp, StoreResult};
use crate::domain::ledger::EntryStatus;
use crate::domain::trail::Outcome;

fn json_list(values: &[&str]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".to_owned())
}

fn list_source(conn: &AnyConnection) -> &'static str {
    if conn.backend_name() == "SQLite" {
        "SELECT value FROM json_each($1)"
    } else {
        "SELECT jsonb_array_elements_text($1::jsonb)"
    }
}

/// A Payment a ledger row may settle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentCandidate {
    /// `pmt_…`
    pub id: String,
    /// Its installment.
    pub installment_id: String,
    /// Its installment's status.
    pub installment_status: String,
    /// Signed amount (refunds negative).
    pub amount_ore: i64,
    /// `capture` / `refund`.
    pub kind: String,
    /// Vipps' reference.
    pub psp_reference: String,
    /// The ledger row that settled it already, if any.
    pub ledger_entry_id: Option<String>,
}

/// The Payments recorded under any of `psp_references`.
pub async fn payments_by_psp(conn: &mut AnyConnection, psp_references: &[&str]) -> StoreResult<Vec<PaymentCandidate>> {
    if psp_references.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT p.id, p.installment_id, i.status, CAST(p.amount_ore AS TEXT), p.kind, p.psp_reference, p.ledger_entry_id \
         FROM payments p JOIN installments i ON i.id = p.installment_id WHERE p.psp_reference IN ({}) \
         AND p.reversed_by_report_id IS NULL",
        list_source(conn)
    );
    let rows = conn.read(&sql, &[json_list(psp_references)]).await?;
    rows.iter()
        .map(|r| {
            Ok(PaymentCandidate {
                id: text(r, 0, "payment id")?.to_owned(),
                installment_id: text(r, 1, "installment id")?.to_owned(),
                installment_status: text(r, 2, "installment status")?.to_owned(),
                amount_ore: text(r, 3, "amount")?.parse().unwrap_or(0),
                kind: text(r, 4, "kind")?.to_owned(),
                psp_reference: text(r, 5, "psp reference")?.to_owned(),
                ledger_entry_id: r.get(6).cloned().flatten(),
            })
        })
        .collect()
}

/// An installment a ledger row's reference may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallmentCandidate {
    /// The reference that named it (payment reference or recurring charge id).
    pub reference: String,
    /// `ins_…`
    pub id: String,
    /// Expected amount in øre.
    pub amount_ore: i64,
    /// Its status.
    pub status: String,
    /// The account it belongs to.
    pub account_id: String,
    /// The pspReference of a capture already recorded on it, if any.
    pub captured_psp: Option<String>,
}

/// The installments whose payment reference, or whose recurring charge's id, is any of `references`.
pub async fn installments_by_reference(
    conn: &mut AnyConnection,
    references: &[&str],
) -> StoreResult<Vec<InstallmentCandidate>> {
    if references.is_empty() {
        return Ok(Vec::new());
    }
    let source = list_source(conn);
    let captured = "(SELECT MIN(p.psp_reference) FROM payments p WHERE p.installment_id = i.id AND p.kind = 'capture' \
         AND p.reversed_by_report_id IS NULL)";
    let sql = format!(
        "SELECT i.payment_reference, i.id, CAST(i.amount_ore AS TEXT), i.status, i.account_id, {captured} \
         FROM installments i WHERE i.payment_reference IN ({source}) \
         UNION ALL \
         SELECT c.charge_id, i.id, CAST(i.amount_ore AS TEXT), i.status, i.account_id, {captured} \
         FROM vipps_charges c JOIN installments i ON i.id = c.installment_id WHERE c.charge_id IN ({source}) \
         AND c.charge_id <> i.payment_reference"
    );
    let rows = conn.read(&sql, &[json_list(references)]).await?;
    rows.iter()
        .map(|r| {
            Ok(InstallmentCandidate {
                reference: text(r, 0, "reference")?.to_owned(),
                id: text(r, 1, "installment id")?.to_owned(),
                amount_ore: text(r, 2, "amount")?.parse().unwrap_or(0),
                status: text(r, 3, "status")?.to_owned(),
                account_id: text(r, 4, "account")?.to_owned(),
                captured_psp: r.get(5).cloned().flatten(),
            })
        })
        .collect()
}

/// A ledger row booked against a Payment payhub recorded (a capture or a refund).
#[derive(Debug, Clone)]
pub struct Settle<'a> {
    /// The ledger row.
    pub entry_id: &'a str,
    /// Its Inbound Report.
    pub report_id: &'a str,
    /// The Payment.
    pub payment_id: &'a str,
    /// Its installment.
    pub installment_id: &'a str,
    /// The ledger date.
    pub ledger_date: NaiveDate,
    /// The amount, for the Payment's net amount until its fee is known.
    pub amount_ore: i64,
    /// Why it matched, for the report.
    pub detail: String,
    /// A capture (its installment moves from Collected to Paid); a refund moves nothing.
    pub pays: bool,
}

/// A capture payhub never recorded, booked from its ledger row: a new Payment under the row's pspReference.
#[derive(Debug, Clone)]
pub struct FromLedger<'a> {
    /// The new Payment's id.
    pub payment_id: String,
    /// The ledger row.
    pub entry_id: &'a str,
    /// Its Inbound Report (the new Payment's cause).
    pub report_id: &'a str,
    /// The installment.
    pub installment_id: &'a str,
    /// Captured amount.
    pub amount_ore: i64,
    /// The row's pspReference.
    pub psp_reference: &'a str,
    /// The ledger date (also the collection date).
    pub ledger_date: NaiveDate,
    /// What the report says.
    pub detail: String,
}

/// The fee of a capture, from its `capture-fee` row.
#[derive(Debug, Clone)]
pub struct Fee<'a> {
    /// The fee row.
    pub entry_id: &'a str,
    /// Its Inbound Report.
    pub report_id: &'a str,
    /// The capture's Payment.
    pub payment_id: &'a str,
    /// Its installment.
    pub installment_id: &'a str,
    /// The fee (positive øre).
    pub fee_ore: i64,
}

/// The bookings of one batch of ledger rows.
#[derive(Debug, Clone, Default)]
pub struct Bookings<'a> {
    /// Rows settling Payments payhub recorded.
    pub settle: Vec<Settle<'a>>,
    /// Captures booked from the ledger.
    pub from_ledger: Vec<FromLedger<'a>>,
    /// Fees attached to captures.
    pub fees: Vec<Fee<'a>>,
}

impl Bookings<'_> {
    /// How many ledger rows these book.
    pub fn len(&self) -> usize {
        self.settle.len() + self.from_ledger.len() + self.fees.len()
    }

    /// Whether there is nothing to book.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Writes the bookings of a batch, each kind with one statement per table: the Payments' settled facts (ledger
/// date, net amount, fee), the Payments booked from the ledger, installments `Collected` (or, for a capture
/// booked from the ledger, not yet collected) moved to `Paid`, the ledger rows `booked`, and their Inbound
/// Reports `Matched` with the installment and why.
pub async fn book(conn: &mut AnyConnection, bookings: &Bookings<'_>, now: DateTime<Utc>) -> StoreResult<()> {
    if bookings.is_empty() {
        return Ok(());
    }
    let at = timestamp(now);
    let mut steps = Steps::default();
    steps.push(
        "UPDATE payments SET ledger_date = u.d, ledger_entry_id = u.e, \
         net_amount_ore = COALESCE(payments.amount_ore - payments.fee_ore, payments.amount_ore) \
         FROM (SELECT {r}->>0 AS id, {r}->>1 AS d, {r}->>2 AS e FROM {rows}) AS u \
         WHERE payments.id = u.id AND payments.ledger_entry_id IS NULL",
        bookings.settle.iter().map(|s| json!([s.payment_id, s.ledger_date.to_string(), s.entry_id])).collect(),
        Vec::new(),
    );
    steps.push(
        "INSERT INTO payments (id, installment_id, amount_ore, collection_date, psp_reference, kind, inbound_report_id, \
         created_at, ledger_date, net_amount_ore, ledger_entry_id) \
         SELECT {r}->>0, {r}->>1, CAST({r}->>2 AS BIGINT), {r}->>3, {r}->>4, 'capture', {r}->>5, $2, {r}->>3, \
         CAST({r}->>2 AS BIGINT), {r}->>6 FROM {rows} WHERE true ON CONFLICT (psp_reference) DO NOTHING",
        bookings
            .from_ledger
            .iter()
            .map(|f| {
                json!([
                    f.payment_id,
                    f.installment_id,
                    f.amount_ore,
                    f.ledger_date.to_string(),
                    f.psp_reference,
                    f.report_id,
                    f.entry_id
                ])
            })
            .collect(),
        vec![at.clone()],
    );
    steps.push(
        "UPDATE payments SET fee_ore = u.f, net_amount_ore = payments.amount_ore - u.f \
         FROM (SELECT {r}->>0 AS id, CAST({r}->>1 AS BIGINT) AS f FROM {rows}) AS u WHERE payments.id = u.id",
        bookings.fees.iter().map(|f| json!([f.payment_id, f.fee_ore])).collect(),
        Vec::new(),
    );
    // Forward only: a capture settled moves Collected → Paid; one payhub never saw collected moves
    // Outstanding/Pending → Paid (collected, then seen in the ledger). Refunded states stay.
    let paid: Vec<serde_json::Value> = bookings
        .settle
        .iter()
        .filter(|s| s.pays)
        .map(|s| json!([s.installment_id, "Collected"]))
        .chain(
            bookings
                .from_ledger
                .iter()
                .flat_map(|f| ["Collected", "Outstanding", "Pending"].map(|from| json!([f.installment_id, from]))),
        )
        .collect();
    // Driven by the (installment, status it may move from) pairs, each a primary-key probe: an `OR` of two `IN`
    // lists let PostgreSQL walk every Collected installment for each batch.
    steps.push(
        "UPDATE installments SET status = 'Paid', amount_open_ore = 0, updated_at = $2 \
         FROM (SELECT {r}->>0 AS id, {r}->>1 AS s FROM {rows}) AS u \
         WHERE installments.id = u.id AND installments.status = u.s",
        paid,
        vec![at.clone()],
    );
    let entries: Vec<serde_json::Value> =
        bookings
            .settle
            .iter()
            .map(|s| json!([s.entry_id, s.payment_id, s.installment_id, s.report_id, s.detail]))
            .chain(
                bookings
                    .from_ledger
                    .iter()
                    .map(|f| json!([f.entry_id, f.payment_id, f.installment_id, f.report_id, f.detail])),
            )
            .chain(bookings.fees.iter().map(|f| {
                json!([f.entry_id, f.payment_id, f.installment_id, f.report_id, "fee of the capture's Payment"])
            }))
            .collect();
    steps.push(
        "UPDATE ledger_entries SET status = $2, payment_id = u.p, installment_id = u.i, updated_at = $3 \
         FROM (SELECT {r}->>0 AS id, {r}->>1 AS p, {r}->>2 AS i FROM {rows}) AS u WHERE ledger_entries.id = u.id",
        entries.clone(),
        vec![EntryStatus::Booked.as_str().to_owned(), at.clone()],
    );
    steps.push(
        "UPDATE inbound_reports SET status = $2, installment_id = u.i, detail = u.d, updated_at = $3 \
         FROM (SELECT {r}->>3 AS id, {r}->>2 AS i, {r}->>4 AS d FROM {rows}) AS u WHERE inbound_reports.id = u.id",
        entries,
        vec![Outcome::Matched.as_str().to_owned(), at],
    );
    conn.write(steps).await
}

/// Says on the Inbound Reports of queued rows why they wait (outcome stays `New`: a person decides).
pub async fn note_queued(conn: &mut AnyConnection, notes: &[(&str, String)], now: DateTime<Utc>) -> StoreResult<()> {
    if notes.is_empty() {
        return Ok(());
    }
    let mut steps = Steps::default();
    steps.push(
        "UPDATE inbound_reports SET detail = u.d, updated_at = $2 \
         FROM (SELECT {r}->>0 AS id, {r}->>1 AS d FROM {rows}) AS u WHERE inbound_reports.id = u.id",
        notes.iter().map(|(id, d)| json!([id, d])).collect(),
        vec![timestamp(now)],
    );
    conn.write(steps).await
}

/// The rules of `account_id`, per report sub type, in order: the account's own where it has any for a sub type,
/// else the shipped ones (account `''`).
pub async fn rules(conn: &mut AnyConnection, account_id: &str) -> StoreResult<Vec<(String, String)>> {
    let rows = conn
        .read(
            "SELECT r.sub_type, r.rule FROM match_rules r WHERE r.account_id = $1 \
             OR (r.account_id = '' AND NOT EXISTS (SELECT 1 FROM match_rules o WHERE o.account_id = $1 \
             AND o.sub_type = r.sub_type)) ORDER BY r.sub_type, r.ordinal",
            &[account_id.to_owned()],
        )
        .await?;
    rows.iter().map(|r| Ok((text(r, 0, "sub type")?.to_owned(), text(r, 1, "rule")?.to_owned()))).collect()
}

/// Serialises matching per account across instances (PostgreSQL: the account's row is locked for the rest of
/// the transaction; SQLite's write transaction already excludes other writers).
pub async fn lock_account(conn: &mut AnyConnection, backend: super::Backend, account_id: &str) -> StoreResult<()> {
    if backend == super::Backend::Postgres {
        sqlx::query("SELECT id FROM accounts WHERE id = $1 FOR UPDATE").bind(account_id).fetch_optional(conn).await?;
    }
    Ok(())
}
