//! The Payment API v2, FinDock-compatible (PascalCase): payment intents, payment methods, installments,
//! refunds.

use std::time::Duration;

pub mod recurring;
pub mod request;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::FutureExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::error::{ApiError, ErrorItem};
use crate::auth::{Actor, Principal};
use crate::domain::money::{signed_json_kroner, Money};
use crate::domain::status::{InstallmentStatus, IntentStatus};
use crate::error::ServiceError;
use crate::processing::intake::Taken;
use crate::processing::refunds::RefundRequest;
use crate::processing::IntentError;
use crate::state::AppState;
use crate::store::idempotency::{self, Claim, Lease};
use crate::store::refunds::ApiKey;
use crate::store::{installments, intents, paylinks, payments, vipps_payments};

fn internal(error: impl Into<anyhow::Error>) -> ApiError {
    ApiError::internal(&error.into())
}

/// A request body as JSON: said to be JSON (else 415), and read strictly (see [`crate::api::json`]).
fn parse_json(headers: &HeaderMap, bytes: &Bytes) -> Result<Value, ApiError> {
    super::json::require_json(headers)?;
    super::json::parse_value(bytes)
}

fn idempotency_key(headers: &HeaderMap, body: &Value) -> Result<Option<String>, ApiError> {
    let from_header =
        headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::trim).filter(|k| !k.is_empty());
    let from_body = body.get("IdempotencyKey").and_then(Value::as_str).map(str::trim).filter(|k| !k.is_empty());
    let key = from_header.or(from_body);
    match key {
        Some(k) if k.len() > 100 || k.chars().any(char::is_control) => Err(ApiError::new(
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
async fn once<Fut>(state: &AppState, scope: String, key: Option<String>, body: &Bytes, work: Fut) -> Response
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

fn envelope(error: ApiError) -> (StatusCode, Value) {
    let items: Vec<Value> =
        error.error_items().iter().map(|i| serde_json::to_value(i).unwrap_or(Value::Null)).collect();
    let mut body = json!({ "Errors": items });
    if let Some(id) = crate::ops::current_request_id() {
        body["RequestId"] = json!(id);
    }
    (error.status(), body)
}

/// `POST /v2/PaymentIntent`
pub async fn create_intent(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let body = match parse_json(&headers, &bytes) {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let key = match idempotency_key(&headers, &body) {
        Ok(key) => key,
        Err(error) => return error.into_response(),
    };
    let scope = format!("intent:{}", caller.id);
    let work = {
        let (state, bytes) = (state.clone(), bytes.clone());
        async move {
            let (status, answer) = answer_intent(&state, &body, &bytes).await;
            // Counted here, where the work runs once per IdempotencyKey: a replayed answer is not a new intent.
            let outcome = match status.as_u16() {
                200..=299 => "created",
                400..=499 => "refused",
                502 => "vipps_failed",
                _ => "error",
            };
            crate::ops::business().count("payhub_intents_total", &[("outcome", outcome)]);
            (status, answer)
        }
    };
    once(&state, scope, key, &bytes, work).await
}

/// The work of `POST /v2/PaymentIntent`: the intent recorded and created at Vipps, as the answer to give.
async fn answer_intent(state: &AppState, body: &Value, bytes: &Bytes) -> (StatusCode, Value) {
    if let Some(id) = body.get("OneTime").and_then(|o| o.get("Id")).and_then(Value::as_str) {
        return pay_existing(state, id).await;
    }
    let intent = match request::parse(body, state.payments.today(), state.config.webhook_targets()) {
        Ok(intent) => intent,
        Err(items) => return envelope(ApiError::items(StatusCode::BAD_REQUEST, items)),
    };
    let taken = match state.payments.take_intent(&intent, &String::from_utf8_lossy(bytes)).await {
        Ok(taken) => taken,
        Err(error) => return intent_error(error),
    };
    let span = tracing::Span::current();
    span.record("account", taken.target());
    span.record("record", taken.intent_id());
    let mut answer = json!({
        "Id": taken.intent_id(),
        "Status": IntentStatus::Matched.as_str(),
        "RedirectURL": taken.redirect_url(),
        "PaymentMethod": {"Name": "Vipps", "Processor": request::PROCESSOR, "Target": taken.target()},
    });
    match &taken {
        Taken::OneTime(created) => {
            answer["OneTime"] = json!({
                "Id": created.installment_id,
                "Status": InstallmentStatus::Pending.as_str(),
                "PaymentReference": created.payment_reference,
            });
        }
        Taken::Recurring(created) => {
            answer["Recurring"] = match recurring::of_intent(state, &created.intent_id).await {
                Ok(value) => json!(value),
                Err(error) => return envelope(error),
            };
            answer["OneTime"] = json!(created
                .initial_installment_id
                .as_ref()
                .map(|id| json!({"Id": id, "Status": InstallmentStatus::Pending.as_str()})));
        }
    }
    (StatusCode::OK, answer)
}

/// `OneTime.Id`: pay an existing installment (FinDock's way to pay what is already owed). No new installment
/// and no second Vipps payment: the answer points at the installment's open payment, as its PayLink does.
async fn pay_existing(state: &AppState, id: &str) -> (StatusCode, Value) {
    let found = async {
        let mut conn = state.store.pool().acquire().await?;
        installments::installment(&mut conn, id).await
    }
    .await;
    let installment = match found {
        Ok(Some(installment)) => installment,
        Ok(None) => return envelope(ApiError::not_found("installment")),
        Err(error) => return envelope(internal(error)),
    };
    if !paylinks::payable(&installment) {
        let why = if installment.amount_open_ore <= 0 || installment.status.is_collected() {
            "The installment is already paid"
        } else {
            "The installment cannot be paid: it is not open, or it is collected on an agreement"
        };
        return envelope(ApiError::new(StatusCode::CONFLICT, "409", why, Some("OneTime.Id".into())));
    }
    let landing = match state.payments.landing_of(&installment.id).await {
        Ok(Some(url)) => url,
        Ok(None) => {
            return envelope(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "502",
                "Vipps has no payment waiting for this installment; try again in a moment",
                Some("OneTime.Id".into()),
            ))
        }
        Err(error) => return envelope(internal(error)),
    };
    (
        StatusCode::OK,
        json!({
            "Id": installment.intent_id,
            "Status": IntentStatus::Matched.as_str(),
            "RedirectURL": landing,
            "PaymentMethod": {"Name": "Vipps", "Processor": request::PROCESSOR},
            "OneTime": {"Id": installment.id, "Status": installment.status.as_str(), "PaymentReference": installment.payment_reference},
        }),
    )
}

fn intent_error(error: IntentError) -> (StatusCode, Value) {
    match error {
        IntentError::Invalid(items) => envelope(ApiError::items(StatusCode::BAD_REQUEST, items)),
        IntentError::NoDefault => envelope(ApiError::new(
            StatusCode::BAD_REQUEST,
            "098",
            "No Target given and no default Vipps account is configured",
            Some("PaymentMethod.Target".into()),
        )),
        IntentError::Provider { intent_id, message } => {
            let mut answer = envelope(ApiError::new(StatusCode::BAD_GATEWAY, "500", message, None));
            answer.1["Id"] = json!(intent_id);
            answer
        }
        IntentError::Internal(error) => envelope(ApiError::internal(&error)),
    }
}

/// `GET /v2/PaymentIntent/{Id}`
pub async fn get_intent(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let mut conn = state.store.pool().acquire().await.map_err(internal)?;
    let intent = intents::intent(&mut conn, &id)
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found("payment intent"))?;
    let mut one_time = Value::Null;
    let mut redirect = Value::Null;
    if let Some(installment_id) = &intent.installment_id {
        if let Some(installment) = installments::installment(&mut conn, installment_id).await.map_err(internal)? {
            let vipps = vipps_payments::vipps_payment_of(&mut conn, installment_id).await.map_err(internal)?;
            redirect = json!(vipps.as_ref().and_then(|v| v.redirect_url.clone()));
            one_time = json!({
                "Id": installment.id,
                "Status": installment.status.as_str(),
                "StatusReason": installment.status_reason,
                "PaymentReference": installment.payment_reference,
                "Amount": Money::from_ore(installment.amount_ore).to_json_kroner(),
            });
        }
    }
    drop(conn);
    let recurring = recurring::of_intent(&state, &intent.id).await?;
    if recurring.is_some() {
        let mut conn = state.store.pool().acquire().await.map_err(internal)?;
        if let Some((_, mandate_id)) =
            crate::store::intents::recurring_of_intent(&mut conn, &intent.id).await.map_err(internal)?
        {
            let mandate = crate::store::mandates::mandate(&mut conn, &mandate_id).await.map_err(internal)?;
            redirect = json!(mandate.and_then(|m| m.confirmation_url));
        }
    }
    let account = state.accounts.get(&intent.account_id).await.ok().map(|a| a.name);
    Ok(Json(json!({
        "Id": intent.id,
        "Status": intent.status.as_str(),
        "RedirectURL": redirect,
        "PaymentMethod": {"Name": "Vipps", "Processor": request::PROCESSOR, "Target": account},
        "OneTime": one_time,
        "Recurring": recurring,
    }))
    .into_response())
}

/// `GET /v2/PaymentMethods`
pub async fn payment_methods(State(state): State<AppState>) -> Result<Response, ApiError> {
    let accounts = state.accounts.list().await?;
    let targets: Vec<Value> =
        accounts.iter().map(|a| json!({"Name": a.name, "IsDefault": a.is_default, "IsTest": a.is_test})).collect();
    let parameter = |name: &str, description: &str, max: u32| json!({"Name": name, "Required": false, "DataType": "String", "Description": description, "maxLength": max});
    Ok(Json(json!({
        "PaymentMethods": [{
            "Name": "Vipps",
            "Processors": [{
                "Name": request::PROCESSOR,
                "Aliases": [request::FINDOCK_PROCESSOR],
                "IsDefault": true,
                "Targets": targets,
                "SupportsRecurring": true,
                "Frequencies": ["Weekly", "Monthly", "Quarterly", "Half-yearly", "Yearly"],
                "InitialPaymentonRecurring": "Optional",
                "Parameters": [
                    parameter("mobileNumber", "The payer's mobile number (MSISDN or +47 …); when absent Vipps asks the payer", 32),
                    parameter("TransactionText", "Shown to the payer and on the bank statement (3–100 characters)", 100),
                    parameter("description", "The installment's Product", 255),
                    parameter("ProductName", "Agreement product name (recurring)", 45),
                    parameter("MerchantAgreementUrl", "Agreement management page (recurring)", 1024),
                ],
            }],
        }],
    }))
    .into_response())
}

async fn installment_json(state: &AppState, id: &str) -> Result<Value, ApiError> {
    let mut conn = state.store.pool().acquire().await.map_err(internal)?;
    let installment = installments::installment(&mut conn, id)
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found("installment"))?;
    let payments = payments::payments_of(&mut conn, id).await.map_err(internal)?;
    let pay_url = if paylinks::payable(&installment) {
        let token = match paylinks::existing_token(&mut conn, id).await.map_err(internal)? {
            Some(token) => token,
            None => {
                drop(conn);
                let mut tx = state.store.begin_write().await.map_err(internal)?;
                let fresh = crate::auth::tokens::new_token("pl_");
                let token = paylinks::token_of(&mut tx, id, &fresh, chrono::Utc::now()).await.map_err(internal)?;
                tx.commit().await.map_err(internal)?;
                token
            }
        };
        Some(format!("{}/pay/{token}", state.config.public_url.as_str().trim_end_matches('/')))
    } else {
        None
    };
    Ok(json!({
        "Id": installment.id,
        "PayURL": pay_url,
        "Status": installment.status.as_str(),
        "StatusReason": installment.status_reason,
        "Amount": Money::from_ore(installment.amount_ore).to_json_kroner(),
        "AmountOpen": Money::from_ore(installment.amount_open_ore.max(0)).to_json_kroner(),
        "AmountRefunded": Money::from_ore(crate::store::payments::refunded_ore(&payments)).to_json_kroner(),
        "CurrencyISOCode": "NOK",
        "DueDate": installment.due_date.to_string(),
        "PaymentReference": installment.payment_reference,
        "BankStatementDescription": installment.bank_statement_description,
        "Product": installment.product,
        "PaymentIntentId": installment.intent_id,
        "RecurringId": installment.recurring_payment_id,
        "MandateId": installment.mandate_id,
        "PaymentMethod": "Vipps",
        "PaymentProcessor": request::PROCESSOR,
        "Payments": payments.iter().map(|p| json!({
            "Id": p.id,
            "Amount": signed_json_kroner(p.amount_ore),
            "AmountOre": p.amount_ore,
            "CollectionDate": p.collection_date.to_string(),
            "PspReference": p.psp_reference,
            "Type": p.kind,
            "InboundReportId": p.inbound_report_id,
            "LedgerDate": p.ledger_date.map(|d| d.to_string()),
            "Fee": p.fee_ore.map(signed_json_kroner),
            "FeeOre": p.fee_ore,
            "NetAmount": p.net_amount_ore.map(signed_json_kroner),
            "NetAmountOre": p.net_amount_ore,
            "PayoutId": p.payout_id,
        })).collect::<Vec<_>>(),
    }))
}

/// `GET /v2/Installment/{Id}`
pub async fn get_installment(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(installment_json(&state, &id).await?).into_response())
}

/// `POST /v2/Refund`
pub async fn refund(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let body = match parse_json(&headers, &bytes) {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let key = match idempotency_key(&headers, &body) {
        Ok(key) => key,
        Err(error) => return error.into_response(),
    };
    let scope = format!("refund:{}", caller.id);
    let work = {
        let state = state.clone();
        let api_key = key.clone().map(|key| ApiKey { scope: scope.clone(), key });
        let actor = caller.actor();
        async move { answer_refund(&state, &body, api_key, actor).await }
    };
    once(&state, scope, key, &bytes, work).await
}

/// The work of `POST /v2/Refund`: the refund reserved and sent to Vipps, as the answer to give. The caller's
/// IdempotencyKey is kept on the refund, so work that runs again for it (its claim given up, or its lease run
/// out) finishes that refund rather than making another.
async fn answer_refund(state: &AppState, body: &Value, api_key: Option<ApiKey>, actor: Actor) -> (StatusCode, Value) {
    let request = match parse_refund(state, body, actor).await {
        Ok(request) => RefundRequest { api_key, ..request },
        Err(error) => return envelope(error),
    };
    match state.payments.refund(&request).await {
        Ok(outcome) => {
            let refund = &outcome.refund;
            if refund.status == "Failed" {
                let message = refund.error.clone().unwrap_or_else(|| "Vipps refused the refund".into());
                let mut answer = envelope(ApiError::new(StatusCode::BAD_GATEWAY, "500", message, None));
                answer.1["Id"] = json!(refund.id);
                return answer;
            }
            (
                StatusCode::OK,
                json!({
                    "Id": refund.id,
                    "Status": refund.status,
                    "Amount": Money::from_ore(refund.amount_ore).to_json_kroner(),
                    "InstallmentId": refund.installment_id,
                    "InstallmentStatus": outcome.installment_status,
                    "PaymentId": outcome.payment_id,
                    "PspReference": refund.psp_reference,
                    "Reason": refund.reason,
                }),
            )
        }
        Err(ServiceError::Invalid(errors)) => envelope(ApiError::fields(StatusCode::BAD_REQUEST, errors)),
        Err(ServiceError::NotFound(what)) => envelope(ApiError::not_found(what)),
        Err(error) => envelope(ApiError::from(error)),
    }
}

async fn parse_refund(state: &AppState, body: &Value, actor: Actor) -> Result<RefundRequest, ApiError> {
    let Value::Object(map) = body else {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "200", "The body must be a JSON object", None));
    };
    let mut items = Vec::new();
    for key in map
        .keys()
        .filter(|k| !["PaymentId", "InstallmentId", "Amount", "Reason", "IdempotencyKey"].contains(&k.as_str()))
    {
        items.push(ErrorItem {
            error_code: "200",
            error_message: format!("Unknown field {key}"),
            field: Some(key.clone()),
        });
    }
    let text =
        |key: &str| map.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    let amount = match map.get("Amount") {
        None | Some(Value::Null) => None,
        Some(value) => match Money::from_json(value) {
            Ok(money) => Some(money.ore()),
            Err(e) => {
                items.push(ErrorItem { error_code: "200", error_message: e.to_string(), field: Some("Amount".into()) });
                None
            }
        },
    };
    let reason = text("Reason");
    if reason.as_ref().is_some_and(|r| r.chars().count() > 255) {
        items.push(ErrorItem {
            error_code: "200",
            error_message: "Reason must be at most 255 characters".into(),
            field: Some("Reason".into()),
        });
    }
    let installment_id = match (text("PaymentId"), text("InstallmentId")) {
        (Some(_), Some(_)) => {
            items.push(ErrorItem {
                error_code: "200",
                error_message: "Give PaymentId or InstallmentId, not both".into(),
                field: Some("PaymentId".into()),
            });
            None
        }
        (None, None) => {
            items.push(ErrorItem {
                error_code: "010",
                error_message: "PaymentId or InstallmentId is required".into(),
                field: Some("PaymentId".into()),
            });
            None
        }
        (Some(payment_id), None) => {
            let mut conn = state.store.pool().acquire().await.map_err(internal)?;
            match payments::installment_of_payment(&mut conn, &payment_id).await.map_err(internal)? {
                Some(id) => Some(id),
                None => {
                    items.push(ErrorItem {
                        error_code: "200",
                        error_message: "No such payment".into(),
                        field: Some("PaymentId".into()),
                    });
                    None
                }
            }
        }
        (None, Some(id)) => Some(id),
    };
    match installment_id {
        Some(installment_id) if items.is_empty() => {
            Ok(RefundRequest { installment_id, amount_ore: amount, reason, api_key: None, actor })
        }
        _ => Err(ApiError::items(StatusCode::BAD_REQUEST, items)),
    }
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
