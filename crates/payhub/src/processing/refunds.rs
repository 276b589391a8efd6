//! Refunds of collected installments: never more than captured minus what is refunded or being refunded,
//! also when several requests race (the installment row is locked while the amount is reserved). One refund is
//! sent by one path at a time: its caller first (the poll leaves it alone for a minute), then the poll, each
//! under the refund's lock and after reading it again; a re-send reads Vipps' event log first, and so does a
//! refusal before it fails the refund, so a refund Vipps made is recorded and never sent twice. An installment
//! is Refunded only once refunds Vipps confirmed cover what was captured.

use serde_json::json;
use vipps_client::epayment::{PaymentEventName, Reference};
use vipps_client::recurring::ChargeAmount;
use vipps_client::{Amount, IdempotencyKey, RecurringIdempotencyKey};

use super::one_time::{describe, is_transient, totals, IN_CALLERS_HANDS};
use super::trail::{self, Channel, Means, Outcome, Said};
use super::{outbox, Payments};
use crate::auth::Actor;
use crate::domain::money::Money;
use crate::domain::status::InstallmentStatus;
use crate::domain::vipps_state::PaymentState;
use crate::domain::FieldError;
use crate::error::{ServiceError, ServiceResult};
use crate::store::installments;
use crate::store::payments;
use crate::store::refunds::{self, ApiKey, RefundRow};
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
    /// The caller's own IdempotencyKey, kept on the refund: a repeat with it finishes this refund.
    pub api_key: Option<ApiKey>,
    /// Who asks, for the audit entry written with the reservation.
    pub actor: Actor,
}

/// Whether a refund goes to Vipps for the first time (just reserved) or again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sending {
    First,
    Again,
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
    /// negative Payment. A request whose caller's IdempotencyKey already made a refund (a repeat whose first run
    /// never stored its answer) finishes that refund instead: re-sent with its own key after reading Vipps, or
    /// answered as it stands.
    pub async fn refund(&self, request: &RefundRequest) -> ServiceResult<RefundOutcome> {
        let now = self.now();
        let refund = {
            let mut tx = self.store.begin_write().await?;
            let installment = installments::lock_installment(&mut tx, self.store.backend(), &request.installment_id)
                .await?
                .ok_or(ServiceError::NotFound("installment"))?;
            if let Some(api_key) = &request.api_key {
                if let Some(earlier) = refunds::refund_by_api_key(&mut tx, api_key).await? {
                    tx.rollback().await?;
                    let same = earlier.installment_id == request.installment_id
                        && request.amount_ore.is_none_or(|amount| amount == earlier.amount_ore);
                    if !same {
                        return Err(ServiceError::Conflict(vec![FieldError::invalid(
                            "IdempotencyKey",
                            "This IdempotencyKey was used for a different refund",
                        )]));
                    }
                    return self.send_refund(&earlier, Sending::Again).await;
                }
            }
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
                        "Amount must be more than 0 and at most what is left to refund ({} NOK)",
                        Money::from_ore(refundable.max(0)).kroner_string()
                    ),
                )]));
            }
            let refund = refunds::insert_refund(
                &mut tx,
                &installment.id,
                amount,
                request.reason.as_deref(),
                request.api_key.as_ref(),
                now,
            )
            .await?;
            let details = json!({"refund": refund.id, "amount": Money::from_ore(amount).kroner_string(), "reason": request.reason});
            crate::auth::audit(&mut tx, &request.actor, "refund.request", "installment", &installment.id, details)
                .await?;
            tx.commit().await?;
            refund
        };
        self.send_refund(&refund, Sending::First).await
    }

    /// Sends (or re-sends, with the same key) a pending refund to Vipps and records the answer, under the
    /// refund's lock and only while it is still pending. Before a re-send, and before a refusal fails it, the
    /// payment's event log is read: a refund Vipps already made under this key is recorded instead.
    async fn send_refund(&self, refund: &RefundRow, sending: Sending) -> ServiceResult<RefundOutcome> {
        let lock = self.locks.get(&refund.id);
        let _guard = lock.lock().await;
        let mut conn = self.store.pool().acquire().await?;
        let refund = refunds::refund(&mut conn, &refund.id).await?.ok_or(ServiceError::NotFound("refund"))?;
        if refund.status != "Pending" {
            drop(conn);
            return self.refund_outcome(refund).await;
        }
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
                let earlier = match sending {
                    Sending::First => None,
                    Sending::Again => match refund_in_log(&client, &row.reference, &refund).await {
                        Ok(found) => found,
                        Err(error) => {
                            tracing::info!(refund = %refund.id, error = %describe(&error), "Vipps' event log could not be read; the refund is not sent blind, the beat retries");
                            return self.refund_outcome(refund).await;
                        }
                    },
                };
                match earlier {
                    Some(confirmed) => Ok(confirmed),
                    None => {
                        let key = IdempotencyKey::parse(&refund.idempotency_key)
                            .map_err(|e| ServiceError::Internal(e.into()))?;
                        let reference =
                            Reference::parse(&row.reference).map_err(|e| ServiceError::Internal(e.into()))?;
                        let sent = client.epayment().refund(&reference, &Amount::nok(refund.amount_ore), &key).await.map(|done| {
                            let body = json!({"reference": done.reference, "pspReference": done.psp_reference, "refundedAmount": done.aggregate.refunded_amount.value}).to_string();
                            let seen = totals(&done.aggregate);
                            (done.psp_reference.clone(), body, row.reference.clone(), Some([seen[0], row.captured_ore, seen[2], seen[3]]))
                        });
                        match sent {
                            Err(error) if !is_transient(error.kind()) => {
                                // Refused, or a conflict while another path's call with the key is at Vipps:
                                // what Vipps did with the key decides.
                                match refund_in_log(&client, &row.reference, &refund).await {
                                    Ok(Some(confirmed)) => Ok(confirmed),
                                    Ok(None) => Err(error),
                                    Err(read) => {
                                        tracing::info!(refund = %refund.id, error = %describe(&read), "Vipps refused the refund and its event log could not be read; the beat looks again");
                                        return self.refund_outcome(refund).await;
                                    }
                                }
                            }
                            other => other,
                        }
                    }
                }
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
        match answer {
            Ok((psp_reference, body, vipps_reference, vipps_totals)) => {
                if !refunds::finish_refund(&mut tx, &refund.id, Some(&psp_reference), None, now).await? {
                    // Another instance recorded this refund already.
                    tx.rollback().await?;
                    return self.refund_outcome(refund).await;
                }
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
                payments::insert_payment(
                    &mut tx,
                    &installment.id,
                    -refund.amount_ore,
                    &psp_reference,
                    "refund",
                    Some(&report_id),
                    now,
                )
                .await?;
                // Refunded only when what Vipps confirmed covers the capture; a refund still pending may fail.
                let captured = refunds::captured_ore(&mut tx, &installment.id).await?;
                let refunded = refunds::refunded_ore(&mut tx, &installment.id).await?;
                let next = if refunded >= captured {
                    InstallmentStatus::Refunded
                } else {
                    InstallmentStatus::PartiallyRefunded
                };
                // A refund makes nothing due again: the open amount stays as it was (the refunded sum is read
                // from the negative Payments). Giving it anyway lets a second partial refund announce itself.
                outbox::move_installment(
                    &mut tx,
                    &listeners,
                    &installment.id,
                    next,
                    None,
                    Some(installment.amount_open_ore),
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
        self.refund_outcome(refund).await
    }

    /// A refund as it now stands: the record, its Payment, and the installment's status.
    async fn refund_outcome(&self, refund: RefundRow) -> ServiceResult<RefundOutcome> {
        let mut conn = self.store.pool().acquire().await?;
        let refund = refunds::refund(&mut conn, &refund.id).await?.ok_or(ServiceError::NotFound("refund"))?;
        let installment_status = installments::installment(&mut conn, &refund.installment_id)
            .await?
            .map(|i| i.status.to_string())
            .unwrap_or_default();
        let payment_id = match &refund.psp_reference {
            Some(psp) => payments::payments_of(&mut conn, &refund.installment_id)
                .await?
                .into_iter()
                .find(|p| p.kind == "refund" && &p.psp_reference == psp)
                .map(|p| p.id),
            None => None,
        };
        Ok(RefundOutcome { refund, payment_id, installment_status })
    }

    /// Re-sends refunds that Vipps has not confirmed (the polling beat), once they are a minute old: a younger
    /// one is still in its caller's hands.
    pub(crate) async fn retry_pending_refunds(&self, limit: i64) -> ServiceResult<()> {
        let pending = {
            let mut conn = self.store.pool().acquire().await?;
            refunds::pending_refunds(&mut conn, limit, self.now() - IN_CALLERS_HANDS).await?
        };
        for refund in pending {
            if let Err(error) = self.send_refund(&refund, Sending::Again).await {
                tracing::warn!(refund = %refund.id, %error, "refund retry failed");
            }
        }
        Ok(())
    }
}

/// The refund Vipps made under `refund`'s key, from the payment's event log, if any.
async fn refund_in_log(
    client: &vipps_client::Client,
    reference: &str,
    refund: &RefundRow,
) -> Result<Option<Confirmed>, vipps_client::Error> {
    let Ok(vipps_reference) = Reference::parse(reference) else { return Ok(None) };
    let events = client.epayment().events(&vipps_reference).await?;
    Ok(events
        .iter()
        .find(|e| {
            e.name == PaymentEventName::Refunded
                && e.success
                && e.idempotency_key.as_deref() == Some(refund.idempotency_key.as_str())
        })
        .map(|e| {
            let body = json!({
                "reference": e.reference, "pspReference": e.psp_reference, "name": e.name.to_string(),
                "amount": e.amount.value, "idempotencyKey": e.idempotency_key, "success": e.success,
                "timestamp": e.timestamp.to_rfc3339(),
            })
            .to_string();
            (e.psp_reference.clone(), body, reference.to_owned(), None)
        }))
}
