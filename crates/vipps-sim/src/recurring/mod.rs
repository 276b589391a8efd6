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
    /// Per agreement: how many more charges of async batches to accept and then drop, and the reason sent.
    drop_next_batch: HashMap<String, (u32, String)>,
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

mod agreements;
mod charges;
mod controls;
mod processing;

pub(crate) use agreements::*;
pub(crate) use charges::*;
pub(crate) use controls::*;
pub(crate) use processing::*;

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
