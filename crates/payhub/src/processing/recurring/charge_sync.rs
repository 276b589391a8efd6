//! Charge outcomes: each charge's state at Vipps (read by its webhook's job, the poll, or after a cancel) moves
//! its installment: Collected with a Payment, Failed with Vipps' reason, Cancelled. The poll reads many charges at
//! once and records a page of answers per transaction; a charge Vipps accepted and then dropped goes back to
//! the sending side (`charges`) to be sent again once.

use serde_json::json;
use vipps_client::recurring::{Charge, ChargeStatus, FailureReason};
use vipps_client::ErrorKind;

use crate::domain::recurring::MandateStatus;
use crate::domain::status::InstallmentStatus;
use crate::domain::vipps_state::ChargeState;
use crate::error::{ServiceError, ServiceResult};
use crate::processing::one_time::{describe, is_transient};
use crate::processing::trail::{self, Channel, Means, Outcome, Said};
use crate::processing::{outbox, Payments};
use crate::store::charges::{self, ChargeRow};
use crate::store::installments;
use crate::store::mandates;
use crate::store::payments;

fn failure_text(reason: Option<&FailureReason>, description: Option<&str>) -> String {
    let reason = match reason {
        Some(FailureReason::UserActionRequired) => "user action required (funds, or a blocked or expired card)",
        Some(FailureReason::ChargeAmountTooHigh) => "the amount is above the payer's maximum",
        Some(FailureReason::NonTechnicalError) => "non-technical error (e.g. the payer's profile is gone)",
        Some(FailureReason::TechnicalError) => "technical error at Vipps",
        Some(FailureReason::Unknown(other)) => other.as_str(),
        None => "no reason given",
    };
    match description {
        Some(d) if !d.is_empty() => format!("Charge failed at Vipps: {reason} ({d})"),
        _ => format!("Charge failed at Vipps: {reason}"),
    }
}

/// What a Vipps charge status means for the installment. Exhaustive: a status Vipps adds is handled here.
fn charge_outcome(charge: &Charge) -> Option<(InstallmentStatus, Option<String>)> {
    match &charge.status {
        ChargeStatus::Pending | ChargeStatus::Due | ChargeStatus::Processing | ChargeStatus::Reserved => {
            Some((InstallmentStatus::Pending, None))
        }
        ChargeStatus::Charged
        | ChargeStatus::PartiallyCaptured
        | ChargeStatus::PartiallyRefunded
        | ChargeStatus::Refunded => Some((InstallmentStatus::Collected, None)),
        ChargeStatus::Failed => Some((
            InstallmentStatus::Failed,
            Some(failure_text(charge.failure_reason.as_ref(), charge.failure_description.as_deref())),
        )),
        ChargeStatus::Cancelled => Some((InstallmentStatus::Cancelled, Some("Charge cancelled at Vipps".into()))),
        ChargeStatus::Unknown(_) => None,
    }
}

/// How many of the poll's charges are read before their answers are recorded in one transaction.
const RECORD_PAGE: usize = 250;

type ChargeLock = tokio::sync::OwnedMutexGuard<()>;

/// Whether Vipps' answer differs from what the row holds (its state or what was captured).
fn changed(row: &ChargeRow, charge: &Charge) -> bool {
    ChargeState::from(&charge.status) != row.state || charge.summary.captured != row.captured_ore
}

impl Payments {
    /// Brings an installment's charge up to date with Vipps: reads it (creating it again, same order id, if
    /// Vipps never confirmed it and does not know it) and records what changed: Collected with a Payment,
    /// Failed with Vipps' reason, Cancelled.
    ///
    /// A charge Vipps cancelled itself (as it does when the agreement stops or expires) also brings the
    /// agreement up to date, so a lost agreement webhook is made up for before the next charge falls due.
    pub async fn sync_charge(&self, charge_id: &str, cause: Option<&str>) -> ServiceResult<()> {
        self.sync_charge_after(charge_id, cause, None).await
    }

    /// Vipps' `recurring.charge-creation-failed.v1`: a charge it accepted in a batch answer was never created.
    /// The charge is read like [`Self::sync_charge`] (the event is only a signal: a charge that exists is
    /// recorded as it is); one Vipps does not have is sent again once with the same order id, or its
    /// installment fails with Vipps' `reason`.
    pub async fn charge_creation_failed(
        &self,
        charge_id: &str,
        reason: &str,
        cause: Option<&str>,
    ) -> ServiceResult<()> {
        self.sync_charge_after(charge_id, cause, Some(reason)).await
    }

    async fn sync_charge_after(
        &self,
        charge_id: &str,
        cause: Option<&str>,
        dropped: Option<&str>,
    ) -> ServiceResult<()> {
        let Some(row) = self.read_charge_after(charge_id, cause, true, dropped).await? else { return Ok(()) };
        let mandate_active = {
            let mut conn = self.store.pool().acquire().await?;
            mandates::mandate(&mut conn, &row.mandate_id).await?.is_some_and(|m| m.status == MandateStatus::Active)
        };
        if mandate_active {
            Box::pin(self.sync_agreement(&row.mandate_id, cause)).await?;
        }
        Ok(())
    }

    /// Reads a charge and records what changed; a cancellation only when `with_cancelled`. Returns the charge's
    /// row when Vipps newly reported it cancelled.
    pub(super) async fn read_charge(
        &self,
        charge_id: &str,
        cause: Option<&str>,
        with_cancelled: bool,
    ) -> ServiceResult<Option<ChargeRow>> {
        self.read_charge_after(charge_id, cause, with_cancelled, None).await
    }

    /// [`Self::read_charge`], knowing Vipps' reason when it said it dropped the charge (`dropped`).
    async fn read_charge_after(
        &self,
        charge_id: &str,
        cause: Option<&str>,
        with_cancelled: bool,
        dropped: Option<&str>,
    ) -> ServiceResult<Option<ChargeRow>> {
        let row = {
            let mut conn = self.store.pool().acquire().await?;
            charges::charge(&mut conn, charge_id).await?.ok_or(ServiceError::NotFound("charge"))?
        };
        if row.state == ChargeState::Refused {
            return Ok(None);
        }
        let lock = self.locks.get(charge_id);
        let _guard = lock.lock().await;
        let client = self.clients.get(&self.accounts, &row.account_id).await?;
        let charge = match client.recurring().get_charge(&row.agreement_id, charge_id).await {
            Ok(charge) => charge,
            Err(error) if error.kind() == ErrorKind::NotFound && row.state == ChargeState::Creating => {
                // Never reached Vipps: create it now, one by one, with the same order id.
                drop(_guard);
                self.send_charges(&row.account_id, std::slice::from_ref(&row)).await?;
                return Ok(None);
            }
            Err(error) if error.kind() == ErrorKind::NotFound && row.state == ChargeState::Pending => {
                // Vipps accepted it (a batch answer) and then dropped it: the batch endpoint is asynchronous.
                self.send_dropped_charge(&client, charge_id, dropped).await?;
                return Ok(None);
            }
            Err(error) if is_transient(error.kind()) => {
                tracing::info!(%charge_id, error = %describe(&error), "Vipps did not answer; next beat retries");
                return Ok(None);
            }
            Err(error) => return Err(ServiceError::Internal(anyhow::anyhow!(describe(&error)))),
        };
        let cancelled = charge.status == ChargeStatus::Cancelled;
        if cancelled && !with_cancelled {
            return Ok(None);
        }
        self.apply_charge(&row, &charge, cause).await?;
        Ok((cancelled && row.state != ChargeState::Cancelled).then_some(row))
    }

    /// Records what Vipps says of a charge in a transaction of its own (see [`Payments::record_charge`]).
    pub(super) async fn apply_charge(
        &self,
        row: &ChargeRow,
        charge: &Charge,
        cause: Option<&str>,
    ) -> ServiceResult<()> {
        if !changed(row, charge) {
            return Ok(());
        }
        let mut tx = self.store.begin_write().await?;
        self.record_charge(&mut tx, row, charge, cause).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records what Vipps says of a charge inside the caller's transaction: the Message and Inbound Report, the
    /// Payment (once per psp reference) and the installment's forward-only move with its event, and the charge
    /// row. Nothing when the charge already holds this answer (another sync recorded it meanwhile).
    async fn record_charge(
        &self,
        tx: &mut sqlx::AnyConnection,
        row: &ChargeRow,
        charge: &Charge,
        cause: Option<&str>,
    ) -> ServiceResult<()> {
        let state = ChargeState::from(&charge.status);
        let captured = charge.summary.captured;
        let now = self.now();
        // Another sync (a webhook job, the poll, another instance) may have recorded this very answer meanwhile.
        let current = charges::lock_charge(&mut *tx, self.store.backend(), &row.charge_id).await?;
        if current.is_some_and(|c| c.state == state && c.captured_ore == captured) {
            return Ok(());
        }
        let installment = installments::installment(&mut *tx, &row.installment_id)
            .await?
            .ok_or(ServiceError::NotFound("installment"))?;
        let listeners = outbox::Listeners::of_intent(&mut *tx, installment.intent_id.as_deref()).await?;
        let body = json!({
            "id": charge.id, "agreementId": charge.agreement_id, "status": state, "amount": charge.amount,
            "due": charge.due, "transactionId": charge.transaction_id, "failureReason": charge.failure_reason.as_ref().map(ToString::to_string),
            "failureDescription": charge.failure_description, "summary": {"captured": charge.summary.captured, "refunded": charge.summary.refunded, "cancelled": charge.summary.cancelled},
        })
        .to_string();
        let sub_type = format!("charge.{}", state.as_str().to_lowercase());
        let mut status = Outcome::Matched;
        let mut detail = cause.map(|c| format!("prompted by message {c}"));
        let collected = captured > 0 && matches!(charge_outcome(charge), Some((InstallmentStatus::Collected, _)));
        // Recorded before the change, so the Payment can name it; its outcome is corrected below if nothing moved.
        let trail::Recorded { report_id, .. } = trail::record(
            &mut *tx,
            Said::new(Channel::VippsPoll, Some(&charge.id), &body),
            Means::vipps(&sub_type, status)
                .amount(if collected { captured } else { charge.amount })
                .reference(&charge.id)
                .installment(Some(&row.installment_id))
                .intent(installment.intent_id.as_deref())
                .detail(detail.as_deref()),
            now,
        )
        .await?;
        match charge_outcome(charge) {
            Some((InstallmentStatus::Collected, _)) if captured > 0 => {
                let psp = charge
                    .transaction_id
                    .clone()
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| format!("{}-capture", charge.id));
                let inserted = payments::insert_payment(
                    &mut *tx,
                    &row.installment_id,
                    captured,
                    &psp,
                    "capture",
                    Some(&report_id),
                    now,
                )
                .await?;
                if inserted.is_none() {
                    // A later answer about a charge already booked (refunded since, say): this report books
                    // nothing, and must not read as a second capture.
                    status = Outcome::Ignored;
                    detail = Some(format!("capture {psp} already recorded; {sub_type} books nothing new"));
                }
                let moved = outbox::move_installment(
                    &mut *tx,
                    &listeners,
                    &row.installment_id,
                    InstallmentStatus::Collected,
                    None,
                    Some(installment.amount_ore - captured),
                    now,
                )
                .await?;
                if !moved && !installment.status.is_collected() {
                    status = Outcome::Ignored;
                    detail = Some(format!("installment is {}; {sub_type} does not move it", installment.status));
                }
            }
            Some((next, reason)) => {
                let moved = outbox::move_installment(
                    &mut *tx,
                    &listeners,
                    &row.installment_id,
                    next,
                    reason.as_deref(),
                    None,
                    now,
                )
                .await?;
                if !moved && next != installment.status && next != InstallmentStatus::Pending {
                    status = Outcome::Ignored;
                    detail = Some(format!("installment is {}; {sub_type} does not move it back", installment.status));
                }
            }
            None => {
                tracing::warn!(charge = %charge.id, %state, "Vipps reported a charge status payhub does not know");
                status = Outcome::Ignored;
            }
        }
        if status != Outcome::Matched {
            trail::set_outcome(&mut *tx, &report_id, status, detail.as_deref()).await?;
        }
        charges::update_charge(
            &mut *tx,
            &row.charge_id,
            &state,
            charge.failure_reason.as_ref().map(ToString::to_string).as_deref(),
            charge.transaction_id.as_deref().filter(|t| !t.is_empty()),
            Some([charge.summary.captured, charge.summary.refunded, charge.summary.cancelled]),
            None,
            now,
        )
        .await?;
        Ok(())
    }

    /// The poll's charges, brought up to date together: each is read at Vipps (several at a time, each under its
    /// charge's lock until its answer is recorded), and the answers that changed something are recorded in one
    /// transaction per [`RECORD_PAGE`] charges, each exactly as [`Payments::apply_charge`] records it alone. A
    /// page that fails is recorded again one charge per transaction; a charge Vipps cancelled, never received or
    /// did not answer for takes the one-by-one path ([`Payments::sync_charge`]).
    pub(super) async fn sync_charges(&self, rows: &[ChargeRow]) -> usize {
        use futures::stream::{self, StreamExt};
        let mut recorded = 0;
        for page in rows.chunks(RECORD_PAGE) {
            let reads: Vec<_> = page.iter().map(|row| self.fetch_locked(row)).collect();
            let read: Vec<_> = stream::iter(reads).buffer_unordered(16).collect().await;
            let mut answers = Vec::new();
            for (row, fetched, lock) in read {
                match fetched {
                    Ok(Some(charge)) if charge.status != ChargeStatus::Cancelled => {
                        if changed(row, &charge) {
                            answers.push((row, charge, lock));
                        }
                    }
                    Ok(None) => {}
                    Ok(Some(_)) | Err(_) => {
                        drop(lock);
                        if let Err(error) = self.sync_charge(&row.charge_id, None).await {
                            tracing::warn!(charge = %row.charge_id, %error, "charge sync failed");
                        }
                    }
                }
            }
            answers.sort_by(|a, b| a.0.charge_id.cmp(&b.0.charge_id));
            match self.record_charges(&answers).await {
                Ok(()) => recorded += answers.len(),
                Err(error) => {
                    tracing::warn!(%error, charges = answers.len(), "recording a page of charges failed; one by one");
                    for (row, charge, _) in &answers {
                        match self.apply_charge(row, charge, None).await {
                            Ok(()) => recorded += 1,
                            Err(error) => tracing::warn!(charge = %row.charge_id, %error, "charge sync failed"),
                        }
                    }
                }
            }
        }
        recorded
    }

    /// Takes the charge's lock (held until its answer is recorded), then reads it at Vipps.
    async fn fetch_locked<'r>(&self, row: &'r ChargeRow) -> (&'r ChargeRow, ServiceResult<Option<Charge>>, ChargeLock) {
        let lock = self.locks.get(&row.charge_id).lock_owned().await;
        let fetched = self.fetch_charge(row).await;
        (row, fetched, lock)
    }

    async fn record_charges(&self, answers: &[(&ChargeRow, Charge, ChargeLock)]) -> ServiceResult<()> {
        if answers.is_empty() {
            return Ok(());
        }
        let mut tx = self.store.begin_write().await?;
        for (row, charge, _) in answers {
            self.record_charge(&mut tx, row, charge, None).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Vipps' charge for the poll: `None` when there is nothing to read (refused here, or Vipps did not answer
    /// this time: the next poll asks again); an error where the one-by-one path decides (never received).
    async fn fetch_charge(&self, row: &ChargeRow) -> ServiceResult<Option<Charge>> {
        if row.state == ChargeState::Refused {
            return Ok(None);
        }
        let client = self.clients.get(&self.accounts, &row.account_id).await?;
        match client.recurring().get_charge(&row.agreement_id, &row.charge_id).await {
            Ok(charge) => Ok(Some(charge)),
            Err(error) if is_transient(error.kind()) => {
                tracing::info!(charge_id = %row.charge_id, error = %describe(&error), "Vipps did not answer; next beat retries");
                Ok(None)
            }
            Err(error) => Err(ServiceError::Internal(anyhow::anyhow!(describe(&error)))),
        }
    }
}
