//! The organisation's changes to a recurring payment or mandate (amount, collection day, pause, resume, cancel):
//! each recorded before Vipps is called, its id the Idempotency-Key of the call.

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;
use sqlx::Row;

use super::{timestamp, StoreResult};
use crate::domain::ids::new_id;

/// A change by the organisation, recorded before Vipps is called; its id is the Idempotency-Key.
#[derive(Debug, Clone)]
pub struct ChangeRow {
    /// `rc_…`
    pub id: String,
    /// The mandate.
    pub mandate_id: Option<String>,
    /// The recurring payment.
    pub recurring_payment_id: Option<String>,
    /// `amount`, `collection_day`, `pause`, `resume`, `cancel`, `cancel_agreement`.
    pub kind: String,
    /// `Pending`, `Succeeded`, `Failed`.
    pub status: String,
    /// Vipps' or payhub's message.
    pub message: Option<String>,
}

/// Stores a pending change; returns its id.
pub async fn insert_change(
    conn: &mut AnyConnection,
    mandate_id: Option<&str>,
    recurring_id: Option<&str>,
    kind: &str,
    details: &serde_json::Value,
    actor: &str,
    now: DateTime<Utc>,
) -> StoreResult<String> {
    let id = new_id("rc");
    sqlx::query(
        "INSERT INTO recurring_changes (id, mandate_id, recurring_payment_id, kind, details, status, actor, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'Pending', $6, $7, $7)",
    )
    .bind(&id)
    .bind(mandate_id)
    .bind(recurring_id)
    .bind(kind)
    .bind(details.to_string())
    .bind(actor)
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(id)
}

/// Finishes a change as Succeeded or Failed with a message.
pub async fn finish_change(
    conn: &mut AnyConnection,
    id: &str,
    succeeded: bool,
    message: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query("UPDATE recurring_changes SET status = $2, message = $3, updated_at = $4 WHERE id = $1")
        .bind(id)
        .bind(if succeeded { "Succeeded" } else { "Failed" })
        .bind(message)
        .bind(timestamp(now))
        .execute(conn)
        .await?;
    Ok(())
}

/// The changes of a recurring payment or mandate, newest first.
pub async fn changes(
    conn: &mut AnyConnection,
    mandate_id: &str,
    recurring_id: Option<&str>,
) -> StoreResult<Vec<ChangeRow>> {
    let rows = sqlx::query(
        "SELECT * FROM recurring_changes WHERE mandate_id = $1 AND ($2 IS NULL OR recurring_payment_id = $2) \
         ORDER BY created_at DESC, id DESC",
    )
    .bind(mandate_id)
    .bind(recurring_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ChangeRow {
                id: row.try_get("id")?,
                mandate_id: row.try_get("mandate_id")?,
                recurring_payment_id: row.try_get("recurring_payment_id")?,
                kind: row.try_get("kind")?,
                status: row.try_get("status")?,
                message: row.try_get("message")?,
            })
        })
        .collect()
}
