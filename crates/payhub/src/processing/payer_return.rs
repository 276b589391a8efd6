//! The payer comes back from Vipps: read what Vipps says now (so the record is current even when no webhook
//! came) and tell where the payer goes next.

use super::Payments;
use crate::domain::status::InstallmentStatus;
use crate::domain::vipps_state::PaymentState;
use crate::error::ServiceResult;
use crate::store::{installments, intents, vipps_payments};

impl Payments {
    /// Brings the intent's agreement or payment up to date after the payer's return and answers the URL the
    /// payer goes to: the intent's SuccessURL when the agreement is active or the payment authorised or
    /// collected, else its FailureURL. `None`: no such intent.
    pub async fn payer_returned(&self, intent_id: &str) -> ServiceResult<Option<String>> {
        let (intent, mandate) = {
            let mut conn = self.store.pool().acquire().await?;
            let Some(intent) = intents::intent(&mut conn, intent_id).await? else { return Ok(None) };
            let mandate = crate::store::intents::recurring_of_intent(&mut conn, intent_id).await?.map(|(_, m)| m);
            (intent, mandate)
        };
        if let Some(mandate_id) = mandate {
            if let Err(error) = self.sync_agreement(&mandate_id, None).await {
                tracing::warn!(mandate = %mandate_id, %error, "agreement sync on the payer's return failed");
            }
            let mut conn = self.store.pool().acquire().await?;
            let active =
                crate::store::mandates::mandate(&mut conn, &mandate_id).await?.is_some_and(|m| m.status.is_active());
            return Ok(Some(if active { intent.success_url } else { intent.failure_url }));
        }
        let mut success = false;
        if let Some(installment_id) = &intent.installment_id {
            let reference = {
                let mut conn = self.store.pool().acquire().await?;
                vipps_payments::vipps_payment_of(&mut conn, installment_id).await?.map(|v| v.reference)
            };
            if let Some(reference) = reference {
                if let Err(error) = self.sync(&reference, None).await {
                    tracing::warn!(%reference, %error, "sync on the payer's return failed");
                }
                let mut conn = self.store.pool().acquire().await?;
                let status = installments::installment(&mut conn, installment_id).await?.map(|i| i.status);
                let authorized = vipps_payments::vipps_payment(&mut conn, &reference)
                    .await?
                    .is_some_and(|v| v.state == PaymentState::Authorized);
                success = authorized || status.is_some_and(InstallmentStatus::is_collected);
            }
        }
        Ok(Some(if success { intent.success_url } else { intent.failure_url }))
    }
}
