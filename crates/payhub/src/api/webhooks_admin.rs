//! The admin API for outbound webhooks: endpoints (each with a secret shown once, at creation), the delivery
//! log, and resending a delivery; and for the background work behind them: the job queue's state and the
//! heartbeat's beats, their recent runs, and running a beat now. Admin role only.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::json::ApiJson;
use crate::auth::Principal;
use crate::domain::FieldError;
use crate::processing::outbox::NewEndpoint;
use crate::state::AppState;

/// `GET /admin/api/webhook-endpoints`: every endpoint (without secrets), and whether the installation secret
/// that signs deliveries to payment intents' own `WebhookURL`s is set (secrets are write-only).
pub async fn list_endpoints(State(state): State<AppState>) -> Result<Response, ApiError> {
    let endpoints = state.outbox.list_endpoints().await?;
    let set = state.outbox.intent_secret_set().await?;
    Ok(Json(json!({ "endpoints": endpoints, "intent_webhook_secret_set": set })).into_response())
}

/// `POST /admin/api/intent-webhook-secret`: makes the intent webhook secret anew; the answer `{"secret"}` is the
/// one time it is shown.
pub async fn rotate_intent_secret(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
) -> Result<Response, ApiError> {
    let secret = state.outbox.rotate_intent_secret(&caller.actor()).await?;
    Ok((StatusCode::CREATED, Json(json!({ "secret": secret }))).into_response())
}

/// `POST /admin/api/webhook-endpoints`: `{"url", "description"?, "event_types"?}`; the answer carries the
/// endpoint's `secret`, which is never shown again.
pub async fn create_endpoint(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    ApiJson(input): ApiJson<NewEndpoint>,
) -> Result<Response, ApiError> {
    let (endpoint, secret) = state.outbox.create_endpoint(&input, &caller.actor()).await?;
    let mut body = serde_json::to_value(endpoint).map_err(|e| ApiError::internal(&e.into()))?;
    if let Some(object) = body.as_object_mut() {
        object.insert("secret".into(), json!(secret));
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `DELETE /admin/api/webhook-endpoints/{id}`
pub async fn delete_endpoint(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state.outbox.delete_endpoint(&id, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Query of `GET /admin/api/webhook-deliveries`.
#[derive(Debug, Deserialize)]
pub struct DeliveriesQuery {
    /// Only deliveries in this state: `pending`, `delivered` or `failed`.
    pub status: Option<String>,
    /// At most this many (default 100, max 1000).
    pub limit: Option<i64>,
}

/// `GET /admin/api/webhook-deliveries`: newest first, with attempts, last status code and error.
pub async fn list_deliveries(
    State(state): State<AppState>,
    Query(query): Query<DeliveriesQuery>,
) -> Result<Response, ApiError> {
    if let Some(status) = query.status.as_deref() {
        if !["pending", "delivered", "failed"].contains(&status) {
            return Err(ApiError::fields(
                StatusCode::BAD_REQUEST,
                vec![FieldError::invalid("status", "must be pending, delivered or failed")],
            ));
        }
    }
    let deliveries =
        state.outbox.deliveries(query.status.as_deref(), query.limit.unwrap_or(100).clamp(1, 1000)).await?;
    Ok(Json(json!({ "deliveries": deliveries })).into_response())
}

/// `POST /admin/api/webhook-deliveries/{id}/resend`: queues the delivery again (same `webhook-id`); 202.
pub async fn resend_delivery(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let delivery = state.outbox.resend(&id, &caller.actor()).await?;
    Ok((StatusCode::ACCEPTED, Json(delivery)).into_response())
}

/// Query of `GET /admin/api/jobs`.
#[derive(Debug, Deserialize)]
pub struct JobsQuery {
    /// Only jobs in this state: `queued`, `running`, `done` or `failed`.
    pub status: Option<String>,
    /// At most this many (default 100, max 1000).
    pub limit: Option<i64>,
}

/// `GET /admin/api/jobs`: how many jobs are in each state, and the most recent jobs (newest first).
pub async fn list_jobs(State(state): State<AppState>, Query(query): Query<JobsQuery>) -> Result<Response, ApiError> {
    if let Some(status) = query.status.as_deref() {
        if !["queued", "running", "done", "failed"].contains(&status) {
            return Err(ApiError::fields(
                StatusCode::BAD_REQUEST,
                vec![FieldError::invalid("status", "must be queued, running, done or failed")],
            ));
        }
    }
    let queue = &state.jobs.queue;
    let counts = queue.counts().await.map_err(|e| ApiError::internal(&e.into()))?;
    let jobs = queue
        .recent(query.status.as_deref(), query.limit.unwrap_or(100).clamp(1, 1000))
        .await
        .map_err(|e| ApiError::internal(&e.into()))?;
    Ok(Json(json!({ "counts": counts, "jobs": jobs })).into_response())
}

/// `GET /admin/api/beats`: the registered beats with their periods, and the 100 most recent runs.
pub async fn list_beats(State(state): State<AppState>) -> Result<Response, ApiError> {
    let heartbeat = &state.jobs.heartbeat;
    let beats: Vec<_> = heartbeat
        .beats()
        .into_iter()
        .map(|(name, period)| json!({ "name": name, "period_seconds": period.as_secs() }))
        .collect();
    let runs = heartbeat.runs(None, 100).await.map_err(|e| ApiError::internal(&e.into()))?;
    Ok(Json(json!({ "beats": beats, "runs": runs })).into_response())
}

/// `POST /admin/api/beats/{name}/run`: runs the beat as soon as a worker is free; 202 with the run's id.
pub async fn run_beat(State(state): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let run_id = state.jobs.heartbeat.run_now(&name).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "run_id": run_id }))).into_response())
}
