//! The trail: every exchange stored raw as a message, and the inbound report each became (what it was about,
//! the money, and its outcome), so any record can be traced back to what caused it.

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

use super::{timestamp, StoreResult};
use crate::domain::ids::new_id;
use crate::domain::trail::{Channel, MessageStatus, Outcome, ReportType};

/// A received exchange, raw (every Message is inbound: what reached payhub, as it arrived).
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    /// Where it came from.
    pub channel: Channel,
    /// What it is about (an intent id, a payment reference).
    pub subject: Option<&'a str>,
    /// The raw body.
    pub body: &'a str,
    /// Where it stands.
    pub status: MessageStatus,
}

impl<'a> NewMessage<'a> {
    /// A Message processed as it is recorded (its meaning is recorded with it).
    pub fn processed(channel: Channel, subject: Option<&'a str>, body: &'a str) -> Self {
        Self { channel, subject, body, status: MessageStatus::Processed }
    }

    /// A Message kept to be processed later (a webhook, before its job runs).
    pub fn received(channel: Channel, subject: Option<&'a str>, body: &'a str) -> Self {
        Self { channel, subject, body, status: MessageStatus::New }
    }
}

/// Stores a message; returns its id.
pub async fn insert_message(
    conn: &mut AnyConnection,
    message: &NewMessage<'_>,
    now: DateTime<Utc>,
) -> StoreResult<String> {
    let id = new_id("msg");
    sqlx::query(
        "INSERT INTO messages (id, direction, channel, subject, body, status, received_at, processed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $6 = 'New' THEN NULL ELSE $7 END)",
    )
    .bind(&id)
    .bind("inbound")
    .bind(message.channel.as_str())
    .bind(message.subject)
    .bind(message.body)
    .bind(message.status.as_str())
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(id)
}

/// Marks a message processed (or failed with an error).
pub async fn finish_message(
    conn: &mut AnyConnection,
    id: &str,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query("UPDATE messages SET status = $2, error = $3, processed_at = $4 WHERE id = $1")
        .bind(id)
        .bind(if error.is_some() { MessageStatus::Failed } else { MessageStatus::Processed }.as_str())
        .bind(error)
        .bind(timestamp(now))
        .execute(conn)
        .await?;
    Ok(())
}

/// A normalised event made from a message.
#[derive(Debug, Clone)]
pub struct NewReport<'a> {
    /// The message it was made from.
    pub message_id: &'a str,
    /// Who it speaks for.
    pub report_type: ReportType,
    /// `Default`, `payment.authorized`, `payment.captured`, `refund`…
    pub sub_type: &'a str,
    /// Amount in øre, when the event has one.
    pub amount_ore: Option<i64>,
    /// The payment reference it concerns.
    pub reference: Option<&'a str>,
    /// How it ended.
    pub status: Outcome,
    /// The installment it matched.
    pub installment_id: Option<&'a str>,
    /// The intent it belongs to.
    pub intent_id: Option<&'a str>,
    /// Free-form detail (a reason, an error).
    pub detail: Option<&'a str>,
}

/// Stores an inbound report; returns its id.
pub async fn insert_report(
    conn: &mut AnyConnection,
    report: &NewReport<'_>,
    now: DateTime<Utc>,
) -> StoreResult<String> {
    let id = new_id("ir");
    sqlx::query(
        "INSERT INTO inbound_reports (id, message_id, report_type, sub_type, amount_ore, report_date, reference, status, \
         installment_id, intent_id, detail, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
    )
    .bind(&id)
    .bind(report.message_id)
    .bind(report.report_type.as_str())
    .bind(report.sub_type)
    .bind(report.amount_ore)
    .bind(crate::domain::schedule::oslo_date(now).to_string())
    .bind(report.reference)
    .bind(report.status.as_str())
    .bind(report.installment_id)
    .bind(report.intent_id)
    .bind(report.detail)
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(id)
}

/// Sets an inbound report's outcome after the fact (e.g. `Ignored` with why).
pub async fn set_report_outcome(
    conn: &mut AnyConnection,
    report_id: &str,
    status: Outcome,
    detail: Option<&str>,
) -> StoreResult<()> {
    sqlx::query("UPDATE inbound_reports SET status = $2, detail = COALESCE($3, detail) WHERE id = $1")
        .bind(report_id)
        .bind(status.as_str())
        .bind(detail)
        .execute(conn)
        .await?;
    Ok(())
}

/// The most rows one pruning statement deletes or redacts: a backlog goes in many short transactions, so the
/// database's one writer is never held for long.
pub const PRUNE_BATCH: i64 = 1000;

const PRUNE_UNREPORTED: &str = "DELETE FROM messages WHERE id IN (SELECT m.id FROM messages m \
     WHERE m.received_at < $1 AND m.status <> 'New' \
     AND NOT EXISTS (SELECT 1 FROM inbound_reports r WHERE r.message_id = m.id) LIMIT $2)";

const PRUNE_TRAIL: &str = "DELETE FROM inbound_reports WHERE id IN (SELECT r.id FROM inbound_reports r \
     WHERE r.created_at < $1 \
     AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.inbound_report_id = r.id) \
     AND NOT EXISTS (SELECT 1 FROM payment_intents i WHERE i.inbound_report_id = r.id) LIMIT $2)";

const REDACT: &str = "UPDATE messages SET body = $2 WHERE id IN (SELECT m.id FROM messages m \
     WHERE m.received_at < $1 AND m.status <> 'New' AND m.body <> $2 LIMIT $3)";

/// The body a redacted Message keeps.
pub const REDACTED: &str = "{\"redacted\": true}";

/// Redacts the raw bodies of up to [`PRUNE_BATCH`] Messages received before `before` (processed ones: a Message
/// still waiting keeps its body until its job ran); returns how many.
pub async fn redact_bodies(conn: &mut AnyConnection, before: DateTime<Utc>) -> StoreResult<u64> {
    let done = sqlx::query(REDACT).bind(timestamp(before)).bind(REDACTED).bind(PRUNE_BATCH).execute(conn).await?;
    Ok(done.rows_affected())
}

/// Deletes up to [`PRUNE_BATCH`] processed Messages received before `before` that no Inbound Report was made
/// from (raw webhook deliveries: each one's processing recorded its own Message and report, or Messages whose
/// reports were pruned); returns how many.
pub async fn prune_unreported(conn: &mut AnyConnection, before: DateTime<Utc>) -> StoreResult<u64> {
    let done = sqlx::query(PRUNE_UNREPORTED).bind(timestamp(before)).bind(PRUNE_BATCH).execute(conn).await?;
    Ok(done.rows_affected())
}

/// Deletes up to [`PRUNE_BATCH`] Inbound Reports made before `before` that no payment or intent points at (what
/// documents money still on record stays); returns how many. Their Messages go with [`prune_unreported`].
pub async fn prune_trail(conn: &mut AnyConnection, before: DateTime<Utc>) -> StoreResult<u64> {
    let done = sqlx::query(PRUNE_TRAIL).bind(timestamp(before)).bind(PRUNE_BATCH).execute(&mut *conn).await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use sqlx::Row;

    use super::*;

    /// SQLite's plan of `sql`, one step a line.
    async fn plan(store: &crate::store::Store, sql: &str, params: &[&str]) -> Vec<String> {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut query = sqlx::query(&explain);
        for param in params {
            query = query.bind(*param);
        }
        let rows = query.fetch_all(store.pool()).await.unwrap();
        rows.iter().map(|row| row.try_get::<String, _>(3).unwrap()).collect()
    }

    /// Pruning runs with the database's one writer held: it must find what it deletes by index, not by reading
    /// the trail once for every Message (minutes of a held write lock once the trail is large, during which
    /// every other write waits and on SQLite fails after its busy timeout).
    #[tokio::test]
    async fn pruning_finds_its_rows_by_index() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("plan.db").display());
        crate::store::Store::connect(&url).await.unwrap().migrate().await.unwrap();
        // Connections opened after the migrations: SQLite plans with the schema a connection last read.
        let store = crate::store::Store::connect(&url).await.unwrap();
        for (sql, params) in [
            (PRUNE_UNREPORTED, &["2026-01-01", "1000"][..]),
            (PRUNE_TRAIL, &["2026-01-01", "1000"][..]),
            (REDACT, &["2026-01-01", REDACTED, "1000"][..]),
        ] {
            let steps = plan(&store, sql, params).await;
            let scans: Vec<&String> = steps.iter().filter(|s| s.starts_with("SCAN")).collect();
            assert!(scans.is_empty(), "{sql}: {steps:?}");
        }
    }
}
