//! The flows' background work: which job processes a queued Vipps webhook, and which beat runs which flow
//! how often. The webhook intake (in `vipps`) only verifies and queues; the work itself is here, where the
//! flows are.

use std::time::Duration;

use chrono::Utc;

use super::Payments;
use crate::error::ServiceError;
use crate::jobs::heartbeat::Heartbeat;
use crate::jobs::{Handlers, Job};
use crate::store::Store;
use crate::vipps::webhooks::{SYNC_AGREEMENT_JOB, SYNC_CHARGE_JOB, SYNC_PAYMENT_JOB};

/// The beat that generates the installments of recurring payments (FinDock's GenerateInstallments).
pub const GENERATE_INSTALLMENTS: &str = "recurring.generate_installments";

/// The beat that creates Vipps charges for installments coming due (FinDock's CollectRecurring).
pub const COLLECT_RECURRING: &str = "recurring.collect";

/// The beat that polls Vipps payments still open (the webhook's back-up).
pub const SYNC_PAYMENTS: &str = "vipps.sync_payments";

/// The beat that polls agreements and charges still open (the webhooks' back-up).
pub const SYNC_RECURRING: &str = "vipps.sync_recurring";

/// The beat that takes up changes Vipps has not confirmed yet (an agreement's new price, the charge cancels
/// of a Pause or a Cancel) with the same keys.
pub const PENDING_CHANGES: &str = "recurring.pending_changes";

impl Payments {
    /// Registers the jobs that process queued Vipps webhooks: the payment, agreement or charge is read back
    /// from Vipps and the records brought up to date (duplicates and reordering are harmless: the read-back is
    /// the truth), and the webhook's Message is finished with the outcome.
    pub fn register_jobs(&self, handlers: &Handlers) {
        for kind in [SYNC_PAYMENT_JOB, SYNC_AGREEMENT_JOB, SYNC_CHARGE_JOB] {
            let payments = self.clone();
            handlers.register(kind, move |job: Job| {
                let payments = payments.clone();
                async move {
                    let message = job.payload["message"].as_str().map(str::to_owned);
                    let text = |key: &str| job.payload[key].as_str().unwrap_or_default().to_owned();
                    let outcome = match job.kind.as_str() {
                        SYNC_PAYMENT_JOB => payments.sync(&text("reference"), message.as_deref()).await,
                        SYNC_AGREEMENT_JOB => payments.sync_agreement(&text("agreement"), message.as_deref()).await,
                        _ => match job.payload["creationFailed"].as_str() {
                            Some(reason) => {
                                payments.charge_creation_failed(&text("charge"), reason, message.as_deref()).await
                            }
                            None => payments.sync_charge(&text("charge"), message.as_deref()).await,
                        },
                    };
                    let store = &payments.store;
                    match outcome {
                        Ok(()) => finish(store, message.as_deref(), Ok(())).await,
                        // An event about a payment, agreement or charge payhub did not make (one made in the
                        // portal, say) is not ours to process: noted once, not retried.
                        Err(ServiceError::NotFound(what)) => {
                            finish(store, message.as_deref(), Err(format!("no {what} of payhub's matches this event")))
                                .await
                        }
                        Err(error) => {
                            finish(store, message.as_deref(), Err(error.to_string())).await?;
                            Err(error.into())
                        }
                    }
                }
            });
        }
    }

    /// Registers the flows' beats: polling Vipps payments, agreements and charges and retrying pending
    /// changes every `poll_seconds`, and the recurring beats every `recurring_seconds`.
    pub fn register_beats(&self, heartbeat: &Heartbeat, poll_seconds: u64, recurring_seconds: u64) {
        let poll = Duration::from_secs(poll_seconds);
        let recurring = Duration::from_secs(recurring_seconds);
        let payments = self.clone();
        heartbeat.register(SYNC_PAYMENTS, poll, move |_| {
            let payments = payments.clone();
            async move {
                payments.sync_open(500).await?;
                Ok(())
            }
        });
        let payments = self.clone();
        heartbeat.register(GENERATE_INSTALLMENTS, recurring, move |_| {
            let payments = payments.clone();
            async move {
                payments.generate_installments().await?;
                Ok(())
            }
        });
        let payments = self.clone();
        heartbeat.register(COLLECT_RECURRING, recurring, move |_| {
            let payments = payments.clone();
            async move {
                // Generate first, so an installment that just became due is charged in the same run.
                payments.generate_installments().await?;
                payments.collect_recurring().await?;
                Ok(())
            }
        });
        let payments = self.clone();
        heartbeat.register(SYNC_RECURRING, poll, move |_| {
            let payments = payments.clone();
            async move {
                payments.sync_recurring(500).await?;
                Ok(())
            }
        });
        let payments = self.clone();
        heartbeat.register(PENDING_CHANGES, poll, move |_| {
            let payments = payments.clone();
            async move {
                payments.retry_pending_changes(500).await?;
                Ok(())
            }
        });
    }
}

/// Finishes a webhook's Message with the outcome of its processing.
async fn finish(store: &Store, message: Option<&str>, outcome: Result<(), String>) -> anyhow::Result<()> {
    if let Some(message) = message {
        let mut conn = store.pool().acquire().await?;
        super::trail::finish(&mut conn, message, outcome.err().as_deref(), Utc::now()).await?;
    }
    Ok(())
}
