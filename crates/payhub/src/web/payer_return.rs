//! `GET /v2/return/{intent}`: the page Vipps sends the payer back to. It is a page, not an API answer: it
//! forwards the payer to the intent's SuccessURL or FailureURL, and shows payhub's own page when there is no
//! such intent.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};

use crate::state::AppState;

/// Forwards the payer to where the intent says, once the payment or agreement was read from Vipps.
pub async fn payer_return(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.payments.payer_returned(&id).await {
        Ok(Some(url)) => Redirect::to(&url).into_response(),
        Ok(None) => super::not_found(),
        Err(error) => {
            tracing::error!(intent = %id, %error, "the payer's return could not be processed");
            super::not_found()
        }
    }
}
