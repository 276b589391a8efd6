//! Each account's webhook registration at Vipps (its id, URL and sealed signing secret), and the registration
//! about to be made, whose Idempotency-Key is stored before the call.

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::{timestamp, StoreResult};

/// An account's registration at Vipps.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Vipps' id of the registration.
    pub webhook_id: String,
    /// The URL Vipps posts to.
    pub url: String,
    /// The signing secret, sealed.
    pub secret_sealed: String,
}

/// The account's registration, if it has one.
pub async fn registration(conn: &mut AnyConnection, account_id: &str) -> StoreResult<Option<Registration>> {
    let row = sqlx::query("SELECT webhook_id, url, secret_sealed FROM vipps_webhooks WHERE account_id = $1")
        .bind(account_id)
        .fetch_optional(conn)
        .await?;
    row.map(|row| {
        Ok(Registration { webhook_id: row.try_get(0)?, url: row.try_get(1)?, secret_sealed: row.try_get(2)? })
    })
    .transpose()
}

/// The Idempotency-Key of the registration of `url` for the account: the one stored by an earlier attempt
/// that did not finish, or `new_key`, stored now (before the call).
pub async fn attempt_key(
    conn: &mut AnyConnection,
    account_id: &str,
    url: &str,
    new_key: &str,
    now: DateTime<Utc>,
) -> StoreResult<String> {
    sqlx::query(
        "INSERT INTO vipps_webhook_attempts (account_id, url, idempotency_key, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING",
    )
    .bind(account_id)
    .bind(url)
    .bind(new_key)
    .bind(timestamp(now))
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query("SELECT idempotency_key FROM vipps_webhook_attempts WHERE account_id = $1 AND url = $2")
        .bind(account_id)
        .bind(url)
        .fetch_one(conn)
        .await?;
    Ok(row.try_get(0)?)
}

/// Keeps the account's new registration in place of any earlier one, and ends its attempts.
pub async fn save_registration(
    conn: &mut AnyConnection,
    account_id: &str,
    registration: &Registration,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM vipps_webhooks WHERE account_id = $1").bind(account_id).execute(&mut *conn).await?;
    sqlx::query("DELETE FROM vipps_webhook_attempts WHERE account_id = $1")
        .bind(account_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO vipps_webhooks (account_id, webhook_id, url, secret_sealed, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(account_id)
    .bind(&registration.webhook_id)
    .bind(&registration.url)
    .bind(&registration.secret_sealed)
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(())
}
