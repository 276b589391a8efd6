//! Refund requests: recorded (with the Idempotency-Key derived from their id, and the caller's own API
//! IdempotencyKey when there is one, unique per caller) before Vipps is asked, then finished once as Succeeded or
//! Failed.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{timestamp, StoreResult};
use crate::domain::ids::new_id;

/// A refund request.
#[derive(Debug, Clone)]
pub struct RefundRow {
    /// `rf_…`
    pub id: String,
    /// The installment.
    pub installment_id: String,
    /// Amount in øre (positive).
    pub amount_ore: i64,
    /// `Pending`, `Succeeded`, `Failed`.
    pub status: String,
    /// The Idempotency-Key sent to Vipps.
    pub idempotency_key: String,
    /// Vipps' reference of the refund.
    pub psp_reference: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Reason given.
    pub reason: Option<String>,
}

fn refund_from_row(row: &AnyRow) -> StoreResult<RefundRow> {
    Ok(RefundRow {
        id: row.try_get("id")?,
        installment_id: row.try_get("installment_id")?,
        amount_ore: row.try_get("amount_ore")?,
        status: row.try_get("status")?,
        idempotency_key: row.try_get("idempotency_key")?,
        psp_reference: row.try_get("psp_reference")?,
        error: row.try_get("error")?,
        reason: row.try_get("reason")?,
    })
}

/// What can still be refunded: captured minus refunds pending or done. (PostgreSQL sums `BIGINT` into
/// `NUMERIC`, hence the casts.)
pub async fn refundable_ore(conn: &mut AnyConnection, installment_id: &str) -> StoreResult<i64> {
    let captured = captured_ore(&mut *conn, installment_id).await?;
    let reserved: i64 = sqlx::query("SELECT CAST(COALESCE(SUM(amount_ore), 0) AS BIGINT) FROM refunds WHERE installment_id = $1 AND status <> 'Failed'")
        .bind(installment_id)
        .fetch_one(conn)
        .await?
        .try_get(0)?;
    Ok(captured - reserved)
}

/// The caller's own IdempotencyKey of a refund asked for through the Payment API: unique per scope (the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Whose key it is (`refund:<caller id>`).
    pub scope: String,
    /// The key as the caller sent it.
    pub key: String,
}

/// Stores a new pending refund; its Vipps Idempotency-Key is derived from its own id. With `api_key`, the
/// insert fails on the unique index when the caller's key already made a refund.
pub async fn insert_refund(
    conn: &mut AnyConnection,
    installment_id: &str,
    amount_ore: i64,
    reason: Option<&str>,
    api_key: Option<&ApiKey>,
    now: DateTime<Utc>,
) -> StoreResult<RefundRow> {
    let id = new_id("rf");
    let key = id.clone();
    sqlx::query(
        "INSERT INTO refunds (id, installment_id, amount_ore, reason, status, idempotency_key, api_scope, api_key, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'Pending', $5, $6, $7, $8, $8)",
    )
    .bind(&id)
    .bind(installment_id)
    .bind(amount_ore)
    .bind(reason)
    .bind(&key)
    .bind(api_key.map(|k| k.scope.as_str()))
    .bind(api_key.map(|k| k.key.as_str()))
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(RefundRow {
        id,
        installment_id: installment_id.to_owned(),
        amount_ore,
        status: "Pending".into(),
        idempotency_key: key,
        psp_reference: None,
        error: None,
        reason: reason.map(str::to_owned),
    })
}

/// The refund a caller's API IdempotencyKey made, if any.
pub async fn refund_by_api_key(conn: &mut AnyConnection, api_key: &ApiKey) -> StoreResult<Option<RefundRow>> {
    sqlx::query("SELECT * FROM refunds WHERE api_scope = $1 AND api_key = $2")
        .bind(&api_key.scope)
        .bind(&api_key.key)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(refund_from_row)
        .transpose()
}

/// What Vipps confirmed refunded of an installment (succeeded refunds only; pending ones may still fail).
pub async fn refunded_ore(conn: &mut AnyConnection, installment_id: &str) -> StoreResult<i64> {
    Ok(sqlx::query("SELECT CAST(COALESCE(SUM(amount_ore), 0) AS BIGINT) FROM refunds WHERE installment_id = $1 AND status = 'Succeeded'")
        .bind(installment_id)
        .fetch_one(conn)
        .await?
        .try_get(0)?)
}

/// What was captured on an installment (its capture Payments).
pub async fn captured_ore(conn: &mut AnyConnection, installment_id: &str) -> StoreResult<i64> {
    Ok(sqlx::query("SELECT CAST(COALESCE(SUM(amount_ore), 0) AS BIGINT) FROM payments WHERE installment_id = $1 AND kind = 'capture' AND reversed_by_report_id IS NULL")
        .bind(installment_id)
        .fetch_one(conn)
        .await?
        .try_get(0)?)
}

/// Finishes a pending refund as `Succeeded` (with Vipps' reference) or `Failed` (with the error); false when it
/// was no longer pending (another attempt finished it).
pub async fn finish_refund(
    conn: &mut AnyConnection,
    id: &str,
    psp_reference: Option<&str>,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = sqlx::query("UPDATE refunds SET status = $2, psp_reference = $3, error = $4, updated_at = $5 WHERE id = $1 AND status = 'Pending'")
        .bind(id)
        .bind(if error.is_some() { "Failed" } else { "Succeeded" })
        .bind(psp_reference)
        .bind(error)
        .bind(timestamp(now))
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// One refund by id.
pub async fn refund(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<RefundRow>> {
    sqlx::query("SELECT * FROM refunds WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(refund_from_row)
        .transpose()
}

/// Refunds still pending at Vipps and recorded before `created_before` (for the polling beat: a younger one is
/// still in its caller's hands), oldest first.
pub async fn pending_refunds(
    conn: &mut AnyConnection,
    limit: i64,
    created_before: DateTime<Utc>,
) -> StoreResult<Vec<RefundRow>> {
    let rows =
        sqlx::query("SELECT * FROM refunds WHERE status = 'Pending' AND created_at < $2 ORDER BY created_at LIMIT $1")
            .bind(limit)
            .bind(timestamp(created_before))
            .fetch_all(conn)
            .await?;
    rows.iter().map(refund_from_row).collect()
}
