//! ePayment API v1 (reference §3): create, get, event log, capture, refund, cancel, the test
//! force-approve endpoint, expiry on the virtual clock, and the payer controls
//! `POST /_sim/payments/{reference}/approve|reject|abandon`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderMap, Method, StatusCode, Uri};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::auth::{authorize, Api};
use crate::config::random_digits;
use crate::idempotency::{self, KeyError, Lookup};
use crate::ratelimit::{Limit, Windows};
use crate::reply::{ep_error, ep_validation, sim_error, Reply};
use crate::state::{Db, LandingTarget, MoneyMovement, MovementKind, SharedSim, Timer};

/// Payment state (reference §3.5). `Authorized` is final: modifications only move amounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PaymentState {
    Created,
    Authorized,
    Aborted,
    Expired,
    Terminated,
}

impl PaymentState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PaymentState::Created => "CREATED",
            PaymentState::Authorized => "AUTHORIZED",
            PaymentState::Aborted => "ABORTED",
            PaymentState::Expired => "EXPIRED",
            PaymentState::Terminated => "TERMINATED",
        }
    }
}

/// One entry of the event log.
#[derive(Clone, Debug)]
pub(crate) struct PaymentEvent {
    pub(crate) psp_reference: String,
    pub(crate) name: &'static str,
    pub(crate) amount: i64,
    pub(crate) timestamp: DateTime<Utc>,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) success: bool,
}

/// A payment and its bookkeeping.
#[derive(Clone, Debug)]
pub(crate) struct Payment {
    pub(crate) msn: String,
    pub(crate) reference: String,
    pub(crate) amount: i64,
    pub(crate) currency: &'static str,
    pub(crate) state: PaymentState,
    pub(crate) method: &'static str,
    pub(crate) return_url: Option<String>,
    pub(crate) phone: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) metadata: Option<Map<String, Value>>,
    pub(crate) scope: Option<String>,
    pub(crate) psp_reference: String,
    pub(crate) redirect_url: Option<String>,
    pub(crate) create_key: String,
    pub(crate) authorized: i64,
    pub(crate) captured: i64,
    pub(crate) refunded: i64,
    pub(crate) cancelled: i64,
    pub(crate) events: Vec<PaymentEvent>,
    pub(crate) authorized_at: Option<DateTime<Utc>>,
    pub(crate) last_capture_at: Option<DateTime<Utc>>,
    pub(crate) sub: Option<String>,
}

/// All payments, per MSN then reference.
#[derive(Default)]
pub(crate) struct Store {
    pub(crate) payments: HashMap<String, HashMap<String, Payment>>,
    /// Rate-limit windows (only used with `SimConfig::rate_limits`).
    pub(crate) rate: Windows,
}

impl Store {
    pub(crate) fn get(&self, msn: &str, reference: &str) -> Option<&Payment> {
        self.payments.get(msn)?.get(reference)
    }

    pub(crate) fn get_mut(&mut self, msn: &str, reference: &str) -> Option<&mut Payment> {
        self.payments.get_mut(msn)?.get_mut(reference)
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn amount_json(currency: &str, value: i64) -> Value {
    json!({"currency": currency, "value": value})
}

fn aggregate_json(p: &Payment) -> Value {
    json!({
        "authorizedAmount": amount_json(p.currency, p.authorized),
        "cancelledAmount": amount_json(p.currency, p.cancelled),
        "capturedAmount": amount_json(p.currency, p.captured),
        "refundedAmount": amount_json(p.currency, p.refunded),
    })
}

fn payment_json(p: &Payment) -> Value {
    let mut v = json!({
        "aggregate": aggregate_json(p),
        "amount": amount_json(p.currency, p.amount),
        "state": p.state.as_str(),
        "paymentMethod": {"type": p.method},
        "profile": match &p.sub { Some(s) => json!({"sub": s}), None => json!({}) },
        "pspReference": p.psp_reference,
        "reference": p.reference,
    });
    if let Some(u) = &p.redirect_url {
        v["redirectUrl"] = json!(u);
    }
    if let Some(m) = &p.metadata {
        v["metadata"] = Value::Object(m.clone());
    }
    if let Some(at) = p.authorized_at {
        v["captureGuaranteedUntil"] = json!(ts(at + chrono::Duration::days(7)));
    }
    v
}

fn modification_json(p: &Payment, psp: &str) -> Value {
    json!({
        "amount": amount_json(p.currency, p.amount),
        "state": p.state.as_str(),
        "aggregate": aggregate_json(p),
        "pspReference": psp,
        "reference": p.reference,
    })
}

fn event_json(p: &Payment, e: &PaymentEvent) -> Value {
    let mut v = json!({
        "reference": p.reference,
        "pspReference": e.psp_reference,
        "name": e.name,
        "amount": amount_json(p.currency, e.amount),
        "timestamp": ts(e.timestamp),
        "success": e.success,
    });
    if let Some(k) = &e.idempotency_key {
        v["idempotencyKey"] = json!(k);
    }
    v
}

fn webhook_type(name: &str) -> &'static str {
    match name {
        "CREATED" => "epayments.payment.created.v1",
        "ABORTED" => "epayments.payment.aborted.v1",
        "EXPIRED" => "epayments.payment.expired.v1",
        "CANCELLED" => "epayments.payment.cancelled.v1",
        "CAPTURED" => "epayments.payment.captured.v1",
        "REFUNDED" => "epayments.payment.refunded.v1",
        "AUTHORIZED" => "epayments.payment.authorized.v1",
        _ => "epayments.payment.terminated.v1",
    }
}

/// Appends an event with a fresh pspReference (10 digits; UUID for `CREATED`), queues its
/// webhook, and returns the pspReference.
fn push_event(
    hooks: &mut crate::webhooks::Hub,
    name: &'static str,
    amount: i64,
    p: &mut Payment,
    key: Option<String>,
    at: DateTime<Utc>,
) -> String {
    let psp = if name == "CREATED" { p.psp_reference.clone() } else { random_digits(10) };
    let event =
        PaymentEvent { psp_reference: psp.clone(), name, amount, timestamp: at, idempotency_key: key, success: true };
    let resource = format!("payment:{}:{}", p.msn, p.reference);
    hooks.emit(&p.msn, webhook_type(name), &resource, ts(at), || {
        let mut v = event_json(p, &event);
        v["msn"] = json!(p.msn);
        if name == "AUTHORIZED" {
            v["captureGuaranteedUntil"] = json!(ts(at + chrono::Duration::days(7)));
        }
        v
    });
    p.events.push(event);
    psp
}

// ---------------------------------------------------------------------------------------------
// Request bodies

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
enum Currency {
    #[serde(rename = "NOK")]
    Nok,
    #[serde(rename = "DKK")]
    Dkk,
    #[serde(rename = "EUR")]
    Eur,
}

#[derive(Deserialize)]
struct AmountIn {
    currency: Currency,
    value: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PaymentMethodIn {
    #[serde(rename = "type")]
    kind: PaymentMethodType,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
enum PaymentMethodType {
    #[serde(rename = "WALLET")]
    Wallet,
    #[serde(rename = "CARD")]
    Card,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
enum UserFlow {
    #[serde(rename = "WEB_REDIRECT")]
    WebRedirect,
    #[serde(rename = "NATIVE_REDIRECT")]
    NativeRedirect,
    #[serde(rename = "PUSH_MESSAGE")]
    PushMessage,
    #[serde(rename = "QR")]
    Qr,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CustomerIn {
    phone_number: Option<String>,
    personal_qr: Option<String>,
    customer_token: Option<String>,
}

#[derive(Deserialize)]
enum CustomerInteraction {
    #[serde(rename = "CUSTOMER_NOT_PRESENT")]
    NotPresent,
    #[serde(rename = "CUSTOMER_PRESENT")]
    Present,
}

#[derive(Deserialize)]
enum QrFormatKind {
    #[serde(rename = "TEXT/TARGETURL")]
    Text,
    #[serde(rename = "IMAGE/SVG+XML")]
    Svg,
    #[serde(rename = "IMAGE/PNG")]
    Png,
}

#[derive(Deserialize)]
struct QrFormat {
    format: QrFormatKind,
    size: Option<i64>,
}

#[derive(Deserialize)]
struct ProfileIn {
    scope: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateRequest {
    amount: AmountIn,
    payment_method: PaymentMethodIn,
    reference: String,
    user_flow: UserFlow,
    return_url: Option<String>,
    customer: Option<CustomerIn>,
    payment_description: Option<String>,
    customer_interaction: Option<CustomerInteraction>,
    expires_at: Option<String>,
    qr_format: Option<QrFormat>,
    profile: Option<ProfileIn>,
    metadata: Option<Map<String, Value>>,
    receipt: Option<Value>,
    receipt_url: Option<String>,
    minimum_user_age: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ModificationRequest {
    modification_amount: AmountIn,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CancelRequest {
    cancel_transaction_only: Option<bool>,
}

#[derive(Deserialize, Default)]
struct ForceApproveRequest {
    customer: Option<CustomerIn>,
    token: Option<String>,
}

/// Parses a JSON body into `T`; on failure the ePayment validation problem names the field.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8], instance: &str) -> Result<T, Reply> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Ok(v),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return Err(ep_validation(instance, "body", "The request body is not valid JSON"));
            }
            let msg = inner.to_string();
            let field = if path == "." { msg.split('`').nth(1).unwrap_or("body").to_owned() } else { path };
            if field.starts_with("amount") || field.starts_with("modificationAmount") {
                if msg.contains("unknown variant") {
                    return Err(ep_error(
                        StatusCode::BAD_REQUEST,
                        "4040",
                        "Invalid amount",
                        &format!("{field}: {msg}"),
                        instance,
                    ));
                }
                return Err(ep_error(
                    StatusCode::BAD_REQUEST,
                    "4040",
                    "Invalid amount",
                    &format!("{field}: {msg}"),
                    instance,
                ));
            }
            if field.starts_with("paymentMethod") && msg.contains("unknown variant") {
                return Err(ep_error(StatusCode::BAD_REQUEST, "4160", "Invalid payment method type", &msg, instance));
            }
            Err(ep_validation(instance, &field, &msg))
        }
    }
}

/// `^[a-zA-Z0-9-]{8,64}$` (current limit; the 2023 spec said 50).
pub(crate) fn valid_reference(r: &str) -> bool {
    (8..=64).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn valid_phone(p: &str) -> bool {
    (10..=15).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())
}

/// `https://…` or a custom app scheme; plain `http://` only to 127.0.0.1 / localhost.
pub(crate) fn valid_return_url(u: &str) -> bool {
    match url::Url::parse(u) {
        Ok(url) => match url.scheme() {
            "https" => url.host_str().is_some(),
            "http" => matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")),
            "javascript" | "data" | "file" | "ftp" => false,
            _ => true,
        },
        Err(_) => false,
    }
}

const SCOPES: &[&str] = &["name", "address", "email", "phoneNumber", "birthDate", "nin"];

fn validate_create(req: &CreateRequest, now: DateTime<Utc>, instance: &str) -> Result<(), Reply> {
    let bad =
        |code: &str, title: &str, detail: &str| Err(ep_error(StatusCode::BAD_REQUEST, code, title, detail, instance));
    if !valid_reference(&req.reference) {
        return Err(ep_validation(instance, "reference", "must match ^[a-zA-Z0-9-]{8,64}$"));
    }
    if req.amount.value < 0 || req.amount.value > 65_000_000 {
        return bad("4040", "Invalid amount", "amount.value must be between 0 and 65000000 minor units");
    }
    if req.amount.currency != Currency::Nok {
        return bad("5040", "Invalid currency for merchant", "This sales unit accepts NOK only");
    }
    if req.amount.value < 100 {
        return bad("6010", "Amount too small", "The minimum amount is 100 øre (1 NOK)");
    }
    if req.payment_method.kind == PaymentMethodType::Card && req.user_flow != UserFlow::WebRedirect {
        return bad("4160", "Invalid payment method type", "CARD requires userFlow WEB_REDIRECT");
    }
    match (&req.return_url, req.user_flow) {
        (None, UserFlow::WebRedirect | UserFlow::NativeRedirect) => {
            return bad(
                "4140",
                "Missing required parameter",
                "returnUrl is required for WEB_REDIRECT and NATIVE_REDIRECT",
            );
        }
        (Some(u), _) if !valid_return_url(u) => {
            return bad("4090", "Invalid URL", "returnUrl must be https:// or an app scheme");
        }
        _ => {}
    }
    if let Some(u) = &req.receipt_url {
        if !valid_return_url(u) {
            return bad("4090", "Invalid URL", "receiptUrl must be https:// or an app scheme");
        }
    }
    match &req.customer {
        None if req.user_flow == UserFlow::PushMessage => {
            return bad("4140", "Missing required parameter", "customer is required for PUSH_MESSAGE");
        }
        None => {}
        Some(c) => {
            let n = [c.phone_number.is_some(), c.personal_qr.is_some(), c.customer_token.is_some()]
                .iter()
                .filter(|b| **b)
                .count();
            if n != 1 {
                return Err(ep_validation(
                    instance,
                    "customer",
                    "exactly one of phoneNumber, personalQr, customerToken",
                ));
            }
            if let Some(p) = &c.phone_number {
                if !valid_phone(p) {
                    return bad(
                        "4070",
                        "Invalid phone number",
                        "phoneNumber must be 10 to 15 digits with country code",
                    );
                }
            }
            if let Some(q) = &c.personal_qr {
                if !(5..=255).contains(&q.chars().count()) {
                    return bad("4060", "Invalid personalQr", "personalQr must be 5 to 255 characters");
                }
            }
            if let Some(t) = &c.customer_token {
                if t.is_empty() || t.len() > 255 {
                    return bad("4050", "Invalid customerToken", "customerToken is not valid");
                }
            }
        }
    }
    if let Some(d) = &req.payment_description {
        if !(3..=100).contains(&d.chars().count()) {
            return Err(ep_validation(instance, "paymentDescription", "must be 3 to 100 characters"));
        }
    }
    if let Some(m) = &req.metadata {
        if m.len() > 5 {
            return bad("4100", "Metadata capacity exceeded", "metadata may hold at most 5 pairs");
        }
        for (k, v) in m {
            if k.chars().count() > 100 {
                return bad("4120", "Metadata key too long", "metadata keys are at most 100 characters");
            }
            let Some(s) = v.as_str() else {
                return Err(ep_validation(instance, &format!("metadata.{k}"), "values must be strings"));
            };
            if s.chars().count() > 500 {
                return bad("4130", "Metadata value too long", "metadata values are at most 500 characters");
            }
        }
    }
    if let Some(p) = &req.profile {
        if let Some(scope) = &p.scope {
            if scope.split(' ').any(|s| !SCOPES.contains(&s)) {
                return bad(
                    "4080",
                    "Invalid scope",
                    "profile.scope must be a space-separated subset of name address email phoneNumber birthDate nin",
                );
            }
        }
    }
    if req.qr_format.is_some() && req.user_flow != UserFlow::Qr {
        return Err(ep_validation(instance, "qrFormat", "only allowed with userFlow QR"));
    }
    if let Some(QrFormat { format: QrFormatKind::Png, size: Some(s) }) = &req.qr_format {
        if !(100..=2000).contains(s) {
            return Err(ep_validation(instance, "qrFormat.size", "must be 100 to 2000"));
        }
    }
    if let Some(raw) = &req.expires_at {
        let Ok(at) = DateTime::parse_from_rfc3339(raw) else {
            return Err(ep_validation(instance, "expiresAt", "must be an RFC 3339 date-time"));
        };
        if !matches!(req.user_flow, UserFlow::PushMessage | UserFlow::Qr) {
            return bad("5050", "Long-living payments not allowed", "expiresAt requires userFlow PUSH_MESSAGE or QR");
        }
        if req.receipt.is_none() {
            return bad("6130", "Long-living payment requires receipt", "expiresAt requires a receipt");
        }
        let at = at.with_timezone(&Utc);
        if at <= now + chrono::Duration::minutes(10) {
            return bad("6120", "expiresAt too soon", "expiresAt must be more than 10 minutes ahead");
        }
        if at >= now + chrono::Duration::days(60) {
            return bad("6110", "expiresAt too late", "expiresAt must be less than 60 days ahead");
        }
    }
    if let Some(age) = req.minimum_user_age {
        if !(0..=120).contains(&age) {
            return Err(ep_validation(instance, "minimumUserAge", "must be between 0 and 120"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Handlers

fn key_problem(e: KeyError, instance: &str) -> Reply {
    match e {
        KeyError::Missing => ep_validation(instance, "Idempotency-Key", "The Idempotency-Key header is required"),
        KeyError::Invalid(r) => ep_validation(instance, "Idempotency-Key", r),
    }
}

/// Runs a state-changing ePayment operation under the gateway checks and the idempotency store.
fn modify(
    sim: &SharedSim,
    headers: &HeaderMap,
    instance: &str,
    body: &[u8],
    conflict_code: &str,
    limit: Limit<'_>,
    op: impl FnOnce(&mut Db, &str, &str, DateTime<Utc>) -> Reply,
) -> Reply {
    let now = sim.clock.now();
    let mut db = sim.lock();
    let msn = match authorize(&db, now, headers, Api::EPayment, instance) {
        Ok(m) => m,
        Err(r) => return r,
    };
    if sim.config.rate_limits {
        if let Err(r) = db.epayment.rate.hit(&msn, &limit, now) {
            return r;
        }
    }
    let key = match idempotency::read_key(headers, Api::EPayment) {
        Ok(k) => k,
        Err(e) => return key_problem(e, instance),
    };
    let fp = match db.idem.check(Api::EPayment, &msn, &key, &Method::POST, instance, body) {
        Lookup::Replay(r) => return r,
        Lookup::Conflict => {
            return ep_error(
                StatusCode::CONFLICT,
                conflict_code,
                "Idempotency conflict",
                "The Idempotency-Key was already used for a different request",
                instance,
            )
        }
        Lookup::Fresh(fp) => fp,
    };
    let reply = op(&mut db, &msn, &key, now);
    db.idem.store(Api::EPayment, &msn, &key, fp, &reply);
    reply
}

/// `POST /epayment/v1/payments` → `201 {redirectUrl?, reference}`.
pub(crate) async fn create(State(sim): State<SharedSim>, headers: HeaderMap, uri: Uri, body: Bytes) -> Reply {
    let instance = uri.path();
    let base = sim.base_url.clone();
    let timeout = sim.config.payer_timeout;
    // Parse and validate before taking the lock; the outcome is still only returned after the
    // gateway checks, and stored under the idempotency key like any other reply.
    let checked_at = sim.clock.now();
    let parsed =
        parse::<CreateRequest>(&body, instance).and_then(|r| validate_create(&r, checked_at, instance).map(|()| r));
    let counted = parsed.as_ref().map(|r| r.reference.clone()).unwrap_or_default();
    let limit = Limit { op: "epayment.create", resource: &counted, per_minute: 5 };
    modify(&sim, &headers, instance, &body, "4020", limit, |db, msn, key, now| {
        let req = match parsed {
            Ok(r) => r,
            Err(r) => return r,
        };
        if db.epayment.get(msn, &req.reference).is_some() {
            return ep_error(
                StatusCode::CONFLICT,
                "4150",
                "Reference already exists",
                &format!("A payment with reference {} already exists", req.reference),
                instance,
            );
        }
        let _ = (&req.customer_interaction, req.qr_format.as_ref().map(|q| (&q.format, q.size)));
        let token = db.new_landing(LandingTarget::Payment { msn: msn.to_owned(), reference: req.reference.clone() });
        let redirect_url = match req.user_flow {
            UserFlow::PushMessage => None,
            _ => Some(format!("{base}/landing?token={token}")),
        };
        let expires = match req.expires_at.as_deref().and_then(|s| DateTime::parse_from_rfc3339(s).ok()) {
            Some(at) => at.with_timezone(&Utc),
            None => now + timeout,
        };
        let mut p = Payment {
            msn: msn.to_owned(),
            reference: req.reference.clone(),
            amount: req.amount.value,
            currency: "NOK",
            state: PaymentState::Created,
            method: match req.payment_method.kind {
                PaymentMethodType::Wallet => "WALLET",
                PaymentMethodType::Card => "CARD",
            },
            return_url: req.return_url,
            phone: req.customer.and_then(|c| c.phone_number),
            description: req.payment_description,
            metadata: req.metadata,
            scope: req.profile.and_then(|p| p.scope),
            psp_reference: uuid::Uuid::new_v4().to_string(),
            redirect_url: redirect_url.clone(),
            create_key: key.to_owned(),
            authorized: 0,
            captured: 0,
            refunded: 0,
            cancelled: 0,
            events: Vec::with_capacity(4),
            authorized_at: None,
            last_capture_at: None,
            sub: None,
        };
        push_event(&mut db.hooks, "CREATED", p.amount, &mut p, Some(key.to_owned()), now);
        db.epayment.payments.entry(msn.to_owned()).or_default().insert(req.reference.clone(), p);
        db.schedule(expires, Timer::PaymentExpiry { msn: msn.to_owned(), reference: req.reference.clone() });
        let body = match redirect_url {
            Some(u) => json!({"redirectUrl": u, "reference": req.reference}),
            None => json!({"reference": req.reference}),
        };
        Reply::json(StatusCode::CREATED, &body)
    })
}

fn not_found(reference: &str, instance: &str) -> Reply {
    ep_error(
        StatusCode::NOT_FOUND,
        "5090",
        "Reference not found",
        &format!("No payment with reference {reference} for this merchant"),
        instance,
    )
}

fn read_payment(
    sim: &SharedSim,
    headers: &HeaderMap,
    instance: &str,
    reference: &str,
    f: impl FnOnce(&Payment) -> Value,
) -> Reply {
    let now = sim.clock.now();
    let mut db = sim.lock();
    let msn = match authorize(&db, now, headers, Api::EPayment, instance) {
        Ok(m) => m,
        Err(r) => return r,
    };
    if sim.config.rate_limits {
        let limit = Limit { op: "epayment.read", resource: reference, per_minute: 120 };
        if let Err(r) = db.epayment.rate.hit(&msn, &limit, now) {
            return r;
        }
    }
    match db.epayment.get(&msn, reference) {
        Some(p) => Reply::json(StatusCode::OK, &f(p)),
        None => not_found(reference, instance),
    }
}

/// `GET /epayment/v1/payments/{reference}` → `200 GetPaymentResponse`.
pub(crate) async fn get_payment(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path(reference): Path<String>,
) -> Reply {
    read_payment(&sim, &headers, uri.path(), &reference, payment_json)
}

/// `GET /epayment/v1/payments/{reference}/events` → `200 [PaymentEvent]`, oldest first.
pub(crate) async fn events(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path(reference): Path<String>,
) -> Reply {
    read_payment(&sim, &headers, uri.path(), &reference, |p| {
        Value::Array(p.events.iter().map(|e| event_json(p, e)).collect())
    })
}

/// `POST /epayment/v1/payments/{reference}/capture` `{modificationAmount}` → `200 ModificationResponse`.
pub(crate) async fn capture(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path(reference): Path<String>,
    body: Bytes,
) -> Reply {
    let instance = uri.path();
    let limit = Limit { op: "epayment.capture", resource: &reference, per_minute: 5 };
    modify(&sim, &headers, instance, &body, "4010", limit, |db, msn, key, now| {
        let req: ModificationRequest = match parse(&body, instance) {
            Ok(r) => r,
            Err(r) => return r,
        };
        let Db { epayment, hooks, .. } = &mut *db;
        let Some(p) = epayment.get_mut(msn, &reference) else {
            return not_found(&reference, instance);
        };
        let bad =
            |code: &str, title: &str, detail: &str| ep_error(StatusCode::BAD_REQUEST, code, title, detail, instance);
        let x = req.modification_amount.value;
        if req.modification_amount.currency != Currency::Nok || x <= 0 {
            return bad(
                "4040",
                "Invalid amount",
                "modificationAmount must be a positive amount in the payment's currency",
            );
        }
        match p.state {
            PaymentState::Authorized => {}
            PaymentState::Created => {
                return bad("6080", "Cannot capture before reservation", "The payment is not authorized yet")
            }
            _ => return bad("6200", "Cannot be captured", &format!("The payment is {}", p.state.as_str())),
        }
        let remaining = p.authorized - p.cancelled - p.captured;
        if p.authorized_at.is_some_and(|a| now > a + chrono::Duration::days(180)) {
            return bad("6100", "Capture period expired", "Captures are possible for 180 days after authorization");
        }
        if remaining == 0 && p.cancelled > 0 {
            return bad("6070", "Cannot capture cancelled payment", "The remaining amount was cancelled");
        }
        if remaining == 0 {
            return bad("6170", "Already captured", "The payment is fully captured");
        }
        if x > remaining {
            return bad("6090", "Capture amount too high", &format!("At most {remaining} can be captured"));
        }
        p.captured += x;
        p.last_capture_at = Some(now);
        let psp = push_event(hooks, "CAPTURED", x, p, Some(key.to_owned()), now);
        let reply = Reply::json(StatusCode::OK, &modification_json(p, &psp));
        let movement = MoneyMovement {
            kind: MovementKind::Capture,
            amount: x,
            currency: p.currency.to_owned(),
            psp_reference: psp,
            reference: p.reference.clone(),
            agreement_id: None,
            external_id: None,
            at: now,
        };
        db.record_movement(msn, movement);
        reply
    })
}

/// `POST /epayment/v1/payments/{reference}/refund` `{modificationAmount}` → `200 ModificationResponse`.
pub(crate) async fn refund(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path(reference): Path<String>,
    body: Bytes,
) -> Reply {
    let instance = uri.path();
    let limit = Limit { op: "epayment.refund", resource: &reference, per_minute: 5 };
    modify(&sim, &headers, instance, &body, "4150", limit, |db, msn, key, now| {
        let req: ModificationRequest = match parse(&body, instance) {
            Ok(r) => r,
            Err(r) => return r,
        };
        let Db { epayment, hooks, .. } = &mut *db;
        let Some(p) = epayment.get_mut(msn, &reference) else {
            return not_found(&reference, instance);
        };
        let bad =
            |code: &str, title: &str, detail: &str| ep_error(StatusCode::BAD_REQUEST, code, title, detail, instance);
        let x = req.modification_amount.value;
        if req.modification_amount.currency != Currency::Nok || x <= 0 {
            return bad(
                "4040",
                "Invalid amount",
                "modificationAmount must be a positive amount in the payment's currency",
            );
        }
        if p.captured == 0 {
            return bad("6020", "Cannot refund before capture", "Nothing has been captured on this payment");
        }
        if p.last_capture_at.is_some_and(|c| now > c + chrono::Duration::days(365)) {
            return bad("6220", "Refund period expired", "Refunds are possible for 365 days after capture");
        }
        if p.refunded == p.captured {
            return bad("6180", "Already refunded", "The captured amount is fully refunded");
        }
        if x > p.captured - p.refunded {
            return bad(
                "6150",
                "Not enough refundable",
                &format!("At most {} can be refunded", p.captured - p.refunded),
            );
        }
        p.refunded += x;
        let psp = push_event(hooks, "REFUNDED", x, p, Some(key.to_owned()), now);
        let reply = Reply::json(StatusCode::OK, &modification_json(p, &psp));
        let movement = MoneyMovement {
            kind: MovementKind::Refund,
            amount: x,
            currency: p.currency.to_owned(),
            psp_reference: psp,
            reference: p.reference.clone(),
            agreement_id: None,
            external_id: None,
            at: now,
        };
        db.record_movement(msn, movement);
        reply
    })
}

/// `POST /epayment/v1/payments/{reference}/cancel` `{cancelTransactionOnly?}` → `200 ModificationResponse`.
pub(crate) async fn cancel(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path(reference): Path<String>,
    body: Bytes,
) -> Reply {
    let instance = uri.path();
    let limit = Limit { op: "epayment.cancel", resource: &reference, per_minute: 5 };
    modify(&sim, &headers, instance, &body, "4020", limit, |db, msn, key, now| {
        let req: CancelRequest = if body.iter().all(u8::is_ascii_whitespace) {
            CancelRequest::default()
        } else {
            match parse(&body, instance) {
                Ok(r) => r,
                Err(r) => return r,
            }
        };
        let Db { epayment, hooks, .. } = &mut *db;
        let Some(p) = epayment.get_mut(msn, &reference) else {
            return not_found(&reference, instance);
        };
        let bad =
            |code: &str, title: &str, detail: &str| ep_error(StatusCode::BAD_REQUEST, code, title, detail, instance);
        match p.state {
            PaymentState::Created => {
                p.state = PaymentState::Terminated;
                p.cancelled = p.amount;
                let psp = push_event(hooks, "TERMINATED", p.amount, p, Some(key.to_owned()), now);
                Reply::json(StatusCode::OK, &modification_json(p, &psp))
            }
            PaymentState::Authorized => {
                if req.cancel_transaction_only == Some(true) {
                    return bad(
                        "6060",
                        "Cannot cancel authorized payment",
                        "cancelTransactionOnly: the payment is already authorized",
                    );
                }
                if p.authorized_at.is_some_and(|a| now > a + chrono::Duration::days(180)) {
                    return bad(
                        "6030",
                        "Cancel period expired",
                        "Cancels are possible for 180 days after authorization",
                    );
                }
                if p.captured >= p.authorized {
                    return bad("6040", "Cannot cancel captured payment", "The payment is fully captured");
                }
                let remaining = p.authorized - p.captured - p.cancelled;
                if remaining == 0 {
                    return bad("6190", "Cannot be cancelled", "The remaining amount is already cancelled");
                }
                p.cancelled += remaining;
                let psp = push_event(hooks, "CANCELLED", remaining, p, None, now);
                Reply::json(StatusCode::OK, &modification_json(p, &psp))
            }
            _ => bad("6050", "Cannot cancel non-reserved payment", &format!("The payment is {}", p.state.as_str())),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// The payer (landing page, force approve, controls)

/// Why a payer action was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PayerError {
    NotFound,
    NotPending(&'static str),
    BadPhone,
}

/// The decline a `CREATED` payment's magic amount causes, if any.
pub(crate) fn declined(db: &Db, msn: &str, reference: &str) -> Option<&'static str> {
    db.epayment.get(msn, reference).filter(|p| p.state == PaymentState::Created).and_then(|p| magic_decline(p.amount))
}

/// Test-environment magic amounts that make the payer's card fail (reference §8).
pub(crate) fn magic_decline(amount: i64) -> Option<&'static str> {
    match amount {
        151 => Some("insufficient funds"),
        182 => Some("refused by issuer"),
        183 => Some("suspected fraud"),
        184 => Some("withdrawal limit exceeded"),
        186 => Some("expired card"),
        187 => Some("invalid card"),
        197 => Some("3-D Secure denied"),
        _ => None,
    }
}

/// The payer approves: `CREATED` → `AUTHORIZED`.
pub(crate) fn payer_approve(
    db: &mut Db,
    msn: &str,
    reference: &str,
    phone: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), PayerError> {
    if phone.is_some_and(|p| !valid_phone(p)) {
        return Err(PayerError::BadPhone);
    }
    let Db { epayment, hooks, .. } = db;
    let p = epayment.get_mut(msn, reference).ok_or(PayerError::NotFound)?;
    if p.state != PaymentState::Created {
        return Err(PayerError::NotPending(p.state.as_str()));
    }
    p.state = PaymentState::Authorized;
    p.authorized = p.amount;
    p.authorized_at = Some(at);
    if let Some(ph) = phone {
        p.phone = Some(ph.to_owned());
    }
    if p.scope.is_some() {
        p.sub = Some(uuid::Uuid::new_v4().to_string());
    }
    let key = Some(p.create_key.clone());
    push_event(hooks, "AUTHORIZED", p.amount, p, key, at);
    Ok(())
}

/// The payer rejects in the app: `CREATED` → `ABORTED`.
pub(crate) fn payer_reject(db: &mut Db, msn: &str, reference: &str, at: DateTime<Utc>) -> Result<(), PayerError> {
    end_created(db, msn, reference, PaymentState::Aborted, "ABORTED", at)
}

/// The payer walks away: `CREATED` → `EXPIRED` at once (the expiry is brought forward).
pub(crate) fn payer_abandon(db: &mut Db, msn: &str, reference: &str, at: DateTime<Utc>) -> Result<(), PayerError> {
    end_created(db, msn, reference, PaymentState::Expired, "EXPIRED", at)
}

fn end_created(
    db: &mut Db,
    msn: &str,
    reference: &str,
    to: PaymentState,
    name: &'static str,
    at: DateTime<Utc>,
) -> Result<(), PayerError> {
    let Db { epayment, hooks, .. } = db;
    let p = epayment.get_mut(msn, reference).ok_or(PayerError::NotFound)?;
    if p.state != PaymentState::Created {
        return Err(PayerError::NotPending(p.state.as_str()));
    }
    p.state = to;
    push_event(hooks, name, p.amount, p, None, at);
    Ok(())
}

/// Timer: a payment still `CREATED` at its expiry becomes `EXPIRED`.
pub(crate) fn expire(db: &mut Db, msn: &str, reference: &str, at: DateTime<Utc>) {
    let _ = end_created(db, msn, reference, PaymentState::Expired, "EXPIRED", at);
}

/// `POST /epayment/v1/test/payments/{reference}/approve` `{customer?}` or `{token}` → `200`, no body.
pub(crate) async fn force_approve(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path(reference): Path<String>,
    body: Bytes,
) -> Reply {
    let instance = uri.path();
    let now = sim.clock.now();
    let mut db = sim.lock();
    let msn = match authorize(&db, now, &headers, Api::EPayment, instance) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let req: ForceApproveRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ForceApproveRequest::default()
    } else {
        match parse(&body, instance) {
            Ok(r) => r,
            Err(r) => return r,
        }
    };
    if let Some(t) = &req.token {
        let expected = LandingTarget::Payment { msn: msn.clone(), reference: reference.clone() };
        if db.landing.get(t) != Some(&expected) {
            return ep_error(
                StatusCode::BAD_REQUEST,
                "10010",
                "Approve failed",
                "The token does not belong to this payment",
                instance,
            );
        }
    }
    let phone = req.customer.and_then(|c| c.phone_number);
    if let Some(why) = declined(&db, &msn, &reference) {
        return ep_error(
            StatusCode::BAD_REQUEST,
            "10010",
            "Approve failed",
            &format!("The payer's card was declined: {why}"),
            instance,
        );
    }
    match payer_approve(&mut db, &msn, &reference, phone.as_deref(), now) {
        Ok(()) => Reply::empty(StatusCode::OK),
        Err(PayerError::NotFound) => not_found(&reference, instance),
        Err(PayerError::BadPhone) => ep_error(
            StatusCode::BAD_REQUEST,
            "4070",
            "Invalid phone number",
            "phoneNumber must be 10 to 15 digits",
            instance,
        ),
        Err(PayerError::NotPending(s)) => ep_error(
            StatusCode::BAD_REQUEST,
            "10020",
            "Approve not allowed",
            &format!("The payment is {s}, not CREATED"),
            instance,
        ),
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PayerBody {
    phone_number: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct MsnQuery {
    msn: Option<String>,
}

/// Finds the MSN holding `reference` (or checks the given one); `None` if absent or ambiguous.
pub(crate) fn find_msn(db: &Db, reference: &str, msn: Option<&str>) -> Result<String, Reply> {
    if let Some(m) = msn {
        return match db.epayment.get(m, reference) {
            Some(_) => Ok(m.to_owned()),
            None => Err(sim_error(StatusCode::NOT_FOUND, "no such payment")),
        };
    }
    let mut found = db.epayment.payments.iter().filter(|(_, ps)| ps.contains_key(reference)).map(|(m, _)| m);
    match (found.next(), found.next()) {
        (Some(m), None) => Ok(m.clone()),
        (None, _) => Err(sim_error(StatusCode::NOT_FOUND, "no such payment")),
        (Some(_), Some(_)) => Err(sim_error(StatusCode::CONFLICT, "reference exists for several merchants; add ?msn=")),
    }
}

/// `POST /_sim/payments/{reference}/approve|reject|abandon[?msn=]` with optional
/// `{"phoneNumber": "47…"}` → `200` with the payment as `GET` shows it; `409` if not `CREATED`.
pub(crate) async fn sim_action(
    State(sim): State<SharedSim>,
    Path((reference, action)): Path<(String, String)>,
    Query(q): Query<MsnQuery>,
    body: Bytes,
) -> Reply {
    let req: PayerBody = if body.iter().all(u8::is_ascii_whitespace) {
        PayerBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return sim_error(StatusCode::BAD_REQUEST, &format!("expected {{\"phoneNumber\": \"47…\"}}: {e}"))
            }
        }
    };
    let now = sim.clock.now();
    let mut db = sim.lock();
    let msn = match find_msn(&db, &reference, q.msn.as_deref()) {
        Ok(m) => m,
        Err(r) => return r,
    };
    if action == "approve" {
        if let Some(why) = declined(&db, &msn, &reference) {
            return sim_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("card declined ({why}); the payment stays CREATED"),
            );
        }
    }
    let result = match action.as_str() {
        "approve" => payer_approve(&mut db, &msn, &reference, req.phone_number.as_deref(), now),
        "reject" => payer_reject(&mut db, &msn, &reference, now),
        "abandon" => payer_abandon(&mut db, &msn, &reference, now),
        _ => return sim_error(StatusCode::NOT_FOUND, "action must be approve, reject or abandon"),
    };
    match result {
        Ok(()) => match db.epayment.get(&msn, &reference) {
            Some(p) => Reply::json(StatusCode::OK, &payment_json(p)),
            None => sim_error(StatusCode::NOT_FOUND, "no such payment"),
        },
        Err(PayerError::NotFound) => sim_error(StatusCode::NOT_FOUND, "no such payment"),
        Err(PayerError::BadPhone) => sim_error(StatusCode::BAD_REQUEST, "phoneNumber must be 10 to 15 digits"),
        Err(PayerError::NotPending(s)) => sim_error(StatusCode::CONFLICT, &format!("the payment is {s}, not CREATED")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_8_to_64_of_letters_digits_and_dashes() {
        assert!(valid_reference("abcd-123"));
        assert!(valid_reference(&"a".repeat(64)));
        assert!(!valid_reference("abc-123"));
        assert!(!valid_reference(&"a".repeat(65)));
        assert!(!valid_reference("abcd_1234"));
        assert!(!valid_reference("abcdæøå12"));
    }

    #[test]
    fn return_urls_are_https_or_app_schemes_or_local_http() {
        assert!(valid_return_url("https://example.com/x"));
        assert!(valid_return_url("myapp://done"));
        assert!(valid_return_url("http://127.0.0.1:3000/back"));
        assert!(!valid_return_url("http://example.com/x"));
        assert!(!valid_return_url("javascript:alert(1)"));
        assert!(!valid_return_url("not a url"));
    }
}
