//! Recurring API v3: agreements and charges (`/recurring/v3`).
//!
//! An agreement is drafted (`PENDING`), the user accepts it (`ACTIVE`) or not (`STOPPED`,
//! `EXPIRED`); charges are created on an `ACTIVE` agreement and processed on their due date.

use http::Method;
use serde::{Deserialize, Serialize};

use crate::client::{CallOptions, Client};
use crate::error::Error;
use crate::idempotency::RecurringIdempotencyKey;
use crate::transport::{ApiCall, RawResponse};
use crate::wire::{date_or_timestamp, null_as_default, opt_timestamp, timestamp, wire_enum, Currency};

wire_enum! {
    /// Status of an agreement.
    pub enum AgreementStatus {
        /// Drafted; waiting for the user (10 minutes).
        Pending => "PENDING",
        /// Accepted; charges may be created.
        Active => "ACTIVE",
        /// Stopped by merchant or user, or rejected; final.
        Stopped => "STOPPED",
        /// Not accepted in time, or the initial charge failed; final.
        Expired => "EXPIRED",
    }
}

wire_enum! {
    /// Status of a charge.
    pub enum ChargeStatus {
        /// Created; not yet visible in the app.
        Pending => "PENDING",
        /// Visible in the app; will be processed on the due date.
        Due => "DUE",
        /// Being processed.
        Processing => "PROCESSING",
        /// Amount reserved (RESERVE_CAPTURE); capture or cancel it.
        Reserved => "RESERVED",
        /// Fully captured.
        Charged => "CHARGED",
        /// Partly captured.
        PartiallyCaptured => "PARTIALLY_CAPTURED",
        /// All attempts failed (see `failure_reason`).
        Failed => "FAILED",
        /// Cancelled.
        Cancelled => "CANCELLED",
        /// Partly refunded.
        PartiallyRefunded => "PARTIALLY_REFUNDED",
        /// Fully refunded.
        Refunded => "REFUNDED",
    }
}

wire_enum! {
    /// Kind of charge.
    pub enum ChargeType {
        /// The agreement's initial charge.
        Initial => "INITIAL",
        /// A scheduled charge with a due date.
        Recurring => "RECURRING",
        /// Processed immediately, no due date (allow-listed merchants only).
        Unscheduled => "UNSCHEDULED",
    }
}

wire_enum! {
    /// Capture mode of a charge.
    pub enum TransactionType {
        /// Charged directly on the due date.
        DirectCapture => "DIRECT_CAPTURE",
        /// Reserved on the due date; the merchant captures later.
        ReserveCapture => "RESERVE_CAPTURE",
    }
}

wire_enum! {
    /// Pricing model of an agreement.
    pub enum PricingType {
        /// A fixed price per interval (charges up to 5× the price per interval).
        Legacy => "LEGACY",
        /// Variable amounts up to a user-chosen maximum.
        Variable => "VARIABLE",
        /// No ceiling.
        Flexible => "FLEXIBLE",
    }
}

wire_enum! {
    /// Unit of an interval.
    pub enum IntervalUnit {
        /// Years.
        Year => "YEAR",
        /// Months.
        Month => "MONTH",
        /// Weeks.
        Week => "WEEK",
        /// Days.
        Day => "DAY",
    }
}

wire_enum! {
    /// Why a charge failed.
    pub enum FailureReason {
        /// The user must act in the app (funds, blocked or expired card).
        UserActionRequired => "user_action_required",
        /// Above the user's maximum (VARIABLE pricing).
        ChargeAmountTooHigh => "charge_amount_too_high",
        /// E.g. the user's profile was deleted.
        NonTechnicalError => "non_technical_error",
        /// A fault in Vipps or downstream.
        TechnicalError => "technical_error",
    }
}

wire_enum! {
    /// An event in a charge's history.
    pub enum ChargeEventKind {
        /// Created.
        Create => "CREATE",
        /// Reserved.
        Reserve => "RESERVE",
        /// Captured.
        Capture => "CAPTURE",
        /// Refunded.
        Refund => "REFUND",
        /// Cancelled.
        Cancel => "CANCEL",
        /// Failed.
        Fail => "FAIL",
    }
}

wire_enum! {
    /// Processing mode of a charge.
    pub enum ProcessingMode {
        /// Retried until `due + retryDays` (the default).
        MultipleAttempts => "MULTIPLE_ATTEMPTS",
        /// One attempt only (requires `retryDays: 0`).
        SingleAttempt => "SINGLE_ATTEMPT",
    }
}

/// A period: `count` × `unit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TimePeriod {
    /// Unit.
    pub unit: IntervalUnit,
    /// Number of units, 1–31.
    pub count: u32,
}

impl TimePeriod {
    /// `count` × `unit`.
    pub fn new(unit: IntervalUnit, count: u32) -> Self {
        Self { unit, count }
    }

    /// Every month.
    pub fn monthly() -> Self {
        Self::new(IntervalUnit::Month, 1)
    }
}

/// Pricing of a new agreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PricingRequest {
    /// Pricing model (default `LEGACY`).
    #[serde(rename = "type")]
    pub kind: PricingType,
    /// Currency of all charges.
    pub currency: Currency,
    /// Price per interval (LEGACY), at least 100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    /// Suggested maximum (VARIABLE).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggested_max_amount: Option<i64>,
}

impl PricingRequest {
    /// A fixed price per interval.
    pub fn legacy(currency: Currency, amount: i64) -> Self {
        Self { kind: PricingType::Legacy, currency, amount: Some(amount), suggested_max_amount: None }
    }

    /// Variable amounts up to a maximum the user chooses, with a suggestion.
    pub fn variable(currency: Currency, suggested_max_amount: i64) -> Self {
        Self { kind: PricingType::Variable, currency, amount: None, suggested_max_amount: Some(suggested_max_amount) }
    }
}

/// A charge processed when the user accepts the agreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct InitialCharge {
    /// Amount in minor units.
    pub amount: i64,
    /// Shown in the app.
    pub description: String,
    /// Capture mode.
    pub transaction_type: TransactionType,
    /// Becomes the charge id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// Used in settlement reports, 1–64 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

impl InitialCharge {
    /// An initial charge.
    pub fn new(amount: i64, description: impl Into<String>, transaction_type: TransactionType) -> Self {
        Self { amount, description: description.into(), transaction_type, order_id: None, external_id: None }
    }
}

/// A price campaign at the start of an agreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum Campaign {
    /// `price` until `end`.
    #[serde(rename_all = "camelCase")]
    PriceCampaign {
        /// Campaign price.
        price: i64,
        /// End (UTC).
        end: chrono::DateTime<chrono::Utc>,
    },
    /// `price` for the first `period`.
    #[serde(rename_all = "camelCase")]
    PeriodCampaign {
        /// Campaign price.
        price: i64,
        /// Campaign period.
        period: TimePeriod,
    },
    /// `price` until an event.
    #[serde(rename_all = "camelCase")]
    EventCampaign {
        /// Campaign price.
        price: i64,
        /// Date of the event.
        event_date: chrono::DateTime<chrono::Utc>,
        /// Text describing the event.
        event_text: String,
    },
    /// `price` every `interval` until `end`.
    #[serde(rename_all = "camelCase")]
    FullFlexCampaign {
        /// Campaign price.
        price: i64,
        /// Campaign interval.
        interval: TimePeriod,
        /// End (UTC).
        end: chrono::DateTime<chrono::Utc>,
    },
}

/// `POST /recurring/v3/agreements` body.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DraftAgreement {
    /// Pricing.
    pub pricing: PricingRequest,
    /// Charge interval (omit for pay-per-use agreements).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<TimePeriod>,
    /// The merchant's page where the user manages the agreement (https).
    pub merchant_agreement_url: String,
    /// Where the user returns after the app.
    pub merchant_redirect_url: String,
    /// Agreement title in the app, ≤ 45 characters.
    pub product_name: String,
    /// ≤ 100 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_description: Option<String>,
    /// Prefills the landing page (MSISDN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// Charged when the user accepts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_charge: Option<InitialCharge>,
    /// Campaign.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign: Option<Campaign>,
    /// Userinfo scopes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Return an app deep link instead of a landing page URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_app: Option<bool>,
    /// Skip the landing page (allow-listed merchants only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_landing_page: Option<bool>,
    /// Your id, 1–64 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// `NO`, `DK` or `FI`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
}

impl DraftAgreement {
    /// A draft with the required fields; set the optional ones afterwards.
    pub fn new(
        pricing: PricingRequest,
        interval: Option<TimePeriod>,
        product_name: impl Into<String>,
        merchant_agreement_url: impl Into<String>,
        merchant_redirect_url: impl Into<String>,
    ) -> Self {
        Self {
            pricing,
            interval,
            merchant_agreement_url: merchant_agreement_url.into(),
            merchant_redirect_url: merchant_redirect_url.into(),
            product_name: product_name.into(),
            product_description: None,
            phone_number: None,
            initial_charge: None,
            campaign: None,
            scope: None,
            is_app: None,
            skip_landing_page: None,
            external_id: None,
            country_code: None,
        }
    }
}

/// `201` response of draft.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DraftAgreementResponse {
    /// The new agreement's id (`agr_…`).
    pub agreement_id: String,
    /// UUID form of the id.
    #[serde(default)]
    pub uuid: Option<String>,
    /// Where to send the user, unchanged.
    #[serde(default)]
    pub vipps_confirmation_url: Option<String>,
    /// The initial charge's id, if one was requested.
    #[serde(default)]
    pub charge_id: Option<String>,
}

/// Pricing of an agreement as returned (fields present depend on `kind`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Pricing {
    /// Pricing model.
    #[serde(rename = "type", default = "legacy")]
    pub kind: PricingType,
    /// Currency.
    pub currency: Currency,
    /// Price (LEGACY).
    #[serde(default)]
    pub amount: Option<i64>,
    /// Suggested maximum (VARIABLE).
    #[serde(default)]
    pub suggested_max_amount: Option<i64>,
    /// Maximum chosen by the user (VARIABLE).
    #[serde(default)]
    pub max_amount: Option<i64>,
}

fn legacy() -> PricingType {
    PricingType::Legacy
}

/// Interval of an agreement as returned.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Interval {
    /// Unit.
    pub unit: IntervalUnit,
    /// Count.
    pub count: u32,
    /// Human text, e.g. `every 2 months`.
    #[serde(default)]
    pub text: Option<String>,
}

/// An agreement (`GET /recurring/v3/agreements/{id}`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Agreement {
    /// Id (`agr_…`).
    pub id: String,
    /// Status (older responses may omit it).
    #[serde(default = "active")]
    pub status: AgreementStatus,
    /// Created.
    #[serde(deserialize_with = "timestamp")]
    pub created: chrono::DateTime<chrono::FixedOffset>,
    /// Activated.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub start: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// Stopped.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub stop: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// Title.
    pub product_name: String,
    /// Description.
    #[serde(default)]
    pub product_description: Option<String>,
    /// Pricing.
    pub pricing: Pricing,
    /// Interval (absent for pay-per-use).
    #[serde(default)]
    pub interval: Option<Interval>,
    /// Campaign as returned (shape varies by campaign type).
    #[serde(default)]
    pub campaign: Option<serde_json::Value>,
    /// Management page.
    #[serde(default)]
    pub merchant_agreement_url: Option<String>,
    /// Return URL.
    #[serde(default)]
    pub merchant_redirect_url: Option<String>,
    /// Userinfo `sub` when scopes were requested.
    #[serde(default)]
    pub sub: Option<String>,
    /// Userinfo URL when scopes were requested.
    #[serde(default)]
    pub userinfo_url: Option<String>,
    /// Your id.
    #[serde(default)]
    pub external_id: Option<String>,
    /// UUID form of the id.
    #[serde(default)]
    pub uuid: Option<String>,
    /// `NO`, `DK` or `FI`.
    #[serde(default)]
    pub country_code: Option<String>,
}

fn active() -> AgreementStatus {
    AgreementStatus::Active
}

/// Price change of an agreement.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PricingUpdate {
    /// New price (LEGACY only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    /// New suggested maximum (VARIABLE only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggested_max_amount: Option<i64>,
}

impl PricingUpdate {
    /// A new LEGACY price.
    pub fn amount(amount: i64) -> Self {
        Self { amount: Some(amount), suggested_max_amount: None }
    }
}

/// `PATCH /recurring/v3/agreements/{id}` body for changes (stopping is [`Recurring::stop_agreement`],
/// because `{"status":"STOPPED"}` must be sent alone).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AgreementUpdate {
    /// New title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    /// New description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_description: Option<String>,
    /// New management page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merchant_agreement_url: Option<String>,
    /// New external id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// New pricing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pricing: Option<PricingUpdate>,
}

/// `POST /recurring/v3/agreements/{id}/charges` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CreateCharge {
    /// Amount in minor units (≥ 100), in the agreement's currency.
    pub amount: i64,
    /// Capture mode.
    pub transaction_type: TransactionType,
    /// `RECURRING` (default) or `UNSCHEDULED`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<ChargeType>,
    /// Shown in the app, 1–45 characters.
    pub description: String,
    /// Due date (required for RECURRING): at least tomorrow, at most 2 years ahead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due: Option<chrono::NaiveDate>,
    /// Days to keep retrying after `due`, 0–14 (required for RECURRING).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_days: Option<u8>,
    /// Becomes the charge id; `a-z A-Z 0-9 -`, ≤ 50 characters, unique per MSN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// Used in settlement reports, 1–64 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Retry behaviour.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processing_mode: Option<ProcessingMode>,
}

impl CreateCharge {
    /// A RECURRING charge due on `due`, retried for `retry_days`.
    pub fn recurring(
        amount: i64,
        description: impl Into<String>,
        due: chrono::NaiveDate,
        retry_days: u8,
        transaction_type: TransactionType,
    ) -> Self {
        Self {
            amount,
            transaction_type,
            kind: None,
            description: description.into(),
            due: Some(due),
            retry_days: Some(retry_days),
            order_id: None,
            external_id: None,
            processing_mode: None,
        }
    }
}

/// One item of an asynchronous batch of charges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct BatchCharge {
    /// Agreement to charge.
    #[serde(default)]
    pub agreement_id: Option<String>,
    /// Amount in minor units.
    pub amount: i64,
    /// Capture mode.
    pub transaction_type: TransactionType,
    /// Shown in the app.
    pub description: String,
    /// Due date.
    pub due: chrono::NaiveDate,
    /// Retry days, 0–14.
    pub retry_days: u8,
    /// Becomes the charge id (required in batches).
    pub order_id: String,
    /// Used in settlement reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

impl BatchCharge {
    /// A batch item for `agreement_id` with charge id `order_id`.
    pub fn new(agreement_id: impl Into<String>, order_id: impl Into<String>, charge: &CreateCharge) -> Self {
        Self {
            agreement_id: Some(agreement_id.into()),
            amount: charge.amount,
            transaction_type: charge.transaction_type.clone(),
            description: charge.description.clone(),
            due: charge.due.unwrap_or_else(|| chrono::Utc::now().date_naive()),
            retry_days: charge.retry_days.unwrap_or(0),
            order_id: order_id.into(),
            external_id: charge.external_id.clone(),
        }
    }
}

/// A rejected batch item and why.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct InvalidBatchCharge {
    /// The item as Vipps read it.
    pub charge_batch_item_dto: serde_json::Value,
    /// Validation messages.
    #[serde(default, deserialize_with = "null_as_default")]
    pub errors: Vec<String>,
}

/// Response of the asynchronous batch endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct BatchChargeResponse {
    /// Accepted charge ids (later failures arrive as `recurring.charge-creation-failed.v1`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub valid_charges: Vec<String>,
    /// Rejected items.
    #[serde(default, deserialize_with = "null_as_default")]
    pub invalid_charges: Vec<InvalidBatchCharge>,
}

/// Totals of a charge.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[non_exhaustive]
pub struct ChargeSummary {
    /// Captured so far.
    #[serde(default)]
    pub captured: i64,
    /// Refunded so far.
    #[serde(default)]
    pub refunded: i64,
    /// Cancelled.
    #[serde(default)]
    pub cancelled: i64,
}

/// One entry of a charge's history.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ChargeEvent {
    /// When.
    #[serde(deserialize_with = "timestamp")]
    pub occurred: chrono::DateTime<chrono::FixedOffset>,
    /// What.
    pub event: ChargeEventKind,
    /// Amount of this event.
    pub amount: i64,
    /// Idempotency key of the request that caused it.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Whether it succeeded.
    pub success: bool,
}

/// A charge (`GET .../charges/{chargeId}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Charge {
    /// Charge id (the `orderId` if one was given).
    pub id: String,
    /// The agreement.
    pub agreement_id: String,
    /// Amount.
    pub amount: i64,
    /// Currency.
    #[serde(default = "nok")]
    pub currency: Currency,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Due date (returned as a timestamp or a date).
    #[serde(deserialize_with = "date_or_timestamp")]
    pub due: chrono::NaiveDate,
    /// Retry days.
    #[serde(default)]
    pub retry_days: u32,
    /// Status.
    pub status: ChargeStatus,
    /// Kind.
    #[serde(rename = "type", default = "recurring_type")]
    pub kind: ChargeType,
    /// Capture mode.
    pub transaction_type: TransactionType,
    /// Set once charged.
    #[serde(default)]
    pub transaction_id: Option<String>,
    /// Your id of the charge.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Your id of the agreement.
    #[serde(default)]
    pub external_agreement_id: Option<String>,
    /// Why it failed.
    #[serde(default)]
    pub failure_reason: Option<FailureReason>,
    /// Free-text failure description.
    #[serde(default)]
    pub failure_description: Option<String>,
    /// Totals.
    #[serde(default, deserialize_with = "null_as_default")]
    pub summary: ChargeSummary,
    /// History.
    #[serde(default, deserialize_with = "null_as_default")]
    pub history: Vec<ChargeEvent>,
}

fn nok() -> Currency {
    Currency::Nok
}

fn recurring_type() -> ChargeType {
    ChargeType::Recurring
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChargeReference {
    charge_id: String,
}

/// Body of capture and refund of a charge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ChargeAmount {
    /// Amount in minor units.
    pub amount: i64,
    /// Shown in the app (required by the 2023 specification; deprecated for capture since).
    pub description: String,
}

impl ChargeAmount {
    /// An amount with a description.
    pub fn new(amount: i64, description: impl Into<String>) -> Self {
        Self { amount, description: description.into() }
    }
}

/// One page of a list; pass `continuation_token` back to get the next page.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Page<T> {
    /// Items of this page.
    pub items: Vec<T>,
    /// Token for the next page (`Continuation-Token`), absent on the last page.
    pub continuation_token: Option<String>,
}

/// Filter and paging for [`Recurring::list_agreements`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ListAgreements {
    /// Only agreements in this status.
    pub status: Option<AgreementStatus>,
    /// Only agreements created after this Unix time (seconds).
    pub created_after: Option<i64>,
    /// Page number (newer API).
    pub page_number: Option<u32>,
    /// Page size (newer API).
    pub page_size: Option<u32>,
    /// `Continuation-Token` from the previous page.
    pub continuation_token: Option<String>,
}

impl ListAgreements {
    /// All agreements in `status`.
    pub fn status(status: AgreementStatus) -> Self {
        Self { status: Some(status), ..Self::default() }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ForceAccept<'a> {
    pub(crate) phone_number: &'a str,
}

/// Recurring operations, from [`Client::recurring`].
#[derive(Debug, Clone)]
pub struct Recurring<'a> {
    client: &'a Client,
    options: CallOptions,
}

const AGREEMENTS: [&str; 3] = ["recurring", "v3", "agreements"];

impl<'a> Recurring<'a> {
    pub(crate) fn new(client: &'a Client, options: CallOptions) -> Self {
        Self { client, options }
    }

    /// The same operations with other per-call options.
    #[must_use]
    pub fn with_options(mut self, options: CallOptions) -> Self {
        self.options = options;
        self
    }

    async fn send(&self, call: ApiCall<'_>) -> Result<RawResponse, Error> {
        self.client.inner.call(call, &self.options).await
    }

    /// Drafts an agreement; send the user to `vipps_confirmation_url`.
    pub async fn create_agreement(
        &self,
        draft: &DraftAgreement,
        key: &RecurringIdempotencyKey,
    ) -> Result<DraftAgreementResponse, Error> {
        self.send(ApiCall::new(Method::POST, &AGREEMENTS).json(draft)?.key(key.as_str())).await?.json()
    }

    /// Reads an agreement.
    pub async fn get_agreement(&self, agreement_id: &str) -> Result<Agreement, Error> {
        let path = [AGREEMENTS[0], AGREEMENTS[1], AGREEMENTS[2], agreement_id];
        self.send(ApiCall::new(Method::GET, &path)).await?.json()
    }

    /// Lists agreements, one page at a time.
    pub async fn list_agreements(&self, filter: &ListAgreements) -> Result<Page<Agreement>, Error> {
        let status = filter.status.as_ref().map(|s| s.as_str().to_owned());
        let created_after = filter.created_after.map(|v| v.to_string());
        let page_number = filter.page_number.map(|v| v.to_string());
        let page_size = filter.page_size.map(|v| v.to_string());
        let mut query: Vec<(&str, &str)> = Vec::new();
        let params = [
            ("status", &status),
            ("createdAfter", &created_after),
            ("pageNumber", &page_number),
            ("pageSize", &page_size),
        ];
        for (name, value) in params {
            if let Some(value) = value {
                query.push((name, value.as_str()));
            }
        }
        let token_header;
        let mut call = ApiCall::new(Method::GET, &AGREEMENTS).query(&query);
        if let Some(token) = &filter.continuation_token {
            token_header = [("continuation-token", token.as_str())];
            call.headers = &token_header;
        }
        page(self.send(call).await?)
    }

    /// Changes an agreement (an empty update is refused locally).
    pub async fn update_agreement(
        &self,
        agreement_id: &str,
        update: &AgreementUpdate,
        key: &RecurringIdempotencyKey,
    ) -> Result<Completion, Error> {
        if *update == AgreementUpdate::default() {
            return Err(Error::InvalidInput("agreement update changes nothing".into()));
        }
        let path = [AGREEMENTS[0], AGREEMENTS[1], AGREEMENTS[2], agreement_id];
        self.send(ApiCall::new(Method::PATCH, &path).json(update)?.key(key.as_str())).await.map(completion)
    }

    /// Stops an agreement (final). Pending, due and reserved charges are cancelled.
    pub async fn stop_agreement(&self, agreement_id: &str, key: &RecurringIdempotencyKey) -> Result<Completion, Error> {
        let path = [AGREEMENTS[0], AGREEMENTS[1], AGREEMENTS[2], agreement_id];
        let body = serde_json::json!({ "status": "STOPPED" });
        self.send(ApiCall::new(Method::PATCH, &path).json(&body)?.key(key.as_str())).await.map(completion)
    }

    /// Test environment only: accepts a `PENDING` agreement as the test user `phone_number`.
    pub async fn test_accept(
        &self,
        agreement_id: &str,
        phone_number: &str,
        key: &RecurringIdempotencyKey,
    ) -> Result<(), Error> {
        let path = [AGREEMENTS[0], AGREEMENTS[1], AGREEMENTS[2], agreement_id, "accept"];
        let body = ForceAccept { phone_number };
        self.send(ApiCall::new(Method::PATCH, &path).json(&body)?.key(key.as_str())).await.map(|_| ())
    }

    /// Creates a charge on an `ACTIVE` agreement; returns the charge id.
    pub async fn create_charge(
        &self,
        agreement_id: &str,
        charge: &CreateCharge,
        key: &RecurringIdempotencyKey,
    ) -> Result<String, Error> {
        let path = [AGREEMENTS[0], AGREEMENTS[1], AGREEMENTS[2], agreement_id, "charges"];
        let response = self.send(ApiCall::new(Method::POST, &path).json(charge)?.key(key.as_str())).await?;
        Ok(response.json::<ChargeReference>()?.charge_id)
    }

    /// Creates up to 2000 charges asynchronously (`POST /recurring/v3/agreements/charges`).
    pub async fn create_charges_batch(
        &self,
        charges: &[BatchCharge],
        key: &RecurringIdempotencyKey,
    ) -> Result<BatchChargeResponse, Error> {
        if charges.is_empty() || charges.len() > 2000 {
            return Err(Error::InvalidInput("a batch holds 1 to 2000 charges".into()));
        }
        let path = [AGREEMENTS[0], AGREEMENTS[1], AGREEMENTS[2], "charges"];
        let response = self.send(ApiCall::new(Method::POST, &path).json(&charges)?.key(key.as_str())).await?;
        if response.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(BatchChargeResponse::default());
        }
        response.json()
    }

    /// Reads a charge.
    pub async fn get_charge(&self, agreement_id: &str, charge_id: &str) -> Result<Charge, Error> {
        let path = [AGREEMENTS[0], AGREEMENTS[1], AGREEMENTS[2], agreement_id, "charges", charge_id];
        self.send(ApiCall::new(Method::GET, &path)).await?.json()
    }

    /// Reads a charge by its id alone (`GET /recurring/v3/charges/{chargeId}`). Vipps intends this
    /// for support cases; prefer [`Self::get_charge`] in automated flows.
    pub async fn get_charge_by_id(&self, charge_id: &str) -> Result<Charge, Error> {
        let path = ["recurring", "v3", "charges", charge_id];
        self.send(ApiCall::new(Method::GET, &path)).await?.json()
    }

    /// Lists an agreement's charges, optionally only those in `status`, one page at a time.
    pub async fn list_charges(
        &self,
        agreement_id: &str,
        status: Option<&ChargeStatus>,
        continuation_token: Option<&str>,
    ) -> Result<Page<Charge>, Error> {
        let path = [AGREEMENTS[0], AGREEMENTS[1], AGREEMENTS[2], agreement_id, "charges"];
        let query_buf;
        let token_header;
        let mut call = ApiCall::new(Method::GET, &path);
        if let Some(status) = status {
            query_buf = [("status", status.as_str())];
            call = call.query(&query_buf);
        }
        if let Some(token) = continuation_token {
            token_header = [("continuation-token", token)];
            call.headers = &token_header;
        }
        page(self.send(call).await?)
    }

    /// Cancels a charge (`PENDING`, `DUE`, `RESERVED`; or the uncaptured rest of a partly captured one).
    pub async fn cancel_charge(
        &self,
        agreement_id: &str,
        charge_id: &str,
        key: &RecurringIdempotencyKey,
    ) -> Result<Completion, Error> {
        let path = [AGREEMENTS[0], AGREEMENTS[1], AGREEMENTS[2], agreement_id, "charges", charge_id];
        self.send(ApiCall::new(Method::DELETE, &path).key(key.as_str())).await.map(completion)
    }

    /// Captures (part of) a `RESERVED` charge.
    pub async fn capture_charge(
        &self,
        agreement_id: &str,
        charge_id: &str,
        amount: &ChargeAmount,
        key: &RecurringIdempotencyKey,
    ) -> Result<Completion, Error> {
        self.charge_action(agreement_id, charge_id, "capture", amount, key).await
    }

    /// Refunds (part of) a charged charge.
    pub async fn refund_charge(
        &self,
        agreement_id: &str,
        charge_id: &str,
        amount: &ChargeAmount,
        key: &RecurringIdempotencyKey,
    ) -> Result<Completion, Error> {
        self.charge_action(agreement_id, charge_id, "refund", amount, key).await
    }

    async fn charge_action(
        &self,
        agreement_id: &str,
        charge_id: &str,
        action: &str,
        amount: &ChargeAmount,
        key: &RecurringIdempotencyKey,
    ) -> Result<Completion, Error> {
        let path = [AGREEMENTS[0], AGREEMENTS[1], AGREEMENTS[2], agreement_id, "charges", charge_id, action];
        self.send(ApiCall::new(Method::POST, &path).json(amount)?.key(key.as_str())).await.map(completion)
    }
}

/// How Vipps completed a change: at once (`204`), or accepted for asynchronous processing (`202`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Done (`204`).
    Done,
    /// Accepted, processed later (`202`): re-read the agreement or charge (or wait for the webhook)
    /// before relying on the result.
    Accepted,
}

fn completion(response: RawResponse) -> Completion {
    if response.status == 202 {
        Completion::Accepted
    } else {
        Completion::Done
    }
}

fn page<T: serde::de::DeserializeOwned>(response: RawResponse) -> Result<Page<T>, Error> {
    let continuation_token = response.header("continuation-token").filter(|t| !t.is_empty()).map(str::to_owned);
    Ok(Page { items: response.json()?, continuation_token })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn campaigns_serialise_with_their_type_tag() {
        let c = Campaign::PeriodCampaign { price: 100, period: TimePeriod::new(IntervalUnit::Week, 2) };
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::json!({"type":"PERIOD_CAMPAIGN","price":100,"period":{"unit":"WEEK","count":2}})
        );
    }

    #[test]
    fn a_recurring_charge_sends_the_due_date_as_a_plain_date() {
        let due = chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
        let mut charge = CreateCharge::recurring(49900, "October", due, 5, TransactionType::DirectCapture);
        charge.order_id = Some("acme-sub-1234-2026-10".into());
        assert_eq!(
            serde_json::to_value(&charge).unwrap(),
            serde_json::json!({"amount":49900,"transactionType":"DIRECT_CAPTURE","description":"October",
                "due":"2026-10-01","retryDays":5,"orderId":"acme-sub-1234-2026-10"})
        );
    }
}
