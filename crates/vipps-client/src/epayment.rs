//! ePayment API v1: one-time payments (`/epayment/v1`).
//!
//! A payment is created (`CREATED`), then the user approves it (`AUTHORIZED`), aborts it
//! (`ABORTED`), lets it expire (`EXPIRED`) or the merchant cancels it first (`TERMINATED`).
//! `AUTHORIZED` is final: capture, refund and cancel only move the [`Aggregate`] amounts.

use std::collections::BTreeMap;

use http::Method;
use serde::{Deserialize, Serialize};

use crate::client::{CallOptions, Client};
use crate::error::{Error, ErrorKind};
use crate::idempotency::IdempotencyKey;
use crate::transport::ApiCall;
use crate::wire::{null_as_default, opt_timestamp, timestamp, wire_enum, Amount};

/// A payment reference: unique per MSN, 8–64 characters of `a-z A-Z 0-9 -`.
///
/// The 2023 specification allowed at most 50 characters; keep new references at 50 or fewer to
/// be valid under both. Case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Reference(String);

impl TryFrom<String> for Reference {
    type Error = Error;

    fn try_from(value: String) -> Result<Self, Error> {
        Self::parse(&value)
    }
}

impl From<Reference> for String {
    fn from(reference: Reference) -> String {
        reference.0
    }
}

impl Reference {
    /// Accepts 8–64 characters of `a-z A-Z 0-9 -`.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let ok = (8..=64).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(Error::InvalidInput(format!(
                "payment reference must be 8-64 characters of a-z, A-Z, 0-9 and -, got {value:?}"
            )))
        }
    }

    /// The reference as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

wire_enum! {
    /// State of a payment. `Authorized` is final; the others after `Created` are terminal failures.
    pub enum State {
        /// Created; waiting for the user.
        Created => "CREATED",
        /// The user aborted.
        Aborted => "ABORTED",
        /// Nobody acted in time.
        Expired => "EXPIRED",
        /// The user approved; money is reserved (see the aggregate for what happened since).
        Authorized => "AUTHORIZED",
        /// The merchant cancelled before authorization.
        Terminated => "TERMINATED",
    }
}

wire_enum! {
    /// Name of an entry in the payment's event log (and of an ePayment webhook).
    pub enum PaymentEventName {
        /// Payment created.
        Created => "CREATED",
        /// User aborted.
        Aborted => "ABORTED",
        /// Payment expired.
        Expired => "EXPIRED",
        /// (Remaining) amount cancelled.
        Cancelled => "CANCELLED",
        /// An amount was captured.
        Captured => "CAPTURED",
        /// An amount was refunded.
        Refunded => "REFUNDED",
        /// User approved.
        Authorized => "AUTHORIZED",
        /// Merchant cancelled before authorization.
        Terminated => "TERMINATED",
    }
}

wire_enum! {
    /// How the user is sent to the app.
    pub enum UserFlow {
        /// Redirect in a browser to the landing page (needs `returnUrl`).
        WebRedirect => "WEB_REDIRECT",
        /// Redirect from a native app to the Vipps app.
        NativeRedirect => "NATIVE_REDIRECT",
        /// Push notification to a known phone number (needs `customer`).
        PushMessage => "PUSH_MESSAGE",
        /// Show a QR code.
        Qr => "QR",
    }
}

wire_enum! {
    /// Payment method.
    pub enum PaymentMethodType {
        /// The Vipps MobilePay app.
        Wallet => "WALLET",
        /// Free-standing card form (production only).
        Card => "CARD",
        /// PSP card passthrough.
        CardPassthrough => "CARD_PASSTHROUGH",
    }
}

wire_enum! {
    /// Whether the customer is physically present.
    pub enum CustomerInteraction {
        /// Online (the default).
        CustomerNotPresent => "CUSTOMER_NOT_PRESENT",
        /// In a physical shop.
        CustomerPresent => "CUSTOMER_PRESENT",
    }
}

/// Who pays: exactly one of a phone number, a personal QR code or a customer token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Customer {
    /// MSISDN, digits only with country code: `4791234567`.
    PhoneNumber(String),
    /// The full content of the user's personal QR code.
    PersonalQr(String),
    /// A customer token.
    CustomerToken(String),
}

/// Payment method of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentMethod {
    /// The method.
    #[serde(rename = "type")]
    pub kind: PaymentMethodType,
}

/// Requested user data (space-separated scopes: `name address email phoneNumber birthDate nin`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileRequest {
    /// Space-separated scopes.
    pub scope: String,
}

/// QR output format, only with [`UserFlow::Qr`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QrFormat {
    /// `TEXT/TARGETURL`, `IMAGE/SVG+XML` (default) or `IMAGE/PNG`.
    pub format: String,
    /// PNG size in pixels (100–2000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
}

/// `POST /epayment/v1/payments` body.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CreatePaymentRequest {
    /// Amount to pay (NOK: at least 100 øre).
    pub amount: Amount,
    /// Payment method (usually `WALLET`).
    pub payment_method: PaymentMethod,
    /// Unique reference of this payment for the MSN.
    pub reference: Reference,
    /// How the user reaches the app.
    pub user_flow: UserFlow,
    /// Where the user returns after the app (required for `WEB_REDIRECT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_url: Option<String>,
    /// The payer (required for `PUSH_MESSAGE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<Customer>,
    /// Shown to the user, 3–100 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_description: Option<String>,
    /// Customer present or not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_interaction: Option<CustomerInteraction>,
    /// Long-living payment expiry (`PUSH_MESSAGE`/`QR` only, needs a receipt).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// QR format (`QR` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_format: Option<QrFormat>,
    /// Requested user data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<ProfileRequest>,
    /// Up to 5 key/value pairs echoed back on GET.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Order Management receipt (`{orderLines, bottomLine}`), passed through as JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<serde_json::Value>,
    /// Link to the merchant's receipt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt_url: Option<String>,
    /// Minimum age of the user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum_user_age: Option<u32>,
    /// Industry data (e.g. `{"airlineData": {...}}`), passed through as JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub industry_data: Option<serde_json::Value>,
}

impl CreatePaymentRequest {
    /// A `WALLET` payment in the given flow; set the flow's required fields afterwards or use
    /// [`Self::web_redirect`] / [`Self::push_message`].
    pub fn new(amount: Amount, reference: Reference, user_flow: UserFlow) -> Self {
        Self {
            amount,
            payment_method: PaymentMethod { kind: PaymentMethodType::Wallet },
            reference,
            user_flow,
            return_url: None,
            customer: None,
            payment_description: None,
            customer_interaction: None,
            expires_at: None,
            qr_format: None,
            profile: None,
            metadata: None,
            receipt: None,
            receipt_url: None,
            minimum_user_age: None,
            industry_data: None,
        }
    }

    /// A browser payment: the user is redirected to the landing page and back to `return_url`.
    pub fn web_redirect(amount: Amount, reference: Reference, return_url: impl Into<String>) -> Self {
        let mut request = Self::new(amount, reference, UserFlow::WebRedirect);
        request.return_url = Some(return_url.into());
        request
    }

    /// A push notification to `phone_number` (MSISDN digits, e.g. `4791234567`).
    pub fn push_message(amount: Amount, reference: Reference, phone_number: impl Into<String>) -> Self {
        let mut request = Self::new(amount, reference, UserFlow::PushMessage);
        request.customer = Some(Customer::PhoneNumber(phone_number.into()));
        request
    }

    /// Sets the description shown to the user.
    #[must_use]
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.payment_description = Some(text.into());
        self
    }
}

/// `201` response of create.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CreatePaymentResponse {
    /// Where to send the user, unchanged (absent for `PUSH_MESSAGE`).
    #[serde(default)]
    pub redirect_url: Option<String>,
    /// The payment's reference.
    pub reference: String,
}

/// Totals of what happened to an authorized payment.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Aggregate {
    /// Reserved by the user.
    pub authorized_amount: Amount,
    /// Released by cancel.
    pub cancelled_amount: Amount,
    /// Captured so far.
    pub captured_amount: Amount,
    /// Refunded so far.
    pub refunded_amount: Amount,
}

/// Payment method of a payment as returned.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PaymentMethodResponse {
    /// The method.
    #[serde(rename = "type")]
    pub kind: PaymentMethodType,
    /// First six digits of the card, when known.
    #[serde(default)]
    pub card_bin: Option<String>,
}

/// Shared user data reference.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[non_exhaustive]
pub struct ProfileResponse {
    /// Userinfo `sub`, once authorized with a profile scope.
    #[serde(default)]
    pub sub: Option<String>,
}

/// `GET /epayment/v1/payments/{reference}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Payment {
    /// Totals.
    pub aggregate: Aggregate,
    /// Requested amount.
    pub amount: Amount,
    /// State.
    pub state: State,
    /// Method used.
    pub payment_method: PaymentMethodResponse,
    /// Shared user data reference.
    #[serde(default, deserialize_with = "null_as_default")]
    pub profile: ProfileResponse,
    /// The CREATED event's pspReference.
    pub psp_reference: String,
    /// The reference.
    pub reference: String,
    /// Landing page URL.
    #[serde(default)]
    pub redirect_url: Option<String>,
    /// Metadata as sent on create.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Last moment a capture is guaranteed (newer field).
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub capture_guaranteed_until: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// Express/profile-sharing user details, passed through.
    #[serde(default)]
    pub user_details: Option<serde_json::Value>,
    /// Express shipping details, passed through.
    #[serde(default)]
    pub shipping_details: Option<serde_json::Value>,
}

/// One entry of the event log (also the body of an ePayment webhook, minus `msn`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PaymentEvent {
    /// The payment's reference.
    pub reference: String,
    /// This operation's own pspReference.
    pub psp_reference: String,
    /// What happened.
    pub name: PaymentEventName,
    /// Amount of this operation.
    pub amount: Amount,
    /// When.
    #[serde(deserialize_with = "timestamp")]
    pub timestamp: chrono::DateTime<chrono::FixedOffset>,
    /// Idempotency key of the request that caused it, if any.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// False for a logged failed attempt.
    pub success: bool,
}

/// Response of capture, refund and cancel.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ModificationResponse {
    /// Requested amount of the payment.
    pub amount: Amount,
    /// State (stays `AUTHORIZED` after capture/refund/cancel of an authorized payment).
    pub state: State,
    /// Totals after the operation.
    pub aggregate: Aggregate,
    /// pspReference of the payment.
    pub psp_reference: String,
    /// The reference.
    pub reference: String,
}

/// Test-only approval: either as a test customer or with the `token` of the redirect URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestApproval {
    /// Approve as this test customer.
    Customer(Customer),
    /// Approve with the `token` query value of the payment's `redirectUrl`.
    Token(String),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ModificationRequest<'a> {
    pub(crate) modification_amount: &'a Amount,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CancelRequest {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    cancel_transaction_only: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum ForceApproveBody<'a> {
    Customer(&'a Customer),
    Token(&'a str),
}

/// ePayment operations, from [`Client::epayment`].
#[derive(Debug, Clone)]
pub struct Epayment<'a> {
    client: &'a Client,
    options: CallOptions,
}

const PAYMENTS: [&str; 3] = ["epayment", "v1", "payments"];

impl<'a> Epayment<'a> {
    pub(crate) fn new(client: &'a Client, options: CallOptions) -> Self {
        Self { client, options }
    }

    /// The same operations with other per-call options (e.g. a shorter timeout).
    #[must_use]
    pub fn with_options(mut self, options: CallOptions) -> Self {
        self.options = options;
        self
    }

    /// Creates a payment. A reused reference fails with [`ErrorKind::ReferenceAlreadyExists`];
    /// the same key with a different body with [`ErrorKind::IdempotencyConflict`].
    pub async fn create(
        &self,
        request: &CreatePaymentRequest,
        key: &IdempotencyKey,
    ) -> Result<CreatePaymentResponse, Error> {
        let call = ApiCall::new(Method::POST, &PAYMENTS).json(request)?.key(key.as_str());
        self.client.inner.call(call, &self.options).await?.json()
    }

    /// Reads a payment.
    pub async fn get(&self, reference: &Reference) -> Result<Payment, Error> {
        let path = [PAYMENTS[0], PAYMENTS[1], PAYMENTS[2], reference.as_str()];
        self.client.inner.call(ApiCall::new(Method::GET, &path), &self.options).await?.json()
    }

    /// Reads the payment's event log (chronological).
    pub async fn events(&self, reference: &Reference) -> Result<Vec<PaymentEvent>, Error> {
        let path = [PAYMENTS[0], PAYMENTS[1], PAYMENTS[2], reference.as_str(), "events"];
        self.client.inner.call(ApiCall::new(Method::GET, &path), &self.options).await?.json()
    }

    /// Captures `amount` (partial captures allowed, repeatable with new keys).
    pub async fn capture(
        &self,
        reference: &Reference,
        amount: &Amount,
        key: &IdempotencyKey,
    ) -> Result<ModificationResponse, Error> {
        self.modify(reference, "capture", &ModificationRequest { modification_amount: amount }, key).await
    }

    /// Refunds `amount` of what was captured.
    pub async fn refund(
        &self,
        reference: &Reference,
        amount: &Amount,
        key: &IdempotencyKey,
    ) -> Result<ModificationResponse, Error> {
        self.modify(reference, "refund", &ModificationRequest { modification_amount: amount }, key)
            .await
            .map_err(|err| relabel_4150(err, ErrorKind::IdempotencyConflict))
    }

    /// Cancels: before authorization the payment becomes `TERMINATED`; after, the uncaptured
    /// remainder is released. With `transaction_only`, cancels only if not yet authorized.
    pub async fn cancel(
        &self,
        reference: &Reference,
        transaction_only: bool,
        key: &IdempotencyKey,
    ) -> Result<ModificationResponse, Error> {
        self.modify(reference, "cancel", &CancelRequest { cancel_transaction_only: transaction_only }, key).await
    }

    /// Test environment only: approves a `CREATED` payment as a test user.
    pub async fn test_approve(&self, reference: &Reference, approval: &TestApproval) -> Result<(), Error> {
        let body = match approval {
            TestApproval::Customer(customer) => ForceApproveBody::Customer(customer),
            TestApproval::Token(token) => ForceApproveBody::Token(token),
        };
        let path = ["epayment", "v1", "test", "payments", reference.as_str(), "approve"];
        let call = ApiCall::new(Method::POST, &path).json(&body)?;
        self.client.inner.call(call, &self.options).await.map(|_| ())
    }

    async fn modify<B: Serialize>(
        &self,
        reference: &Reference,
        action: &str,
        body: &B,
        key: &IdempotencyKey,
    ) -> Result<ModificationResponse, Error> {
        let path = [PAYMENTS[0], PAYMENTS[1], PAYMENTS[2], reference.as_str(), action];
        let call = ApiCall::new(Method::POST, &path).json(body)?.key(key.as_str());
        self.client.inner.call(call, &self.options).await?.json()
    }
}

/// Code 4150 means "reference exists" on create but "refund idempotency conflict" on refund.
fn relabel_4150(mut err: Error, kind: ErrorKind) -> Error {
    if let Error::Api(problem) = &mut err {
        if problem.code.as_deref() == Some("4150") {
            problem.set_kind(kind);
        }
    }
    err
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn references_follow_the_documented_pattern() {
        assert!(Reference::parse("acme-shop-123-order123abc").is_ok());
        assert!(Reference::parse("1234567").is_err());
        assert!(Reference::parse(&"a".repeat(64)).is_ok());
        assert!(Reference::parse(&"a".repeat(65)).is_err());
        assert!(Reference::parse("has_underscore").is_err());
        assert!(Reference::parse("../../admin").is_err());
        assert!(serde_json::from_str::<Reference>(r#""short""#).is_err());
        let r: Reference = serde_json::from_str(r#""acme-shop-123""#).unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), r#""acme-shop-123""#);
    }

    #[test]
    fn customer_serialises_as_an_object_with_one_field() {
        let c = Customer::PhoneNumber("4791234567".into());
        assert_eq!(serde_json::to_string(&c).unwrap(), r#"{"phoneNumber":"4791234567"}"#);
        let body = ForceApproveBody::Token("abc");
        assert_eq!(serde_json::to_string(&body).unwrap(), r#"{"token":"abc"}"#);
    }

    #[test]
    fn a_web_redirect_request_has_the_documented_shape() {
        let req = CreatePaymentRequest::web_redirect(
            Amount::nok(49900),
            Reference::parse("acme-shop-123-order123abc").unwrap(),
            "https://example.com/redirect?reference=acme-shop-123-order123abc",
        )
        .description("One pair of socks");
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "amount": { "currency": "NOK", "value": 49900 },
                "paymentMethod": { "type": "WALLET" },
                "reference": "acme-shop-123-order123abc",
                "returnUrl": "https://example.com/redirect?reference=acme-shop-123-order123abc",
                "userFlow": "WEB_REDIRECT",
                "paymentDescription": "One pair of socks"
            })
        );
    }

    #[test]
    fn cancel_without_transaction_only_sends_an_empty_object() {
        let json = serde_json::to_string(&CancelRequest { cancel_transaction_only: false }).unwrap();
        assert_eq!(json, "{}");
        let json = serde_json::to_string(&CancelRequest { cancel_transaction_only: true }).unwrap();
        assert_eq!(json, r#"{"cancelTransactionOnly":true}"#);
    }
}
