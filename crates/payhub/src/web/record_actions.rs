//! The records pages' actions (finance and admin; CSRF checked by the guard): re-sync an installment's open
//! Vipps payment or charge, pause and resume a recurring payment, change its amount or collection day, Cancel Vipps Agreement, and re-send an
//! outbound delivery. Each is two posts: the first shows a confirmation step that changes nothing; the second
//! (`…/confirm`) acts through the same `Payments` or outbox call the API makes, which records the change and its
//! audit entry (the re-sync, which the poll also makes unaudited, is audited here), then goes back to the
//! record's page, or shows it with the reason the action was refused.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use chrono::NaiveDate;
use serde::Deserialize;

use super::record_detail::{at_vipps, installment_page};
use super::record_pages::{delivery_page, mandate_page, recurring_page};
use super::timeline::{confirmation, Confirmation};
use crate::auth::{self, Principal};
use crate::domain::money::Money;
use crate::domain::recurring::{MAX_RECURRING_ORE, MIN_RECURRING_ORE};
use crate::error::ServiceError;
use crate::state::AppState;
use crate::store::StoreResult;

/// What a refused action says on the record's page.
fn refusal(error: &ServiceError) -> String {
    match error {
        ServiceError::Invalid(errors) | ServiceError::Conflict(errors) => {
            errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join(" ")
        }
        ServiceError::NotFound(what) => format!("No such {what}."),
        other => format!("The action could not be made: {other}"),
    }
}

fn back(path: String) -> Response {
    Redirect::to(&path).into_response()
}

/// The Vipps object behind an installment that a re-sync reads: `(is a charge, id, state)`, if it is open.
async fn open_at_vipps(state: &AppState, installment_id: &str) -> StoreResult<Option<(bool, String, String)>> {
    let mut conn = state.store.pool().acquire().await?;
    let found = at_vipps(&mut conn, installment_id).await?;
    Ok(found.filter(|v| v.open).map(|v| (v.is_charge, v.reference, v.state)))
}

/// `POST /installments/{id}/resync`: the re-sync's confirmation step.
pub async fn resync_review(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    match open_at_vipps(&state, &id).await {
        Ok(Some((charge, reference, at))) => confirmation(
            &who,
            &Confirmation {
                title: "Confirm the re-sync",
                question: format!(
                    "Read {} {reference} from Vipps now (recorded here as {at}) and record what Vipps says?",
                    if charge { "charge" } else { "payment" }
                ),
                warning: "The same read as the poll and the webhooks: an authorized payment is captured.",
                action: format!("/installments/{id}/resync/confirm"),
                hidden: Vec::new(),
                button: "Re-sync from Vipps".into(),
                back: format!("/installments/{id}"),
            },
        ),
        Ok(None) => installment_page(&state, &who, &id, Some("Nothing of this installment is open at Vipps.")).await,
        Err(error) => super::internal_error(&error.into()),
    }
}

/// `POST /installments/{id}/resync/confirm`: reads the open payment or charge from Vipps through the poll's own
/// sync, and audits it as `installment.resync` with the state before and after.
pub async fn resync_confirm(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    let (charge, reference, before) = match open_at_vipps(&state, &id).await {
        Ok(Some(open)) => open,
        Ok(None) => {
            return installment_page(&state, &who, &id, Some("Nothing of this installment is open at Vipps.")).await
        }
        Err(error) => return super::internal_error(&error.into()),
    };
    let synced = if charge {
        state.payments.sync_charge(&reference, None).await
    } else {
        state.payments.sync(&reference, None).await
    };
    let after = match open_at_vipps(&state, &id).await {
        Ok(Some((_, _, state))) => state,
        Ok(None) => "settled".to_owned(),
        Err(error) => return super::internal_error(&error.into()),
    };
    let details = serde_json::json!({"reference": reference, "before": before, "after": after,
        "error": synced.as_ref().err().map(ToString::to_string)});
    let audited = async {
        let mut tx = state.store.begin_write().await?;
        auth::audit(&mut tx, &who.actor(), "installment.resync", "installment", &id, details).await?;
        tx.commit().await?;
        Ok::<_, ServiceError>(())
    };
    if let Err(error) = audited.await {
        return super::internal_error(&error.into());
    }
    match synced {
        Ok(()) => back(format!("/installments/{id}")),
        Err(error) => installment_page(&state, &who, &id, Some(&refusal(&error))).await,
    }
}

/// The pause form's field.
#[derive(Debug, Deserialize)]
struct PauseForm {
    until: Option<String>,
}

fn pause_until(bytes: &Bytes) -> Result<NaiveDate, &'static str> {
    let form = serde_urlencoded::from_bytes::<PauseForm>(bytes).map_err(|_| "The form could not be read.")?;
    form.until
        .as_deref()
        .map(str::trim)
        .and_then(|d| d.parse::<NaiveDate>().ok())
        .ok_or("Give the day collection starts again, like 2027-03-01.")
}

/// `POST /recurring/{id}/pause` with `until`: the pause's confirmation step.
pub async fn pause_review(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Response {
    let until = match pause_until(&bytes) {
        Ok(until) => until,
        Err(message) => return recurring_page(&state, &who, &id, Some(message)).await,
    };
    confirmation(
        &who,
        &Confirmation {
            title: "Confirm the pause",
            question: format!("Pause recurring payment {id} until {until}? Nothing is collected before {until}."),
            warning: "Installments due before then are cancelled, with their charges at Vipps.",
            action: format!("/recurring/{id}/pause/confirm"),
            hidden: vec![("until", until.to_string())],
            button: format!("Pause until {until}"),
            back: format!("/recurring/{id}"),
        },
    )
}

/// `POST /recurring/{id}/pause/confirm`: the pause, through `Payments::pause` (as `POST /v2/Recurring/{id}/Pause`).
pub async fn pause_confirm(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Response {
    let until = match pause_until(&bytes) {
        Ok(until) => until,
        Err(message) => return recurring_page(&state, &who, &id, Some(message)).await,
    };
    match state.payments.pause(&id, until, &who.actor()).await {
        Ok(_) => back(format!("/recurring/{id}")),
        Err(error) => recurring_page(&state, &who, &id, Some(&refusal(&error))).await,
    }
}

/// `POST /recurring/{id}/resume`: the resume's confirmation step.
pub async fn resume_review(Extension(who): Extension<Principal>, Path(id): Path<String>) -> Response {
    confirmation(
        &who,
        &Confirmation {
            title: "Confirm the resume",
            question: format!("Resume recurring payment {id}? The periods still ahead are collected as usual."),
            warning: "Installments the pause cancelled stay cancelled.",
            action: format!("/recurring/{id}/resume/confirm"),
            hidden: Vec::new(),
            button: "Resume".into(),
            back: format!("/recurring/{id}"),
        },
    )
}

/// `POST /recurring/{id}/resume/confirm`: the resume, through `Payments::resume`.
pub async fn resume_confirm(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    match state.payments.resume(&id, &who.actor()).await {
        Ok(()) => back(format!("/recurring/{id}")),
        Err(error) => recurring_page(&state, &who, &id, Some(&refusal(&error))).await,
    }
}

/// A new term of a recurring payment, as its page's form gives it.
#[derive(Debug, Clone, Copy)]
enum NewTerm {
    /// The amount per period, øre (within Vipps' limits for an agreement).
    Amount(i64),
    /// The day of the month collected on.
    Day(u32),
}

/// The new-terms forms' fields: an amount in NOK (`175,50` or `175.50`) or a day of the month.
#[derive(Debug, Deserialize)]
struct TermsForm {
    amount: Option<String>,
    day: Option<String>,
}

impl NewTerm {
    /// The form's `amount` (when `amount` is asked for) or `day`, checked here so the review never offers what
    /// the change would refuse.
    fn read(bytes: &Bytes, amount: bool) -> Result<NewTerm, String> {
        let form = serde_urlencoded::from_bytes::<TermsForm>(bytes).map_err(|_| "The form could not be read.")?;
        if amount {
            let text = form.amount.unwrap_or_default().trim().to_owned();
            let ore = Money::parse_kroner(&text.replace(',', "."))
                .map(Money::ore)
                .map_err(|_| format!("The amount must be in NOK, like 100 or 99.50; “{text}” is not."))?;
            if !(MIN_RECURRING_ORE..=MAX_RECURRING_ORE).contains(&ore) {
                return Err(format!(
                    "The amount must be from {} to {} NOK (Vipps' limits for an agreement).",
                    Money::from_ore(MIN_RECURRING_ORE).kroner_string(),
                    Money::from_ore(MAX_RECURRING_ORE).kroner_string()
                ));
            }
            return Ok(NewTerm::Amount(ore));
        }
        let text = form.day.unwrap_or_default().trim().to_owned();
        text.parse::<u32>()
            .ok()
            .filter(|d| (1..=31).contains(d))
            .map(NewTerm::Day)
            .ok_or_else(|| format!("The collection day must be a day of the month from 1 to 31; “{text}” is not."))
    }

    fn confirmation(self, id: &str) -> Confirmation<'static> {
        match self {
            NewTerm::Amount(ore) => {
                let amount = Money::from_ore(ore).kroner_string();
                Confirmation {
                    title: "Confirm the new amount",
                    question: format!("Collect {amount} NOK per period on recurring payment {id} from now on?"),
                    warning: "The agreement's price at Vipps changes first; the payer sees the new price in Vipps. \
                              Installments already charged keep their amount.",
                    action: format!("/recurring/{id}/amount/confirm"),
                    hidden: vec![("amount", amount.clone())],
                    button: format!("Change to {amount} NOK"),
                    back: format!("/recurring/{id}"),
                }
            }
            NewTerm::Day(day) => Confirmation {
                title: "Confirm the new collection day",
                question: format!("Collect recurring payment {id} on day {day} of the month from now on?"),
                warning: "Installments not yet charged move to the new day (never to today or before); those \
                          charged keep theirs. In a shorter month the last day is used.",
                action: format!("/recurring/{id}/collection-day/confirm"),
                hidden: vec![("day", day.to_string())],
                button: format!("Collect on day {day}"),
                back: format!("/recurring/{id}"),
            },
        }
    }
}

/// The confirmation step of a new amount (`amount`) or collection day.
async fn terms_review(state: &AppState, who: &Principal, id: &str, bytes: &Bytes, amount: bool) -> Response {
    match NewTerm::read(bytes, amount) {
        Ok(term) => confirmation(who, &term.confirmation(id)),
        Err(message) => recurring_page(state, who, id, Some(&message)).await,
    }
}

/// The change itself, through the same `Payments` calls as `PATCH /v2/Recurring/{id}` (the price at Vipps
/// first; both audited there); a price Vipps has yet to confirm is shown as pending on the page.
async fn terms_confirm(state: &AppState, who: &Principal, id: &str, bytes: &Bytes, amount: bool) -> Response {
    let changed = match NewTerm::read(bytes, amount) {
        Ok(NewTerm::Amount(ore)) => {
            state.payments.change_amount(id, Money::from_ore(ore), &who.actor()).await.map(|o| o.is_pending())
        }
        Ok(NewTerm::Day(day)) => state.payments.change_collection_day(id, day, &who.actor()).await.map(|()| false),
        Err(message) => return recurring_page(state, who, id, Some(&message)).await,
    };
    match changed {
        Ok(false) => back(format!("/recurring/{id}")),
        Ok(true) => {
            let waiting = "Vipps has not confirmed the new price yet; payhub sends it again until Vipps answers.";
            recurring_page(state, who, id, Some(waiting)).await
        }
        Err(error) => recurring_page(state, who, id, Some(&refusal(&error))).await,
    }
}

/// `POST /recurring/{id}/amount` with `amount`: the amount change's confirmation step.
pub async fn amount_review(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Response {
    terms_review(&state, &who, &id, &bytes, true).await
}

/// `POST /recurring/{id}/amount/confirm`: the new amount, through `Payments::change_amount`.
pub async fn amount_confirm(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Response {
    terms_confirm(&state, &who, &id, &bytes, true).await
}

/// `POST /recurring/{id}/collection-day` with `day`: the collection day change's confirmation step.
pub async fn day_review(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Response {
    terms_review(&state, &who, &id, &bytes, false).await
}

/// `POST /recurring/{id}/collection-day/confirm`: the new day, through `Payments::change_collection_day`.
pub async fn day_confirm(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Response {
    terms_confirm(&state, &who, &id, &bytes, false).await
}

/// `POST /mandates/{id}/cancel-agreement`: Cancel Vipps Agreement's confirmation step.
pub async fn cancel_agreement_review(Extension(who): Extension<Principal>, Path(id): Path<String>) -> Response {
    confirmation(
        &who,
        &Confirmation {
            title: "Confirm Cancel Vipps Agreement",
            question: format!(
                "Stop mandate {id}'s agreement at Vipps? Its recurring payments and open installments are cancelled."
            ),
            warning:
                "The payer sees the agreement stopped in Vipps. This cannot be undone: a new agreement needs the payer.",
            action: format!("/mandates/{id}/cancel-agreement/confirm"),
            hidden: Vec::new(),
            button: "Cancel Vipps Agreement".into(),
            back: format!("/mandates/{id}"),
        },
    )
}

/// `POST /mandates/{id}/cancel-agreement/confirm`: through `Payments::cancel_agreement` (as
/// `POST /v2/actions/CancelVippsAgreement`); Vipps' refusal is shown on the mandate's page.
pub async fn cancel_agreement_confirm(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    match state.payments.cancel_agreement(&id, &who.actor()).await {
        Ok(outcome) if outcome.is_success => back(format!("/mandates/{id}")),
        Ok(outcome) => {
            mandate_page(&state, &who, &id, Some(&format!("Vipps did not stop the agreement: {}", outcome.message)))
                .await
        }
        Err(error) => mandate_page(&state, &who, &id, Some(&refusal(&error))).await,
    }
}

/// `POST /deliveries/{id}/resend`: the re-send's confirmation step.
pub async fn resend_review(Extension(who): Extension<Principal>, Path(id): Path<String>) -> Response {
    confirmation(
        &who,
        &Confirmation {
            title: "Confirm the re-send",
            question: format!("Send webhook delivery {id} again, with the same webhook-id and body?"),
            warning: "The receiver gets the event again; it should recognise the webhook-id it has seen.",
            action: format!("/deliveries/{id}/resend/confirm"),
            hidden: Vec::new(),
            button: "Re-send".into(),
            back: format!("/deliveries/{id}"),
        },
    )
}

/// `POST /deliveries/{id}/resend/confirm`: through the outbox's `resend` (as the admin API's), audited there.
pub async fn resend_confirm(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    match state.outbox.resend(&id, &who.actor()).await {
        Ok(_) => back(format!("/deliveries/{id}")),
        Err(error) => delivery_page(&state, &who, &id, Some(&refusal(&error))).await,
    }
}
