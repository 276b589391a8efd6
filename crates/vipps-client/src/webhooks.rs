//! Webhooks API v1: registrations (`/webhooks/v1/webhooks`), signature verification of incoming
//! deliveries, and typed event bodies.
//!
//! ```
//! use vipps_client::webhooks::{SignedRequest, Verifier};
//! use vipps_client::Secret;
//!
//! # fn handle(headers: &http::HeaderMap, body: &[u8]) -> Result<(), vipps_client::webhooks::VerifyError> {
//! let verifier = Verifier::new(Secret::new("secret returned by register"));
//! // Path and query of the *registered* URL, and its host (with a non-default port).
//! let request = SignedRequest::new("/vipps/webhooks?shop=1", "hub.example.com", headers, body);
//! verifier.verify(&request)?; // only now parse the body
//! # Ok(()) }
//! ```

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::{HeaderMap, Method};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::client::{CallOptions, Client};
use crate::epayment::PaymentEventName;
use crate::error::Error;
use crate::idempotency::IdempotencyKey;
use crate::recurring::{ChargeType, FailureReason};
use crate::secret::Secret;
use crate::transport::ApiCall;
use crate::wire::{null_as_default, opt_timestamp, timestamp, wire_enum, Amount, Currency};

wire_enum! {
    /// A webhook event type.
    pub enum EventType {
        /// ePayment created.
        PaymentCreated => "epayments.payment.created.v1",
        /// ePayment aborted by the user.
        PaymentAborted => "epayments.payment.aborted.v1",
        /// ePayment expired.
        PaymentExpired => "epayments.payment.expired.v1",
        /// ePayment (remainder) cancelled.
        PaymentCancelled => "epayments.payment.cancelled.v1",
        /// ePayment captured.
        PaymentCaptured => "epayments.payment.captured.v1",
        /// ePayment refunded.
        PaymentRefunded => "epayments.payment.refunded.v1",
        /// ePayment authorized.
        PaymentAuthorized => "epayments.payment.authorized.v1",
        /// ePayment terminated by the merchant.
        PaymentTerminated => "epayments.payment.terminated.v1",
        /// Agreement accepted.
        AgreementActivated => "recurring.agreement-activated.v1",
        /// Agreement rejected by the user.
        AgreementRejected => "recurring.agreement-rejected.v1",
        /// Agreement stopped.
        AgreementStopped => "recurring.agreement-stopped.v1",
        /// Agreement expired.
        AgreementExpired => "recurring.agreement-expired.v1",
        /// Charge reserved.
        ChargeReserved => "recurring.charge-reserved.v1",
        /// Charge captured.
        ChargeCaptured => "recurring.charge-captured.v1",
        /// Charge cancelled (Vipps spells it with one "l").
        ChargeCanceled => "recurring.charge-canceled.v1",
        /// Charge refunded.
        ChargeRefunded => "recurring.charge-refunded.v1",
        /// Charge failed.
        ChargeFailed => "recurring.charge-failed.v1",
        /// Asynchronous charge creation failed.
        ChargeCreationFailed => "recurring.charge-creation-failed.v1",
        /// QR check-in.
        UserCheckedIn => "user.checked-in.v1",
    }
}

impl EventType {
    /// All ePayment event types.
    pub const EPAYMENT: [EventType; 8] = [
        EventType::PaymentCreated,
        EventType::PaymentAborted,
        EventType::PaymentExpired,
        EventType::PaymentCancelled,
        EventType::PaymentCaptured,
        EventType::PaymentRefunded,
        EventType::PaymentAuthorized,
        EventType::PaymentTerminated,
    ];

    /// All Recurring event types.
    pub const RECURRING: [EventType; 10] = [
        EventType::AgreementActivated,
        EventType::AgreementRejected,
        EventType::AgreementStopped,
        EventType::AgreementExpired,
        EventType::ChargeReserved,
        EventType::ChargeCaptured,
        EventType::ChargeCanceled,
        EventType::ChargeRefunded,
        EventType::ChargeFailed,
        EventType::ChargeCreationFailed,
    ];
}

/// A new registration. The secret is returned only once: store it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Registration {
    /// Registration id (UUID).
    pub id: String,
    /// Signing secret of the deliveries.
    #[serde(deserialize_with = "secret")]
    pub secret: Secret,
}

fn secret<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
    String::deserialize(deserializer).map(Secret::from)
}

/// A registered webhook.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Webhook {
    /// Registration id.
    pub id: String,
    /// Delivery URL.
    pub url: String,
    /// Subscribed event types.
    #[serde(default, deserialize_with = "null_as_default")]
    pub events: Vec<EventType>,
}

#[derive(Deserialize)]
struct WebhookList {
    #[serde(default, deserialize_with = "null_as_default")]
    webhooks: Vec<Webhook>,
}

#[derive(Serialize)]
pub(crate) struct RegisterRequest<'a> {
    pub(crate) url: &'a str,
    pub(crate) events: &'a [EventType],
}

/// Webhook registration operations, from [`Client::webhooks`].
#[derive(Debug, Clone)]
pub struct Webhooks<'a> {
    client: &'a Client,
    options: CallOptions,
}

const WEBHOOKS: [&str; 3] = ["webhooks", "v1", "webhooks"];

impl<'a> Webhooks<'a> {
    pub(crate) fn new(client: &'a Client, options: CallOptions) -> Self {
        Self { client, options }
    }

    /// The same operations with other per-call options.
    #[must_use]
    pub fn with_options(mut self, options: CallOptions) -> Self {
        self.options = options;
        self
    }

    /// Registers `url` (https, public) for `events`.
    ///
    /// The Webhooks API documents no idempotency: the key is sent, but the client retries only
    /// when the request surely was not processed (connection refused, 429), so a timeout can
    /// leave a registration behind; [`Self::list`] shows it.
    pub async fn register(&self, url: &str, events: &[EventType], key: &IdempotencyKey) -> Result<Registration, Error> {
        if events.is_empty() {
            return Err(Error::InvalidInput("register at least one event type".into()));
        }
        let mut call = ApiCall::new(Method::POST, &WEBHOOKS).json(&RegisterRequest { url, events })?.key(key.as_str());
        call.unsafe_to_repeat = true;
        self.client.inner.call(call, &self.options).await?.json()
    }

    /// Lists this sales unit's registrations.
    pub async fn list(&self) -> Result<Vec<Webhook>, Error> {
        let response = self.client.inner.call(ApiCall::new(Method::GET, &WEBHOOKS), &self.options).await?;
        Ok(response.json::<WebhookList>()?.webhooks)
    }

    /// Deletes a registration.
    pub async fn delete(&self, id: &str) -> Result<(), Error> {
        let path = [WEBHOOKS[0], WEBHOOKS[1], WEBHOOKS[2], id];
        self.client.inner.call(ApiCall::new(Method::DELETE, &path), &self.options).await.map(|_| ())
    }
}

// ---------------------------------------------------------------------------------------------
// Signature verification
// ---------------------------------------------------------------------------------------------

const SIGNED_HEADERS: &str = "x-ms-date;host;x-ms-content-sha256";

/// Why a delivery was rejected. None of these should be answered with 2xx.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A required header is missing or not text.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// `x-ms-content-sha256` does not match the body.
    #[error("content hash does not match the body")]
    ContentHashMismatch,
    /// `Authorization` is not `HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=…`.
    #[error("malformed Authorization header")]
    MalformedAuthorization,
    /// The signature does not match (wrong secret, URL, host, date or hash).
    #[error("signature does not match")]
    SignatureMismatch,
    /// `x-ms-date` is not an RFC 1123 date.
    #[error("invalid x-ms-date")]
    InvalidDate,
    /// `x-ms-date` is further from now than the tolerance (replay protection).
    #[error("x-ms-date is {skew_seconds} s away from now")]
    StaleDate {
        /// Absolute difference between the date and now, in seconds.
        skew_seconds: i64,
    },
}

/// The parts of an incoming delivery that the signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// Path and query of the registered URL, e.g. `/e2cee29b-012e-4f1d-8ef4-e95fd74a7a63`.
    pub path_and_query: &'a str,
    /// Authority of the registered URL, with a non-default port (`example.com`, `example.com:8443`).
    pub host: &'a str,
    /// The request headers (`x-ms-date`, `x-ms-content-sha256`, `Authorization`).
    pub headers: &'a HeaderMap,
    /// The raw body bytes, exactly as received.
    pub body: &'a [u8],
}

impl<'a> SignedRequest<'a> {
    /// The signed parts of a delivery.
    pub fn new(path_and_query: &'a str, host: &'a str, headers: &'a HeaderMap, body: &'a [u8]) -> Self {
        Self { path_and_query, host, headers, body }
    }
}

/// Verifies deliveries signed with one registration's secret.
#[derive(Debug, Clone)]
pub struct Verifier {
    secret: Secret,
    tolerance: Duration,
}

impl Verifier {
    /// A verifier accepting `x-ms-date` up to 5 minutes from now (as the official WooCommerce plugin).
    pub fn new(secret: Secret) -> Self {
        Self { secret, tolerance: Duration::from_secs(300) }
    }

    /// Sets how far `x-ms-date` may be from now.
    #[must_use]
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Verifies against the current time.
    pub fn verify(&self, request: &SignedRequest<'_>) -> Result<(), VerifyError> {
        self.verify_at(request, chrono::Utc::now())
    }

    /// Verifies as if the current time were `now`: content hash, HMAC-SHA256 signature
    /// (constant-time comparison) and date tolerance.
    pub fn verify_at(
        &self,
        request: &SignedRequest<'_>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), VerifyError> {
        let header = |name: &'static str| {
            request.headers.get(name).and_then(|v| v.to_str().ok()).ok_or(VerifyError::MissingHeader(name))
        };
        let date = header("x-ms-date")?;
        let claimed_hash = header("x-ms-content-sha256")?;
        let authorization = header("authorization")?;

        let actual_hash = content_hash(request.body);
        if !bool::from(actual_hash.as_bytes().ct_eq(claimed_hash.trim().as_bytes())) {
            return Err(VerifyError::ContentHashMismatch);
        }

        let signature = parse_authorization(authorization)?;
        let provided = BASE64.decode(signature).map_err(|_| VerifyError::MalformedAuthorization)?;
        let string_to_sign = format!("POST\n{}\n{};{};{}", request.path_and_query, date, request.host, actual_hash);
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.expose().as_bytes())
            .map_err(|_| VerifyError::SignatureMismatch)?;
        mac.update(string_to_sign.as_bytes());
        mac.verify_slice(&provided).map_err(|_| VerifyError::SignatureMismatch)?;

        let sent = chrono::DateTime::parse_from_rfc2822(date.trim()).map_err(|_| VerifyError::InvalidDate)?;
        let skew_seconds = (now - sent.with_timezone(&chrono::Utc)).num_seconds().abs();
        let tolerance = i64::try_from(self.tolerance.as_secs()).unwrap_or(i64::MAX);
        if skew_seconds > tolerance {
            return Err(VerifyError::StaleDate { skew_seconds });
        }
        Ok(())
    }
}

fn parse_authorization(value: &str) -> Result<&str, VerifyError> {
    let rest = value.trim().strip_prefix("HMAC-SHA256 ").ok_or(VerifyError::MalformedAuthorization)?;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split('&') {
        let (name, value) = part.split_once('=').ok_or(VerifyError::MalformedAuthorization)?;
        match name.trim() {
            "SignedHeaders" => signed_headers = Some(value.trim()),
            "Signature" => signature = Some(value.trim()),
            _ => {}
        }
    }
    match (signed_headers, signature) {
        (Some(headers), Some(signature)) if headers.eq_ignore_ascii_case(SIGNED_HEADERS) && !signature.is_empty() => {
            Ok(signature)
        }
        _ => Err(VerifyError::MalformedAuthorization),
    }
}

/// `base64(SHA-256(body))`, the value of `x-ms-content-sha256`.
pub fn content_hash(body: &[u8]) -> String {
    BASE64.encode(Sha256::digest(body))
}

/// The headers Vipps sends with a delivery; see [`sign`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignatureHeaders {
    /// `x-ms-date`.
    pub date: String,
    /// `x-ms-content-sha256`.
    pub content_sha256: String,
    /// `Authorization`.
    pub authorization: String,
}

/// Signs a delivery exactly as Vipps does (for tests and simulators).
pub fn sign(secret: &Secret, path_and_query: &str, host: &str, date: &str, body: &[u8]) -> SignatureHeaders {
    let hash = content_hash(body);
    let string_to_sign = format!("POST\n{path_and_query}\n{date};{host};{hash}");
    // HMAC accepts keys of any length, so this cannot fail.
    let signature = match Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) {
        Ok(mut mac) => {
            mac.update(string_to_sign.as_bytes());
            BASE64.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    SignatureHeaders {
        date: date.to_owned(),
        content_sha256: hash,
        authorization: format!("HMAC-SHA256 SignedHeaders={SIGNED_HEADERS}&Signature={signature}"),
    }
}

/// Formats a time as `x-ms-date` (RFC 1123, GMT).
pub fn format_date(time: chrono::DateTime<chrono::Utc>) -> String {
    time.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

// ---------------------------------------------------------------------------------------------
// Event bodies
// ---------------------------------------------------------------------------------------------

/// Body of an ePayment webhook.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PaymentWebhook {
    /// The sales unit.
    pub msn: String,
    /// The payment.
    pub reference: String,
    /// This operation's pspReference.
    pub psp_reference: String,
    /// What happened.
    pub name: PaymentEventName,
    /// Amount of this operation.
    pub amount: Amount,
    /// When.
    #[serde(deserialize_with = "timestamp")]
    pub timestamp: chrono::DateTime<chrono::FixedOffset>,
    /// Key of the request that caused it.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// False for a failed attempt.
    pub success: bool,
    /// On authorized: last moment a capture is guaranteed.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub capture_guaranteed_until: Option<chrono::DateTime<chrono::FixedOffset>>,
}

wire_enum! {
    /// Who changed an agreement.
    pub enum Actor {
        /// The merchant (API or portal).
        Merchant => "MERCHANT",
        /// The user (app).
        User => "USER",
        /// Vipps MobilePay.
        Admin => "ADMIN",
    }
}

/// Body of a Recurring agreement webhook (field set reconstructed from secondary sources).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AgreementWebhook {
    /// The agreement.
    pub agreement_id: String,
    /// Event type.
    pub event_type: EventType,
    /// UUID form of the id.
    #[serde(default, rename = "agreementUUID")]
    pub agreement_uuid: Option<String>,
    /// Your id of the agreement.
    #[serde(default)]
    pub agreement_external_id: Option<String>,
    /// When.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub occurred: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// Who did it.
    #[serde(default)]
    pub actor: Option<Actor>,
    /// The sales unit.
    #[serde(default)]
    pub msn: Option<String>,
}

/// Body of a Recurring charge webhook (field set reconstructed from secondary sources).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ChargeWebhook {
    /// The agreement.
    pub agreement_id: String,
    /// The charge.
    pub charge_id: String,
    /// Event type.
    pub event_type: EventType,
    /// Your id of the charge.
    #[serde(default)]
    pub charge_external_id: Option<String>,
    /// Charge amount.
    #[serde(default)]
    pub amount: Option<i64>,
    /// Currency.
    #[serde(default)]
    pub currency: Option<Currency>,
    /// Kind of charge.
    #[serde(default)]
    pub charge_type: Option<ChargeType>,
    /// When.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub occurred: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// Captured total.
    #[serde(default)]
    pub amount_captured: Option<i64>,
    /// Cancelled total.
    #[serde(default)]
    pub amount_canceled: Option<i64>,
    /// Refunded total.
    #[serde(default)]
    pub amount_refunded: Option<i64>,
    /// Transaction id once charged.
    #[serde(default)]
    pub transaction_id: Option<String>,
    /// Why it failed.
    #[serde(default)]
    pub failure_reason: Option<FailureReason>,
    /// Failure code.
    #[serde(default)]
    pub failure_code: Option<String>,
    /// The sales unit.
    #[serde(default)]
    pub msn: Option<String>,
}

/// A verified delivery's body. Treat it as a signal: re-read the resource before moving money.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WebhookEvent {
    /// An ePayment event.
    Payment(PaymentWebhook),
    /// A Recurring agreement event.
    Agreement(AgreementWebhook),
    /// A Recurring charge event.
    Charge(ChargeWebhook),
    /// Any other JSON body, kept as is.
    Other(serde_json::Value),
}

impl WebhookEvent {
    /// Parses a (verified) body. Fails only if the body is not JSON or a recognised event type
    /// lacks its required fields.
    pub fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        let value: serde_json::Value = serde_json::from_slice(body)?;
        let event_type = value.get("eventType").and_then(serde_json::Value::as_str);
        match event_type {
            Some(t) if t.starts_with("recurring.agreement") => {
                serde_json::from_value(value).map(WebhookEvent::Agreement)
            }
            Some(t) if t.starts_with("recurring.charge") => serde_json::from_value(value).map(WebhookEvent::Charge),
            _ if value.get("pspReference").is_some() && value.get("name").is_some() => {
                serde_json::from_value(value).map(WebhookEvent::Payment)
            }
            _ => Ok(WebhookEvent::Other(value)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SECRET: &str = "A0+AeKBRG2KRGvnNwJpQlb6IJFk48CKXCIcrLoHncVJKDILsQSxS6NWCccwWm6r6FhGKhiHTBsG2wo/xU6FY/A==";
    const BODY: &str = r#"{"some-unique-content":"ee6e441b-cc4a-46f8-895d-a5af79bcc233/hello-world"}"#;
    const DATE: &str = "Thu, 30 Mar 2023 08:38:32 GMT";
    const PATH: &str = "/e2cee29b-012e-4f1d-8ef4-e95fd74a7a63";
    const HOST: &str = "webhook.site";
    const HASH: &str = "lNlsp1XA03N34HrQsVzPgJKtC+r7l/RBF4V3JQUWMj4=";
    const SIGNATURE: &str = "agAiSyogQbDHpeucoNwYz+yAr5nJ+v+zasdkSbqzv+U=";

    fn documented_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-ms-date", DATE.parse().unwrap());
        h.insert("x-ms-content-sha256", HASH.parse().unwrap());
        h.insert(
            "authorization",
            format!("HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={SIGNATURE}")
                .parse()
                .unwrap(),
        );
        h
    }

    fn sent_at() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc2822(DATE).unwrap().with_timezone(&chrono::Utc)
    }

    #[test]
    fn the_documented_test_vector_signs_and_verifies() {
        let signed = sign(&Secret::new(SECRET), PATH, HOST, DATE, BODY.as_bytes());
        assert_eq!(signed.content_sha256, HASH);
        assert!(signed.authorization.ends_with(SIGNATURE), "{}", signed.authorization);

        let headers = documented_headers();
        let request = SignedRequest::new(PATH, HOST, &headers, BODY.as_bytes());
        let verifier = Verifier::new(Secret::new(SECRET));
        assert_eq!(verifier.verify_at(&request, sent_at() + chrono::Duration::seconds(10)), Ok(()));
    }

    #[test]
    fn a_tampered_body_fails_the_content_hash() {
        let headers = documented_headers();
        let body = BODY.replace("hello", "HELLO");
        let request = SignedRequest::new(PATH, HOST, &headers, body.as_bytes());
        let err = Verifier::new(Secret::new(SECRET)).verify_at(&request, sent_at()).unwrap_err();
        assert_eq!(err, VerifyError::ContentHashMismatch);
    }

    #[test]
    fn a_wrong_secret_host_or_path_fails_the_signature() {
        let headers = documented_headers();
        let now = sent_at();
        let ok = SignedRequest::new(PATH, HOST, &headers, BODY.as_bytes());
        let wrong_secret = Verifier::new(Secret::new("not-the-secret")).verify_at(&ok, now);
        assert_eq!(wrong_secret, Err(VerifyError::SignatureMismatch));
        let verifier = Verifier::new(Secret::new(SECRET));
        let wrong_host = SignedRequest::new(PATH, "webhook.site:8443", &headers, BODY.as_bytes());
        assert_eq!(verifier.verify_at(&wrong_host, now), Err(VerifyError::SignatureMismatch));
        let wrong_path = SignedRequest::new("/other", HOST, &headers, BODY.as_bytes());
        assert_eq!(verifier.verify_at(&wrong_path, now), Err(VerifyError::SignatureMismatch));
    }

    #[test]
    fn a_date_outside_the_tolerance_is_stale() {
        let headers = documented_headers();
        let request = SignedRequest::new(PATH, HOST, &headers, BODY.as_bytes());
        let verifier = Verifier::new(Secret::new(SECRET));
        let err = verifier.verify_at(&request, sent_at() + chrono::Duration::seconds(301)).unwrap_err();
        assert_eq!(err, VerifyError::StaleDate { skew_seconds: 301 });
        let err = verifier.verify_at(&request, sent_at() - chrono::Duration::seconds(400)).unwrap_err();
        assert_eq!(err, VerifyError::StaleDate { skew_seconds: 400 });
        let lenient = verifier.with_tolerance(Duration::from_secs(3600));
        assert_eq!(lenient.verify_at(&request, sent_at() + chrono::Duration::seconds(400)), Ok(()));
    }

    #[test]
    fn missing_or_malformed_headers_are_typed_errors() {
        let verifier = Verifier::new(Secret::new(SECRET));
        let now = sent_at();
        for (name, expected) in [
            ("x-ms-date", VerifyError::MissingHeader("x-ms-date")),
            ("x-ms-content-sha256", VerifyError::MissingHeader("x-ms-content-sha256")),
            ("authorization", VerifyError::MissingHeader("authorization")),
        ] {
            let mut headers = documented_headers();
            headers.remove(name);
            let request = SignedRequest::new(PATH, HOST, &headers, BODY.as_bytes());
            assert_eq!(verifier.verify_at(&request, now), Err(expected));
        }
        for bad in [
            "Bearer abc",
            "HMAC-SHA256 Signature=abc",
            "HMAC-SHA256 SignedHeaders=host&Signature=abc",
            "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=",
            "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=%%%",
        ] {
            let mut headers = documented_headers();
            headers.insert("authorization", bad.parse().unwrap());
            let request = SignedRequest::new(PATH, HOST, &headers, BODY.as_bytes());
            assert_eq!(verifier.verify_at(&request, now), Err(VerifyError::MalformedAuthorization), "{bad}");
        }
        let mut headers = documented_headers();
        headers.insert("x-ms-date", "yesterday".parse().unwrap());
        let signed = sign(&Secret::new(SECRET), PATH, HOST, "yesterday", BODY.as_bytes());
        headers.insert("authorization", signed.authorization.parse().unwrap());
        let request = SignedRequest::new(PATH, HOST, &headers, BODY.as_bytes());
        assert_eq!(verifier.verify_at(&request, now), Err(VerifyError::InvalidDate));
    }

    #[test]
    fn dates_round_trip_through_the_header_format() {
        let t = sent_at();
        assert_eq!(format_date(t), DATE);
    }

    #[test]
    fn event_bodies_parse_into_their_kinds() {
        let payment = br#"{"msn":"123456","reference":"acme-shop-123-order123abc","pspReference":"dd8e0a8e-2b26-40ed-98f1-1d5832fc129f","name":"AUTHORIZED","amount":{"currency":"NOK","value":49900},"timestamp":"2026-01-19T16:26:32.099Z","idempotencyKey":"7c8b81e7-b08b-46e4-9729-191cb801c132","success":true,"captureGuaranteedUntil":"2026-07-18T16:26:32Z"}"#;
        match WebhookEvent::parse(payment).unwrap() {
            WebhookEvent::Payment(p) => {
                assert_eq!(p.name, PaymentEventName::Authorized);
                assert_eq!(p.amount, Amount::nok(49900));
                assert!(p.capture_guaranteed_until.is_some());
            }
            other => panic!("{other:?}"),
        }
        let agreement = br#"{"agreementId":"agr_TGSuPyV","agreementUUID":"9c2ca95c-245f-4a2e-aab2-4a08eb78e6fb","agreementExternalId":"sub-1234","eventType":"recurring.agreement-stopped.v1","occurred":"2026-01-04T10:00:00Z","actor":"USER","msn":"123456"}"#;
        match WebhookEvent::parse(agreement).unwrap() {
            WebhookEvent::Agreement(a) => {
                assert_eq!(a.event_type, EventType::AgreementStopped);
                assert_eq!(a.actor, Some(Actor::User));
                assert_eq!(a.agreement_uuid.as_deref(), Some("9c2ca95c-245f-4a2e-aab2-4a08eb78e6fb"));
            }
            other => panic!("{other:?}"),
        }
        let charge = br#"{"agreementId":"agr_TGSuPyV","chargeId":"acme-sub-1234-2026-10","chargeExternalId":"INV-2026-10-4471","amount":49900,"currency":"NOK","chargeType":"RECURRING","eventType":"recurring.charge-captured.v1","occurred":"2026-10-01T09:12:00Z","amountCaptured":49900,"amountCanceled":0,"amountRefunded":0,"transactionId":"5001419121","failureReason":null,"failureCode":null,"msn":"123456"}"#;
        match WebhookEvent::parse(charge).unwrap() {
            WebhookEvent::Charge(c) => {
                assert_eq!(c.event_type, EventType::ChargeCaptured);
                assert_eq!(c.amount_captured, Some(49900));
                assert_eq!(c.transaction_id.as_deref(), Some("5001419121"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(WebhookEvent::parse(br#"{"hello":1}"#).unwrap(), WebhookEvent::Other(_)));
        assert!(WebhookEvent::parse(b"<html>").is_err());
        assert!(WebhookEvent::parse(br#"{"eventType":"recurring.charge-failed.v1"}"#).is_err());
    }

    #[test]
    fn random_headers_and_bodies_never_panic_the_verifier_or_the_parser() {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        let verifier = Verifier::new(Secret::new(SECRET));
        let pieces = [
            "HMAC-SHA256 ",
            "SignedHeaders=",
            "x-ms-date;host;x-ms-content-sha256",
            "&",
            "Signature=",
            "=",
            SIGNATURE,
            "%",
            "ø",
        ];
        for _ in 0..3000 {
            let mut headers = documented_headers();
            let auth: String = (0..rng.gen_range(0..6)).map(|_| pieces[rng.gen_range(0..pieces.len())]).collect();
            if let Ok(value) = auth.parse() {
                headers.insert("authorization", value);
            }
            let mut body = BODY.as_bytes().to_vec();
            if rng.gen_bool(0.5) {
                let i = rng.gen_range(0..body.len());
                body[i] = rng.gen();
            }
            let request = SignedRequest::new(PATH, HOST, &headers, &body);
            assert!(verifier.verify_at(&request, sent_at()).is_err() || auth.contains(SIGNATURE));
            let _ = WebhookEvent::parse(&body);
        }
    }
}
