//! Setup URLs and renewals: the unguessable token behind `/renew/{token}` (one per recurring payment), the
//! mandate a payer asks for there when the recurring payment's agreement was stopped or expired, and the move
//! of the recurring payment onto that mandate once Vipps says it is active. Also the payment intent a page
//! records for a submission about an existing record (a Setup URL, a PayLink).

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{AnyConnection, Row};

use super::{map_conflict, timestamp, StoreResult};

/// The recurring payment's Setup URL token, made with `fresh` the first time it is asked for. Two first asks at
/// once agree: the recurring payment id is unique, the loser's insert does nothing and both read the winner's.
pub async fn setup_token_of(
    conn: &mut AnyConnection,
    recurring_id: &str,
    fresh: &str,
    now: DateTime<Utc>,
) -> StoreResult<String> {
    sqlx::query(
        "INSERT INTO renew_links (token, recurring_payment_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(fresh)
    .bind(recurring_id)
    .bind(timestamp(now))
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query("SELECT token FROM renew_links WHERE recurring_payment_id = $1")
        .bind(recurring_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(row.try_get("token")?)
}

/// The recurring payment's Setup URL token, if it has one yet (read without writing: most asks find it).
pub async fn existing_setup_token(conn: &mut AnyConnection, recurring_id: &str) -> StoreResult<Option<String>> {
    let row = sqlx::query("SELECT token FROM renew_links WHERE recurring_payment_id = $1")
        .bind(recurring_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(|r| r.try_get("token")).transpose()?)
}

/// The recurring payment a Setup URL token opens.
pub async fn recurring_of_setup_token(conn: &mut AnyConnection, token: &str) -> StoreResult<Option<String>> {
    let row = sqlx::query("SELECT recurring_payment_id FROM renew_links WHERE token = $1")
        .bind(token)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(|r| r.try_get("recurring_payment_id")).transpose()?)
}

/// The renewal mandate of a recurring payment still waiting for the payer (`Pending`), if any. A renewal marked
/// waiting whose mandate has left `Pending` (approved, rejected, expired) stops waiting here, in the caller's
/// transaction, so a new one may be recorded.
pub async fn open_renewal(conn: &mut AnyConnection, recurring_id: &str) -> StoreResult<Option<String>> {
    let row = sqlx::query(
        "SELECT r.mandate_id, m.status FROM renewals r JOIN mandates m ON m.id = r.mandate_id \
         WHERE r.recurring_payment_id = $1 AND r.waiting = 1",
    )
    .bind(recurring_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let (mandate_id, status): (String, String) = (row.try_get(0)?, row.try_get(1)?);
    if status == "Pending" {
        return Ok(Some(mandate_id));
    }
    sqlx::query("UPDATE renewals SET waiting = 0 WHERE mandate_id = $1").bind(&mandate_id).execute(&mut *conn).await?;
    Ok(None)
}

/// The recurring payment a mandate was drafted to renew, if it is a renewal.
pub async fn renewed_by(conn: &mut AnyConnection, mandate_id: &str) -> StoreResult<Option<String>> {
    let row = sqlx::query("SELECT recurring_payment_id FROM renewals WHERE mandate_id = $1")
        .bind(mandate_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// The renewal mandate an intent asked for (a Setup URL submission), if any.
pub async fn renewal_of_intent(conn: &mut AnyConnection, intent_id: &str) -> StoreResult<Option<String>> {
    let row = sqlx::query(
        "SELECT r.mandate_id FROM renewals r JOIN mandates m ON m.id = r.mandate_id WHERE m.intent_id = $1",
    )
    .bind(intent_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// A renewal mandate to record before its agreement is drafted (its id is the draft's Idempotency-Key).
#[derive(Debug, Clone)]
pub struct NewRenewal<'a> {
    /// `mdt_…`, also the Idempotency-Key of the draft.
    pub id: &'a str,
    /// The intent the Setup URL's submission became.
    pub intent_id: &'a str,
    /// The recurring payment it renews.
    pub recurring_id: &'a str,
    /// The merchant account.
    pub account_id: &'a str,
    /// The payer.
    pub payer_id: &'a str,
    /// The payer's profile.
    pub payment_profile_id: Option<&'a str>,
    /// Agreement product name.
    pub product_name: &'a str,
    /// Merchant agreement page.
    pub merchant_agreement_url: &'a str,
    /// Where Vipps sends the payer back.
    pub redirect_url: &'a str,
    /// The phone number sent to Vipps.
    pub customer_phone: Option<&'a str>,
    /// Agreement price in øre (the recurring payment's amount).
    pub price_ore: i64,
    /// Vipps interval unit.
    pub interval_unit: &'a str,
    /// Vipps interval count.
    pub interval_count: i64,
}

/// Records a renewal mandate (`Pending`, draft `CREATING`) and its renewal, waiting. A second one for a
/// recurring payment that already has one waiting is a conflict (the schema's `renewals_waiting`); the caller
/// rolls the transaction back.
pub async fn insert_renewal(conn: &mut AnyConnection, new: &NewRenewal<'_>, now: DateTime<Utc>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO mandates (id, account_id, payer_id, payment_profile_id, intent_id, status, vipps_status, \
         idempotency_key, product_name, merchant_agreement_url, redirect_url, customer_phone, price_ore, \
         interval_unit, interval_count, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'Pending', 'CREATING', $1, $6, $7, $8, $9, $10, $11, $12, $13, $13)",
    )
    .bind(new.id)
    .bind(new.account_id)
    .bind(new.payer_id)
    .bind(new.payment_profile_id)
    .bind(new.intent_id)
    .bind(new.product_name)
    .bind(new.merchant_agreement_url)
    .bind(new.redirect_url)
    .bind(new.customer_phone)
    .bind(new.price_ore)
    .bind(new.interval_unit)
    .bind(new.interval_count)
    .bind(timestamp(now))
    .execute(&mut *conn)
    .await?;
    sqlx::query("INSERT INTO renewals (mandate_id, recurring_payment_id, waiting, created_at) VALUES ($1, $2, 1, $3)")
        .bind(new.id)
        .bind(new.recurring_id)
        .bind(timestamp(now))
        .execute(conn)
        .await
        .map_err(map_conflict)?;
    Ok(())
}

/// Moves an Ended recurring payment onto its renewal mandate: Active again, collecting from `next_period` (due
/// `next_date`). Only an Ended one moves (this is the one way back from Ended); returns whether it moved.
pub async fn carry_over(
    conn: &mut AnyConnection,
    recurring_id: &str,
    mandate_id: &str,
    next_period: i64,
    next_date: NaiveDate,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE recurring_payments SET mandate_id = $2, status = 'Active', status_reason = NULL, paused_until = NULL, \
         next_period = $3, next_collection_date = $4, updated_at = $5 WHERE id = $1 AND status = 'Ended'",
    )
    .bind(recurring_id)
    .bind(mandate_id)
    .bind(next_period)
    .bind(next_date.to_string())
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A payment intent a page recorded for a submission about an existing record (a Setup URL, a PayLink).
#[derive(Debug, Clone)]
pub struct PageIntent<'a> {
    /// `pi_…`
    pub id: &'a str,
    /// The submission's Inbound Report.
    pub report_id: &'a str,
    /// The merchant account.
    pub account_id: &'a str,
    /// The payer.
    pub payer_id: &'a str,
    /// The installment it pays, if any.
    pub installment_id: Option<&'a str>,
    /// Where the payer goes on success (and otherwise: the page tells which).
    pub return_url: &'a str,
    /// Origin: the channel (`PayLink`, `SetupURL`).
    pub origin: &'a str,
}

/// Records a page's intent (`Processing`; the flow moves it on).
pub async fn insert_page_intent(conn: &mut AnyConnection, new: &PageIntent<'_>, now: DateTime<Utc>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO payment_intents (id, inbound_report_id, status, account_id, payer_id, installment_id, success_url, \
         failure_url, origin, created_at, updated_at) VALUES ($1, $2, 'Processing', $3, $4, $5, $6, $6, $7, $8, $8)",
    )
    .bind(new.id)
    .bind(new.report_id)
    .bind(new.account_id)
    .bind(new.payer_id)
    .bind(new.installment_id)
    .bind(new.return_url)
    .bind(new.origin)
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(())
}
