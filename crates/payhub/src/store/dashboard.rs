//! The dashboard's figures: one grouped, set-based query per chart, over the whole table family (no row is
//! loaded to be counted in Rust). Dates are the Oslo dates the rows already carry (`collection_date`,
//! `due_date`, `ledger_date`), compared as `YYYY-MM-DD` text, which sorts as the dates do.

use chrono::{Days, NaiveDate};
use sqlx::{AnyConnection, Row};

use super::sql::date;
use super::StoreResult;

/// Money collected on one Oslo day on one account, one-time and recurring apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectedDay {
    /// The merchant account.
    pub account_id: String,
    /// The collection date (Oslo).
    pub day: NaiveDate,
    /// Captured on one-time installments, in øre.
    pub one_time_ore: i64,
    /// Captured on installments of an agreement (initial and recurring charges), in øre.
    pub recurring_ore: i64,
}

/// Captures (refunds are not collections) per account and day in the 30 days ending `today`, oldest first.
/// An installment belongs to an agreement when it carries a mandate.
pub async fn collected_per_day(conn: &mut AnyConnection, today: NaiveDate) -> StoreResult<Vec<CollectedDay>> {
    let first = today.checked_sub_days(Days::new(29)).unwrap_or(today);
    let rows = sqlx::query(
        "SELECT i.account_id, p.collection_date, \
         CAST(COALESCE(SUM(CASE WHEN i.mandate_id IS NULL THEN p.amount_ore ELSE 0 END), 0) AS BIGINT) AS one_time, \
         CAST(COALESCE(SUM(CASE WHEN i.mandate_id IS NULL THEN 0 ELSE p.amount_ore END), 0) AS BIGINT) AS recurring \
         FROM payments p JOIN installments i ON i.id = p.installment_id \
         WHERE p.kind = 'capture' AND p.reversed_by_report_id IS NULL AND p.collection_date >= $1 AND p.collection_date <= $2 \
         GROUP BY i.account_id, p.collection_date ORDER BY p.collection_date, i.account_id",
    )
    .bind(first.to_string())
    .bind(today.to_string())
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(CollectedDay {
                account_id: r.try_get("account_id")?,
                day: date(r, "collection_date")?,
                one_time_ore: r.try_get("one_time")?,
                recurring_ore: r.try_get("recurring")?,
            })
        })
        .collect()
}

/// Active recurring payments of one account and frequency, and what they add up to per period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveGroup {
    /// The merchant account.
    pub account_id: String,
    /// The schedule's frequency as stored (`Monthly`, `Yearly`, …).
    pub frequency: String,
    /// How many are active.
    pub count: i64,
    /// Their amounts per period, in øre.
    pub amount_ore: i64,
}

/// Active recurring payments (on an active agreement) grouped by account and frequency.
pub async fn active_agreements(conn: &mut AnyConnection) -> StoreResult<Vec<ActiveGroup>> {
    let rows = sqlx::query(
        "SELECT r.account_id, r.frequency, COUNT(*) AS n, CAST(COALESCE(SUM(r.amount_ore), 0) AS BIGINT) AS amount \
         FROM recurring_payments r JOIN mandates m ON m.id = r.mandate_id \
         WHERE r.status = 'Active' AND m.status = 'Active' GROUP BY r.account_id, r.frequency ORDER BY 1, 2",
    )
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ActiveGroup {
                account_id: r.try_get("account_id")?,
                frequency: r.try_get("frequency")?,
                count: r.try_get("n")?,
                amount_ore: r.try_get("amount")?,
            })
        })
        .collect()
}

/// Failed Vipps charges with one reason: how many, and their amounts in øre.
pub async fn failed_charges(conn: &mut AnyConnection) -> StoreResult<Vec<(String, i64, i64)>> {
    let rows = sqlx::query(
        "SELECT COALESCE(failure_reason, 'unknown') AS reason, COUNT(*) AS n, \
         CAST(COALESCE(SUM(amount_ore), 0) AS BIGINT) AS amount FROM vipps_charges WHERE state = 'FAILED' \
         GROUP BY COALESCE(failure_reason, 'unknown') ORDER BY 2 DESC, 1",
    )
    .fetch_all(conn)
    .await?;
    rows.iter().map(|r| Ok((r.try_get("reason")?, r.try_get("n")?, r.try_get("amount")?))).collect()
}

/// The age buckets of open installments, by days past the due date; the label of each.
pub const AGE_BUCKETS: [&str; 5] = ["Not yet due", "0–7 days", "8–30 days", "31–90 days", "Over 90 days"];

/// Open installments (Outstanding or Pending) per age bucket ([`AGE_BUCKETS`], in order): count and open øre.
pub async fn open_by_age(conn: &mut AnyConnection, today: NaiveDate) -> StoreResult<Vec<(i64, i64)>> {
    let back = |days: u64| today.checked_sub_days(Days::new(days)).unwrap_or(today).to_string();
    let rows = sqlx::query(
        "SELECT CAST(CASE WHEN due_date > $1 THEN 0 WHEN due_date >= $2 THEN 1 WHEN due_date >= $3 THEN 2 \
         WHEN due_date >= $4 THEN 3 ELSE 4 END AS BIGINT) AS bucket, COUNT(*) AS n, \
         CAST(COALESCE(SUM(amount_open_ore), 0) AS BIGINT) AS amount \
         FROM installments WHERE status IN ('Outstanding', 'Pending') GROUP BY 1 ORDER BY 1",
    )
    .bind(today.to_string())
    .bind(back(7))
    .bind(back(30))
    .bind(back(90))
    .fetch_all(conn)
    .await?;
    let mut buckets = vec![(0, 0); AGE_BUCKETS.len()];
    for r in &rows {
        let bucket: i64 = r.try_get("bucket")?;
        if let Some(slot) = buckets.get_mut(bucket as usize) {
            *slot = (r.try_get("n")?, r.try_get("amount")?);
        }
    }
    Ok(buckets)
}

/// Reconciliation of one account: the last ledger date with a booked row, and the open queue items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileStatus {
    /// The merchant account.
    pub account_id: String,
    /// The latest ledger date of a booked ledger row.
    pub last_booked: Option<NaiveDate>,
    /// Open Guided Matching items.
    pub open_items: i64,
}

/// Per account that has a ledger row or a queue item: the last ledger date booked and the queue size.
pub async fn reconciliation(conn: &mut AnyConnection) -> StoreResult<Vec<ReconcileStatus>> {
    let rows = sqlx::query(
        "SELECT account_id, MAX(booked) AS last_booked, CAST(SUM(open_items) AS BIGINT) AS open_items FROM ( \
         SELECT account_id, MAX(ledger_date) AS booked, 0 AS open_items FROM ledger_entries WHERE status = 'booked' \
         GROUP BY account_id UNION ALL \
         SELECT account_id, NULL AS booked, COUNT(*) AS open_items FROM match_queue WHERE status = 'open' \
         GROUP BY account_id) t GROUP BY account_id ORDER BY account_id",
    )
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ReconcileStatus {
                account_id: r.try_get("account_id")?,
                last_booked: super::sql::opt_date(r, "last_booked")?,
                open_items: r.try_get("open_items")?,
            })
        })
        .collect()
}
