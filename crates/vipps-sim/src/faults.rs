//! Fault injection: for a path prefix, the next N requests fail in a chosen way, or (with `percent`) each
//! request fails with that chance until N have failed: "30 % of Vipps calls fail" for a fault run.
//!
//! Controls: `POST /_sim/faults` adds a rule, `GET /_sim/faults` lists the rules with their
//! remaining counts, `DELETE /_sim/faults` removes them all. `/_sim/` paths are never faulted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use axum::extract::State;
use bytes::Bytes;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::reply::{sim_error, Reply};
use crate::state::SharedSim;

/// What happens to a faulted request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub(crate) enum FaultKind {
    /// Respond `500` with Vipps' internal-error body; the operation does not happen.
    #[serde(rename = "500")]
    ServerError,
    /// Respond `423 Locked` (ePayment 6160 "Order processing"); the operation does not happen.
    #[serde(rename = "423")]
    Locked,
    /// Respond `409` with Recurring's generic `conflict` problem (a conflicting request or state, not a
    /// reused `orderId`); the operation does not happen.
    #[serde(rename = "409")]
    Conflict,
    /// Respond `502` with an HTML body, as a gateway in front of Vipps might.
    #[serde(rename = "502")]
    BadGateway,
    /// Respond `429` with `Retry-After: retryAfterSeconds`; the operation does not happen.
    #[serde(rename = "429", rename_all = "camelCase")]
    TooManyRequests { retry_after_seconds: u64 },
    /// The operation happens, then the response is held back for `delayMs` milliseconds
    /// (longer than the client's timeout: "timed out after Vipps did it").
    #[serde(rename = "delay", rename_all = "camelCase")]
    Delay { delay_ms: u64 },
    /// The connection is closed without a response; the operation does not happen.
    #[serde(rename = "drop")]
    Drop,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    id: u64,
    path_prefix: String,
    #[serde(flatten)]
    kind: FaultKind,
    remaining: u32,
    percent: u8,
}

/// The active fault rules.
#[derive(Default)]
pub(crate) struct Faults {
    any: AtomicBool,
    rules: Mutex<(u64, Vec<Rule>)>,
}

impl Faults {
    /// Consumes one use of the first rule matching `path`, if any.
    pub(crate) fn take(&self, path: &str) -> Option<FaultKind> {
        if !self.any.load(Ordering::Relaxed) || path.starts_with("/_sim/") {
            return None;
        }
        let mut guard = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        let rules = &mut guard.1;
        // A rule with a chance below 100 % that does not fire leaves the request to the rules after it.
        let idx = rules.iter().position(|r| {
            path.starts_with(&r.path_prefix)
                && (r.percent >= 100 || rand::random::<f64>() * 100.0 < f64::from(r.percent))
        })?;
        let kind = rules[idx].kind;
        rules[idx].remaining -= 1;
        if rules[idx].remaining == 0 {
            rules.remove(idx);
        }
        if rules.is_empty() {
            self.any.store(false, Ordering::Relaxed);
        }
        Some(kind)
    }

    fn add(&self, path_prefix: String, kind: FaultKind, times: u32, percent: u8) -> u64 {
        let mut guard = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        guard.0 += 1;
        let id = guard.0;
        guard.1.push(Rule { id, path_prefix, kind, remaining: times, percent });
        self.any.store(true, Ordering::Relaxed);
        id
    }

    fn list(&self) -> Vec<Rule> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner()).1.clone()
    }

    fn clear(&self) {
        self.rules.lock().unwrap_or_else(|e| e.into_inner()).1.clear();
        self.any.store(false, Ordering::Relaxed);
    }
}

/// The reply sent for a `500` or `429` fault.
pub(crate) fn fault_reply(kind: FaultKind) -> Option<Reply> {
    match kind {
        FaultKind::ServerError => Some(Reply::json(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({
                "type": "https://httpstatuses.io/500",
                "title": "Internal Server Error",
                "status": 500,
                "detail": "An internal error occurred (injected by vipps-sim)",
                "extraDetails": [{"name": "ErrorCode", "reason": "3010"}],
                "traceId": crate::reply::trace_id(),
            }),
        )),
        FaultKind::Locked => Some(Reply::json(
            StatusCode::LOCKED,
            &json!({
                "type": "https://httpstatuses.io/423",
                "title": "Order processing",
                "status": 423,
                "detail": "Another operation on this payment is in progress (injected by vipps-sim)",
                "extraDetails": [{"name": "ErrorCode", "reason": "6160"}],
                "traceId": crate::reply::trace_id(),
            }),
        )),
        FaultKind::Conflict => Some(Reply::json(
            StatusCode::CONFLICT,
            &json!({
                "type": "https://developer.vippsmobilepay.com/docs/APIs/recurring-api/recurring-api-problems#conflict",
                "title": "Conflict",
                "status": 409,
                "detail": "The requested operation could not be performed due to a conflicting request/state (injected by vipps-sim)",
                "instance": "",
                "contextId": uuid::Uuid::new_v4().to_string(),
            }),
        )),
        FaultKind::BadGateway => Some(Reply {
            status: StatusCode::BAD_GATEWAY,
            content_type: Some("text/html"),
            body: bytes::Bytes::from_static(b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
            retry_after: None,
        }),
        FaultKind::TooManyRequests { retry_after_seconds } => {
            let mut r = Reply::json(
                StatusCode::TOO_MANY_REQUESTS,
                &json!({"statusCode": 429, "message": "Rate limit is exceeded. Try again later."}),
            );
            r.retry_after = Some(retry_after_seconds);
            Some(r)
        }
        FaultKind::Delay { .. } | FaultKind::Drop => None,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddFault {
    path_prefix: String,
    #[serde(flatten)]
    kind: FaultKind,
    #[serde(default = "one")]
    times: u32,
    #[serde(default = "always")]
    percent: u8,
}

fn one() -> u32 {
    1
}

fn always() -> u8 {
    100
}

/// `POST /_sim/faults` `{"pathPrefix": "/epayment/v1/payments", "kind": "500"|"502"|"409"|"423"|"429"|"delay"|"drop",
/// "times": 1, "percent": 100, "retryAfterSeconds": 2, "delayMs": 15000}` → `201 {"id": N}`. With `percent` below
/// 100 each matching request fails with that chance (`times` counts the ones that did).
pub(crate) async fn add(State(sim): State<SharedSim>, body: Bytes) -> Reply {
    let req: AddFault = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return sim_error(StatusCode::BAD_REQUEST, &format!("invalid fault rule: {e}")),
    };
    if !req.path_prefix.starts_with('/') || req.path_prefix.starts_with("/_sim") {
        return sim_error(StatusCode::BAD_REQUEST, "pathPrefix must start with / and not be a /_sim path");
    }
    if req.times == 0 {
        return sim_error(StatusCode::BAD_REQUEST, "times must be at least 1");
    }
    if !(1..=100).contains(&req.percent) {
        return sim_error(StatusCode::BAD_REQUEST, "percent must be from 1 to 100");
    }
    let id = sim.faults.add(req.path_prefix, req.kind, req.times, req.percent);
    Reply::json(StatusCode::CREATED, &json!({"id": id}))
}

/// `GET /_sim/faults` → `{"faults": [{id, pathPrefix, kind, remaining, ...}]}`.
pub(crate) async fn list(State(sim): State<SharedSim>) -> Reply {
    Reply::json(StatusCode::OK, &json!({"faults": sim.faults.list()}))
}

/// `DELETE /_sim/faults` removes every rule → `204`.
pub(crate) async fn clear(State(sim): State<SharedSim>) -> Reply {
    sim.faults.clear();
    Reply::empty(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_applies_to_its_prefix_for_the_given_number_of_times() {
        let f = Faults::default();
        assert_eq!(f.take("/epayment/v1/payments"), None);
        f.add("/epayment/".into(), FaultKind::Drop, 2, 100);
        assert_eq!(f.take("/recurring/v3/agreements"), None);
        assert_eq!(f.take("/_sim/clock"), None);
        assert_eq!(f.take("/epayment/v1/payments"), Some(FaultKind::Drop));
        assert_eq!(f.take("/epayment/v1/payments/x"), Some(FaultKind::Drop));
        assert_eq!(f.take("/epayment/v1/payments"), None);
    }

    #[test]
    fn a_rule_with_a_percentage_fails_about_that_share_and_leaves_the_rest_to_later_rules() {
        let f = Faults::default();
        f.add("/".into(), FaultKind::ServerError, u32::MAX, 30);
        f.add("/".into(), FaultKind::Drop, u32::MAX, 50);
        let taken: Vec<_> = (0..10_000).map(|_| f.take("/epayment/v1/payments")).collect();
        let count = |kind| taken.iter().filter(|t| **t == kind).count();
        // 30 % of all, then half of the remaining 70 %: 35 %; the rest pass. Bounds are ±5 standard deviations.
        assert!(
            (2_750..=3_250).contains(&count(Some(FaultKind::ServerError))),
            "{}",
            count(Some(FaultKind::ServerError))
        );
        assert!((3_250..=3_750).contains(&count(Some(FaultKind::Drop))), "{}", count(Some(FaultKind::Drop)));
        assert!((3_250..=3_750).contains(&count(None)), "{}", count(None));
    }

    #[test]
    fn fault_rules_parse_from_the_documented_json() {
        let r: Result<AddFault, _> =
            serde_json::from_str(r#"{"pathPrefix":"/x","kind":"429","retryAfterSeconds":3,"times":2}"#);
        assert!(matches!(
            r,
            Ok(AddFault { kind: FaultKind::TooManyRequests { retry_after_seconds: 3 }, times: 2, .. })
        ));
        let r: Result<AddFault, _> = serde_json::from_str(r#"{"pathPrefix":"/x","kind":"teapot"}"#);
        assert!(r.is_err());
    }
}
