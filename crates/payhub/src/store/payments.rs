//! Payments: real movements of money on an installment (captures positive, refunds negative), at most one per
//! Vipps psp reference.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{AnyConnection, Row};

use super::sql::date;
use super::{timestamp, StoreResult};
use crate::domain::ids::new_id;

/// A real movement of money on an installment.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PaymentRow {
    /// `pmt_…`
    pub id: String,
    /// Signed amount in øre (refunds are negative).
    pub amount_ore: i64,
    /// When the money moved.
    pub collection_date: NaiveDate,
    /// Vipps' reference of the operation.
    pub psp_reference: String,
    /// `capture` or `refund`.
    pub kind: String,
    /// The inbound report that caused it.
    pub inbound_report_id: Option<String>,
    /// The ledger date it settled on (from the Vipps settlement ledger).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger_date: Option<NaiveDate>,
    /// The fee Vipps kept for it, in øre (positive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fee_ore: Option<i64>,
    /// Amount less fee, in øre, once settled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net_amount_ore: Option<i64>,
    /// The payout that paid it out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payout_id: Option<String>,
}

/// What the refunds among `payments` gave back, in øre (positive): shown beside the open amount, which a
/// refund never changes.
pub fn refunded_ore(payments: &[PaymentRow]) -> i64 {
    payments.iter().filter(|p| p.amount_ore < 0).map(|p| -p.amount_ore).sum()
}

/// Records a payment once per psp reference; returns its id when it was new.
pub async fn insert_payment(
    conn: &mut AnyConnection,
    installment_id: &str,
    amount_ore: i64,
    psp_reference: &str,
    kind: &str,
    inbound_report_id: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<Option<String>> {
    let id = new_id("pmt");
    let done = sqlx::query(
        "INSERT INTO payments (id, installment_id, amount_ore, collection_date, psp_reference, kind, inbound_report_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (psp_reference) DO NOTHING",
    )
    .bind(&id)
    .bind(installment_id)
    .bind(amount_ore)
    .bind(crate::domain::schedule::oslo_date(now).to_string())
    .bind(psp_reference)
    .bind(kind)
    .bind(inbound_report_id)
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok((done.rows_affected() == 1).then_some(id))
}

/// The payments of an installment, oldest first (a Payment an undone match reversed is no longer money on it).
pub async fn payments_of(conn: &mut AnyConnection, installment_id: &str) -> StoreResult<Vec<PaymentRow>> {
    let rows = sqlx::query(
        "SELECT * FROM payments WHERE installment_id = $1 AND reversed_by_report_id IS NULL ORDER BY created_at, id",
    )
    .bind(installment_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(PaymentRow {
                id: row.try_get("id")?,
                amount_ore: row.try_get("amount_ore")?,
                collection_date: date(row, "collection_date")?,
                psp_reference: row.try_get("psp_reference")?,
                kind: row.try_get("kind")?,
                inbound_report_id: row.try_get("inbound_report_id")?,
                ledger_date: super::sql::opt_date(row, "ledger_date")?,
                fee_ore: row.try_get("fee_ore")?,
                net_amount_ore: row.try_get("net_amount_ore")?,
                payout_id: row.try_get("payout_id")?,
            })
        })
        .collect()
}

/// The installment a payment belongs to.
pub async fn installment_of_payment(conn: &mut AnyConnection, payment_id: &str) -> StoreResult<Option<String>> {
    Ok(sqlx::query("SELECT installment_id FROM payments WHERE id = $1")
        .bind(payment_id)
        .fetch_optional(conn)
        .await?
        .map(|r| r.try_get(0))
        .transpose()?)
}
