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
    /// Forced capture failures per (MSN, reference): remaining count and error code.
    pub(crate) fail_capture: HashMap<(String, String), (u32, &'static str)>,
    /// Set by an operation whose failure is transient (6260/6280): its reply is not kept under
    /// the idempotency key, so a retry with the same key runs again (reference §1.6).
    pub(crate) transient: bool,
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
    record_event(hooks, name, amount, p, key, at, true)
}

/// Like [`push_event`], with the event's `success` flag given: a failed operation attempt is
/// logged (and sent) with `success: false`.
fn record_event(
    hooks: &mut crate::webhooks::Hub,
    name: &'static str,
    amount: i64,
    p: &mut Payment,
    key: Option<String>,
    at: DateTime<Utc>,
    success: bool,
) -> String {
    let psp = if name == "CREATED" { p.psp_reference.clone() } else { random_digits(10) };
    let event = PaymentEvent { psp_reference: psp.clone(), name, amount, timestamp: at, idempotency_key: key, success };
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

mod approval;
mod handlers;
mod request;

pub(crate) use approval::*;
pub(crate) use handlers::*;
pub(crate) use request::*;

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
