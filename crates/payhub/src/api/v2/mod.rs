//! The Payment API v2, FinDock-compatible (PascalCase): payment intents, payment methods, installments,
//! refunds. Answers are the types of [`answers`], request bodies are described by [`bodies`], and [`Doc`] lists
//! every operation for `/openapi.json`.

pub mod answers;
pub mod bodies;
mod once;
pub mod recurring;
pub mod request;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::Value;
use utoipa::OpenApi;

use super::error::{ApiError, ErrorEnvelope, ErrorItem};
use crate::auth::{Actor, Principal};
use crate::domain::money::{Kroner, Money};
use crate::domain::schedule::Frequency;
use crate::domain::status::{InstallmentStatus, IntentStatus};
use crate::error::ServiceError;
use crate::processing::intake::Taken;
use crate::processing::paylinks::LinkPayment;
use crate::processing::refunds::RefundRequest;
use crate::processing::IntentError;
use crate::state::AppState;
use crate::store::refunds::ApiKey;
use crate::store::{installments, intents, paylinks, payments, vipps_payments};
use answers::{
    CreatedInstallment, CreatedIntent, CreatedMethod, InstallmentAnswer, InstallmentPayment, IntentInstallment,
    IntentState, MethodDescription, MethodOf, ParameterDescription, PaymentMethodList, ProcessorDescription,
    RefundAnswer, TargetDescription,
};
use bodies::{PaymentIntentRequest, RefundBody};
use once::{idempotency_key, once};

/// The Payment API's operations, for `/openapi.json`.
#[derive(OpenApi)]
#[openapi(paths(
    create_intent,
    get_intent,
    payment_methods,
    get_installment,
    refund,
    recurring::get_recurring,
    recurring::change_recurring,
    recurring::pause_recurring,
    recurring::resume_recurring,
    recurring::cancel_recurring,
    recurring::get_mandate,
    recurring::cancel_vipps_agreement
))]
pub struct Doc;

fn internal(error: impl Into<anyhow::Error>) -> ApiError {
    ApiError::internal(&error.into())
}

/// A request body as JSON: said to be JSON (else 415), and read strictly (see [`crate::api::json`]).
fn parse_json(headers: &HeaderMap, bytes: &Bytes) -> Result<Value, ApiError> {
    super::json::require_json(headers)?;
    super::json::parse_value(bytes)
}

/// An error answer in the envelope, as work under an IdempotencyKey gives it (to be stored and replayed).
fn envelope(error: ApiError) -> (StatusCode, Value) {
    failed(error, None)
}

/// An error answer naming the record the request made before it failed (`Id`: an intent or refund Vipps refused).
fn failed(error: ApiError, id: Option<String>) -> (StatusCode, Value) {
    let body = ErrorEnvelope { errors: error.error_items().to_vec(), request_id: crate::ops::current_request_id(), id };
    (error.status(), to_value(&body))
}

fn to_value(answer: &impl Serialize) -> Value {
    serde_json::to_value(answer).unwrap_or(Value::Null)
}

/// `POST /v2/PaymentIntent`
#[utoipa::path(post, path = "/v2/PaymentIntent", tag = "Payment API",
    summary = "Create a payment: one-time, recurring, or pay an existing installment",
    description = "A new one-time payment records an installment and creates the payment at Vipps; a new recurring \
        payment records a recurring payment and a mandate and drafts the Vipps agreement (with an optional initial \
        payment). Either way the answer's `RedirectURL` is where the payer's browser goes next. `OneTime.Id` pays an \
        installment already owed, as its PayLink does: the request is recorded as an intent of its own (the answer's \
        `Id`, Origin `PaymentAPI`) and the answer points at the installment's one Vipps payment, made now if it has \
        none (an installment made by hand); however often it is asked, there is one payment per installment.\n\n\
        Bad input changes nothing: every problem is answered at once (`400`, code `010` missing or `200` invalid, \
        with the field's path). With an `IdempotencyKey` (header or body) a repeat gets the first answer (header \
        `Idempotent-Replayed: true`), a different request with the key `409`, and a repeat while the first still \
        runs `409` with `Retry-After: 1`.",
    params(("Idempotency-Key" = Option<String>, Header, description = "The IdempotencyKey (wins over the body's), at most 100 printable characters.")),
    request_body(content = PaymentIntentRequest, description = "FinDock's PaymentIntent message."),
    responses(
        (status = 200, description = "Recorded and created at Vipps: send the payer to `RedirectURL`.", body = CreatedIntent,
            headers(("Idempotent-Replayed" = String, description = "`true` when this is the stored answer of an earlier request with the key."))),
        (status = 400, description = "Invalid input, nothing recorded: every problem with its code and field.", body = ErrorEnvelope),
        (status = 404, description = "`OneTime.Id` names no installment.", body = ErrorEnvelope),
        (status = 409, description = "The IdempotencyKey was used for a different request or its request still runs (`Retry-After`), or the installment of `OneTime.Id` is paid or cannot be paid.", body = ErrorEnvelope),
        (status = 502, description = "Vipps refused or failed (or, for `OneTime.Id`, has no payment waiting and none could be made): the intent is recorded as failed, its id is the envelope's `Id`.", body = ErrorEnvelope),
    ))]
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
        return pay_existing(state, id, &String::from_utf8_lossy(bytes)).await;
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
    let (one_time, recurring) = match &taken {
        Taken::OneTime(created) => (
            Some(CreatedInstallment {
                id: created.installment_id.clone(),
                status: InstallmentStatus::Pending,
                payment_reference: Some(created.payment_reference.clone()),
            }),
            None,
        ),
        Taken::Recurring(created) => {
            let recurring = match recurring::of_intent(state, &created.intent_id).await {
                Ok(recurring) => recurring,
                Err(error) => return envelope(error),
            };
            let initial = created.initial_installment_id.as_ref().map(|id| CreatedInstallment {
                id: id.clone(),
                status: InstallmentStatus::Pending,
                payment_reference: None,
            });
            (initial, recurring)
        }
    };
    let answer = CreatedIntent {
        id: taken.intent_id().to_owned(),
        status: IntentStatus::Matched,
        redirect_url: taken.redirect_url().map(str::to_owned),
        payment_method: CreatedMethod {
            name: "Vipps",
            processor: request::PROCESSOR,
            target: Some(taken.target().to_owned()),
        },
        one_time,
        recurring,
    };
    (StatusCode::OK, to_value(&answer))
}

/// `OneTime.Id`: pay an existing installment (FinDock's way to pay what is already owed), the same path as its
/// PayLink: the request is recorded as an intent of its own (Origin `PaymentAPI`), and the answer points at the
/// installment's one Vipps payment, made now if it has none. No new installment and never a second payment.
async fn pay_existing(state: &AppState, id: &str, raw: &str) -> (StatusCode, Value) {
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
        // The same words as the PayLink's page: paid, cancelled, expired, or charged on its agreement.
        let why = match installment.status {
            _ if installment.amount_open_ore <= 0 || installment.status.is_collected() => {
                "The installment is already paid"
            }
            InstallmentStatus::Cancelled => "The installment is cancelled",
            InstallmentStatus::Failed => "The installment's payment expired or was stopped; it cannot be paid now",
            _ => "The installment is collected on its agreement, not paid on its own",
        };
        return envelope(ApiError::new(StatusCode::CONFLICT, "409", why, Some("OneTime.Id".into())));
    }
    let (intent_id, landing) = match state.payments.pay_by_id(&installment, raw).await {
        Ok((intent_id, LinkPayment::Pay(url))) => (intent_id, url),
        Ok((intent_id, LinkPayment::NotStarted(message))) => {
            let error = ApiError::new(StatusCode::BAD_GATEWAY, "500", message, Some("OneTime.Id".into()));
            return failed(error, Some(intent_id));
        }
        Err(error) => return envelope(ApiError::from(error)),
    };
    tracing::Span::current().record("record", intent_id.as_str());
    let answer = CreatedIntent {
        id: intent_id,
        status: IntentStatus::Matched,
        redirect_url: Some(landing),
        payment_method: CreatedMethod { name: "Vipps", processor: request::PROCESSOR, target: None },
        one_time: Some(CreatedInstallment {
            id: installment.id,
            status: installment.status,
            payment_reference: Some(installment.payment_reference),
        }),
        recurring: None,
    };
    (StatusCode::OK, to_value(&answer))
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
            failed(ApiError::new(StatusCode::BAD_GATEWAY, "500", message, None), Some(intent_id))
        }
        IntentError::Internal(error) => envelope(ApiError::internal(&error)),
    }
}

/// `GET /v2/PaymentIntent/{Id}`
#[utoipa::path(get, path = "/v2/PaymentIntent/{id}", tag = "Payment API",
    summary = "Read a Payment Intent",
    description = "The intent's status and what it made: its installment (one-time) or its recurring payment with \
        the mandate and installments. Poll it, or take the `paymentIntent.*` and `installment.*` events.",
    params(("id" = String, Path, description = "The Payment Intent's id (`pi_…`).")),
    responses(
        (status = 200, description = "The intent.", body = IntentState),
        (status = 404, description = "No such Payment Intent.", body = ErrorEnvelope),
    ))]
pub async fn get_intent(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let mut conn = state.store.pool().acquire().await.map_err(internal)?;
    let intent = intents::intent(&mut conn, &id)
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found("payment intent"))?;
    let mut one_time = None;
    let mut redirect = None;
    if let Some(installment_id) = &intent.installment_id {
        if let Some(installment) = installments::installment(&mut conn, installment_id).await.map_err(internal)? {
            let vipps = vipps_payments::vipps_payment_of(&mut conn, installment_id).await.map_err(internal)?;
            redirect = vipps.and_then(|v| v.redirect_url);
            one_time = Some(IntentInstallment {
                id: installment.id,
                status: installment.status,
                status_reason: installment.status_reason,
                payment_reference: installment.payment_reference,
                amount: Kroner::from_ore(installment.amount_ore),
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
            redirect = mandate.and_then(|m| m.confirmation_url);
        }
    }
    let account = state.accounts.get(&intent.account_id).await.ok().map(|a| a.name);
    Ok(Json(IntentState {
        id: intent.id,
        status: intent.status,
        redirect_url: redirect,
        payment_method: MethodOf { name: "Vipps", processor: request::PROCESSOR, target: account },
        one_time,
        recurring,
    })
    .into_response())
}

/// `GET /v2/PaymentMethods`
#[utoipa::path(get, path = "/v2/PaymentMethods", tag = "Payment API",
    summary = "What this hub takes: Vipps, its merchant accounts, frequencies and parameters",
    description = "FinDock's descriptor, for front ends that build their form from it: the targets are the merchant \
        accounts an intent may name in `PaymentMethod.Target`.",
    responses((status = 200, description = "The payment methods.", body = PaymentMethodList)))]
pub async fn payment_methods(State(state): State<AppState>) -> Result<Response, ApiError> {
    let accounts = state.accounts.list().await?;
    let targets = accounts
        .iter()
        .map(|a| TargetDescription { name: a.name.clone(), is_default: a.is_default, is_test: a.is_test })
        .collect();
    let parameter = |name, description, max_length| ParameterDescription {
        name,
        required: false,
        data_type: "String",
        description,
        max_length,
    };
    Ok(Json(PaymentMethodList {
        payment_methods: vec![MethodDescription {
            name: "Vipps",
            processors: vec![ProcessorDescription {
                name: request::PROCESSOR,
                aliases: vec![request::FINDOCK_PROCESSOR],
                is_default: true,
                targets,
                supports_recurring: true,
                frequencies: Frequency::ALL.to_vec(),
                initial_payment_on_recurring: "Optional",
                parameters: vec![
                    parameter(
                        "mobileNumber",
                        "The payer's mobile number (MSISDN or +47 …); when absent Vipps asks the payer",
                        32,
                    ),
                    parameter(
                        "TransactionText",
                        "Shown to the payer and on the bank statement (3–100 characters)",
                        100,
                    ),
                    parameter("description", "The installment's Product", 255),
                    parameter("ProductName", "Agreement product name (recurring)", 45),
                    parameter("MerchantAgreementUrl", "Agreement management page (recurring)", 1024),
                ],
            }],
        }],
    })
    .into_response())
}

async fn installment_answer(state: &AppState, id: &str) -> Result<InstallmentAnswer, ApiError> {
    let mut conn = state.store.pool().acquire().await.map_err(internal)?;
    let installment = installments::installment(&mut conn, id)
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found("installment"))?;
    let payments = payments::payments_of(&mut conn, id).await.map_err(internal)?;
    drop(conn);
    let pay_url = if paylinks::payable(&installment) { Some(state.payments.paylink_url(id).await?) } else { None };
    let amount_refunded = Kroner::from_ore(crate::store::payments::refunded_ore(&payments));
    Ok(InstallmentAnswer {
        id: installment.id,
        pay_url,
        status: installment.status,
        status_reason: installment.status_reason,
        amount: Kroner::from_ore(installment.amount_ore),
        amount_open: Kroner::from_ore(installment.amount_open_ore.max(0)),
        amount_refunded,
        currency_iso_code: "NOK",
        due_date: installment.due_date,
        payment_reference: installment.payment_reference,
        bank_statement_description: installment.bank_statement_description,
        product: installment.product,
        payment_intent_id: installment.intent_id,
        recurring_id: installment.recurring_payment_id,
        mandate_id: installment.mandate_id,
        payment_method: "Vipps",
        payment_processor: request::PROCESSOR,
        payments: payments
            .into_iter()
            .map(|p| InstallmentPayment {
                id: p.id,
                amount: Kroner::from_ore(p.amount_ore),
                amount_ore: p.amount_ore,
                collection_date: p.collection_date,
                psp_reference: p.psp_reference,
                kind: p.kind,
                inbound_report_id: p.inbound_report_id,
                ledger_date: p.ledger_date,
                fee: p.fee_ore.map(Kroner::from_ore),
                fee_ore: p.fee_ore,
                net_amount: p.net_amount_ore.map(Kroner::from_ore),
                net_amount_ore: p.net_amount_ore,
                payout_id: p.payout_id,
            })
            .collect(),
    })
}

/// `GET /v2/Installment/{Id}`
#[utoipa::path(get, path = "/v2/Installment/{id}", tag = "Payment API",
    summary = "Read an installment with its payments and refunds",
    description = "While the installment can be paid on its own (open, not collected on an agreement), its `PayURL` \
        is a PayLink the organisation may send the payer.",
    params(("id" = String, Path, description = "The installment's id (`ins_…`).")),
    responses(
        (status = 200, description = "The installment.", body = InstallmentAnswer),
        (status = 404, description = "No such installment.", body = ErrorEnvelope),
    ))]
pub async fn get_installment(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(installment_answer(&state, &id).await?).into_response())
}

/// `POST /v2/Refund`
#[utoipa::path(post, path = "/v2/Refund", tag = "Payment API",
    summary = "Refund a collected installment, whole or in part",
    description = "The amount is reserved, then Vipps is asked to pay it back with a key derived from the refund \
        record, so the same refund is never paid twice. At most what is left to refund; a refund does not make money \
        due again. With an `IdempotencyKey` (header or body) a repeat gets the first answer and never makes a \
        second refund.",
    params(("Idempotency-Key" = Option<String>, Header, description = "The IdempotencyKey (wins over the body's), at most 100 printable characters.")),
    request_body(content = RefundBody, description = "What to refund."),
    responses(
        (status = 200, description = "Refunded (`Succeeded`), or sent and not yet confirmed by Vipps (`Pending`).", body = RefundAnswer,
            headers(("Idempotent-Replayed" = String, description = "`true` when this is the stored answer of an earlier request with the key."))),
        (status = 400, description = "Invalid input, the installment is not collected, or the amount is more than is left to refund: nothing recorded.", body = ErrorEnvelope),
        (status = 404, description = "No such installment.", body = ErrorEnvelope),
        (status = 409, description = "The IdempotencyKey was used for a different request, or its request still runs (`Retry-After`).", body = ErrorEnvelope),
        (status = 502, description = "Vipps refused the refund: the refund is recorded as failed, its id is the envelope's `Id`.", body = ErrorEnvelope),
    ))]
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
                return failed(ApiError::new(StatusCode::BAD_GATEWAY, "500", message, None), Some(refund.id.clone()));
            }
            let answer = RefundAnswer {
                id: refund.id.clone(),
                status: refund.status.clone(),
                amount: Kroner::from_ore(refund.amount_ore),
                installment_id: refund.installment_id.clone(),
                installment_status: outcome.installment_status,
                payment_id: outcome.payment_id,
                psp_reference: refund.psp_reference.clone(),
                reason: refund.reason.clone(),
            };
            (StatusCode::OK, to_value(&answer))
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
    // A value of another kind is refused, not taken as absent: a Reason sent as an object would be lost.
    for key in ["PaymentId", "InstallmentId", "Reason", "IdempotencyKey"] {
        if map.get(key).is_some_and(|v| !v.is_string() && !v.is_null()) {
            items.push(ErrorItem {
                error_code: "200",
                error_message: format!("{key} must be a string"),
                field: Some(key.into()),
            });
        }
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
    // Counted as sent, as the intent's texts are (and as the document's maxLength counts).
    if map.get("Reason").and_then(Value::as_str).is_some_and(|r| r.chars().count() > 255) {
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
