//! Setup URLs, `/renew/{token}`: a recurring payment's page for its payer (FinDock's `Setup URL`). When the
//! agreement was stopped or expired it shows the terms (payee, amount, interval) and the payer approves a new
//! agreement for the same recurring payment in Vipps ([`crate::processing::Payments::renew`]); otherwise it says
//! where the recurring payment stands (active, waiting for approval, cancelled, ended). Bokmål unless the payer
//! asks for English, with the PayLinks' look and guards (CSRF double-submit cookie, honeypot, per-address limit).

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::give::{redact_token, split, with_token_at};
use super::give_form::{form_fields, lang_of, t};
use super::pay::{guard, notice, phone_fields, shell, shown, top};
use crate::domain::giving_page::{format_kroner, Giving, Lang};
use crate::domain::phone::Phone;
use crate::processing::recurring::{Renewed, SetupView, Standing};
use crate::state::AppState;

fn not_found(lang: Lang) -> Response {
    notice(
        lang,
        StatusCode::NOT_FOUND,
        "failed",
        t(lang, "Fant ikke avtalen", "Agreement not found"),
        t(lang, "Lenken er feil eller ikke lenger i bruk.", "The link is wrong or no longer in use."),
        None,
    )
}

/// The notice for a recurring payment there is nothing to renew on.
fn standing_notice(lang: Lang, standing: Standing, reference: &str) -> Response {
    let (status, class, heading, text) = match standing {
        Standing::Active | Standing::Renewable => (
            StatusCode::OK,
            "done",
            t(lang, "Avtalen er aktiv", "The agreement is active"),
            t(
                lang,
                "Den faste betalingen din trekkes på en aktiv avtale i Vipps. Du trenger ikke gjøre noe.",
                "Your recurring payment is collected on an active agreement in Vipps. There is nothing you need to do.",
            ),
        ),
        Standing::AwaitingApproval => (
            StatusCode::OK,
            "confirming",
            t(lang, "Venter på godkjenning", "Waiting for approval"),
            t(
                lang,
                "Avtalen venter på at du godkjenner den i Vipps.",
                "The agreement is waiting for you to approve it in Vipps.",
            ),
        ),
        Standing::Cancelled => (
            StatusCode::GONE,
            "failed",
            t(lang, "Avtalen er avsluttet", "The agreement is cancelled"),
            t(
                lang,
                "Mottakeren har avsluttet denne faste betalingen. Ta kontakt med mottakeren om du vil gi igjen.",
                "The payee has cancelled this recurring payment. Please contact the payee if you want to give again.",
            ),
        ),
        Standing::Ended => (
            StatusCode::GONE,
            "failed",
            t(lang, "Avtalen er utløpt", "The agreement has ended"),
            t(
                lang,
                "Denne faste betalingen har nådd sluttdatoen sin og kan ikke fornyes her.",
                "This recurring payment has reached its end date and cannot be renewed here.",
            ),
        ),
    };
    notice(lang, status, class, heading, text, Some(reference))
}

fn form(lang: Lang, token: &str, view: &SetupView, phone: &str, error: Option<&str>) -> (String, String) {
    let title = t(lang, "Godkjenn ny avtale", "Approve a new agreement");
    let recurring = &view.recurring;
    let markup = shell(
        lang,
        title,
        html! {
            (top(lang, &format!("/renew/{token}"), title, error))
            p { (t(lang,
                "Avtalen din i Vipps er stoppet eller utløpt. Godkjenn en ny avtale for å fortsette den faste betalingen.",
                "Your agreement in Vipps was stopped or has expired. Approve a new agreement to continue the recurring payment.")) }
            dl {
                dt { (t(lang, "Mottaker", "Payee")) } dd { (view.payee) }
                dt { (t(lang, "Gjelder", "For")) } dd { (view.mandate.product_name) }
                dt { (t(lang, "Beløp", "Amount")) } dd.amount { (format_kroner(recurring.amount_ore)) }
                dt { (t(lang, "Hvor ofte", "How often")) } dd { (Giving::Recurring(recurring.frequency).label(lang)) }
                @if let Some(next) = view.next_due {
                    dt { (t(lang, "Neste trekk", "Next payment")) } dd { (next.format("%d.%m.%Y")) }
                }
            }
            form method="post" action=(format!("/renew/{token}")) novalidate {
                (phone_fields(lang, phone, error))
                button type="submit" { (t(lang, "Godkjenn i Vipps", "Approve in Vipps")) }
                p.secure { (t(lang, "Du godkjenner den nye avtalen i Vipps.", "You approve the new agreement in Vipps.")) }
            }
        },
    );
    split(markup.into_string())
}

/// `GET /renew/{token}`: the terms and the form while the agreement can be renewed, else where the recurring
/// payment stands. `?mobileNumber=` (or `?phone=`) pre-fills the number over the one on record.
pub async fn show(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let lang = lang_of(&query, &headers);
    let view = match state.payments.setup_view(&token).await {
        Ok(Some(view)) => view,
        Ok(None) => return not_found(lang),
        Err(error) => return super::internal_error(&error.into()),
    };
    if view.standing != Standing::Renewable {
        return standing_notice(lang, view.standing, &view.recurring.id);
    }
    let asked = query.get("mobileNumber").or_else(|| query.get("phone")).and_then(|p| Phone::parse(p).ok());
    let phone = asked.map(|p| p.as_str().to_owned()).or(view.phone.clone()).map(|p| shown(&p)).unwrap_or_default();
    with_token_at(&form(lang, &token, &view, &phone, None), &headers, StatusCode::OK, "/renew")
}

/// `POST /renew/{token}`: checks the form, records the submission and the new agreement, and sends the payer to
/// approve it in Vipps (`303`).
pub async fn submit(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ConnectInfo(address): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let form_values = form_fields(&body);
    let lang = lang_of(&form_values, &headers);
    let view = match state.payments.setup_view(&token).await {
        Ok(Some(view)) => view,
        Ok(None) => return not_found(lang),
        Err(error) => return super::internal_error(&error.into()),
    };
    if view.standing != Standing::Renewable {
        return standing_notice(lang, view.standing, &view.recurring.id);
    }
    if let Some(refused) = guard(&state, address, &headers, &form_values, lang) {
        return refused;
    }
    let typed = form_values.get("mobileNumber").map(|s| s.trim()).unwrap_or_default();
    let phone = match typed {
        "" => None,
        typed => match Phone::parse(typed) {
            Ok(phone) => Some(phone),
            Err(_) => {
                let error = t(
                    lang,
                    "Skriv et mobilnummer med 8 siffer, eller med landskode som +46 70 123 45 67.",
                    "Type a mobile number with 8 digits, or with a country code like +46 70 123 45 67.",
                );
                let rendered = form(lang, &token, &view, typed, Some(error));
                return with_token_at(&rendered, &headers, StatusCode::UNPROCESSABLE_ENTITY, "/renew");
            }
        },
    };
    match state.payments.renew(&token, phone.as_ref(), &redact_token(&body), lang.code()).await {
        Ok(Renewed::Approve(url)) => Redirect::to(&url).into_response(),
        Ok(Renewed::NotRenewable(standing)) => standing_notice(lang, standing, &view.recurring.id),
        Ok(Renewed::Provider(message)) => {
            tracing::warn!(recurring = %view.recurring.id, %message, "the renewal's agreement was not drafted");
            notice(
                lang,
                StatusCode::BAD_GATEWAY,
                "failed",
                t(lang, "Prøv igjen", "Please try again"),
                t(
                    lang,
                    "Vi fikk ikke startet avtalen i Vipps. Prøv igjen om litt.",
                    "We could not start the agreement in Vipps. Please try again in a moment.",
                ),
                None,
            )
        }
        Err(error) => super::internal_error(&error.into()),
    }
}
