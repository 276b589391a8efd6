//! Recurring API v3 (reference §5): agreements, charges (single and batch), their state machines,
//! due-date processing on the virtual clock, and the payer controls
//! `POST /_sim/agreements/{agreementId}/accept|reject|stop` and `.../fail-next-charge`.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Europe::Oslo;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{authorize, Api};
use crate::config::{random_digits, random_string};
use crate::idempotency::{self, KeyError, Lookup};
use crate::ratelimit::{Limit, Windows};
use crate::reply::{rec_problem, sim_error, Reply};
use crate::state::{Db, LandingTarget, MoneyMovement, MovementKind, SharedSim, Timer};

// ---------------------------------------------------------------------------------------------
// Model

/// Agreement status (reference §5.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum AgreementStatus {
    Pending,
    Active,
    Stopped,
    Expired,
}

impl AgreementStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AgreementStatus::Pending => "PENDING",
            AgreementStatus::Active => "ACTIVE",
            AgreementStatus::Stopped => "STOPPED",
            AgreementStatus::Expired => "EXPIRED",
        }
    }
}

/// Charge status (reference §5.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum ChargeStatus {
    Pending,
    Due,
    Processing,
    Reserved,
    Charged,
    PartiallyCaptured,
    Failed,
    Cancelled,
    PartiallyRefunded,
    Refunded,
}

impl ChargeStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ChargeStatus::Pending => "PENDING",
            ChargeStatus::Due => "DUE",
            ChargeStatus::Processing => "PROCESSING",
            ChargeStatus::Reserved => "RESERVED",
            ChargeStatus::Charged => "CHARGED",
            ChargeStatus::PartiallyCaptured => "PARTIALLY_CAPTURED",
            ChargeStatus::Failed => "FAILED",
            ChargeStatus::Cancelled => "CANCELLED",
            ChargeStatus::PartiallyRefunded => "PARTIALLY_REFUNDED",
            ChargeStatus::Refunded => "REFUNDED",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum TransactionType {
    DirectCapture,
    ReserveCapture,
}

impl TransactionType {
    fn as_str(self) -> &'static str {
        match self {
            TransactionType::DirectCapture => "DIRECT_CAPTURE",
            TransactionType::ReserveCapture => "RESERVE_CAPTURE",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum PricingType {
    Legacy,
    Variable,
    Flexible,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum Unit {
    Year,
    Month,
    Week,
    Day,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Year => "YEAR",
            Unit::Month => "MONTH",
            Unit::Week => "WEEK",
            Unit::Day => "DAY",
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize)]
pub(crate) struct Interval {
    unit: Unit,
    count: i64,
}

#[derive(Clone, Debug)]
pub(crate) struct Pricing {
    pub(crate) kind: PricingType,
    pub(crate) amount: Option<i64>,
    pub(crate) suggested_max: Option<i64>,
    pub(crate) max_amount: Option<i64>,
}

#[derive(Clone, Debug)]
pub(crate) struct HistoryEvent {
    occurred: DateTime<Utc>,
    event: &'static str,
    amount: i64,
    idempotency_key: Option<String>,
    success: bool,
}

/// One charge of an agreement.
#[derive(Clone, Debug)]
pub(crate) struct Charge {
    pub(crate) id: String,
    pub(crate) agreement_id: String,
    pub(crate) external_id: Option<String>,
    pub(crate) amount: i64,
    pub(crate) description: String,
    pub(crate) due: NaiveDate,
    pub(crate) retry_days: i64,
    pub(crate) status: ChargeStatus,
    pub(crate) initial: bool,
    pub(crate) transaction_type: TransactionType,
    pub(crate) transaction_id: Option<String>,
    pub(crate) failure_reason: Option<String>,
    pub(crate) captured: i64,
    pub(crate) refunded: i64,
    pub(crate) cancelled: i64,
    pub(crate) history: Vec<HistoryEvent>,
    pub(crate) attempts: i64,
    /// Remaining forced failures (`None`: none; `Some(u32::MAX)`: every attempt).
    pub(crate) forced_failures: Option<(u32, String)>,
}

/// A recurring agreement.
#[derive(Clone, Debug)]
pub(crate) struct Agreement {
    pub(crate) id: String,
    pub(crate) uuid: String,
    pub(crate) msn: String,
    pub(crate) status: AgreementStatus,
    pub(crate) product_name: String,
    pub(crate) product_description: Option<String>,
    pub(crate) pricing: Pricing,
    pub(crate) interval: Option<Interval>,
    pub(crate) merchant_agreement_url: String,
    pub(crate) merchant_redirect_url: String,
    pub(crate) phone: Option<String>,
    pub(crate) external_id: Option<String>,
    pub(crate) scope: Option<String>,
    pub(crate) campaign: Option<Value>,
    pub(crate) created: DateTime<Utc>,
    pub(crate) start: Option<DateTime<Utc>>,
    pub(crate) stop: Option<DateTime<Utc>>,
    pub(crate) confirmation_url: String,
    pub(crate) sub: Option<String>,
    pub(crate) charges: Vec<Charge>,
}

/// Agreements, per id, plus indexes.
#[derive(Default)]
pub(crate) struct Store {
    pub(crate) agreements: HashMap<String, Agreement>,
    by_msn: HashMap<String, Vec<String>>,
    charge_index: HashMap<(String, String), String>,
    fail_next: HashMap<String, (u32, String)>,
    continuations: HashMap<String, Continuation>,
    /// Rate-limit windows (only used with `SimConfig::rate_limits`).
    rate: Windows,
}

/// Which list a `Continuation-Token` continues.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ListKind {
    Agreements { status: AgreementStatus, created_after: Option<i64> },
    Charges { agreement_id: String, status: Option<ChargeStatus> },
}

/// A `Continuation-Token`: the rest of a list from `offset`, valid for 10 virtual minutes.
struct Continuation {
    msn: String,
    kind: ListKind,
    offset: usize,
    expires: DateTime<Utc>,
}

/// How long a `Continuation-Token` stays valid.
const CONTINUATION_LIFETIME_MINUTES: i64 = 10;

/// Failure reasons a charge may end with (reference §5.5).
pub(crate) const FAILURE_REASONS: &[&str] =
    &["user_action_required", "charge_amount_too_high", "non_technical_error", "technical_error"];

fn failure_description(reason: &str) -> &'static str {
    match reason {
        "user_action_required" => "User action required",
        "charge_amount_too_high" => "Charge amount too high",
        "non_technical_error" => "Non-technical error",
        _ => "Technical error",
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn oslo_today(now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&Oslo).date_naive()
}

/// Start of `d` in Norwegian time, as UTC: when a charge due on `d` is attempted.
fn attempt_time(d: NaiveDate) -> DateTime<Utc> {
    let local = d.and_hms_opt(0, 0, 0).unwrap_or_default();
    Oslo.from_local_datetime(&local).earliest().map_or_else(|| Utc.from_utc_datetime(&local), |t| t.with_timezone(&Utc))
}

fn interval_text(i: &Interval) -> String {
    let unit = i.unit.as_str().to_lowercase();
    if i.count == 1 {
        format!("every {unit}")
    } else {
        format!("every {} {unit}s", i.count)
    }
}

fn new_id(prefix: &str, len: usize) -> String {
    format!("{prefix}{}", random_string(len))
}

// ---------------------------------------------------------------------------------------------
// JSON views

fn agreement_json(a: &Agreement) -> Value {
    let pricing = match a.pricing.kind {
        PricingType::Legacy => json!({"type": "LEGACY", "amount": a.pricing.amount, "currency": "NOK"}),
        PricingType::Variable => json!({
            "type": "VARIABLE", "currency": "NOK",
            "suggestedMaxAmount": a.pricing.suggested_max,
            "maxAmount": a.pricing.max_amount.or(a.pricing.suggested_max),
        }),
        PricingType::Flexible => json!({"type": "FLEXIBLE", "currency": "NOK"}),
    };
    let interval = match &a.interval {
        Some(i) => json!({"unit": i.unit.as_str(), "count": i.count, "text": interval_text(i)}),
        None => json!({"type": "FLEXIBLE", "text": "flexible"}),
    };
    let mut v = json!({
        "id": a.id,
        "uuid": a.uuid,
        "created": ts(a.created),
        "start": a.start.map(ts),
        "stop": a.stop.map(ts),
        "status": a.status.as_str(),
        "productName": a.product_name,
        "pricing": pricing,
        "interval": interval,
        "campaign": a.campaign.as_ref().map(|c| campaign_response(c, a.created)),
        "merchantAgreementUrl": a.merchant_agreement_url,
        "merchantRedirectUrl": a.merchant_redirect_url,
        "sub": a.sub,
        "userinfoUrl": a.sub.as_ref().map(|s| format!("https://api.vipps.no/vipps-userinfo-api/userinfo/{s}")),
        "countryCode": "NO",
    });
    if let Some(d) = &a.product_description {
        v["productDescription"] = json!(d);
    }
    if let Some(e) = &a.external_id {
        v["externalId"] = json!(e);
    }
    if a.status == AgreementStatus::Pending {
        v["vippsConfirmationUrl"] = json!(a.confirmation_url);
    }
    v
}

fn charge_json(a: &Agreement, c: &Charge) -> Value {
    let history: Vec<Value> = c
        .history
        .iter()
        .map(|h| {
            json!({"occurred": ts(h.occurred), "event": h.event, "amount": h.amount,
                   "idempotencyKey": h.idempotency_key.clone().unwrap_or_else(|| format!("{}-{}-{}", c.id, c.agreement_id, h.event)),
                   "success": h.success})
        })
        .collect();
    let mut v = json!({
        "id": c.id,
        "agreementId": c.agreement_id,
        "externalId": c.external_id.clone().unwrap_or_else(|| c.id.clone()),
        "amount": c.amount,
        "currency": "NOK",
        "description": c.description,
        "due": format!("{}T00:00:00Z", c.due.format("%Y-%m-%d")),
        "retryDays": c.retry_days,
        "status": c.status.as_str(),
        "type": if c.initial { "INITIAL" } else { "RECURRING" },
        "transactionType": c.transaction_type.as_str(),
        "transactionId": c.transaction_id.clone().unwrap_or_default(),
        "failureReason": c.failure_reason,
        "summary": {"captured": c.captured, "refunded": c.refunded, "cancelled": c.cancelled},
        "history": history,
    });
    if let Some(e) = &a.external_id {
        v["externalAgreementId"] = json!(e);
    }
    if let Some(r) = &c.failure_reason {
        v["failureDescription"] = json!(failure_description(r));
    }
    v
}

// ---------------------------------------------------------------------------------------------
// Webhooks

fn emit_agreement(
    hooks: &mut crate::webhooks::Hub,
    a: &Agreement,
    event_type: &'static str,
    actor: &str,
    at: DateTime<Utc>,
) {
    hooks.emit(&a.msn, event_type, &format!("agreement:{}", a.id), ts(at), || {
        json!({
            "agreementId": a.id,
            "agreementUUID": a.uuid,
            "agreementExternalId": a.external_id,
            "eventType": event_type,
            "occurred": ts(at),
            "actor": actor,
            "msn": a.msn,
        })
    });
}

fn emit_charge(hooks: &mut crate::webhooks::Hub, msn: &str, c: &Charge, event_type: &'static str, at: DateTime<Utc>) {
    hooks.emit(msn, event_type, &format!("agreement:{}", c.agreement_id), ts(at), || {
        json!({
            "agreementId": c.agreement_id,
            "chargeId": c.id,
            "chargeExternalId": c.external_id,
            "amount": c.amount,
            "currency": "NOK",
            "chargeType": if c.initial { "INITIAL" } else { "RECURRING" },
            "eventType": event_type,
            "occurred": ts(at),
            "amountCaptured": c.captured,
            "amountCanceled": c.cancelled,
            "amountRefunded": c.refunded,
            "transactionId": c.transaction_id,
            "failureReason": c.failure_reason,
            "failureCode": Value::Null,
            "msn": msn,
        })
    });
}

// ---------------------------------------------------------------------------------------------
// Request plumbing

fn parse<T: serde::de::DeserializeOwned>(body: &[u8], instance: &str) -> Result<T, Reply> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Ok(v),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return Err(rec_problem(
                    StatusCode::BAD_REQUEST,
                    "invalid-json",
                    "The request body is not valid JSON",
                    instance,
                    &[],
                ));
            }
            let msg = inner.to_string();
            let field = if path == "." { msg.split('`').nth(1).unwrap_or("body").to_owned() } else { path };
            Err(validation(instance, &field, &msg))
        }
    }
}

fn validation(instance: &str, field: &str, reason: &str) -> Reply {
    rec_problem(StatusCode::BAD_REQUEST, "validation-error", "Input validation failed", instance, &[(field, reason)])
}

fn not_found(what: &str, instance: &str) -> Reply {
    rec_problem(StatusCode::NOT_FOUND, "resource-not-found", &format!("{what} not found"), instance, &[])
}

/// Runs a state-changing call under the gateway checks and the idempotency store.
fn modify(
    sim: &SharedSim,
    headers: &HeaderMap,
    method: &Method,
    instance: &str,
    body: &[u8],
    limit: Option<Limit<'_>>,
    op: impl FnOnce(&mut Db, &str, &str, DateTime<Utc>) -> Reply,
) -> Reply {
    let now = sim.clock.now();
    let mut db = sim.lock();
    let msn = match authorize(&db, now, headers, Api::Recurring, instance) {
        Ok(m) => m,
        Err(r) => return r,
    };
    if let (true, Some(l)) = (sim.config.rate_limits, &limit) {
        if let Err(r) = db.recurring.rate.hit(&msn, l, now) {
            return r;
        }
    }
    let key = match idempotency::read_key(headers, Api::Recurring) {
        Ok(k) => k,
        Err(e) => {
            let reason = match e {
                KeyError::Missing => "The Idempotency-Key header is required",
                KeyError::Invalid(r) => r,
            };
            return rec_problem(
                StatusCode::BAD_REQUEST,
                "idempotency-key-header",
                reason,
                instance,
                &[("Idempotency-Key", reason)],
            );
        }
    };
    let fp = match db.idem.check(Api::Recurring, &msn, &key, method, instance, body) {
        Lookup::Replay(r) => return r,
        Lookup::Conflict => {
            return rec_problem(
                StatusCode::CONFLICT,
                "idempotency-conflict",
                "The Idempotency-Key was already used for a different request",
                instance,
                &[],
            )
        }
        Lookup::Fresh(fp) => fp,
    };
    let reply = op(&mut db, &msn, &key, now);
    db.idem.store(Api::Recurring, &msn, &key, fp, &reply);
    reply
}

fn read(
    sim: &SharedSim,
    headers: &HeaderMap,
    instance: &str,
    limit: Limit<'_>,
    f: impl FnOnce(&Db, &str, DateTime<Utc>) -> Reply,
) -> Reply {
    let now = sim.clock.now();
    let mut db = sim.lock();
    let msn = match authorize(&db, now, headers, Api::Recurring, instance) {
        Ok(msn) => msn,
        Err(r) => return r,
    };
    if sim.config.rate_limits {
        if let Err(r) = db.recurring.rate.hit(&msn, &limit, now) {
            return r;
        }
    }
    f(&db, &msn, now)
}

/// Rate-limit counter for a state-changing call (reference §5.8).
fn lim<'a>(op: &'static str, resource: &'a str, per_minute: usize) -> Option<Limit<'a>> {
    Some(Limit { op, resource, per_minute })
}

fn valid_phone(p: &str) -> bool {
    (10..=15).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())
}

fn valid_order_id(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn valid_external_id(s: &str) -> bool {
    (1..=64).contains(&s.chars().count())
}

// ---------------------------------------------------------------------------------------------
// Agreements

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PricingIn {
    #[serde(rename = "type")]
    kind: Option<PricingType>,
    currency: String,
    amount: Option<i64>,
    suggested_max_amount: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InitialChargeIn {
    amount: i64,
    description: String,
    transaction_type: TransactionType,
    order_id: Option<String>,
    external_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DraftIn {
    pricing: PricingIn,
    interval: Option<Interval>,
    merchant_agreement_url: Option<String>,
    merchant_redirect_url: String,
    product_name: String,
    product_description: Option<String>,
    phone_number: Option<String>,
    initial_charge: Option<InitialChargeIn>,
    campaign: Option<Value>,
    scope: Option<String>,
    is_app: Option<bool>,
    skip_landing_page: Option<bool>,
    external_id: Option<String>,
    country_code: Option<String>,
}

fn url_ok(u: &str, https_only: bool) -> bool {
    if u.len() > 1024 {
        return false;
    }
    match url::Url::parse(u) {
        Ok(url) => match url.scheme() {
            "https" => url.host_str().is_some(),
            "http" => matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")),
            "javascript" | "data" | "file" | "ftp" => false,
            _ => !https_only,
        },
        Err(_) => false,
    }
}

fn validate_draft(d: &DraftIn, instance: &str) -> Result<Pricing, Reply> {
    let v = |f: &str, r: &str| Err(validation(instance, f, r));
    if d.pricing.currency != "NOK" {
        return Err(rec_problem(
            StatusCode::BAD_REQUEST,
            "invalid-sale-unit",
            "The currency does not match the sales unit (NOK)",
            instance,
            &[("pricing.currency", "must be NOK for this sales unit")],
        ));
    }
    let kind = d.pricing.kind.unwrap_or(PricingType::Legacy);
    let pricing = match kind {
        PricingType::Legacy => {
            let Some(a) = d.pricing.amount else { return v("pricing.amount", "required for LEGACY pricing") };
            if !(100..=i64::from(i32::MAX)).contains(&a) {
                return v("pricing.amount", "must be at least 100");
            }
            Pricing { kind, amount: Some(a), suggested_max: None, max_amount: None }
        }
        PricingType::Variable => {
            let Some(s) = d.pricing.suggested_max_amount else {
                return Err(rec_problem(
                    StatusCode::BAD_REQUEST,
                    "invalid-suggested-max-amount",
                    "suggestedMaxAmount is required for VARIABLE pricing",
                    instance,
                    &[],
                ));
            };
            if !(100..=2_000_000).contains(&s) {
                return Err(rec_problem(
                    StatusCode::BAD_REQUEST,
                    "invalid-suggested-max-amount",
                    "suggestedMaxAmount must be 100 to 2000000",
                    instance,
                    &[],
                ));
            }
            if d.campaign.is_some() {
                return v("campaign", "campaigns are not allowed with VARIABLE pricing");
            }
            Pricing { kind, amount: None, suggested_max: Some(s), max_amount: None }
        }
        PricingType::Flexible => {
            if d.campaign.is_some() {
                return v("campaign", "campaigns are not allowed with FLEXIBLE pricing");
            }
            Pricing { kind, amount: None, suggested_max: None, max_amount: None }
        }
    };
    if let Some(c) = &d.campaign {
        if let Err(reason) = check_campaign(c) {
            return v("campaign", reason);
        }
    }
    if let Some(i) = &d.interval {
        if !(1..=31).contains(&i.count) {
            return v("interval.count", "must be 1 to 31");
        }
    }
    let name_len = d.product_name.chars().count();
    if name_len == 0 || name_len > 45 {
        return v("productName", "must be 1 to 45 characters");
    }
    if d.product_description.as_ref().is_some_and(|s| s.chars().count() > 100) {
        return v("productDescription", "must be at most 100 characters");
    }
    match &d.merchant_agreement_url {
        None => return v("merchantAgreementUrl", "required for Norwegian merchants"),
        Some(u) if !url_ok(u, true) => {
            return v("merchantAgreementUrl", "must be an https URL of at most 1024 characters")
        }
        Some(_) => {}
    }
    if !url_ok(&d.merchant_redirect_url, false) {
        return v("merchantRedirectUrl", "must be an https URL or app deeplink of at most 1024 characters");
    }
    if d.phone_number.as_ref().is_some_and(|p| !valid_phone(p)) {
        return v("phoneNumber", "must be an MSISDN: 10 to 15 digits");
    }
    if d.external_id.as_ref().is_some_and(|e| !valid_external_id(e)) {
        return v("externalId", "must be 1 to 64 characters");
    }
    if d.country_code.as_ref().is_some_and(|c| c != "NO") {
        return Err(rec_problem(
            StatusCode::BAD_REQUEST,
            "invalid-sale-unit",
            "countryCode must match the sales unit (NO)",
            instance,
            &[],
        ));
    }
    if d.skip_landing_page == Some(true) {
        return Err(rec_problem(
            StatusCode::FORBIDDEN,
            "not-authorized",
            "skipLandingPage requires allow-listing",
            instance,
            &[],
        ));
    }
    if let Some(s) = &d.scope {
        const SCOPES: &[&str] = &["name", "address", "email", "phoneNumber", "birthDate", "nin"];
        if s.split(' ').any(|x| !SCOPES.contains(&x)) {
            return v("scope", "must be a space-separated subset of name address email phoneNumber birthDate nin");
        }
    }
    if let Some(ic) = &d.initial_charge {
        if !(100..=i64::from(i32::MAX)).contains(&ic.amount) {
            return v("initialCharge.amount", "must be at least 100");
        }
        let n = ic.description.chars().count();
        if n == 0 || n > 45 {
            return v("initialCharge.description", "must be 1 to 45 characters");
        }
        if ic.order_id.as_ref().is_some_and(|o| !valid_order_id(o)) {
            return v("initialCharge.orderId", "must match ^[a-zA-Z0-9-]{1,64}$");
        }
        if ic.external_id.as_ref().is_some_and(|e| !valid_external_id(e)) {
            return v("initialCharge.externalId", "must be 1 to 64 characters");
        }
    }
    Ok(pricing)
}

/// Checks a campaign object: a known `type`, a non-negative integer `price` and the fields
/// that type requires (reference §5.2).
fn check_campaign(c: &Value) -> Result<(), &'static str> {
    let price_ok = c.get("price").and_then(Value::as_i64).is_some_and(|p| p >= 0);
    if !price_ok {
        return Err("campaign.price must be a non-negative integer");
    }
    let has = |k: &str| c.get(k).is_some_and(|v| !v.is_null());
    let period_ok = |k: &str| {
        c.get(k)
            .is_some_and(|p| serde_json::from_value::<Interval>(p.clone()).is_ok_and(|i| (1..=31).contains(&i.count)))
    };
    match c.get("type").and_then(Value::as_str) {
        Some("PRICE_CAMPAIGN") if has("end") => Ok(()),
        Some("PERIOD_CAMPAIGN") if period_ok("period") => Ok(()),
        Some("EVENT_CAMPAIGN") if has("eventDate") && has("eventText") => Ok(()),
        Some("FULL_FLEX_CAMPAIGN") if has("end") && period_ok("interval") => Ok(()),
        Some("PRICE_CAMPAIGN" | "PERIOD_CAMPAIGN" | "EVENT_CAMPAIGN" | "FULL_FLEX_CAMPAIGN") => {
            Err("campaign is missing a field its type requires")
        }
        _ => Err("campaign.type must be PRICE_CAMPAIGN, PERIOD_CAMPAIGN, EVENT_CAMPAIGN or FULL_FLEX_CAMPAIGN"),
    }
}

/// The campaign as `GET agreement` shows it: the request fields plus `end` (computed for a
/// period campaign from the creation time) and an `explanation`.
fn campaign_response(c: &Value, created: DateTime<Utc>) -> Value {
    let mut out = c.clone();
    if c.get("type").and_then(Value::as_str) == Some("PERIOD_CAMPAIGN") {
        if let Some(i) = c.get("period").and_then(|p| serde_json::from_value::<Interval>(p.clone()).ok()) {
            let n = u32::try_from(i.count).unwrap_or(1);
            let end = match i.unit {
                Unit::Day => created + chrono::Duration::days(i64::from(n)),
                Unit::Week => created + chrono::Duration::weeks(i64::from(n)),
                Unit::Month => created.checked_add_months(chrono::Months::new(n)).unwrap_or(created),
                Unit::Year => created.checked_add_months(chrono::Months::new(12 * n)).unwrap_or(created),
            };
            out["end"] = json!(ts(end));
        }
    }
    let price = c.get("price").and_then(Value::as_i64).unwrap_or(0);
    out["explanation"] = json!(format!("Campaign price {},{:02} kr", price / 100, price % 100));
    out
}

fn fresh_charge_id(store: &Store, msn: &str) -> String {
    loop {
        let id = new_id("chr-", 7);
        if !store.charge_index.contains_key(&(msn.to_owned(), id.clone())) {
            return id;
        }
    }
}

/// `POST /recurring/v3/agreements` → `201 {agreementId, uuid, vippsConfirmationUrl, chargeId}`.
pub(crate) async fn draft(State(sim): State<SharedSim>, headers: HeaderMap, uri: Uri, body: Bytes) -> Reply {
    let instance = uri.path();
    let base = sim.base_url.clone();
    let timeout = sim.config.payer_timeout;
    modify(&sim, &headers, &Method::POST, instance, &body, lim("recurring.draft", "", 300), |db, msn, key, now| {
        let d: DraftIn = match parse(&body, instance) {
            Ok(d) => d,
            Err(r) => return r,
        };
        let pricing = match validate_draft(&d, instance) {
            Ok(p) => p,
            Err(r) => return r,
        };
        if let Some(o) = d.initial_charge.as_ref().and_then(|ic| ic.order_id.as_ref()) {
            if db.recurring.charge_index.contains_key(&(msn.to_owned(), o.clone())) {
                return rec_problem(
                    StatusCode::CONFLICT,
                    "conflict",
                    &format!("orderId {o} is already used"),
                    instance,
                    &[],
                );
            }
        }
        let id = loop {
            let id = new_id("agr_", 7);
            if !db.recurring.agreements.contains_key(&id) {
                break id;
            }
        };
        let token = db.new_landing(LandingTarget::Agreement { agreement_id: id.clone() });
        let confirmation_url = format!("{base}/landing?token={token}");
        let _ = d.is_app;
        let mut a = Agreement {
            id: id.clone(),
            uuid: uuid::Uuid::new_v4().to_string(),
            msn: msn.to_owned(),
            status: AgreementStatus::Pending,
            product_name: d.product_name,
            product_description: d.product_description,
            pricing,
            interval: d.interval,
            merchant_agreement_url: d.merchant_agreement_url.unwrap_or_default(),
            merchant_redirect_url: d.merchant_redirect_url,
            phone: d.phone_number,
            external_id: d.external_id,
            scope: d.scope,
            campaign: d.campaign,
            created: now,
            start: None,
            stop: None,
            confirmation_url: confirmation_url.clone(),
            sub: None,
            charges: Vec::new(),
        };
        let mut charge_id = None;
        if let Some(ic) = d.initial_charge {
            let cid = ic.order_id.clone().unwrap_or_else(|| fresh_charge_id(&db.recurring, msn));
            db.recurring.charge_index.insert((msn.to_owned(), cid.clone()), id.clone());
            a.charges.push(Charge {
                id: cid.clone(),
                agreement_id: id.clone(),
                external_id: ic.external_id,
                amount: ic.amount,
                description: ic.description,
                due: oslo_today(now),
                retry_days: 0,
                status: ChargeStatus::Pending,
                initial: true,
                transaction_type: ic.transaction_type,
                transaction_id: None,
                failure_reason: None,
                captured: 0,
                refunded: 0,
                cancelled: 0,
                history: vec![HistoryEvent {
                    occurred: now,
                    event: "CREATE",
                    amount: ic.amount,
                    idempotency_key: Some(key.to_owned()),
                    success: true,
                }],
                attempts: 0,
                forced_failures: None,
            });
            charge_id = Some(cid);
        }
        let uuid = a.uuid.clone();
        db.recurring.agreements.insert(id.clone(), a);
        db.recurring.by_msn.entry(msn.to_owned()).or_default().push(id.clone());
        db.schedule(now + timeout, Timer::AgreementExpiry { agreement_id: id.clone() });
        Reply::json(
            StatusCode::CREATED,
            &json!({"agreementId": id, "uuid": uuid, "vippsConfirmationUrl": confirmation_url, "chargeId": charge_id}),
        )
    })
}

fn get_own<'a>(db: &'a Db, msn: &str, id: &str) -> Option<&'a Agreement> {
    db.recurring.agreements.get(id).filter(|a| a.msn == msn)
}

/// `GET /recurring/v3/agreements/{agreementId}` → `200 AgreementResponseV3`.
pub(crate) async fn get_agreement(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Reply {
    let instance = uri.path();
    read(
        &sim,
        &headers,
        instance,
        Limit { op: "recurring.fetch-agreement", resource: &id, per_minute: 120 },
        |db, msn, _| match get_own(db, msn, &id) {
            Some(a) => Reply::json(StatusCode::OK, &agreement_json(a)),
            None => not_found("Agreement", instance),
        },
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListAgreementsQuery {
    status: Option<String>,
    created_after: Option<i64>,
    page_number: Option<usize>,
    page_size: Option<usize>,
}

/// `GET /recurring/v3/agreements?status=&createdAfter=&pageNumber=&pageSize=` → `200 [AgreementResponseV3]`.
/// Without `status`, only `ACTIVE` agreements are listed (as documented). Without
/// `pageNumber`/`pageSize`, long lists come in pages with a `Continuation-Token` header;
/// sending that header back returns the next page.
pub(crate) async fn list_agreements(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    query: Result<Query<ListAgreementsQuery>, QueryRejection>,
) -> Response {
    let instance = uri.path();
    let page_size = sim.config.list_page_size.max(1);
    let now = sim.clock.now();
    let mut db = sim.lock();
    let msn = match authorize(&db, now, &headers, Api::Recurring, instance) {
        Ok(m) => m,
        Err(r) => return r.into_response(),
    };
    if sim.config.rate_limits {
        let limit = Limit { op: "recurring.list-agreements", resource: "", per_minute: 5 };
        if let Err(r) = db.recurring.rate.hit(&msn, &limit, now) {
            return r.into_response();
        }
    }
    let Ok(Query(q)) = query else {
        return validation(instance, "query", "invalid query parameters").into_response();
    };
    let (kind, offset) = match continuation(&db, &headers, &msn, now, instance) {
        Err(r) => return r.into_response(),
        Ok(Some((kind @ ListKind::Agreements { .. }, offset))) => (kind, offset),
        Ok(Some(_)) => {
            return validation(instance, "Continuation-Token", "the token belongs to another list").into_response()
        }
        Ok(None) => {
            let status = match q.status.as_deref() {
                None => AgreementStatus::Active,
                Some(s) => match serde_json::from_value::<AgreementStatus>(json!(s)) {
                    Ok(st) => st,
                    Err(_) => {
                        return validation(instance, "status", "must be PENDING, ACTIVE, STOPPED or EXPIRED")
                            .into_response()
                    }
                },
            };
            (ListKind::Agreements { status, created_after: q.created_after }, 0)
        }
    };
    let ListKind::Agreements { status, created_after } = kind.clone() else {
        return validation(instance, "Continuation-Token", "the token belongs to another list").into_response();
    };
    let all = db
        .recurring
        .by_msn
        .get(&msn)
        .into_iter()
        .flatten()
        .filter_map(|id| db.recurring.agreements.get(id))
        .filter(|a| a.status == status)
        .filter(|a| created_after.is_none_or(|t| a.created.timestamp() > t));
    if q.page_number.is_some() || q.page_size.is_some() {
        let size = q.page_size.unwrap_or(page_size).max(1);
        let page = q.page_number.unwrap_or(1).max(1);
        let list: Vec<Value> = all.skip(size.saturating_mul(page - 1)).take(size).map(agreement_json).collect();
        return Reply::json(StatusCode::OK, &Value::Array(list)).into_response();
    }
    let items: Vec<Value> = all.skip(offset).take(page_size.saturating_add(1)).map(agreement_json).collect();
    paged(&mut db, &msn, kind, offset, items, page_size, now)
}

/// Reads a `Continuation-Token` request header: `Ok(None)` without one; 400 if unknown,
/// expired or another merchant's.
fn continuation(
    db: &Db,
    headers: &HeaderMap,
    msn: &str,
    now: DateTime<Utc>,
    instance: &str,
) -> Result<Option<(ListKind, usize)>, Reply> {
    let Some(raw) = headers.get("Continuation-Token") else { return Ok(None) };
    let found =
        raw.to_str().ok().and_then(|t| db.recurring.continuations.get(t)).filter(|c| c.msn == msn && c.expires > now);
    match found {
        Some(c) => Ok(Some((c.kind.clone(), c.offset))),
        None => Err(validation(instance, "Continuation-Token", "unknown or expired Continuation-Token")),
    }
}

/// Answers one page (`items` holds up to `page_size + 1` entries from `offset`) and, when more
/// remain, a `Continuation-Token` for the rest.
fn paged(
    db: &mut Db,
    msn: &str,
    kind: ListKind,
    offset: usize,
    mut items: Vec<Value>,
    page_size: usize,
    now: DateTime<Utc>,
) -> Response {
    let more = items.len() > page_size;
    items.truncate(page_size);
    let mut reply = Reply::json(StatusCode::OK, &Value::Array(items)).into_response();
    if more {
        let token = uuid::Uuid::new_v4().to_string();
        let conts = &mut db.recurring.continuations;
        conts.retain(|_, c| c.expires > now);
        conts.insert(
            token.clone(),
            Continuation {
                msn: msn.to_owned(),
                kind,
                offset: offset + page_size,
                expires: now + chrono::Duration::minutes(CONTINUATION_LIFETIME_MINUTES),
            },
        );
        if let Ok(v) = HeaderValue::from_str(&token) {
            reply.headers_mut().insert("Continuation-Token", v);
        }
    }
    reply
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PricingUpdateIn {
    amount: Option<i64>,
    suggested_max_amount: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PatchIn {
    product_name: Option<String>,
    product_description: Option<String>,
    merchant_agreement_url: Option<String>,
    external_id: Option<String>,
    status: Option<StopOnly>,
    pricing: Option<PricingUpdateIn>,
    interval: Option<Value>,
}

#[derive(Deserialize, PartialEq, Eq)]
enum StopOnly {
    #[serde(rename = "STOPPED")]
    Stopped,
}

/// `PATCH /recurring/v3/agreements/{agreementId}` → `204`. `{"status": "STOPPED"}` must come alone.
pub(crate) async fn update_agreement(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    body: Bytes,
) -> Reply {
    let instance = uri.path();
    modify(
        &sim,
        &headers,
        &Method::PATCH,
        instance,
        &body,
        lim("recurring.update-agreement", &id, 5),
        |db, msn, _key, now| {
            let p: PatchIn = match parse(&body, instance) {
                Ok(p) => p,
                Err(r) => return r,
            };
            let Some(a) = db.recurring.agreements.get_mut(&id).filter(|a| a.msn == msn) else {
                return not_found("Agreement", instance);
            };
            if a.status != AgreementStatus::Active {
                return rec_problem(
                    StatusCode::BAD_REQUEST,
                    "illegal-agreement-update",
                    &format!("The agreement is {} and cannot be updated", a.status.as_str()),
                    instance,
                    &[],
                );
            }
            let others = p.product_name.is_some()
                || p.product_description.is_some()
                || p.merchant_agreement_url.is_some()
                || p.external_id.is_some()
                || p.pricing.is_some()
                || p.interval.is_some();
            if p.status.is_some() {
                if others {
                    return validation(instance, "status", "status STOPPED must be sent alone");
                }
                stop_agreement(db, &id, "MERCHANT", now);
                return Reply::empty(StatusCode::NO_CONTENT);
            }
            if let Some(n) = &p.product_name {
                if n.is_empty() || n.chars().count() > 45 {
                    return validation(instance, "productName", "must be 1 to 45 characters");
                }
            }
            if p.product_description.as_ref().is_some_and(|s| s.chars().count() > 100) {
                return validation(instance, "productDescription", "must be at most 100 characters");
            }
            if p.merchant_agreement_url.as_ref().is_some_and(|u| !url_ok(u, true)) {
                return validation(instance, "merchantAgreementUrl", "must be an https URL of at most 1024 characters");
            }
            if p.external_id.as_ref().is_some_and(|e| !valid_external_id(e)) {
                return validation(instance, "externalId", "must be 1 to 64 characters");
            }
            if let Some(pr) = &p.pricing {
                match (a.pricing.kind, pr.amount, pr.suggested_max_amount) {
                    (PricingType::Legacy, Some(x), None) if x >= 100 => {}
                    (PricingType::Variable, None, Some(x)) if (100..=2_000_000).contains(&x) => {}
                    (PricingType::Variable, _, Some(_)) => {
                        return rec_problem(
                            StatusCode::BAD_REQUEST,
                            "invalid-suggested-max-amount",
                            "suggestedMaxAmount must be 100 to 2000000",
                            instance,
                            &[],
                        );
                    }
                    (_, None, None) => {}
                    _ => {
                        return validation(
                            instance,
                            "pricing",
                            "amount only for LEGACY (≥ 100), suggestedMaxAmount only for VARIABLE",
                        )
                    }
                }
            }
            let new_interval = match &p.interval {
                None => None,
                Some(v) => match parse_patch_interval(v) {
                    Ok(i) => Some(i),
                    Err(reason) => return validation(instance, "interval", reason),
                },
            };
            if let Some(n) = p.product_name {
                a.product_name = n;
            }
            if let Some(d) = p.product_description {
                a.product_description = Some(d);
            }
            if let Some(u) = p.merchant_agreement_url {
                a.merchant_agreement_url = u;
            }
            if let Some(e) = p.external_id {
                a.external_id = Some(e);
            }
            if let Some(pr) = p.pricing {
                if pr.amount.is_some() {
                    a.pricing.amount = pr.amount;
                }
                if pr.suggested_max_amount.is_some() {
                    a.pricing.suggested_max = pr.suggested_max_amount;
                }
            }
            if let Some(i) = new_interval {
                a.interval = i;
            }
            Reply::empty(StatusCode::NO_CONTENT)
        },
    )
}

fn parse_patch_interval(v: &Value) -> Result<Option<Interval>, &'static str> {
    match v.get("type").and_then(Value::as_str) {
        Some("FLEXIBLE") => Ok(None),
        Some("RECURRING") => {
            let period = v.get("period").ok_or("RECURRING requires period")?;
            let i: Interval = serde_json::from_value(period.clone()).map_err(|_| "period must be {unit, count}")?;
            if !(1..=31).contains(&i.count) {
                return Err("period.count must be 1 to 31");
            }
            Ok(Some(i))
        }
        _ => Err("interval.type must be RECURRING or FLEXIBLE"),
    }
}

/// Stops an agreement. A merchant stop cancels `PENDING`, `DUE` and `RESERVED` charges; a user
/// stop leaves `RESERVED` charges for the merchant.
fn stop_agreement(db: &mut Db, id: &str, actor: &str, at: DateTime<Utc>) {
    let Db { recurring, hooks, .. } = db;
    let Some(a) = recurring.agreements.get_mut(id) else { return };
    a.status = AgreementStatus::Stopped;
    a.stop = Some(at);
    let msn = a.msn.clone();
    emit_agreement(hooks, a, "recurring.agreement-stopped.v1", actor, at);
    for c in &mut a.charges {
        let cancel = match c.status {
            ChargeStatus::Pending | ChargeStatus::Due => true,
            ChargeStatus::Reserved => actor == "MERCHANT",
            _ => false,
        };
        if cancel {
            c.cancelled = c.amount - c.captured;
            c.status = ChargeStatus::Cancelled;
            c.history.push(HistoryEvent {
                occurred: at,
                event: "CANCEL",
                amount: c.cancelled,
                idempotency_key: None,
                success: true,
            });
            emit_charge(hooks, &msn, c, "recurring.charge-canceled.v1", at);
        }
    }
}

/// Why a payer action was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PayerError {
    NotFound,
    NotPending(&'static str),
    BadPhone,
}

/// The payer accepts a `PENDING` agreement: it becomes `ACTIVE` and its initial charge is
/// processed (DIRECT_CAPTURE → CHARGED, RESERVE_CAPTURE → RESERVED). A failing DIRECT_CAPTURE
/// initial charge (see `fail-next-charge`) makes the agreement `EXPIRED` instead.
pub(crate) fn payer_accept(db: &mut Db, id: &str, phone: Option<&str>, at: DateTime<Utc>) -> Result<(), PayerError> {
    if phone.is_some_and(|p| !valid_phone(p)) {
        return Err(PayerError::BadPhone);
    }
    let Db { recurring, hooks, movements, .. } = db;
    let Store { agreements, fail_next, .. } = recurring;
    let a = agreements.get_mut(id).ok_or(PayerError::NotFound)?;
    if a.status != AgreementStatus::Pending {
        return Err(PayerError::NotPending(a.status.as_str()));
    }
    if let Some(p) = phone {
        a.phone = Some(p.to_owned());
    }
    if a.scope.is_some() {
        a.sub = Some(uuid::Uuid::new_v4().to_string());
    }
    if a.pricing.kind == PricingType::Variable {
        a.pricing.max_amount = a.pricing.suggested_max;
    }
    let msn = a.msn.clone();
    let forced = fail_next.remove(id);
    let initial_fails = forced.is_some() && a.charges.iter().any(|c| c.initial);
    if initial_fails {
        let reason = forced.map(|f| f.1).unwrap_or_default();
        let direct = a.charges.iter().any(|c| c.initial && c.transaction_type == TransactionType::DirectCapture);
        if let Some(c) = a.charges.iter_mut().find(|c| c.initial) {
            c.status = ChargeStatus::Failed;
            c.failure_reason = Some(reason);
            c.history.push(HistoryEvent {
                occurred: at,
                event: "FAIL",
                amount: c.amount,
                idempotency_key: None,
                success: false,
            });
            emit_charge(hooks, &msn, c, "recurring.charge-failed.v1", at);
        }
        if direct {
            a.status = AgreementStatus::Expired;
            emit_agreement(hooks, a, "recurring.agreement-expired.v1", "USER", at);
            return Ok(());
        }
    } else if let Some(f) = forced {
        fail_next.insert(id.to_owned(), f);
    }
    a.status = AgreementStatus::Active;
    a.start = Some(at);
    emit_agreement(hooks, a, "recurring.agreement-activated.v1", "USER", at);
    let agreement_id = a.id.clone();
    for c in a.charges.iter_mut().filter(|c| c.initial && c.status == ChargeStatus::Pending) {
        succeed_charge(hooks, movements, &msn, &agreement_id, c, at);
    }
    Ok(())
}

/// The payer rejects a `PENDING` agreement: it becomes `STOPPED` (event `agreement-rejected`).
pub(crate) fn payer_reject(db: &mut Db, id: &str, at: DateTime<Utc>) -> Result<(), PayerError> {
    let Db { recurring, hooks, .. } = db;
    let a = recurring.agreements.get_mut(id).ok_or(PayerError::NotFound)?;
    if a.status != AgreementStatus::Pending {
        return Err(PayerError::NotPending(a.status.as_str()));
    }
    a.status = AgreementStatus::Stopped;
    a.stop = Some(at);
    emit_agreement(hooks, a, "recurring.agreement-rejected.v1", "USER", at);
    let msn = a.msn.clone();
    for c in a.charges.iter_mut().filter(|c| c.status == ChargeStatus::Pending) {
        c.status = ChargeStatus::Cancelled;
        c.cancelled = c.amount;
        c.history.push(HistoryEvent {
            occurred: at,
            event: "CANCEL",
            amount: c.amount,
            idempotency_key: None,
            success: true,
        });
        emit_charge(hooks, &msn, c, "recurring.charge-canceled.v1", at);
    }
    Ok(())
}

/// The payer stops an `ACTIVE` agreement in the app (actor `USER`).
pub(crate) fn payer_stop(db: &mut Db, id: &str, at: DateTime<Utc>) -> Result<(), PayerError> {
    let a = db.recurring.agreements.get(id).ok_or(PayerError::NotFound)?;
    if a.status != AgreementStatus::Active {
        return Err(PayerError::NotPending(a.status.as_str()));
    }
    stop_agreement(db, id, "USER", at);
    Ok(())
}

/// Timer: a `PENDING` agreement expires after the payer timeout.
pub(crate) fn expire_agreement(db: &mut Db, id: &str, at: DateTime<Utc>) {
    let Db { recurring, hooks, .. } = db;
    let Some(a) = recurring.agreements.get_mut(id) else { return };
    if a.status != AgreementStatus::Pending {
        return;
    }
    a.status = AgreementStatus::Expired;
    emit_agreement(hooks, a, "recurring.agreement-expired.v1", "USER", at);
    let msn = a.msn.clone();
    for c in a.charges.iter_mut().filter(|c| c.status == ChargeStatus::Pending) {
        c.status = ChargeStatus::Cancelled;
        c.cancelled = c.amount;
        c.history.push(HistoryEvent {
            occurred: at,
            event: "CANCEL",
            amount: c.amount,
            idempotency_key: None,
            success: true,
        });
        emit_charge(hooks, &msn, c, "recurring.charge-canceled.v1", at);
    }
}

/// `PATCH /recurring/v3/agreements/{agreementId}/accept` `{"phoneNumber"}` (test only) → `204`.
pub(crate) async fn force_accept(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    body: Bytes,
) -> Reply {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct AcceptIn {
        phone_number: String,
    }
    let instance = uri.path();
    modify(&sim, &headers, &Method::PATCH, instance, &body, None, |db, msn, _key, now| {
        let req: AcceptIn = match parse(&body, instance) {
            Ok(r) => r,
            Err(r) => return r,
        };
        if get_own(db, msn, &id).is_none() {
            return not_found("Agreement", instance);
        }
        match payer_accept(db, &id, Some(&req.phone_number), now) {
            Ok(()) => Reply::empty(StatusCode::NO_CONTENT),
            Err(PayerError::NotFound) => not_found("Agreement", instance),
            Err(PayerError::BadPhone) => validation(instance, "phoneNumber", "must be an MSISDN: 10 to 15 digits"),
            Err(PayerError::NotPending(s)) => rec_problem(
                StatusCode::BAD_REQUEST,
                "illegal-agreement-update",
                &format!("The agreement is {s}, not PENDING"),
                instance,
                &[],
            ),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Charges

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct ChargeIn {
    amount: i64,
    transaction_type: TransactionType,
    description: String,
    due: Option<String>,
    retry_days: Option<i64>,
    order_id: Option<String>,
    external_id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    processing_mode: Option<String>,
}

/// Checks a charge request against its agreement; returns the due date. Problems name the rule.
fn validate_charge(
    db: &Db,
    msn: &str,
    a: &Agreement,
    c: &ChargeIn,
    now: DateTime<Utc>,
    instance: &str,
) -> Result<NaiveDate, Reply> {
    let v = |f: &str, r: &str| Err(validation(instance, f, r));
    if a.status != AgreementStatus::Active {
        return Err(rec_problem(
            StatusCode::BAD_REQUEST,
            "charge-creation-failed",
            &format!("The agreement is {}; charges need an ACTIVE agreement", a.status.as_str()),
            instance,
            &[],
        ));
    }
    match c.kind.as_deref() {
        None | Some("RECURRING") => {}
        Some("UNSCHEDULED") => {
            return Err(rec_problem(
                StatusCode::BAD_REQUEST,
                "unsupported-feature",
                "Cannot create a charge with type 'UNSCHEDULED'",
                instance,
                &[],
            ))
        }
        Some(_) => return v("type", "must be RECURRING or UNSCHEDULED"),
    }
    if !(100..=i64::from(i32::MAX)).contains(&c.amount) {
        return v("amount", "must be at least 100");
    }
    let n = c.description.chars().count();
    if n == 0 || n > 45 {
        return v("description", "must be 1 to 45 characters");
    }
    let Some(retry) = c.retry_days else { return v("retryDays", "required") };
    if !(0..=14).contains(&retry) {
        return v("retryDays", "must be 0 to 14");
    }
    match c.processing_mode.as_deref() {
        None | Some("MULTIPLE_ATTEMPTS") => {}
        Some("SINGLE_ATTEMPT") if retry == 0 => {}
        Some("SINGLE_ATTEMPT") => return v("processingMode", "SINGLE_ATTEMPT requires retryDays 0"),
        Some(_) => return v("processingMode", "must be MULTIPLE_ATTEMPTS or SINGLE_ATTEMPT"),
    }
    let Some(due_raw) = &c.due else { return v("due", "required") };
    let Ok(due) = NaiveDate::parse_from_str(due_raw, "%Y-%m-%d") else {
        return v("due", "must be a date YYYY-MM-DD");
    };
    let today = oslo_today(now);
    if due <= today {
        return Err(rec_problem(
            StatusCode::BAD_REQUEST,
            "charge-due-too-soon",
            "The due date must be at least 1 day in the future",
            instance,
            &[],
        ));
    }
    let max = today.checked_add_months(chrono::Months::new(24)).unwrap_or(today);
    if due > max {
        return Err(rec_problem(
            StatusCode::BAD_REQUEST,
            "charge-due-in-too-long",
            "The due date must be at most 2 years in the future",
            instance,
            &[],
        ));
    }
    if let Some(o) = &c.order_id {
        if !valid_order_id(o) {
            return v("orderId", "must match ^[a-zA-Z0-9-]{1,64}$");
        }
        if db.recurring.charge_index.contains_key(&(msn.to_owned(), o.clone())) {
            return Err(rec_problem(
                StatusCode::CONFLICT,
                "conflict",
                &format!("orderId {o} is already used"),
                instance,
                &[],
            ));
        }
    }
    if c.external_id.as_ref().is_some_and(|e| !valid_external_id(e)) {
        return v("externalId", "must be 1 to 64 characters");
    }
    let too_high = |limit: i64| {
        Err(rec_problem(
            StatusCode::BAD_REQUEST,
            "charge-amount-too-high",
            &format!("The amount exceeds the agreement's limit of {limit}"),
            instance,
            &[],
        ))
    };
    match a.pricing.kind {
        PricingType::Legacy => {
            let limit = a.pricing.amount.unwrap_or(0).saturating_mul(5);
            let bucket = interval_bucket(a, due);
            let used: i64 = a
                .charges
                .iter()
                .filter(|x| !x.initial && !matches!(x.status, ChargeStatus::Cancelled | ChargeStatus::Failed))
                .filter(|x| interval_bucket(a, x.due) == bucket)
                .map(|x| x.amount)
                .sum();
            if used + c.amount > limit {
                return too_high(limit);
            }
        }
        PricingType::Variable => {
            let limit = a.pricing.suggested_max.unwrap_or(0).max(a.pricing.max_amount.unwrap_or(0));
            if c.amount > limit {
                return too_high(limit);
            }
        }
        PricingType::Flexible => {}
    }
    Ok(due)
}

/// Index of the agreement interval that contains `d`, counted from the agreement's start.
fn interval_bucket(a: &Agreement, d: NaiveDate) -> i64 {
    let start = a.start.unwrap_or(a.created).with_timezone(&Oslo).date_naive();
    match &a.interval {
        None => (d - start).num_days(), // no interval: each day its own bucket
        Some(i) => {
            let count = i.count.max(1);
            match i.unit {
                Unit::Day => (d - start).num_days().div_euclid(count),
                Unit::Week => (d - start).num_days().div_euclid(7 * count),
                Unit::Month => months_between(start, d).div_euclid(count),
                Unit::Year => months_between(start, d).div_euclid(12 * count),
            }
        }
    }
}

fn months_between(a: NaiveDate, b: NaiveDate) -> i64 {
    let m = (i64::from(b.year()) * 12 + i64::from(b.month0())) - (i64::from(a.year()) * 12 + i64::from(a.month0()));
    if b.day() < a.day() {
        m - 1
    } else {
        m
    }
}

/// Creates a validated charge and schedules its processing; returns its id.
fn insert_charge(
    db: &mut Db,
    msn: &str,
    agreement_id: &str,
    c: ChargeIn,
    due: NaiveDate,
    key: &str,
    now: DateTime<Utc>,
) -> String {
    let id = c.order_id.clone().unwrap_or_else(|| fresh_charge_id(&db.recurring, msn));
    db.recurring.charge_index.insert((msn.to_owned(), id.clone()), agreement_id.to_owned());
    let far = due > oslo_today(now) + chrono::Duration::days(30);
    let charge = Charge {
        id: id.clone(),
        agreement_id: agreement_id.to_owned(),
        external_id: c.external_id,
        amount: c.amount,
        description: c.description,
        due,
        retry_days: c.retry_days.unwrap_or(0),
        status: if far { ChargeStatus::Pending } else { ChargeStatus::Due },
        initial: false,
        transaction_type: c.transaction_type,
        transaction_id: None,
        failure_reason: None,
        captured: 0,
        refunded: 0,
        cancelled: 0,
        history: vec![HistoryEvent {
            occurred: now,
            event: "CREATE",
            amount: c.amount,
            idempotency_key: Some(key.to_owned()),
            success: true,
        }],
        attempts: 0,
        forced_failures: None,
    };
    if let Some(a) = db.recurring.agreements.get_mut(agreement_id) {
        a.charges.push(charge);
    }
    let first = if far { attempt_time(due - chrono::Duration::days(30)) } else { attempt_time(due) };
    db.schedule(first, Timer::ChargeAttempt { agreement_id: agreement_id.to_owned(), charge_id: id.clone() });
    id
}

/// `POST /recurring/v3/agreements/{agreementId}/charges` → `201 {"chargeId"}`.
pub(crate) async fn create_charge(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path(agreement_id): Path<String>,
    body: Bytes,
) -> Reply {
    let instance = uri.path();
    let counted = format!("{agreement_id}:{}", crate::auth::header(&headers, "Idempotency-Key").unwrap_or(""));
    modify(
        &sim,
        &headers,
        &Method::POST,
        instance,
        &body,
        lim("recurring.create-charge", &counted, 2),
        |db, msn, key, now| {
            let c: ChargeIn = match parse(&body, instance) {
                Ok(c) => c,
                Err(r) => return r,
            };
            let Some(a) = get_own(db, msn, &agreement_id) else { return not_found("Agreement", instance) };
            let due = match validate_charge(db, msn, a, &c, now, instance) {
                Ok(d) => d,
                Err(r) => return r,
            };
            let id = insert_charge(db, msn, &agreement_id, c, due, key, now);
            Reply::json(StatusCode::CREATED, &json!({"chargeId": id}))
        },
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchItemIn {
    agreement_id: String,
    order_id: Option<String>,
    #[serde(flatten)]
    charge: Value,
}

/// `POST /recurring/v3/agreements/charges` (async batch, ≤ 2000 items) →
/// `202 {"validCharges": [chargeId], "invalidCharges": [{"chargeBatchItemDto", "errors"}]}`.
pub(crate) async fn create_charges_async(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Reply {
    let instance = uri.path();
    modify(&sim, &headers, &Method::POST, instance, &body, None, |db, msn, key, now| {
        let items: Vec<Value> = match parse(&body, instance) {
            Ok(v) => v,
            Err(r) => return r,
        };
        if items.is_empty() || items.len() > 2000 {
            return validation(instance, "body", "between 1 and 2000 charges per batch");
        }
        let mut valid = Vec::new();
        let mut invalid = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let item_key = format!("{key}-{i}");
            let outcome = (|| {
                let b: BatchItemIn = serde_json::from_value(item.clone()).map_err(|e| e.to_string())?;
                let c: ChargeIn = serde_json::from_value(item.clone()).map_err(|e| e.to_string())?;
                if b.order_id.is_none() {
                    return Err("orderId is required in a batch".to_owned());
                }
                let _ = &b.charge;
                let Some(a) = get_own(db, msn, &b.agreement_id) else {
                    return Err(format!("agreement {} not found", b.agreement_id));
                };
                let due = validate_charge(db, msn, a, &c, now, instance).map_err(|r| {
                    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                    let id =
                        v["type"].as_str().and_then(|t| t.split('#').nth(1)).unwrap_or("validation-error").to_owned();
                    let detail =
                        v["extraDetails"][0]["reason"].as_str().or(v["detail"].as_str()).unwrap_or("").to_owned();
                    format!("{id}: {detail}")
                })?;
                Ok(insert_charge(db, msn, &b.agreement_id, c, due, &item_key, now))
            })();
            match outcome {
                Ok(id) => valid.push(id),
                Err(e) => invalid.push(json!({"chargeBatchItemDto": item, "errors": [e]})),
            }
        }
        Reply::json(StatusCode::ACCEPTED, &json!({"validCharges": valid, "invalidCharges": invalid}))
    })
}

fn find_charge<'a>(db: &'a Db, msn: &str, agreement_id: &str, charge_id: &str) -> Option<(&'a Agreement, &'a Charge)> {
    let a = get_own(db, msn, agreement_id)?;
    let c = a.charges.iter().find(|c| c.id == charge_id)?;
    Some((a, c))
}

/// `GET /recurring/v3/agreements/{agreementId}/charges/{chargeId}` → `200 ChargeResponseV3`.
pub(crate) async fn get_charge(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path((agreement_id, charge_id)): Path<(String, String)>,
) -> Reply {
    let instance = uri.path();
    let counted = format!("{agreement_id}:{charge_id}");
    read(
        &sim,
        &headers,
        instance,
        Limit { op: "recurring.fetch-charge", resource: &counted, per_minute: 10 },
        |db, msn, _| match find_charge(db, msn, &agreement_id, &charge_id) {
            Some((a, c)) => Reply::json(StatusCode::OK, &charge_json(a, c)),
            None => not_found("Charge", instance),
        },
    )
}

/// `GET /recurring/v3/charges/{chargeId}` → `200 ChargeResponseV3`.
pub(crate) async fn get_charge_by_id(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path(charge_id): Path<String>,
) -> Reply {
    let instance = uri.path();
    read(
        &sim,
        &headers,
        instance,
        Limit { op: "recurring.charge-by-id", resource: &charge_id, per_minute: 100 },
        |db, msn, _| {
            let found = db
                .recurring
                .charge_index
                .get(&(msn.to_owned(), charge_id.clone()))
                .and_then(|agreement_id| find_charge(db, msn, agreement_id, &charge_id));
            match found {
                Some((a, c)) => Reply::json(StatusCode::OK, &charge_json(a, c)),
                None => not_found("Charge", instance),
            }
        },
    )
}

#[derive(Deserialize)]
pub(crate) struct ChargeListQuery {
    status: Option<String>,
}

/// `GET /recurring/v3/agreements/{agreementId}/charges[?status=]` → `200 [ChargeResponseV3]`,
/// paged with `Continuation-Token` like the agreement list.
pub(crate) async fn list_charges(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path(agreement_id): Path<String>,
    query: Result<Query<ChargeListQuery>, QueryRejection>,
) -> Response {
    let instance = uri.path();
    let page_size = sim.config.list_page_size.max(1);
    let now = sim.clock.now();
    let mut db = sim.lock();
    let msn = match authorize(&db, now, &headers, Api::Recurring, instance) {
        Ok(m) => m,
        Err(r) => return r.into_response(),
    };
    if sim.config.rate_limits {
        let limit = Limit { op: "recurring.list-charges", resource: &agreement_id, per_minute: 10 };
        if let Err(r) = db.recurring.rate.hit(&msn, &limit, now) {
            return r.into_response();
        }
    }
    let Ok(Query(q)) = query else {
        return validation(instance, "query", "invalid query parameters").into_response();
    };
    let (kind, offset) = match continuation(&db, &headers, &msn, now, instance) {
        Err(r) => return r.into_response(),
        Ok(Some((kind @ ListKind::Charges { .. }, offset))) => (kind, offset),
        Ok(Some(_)) => {
            return validation(instance, "Continuation-Token", "the token belongs to another list").into_response()
        }
        Ok(None) => {
            let status = match q.status {
                None => None,
                Some(s) => match serde_json::from_value::<ChargeStatus>(json!(s)) {
                    Ok(st) => Some(st),
                    Err(_) => return validation(instance, "status", "unknown charge status").into_response(),
                },
            };
            (ListKind::Charges { agreement_id: agreement_id.clone(), status }, 0)
        }
    };
    let ListKind::Charges { agreement_id: listed, status } = kind.clone() else {
        return validation(instance, "Continuation-Token", "the token belongs to another list").into_response();
    };
    if listed != agreement_id {
        return validation(instance, "Continuation-Token", "the token belongs to another agreement").into_response();
    }
    let Some(a) = get_own(&db, &msn, &agreement_id) else { return not_found("Agreement", instance).into_response() };
    let items: Vec<Value> = a
        .charges
        .iter()
        .filter(|c| status.is_none_or(|s| c.status == s))
        .skip(offset)
        .take(page_size.saturating_add(1))
        .map(|c| charge_json(a, c))
        .collect();
    paged(&mut db, &msn, kind, offset, items, page_size, now)
}

/// `DELETE /recurring/v3/agreements/{agreementId}/charges/{chargeId}` → `204`.
pub(crate) async fn cancel_charge(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path((agreement_id, charge_id)): Path<(String, String)>,
) -> Reply {
    let instance = uri.path();
    let counted = format!("{agreement_id}:{charge_id}");
    modify(&sim, &headers, &Method::DELETE, instance, &[], lim("recurring.cancel", &counted, 5), |db, msn, key, now| {
        let Db { recurring, hooks, .. } = db;
        let Some(a) = recurring.agreements.get_mut(&agreement_id).filter(|a| a.msn == msn) else {
            return not_found("Agreement", instance);
        };
        let Some(c) = a.charges.iter_mut().find(|c| c.id == charge_id) else { return not_found("Charge", instance) };
        match c.status {
            ChargeStatus::Pending | ChargeStatus::Due | ChargeStatus::Reserved => {
                c.cancelled = c.amount;
                c.status = ChargeStatus::Cancelled;
            }
            ChargeStatus::PartiallyCaptured => {
                c.cancelled = c.amount - c.captured;
                c.status = ChargeStatus::Charged;
            }
            s => {
                return rec_problem(
                    StatusCode::BAD_REQUEST,
                    "cancel-charge-failed",
                    &format!("A charge in status {} cannot be cancelled", s.as_str()),
                    instance,
                    &[],
                )
            }
        }
        c.history.push(HistoryEvent {
            occurred: now,
            event: "CANCEL",
            amount: c.cancelled,
            idempotency_key: Some(key.to_owned()),
            success: true,
        });
        emit_charge(hooks, msn, c, "recurring.charge-canceled.v1", now);
        Reply::empty(StatusCode::NO_CONTENT)
    })
}

#[derive(Deserialize)]
struct AmountIn {
    amount: i64,
    description: Option<String>,
}

/// `POST .../charges/{chargeId}/capture` `{amount, description}` → `204`.
pub(crate) async fn capture_charge(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path((agreement_id, charge_id)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    let instance = uri.path();
    let counted = format!("{agreement_id}:{charge_id}");
    modify(
        &sim,
        &headers,
        &Method::POST,
        instance,
        &body,
        lim("recurring.capture", &counted, 5),
        |db, msn, key, now| {
            let req: AmountIn = match parse(&body, instance) {
                Ok(r) => r,
                Err(r) => return r,
            };
            let _ = &req.description;
            let Db { recurring, hooks, movements, .. } = db;
            let Some(a) = recurring.agreements.get_mut(&agreement_id).filter(|a| a.msn == msn) else {
                return not_found("Agreement", instance);
            };
            let external = a.external_id.clone();
            let Some(c) = a.charges.iter_mut().find(|c| c.id == charge_id) else {
                return not_found("Charge", instance);
            };
            let fail = |d: &str| rec_problem(StatusCode::BAD_REQUEST, "charge-capture-failed", d, instance, &[]);
            if !matches!(c.status, ChargeStatus::Reserved | ChargeStatus::PartiallyCaptured) {
                return fail(&format!("A charge in status {} cannot be captured", c.status.as_str()));
            }
            let remaining = c.amount - c.captured - c.cancelled;
            if req.amount <= 0 || req.amount > remaining {
                return fail(&format!("The amount must be between 1 and the remaining reservation {remaining}"));
            }
            c.captured += req.amount;
            c.status = if c.captured + c.cancelled >= c.amount {
                ChargeStatus::Charged
            } else {
                ChargeStatus::PartiallyCaptured
            };
            c.history.push(HistoryEvent {
                occurred: now,
                event: "CAPTURE",
                amount: req.amount,
                idempotency_key: Some(key.to_owned()),
                success: true,
            });
            emit_charge(hooks, msn, c, "recurring.charge-captured.v1", now);
            let _ = external;
            movements.entry(msn.to_owned()).or_default().push(MoneyMovement {
                kind: MovementKind::ChargeCapture,
                amount: req.amount,
                currency: "NOK".to_owned(),
                psp_reference: random_digits(10),
                reference: c.id.clone(),
                agreement_id: Some(c.agreement_id.clone()),
                external_id: c.external_id.clone(),
                at: now,
            });
            Reply::empty(StatusCode::NO_CONTENT)
        },
    )
}

/// `POST .../charges/{chargeId}/refund` `{amount, description}` → `204`.
pub(crate) async fn refund_charge(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path((agreement_id, charge_id)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    let instance = uri.path();
    let counted = format!("{agreement_id}:{charge_id}");
    modify(&sim, &headers, &Method::POST, instance, &body, lim("recurring.refund", &counted, 5), |db, msn, key, now| {
        let req: AmountIn = match parse(&body, instance) {
            Ok(r) => r,
            Err(r) => return r,
        };
        if req.description.as_deref().is_none_or(str::is_empty) {
            return validation(instance, "description", "required");
        }
        let Db { recurring, hooks, movements, .. } = db;
        let Some(a) = recurring.agreements.get_mut(&agreement_id).filter(|a| a.msn == msn) else {
            return not_found("Agreement", instance);
        };
        let Some(c) = a.charges.iter_mut().find(|c| c.id == charge_id) else { return not_found("Charge", instance) };
        let fail = |d: &str| rec_problem(StatusCode::BAD_REQUEST, "operation-failed", d, instance, &[]);
        if !matches!(
            c.status,
            ChargeStatus::Charged | ChargeStatus::PartiallyRefunded | ChargeStatus::PartiallyCaptured
        ) {
            return fail(&format!("A charge in status {} cannot be refunded", c.status.as_str()));
        }
        let refundable = c.captured - c.refunded;
        if req.amount <= 0 || req.amount > refundable {
            return fail(&format!("The amount must be between 1 and the refundable {refundable}"));
        }
        c.refunded += req.amount;
        c.status = if c.refunded >= c.captured { ChargeStatus::Refunded } else { ChargeStatus::PartiallyRefunded };
        c.history.push(HistoryEvent {
            occurred: now,
            event: "REFUND",
            amount: req.amount,
            idempotency_key: Some(key.to_owned()),
            success: true,
        });
        emit_charge(hooks, msn, c, "recurring.charge-refunded.v1", now);
        movements.entry(msn.to_owned()).or_default().push(MoneyMovement {
            kind: MovementKind::ChargeRefund,
            amount: req.amount,
            currency: "NOK".to_owned(),
            psp_reference: random_digits(10),
            reference: c.id.clone(),
            agreement_id: Some(c.agreement_id.clone()),
            external_id: c.external_id.clone(),
            at: now,
        });
        Reply::empty(StatusCode::NO_CONTENT)
    })
}

// ---------------------------------------------------------------------------------------------
// Processing on the virtual clock

fn succeed_charge(
    hooks: &mut crate::webhooks::Hub,
    movements: &mut HashMap<String, Vec<MoneyMovement>>,
    msn: &str,
    agreement_id: &str,
    c: &mut Charge,
    at: DateTime<Utc>,
) {
    let tx = random_digits(10);
    c.transaction_id = Some(tx.clone());
    c.failure_reason = None;
    let key = Some(format!("{}-{agreement_id}-ProcessPayment", c.id));
    match c.transaction_type {
        TransactionType::DirectCapture => {
            c.status = ChargeStatus::Charged;
            c.captured = c.amount;
            c.history.push(HistoryEvent {
                occurred: at,
                event: "RESERVE",
                amount: c.amount,
                idempotency_key: key.clone(),
                success: true,
            });
            c.history.push(HistoryEvent {
                occurred: at,
                event: "CAPTURE",
                amount: c.amount,
                idempotency_key: key,
                success: true,
            });
            emit_charge(hooks, msn, c, "recurring.charge-captured.v1", at);
            movements.entry(msn.to_owned()).or_default().push(MoneyMovement {
                kind: MovementKind::ChargeCapture,
                amount: c.amount,
                currency: "NOK".to_owned(),
                psp_reference: tx,
                reference: c.id.clone(),
                agreement_id: Some(agreement_id.to_owned()),
                external_id: c.external_id.clone(),
                at,
            });
        }
        TransactionType::ReserveCapture => {
            c.status = ChargeStatus::Reserved;
            c.history.push(HistoryEvent {
                occurred: at,
                event: "RESERVE",
                amount: c.amount,
                idempotency_key: key,
                success: true,
            });
            emit_charge(hooks, msn, c, "recurring.charge-reserved.v1", at);
        }
    }
}

/// Timer: moves a `PENDING` charge to `DUE` when its due date is near, and attempts a `DUE`
/// charge on its due date (then daily while retry days remain; afterwards `FAILED`).
pub(crate) fn attempt_charge(db: &mut Db, agreement_id: &str, charge_id: &str, at: DateTime<Utc>) {
    let mut reschedule = None;
    {
        let Db { recurring, hooks, movements, .. } = &mut *db;
        let Store { agreements, fail_next, .. } = recurring;
        let Some(a) = agreements.get_mut(agreement_id) else { return };
        let msn = a.msn.clone();
        let max_amount = (a.pricing.kind == PricingType::Variable)
            .then(|| a.pricing.max_amount.or(a.pricing.suggested_max).unwrap_or(0));
        let Some(c) = a.charges.iter_mut().find(|c| c.id == charge_id) else { return };
        let due_at = attempt_time(c.due);
        if c.status == ChargeStatus::Pending {
            c.status = ChargeStatus::Due;
            if at < due_at {
                reschedule = Some(due_at);
            }
        }
        if reschedule.is_none() && c.status == ChargeStatus::Due {
            if c.attempts == 0 {
                if let Some(f) = fail_next.remove(agreement_id) {
                    c.forced_failures = Some(f);
                }
            }
            c.attempts += 1;
            let mut failure = None;
            if let Some((left, reason)) = &mut c.forced_failures {
                if *left > 0 {
                    *left -= 1;
                    failure = Some(reason.clone());
                }
            }
            if failure.is_none() && max_amount.is_some_and(|m| c.amount > m) {
                failure = Some("charge_amount_too_high".to_owned());
            }
            match failure {
                None => succeed_charge(hooks, movements, &msn, agreement_id, c, at),
                Some(reason) if c.attempts > c.retry_days => {
                    c.status = ChargeStatus::Failed;
                    c.failure_reason = Some(reason);
                    c.history.push(HistoryEvent {
                        occurred: at,
                        event: "FAIL",
                        amount: c.amount,
                        idempotency_key: None,
                        success: false,
                    });
                    emit_charge(hooks, &msn, c, "recurring.charge-failed.v1", at);
                }
                Some(reason) => {
                    c.failure_reason = Some(reason);
                    reschedule = Some(attempt_time(c.due + chrono::Duration::days(c.attempts)));
                }
            }
        }
    }
    if let Some(t) = reschedule {
        db.schedule(t, Timer::ChargeAttempt { agreement_id: agreement_id.to_owned(), charge_id: charge_id.to_owned() });
    }
}

// ---------------------------------------------------------------------------------------------
// Controls

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PayerBody {
    phone_number: Option<String>,
}

/// `POST /_sim/agreements/{agreementId}/accept|reject|stop` with optional `{"phoneNumber"}` →
/// `200` with the agreement as `GET` shows it; `409` if the agreement is in the wrong status.
pub(crate) async fn sim_action(
    State(sim): State<SharedSim>,
    Path((id, action)): Path<(String, String)>,
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
    let result = match action.as_str() {
        "accept" => payer_accept(&mut db, &id, req.phone_number.as_deref(), now),
        "reject" => payer_reject(&mut db, &id, now),
        "stop" => payer_stop(&mut db, &id, now),
        _ => return sim_error(StatusCode::NOT_FOUND, "action must be accept, reject or stop"),
    };
    match result {
        Ok(()) => match db.recurring.agreements.get(&id) {
            Some(a) => Reply::json(StatusCode::OK, &agreement_json(a)),
            None => sim_error(StatusCode::NOT_FOUND, "no such agreement"),
        },
        Err(PayerError::NotFound) => sim_error(StatusCode::NOT_FOUND, "no such agreement"),
        Err(PayerError::BadPhone) => sim_error(StatusCode::BAD_REQUEST, "phoneNumber must be 10 to 15 digits"),
        Err(PayerError::NotPending(s)) => sim_error(StatusCode::CONFLICT, &format!("the agreement is {s}")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FailNext {
    reason: String,
    attempts: Option<u32>,
}

/// `POST /_sim/agreements/{agreementId}/fail-next-charge` `{"reason": R, "attempts": N?}`: the
/// next charge processed on the agreement (the initial charge at acceptance, else the next due
/// charge) fails with `R` on its first `N` attempts (default: every attempt, so it ends `FAILED`).
pub(crate) async fn sim_fail_next_charge(State(sim): State<SharedSim>, Path(id): Path<String>, body: Bytes) -> Reply {
    let req: FailNext = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return sim_error(StatusCode::BAD_REQUEST, &format!("expected {{\"reason\": R, \"attempts\": N}}: {e}"))
        }
    };
    if !FAILURE_REASONS.contains(&req.reason.as_str()) {
        return sim_error(StatusCode::BAD_REQUEST, &format!("reason must be one of {}", FAILURE_REASONS.join(", ")));
    }
    match set_fail_next(&mut sim.lock(), &id, &req.reason, req.attempts) {
        Ok(()) => Reply::empty(StatusCode::NO_CONTENT),
        Err(e) => sim_error(StatusCode::NOT_FOUND, e),
    }
}

/// Arms a forced failure for the next charge processed on `agreement_id`.
pub(crate) fn set_fail_next(
    db: &mut Db,
    agreement_id: &str,
    reason: &str,
    attempts: Option<u32>,
) -> Result<(), &'static str> {
    if !FAILURE_REASONS.contains(&reason) {
        return Err("unknown failure reason");
    }
    if !db.recurring.agreements.contains_key(agreement_id) {
        return Err("no such agreement");
    }
    db.recurring.fail_next.insert(agreement_id.to_owned(), (attempts.unwrap_or(u32::MAX), reason.to_owned()));
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn months_between_counts_whole_months() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(months_between(d("2026-01-15"), d("2026-02-14")), 0);
        assert_eq!(months_between(d("2026-01-15"), d("2026-02-15")), 1);
        assert_eq!(months_between(d("2026-01-15"), d("2027-01-15")), 12);
    }

    #[test]
    fn charges_are_attempted_at_midnight_norwegian_time() {
        let d = NaiveDate::from_ymd_opt(2026, 7, 1).unwrap();
        assert_eq!(ts(attempt_time(d)), "2026-06-30T22:00:00Z");
        let w = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        assert_eq!(ts(attempt_time(w)), "2025-12-31T23:00:00Z");
    }
}
