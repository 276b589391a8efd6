//! PayLinks: the unguessable token behind `/pay/{token}`, one per installment, and what its page shows.

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::{timestamp, StoreResult};

/// The installment's PayLink token, made with `fresh` the first time it is asked for. Two first asks at once
/// agree: the installment id is unique, the loser's insert does nothing and both read the winner's token.
pub async fn token_of(
    conn: &mut AnyConnection,
    installment_id: &str,
    fresh: &str,
    now: DateTime<Utc>,
) -> StoreResult<String> {
    sqlx::query("INSERT INTO paylinks (token, installment_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(fresh)
        .bind(installment_id)
        .bind(timestamp(now))
        .execute(&mut *conn)
        .await?;
    let row = sqlx::query("SELECT token FROM paylinks WHERE installment_id = $1")
        .bind(installment_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(row.try_get("token")?)
}

/// The installment's PayLink token, if it has one yet (read without writing: most asks find it).
pub async fn existing_token(conn: &mut AnyConnection, installment_id: &str) -> StoreResult<Option<String>> {
    let row = sqlx::query("SELECT token FROM paylinks WHERE installment_id = $1")
        .bind(installment_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(|r| r.try_get("token")).transpose()?)
}

/// The installment a PayLink token opens.
pub async fn installment_of(conn: &mut AnyConnection, token: &str) -> StoreResult<Option<String>> {
    let row = sqlx::query("SELECT installment_id FROM paylinks WHERE token = $1")
        .bind(token)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(|r| r.try_get("installment_id")).transpose()?)
}

/// The payee's name (the merchant account) and the payer's phone (on the payer, else the one the installment's
/// Vipps payment was made with), for the page.
pub async fn payee_and_phone(
    conn: &mut AnyConnection,
    installment: &super::installments::InstallmentRow,
) -> StoreResult<(Option<String>, Option<String>)> {
    let payee = sqlx::query("SELECT name FROM accounts WHERE id = $1")
        .bind(&installment.account_id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| r.try_get("name"))
        .transpose()?;
    let phone = sqlx::query(
        "SELECT COALESCE((SELECT phone FROM payers WHERE id = $1), \
         (SELECT customer_phone FROM vipps_payments WHERE installment_id = $2 LIMIT 1)) AS phone",
    )
    .bind(&installment.payer_id)
    .bind(&installment.id)
    .fetch_one(&mut *conn)
    .await?
    .try_get::<Option<String>, _>("phone")?;
    Ok((payee, phone))
}

/// Whether a PayLink can pay this installment now: open, with money open, and paid by its own ePayment (an
/// installment under a mandate is charged on its agreement, so a link would pay it twice).
pub fn payable(installment: &super::installments::InstallmentRow) -> bool {
    use crate::domain::status::InstallmentStatus::{Outstanding, Pending};
    matches!(installment.status, Outstanding | Pending)
        && installment.amount_open_ore > 0
        && installment.mandate_id.is_none()
        && installment.recurring_payment_id.is_none()
}

/// The phone number on the payer, if any.
pub async fn payer_phone(conn: &mut AnyConnection, payer_id: &str) -> StoreResult<Option<String>> {
    let row = sqlx::query("SELECT phone FROM payers WHERE id = $1").bind(payer_id).fetch_optional(&mut *conn).await?;
    Ok(row.and_then(|r| r.try_get::<Option<String>, _>("phone").ok().flatten()))
}

/// The first Vipps payment of an installment paid through its PayLink (its Idempotency-Key derived from the
/// installment and the attempt), recorded before the call.
#[derive(Debug, Clone)]
pub struct LinkPayment<'a> {
    /// The Vipps reference: the installment's payment reference.
    pub reference: &'a str,
    /// The installment.
    pub installment_id: &'a str,
    /// The merchant account.
    pub account_id: &'a str,
    /// The create call's Idempotency-Key.
    pub idempotency_key: &'a str,
    /// The open amount, in øre.
    pub amount_ore: i64,
    /// The phone number sent to Vipps.
    pub customer_phone: Option<&'a str>,
    /// The payment description sent to Vipps.
    pub description: Option<&'a str>,
}

/// Records `new` (`CREATING`) unless the installment has a Vipps payment already (made by the intake, or by
/// another tab a moment ago: the installment id is unique among Vipps payments). Returns whether it was recorded.
pub async fn insert_payment_if_none(
    conn: &mut AnyConnection,
    new: &LinkPayment<'_>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO vipps_payments (reference, installment_id, account_id, idempotency_key, amount_ore, state, \
         customer_phone, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'CREATING', $6, $7, $8, $8) \
         ON CONFLICT DO NOTHING",
    )
    .bind(new.reference)
    .bind(new.installment_id)
    .bind(new.account_id)
    .bind(new.idempotency_key)
    .bind(new.amount_ore)
    .bind(new.customer_phone)
    .bind(new.description)
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
