//! The Vipps settlement ledgers of each account, every ledger transaction as received, how far the import of
//! each ledger and topic got, the per-date balance checks, payouts and import runs.
//!
//! A page of rows is written set-based (one statement per table, the rows as one JSON parameter, like
//! `store::together`) together with its Messages, Inbound Reports and the position it reached, so a crash
//! loses nothing and a re-run never writes a row twice (unique on ledger, topic, pspReference, entry type).

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use sqlx::{AnyConnection, Row};

use super::sql::{decode, opt_date};
use super::together::statements::{BatchConn, Steps};
use super::trail::{NewMessage, NewReport};
use super::{parse_timestamp, timestamp, Backend, StoreResult};
use crate::domain::ids::new_id;
use crate::domain::ledger::{EntryKind, EntrySource, EntryStatus, Topic};
use crate::domain::trail::{Channel, Outcome, ReportType};

/// A ledger of an account, as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LedgerRow {
    /// `led_…`
    pub id: String,
    /// The account it belongs to.
    pub account_id: String,
    /// Vipps' `ledgerId`.
    pub vipps_ledger_id: String,
    /// `api:<MSN>` or `NO:<number>`.
    pub recipient_handle: String,
    /// `NOK`, `DKK`, `EUR`.
    pub currency: String,
    /// The bank account payouts go to.
    pub payout_account: Option<String>,
    /// Its scheme (`BBAN:NO`).
    pub payout_scheme: Option<String>,
}

/// A ledger as Vipps describes it.
#[derive(Debug, Clone)]
pub struct NewLedger<'a> {
    /// Vipps' `ledgerId`.
    pub vipps_ledger_id: &'a str,
    /// The handle it settles for.
    pub recipient_handle: &'a str,
    /// Currency.
    pub currency: &'a str,
    /// Payout bank account number.
    pub payout_account: Option<&'a str>,
    /// Its scheme.
    pub payout_scheme: Option<&'a str>,
}

fn ledger_from_row(row: &sqlx::any::AnyRow) -> StoreResult<LedgerRow> {
    Ok(LedgerRow {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        vipps_ledger_id: row.try_get("vipps_ledger_id")?,
        recipient_handle: row.try_get("recipient_handle")?,
        currency: row.try_get("currency")?,
        payout_account: row.try_get("payout_account")?,
        payout_scheme: row.try_get("payout_scheme")?,
    })
}

/// Stores a ledger of `account_id` (or refreshes its payout account); returns it as stored.
pub async fn upsert_ledger(
    conn: &mut AnyConnection,
    account_id: &str,
    ledger: &NewLedger<'_>,
    now: DateTime<Utc>,
) -> StoreResult<LedgerRow> {
    sqlx::query(
        "INSERT INTO ledgers (id, account_id, vipps_ledger_id, recipient_handle, currency, payout_account, \
         payout_scheme, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
         ON CONFLICT (account_id, vipps_ledger_id) DO UPDATE SET payout_account = excluded.payout_account, \
         payout_scheme = excluded.payout_scheme, updated_at = excluded.updated_at",
    )
    .bind(new_id("led"))
    .bind(account_id)
    .bind(ledger.vipps_ledger_id)
    .bind(ledger.recipient_handle)
    .bind(ledger.currency)
    .bind(ledger.payout_account)
    .bind(ledger.payout_scheme)
    .bind(timestamp(now))
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query("SELECT * FROM ledgers WHERE account_id = $1 AND vipps_ledger_id = $2")
        .bind(account_id)
        .bind(ledger.vipps_ledger_id)
        .fetch_one(conn)
        .await?;
    ledger_from_row(&row)
}

/// The ledgers of an account, in id order.
pub async fn ledgers_of(conn: &mut AnyConnection, account_id: &str) -> StoreResult<Vec<LedgerRow>> {
    let rows =
        sqlx::query("SELECT * FROM ledgers WHERE account_id = $1 ORDER BY id").bind(account_id).fetch_all(conn).await?;
    rows.iter().map(ledger_from_row).collect()
}

/// How far the import of one topic of a ledger got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    /// The last ledger date imported whole.
    pub date_done: Option<NaiveDate>,
    /// The date being read, when it has more pages.
    pub page_date: Option<NaiveDate>,
    /// The cursor of that date's next page.
    pub page_cursor: Option<String>,
    /// The feed's cursor.
    pub feed_cursor: Option<String>,
    /// The `seq` the next stored row gets.
    pub next_seq: i64,
}

/// The position of `ledger_id` / `topic`, locked for the rest of the transaction on PostgreSQL (on SQLite the
/// write transaction already excludes other writers), so two importers cannot both write the same page: the
/// second sees the position the first committed and stops.
pub async fn lock_position(
    conn: &mut AnyConnection,
    backend: Backend,
    ledger_id: &str,
    topic: Topic,
    now: DateTime<Utc>,
) -> StoreResult<Position> {
    sqlx::query(
        "INSERT INTO ledger_positions (ledger_id, topic, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (ledger_id, topic) DO NOTHING",
    )
    .bind(ledger_id)
    .bind(topic.as_str())
    .bind(timestamp(now))
    .execute(&mut *conn)
    .await?;
    let sql = match backend {
        Backend::Postgres => "SELECT * FROM ledger_positions WHERE ledger_id = $1 AND topic = $2 FOR UPDATE",
        Backend::Sqlite => "SELECT * FROM ledger_positions WHERE ledger_id = $1 AND topic = $2",
    };
    let row = sqlx::query(sql).bind(ledger_id).bind(topic.as_str()).fetch_one(conn).await?;
    Ok(Position {
        date_done: opt_date(&row, "date_done")?,
        page_date: opt_date(&row, "page_date")?,
        page_cursor: row.try_get("page_cursor")?,
        feed_cursor: row.try_get("feed_cursor")?,
        next_seq: row.try_get("next_seq")?,
    })
}

/// Stores the position reached (in the transaction that wrote the rows that reached it).
pub async fn set_position(
    conn: &mut AnyConnection,
    ledger_id: &str,
    topic: Topic,
    position: &Position,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE ledger_positions SET date_done = $3, page_date = $4, page_cursor = $5, feed_cursor = $6, \
         next_seq = $7, updated_at = $8 WHERE ledger_id = $1 AND topic = $2",
    )
    .bind(ledger_id)
    .bind(topic.as_str())
    .bind(position.date_done.map(|d| d.to_string()))
    .bind(position.page_date.map(|d| d.to_string()))
    .bind(position.page_cursor.as_deref())
    .bind(position.feed_cursor.as_deref())
    .bind(position.next_seq)
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(())
}

/// One ledger transaction to store.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    /// Which account of the ledger.
    pub topic: Topic,
    /// Vipps' id of the movement.
    pub psp_reference: &'a str,
    /// As sent (`capture`, `refund`, a type added later…).
    pub entry_type: &'a str,
    /// Signed amount in øre.
    pub amount_ore: i64,
    /// Running balance before the row.
    pub balance_before_ore: Option<i64>,
    /// Running balance after the row.
    pub balance_after_ore: Option<i64>,
    /// Currency.
    pub currency: &'a str,
    /// Ledger (accounting) date.
    pub ledger_date: NaiveDate,
    /// When it happened.
    pub time: DateTime<Utc>,
    /// Payment reference / charge id / bank text.
    pub reference: Option<&'a str>,
    /// `api:<MSN>`, `NO:<number>`.
    pub recipient_handle: Option<&'a str>,
    /// Payer's name (Vipps-number payments).
    pub payer_name: Option<&'a str>,
    /// Payer's message (Vipps-number payments).
    pub payer_message: Option<&'a str>,
    /// Payer's masked phone number (Vipps-number payments).
    pub masked_phone: Option<&'a str>,
    /// The row as received: the body of its Message.
    pub body: &'a str,
}

impl NewEntry<'_> {
    /// How payhub reads it.
    pub fn kind(&self) -> EntryKind {
        EntryKind::classify(self.entry_type, self.amount_ore)
    }
}

/// What writing a page did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageWritten {
    /// Rows stored for the first time.
    pub new: u64,
    /// Rows already stored (by an earlier run or file).
    pub already: u64,
}

/// Writes the rows of one page of `ledger` that are not stored yet: per row a Message (channel `channel`,
/// the row's body) and an Inbound Report (`Vipps` / `ledger.<entryType>`, outcome `New`), and the ledger row
/// pointing at it, numbered from `position.next_seq` (which moves on). Rows already stored are counted, not
/// written. Set-based: a handful of statements per page whatever its size.
pub async fn insert_entries(
    conn: &mut AnyConnection,
    ledger: &LedgerRow,
    source: EntrySource,
    entries: &[NewEntry<'_>],
    position: &mut Position,
    now: DateTime<Utc>,
) -> StoreResult<PageWritten> {
    if entries.is_empty() {
        return Ok(PageWritten::default());
    }
    let keys: Vec<serde_json::Value> =
        entries.iter().map(|e| json!([e.topic.as_str(), e.psp_reference, e.entry_type])).collect();
    let existing = existing_keys(conn, &ledger.id, keys).await?;
    // A page may carry the same row twice only if Vipps repeats itself; the first one counts.
    let mut seen: HashSet<(Topic, &str, &str)> = HashSet::new();
    let fresh: Vec<&NewEntry<'_>> = entries
        .iter()
        .filter(|e| {
            !existing.contains(&(e.topic.as_str().to_owned(), e.psp_reference.to_owned(), e.entry_type.to_owned()))
                && seen.insert((e.topic, e.psp_reference, e.entry_type))
        })
        .collect();
    let written = PageWritten { new: fresh.len() as u64, already: (entries.len() - fresh.len()) as u64 };
    if fresh.is_empty() {
        return Ok(written);
    }
    let channel = match source {
        EntrySource::Api => Channel::Ledger,
        EntrySource::File => Channel::SettlementFile,
    };
    let mut steps = Steps::default();
    let messages: Vec<(NewMessage<'_>, DateTime<Utc>)> =
        fresh.iter().map(|e| (NewMessage::processed(channel, Some(e.psp_reference), e.body), now)).collect();
    let message_ids = steps.insert_messages(&messages);
    let sub_types: Vec<String> = fresh.iter().map(|e| format!("ledger.{}", e.entry_type)).collect();
    let reports: Vec<(NewReport<'_>, DateTime<Utc>)> = fresh
        .iter()
        .zip(&message_ids)
        .zip(&sub_types)
        .map(|((e, message_id), sub_type)| {
            let report = NewReport {
                message_id,
                report_type: ReportType::Vipps,
                sub_type,
                amount_ore: Some(e.amount_ore),
                reference: e.reference.filter(|r| !r.is_empty()),
                status: Outcome::New,
                installment_id: None,
                intent_id: None,
                detail: None,
            };
            (report, now)
        })
        .collect();
    let report_ids = steps.insert_reports(&reports);
    let at = timestamp(now);
    let rows: Vec<serde_json::Value> = fresh
        .iter()
        .zip(&report_ids)
        .map(|(e, report_id)| {
            let seq = position.next_seq;
            position.next_seq += 1;
            json!([
                new_id("le"),
                e.topic.as_str(),
                e.psp_reference,
                e.entry_type,
                e.kind().as_str(),
                e.amount_ore,
                e.balance_before_ore,
                e.balance_after_ore,
                e.currency,
                e.ledger_date.to_string(),
                timestamp(e.time),
                seq,
                e.reference,
                e.recipient_handle,
                e.payer_name,
                e.payer_message,
                e.masked_phone,
                report_id,
            ])
        })
        .collect();
    steps.push(
        "INSERT INTO ledger_entries (id, ledger_id, account_id, topic, psp_reference, entry_type, kind, amount_ore, \
         balance_before_ore, balance_after_ore, currency, ledger_date, entry_time, seq, reference, recipient_handle, \
         payer_name, payer_message, masked_phone, source, inbound_report_id, status, created_at, updated_at) \
         SELECT {r}->>0, $2, $3, {r}->>1, {r}->>2, {r}->>3, {r}->>4, CAST({r}->>5 AS BIGINT), \
         CAST({r}->>6 AS BIGINT), CAST({r}->>7 AS BIGINT), {r}->>8, {r}->>9, {r}->>10, CAST({r}->>11 AS BIGINT), \
         {r}->>12, {r}->>13, {r}->>14, {r}->>15, {r}->>16, $4, {r}->>17, 'new', $5, $5 FROM {rows}",
        rows,
        vec![ledger.id.clone(), ledger.account_id.clone(), source.as_str().to_owned(), at],
    );
    conn.write(steps).await?;
    Ok(written)
}

/// Which of `keys` (`[topic, pspReference, entryType]`) `ledger_id` already holds.
async fn existing_keys(
    conn: &mut AnyConnection,
    ledger_id: &str,
    keys: Vec<serde_json::Value>,
) -> StoreResult<HashSet<(String, String, String)>> {
    let sqlite = conn.backend_name() == "SQLite";
    let source = if sqlite {
        "SELECT value->>0 AS t, value->>1 AS p, value->>2 AS e FROM json_each($2)"
    } else {
        "SELECT v->>0 AS t, v->>1 AS p, v->>2 AS e FROM jsonb_array_elements($2::jsonb) AS x(v)"
    };
    // The page's keys drive the join (CROSS JOIN keeps SQLite from scanning the ledger once per key): one
    // probe of the unique index per row.
    let sql = format!(
        "SELECT l.topic, l.psp_reference, l.entry_type FROM ({source}) k CROSS JOIN ledger_entries l \
         WHERE l.ledger_id = $1 AND l.topic = k.t AND l.psp_reference = k.p AND l.entry_type = k.e"
    );
    let rows = conn.read(&sql, &[ledger_id.to_owned(), serde_json::Value::Array(keys).to_string()]).await?;
    let mut out = HashSet::with_capacity(rows.len());
    for row in rows {
        let mut it = row.into_iter().map(Option::unwrap_or_default);
        out.insert((it.next().unwrap_or_default(), it.next().unwrap_or_default(), it.next().unwrap_or_default()));
    }
    Ok(out)
}

/// A page of a retrieval, stored as its Message (channel `vipps_ledger`, subject the ledger id): the request
/// and what the page said about itself. Its rows are each their own Message.
pub async fn insert_page_message(
    conn: &mut AnyConnection,
    vipps_ledger_id: &str,
    body: &str,
    now: DateTime<Utc>,
) -> StoreResult<String> {
    super::trail::insert_message(conn, &NewMessage::processed(Channel::Ledger, Some(vipps_ledger_id), body), now).await
}

/// The balance check of one ledger date and topic.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DayCheck {
    /// The date.
    pub ledger_date: NaiveDate,
    /// Which account.
    pub topic: &'static str,
    /// Rows on it.
    pub rows: i64,
    /// Balance before its first row.
    pub opening_ore: i64,
    /// Balance after its last row.
    pub closing_ore: i64,
    /// Sum of its rows.
    pub sum_ore: i64,
    /// What does not add up, if anything.
    pub problem: Option<String>,
}

/// Checks the dates `from ..= to` of `ledger_id` / `topic` (one statement for all of them), stores each
/// result, and holds the rows of a date that does not balance (status `held`, their reports `Failed`). A date
/// balances when: opening + rows = closing, each row's balance follows from the one before, and a payout row
/// clears the balance before it.
pub async fn check_days(
    conn: &mut AnyConnection,
    ledger_id: &str,
    topic: Topic,
    from: NaiveDate,
    to: NaiveDate,
    now: DateTime<Utc>,
) -> StoreResult<Vec<DayCheck>> {
    let rows = sqlx::query(
        "SELECT ledger_date, COUNT(*) AS n, CAST(SUM(amount_ore) AS BIGINT) AS total, \
         CAST(SUM(CASE WHEN first_row = 1 THEN COALESCE(balance_before_ore, 0) ELSE 0 END) AS BIGINT) AS opening, \
         CAST(SUM(CASE WHEN last_row = 1 THEN COALESCE(balance_after_ore, 0) ELSE 0 END) AS BIGINT) AS closing, \
         CAST(SUM(CASE WHEN prev_after IS NOT NULL AND balance_before_ore <> prev_after THEN 1 ELSE 0 END) AS BIGINT) AS gaps, \
         CAST(SUM(CASE WHEN balance_after_ore <> balance_before_ore + amount_ore THEN 1 ELSE 0 END) AS BIGINT) AS bad_rows, \
         CAST(SUM(CASE WHEN kind = 'payout' AND amount_ore <> -balance_before_ore THEN 1 ELSE 0 END) AS BIGINT) AS bad_payouts \
         FROM (SELECT ledger_date, amount_ore, balance_before_ore, balance_after_ore, kind, \
               ROW_NUMBER() OVER (PARTITION BY ledger_date ORDER BY seq) AS first_row, \
               ROW_NUMBER() OVER (PARTITION BY ledger_date ORDER BY seq DESC) AS last_row, \
               LAG(balance_after_ore) OVER (PARTITION BY ledger_date ORDER BY seq) AS prev_after \
               FROM ledger_entries WHERE ledger_id = $1 AND topic = $2 AND ledger_date >= $3 AND ledger_date <= $4) d \
         GROUP BY ledger_date ORDER BY ledger_date",
    )
    .bind(ledger_id)
    .bind(topic.as_str())
    .bind(from.to_string())
    .bind(to.to_string())
    .fetch_all(&mut *conn)
    .await?;
    let mut checks = Vec::with_capacity(rows.len());
    for row in &rows {
        let date: String = row.try_get("ledger_date")?;
        let date = NaiveDate::parse_from_str(&date, "%Y-%m-%d").map_err(decode)?;
        let n: i64 = row.try_get("n")?;
        let sum: i64 = row.try_get("total")?;
        let opening: i64 = row.try_get("opening")?;
        let closing: i64 = row.try_get("closing")?;
        let gaps: i64 = row.try_get("gaps")?;
        let bad_rows: i64 = row.try_get("bad_rows")?;
        let bad_payouts: i64 = row.try_get("bad_payouts")?;
        let mut problems = Vec::new();
        if opening + sum != closing {
            problems.push(format!("opening {opening} + rows {sum} ≠ closing {closing}"));
        }
        if gaps > 0 {
            problems.push(format!("{gaps} row(s) do not start where the row before ended"));
        }
        if bad_rows > 0 {
            problems.push(format!("{bad_rows} row(s) whose balance after ≠ balance before + amount"));
        }
        if bad_payouts > 0 {
            problems.push(format!("{bad_payouts} payout(s) that do not clear the balance"));
        }
        let problem = (!problems.is_empty()).then(|| problems.join("; "));
        checks.push(DayCheck {
            ledger_date: date,
            topic: topic.as_str(),
            rows: n,
            opening_ore: opening,
            closing_ore: closing,
            sum_ore: sum,
            problem,
        });
    }
    for check in &checks {
        sqlx::query(
            "INSERT INTO ledger_days (ledger_id, topic, ledger_date, rows_count, opening_ore, closing_ore, sum_ore, \
             status, problem, checked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (ledger_id, topic, ledger_date) DO UPDATE SET rows_count = excluded.rows_count, \
             opening_ore = excluded.opening_ore, closing_ore = excluded.closing_ore, sum_ore = excluded.sum_ore, \
             status = excluded.status, problem = excluded.problem, checked_at = excluded.checked_at",
        )
        .bind(ledger_id)
        .bind(topic.as_str())
        .bind(check.ledger_date.to_string())
        .bind(check.rows)
        .bind(check.opening_ore)
        .bind(check.closing_ore)
        .bind(check.sum_ore)
        .bind(if check.problem.is_some() { "unbalanced" } else { "balanced" })
        .bind(check.problem.as_deref())
        .bind(timestamp(now))
        .execute(&mut *conn)
        .await?;
        if let Some(problem) = &check.problem {
            let detail = format!("ledger date {} ({}) does not balance: {problem}", check.ledger_date, topic.as_str());
            sqlx::query(
                "UPDATE inbound_reports SET status = $4, detail = $5, updated_at = $6 WHERE id IN \
                 (SELECT inbound_report_id FROM ledger_entries WHERE ledger_id = $1 AND topic = $2 \
                  AND ledger_date = $3 AND status = 'new')",
            )
            .bind(ledger_id)
            .bind(topic.as_str())
            .bind(check.ledger_date.to_string())
            .bind(Outcome::Failed.as_str())
            .bind(&detail)
            .bind(timestamp(now))
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "UPDATE ledger_entries SET status = $4, updated_at = $5 WHERE ledger_id = $1 AND topic = $2 \
                 AND ledger_date = $3 AND status = 'new'",
            )
            .bind(ledger_id)
            .bind(topic.as_str())
            .bind(check.ledger_date.to_string())
            .bind(EntryStatus::Held.as_str())
            .bind(timestamp(now))
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(checks)
}

/// A stored ledger row, as matching and the queue read it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct EntryRow {
    /// `le_…`
    pub id: String,
    /// Our ledger id.
    pub ledger_id: String,
    /// The account.
    pub account_id: String,
    /// `funds` / `fees`.
    pub topic: String,
    /// Vipps' id of the movement.
    pub psp_reference: String,
    /// As sent.
    pub entry_type: String,
    /// payhub's reading: `capture`, `refund`, `capture_fee`, `fees_retained`, `payout`, `payout_aborted`,
    /// `dispute`, `correction`, `other`, `unknown_credit` or `unknown_debit`.
    pub kind: String,
    /// Signed amount in øre.
    pub amount_ore: i64,
    /// Balance before.
    pub balance_before_ore: Option<i64>,
    /// Balance after.
    pub balance_after_ore: Option<i64>,
    /// Currency.
    pub currency: String,
    /// Ledger date.
    pub ledger_date: NaiveDate,
    /// When it happened.
    pub entry_time: DateTime<Utc>,
    /// Order within the ledger and topic.
    pub seq: i64,
    /// Payment reference / charge id / bank text.
    pub reference: Option<String>,
    /// `api:<MSN>`, `NO:<number>`.
    pub recipient_handle: Option<String>,
    /// Payer's name (Vipps-number payments).
    pub payer_name: Option<String>,
    /// Payer's message (Vipps-number payments).
    pub payer_message: Option<String>,
    /// Payer's masked phone (Vipps-number payments).
    pub masked_phone: Option<String>,
    /// `api` / `file`.
    pub source: String,
    /// Its Inbound Report.
    pub inbound_report_id: String,
    /// `new`, `booked`, `queued`, `ignored` or `held`.
    pub status: String,
    /// The Payment it settled.
    pub payment_id: Option<String>,
    /// The installment it was booked against.
    pub installment_id: Option<String>,
    /// The payout that covers it.
    pub payout_id: Option<String>,
}

/// Reads a stored ledger row.
pub(crate) fn entry_from_row(row: &sqlx::any::AnyRow) -> StoreResult<EntryRow> {
    let date: String = row.try_get("ledger_date")?;
    let time: String = row.try_get("entry_time")?;
    Ok(EntryRow {
        id: row.try_get("id")?,
        ledger_id: row.try_get("ledger_id")?,
        account_id: row.try_get("account_id")?,
        topic: row.try_get("topic")?,
        psp_reference: row.try_get("psp_reference")?,
        entry_type: row.try_get("entry_type")?,
        kind: row.try_get("kind")?,
        amount_ore: row.try_get("amount_ore")?,
        balance_before_ore: row.try_get("balance_before_ore")?,
        balance_after_ore: row.try_get("balance_after_ore")?,
        currency: row.try_get("currency")?,
        ledger_date: NaiveDate::parse_from_str(&date, "%Y-%m-%d").map_err(decode)?,
        entry_time: parse_timestamp(&time)?,
        seq: row.try_get("seq")?,
        reference: row.try_get("reference")?,
        recipient_handle: row.try_get("recipient_handle")?,
        payer_name: row.try_get("payer_name")?,
        payer_message: row.try_get("payer_message")?,
        masked_phone: row.try_get("masked_phone")?,
        source: row.try_get("source")?,
        inbound_report_id: row.try_get("inbound_report_id")?,
        status: row.try_get("status")?,
        payment_id: row.try_get("payment_id")?,
        installment_id: row.try_get("installment_id")?,
        payout_id: row.try_get("payout_id")?,
    })
}

/// Up to `limit` rows of `account_id` on `topic` waiting to be matched (status `new`, on a date checked and
/// balanced), after `after` in `(ledger_date, seq, id)` order, so matching walks them in pages along the index.
pub async fn entries_to_match(
    conn: &mut AnyConnection,
    account_id: &str,
    topic: Topic,
    after: Option<&EntryRow>,
    limit: i64,
) -> StoreResult<Vec<EntryRow>> {
    let (date, seq, id) = match after {
        Some(e) => (e.ledger_date.to_string(), e.seq, e.id.clone()),
        None => (String::new(), -1, String::new()),
    };
    let rows = sqlx::query(
        "SELECT * FROM ledger_entries WHERE status = 'new' AND account_id = $1 AND topic = $2 \
         AND (ledger_date, seq, id) > ($3, $4, $5) \
         AND EXISTS (SELECT 1 FROM ledger_days d WHERE d.ledger_id = ledger_entries.ledger_id \
         AND d.topic = ledger_entries.topic AND d.ledger_date = ledger_entries.ledger_date AND d.status = 'balanced') \
         ORDER BY status, account_id, topic, ledger_date, seq, id LIMIT $6",
    )
    .bind(account_id)
    .bind(topic.as_str())
    .bind(date)
    .bind(seq)
    .bind(id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(entry_from_row).collect()
}

/// The stored rows with these ids.
pub async fn entries_by_id(conn: &mut AnyConnection, ids: &[String]) -> StoreResult<Vec<EntryRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sqlite = conn.backend_name() == "SQLite";
    let sql = if sqlite {
        "SELECT * FROM ledger_entries WHERE id IN (SELECT value FROM json_each($1)) ORDER BY ledger_date, topic DESC, seq, id"
    } else {
        "SELECT * FROM ledger_entries WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb)) \
         ORDER BY ledger_date, topic DESC, seq, id"
    };
    let rows = sqlx::query(sql).bind(serde_json::to_string(ids).unwrap_or_default()).fetch_all(conn).await?;
    rows.iter().map(entry_from_row).collect()
}

/// One stored ledger row.
pub async fn entry(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<EntryRow>> {
    sqlx::query("SELECT * FROM ledger_entries WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(entry_from_row)
        .transpose()
}

/// The ledger dates of `ledger_id` / `topic` not checked yet, up to `through`: from the day after the last
/// date checked (or the ledger's first date) to the last date holding rows. Dates are imported in order and
/// checked once whole, so these are exactly the dates [`check_days`] must look at.
pub async fn unchecked_range(
    conn: &mut AnyConnection,
    ledger_id: &str,
    topic: Topic,
    through: NaiveDate,
) -> StoreResult<Option<(NaiveDate, NaiveDate)>> {
    let row = sqlx::query(
        "SELECT (SELECT MAX(ledger_date) FROM ledger_days WHERE ledger_id = $1 AND topic = $2) AS checked, \
         (SELECT MIN(ledger_date) FROM ledger_entries WHERE ledger_id = $1) AS lo, \
         (SELECT MAX(ledger_date) FROM ledger_entries WHERE ledger_id = $1) AS hi",
    )
    .bind(ledger_id)
    .bind(topic.as_str())
    .fetch_one(conn)
    .await?;
    let (checked, lo, hi) = (opt_date(&row, "checked")?, opt_date(&row, "lo")?, opt_date(&row, "hi")?);
    let lo = match checked {
        Some(c) => c.succ_opt(),
        None => lo,
    };
    Ok(lo.zip(hi.map(|h| h.min(through))).filter(|(lo, hi)| lo <= hi))
}
