//! The Payment API's answers as types (FinDock's PascalCase names), so `/openapi.json` describes exactly what
//! the handlers write: an optional field written as `null` is an `Option` without a skip, one left out when it
//! has no value is skipped.

use chrono::NaiveDate;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::money::Kroner;
use crate::domain::recurring::{MandateStatus, RecurringStatus};
use crate::domain::schedule::Frequency;
use crate::domain::status::{InstallmentStatus, IntentStatus};
use crate::domain::vipps_state::{AgreementState, ChargeState};

/// The payment method of a new intent's answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct CreatedMethod {
    /// Always `Vipps`.
    pub name: &'static str,
    /// The processor's name, `PayHub-Vipps`.
    pub processor: &'static str,
    /// The merchant account's name; left out when paying an existing installment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// The payment method of a record read back.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct MethodOf {
    /// Always `Vipps`.
    pub name: &'static str,
    /// The processor's name, `PayHub-Vipps`.
    pub processor: &'static str,
    /// The merchant account's name (`null` when it could not be read).
    pub target: Option<String>,
}

/// Answer of `POST /v2/PaymentIntent`: where to send the payer, and the records made.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct CreatedIntent {
    /// The Payment Intent's id (`pi_…`).
    pub id: String,
    /// Always `Matched`: the intent was recorded and its payment or agreement created at Vipps.
    pub status: IntentStatus,
    /// Vipps' landing page: send the payer's browser there.
    #[serde(rename = "RedirectURL")]
    pub redirect_url: Option<String>,
    /// The method and the merchant account.
    pub payment_method: CreatedMethod,
    /// The installment to pay: the one made (one-time), the initial payment of a recurring intent (`null`
    /// without one), or the existing installment paid.
    pub one_time: Option<CreatedInstallment>,
    /// The recurring payment made, with its mandate; only for a recurring intent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recurring: Option<RecurringAnswer>,
}

/// The installment in the answer of `POST /v2/PaymentIntent`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct CreatedInstallment {
    /// `ins_…`
    pub id: String,
    /// Its status (`Pending` while the payer has not paid).
    pub status: InstallmentStatus,
    /// The payment's reference at Vipps; left out for a recurring intent's initial payment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_reference: Option<String>,
}

/// Answer of `GET /v2/PaymentIntent/{id}`: the intent and what it made.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct IntentState {
    /// The Payment Intent's id (`pi_…`).
    pub id: String,
    /// Where the intent stands.
    pub status: IntentStatus,
    /// Vipps' landing page (one-time) or the agreement's confirmation page (recurring), while known.
    #[serde(rename = "RedirectURL")]
    pub redirect_url: Option<String>,
    /// The method and the merchant account.
    pub payment_method: MethodOf,
    /// The installment the intent made (`null` for a recurring intent without an initial payment).
    pub one_time: Option<IntentInstallment>,
    /// The recurring payment the intent made (`null` for a one-time intent).
    pub recurring: Option<RecurringAnswer>,
}

/// The installment in the answer of `GET /v2/PaymentIntent/{id}`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct IntentInstallment {
    /// `ins_…`
    pub id: String,
    /// Its status.
    pub status: InstallmentStatus,
    /// Why it failed or was cancelled, when Vipps said.
    pub status_reason: Option<String>,
    /// The payment's reference at Vipps.
    pub payment_reference: String,
    /// The amount due.
    pub amount: Kroner,
}

/// Answer of `GET /v2/Installment/{id}`: one installment with the money moved for it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct InstallmentAnswer {
    /// `ins_…`
    pub id: String,
    /// The installment's PayLink (`/pay/…`) while it can be paid there, else `null`.
    #[serde(rename = "PayURL")]
    pub pay_url: Option<String>,
    /// Its status.
    pub status: InstallmentStatus,
    /// Why it failed or was cancelled, when Vipps said.
    pub status_reason: Option<String>,
    /// The amount due.
    pub amount: Kroner,
    /// What is still to be paid (a refund does not make money due again).
    pub amount_open: Kroner,
    /// What has been paid back.
    pub amount_refunded: Kroner,
    /// Always `NOK`.
    #[serde(rename = "CurrencyISOCode")]
    pub currency_iso_code: &'static str,
    /// When it falls due.
    pub due_date: NaiveDate,
    /// The payment's (or charge's) reference at Vipps.
    pub payment_reference: String,
    /// The text on the payer's statement (the Vipps transaction text).
    pub bank_statement_description: Option<String>,
    /// The product the installment pays for.
    pub product: Option<String>,
    /// The Payment Intent that made it (`null` for a recurring payment's later periods).
    pub payment_intent_id: Option<String>,
    /// The recurring payment it is a period of.
    pub recurring_id: Option<String>,
    /// The mandate it is collected under.
    pub mandate_id: Option<String>,
    /// Always `Vipps`.
    pub payment_method: &'static str,
    /// The processor's name, `PayHub-Vipps`.
    pub payment_processor: &'static str,
    /// The money moved: payments (positive) and refunds (negative).
    pub payments: Vec<InstallmentPayment>,
}

/// What a Payment records.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum PaymentKind {
    /// Money collected.
    Capture,
    /// Money paid back (a negative amount).
    Refund,
}

/// One payment or refund of an installment.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct InstallmentPayment {
    /// `pmt_…`
    pub id: String,
    /// Positive for money in, negative for a refund.
    pub amount: Kroner,
    /// The same amount in øre.
    pub amount_ore: i64,
    /// When the money moved.
    pub collection_date: NaiveDate,
    /// Vipps' reference of the capture or refund.
    pub psp_reference: String,
    /// `capture` or `refund`.
    #[serde(rename = "Type")]
    #[schema(value_type = PaymentKind)]
    pub kind: String,
    /// The Inbound Report that recorded it.
    pub inbound_report_id: Option<String>,
    /// The settlement ledger's date for it, once settled.
    pub ledger_date: Option<NaiveDate>,
    /// The fee Vipps kept, once settled.
    pub fee: Option<Kroner>,
    /// The fee in øre.
    pub fee_ore: Option<i64>,
    /// The amount less the fee, once settled.
    pub net_amount: Option<Kroner>,
    /// The net amount in øre.
    pub net_amount_ore: Option<i64>,
    /// The payout that paid it out (`po_…`).
    pub payout_id: Option<String>,
}

/// Answer of `GET /v2/PaymentMethods`: what this hub takes, FinDock's descriptor.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct PaymentMethodList {
    /// The methods: Vipps only.
    pub payment_methods: Vec<MethodDescription>,
}

/// A payment method and its processors.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct MethodDescription {
    /// `Vipps`.
    pub name: &'static str,
    /// Its processors.
    pub processors: Vec<ProcessorDescription>,
}

/// A processor: its merchant accounts (targets), recurring support and parameters.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ProcessorDescription {
    /// `PayHub-Vipps`.
    pub name: &'static str,
    /// Other names `PaymentMethod.Processor` may give (FinDock's `FinDock-Vipps`).
    pub aliases: Vec<&'static str>,
    /// Always true.
    pub is_default: bool,
    /// The merchant accounts an intent may name as `PaymentMethod.Target`.
    pub targets: Vec<TargetDescription>,
    /// Always true.
    pub supports_recurring: bool,
    /// The frequencies a recurring intent may ask for.
    pub frequencies: Vec<Frequency>,
    /// Whether a recurring intent may carry an initial payment (`Optional`).
    #[serde(rename = "InitialPaymentonRecurring")]
    pub initial_payment_on_recurring: &'static str,
    /// What `PaymentMethod.Parameters` may hold.
    pub parameters: Vec<ParameterDescription>,
}

/// A merchant account, as a target.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct TargetDescription {
    /// The account's name.
    pub name: String,
    /// Whether intents without a Target use it.
    pub is_default: bool,
    /// Whether it is a Vipps test account.
    pub is_test: bool,
}

/// A parameter `PaymentMethod.Parameters` may hold.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ParameterDescription {
    /// The parameter's name.
    pub name: &'static str,
    /// Always false: every parameter is optional.
    pub required: bool,
    /// Always `String`.
    pub data_type: &'static str,
    /// What it does.
    pub description: &'static str,
    /// Its longest accepted length, in characters.
    #[serde(rename = "maxLength")]
    pub max_length: u32,
}

/// Where a refund stands.
#[derive(ToSchema)]
pub enum RefundStatus {
    /// Sent to Vipps, not yet confirmed: read the installment again later.
    Pending,
    /// Vipps paid the money back.
    Succeeded,
}

/// Answer of `POST /v2/Refund`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct RefundAnswer {
    /// The refund's id (`rf_…`).
    pub id: String,
    /// `Succeeded`, or `Pending` while Vipps has not confirmed it.
    #[schema(value_type = RefundStatus)]
    pub status: String,
    /// The amount paid back.
    pub amount: Kroner,
    /// The installment refunded.
    pub installment_id: String,
    /// The installment's status afterwards (`PartiallyRefunded` or `Refunded` once confirmed).
    #[schema(value_type = InstallmentStatus)]
    pub installment_status: String,
    /// The negative Payment recorded for it, once Vipps confirmed.
    pub payment_id: Option<String>,
    /// Vipps' reference of the refund, once known.
    pub psp_reference: Option<String>,
    /// The reason given.
    pub reason: Option<String>,
}

/// A recurring payment: its terms, its mandate and its installments.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct RecurringAnswer {
    /// `rp_…`
    pub id: String,
    /// Where it stands.
    pub status: RecurringStatus,
    /// Why it was cancelled or ended.
    pub status_reason: Option<String>,
    /// The amount of each installment.
    pub amount: Kroner,
    /// Always `NOK`.
    #[serde(rename = "CurrencyISOCode")]
    pub currency_iso_code: &'static str,
    /// How often it is collected.
    pub frequency: Frequency,
    /// Its first period's date.
    pub start_date: NaiveDate,
    /// Its last day, if it ends.
    pub end_date: Option<NaiveDate>,
    /// The day of the month installments fall due, when one was set.
    pub collection_day: Option<u32>,
    /// No charges before this day (paused until then).
    pub paused_until: Option<NaiveDate>,
    /// When the next installment falls due, while there will be one.
    pub next_collection_date: Option<NaiveDate>,
    /// The Payment Intent that made it.
    pub payment_intent_id: Option<String>,
    /// The payer (`pyr_…`).
    pub payer_id: String,
    /// The text on the payer's statement.
    pub bank_statement_description: Option<String>,
    /// The product its installments pay for.
    pub product: Option<String>,
    /// The mandate (Vipps agreement) it is collected under.
    pub mandate: MandateBrief,
    /// Its installments, by due date.
    pub installments: Vec<InstallmentLine>,
    /// The organisation's changes, newest first; in the answers of `GET /v2/Recurring/{id}` and its changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<ChangeAnswer>>,
    /// Where the payer approves a new agreement for this recurring payment once theirs was stopped or expired
    /// (`/renew/{token}`, unguessable, the same every time); in the answers of `GET /v2/Recurring/{id}` and its
    /// changes.
    #[serde(rename = "SetupURL", skip_serializing_if = "Option::is_none")]
    pub setup_url: Option<String>,
    /// The Vipps agreement's stop, when a cancel stopped it too (the account's setting).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_vipps_agreement: Option<ActionAnswer>,
}

/// A mandate, in brief.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct MandateBrief {
    /// `mdt_…`
    pub id: String,
    /// The Vipps agreement id (`agr_…`), once Vipps confirmed the draft.
    pub mandate_id: Option<String>,
    /// Where it stands.
    pub status: MandateStatus,
    /// Whether it collects.
    pub active: bool,
}

/// An installment of a recurring payment or mandate, in brief.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct InstallmentLine {
    /// `ins_…`
    pub id: String,
    /// Its status.
    #[schema(value_type = InstallmentStatus)]
    pub status: String,
    /// Why it failed or was cancelled.
    pub status_reason: Option<String>,
    /// When it falls due.
    #[schema(value_type = NaiveDate)]
    pub due_date: String,
    /// The amount due.
    pub amount: Kroner,
    /// The charge's reference at Vipps.
    pub payment_reference: String,
    /// The Vipps charge's status, once a charge exists.
    #[schema(value_type = Option<ChargeState>)]
    pub charge_status: Option<String>,
}

/// What an organisation's change asked for.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A new amount.
    Amount,
    /// A new collection day.
    CollectionDay,
    /// A pause.
    Pause,
    /// A resume.
    Resume,
    /// A cancel.
    Cancel,
    /// Stopping the Vipps agreement.
    CancelAgreement,
}

/// Where an organisation's change stands.
#[derive(ToSchema)]
pub enum ChangeStatus {
    /// Waiting for Vipps to confirm; retried until it does.
    Pending,
    /// In effect.
    Succeeded,
    /// Vipps refused it.
    Failed,
}

/// One change the organisation asked for.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ChangeAnswer {
    /// `rc_…`
    pub id: String,
    /// What it changes.
    #[schema(value_type = ChangeKind)]
    pub kind: String,
    /// Where it stands.
    #[schema(value_type = ChangeStatus)]
    pub status: String,
    /// Vipps' or payhub's message (what a `Pending` change waits for).
    pub message: Option<String>,
}

/// A recurring payment of a mandate, in brief.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct RecurringRef {
    /// `rp_…`
    pub id: String,
    /// Where it stands.
    pub status: RecurringStatus,
}

/// An agreement's interval.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct IntervalAnswer {
    /// Vipps' unit: `DAY`, `WEEK`, `MONTH` or `YEAR`.
    pub unit: String,
    /// How many units between charges.
    pub count: i64,
    /// The same in words (`every month`).
    pub text: String,
}

/// Answer of `GET /v2/Mandate/{id}`: a mandate (payhub's mirror of a Vipps agreement).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct MandateAnswer {
    /// `mdt_…`
    pub id: String,
    /// The Vipps agreement id (`agr_…`), once Vipps confirmed the draft.
    pub mandate_id: Option<String>,
    /// Where it stands.
    pub status: MandateStatus,
    /// Whether it collects.
    pub active: bool,
    /// The agreement's state at Vipps.
    pub vipps_status: AgreementState,
    /// The agreement's product name, shown to the payer.
    pub product_name: String,
    /// Where the payer manages the agreement.
    pub merchant_agreement_url: String,
    /// The agreement's price.
    pub price: Kroner,
    /// How often Vipps may charge.
    pub interval: IntervalAnswer,
    /// Where the payer confirms the agreement, while it waits for that.
    #[serde(rename = "ConfirmationURL")]
    pub confirmation_url: Option<String>,
    /// The Payment Intent that asked for it.
    pub payment_intent_id: Option<String>,
    /// The payer (`pyr_…`).
    pub payer_id: String,
    /// The installment of the initial payment, if any.
    pub initial_installment_id: Option<String>,
    /// The last error from Vipps.
    pub last_error: Option<String>,
    /// The method and the merchant account.
    pub payment_method: MethodOf,
    /// Its recurring payments.
    pub recurring_payments: Vec<RecurringRef>,
    /// Its installments, by due date.
    pub installments: Vec<InstallmentLine>,
}

/// FinDock's action answer: whether the action succeeded, and why not.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ActionAnswer {
    /// Whether the action was done.
    pub is_success: bool,
    /// What happened (Vipps' message when Vipps refused).
    pub message: String,
}

/// The `500` of `POST /v2/actions/CancelVippsAgreement`: the action's answer when the action failed, or the
/// envelope when payhub could not read the mandate.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum ActionFailure {
    /// The action failed.
    Action(ActionAnswer),
    /// payhub failed before the action (quote the RequestId).
    Envelope(crate::api::error::ErrorEnvelope),
}
