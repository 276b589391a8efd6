//! Guided Matching's work on the queue (`match_queue`, with `ledger_entries` beside it): the keyset-paged list,
//! **Next** with a lease (one statement, so two people never take the same item), decisions and their undo, the
//! candidate installments of a line (one set-based query per item, never one per candidate), and the bookings a
//! person's match writes. The queue's rows themselves are written by `store::match_queue`.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{AnyConnection, Row};

use super::match_queue::{self, item_from_row, NewItem, QueueItem, ITEM_COLUMNS};
use super::sql::date;
use super::{timestamp, Backend, StoreResult};
use crate::domain::ids::new_id;
use crate::domain::ledger::QueueReason;

/// Puts the new capture rows of a Vipps number's ledger (from `first_seq` on, status `new`) in the queue as
/// Vipps-number payments; returns how many.
pub async fn queue_vipps_number_payments(
    conn: &mut AnyConnection,
    ledger_id: &str,
    first_seq: i64,
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    let rows = sqlx::query(
        "SELECT id, account_id FROM ledger_entries WHERE ledger_id = $1 AND topic = 'funds' AND seq >= $2 \
         AND status = 'new' AND kind = 'capture' ORDER BY seq",
    )
    .bind(ledger_id)
    .bind(first_seq)
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<(String, String)> =
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<StoreResult<_>>()?;
    let items: Vec<NewItem<'_>> = ids
        .iter()
        .map(|(entry_id, account_id)| NewItem {
            entry_id,
            account_id,
            reason: QueueReason::VippsNumberPayment,
            detail: None,
        })
        .collect();
    match_queue::enqueue(conn, &items, now).await?;
    Ok(items.len() as u64)
}

/// Which items a list shows.
#[derive(Debug, Clone, Default)]
pub struct ListFilter<'a> {
    /// Only this status (`open`, `matched`, `ignored`).
    pub status: Option<&'a str>,
    /// Only this reason.
    pub reason: Option<&'a str>,
    /// Only this account.
    pub account_id: Option<&'a str>,
    /// The page after this item (keyset: oldest first by queue time, then id).
    pub after: Option<&'a str>,
    /// At most this many.
    pub limit: i64,
}

/// A page of queue items, oldest first.
pub async fn list(conn: &mut AnyConnection, filter: &ListFilter<'_>) -> StoreResult<Vec<QueueItem>> {
    let sql = format!(
        "SELECT {ITEM_COLUMNS} FROM match_queue q JOIN ledger_entries l ON l.id = q.entry_id \
         WHERE ($1 = '' OR q.status = $1) AND ($2 = '' OR q.reason = $2) AND ($3 = '' OR q.account_id = $3) \
         AND ($4 = '' OR q.created_at > (SELECT created_at FROM match_queue WHERE id = $4) \
              OR (q.created_at = (SELECT created_at FROM match_queue WHERE id = $4) AND q.id > $4)) \
         ORDER BY q.created_at, q.id LIMIT $5"
    );
    let rows = sqlx::query(&sql)
        .bind(filter.status.unwrap_or(""))
        .bind(filter.reason.unwrap_or(""))
        .bind(filter.account_id.unwrap_or(""))
        .bind(filter.after.unwrap_or(""))
        .bind(filter.limit)
        .fetch_all(conn)
        .await?;
    rows.iter().map(item_from_row).collect()
}

/// **Next**: the oldest open item nobody holds a live lease on, leased to `actor` until `lease_until`, in one
/// statement. On PostgreSQL a row another transaction is taking is skipped (`SKIP LOCKED`); on SQLite the write
/// transaction the caller holds excludes other takers. `None` when nothing is free.
pub async fn take_next(
    conn: &mut AnyConnection,
    backend: Backend,
    actor: &str,
    account_id: Option<&str>,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> StoreResult<Option<String>> {
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE match_queue SET worked_by = $1, worked_at = $2, lease_until = $3, updated_at = $2 \
         WHERE id = (SELECT id FROM match_queue WHERE status = 'open' AND (lease_until IS NULL OR lease_until < $2) \
         AND ($4 = '' OR account_id = $4) ORDER BY created_at, id LIMIT 1{lock}) RETURNING id"
    );
    let row = sqlx::query(&sql)
        .bind(actor)
        .bind(timestamp(now))
        .bind(timestamp(lease_until))
        .bind(account_id.unwrap_or(""))
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// One item, locked for the rest of the transaction on PostgreSQL.
pub async fn lock_item(conn: &mut AnyConnection, backend: Backend, id: &str) -> StoreResult<Option<QueueItem>> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT id FROM match_queue WHERE id = $1 FOR UPDATE").bind(id).fetch_optional(&mut *conn).await?;
    }
    match_queue::item(conn, id).await
}

/// Records a person's decision on an open item (`matched` or `ignored`), ending any lease; its ledger row
/// becomes `booked` (with the installment and Payment) or `ignored`. Returns false when the item was not open.
pub async fn decide(
    conn: &mut AnyConnection,
    id: &str,
    status: &str,
    actor: &str,
    remark: Option<&str>,
    booked: Option<(&str, &str)>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let at = timestamp(now);
    let done = sqlx::query(
        "UPDATE match_queue SET status = $2, decided_by = $3, decided_at = $4, remark = $5, lease_until = NULL, \
         updated_at = $4 WHERE id = $1 AND status = 'open'",
    )
    .bind(id)
    .bind(status)
    .bind(actor)
    .bind(&at)
    .bind(remark)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    let entry_status = if booked.is_some() { "booked" } else { "ignored" };
    sqlx::query(
        "UPDATE ledger_entries SET status = $2, installment_id = $3, payment_id = $4, updated_at = $5 \
         WHERE id = (SELECT entry_id FROM match_queue WHERE id = $1)",
    )
    .bind(id)
    .bind(entry_status)
    .bind(booked.map(|b| b.0))
    .bind(booked.map(|b| b.1))
    .bind(&at)
    .execute(conn)
    .await?;
    Ok(true)
}

/// Opens a matched item again (undo of a manual match): the item waits again, its ledger row is `queued`
/// without installment or Payment. Returns false when the item was not matched.
pub async fn reopen(conn: &mut AnyConnection, id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
    let at = timestamp(now);
    let done = sqlx::query(
        "UPDATE match_queue SET status = 'open', decided_by = NULL, decided_at = NULL, remark = NULL, \
         updated_at = $2 WHERE id = $1 AND status = 'matched'",
    )
    .bind(id)
    .bind(&at)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE ledger_entries SET status = 'queued', installment_id = NULL, payment_id = NULL, updated_at = $2 \
         WHERE id = (SELECT entry_id FROM match_queue WHERE id = $1)",
    )
    .bind(id)
    .bind(&at)
    .execute(conn)
    .await?;
    Ok(true)
}

/// An open installment a line may pay.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Candidate {
    /// `ins_…`
    pub installment_id: String,
    /// Its payment reference.
    pub payment_reference: String,
    /// Expected amount in øre.
    pub amount_ore: i64,
    /// Still open, in øre.
    pub amount_open_ore: i64,
    /// Due date.
    pub due_date: NaiveDate,
    /// Status.
    pub status: String,
    /// The payer's name.
    pub payer_name: String,
    /// The payer's phone.
    pub payer_phone: Option<String>,
}

/// What a line offers to search by.
#[derive(Debug, Clone)]
pub struct CandidateSearch<'a> {
    /// The account whose installments may match.
    pub account_id: &'a str,
    /// Words of the line's reference and message that may be a payment reference.
    pub references: &'a [String],
    /// The amount, in øre.
    pub amount_ore: i64,
    /// Due dates within this range count for the amount.
    pub from: NaiveDate,
    /// …
    pub to: NaiveDate,
    /// The last digits of the payer's masked phone.
    pub phone_tail: Option<&'a str>,
    /// The payer's name, as Vipps gives it.
    pub name: Option<&'a str>,
    /// At most this many.
    pub limit: i64,
}

/// The open (Outstanding or Pending) installments of the account that share something with the line: a payment
/// reference it names, its amount within the date range, the payer's phone ending or name. One query.
pub async fn candidates(conn: &mut AnyConnection, search: &CandidateSearch<'_>) -> StoreResult<Vec<Candidate>> {
    let list = if conn.backend_name() == "SQLite" {
        "SELECT value FROM json_each($2)"
    } else {
        "SELECT jsonb_array_elements_text($2::jsonb)"
    };
    let sql = format!(
        "SELECT i.id, i.payment_reference, i.amount_ore, i.amount_open_ore, i.due_date, i.status, \
         COALESCE(p.first_name, '') AS first_name, COALESCE(p.last_name, '') AS last_name, p.phone \
         FROM installments i JOIN payers p ON p.id = i.payer_id \
         WHERE i.account_id = $1 AND i.status IN ('Outstanding', 'Pending') AND ( \
           i.payment_reference IN ({list}) \
           OR (i.amount_open_ore = $3 AND i.due_date BETWEEN $4 AND $5) \
           OR ($6 <> '' AND p.phone LIKE '%' || $6) \
           OR ($7 <> '' AND lower(TRIM(COALESCE(p.first_name, '') || ' ' || COALESCE(p.last_name, ''))) = lower($7))) \
         ORDER BY i.due_date, i.id LIMIT $8"
    );
    let rows = sqlx::query(&sql)
        .bind(search.account_id)
        .bind(serde_json::to_string(search.references).unwrap_or_else(|_| "[]".into()))
        .bind(search.amount_ore)
        .bind(search.from.to_string())
        .bind(search.to.to_string())
        .bind(search.phone_tail.unwrap_or(""))
        .bind(search.name.unwrap_or(""))
        .bind(search.limit)
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|r| {
            let first: String = r.try_get("first_name")?;
            let last: String = r.try_get("last_name")?;
            Ok(Candidate {
                installment_id: r.try_get("id")?,
                payment_reference: r.try_get("payment_reference")?,
                amount_ore: r.try_get("amount_ore")?,
                amount_open_ore: r.try_get("amount_open_ore")?,
                due_date: date(r, "due_date")?,
                status: r.try_get("status")?,
                payer_name: format!("{first} {last}").trim().to_owned(),
                payer_phone: r.try_get("phone")?,
            })
        })
        .collect()
}

/// The installments with these ids, locked on PostgreSQL, in the order asked.
pub async fn lock_installments(
    conn: &mut AnyConnection,
    backend: Backend,
    ids: &[String],
) -> StoreResult<Vec<Option<super::installments::InstallmentRow>>> {
    let mut out = Vec::with_capacity(ids.len());
    // A person picks a handful; each is locked in the order given so two matches lock alike.
    for id in ids {
        out.push(super::installments::lock_installment(conn, backend, id).await?);
    }
    Ok(out)
}

/// A Payment booked by a person from a ledger row (its settled facts come with it).
#[derive(Debug, Clone)]
pub struct SettledPayment<'a> {
    /// The installment it pays.
    pub installment_id: &'a str,
    /// Øre.
    pub amount_ore: i64,
    /// Unique: Vipps' reference, or a suffix of it for the second and later installments of one line.
    pub psp_reference: &'a str,
    /// The line's Inbound Report.
    pub inbound_report_id: &'a str,
    /// The ledger row.
    pub ledger_entry_id: &'a str,
    /// Its ledger date.
    pub ledger_date: NaiveDate,
}

/// Inserts a [`SettledPayment`]; returns its id.
pub async fn insert_settled_payment(
    conn: &mut AnyConnection,
    p: &SettledPayment<'_>,
    now: DateTime<Utc>,
) -> StoreResult<String> {
    let (installment_id, amount_ore, psp_reference, inbound_report_id, ledger_entry_id, ledger_date) =
        (p.installment_id, p.amount_ore, p.psp_reference, p.inbound_report_id, p.ledger_entry_id, p.ledger_date);
    let id = new_id("pmt");
    sqlx::query(
        "INSERT INTO payments (id, installment_id, amount_ore, collection_date, psp_reference, kind, \
         inbound_report_id, ledger_date, ledger_entry_id, created_at) VALUES ($1, $2, $3, $4, $5, 'capture', $6, $4, $7, $8)",
    )
    .bind(&id)
    .bind(installment_id)
    .bind(amount_ore)
    .bind(ledger_date.to_string())
    .bind(psp_reference)
    .bind(inbound_report_id)
    .bind(ledger_entry_id)
    .bind(timestamp(now))
    .execute(conn)
    .await
    .map_err(super::map_conflict)?;
    Ok(id)
}

/// Marks the Payments a person's match booked from a ledger row as reversed by `report_id` (the undo's Inbound
/// Report); they stay, and money state reads past them. Returns how many it marked (a Payment reversed before,
/// or not booked from a ledger row, is left alone).
pub async fn reverse_settled_payments(conn: &mut AnyConnection, ids: &[String], report_id: &str) -> StoreResult<u64> {
    let mut n = 0;
    for id in ids {
        n += sqlx::query(
            "UPDATE payments SET reversed_by_report_id = $2 WHERE id = $1 AND ledger_entry_id IS NOT NULL \
             AND reversed_by_report_id IS NULL",
        )
        .bind(id)
        .bind(report_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    }
    Ok(n)
}

/// How many Payments were booked from the ledger row `entry_id` (reversed ones included): a new match numbers
/// its Payments' references after them, as references are unique.
pub async fn payments_of_entry(conn: &mut AnyConnection, entry_id: &str) -> StoreResult<i64> {
    let row =
        sqlx::query("SELECT COUNT(*) FROM payments WHERE ledger_entry_id = $1").bind(entry_id).fetch_one(conn).await?;
    Ok(row.try_get(0)?)
}

/// Sets an installment's status and open amount as a person's match (or its undo) decided; the caller checked
/// the move. Returns false when the installment is no longer in `from`.
pub async fn set_installment(
    conn: &mut AnyConnection,
    id: &str,
    from: &str,
    to: &str,
    amount_open_ore: i64,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE installments SET status = $3, amount_open_ore = $4, updated_at = $5 WHERE id = $1 AND status = $2",
    )
    .bind(id)
    .bind(from)
    .bind(to)
    .bind(amount_open_ore)
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An installment a person creates for a line nothing expected (a walk-up Vipps-number gift).
#[derive(Debug, Clone)]
pub struct NewManualInstallment<'a> {
    /// The payer.
    pub payer_id: &'a str,
    /// The account.
    pub account_id: &'a str,
    /// Amount in øre.
    pub amount_ore: i64,
    /// Due date (the ledger date).
    pub due_date: NaiveDate,
    /// Its payment reference (unique).
    pub payment_reference: &'a str,
    /// Product, as the person named it.
    pub product: Option<&'a str>,
}

/// Inserts an Outstanding installment; returns its id.
pub async fn insert_manual_installment(
    conn: &mut AnyConnection,
    new: &NewManualInstallment<'_>,
    now: DateTime<Utc>,
) -> StoreResult<String> {
    let id = new_id("ins");
    sqlx::query(
        "INSERT INTO installments (id, payer_id, account_id, amount_ore, amount_open_ore, due_date, status, \
         payment_reference, product, created_at, updated_at) VALUES ($1, $2, $3, $4, $4, $5, 'Outstanding', $6, $7, $8, $8)",
    )
    .bind(&id)
    .bind(new.payer_id)
    .bind(new.account_id)
    .bind(new.amount_ore)
    .bind(new.due_date.to_string())
    .bind(new.payment_reference)
    .bind(new.product)
    .bind(timestamp(now))
    .execute(conn)
    .await
    .map_err(super::map_conflict)?;
    Ok(id)
}

/// The open installments of a payer on an account besides `except`, oldest due first (where book on next puts
/// what the chosen ones cannot take), at most `limit`.
pub async fn payer_open_installments(
    conn: &mut AnyConnection,
    payer_id: &str,
    account_id: &str,
    except: &[String],
    limit: i64,
) -> StoreResult<Vec<super::installments::InstallmentRow>> {
    let rows = sqlx::query(
        "SELECT id FROM installments WHERE payer_id = $1 AND account_id = $2 AND status IN ('Outstanding', 'Pending') \
         AND amount_open_ore > 0 ORDER BY due_date, id LIMIT $3",
    )
    .bind(payer_id)
    .bind(account_id)
    .bind(limit + except.len() as i64)
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<String> = rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for id in ids.into_iter().filter(|id| !except.contains(id)).take(usize::try_from(limit).unwrap_or(0)) {
        if let Some(row) = super::installments::installment(conn, &id).await? {
            out.push(row);
        }
    }
    Ok(out)
}

/// The raw body of the Message an Inbound Report was made from (a ledger row as received).
pub async fn report_body(conn: &mut AnyConnection, report_id: &str) -> StoreResult<Option<String>> {
    let row =
        sqlx::query("SELECT m.body FROM inbound_reports r JOIN messages m ON m.id = r.message_id WHERE r.id = $1")
            .bind(report_id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}
