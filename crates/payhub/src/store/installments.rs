//! Installments: what a payer owes on a date, one-time or one period of a recurring payment. Their status only
//! moves forward, whatever order events arrive in.
//!
//! Exactly-once rules live in the schema: one installment per (recurring payment, period). Inserts that may race
//! use `ON CONFLICT DO NOTHING` and report what they actually inserted.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::recurring_payments::RecurringRow;
use super::sql::{date, decode, list, placeholders, CHUNK};
use super::{timestamp, Backend, StoreResult};
use crate::domain::status::InstallmentStatus;

/// An installment row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InstallmentRow {
    /// `ins_…`
    pub id: String,
    /// The intent that made it.
    pub intent_id: Option<String>,
    /// The payer.
    pub payer_id: String,
    /// The account.
    pub account_id: String,
    /// Amount in øre.
    pub amount_ore: i64,
    /// What is still open, in øre.
    pub amount_open_ore: i64,
    /// Due date.
    pub due_date: NaiveDate,
    /// Status.
    #[serde(serialize_with = "status_text")]
    pub status: InstallmentStatus,
    /// Why it failed or was cancelled.
    pub status_reason: Option<String>,
    /// The Vipps reference.
    pub payment_reference: String,
    /// The Vipps transaction text.
    pub bank_statement_description: Option<String>,
    /// Product.
    pub product: Option<String>,
    /// The recurring payment it belongs to (one of its periods).
    pub recurring_payment_id: Option<String>,
    /// The mandate it is collected under.
    pub mandate_id: Option<String>,
}

impl InstallmentRow {
    /// The same installment under a mandate (a recurring intent's initial payment).
    pub fn under_mandate(mut self, mandate_id: &str) -> Self {
        self.mandate_id = Some(mandate_id.to_owned());
        self
    }
}

fn status_text<S: serde::Serializer>(status: &InstallmentStatus, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(status.as_str())
}

fn installment_from_row(row: &AnyRow) -> StoreResult<InstallmentRow> {
    let status: String = row.try_get("status")?;
    Ok(InstallmentRow {
        id: row.try_get("id")?,
        intent_id: row.try_get("intent_id")?,
        payer_id: row.try_get("payer_id")?,
        account_id: row.try_get("account_id")?,
        amount_ore: row.try_get("amount_ore")?,
        amount_open_ore: row.try_get("amount_open_ore")?,
        due_date: date(row, "due_date")?,
        status: status.parse().map_err(decode)?,
        status_reason: row.try_get("status_reason")?,
        payment_reference: row.try_get("payment_reference")?,
        bank_statement_description: row.try_get("bank_statement_description")?,
        product: row.try_get("product")?,
        recurring_payment_id: row.try_get("recurring_payment_id")?,
        mandate_id: row.try_get("mandate_id")?,
    })
}

/// One installment by id.
pub async fn installment(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<InstallmentRow>> {
    sqlx::query("SELECT * FROM installments WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(installment_from_row)
        .transpose()
}

/// Locks an installment row for the rest of the transaction (PostgreSQL; SQLite's write transaction already
/// excludes other writers) and returns it.
pub async fn lock_installment(
    conn: &mut AnyConnection,
    backend: Backend,
    id: &str,
) -> StoreResult<Option<InstallmentRow>> {
    let sql = match backend {
        Backend::Postgres => "SELECT * FROM installments WHERE id = $1 FOR UPDATE",
        Backend::Sqlite => "SELECT * FROM installments WHERE id = $1",
    };
    sqlx::query(sql).bind(id).fetch_optional(conn).await?.as_ref().map(installment_from_row).transpose()
}

/// Moves an installment to `next` if that is a move forward; returns whether it moved. Terminal statuses never
/// move backwards, whatever order events arrive in.
pub async fn advance_installment(
    conn: &mut AnyConnection,
    id: &str,
    next: InstallmentStatus,
    reason: Option<&str>,
    amount_open_ore: Option<i64>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    // One statement: the row moves only from a status that may become `next` (or stays, when only the open
    // amount changes), so concurrent or late events cannot move it backwards. The list holds our own constants.
    let from: Vec<String> = InstallmentStatus::ALL
        .iter()
        .filter(|s| s.can_become(next) || (**s == next && amount_open_ore.is_some()))
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    if from.is_empty() {
        return Ok(false);
    }
    let sql = format!(
        "UPDATE installments SET status = $2, status_reason = COALESCE($3, status_reason), \
         amount_open_ore = COALESCE($4, amount_open_ore), updated_at = $5 WHERE id = $1 AND status IN ({})",
        from.join(", ")
    );
    let done = sqlx::query(&sql)
        .bind(id)
        .bind(next.as_str())
        .bind(reason)
        .bind(amount_open_ore)
        .bind(timestamp(now))
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

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

/// Refreshes the database's statistics of the installments table (after a large insert, so the next queries
/// are planned for the table as it is). PostgreSQL only.
pub async fn analyze(conn: &mut AnyConnection) -> StoreResult<()> {
    sqlx::query("ANALYZE installments").execute(conn).await?;
    Ok(())
}
