//! PayLinks, `/pay/{token}`: a page that pays one open installment (payee, due date, open amount), pre-filled
//! with the payer's phone, in bokmål unless the payer asks for English, like the Giving Pages whose form
//! guards (CSRF double-submit cookie, honeypot, per-address limit) and style it shares.
//!
//! Each submission is a Message (the form, without its CSRF token), an Inbound Report and an intent with
//! `Origin` = `PayLink`, and sends the payer to the installment's one Vipps payment
//! ([`crate::processing::Payments::pay_by_link`]): the intake's, or one made for the link when the installment
//! has none yet; however many tabs or clicks, there is one per installment. An installment with nothing open
//! says "already paid"; cancelled and expired ones say so.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::give::{redact_token, split, with_token_at, CSRF_COOKIE, MARK, STYLE};
use super::give_form::{form_fields, lang_of, t};
use crate::auth::http::cookie;
use crate::auth::tokens::tokens_match;
use crate::domain::giving_page::{format_kroner, Lang};
use crate::domain::phone::Phone;
use crate::domain::status::InstallmentStatus;
use crate::processing::paylinks::LinkPayment;
use crate::state::AppState;
use crate::store::installments::{self, InstallmentRow};
use crate::store::paylinks;

/// A payer page around `body` (the Giving Pages' style, Vipps' colour).
pub(super) fn shell(lang: Lang, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(":root{--brand:#ff5b24;--on-brand:#1f2430}")) (PreEscaped(STYLE)) }
            }
            body { main { (body) } }
        }
    }
}

/// A page with a heading and one paragraph (not found, already paid, cancelled, expired).
pub(super) fn notice(
    lang: Lang,
    status: StatusCode,
    class: &str,
    heading: &str,
    text: &str,
    reference: Option<&str>,
) -> Response {
    let markup = shell(
        lang,
        heading,
        html! {
            h1 { (heading) }
            div.status.(class) role="status" {
                p { (text) }
                @if let Some(reference) = reference { p { (t(lang, "Referanse", "Reference")) ": " (reference) } }
            }
        },
    );
    (status, Html(markup.into_string())).into_response()
}

fn not_found(lang: Lang) -> Response {
    notice(
        lang,
        StatusCode::NOT_FOUND,
        "failed",
        t(lang, "Fant ikke betalingen", "Payment not found"),
        t(lang, "Lenken er feil eller ikke lenger i bruk.", "The link is wrong or no longer in use."),
        None,
    )
}

/// What the link's installment allows: the form, or one of the notices.
fn closed_notice(lang: Lang, installment: &InstallmentRow) -> Option<Response> {
    let reference = Some(installment.payment_reference.as_str());
    let already_paid = || {
        notice(
            lang,
            StatusCode::OK,
            "done",
            t(lang, "Allerede betalt", "Already paid"),
            t(lang, "Denne betalingen er allerede betalt. Takk!", "This payment is already paid. Thank you!"),
            reference,
        )
    };
    match installment.status {
        InstallmentStatus::Cancelled => Some(notice(
            lang,
            StatusCode::GONE,
            "failed",
            t(lang, "Betalingen er kansellert", "The payment is cancelled"),
            t(
                lang,
                "Denne betalingen er kansellert og kan ikke betales.",
                "This payment is cancelled and cannot be paid.",
            ),
            reference,
        )),
        InstallmentStatus::Failed => Some(notice(
            lang,
            StatusCode::GONE,
            "failed",
            t(lang, "Betalingen er utløpt", "The payment has expired"),
            t(
                lang,
                "Denne betalingen er utløpt eller avbrutt og kan ikke betales her. Ta kontakt med mottakeren.",
                "This payment has expired or was stopped and cannot be paid here. Please contact the payee.",
            ),
            reference,
        )),
        status if status.is_collected() || status == InstallmentStatus::Refunded => Some(already_paid()),
        _ if installment.amount_open_ore <= 0 => Some(already_paid()),
        _ if !paylinks::payable(installment) => Some(notice(
            lang,
            StatusCode::OK,
            "confirming",
            t(lang, "Trekkes automatisk", "Collected automatically"),
            t(
                lang,
                "Denne betalingen trekkes automatisk på avtalen din i Vipps.",
                "This payment is collected automatically on your agreement in Vipps.",
            ),
            reference,
        )),
        _ => None,
    }
}

async fn find(
    state: &AppState,
    token: &str,
) -> anyhow::Result<Option<(InstallmentRow, Option<String>, Option<String>)>> {
    let mut conn = state.store.pool().acquire().await?;
    let Some(id) = paylinks::installment_of(&mut conn, token).await? else { return Ok(None) };
    let Some(installment) = installments::installment(&mut conn, &id).await? else { return Ok(None) };
    let (payee, phone) = paylinks::payee_and_phone(&mut conn, &installment).await?;
    Ok(Some((installment, payee, phone)))
}

/// The top of a payer's page: the switch to the other language (back to `path`), the heading, and the summary
/// of what needs fixing, linked to the phone field; the PayLink and Setup URL pages share it.
pub(super) fn top(lang: Lang, path: &str, title: &str, error: Option<&str>) -> Markup {
    let other = match lang {
        Lang::Nb => ("en", "English"),
        Lang::En => ("nb", "Norsk"),
    };
    html! {
        header.page {
            span {}
            a.lang href=(format!("{path}?lang={}", other.0)) lang=(other.0) hreflang=(other.0) { (other.1) }
        }
        h1 { (title) }
        @if let Some(error) = error {
            div.summary role="alert" tabindex="-1" id="problems" {
                h2 { (t(lang, "Noe må rettes", "Something needs fixing")) }
                ul { li { a href="#mobileNumber" { (error) } } }
            }
        }
    }
}

/// The fields of a payer's form besides its button: the CSRF mark, the language, the honeypot, and the phone
/// number with its hint and error tied to it; the PayLink and Setup URL forms share them.
pub(super) fn phone_fields(lang: Lang, phone: &str, error: Option<&str>) -> Markup {
    let described = if error.is_some() { "mobileNumber-hint mobileNumber-error" } else { "mobileNumber-hint" };
    html! {
        input type="hidden" name="csrf_token" value=(MARK);
        input type="hidden" name="lang" value=(lang.code());
        div.hp {
            label for="website" { "Website" }
            input type="text" id="website" name="website" tabindex="-1" autocomplete="off";
        }
        div.field.has-error[error.is_some()] {
            label for="mobileNumber" { (t(lang, "Mobilnummer", "Mobile number")) }
            div.hint id="mobileNumber-hint" { (t(lang, "Nummeret du bruker i Vipps, for eksempel 912 34 567", "The number you use in Vipps, for example +47 912 34 567")) }
            input type="tel" inputmode="tel" id="mobileNumber" name="mobileNumber" value=(phone) autocomplete="tel"
                aria-describedby=(described) aria-invalid=[error.map(|_| "true")];
            @if let Some(error) = error { div.error id="mobileNumber-error" { (error) } }
        }
    }
}

fn form(
    lang: Lang,
    token: &str,
    installment: &InstallmentRow,
    payee: &str,
    phone: &str,
    error: Option<&str>,
) -> (String, String) {
    let title = t(lang, "Betal med Vipps", "Pay with Vipps");
    let markup = shell(
        lang,
        title,
        html! {
            (top(lang, &format!("/pay/{token}"), title, error))
            dl {
                dt { (t(lang, "Mottaker", "Payee")) } dd { (payee) }
                dt { (t(lang, "Forfallsdato", "Due date")) } dd { (installment.due_date.format("%d.%m.%Y")) }
                dt { (t(lang, "Å betale", "Amount to pay")) } dd.amount { (format_kroner(installment.amount_open_ore)) }
                @if let Some(product) = &installment.product { dt { (t(lang, "Gjelder", "For")) } dd { (product) } }
            }
            form method="post" action=(format!("/pay/{token}")) novalidate {
                (phone_fields(lang, phone, error))
                button type="submit" { (title) }
                p.secure { (t(lang, "Du godkjenner betalingen i Vipps.", "You approve the payment in Vipps.")) }
            }
        },
    );
    split(markup.into_string())
}

/// Shows the number as the payer would type it (8 digits for a Norwegian one).
pub(super) fn shown(phone: &str) -> String {
    phone.strip_prefix("47").filter(|rest| rest.len() == 8).unwrap_or(phone).to_owned()
}

/// `GET /pay/{token}`: the PayLink page, or why it cannot be paid. `?mobileNumber=` (or `?phone=`) pre-fills the
/// number over the one on record.
pub async fn show(
    State(state): State<AppState>,
    Path(token): Path<String>,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let lang = lang_of(&query, &headers);
    let (installment, payee, phone) = match find(&state, &token).await {
        Ok(Some(found)) => found,
        Ok(None) => return not_found(lang),
        Err(error) => return super::internal_error(&error),
    };
    if let Some(response) = closed_notice(lang, &installment) {
        return response;
    }
    let asked = query.get("mobileNumber").or_else(|| query.get("phone")).and_then(|p| Phone::parse(p).ok());
    let phone = asked.map(|p| p.as_str().to_owned()).or(phone).map(|p| shown(&p)).unwrap_or_default();
    let payee = payee.unwrap_or_default();
    with_token_at(&form(lang, &token, &installment, &payee, &phone, None), &headers, StatusCode::OK, "/pay")
}

/// The guards a payer page's submission passes before anything is read or written: the per-address limit, the
/// CSRF double-submit token and the honeypot. `Some`: the refusal to answer.
pub(super) fn guard(
    state: &AppState,
    address: SocketAddr,
    headers: &HeaderMap,
    form_values: &HashMap<String, String>,
    lang: Lang,
) -> Option<Response> {
    let refuse = |status, nb, en| {
        Some(notice(lang, status, "failed", t(lang, "Prøv igjen", "Please try again"), t(lang, nb, en), None))
    };
    if !state.pages.allow_submission(&address.ip().to_string()) {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "Det har kommet mange forsøk fra deg på kort tid. Vent et minutt og prøv igjen.",
            "There have been many attempts from you in a short time. Wait a minute and try again.",
        );
    }
    let token_ok = match (cookie(headers, CSRF_COOKIE), form_values.get("csrf_token")) {
        (Some(a), Some(b)) => !a.is_empty() && tokens_match(a, b),
        _ => false,
    };
    if !token_ok {
        return refuse(
            StatusCode::FORBIDDEN,
            "Skjemaet er utløpt. Åpne lenken igjen og send det på nytt.",
            "The form has expired. Open the link again and send it again.",
        );
    }
    if form_values.get("website").is_some_and(|v| !v.is_empty()) {
        return refuse(StatusCode::BAD_REQUEST, "Vi kunne ikke ta imot skjemaet.", "We could not accept the form.");
    }
    None
}

/// `POST /pay/{token}`: checks the form, then sends the payer to the installment's open Vipps payment (`303`).
pub async fn submit(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ConnectInfo(address): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let form_values = form_fields(&body);
    let lang = lang_of(&form_values, &headers);
    let (installment, payee, _) = match find(&state, &token).await {
        Ok(Some(found)) => found,
        Ok(None) => return not_found(lang),
        Err(error) => return super::internal_error(&error),
    };
    if let Some(response) = closed_notice(lang, &installment) {
        return response;
    }
    if let Some(refused) = guard(&state, address, &headers, &form_values, lang) {
        return refused;
    }
    let refuse = |status, nb, en| {
        notice(lang, status, "failed", t(lang, "Prøv igjen", "Please try again"), t(lang, nb, en), None)
    };
    let typed = form_values.get("mobileNumber").map(|s| s.trim()).unwrap_or_default();
    let phone = Phone::parse(typed).ok();
    if !typed.is_empty() && phone.is_none() {
        let error = t(
            lang,
            "Skriv et mobilnummer med 8 siffer, eller med landskode som +46 70 123 45 67.",
            "Type a mobile number with 8 digits, or with a country code like +46 70 123 45 67.",
        );
        let rendered = form(lang, &token, &installment, &payee.unwrap_or_default(), typed, Some(error));
        return with_token_at(&rendered, &headers, StatusCode::UNPROCESSABLE_ENTITY, "/pay");
    }
    match state.payments.pay_by_link(&installment, &token, phone.as_ref(), &redact_token(&body), lang.code()).await {
        Ok(LinkPayment::Pay(url)) => Redirect::to(&url).into_response(),
        Ok(LinkPayment::NotStarted(message)) => {
            tracing::warn!(installment = %installment.id, %message, "the PayLink's payment was not started");
            refuse(
                StatusCode::BAD_GATEWAY,
                "Vi fikk ikke startet betalingen i Vipps. Prøv igjen om litt.",
                "We could not start the payment in Vipps. Please try again in a moment.",
            )
        }
        Err(error) => super::internal_error(&error.into()),
    }
}
