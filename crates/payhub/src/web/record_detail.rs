//! An installment's detail page (finance and admin): its facts, its PayLink while a link may pay it (a
//! read-only field to copy), links to the related records, a timeline of
//! what happened to it (each entry opens to its raw body, secrets masked), and the refund action: a form with
//! the amount in NOK, a confirmation step that says what will be refunded, then the refund through the same
//! `Payments::refund` the Payment API calls (which reserves the amount and writes the audit entry).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use maud::{html, Markup, PreEscaped};
use serde::Deserialize;

use super::timeline::{action_button, facts, kroner, render};
use super::{csrf_field, page};
use crate::auth::Principal;
use crate::domain::money::Money;
use crate::domain::record_actions::{charge_is_open, payment_is_open};
use crate::error::ServiceError;
use crate::processing::refunds::RefundRequest;
use crate::state::AppState;
use crate::store::installments::InstallmentRow;
use crate::store::record_detail::PaymentFacts;
use crate::store::timeline::{self, Subject};
use crate::store::{charges, installments, paylinks, record_detail, refunds, vipps_payments};

/// A link to a list searched for `id` (a payer's other records).
pub fn search_link(list: &str, id: &str) -> Markup {
    let q: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
    html! { a href={ (list) "?q=" (q) } { (id) } }
}

/// What Vipps holds of an installment: its one-time payment or its charge, the state, and whether a re-sync
/// may still learn something.
pub(super) struct AtVipps {
    /// `Vipps payment` or `Vipps charge`.
    pub(super) kind: &'static str,
    /// Whether it is a charge (read by `sync_charge`) rather than a payment (read by `sync`).
    pub(super) is_charge: bool,
    /// The payment's reference or the charge's id.
    pub(super) reference: String,
    /// The state payhub last recorded.
    pub(super) state: String,
    detail: Option<String>,
    /// Whether Vipps may still change it.
    pub(super) open: bool,
}

/// The installment's Vipps payment or charge, if it has one.
pub(super) async fn at_vipps(
    conn: &mut sqlx::AnyConnection,
    installment_id: &str,
) -> crate::store::StoreResult<Option<AtVipps>> {
    if let Some(row) = vipps_payments::vipps_payment_of(conn, installment_id).await? {
        return Ok(Some(AtVipps {
            kind: "Vipps payment",
            is_charge: false,
            open: payment_is_open(&row.state, row.captured_ore),
            reference: row.reference,
            state: row.state.as_str().to_owned(),
            detail: row.last_error,
        }));
    }
    Ok(charges::charge_of_installment(conn, installment_id).await?.map(|row| AtVipps {
        kind: "Vipps charge",
        is_charge: true,
        open: charge_is_open(&row.state),
        reference: row.charge_id,
        state: row.state.as_str().to_owned(),
        detail: row.failure_reason.or(row.last_error),
    }))
}

/// The page of one installment, with `alert` shown at the top when given.
pub(super) async fn installment_page(state: &AppState, who: &Principal, id: &str, alert: Option<&str>) -> Response {
    let read = async {
        let mut conn = state.store.pool().acquire().await?;
        let Some(installment) = installments::installment(&mut conn, id).await? else {
            return Ok::<_, crate::store::StoreError>(None);
        };
        let payer = record_detail::payer(&mut conn, &installment.payer_id).await?;
        let payments = record_detail::payments(&mut conn, id).await?;
        let refund_list = record_detail::refunds(&mut conn, id).await?;
        let refundable = refunds::refundable_ore(&mut conn, id).await?;
        let refunded: i64 = refund_list.iter().filter(|r| r.status != "Failed").map(|r| r.amount_ore).sum();
        let subject = Subject {
            installments: vec![installment.id.clone()],
            intents: installment.intent_id.iter().cloned().collect(),
            audited: vec![("installment", vec![installment.id.clone()])],
            ..Subject::default()
        };
        let timeline = timeline::timeline(&mut conn, &subject, &refund_list).await?;
        let vipps = at_vipps(&mut conn, id).await?;
        Ok(Some((installment, payer, payments, refund_list, refundable, refunded, timeline, vipps)))
    };
    let (installment, payer, payments, refund_list, refundable, refunded, timeline, vipps) = match read.await {
        Ok(Some(found)) => found,
        Ok(None) => return super::not_found(),
        Err(error) => return super::internal_error(&error.into()),
    };
    let paylink = paylink_section(state, &installment).await;
    let can_refund = installment.status.is_collected() && refundable > 0;
    page(
        &format!("Installment {}", installment.payment_reference),
        Some(who),
        html! {
            p { a href="/installments" { "← Installments" } }
            (super::records::search_box("/installments", ""))
            h1 { "Installment " (installment.payment_reference) }
            @if let Some(alert) = alert { div.alert role="alert" { (alert) } }
            (facts(&[
                ("Id", html! { (installment.id) }),
                ("Status", html! { (installment.status.as_str())
                    @if let Some(reason) = &installment.status_reason { " · " (reason) } }),
                ("Amount", html! { (kroner(installment.amount_ore)) " NOK" }),
                ("Open", html! { (kroner(installment.amount_open_ore)) " NOK" }),
                ("Refunded or being refunded", html! { (kroner(refunded)) " NOK" }),
                ("Due", html! { (installment.due_date) }),
                ("Account", html! { (installment.account_id) }),
                ("Transaction text", html! { (installment.bank_statement_description.as_deref().unwrap_or("—")) }),
            ]))
            @if let Some(paylink) = &paylink { (paylink) }
            @if let Some(vipps) = &vipps {
                h2 { (vipps.kind) }
                (facts(&[
                    ("Reference", html! { (vipps.reference) }),
                    ("State at Vipps", html! { (vipps.state) @if let Some(d) = &vipps.detail { " · " (d) } }),
                ]))
                @if vipps.open {
                    (action_button(who, &format!("/installments/{}/resync", installment.id),
                        "Re-sync from Vipps", html! {}))
                }
            }
            h2 { "Related" }
            div.card { table { tbody {
                tr { th { "Payer" } td {
                    @if let Some(payer) = &payer {
                        (search_link("/installments", payer.email.as_deref().unwrap_or(&payer.name)))
                        " " span.muted { (payer.name) @if let Some(phone) = &payer.phone { " · " (phone) } }
                    } @else { (installment.payer_id) }
                } }
                @if let Some(mandate) = &installment.mandate_id {
                    tr { th { "Mandate" } td { a href={ "/mandates/" (mandate) } { (mandate) } } }
                }
                @if let Some(recurring) = &installment.recurring_payment_id {
                    tr { th { "Recurring payment" } td { a href={ "/recurring/" (recurring) } { (recurring) } } }
                }
                tr { th { "Payments" } td {
                    @if payments.is_empty() { span.muted { "None yet" } }
                    @for payment in &payments {
                        div { a href={ "/payments/" (payment.id) } { (payment.kind) " " (kroner(payment.amount_ore))
                            " NOK on " (payment.collection_date) } " · " (payment.psp_reference)
                            (reversal(payment)) }
                    }
                } }
                tr { th { "Refunds" } td {
                    @if refund_list.is_empty() { span.muted { "None" } }
                    @for refund in &refund_list {
                        div { a href={ "/refunds/" (refund.id) } { (refund.id) } " · " (kroner(refund.amount_ore))
                            " NOK · " (refund.status) }
                    }
                } }
            } } }
            @if can_refund {
                h2 #refund { "Refund" }
                form.card method="post" action={ "/installments/" (installment.id) "/refund" } {
                    (csrf_field(who))
                    (super::text_field("amount", "Amount (NOK)", "text", &kroner(refundable),
                        Some(&format!("At most {} NOK, what is left to refund.", kroner(refundable))), None))
                    (super::text_field("reason", "Reason", "text", "", None, None))
                    button type="submit" { "Review the refund" }
                }
            }
            (render(&timeline))
        },
    )
}

/// `GET /installments/{id}`: the installment's page.
pub async fn installment(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    installment_page(&state, &who, &id, None).await
}

/// The refund forms' fields.
#[derive(Debug, Deserialize)]
pub struct RefundForm {
    amount: Option<String>,
    reason: Option<String>,
}

fn read_form(bytes: &Bytes) -> Option<(String, Option<String>)> {
    let form = serde_urlencoded::from_bytes::<RefundForm>(bytes).ok()?;
    let reason = form.reason.map(|r| r.trim().chars().take(200).collect::<String>()).filter(|r| !r.is_empty());
    Some((form.amount.unwrap_or_default().trim().to_owned(), reason))
}

/// A Payment's mark when a reversal took it back (it stays listed: the money's trail must show it).
pub(super) fn reversal(payment: &PaymentFacts) -> Markup {
    html! { @if let Some(report) = &payment.reversed_by { " · " strong.bad { "reversed by " (report) } } }
}

fn parse_amount(text: &str) -> Result<i64, String> {
    Money::parse_kroner(&text.replace(',', "."))
        .map(Money::ore)
        .map_err(|_| format!("The amount must be in NOK, like 100 or 99.50; “{text}” is not."))
}

/// `POST /installments/{id}/refund`: the confirmation step, which says what will be refunded and changes nothing.
pub async fn refund_review(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Response {
    let Some((amount, reason)) = read_form(&bytes) else {
        return super::bad_request("The form could not be read.");
    };
    let ore = match parse_amount(&amount) {
        Ok(ore) => ore,
        Err(message) => return installment_page(&state, &who, &id, Some(&message)).await,
    };
    let installment = match state.store.pool().acquire().await {
        Ok(mut conn) => installments::installment(&mut conn, &id).await,
        Err(error) => return super::internal_error(&error.into()),
    };
    let installment = match installment {
        Ok(Some(installment)) => installment,
        Ok(None) => return super::not_found(),
        Err(error) => return super::internal_error(&error.into()),
    };
    page(
        "Confirm the refund",
        Some(&who),
        html! {
            h1 { "Confirm the refund" }
            div.card {
                p { "Refund " strong { (kroner(ore)) " NOK" } " of installment " (installment.payment_reference)
                    " (" (kroner(installment.amount_ore)) " NOK) to the payer through Vipps?" }
                @if let Some(reason) = &reason { p { "Reason: " (reason) } }
                p.muted { "Vipps sends the money back to the payer. This cannot be undone." }
                form method="post" action={ "/installments/" (installment.id) "/refund/confirm" } {
                    (csrf_field(&who))
                    input type="hidden" name="amount" value=(amount);
                    @if let Some(reason) = &reason { input type="hidden" name="reason" value=(reason); }
                    div.actions {
                        button.danger type="submit" { "Refund " (kroner(ore)) " NOK" }
                        a.button.secondary href={ "/installments/" (installment.id) } { "Cancel" }
                    }
                }
            }
        },
    )
}

/// `POST /installments/{id}/refund/confirm`: the refund, through the Payment API's own processing; back to
/// the installment's page, or its page with the reason a refund was refused.
pub async fn refund_confirm(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Response {
    let Some((amount, reason)) = read_form(&bytes) else {
        return super::bad_request("The form could not be read.");
    };
    let ore = match parse_amount(&amount) {
        Ok(ore) => ore,
        Err(message) => return installment_page(&state, &who, &id, Some(&message)).await,
    };
    let request =
        RefundRequest { installment_id: id.clone(), amount_ore: Some(ore), reason, api_key: None, actor: who.actor() };
    match state.payments.refund(&request).await {
        Ok(outcome) if outcome.refund.status == "Failed" => {
            let message = outcome.refund.error.unwrap_or_else(|| "Vipps refused the refund.".into());
            installment_page(&state, &who, &id, Some(&format!("The refund failed: {message}"))).await
        }
        Ok(_) => Redirect::to(&format!("/installments/{id}")).into_response(),
        Err(ServiceError::NotFound(_)) => super::not_found(),
        Err(ServiceError::Invalid(errors) | ServiceError::Conflict(errors)) => {
            let message = errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join(" ");
            installment_page(&state, &who, &id, Some(&message)).await
        }
        Err(error) => {
            installment_page(&state, &who, &id, Some(&format!("The refund could not be made: {error}"))).await
        }
    }
}

// The payer's links: an installment's PayLink here, a recurring payment's Setup URL on its page.

/// A link to send the payer, in a read-only field that can be selected and copied without JavaScript. Where
/// scripts run (the pages' CSP sets no `script-src`) and the browser offers `navigator.clipboard` (a secure
/// context), a Copy button appears; elsewhere it stays hidden rather than being a button that does nothing.
/// `id` is an element id of the page, fixed in the code.
pub(super) fn copy_link(id: &'static str, heading: &str, url: &str, hint: &str) -> Markup {
    let script = format!(
        "(function(){{var b=document.getElementById('{id}-copy'),f=document.getElementById('{id}');\
         if(!b||!f||!navigator.clipboard)return;b.hidden=false;b.addEventListener('click',function(){{f.select();\
         navigator.clipboard.writeText(f.value).then(function(){{b.textContent='Copied';}});}});}})();"
    );
    html! {
        h2 { (heading) }
        div.card {
            div.field {
                label for=(id) { "Link for the payer" }
                input type="text" id=(id) readonly value=(url) autocomplete="off" spellcheck="false"
                    aria-describedby={ (id) "-hint" };
                div.hint id={ (id) "-hint" } { (hint) }
            }
            button.secondary type="button" id={ (id) "-copy" } hidden { "Copy link" }
        }
        script { (PreEscaped(script)) }
    }
}

/// The installment's PayLink while a link may pay it ([`paylinks::payable`]), its token made on the first view.
/// Making it is the one write of this page: a token is no money and no decision (the API's read of the
/// installment makes it the same way, two first views agree on one), and every role that may open this page
/// may hand out a PayLink. Should the write fail (a busy or read-only database), the page is still shown,
/// saying the link could not be made, rather than an error in place of the record.
async fn paylink_section(state: &AppState, installment: &InstallmentRow) -> Option<Markup> {
    if !paylinks::payable(installment) {
        return None;
    }
    Some(match state.payments.paylink_url(&installment.id).await {
        Ok(url) => copy_link(
            "paylink",
            "PayLink",
            &url,
            "The payer pays the open amount through Vipps on this page. The link stops taking payments once the \
             installment is paid, failed or cancelled.",
        ),
        Err(error) => {
            tracing::warn!(installment = %installment.id, %error, "the PayLink could not be made for the page");
            html! { h2 { "PayLink" } p.muted { "The PayLink could not be made just now; reload the page to try again." } }
        }
    })
}
