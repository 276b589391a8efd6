//! Recurring payments: the schedule under a mandate, its status (Active, Paused, Cancelled, Ended) and where
//! installment generation stands.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use sqlx::Row;

use super::sql::{date, decode, ids_page, list, opt_date, CHUNK};
use super::{timestamp, StoreResult};
use crate::domain::recurring::RecurringStatus;
use crate::domain::schedule::{Frequency, Schedule};

/// A recurring payment row.
#[derive(Debug, Clone)]
pub struct RecurringRow {
    /// `rp_…`
    pub id: String,
    /// The intent that asked for it.
    pub intent_id: Option<String>,
    /// Its mandate.
    pub mandate_id: String,
    /// The merchant account.
    pub account_id: String,
    /// The payer.
    pub payer_id: String,
    /// The payer's profile.
    pub payment_profile_id: Option<String>,
    /// Amount per installment.
    pub amount_ore: i64,
    /// How often.
    pub frequency: Frequency,
    /// Start Date.
    pub start_date: NaiveDate,
    /// End Date.
    pub end_date: Option<NaiveDate>,
    /// Collection Day.
    pub collection_day: Option<u32>,
    /// Status.
    pub status: RecurringStatus,
    /// Why it was cancelled or ended.
    pub status_reason: Option<String>,
    /// Paused until (exclusive: collection resumes on this day).
    pub paused_until: Option<NaiveDate>,
    /// The next period to generate.
    pub next_period: i64,
    /// The due date of the next period.
    pub next_collection_date: Option<NaiveDate>,
    /// Bank Statement Description of its installments.
    pub bank_statement_description: Option<String>,
    /// Product of its installments.
    pub product: Option<String>,
    /// The intent's WebhookURL (read by the generator only).
    pub webhook_url: Option<String>,
}

impl RecurringRow {
    /// The date the next installment falls due, while there will be one: a cancelled or ended recurring
    /// payment collects nothing more, whatever period its generator had reached.
    pub fn next_collection(&self) -> Option<NaiveDate> {
        self.next_collection_date.filter(|_| self.status.is_open())
    }

    /// Its schedule.
    pub fn schedule(&self) -> StoreResult<Schedule> {
        Schedule::new(self.start_date, self.end_date, self.frequency, self.collection_day).map_err(decode)
    }
}

fn recurring_from_row(row: &AnyRow) -> StoreResult<RecurringRow> {
    let status: String = row.try_get("status")?;
    let frequency: String = row.try_get("frequency")?;
    let day: Option<i64> = row.try_get("collection_day")?;
    Ok(RecurringRow {
        id: row.try_get("id")?,
        intent_id: row.try_get("intent_id")?,
        mandate_id: row.try_get("mandate_id")?,
        account_id: row.try_get("account_id")?,
        payer_id: row.try_get("payer_id")?,
        payment_profile_id: row.try_get("payment_profile_id")?,
        amount_ore: row.try_get("amount_ore")?,
        frequency: frequency.parse().map_err(decode)?,
        start_date: date(row, "start_date")?,
        end_date: opt_date(row, "end_date")?,
        collection_day: day.and_then(|d| u32::try_from(d).ok()),
        status: status.parse().map_err(decode)?,
        status_reason: row.try_get("status_reason")?,
        paused_until: opt_date(row, "paused_until")?,
        next_period: row.try_get("next_period")?,
        next_collection_date: opt_date(row, "next_collection_date")?,
        bank_statement_description: row.try_get("bank_statement_description")?,
        product: row.try_get("product")?,
        webhook_url: row.try_get::<Option<String>, _>("webhook_url").ok().flatten(),
    })
}

/// One recurring payment by id.
pub async fn recurring(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<RecurringRow>> {
    sqlx::query("SELECT * FROM recurring_payments WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(recurring_from_row)
        .transpose()
}

/// The recurring payments under a mandate.
pub async fn recurring_of_mandate(conn: &mut AnyConnection, mandate_id: &str) -> StoreResult<Vec<RecurringRow>> {
    let rows = sqlx::query("SELECT * FROM recurring_payments WHERE mandate_id = $1 ORDER BY created_at, id")
        .bind(mandate_id)
        .fetch_all(conn)
        .await?;
    rows.iter().map(recurring_from_row).collect()
}

/// A page of open (Active or Paused) recurring payments whose mandate is Active, after `after_id` in id order,
/// and the cursor of the next page (`None`: this was the last). The generator walks them page by page, so
/// memory and each query's cost stay flat in their number.
pub async fn generation_page(
    conn: &mut AnyConnection,
    after_id: &str,
    limit: i64,
) -> StoreResult<(Vec<RecurringRow>, Option<String>)> {
    let mut ids = ids_page(&mut *conn, "recurring_payments", "Active", after_id, limit).await?;
    ids.extend(ids_page(&mut *conn, "recurring_payments", "Paused", after_id, limit).await?);
    ids.sort();
    ids.truncate(usize::try_from(limit).unwrap_or(0));
    let cursor = (ids.len() as i64 == limit).then(|| ids.last().cloned()).flatten();
    let mut page = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK * 5) {
        let sql = format!(
            "SELECT r.*, pi.webhook_url FROM recurring_payments r JOIN mandates m ON m.id = r.mandate_id \
             LEFT JOIN payment_intents pi ON pi.id = r.intent_id \
             WHERE m.status = 'Active' AND r.status IN ('Active', 'Paused') AND r.id IN ({}) ORDER BY r.id",
            list(1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            page.push(recurring_from_row(&row)?);
        }
    }
    Ok((page, cursor))
}

/// Sets a recurring payment's status (only while it is Active, Paused or Cancelling: Cancelled and Ended are
/// final); returns whether it changed.
pub async fn set_recurring_status(
    conn: &mut AnyConnection,
    id: &str,
    status: RecurringStatus,
    reason: Option<&str>,
    paused_until: Option<NaiveDate>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE recurring_payments SET status = $2, status_reason = COALESCE($3, status_reason), paused_until = $4, \
         updated_at = $5 WHERE id = $1 AND status IN ('Active', 'Paused', 'Cancelling')",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(reason)
    .bind(paused_until.map(|d| d.to_string()))
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets the amount and/or Collection Day of an open recurring payment.
pub async fn set_recurring_terms(
    conn: &mut AnyConnection,
    id: &str,
    amount_ore: Option<i64>,
    collection_day: Option<u32>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE recurring_payments SET amount_ore = COALESCE($2, amount_ore), \
         collection_day = COALESCE($3, collection_day), updated_at = $4 WHERE id = $1 AND status IN ('Active', 'Paused')",
    )
    .bind(id)
    .bind(amount_ore)
    .bind(collection_day.map(i64::from))
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records where generation stands: the next period and its due date (`None`: the schedule has ended).
pub async fn set_next_period(
    conn: &mut AnyConnection,
    id: &str,
    next_period: i64,
    next_date: Option<NaiveDate>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE recurring_payments SET next_period = $2, next_collection_date = $3, updated_at = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(next_period)
    .bind(next_date.map(|d| d.to_string()))
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(())
}

/// [`set_next_period`] for many recurring payments, one statement per chunk.
pub async fn set_next_periods(
    conn: &mut AnyConnection,
    moves: &[(String, i64, Option<NaiveDate>)],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    for chunk in moves.chunks(CHUNK) {
        let sql = format!(
            "UPDATE recurring_payments SET next_period = CAST(v.column2 AS BIGINT), next_collection_date = v.column3, \
             updated_at = $1 FROM (VALUES {}) AS v WHERE recurring_payments.id = v.column1",
            (0..chunk.len())
                .map(|r| format!("(${}, ${}, ${})", r * 3 + 2, r * 3 + 3, r * 3 + 4))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut query = sqlx::query(&sql).bind(timestamp(now));
        for (id, period, date) in chunk {
            query = query.bind(id).bind(period.to_string()).bind(date.map(|d| d.to_string()));
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}
