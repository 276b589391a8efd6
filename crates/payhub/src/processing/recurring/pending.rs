//! Changes whose Vipps side is not confirmed at once. Nothing is recorded as done before Vipps says so: a
//! Cancel or Pause cancels each live charge only after reading it at Vipps, and a change Vipps has not
//! confirmed (no answer, a charge Vipps is collecting right now, a charge whose create is still in flight)
//! stays a `Pending` `recurring_changes` row, which the `recurring.pending_changes` beat takes up again a minute
//! later with the same keys: the change's id for the agreement update, `cc-<charge id>` for a charge cancel.
//!
//! A charge Vipps reports final is recorded as Vipps has it: collected (CHARGED and after) → the installment
//! is Collected with its Payment, and the change's message names the charge so the organisation can refund
//! it; FAILED → Failed; CANCELLED → Cancelled.

use chrono::NaiveDate;
use vipps_client::recurring::{Charge, ChargeStatus};
use vipps_client::ErrorKind;

use super::{key, BeatCounts, ChangeOutcome};
use crate::auth::Actor;
use crate::domain::recurring::RecurringStatus;
use crate::domain::status::InstallmentStatus;
use crate::domain::vipps_state::ChargeState;
use crate::error::{ServiceError, ServiceResult};
use crate::processing::one_time::describe;
use crate::processing::{outbox, Payments};
use crate::store::changes::{self, ChangeRow};
use crate::store::charges::{self, ChargeRow};
use crate::store::installments;
use crate::store::mandates::{self, MandateRow};
use crate::store::recurring_payments;

/// How long a pending change rests after an attempt before the beat tries it again.
const RETRY_AFTER_SECONDS: i64 = 60;

/// Where the cancel of a set of installments stands.
#[derive(Debug, Default)]
pub(super) struct CancelProgress {
    /// Charges Vipps has not confirmed cancelled (or final) yet, each with what stands in the way.
    waiting: Vec<String>,
    /// Charges Vipps had already collected: their installments are Collected, not Cancelled.
    collected: Vec<String>,
}

impl CancelProgress {
    pub(super) fn settled(&self) -> bool {
        self.waiting.is_empty()
    }

    fn message(&self) -> Option<String> {
        let mut parts = Vec::new();
        if !self.waiting.is_empty() {
            parts.push(format!(
                "Waiting for Vipps to confirm the cancel of {}; payhub retries every minute",
                self.waiting.join("; ")
            ));
        }
        if !self.collected.is_empty() {
            parts.push(format!(
                "Vipps had already collected {}: its installment is Collected (refund it if it should not have been)",
                self.collected.join(", ")
            ));
        }
        (!parts.is_empty()).then(|| parts.join(". "))
    }
}

/// What Vipps said of one charge the organisation wants cancelled.
enum ChargeCancel {
    /// Cancelled at Vipps (with the charge as read back, when the read answered).
    Cancelled(Option<Charge>),
    /// Final at Vipps in another way: collected or failed.
    Final(Charge),
    /// Not confirmed yet (with the charge as read, when there is something to record).
    Waiting(String, Option<Charge>),
}

impl Payments {
    /// Cancels the open installments of a mandate (or one recurring payment), those due before `before` when
    /// given. Each live charge is read at Vipps first and cancelled only if Vipps can cancel it (key derived
    /// from the charge); an installment becomes Cancelled only once Vipps confirmed its charge cancelled.
    pub(super) async fn cancel_installments(
        &self,
        mandate: &MandateRow,
        recurring_id: Option<&str>,
        reason: &str,
        before: Option<NaiveDate>,
    ) -> ServiceResult<CancelProgress> {
        let open = {
            let mut conn = self.store.pool().acquire().await?;
            let mut open = Vec::new();
            for id in installments::open_installments(&mut conn, &mandate.id, recurring_id).await? {
                let Some(row) = installments::installment(&mut conn, &id).await? else { continue };
                if before.is_some_and(|b| row.due_date >= b) {
                    continue;
                }
                open.push((row, charges::charge_of_installment(&mut conn, &id).await?));
            }
            open
        };
        let mut progress = CancelProgress::default();
        if open.is_empty() {
            return Ok(progress);
        }
        let client = self.clients.get(&self.accounts, &mandate.account_id).await?;
        for (installment, charge) in open {
            let step = match &charge {
                // Nothing at Vipps: a charge never recorded, or one Vipps refused to create.
                None => ChargeCancel::Cancelled(None),
                Some(row) if row.state == ChargeState::Refused => ChargeCancel::Cancelled(None),
                Some(row) => self.cancel_charge_at_vipps(&client, row).await?,
            };
            match (step, charge) {
                (ChargeCancel::Cancelled(read), charge) => {
                    let now = self.now();
                    let mut tx = self.store.begin_write().await?;
                    let listeners = outbox::Listeners::of_intent(&mut tx, installment.intent_id.as_deref()).await?;
                    outbox::move_installment(
                        &mut tx,
                        &listeners,
                        &installment.id,
                        InstallmentStatus::Cancelled,
                        Some(reason),
                        None,
                        now,
                    )
                    .await?;
                    if let (Some(row), None) = (&charge, &read) {
                        if row.state != ChargeState::Refused {
                            charges::update_charge(
                                &mut tx,
                                &row.charge_id,
                                &ChargeState::Cancelled,
                                None,
                                None,
                                None,
                                None,
                                now,
                            )
                            .await?;
                        }
                    }
                    tx.commit().await?;
                    if let (Some(row), Some(read)) = (&charge, &read) {
                        self.apply_charge(row, read, None).await?;
                    }
                }
                (ChargeCancel::Final(read), Some(row)) => {
                    self.apply_charge(&row, &read, None).await?;
                    if matches!(
                        read.status,
                        ChargeStatus::Charged
                            | ChargeStatus::PartiallyCaptured
                            | ChargeStatus::PartiallyRefunded
                            | ChargeStatus::Refunded
                    ) {
                        progress.collected.push(row.charge_id.clone());
                    }
                }
                (ChargeCancel::Waiting(why, read), charge) => {
                    if let (Some(row), Some(read)) = (&charge, &read) {
                        self.apply_charge(row, read, None).await?;
                    }
                    let id = charge.map_or_else(|| installment.id.clone(), |c| c.charge_id);
                    progress.waiting.push(format!("charge {id} ({why})"));
                }
                (ChargeCancel::Final(_), None) => {}
            }
        }
        Ok(progress)
    }

    /// Reads a charge at Vipps and cancels it if Vipps can (`PENDING`, `DUE`, `RESERVED`); says what Vipps
    /// confirmed. Never takes a missing answer, a refusal or an unknown charge for a cancel.
    async fn cancel_charge_at_vipps(
        &self,
        client: &vipps_client::Client,
        row: &ChargeRow,
    ) -> ServiceResult<ChargeCancel> {
        let lock = self.locks.get(&row.charge_id);
        let _guard = lock.lock().await;
        let recurring = client.recurring();
        let charge = match recurring.get_charge(&row.agreement_id, &row.charge_id).await {
            Ok(charge) => charge,
            Err(error) if error.kind() == ErrorKind::NotFound && row.state == ChargeState::Creating => {
                // Its create may still land: cancelled once Vipps has it (the charge beats send it again).
                return Ok(ChargeCancel::Waiting(
                    "Vipps does not have it yet: its create is not confirmed".into(),
                    None,
                ));
            }
            Err(error) => return Ok(ChargeCancel::Waiting(format!("reading it: {}", describe(&error)), None)),
        };
        match &charge.status {
            ChargeStatus::Pending | ChargeStatus::Due | ChargeStatus::Reserved => {}
            ChargeStatus::Processing => {
                return Ok(ChargeCancel::Waiting(
                    "Vipps is collecting it and cannot cancel it now".into(),
                    Some(charge),
                ))
            }
            ChargeStatus::Cancelled => return Ok(ChargeCancel::Cancelled(Some(charge))),
            ChargeStatus::Charged
            | ChargeStatus::PartiallyCaptured
            | ChargeStatus::PartiallyRefunded
            | ChargeStatus::Refunded
            | ChargeStatus::Failed => return Ok(ChargeCancel::Final(charge)),
            ChargeStatus::Unknown(name) => {
                return Ok(ChargeCancel::Waiting(format!("Vipps reports it {name}, which payhub does not know"), None))
            }
        }
        match recurring.cancel_charge(&row.agreement_id, &row.charge_id, &key(&format!("cc-{}", row.charge_id))?).await
        {
            Ok(_) => {
                let read = recurring
                    .get_charge(&row.agreement_id, &row.charge_id)
                    .await
                    .ok()
                    .filter(|c| c.status == ChargeStatus::Cancelled);
                Ok(ChargeCancel::Cancelled(read))
            }
            // No answer, or refused because it moved on meanwhile: read again next round.
            Err(error) => Ok(ChargeCancel::Waiting(format!("cancelling it: {}", describe(&error)), None)),
        }
    }

    /// Finishes a Cancel whose charges Vipps confirmed (the recurring payment becomes Cancelled), or notes what
    /// it waits for.
    pub(super) async fn finish_cancel(
        &self,
        change_id: &str,
        recurring_id: &str,
        reason: &str,
        progress: CancelProgress,
    ) -> ServiceResult<ChangeOutcome> {
        let now = self.now();
        let message = progress.message();
        if !progress.settled() {
            return self.still_pending(change_id, message.unwrap_or_default()).await;
        }
        let mut tx = self.store.begin_write().await?;
        recurring_payments::set_recurring_status(
            &mut tx,
            recurring_id,
            RecurringStatus::Cancelled,
            Some(reason),
            None,
            now,
        )
        .await?;
        changes::finish_change(&mut tx, change_id, true, message.as_deref(), now).await?;
        tx.commit().await?;
        Ok(ChangeOutcome::Done)
    }

    /// Finishes a Pause whose charge cancels Vipps confirmed, or notes what it waits for.
    pub(super) async fn finish_pause(&self, change_id: &str, progress: CancelProgress) -> ServiceResult<ChangeOutcome> {
        let message = progress.message();
        if !progress.settled() {
            return self.still_pending(change_id, message.unwrap_or_default()).await;
        }
        let mut conn = self.store.pool().acquire().await?;
        changes::finish_change(&mut conn, change_id, true, message.as_deref(), self.now()).await?;
        Ok(ChangeOutcome::Done)
    }

    pub(super) async fn still_pending(&self, change_id: &str, message: String) -> ServiceResult<ChangeOutcome> {
        let mut conn = self.store.pool().acquire().await?;
        changes::note_change(&mut conn, change_id, &message, self.now()).await?;
        Ok(ChangeOutcome::Pending { change_id: change_id.to_owned(), message })
    }

    /// Takes up one pending change again with the same keys: the agreement update of an amount change, the
    /// charge cancels of a Pause or a Cancel.
    pub(super) async fn settle_change(&self, change: &ChangeRow) -> ServiceResult<ChangeOutcome> {
        let (recurring, mandate) = {
            let mut conn = self.store.pool().acquire().await?;
            let recurring_id = change.recurring_payment_id.as_deref().unwrap_or_default();
            let recurring = recurring_payments::recurring(&mut conn, recurring_id)
                .await?
                .ok_or(ServiceError::NotFound("recurring payment"))?;
            let mandate =
                mandates::mandate(&mut conn, &recurring.mandate_id).await?.ok_or(ServiceError::NotFound("mandate"))?;
            (recurring, mandate)
        };
        let actor = Actor { label: change.actor.clone(), source: "recurring.pending_changes".into(), at: self.now() };
        match change.kind.as_str() {
            "amount" => {
                let amount = change.details["to_ore"].as_i64().unwrap_or(recurring.amount_ore);
                self.send_amount(&change.id, &mandate, &recurring.id, amount, &actor, change.details.clone()).await
            }
            "pause" => {
                let until = change.details["until"].as_str().and_then(|d| d.parse::<NaiveDate>().ok());
                match until {
                    Some(until) if recurring.status != RecurringStatus::Active => {
                        let reason = format!("Paused until {until}");
                        let progress =
                            self.cancel_installments(&mandate, Some(&recurring.id), &reason, Some(until)).await?;
                        self.finish_pause(&change.id, progress).await
                    }
                    _ => {
                        let mut conn = self.store.pool().acquire().await?;
                        let message = "Resumed before Vipps confirmed every charge cancel; what is still open is \
                                       collected as usual";
                        changes::finish_change(&mut conn, &change.id, false, Some(message), self.now()).await?;
                        Ok(ChangeOutcome::Refused(message.into()))
                    }
                }
            }
            "cancel" => {
                let reason = recurring
                    .status_reason
                    .clone()
                    .or_else(|| change.details["reason"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "Cancelled by the organisation".into());
                let progress = self.cancel_installments(&mandate, Some(&recurring.id), &reason, None).await?;
                self.finish_cancel(&change.id, &recurring.id, &reason, progress).await
            }
            _ => Ok(ChangeOutcome::Done),
        }
    }

    /// The `recurring.pending_changes` beat: every change still waiting for Vipps, untouched for a minute, is
    /// taken up again with the same keys and finished once Vipps confirms it.
    pub async fn retry_pending_changes(&self, limit: i64) -> ServiceResult<BeatCounts> {
        let pending = {
            let mut conn = self.store.pool().acquire().await?;
            changes::pending_changes(&mut conn, self.now() - chrono::Duration::seconds(RETRY_AFTER_SECONDS), limit)
                .await?
        };
        let mut counts = BeatCounts { looked_at: pending.len(), changed: 0 };
        for change in &pending {
            match self.settle_change(change).await {
                Ok(ChangeOutcome::Pending { .. }) => {}
                Ok(ChangeOutcome::Done | ChangeOutcome::Refused(_)) => counts.changed += 1,
                Err(error) => {
                    tracing::warn!(change = %change.id, %error, "pending change not taken up");
                    let mut conn = self.store.pool().acquire().await?;
                    changes::note_change(&mut conn, &change.id, &format!("payhub: {error}"), self.now()).await?;
                }
            }
        }
        Ok(counts)
    }
}
