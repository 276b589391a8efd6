//! Operations endpoints: `/healthz`, `/readyz` and the Prometheus scrape at `/metrics`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// `GET /healthz`: the process is up.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the database answers.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => "ready".into_response(),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
    }
}

/// `GET /metrics`: Prometheus scrape endpoint.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = state.metrics.render();
    text.push_str(&format!(
        "# HELP payhub_group_commit_fallbacks_total Group-commit batches written one intent at a time after \
         failing together.\n# TYPE payhub_group_commit_fallbacks_total counter\npayhub_group_commit_fallbacks_total {}\n",
        state.payments.group_commit_fallbacks()
    ));
    text.push_str(&crate::ops::business().render());
    match state.jobs.queue.depth().await {
        Ok(depth) => {
            text.push_str("# HELP payhub_jobs_queued Queued jobs by kind.\n# TYPE payhub_jobs_queued gauge\n");
            for (kind, count, _) in &depth {
                text.push_str(&format!("payhub_jobs_queued{{kind=\"{kind}\"}} {count}\n"));
            }
            text.push_str(
                "# HELP payhub_jobs_oldest_due_age_seconds How long the oldest due job of each kind has waited.\n\
                 # TYPE payhub_jobs_oldest_due_age_seconds gauge\n",
            );
            for (kind, _, age) in &depth {
                text.push_str(&format!("payhub_jobs_oldest_due_age_seconds{{kind=\"{kind}\"}} {age}\n"));
            }
        }
        Err(error) => tracing::warn!(%error, "metrics: could not read the job queue"),
    }
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
