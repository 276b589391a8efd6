//! The payer comes back from Vipps: read what Vipps says now (so the record is current even when no webhook
//! came) and tell where the payer goes next. A payer can be back before Vipps has decided (the app was
//! closed, or Vipps is slower than the payer); sending them to the FailureURL then would tell a donor their
//! gift failed when it may still succeed, so that case is its own answer.

use super::Payments;
use crate::domain::recurring::MandateStatus;
use crate::domain::status::InstallmentStatus;
use crate::domain::vipps_state::PaymentState;
use crate::error::ServiceResult;
use crate::store::{installments, intents, mandates, vipps_payments};

/// Where a returning payer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Return {
    /// Paid (or the agreement accepted): the intent's SuccessURL.
    Success(String),
    /// Rejected, expired, cancelled or refused: the intent's FailureURL.
    Failure(String),
    /// Vipps has not decided yet: look again shortly.
    Checking,
}

impl Payments {
    /// Brings the intent's agreement or payment up to date after the payer's return and answers where the
    /// payer goes. `None`: no such intent.
    pub async fn payer_returned(&self, intent_id: &str) -> ServiceResult<Option<Return>> {
        let (intent, mandate) = {
            let mut conn = self.store.pool().acquire().await?;
            let Some(intent) = intents::intent(&mut conn, intent_id).await? else { return Ok(None) };
            let mandate = intents::recurring_of_intent(&mut conn, intent_id).await?.map(|(_, m)| m);
            drop(conn);
            // A Setup URL's intent made no recurring payment: it asked for a new mandate of an existing one.
            let mandate = match mandate {
                None if intent.installment_id.is_none() => self.renewal_of_intent(intent_id).await?,
                other => other,
            };
            (intent, mandate)
        };
        let decided = |success: Option<bool>| match success {
            Some(true) => Return::Success(intent.success_url.clone()),
            Some(false) => Return::Failure(intent.failure_url.clone()),
            None => Return::Checking,
        };
        if let Some(mandate_id) = mandate {
            if let Err(error) = self.sync_agreement(&mandate_id, None).await {
                tracing::warn!(mandate = %mandate_id, %error, "agreement sync on the payer's return failed");
            }
            let mut conn = self.store.pool().acquire().await?;
            let status = mandates::mandate(&mut conn, &mandate_id).await?.map(|m| m.status);
            return Ok(Some(decided(match status {
                Some(MandateStatus::Active) => Some(true),
                Some(MandateStatus::Pending) | None => None,
                Some(MandateStatus::Stopped | MandateStatus::Expired | MandateStatus::Cancelled) => Some(false),
            })));
        }
        let Some(installment_id) = &intent.installment_id else { return Ok(Some(decided(Some(false)))) };
        let reference = {
            let mut conn = self.store.pool().acquire().await?;
            vipps_payments::vipps_payment_of(&mut conn, installment_id).await?.map(|v| v.reference)
        };
        let Some(reference) = reference else { return Ok(Some(decided(None))) };
        if let Err(error) = self.sync(&reference, None).await {
            tracing::warn!(%reference, %error, "sync on the payer's return failed");
        }
        let mut conn = self.store.pool().acquire().await?;
        let status = installments::installment(&mut conn, installment_id).await?.map(|i| i.status);
        let state = vipps_payments::vipps_payment(&mut conn, &reference).await?.map(|v| v.state);
        let success = match (status, state) {
            (Some(status), _) if status.is_collected() => Some(true),
            (_, Some(PaymentState::Authorized)) => Some(true),
            (Some(InstallmentStatus::Failed | InstallmentStatus::Cancelled), _) => Some(false),
            (
                _,
                Some(PaymentState::Aborted | PaymentState::Expired | PaymentState::Terminated | PaymentState::Refused),
            ) => Some(false),
            _ => None,
        };
        Ok(Some(decided(success)))
    }
}
