//! Payers and their payment profiles: found by email (or phone), created once even when two requests race.

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::{timestamp, StoreError, StoreResult};
use crate::domain::ids::new_id;
use crate::domain::intent::PayerInput;

/// The payer with an email (`$1`), compared lower-cased. `email IS NOT NULL` lets the partial unique index serve
/// the lookup; without it SQLite scans every payer.
pub(crate) const PAYER_BY_EMAIL: &str = "SELECT id FROM payers WHERE email IS NOT NULL AND lower(email) = lower($1)";

/// The payer with the same email (first) or, when no email is given, the same phone.
pub async fn find_payer(conn: &mut AnyConnection, payer: &PayerInput) -> StoreResult<Option<String>> {
    let row = if let Some(email) = &payer.email {
        sqlx::query(PAYER_BY_EMAIL).bind(email).fetch_optional(&mut *conn).await?
    } else if let Some(phone) = &payer.phone {
        sqlx::query("SELECT id FROM payers WHERE phone = $1 ORDER BY created_at LIMIT 1")
            .bind(phone.as_str())
            .fetch_optional(&mut *conn)
            .await?
    } else {
        None
    };
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// Creates the payer, or returns the one a concurrent request created first: the insert does nothing on a
/// uniqueness clash (which on PostgreSQL would otherwise abort the transaction) and the winner's row is read.
pub async fn create_payer(conn: &mut AnyConnection, payer: &PayerInput, now: DateTime<Utc>) -> StoreResult<String> {
    let id = new_id("pay");
    let inserted = sqlx::query(
        "INSERT INTO payers (id, first_name, last_name, email, phone, fields, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT DO NOTHING",
    )
    .bind(&id)
    .bind(&payer.first_name)
    .bind(&payer.last_name)
    .bind(&payer.email)
    .bind(payer.phone.as_ref().map(|p| p.as_str().to_owned()))
    .bind(serde_json::to_string(&payer.fields).unwrap_or_else(|_| "{}".into()))
    .bind(timestamp(now))
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(id);
    }
    find_payer(conn, payer).await?.ok_or_else(|| StoreError::Conflict("payers".into()))
}

const PROFILE_SELECT: &str =
    "SELECT id FROM payment_profiles WHERE payer_id = $1 AND wallet_type = 'Vipps' AND identifier = $2";

/// The payer's Vipps wallet profile with this identifier (phone, or empty when unknown), if it exists.
pub async fn find_profile(
    conn: &mut AnyConnection,
    payer_id: &str,
    phone: Option<&str>,
) -> StoreResult<Option<String>> {
    let row = sqlx::query(PROFILE_SELECT).bind(payer_id).bind(phone.unwrap_or_default()).fetch_optional(conn).await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// Creates the payer's Vipps wallet profile, or returns the one a concurrent request created first.
pub async fn create_profile(
    conn: &mut AnyConnection,
    payer_id: &str,
    phone: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<String> {
    let identifier = phone.unwrap_or_default();
    let id = new_id("pp");
    let inserted = sqlx::query(
        "INSERT INTO payment_profiles (id, payer_id, record_type, wallet_type, identifier, created_at) \
         VALUES ($1, $2, 'Wallet', 'Vipps', $3, $4) ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(&id)
    .bind(payer_id)
    .bind(identifier)
    .bind(timestamp(now))
    .fetch_optional(&mut *conn)
    .await?;
    if inserted.is_some() {
        return Ok(id);
    }
    let row = sqlx::query(PROFILE_SELECT).bind(payer_id).bind(identifier).fetch_one(conn).await?;
    Ok(row.try_get(0)?)
}
