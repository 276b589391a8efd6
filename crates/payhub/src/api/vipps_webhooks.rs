//! `POST /webhooks/vipps/{account}`: Vipps' deliveries. The handler only answers; verifying, storing and
//! queueing are [`crate::vipps::intake::Intake`]'s.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;
use crate::vipps::intake::Refusal;

/// Verifies the signature over the raw body, stores the Message and queues its processing; 2xx only after the
/// durable write. Forged, tampered or stale deliveries get 401 and change nothing.
pub async fn intake(
    State(state): State<AppState>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    tracing::Span::current().record("account", account_id.as_str());
    let (outcome, response) = match state.vipps_intake.accept(&account_id, &headers, &body).await {
        Ok(()) => ("accepted", StatusCode::OK.into_response()),
        Err(Refusal::Unknown) => ("unknown", StatusCode::NOT_FOUND.into_response()),
        Err(Refusal::Unsigned(reason)) => {
            tracing::warn!(%account_id, %reason, "rejected a Vipps webhook");
            ("unsigned", (StatusCode::UNAUTHORIZED, "signature not valid").into_response())
        }
        Err(Refusal::Internal(error)) => {
            tracing::error!(%account_id, error = ?error, "could not store a Vipps webhook");
            ("error", StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    };
    crate::ops::business().count("payhub_vipps_webhooks_total", &[("outcome", outcome)]);
    response
}
