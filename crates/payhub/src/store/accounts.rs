//! The `accounts` table: merchant accounts with their secrets sealed.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{get_bool, map_conflict, parse_timestamp, timestamp, StoreResult};
use crate::domain::account::{AccountSettings, RemainderHandling};

/// A stored merchant account: its settings and the sealed forms of its secrets.
#[derive(Debug, Clone)]
pub struct AccountRecord {
    /// `acc_…`
    pub id: String,
    /// The validated settings.
    pub settings: AccountSettings,
    /// Client secret sealed under the master key.
    pub client_secret_sealed: String,
    /// Subscription key sealed under the master key.
    pub subscription_key_sealed: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, name, merchant_serial_number, client_key, client_secret_sealed, subscription_key_sealed, \
    is_test, product_name, merchant_agreement_url, retry_days, is_default, reconciliation_enabled, \
    initial_ledger_date, api_base_url, created_at, updated_at, parameter_defaults, cancel_agreement_on_cancel, remainder_handling";

fn from_row(row: &AnyRow) -> StoreResult<AccountRecord> {
    let date: Option<String> = row.try_get("initial_ledger_date")?;
    Ok(AccountRecord {
        id: row.try_get("id")?,
        settings: AccountSettings {
            name: row.try_get("name")?,
            merchant_serial_number: row.try_get("merchant_serial_number")?,
            client_key: row.try_get("client_key")?,
            is_test: get_bool(row, "is_test")?,
            product_name: row.try_get("product_name")?,
            merchant_agreement_url: row.try_get("merchant_agreement_url")?,
            retry_days: row.try_get("retry_days")?,
            is_default: get_bool(row, "is_default")?,
            reconciliation_enabled: get_bool(row, "reconciliation_enabled")?,
            initial_ledger_date: date.and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok()),
            api_base_url: row.try_get("api_base_url")?,
            parameter_defaults: serde_json::from_str(&row.try_get::<String, _>("parameter_defaults")?)
                .unwrap_or_default(),
            cancel_agreement_on_cancel: get_bool(row, "cancel_agreement_on_cancel")?,
            remainder_handling: RemainderHandling::parse(&row.try_get::<String, _>("remainder_handling")?)
                .unwrap_or_default(),
        },
        client_secret_sealed: row.try_get("client_secret_sealed")?,
        subscription_key_sealed: row.try_get("subscription_key_sealed")?,
        created_at: parse_timestamp(&row.try_get::<String, _>("created_at")?)?,
        updated_at: parse_timestamp(&row.try_get::<String, _>("updated_at")?)?,
    })
}

/// Every account, default first, then by name.
pub async fn list(conn: &mut AnyConnection) -> StoreResult<Vec<AccountRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM accounts ORDER BY is_default DESC, lower(name)");
    sqlx::query(&sql).fetch_all(conn).await?.iter().map(from_row).collect()
}

/// One account by id.
pub async fn get(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<AccountRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM accounts WHERE id = $1");
    sqlx::query(&sql).bind(id).fetch_optional(conn).await?.as_ref().map(from_row).transpose()
}

/// One account by name (case-insensitive), as a Payment API `Target` names it.
pub async fn get_by_name(conn: &mut AnyConnection, name: &str) -> StoreResult<Option<AccountRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM accounts WHERE lower(name) = lower($1)");
    sqlx::query(&sql).bind(name).fetch_optional(conn).await?.as_ref().map(from_row).transpose()
}

/// The default account, if any exists.
pub async fn get_default(conn: &mut AnyConnection) -> StoreResult<Option<AccountRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM accounts WHERE is_default = $1");
    sqlx::query(&sql).bind(true).fetch_optional(conn).await?.as_ref().map(from_row).transpose()
}

/// Inserts a new account. A duplicate name is [`super::StoreError::Conflict`].
pub async fn insert(conn: &mut AnyConnection, record: &AccountRecord) -> StoreResult<()> {
    let s = &record.settings;
    let sql = format!("INSERT INTO accounts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)");
    sqlx::query(&sql)
        .bind(&record.id)
        .bind(&s.name)
        .bind(&s.merchant_serial_number)
        .bind(&s.client_key)
        .bind(&record.client_secret_sealed)
        .bind(&record.subscription_key_sealed)
        .bind(s.is_test)
        .bind(&s.product_name)
        .bind(&s.merchant_agreement_url)
        .bind(s.retry_days)
        .bind(s.is_default)
        .bind(s.reconciliation_enabled)
        .bind(s.initial_ledger_date.map(|d| d.to_string()))
        .bind(&s.api_base_url)
        .bind(timestamp(record.created_at))
        .bind(timestamp(record.updated_at))
        .bind(serde_json::to_string(&s.parameter_defaults).unwrap_or_else(|_| "{}".into()))
        .bind(s.cancel_agreement_on_cancel)
        .bind(s.remainder_handling.as_str())
        .execute(conn)
        .await
        .map_err(map_conflict)?;
    Ok(())
}

/// Writes every field of an existing account. Returns false when no such account exists.
pub async fn update(conn: &mut AnyConnection, record: &AccountRecord) -> StoreResult<bool> {
    let s = &record.settings;
    let done = sqlx::query(
        "UPDATE accounts SET name = $2, merchant_serial_number = $3, client_key = $4, client_secret_sealed = $5, \
         subscription_key_sealed = $6, is_test = $7, product_name = $8, merchant_agreement_url = $9, retry_days = $10, \
         is_default = $11, reconciliation_enabled = $12, initial_ledger_date = $13, api_base_url = $14, updated_at = $15, \
         parameter_defaults = $16, cancel_agreement_on_cancel = $17, remainder_handling = $18 \
         WHERE id = $1",
    )
    .bind(&record.id)
    .bind(&s.name)
    .bind(&s.merchant_serial_number)
    .bind(&s.client_key)
    .bind(&record.client_secret_sealed)
    .bind(&record.subscription_key_sealed)
    .bind(s.is_test)
    .bind(&s.product_name)
    .bind(&s.merchant_agreement_url)
    .bind(s.retry_days)
    .bind(s.is_default)
    .bind(s.reconciliation_enabled)
    .bind(s.initial_ledger_date.map(|d| d.to_string()))
    .bind(&s.api_base_url)
    .bind(timestamp(record.updated_at))
    .bind(serde_json::to_string(&s.parameter_defaults).unwrap_or_else(|_| "{}".into()))
    .bind(s.cancel_agreement_on_cancel)
    .bind(s.remainder_handling.as_str())
    .execute(conn)
    .await
    .map_err(map_conflict)?;
    Ok(done.rows_affected() == 1)
}

/// Clears the default flag on every account but `keep` (before `keep` is made the default).
pub async fn clear_default_except(conn: &mut AnyConnection, keep: &str) -> StoreResult<()> {
    sqlx::query("UPDATE accounts SET is_default = $1 WHERE is_default = $2 AND id <> $3")
        .bind(false)
        .bind(true)
        .bind(keep)
        .execute(conn)
        .await?;
    Ok(())
}

/// Makes the oldest account the default when none is (after the default was deleted). Returns its id.
pub async fn promote_oldest_to_default(conn: &mut AnyConnection, at: DateTime<Utc>) -> StoreResult<Option<String>> {
    let has_default =
        sqlx::query("SELECT id FROM accounts WHERE is_default = $1").bind(true).fetch_optional(&mut *conn).await?;
    if has_default.is_some() {
        return Ok(None);
    }
    let oldest: Option<String> = sqlx::query("SELECT id FROM accounts ORDER BY created_at, id LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
    if let Some(id) = &oldest {
        sqlx::query("UPDATE accounts SET is_default = $1, updated_at = $2 WHERE id = $3")
            .bind(true)
            .bind(timestamp(at))
            .bind(id)
            .execute(conn)
            .await?;
    }
    Ok(oldest)
}

/// Deletes an account. Returns false when no such account exists.
pub async fn delete(conn: &mut AnyConnection, id: &str) -> StoreResult<bool> {
    let done = sqlx::query("DELETE FROM accounts WHERE id = $1").bind(id).execute(conn).await?;
    Ok(done.rows_affected() == 1)
}

/// Whether any payment record (an intent, an installment, a mandate) belongs to the account: such an account
/// cannot be deleted, or its payments would lose the credentials that collect, capture and refund them.
pub async fn has_records(conn: &mut AnyConnection, id: &str) -> StoreResult<bool> {
    let row = sqlx::query(
        "SELECT EXISTS (SELECT 1 FROM payment_intents WHERE account_id = $1) \
         OR EXISTS (SELECT 1 FROM installments WHERE account_id = $1) \
         OR EXISTS (SELECT 1 FROM mandates WHERE account_id = $1)",
    )
    .bind(id)
    .fetch_one(conn)
    .await?;
    Ok(row.try_get::<bool, _>(0).or_else(|_| row.try_get::<i64, _>(0).map(|n| n != 0))?)
}

/// How many accounts exist.
pub async fn count(conn: &mut AnyConnection) -> StoreResult<i64> {
    Ok(sqlx::query("SELECT COUNT(*) FROM accounts").fetch_one(conn).await?.try_get(0)?)
}
