//! Mandates and their Vipps agreements: drafting the agreement (mandate-derived key, safe to repeat), bringing
//! the mandate up to date with what Vipps says of it, and stopping it on the organisation's request.

use chrono::{DateTime, Utc};
use serde_json::json;
use vipps_client::recurring::{
    Agreement, AgreementStatus, DraftAgreement, InitialCharge, IntervalUnit, PricingRequest, TimePeriod,
    TransactionType,
};
use vipps_client::{Currency, ErrorKind};

use super::charges::charge_description;
use super::{key, CancelOutcome};
use crate::auth::Actor;
use crate::domain::recurring::{MandateStatus, RecurringStatus};
use crate::domain::status::{InstallmentStatus, IntentStatus};
use crate::domain::vipps_state::{AgreementState, ChargeKind, ChargeState};
use crate::error::{ServiceError, ServiceResult};
use crate::processing::one_time::{describe, is_transient};
use crate::processing::trail::{self, Channel, Means, Outcome, Said};
use crate::processing::{outbox, Payments};
use crate::store::changes;
use crate::store::charges::{self, NewCharge};
use crate::store::installments;
use crate::store::intents;
use crate::store::mandates::{self, MandateRow};
use crate::store::recurring_payments;

/// What a Vipps agreement status means for the mandate. Exhaustive: a status Vipps adds is handled here.
fn mandate_outcome(status: &AgreementStatus) -> Option<MandateStatus> {
    match status {
        AgreementStatus::Pending => None,
        AgreementStatus::Active => Some(MandateStatus::Active),
        AgreementStatus::Stopped => Some(MandateStatus::Stopped),
        AgreementStatus::Expired => Some(MandateStatus::Expired),
        AgreementStatus::Unknown(_) => None,
    }
}

impl Payments {
    /// Drafts the mandate's agreement at Vipps with the mandate-derived key (safe to repeat) and records the
    /// answer. A definite refusal fails the intent; no answer leaves the draft for the polling beat.
    pub(crate) async fn draft_agreement(&self, mandate_id: &str) -> Result<MandateRow, String> {
        let internal = |e: &dyn std::fmt::Display| format!("payhub could not reach its records: {e}");
        // One draft call per mandate at a time in this process; what another path (or instance) recorded
        // meanwhile is read again under the lock, and each write below re-checks the locked row.
        let lock = self.locks.get(mandate_id);
        let _guard = lock.lock().await;
        let (mandate, initial) = {
            let mut conn = self.store.pool().acquire().await.map_err(|e| internal(&e))?;
            let mandate =
                mandates::mandate(&mut conn, mandate_id).await.map_err(|e| internal(&e))?.ok_or("unknown mandate")?;
            let initial = match &mandate.initial_installment_id {
                Some(id) => installments::installment(&mut conn, id).await.map_err(|e| internal(&e))?,
                None => None,
            };
            (mandate, initial)
        };
        if mandate.vipps_status != AgreementState::Creating {
            return Ok(mandate);
        }
        let client = self.clients.get(&self.accounts, &mandate.account_id).await.map_err(|e| internal(&e))?;
        let unit = match IntervalUnit::from(mandate.interval_unit.as_str()) {
            IntervalUnit::Unknown(_) => IntervalUnit::Month,
            unit => unit,
        };
        let mut draft = DraftAgreement::new(
            PricingRequest::legacy(Currency::Nok, mandate.price_ore),
            Some(TimePeriod::new(unit, u32::try_from(mandate.interval_count).unwrap_or(1))),
            mandate.product_name.clone(),
            mandate.merchant_agreement_url.clone(),
            mandate.redirect_url.clone(),
        );
        draft.phone_number = mandate.customer_phone.clone();
        if let Some(initial) = &initial {
            let description =
                initial.bank_statement_description.clone().unwrap_or_else(|| mandate.product_name.clone());
            let mut charge = InitialCharge::new(
                initial.amount_ore,
                charge_description(&description),
                TransactionType::DirectCapture,
            );
            charge.order_id = Some(initial.payment_reference.clone());
            draft.initial_charge = Some(charge);
        }
        let draft_key = key(&mandate.idempotency_key).map_err(|e| e.to_string())?;
        let now = self.now();
        let intent_id = mandate.intent_id.clone().unwrap_or_default();
        match client.recurring().create_agreement(&draft, &draft_key).await {
            Ok(created) => {
                let result: ServiceResult<MandateRow> = async {
                    let mut tx = self.store.begin_write().await?;
                    // Another path recorded an answer meanwhile (the same agreement, by the same key): keep it.
                    let current = mandates::lock_mandate(&mut tx, self.store.backend(), &mandate.id).await?;
                    if let Some(current) = current.filter(|m| m.vipps_status != AgreementState::Creating) {
                        return Ok(current);
                    }
                    let listeners = outbox::Listeners::of_intent(&mut tx, mandate.intent_id.as_deref()).await?;
                    let body = json!({"agreementId": created.agreement_id, "vippsConfirmationUrl": created.vipps_confirmation_url, "chargeId": created.charge_id}).to_string();
                    trail::record(
                        &mut tx,
                        Said::new(Channel::VippsCall, Some(&created.agreement_id), &body),
                        Means::vipps("agreement.created", Outcome::Matched)
                            .amount(mandate.price_ore)
                            .reference(&created.agreement_id)
                            .installment(mandate.initial_installment_id.as_deref())
                            .intent(mandate.intent_id.as_deref()),
                        now,
                    )
                    .await?;
                    mandates::set_mandate_drafted(&mut tx, &mandate.id, &created.agreement_id, created.vipps_confirmation_url.as_deref(), now).await?;
                    if let Some(initial) = &initial {
                        charges::insert_charges(
                            &mut tx,
                            &[NewCharge {
                                charge_id: created.charge_id.clone().unwrap_or_else(|| initial.payment_reference.clone()),
                                installment_id: initial.id.clone(),
                                mandate_id: mandate.id.clone(),
                                agreement_id: created.agreement_id.clone(),
                                account_id: mandate.account_id.clone(),
                                kind: ChargeKind::Initial,
                                amount_ore: initial.amount_ore,
                                due_date: initial.due_date,
                                retry_days: 0,
                                description: charge_description(initial.bank_statement_description.as_deref().unwrap_or(&mandate.product_name)),
                                state: ChargeState::Pending,
                            }],
                            now,
                        )
                        .await?;
                        outbox::move_installment(&mut tx, &listeners, &initial.id, InstallmentStatus::Pending, None, None, now).await?;
                    }
                    intents::set_intent_status(&mut tx, &intent_id, IntentStatus::Matched, now).await?;
                    outbox::intent(&mut tx, &listeners, "paymentIntent.processed", &intent_id, now).await?;
                    tx.commit().await?;
                    let mut conn = self.store.pool().acquire().await?;
                    mandates::mandate(&mut conn, &mandate.id).await?.ok_or(ServiceError::NotFound("mandate"))
                }
                .await;
                result.map_err(|e| internal(&e))
            }
            // A generic conflict says neither "created" nor "refused" (another request with this key may still
            // be running at Vipps): the draft stays, and the poll asks again with the same key after a minute,
            // which gives back what Vipps made of it.
            Err(error) if is_transient(error.kind()) || error.kind() == ErrorKind::Conflict => {
                let message = describe(&error);
                tracing::warn!(mandate = %mandate.id, error = %message, "Vipps did not answer the agreement draft; the poll retries with the same key");
                let mut conn = self.store.pool().acquire().await.map_err(|e| internal(&e))?;
                mandates::set_mandate_error(&mut conn, &mandate.id, &message, false, now)
                    .await
                    .map_err(|e| internal(&e))?;
                Err(format!("{message}. payhub keeps trying; read GET /v2/PaymentIntent/{intent_id} for the outcome."))
            }
            Err(error) => {
                let message = describe(&error);
                tracing::warn!(mandate = %mandate.id, error = %message, "Vipps refused the agreement");
                let result: ServiceResult<Option<MandateRow>> = async {
                    let mut tx = self.store.begin_write().await?;
                    // A refusal only ends a draft nothing else has answered: an agreement recorded meanwhile stands.
                    let current = mandates::lock_mandate(&mut tx, self.store.backend(), &mandate.id).await?;
                    if let Some(current) = current.filter(|m| m.vipps_status != AgreementState::Creating) {
                        return Ok((current.vipps_status != AgreementState::Refused).then_some(current));
                    }
                    let listeners = outbox::Listeners::of_intent(&mut tx, mandate.intent_id.as_deref()).await?;
                    mandates::set_mandate_error(&mut tx, &mandate.id, &message, true, now).await?;
                    mandates::move_mandate(&mut tx, &mandate.id, MandateStatus::Expired, &AgreementState::Refused, now)
                        .await?;
                    for recurring in recurring_payments::recurring_of_mandate(&mut tx, &mandate.id).await? {
                        recurring_payments::set_recurring_status(
                            &mut tx,
                            &recurring.id,
                            RecurringStatus::Ended,
                            Some(&message),
                            None,
                            now,
                        )
                        .await?;
                    }
                    if let Some(initial) = &initial {
                        outbox::move_installment(
                            &mut tx,
                            &listeners,
                            &initial.id,
                            InstallmentStatus::Failed,
                            Some(&message),
                            None,
                            now,
                        )
                        .await?;
                    }
                    intents::set_intent_status(&mut tx, &intent_id, IntentStatus::Failed, now).await?;
                    outbox::intent(&mut tx, &listeners, "paymentIntent.failed", &intent_id, now).await?;
                    tx.commit().await?;
                    Ok(None)
                }
                .await;
                match result.map_err(|e| internal(&e))? {
                    Some(recorded) => Ok(recorded),
                    None => Err(message),
                }
            }
        }
    }

    /// Brings a mandate up to date with its Vipps agreement: re-sends an unconfirmed draft, reads the
    /// agreement, and records a change of status (Active, or ended at Vipps: the recurring payment ends and
    /// its open installments are cancelled). `cause` names the message that prompted it.
    pub async fn sync_agreement(&self, mandate_ref: &str, cause: Option<&str>) -> ServiceResult<()> {
        let mandate = {
            let mut conn = self.store.pool().acquire().await?;
            mandates::mandate(&mut conn, mandate_ref).await?.ok_or(ServiceError::NotFound("mandate"))?
        };
        if mandate.vipps_status == AgreementState::Creating {
            if let Err(message) = self.draft_agreement(&mandate.id).await {
                tracing::info!(mandate = %mandate.id, %message, "agreement draft still not confirmed");
            }
            return Ok(());
        }
        let Some(agreement_id) = mandate.agreement_id.clone() else { return Ok(()) };
        let lock = self.locks.get(&agreement_id);
        let _guard = lock.lock().await;
        let client = self.clients.get(&self.accounts, &mandate.account_id).await?;
        let agreement = match client.recurring().get_agreement(&agreement_id).await {
            Ok(agreement) => agreement,
            // A generic conflict says neither "created" nor "refused" (another request with this key may still
            // be running at Vipps): the draft stays, and the poll asks again with the same key after a minute,
            // which gives back what Vipps made of it.
            Err(error) if is_transient(error.kind()) || error.kind() == ErrorKind::Conflict => {
                tracing::info!(%agreement_id, error = %describe(&error), "Vipps did not answer; next beat retries");
                return Ok(());
            }
            Err(error) => return Err(ServiceError::Internal(anyhow::anyhow!(describe(&error)))),
        };
        {
            let mut conn = self.store.pool().acquire().await?;
            mandates::mark_checked(&mut conn, &mandate.id, self.now()).await?;
        }
        if AgreementState::from(&agreement.status) != mandate.vipps_status {
            // What Vipps did with the charges before the agreement changed (an initial charge is charged or fails
            // at acceptance) is recorded first: their own outcome, not the agreement's, decides their installments.
            let open = {
                let mut conn = self.store.pool().acquire().await?;
                charges::open_charges_of_mandate(&mut conn, &mandate.id).await?
            };
            for charge in open.iter().filter(|c| c.state != ChargeState::Creating) {
                if let Err(error) = self.read_charge(&charge.charge_id, cause, false).await {
                    tracing::warn!(charge = %charge.charge_id, %error, "charge sync failed");
                }
            }
        }
        let changed = self.apply_agreement(&mandate, &agreement, cause).await?;
        // What follows may sync this agreement again (a charge Vipps refuses): it must not wait for this lock.
        drop(_guard);
        if changed {
            // The initial charge (processed at acceptance) and any charges Vipps cancelled on a stop.
            let open = {
                let mut conn = self.store.pool().acquire().await?;
                charges::open_charges_of_mandate(&mut conn, &mandate.id).await?
            };
            for charge in open {
                if let Err(error) = self.sync_charge(&charge.charge_id, None).await {
                    tracing::warn!(charge = %charge.charge_id, %error, "charge sync failed");
                }
            }
            if agreement.status == AgreementStatus::Active {
                self.generate_for(Some(&mandate.id)).await?;
            }
        }
        Ok(())
    }

    async fn apply_agreement(
        &self,
        mandate: &MandateRow,
        agreement: &Agreement,
        cause: Option<&str>,
    ) -> ServiceResult<bool> {
        let vipps_status = AgreementState::from(&agreement.status);
        if vipps_status == mandate.vipps_status {
            return Ok(false);
        }
        let now = self.now();
        let mut tx = self.store.begin_write().await?;
        // Another sync may have recorded this very status meanwhile.
        let current = mandates::lock_mandate(&mut tx, self.store.backend(), &mandate.id).await?;
        if current.is_some_and(|m| m.vipps_status == vipps_status) {
            return Ok(false);
        }
        let listeners = outbox::Listeners::of_intent(&mut tx, mandate.intent_id.as_deref()).await?;
        let body = json!({"id": agreement.id, "status": vipps_status, "start": agreement.start, "stop": agreement.stop, "pricing": {"amount": agreement.pricing.amount}}).to_string();
        let mut status = Outcome::Matched;
        let mut detail = cause.map(|c| format!("prompted by message {c}"));
        match mandate_outcome(&agreement.status) {
            Some(next) => {
                let moved = mandates::move_mandate(&mut tx, &mandate.id, next, &vipps_status, now).await?;
                if moved {
                    outbox::mandate(&mut tx, &listeners, &mandate.id, now).await?;
                    if next == MandateStatus::Active {
                        if let Some(recurring) = self.carry_over(&mut tx, &mandate.id, now).await? {
                            detail =
                                Some(format!("the recurring payment {recurring} collects under this agreement now"));
                        }
                    }
                    if matches!(next, MandateStatus::Stopped | MandateStatus::Expired) {
                        let reason = format!("Agreement {} at Vipps", vipps_status.as_str().to_lowercase());
                        self.end_under_mandate(&mut tx, &listeners, mandate, RecurringStatus::Ended, &reason, now)
                            .await?;
                    }
                } else {
                    status = Outcome::Ignored;
                    detail = Some(format!("mandate is {}; agreement {vipps_status} does not move it", mandate.status));
                }
            }
            None => {
                mandates::move_mandate(&mut tx, &mandate.id, MandateStatus::Pending, &vipps_status, now).await?;
                if let AgreementStatus::Unknown(name) = &agreement.status {
                    tracing::warn!(agreement = %agreement.id, status = %name, "Vipps reported an agreement status payhub does not know");
                    status = Outcome::Ignored;
                }
            }
        }
        let sub_type = format!("agreement.{}", vipps_status.as_str().to_lowercase());
        trail::record(
            &mut tx,
            Said::new(Channel::VippsPoll, Some(&agreement.id), &body),
            Means::vipps(&sub_type, status)
                .amount(agreement.pricing.amount)
                .reference(&agreement.id)
                .intent(mandate.intent_id.as_deref())
                .detail(detail.as_deref()),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Ends (or cancels) every open recurring payment of a mandate and cancels its open installments.
    async fn end_under_mandate(
        &self,
        tx: &mut sqlx::AnyConnection,
        listeners: &outbox::Listeners,
        mandate: &MandateRow,
        status: RecurringStatus,
        reason: &str,
        now: DateTime<Utc>,
    ) -> ServiceResult<()> {
        for recurring in recurring_payments::recurring_of_mandate(&mut *tx, &mandate.id).await? {
            recurring_payments::set_recurring_status(&mut *tx, &recurring.id, status, Some(reason), None, now).await?;
        }
        for installment in installments::open_installments(&mut *tx, &mandate.id, None).await? {
            outbox::move_installment(
                &mut *tx,
                listeners,
                &installment,
                InstallmentStatus::Cancelled,
                Some(reason),
                None,
                now,
            )
            .await?;
        }
        Ok(())
    }

    /// Cancel Vipps Agreement: stops the agreement at Vipps (key: a new change record, so a second request is
    /// asked of Vipps again and gets Vipps' own answer); on success the mandate is Cancelled, its recurring
    /// payments cancelled, its open installments and pending charges cancelled. `mandate_ref` is a mandate id
    /// (`mdt_…`) or an agreement id (`agr_…`).
    pub async fn cancel_agreement(&self, mandate_ref: &str, actor: &Actor) -> ServiceResult<CancelOutcome> {
        let mandate = {
            let mut conn = self.store.pool().acquire().await?;
            mandates::mandate(&mut conn, mandate_ref).await?.ok_or(ServiceError::NotFound("mandate"))?
        };
        let Some(agreement_id) = mandate.agreement_id.clone() else {
            return Ok(CancelOutcome {
                is_success: false,
                message: "The agreement was never created at Vipps; there is nothing to stop".into(),
            });
        };
        let change_id = {
            let mut conn = self.store.pool().acquire().await?;
            changes::insert_change(
                &mut conn,
                Some(&mandate.id),
                None,
                "cancel_agreement",
                &json!({"agreement_id": agreement_id}),
                &actor.label,
                self.now(),
            )
            .await?
        };
        let client = self.clients.get(&self.accounts, &mandate.account_id).await?;
        let answer = client.recurring().stop_agreement(&agreement_id, &key(&change_id)?).await;
        let now = self.now();
        let mut tx = self.store.begin_write().await?;
        let outcome = match answer {
            Ok(_) => {
                let listeners = outbox::Listeners::of_intent(&mut tx, mandate.intent_id.as_deref()).await?;
                let message = format!("Agreement {agreement_id} stopped at Vipps");
                if mandates::move_mandate(&mut tx, &mandate.id, MandateStatus::Cancelled, &AgreementState::Stopped, now)
                    .await?
                {
                    outbox::mandate(&mut tx, &listeners, &mandate.id, now).await?;
                }
                // One that is Cancelling keeps its own reason; its cancel finishes it.
                for recurring in recurring_payments::recurring_of_mandate(&mut tx, &mandate.id)
                    .await?
                    .into_iter()
                    .filter(|r| r.status.is_open())
                {
                    recurring_payments::set_recurring_status(
                        &mut tx,
                        &recurring.id,
                        RecurringStatus::Cancelled,
                        Some("Vipps agreement cancelled"),
                        None,
                        now,
                    )
                    .await?;
                }
                changes::finish_change(&mut tx, &change_id, true, Some(&message), now).await?;
                CancelOutcome { is_success: true, message }
            }
            Err(error) => {
                let message = match error.problem() {
                    Some(problem) => {
                        problem.detail.clone().or_else(|| problem.title.clone()).unwrap_or_else(|| describe(&error))
                    }
                    None => describe(&error),
                };
                changes::finish_change(&mut tx, &change_id, false, Some(&message), now).await?;
                CancelOutcome { is_success: false, message }
            }
        };
        self.audit(
            &mut tx,
            actor,
            "mandate.cancel_vipps_agreement",
            "mandate",
            &mandate.id,
            json!({"agreement_id": agreement_id, "is_success": outcome.is_success, "message": outcome.message}),
        )
        .await?;
        tx.commit().await?;
        if outcome.is_success {
            // What Vipps cannot cancel any more (a charge it is collecting) ends as Vipps has it, by the poll.
            self.cancel_installments(&mandate, None, "Vipps agreement cancelled", None).await?;
            // Vipps cancels the agreement's pending charges itself; record what it says of them.
            let open = {
                let mut conn = self.store.pool().acquire().await?;
                charges::open_charges_of_mandate(&mut conn, &mandate.id).await?
            };
            for charge in open {
                if let Err(error) = self.sync_charge(&charge.charge_id, None).await {
                    tracing::warn!(charge = %charge.charge_id, %error, "charge sync after the stop failed");
                }
            }
        }
        Ok(outcome)
    }
}
