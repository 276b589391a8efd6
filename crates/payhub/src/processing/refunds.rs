//! Refunds of collected installments: never more than captured minus what is refunded or being refunded,
//! also when several requests race (the installment row is locked while the amount is reserved).

use serde_json::json;
use vipps_client::epayment::Reference;
use vipps_client::recurring::ChargeAmount;
use vipps_client::{Amount, IdempotencyKey, RecurringIdempotencyKey};

use super::one_time::{describe, is_transient, totals};
use super::trail::{self, Channel, Means, Outcome, Said};
use super::{outbox, Payments};
use crate::domain::status::InstallmentStatus;
use crate::domain::vipps_state::PaymentState;
use crate::domain::FieldError;
use crate::error::{ServiceError, ServiceResult};
use crate::store::installments;
use crate::store::payments;
use crate::store::refunds::{self, RefundRow};
use crate::store::vipps_payments;

/// What Vipps confirmed of a refund: (psp reference, raw answer, the Vipps reference, ePayment totals).
type Confirmed = (String, String, String, Option<[i64; 4]>);

/// What a refund request asks for.
#[derive(Debug, Clone)]
pub struct RefundRequest {
    /// The installment to refund (resolved from a payment id by the caller when needed).
    pub installment_id: String,
    /// Øre to refund; `None` means everything still refundable.
    pub amount_ore: Option<i64>,
    /// Why.
    pub reason: Option<String>,
}

/// A refund's outcome.
#[derive(Debug, Clone)]
pub struct RefundOutcome {
    /// The refund record.
    pub refund: RefundRow,
    /// The negative Payment recorded for it, once Vipps confirmed.
    pub payment_id: Option<String>,
    /// The installment's status afterwards.
    pub installment_status: String,
}

impl Payments {
    /// Reserves the amount, asks Vipps to refund it with a key derived from the refund record, and records the
    /// negative Payment.
    pub async fn refund(&self, request: &RefundRequest) -> ServiceResult<RefundOutcome> {
        let now = self.now();
        let refund = {
            let mut tx = self.store.begin_write().await?;
            let installment = installments::lock_installment(&mut tx, self.store.backend(), &request.installment_id)
                .await?
                .ok_or(ServiceError::NotFound("installment"))?;
            if !installment.status.is_collected() {
                return Err(ServiceError::Invalid(vec![FieldError::invalid(
                    "InstallmentId",
                    format!("Only collected installments can be refunded; this one is {}", installment.status),
                )]));
            }
            let refundable = refunds::refundable_ore(&mut tx, &installment.id).await?;
            let amount = request.amount_ore.unwrap_or(refundable);
            if amount <= 0 || amount > refundable {
                return Err(ServiceError::Invalid(vec![FieldError::invalid(
                    "Amount",
                    format!(
                        "Amount must be more than 0 and at most what is left to refund ({} øre)",
                        refundable.max(0)
                    ),
                )]));
            }
            let refund =
                refunds::insert_refund(&mut tx, &installment.id, amount, request.reason.as_deref(), now).await?;
            tx.commit().await?;
            refund
        };
        self.send_refund(&refund).await
    }

    /// Sends (or re-sends, with the same key) a pending refund to Vipps and records the answer.
    pub(crate) async fn send_refund(&self, refund: &RefundRow) -> ServiceResult<RefundOutcome> {
        let mut conn = self.store.pool().acquire().await?;
        // A one-time installment has an ePayment; a recurring one a charge.
        let payment = vipps_payments::vipps_payment_of(&mut conn, &refund.installment_id).await?;
        let charge = match &payment {
            Some(_) => None,
            None => Some(
                crate::store::charges::charge_of_installment(&mut conn, &refund.installment_id)
                    .await?
                    .ok_or(ServiceError::NotFound("payment"))?,
            ),
        };
        drop(conn);
        let account_id = payment.as_ref().map_or_else(
            || charge.as_ref().map(|c| c.account_id.clone()).unwrap_or_default(),
            |p| p.account_id.clone(),
        );
        let client = self.clients.get(&self.accounts, &account_id).await?;
        let now = self.now();
        let answer: Result<Confirmed, vipps_client::Error> = match (&payment, &charge) {
            (Some(row), _) => {
                let key =
                    IdempotencyKey::parse(&refund.idempotency_key).map_err(|e| ServiceError::Internal(e.into()))?;
                let reference = Reference::parse(&row.reference).map_err(|e| ServiceError::Internal(e.into()))?;
                client.epayment().refund(&reference, &Amount::nok(refund.amount_ore), &key).await.map(|done| {
                    let body = json!({"reference": done.reference, "pspReference": done.psp_reference, "refundedAmount": done.aggregate.refunded_amount.value}).to_string();
                    (done.psp_reference.clone(), body, row.reference.clone(), Some(totals(&done.aggregate)))
                })
            }
            (None, Some(c)) => {
                let key = RecurringIdempotencyKey::parse(&refund.idempotency_key)
                    .map_err(|e| ServiceError::Internal(e.into()))?;
                let description: String =
                    refund.reason.clone().unwrap_or_else(|| "Refund".into()).chars().take(45).collect();
                client
                    .recurring()
                    .refund_charge(&c.agreement_id, &c.charge_id, &ChargeAmount::new(refund.amount_ore, description), &key)
                    .await
                    .map(|_| {
                        let psp = format!("{}-{}", c.charge_id, refund.id);
                        let body = json!({"chargeId": c.charge_id, "agreementId": c.agreement_id, "refundedAmount": refund.amount_ore}).to_string();
                        (psp, body, c.charge_id.clone(), None)
                    })
            }
            (None, None) => return Err(ServiceError::NotFound("payment")),
        };
        let mut tx = self.store.begin_write().await?;
        let installment = installments::installment(&mut tx, &refund.installment_id)
            .await?
            .ok_or(ServiceError::NotFound("installment"))?;
        let listeners = outbox::Listeners::of_intent(&mut tx, installment.intent_id.as_deref()).await?;
        let mut payment_id = None;
        match answer {
            Ok((psp_reference, body, vipps_reference, vipps_totals)) => {
                let sub_type = if charge.is_some() { "charge.refunded" } else { "payment.refunded" };
                let trail::Recorded { report_id, .. } = trail::record(
                    &mut tx,
                    Said::new(Channel::VippsCall, Some(&vipps_reference), &body),
                    Means::vipps(sub_type, Outcome::Matched)
                        .amount(-refund.amount_ore)
                        .reference(&vipps_reference)
                        .installment(Some(&installment.id))
                        .intent(installment.intent_id.as_deref())
                        .detail(refund.reason.as_deref()),
                    now,
                )
                .await?;
                if !refunds::finish_refund(&mut tx, &refund.id, Some(&psp_reference), None, now).await? {
                    // Another attempt (the beat, or a racing retry) recorded this refund already.
                    tx.rollback().await?;
                    let mut conn = self.store.pool().acquire().await?;
                    let refund =
                        refunds::refund(&mut conn, &refund.id).await?.ok_or(ServiceError::NotFound("refund"))?;
                    let status = installment.status.to_string();
                    return Ok(RefundOutcome { refund, payment_id: None, installment_status: status });
                }
                payment_id = payments::insert_payment(
                    &mut tx,
                    &installment.id,
                    -refund.amount_ore,
                    &psp_reference,
                    "refund",
                    Some(&report_id),
                    now,
                )
                .await?;
                let left = refunds::refundable_ore(&mut tx, &installment.id).await?;
                let next = if left <= 0 { InstallmentStatus::Refunded } else { InstallmentStatus::PartiallyRefunded };
                let open = installment.amount_open_ore + refund.amount_ore;
                outbox::move_installment(
                    &mut tx,
                    &listeners,
                    &installment.id,
                    next,
                    None,
                    Some(open.min(installment.amount_ore)),
                    now,
                )
                .await?;
                if let Some(vipps_totals) = vipps_totals {
                    vipps_payments::update_vipps_payment(
                        &mut tx,
                        &vipps_reference,
                        &PaymentState::Authorized,
                        None,
                        None,
                        Some(vipps_totals),
                        None,
                        now,
                    )
                    .await?;
                }
            }
            Err(error) if is_transient(error.kind()) => {
                tracing::info!(refund = %refund.id, error = %describe(&error), "refund not confirmed; the beat retries with the same key");
            }
            Err(error) => {
                refunds::finish_refund(&mut tx, &refund.id, None, Some(&describe(&error)), now).await?;
            }
        }
        tx.commit().await?;
        let mut conn = self.store.pool().acquire().await?;
        let refund = refunds::refund(&mut conn, &refund.id).await?.ok_or(ServiceError::NotFound("refund"))?;
        let status = installments::installment(&mut conn, &refund.installment_id)
            .await?
            .map(|i| i.status.to_string())
            .unwrap_or_default();
        Ok(RefundOutcome { refund, payment_id, installment_status: status })
    }

    /// Re-sends refunds that Vipps has not confirmed (the polling beat).
    pub(crate) async fn retry_pending_refunds(&self, limit: i64) -> ServiceResult<()> {
        let pending = {
            let mut conn = self.store.pool().acquire().await?;
            refunds::pending_refunds(&mut conn, limit).await?
        };
        for refund in pending {
            if let Err(error) = self.send_refund(&refund).await {
                tracing::warn!(refund = %refund.id, %error, "refund retry failed");
            }
        }
        Ok(())
    }
}
