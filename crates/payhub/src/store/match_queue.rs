//! Guided Matching's queue: the ledger rows the rules could not book, each with why, shared by every finance
//! user. Rows go in set-based ([`enqueue`]); the lease columns (`worked_by`, `worked_at`, `lease_until`) and the
//! decision columns (`remark`, `decided_by`, `decided_at`) are the queue workflow's.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{AnyConnection, Row};

use super::ledger::{entry_from_row, EntryRow};
use super::together::statements::{BatchConn, Steps};
use super::{parse_timestamp, timestamp, StoreResult};
use crate::domain::ids::new_id;
use crate::domain::ledger::{EntryStatus, QueueReason, QueueStatus};

/// A row to put in the queue.
#[derive(Debug, Clone)]
pub struct NewItem<'a> {
    /// The ledger row.
    pub entry_id: &'a str,
    /// Its account.
    pub account_id: &'a str,
    /// Why a person must look at it.
    pub reason: QueueReason,
    /// More about why (the amounts that differ, the installment already paid…).
    pub detail: Option<String>,
}

/// Puts rows in the queue (open) and marks their ledger rows `queued`; a row already queued keeps its item
/// (re-running the rules never makes a second one, and an item a person decided stays decided).
pub async fn enqueue(conn: &mut AnyConnection, items: &[NewItem<'_>], now: DateTime<Utc>) -> StoreResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    let at = timestamp(now);
    let rows: Vec<serde_json::Value> =
        items.iter().map(|i| json!([new_id("mq"), i.entry_id, i.account_id, i.reason.as_str(), i.detail])).collect();
    let ids: Vec<serde_json::Value> = items.iter().map(|i| json!([i.entry_id])).collect();
    let mut steps = Steps::default();
    steps.push(
        "INSERT INTO match_queue (id, entry_id, account_id, reason, detail, status, created_at, updated_at) \
         SELECT {r}->>0, {r}->>1, {r}->>2, {r}->>3, {r}->>4, 'open', $2, $2 FROM {rows} \
         WHERE true ON CONFLICT (entry_id) DO UPDATE SET reason = excluded.reason, detail = excluded.detail, \
         updated_at = excluded.updated_at WHERE match_queue.status = 'open'",
        rows,
        vec![at.clone()],
    );
    steps.push(
        "UPDATE ledger_entries SET status = $2, updated_at = $3 WHERE id IN (SELECT {r}->>0 FROM {rows}) \
         AND status IN ('new', 'queued')",
        ids,
        vec![EntryStatus::Queued.as_str().to_owned(), at],
    );
    conn.write(steps).await
}

/// A queue item with its ledger row.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct QueueItem {
    /// `mq_…`
    pub id: String,
    /// Its account.
    pub account_id: String,
    /// Why the rules stopped: `no_candidate`, `several_candidates`, `amount_differs`, `already_paid`,
    /// `unknown_type`, `vipps_number_payment`, `dispute` or `correction`.
    pub reason: String,
    /// More about why.
    pub detail: Option<String>,
    /// `open`, `matched` or `ignored`.
    pub status: String,
    /// Who took it last.
    pub worked_by: Option<String>,
    /// When.
    pub worked_at: Option<DateTime<Utc>>,
    /// Until when nobody else gets it from Next.
    pub lease_until: Option<DateTime<Utc>>,
    /// The remark of the decision.
    pub remark: Option<String>,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<DateTime<Utc>>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// The ledger row.
    pub entry: EntryRow,
}

fn opt_time(row: &sqlx::any::AnyRow, column: &str) -> StoreResult<Option<DateTime<Utc>>> {
    let text: Option<String> = row.try_get(column)?;
    text.as_deref().map(parse_timestamp).transpose()
}

/// Reads a queue item joined with its ledger row (columns of `match_queue` prefixed `q_`).
pub(crate) fn item_from_row(row: &sqlx::any::AnyRow) -> StoreResult<QueueItem> {
    let created: String = row.try_get("q_created_at")?;
    Ok(QueueItem {
        id: row.try_get("q_id")?,
        account_id: row.try_get("q_account_id")?,
        reason: row.try_get("q_reason")?,
        detail: row.try_get("q_detail")?,
        status: row.try_get("q_status")?,
        worked_by: row.try_get("q_worked_by")?,
        worked_at: opt_time(row, "q_worked_at")?,
        lease_until: opt_time(row, "q_lease_until")?,
        remark: row.try_get("q_remark")?,
        decided_by: row.try_get("q_decided_by")?,
        decided_at: opt_time(row, "q_decided_at")?,
        created_at: parse_timestamp(&created)?,
        entry: entry_from_row(row)?,
    })
}

/// The select list of [`item_from_row`]: every ledger row column, and the queue's prefixed.
pub(crate) const ITEM_COLUMNS: &str = "l.*, q.id AS q_id, q.account_id AS q_account_id, q.reason AS q_reason, \
     q.detail AS q_detail, q.status AS q_status, q.worked_by AS q_worked_by, q.worked_at AS q_worked_at, \
     q.lease_until AS q_lease_until, q.remark AS q_remark, q.decided_by AS q_decided_by, \
     q.decided_at AS q_decided_at, q.created_at AS q_created_at";

/// One queue item.
pub async fn item(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<QueueItem>> {
    let sql =
        format!("SELECT {ITEM_COLUMNS} FROM match_queue q JOIN ledger_entries l ON l.id = q.entry_id WHERE q.id = $1");
    sqlx::query(&sql).bind(id).fetch_optional(conn).await?.as_ref().map(item_from_row).transpose()
}

/// Queue items with `status` (all statuses when `None`), oldest first, `limit` after `offset`.
pub async fn items(
    conn: &mut AnyConnection,
    status: Option<QueueStatus>,
    limit: i64,
    offset: i64,
) -> StoreResult<Vec<QueueItem>> {
    let sql = format!(
        "SELECT {ITEM_COLUMNS} FROM match_queue q JOIN ledger_entries l ON l.id = q.entry_id \
         WHERE ($1 = '' OR q.status = $1) ORDER BY q.created_at, q.id LIMIT $2 OFFSET $3"
    );
    let rows =
        sqlx::query(&sql).bind(status.map_or("", QueueStatus::as_str)).bind(limit).bind(offset).fetch_all(conn).await?;
    rows.iter().map(item_from_row).collect()
}

/// How many items have each reason and status (for the run summary and the queue's header).
pub async fn counts(conn: &mut AnyConnection) -> StoreResult<Vec<(String, String, i64)>> {
    let rows =
        sqlx::query("SELECT reason, status, COUNT(*) AS n FROM match_queue GROUP BY reason, status ORDER BY 1, 2")
            .fetch_all(conn)
            .await?;
    rows.iter().map(|r| Ok((r.try_get("reason")?, r.try_get("status")?, r.try_get("n")?))).collect()
}

/// The ids of the open items' ledger rows, oldest first (what "Retry unmatched" runs the rules on).
pub async fn open_entry_ids(conn: &mut AnyConnection, limit: i64) -> StoreResult<Vec<String>> {
    let rows = sqlx::query("SELECT entry_id FROM match_queue WHERE status = 'open' ORDER BY created_at, id LIMIT $1")
        .bind(limit)
        .fetch_all(conn)
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Closes the open items of rows the rules have now booked (status `matched`, decided by `actor`).
pub async fn close_booked(
    conn: &mut AnyConnection,
    entry_ids: &[String],
    actor: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    if entry_ids.is_empty() {
        return Ok(());
    }
    let mut steps = Steps::default();
    steps.push(
        "UPDATE match_queue SET status = 'matched', decided_by = $2, decided_at = $3, updated_at = $3, \
         lease_until = NULL WHERE status = 'open' AND entry_id IN (SELECT {r}->>0 FROM {rows})",
        entry_ids.iter().map(|id| json!([id])).collect(),
        vec![actor.to_owned(), timestamp(now)],
    );
    conn.write(steps).await
}
