//! The Payment API's IdempotencyKey: a request sent again with the same key gets the first answer, and the work
//! behind a claimed key finishes whatever becomes of the HTTP request.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::FutureExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{envelope, internal};
use crate::api::error::ApiError;
use crate::state::AppState;
use crate::store::idempotency::{self, Claim, Lease};

pub(super) fn idempotency_key(headers: &HeaderMap, body: &Value) -> Result<Option<String>, ApiError> {
    let header = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    let sent = body.get("IdempotencyKey").and_then(Value::as_str);
    // The length counts as sent: a blank key is no key, but a blank of more than 100 characters is refused
    // like any other key too long (the document's `maxLength`), never silently taken as none.
    let too_long = |k: &str| k.chars().count() > 100;
    let from_header = header.filter(|k| !too_long(k)).map(str::trim).filter(|k| !k.is_empty());
    let from_body = sent.filter(|k| !too_long(k)).map(str::trim).filter(|k| !k.is_empty());
    let key = if header.is_some_and(too_long) || sent.is_some_and(too_long) {
        Some(header.filter(|k| too_long(k)).or(sent).unwrap_or_default())
    } else {
        from_header.or(from_body)
    };
    match key {
        Some(k) if too_long(k) || k.chars().any(char::is_control) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "200",
            "IdempotencyKey must be at most 100 printable characters",
            Some("IdempotencyKey".into()),
        )),
        other => Ok(other.map(str::to_owned)),
    }
}

/// Runs `work` at most once per idempotency key: a repeat of the same request gets the first answer; a
/// different request with the key gets 409.
///
/// A claimed request's work runs in a task of its own, which stores the answer (or gives the key up) whatever
/// becomes of the HTTP request: past payhub's time limit (`request_timeout_ms`), or when the caller hangs up,
/// the work still finishes and a repeat gets its answer. A repeat that comes while the work runs waits up to
/// [`repeat_wait`] for the answer, then gets 409 (code `409`, `Retry-After: 1`) saying the request is still
/// being processed: 409 rather than 202 because the envelope has no answer to give yet, and FinDock callers
/// treat 2xx as done. A key whose holder died is taken again when its [`lease`] runs out.
pub(super) async fn once<Fut>(state: &AppState, scope: String, key: Option<String>, body: &Bytes, work: Fut) -> Response
where
    Fut: std::future::Future<Output = (StatusCode, Value)> + Send + 'static,
{
    let Some(key) = key else {
        let (status, value) = work.await;
        return (status, Json(value)).into_response();
    };
    let hash = hex::encode(Sha256::digest(body));
    let lease = lease(&state.config);
    let waiting_until = tokio::time::Instant::now() + repeat_wait(&state.config);
    let held = loop {
        let claim = async {
            let mut conn = state.store.pool().acquire().await?;
            idempotency::claim(&mut conn, &scope, &key, &hash, state.payments.now(), lease).await
        }
        .await;
        match claim {
            Ok(Claim::Fresh(held)) => break held,
            Ok(Claim::Replay(status, body)) => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                let mut response = json_response(status, body);
                response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
                return response;
            }
            Ok(Claim::Mismatch) => {
                return ApiError::new(
                    StatusCode::CONFLICT,
                    "409",
                    "This IdempotencyKey was used for a different request",
                    Some("IdempotencyKey".into()),
                )
                .into_response()
            }
            Ok(Claim::InProgress) if tokio::time::Instant::now() < waiting_until => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(Claim::InProgress) => {
                let mut response = ApiError::new(
                    StatusCode::CONFLICT,
                    "409",
                    "A request with this IdempotencyKey is still being processed; retry with the same key for its answer",
                    Some("IdempotencyKey".into()),
                )
                .into_response();
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return response;
            }
            Err(error) => return internal(error).into_response(),
        }
    };
    let store = state.store.clone();
    let settled = async move {
        let (status, value) = match std::panic::AssertUnwindSafe(work).catch_unwind().await {
            Ok(answer) => answer,
            Err(_) => envelope(ApiError::internal(&anyhow::anyhow!("the request's work panicked"))),
        };
        let text = value.to_string();
        // Our own failure: let a retry run again instead of replaying it.
        let replayable = !(status.is_server_error() && value.pointer("/Errors/0/error_code") == Some(&json!("999")));
        settle(&store, &scope, &key, &held, replayable.then_some((status, text.as_str()))).await;
        (status, text)
    };
    // The task answers errors with the caller's request id and logs in the caller's span.
    let settled = tracing::Instrument::in_current_span(settled);
    let task = match crate::ops::current_request_id() {
        Some(id) => tokio::spawn(crate::ops::with_request_id(id, settled)),
        None => tokio::spawn(settled),
    };
    match task.await {
        Ok((status, text)) => json_response(status, text),
        Err(error) => internal(error).into_response(),
    }
}

/// How long a claim holds its key: longer than the longest work a claimed request can do, so a key is taken
/// again only when its holder died. That work makes at most two Vipps calls in a row (an access token, then
/// the create or refund), each at most four attempts of `vipps_timeout_ms` with three waits between them of at
/// most 60 s (the longest `Retry-After` the client honours); two minutes more cover the database. With the
/// default 15 s attempts: 2 × (4 × 15 s + 3 × 60 s) + 120 s = 10 minutes.
fn lease(config: &crate::config::Config) -> Duration {
    let one_call = Duration::from_millis(config.vipps_timeout_ms) * 4 + Duration::from_secs(3 * 60);
    one_call * 2 + Duration::from_secs(120)
}

/// How long a repeat waits for the first request's answer before it is told to retry: a duplicate sent at the
/// same moment as the original gets the answer, and the repeat itself ends well within the request time limit.
fn repeat_wait(config: &crate::config::Config) -> Duration {
    (Duration::from_millis(config.request_timeout_ms) / 3).min(Duration::from_secs(5))
}

/// Stores `answer` against the claimed key, or gives the key up when there is none to keep (`None`). Storing is
/// tried three times; when it still fails, the key is given up, so a repeat runs the work again instead of
/// waiting for an answer that will never be stored; if even that fails, the lease runs out. Running the work
/// again never sends one record to Vipps twice (the flows' Vipps keys come from payhub's records), but it makes
/// new records: a second intent, or a second refund within what is left to refund.
async fn settle(store: &crate::store::Store, scope: &str, key: &str, held: &Lease, answer: Option<(StatusCode, &str)>) {
    if let Some((status, text)) = answer {
        for attempt in 0..3u32 {
            let stored = async {
                let mut conn = store.pool().acquire().await?;
                idempotency::complete(&mut conn, scope, key, held, status.as_u16(), text).await
            }
            .await;
            match stored {
                Ok(true) => return,
                Ok(false) => {
                    tracing::warn!(scope, key, "the IdempotencyKey's lease ran out before its answer was stored");
                    return;
                }
                Err(error) => {
                    tracing::warn!(scope, key, attempt, error = %error, "storing the IdempotencyKey's answer failed");
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
            }
        }
    }
    for attempt in 0..3u32 {
        let released = async {
            let mut conn = store.pool().acquire().await?;
            idempotency::release(&mut conn, scope, key, held).await
        }
        .await;
        match released {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(scope, key, attempt, error = %error, "giving the IdempotencyKey up failed");
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
        }
    }
    tracing::error!(scope, key, "the IdempotencyKey stays claimed until its lease runs out");
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::HashMap;

    use super::*;
    use crate::config::Config;

    #[test]
    fn a_claim_outlasts_two_vipps_calls_with_every_retry() {
        let defaults = Config::from_sources(None, &HashMap::new()).unwrap();
        assert_eq!(lease(&defaults), Duration::from_secs(600));
        let env = HashMap::from([("PAYHUB_VIPPS_TIMEOUT_MS".to_owned(), "60000".to_owned())]);
        assert_eq!(lease(&Config::from_sources(None, &env).unwrap()), Duration::from_secs(960));
    }

    #[test]
    fn a_repeat_waits_at_most_five_seconds_and_ends_within_the_request_limit() {
        let defaults = Config::from_sources(None, &HashMap::new()).unwrap();
        assert_eq!(repeat_wait(&defaults), Duration::from_secs(5));
        let env = HashMap::from([("PAYHUB_REQUEST_TIMEOUT_MS".to_owned(), "3000".to_owned())]);
        assert_eq!(repeat_wait(&Config::from_sources(None, &env).unwrap()), Duration::from_secs(1));
    }
}
