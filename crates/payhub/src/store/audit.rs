//! The `audit_log` table: who changed what, when, from where. Secrets are never written here.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{parse_timestamp, timestamp, StoreResult};

/// One audit entry.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
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
    rows.iter().map(entry_from_row).collect()
}

fn entry_from_row(row: &AnyRow) -> StoreResult<AuditEntry> {
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
}

/// Which audit entries a reader asks for; every field narrows the list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// The action, or its family: `refund` finds `refund.request`, `account` every `account.*`.
    pub action: Option<String>,
    /// A part of who did it (an email, a key's name, `cli`).
    pub actor: Option<String>,
    /// The record's id.
    pub record: Option<String>,
    /// From this day (UTC), inclusive.
    pub from: Option<NaiveDate>,
    /// Up to this day (UTC), inclusive.
    pub to: Option<NaiveDate>,
    /// Keyset paging: only entries older than this entry id.
    pub before: Option<i64>,
}

/// The newest entries matching `filter`, at most `limit`, each with its id (the next page's `before`). Paged by
/// the key, so a page deep in a long log costs what the first one does.
pub async fn search(conn: &mut AnyConnection, filter: &AuditFilter, limit: i64) -> StoreResult<Vec<(i64, AuditEntry)>> {
    let mut clauses: Vec<String> = Vec::new();
    let mut binds: Vec<String> = Vec::new();
    if let Some(action) = &filter.action {
        binds.extend([action.clone(), format!("{action}.%")]);
        clauses.push("(action = $1 OR action LIKE $2)".into());
    }
    // `?` in a clause is its one value's placeholder.
    let mut bind = |clause: &str, value: String| {
        binds.push(value);
        clauses.push(clause.replace('?', &format!("${}", binds.len())));
    };
    if let Some(actor) = &filter.actor {
        bind("lower(actor) LIKE ?", format!("%{}%", actor.to_lowercase().replace(['%', '_'], "")));
    }
    if let Some(record) = &filter.record {
        bind("object_id = ?", record.clone());
    }
    if let Some(from) = filter.from {
        bind("at >= ?", from.to_string());
    }
    if let Some(to) = filter.to.and_then(|d| d.succ_opt()) {
        bind("at < ?", to.to_string());
    }
    if let Some(before) = filter.before {
        bind("id < CAST(? AS BIGINT)", before.to_string());
    }
    let conditions = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
    let sql = format!(
        "SELECT id, at, actor, action, object_type, object_id, source, details FROM audit_log {conditions} \
         ORDER BY id DESC LIMIT {}",
        limit.clamp(1, 1000)
    );
    let mut query = sqlx::query(&sql);
    for value in &binds {
        query = query.bind(value);
    }
    let rows = query.fetch_all(conn).await?;
    rows.iter().map(|row| Ok((row.try_get::<i64, _>("id")?, entry_from_row(row)?))).collect()
}

/// Readable names for the records audit entries are about, keyed by `(object_type, object_id)`: an account's
/// name, a user's email, a key's name, and for payment records the payer's name (with the payment reference or
/// agreement id). Records that no longer exist have no name.
pub async fn record_names(
    conn: &mut AnyConnection,
    records: &[(String, String)],
) -> StoreResult<HashMap<(String, String), String>> {
    const PAYER: &str = "TRIM(COALESCE(p.first_name, '') || ' ' || COALESCE(p.last_name, ''))";
    let lookups: [(&str, String); 6] = [
        ("account", "SELECT id, name FROM accounts WHERE id IN ({})".into()),
        ("user", "SELECT id, email FROM users WHERE id IN ({})".into()),
        ("api_key", "SELECT id, name FROM api_keys WHERE id IN ({})".into()),
        (
            "installment",
            format!("SELECT i.id, {PAYER} || ' · ' || i.payment_reference FROM installments i JOIN payers p ON p.id = i.payer_id WHERE i.id IN ({{}})"),
        ),
        (
            "mandate",
            format!("SELECT m.id, {PAYER} || ' · ' || COALESCE(m.agreement_id, m.id) FROM mandates m JOIN payers p ON p.id = m.payer_id WHERE m.id IN ({{}})"),
        ),
        (
            "recurring_payment",
            format!("SELECT r.id, {PAYER} || ' · ' || r.frequency FROM recurring_payments r JOIN payers p ON p.id = r.payer_id WHERE r.id IN ({{}})"),
        ),
    ];
    let mut names = HashMap::new();
    for (kind, sql) in lookups {
        let mut ids: Vec<&str> =
            records.iter().filter(|(k, id)| k == kind && !id.is_empty()).map(|(_, id)| id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            continue;
        }
        let list = (1..=ids.len()).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ");
        let sql = sql.replace("{}", &list);
        let mut query = sqlx::query(&sql);
        for id in &ids {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            names.insert((kind.to_owned(), row.try_get::<String, _>(0)?), row.try_get::<String, _>(1)?);
        }
    }
    Ok(names)
}
