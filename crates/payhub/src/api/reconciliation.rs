//! Reconciliation in the admin API (finance and admin): start an import run now, list the runs, list the
//! payouts. The Guided Matching queue has its own handlers.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use crate::auth::Principal;
use crate::state::AppState;
use crate::store::payouts::{self, RunTrigger};

/// Query of the listings: one account (by name) or all, and how many.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The account's name; all accounts when absent.
    pub account: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// Body of `POST /admin/api/reconciliation/runs`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The account's name; every account with reconciliation on when absent.
    pub account: Option<String>,
}

async fn account_id(state: &AppState, name: Option<&str>) -> Result<Option<String>, ApiError> {
    match name {
        None => Ok(None),
        Some(name) => {
            let account =
                state.accounts.resolve(Some(name)).await?.ok_or(crate::error::ServiceError::NotFound("account"))?;
            Ok(Some(account.id))
        }
    }
}

fn limit(q: &ListQuery) -> i64 {
    q.limit.unwrap_or(100).clamp(1, 1000)
}

/// `POST /admin/api/reconciliation/runs` `{"account"?: NAME}`: imports and matches now; `200` with each
/// account's run (a failed run is in the list with its error).
pub async fn start_run(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let request: RunRequest =
        if body.iter().all(u8::is_ascii_whitespace) { RunRequest::default() } else { super::json::parse(&body)? };
    let runs = match request.account.as_deref() {
        Some(name) => vec![state.reconciler.run_named(Some(name), RunTrigger::Admin, Some(&caller.label)).await?],
        None => state.reconciler.run_all(RunTrigger::Admin, Some(&caller.label)).await?,
    };
    Ok((StatusCode::OK, Json(json!({ "runs": runs }))).into_response())
}

/// `GET /admin/api/reconciliation/runs[?account=NAME&limit=N]`: the latest runs, newest first.
pub async fn list_runs(State(state): State<AppState>, Query(q): Query<ListQuery>) -> Result<Response, ApiError> {
    let account = account_id(&state, q.account.as_deref()).await?;
    let mut conn = state.store.pool().acquire().await.map_err(|e| ApiError::internal(&e.into()))?;
    let runs =
        payouts::runs(&mut conn, account.as_deref(), limit(&q)).await.map_err(|e| ApiError::internal(&e.into()))?;
    Ok(Json(json!({ "runs": runs })).into_response())
}

/// `GET /admin/api/payouts[?account=NAME&limit=N]`: payouts, newest first, with what each covers.
pub async fn list_payouts(State(state): State<AppState>, Query(q): Query<ListQuery>) -> Result<Response, ApiError> {
    let account = account_id(&state, q.account.as_deref()).await?;
    let mut conn = state.store.pool().acquire().await.map_err(|e| ApiError::internal(&e.into()))?;
    let payouts =
        payouts::payouts(&mut conn, account.as_deref(), limit(&q)).await.map_err(|e| ApiError::internal(&e.into()))?;
    Ok(Json(json!({ "payouts": payouts })).into_response())
}
