//! The payer's phone: `GET /landing?token=T` (the `redirectUrl` / `vippsConfirmationUrl` the
//! simulator hands out) shows the payment or agreement with *Approve* and *Reject* buttons, as
//! plain HTML forms without JavaScript; `POST /landing` acts as the payer and sends the browser
//! (`303 See Other`) to the merchant's `returnUrl` / `merchantRedirectUrl`.

use std::fmt::Write as _;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode, Uri};

use crate::epayment::{self, PaymentState};
use crate::recurring::{self, AgreementStatus, PricingType};
use crate::state::{Db, LandingTarget, SharedSim};

/// Escapes text for HTML element content and double-quoted attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `12345` øre → `123,45 kr` (Norwegian notation).
pub(crate) fn nok(ore: i64) -> String {
    let sign = if ore < 0 { "-" } else { "" };
    let a = ore.unsigned_abs();
    format!("{sign}{},{:02} kr", a / 100, a % 100)
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"no\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} · Vipps MobilePay (simulator)</title>\
         <style>body{{font-family:sans-serif;max-width:26em;margin:2em auto;padding:0 1em}}\
         .amount{{font-size:2em;font-weight:bold}}button{{font-size:1.1em;padding:.5em 1.2em;margin:.3em}}\
         .approve{{background:#ff5b24;color:#fff;border:0}}</style></head>\
         <body><p><small>Vipps MobilePay · simulator</small></p><h1>{t}</h1>{body}</body></html>\n",
        t = esc(title)
    );
    let mut resp = (status, html).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn unknown_token() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Unknown link",
        "<p>This payment link is not known. Go back to the shop and start again.</p>",
    )
}

/// The page for a payment or agreement that no longer waits for the payer.
fn not_waiting(kind: &str, state: &str) -> Response {
    let (status, text) = match state {
        "EXPIRED" => (StatusCode::GONE, format!("This {kind} has expired. Go back to the shop and start again.")),
        "ABORTED" | "STOPPED" | "TERMINATED" => {
            (StatusCode::CONFLICT, format!("This {kind} was cancelled or rejected ({state}). Nothing more to do here."))
        }
        _ => {
            (StatusCode::CONFLICT, format!("This {kind} has already been handled ({state}). Nothing more to do here."))
        }
    };
    page(status, "Nothing to approve", &format!("<p>{}</p>", esc(&text)))
}

/// The payer's form. Like Vipps' own landing page, the phone number the merchant sent is filled in.
fn form(token: &str, phone: Option<&str>, approve: &str, reject: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/landing\">\
         <input type=\"hidden\" name=\"token\" value=\"{t}\">\
         <p><label>Phone number (optional) <input name=\"phoneNumber\" inputmode=\"numeric\" \
         placeholder=\"4791234567\" value=\"{p}\"></label></p>\
         <button class=\"approve\" name=\"action\" value=\"approve\">{a}</button>\
         <button name=\"action\" value=\"reject\">{r}</button></form>",
        t = esc(token),
        p = esc(phone.unwrap_or_default()),
        a = esc(approve),
        r = esc(reject)
    )
}

fn token_param(uri: &Uri) -> Option<String> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

/// `GET /landing?token=T`: the payment (merchant, amount, description) or agreement (merchant,
/// product, price, initial charge) with *Approve* / *Reject*; a clear page when it is unknown,
/// expired or already handled.
pub(crate) async fn show(State(sim): State<SharedSim>, uri: Uri) -> Response {
    let Some(token) = token_param(&uri) else { return unknown_token() };
    sim.process_due();
    let db = sim.lock();
    match db.landing.get(&token) {
        None => unknown_token(),
        Some(LandingTarget::Payment { msn, reference }) => {
            let Some(p) = db.epayment.get(msn, reference) else { return unknown_token() };
            if p.state != PaymentState::Created {
                return not_waiting("payment", p.state.as_str());
            }
            let mut body = String::new();
            let _ = write!(
                body,
                "<p>Merchant: <strong>Sales unit {m}</strong></p><p class=\"amount\">{a}</p>",
                m = esc(&p.msn),
                a = esc(&nok(p.amount))
            );
            if let Some(d) = &p.description {
                let _ = write!(body, "<p>{}</p>", esc(d));
            }
            let _ = write!(body, "<p><small>Order {}</small></p>", esc(&p.reference));
            body.push_str(&form(&token, p.phone.as_deref(), "Approve", "Reject"));
            page(StatusCode::OK, "Pay", &body)
        }
        Some(LandingTarget::Agreement { agreement_id }) => {
            let Some(a) = db.recurring.agreements.get(agreement_id) else { return unknown_token() };
            if a.status != AgreementStatus::Pending {
                return not_waiting("agreement", a.status.as_str());
            }
            let mut body = String::new();
            let _ = write!(
                body,
                "<p>Merchant: <strong>Sales unit {m}</strong></p><p><strong>{p}</strong></p>",
                m = esc(&a.msn),
                p = esc(&a.product_name)
            );
            if let Some(d) = &a.product_description {
                let _ = write!(body, "<p>{}</p>", esc(d));
            }
            let price = match (a.pricing.kind, a.pricing.amount, a.pricing.suggested_max) {
                (PricingType::Variable, _, Some(max)) => format!("Variable price, up to {}", nok(max)),
                (PricingType::Variable, _, None) => "Variable price".to_owned(),
                (_, Some(amount), _) => nok(amount),
                (_, None, _) => "Price set per charge".to_owned(),
            };
            let _ = write!(body, "<p class=\"amount\">{}</p>", esc(&price));
            if let Some(c) = a.charges.iter().find(|c| c.initial) {
                let _ = write!(body, "<p>To pay now: {} ({})</p>", esc(&nok(c.amount)), esc(&c.description));
            }
            body.push_str(&form(&token, a.phone.as_deref(), "Accept", "Reject"));
            page(StatusCode::OK, "Agreement", &body)
        }
    }
}

/// Sends the browser on to the merchant: `303` to `url`, or a closing page when there is none
/// (or it cannot be a `Location` header).
fn back_to_merchant(url: Option<&str>, done: &str) -> Response {
    match url.and_then(|u| HeaderValue::from_str(u).ok()) {
        Some(v) => {
            let mut resp = StatusCode::SEE_OTHER.into_response();
            resp.headers_mut().insert(header::LOCATION, v);
            resp
        }
        None => page(StatusCode::OK, done, "<p>You can close this page and return to the merchant.</p>"),
    }
}

fn bad_phone() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Check the phone number",
        "<p>The phone number must be 10 to 15 digits with the country code, like 4791234567. Go back and try again.</p>",
    )
}

/// `POST /landing` (form `token`, `action` = `approve` | `reject`, optional `phoneNumber`): acts
/// as the payer, then `303` to the merchant's return URL.
pub(crate) async fn act(State(sim): State<SharedSim>, body: Bytes) -> Response {
    let mut token = None;
    let mut action = None;
    let mut phone = None;
    for (k, v) in url::form_urlencoded::parse(&body) {
        match &*k {
            "token" => token = Some(v.into_owned()),
            "action" => action = Some(v.into_owned()),
            "phoneNumber" if !v.trim().is_empty() => phone = Some(v.trim().to_owned()),
            _ => {}
        }
    }
    let Some(token) = token else { return unknown_token() };
    let approve = match action.as_deref() {
        Some("approve") => true,
        Some("reject") => false,
        _ => return page(StatusCode::BAD_REQUEST, "Choose an action", "<p>Press Approve or Reject.</p>"),
    };
    sim.process_due();
    let now = sim.clock.now();
    let mut db = sim.lock();
    let Some(target) = db.landing.get(&token).cloned() else { return unknown_token() };
    match target {
        LandingTarget::Payment { msn, reference } => {
            let result = if approve {
                epayment::payer_approve(&mut db, &msn, &reference, phone.as_deref(), now)
            } else {
                epayment::payer_reject(&mut db, &msn, &reference, now)
            };
            match result {
                Ok(()) => {
                    let url = payment_return_url(&db, &msn, &reference);
                    back_to_merchant(url.as_deref(), if approve { "Paid" } else { "Cancelled" })
                }
                Err(epayment::PayerError::BadPhone) => bad_phone(),
                Err(epayment::PayerError::NotPending(s)) => not_waiting("payment", s),
                Err(epayment::PayerError::NotFound) => unknown_token(),
            }
        }
        LandingTarget::Agreement { agreement_id } => {
            let result = if approve {
                recurring::payer_accept(&mut db, &agreement_id, phone.as_deref(), now)
            } else {
                recurring::payer_reject(&mut db, &agreement_id, now)
            };
            match result {
                Ok(()) => {
                    let url = db.recurring.agreements.get(&agreement_id).map(|a| a.merchant_redirect_url.clone());
                    back_to_merchant(url.as_deref(), if approve { "Agreement accepted" } else { "Rejected" })
                }
                Err(recurring::PayerError::BadPhone) => bad_phone(),
                Err(recurring::PayerError::NotPending(s)) => not_waiting("agreement", s),
                Err(recurring::PayerError::NotFound) => unknown_token(),
            }
        }
    }
}

fn payment_return_url(db: &Db, msn: &str, reference: &str) -> Option<String> {
    db.epayment.get(msn, reference).and_then(|p| p.return_url.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_special_characters_are_escaped() {
        assert_eq!(
            esc("<a href=\"x\">Tom & Jerry's</a>"),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;"
        );
    }

    #[test]
    fn amounts_are_shown_in_kroner_with_a_decimal_comma() {
        assert_eq!(nok(12_345), "123,45 kr");
        assert_eq!(nok(100), "1,00 kr");
        assert_eq!(nok(5), "0,05 kr");
    }
}
