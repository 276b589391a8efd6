//! The public Giving Page, `/give/{slug}`: a donation form for a phone, server-rendered, no JavaScript needed,
//! in bokmål unless the payer asks for English (`?lang=en`, or the browser's languages). The query pre-fills the
//! form (each value checked against the page: an amount outside its limits is not used), the number the payer
//! types wins, and a submission goes to the intake or comes back with errors beside their fields, in the
//! payer's language, having recorded nothing.
//!
//! Abuse: a double-submit CSRF token (a cookie and the same value in the form; no session is needed, and the
//! cached page stays the same for everyone, the token being put in per request), a per-address limit on
//! submissions, a honeypot field, and the amount read only from what the payer chose, checked against the
//! page's limits: nothing hidden in the form names a price.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::give_form::{check, form_fields, lang_of, prefill, t, Problem, Values};
use crate::auth::http::cookie;
use crate::auth::tokens::{new_token, tokens_match};
use crate::domain::giving_page::{format_kroner, Giving, GivingPageSettings, Lang};
use crate::pages::GiftStatus;
use crate::processing::IntentError;
use crate::state::AppState;
use crate::store::giving_pages::GivingPageRecord;

/// The double-submit cookie's name.
pub const CSRF_COOKIE: &str = "payhub_give";
/// Where the CSRF token goes in a rendered page (PayLinks render theirs the same way).
pub(super) const MARK: &str = "@@CSRF@@";

/// The payer pages' style sheet (Giving Pages and PayLinks).
pub(super) const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:17px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2430;background:#fff}
main{max-width:34rem;margin:0 auto;padding:1.2rem 1rem 3rem}
header.page{display:flex;align-items:center;gap:.8rem;justify-content:space-between}
header.page img{max-height:48px;max-width:50%}
h1{font-size:1.6rem;line-height:1.25;margin:.6rem 0 .4rem}
.intro{margin:0 0 1.2rem;color:#3b4250}
fieldset{border:0;padding:0;margin:0 0 1.2rem}
legend{font-weight:700;margin-bottom:.4rem;padding:0}
.choices{display:grid;grid-template-columns:repeat(auto-fill,minmax(7.5rem,1fr));gap:.5rem}
.choice{position:relative}
.choice input{position:absolute;opacity:0;width:1px;height:1px}
.choice label{display:block;border:2px solid #6b7280;border-radius:10px;padding:.7rem .5rem;text-align:center;font-weight:600;cursor:pointer;min-height:3rem}
.choice input:checked+label{background:var(--brand);border-color:var(--brand);color:var(--on-brand)}
.choice input:focus-visible+label{outline:3px solid #1f2430;outline-offset:2px}
.narrative{display:block;font-weight:400;font-size:.85rem}
.field{margin-bottom:1rem}
.field label{display:block;font-weight:600;margin-bottom:.25rem}
input[type=text],input[type=email],input[type=tel]{width:100%;padding:.7rem .75rem;border:2px solid #6b7280;border-radius:10px;font:inherit;background:#fff;color:#1f2430}
input:focus-visible{outline:3px solid #1f2430;outline-offset:1px}
.hint{color:#4b5563;font-size:.9rem}
.error{color:#b3261e;font-weight:600;font-size:.95rem;margin-top:.25rem}
.has-error input{border-color:#b3261e}
.summary{border:2px solid #b3261e;border-radius:10px;padding:.8rem 1rem;margin-bottom:1.2rem}
.summary h2{font-size:1.1rem;margin:0 0 .3rem;color:#b3261e}
.summary a{color:#1f2430}
.row{display:grid;grid-template-columns:1fr 1fr;gap:.7rem}
button{width:100%;background:var(--brand);color:var(--on-brand);border:0;border-radius:10px;padding:.95rem 1rem;font:inherit;font-weight:700;font-size:1.1rem;cursor:pointer}
button:focus-visible{outline:3px solid #1f2430;outline-offset:2px}
.lang{font-size:.95rem}
.lang a,.status a{color:#1f2430}
.hp{display:none}
.status{border-radius:12px;padding:1.1rem 1.2rem;margin:1rem 0;border:2px solid #d1d5db}
.status.done{border-color:#1a7f37}
.status.failed{border-color:#b3261e}
.amount{font-size:1.4rem;font-weight:700}
.secure{color:#4b5563;font-size:.9rem;margin-top:1rem}
"#;

fn page_shell(settings: &GivingPageSettings, lang: Lang, title: &str, refresh: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if refresh { meta http-equiv="refresh" content="3"; }
                title { (title) }
                style { (PreEscaped(format!(":root{{--brand:{};--on-brand:{}}}", settings.colour, settings.on_colour()))) (PreEscaped(STYLE)) }
            }
            body { main { (body) } }
        }
    }
}

fn field(
    name: &'static str,
    label: &str,
    kind: &str,
    autocomplete: &str,
    value: &str,
    hint: Option<&str>,
    problems: &[Problem],
) -> Markup {
    let error = problems.iter().find(|p| p.field == name).map(|p| p.message);
    let described = match (hint.is_some(), error.is_some()) {
        (true, true) => Some(format!("{name}-hint {name}-error")),
        (true, false) => Some(format!("{name}-hint")),
        (false, true) => Some(format!("{name}-error")),
        (false, false) => None,
    };
    html! {
        div.field.has-error[error.is_some()] {
            label for=(name) { (label) }
            @if let Some(hint) = hint { div.hint id=(format!("{name}-hint")) { (hint) } }
            input type=(kind) id=(name) name=(name) value=(value) autocomplete=(autocomplete)
                inputmode=[(kind == "tel").then_some("tel")]
                aria-describedby=[described] aria-invalid=[error.map(|_| "true")];
            @if let Some(error) = error { div.error id=(format!("{name}-error")) { (error) } }
        }
    }
}

/// The form page; the CSRF token's place is marked so one rendering serves every payer.
fn form_page(
    record: &GivingPageRecord,
    lang: Lang,
    values: &Values,
    problems: &[Problem],
    general: Option<&str>,
) -> String {
    let page = &record.settings;
    let title = page.title.get(lang);
    let frequency = Giving::parse(&values.frequency).unwrap_or(page.default_frequency);
    let (min, max) = page.limits(Giving::OneTime);
    let amount_error = problems.iter().find(|p| p.field == "amount").map(|p| p.message);
    let other_lang = match lang {
        Lang::Nb => ("en", "English"),
        Lang::En => ("nb", "Norsk"),
    };
    let markup = page_shell(
        page,
        lang,
        title,
        false,
        html! {
            header.page {
                @if let Some(logo) = &page.logo_url { img src=(logo) alt=(title); }
                a.lang href=(format!("/give/{}?lang={}", page.slug, other_lang.0)) lang=(other_lang.0) hreflang=(other_lang.0) { (other_lang.1) }
            }
            h1 { (title) }
            @if !page.intro.get(lang).is_empty() { p.intro { (page.intro.get(lang)) } }
            @if !problems.is_empty() || general.is_some() {
                div.summary role="alert" tabindex="-1" id="problems" {
                    h2 { (t(lang, "Noe må rettes", "Something needs fixing")) }
                    @if let Some(general) = general { p { (general) } }
                    ul { @for p in problems { li { a href=(format!("#{}", p.field)) { (p.message) } } } }
                }
            }
            form method="post" action=(format!("/give/{}", page.slug)) novalidate {
                input type="hidden" name="csrf_token" value=(MARK);
                input type="hidden" name="lang" value=(lang.code());
                @if !values.campaign.is_empty() { input type="hidden" name="campaign" value=(values.campaign); }
                @if !values.origin.is_empty() { input type="hidden" name="origin" value=(values.origin); }
                div.hp {
                    label for="website" { "Website" }
                    input type="text" id="website" name="website" tabindex="-1" autocomplete="off";
                }
                @if page.frequencies.len() > 1 {
                    fieldset {
                        legend { (t(lang, "Hvor ofte vil du gi?", "How often do you want to give?")) }
                        div.choices {
                            @for g in &page.frequencies {
                                div.choice {
                                    input type="radio" name="frequency" id=(format!("frequency-{g}")) value=(g.as_str()) checked[*g == frequency];
                                    label for=(format!("frequency-{g}")) { (g.label(lang)) }
                                }
                            }
                        }
                    }
                } @else {
                    input type="hidden" name="frequency" value=(frequency.as_str());
                }
                fieldset aria-describedby=[amount_error.map(|_| "amount-error")] {
                    legend { (t(lang, "Velg beløp", "Choose an amount")) }
                    div.choices {
                        @for p in &page.amounts {
                            div.choice {
                                input type="radio" name="preset" id=(format!("preset-{}", p.ore)) value=(p.ore) checked[values.preset == p.ore.to_string()];
                                label for=(format!("preset-{}", p.ore)) {
                                    (format_kroner(p.ore))
                                    @if !p.narrative.get(lang).is_empty() { span.narrative { (p.narrative.get(lang)) } }
                                }
                            }
                        }
                    }
                }
                (field("amount", t(lang, "Eller skriv et annet beløp (kr)", "Or type another amount (NOK)"), "text", "off", &values.amount,
                    Some(&format!("{} {} – {}", t(lang, "Fra", "From"), format_kroner(min), format_kroner(max))), problems))
                div.row {
                    (field("firstName", t(lang, "Fornavn", "First name"), "text", "given-name", &values.first_name, None, problems))
                    (field("lastName", t(lang, "Etternavn", "Last name"), "text", "family-name", &values.last_name, None, problems))
                }
                (field("email", t(lang, "E-post", "Email"), "email", "email", &values.email, None, problems))
                (field("mobileNumber", t(lang, "Mobilnummer", "Mobile number"), "tel", "tel", &values.mobile_number,
                    Some(t(lang, "Nummeret du bruker i Vipps, for eksempel 912 34 567", "The number you use in Vipps, for example +47 912 34 567")), problems))
                button type="submit" { (t(lang, "Gi med Vipps", "Give with Vipps")) }
                p.secure { (t(lang, "Du godkjenner betalingen i Vipps. Vi lagrer bare det du fyller inn her.", "You approve the payment in Vipps. We keep only what you fill in here.")) }
            }
        },
    );
    markup.into_string()
}

/// Puts this request's CSRF token into a rendered page and sets the cookie when the browser has none.
fn with_token(rendered: &(String, String), headers: &HeaderMap, status: StatusCode) -> Response {
    with_token_at(rendered, headers, status, "/give")
}

/// [`with_token`] for pages under `path` (the cookie is sent only there).
pub(super) fn with_token_at(
    rendered: &(String, String),
    headers: &HeaderMap,
    status: StatusCode,
    path: &str,
) -> Response {
    let existing = cookie(headers, CSRF_COOKIE).filter(|t| t.len() == 46 && t.starts_with("gv_"));
    let token = existing.map(str::to_owned).unwrap_or_else(|| new_token("gv_"));
    let mut body = String::with_capacity(rendered.0.len() + rendered.1.len() + token.len());
    body.push_str(&rendered.0);
    body.push_str(&token);
    body.push_str(&rendered.1);
    let mut response = (status, Html(body)).into_response();
    if existing.is_none() {
        let value = format!("{CSRF_COOKIE}={token}; Path={path}; HttpOnly; SameSite=Lax");
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
    }
    response
}

/// A rendered page cut at its CSRF mark.
pub(super) fn split(html: String) -> (String, String) {
    match html.split_once(MARK) {
        Some((a, b)) => (a.to_owned(), b.to_owned()),
        None => (html, String::new()),
    }
}

fn closed(lang: Lang) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head { meta charset="utf-8"; meta name="viewport" content="width=device-width, initial-scale=1"; title { (t(lang, "Fant ikke siden", "Page not found")) } style { (PreEscaped(STYLE)) } }
            body { main { h1 { (t(lang, "Fant ikke siden", "Page not found")) } p { (t(lang, "Denne innsamlingen finnes ikke, eller den tar ikke imot gaver nå.", "This fundraiser does not exist, or it is not taking gifts now.")) } } }
        }
    };
    (StatusCode::NOT_FOUND, Html(markup.into_string())).into_response()
}

async fn active_page(state: &AppState, slug: &str) -> Result<Option<GivingPageRecord>, Response> {
    match state.pages.by_slug(slug).await {
        Ok(page) => Ok(page.filter(|p| p.settings.active)),
        Err(error) => Err(super::internal_error(&error.into())),
    }
}

/// `GET /give/{slug}`: the form. The page without a pre-fill is rendered once per language and cached until
/// the next change of any page.
pub async fn show(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let lang = lang_of(&query, &headers);
    let plain = query.keys().all(|k| k == "lang");
    if plain {
        if let Some(rendered) = state.pages.rendered(&slug, lang.code()) {
            return with_token(&rendered, &headers, StatusCode::OK);
        }
    }
    let page = match active_page(&state, &slug).await {
        Ok(Some(page)) => page,
        Ok(None) => return closed(lang),
        Err(response) => return response,
    };
    let values = prefill(&page.settings, &query);
    let rendered = Arc::new(split(form_page(&page, lang, &values, &[], None)));
    if plain {
        state.pages.keep_rendered(&slug, lang.code(), rendered.clone());
    }
    with_token(&rendered, &headers, StatusCode::OK)
}

fn refused(lang: Lang, status: StatusCode, nb: &'static str, en: &'static str, slug: &str) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head { meta charset="utf-8"; meta name="viewport" content="width=device-width, initial-scale=1"; title { (t(lang, "Prøv igjen", "Please try again")) } style { (PreEscaped(STYLE)) } }
            body { main { h1 { (t(lang, "Prøv igjen", "Please try again")) } p { (t(lang, nb, en)) } p { a href=(format!("/give/{slug}?lang={}", lang.code())) { (t(lang, "Tilbake til skjemaet", "Back to the form")) } } } }
        }
    };
    (status, Html(markup.into_string())).into_response()
}

/// `POST /give/{slug}`: checks, then hands the gift to the intake and sends the payer to Vipps (`303`).
pub async fn submit(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    ConnectInfo(address): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let form = form_fields(&body);
    let lang = lang_of(&form, &headers);
    let page = match active_page(&state, &slug).await {
        Ok(Some(page)) => page,
        Ok(None) => return closed(lang),
        Err(response) => return response,
    };
    if !state.pages.allow_submission(&address.ip().to_string()) {
        return refused(
            lang,
            StatusCode::TOO_MANY_REQUESTS,
            "Det har kommet mange forsøk fra deg på kort tid. Vent et minutt og prøv igjen.",
            "There have been many attempts from you in a short time. Wait a minute and try again.",
            &slug,
        );
    }
    let token_ok = match (cookie(&headers, CSRF_COOKIE), form.get("csrf_token")) {
        (Some(a), Some(b)) => !a.is_empty() && tokens_match(a, b),
        _ => false,
    };
    if !token_ok {
        return refused(
            lang,
            StatusCode::FORBIDDEN,
            "Skjemaet er utløpt. Gå tilbake til skjemaet og send det på nytt.",
            "The form has expired. Go back to the form and send it again.",
            &slug,
        );
    }
    if form.get("website").is_some_and(|v| !v.is_empty()) {
        return refused(
            lang,
            StatusCode::BAD_REQUEST,
            "Vi kunne ikke ta imot skjemaet.",
            "We could not accept the form.",
            &slug,
        );
    }
    let (values, checked) = check(&page.settings, &form, lang);
    let gift = match checked {
        Ok(gift) => gift,
        Err(problems) => {
            let rendered = split(form_page(&page, lang, &values, &problems, None));
            return with_token(&rendered, &headers, StatusCode::UNPROCESSABLE_ENTITY);
        }
    };
    let raw = redact_token(&body);
    match state.pages.give(&page, &gift, &raw, lang.code()).await {
        Ok((_, taken)) => match taken.redirect_url() {
            Some(url) => Redirect::to(url).into_response(),
            None => {
                let rendered = split(form_page(
                    &page,
                    lang,
                    &values,
                    &[],
                    Some(t(
                        lang,
                        "Vipps svarte ikke. Prøv igjen om litt.",
                        "Vipps did not answer. Please try again in a moment.",
                    )),
                ));
                with_token(&rendered, &headers, StatusCode::BAD_GATEWAY)
            }
        },
        Err(IntentError::Internal(error)) => super::internal_error(&error),
        Err(error) => {
            tracing::warn!(page = %page.settings.slug, ?error, "a gift was not taken");
            let rendered = split(form_page(
                &page,
                lang,
                &values,
                &[],
                Some(t(
                    lang,
                    "Vi fikk ikke startet betalingen i Vipps. Prøv igjen om litt.",
                    "We could not start the payment in Vipps. Please try again in a moment.",
                )),
            ));
            with_token(&rendered, &headers, StatusCode::BAD_GATEWAY)
        }
    }
}

/// The form as received, without the CSRF token (kept as the gift's Message).
pub(super) fn redact_token(body: &str) -> String {
    body.split('&').filter(|pair| !pair.starts_with("csrf_token=")).collect::<Vec<_>>().join("&")
}

/// `GET /give/{slug}/thanks/{token}`: where Vipps sends the payer back (through payhub's return): the gift's
/// real status, read from Vipps now.
pub async fn thanks(
    State(state): State<AppState>,
    Path((slug, token)): Path<(String, String)>,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let lang = lang_of(&query, &headers);
    let (page, status, recurring) = match state.pages.gift_status(&token).await {
        Ok(Some(found)) if found.0.settings.slug == slug => found,
        Ok(_) => return closed(lang),
        Err(error) => return super::internal_error(&error.into()),
    };
    let settings = &page.settings;
    let (class, heading, text) = match (status, recurring) {
        (GiftStatus::Done, false) => (
            "done",
            t(lang, "Takk for gaven!", "Thank you for your gift!"),
            t(lang, "Betalingen er gjennomført.", "The payment is complete."),
        ),
        (GiftStatus::Done, true) => (
            "done",
            t(lang, "Takk for at du gir fast!", "Thank you for giving regularly!"),
            t(
                lang,
                "Avtalen er godkjent i Vipps. Du finner den under Betalinger i Vipps.",
                "The agreement is approved in Vipps. You find it under Payments in Vipps.",
            ),
        ),
        (GiftStatus::Confirming, _) => (
            "confirming",
            t(lang, "Vi venter på Vipps", "Waiting for Vipps"),
            t(
                lang,
                "Vipps har ikke bekreftet betalingen ennå. Siden oppdateres av seg selv om noen sekunder.",
                "Vipps has not confirmed the payment yet. This page updates itself in a few seconds.",
            ),
        ),
        (GiftStatus::Failed, _) => (
            "failed",
            t(lang, "Betalingen ble ikke gjennomført", "The payment did not go through"),
            t(lang, "Ingen penger er trukket. Du kan prøve igjen.", "No money was taken. You can try again."),
        ),
    };
    let markup = page_shell(
        settings,
        lang,
        heading,
        status == GiftStatus::Confirming,
        html! {
            h1 { (settings.title.get(lang)) }
            div.status.(class) role="status" {
                h2 { (heading) }
                p { (text) }
                @if status == GiftStatus::Done && !settings.thank_you.get(lang).is_empty() { p { (settings.thank_you.get(lang)) } }
                @if status == GiftStatus::Failed { p { a href=(format!("/give/{}?lang={}", settings.slug, lang.code())) { (t(lang, "Prøv igjen", "Try again")) } } }
                @if status == GiftStatus::Confirming { p { a href="" { (t(lang, "Sjekk igjen", "Check again")) } } }
            }
        },
    );
    Html(markup.into_string()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_token_is_left_out_of_the_message() {
        assert_eq!(redact_token("amount=250&csrf_token=gv_abc&email=a%40b.no"), "amount=250&email=a%40b.no");
    }
}
