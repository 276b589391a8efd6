//! Payment intents: the rows of what a caller asked for (one-time or recurring) and their status.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::installments::InstallmentRow;
use super::sql::decode;
use super::{timestamp, StoreResult};
use crate::domain::status::{InstallmentStatus, IntentStatus};

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

/// Everything needed to record a new intent and its installment (a one-time payment, or a recurring intent's
/// initial payment).
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
    /// The installment as `Steps::insert_one_times` (group commit) writes it at `now`.
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

fn intent_from_row(row: &AnyRow) -> StoreResult<IntentRow> {
    let status: String = row.try_get("status")?;
    Ok(IntentRow {
        id: row.try_get("id")?,
        status: status.parse().map_err(decode)?,
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

/// Moves an intent to `status` where that is a move forward ([`IntentStatus::can_become`]); false when it
/// was not (already there, or decided otherwise).
pub async fn set_intent_status(
    conn: &mut AnyConnection,
    id: &str,
    status: IntentStatus,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    // The list holds our own constants.
    let from: Vec<String> =
        IntentStatus::ALL.iter().filter(|s| s.can_become(status)).map(|s| format!("'{}'", s.as_str())).collect();
    if from.is_empty() {
        return Ok(false);
    }
    let done = sqlx::query(&format!(
        "UPDATE payment_intents SET status = $2, updated_at = $3 WHERE id = $1 AND status IN ({})",
        from.join(", ")
    ))
    .bind(id)
    .bind(status.as_str())
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The recurring intent made by an intent, if any: (recurring payment id, mandate id).
pub async fn recurring_of_intent(conn: &mut AnyConnection, intent_id: &str) -> StoreResult<Option<(String, String)>> {
    let row = sqlx::query("SELECT id, mandate_id FROM recurring_payments WHERE intent_id = $1")
        .bind(intent_id)
        .fetch_optional(conn)
        .await?;
    row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
}
