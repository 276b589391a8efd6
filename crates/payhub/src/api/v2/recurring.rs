//! Recurring payments and mandates in the Payment API: `GET /v2/Recurring/{Id}`, `GET /v2/Mandate/{Id}`, the
//! organisation's changes (`PATCH /v2/Recurring/{Id}`, `POST /v2/Recurring/{Id}/Pause|Resume|Cancel`) and
//! FinDock's action `POST /v2/actions/CancelVippsAgreement`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::NaiveDate;
use serde_json::{json, Map, Value};

use super::{internal, parse_json, request};
use crate::api::error::{ApiError, ErrorItem};
use crate::auth::Principal;
use crate::domain::money::Money;
use crate::domain::schedule::interval_text;
use crate::error::ServiceError;
use crate::processing::recurring::CancelOutcome;
use crate::state::AppState;
use crate::store::changes;
use crate::store::installments;
use crate::store::intents;
use crate::store::mandates::{self, MandateRow};
use crate::store::recurring_payments::{self, RecurringRow};

fn brief_json(installments: &[installments::InstallmentBrief]) -> Vec<Value> {
    installments
        .iter()
        .map(|i| {
            json!({
                "Id": i.id,
                "Status": i.status,
                "StatusReason": i.status_reason,
                "DueDate": i.due_date,
                "Amount": Money::from_ore(i.amount_ore).to_json_kroner(),
                "PaymentReference": i.payment_reference,
                "ChargeStatus": i.charge_state,
            })
        })
        .collect()
}

/// A mandate as the API shows it.
pub(crate) fn mandate_json(mandate: &MandateRow, target: Option<String>) -> Value {
    json!({
        "Id": mandate.id,
        "MandateId": mandate.agreement_id,
        "Status": mandate.status.as_str(),
        "Active": mandate.status.is_active(),
        "VippsStatus": mandate.vipps_status,
        "ProductName": mandate.product_name,
        "MerchantAgreementUrl": mandate.merchant_agreement_url,
        "Price": Money::from_ore(mandate.price_ore).to_json_kroner(),
        "Interval": {"Unit": mandate.interval_unit, "Count": mandate.interval_count,
                     "Text": interval_text(&mandate.interval_unit, mandate.interval_count)},
        "ConfirmationURL": mandate.confirmation_url,
        "PaymentIntentId": mandate.intent_id,
        "PayerId": mandate.payer_id,
        "InitialInstallmentId": mandate.initial_installment_id,
        "LastError": mandate.last_error,
        "PaymentMethod": {"Name": "Vipps", "Processor": request::PROCESSOR, "Target": target},
    })
}

/// A recurring payment as the API shows it.
pub(crate) fn recurring_json(
    recurring: &RecurringRow,
    mandate: &MandateRow,
    installments: &[installments::InstallmentBrief],
) -> Value {
    json!({
        "Id": recurring.id,
        "Status": recurring.status.as_str(),
        "StatusReason": recurring.status_reason,
        "Amount": Money::from_ore(recurring.amount_ore).to_json_kroner(),
        "CurrencyISOCode": "NOK",
        "Frequency": recurring.frequency.as_str(),
        "StartDate": recurring.start_date.to_string(),
        "EndDate": recurring.end_date.map(|d| d.to_string()),
        "CollectionDay": recurring.collection_day,
        "PausedUntil": recurring.paused_until.map(|d| d.to_string()),
        "NextCollectionDate": recurring.next_collection().map(|d| d.to_string()),
        "PaymentIntentId": recurring.intent_id,
        "PayerId": recurring.payer_id,
        "BankStatementDescription": recurring.bank_statement_description,
        "Product": recurring.product,
        "Mandate": {"Id": mandate.id, "MandateId": mandate.agreement_id, "Status": mandate.status.as_str(), "Active": mandate.status.is_active()},
        "Installments": brief_json(installments),
    })
}

/// The `Recurring` part of an intent's answer, if the intent made a recurring payment.
pub(crate) async fn of_intent(state: &AppState, intent_id: &str) -> Result<Option<Value>, ApiError> {
    let mut conn = state.store.pool().acquire().await.map_err(internal)?;
    let Some((recurring_id, _)) = intents::recurring_of_intent(&mut conn, intent_id).await.map_err(internal)? else {
        return Ok(None);
    };
    let recurring = recurring_payments::recurring(&mut conn, &recurring_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found("recurring payment"))?;
    let mandate = mandates::mandate(&mut conn, &recurring.mandate_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found("mandate"))?;
    let installments =
        installments::installments_of(&mut conn, &mandate.id, Some(&recurring.id)).await.map_err(internal)?;
    Ok(Some(recurring_json(&recurring, &mandate, &installments)))
}

/// `GET /v2/Recurring/{Id}`
pub async fn get_recurring(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let mut conn = state.store.pool().acquire().await.map_err(internal)?;
    let recurring = recurring_payments::recurring(&mut conn, &id)
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found("recurring payment"))?;
    let mandate = mandates::mandate(&mut conn, &recurring.mandate_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found("mandate"))?;
    let installments =
        installments::installments_of(&mut conn, &mandate.id, Some(&recurring.id)).await.map_err(internal)?;
    let changes = changes::changes(&mut conn, &mandate.id, Some(&recurring.id)).await.map_err(internal)?;
    let mut body = recurring_json(&recurring, &mandate, &installments);
    body["Changes"] =
        changes.iter().map(|c| json!({"Id": c.id, "Kind": c.kind, "Status": c.status, "Message": c.message})).collect();
    body["SetupURL"] = json!(state.payments.setup_url(&recurring.id).await.map_err(internal)?);
    Ok(Json(body).into_response())
}

/// `GET /v2/Mandate/{Id}` (a mandate id `mdt_…` or the Vipps agreement id `agr_…`)
pub async fn get_mandate(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let mut conn = state.store.pool().acquire().await.map_err(internal)?;
    let mandate =
        mandates::mandate(&mut conn, &id).await.map_err(internal)?.ok_or_else(|| ApiError::not_found("mandate"))?;
    let recurring = recurring_payments::recurring_of_mandate(&mut conn, &mandate.id).await.map_err(internal)?;
    let installments = installments::installments_of(&mut conn, &mandate.id, None).await.map_err(internal)?;
    drop(conn);
    let target = state.accounts.get(&mandate.account_id).await.ok().map(|a| a.name);
    let mut body = mandate_json(&mandate, target);
    body["RecurringPayments"] = recurring.iter().map(|r| json!({"Id": r.id, "Status": r.status.as_str()})).collect();
    body["Installments"] = brief_json(&installments).into();
    Ok(Json(body).into_response())
}

fn object(headers: &HeaderMap, bytes: &Bytes, allowed: &[&str]) -> Result<Map<String, Value>, ApiError> {
    let body = if bytes.is_empty() { json!({}) } else { parse_json(headers, bytes)? };
    let Value::Object(map) = body else {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "200", "The body must be a JSON object", None));
    };
    let unknown: Vec<ErrorItem> = map
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .map(|k| ErrorItem { error_code: "200", error_message: format!("Unknown field {k}"), field: Some(k.clone()) })
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::items(StatusCode::BAD_REQUEST, unknown));
    }
    Ok(map)
}

fn service_error(error: ServiceError) -> ApiError {
    match error {
        ServiceError::Invalid(errors) => ApiError::fields(StatusCode::BAD_REQUEST, errors),
        ServiceError::NotFound(what) => ApiError::not_found(what),
        other => ApiError::from(other),
    }
}

/// The answer to a change: the recurring payment as `GET` shows it (its `Changes` newest first), `200` when
/// the change is in effect, `202 Accepted` while Vipps has yet to confirm it (the change is `Pending`, with
/// what it waits for as its `Message`).
async fn answer(state: &AppState, id: &str, pending: bool) -> Result<Response, ApiError> {
    let mut response = get_recurring(State(state.clone()), Path(id.to_owned())).await?;
    if pending {
        *response.status_mut() = StatusCode::ACCEPTED;
    }
    Ok(response)
}

/// `PATCH /v2/Recurring/{Id}` with `Amount` and/or `CollectionDay`: the amount reaches the Vipps agreement's
/// price first; both apply to installments not yet charged.
pub async fn change_recurring(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let map = object(&headers, &bytes, &["Amount", "CollectionDay"])?;
    let invalid = |field: &str, message: &str| {
        ApiError::new(StatusCode::BAD_REQUEST, "200", message.to_owned(), Some(field.into()))
    };
    let amount = match map.get("Amount") {
        None | Some(Value::Null) => None,
        Some(value) => Some(Money::from_json(value).map_err(|e| invalid("Amount", &e.to_string()))?),
    };
    let day = match map.get("CollectionDay") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_u64()
                .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
                .and_then(|d| u32::try_from(d).ok())
                .filter(|d| (1..=31).contains(d))
                .ok_or_else(|| invalid("CollectionDay", "CollectionDay must be a day of the month from 1 to 31"))?,
        ),
    };
    if amount.is_none() && day.is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "010",
            "Give Amount and/or CollectionDay",
            Some("Amount".into()),
        ));
    }
    let actor = caller.actor();
    let mut pending = false;
    if let Some(amount) = amount {
        pending = state.payments.change_amount(&id, amount, &actor).await.map_err(service_error)?.is_pending();
    }
    if let Some(day) = day {
        state.payments.change_collection_day(&id, day, &actor).await.map_err(service_error)?;
    }
    answer(&state, &id, pending).await
}

/// `POST /v2/Recurring/{Id}/Pause` with `Until` (`YYYY-MM-DD`, after today): no charges until then.
pub async fn pause_recurring(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let map = object(&headers, &bytes, &["Until"])?;
    let until = map.get("Until").and_then(Value::as_str).ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, "010", "Until is required (YYYY-MM-DD)", Some("Until".into()))
    })?;
    let until = NaiveDate::parse_from_str(until, "%Y-%m-%d").map_err(|_| {
        ApiError::new(StatusCode::BAD_REQUEST, "200", "Until must be a date as YYYY-MM-DD", Some("Until".into()))
    })?;
    let outcome = state.payments.pause(&id, until, &caller.actor()).await.map_err(service_error)?;
    answer(&state, &id, outcome.is_pending()).await
}

/// `POST /v2/Recurring/{Id}/Resume`
pub async fn resume_recurring(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    object(&headers, &bytes, &[])?;
    state.payments.resume(&id, &caller.actor()).await.map_err(service_error)?;
    answer(&state, &id, false).await
}

/// `POST /v2/Recurring/{Id}/Cancel` with an optional `Reason`: `200` with `Status: Cancelled` once Vipps
/// confirmed every live charge cancelled, else `202` with `Status: Cancelling` (a repeat retries now). When the
/// account says so, the Vipps agreement is stopped too; the answer then carries `CancelVippsAgreement`.
pub async fn cancel_recurring(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let map = object(&headers, &bytes, &["Reason"])?;
    let reason = map.get("Reason").and_then(Value::as_str).map(str::trim).filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.chars().count() > 255) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "200",
            "Reason must be at most 255 characters",
            Some("Reason".into()),
        ));
    }
    let (outcome, stopped) =
        state.payments.cancel_recurring(&id, reason, &caller.actor()).await.map_err(service_error)?;
    let response = answer(&state, &id, outcome.is_pending()).await?;
    let Some(CancelOutcome { is_success, message }) = stopped else { return Ok(response) };
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.map_err(internal)?;
    let mut body: Value = serde_json::from_slice(&bytes).map_err(internal)?;
    body["CancelVippsAgreement"] = json!({"IsSuccess": is_success, "Message": message});
    Ok((status, Json(body)).into_response())
}

fn action_answer(status: StatusCode, is_success: bool, message: impl Into<String>) -> Response {
    (status, Json(json!({"IsSuccess": is_success, "Message": message.into()}))).into_response()
}

/// `POST /v2/actions/CancelVippsAgreement` with `MandateId` (payhub's `mdt_…`) **or** `AgreementId`
/// (`agr_…`): stops the agreement at Vipps and cancels the mandate, its recurring payments and open
/// installments. Answers `{"IsSuccess", "Message"}`; Vipps' message when Vipps refuses.
pub async fn cancel_vipps_agreement(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let map = match object(&headers, &bytes, &["MandateId", "AgreementId"]) {
        Ok(map) => map,
        Err(error) => {
            let message = error.error_items().first().map(|e| e.error_message.clone()).unwrap_or_default();
            return action_answer(StatusCode::BAD_REQUEST, false, message);
        }
    };
    let text =
        |key: &str| map.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    let (by_mandate, reference) = match (text("MandateId"), text("AgreementId")) {
        (Some(id), None) => (true, id),
        (None, Some(id)) => (false, id),
        (Some(_), Some(_)) => {
            return action_answer(StatusCode::BAD_REQUEST, false, "Give MandateId or AgreementId, not both")
        }
        (None, None) => return action_answer(StatusCode::BAD_REQUEST, false, "MandateId or AgreementId is required"),
    };
    let known = async {
        let mut conn = state.store.pool().acquire().await?;
        mandates::mandate(&mut conn, &reference).await
    }
    .await;
    match known {
        Ok(Some(m))
            if (by_mandate && m.id == reference) || (!by_mandate && m.agreement_id.as_deref() == Some(&reference)) => {}
        Ok(_) => {
            let what = if by_mandate { "MandateId" } else { "AgreementId" };
            return action_answer(StatusCode::NOT_FOUND, false, format!("No mandate with {what} {reference}"));
        }
        Err(error) => return internal(error).into_response(),
    }
    match state.payments.cancel_agreement(&reference, &caller.actor()).await {
        Ok(outcome) => action_answer(StatusCode::OK, outcome.is_success, outcome.message),
        Err(ServiceError::NotFound(what)) => action_answer(StatusCode::NOT_FOUND, false, format!("No such {what}")),
        Err(error) => {
            tracing::error!(%error, "Cancel Vipps Agreement failed");
            action_answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                false,
                format!("payhub could not complete the action: {error}"),
            )
        }
    }
}
