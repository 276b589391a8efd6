//! Keeping an installment in step with its Vipps ePayment: create it (same key on every attempt), read it back
//! (webhooks only tell us *that* something happened; the payment itself is the authority), capture what is
//! authorized, and record each change as an inbound report with the money it moved.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use serde_json::json;
use vipps_client::epayment::{CreatePaymentRequest, Customer, Payment, Reference, State};
use vipps_client::{Amount, ErrorKind, IdempotencyKey};

use super::trail::{self, Channel, Means, Outcome, Said};
use super::{outbox, Payments};
use crate::domain::status::{InstallmentStatus, IntentStatus};
use crate::domain::vipps_state::PaymentState;
use crate::error::{ServiceError, ServiceResult};
use crate::store::installments;
use crate::store::intents;
use crate::store::vipps_payments::{self, VippsPaymentRow};

/// One async lock per payment reference, so two syncs of the same payment (a webhook and the poll) never
/// interleave in this process. Other processes are kept apart by the schema's guards.
#[derive(Clone, Default)]
pub struct ReferenceLocks(Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>);

impl ReferenceLocks {
    /// The lock of one reference (a payment reference, an agreement id, a charge id).
    pub(crate) fn get(&self, reference: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        map.entry(reference.to_owned()).or_default().clone()
    }
}

/// What the caller of a create already read: the account and who listens to the intent's events.
#[derive(Clone, Copy)]
pub(crate) struct Known<'a> {
    /// The merchant account.
    pub account: &'a crate::vipps::accounts::AccountView,
    /// The intent's event listeners.
    pub listeners: &'a outbox::Listeners,
}

/// What a Vipps state means for the installment. Exhaustive: a state Vipps adds is handled here on purpose.
fn outcome(state: &State) -> Option<(InstallmentStatus, Option<&'static str>)> {
    match state {
        State::Created => Some((InstallmentStatus::Pending, None)),
        State::Authorized => None,
        State::Aborted => Some((InstallmentStatus::Failed, Some("Rejected: the payer cancelled in Vipps"))),
        State::Expired => Some((InstallmentStatus::Failed, Some("Expired: the payer did not approve in time"))),
        State::Terminated => Some((InstallmentStatus::Failed, Some("Terminated: cancelled before the payer approved"))),
        State::Unknown(_) => None,
    }
}

pub(crate) fn is_transient(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Transport | ErrorKind::Timeout | ErrorKind::ServerError | ErrorKind::RateLimited | ErrorKind::Locked
    )
}

/// A Vipps aggregate's totals in the order `vipps_payments::update_vipps_payment` takes them: authorized,
/// captured, refunded, cancelled.
pub(crate) fn totals(a: &vipps_client::epayment::Aggregate) -> [i64; 4] {
    [a.authorized_amount.value, a.captured_amount.value, a.refunded_amount.value, a.cancelled_amount.value]
}

pub(crate) fn describe(error: &vipps_client::Error) -> String {
    match error.problem() {
        Some(problem) => {
            let text: Vec<&str> = [problem.title.as_deref(), problem.detail.as_deref()].into_iter().flatten().collect();
            if text.is_empty() {
                format!("Vipps: HTTP {}", problem.status)
            } else {
                format!("Vipps: {}", text.join(": "))
            }
        }
        None => format!("Vipps: {error}"),
    }
}

fn snapshot_json(payment: &Payment) -> String {
    json!({
        "reference": payment.reference,
        "state": payment.state.to_string(),
        "pspReference": payment.psp_reference,
        "aggregate": {
            "authorizedAmount": payment.aggregate.authorized_amount.value,
            "capturedAmount": payment.aggregate.captured_amount.value,
            "refundedAmount": payment.aggregate.refunded_amount.value,
            "cancelledAmount": payment.aggregate.cancelled_amount.value,
        }
    })
    .to_string()
}

impl Payments {
    fn create_request(&self, row: &VippsPaymentRow, intent_id: &str) -> Result<CreatePaymentRequest, String> {
        let reference = Reference::parse(&row.reference).map_err(|e| e.to_string())?;
        let mut request =
            CreatePaymentRequest::web_redirect(Amount::nok(row.amount_ore), reference, self.return_url(intent_id));
        if let Some(phone) = &row.customer_phone {
            request.customer = Some(Customer::PhoneNumber(phone.clone()));
        }
        if let Some(text) = &row.description {
            request = request.description(text.clone());
        }
        Ok(request)
    }

    /// Creates the Vipps payment behind `reference`, with the installment-derived key. Safe to repeat: Vipps
    /// replays the first answer for the same key. The row is read again under the reference's lock, so an answer
    /// another path of this process recorded meanwhile is used, not sent for again; a refusal recorded earlier
    /// is given back as the error. On a definite refusal the installment fails; when Vipps does not answer the
    /// payment stays `CREATING` and the polling beat tries again with the same key.
    pub(crate) async fn create_at_vipps(&self, reference: &str) -> Result<Option<String>, String> {
        self.create_at_vipps_for(reference, "").await
    }

    /// [`Self::create_at_vipps`]; a payment whose installment has no intent of its own (made by hand, paid
    /// through its PayLink) brings the payer back through `fallback_intent`.
    pub(crate) async fn create_at_vipps_for(
        &self,
        reference: &str,
        fallback_intent: &str,
    ) -> Result<Option<String>, String> {
        let internal = |e: &dyn std::fmt::Display| format!("payhub could not reach its records: {e}");
        let lock = self.locks.get(reference);
        let _guard = lock.lock().await;
        let mut conn = self.store.pool().acquire().await.map_err(|e| internal(&e))?;
        let row = vipps_payments::vipps_payment(&mut conn, reference)
            .await
            .map_err(|e| internal(&e))?
            .ok_or("unknown payment")?;
        match row.state {
            PaymentState::Creating => {}
            PaymentState::Refused => return Err(row.last_error.unwrap_or_else(|| "Vipps refused the payment".into())),
            _ => return Ok(row.redirect_url),
        }
        let installment = installments::installment(&mut conn, &row.installment_id)
            .await
            .map_err(|e| internal(&e))?
            .ok_or("unknown installment")?;
        drop(conn);
        self.send_create(&row, installment.intent_id.as_deref().unwrap_or(fallback_intent), None).await
    }

    /// The landing page of an installment's open Vipps payment, for paying an existing installment (a PayLink,
    /// `OneTime.Id`): the payment it has, never a second one, however many tabs or clicks ask. A create with
    /// no answer yet is sent again with its stored key (Vipps replays the first answer). `None` when the
    /// installment has no payment still waiting for the payer.
    pub async fn landing_of(&self, installment_id: &str) -> ServiceResult<Option<String>> {
        let row = {
            let mut conn = self.store.pool().acquire().await?;
            vipps_payments::vipps_payment_of(&mut conn, installment_id).await?
        };
        let Some(row) = row else { return Ok(None) };
        Ok(match row.state {
            PaymentState::Created => row.redirect_url,
            PaymentState::Creating => self.create_at_vipps(&row.reference).await.ok().flatten(),
            _ => None,
        })
    }

    /// [`Self::create_at_vipps`] for a row the caller has in hand (just recorded, so nobody else sends it: the
    /// poll leaves a create alone for its first minute): no re-read.
    pub(crate) async fn create_row_at_vipps(
        &self,
        row: &VippsPaymentRow,
        intent_id: &str,
        known: Option<Known<'_>>,
    ) -> Result<Option<String>, String> {
        let lock = self.locks.get(&row.reference);
        let _guard = lock.lock().await;
        self.send_create(row, intent_id, known).await
    }

    /// Sends the create and records the answer; the caller holds the reference's lock.
    async fn send_create(
        &self,
        row: &VippsPaymentRow,
        intent_id: &str,
        known: Option<Known<'_>>,
    ) -> Result<Option<String>, String> {
        let reference = row.reference.as_str();
        let request = self.create_request(row, intent_id)?;
        let key = IdempotencyKey::parse(&row.idempotency_key).map_err(|e| e.to_string())?;
        let client = match known {
            Some(known) => self.clients.for_account(&self.accounts, known.account).await,
            None => self.clients.get(&self.accounts, &row.account_id).await,
        }
        .map_err(|e| e.to_string())?;
        let now = Utc::now();
        match client.epayment().create(&request, &key).await {
            Ok(created) => {
                let body = json!({"reference": created.reference, "redirectUrl": created.redirect_url}).to_string();
                self.record_created(row, intent_id, known, created.redirect_url, body, now).await
            }
            Err(error) if is_transient(error.kind()) => self.not_answered(row, intent_id, &describe(&error), now).await,
            Err(error)
                if matches!(
                    error.kind(),
                    ErrorKind::ReferenceAlreadyExists | ErrorKind::IdempotencyConflict | ErrorKind::Conflict
                ) =>
            {
                // Ambiguous: the payment may be ours, created by an attempt whose answer was lost (and whose key
                // Vipps has since forgotten) or by another instance at the same moment. Vipps is asked first.
                let vipps_reference = Reference::parse(reference).map_err(|e| e.to_string())?;
                match client.epayment().get(&vipps_reference).await {
                    Ok(payment) if payment.amount.value == row.amount_ore => {
                        tracing::info!(%reference, "the create met an existing payment, which is ours; recorded as created");
                        let body = snapshot_json(&payment);
                        self.record_created(row, intent_id, known, payment.redirect_url.clone(), body, now).await
                    }
                    Ok(_) => self.refuse(row, intent_id, &describe(&error), now).await,
                    Err(read) if read.kind() == ErrorKind::NotFound => {
                        self.refuse(row, intent_id, &describe(&error), now).await
                    }
                    Err(read) => self.not_answered(row, intent_id, &describe(&read), now).await,
                }
            }
            Err(error) => self.refuse(row, intent_id, &describe(&error), now).await,
        }
    }

    /// Records Vipps' confirmation of a create (through the group commit): the payment becomes `CREATED` if it
    /// is still `CREATING`, the installment `Pending`, the intent `Matched`.
    async fn record_created(
        &self,
        row: &VippsPaymentRow,
        intent_id: &str,
        known: Option<Known<'_>>,
        redirect_url: Option<String>,
        body: String,
        now: chrono::DateTime<Utc>,
    ) -> Result<Option<String>, String> {
        let answer = crate::store::together::CreatedAtVipps {
            reference: row.reference.clone(),
            installment_id: row.installment_id.clone(),
            intent_id: intent_id.to_owned(),
            amount_ore: row.amount_ore,
            redirect_url: redirect_url.clone(),
            body,
            listeners: known.map(|k| k.listeners.clone()),
            now,
        };
        self.together().created(answer).await.map_err(|e| format!("payhub could not reach its records: {e}"))?;
        Ok(redirect_url)
    }

    /// Vipps did not answer: the payment stays `CREATING` (unless another path recorded an answer meanwhile,
    /// which then stands) and the poll sends it again with the same key.
    async fn not_answered(
        &self,
        row: &VippsPaymentRow,
        intent_id: &str,
        message: &str,
        now: chrono::DateTime<Utc>,
    ) -> Result<Option<String>, String> {
        let reference = row.reference.as_str();
        let internal = |e: &dyn std::fmt::Display| format!("payhub could not reach its records: {e}");
        tracing::warn!(%reference, account_id = %row.account_id, error = %message, "Vipps did not answer the create; the poll will retry with the same key");
        let mut conn = self.store.pool().acquire().await.map_err(|e| internal(&e))?;
        let kept = vipps_payments::update_vipps_payment(
            &mut conn,
            reference,
            &PaymentState::Creating,
            None,
            None,
            None,
            Some(message),
            now,
        )
        .await
        .map_err(|e| internal(&e))?;
        if !kept {
            return self.answer_recorded_elsewhere(reference).await;
        }
        Err(format!("{message}. payhub keeps trying; read GET /v2/PaymentIntent/{intent_id} for the outcome."))
    }

    /// Vipps refused the create: the payment becomes `REFUSED`, the installment `Failed` and the intent `Failed`,
    /// unless another path recorded Vipps' confirmation first (that answer stands).
    async fn refuse(
        &self,
        row: &VippsPaymentRow,
        intent_id: &str,
        message: &str,
        now: chrono::DateTime<Utc>,
    ) -> Result<Option<String>, String> {
        let reference = row.reference.as_str();
        tracing::warn!(%reference, %intent_id, account_id = %row.account_id, error = %message, "Vipps refused the payment");
        let result: ServiceResult<bool> = async {
            let mut tx = self.store.begin_write().await?;
            let refused = vipps_payments::update_vipps_payment(
                &mut tx,
                reference,
                &PaymentState::Refused,
                None,
                None,
                None,
                Some(message),
                now,
            )
            .await?;
            if !refused {
                tx.rollback().await?;
                return Ok(false);
            }
            let listeners = outbox::Listeners::of_intent(&mut tx, Some(intent_id)).await?;
            outbox::move_installment(
                &mut tx,
                &listeners,
                &row.installment_id,
                InstallmentStatus::Failed,
                Some(message),
                None,
                now,
            )
            .await?;
            if intents::set_intent_status(&mut tx, intent_id, IntentStatus::Failed, now).await? {
                outbox::intent(&mut tx, &listeners, "paymentIntent.failed", intent_id, now).await?;
            }
            tx.commit().await?;
            Ok(true)
        }
        .await;
        match result {
            Ok(true) => Err(message.to_owned()),
            Ok(false) => self.answer_recorded_elsewhere(reference).await,
            Err(error) => Err(format!("payhub could not reach its records: {error}")),
        }
    }

    /// The answer another path recorded for a create: its landing page, or its refusal.
    async fn answer_recorded_elsewhere(&self, reference: &str) -> Result<Option<String>, String> {
        let internal = |e: &dyn std::fmt::Display| format!("payhub could not reach its records: {e}");
        let mut conn = self.store.pool().acquire().await.map_err(|e| internal(&e))?;
        let row = vipps_payments::vipps_payment(&mut conn, reference)
            .await
            .map_err(|e| internal(&e))?
            .ok_or("unknown payment")?;
        match row.state {
            PaymentState::Refused => Err(row.last_error.unwrap_or_else(|| "Vipps refused the payment".into())),
            _ => Ok(row.redirect_url),
        }
    }

    /// Brings the installment behind `reference` up to date with Vipps: re-sends a create that never got an
    /// answer, reads the payment, records a capture payhub did not make, captures what is authorized, and records
    /// what changed. `cause` names the message that prompted the sync (a webhook), for the trail.
    pub async fn sync(&self, reference: &str, cause: Option<&str>) -> ServiceResult<()> {
        let read = || async {
            let mut conn = self.store.pool().acquire().await?;
            vipps_payments::vipps_payment(&mut conn, reference).await?.ok_or(ServiceError::NotFound("payment"))
        };
        let mut row = read().await?;
        if row.state == PaymentState::Creating {
            // The create may or may not have reached Vipps; the same key makes a repeat safe.
            if let Err(message) = self.create_at_vipps(reference).await {
                tracing::info!(%reference, %message, "create still not confirmed");
                return Ok(());
            }
            row = read().await?;
        }
        if row.state == PaymentState::Refused {
            return Ok(());
        }
        let lock = self.locks.get(reference);
        let _guard = lock.lock().await;
        let client = self.clients.get(&self.accounts, &row.account_id).await?;
        let vipps_reference = Reference::parse(reference).map_err(|e| ServiceError::Internal(e.into()))?;
        let payment = match client.epayment().get(&vipps_reference).await {
            Ok(payment) => payment,
            Err(error) if is_transient(error.kind()) => {
                tracing::info!(%reference, error = %describe(&error), "Vipps did not answer the poll; next beat retries");
                return Ok(());
            }
            Err(error) => return Err(ServiceError::Internal(anyhow::anyhow!(describe(&error)))),
        };
        self.apply(&row, &payment, cause).await?;
        if payment.state == State::Authorized {
            self.capture(&row, &payment, &client).await?;
        }
        Ok(())
    }

    /// Records a read-back of the payment: state, totals, and the installment's move for a final failure. A read
    /// that would move the payment back (older than what another path recorded) is dropped. The captured total
    /// stays as payhub recorded it: [`Self::capture`] records Vipps' captures as Payments and moves it with them.
    async fn apply(&self, row: &VippsPaymentRow, payment: &Payment, cause: Option<&str>) -> ServiceResult<()> {
        let now = Utc::now();
        let aggregate = &payment.aggregate;
        let seen = totals(aggregate);
        let written = [seen[0], row.captured_ore, seen[2], seen[3]];
        let state = PaymentState::from(&payment.state);
        let changed = state != row.state || seen[0] != row.authorized_ore;
        if !changed {
            if [seen[2], seen[3]] != [row.refunded_ore, row.cancelled_ore] {
                let mut conn = self.store.pool().acquire().await?;
                vipps_payments::update_vipps_payment(
                    &mut conn,
                    &row.reference,
                    &state,
                    None,
                    None,
                    Some(written),
                    None,
                    now,
                )
                .await?;
            }
            return Ok(());
        }
        let mut tx = self.store.begin_write().await?;
        let recorded = vipps_payments::update_vipps_payment(
            &mut tx,
            &row.reference,
            &state,
            None,
            Some(&payment.psp_reference),
            Some(written),
            None,
            now,
        )
        .await?;
        if !recorded {
            tracing::info!(reference = %row.reference, %state, "a read older than what is recorded; dropped");
            tx.rollback().await?;
            return Ok(());
        }
        let installment = installments::installment(&mut tx, &row.installment_id)
            .await?
            .ok_or(ServiceError::NotFound("installment"))?;
        let listeners = outbox::Listeners::of_intent(&mut tx, installment.intent_id.as_deref()).await?;
        let body = snapshot_json(payment);
        let (sub_type, amount) = match &payment.state {
            State::Authorized => ("payment.authorized", Some(aggregate.authorized_amount.value)),
            other => (
                match other {
                    State::Created => "payment.created",
                    State::Aborted => "payment.aborted",
                    State::Expired => "payment.expired",
                    State::Terminated => "payment.terminated",
                    State::Authorized | State::Unknown(_) => "payment.unknown",
                },
                None,
            ),
        };
        let mut status = Outcome::Matched;
        let mut detail = cause.map(|c| format!("prompted by message {c}"));
        if let Some((next, reason)) = outcome(&payment.state) {
            let moved =
                outbox::move_installment(&mut tx, &listeners, &row.installment_id, next, reason, None, now).await?;
            if !moved && next != installment.status {
                status = Outcome::Ignored;
                detail = Some(format!("installment is {}; {sub_type} does not move it back", installment.status));
            }
            if next == InstallmentStatus::Failed && moved {
                if let Some(intent_id) = &installment.intent_id {
                    intents::set_intent_status(&mut tx, intent_id, IntentStatus::Matched, now).await?;
                }
            }
        } else if let State::Unknown(name) = &payment.state {
            tracing::warn!(reference = %row.reference, state = %name, "Vipps reported a state payhub does not know; installment left as it is");
            status = Outcome::Ignored;
        }
        let means = Means::vipps(sub_type, status)
            .amount(amount)
            .reference(&row.reference)
            .installment(Some(&row.installment_id))
            .intent(installment.intent_id.as_deref())
            .detail(detail.as_deref());
        trail::record(&mut tx, Said::new(Channel::VippsPoll, Some(&row.reference), &body), means, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Syncs every payment that is not settled yet (the polling beat), leaving a create younger than a minute to
    /// its caller, and re-sends refunds Vipps has not confirmed. Returns how many payments were looked at.
    pub async fn sync_open(&self, limit: i64) -> ServiceResult<usize> {
        let references = {
            let mut conn = self.store.pool().acquire().await?;
            vipps_payments::open_vipps_payments(&mut conn, limit, self.now() - IN_CALLERS_HANDS).await?
        };
        // Stamped before Vipps is asked, so one that cannot be read (or stays open) waits behind the others.
        let mut tx = self.store.begin_write().await?;
        vipps_payments::mark_checked(&mut tx, &references, self.now()).await?;
        tx.commit().await?;
        for reference in &references {
            if let Err(error) = self.sync(reference, None).await {
                tracing::warn!(%reference, %error, "sync failed");
            }
        }
        self.retry_pending_refunds(limit).await?;
        Ok(references.len())
    }
}

/// How long a new create or refund is left to the request that made it before the poll sends it again: longer
/// than that request's Vipps call with its retries, so two paths never send one record at the same time (which
/// Vipps may answer with a conflict for the second).
pub(crate) const IN_CALLERS_HANDS: chrono::Duration = chrono::Duration::minutes(1);
