//! Payouts (a `payout-scheduled` row and the ledger dates and rows it covers) and reconciliation runs (each
//! import: who started it, how many pages and rows, how it ended).

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{AnyConnection, Row};

use super::sql::date;
use super::{parse_timestamp, timestamp, StoreResult};
use crate::domain::ids::new_id;

/// A payout as stored.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PayoutRow {
    /// `po_…`
    pub id: String,
    /// The account.
    pub account_id: String,
    /// Our ledger id.
    pub ledger_id: String,
    /// The `payout-scheduled` ledger row.
    pub entry_id: String,
    /// Its pspReference.
    pub psp_reference: String,
    /// The payout number (from the bank text).
    pub payout_number: Option<String>,
    /// The bank text (`Vipps utbet. 2000023 …`).
    pub bank_text: Option<String>,
    /// Paid out, in øre (positive).
    pub amount_ore: i64,
    /// Fees retained from it.
    pub fees_retained_ore: i64,
    /// Captures it covers.
    pub captures_ore: i64,
    /// Refunds it covers (negative).
    pub refunds_ore: i64,
    /// Funds rows it covers.
    pub rows_count: i64,
    /// Currency.
    pub currency: String,
    /// First ledger date covered.
    pub first_date: NaiveDate,
    /// Last ledger date covered (the payout row's).
    pub ledger_date: NaiveDate,
    /// The payout row's Inbound Report.
    pub inbound_report_id: Option<String>,
}

fn payout_from_row(row: &sqlx::any::AnyRow) -> StoreResult<PayoutRow> {
    Ok(PayoutRow {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        ledger_id: row.try_get("ledger_id")?,
        entry_id: row.try_get("entry_id")?,
        psp_reference: row.try_get("psp_reference")?,
        payout_number: row.try_get("payout_number")?,
        bank_text: row.try_get("bank_text")?,
        amount_ore: row.try_get("amount_ore")?,
        fees_retained_ore: row.try_get("fees_retained_ore")?,
        captures_ore: row.try_get("captures_ore")?,
        refunds_ore: row.try_get("refunds_ore")?,
        rows_count: row.try_get("rows_count")?,
        currency: row.try_get("currency")?,
        first_date: date(row, "first_date")?,
        ledger_date: date(row, "ledger_date")?,
        inbound_report_id: row.try_get("inbound_report_id")?,
    })
}

/// A payout to record.
#[derive(Debug, Clone)]
pub struct NewPayout<'a> {
    /// The account.
    pub account_id: &'a str,
    /// Our ledger id.
    pub ledger_id: &'a str,
    /// The `payout-scheduled` row.
    pub entry_id: &'a str,
    /// Its pspReference.
    pub psp_reference: &'a str,
    /// Its bank text.
    pub bank_text: Option<&'a str>,
    /// The payout number in it.
    pub payout_number: Option<&'a str>,
    /// Paid out (positive øre).
    pub amount_ore: i64,
    /// Currency.
    pub currency: &'a str,
    /// The payout row's date.
    pub ledger_date: NaiveDate,
    /// The payout row's Inbound Report.
    pub inbound_report_id: &'a str,
}

/// Records a payout and links what it covers: every funds and fees row of the ledger dated up to its date not
/// yet in a payout (`first_date` becomes the earliest of them) (their fees-retained and payout rows become `booked`), and the Payments
/// settled by those rows. Its totals are summed from the rows. Returns its id (the existing one if the payout
/// row was recorded before) and how many fees-retained and payout rows it booked.
pub async fn record_payout(
    conn: &mut AnyConnection,
    new: &NewPayout<'_>,
    now: DateTime<Utc>,
) -> StoreResult<(String, u64)> {
    let id = new_id("po");
    let at = timestamp(now);
    let done = sqlx::query(
        "INSERT INTO payouts (id, account_id, ledger_id, entry_id, psp_reference, payout_number, bank_text, amount_ore, \
         currency, first_date, ledger_date, inbound_report_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (entry_id) DO NOTHING",
    )
    .bind(&id)
    .bind(new.account_id)
    .bind(new.ledger_id)
    .bind(new.entry_id)
    .bind(new.psp_reference)
    .bind(new.payout_number)
    .bind(new.bank_text)
    .bind(new.amount_ore)
    .bind(new.currency)
    .bind(new.ledger_date.to_string())
    .bind(new.ledger_date.to_string())
    .bind(new.inbound_report_id)
    .bind(&at)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        let existing: String = sqlx::query("SELECT id FROM payouts WHERE entry_id = $1")
            .bind(new.entry_id)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        return Ok((existing, 0));
    }
    // The rows not in a payout yet are read along their own index (`ledger_entries_unpaid`), never the
    // ledger's whole history; the rows of this payout then along `ledger_entries_payout`.
    let unpaid = match conn.backend_name() {
        "SQLite" => "ledger_entries INDEXED BY ledger_entries_unpaid",
        _ => "ledger_entries",
    };
    sqlx::query(&format!(
        "UPDATE {unpaid} SET payout_id = $1, updated_at = $4 WHERE ledger_id = $2 AND ledger_date <= $3 \
         AND payout_id IS NULL AND status IN ('new', 'booked', 'queued')"
    ))
    .bind(&id)
    .bind(new.ledger_id)
    .bind(new.ledger_date.to_string())
    .bind(&at)
    .execute(&mut *conn)
    .await?;
    let booked = sqlx::query(
        "UPDATE ledger_entries SET status = 'booked' WHERE payout_id = $1 AND status = 'new' \
         AND kind IN ('fees_retained', 'payout')",
    )
    .bind(&id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    sqlx::query(
        "UPDATE inbound_reports SET status = 'Matched', detail = $2, updated_at = $3 WHERE id IN \
         (SELECT inbound_report_id FROM ledger_entries WHERE payout_id = $1 AND kind IN ('fees_retained', 'payout'))",
    )
    .bind(&id)
    .bind(format!("in payout {}", new.payout_number.unwrap_or(new.psp_reference)))
    .bind(&at)
    .execute(&mut *conn)
    .await?;
    // Driven by the payout's rows, each probing its Payment (`payments_ledger_entry`).
    sqlx::query(
        "UPDATE payments SET payout_id = $1 WHERE ledger_entry_id IN \
         (SELECT id FROM ledger_entries WHERE payout_id = $1 AND topic = 'funds') AND COALESCE(payout_id, '') = ''",
    )
    .bind(&id)
    .execute(&mut *conn)
    .await?;
    // The totals in one pass over the payout's rows.
    let totals = sqlx::query(
        "SELECT CAST(COALESCE(SUM(CASE WHEN topic = 'funds' AND kind = 'fees_retained' THEN amount_ore ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN topic = 'funds' AND kind = 'capture' THEN amount_ore ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN topic = 'funds' AND kind = 'refund' THEN amount_ore ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN topic = 'funds' THEN 1 ELSE 0 END), 0) AS BIGINT), MIN(ledger_date) \
         FROM ledger_entries WHERE payout_id = $1",
    )
    .bind(&id)
    .fetch_one(&mut *conn)
    .await?;
    let (fees, captures, refunds, rows): (i64, i64, i64, i64) =
        (totals.try_get(0)?, totals.try_get(1)?, totals.try_get(2)?, totals.try_get(3)?);
    let first: Option<String> = totals.try_get(4)?;
    sqlx::query(
        "UPDATE payouts SET fees_retained_ore = $2, captures_ore = $3, refunds_ore = $4, rows_count = $5, \
         first_date = COALESCE($6, first_date) WHERE id = $1",
    )
    .bind(&id)
    .bind(fees)
    .bind(captures)
    .bind(refunds)
    .bind(rows)
    .bind(first)
    .execute(&mut *conn)
    .await?;
    Ok((id, booked))
}

/// Sets the payout of Payments settled by rows already in a payout (a capture booked after its payout was).
pub async fn link_late_payments(conn: &mut AnyConnection, entry_ids: &[String]) -> StoreResult<()> {
    if entry_ids.is_empty() {
        return Ok(());
    }
    let sqlite = conn.backend_name() == "SQLite";
    let list = if sqlite { "SELECT value FROM json_each($1)" } else { "SELECT jsonb_array_elements_text($1::jsonb)" };
    // Driven by the rows' ids (`payments_ledger_entry`); the COALESCE keeps the planner off `payments_payout`,
    // which would walk every Payment not yet in a payout.
    let sql = format!(
        "UPDATE payments SET payout_id = (SELECT l.payout_id FROM ledger_entries l WHERE l.id = payments.ledger_entry_id) \
         WHERE ledger_entry_id IN ({list}) AND COALESCE(payout_id, '') = ''"
    );
    sqlx::query(&sql).bind(serde_json::to_string(entry_ids).unwrap_or_default()).execute(conn).await?;
    Ok(())
}

/// The payouts of every account (or one), newest first.
pub async fn payouts(conn: &mut AnyConnection, account_id: Option<&str>, limit: i64) -> StoreResult<Vec<PayoutRow>> {
    let rows = sqlx::query(
        "SELECT * FROM payouts WHERE ($1 = '' OR account_id = $1) ORDER BY ledger_date DESC, id DESC LIMIT $2",
    )
    .bind(account_id.unwrap_or(""))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(payout_from_row).collect()
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunTrigger {
    /// The daily beat.
    Beat,
    /// `payhub reconcile run`.
    Command,
    /// The admin API or pages.
    Admin,
    /// A settlement file.
    File,
}

impl RunTrigger {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Beat => "beat",
            Self::Command => "command",
            Self::Admin => "admin",
            Self::File => "file",
        }
    }
}

/// A run as stored.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RunRow {
    /// `rr_…`
    pub id: String,
    /// The account.
    pub account_id: String,
    /// What started it: `beat`, `command`, `admin` or `file`.
    pub trigger: String,
    /// Who started it (a user's email), when a person did.
    pub actor: Option<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Pages read.
    pub pages: i64,
    /// Rows stored for the first time.
    pub rows_new: i64,
    /// Rows read again that were stored before.
    pub rows_already: i64,
    /// Rows booked by the rules.
    pub rows_booked: i64,
    /// Rows put in the queue.
    pub rows_queued: i64,
    /// Ledger dates that did not balance.
    pub dates_unbalanced: i64,
    /// `running`, `succeeded`, `no_new_data`, `failed`.
    pub outcome: String,
    /// Why it failed.
    pub error: Option<String>,
}

/// Counts of a run, as it ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct RunCounts {
    /// Pages read.
    pub pages: u64,
    /// Rows stored for the first time.
    pub rows_new: u64,
    /// Rows stored before.
    pub rows_already: u64,
    /// Rows booked.
    pub rows_booked: u64,
    /// Rows queued.
    pub rows_queued: u64,
    /// Dates flagged.
    pub dates_unbalanced: u64,
}

fn run_from_row(row: &sqlx::any::AnyRow) -> StoreResult<RunRow> {
    let started: String = row.try_get("started_at")?;
    let finished: Option<String> = row.try_get("finished_at")?;
    Ok(RunRow {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        trigger: row.try_get("trigger")?,
        actor: row.try_get("actor")?,
        started_at: parse_timestamp(&started)?,
        finished_at: finished.as_deref().map(parse_timestamp).transpose()?,
        pages: row.try_get("pages")?,
        rows_new: row.try_get("rows_new")?,
        rows_already: row.try_get("rows_already")?,
        rows_booked: row.try_get("rows_booked")?,
        rows_queued: row.try_get("rows_queued")?,
        dates_unbalanced: row.try_get("dates_unbalanced")?,
        outcome: row.try_get("outcome")?,
        error: row.try_get("error")?,
    })
}

/// Records the start of a run; returns its id.
pub async fn start_run(
    conn: &mut AnyConnection,
    account_id: &str,
    trigger: RunTrigger,
    actor: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<String> {
    let id = new_id("rr");
    sqlx::query(
        "INSERT INTO reconcile_runs (id, account_id, trigger, actor, started_at, outcome) VALUES ($1, $2, $3, $4, $5, 'running')",
    )
    .bind(&id)
    .bind(account_id)
    .bind(trigger.as_str())
    .bind(actor)
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(id)
}

/// Records how a run ended.
pub async fn finish_run(
    conn: &mut AnyConnection,
    id: &str,
    counts: &RunCounts,
    outcome: &str,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    sqlx::query(
        "UPDATE reconcile_runs SET finished_at = $2, pages = $3, rows_new = $4, rows_already = $5, rows_booked = $6, \
         rows_queued = $7, dates_unbalanced = $8, outcome = $9, error = $10 WHERE id = $1",
    )
    .bind(id)
    .bind(timestamp(now))
    .bind(n(counts.pages))
    .bind(n(counts.rows_new))
    .bind(n(counts.rows_already))
    .bind(n(counts.rows_booked))
    .bind(n(counts.rows_queued))
    .bind(n(counts.dates_unbalanced))
    .bind(outcome)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// The latest runs of every account (or one), newest first.
pub async fn runs(conn: &mut AnyConnection, account_id: Option<&str>, limit: i64) -> StoreResult<Vec<RunRow>> {
    let rows = sqlx::query(
        "SELECT * FROM reconcile_runs WHERE ($1 = '' OR account_id = $1) ORDER BY started_at DESC, id DESC LIMIT $2",
    )
    .bind(account_id.unwrap_or(""))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(run_from_row).collect()
}
