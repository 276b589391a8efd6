//! Vipps charges: one per installment of a recurring payment, recorded before it is sent. Its id is the
//! installment's payment reference, which is also its `orderId` at Vipps (unique per merchant), so a repeated
//! create can never make a second charge.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::sql::{date, ids_page, list, placeholders, CHUNK};
use super::{timestamp, Backend, StoreResult};
use crate::domain::vipps_state::{ChargeKind, ChargeState};

/// An installment ready to become a charge.
#[derive(Debug, Clone)]
pub struct Chargeable {
    /// The installment.
    pub installment_id: String,
    /// Its payment reference: the charge id (and orderId) at Vipps.
    pub payment_reference: String,
    /// Amount.
    pub amount_ore: i64,
    /// Due date.
    pub due_date: NaiveDate,
    /// Bank Statement Description.
    pub description: Option<String>,
    /// The agreement's product name (the description when there is none).
    pub product_name: String,
    /// The mandate.
    pub mandate_id: String,
    /// The agreement.
    pub agreement_id: String,
    /// The merchant account.
    pub account_id: String,
    /// The intent's WebhookURL (for events).
    pub webhook_url: Option<String>,
}

/// Outstanding installments of Active recurring payments with Active mandates, due on or before `until`,
/// with no charge yet, after `after_id` in id order; and the cursor of the next page (`None`: the last).
pub async fn chargeable_page(
    conn: &mut AnyConnection,
    until: NaiveDate,
    after_id: &str,
    limit: i64,
) -> StoreResult<(Vec<Chargeable>, Option<String>)> {
    let ids = ids_page(&mut *conn, "installments", "Outstanding", after_id, limit).await?;
    let cursor = (ids.len() as i64 == limit).then(|| ids.last().cloned()).flatten();
    let mut page = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK * 5) {
        let sql = format!(
            "SELECT i.id, i.payment_reference, i.amount_ore, i.due_date, i.bank_statement_description, m.product_name, \
             m.id AS mandate_id, m.agreement_id, i.account_id, pi.webhook_url \
             FROM installments i JOIN recurring_payments r ON r.id = i.recurring_payment_id \
             JOIN mandates m ON m.id = i.mandate_id LEFT JOIN payment_intents pi ON pi.id = i.intent_id \
             WHERE i.status = 'Outstanding' AND i.due_date <= $1 AND r.status = 'Active' \
             AND m.status = 'Active' AND m.agreement_id IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM vipps_charges c WHERE c.installment_id = i.id) AND i.id IN ({}) ORDER BY i.id",
            list(2, chunk.len())
        );
        let mut query = sqlx::query(&sql).bind(until.to_string());
        for id in chunk {
            query = query.bind(id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            page.push(Chargeable {
                installment_id: row.try_get(0)?,
                payment_reference: row.try_get(1)?,
                amount_ore: row.try_get(2)?,
                due_date: date(&row, "due_date")?,
                description: row.try_get(4)?,
                product_name: row.try_get(5)?,
                mandate_id: row.try_get(6)?,
                agreement_id: row.try_get(7)?,
                account_id: row.try_get(8)?,
                webhook_url: row.try_get(9)?,
            });
        }
    }
    Ok((page, cursor))
}

/// A charge to record before it is sent to Vipps.
#[derive(Debug, Clone)]
pub struct NewCharge {
    /// The charge id (= the installment's payment reference).
    pub charge_id: String,
    /// The installment.
    pub installment_id: String,
    /// The mandate.
    pub mandate_id: String,
    /// The agreement.
    pub agreement_id: String,
    /// The account.
    pub account_id: String,
    /// `INITIAL` or `RECURRING`.
    pub kind: ChargeKind,
    /// Amount.
    pub amount_ore: i64,
    /// The `due` sent to Vipps.
    pub due_date: NaiveDate,
    /// Retry days.
    pub retry_days: i64,
    /// Description (≤ 45 characters).
    pub description: String,
    /// `CREATING` for a charge still to be sent; Vipps' status for one Vipps already made.
    pub state: ChargeState,
}

/// Records charges; one an installment already has is skipped (a racing instance recorded it first).
/// Returns the charge ids this call inserted: only those may be sent to Vipps by the caller.
pub async fn insert_charges(
    conn: &mut AnyConnection,
    charges: &[NewCharge],
    now: DateTime<Utc>,
) -> StoreResult<Vec<String>> {
    const COLUMNS: usize = 12;
    let at = timestamp(now);
    let mut inserted = Vec::with_capacity(charges.len());
    for chunk in charges.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO vipps_charges (charge_id, installment_id, mandate_id, agreement_id, account_id, kind, amount_ore, \
             due_date, retry_days, description, state, created_at, updated_at) VALUES {} \
             ON CONFLICT DO NOTHING RETURNING charge_id",
            placeholders(chunk.len(), COLUMNS, &["$12"])
        );
        let mut query = sqlx::query(&sql);
        for c in chunk {
            query = query
                .bind(&c.charge_id)
                .bind(&c.installment_id)
                .bind(&c.mandate_id)
                .bind(&c.agreement_id)
                .bind(&c.account_id)
                .bind(c.kind.as_str())
                .bind(c.amount_ore)
                .bind(c.due_date.to_string())
                .bind(c.retry_days)
                .bind(&c.description)
                .bind(c.state.as_str())
                .bind(&at);
        }
        for row in query.fetch_all(&mut *conn).await? {
            inserted.push(row.try_get(0)?);
        }
    }
    Ok(inserted)
}

/// A Vipps charge row.
#[derive(Debug, Clone)]
pub struct ChargeRow {
    /// The charge id.
    pub charge_id: String,
    /// The installment.
    pub installment_id: String,
    /// The mandate.
    pub mandate_id: String,
    /// The agreement.
    pub agreement_id: String,
    /// The account.
    pub account_id: String,
    /// `INITIAL` or `RECURRING`.
    pub kind: ChargeKind,
    /// Amount.
    pub amount_ore: i64,
    /// Due date sent to Vipps.
    pub due_date: NaiveDate,
    /// Retry days.
    pub retry_days: i64,
    /// Description.
    pub description: String,
    /// `CREATING`, `REFUSED`, or Vipps' status.
    pub state: ChargeState,
    /// Vipps' failure reason.
    pub failure_reason: Option<String>,
    /// Vipps' transaction id once charged.
    pub transaction_id: Option<String>,
    /// Captured total last seen.
    pub captured_ore: i64,
    /// Refunded total last seen.
    pub refunded_ore: i64,
    /// The last error.
    pub last_error: Option<String>,
}

fn charge_from_row(row: &AnyRow) -> StoreResult<ChargeRow> {
    Ok(ChargeRow {
        charge_id: row.try_get("charge_id")?,
        installment_id: row.try_get("installment_id")?,
        mandate_id: row.try_get("mandate_id")?,
        agreement_id: row.try_get("agreement_id")?,
        account_id: row.try_get("account_id")?,
        kind: ChargeKind::parse(&row.try_get::<String, _>("kind")?),
        amount_ore: row.try_get("amount_ore")?,
        due_date: date(row, "due_date")?,
        retry_days: row.try_get("retry_days")?,
        description: row.try_get("description")?,
        state: ChargeState::parse(&row.try_get::<String, _>("state")?),
        failure_reason: row.try_get("failure_reason")?,
        transaction_id: row.try_get("transaction_id")?,
        captured_ore: row.try_get("captured_ore")?,
        refunded_ore: row.try_get("refunded_ore")?,
        last_error: row.try_get("last_error")?,
    })
}

/// One charge by id.
pub async fn charge(conn: &mut AnyConnection, charge_id: &str) -> StoreResult<Option<ChargeRow>> {
    sqlx::query("SELECT * FROM vipps_charges WHERE charge_id = $1")
        .bind(charge_id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(charge_from_row)
        .transpose()
}

/// A charge, locked for the rest of the write transaction (PostgreSQL; SQLite's write transaction already
/// excludes other writers): a sync that lost a race sees what the winner recorded.
pub async fn lock_charge(
    conn: &mut AnyConnection,
    backend: Backend,
    charge_id: &str,
) -> StoreResult<Option<ChargeRow>> {
    let sql = match backend {
        Backend::Postgres => "SELECT * FROM vipps_charges WHERE charge_id = $1 FOR UPDATE",
        Backend::Sqlite => "SELECT * FROM vipps_charges WHERE charge_id = $1",
    };
    sqlx::query(sql).bind(charge_id).fetch_optional(conn).await?.as_ref().map(charge_from_row).transpose()
}

/// The charge of an installment.
pub async fn charge_of_installment(conn: &mut AnyConnection, installment_id: &str) -> StoreResult<Option<ChargeRow>> {
    sqlx::query("SELECT * FROM vipps_charges WHERE installment_id = $1")
        .bind(installment_id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(charge_from_row)
        .transpose()
}

/// Charges of a mandate that Vipps may still process or that were never confirmed.
pub async fn open_charges_of_mandate(conn: &mut AnyConnection, mandate_id: &str) -> StoreResult<Vec<ChargeRow>> {
    let rows = sqlx::query(
        "SELECT * FROM vipps_charges WHERE mandate_id = $1 AND state IN ('CREATING', 'PENDING', 'DUE', 'PROCESSING', 'RESERVED')",
    )
    .bind(mandate_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(charge_from_row).collect()
}

/// Charges whose outcome may have changed by `today`: unconfirmed ones created before `stale_before`, and
/// those Vipps processes on or before today. Least recently checked first (never checked first), so with
/// [`mark_charges_checked`] on what was read, every such charge is read within ceil(open / limit) polls.
pub async fn charges_to_poll(
    conn: &mut AnyConnection,
    today: NaiveDate,
    stale_before: DateTime<Utc>,
    limit: i64,
) -> StoreResult<Vec<ChargeRow>> {
    let rows = sqlx::query(
        "SELECT * FROM vipps_charges WHERE (state = 'CREATING' AND updated_at < $2) \
         OR (state IN ('PENDING', 'DUE', 'PROCESSING', 'RESERVED') AND due_date <= $1) ORDER BY checked_at, updated_at LIMIT $3",
    )
    .bind(today.to_string())
    .bind(timestamp(stale_before))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(charge_from_row).collect()
}

/// Stamps charges as read by the poll now, which puts them behind every charge read less recently.
pub async fn mark_charges_checked(
    conn: &mut AnyConnection,
    charge_ids: &[String],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    for chunk in charge_ids.chunks(CHUNK * 4) {
        let sql = format!("UPDATE vipps_charges SET checked_at = $1 WHERE charge_id IN ({})", list(2, chunk.len()));
        let mut query = sqlx::query(&sql).bind(timestamp(now));
        for id in chunk {
            query = query.bind(id);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Charges still `CREATING` (never confirmed by Vipps) last touched before `before`, oldest first.
pub async fn creating_charges(
    conn: &mut AnyConnection,
    before: DateTime<Utc>,
    limit: i64,
) -> StoreResult<Vec<ChargeRow>> {
    let rows = sqlx::query(
        "SELECT * FROM vipps_charges WHERE state = 'CREATING' AND updated_at < $1 ORDER BY updated_at LIMIT $2",
    )
    .bind(timestamp(before))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(charge_from_row).collect()
}

/// How a charge's note starts while Vipps refuses its account (credentials, a product not enabled).
pub const CONFIGURATION_PREFIX: &str = "account refused by Vipps: ";

/// Accounts whose charges wait because Vipps refuses the account: (account id, charges waiting, the latest
/// note), for the dashboard.
pub async fn configuration_problems(conn: &mut AnyConnection) -> StoreResult<Vec<(String, i64, String)>> {
    let rows = sqlx::query(
        "SELECT account_id, COUNT(*), MAX(last_error) FROM vipps_charges WHERE state = 'CREATING' \
         AND last_error LIKE $1 GROUP BY account_id ORDER BY account_id",
    )
    .bind(format!("{CONFIGURATION_PREFIX}%"))
    .fetch_all(conn)
    .await?;
    rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))).collect()
}

/// Notes an error on a charge without changing its state (so the next run picks it up later).
pub async fn note_charge_error(
    conn: &mut AnyConnection,
    charge_id: &str,
    error: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query("UPDATE vipps_charges SET last_error = $2, updated_at = $3 WHERE charge_id = $1")
        .bind(charge_id)
        .bind(error)
        .bind(timestamp(now))
        .execute(conn)
        .await?;
    Ok(())
}

/// Marks charges Vipps accepted (still `CREATING` here) with their first Vipps status.
pub async fn confirm_charges(
    conn: &mut AnyConnection,
    charge_ids: &[String],
    state: &ChargeState,
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    let mut done = 0;
    for chunk in charge_ids.chunks(CHUNK * 4) {
        let sql = format!(
            "UPDATE vipps_charges SET state = $1, last_error = NULL, updated_at = $2 WHERE state = 'CREATING' \
             AND charge_id IN ({})",
            list(3, chunk.len())
        );
        let mut query = sqlx::query(&sql).bind(state.as_str()).bind(timestamp(now));
        for id in chunk {
            query = query.bind(id);
        }
        done += query.execute(&mut *conn).await?.rows_affected();
    }
    Ok(done)
}

/// Records what Vipps says of a charge.
#[allow(clippy::too_many_arguments)]
pub async fn update_charge(
    conn: &mut AnyConnection,
    charge_id: &str,
    state: &ChargeState,
    failure_reason: Option<&str>,
    transaction_id: Option<&str>,
    totals: Option<[i64; 3]>,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let [captured, refunded, cancelled] = totals.map_or([None; 3], |t| t.map(Some));
    sqlx::query(
        "UPDATE vipps_charges SET state = $2, failure_reason = COALESCE($3, failure_reason), \
         transaction_id = COALESCE($4, transaction_id), captured_ore = COALESCE($5, captured_ore), \
         refunded_ore = COALESCE($6, refunded_ore), cancelled_ore = COALESCE($7, cancelled_ore), last_error = $8, \
         updated_at = $9 WHERE charge_id = $1",
    )
    .bind(charge_id)
    .bind(state.as_str())
    .bind(failure_reason)
    .bind(transaction_id)
    .bind(captured)
    .bind(refunded)
    .bind(cancelled)
    .bind(error)
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(())
}
