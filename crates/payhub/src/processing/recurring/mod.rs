//! The recurring pipeline: a recurring intent becomes a Pending mandate, a recurring payment and a Vipps
//! agreement; Vipps' answers (webhooks, polls, the payer's return) move the mandate; the beats generate
//! installments (one per schedule period) and collect each with a Vipps charge created ahead of its due date.
//!
//! Keys, all derived from our own records and stored before the call: the mandate id drafts the agreement;
//! a charge's id is its installment's payment reference, which is also its `orderId` at Vipps (unique per
//! merchant, so a repeated create can never make a second charge); a batch of charges is keyed by a digest
//! of its charge ids; a change (amount, stop) is keyed by its `recurring_changes` row.
//!
//! One file per step: `intake` records the intent, `agreements` keeps the mandate in step with its Vipps
//! agreement, `beats` generates installments and polls, `charges` collects them, `changes` applies the
//! organisation's changes, `pending` finishes those Vipps has not confirmed yet, `renewal` drafts a new agreement for a recurring
//! payment whose agreement ended (the Setup URL). This file holds what they share: settings, result types, keys.

mod agreements;
mod beats;
mod changes;
mod charge_sync;
mod charges;
mod intake;
mod pending;
mod renewal;

use chrono::{DateTime, NaiveDate, Utc};
pub use renewal::{Renewed, SetupView, Standing};
use vipps_client::RecurringIdempotencyKey;

use super::Payments;
use crate::domain::schedule::oslo_date;
use crate::domain::FieldError;
use crate::error::{ServiceError, ServiceResult};

/// Settings of the recurring beats.
#[derive(Debug, Clone, Copy)]
pub struct RecurringSettings {
    /// How many upcoming installments (due today or later) each recurring payment keeps generated.
    pub horizon: u32,
    /// Charges are created this many days before the due date (at least 1: Vipps' rule).
    pub lead_days: u32,
    /// Charges per call of the batch endpoint (at most 2000).
    pub batch_size: usize,
    /// Below this many charges for one account, charges are created one by one.
    pub batch_threshold: usize,
}

impl Default for RecurringSettings {
    fn default() -> Self {
        Self { horizon: 1, lead_days: 3, batch_size: 2000, batch_threshold: 5 }
    }
}

fn key(text: &str) -> ServiceResult<RecurringIdempotencyKey> {
    RecurringIdempotencyKey::parse(text).map_err(|e| ServiceError::Internal(e.into()))
}

fn invalid(field: &'static str, message: impl Into<String>) -> ServiceError {
    ServiceError::Invalid(vec![FieldError::invalid(field, message)])
}

/// A recorded recurring intent whose agreement was drafted at Vipps.
#[derive(Debug, Clone)]
pub struct RecurringCreated {
    /// `pi_…`
    pub intent_id: String,
    /// `rp_…`
    pub recurring_id: String,
    /// `mdt_…`
    pub mandate_id: String,
    /// The initial payment's installment, if any.
    pub initial_installment_id: Option<String>,
    /// Where the payer confirms the agreement.
    pub redirect_url: Option<String>,
    /// The merchant account's name.
    pub target: String,
}

/// The answer of the Cancel Vipps Agreement action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelOutcome {
    /// Whether the agreement is now stopped at Vipps by this request.
    pub is_success: bool,
    /// Vipps' message, or payhub's.
    pub message: String,
}

/// What became of a change the organisation asked for (amount, pause, cancel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOutcome {
    /// In effect: Vipps confirmed it, or it needed nothing of Vipps.
    Done,
    /// Recorded, but Vipps has not confirmed it yet (no answer; a charge Vipps is collecting right now or does
    /// not have yet): the `recurring.pending_changes` beat takes it up again with the same keys.
    Pending {
        /// The `recurring_changes` row (`rc_…`), `Pending` until Vipps confirms.
        change_id: String,
        /// What it waits for.
        message: String,
    },
    /// Vipps refused it (a definite answer); the change is Failed with this message.
    Refused(String),
}

impl ChangeOutcome {
    /// Whether Vipps has yet to confirm it.
    pub fn is_pending(&self) -> bool {
        matches!(self, Self::Pending { .. })
    }
}

/// What a beat did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BeatCounts {
    /// Records looked at.
    pub looked_at: usize,
    /// Records created or changed.
    pub changed: usize,
}

impl Payments {
    /// payhub's time (the simulator's virtual clock in sandbox mode).
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// Today in Norway, by payhub's clock.
    pub fn today(&self) -> NaiveDate {
        oslo_date(self.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oslo_dates_turn_at_norwegian_midnight() {
        let late =
            DateTime::parse_from_rfc3339("2026-06-30T22:30:00Z").map(|d| d.with_timezone(&Utc)).unwrap_or_default();
        assert_eq!(oslo_date(late).to_string(), "2026-07-01");
    }
}
