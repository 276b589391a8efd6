//! The admin API for outbound webhooks: endpoints (each with a secret shown once, at creation), the delivery
//! log, and resending a delivery; and for the background work behind them: the job queue's state and the
//! heartbeat's beats, their recent runs, and running a beat now. Admin role only.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::error::{ApiError, ErrorEnvelope};
use super::json::ApiJson;
use crate::auth::Principal;
use crate::domain::FieldError;
use crate::jobs::heartbeat::BeatRun;
use crate::jobs::{JobRecord, QueueCounts};
use crate::processing::outbox::NewEndpoint;
use crate::state::AppState;
use crate::store::outbox::{DeliveryView, EndpointView};

/// The admin API's webhook, delivery, job and beat operations, for `/openapi.json`.
#[derive(OpenApi)]
#[openapi(paths(
    list_endpoints,
    create_endpoint,
    delete_endpoint,
    rotate_intent_secret,
    list_deliveries,
    resend_delivery,
    list_jobs,
    list_beats,
    run_beat
))]
pub struct Doc;

/// Answer of `GET /admin/api/webhook-endpoints`.
#[derive(Serialize, ToSchema)]
pub struct EndpointList {
    /// Every endpoint, oldest first (never a secret).
    pub endpoints: Vec<EndpointView>,
    /// Whether the installation secret that signs deliveries to intents' own `WebhookURL`s is set.
    pub intent_webhook_secret_set: bool,
}

/// Answer of `POST /admin/api/webhook-endpoints`: the endpoint and, this once, its secret.
#[derive(Serialize, ToSchema)]
pub struct EndpointCreated {
    /// The endpoint as stored.
    #[serde(flatten)]
    pub endpoint: EndpointView,
    /// The signing secret (`whsec_…`, Standard Webhooks). Shown in this answer only; it is stored sealed.
    pub secret: String,
}

/// Answer of `POST /admin/api/intent-webhook-secret`.
#[derive(Serialize, ToSchema)]
pub struct IntentSecret {
    /// The new secret (`whsec_…`) signing deliveries to intents' own `WebhookURL`s. Shown in this answer only.
    pub secret: String,
}

/// `GET /admin/api/webhook-endpoints`: every endpoint (without secrets), and whether the installation secret
/// that signs deliveries to payment intents' own `WebhookURL`s is set (secrets are write-only).
#[utoipa::path(get, path = "/admin/api/webhook-endpoints", tag = "Webhooks and jobs",
    summary = "List webhook endpoints",
    responses((status = 200, description = "Every endpoint, and whether the intent webhook secret is set; never a \
        secret", body = EndpointList)))]
pub async fn list_endpoints(State(state): State<AppState>) -> Result<Response, ApiError> {
    let endpoints = state.outbox.list_endpoints().await?;
    let intent_webhook_secret_set = state.outbox.intent_secret_set().await?;
    Ok(Json(EndpointList { endpoints, intent_webhook_secret_set }).into_response())
}

/// `POST /admin/api/intent-webhook-secret`: makes the intent webhook secret anew; the answer `{"secret"}` is the
/// one time it is shown.
#[utoipa::path(post, path = "/admin/api/intent-webhook-secret", tag = "Webhooks and jobs",
    summary = "Make the intent webhook secret anew",
    description = "Replaces the secret that signs deliveries to payment intents' own `WebhookURL`s; deliveries \
        sent from now on are signed with the new one. The answer is the only time it is shown. No body. Audited.",
    responses((status = 201, description = "The new secret (shown this once)", body = IntentSecret)))]
pub async fn rotate_intent_secret(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
) -> Result<Response, ApiError> {
    let secret = state.outbox.rotate_intent_secret(&caller.actor()).await?;
    Ok((StatusCode::CREATED, Json(IntentSecret { secret })).into_response())
}

/// `POST /admin/api/webhook-endpoints`: `{"url", "description"?, "event_types"?}`; the answer carries the
/// endpoint's `secret`, which is never shown again.
#[utoipa::path(post, path = "/admin/api/webhook-endpoints", tag = "Webhooks and jobs",
    summary = "Add a webhook endpoint",
    description = "Events of the chosen types (all when none are named) are posted to `url`, signed with the \
        endpoint's secret (Standard Webhooks). The URL must reach a public host unless the installation allows \
        others. The answer's `secret` is the only time it is shown. Audited.",
    request_body = NewEndpoint,
    responses(
        (status = 201, description = "The endpoint with its secret (shown this once)", body = EndpointCreated),
        (status = 400, description = "Invalid URL, description or event type", body = ErrorEnvelope)))]
pub async fn create_endpoint(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    ApiJson(input): ApiJson<NewEndpoint>,
) -> Result<Response, ApiError> {
    let (endpoint, secret) = state.outbox.create_endpoint(&input, &caller.actor()).await?;
    Ok((StatusCode::CREATED, Json(EndpointCreated { endpoint, secret })).into_response())
}

/// `DELETE /admin/api/webhook-endpoints/{id}`
#[utoipa::path(delete, path = "/admin/api/webhook-endpoints/{id}", tag = "Webhooks and jobs",
    summary = "Remove a webhook endpoint",
    description = "Its pending deliveries fail on their next attempt; the delivery log keeps them. Audited.",
    params(("id" = String, Path, description = "The endpoint's id (`whe_…`)")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such endpoint", body = ErrorEnvelope)))]
pub async fn delete_endpoint(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state.outbox.delete_endpoint(&id, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Query of `GET /admin/api/webhook-deliveries`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Only deliveries in this state: `pending`, `delivered` or `failed`.
    #[param(pattern = "^(pending|delivered|failed)$")]
    pub status: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// Answer of `GET /admin/api/webhook-deliveries`.
#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    /// Deliveries, newest first.
    pub deliveries: Vec<DeliveryView>,
}

/// `GET /admin/api/webhook-deliveries`: newest first, with attempts, last status code and error.
#[utoipa::path(get, path = "/admin/api/webhook-deliveries", tag = "Webhooks and jobs",
    summary = "Read the delivery log",
    params(DeliveriesQuery),
    responses(
        (status = 200, description = "Deliveries, newest first, with their attempts and last outcome", body = DeliveryList),
        (status = 400, description = "An unknown status", body = ErrorEnvelope)))]
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
    Ok(Json(DeliveryList { deliveries }).into_response())
}

/// `POST /admin/api/webhook-deliveries/{id}/resend`: queues the delivery again (same `webhook-id`); 202.
#[utoipa::path(post, path = "/admin/api/webhook-deliveries/{id}/resend", tag = "Webhooks and jobs",
    summary = "Send a delivery again",
    description = "Queues the delivery again with the same body and the same `webhook-id`, so a receiver that \
        took it already can drop the repeat. No body. Audited.",
    params(("id" = String, Path, description = "The delivery's id (`msg_…`)")),
    responses(
        (status = 202, description = "Queued; the delivery as it now stands", body = DeliveryView),
        (status = 404, description = "No such delivery", body = ErrorEnvelope)))]
pub async fn resend_delivery(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let delivery = state.outbox.resend(&id, &caller.actor()).await?;
    Ok((StatusCode::ACCEPTED, Json(delivery)).into_response())
}

/// Query of `GET /admin/api/jobs`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobsQuery {
    /// Only jobs in this state: `queued`, `running`, `done` or `failed`.
    #[param(pattern = "^(queued|running|done|failed)$")]
    pub status: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// Answer of `GET /admin/api/jobs`.
#[derive(Serialize, ToSchema)]
pub struct JobList {
    /// How many jobs are in each state.
    pub counts: QueueCounts,
    /// The most recent jobs, newest first.
    pub jobs: Vec<JobRecord>,
}

/// `GET /admin/api/jobs`: how many jobs are in each state, and the most recent jobs (newest first).
#[utoipa::path(get, path = "/admin/api/jobs", tag = "Webhooks and jobs",
    summary = "Read the job queue",
    params(JobsQuery),
    responses(
        (status = 200, description = "Counts by state and the most recent jobs", body = JobList),
        (status = 400, description = "An unknown status", body = ErrorEnvelope)))]
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
    Ok(Json(JobList { counts, jobs }).into_response())
}

/// One registered beat.
#[derive(Serialize, ToSchema)]
pub struct BeatView {
    /// The beat's name (what `POST /admin/api/beats/{id}/run` takes).
    pub name: String,
    /// How often it runs, in seconds.
    pub period_seconds: u64,
}

/// Answer of `GET /admin/api/beats`.
#[derive(Serialize, ToSchema)]
pub struct BeatList {
    /// The registered beats, by name.
    pub beats: Vec<BeatView>,
    /// The 100 most recent runs, newest first.
    pub runs: Vec<BeatRun>,
}

/// Answer of `POST /admin/api/beats/{id}/run`.
#[derive(Serialize, ToSchema)]
pub struct RunRequested {
    /// The run recorded for it (`brn_…`); follow it in `GET /admin/api/beats`.
    pub run_id: String,
}

/// `GET /admin/api/beats`: the registered beats with their periods, and the 100 most recent runs.
#[utoipa::path(get, path = "/admin/api/beats", tag = "Webhooks and jobs",
    summary = "List the beats and their recent runs",
    responses((status = 200, description = "The beats and the 100 most recent runs", body = BeatList)))]
pub async fn list_beats(State(state): State<AppState>) -> Result<Response, ApiError> {
    let heartbeat = &state.jobs.heartbeat;
    let beats = heartbeat
        .beats()
        .into_iter()
        .map(|(name, period)| BeatView { name, period_seconds: period.as_secs() })
        .collect();
    let runs = heartbeat.runs(None, 100).await.map_err(|e| ApiError::internal(&e.into()))?;
    Ok(Json(BeatList { beats, runs }).into_response())
}

/// `POST /admin/api/beats/{name}/run`: runs the beat as soon as a worker is free; 202 with the run's id.
#[utoipa::path(post, path = "/admin/api/beats/{id}/run", tag = "Webhooks and jobs",
    summary = "Run a beat now",
    description = "Runs the beat for every scope as soon as a worker is free, besides its schedule. No body.",
    params(("id" = String, Path, description = "The beat's name (as `GET /admin/api/beats` lists it)")),
    responses(
        (status = 202, description = "The run is queued", body = RunRequested),
        (status = 404, description = "No such beat", body = ErrorEnvelope)))]
pub async fn run_beat(State(state): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let run_id = state.jobs.heartbeat.run_now(&name).await?;
    Ok((StatusCode::ACCEPTED, Json(RunRequested { run_id })).into_response())
}
