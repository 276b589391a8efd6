//! Cacheable HTTP replies and the error bodies of each API family (reference §1.4).
//!
//! A [`Reply`] is plain data so that the idempotency store can keep it and replay it byte for byte.

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde_json::{json, Value};

/// An HTTP response as plain data.
#[derive(Clone, Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) content_type: Option<&'static str>,
    pub(crate) body: Bytes,
    pub(crate) retry_after: Option<u64>,
}

pub(crate) const JSON: &str = "application/json";
pub(crate) const PROBLEM: &str = "application/problem+json";

impl Reply {
    /// A JSON reply with the given status.
    pub(crate) fn json(status: StatusCode, value: &Value) -> Reply {
        Reply::raw_json(status, JSON, value)
    }

    fn raw_json(status: StatusCode, ctype: &'static str, value: &Value) -> Reply {
        let body = serde_json::to_vec(value).unwrap_or_default();
        Reply { status, content_type: Some(ctype), body: Bytes::from(body), retry_after: None }
    }

    /// A reply with no body.
    pub(crate) fn empty(status: StatusCode) -> Reply {
        Reply { status, content_type: None, body: Bytes::new(), retry_after: None }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut resp = Response::new(axum::body::Body::from(self.body));
        *resp.status_mut() = self.status;
        if let Some(ct) = self.content_type {
            resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

fn status_title(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Error")
}

/// A W3C trace id like the ones Vipps returns in `traceId`.
pub(crate) fn trace_id() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("00-{a}-{}-01", &b[..16])
}

/// ePayment Problem JSON with an `ErrorCode` in `extraDetails` (reference §3.9).
pub(crate) fn ep_error(status: StatusCode, code: &str, title: &str, detail: &str, instance: &str) -> Reply {
    Reply::raw_json(
        status,
        PROBLEM,
        &json!({
            "type": format!("https://httpstatuses.io/{}", status.as_u16()),
            "title": title,
            "detail": detail,
            "instance": instance,
            "status": status.as_u16(),
            "extraDetails": [{"name": "ErrorCode", "reason": code}],
            "traceId": trace_id(),
        }),
    )
}

/// ePayment validation problem: `extraDetails` names the field and the violated rule, no code.
pub(crate) fn ep_validation(instance: &str, field: &str, reason: &str) -> Reply {
    Reply::raw_json(
        StatusCode::BAD_REQUEST,
        PROBLEM,
        &json!({
            "type": "https://httpstatuses.io/400",
            "title": "Bad Request",
            "detail": "One or more validation errors occurred.",
            "instance": instance,
            "status": 400,
            "extraDetails": [{"name": field, "reason": reason}],
            "traceId": trace_id(),
        }),
    )
}

/// ePayment problem without an error code (e.g. 403).
pub(crate) fn ep_plain(status: StatusCode, detail: &str, instance: &str) -> Reply {
    Reply::raw_json(
        status,
        PROBLEM,
        &json!({
            "type": format!("https://httpstatuses.io/{}", status.as_u16()),
            "title": status_title(status),
            "detail": detail,
            "instance": instance,
            "status": status.as_u16(),
            "traceId": trace_id(),
        }),
    )
}

/// Base of the Recurring problem `type` URIs (reference §5.10).
pub(crate) const REC_PROBLEMS: &str =
    "https://developer.vippsmobilepay.com/docs/APIs/recurring-api/recurring-api-problems#";

/// Recurring v3 `ErrorV3` problem with the identifier `id` (e.g. `charge-due-too-soon`).
pub(crate) fn rec_problem(status: StatusCode, id: &str, detail: &str, instance: &str, extra: &[(&str, &str)]) -> Reply {
    let extra: Vec<Value> = extra.iter().map(|(n, r)| json!({"name": n, "reason": r})).collect();
    let mut body = json!({
        "type": format!("{REC_PROBLEMS}{id}"),
        "title": status_title(status),
        "status": status.as_u16(),
        "detail": detail,
        "instance": instance,
        "contextId": uuid::Uuid::new_v4().to_string(),
    });
    if !extra.is_empty() {
        body["extraDetails"] = Value::Array(extra);
    }
    Reply::raw_json(status, PROBLEM, &body)
}

/// Webhooks API `ProblemDetails`.
pub(crate) fn wh_problem(status: StatusCode, detail: &str, instance: &str, extra: &[(&str, &str)]) -> Reply {
    let extra: Vec<Value> = extra.iter().map(|(n, r)| json!({"name": n, "reason": r})).collect();
    Reply::raw_json(
        status,
        PROBLEM,
        &json!({
            "type": format!("https://httpstatuses.io/{}", status.as_u16()),
            "title": status_title(status),
            "status": status.as_u16(),
            "detail": detail,
            "instance": instance,
            "traceId": trace_id(),
            "extraDetails": extra,
        }),
    )
}

/// Gateway (Azure API Management) error, as returned before a request reaches the API.
pub(crate) fn azure_error(status: StatusCode, message: &str) -> Reply {
    Reply::json(status, &json!({"statusCode": status.as_u16(), "message": message}))
}

/// Recurring's documented `ErrorFromAzure` body.
pub(crate) fn azure_error_recurring(status: StatusCode, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({
            "responseInfo": {"responseCode": status.as_u16(), "responseMessage": status_title(status)},
            "result": {"message": message},
        }),
    )
}

/// The access token endpoint's Azure-AD style error body (reference §1.4).
pub(crate) fn token_error(status: StatusCode, error: &str, description: &str) -> Reply {
    Reply::json(
        status,
        &json!({
            "error": error,
            "error_description": description,
            "error_codes": [if status == StatusCode::UNAUTHORIZED { 7_000_215 } else { 900_144 }],
            "timestamp": chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string(),
            "trace_id": uuid::Uuid::new_v4().to_string(),
            "correlation_id": uuid::Uuid::new_v4().to_string(),
            "error_uri": "https://login.microsoftonline.com/error",
        }),
    )
}

/// Report API 401 body `{code, message}`.
pub(crate) fn report_unauthorized() -> Reply {
    Reply::json(StatusCode::UNAUTHORIZED, &json!({"code": "Unauthorized", "message": "Please check your API keys"}))
}

/// Problem for `/_sim/` controls.
pub(crate) fn sim_error(status: StatusCode, detail: &str) -> Reply {
    Reply::raw_json(
        status,
        PROBLEM,
        &json!({"type": "about:blank", "title": status_title(status), "status": status.as_u16(), "detail": detail}),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_epayment_error_carries_its_code_in_extra_details() {
        let r = ep_error(StatusCode::BAD_REQUEST, "6090", "Too much", "d", "/x");
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["extraDetails"][0]["name"], "ErrorCode");
        assert_eq!(v["extraDetails"][0]["reason"], "6090");
        assert_eq!(v["status"], 400);
        assert!(v["traceId"].as_str().unwrap().starts_with("00-"));
        assert_eq!(r.content_type, Some(PROBLEM));
    }

    #[test]
    fn a_recurring_problem_type_ends_with_its_identifier() {
        let r = rec_problem(StatusCode::BAD_REQUEST, "charge-due-too-soon", "d", "/v3/x", &[]);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert!(v["type"].as_str().unwrap().ends_with("#charge-due-too-soon"));
        assert!(v.get("extraDetails").is_none());
    }
}
