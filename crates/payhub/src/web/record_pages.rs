//! The detail pages of payments (`/payments/{id}`), refunds (`/refunds/{id}`), recurring payments
//! (`/recurring/{id}`), mandates (`/mandates/{id}`) and outbound webhook deliveries (`/deliveries/{id}`):
//! each record's facts, links along payer → mandate → recurring payment → installments → payments → refunds,
//! the timeline (`store::timeline`, rendered by `web::timeline`) and the buttons of the actions its state
//! allows, each of which opens a confirmation step (`web::record_actions`); a recurring payment whose agreement
//! was stopped or expired shows its Setup URL to copy. Finance and admin only.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::Extension;
use maud::{html, Markup};

use super::page;
use super::record_detail::{copy_link, reversal, search_link};
use super::timeline::{action_button, facts, kroner, masked, render, when};
use crate::auth::Principal;
use crate::domain::money::Money;
use crate::domain::record_actions::{agreement_can_stop, can_change_terms, can_pause, can_resume};
use crate::domain::schedule::interval_text;
use crate::state::AppState;
use crate::store::installments::{self, InstallmentBrief, InstallmentRow};
use crate::store::mandates::{self, MandateRow};
use crate::store::record_detail::{self, PayerFacts, PaymentFacts, RefundFacts};
use crate::store::recurring_payments::{self, RecurringRow};
use crate::store::timeline::{self, Subject, TimelineEntry};
use crate::store::{outbox, StoreResult};

/// A record page's read: `None` when there is no such record.
type Read<T> = StoreResult<Option<T>>;

/// Renders `read`'s outcome: the page, 404, or the error page.
fn shown<T>(read: Read<T>, render: impl FnOnce(T) -> Response) -> Response {
    match read {
        Ok(Some(found)) => render(found),
        Ok(None) => super::not_found(),
        Err(error) => super::internal_error(&error.into()),
    }
}

/// The page of a record whose id names its kind (`ins_`, `pmt_`, `rf_`, `rp_`, `mdt_`), if it has one.
pub fn record_path(id: &str) -> Option<String> {
    let list = match id.split_once('_')?.0 {
        "ins" => "installments",
        "pmt" => "payments",
        "rf" => "refunds",
        "rp" => "recurring",
        "mdt" => "mandates",
        _ => return None,
    };
    Some(format!("/{list}/{id}"))
}

fn payer_cell(payer: &Option<PayerFacts>, payer_id: &str) -> Markup {
    html! {
        @if let Some(payer) = payer {
            (search_link("/installments", payer.email.as_deref().unwrap_or(&payer.name)))
            " " span.muted { (payer.name) @if let Some(phone) = &payer.phone { " · " (phone) } }
        } @else { (payer_id) }
    }
}

fn header(list: &str, title: &str, heading: &str, alert: Option<&str>) -> Markup {
    html! {
        p { a href={ "/" (list) } { "← " (title) } }
        (super::records::search_box(&format!("/{list}"), ""))
        h1 { (heading) }
        @if let Some(alert) = alert { div.alert role="alert" { (alert) } }
    }
}

/// An installment with what hangs off it, as a payment's or a refund's page shows it.
struct AroundInstallment {
    installment: InstallmentRow,
    payer: Option<PayerFacts>,
    payments: Vec<PaymentFacts>,
    refunds: Vec<RefundFacts>,
    timeline: Vec<TimelineEntry>,
}

async fn around(conn: &mut sqlx::AnyConnection, installment_id: &str) -> Read<AroundInstallment> {
    let Some(installment) = installments::installment(conn, installment_id).await? else { return Ok(None) };
    let payer = record_detail::payer(conn, &installment.payer_id).await?;
    let payments = record_detail::payments(conn, installment_id).await?;
    let refunds = record_detail::refunds(conn, installment_id).await?;
    let subject = Subject {
        installments: vec![installment.id.clone()],
        intents: installment.intent_id.iter().cloned().collect(),
        audited: vec![("installment", vec![installment.id.clone()])],
        ..Subject::default()
    };
    let timeline = timeline::timeline(conn, &subject, &refunds).await?;
    Ok(Some(AroundInstallment { installment, payer, payments, refunds, timeline }))
}

/// The related-records card of a payment's or a refund's page.
fn related(around: &AroundInstallment) -> Markup {
    let i = &around.installment;
    html! {
        h2 { "Related" }
        (facts(&[
            ("Payer", payer_cell(&around.payer, &i.payer_id)),
            ("Installment", html! { a href={ "/installments/" (i.id) } { (i.payment_reference) }
                " · " (i.status.as_str()) " · " (kroner(i.amount_ore)) " NOK" }),
            ("Mandate", html! { @match &i.mandate_id { Some(m) => a href={ "/mandates/" (m) } { (m) }, None => "—" } }),
            ("Recurring payment", html! { @match &i.recurring_payment_id {
                Some(r) => a href={ "/recurring/" (r) } { (r) }, None => "—" } }),
            ("Payments", html! { @for p in &around.payments {
                div { a href={ "/payments/" (p.id) } { (p.kind) " " (kroner(p.amount_ore)) " NOK" }
                    " on " (p.collection_date) (reversal(p)) } } }),
            ("Refunds", html! {
                @if around.refunds.is_empty() { span.muted { "None" } }
                @for r in &around.refunds {
                    div { a href={ "/refunds/" (r.id) } { (r.id) } " · " (kroner(r.amount_ore)) " NOK · " (r.status) }
                } }),
        ]))
    }
}

/// `GET /payments/{id}`: a payment (a capture or a refund of money) with its installment's related records and
/// timeline. Refunds are made from the installment's page, which knows what is left to refund.
pub async fn payment(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    let read = async {
        let mut conn = state.store.pool().acquire().await?;
        let Some(payment) = record_detail::payment(&mut conn, &id).await? else { return Ok(None) };
        Ok(around(&mut conn, &payment.installment_id).await?.map(|around| (payment, around)))
    };
    shown(read.await, |(payment, around)| {
        let refundable = around.installment.status.is_collected();
        page(
            &format!("Payment {}", payment.psp_reference),
            Some(&who),
            html! {
                (header("payments", "Payments", &format!("Payment {}", payment.psp_reference), None))
                (facts(&[
                    ("Id", html! { (payment.id) }),
                    ("Type", html! { (payment.kind) }),
                    ("Amount", html! { (kroner(payment.amount_ore)) " NOK" }),
                    ("Collection date", html! { (payment.collection_date) }),
                    ("Vipps reference", html! { (payment.psp_reference) }),
                    ("Reversed", html! { @match &payment.reversed_by {
                        Some(report) => strong.bad { "yes, by Inbound Report " (report) " (a match undone in Guided Matching); it no longer counts" },
                        None => "no",
                    } }),
                ]))
                @if refundable && payment.reversed_by.is_none() {
                    p { a.button href={ "/installments/" (around.installment.id) "#refund" } { "Refund from the installment" } }
                }
                (related(&around))
                (render(&around.timeline))
            },
        )
    })
}

/// `GET /refunds/{id}`: a refund request: amount, status, reason, Vipps' reference or why it failed, with its
/// installment's related records and timeline.
pub async fn refund(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    let read = async {
        let mut conn = state.store.pool().acquire().await?;
        let Some(refund) = record_detail::refund(&mut conn, &id).await? else { return Ok(None) };
        Ok(around(&mut conn, &refund.installment_id).await?.map(|around| (refund, around)))
    };
    shown(read.await, |(refund, around)| {
        page(
            &format!("Refund {}", refund.id),
            Some(&who),
            html! {
                (header("refunds", "Refunds", &format!("Refund {}", refund.id), None))
                (facts(&[
                    ("Amount", html! { (kroner(refund.amount_ore)) " NOK" }),
                    ("Status", html! { (refund.status) @if let Some(e) = &refund.error { " · " (e) } }),
                    ("Reason", html! { (refund.reason.as_deref().unwrap_or("—")) }),
                    ("Vipps reference", html! { (refund.psp_reference.as_deref().unwrap_or("—")) }),
                    ("Asked for", html! { (when(&refund.created_at)) " UTC" }),
                ]))
                (related(&around))
                (render(&around.timeline))
            },
        )
    })
}

fn installments_cell(list: &[InstallmentBrief]) -> Markup {
    html! {
        @if list.is_empty() { span.muted { "None yet" } }
        @for i in list {
            div { a href={ "/installments/" (i.id) } { (i.due_date) " · " (kroner(i.amount_ore)) " NOK" }
                " · " (i.status) @if let Some(s) = &i.charge_state { " · charge " (s) }
                @if let Some(r) = &i.status_reason { " · " (r) } }
        }
    }
}

/// `GET /recurring/{id}`: a recurring payment: its terms and status, its mandate and installments, the timeline
/// (with the changes made to it), and pause, resume, new amount or collection day, and Cancel Vipps Agreement as
/// its state allows.
pub async fn recurring(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    recurring_page(&state, &who, &id, None).await
}

/// The recurring payment's page with `alert` at the top when given.
pub(super) async fn recurring_page(state: &AppState, who: &Principal, id: &str, alert: Option<&str>) -> Response {
    let read = async {
        let mut conn = state.store.pool().acquire().await?;
        let Some(recurring) = recurring_payments::recurring(&mut conn, id).await? else { return Ok(None) };
        let mandate = mandates::mandate(&mut conn, &recurring.mandate_id).await?;
        let payer = record_detail::payer(&mut conn, &recurring.payer_id).await?;
        let list = installments::installments_of(&mut conn, &recurring.mandate_id, Some(id)).await?;
        let subject = Subject {
            installments: list.iter().map(|i| i.id.clone()).collect(),
            references: mandate.iter().filter_map(|m| m.agreement_id.clone()).collect(),
            intents: recurring.intent_id.iter().cloned().collect(),
            delivered: vec![recurring.mandate_id.clone()],
            audited: vec![
                ("recurring_payment", vec![recurring.id.clone()]),
                ("mandate", vec![recurring.mandate_id.clone()]),
            ],
            changes: Some((recurring.mandate_id.clone(), Some(recurring.id.clone()))),
        };
        let timeline = timeline::timeline(&mut conn, &subject, &[]).await?;
        Ok(Some((recurring, mandate, payer, list, timeline)))
    };
    let read = read.await;
    let setup = match &read {
        Ok(Some((recurring, Some(mandate), ..))) => setup_section(state, recurring, mandate).await,
        _ => None,
    };
    shown(read, |(recurring, mandate, payer, list, timeline)| {
        let can_stop = mandate.as_ref().is_some_and(|m| agreement_can_stop(&m.vipps_status));
        page(
            &format!("Recurring payment {}", recurring.id),
            Some(who),
            html! {
                (header("recurring", "Recurring payments", &format!("Recurring payment {}", recurring.id), alert))
                (facts(&[
                    ("Status", html! { (recurring.status.as_str())
                        @if let Some(r) = &recurring.status_reason { " · " (r) }
                        @if let Some(until) = recurring.paused_until.filter(|_| can_resume(recurring.status)) {
                            " until " (until) } }),
                    ("Amount", html! { (kroner(recurring.amount_ore)) " NOK " (recurring.frequency.as_str().to_lowercase()) }),
                    ("Collection day", html! { @match recurring.collection_day { Some(d) => (d), None => "as the start date" } }),
                    ("Start", html! { (recurring.start_date) }),
                    ("End", html! { @match recurring.end_date { Some(d) => (d), None => "—" } }),
                    ("Next collection", html! { @match recurring.next_collection() { Some(d) => (d), None => "none" } }),
                    ("Account", html! { (recurring.account_id) }),
                    ("Transaction text", html! { (recurring.bank_statement_description.as_deref().unwrap_or("—")) }),
                ]))
                div.actions {
                    @if can_pause(recurring.status) {
                        (action_button(who, &format!("/recurring/{}/pause", recurring.id), "Pause…",
                            super::text_field("until", "Pause until (first day collected again)", "date", "", None, None)))
                    }
                    @if can_resume(recurring.status) {
                        (action_button(who, &format!("/recurring/{}/resume", recurring.id), "Resume", html! {}))
                    }
                    @if can_change_terms(recurring.status) {
                        (action_button(who, &format!("/recurring/{}/amount", recurring.id), "Change amount…",
                            super::text_field("amount", "New amount per period (NOK)", "text",
                                &Money::from_ore(recurring.amount_ore).kroner_string(), None, None)))
                        (action_button(who, &format!("/recurring/{}/collection-day", recurring.id), "Change collection day…",
                            super::text_field("day", "New collection day (1–31)", "number",
                                &recurring.collection_day.map(|d| d.to_string()).unwrap_or_default(), None, None)))
                    }
                    @if can_stop {
                        (action_button(who, &format!("/mandates/{}/cancel-agreement", recurring.mandate_id),
                            "Cancel Vipps Agreement", html! {}))
                    }
                }
                @if let Some(setup) = &setup { (setup) }
                h2 { "Related" }
                (facts(&[
                    ("Payer", payer_cell(&payer, &recurring.payer_id)),
                    ("Mandate", html! { a href={ "/mandates/" (recurring.mandate_id) } { (recurring.mandate_id) }
                        @if let Some(m) = &mandate { " · " (m.status.as_str()) " · agreement "
                            (m.agreement_id.as_deref().unwrap_or("not yet at Vipps")) } }),
                    ("Installments", installments_cell(&list)),
                ]))
                (render(&timeline))
            },
        )
    })
}

/// The recurring payment's Setup URL while its payer can renew (the agreement stopped or expired, the schedule
/// going on; the token made on the first such view), as the installment's page shows its PayLink and for the same
/// reasons: a failed write leaves the page standing.
async fn setup_section(state: &AppState, recurring: &RecurringRow, mandate: &MandateRow) -> Option<Markup> {
    match state.payments.renewable_setup_url(recurring, mandate).await {
        Ok(url) => url.map(|url| {
            copy_link(
                "setup-url",
                "Setup URL",
                &url,
                "The agreement was stopped or expired. On this page the payer approves a new agreement in Vipps, \
                 and this recurring payment goes on collecting under it.",
            )
        }),
        Err(error) => {
            tracing::warn!(recurring = %recurring.id, %error, "the Setup URL could not be made for the page");
            Some(
                html! { h2 { "Setup URL" } p.muted { "The Setup URL could not be made just now; reload the page to try again." } },
            )
        }
    }
}

/// `GET /mandates/{id}`: a mandate (a Vipps agreement): price and interval, Vipps' status, its recurring
/// payments and installments, the timeline, and Cancel Vipps Agreement while the agreement can be stopped.
pub async fn mandate(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    mandate_page(&state, &who, &id, None).await
}

/// The mandate's page with `alert` at the top when given.
pub(super) async fn mandate_page(state: &AppState, who: &Principal, id: &str, alert: Option<&str>) -> Response {
    let read = async {
        let mut conn = state.store.pool().acquire().await?;
        let Some(mandate) = mandates::mandate(&mut conn, id).await? else { return Ok(None) };
        if mandate.id != id {
            // Found by its agreement id: the page lives at the mandate's own id.
            return Ok(None);
        }
        let payer = record_detail::payer(&mut conn, &mandate.payer_id).await?;
        let recurring = recurring_payments::recurring_of_mandate(&mut conn, id).await?;
        let list = installments::installments_of(&mut conn, id, None).await?;
        let subject = Subject {
            installments: list.iter().map(|i| i.id.clone()).collect(),
            references: mandate.agreement_id.iter().cloned().collect(),
            intents: mandate.intent_id.iter().cloned().collect(),
            delivered: vec![mandate.id.clone()],
            audited: vec![
                ("mandate", vec![mandate.id.clone()]),
                ("recurring_payment", recurring.iter().map(|r| r.id.clone()).collect()),
            ],
            changes: Some((mandate.id.clone(), None)),
        };
        let timeline = timeline::timeline(&mut conn, &subject, &[]).await?;
        Ok(Some((mandate, payer, recurring, list, timeline)))
    };
    shown(read.await, |(mandate, payer, recurring, list, timeline)| {
        page(
            &format!("Mandate {}", mandate.id),
            Some(who),
            html! {
                (header("mandates", "Mandates", &format!("Mandate {}", mandate.id), alert))
                (facts(&[
                    ("Status", html! { (mandate.status.as_str()) " · at Vipps " (mandate.vipps_status.as_str()) }),
                    ("Agreement", html! { (mandate.agreement_id.as_deref().unwrap_or("not yet at Vipps")) }),
                    ("Price", html! { (kroner(mandate.price_ore)) " NOK "
                        (interval_text(&mandate.interval_unit, mandate.interval_count)) }),
                    ("Product", html! { (mandate.product_name) }),
                    ("Phone sent to Vipps", html! { (mandate.customer_phone.as_deref().unwrap_or("—")) }),
                    ("Account", html! { (mandate.account_id) }),
                    ("Last error from Vipps", html! { (mandate.last_error.as_deref().unwrap_or("—")) }),
                ]))
                @if agreement_can_stop(&mandate.vipps_status) {
                    (action_button(who, &format!("/mandates/{}/cancel-agreement", mandate.id),
                        "Cancel Vipps Agreement", html! {}))
                }
                h2 { "Related" }
                (facts(&[
                    ("Payer", payer_cell(&payer, &mandate.payer_id)),
                    ("Recurring payments", html! {
                        @if recurring.is_empty() { span.muted { "None" } }
                        @for r in &recurring {
                            div { a href={ "/recurring/" (r.id) } { (r.id) } " · " (kroner(r.amount_ore)) " NOK · "
                                (r.status.as_str()) }
                        } }),
                    ("Installments", installments_cell(&list)),
                ]))
                (render(&timeline))
            },
        )
    })
}

/// `GET /deliveries/{id}`: an outbound webhook delivery: where it went, what it said, how each attempt ended,
/// the record it is about, and Re-send.
pub async fn delivery(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    delivery_page(&state, &who, &id, None).await
}

/// The delivery's page with `alert` at the top when given.
pub(super) async fn delivery_page(state: &AppState, who: &Principal, id: &str, alert: Option<&str>) -> Response {
    let read = async {
        let Some(delivery) = outbox::delivery(state.store.pool(), id).await? else { return Ok(None) };
        let subject = Subject { audited: vec![("webhook_delivery", vec![id.to_owned()])], ..Subject::default() };
        let mut conn = state.store.pool().acquire().await?;
        let timeline = timeline::timeline(&mut conn, &subject, &[]).await?;
        Ok(Some((delivery, timeline)))
    };
    shown(read.await, |(delivery, timeline)| {
        // The event's record, or for an intent's event the installment or recurring payment it made.
        let ids = ["/data/Id", "/data/OneTime/Id", "/data/Recurring/Id"]
            .map(|at| delivery.body.pointer(at).and_then(|v| v.as_str()).map(str::to_owned));
        let linked = ids.iter().flatten().find_map(|id| record_path(id).map(|path| (id.clone(), path)));
        let about = ids[0].clone();
        let body = delivery.body.to_string();
        page(
            &format!("Webhook delivery {}", delivery.id),
            Some(who),
            html! {
                (header("deliveries", "Webhook deliveries", &format!("Webhook delivery {}", delivery.id), alert))
                (facts(&[
                    ("Event", html! { (delivery.event_type) }),
                    ("About", html! { (about.as_deref().unwrap_or("—"))
                        @if let Some((id, path)) = &linked { " · " a href=(path) { (id) } } }),
                    ("To", html! { (delivery.url) }),
                    ("Status", html! { (delivery.status) " after " (delivery.attempts) " attempt(s)"
                        @if let Some(c) = delivery.last_status_code { " · last answer " (c) }
                        @if let Some(e) = &delivery.last_error { " · " (e) } }),
                    ("Created", html! { (delivery.created_at.format("%Y-%m-%d %H:%M:%S")) " UTC" }),
                    ("Delivered", html! { @match delivery.delivered_at {
                        Some(at) => { (at.format("%Y-%m-%d %H:%M:%S")) " UTC" }, None => "—" } }),
                    ("Body", html! { details open { summary { "Raw" } pre { (masked(&body)) } } }),
                ]))
                (action_button(who, &format!("/deliveries/{}/resend", delivery.id), "Re-send", html! {}))
                (render(&timeline))
            },
        )
    })
}
