//! The `audit_log` table: who changed what, when, from where. Secrets are never written here.

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::{parse_timestamp, timestamp, StoreResult};

/// One audit entry.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEntry {
    /// When the change happened (UTC).
    pub at: DateTime<Utc>,
    /// Who made it: `user:<id> <email>`, `key:<id> <name>`, or `cli:<os user>`.
    pub actor: String,
    /// What was done, e.g. `account.create`.
    pub action: String,
    /// The kind of record changed: `account`, `user`, `api_key`.
    pub object_type: String,
    /// The record's id.
    pub object_id: String,
    /// Where the change came from: the client's IP address, or `cli`.
    pub source: String,
    /// A JSON object describing the change (field names, never secret values).
    pub details: serde_json::Value,
}

/// Appends an entry, in the caller's transaction so it stands or falls with the change it records.
pub async fn record(conn: &mut AnyConnection, entry: &AuditEntry) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, object_type, object_id, source, details) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(timestamp(entry.at))
    .bind(&entry.actor)
    .bind(&entry.action)
    .bind(&entry.object_type)
    .bind(&entry.object_id)
    .bind(&entry.source)
    .bind(entry.details.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// The newest entries first, at most `limit`, optionally only those about one record.
pub async fn recent(conn: &mut AnyConnection, object_id: Option<&str>, limit: i64) -> StoreResult<Vec<AuditEntry>> {
    let rows = match object_id {
        Some(id) => {
            sqlx::query("SELECT at, actor, action, object_type, object_id, source, details FROM audit_log WHERE object_id = $1 ORDER BY id DESC LIMIT $2")
                .bind(id)
                .bind(limit)
                .fetch_all(conn)
                .await?
        }
        None => {
            sqlx::query("SELECT at, actor, action, object_type, object_id, source, details FROM audit_log ORDER BY id DESC LIMIT $1")
                .bind(limit)
                .fetch_all(conn)
                .await?
        }
    };
    rows.iter()
        .map(|row| {
            let details: String = row.try_get("details")?;
            Ok(AuditEntry {
                at: parse_timestamp(&row.try_get::<String, _>("at")?)?,
                actor: row.try_get("actor")?,
                action: row.try_get("action")?,
                object_type: row.try_get("object_type")?,
                object_id: row.try_get("object_id")?,
                source: row.try_get("source")?,
                details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
            })
        })
        .collect()
}
