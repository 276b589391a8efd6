//! Capturing a one-time payment once, and recording every capture Vipps made as a Payment exactly once: our
//! own (key `cap-<installment>`), and any payhub did not make or whose answer it lost, read from Vipps' event
//! log. Split from the one-time flow because what Vipps says was captured, not what payhub asked for, decides.

use chrono::Utc;
use serde_json::json;
use vipps_client::epayment::{Payment, PaymentEventName, Reference};
use vipps_client::{Amount, IdempotencyKey};

use super::one_time::{describe, is_transient, totals};
use super::trail::{self, Channel, Means, Outcome, Said};
use super::{outbox, Payments};
use crate::domain::status::InstallmentStatus;
use crate::domain::vipps_state::PaymentState;
use crate::error::{ServiceError, ServiceResult};
use crate::store::installments;
use crate::store::payments;
use crate::store::vipps_payments::{self, VippsPaymentRow};

impl Payments {
    /// Captures the whole authorized amount once (key `cap-<installment>`), and records the capture as a
    /// Payment with Vipps' psp reference. What Vipps says was captured comes first: when it is more than payhub
    /// recorded (a capture made in the Vipps portal, or payhub's own whose answer was lost), each capture in
    /// Vipps' event log that payhub has not recorded becomes a Payment, once (its psp reference is unique), and
    /// nothing more is captured: once anything is captured at Vipps, the rest is the merchant's to decide.
    pub(super) async fn capture(
        &self,
        row: &VippsPaymentRow,
        payment: &Payment,
        client: &vipps_client::Client,
    ) -> ServiceResult<()> {
        let aggregate = &payment.aggregate;
        let mut conn = self.store.pool().acquire().await?;
        let recorded: Vec<payments::PaymentRow> = payments::payments_of(&mut conn, &row.installment_id)
            .await?
            .into_iter()
            .filter(|p| p.kind == "capture")
            .collect();
        drop(conn);
        let recorded_ore: i64 = recorded.iter().map(|p| p.amount_ore).sum();
        if aggregate.captured_amount.value > recorded_ore {
            return self.record_captures_made_elsewhere(row, payment, client, &recorded).await;
        }
        let capturable = aggregate.authorized_amount.value - aggregate.cancelled_amount.value;
        if aggregate.captured_amount.value > 0 || capturable <= 0 {
            return Ok(());
        }
        let key = IdempotencyKey::parse(&format!("cap-{}", row.installment_id))
            .map_err(|e| ServiceError::Internal(e.into()))?;
        let reference = Reference::parse(&row.reference).map_err(|e| ServiceError::Internal(e.into()))?;
        let captured = match client.epayment().capture(&reference, &Amount::nok(capturable), &key).await {
            Ok(captured) => captured,
            Err(error) if is_transient(error.kind()) => {
                tracing::info!(reference = %row.reference, error = %describe(&error), "capture not confirmed; next beat retries with the same key");
                return Ok(());
            }
            Err(error) => {
                let message = describe(&error);
                tracing::warn!(reference = %row.reference, error = %message, "Vipps refused the capture");
                let mut conn = self.store.pool().acquire().await?;
                vipps_payments::update_vipps_payment(
                    &mut conn,
                    &row.reference,
                    &PaymentState::Authorized,
                    None,
                    None,
                    None,
                    Some(&message),
                    Utc::now(),
                )
                .await?;
                return Ok(());
            }
        };
        let body = json!({
            "reference": captured.reference, "pspReference": captured.psp_reference, "state": captured.state.to_string(),
            "capturedAmount": captured.aggregate.captured_amount.value,
        })
        .to_string();
        let said = Said::new(Channel::VippsCall, Some(&row.reference), &body);
        self.record_capture(row, capturable, &captured.psp_reference, said, totals(&captured.aggregate)).await
    }

    /// Records the captures in Vipps' event log that payhub has no Payment of (made in the portal, or payhub's
    /// own whose answer never arrived).
    async fn record_captures_made_elsewhere(
        &self,
        row: &VippsPaymentRow,
        payment: &Payment,
        client: &vipps_client::Client,
        recorded: &[payments::PaymentRow],
    ) -> ServiceResult<()> {
        let reference = Reference::parse(&row.reference).map_err(|e| ServiceError::Internal(e.into()))?;
        let events = match client.epayment().events(&reference).await {
            Ok(events) => events,
            Err(error) if is_transient(error.kind()) => {
                tracing::info!(reference = %row.reference, error = %describe(&error), "Vipps did not answer the event log; next beat retries");
                return Ok(());
            }
            Err(error) => return Err(ServiceError::Internal(anyhow::anyhow!(describe(&error)))),
        };
        let mut seen = totals(&payment.aggregate);
        seen[1] = recorded.iter().map(|p| p.amount_ore).sum();
        for event in events.iter().filter(|e| {
            e.name == PaymentEventName::Captured
                && e.success
                && !recorded.iter().any(|p| p.psp_reference == e.psp_reference)
        }) {
            seen[1] += event.amount.value;
            let body = json!({
                "reference": event.reference, "pspReference": event.psp_reference, "name": event.name.to_string(),
                "amount": event.amount.value, "idempotencyKey": event.idempotency_key, "success": event.success,
                "timestamp": event.timestamp.to_rfc3339(),
            })
            .to_string();
            tracing::info!(reference = %row.reference, psp = %event.psp_reference, "recording a capture payhub did not make");
            let said = Said::new(Channel::VippsPoll, Some(&row.reference), &body);
            self.record_capture(row, event.amount.value, &event.psp_reference, said, seen).await?;
        }
        Ok(())
    }

    /// Records one capture as a Payment (once per psp reference) with its report, moves the installment to
    /// Collected with what is left open, and stores `totals` (the captured one as now recorded).
    async fn record_capture(
        &self,
        row: &VippsPaymentRow,
        amount: i64,
        psp_reference: &str,
        said: Said<'_>,
        totals: [i64; 4],
    ) -> ServiceResult<()> {
        let now = Utc::now();
        let mut tx = self.store.begin_write().await?;
        let installment = installments::installment(&mut tx, &row.installment_id)
            .await?
            .ok_or(ServiceError::NotFound("installment"))?;
        let listeners = outbox::Listeners::of_intent(&mut tx, installment.intent_id.as_deref()).await?;
        let trail::Recorded { report_id, .. } = trail::record(
            &mut tx,
            said,
            Means::vipps("payment.captured", Outcome::Matched)
                .amount(amount)
                .reference(&row.reference)
                .installment(Some(&row.installment_id))
                .intent(installment.intent_id.as_deref()),
            now,
        )
        .await?;
        let inserted = payments::insert_payment(
            &mut tx,
            &row.installment_id,
            amount,
            psp_reference,
            "capture",
            Some(&report_id),
            now,
        )
        .await?;
        if inserted.is_none() {
            // Another sync recorded this capture first.
            tx.rollback().await?;
            return Ok(());
        }
        outbox::move_installment(
            &mut tx,
            &listeners,
            &row.installment_id,
            InstallmentStatus::Collected,
            None,
            Some((installment.amount_ore - totals[1]).max(0)),
            now,
        )
        .await?;
        vipps_payments::update_vipps_payment(
            &mut tx,
            &row.reference,
            &PaymentState::Authorized,
            None,
            None,
            Some(totals),
            None,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
