//! Payment records: payers, payment profiles, messages, inbound reports, intents, installments, the Vipps
//! payments behind them, payments (real money, signed) and refunds.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{timestamp, Backend, StoreError, StoreResult};
use crate::domain::ids::new_id;
use crate::domain::intent::PayerInput;
use crate::domain::status::{InstallmentStatus, IntentStatus};

/// The payer with an email (`$1`), compared lower-cased. `email IS NOT NULL` lets the partial unique index serve
/// the lookup; without it SQLite scans every payer.
pub(crate) const PAYER_BY_EMAIL: &str = "SELECT id FROM payers WHERE email IS NOT NULL AND lower(email) = lower($1)";

/// The payer with the same email (first) or, when no email is given, the same phone.
pub async fn find_payer(conn: &mut AnyConnection, payer: &PayerInput) -> StoreResult<Option<String>> {
    let row = if let Some(email) = &payer.email {
        sqlx::query(PAYER_BY_EMAIL).bind(email).fetch_optional(&mut *conn).await?
    } else if let Some(phone) = &payer.phone {
        sqlx::query("SELECT id FROM payers WHERE phone = $1 ORDER BY created_at LIMIT 1")
            .bind(phone.as_str())
            .fetch_optional(&mut *conn)
            .await?
    } else {
        None
    };
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// Creates the payer, or returns the one a concurrent request created first: the insert does nothing on a
/// uniqueness clash (which on PostgreSQL would otherwise abort the transaction) and the winner's row is read.
pub async fn create_payer(conn: &mut AnyConnection, payer: &PayerInput, now: DateTime<Utc>) -> StoreResult<String> {
    let id = new_id("pay");
    let inserted = sqlx::query(
        "INSERT INTO payers (id, first_name, last_name, email, phone, fields, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT DO NOTHING",
    )
    .bind(&id)
    .bind(&payer.first_name)
    .bind(&payer.last_name)
    .bind(&payer.email)
    .bind(payer.phone.as_ref().map(|p| p.as_str().to_owned()))
    .bind(serde_json::to_string(&payer.fields).unwrap_or_else(|_| "{}".into()))
    .bind(timestamp(now))
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(id);
    }
    find_payer(conn, payer).await?.ok_or_else(|| StoreError::Conflict("payers".into()))
}

const PROFILE_SELECT: &str =
    "SELECT id FROM payment_profiles WHERE payer_id = $1 AND wallet_type = 'Vipps' AND identifier = $2";

/// The payer's Vipps wallet profile with this identifier (phone, or empty when unknown), if it exists.
pub async fn find_profile(
    conn: &mut AnyConnection,
    payer_id: &str,
    phone: Option<&str>,
) -> StoreResult<Option<String>> {
    let row = sqlx::query(PROFILE_SELECT).bind(payer_id).bind(phone.unwrap_or_default()).fetch_optional(conn).await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// Creates the payer's Vipps wallet profile, or returns the one a concurrent request created first.
pub async fn create_profile(
    conn: &mut AnyConnection,
    payer_id: &str,
    phone: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<String> {
    let identifier = phone.unwrap_or_default();
    let id = new_id("pp");
    let inserted = sqlx::query(
        "INSERT INTO payment_profiles (id, payer_id, record_type, wallet_type, identifier, created_at) \
         VALUES ($1, $2, 'Wallet', 'Vipps', $3, $4) ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(&id)
    .bind(payer_id)
    .bind(identifier)
    .bind(timestamp(now))
    .fetch_optional(&mut *conn)
    .await?;
    if inserted.is_some() {
        return Ok(id);
    }
    let row = sqlx::query(PROFILE_SELECT).bind(payer_id).bind(identifier).fetch_one(conn).await?;
    Ok(row.try_get(0)?)
}

/// A stored inbound or outbound exchange, raw.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    /// `inbound` or `outbound`.
    pub direction: &'a str,
    /// `api`, `vipps_webhook`, `vipps_poll`, `vipps_call`…
    pub channel: &'a str,
    /// What it is about (an intent id, a payment reference).
    pub subject: Option<&'a str>,
    /// The raw body.
    pub body: &'a str,
    /// `New`, `Processed`, `Failed`.
    pub status: &'a str,
}

/// Stores a message; returns its id.
pub async fn insert_message(
    conn: &mut AnyConnection,
    message: &NewMessage<'_>,
    now: DateTime<Utc>,
) -> StoreResult<String> {
    let id = new_id("msg");
    sqlx::query(
        "INSERT INTO messages (id, direction, channel, subject, body, status, received_at, processed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $6 = 'New' THEN NULL ELSE $7 END)",
    )
    .bind(&id)
    .bind(message.direction)
    .bind(message.channel)
    .bind(message.subject)
    .bind(message.body)
    .bind(message.status)
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(id)
}

/// Marks a message processed (or failed with an error).
pub async fn finish_message(
    conn: &mut AnyConnection,
    id: &str,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query("UPDATE messages SET status = $2, error = $3, processed_at = $4 WHERE id = $1")
        .bind(id)
        .bind(if error.is_some() { "Failed" } else { "Processed" })
        .bind(error)
        .bind(timestamp(now))
        .execute(conn)
        .await?;
    Ok(())
}

/// A normalised event made from a message.
#[derive(Debug, Clone)]
pub struct NewReport<'a> {
    /// The message it was made from.
    pub message_id: &'a str,
    /// `PaymentIntent` or `Vipps`.
    pub report_type: &'a str,
    /// `Default`, `payment.authorized`, `payment.captured`, `refund`…
    pub sub_type: &'a str,
    /// Amount in øre, when the event has one.
    pub amount_ore: Option<i64>,
    /// The payment reference it concerns.
    pub reference: Option<&'a str>,
    /// `New`, `Matched`, `Ignored`, `Failed`…
    pub status: &'a str,
    /// The installment it matched.
    pub installment_id: Option<&'a str>,
    /// The intent it belongs to.
    pub intent_id: Option<&'a str>,
    /// Free-form detail (a reason, an error).
    pub detail: Option<&'a str>,
}

/// Stores an inbound report; returns its id.
pub async fn insert_report(
    conn: &mut AnyConnection,
    report: &NewReport<'_>,
    now: DateTime<Utc>,
) -> StoreResult<String> {
    let id = new_id("ir");
    sqlx::query(
        "INSERT INTO inbound_reports (id, message_id, report_type, sub_type, amount_ore, report_date, reference, status, \
         installment_id, intent_id, detail, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
    )
    .bind(&id)
    .bind(report.message_id)
    .bind(report.report_type)
    .bind(report.sub_type)
    .bind(report.amount_ore)
    .bind(crate::domain::schedule::oslo_date(now).to_string())
    .bind(report.reference)
    .bind(report.status)
    .bind(report.installment_id)
    .bind(report.intent_id)
    .bind(report.detail)
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(id)
}

/// A payment intent row.
#[derive(Debug, Clone)]
pub struct IntentRow {
    /// `pi_…`
    pub id: String,
    /// Its status.
    pub status: IntentStatus,
    /// The merchant account.
    pub account_id: String,
    /// The payer.
    pub payer_id: String,
    /// The installment it made.
    pub installment_id: Option<String>,
    /// Where the payer goes on success.
    pub success_url: String,
    /// Where the payer goes otherwise.
    pub failure_url: String,
    /// The caller's webhook URL.
    pub webhook_url: Option<String>,
    /// The inbound report it became.
    pub inbound_report_id: String,
}

/// Everything needed to record a new one-time intent.
#[derive(Debug, Clone)]
pub struct NewOneTime<'a> {
    /// `pi_…`
    pub intent_id: &'a str,
    /// `ins_…`
    pub installment_id: &'a str,
    /// `pi-` + digits.
    pub payment_reference: &'a str,
    /// The inbound report of the intent.
    pub report_id: &'a str,
    /// The account.
    pub account_id: &'a str,
    /// The payer.
    pub payer_id: &'a str,
    /// The payer's Vipps profile.
    pub profile_id: &'a str,
    /// Amount in øre.
    pub amount_ore: i64,
    /// Bank Statement Description (Vipps transaction text).
    pub bank_statement_description: Option<&'a str>,
    /// Product.
    pub product: Option<&'a str>,
    /// SuccessURL.
    pub success_url: &'a str,
    /// FailureURL.
    pub failure_url: &'a str,
    /// WebhookURL.
    pub webhook_url: Option<&'a str>,
    /// The phone number sent to Vipps, if any.
    pub customer_phone: Option<&'a str>,
    /// Origin.
    pub origin: Option<&'a str>,
    /// CampaignId.
    pub campaign_id: Option<&'a str>,
}

impl NewOneTime<'_> {
    /// The installment as [`super::batch::Steps::insert_one_times`] writes it at `now`.
    pub fn installment_row(&self, now: DateTime<Utc>) -> InstallmentRow {
        InstallmentRow {
            id: self.installment_id.to_owned(),
            intent_id: Some(self.intent_id.to_owned()),
            payer_id: self.payer_id.to_owned(),
            account_id: self.account_id.to_owned(),
            amount_ore: self.amount_ore,
            amount_open_ore: self.amount_ore,
            due_date: crate::domain::schedule::oslo_date(now),
            status: InstallmentStatus::Outstanding,
            status_reason: None,
            payment_reference: self.payment_reference.to_owned(),
            bank_statement_description: self.bank_statement_description.map(str::to_owned),
            product: self.product.map(str::to_owned),
            recurring_payment_id: None,
            mandate_id: None,
        }
    }
}

/// A payment intent row to record (one-time or recurring).
#[derive(Debug, Clone)]
pub struct NewIntentRow<'a> {
    /// `pi_…`
    pub id: &'a str,
    /// Its inbound report.
    pub report_id: &'a str,
    /// The account.
    pub account_id: &'a str,
    /// The payer.
    pub payer_id: &'a str,
    /// The initial payment's installment.
    pub installment_id: Option<&'a str>,
    /// SuccessURL.
    pub success_url: &'a str,
    /// FailureURL.
    pub failure_url: &'a str,
    /// WebhookURL.
    pub webhook_url: Option<&'a str>,
    /// Origin.
    pub origin: Option<&'a str>,
    /// CampaignId.
    pub campaign_id: Option<&'a str>,
}

/// Records a (Processing) intent.
pub async fn insert_intent(conn: &mut AnyConnection, new: &NewIntentRow<'_>, now: DateTime<Utc>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO payment_intents (id, inbound_report_id, status, account_id, payer_id, installment_id, success_url, \
         failure_url, webhook_url, origin, campaign_id, created_at, updated_at) \
         VALUES ($1, $2, 'Processing', $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
    )
    .bind(new.id)
    .bind(new.report_id)
    .bind(new.account_id)
    .bind(new.payer_id)
    .bind(new.installment_id)
    .bind(new.success_url)
    .bind(new.failure_url)
    .bind(new.webhook_url)
    .bind(new.origin)
    .bind(new.campaign_id)
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(())
}

fn intent_from_row(row: &AnyRow) -> StoreResult<IntentRow> {
    let status: String = row.try_get("status")?;
    Ok(IntentRow {
        id: row.try_get("id")?,
        status: status.parse().map_err(|e: String| StoreError::Database(sqlx::Error::Decode(e.into())))?,
        account_id: row.try_get("account_id")?,
        payer_id: row.try_get("payer_id")?,
        installment_id: row.try_get("installment_id")?,
        success_url: row.try_get("success_url")?,
        failure_url: row.try_get("failure_url")?,
        webhook_url: row.try_get("webhook_url")?,
        inbound_report_id: row.try_get("inbound_report_id")?,
    })
}

/// One intent by id.
pub async fn intent(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<IntentRow>> {
    sqlx::query("SELECT * FROM payment_intents WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(intent_from_row)
        .transpose()
}

/// Sets an intent's status.
pub async fn set_intent_status(
    conn: &mut AnyConnection,
    id: &str,
    status: IntentStatus,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query("UPDATE payment_intents SET status = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(status.as_str())
        .bind(timestamp(now))
        .execute(conn)
        .await?;
    Ok(())
}

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

fn status_text<S: serde::Serializer>(status: &InstallmentStatus, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(status.as_str())
}

fn installment_from_row(row: &AnyRow) -> StoreResult<InstallmentRow> {
    let status: String = row.try_get("status")?;
    let due: String = row.try_get("due_date")?;
    Ok(InstallmentRow {
        id: row.try_get("id")?,
        intent_id: row.try_get("intent_id")?,
        payer_id: row.try_get("payer_id")?,
        account_id: row.try_get("account_id")?,
        amount_ore: row.try_get("amount_ore")?,
        amount_open_ore: row.try_get("amount_open_ore")?,
        due_date: NaiveDate::parse_from_str(&due, "%Y-%m-%d")
            .map_err(|e| StoreError::Database(sqlx::Error::Decode(e.into())))?,
        status: status.parse().map_err(|e: String| StoreError::Database(sqlx::Error::Decode(e.into())))?,
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

/// The Vipps payment behind an installment.
#[derive(Debug, Clone)]
pub struct VippsPaymentRow {
    /// The Vipps reference (`pi-…`).
    pub reference: String,
    /// The installment.
    pub installment_id: String,
    /// The account.
    pub account_id: String,
    /// The Idempotency-Key of the create call (derived from the installment).
    pub idempotency_key: String,
    /// Amount in øre.
    pub amount_ore: i64,
    /// `CREATING` (not yet confirmed by Vipps), then Vipps' state.
    pub state: String,
    /// The phone number sent to Vipps.
    pub customer_phone: Option<String>,
    /// The payment description sent to Vipps.
    pub description: Option<String>,
    /// The landing page.
    pub redirect_url: Option<String>,
    /// Authorized total last seen.
    pub authorized_ore: i64,
    /// Captured total last seen.
    pub captured_ore: i64,
    /// Refunded total last seen.
    pub refunded_ore: i64,
}

fn vipps_payment_from_row(row: &AnyRow) -> StoreResult<VippsPaymentRow> {
    Ok(VippsPaymentRow {
        reference: row.try_get("reference")?,
        installment_id: row.try_get("installment_id")?,
        account_id: row.try_get("account_id")?,
        idempotency_key: row.try_get("idempotency_key")?,
        amount_ore: row.try_get("amount_ore")?,
        state: row.try_get("state")?,
        customer_phone: row.try_get("customer_phone")?,
        description: row.try_get("description")?,
        redirect_url: row.try_get("redirect_url")?,
        authorized_ore: row.try_get("authorized_ore")?,
        captured_ore: row.try_get("captured_ore")?,
        refunded_ore: row.try_get("refunded_ore")?,
    })
}

/// The Vipps payment with this reference.
pub async fn vipps_payment(conn: &mut AnyConnection, reference: &str) -> StoreResult<Option<VippsPaymentRow>> {
    sqlx::query("SELECT * FROM vipps_payments WHERE reference = $1")
        .bind(reference)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(vipps_payment_from_row)
        .transpose()
}

/// The Vipps payment of an installment.
pub async fn vipps_payment_of(conn: &mut AnyConnection, installment_id: &str) -> StoreResult<Option<VippsPaymentRow>> {
    sqlx::query("SELECT * FROM vipps_payments WHERE installment_id = $1")
        .bind(installment_id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(vipps_payment_from_row)
        .transpose()
}

/// References of Vipps payments that are not settled yet (for the polling beat), oldest first.
pub async fn open_vipps_payments(conn: &mut AnyConnection, limit: i64) -> StoreResult<Vec<String>> {
    let rows = sqlx::query(
        "SELECT reference FROM vipps_payments WHERE state IN ('CREATING', 'CREATED') \
         OR (state = 'AUTHORIZED' AND captured_ore + cancelled_ore < authorized_ore) ORDER BY updated_at LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Records what Vipps says of a payment.
#[allow(clippy::too_many_arguments)]
pub async fn update_vipps_payment(
    conn: &mut AnyConnection,
    reference: &str,
    state: &str,
    redirect_url: Option<&str>,
    psp_reference: Option<&str>,
    totals: Option<[i64; 4]>,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let [authorized, captured, refunded, cancelled] = totals.map_or([None; 4], |t| t.map(Some));
    sqlx::query(
        "UPDATE vipps_payments SET state = $2, redirect_url = COALESCE($3, redirect_url), psp_reference = COALESCE($4, psp_reference), \
         authorized_ore = COALESCE($5, authorized_ore), captured_ore = COALESCE($6, captured_ore), refunded_ore = COALESCE($7, refunded_ore), \
         cancelled_ore = COALESCE($8, cancelled_ore), last_error = $9, updated_at = $10 WHERE reference = $1",
    )
    .bind(reference)
    .bind(state)
    .bind(redirect_url)
    .bind(psp_reference)
    .bind(authorized)
    .bind(captured)
    .bind(refunded)
    .bind(cancelled)
    .bind(error)
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(())
}

/// A real movement of money on an installment.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PaymentRow {
    /// `pmt_…`
    pub id: String,
    /// Signed amount in øre (refunds are negative).
    pub amount_ore: i64,
    /// When the money moved.
    pub collection_date: NaiveDate,
    /// Vipps' reference of the operation.
    pub psp_reference: String,
    /// `capture` or `refund`.
    pub kind: String,
    /// The inbound report that caused it.
    pub inbound_report_id: Option<String>,
}

/// Records a payment once per psp reference; returns its id when it was new.
pub async fn insert_payment(
    conn: &mut AnyConnection,
    installment_id: &str,
    amount_ore: i64,
    psp_reference: &str,
    kind: &str,
    inbound_report_id: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<Option<String>> {
    let id = new_id("pmt");
    let done = sqlx::query(
        "INSERT INTO payments (id, installment_id, amount_ore, collection_date, psp_reference, kind, inbound_report_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (psp_reference) DO NOTHING",
    )
    .bind(&id)
    .bind(installment_id)
    .bind(amount_ore)
    .bind(crate::domain::schedule::oslo_date(now).to_string())
    .bind(psp_reference)
    .bind(kind)
    .bind(inbound_report_id)
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok((done.rows_affected() == 1).then_some(id))
}

/// The payments of an installment, oldest first.
pub async fn payments_of(conn: &mut AnyConnection, installment_id: &str) -> StoreResult<Vec<PaymentRow>> {
    let rows = sqlx::query("SELECT * FROM payments WHERE installment_id = $1 ORDER BY created_at, id")
        .bind(installment_id)
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|row| {
            let date: String = row.try_get("collection_date")?;
            Ok(PaymentRow {
                id: row.try_get("id")?,
                amount_ore: row.try_get("amount_ore")?,
                collection_date: NaiveDate::parse_from_str(&date, "%Y-%m-%d")
                    .map_err(|e| StoreError::Database(sqlx::Error::Decode(e.into())))?,
                psp_reference: row.try_get("psp_reference")?,
                kind: row.try_get("kind")?,
                inbound_report_id: row.try_get("inbound_report_id")?,
            })
        })
        .collect()
}

/// The installment a payment belongs to.
pub async fn installment_of_payment(conn: &mut AnyConnection, payment_id: &str) -> StoreResult<Option<String>> {
    Ok(sqlx::query("SELECT installment_id FROM payments WHERE id = $1")
        .bind(payment_id)
        .fetch_optional(conn)
        .await?
        .map(|r| r.try_get(0))
        .transpose()?)
}

/// A refund request.
#[derive(Debug, Clone)]
pub struct RefundRow {
    /// `rf_…`
    pub id: String,
    /// The installment.
    pub installment_id: String,
    /// Amount in øre (positive).
    pub amount_ore: i64,
    /// `Pending`, `Succeeded`, `Failed`.
    pub status: String,
    /// The Idempotency-Key sent to Vipps.
    pub idempotency_key: String,
    /// Vipps' reference of the refund.
    pub psp_reference: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Reason given.
    pub reason: Option<String>,
}

fn refund_from_row(row: &AnyRow) -> StoreResult<RefundRow> {
    Ok(RefundRow {
        id: row.try_get("id")?,
        installment_id: row.try_get("installment_id")?,
        amount_ore: row.try_get("amount_ore")?,
        status: row.try_get("status")?,
        idempotency_key: row.try_get("idempotency_key")?,
        psp_reference: row.try_get("psp_reference")?,
        error: row.try_get("error")?,
        reason: row.try_get("reason")?,
    })
}

/// What can still be refunded: captured minus refunds pending or done. (PostgreSQL sums `BIGINT` into
/// `NUMERIC`, hence the casts.)
pub async fn refundable_ore(conn: &mut AnyConnection, installment_id: &str) -> StoreResult<i64> {
    let captured: i64 = sqlx::query("SELECT CAST(COALESCE(SUM(amount_ore), 0) AS BIGINT) FROM payments WHERE installment_id = $1 AND kind = 'capture'")
        .bind(installment_id)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    let reserved: i64 = sqlx::query("SELECT CAST(COALESCE(SUM(amount_ore), 0) AS BIGINT) FROM refunds WHERE installment_id = $1 AND status <> 'Failed'")
        .bind(installment_id)
        .fetch_one(conn)
        .await?
        .try_get(0)?;
    Ok(captured - reserved)
}

/// Stores a new pending refund; its Vipps Idempotency-Key is derived from its own id.
pub async fn insert_refund(
    conn: &mut AnyConnection,
    installment_id: &str,
    amount_ore: i64,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<RefundRow> {
    let id = new_id("rf");
    let key = id.clone();
    sqlx::query(
        "INSERT INTO refunds (id, installment_id, amount_ore, reason, status, idempotency_key, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'Pending', $5, $6, $6)",
    )
    .bind(&id)
    .bind(installment_id)
    .bind(amount_ore)
    .bind(reason)
    .bind(&key)
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(RefundRow {
        id,
        installment_id: installment_id.to_owned(),
        amount_ore,
        status: "Pending".into(),
        idempotency_key: key,
        psp_reference: None,
        error: None,
        reason: reason.map(str::to_owned),
    })
}

/// Finishes a pending refund as `Succeeded` (with Vipps' reference) or `Failed` (with the error); false when it
/// was no longer pending (another attempt finished it).
pub async fn finish_refund(
    conn: &mut AnyConnection,
    id: &str,
    psp_reference: Option<&str>,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = sqlx::query("UPDATE refunds SET status = $2, psp_reference = $3, error = $4, updated_at = $5 WHERE id = $1 AND status = 'Pending'")
        .bind(id)
        .bind(if error.is_some() { "Failed" } else { "Succeeded" })
        .bind(psp_reference)
        .bind(error)
        .bind(timestamp(now))
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// One refund by id.
pub async fn refund(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<RefundRow>> {
    sqlx::query("SELECT * FROM refunds WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(refund_from_row)
        .transpose()
}

/// Refunds still pending at Vipps (for the polling beat).
pub async fn pending_refunds(conn: &mut AnyConnection, limit: i64) -> StoreResult<Vec<RefundRow>> {
    let rows = sqlx::query("SELECT * FROM refunds WHERE status = 'Pending' ORDER BY created_at LIMIT $1")
        .bind(limit)
        .fetch_all(conn)
        .await?;
    rows.iter().map(refund_from_row).collect()
}
