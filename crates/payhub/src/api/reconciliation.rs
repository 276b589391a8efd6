//! Reconciliation in the admin API (finance and admin): start an import run now, list the runs, list the
//! payouts. The Guided Matching queue has its own handlers.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::error::{ApiError, ErrorEnvelope};
use crate::auth::Principal;
use crate::reconcile::RunSummary;
use crate::state::AppState;
use crate::store::payouts::{self, PayoutRow, RunRow, RunTrigger};

/// The admin API's reconciliation runs and payouts, for `/openapi.json`.
#[derive(OpenApi)]
#[openapi(paths(start_run, list_runs, list_payouts), modifiers(&OptionalRunBody))]
pub struct Doc;

/// `POST /admin/api/reconciliation/runs` takes an empty body too (but not `null`), which `Option<RunRequest>`
/// would say: the body is [`RunRequest`] and not required.
struct OptionalRunBody;

impl utoipa::Modify for OptionalRunBody {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let operation = openapi.paths.paths.get_mut("/admin/api/reconciliation/runs").and_then(|p| p.post.as_mut());
        if let Some(body) = operation.and_then(|o| o.request_body.as_mut()) {
            body.required = Some(utoipa::openapi::Required::False);
        }
    }
}

/// Query of the listings: one account (by name) or all, and how many.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The account's name; all accounts when absent.
    pub account: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// Body of `POST /admin/api/reconciliation/runs` (the body may also be empty).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The account's name; every account with reconciliation on when absent.
    pub account: Option<String>,
}

/// Answer of `POST /admin/api/reconciliation/runs`.
#[derive(Serialize, ToSchema)]
pub struct RunsDone {
    /// Each account's run as it ended (a failed run is here with its error).
    pub runs: Vec<RunSummary>,
}

/// Answer of `GET /admin/api/reconciliation/runs`.
#[derive(Serialize, ToSchema)]
pub struct RunList {
    /// The latest runs, newest first.
    pub runs: Vec<RunRow>,
}

/// Answer of `GET /admin/api/payouts`.
#[derive(Serialize, ToSchema)]
pub struct PayoutList {
    /// Payouts, newest first, with what each covers.
    pub payouts: Vec<PayoutRow>,
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
#[utoipa::path(post, path = "/admin/api/reconciliation/runs", tag = "Reconciliation",
    summary = "Import and match the settlement ledger now",
    description = "Runs what the daily beat runs, now: reads the ledger from Vipps' Report API since the last \
        run, stores new rows and matches them. One account, or every account with reconciliation on when the \
        body is empty or names none. A run that fails is in the answer with its error; nothing is booked twice.",
    request_body(content = RunRequest, description = "Optional; an empty body means every account"),
    responses(
        (status = 200, description = "Each account's run", body = RunsDone),
        (status = 400, description = "A malformed body", body = ErrorEnvelope),
        (status = 404, description = "No account of that name", body = ErrorEnvelope)))]
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
    Ok((StatusCode::OK, Json(RunsDone { runs })).into_response())
}

/// `GET /admin/api/reconciliation/runs[?account=NAME&limit=N]`: the latest runs, newest first.
#[utoipa::path(get, path = "/admin/api/reconciliation/runs", tag = "Reconciliation",
    summary = "List reconciliation runs",
    params(ListQuery),
    responses(
        (status = 200, description = "The latest runs, newest first", body = RunList),
        (status = 404, description = "No account of that name", body = ErrorEnvelope)))]
pub async fn list_runs(State(state): State<AppState>, Query(q): Query<ListQuery>) -> Result<Response, ApiError> {
    let account = account_id(&state, q.account.as_deref()).await?;
    let mut conn = state.store.pool().acquire().await.map_err(|e| ApiError::internal(&e.into()))?;
    let runs =
        payouts::runs(&mut conn, account.as_deref(), limit(&q)).await.map_err(|e| ApiError::internal(&e.into()))?;
    Ok(Json(RunList { runs }).into_response())
}

/// `GET /admin/api/payouts[?account=NAME&limit=N]`: payouts, newest first, with what each covers.
#[utoipa::path(get, path = "/admin/api/payouts", tag = "Reconciliation",
    summary = "List payouts",
    description = "Each payout Vipps made to the bank, with the captures, refunds and fees it covers, so a bank \
        statement line can be explained.",
    params(ListQuery),
    responses(
        (status = 200, description = "Payouts, newest first", body = PayoutList),
        (status = 404, description = "No account of that name", body = ErrorEnvelope)))]
pub async fn list_payouts(State(state): State<AppState>, Query(q): Query<ListQuery>) -> Result<Response, ApiError> {
    let account = account_id(&state, q.account.as_deref()).await?;
    let mut conn = state.store.pool().acquire().await.map_err(|e| ApiError::internal(&e.into()))?;
    let payouts =
        payouts::payouts(&mut conn, account.as_deref(), limit(&q)).await.map_err(|e| ApiError::internal(&e.into()))?;
    Ok(Json(PayoutList { payouts }).into_response())
}
