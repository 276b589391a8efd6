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
    /// What was asked (e.g. `{"to_ore": …}`, `{"until": …}`, `{"reason": …}`).
    pub details: serde_json::Value,
    /// Who asked.
    pub actor: String,
}

fn change_from_row(row: &sqlx::any::AnyRow) -> StoreResult<ChangeRow> {
    let details: String = row.try_get("details")?;
    Ok(ChangeRow {
        id: row.try_get("id")?,
        mandate_id: row.try_get("mandate_id")?,
        recurring_payment_id: row.try_get("recurring_payment_id")?,
        kind: row.try_get("kind")?,
        status: row.try_get("status")?,
        message: row.try_get("message")?,
        details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
        actor: row.try_get("actor")?,
    })
}

/// The kinds of change whose Vipps side may stay unconfirmed (`Pending`) and is retried by the
/// `recurring.pending_changes` beat: the agreement's price, and the charge cancels of a pause or a cancel.
pub const RETRIED_KINDS: [&str; 3] = ["amount", "pause", "cancel"];

/// Pending changes of the retried kinds last touched before `before`, oldest first.
pub async fn pending_changes(
    conn: &mut AnyConnection,
    before: DateTime<Utc>,
    limit: i64,
) -> StoreResult<Vec<ChangeRow>> {
    let rows = sqlx::query(
        "SELECT * FROM recurring_changes WHERE status = 'Pending' AND kind IN ($1, $2, $3) AND updated_at < $4 \
         ORDER BY created_at, id LIMIT $5",
    )
    .bind(RETRIED_KINDS[0])
    .bind(RETRIED_KINDS[1])
    .bind(RETRIED_KINDS[2])
    .bind(timestamp(before))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(change_from_row).collect()
}

/// The pending change of `kind` of a recurring payment, if there is one (the newest).
pub async fn pending_change_of(
    conn: &mut AnyConnection,
    recurring_id: &str,
    kind: &str,
) -> StoreResult<Option<ChangeRow>> {
    sqlx::query(
        "SELECT * FROM recurring_changes WHERE recurring_payment_id = $1 AND kind = $2 AND status = 'Pending' \
         ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(recurring_id)
    .bind(kind)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(change_from_row)
    .transpose()
}

/// Notes what stands in the way of a pending change (it stays `Pending`; the beat retries it a minute later).
pub async fn note_change(conn: &mut AnyConnection, id: &str, message: &str, now: DateTime<Utc>) -> StoreResult<()> {
    sqlx::query("UPDATE recurring_changes SET message = $2, updated_at = $3 WHERE id = $1 AND status = 'Pending'")
        .bind(id)
        .bind(message)
        .bind(timestamp(now))
        .execute(conn)
        .await?;
    Ok(())
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

/// Finishes a pending change as Succeeded or Failed with a message (a finished one stays as it is).
pub async fn finish_change(
    conn: &mut AnyConnection,
    id: &str,
    succeeded: bool,
    message: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE recurring_changes SET status = $2, message = $3, updated_at = $4 WHERE id = $1 AND status = 'Pending'",
    )
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
    rows.iter().map(change_from_row).collect()
}
