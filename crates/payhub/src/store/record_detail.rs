//! The facts the records' detail pages show besides their own row: a payer, an installment's payments and
//! refunds, one payment or refund found by its id. Each is one read by an indexed column; the timeline is
//! `store::timeline`.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::StoreResult;

/// The payer as the page shows them.
#[derive(Debug, Clone, Default)]
pub struct PayerFacts {
    /// `py_…`
    pub id: String,
    /// First and last name, as given.
    pub name: String,
    /// Email, when known.
    pub email: Option<String>,
    /// Phone, when known.
    pub phone: Option<String>,
}

/// A payment (capture, charge or refund) of the installment.
#[derive(Debug, Clone)]
pub struct PaymentFacts {
    /// `pm_…`
    pub id: String,
    /// Its installment.
    pub installment_id: String,
    /// `capture` or `refund`.
    pub kind: String,
    /// Øre, negative for refunds.
    pub amount_ore: i64,
    /// Vipps' reference.
    pub psp_reference: String,
    /// The collection day.
    pub collection_date: String,
    /// The Inbound Report that reversed it (a person's match undone in Guided Matching): the Payment stays, so
    /// the money's trail does, but it no longer counts.
    pub reversed_by: Option<String>,
}

/// A refund request of the installment.
#[derive(Debug, Clone)]
pub struct RefundFacts {
    /// `rf_…`
    pub id: String,
    /// Its installment.
    pub installment_id: String,
    /// Vipps' reference of the refund, once Vipps answered.
    pub psp_reference: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Øre (positive).
    pub amount_ore: i64,
    /// `Pending`, `Succeeded`, `Failed`.
    pub status: String,
    /// Why it was asked for.
    pub reason: Option<String>,
    /// When it was asked for (stored timestamp).
    pub created_at: String,
}

/// The payer of an installment.
pub async fn payer(conn: &mut AnyConnection, payer_id: &str) -> StoreResult<Option<PayerFacts>> {
    let row = sqlx::query("SELECT id, first_name, last_name, email, phone FROM payers WHERE id = $1")
        .bind(payer_id)
        .fetch_optional(conn)
        .await?;
    row.map(|row| {
        let first: Option<String> = row.try_get("first_name")?;
        let last: Option<String> = row.try_get("last_name")?;
        let name = [first, last].into_iter().flatten().collect::<Vec<_>>().join(" ");
        Ok(PayerFacts { id: row.try_get("id")?, name, email: row.try_get("email")?, phone: row.try_get("phone")? })
    })
    .transpose()
}

const PAYMENT_COLUMNS: &str =
    "SELECT id, installment_id, kind, amount_ore, psp_reference, collection_date, reversed_by_report_id FROM payments";

fn payment_facts(row: &AnyRow) -> StoreResult<PaymentFacts> {
    Ok(PaymentFacts {
        id: row.try_get("id")?,
        installment_id: row.try_get("installment_id")?,
        kind: row.try_get("kind")?,
        amount_ore: row.try_get("amount_ore")?,
        psp_reference: row.try_get("psp_reference")?,
        collection_date: row.try_get("collection_date")?,
        reversed_by: row.try_get("reversed_by_report_id")?,
    })
}

/// The installment's payments, oldest first.
pub async fn payments(conn: &mut AnyConnection, installment_id: &str) -> StoreResult<Vec<PaymentFacts>> {
    let rows = sqlx::query(&format!("{PAYMENT_COLUMNS} WHERE installment_id = $1 ORDER BY created_at, id"))
        .bind(installment_id)
        .fetch_all(conn)
        .await?;
    rows.iter().map(payment_facts).collect()
}

/// One payment by its id.
pub async fn payment(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<PaymentFacts>> {
    let row = sqlx::query(&format!("{PAYMENT_COLUMNS} WHERE id = $1")).bind(id).fetch_optional(conn).await?;
    row.as_ref().map(payment_facts).transpose()
}

const REFUND_COLUMNS: &str =
    "SELECT id, installment_id, amount_ore, status, reason, psp_reference, error, created_at FROM refunds";

fn refund_facts(row: &AnyRow) -> StoreResult<RefundFacts> {
    Ok(RefundFacts {
        id: row.try_get("id")?,
        installment_id: row.try_get("installment_id")?,
        psp_reference: row.try_get("psp_reference")?,
        error: row.try_get("error")?,
        amount_ore: row.try_get("amount_ore")?,
        status: row.try_get("status")?,
        reason: row.try_get("reason")?,
        created_at: row.try_get("created_at")?,
    })
}

/// The installment's refund requests, oldest first.
pub async fn refunds(conn: &mut AnyConnection, installment_id: &str) -> StoreResult<Vec<RefundFacts>> {
    let rows = sqlx::query(&format!("{REFUND_COLUMNS} WHERE installment_id = $1 ORDER BY created_at, id"))
        .bind(installment_id)
        .fetch_all(conn)
        .await?;
    rows.iter().map(refund_facts).collect()
}

/// One refund request by its id.
pub async fn refund(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<RefundFacts>> {
    let row = sqlx::query(&format!("{REFUND_COLUMNS} WHERE id = $1")).bind(id).fetch_optional(conn).await?;
    row.as_ref().map(refund_facts).transpose()
}
