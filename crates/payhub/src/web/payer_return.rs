//! `GET /v2/return/{intent}`: the page Vipps sends the payer back to. It is a page, not an API answer: it
//! forwards the payer to the intent's SuccessURL or FailureURL once Vipps has decided, and until then shows a
//! small page (Norwegian or English, as the browser prefers) that looks again by itself.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{html, DOCTYPE};
use utoipa::OpenApi;

use crate::processing::payer_return::Return;
use crate::state::AppState;

/// The payer's return, for `/openapi.json`: a page for the payer's browser, described so an integrator knows
/// where Vipps sends the payer and what the browser gets.
#[derive(OpenApi)]
#[openapi(paths(payer_return))]
pub struct Doc;

/// Forwards the payer to where the intent says, once the payment or agreement was read from Vipps.
#[utoipa::path(get, path = "/v2/return/{id}", tag = "Payment API",
    summary = "The payer's return from Vipps (for the payer's browser, not for API clients)",
    description = "Vipps sends the payer here after paying or confirming an agreement. payhub reads the payment or \
        agreement from Vipps and forwards the browser to the intent's `SuccessURL` or `FailureURL`; until Vipps has \
        decided, a small page (Norwegian or English, after `Accept-Language`) that looks again by itself. No key.",
    params(("id" = String, Path, description = "The Payment Intent's id (`pi_…`).")),
    responses(
        (status = 303, description = "Vipps has decided: go to the intent's SuccessURL or FailureURL.",
            headers(("Location" = String, description = "The intent's `SuccessURL` or `FailureURL`."))),
        (status = 200, description = "Vipps has not decided yet: a page that reloads itself.", content_type = "text/html", body = String),
        (status = 404, description = "No such Payment Intent (in the envelope, as every error under `/v2`).", body = crate::api::error::ErrorEnvelope),
    ))]
pub async fn payer_return(State(state): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    match state.payments.payer_returned(&id).await {
        Ok(Some(Return::Success(url) | Return::Failure(url))) => Redirect::to(&url).into_response(),
        Ok(Some(Return::Checking)) => checking(norwegian(&headers)),
        Ok(None) => super::not_found(),
        Err(error) => {
            tracing::error!(intent = %id, %error, "the payer's return could not be processed");
            checking(norwegian(&headers))
        }
    }
}

/// Whether the browser prefers Norwegian (Bokmål, Nynorsk or plain `no`) to English. Payers are in Norway, so
/// Norwegian is also the answer when the browser states no preference.
pub(crate) fn norwegian(headers: &HeaderMap) -> bool {
    let Some(accepted) = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()) else { return true };
    accepted
        .split(',')
        .map(|part| part.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .find(|tag| !tag.is_empty() && tag != "*")
        .is_none_or(|tag| ["nb", "nn", "no"].iter().any(|n| tag == *n || tag.starts_with(&format!("{n}-"))))
}

fn checking(norwegian: bool) -> Response {
    let (lang, title, text, again) = if norwegian {
        (
            "nb",
            "Vi sjekker betalingen",
            "Vipps har ikke bekreftet betalingen ennå. Siden oppdateres av seg selv om noen sekunder.",
            "Sjekk igjen",
        )
    } else {
        (
            "en",
            "We are checking your payment",
            "Vipps has not confirmed the payment yet. This page updates itself in a few seconds.",
            "Check again",
        )
    };
    let markup = html! {
        (DOCTYPE)
        html lang=(lang) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta http-equiv="refresh" content="3";
                title { (title) }
                style { "body{font:17px/1.5 system-ui,sans-serif;margin:0;padding:2rem 1.2rem;color:#1f2430}main{max-width:32rem;margin:auto}a{color:#c2410c}" }
            }
            body { main { h1 { (title) } p role="status" { (text) } p { a href="" { (again) } } } }
        }
    };
    (StatusCode::OK, Html(markup.into_string())).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norwegian_unless_the_browser_prefers_another_language() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT_LANGUAGE, value.parse().unwrap_or_else(|_| unreachable!()));
            norwegian(&headers)
        };
        assert!(norwegian(&HeaderMap::new()));
        assert!(with("nb-NO,nb;q=0.9,en;q=0.8") && with("nn") && with("no"));
        assert!(!with("en-GB,en;q=0.9") && !with("sv-SE"));
    }
}
