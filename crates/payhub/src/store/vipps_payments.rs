//! The Vipps ePayment behind a one-time installment: its key, and what Vipps last said of it.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::sql::{list, CHUNK};
use super::{timestamp, StoreResult};
use crate::domain::vipps_state::PaymentState;

/// The Vipps payment behind an installment.
#[derive(Debug, Clone)]
pub struct VippsPaymentRow {
    /// The Vipps reference (`pi-…`).
    pub reference: String,
    /// The installment.
    pub installment_id: String,
    /// The account.
    pub account_id: String,
    /// The Idempotency-Key of the create call (derived from the installment).
    pub idempotency_key: String,
    /// Amount in øre.
    pub amount_ore: i64,
    /// `CREATING` (not yet confirmed by Vipps), then Vipps' state.
    pub state: PaymentState,
    /// The phone number sent to Vipps.
    pub customer_phone: Option<String>,
    /// The payment description sent to Vipps.
    pub description: Option<String>,
    /// The landing page.
    pub redirect_url: Option<String>,
    /// Authorized total last seen.
    pub authorized_ore: i64,
    /// Captured total as payhub recorded it (its capture Payments), which trails Vipps' when a capture payhub
    /// did not make is still to be recorded.
    pub captured_ore: i64,
    /// Refunded total last seen.
    pub refunded_ore: i64,
    /// Cancelled total last seen.
    pub cancelled_ore: i64,
    /// What Vipps said when it last refused or did not answer.
    pub last_error: Option<String>,
}

fn vipps_payment_from_row(row: &AnyRow) -> StoreResult<VippsPaymentRow> {
    Ok(VippsPaymentRow {
        reference: row.try_get("reference")?,
        installment_id: row.try_get("installment_id")?,
        account_id: row.try_get("account_id")?,
        idempotency_key: row.try_get("idempotency_key")?,
        amount_ore: row.try_get("amount_ore")?,
        state: PaymentState::parse(&row.try_get::<String, _>("state")?),
        customer_phone: row.try_get("customer_phone")?,
        description: row.try_get("description")?,
        redirect_url: row.try_get("redirect_url")?,
        authorized_ore: row.try_get("authorized_ore")?,
        captured_ore: row.try_get("captured_ore")?,
        refunded_ore: row.try_get("refunded_ore")?,
        cancelled_ore: row.try_get("cancelled_ore")?,
        last_error: row.try_get("last_error")?,
    })
}

/// The Vipps payment with this reference.
pub async fn vipps_payment(conn: &mut AnyConnection, reference: &str) -> StoreResult<Option<VippsPaymentRow>> {
    sqlx::query("SELECT * FROM vipps_payments WHERE reference = $1")
        .bind(reference)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(vipps_payment_from_row)
        .transpose()
}

/// The Vipps payment of an installment.
pub async fn vipps_payment_of(conn: &mut AnyConnection, installment_id: &str) -> StoreResult<Option<VippsPaymentRow>> {
    sqlx::query("SELECT * FROM vipps_payments WHERE installment_id = $1")
        .bind(installment_id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(vipps_payment_from_row)
        .transpose()
}

/// References of Vipps payments that are not settled yet (for the polling beat), least recently checked first
/// (never checked first; with [`mark_checked`] on what was read, each is read within ceil(open / limit) polls):
/// creates not
/// confirmed and recorded before `creating_before` (a younger one is still in its caller's hands), payments
/// waiting for the payer, and authorized payments of which nothing is captured yet.
pub async fn open_vipps_payments(
    conn: &mut AnyConnection,
    limit: i64,
    creating_before: DateTime<Utc>,
) -> StoreResult<Vec<String>> {
    let rows = sqlx::query(
        "SELECT reference FROM vipps_payments WHERE (state = 'CREATING' AND created_at < $2) OR state = 'CREATED' \
         OR (state = 'AUTHORIZED' AND captured_ore = 0 AND cancelled_ore < authorized_ore) ORDER BY checked_at, updated_at LIMIT $1",
    )
    .bind(limit)
    .bind(timestamp(creating_before))
    .fetch_all(conn)
    .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Stamps payments as read by the poll now, which puts them behind every open payment read less recently.
pub async fn mark_checked(conn: &mut AnyConnection, references: &[String], now: DateTime<Utc>) -> StoreResult<()> {
    for chunk in references.chunks(CHUNK * 4) {
        let sql = format!("UPDATE vipps_payments SET checked_at = $1 WHERE reference IN ({})", list(2, chunk.len()));
        let mut query = sqlx::query(&sql).bind(timestamp(now));
        for reference in chunk {
            query = query.bind(reference);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Records what Vipps says of a payment, where `state` is a move forward from the recorded one
/// ([`PaymentState::may_become`]): a late or stale answer never moves a payment back. `totals` are authorized,
/// captured (as payhub recorded it), refunded and cancelled. False when the payment was not written.
#[allow(clippy::too_many_arguments)]
pub async fn update_vipps_payment(
    conn: &mut AnyConnection,
    reference: &str,
    state: &PaymentState,
    redirect_url: Option<&str>,
    psp_reference: Option<&str>,
    totals: Option<[i64; 4]>,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let [authorized, captured, refunded, cancelled] = totals.map_or([None; 4], |t| t.map(Some));
    // The states it may not come from; the list holds our own constants.
    let from: Vec<String> =
        PaymentState::KNOWN.iter().filter(|s| !s.may_become(state)).map(|s| format!("'{}'", s.as_str())).collect();
    let guard = if from.is_empty() { String::new() } else { format!(" AND state NOT IN ({})", from.join(", ")) };
    let done = sqlx::query(&format!(
        "UPDATE vipps_payments SET state = $2, redirect_url = COALESCE($3, redirect_url), psp_reference = COALESCE($4, psp_reference), \
         authorized_ore = COALESCE($5, authorized_ore), captured_ore = COALESCE($6, captured_ore), refunded_ore = COALESCE($7, refunded_ore), \
         cancelled_ore = COALESCE($8, cancelled_ore), last_error = $9, updated_at = $10 WHERE reference = $1{guard}"
    ))
    .bind(reference)
    .bind(state.as_str())
    .bind(redirect_url)
    .bind(psp_reference)
    .bind(authorized)
    .bind(captured)
    .bind(refunded)
    .bind(cancelled)
    .bind(error)
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
