//! Recurring records: mandates (Vipps agreements), recurring payments, the installments they generate, the
//! Vipps charges behind those installments, and the organisation's changes.
//!
//! Exactly-once rules live in the schema: one installment per (recurring payment, period); one charge per
//! installment, whose id is the installment's payment reference (also unique at Vipps per merchant). Inserts
//! that may race use `ON CONFLICT DO NOTHING` and report what they actually inserted.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{timestamp, Backend, StoreError, StoreResult};
use crate::domain::ids::new_id;
use crate::domain::recurring::{MandateStatus, RecurringStatus};
use crate::domain::schedule::{Frequency, Schedule};

/// Rows per multi-row statement. Binding costs grow with the square of a statement's parameter count in
/// sqlx's SQLite driver (each `$N` is looked up by name), so statements stay at a few thousand parameters.
const CHUNK: usize = 100;

fn decode<E: std::fmt::Display>(error: E) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(error.to_string().into()))
}

fn date(row: &AnyRow, column: &str) -> StoreResult<NaiveDate> {
    let text: String = row.try_get(column)?;
    NaiveDate::parse_from_str(&text, "%Y-%m-%d").map_err(decode)
}

fn opt_date(row: &AnyRow, column: &str) -> StoreResult<Option<NaiveDate>> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| NaiveDate::parse_from_str(&t, "%Y-%m-%d").map_err(decode)).transpose()
}

/// `($1, $2, …), (…)`: placeholders for `rows` rows of `columns` values each; `tail` is appended to each row
/// (SQL literals, or `$k` to repeat the row's k-th value).
fn placeholders(rows: usize, columns: usize, tail: &[&str]) -> String {
    (0..rows)
        .map(|r| {
            let mut cells: Vec<String> = (1..=columns).map(|c| format!("${}", r * columns + c)).collect();
            for extra in tail {
                cells.push(match extra.strip_prefix('$').and_then(|k| k.parse::<usize>().ok()) {
                    Some(k) => format!("${}", r * columns + k),
                    None => (*extra).to_owned(),
                });
            }
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$from, $from+1, …` for an `IN (…)` list of `n` values.
fn list(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

// ---------------------------------------------------------------------------------------------------------
// Intents and the initial payment

/// An installment under a mandate outside the schedule: the initial payment.
#[derive(Debug, Clone)]
pub struct NewMandateInstallment<'a> {
    /// `ins_…`
    pub id: &'a str,
    /// The intent.
    pub intent_id: &'a str,
    /// The payer.
    pub payer_id: &'a str,
    /// The payer's profile.
    pub profile_id: &'a str,
    /// The account.
    pub account_id: &'a str,
    /// The mandate.
    pub mandate_id: &'a str,
    /// Amount.
    pub amount_ore: i64,
    /// Due date.
    pub due_date: NaiveDate,
    /// `pi-` + digits: the initial charge's order id.
    pub payment_reference: &'a str,
    /// Bank Statement Description.
    pub bank_statement_description: Option<&'a str>,
    /// Product.
    pub product: Option<&'a str>,
}

/// Records the initial payment's installment (Outstanding). A payment reference clash is a
/// [`StoreError::Conflict`]: draw another.
pub async fn insert_mandate_installment(
    conn: &mut AnyConnection,
    new: &NewMandateInstallment<'_>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO installments (id, intent_id, payer_id, payment_profile_id, account_id, amount_ore, amount_open_ore, \
         due_date, status, payment_reference, bank_statement_description, product, mandate_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7, 'Outstanding', $8, $9, $10, $11, $12, $12)",
    )
    .bind(new.id)
    .bind(new.intent_id)
    .bind(new.payer_id)
    .bind(new.profile_id)
    .bind(new.account_id)
    .bind(new.amount_ore)
    .bind(new.due_date.to_string())
    .bind(new.payment_reference)
    .bind(new.bank_statement_description)
    .bind(new.product)
    .bind(new.mandate_id)
    .bind(timestamp(now))
    .execute(conn)
    .await
    .map_err(super::map_conflict)?;
    Ok(())
}

/// Sets an inbound report's outcome after the fact (e.g. `Ignored` with why).
pub async fn set_report_outcome(
    conn: &mut AnyConnection,
    report_id: &str,
    status: &str,
    detail: Option<&str>,
) -> StoreResult<()> {
    sqlx::query("UPDATE inbound_reports SET status = $2, detail = COALESCE($3, detail) WHERE id = $1")
        .bind(report_id)
        .bind(status)
        .bind(detail)
        .execute(conn)
        .await?;
    Ok(())
}

/// The recurring intent made by an intent, if any: (recurring payment id, mandate id).
pub async fn recurring_of_intent(conn: &mut AnyConnection, intent_id: &str) -> StoreResult<Option<(String, String)>> {
    let row = sqlx::query("SELECT id, mandate_id FROM recurring_payments WHERE intent_id = $1")
        .bind(intent_id)
        .fetch_optional(conn)
        .await?;
    row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
}

// ---------------------------------------------------------------------------------------------------------
// Mandates

/// A new mandate, recorded before its agreement is drafted at Vipps.
#[derive(Debug, Clone)]
pub struct NewMandate<'a> {
    /// `mdt_…`; also the Idempotency-Key of the draft call.
    pub id: &'a str,
    /// The merchant account.
    pub account_id: &'a str,
    /// The payer.
    pub payer_id: &'a str,
    /// The payer's Vipps profile.
    pub profile_id: &'a str,
    /// The intent that asked for it.
    pub intent_id: &'a str,
    /// The agreement's product name.
    pub product_name: &'a str,
    /// The merchant's agreement page.
    pub merchant_agreement_url: &'a str,
    /// Where Vipps sends the payer after confirming.
    pub redirect_url: &'a str,
    /// The phone sent to Vipps.
    pub customer_phone: Option<&'a str>,
    /// The agreement price.
    pub price_ore: i64,
    /// `WEEK` / `MONTH` / `YEAR`.
    pub interval_unit: &'a str,
    /// Units per interval.
    pub interval_count: i64,
    /// The installment of the initial payment, if any.
    pub initial_installment_id: Option<&'a str>,
}

/// Records a Pending mandate whose agreement is still to be drafted (`vipps_status` `CREATING`).
pub async fn insert_mandate(conn: &mut AnyConnection, new: &NewMandate<'_>, now: DateTime<Utc>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO mandates (id, account_id, payer_id, payment_profile_id, intent_id, status, vipps_status, idempotency_key, \
         product_name, merchant_agreement_url, redirect_url, customer_phone, price_ore, interval_unit, interval_count, \
         initial_installment_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'Pending', 'CREATING', $1, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)",
    )
    .bind(new.id)
    .bind(new.account_id)
    .bind(new.payer_id)
    .bind(new.profile_id)
    .bind(new.intent_id)
    .bind(new.product_name)
    .bind(new.merchant_agreement_url)
    .bind(new.redirect_url)
    .bind(new.customer_phone)
    .bind(new.price_ore)
    .bind(new.interval_unit)
    .bind(new.interval_count)
    .bind(new.initial_installment_id)
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(())
}

/// A mandate row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MandateRow {
    /// `mdt_…`
    pub id: String,
    /// The merchant account.
    pub account_id: String,
    /// The payer.
    pub payer_id: String,
    /// The intent that asked for it.
    pub intent_id: Option<String>,
    /// The Vipps agreement id (`agr_…`), once Vipps confirmed the draft.
    pub agreement_id: Option<String>,
    /// payhub's status.
    #[serde(serialize_with = "mandate_status_text")]
    pub status: MandateStatus,
    /// `CREATING` (draft not confirmed), `REFUSED`, or the agreement's Vipps status.
    pub vipps_status: String,
    /// The Idempotency-Key of the draft call.
    pub idempotency_key: String,
    /// Where the payer confirms the agreement.
    pub confirmation_url: Option<String>,
    /// Product name.
    pub product_name: String,
    /// Merchant agreement page.
    pub merchant_agreement_url: String,
    /// Where Vipps sends the payer back.
    pub redirect_url: String,
    /// Phone sent to Vipps.
    pub customer_phone: Option<String>,
    /// Agreement price in øre.
    pub price_ore: i64,
    /// Interval unit.
    pub interval_unit: String,
    /// Interval count.
    pub interval_count: i64,
    /// The installment of the initial payment.
    pub initial_installment_id: Option<String>,
    /// The last error from Vipps.
    pub last_error: Option<String>,
}

fn mandate_status_text<S: serde::Serializer>(status: &MandateStatus, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(status.as_str())
}

fn mandate_from_row(row: &AnyRow) -> StoreResult<MandateRow> {
    let status: String = row.try_get("status")?;
    Ok(MandateRow {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        payer_id: row.try_get("payer_id")?,
        intent_id: row.try_get("intent_id")?,
        agreement_id: row.try_get("agreement_id")?,
        status: status.parse().map_err(decode)?,
        vipps_status: row.try_get("vipps_status")?,
        idempotency_key: row.try_get("idempotency_key")?,
        confirmation_url: row.try_get("confirmation_url")?,
        product_name: row.try_get("product_name")?,
        merchant_agreement_url: row.try_get("merchant_agreement_url")?,
        redirect_url: row.try_get("redirect_url")?,
        customer_phone: row.try_get("customer_phone")?,
        price_ore: row.try_get("price_ore")?,
        interval_unit: row.try_get("interval_unit")?,
        interval_count: row.try_get("interval_count")?,
        initial_installment_id: row.try_get("initial_installment_id")?,
        last_error: row.try_get("last_error")?,
    })
}

/// One mandate by id (`mdt_…`) or by agreement id (`agr_…`).
pub async fn mandate(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<MandateRow>> {
    sqlx::query("SELECT * FROM mandates WHERE id = $1 OR agreement_id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(mandate_from_row)
        .transpose()
}

/// Records Vipps' answer to the draft: the agreement id and where the payer confirms it.
pub async fn set_mandate_drafted(
    conn: &mut AnyConnection,
    id: &str,
    agreement_id: &str,
    confirmation_url: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE mandates SET agreement_id = $2, confirmation_url = $3, vipps_status = 'PENDING', last_error = NULL, \
         updated_at = $4 WHERE id = $1 AND vipps_status = 'CREATING'",
    )
    .bind(id)
    .bind(agreement_id)
    .bind(confirmation_url)
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(())
}

/// Records an error from Vipps on a mandate (the draft keeps `CREATING` unless `refused`).
pub async fn set_mandate_error(
    conn: &mut AnyConnection,
    id: &str,
    error: &str,
    refused: bool,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE mandates SET last_error = $2, vipps_status = CASE WHEN $3 = 1 THEN 'REFUSED' ELSE vipps_status END, \
         updated_at = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .bind(i64::from(refused))
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves a mandate to `next` (with the agreement's Vipps status) if that is a move forward; returns whether
/// it moved. The Vipps status is recorded either way.
pub async fn move_mandate(
    conn: &mut AnyConnection,
    id: &str,
    next: MandateStatus,
    vipps_status: &str,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    use MandateStatus::*;
    let from: Vec<String> = [Pending, Active, Stopped, Expired, Cancelled]
        .iter()
        .filter(|s| s.can_become(next))
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    let at = timestamp(now);
    let moved = if from.is_empty() {
        false
    } else {
        let sql = format!(
            "UPDATE mandates SET status = $2, vipps_status = $3, updated_at = $4 WHERE id = $1 AND status IN ({})",
            from.join(", ")
        );
        sqlx::query(&sql)
            .bind(id)
            .bind(next.as_str())
            .bind(vipps_status)
            .bind(&at)
            .execute(&mut *conn)
            .await?
            .rows_affected()
            == 1
    };
    if !moved {
        sqlx::query(
            "UPDATE mandates SET vipps_status = $2, updated_at = $3 WHERE id = $1 AND vipps_status <> 'REFUSED'",
        )
        .bind(id)
        .bind(vipps_status)
        .bind(&at)
        .execute(conn)
        .await?;
    }
    Ok(moved)
}

/// Updates the price recorded for a mandate's agreement.
pub async fn set_mandate_price(
    conn: &mut AnyConnection,
    id: &str,
    price_ore: i64,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query("UPDATE mandates SET price_ore = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(price_ore)
        .bind(timestamp(now))
        .execute(conn)
        .await?;
    Ok(())
}

/// Records that the mandate's agreement was just read from Vipps.
pub async fn mark_checked(conn: &mut AnyConnection, id: &str, now: DateTime<Utc>) -> StoreResult<()> {
    sqlx::query("UPDATE mandates SET checked_at = $2 WHERE id = $1")
        .bind(id)
        .bind(timestamp(now))
        .execute(conn)
        .await?;
    Ok(())
}

/// Active mandates whose agreement was last read before `before` (or never), least recently read first: the
/// poll re-reads them so a stop whose webhook was lost is found before the next charge.
pub async fn unchecked_active_mandates(
    conn: &mut AnyConnection,
    before: DateTime<Utc>,
    limit: i64,
) -> StoreResult<Vec<String>> {
    let rows = sqlx::query(
        "SELECT id FROM mandates WHERE status = 'Active' AND COALESCE(checked_at, '') < $1 \
         ORDER BY COALESCE(checked_at, ''), id LIMIT $2",
    )
    .bind(timestamp(before))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Mandates whose agreement is not settled yet (draft unconfirmed, or waiting for the payer), oldest first.
pub async fn pending_mandates(conn: &mut AnyConnection, limit: i64) -> StoreResult<Vec<String>> {
    let rows = sqlx::query(
        "SELECT id FROM mandates WHERE vipps_status IN ('CREATING', 'PENDING') AND status = 'Pending' \
         ORDER BY updated_at LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

// ---------------------------------------------------------------------------------------------------------
// Recurring payments

/// A new recurring payment.
#[derive(Debug, Clone)]
pub struct NewRecurring<'a> {
    /// `rp_…`
    pub id: &'a str,
    /// The intent that asked for it.
    pub intent_id: &'a str,
    /// Its mandate.
    pub mandate_id: &'a str,
    /// The merchant account.
    pub account_id: &'a str,
    /// The payer.
    pub payer_id: &'a str,
    /// The payer's profile.
    pub profile_id: &'a str,
    /// Amount per installment.
    pub amount_ore: i64,
    /// Schedule.
    pub schedule: Schedule,
    /// Start Date.
    pub start_date: NaiveDate,
    /// End Date.
    pub end_date: Option<NaiveDate>,
    /// Bank Statement Description of its installments (the charge description).
    pub bank_statement_description: Option<&'a str>,
    /// Product of its installments.
    pub product: Option<&'a str>,
}

/// Records an Active recurring payment (installments start once its mandate is Active).
pub async fn insert_recurring(conn: &mut AnyConnection, new: &NewRecurring<'_>, now: DateTime<Utc>) -> StoreResult<()> {
    let next = new.schedule.next_on_or_after(new.start_date);
    sqlx::query(
        "INSERT INTO recurring_payments (id, intent_id, mandate_id, account_id, payer_id, payment_profile_id, amount_ore, \
         frequency, start_date, end_date, collection_day, status, next_period, next_collection_date, \
         bank_statement_description, product, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'Active', $12, $13, $14, $15, $16, $16)",
    )
    .bind(new.id)
    .bind(new.intent_id)
    .bind(new.mandate_id)
    .bind(new.account_id)
    .bind(new.payer_id)
    .bind(new.profile_id)
    .bind(new.amount_ore)
    .bind(new.schedule.frequency().as_str())
    .bind(new.start_date.to_string())
    .bind(new.end_date.map(|d| d.to_string()))
    .bind(new.schedule.collection_day().map(i64::from))
    .bind(next.map_or(0, |(p, _)| i64::from(p)))
    .bind(next.map(|(_, d)| d.to_string()))
    .bind(new.bank_statement_description)
    .bind(new.product)
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(())
}

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

/// Ids of rows with `status` after `after_id`, in id order, read along the table's `(status, id)` index (a
/// pure range scan on both backends, whatever share of the table has that status).
async fn ids_page(
    conn: &mut AnyConnection,
    table: &str,
    status: &str,
    after_id: &str,
    limit: i64,
) -> StoreResult<Vec<String>> {
    let sql = format!("SELECT id FROM {table} WHERE status = $1 AND id > $2 ORDER BY status, id LIMIT $3");
    let rows = sqlx::query(&sql).bind(status).bind(after_id).bind(limit).fetch_all(conn).await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
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

/// Sets a recurring payment's status (only while it is open: Cancelled and Ended are final); returns whether
/// it changed.
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
         updated_at = $5 WHERE id = $1 AND status IN ('Active', 'Paused')",
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

// ---------------------------------------------------------------------------------------------------------
// Installments of recurring payments

/// One installment to generate for a period of a recurring payment.
#[derive(Debug, Clone)]
pub struct NewPeriodInstallment {
    /// `ins_…`
    pub id: String,
    /// The recurring payment.
    pub recurring: RecurringRow,
    /// The period.
    pub period: i64,
    /// Its due date.
    pub due_date: NaiveDate,
    /// `pi-` + digits: the charge id at Vipps.
    pub payment_reference: String,
}

/// Inserts generated installments (Outstanding); a period that already has one is skipped. Returns the ids
/// actually inserted.
pub async fn insert_period_installments(
    conn: &mut AnyConnection,
    items: &[NewPeriodInstallment],
    now: DateTime<Utc>,
) -> StoreResult<Vec<String>> {
    const COLUMNS: usize = 15;
    let at = timestamp(now);
    let mut inserted = Vec::new();
    for chunk in items.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO installments (id, intent_id, payer_id, payment_profile_id, account_id, amount_ore, amount_open_ore, \
             due_date, payment_reference, bank_statement_description, product, recurring_payment_id, mandate_id, period, \
             created_at, status, updated_at) VALUES {} ON CONFLICT DO NOTHING RETURNING id",
            placeholders(chunk.len(), COLUMNS, &["'Outstanding'", "$15"])
        );
        let mut query = sqlx::query(&sql);
        for item in chunk {
            let r = &item.recurring;
            query = query
                .bind(&item.id)
                .bind(&r.intent_id)
                .bind(&r.payer_id)
                .bind(&r.payment_profile_id)
                .bind(&r.account_id)
                .bind(r.amount_ore)
                .bind(r.amount_ore)
                .bind(item.due_date.to_string())
                .bind(&item.payment_reference)
                .bind(&r.bank_statement_description)
                .bind(&r.product)
                .bind(&r.id)
                .bind(&r.mandate_id)
                .bind(item.period)
                .bind(&at);
        }
        for row in query.fetch_all(&mut *conn).await? {
            inserted.push(row.try_get(0)?);
        }
    }
    Ok(inserted)
}

/// A short view of an installment, for listings.
#[derive(Debug, Clone)]
pub struct InstallmentBrief {
    /// `ins_…`
    pub id: String,
    /// Status.
    pub status: String,
    /// Why it failed or was cancelled.
    pub status_reason: Option<String>,
    /// Due date.
    pub due_date: String,
    /// Amount.
    pub amount_ore: i64,
    /// Payment reference (the charge id).
    pub payment_reference: String,
    /// The charge's Vipps status, if a charge exists.
    pub charge_state: Option<String>,
}

/// The installments of a recurring payment (or of a mandate when `recurring_id` is `None`), by due date.
pub async fn installments_of(
    conn: &mut AnyConnection,
    mandate_id: &str,
    recurring_id: Option<&str>,
) -> StoreResult<Vec<InstallmentBrief>> {
    let rows = sqlx::query(
        "SELECT i.id, i.status, i.status_reason, i.due_date, i.amount_ore, i.payment_reference, c.state \
         FROM installments i LEFT JOIN vipps_charges c ON c.installment_id = i.id \
         WHERE i.mandate_id = $1 AND ($2 IS NULL OR i.recurring_payment_id = $2) ORDER BY i.due_date, i.id",
    )
    .bind(mandate_id)
    .bind(recurring_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(InstallmentBrief {
                id: r.try_get(0)?,
                status: r.try_get(1)?,
                status_reason: r.try_get(2)?,
                due_date: r.try_get(3)?,
                amount_ore: r.try_get(4)?,
                payment_reference: r.try_get(5)?,
                charge_state: r.try_get(6)?,
            })
        })
        .collect()
}

/// Open installments (Outstanding or Pending) of a mandate, or of one recurring payment.
pub async fn open_installments(
    conn: &mut AnyConnection,
    mandate_id: &str,
    recurring_id: Option<&str>,
) -> StoreResult<Vec<String>> {
    let rows = sqlx::query(
        "SELECT id FROM installments WHERE mandate_id = $1 AND ($2 IS NULL OR recurring_payment_id = $2) \
         AND status IN ('Outstanding', 'Pending') ORDER BY due_date, id",
    )
    .bind(mandate_id)
    .bind(recurring_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Sets amount (and open amount) and/or due date of an installment that is still Outstanding (no charge yet).
pub async fn reshape_outstanding(
    conn: &mut AnyConnection,
    id: &str,
    amount_ore: Option<i64>,
    due_date: Option<NaiveDate>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE installments SET amount_ore = COALESCE($2, amount_ore), amount_open_ore = COALESCE($2, amount_open_ore), \
         due_date = COALESCE($3, due_date), updated_at = $4 WHERE id = $1 AND status = 'Outstanding' \
         AND NOT EXISTS (SELECT 1 FROM vipps_charges c WHERE c.installment_id = installments.id)",
    )
    .bind(id)
    .bind(amount_ore)
    .bind(due_date.map(|d| d.to_string()))
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The schedule period of an installment of a recurring payment (`None` for one outside the schedule).
pub async fn installment_period(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<i64>> {
    let row = sqlx::query("SELECT period FROM installments WHERE id = $1 AND period IS NOT NULL")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.map(|r| Ok(r.try_get(0)?)).transpose()
}

// ---------------------------------------------------------------------------------------------------------
// Charges

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
    pub kind: &'static str,
    /// Amount.
    pub amount_ore: i64,
    /// The `due` sent to Vipps.
    pub due_date: NaiveDate,
    /// Retry days.
    pub retry_days: i64,
    /// Description (≤ 45 characters).
    pub description: String,
    /// `CREATING` for a charge still to be sent; Vipps' status for one Vipps already made.
    pub state: &'static str,
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
                .bind(c.kind)
                .bind(c.amount_ore)
                .bind(c.due_date.to_string())
                .bind(c.retry_days)
                .bind(&c.description)
                .bind(c.state)
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
    pub kind: String,
    /// Amount.
    pub amount_ore: i64,
    /// Due date sent to Vipps.
    pub due_date: NaiveDate,
    /// Retry days.
    pub retry_days: i64,
    /// Description.
    pub description: String,
    /// `CREATING`, `REFUSED`, or Vipps' status.
    pub state: String,
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
        kind: row.try_get("kind")?,
        amount_ore: row.try_get("amount_ore")?,
        due_date: date(row, "due_date")?,
        retry_days: row.try_get("retry_days")?,
        description: row.try_get("description")?,
        state: row.try_get("state")?,
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

/// A mandate by id, locked like [`lock_charge`].
pub async fn lock_mandate(conn: &mut AnyConnection, backend: Backend, id: &str) -> StoreResult<Option<MandateRow>> {
    let sql = match backend {
        Backend::Postgres => "SELECT * FROM mandates WHERE id = $1 FOR UPDATE",
        Backend::Sqlite => "SELECT * FROM mandates WHERE id = $1",
    };
    sqlx::query(sql).bind(id).fetch_optional(conn).await?.as_ref().map(mandate_from_row).transpose()
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
/// those Vipps processes on or before today. Oldest first.
pub async fn charges_to_poll(
    conn: &mut AnyConnection,
    today: NaiveDate,
    stale_before: DateTime<Utc>,
    limit: i64,
) -> StoreResult<Vec<ChargeRow>> {
    let rows = sqlx::query(
        "SELECT * FROM vipps_charges WHERE (state = 'CREATING' AND updated_at < $2) \
         OR (state IN ('PENDING', 'DUE', 'PROCESSING', 'RESERVED') AND due_date <= $1) ORDER BY updated_at LIMIT $3",
    )
    .bind(today.to_string())
    .bind(timestamp(stale_before))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(charge_from_row).collect()
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

/// The WebhookURLs of the intents behind these installments (only those that have one).
pub async fn installments_with_webhook(
    conn: &mut AnyConnection,
    ids: &[String],
) -> StoreResult<std::collections::HashMap<String, String>> {
    let mut out = std::collections::HashMap::new();
    for chunk in ids.chunks(CHUNK * 4) {
        let sql = format!(
            "SELECT i.id, pi.webhook_url FROM installments i JOIN payment_intents pi ON pi.id = i.intent_id \
             WHERE pi.webhook_url IS NOT NULL AND i.id IN ({})",
            list(1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            out.insert(row.try_get(0)?, row.try_get(1)?);
        }
    }
    Ok(out)
}

/// Marks charges Vipps accepted (still `CREATING` here) with their first Vipps status.
pub async fn confirm_charges(
    conn: &mut AnyConnection,
    charge_ids: &[String],
    state: &str,
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    let mut done = 0;
    for chunk in charge_ids.chunks(CHUNK * 4) {
        let sql = format!(
            "UPDATE vipps_charges SET state = $1, last_error = NULL, updated_at = $2 WHERE state = 'CREATING' \
             AND charge_id IN ({})",
            list(3, chunk.len())
        );
        let mut query = sqlx::query(&sql).bind(state).bind(timestamp(now));
        for id in chunk {
            query = query.bind(id);
        }
        done += query.execute(&mut *conn).await?.rows_affected();
    }
    Ok(done)
}

/// Moves Outstanding installments to Pending in one statement per chunk (their charges exist at Vipps).
pub async fn installments_pending(conn: &mut AnyConnection, ids: &[String], now: DateTime<Utc>) -> StoreResult<u64> {
    let mut done = 0;
    for chunk in ids.chunks(CHUNK * 4) {
        let sql = format!(
            "UPDATE installments SET status = 'Pending', updated_at = $1 WHERE status = 'Outstanding' AND id IN ({})",
            list(2, chunk.len())
        );
        let mut query = sqlx::query(&sql).bind(timestamp(now));
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
    state: &str,
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
    .bind(state)
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

// ---------------------------------------------------------------------------------------------------------
// Changes

/// A change by the organisation, recorded before Vipps is called; its id is the Idempotency-Key.
#[derive(Debug, Clone)]
pub struct ChangeRow {
    /// `rc_…`
    pub id: String,
    /// The mandate.
    pub mandate_id: Option<String>,
    /// The recurring payment.
    pub recurring_payment_id: Option<String>,
    /// `amount`, `collection_day`, `pause`, `resume`, `cancel`, `cancel_agreement`.
    pub kind: String,
    /// `Pending`, `Succeeded`, `Failed`.
    pub status: String,
    /// Vipps' or payhub's message.
    pub message: Option<String>,
}

/// Stores a pending change; returns its id.
pub async fn insert_change(
    conn: &mut AnyConnection,
    mandate_id: Option<&str>,
    recurring_id: Option<&str>,
    kind: &str,
    details: &serde_json::Value,
    actor: &str,
    now: DateTime<Utc>,
) -> StoreResult<String> {
    let id = new_id("rc");
    sqlx::query(
        "INSERT INTO recurring_changes (id, mandate_id, recurring_payment_id, kind, details, status, actor, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'Pending', $6, $7, $7)",
    )
    .bind(&id)
    .bind(mandate_id)
    .bind(recurring_id)
    .bind(kind)
    .bind(details.to_string())
    .bind(actor)
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(id)
}

/// Finishes a change as Succeeded or Failed with a message.
pub async fn finish_change(
    conn: &mut AnyConnection,
    id: &str,
    succeeded: bool,
    message: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query("UPDATE recurring_changes SET status = $2, message = $3, updated_at = $4 WHERE id = $1")
        .bind(id)
        .bind(if succeeded { "Succeeded" } else { "Failed" })
        .bind(message)
        .bind(timestamp(now))
        .execute(conn)
        .await?;
    Ok(())
}

/// The changes of a recurring payment or mandate, newest first.
pub async fn changes(
    conn: &mut AnyConnection,
    mandate_id: &str,
    recurring_id: Option<&str>,
) -> StoreResult<Vec<ChangeRow>> {
    let rows = sqlx::query(
        "SELECT * FROM recurring_changes WHERE mandate_id = $1 AND ($2 IS NULL OR recurring_payment_id = $2) \
         ORDER BY created_at DESC, id DESC",
    )
    .bind(mandate_id)
    .bind(recurring_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ChangeRow {
                id: row.try_get("id")?,
                mandate_id: row.try_get("mandate_id")?,
                recurring_payment_id: row.try_get("recurring_payment_id")?,
                kind: row.try_get("kind")?,
                status: row.try_get("status")?,
                message: row.try_get("message")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_rows_then_columns() {
        assert_eq!(placeholders(2, 3, &[]), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(placeholders(2, 2, &["'x'", "$2"]), "($1, $2, 'x', $2), ($3, $4, 'x', $4)");
        assert_eq!(list(3, 2), "$3, $4");
    }
}
