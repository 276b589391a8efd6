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

use super::answers::{
    ActionAnswer, ActionFailure, ChangeAnswer, InstallmentLine, IntervalAnswer, MandateAnswer, MandateBrief, MethodOf,
    RecurringAnswer, RecurringRef,
};
use super::bodies::{CancelAgreementBody, CancelBody, PauseBody, RecurringChange, ResumeBody};
use super::{internal, parse_json, request};
use crate::api::error::{ApiError, ErrorEnvelope, ErrorItem};
use crate::auth::Principal;
use crate::domain::money::{Kroner, Money};
use crate::domain::schedule::interval_text;
use crate::error::ServiceError;
use crate::processing::recurring::CancelOutcome;
use crate::state::AppState;
use crate::store::changes;
use crate::store::installments;
use crate::store::intents;
use crate::store::mandates::{self, MandateRow};
use crate::store::recurring_payments::{self, RecurringRow};

fn lines(installments: Vec<installments::InstallmentBrief>) -> Vec<InstallmentLine> {
    installments
        .into_iter()
        .map(|i| InstallmentLine {
            id: i.id,
            status: i.status,
            status_reason: i.status_reason,
            due_date: i.due_date,
            amount: Kroner::from_ore(i.amount_ore),
            payment_reference: i.payment_reference,
            charge_status: i.charge_state,
        })
        .collect()
}

/// A mandate as the API shows it, without its recurring payments and installments.
fn mandate_answer(mandate: MandateRow, target: Option<String>) -> MandateAnswer {
    MandateAnswer {
        active: mandate.status.is_active(),
        interval: IntervalAnswer {
            text: interval_text(&mandate.interval_unit, mandate.interval_count),
            unit: mandate.interval_unit,
            count: mandate.interval_count,
        },
        id: mandate.id,
        mandate_id: mandate.agreement_id,
        status: mandate.status,
        vipps_status: mandate.vipps_status,
        product_name: mandate.product_name,
        merchant_agreement_url: mandate.merchant_agreement_url,
        price: Kroner::from_ore(mandate.price_ore),
        confirmation_url: mandate.confirmation_url,
        payment_intent_id: mandate.intent_id,
        payer_id: mandate.payer_id,
        initial_installment_id: mandate.initial_installment_id,
        last_error: mandate.last_error,
        payment_method: MethodOf { name: "Vipps", processor: request::PROCESSOR, target },
        recurring_payments: Vec::new(),
        installments: Vec::new(),
    }
}

/// A recurring payment as the API shows it, without its changes.
fn recurring_answer(
    recurring: RecurringRow,
    mandate: &MandateRow,
    installments: Vec<installments::InstallmentBrief>,
) -> RecurringAnswer {
    RecurringAnswer {
        next_collection_date: recurring.next_collection(),
        id: recurring.id,
        status: recurring.status,
        status_reason: recurring.status_reason,
        amount: Kroner::from_ore(recurring.amount_ore),
        currency_iso_code: "NOK",
        frequency: recurring.frequency,
        start_date: recurring.start_date,
        end_date: recurring.end_date,
        collection_day: recurring.collection_day,
        paused_until: recurring.paused_until,
        payment_intent_id: recurring.intent_id,
        payer_id: recurring.payer_id,
        bank_statement_description: recurring.bank_statement_description,
        product: recurring.product,
        mandate: MandateBrief {
            id: mandate.id.clone(),
            mandate_id: mandate.agreement_id.clone(),
            status: mandate.status,
            active: mandate.status.is_active(),
        },
        installments: lines(installments),
        changes: None,
        setup_url: None,
        cancel_vipps_agreement: None,
    }
}

/// The `Recurring` part of an intent's answer, if the intent made a recurring payment.
pub(crate) async fn of_intent(state: &AppState, intent_id: &str) -> Result<Option<RecurringAnswer>, ApiError> {
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
    Ok(Some(recurring_answer(recurring, &mandate, installments)))
}

/// A recurring payment with its changes, newest first: the answer of `GET /v2/Recurring/{Id}` and of each change.
async fn recurring_state(state: &AppState, id: &str) -> Result<RecurringAnswer, ApiError> {
    let mut conn = state.store.pool().acquire().await.map_err(internal)?;
    let recurring = recurring_payments::recurring(&mut conn, id)
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
    let mut answer = recurring_answer(recurring, &mandate, installments);
    answer.changes = Some(
        changes
            .into_iter()
            .map(|c| ChangeAnswer { id: c.id, kind: c.kind, status: c.status, message: c.message })
            .collect(),
    );
    answer.setup_url = Some(state.payments.setup_url(&answer.id).await.map_err(internal)?);
    Ok(answer)
}

/// `GET /v2/Recurring/{Id}`
#[utoipa::path(get, path = "/v2/Recurring/{id}", tag = "Payment API",
    summary = "Read a recurring payment with its mandate, installments and changes",
    params(("id" = String, Path, description = "The recurring payment's id (`rp_…`).")),
    responses(
        (status = 200, description = "The recurring payment; its `Changes` newest first.", body = RecurringAnswer),
        (status = 404, description = "No such recurring payment.", body = ErrorEnvelope),
    ))]
pub async fn get_recurring(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(recurring_state(&state, &id).await?).into_response())
}

/// `GET /v2/Mandate/{Id}` (a mandate id `mdt_…` or the Vipps agreement id `agr_…`)
#[utoipa::path(get, path = "/v2/Mandate/{id}", tag = "Payment API",
    summary = "Read a mandate (a Vipps agreement) with its recurring payments and installments",
    params(("id" = String, Path, description = "The mandate's id (`mdt_…`) or the Vipps agreement id (`agr_…`).")),
    responses(
        (status = 200, description = "The mandate.", body = MandateAnswer),
        (status = 404, description = "No such mandate.", body = ErrorEnvelope),
    ))]
pub async fn get_mandate(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let mut conn = state.store.pool().acquire().await.map_err(internal)?;
    let mandate =
        mandates::mandate(&mut conn, &id).await.map_err(internal)?.ok_or_else(|| ApiError::not_found("mandate"))?;
    let recurring = recurring_payments::recurring_of_mandate(&mut conn, &mandate.id).await.map_err(internal)?;
    let installments = installments::installments_of(&mut conn, &mandate.id, None).await.map_err(internal)?;
    drop(conn);
    let target = state.accounts.get(&mandate.account_id).await.ok().map(|a| a.name);
    let mut answer = mandate_answer(mandate, target);
    answer.recurring_payments = recurring.into_iter().map(|r| RecurringRef { id: r.id, status: r.status }).collect();
    answer.installments = lines(installments);
    Ok(Json(answer).into_response())
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

/// Refuses a text field given as another kind of value (a number, an object) instead of taking it as absent.
fn strings_only(map: &Map<String, Value>, keys: &[&str]) -> Result<(), ApiError> {
    match keys.iter().find(|key| map.get(**key).is_some_and(|v| !v.is_string() && !v.is_null())) {
        Some(key) => {
            Err(ApiError::new(StatusCode::BAD_REQUEST, "200", format!("{key} must be a string"), Some((*key).into())))
        }
        None => Ok(()),
    }
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
    let status = if pending { StatusCode::ACCEPTED } else { StatusCode::OK };
    Ok((status, Json(recurring_state(state, id).await?)).into_response())
}

/// `PATCH /v2/Recurring/{Id}` with `Amount` and/or `CollectionDay`: the amount reaches the Vipps agreement's
/// price first; both apply to installments not yet charged.
#[utoipa::path(patch, path = "/v2/Recurring/{id}", tag = "Payment API",
    summary = "Change a recurring payment's amount and/or collection day",
    description = "Stored before Vipps is called and finished only when Vipps confirms: a new amount reaches the Vipps \
        agreement's price first. Both apply to installments not yet charged. While Vipps has not confirmed, the \
        change stays `Pending` (`202`) and payhub retries it with the same keys.",
    params(("id" = String, Path, description = "The recurring payment's id (`rp_…`).")),
    request_body(content = RecurringChange, description = "What to change."),
    responses(
        (status = 200, description = "Changed: the recurring payment as `GET` shows it.", body = RecurringAnswer),
        (status = 202, description = "Recorded, waiting for Vipps: the change is `Pending`, its `Message` says what it waits for.", body = RecurringAnswer),
        (status = 400, description = "Invalid input, or the recurring payment's state does not allow it (cancelled or ended, say): nothing changed.", body = ErrorEnvelope),
        (status = 404, description = "No such recurring payment.", body = ErrorEnvelope),
    ))]
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
#[utoipa::path(post, path = "/v2/Recurring/{id}/Pause", tag = "Payment API",
    summary = "Pause a recurring payment until a date",
    description = "No charges until `Until`; installments falling due before then are not collected. `202` while Vipps \
        has yet to confirm (the change is `Pending` and retried).",
    params(("id" = String, Path, description = "The recurring payment's id (`rp_…`).")),
    request_body(content = PauseBody, description = "Until when."),
    responses(
        (status = 200, description = "Paused: the recurring payment as `GET` shows it.", body = RecurringAnswer),
        (status = 202, description = "Recorded, waiting for Vipps (the change is `Pending`).", body = RecurringAnswer),
        (status = 400, description = "Invalid input, or the recurring payment's state does not allow it (cancelled or ended, say): nothing changed.", body = ErrorEnvelope),
        (status = 404, description = "No such recurring payment.", body = ErrorEnvelope),
    ))]
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
#[utoipa::path(post, path = "/v2/Recurring/{id}/Resume", tag = "Payment API",
    summary = "Resume a paused recurring payment",
    params(("id" = String, Path, description = "The recurring payment's id (`rp_…`).")),
    request_body(content = Option<ResumeBody>, description = "Nothing, or an empty object."),
    responses(
        (status = 200, description = "Resumed: the recurring payment as `GET` shows it.", body = RecurringAnswer),
        (status = 400, description = "Invalid input, or the recurring payment's state does not allow it (cancelled or ended, say): nothing changed.", body = ErrorEnvelope),
        (status = 404, description = "No such recurring payment.", body = ErrorEnvelope),
    ))]
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
#[utoipa::path(post, path = "/v2/Recurring/{id}/Cancel", tag = "Payment API",
    summary = "Cancel a recurring payment",
    description = "Its open installments are cancelled and no more are made. `200` with `Status: Cancelled` once Vipps \
        confirmed every live charge cancelled, else `202` with `Status: Cancelling` (a repeat retries now). When the \
        account says so, the Vipps agreement is stopped too and the answer carries `CancelVippsAgreement`.",
    params(("id" = String, Path, description = "The recurring payment's id (`rp_…`).")),
    request_body(content = Option<CancelBody>, description = "Nothing, or the reason."),
    responses(
        (status = 200, description = "Cancelled: the recurring payment as `GET` shows it.", body = RecurringAnswer),
        (status = 202, description = "Cancelling: Vipps has yet to confirm a charge cancelled.", body = RecurringAnswer),
        (status = 400, description = "Invalid input, or the recurring payment's state does not allow it (cancelled or ended, say): nothing changed.", body = ErrorEnvelope),
        (status = 404, description = "No such recurring payment.", body = ErrorEnvelope),
    ))]
pub async fn cancel_recurring(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let map = object(&headers, &bytes, &["Reason"])?;
    strings_only(&map, &["Reason"])?;
    let sent = map.get("Reason").and_then(Value::as_str);
    let reason = sent.map(str::trim).filter(|r| !r.is_empty());
    if sent.is_some_and(|r| r.chars().count() > 255) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "200",
            "Reason must be at most 255 characters",
            Some("Reason".into()),
        ));
    }
    let (outcome, stopped) =
        state.payments.cancel_recurring(&id, reason, &caller.actor()).await.map_err(service_error)?;
    let status = if outcome.is_pending() { StatusCode::ACCEPTED } else { StatusCode::OK };
    let mut answer = recurring_state(&state, &id).await?;
    answer.cancel_vipps_agreement =
        stopped.map(|CancelOutcome { is_success, message }| ActionAnswer { is_success, message });
    Ok((status, Json(answer)).into_response())
}

fn action_answer(status: StatusCode, is_success: bool, message: impl Into<String>) -> Response {
    (status, Json(ActionAnswer { is_success, message: message.into() })).into_response()
}

/// `POST /v2/actions/CancelVippsAgreement` with `MandateId` (payhub's `mdt_…`) **or** `AgreementId`
/// (`agr_…`): stops the agreement at Vipps and cancels the mandate, its recurring payments and open
/// installments. Answers `{"IsSuccess", "Message"}`; Vipps' message when Vipps refuses.
#[utoipa::path(post, path = "/v2/actions/CancelVippsAgreement", tag = "Payment API",
    summary = "Stop a Vipps agreement (FinDock's action)",
    description = "Stops the agreement at Vipps and cancels the mandate, its recurring payments and open installments. \
        Answers FinDock's action shape (`IsSuccess`, `Message`) also when it refuses, with Vipps' message when Vipps \
        refuses.",
    request_body(content = CancelAgreementBody, description = "Which agreement."),
    responses(
        (status = 200, description = "Done (`IsSuccess: true`), or Vipps refused (`IsSuccess: false` and Vipps' message).", body = ActionAnswer),
        (status = 400, description = "Invalid input (neither or both ids, an unknown field, not JSON): nothing changed.", body = ActionAnswer),
        (status = 404, description = "No mandate with that id.", body = ActionAnswer),
        (status = 500, description = "payhub could not complete the action (`IsSuccess: false`), or could not read the mandate (the envelope).", body = ActionFailure),
    ))]
pub async fn cancel_vipps_agreement(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let fields = ["MandateId", "AgreementId"];
    let map = match object(&headers, &bytes, &fields).and_then(|map| strings_only(&map, &fields).map(|()| map)) {
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
