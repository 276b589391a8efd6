//! The Payment API v2, FinDock-compatible (PascalCase): payment intents, payment methods, installments,
//! refunds, and the page Vipps sends the payer back to.

pub mod recurring;
pub mod request;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::error::{ApiError, ErrorItem};
use crate::app::AppState;
use crate::auth::Principal;
use crate::domain::money::{signed_json_kroner, Money};
use crate::domain::status::{InstallmentStatus, IntentStatus};
use crate::error::ServiceError;
use crate::processing::refunds::RefundRequest;
use crate::processing::IntentError;
use crate::store::idempotency::{self, Claim};
use crate::store::{installments, intents, payments, vipps_payments};

fn internal(error: impl Into<anyhow::Error>) -> ApiError {
    ApiError::internal(&error.into())
}

fn parse_json(bytes: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "200", format!("The body is not valid JSON: {e}"), None))
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

/// Runs `work` at most once per idempotency key: a repeat of the same request gets the first answer (also
/// while the first is still running: the repeat waits for it); a different request with the key gets 409.
async fn once<F, Fut>(state: &AppState, scope: &str, key: Option<String>, body: &Bytes, work: F) -> Response
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = (StatusCode, Value)>,
{
    let Some(key) = key else {
        let (status, value) = work().await;
        return (status, Json(value)).into_response();
    };
    let hash = hex::encode(Sha256::digest(body));
    let mut waited = 0;
    loop {
        let claim = async {
            let mut conn = state.store.pool().acquire().await?;
            idempotency::claim(&mut conn, scope, &key, &hash, chrono::Utc::now()).await
        }
        .await;
        match claim {
            Ok(Claim::Fresh) => break,
            Ok(Claim::Replay(status, body)) => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                let mut response = (status, body).into_response();
                response
                    .headers_mut()
                    .insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/json"));
                response.headers_mut().insert("idempotent-replayed", axum::http::HeaderValue::from_static("true"));
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
            Ok(Claim::InProgress) if waited < 300 => {
                waited += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Ok(Claim::InProgress) => {
                return ApiError::new(
                    StatusCode::CONFLICT,
                    "409",
                    "A request with this IdempotencyKey is still being processed",
                    Some("IdempotencyKey".into()),
                )
                .into_response()
            }
            Err(error) => return internal(error).into_response(),
        }
    }
    let (status, value) = work().await;
    let text = value.to_string();
    let stored = async {
        let mut conn = state.store.pool().acquire().await?;
        if status.is_server_error() && value.pointer("/Errors/0/error_code") == Some(&json!("999")) {
            // Our own failure: let a retry run again instead of replaying it.
            idempotency::release(&mut conn, scope, &key).await
        } else {
            idempotency::complete(&mut conn, scope, &key, status.as_u16(), &text).await
        }
    }
    .await;
    if let Err(error) = stored {
        return internal(error).into_response();
    }
    let mut response = (status, text).into_response();
    response
        .headers_mut()
        .insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/json"));
    response
}

fn envelope(error: ApiError) -> (StatusCode, Value) {
    let items: Vec<Value> =
        error.error_items().iter().map(|i| serde_json::to_value(i).unwrap_or(Value::Null)).collect();
    (error.status(), json!({ "Errors": items }))
}

/// `POST /v2/PaymentIntent`
pub async fn create_intent(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let body = match parse_json(&bytes) {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let key = match idempotency_key(&headers, &body) {
        Ok(key) => key,
        Err(error) => return error.into_response(),
    };
    let scope = format!("intent:{}", caller.id);
    once(&state, &scope, key, &bytes, || async {
        let intent = match request::parse(&body, state.payments.today()) {
            Ok(request::ParsedIntent::OneTime(intent)) => intent,
            Ok(request::ParsedIntent::Recurring(intent)) => {
                let raw = String::from_utf8_lossy(&bytes);
                return match state.payments.create_recurring(&intent, &raw).await {
                    Ok(created) => {
                        let recurring = match recurring::of_intent(&state, &created.intent_id).await {
                            Ok(value) => value,
                            Err(error) => return envelope(error),
                        };
                        let one_time = created.initial_installment_id.as_ref().map(|id| {
                            json!({"Id": id, "Status": InstallmentStatus::Pending.as_str()})
                        });
                        (
                            StatusCode::OK,
                            json!({
                                "Id": created.intent_id,
                                "Status": IntentStatus::Matched.as_str(),
                                "RedirectURL": created.redirect_url,
                                "PaymentMethod": {"Name": "Vipps", "Processor": request::PROCESSOR, "Target": created.target},
                                "Recurring": recurring,
                                "OneTime": one_time,
                            }),
                        )
                    }
                    Err(error) => intent_error(error),
                };
            }
            Err(items) => return envelope(ApiError::items(StatusCode::BAD_REQUEST, items)),
        };
        let raw = String::from_utf8_lossy(&bytes);
        match state.payments.create_one_time(&intent, &raw).await {
            Ok(created) => (
                StatusCode::OK,
                json!({
                    "Id": created.intent_id,
                    "Status": IntentStatus::Matched.as_str(),
                    "RedirectURL": created.redirect_url,
                    "PaymentMethod": {"Name": "Vipps", "Processor": request::PROCESSOR, "Target": created.target},
                    "OneTime": {"Id": created.installment_id, "Status": InstallmentStatus::Pending.as_str(), "PaymentReference": created.payment_reference},
                }),
            ),
            Err(error) => intent_error(error),
        }
    })
    .await
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
    Ok(json!({
        "Id": installment.id,
        "Status": installment.status.as_str(),
        "StatusReason": installment.status_reason,
        "Amount": Money::from_ore(installment.amount_ore).to_json_kroner(),
        "AmountOpen": Money::from_ore(installment.amount_open_ore.max(0)).to_json_kroner(),
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
    let body = match parse_json(&bytes) {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let key = match idempotency_key(&headers, &body) {
        Ok(key) => key,
        Err(error) => return error.into_response(),
    };
    let scope = format!("refund:{}", caller.id);
    once(&state, &scope, key, &bytes, || async {
        let request = match parse_refund(&state, &body).await {
            Ok(request) => request,
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
    })
    .await
}

async fn parse_refund(state: &AppState, body: &Value) -> Result<RefundRequest, ApiError> {
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
        Some(installment_id) if items.is_empty() => Ok(RefundRequest { installment_id, amount_ore: amount, reason }),
        _ => Err(ApiError::items(StatusCode::BAD_REQUEST, items)),
    }
}

/// `GET /v2/return/{intent}`: where Vipps sends the payer back. Reads the payment from Vipps (so the record is
/// current even if no webhook came) and forwards to the intent's SuccessURL or FailureURL.
pub async fn payer_return(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let intent = {
        let Ok(mut conn) = state.store.pool().acquire().await else { return crate::web::not_found() };
        match intents::intent(&mut conn, &id).await {
            Ok(Some(intent)) => intent,
            _ => return crate::web::not_found(),
        }
    };
    let mut success = false;
    let mandate = {
        let Ok(mut conn) = state.store.pool().acquire().await else { return crate::web::not_found() };
        crate::store::intents::recurring_of_intent(&mut conn, &id).await.ok().flatten().map(|(_, m)| m)
    };
    if let Some(mandate_id) = mandate {
        if let Err(error) = state.payments.sync_agreement(&mandate_id, None).await {
            tracing::warn!(mandate = %mandate_id, %error, "agreement sync on the payer's return failed");
        }
        let Ok(mut conn) = state.store.pool().acquire().await else { return crate::web::not_found() };
        let active = crate::store::mandates::mandate(&mut conn, &mandate_id)
            .await
            .ok()
            .flatten()
            .is_some_and(|m| m.status.is_active());
        return Redirect::to(if active { &intent.success_url } else { &intent.failure_url }).into_response();
    }
    if let Some(installment_id) = &intent.installment_id {
        let reference = {
            let Ok(mut conn) = state.store.pool().acquire().await else { return crate::web::not_found() };
            vipps_payments::vipps_payment_of(&mut conn, installment_id).await.ok().flatten().map(|v| v.reference)
        };
        if let Some(reference) = reference {
            if let Err(error) = state.payments.sync(&reference, None).await {
                tracing::warn!(%reference, %error, "sync on the payer's return failed");
            }
            let Ok(mut conn) = state.store.pool().acquire().await else { return crate::web::not_found() };
            let status = installments::installment(&mut conn, installment_id).await.ok().flatten().map(|i| i.status);
            let authorized = vipps_payments::vipps_payment(&mut conn, &reference)
                .await
                .ok()
                .flatten()
                .is_some_and(|v| v.state == crate::domain::vipps_state::PaymentState::Authorized);
            success = authorized || status.is_some_and(InstallmentStatus::is_collected);
        }
    }
    Redirect::to(if success { &intent.success_url } else { &intent.failure_url }).into_response()
}
