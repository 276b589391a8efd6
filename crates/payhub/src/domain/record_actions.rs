//! Which actions the records pages offer for a record's state: a re-sync from Vipps only while Vipps may still
//! say something new about the payment or charge (the poll reads the same ones), pause and resume by the
//! recurring payment's status (and changes of its amount or collection day while it is not over), Cancel Vipps
//! Agreement while the agreement can still be stopped. Exhaustive matches, so a new state has to be placed here
//! before it compiles.

use super::recurring::RecurringStatus;
use super::vipps_state::{AgreementState, ChargeState, PaymentState};

/// Whether a one-time payment with `state` can still change at Vipps: not yet confirmed, waiting for the
/// payer, or authorized and not yet captured (`captured_ore` 0).
pub fn payment_is_open(state: &PaymentState, captured_ore: i64) -> bool {
    match state {
        PaymentState::Creating | PaymentState::Created | PaymentState::Other(_) => true,
        PaymentState::Authorized => captured_ore == 0,
        PaymentState::Refused | PaymentState::Aborted | PaymentState::Expired | PaymentState::Terminated => false,
    }
}

/// Whether a charge with `state` can still change at Vipps (it has not been collected, failed or cancelled).
pub fn charge_is_open(state: &ChargeState) -> bool {
    match state {
        ChargeState::Creating
        | ChargeState::Pending
        | ChargeState::Due
        | ChargeState::Processing
        | ChargeState::Reserved
        | ChargeState::Other(_) => true,
        ChargeState::Refused
        | ChargeState::Charged
        | ChargeState::PartiallyCaptured
        | ChargeState::PartiallyRefunded
        | ChargeState::Refunded
        | ChargeState::Failed
        | ChargeState::Cancelled => false,
    }
}

/// Whether the agreement can be stopped at Vipps: it exists there and has not ended.
pub fn agreement_can_stop(state: &AgreementState) -> bool {
    match state {
        AgreementState::Pending | AgreementState::Active | AgreementState::Other(_) => true,
        AgreementState::Creating | AgreementState::Refused | AgreementState::Stopped | AgreementState::Expired => false,
    }
}

/// Whether a recurring payment in `status` can be paused (it collects now).
pub fn can_pause(status: RecurringStatus) -> bool {
    match status {
        RecurringStatus::Active => true,
        RecurringStatus::Paused | RecurringStatus::Cancelling | RecurringStatus::Cancelled | RecurringStatus::Ended => {
            false
        }
    }
}

/// Whether a recurring payment in `status` can be resumed (it is paused).
pub fn can_resume(status: RecurringStatus) -> bool {
    match status {
        RecurringStatus::Paused => true,
        RecurringStatus::Active | RecurringStatus::Cancelling | RecurringStatus::Cancelled | RecurringStatus::Ended => {
            false
        }
    }
}

/// Whether a recurring payment in `status` can have its amount or collection day changed: while it is not
/// over (a paused one keeps its agreement, so its terms can still change for when it resumes).
pub fn can_change_terms(status: RecurringStatus) -> bool {
    match status {
        RecurringStatus::Active | RecurringStatus::Paused => true,
        RecurringStatus::Cancelling | RecurringStatus::Cancelled | RecurringStatus::Ended => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_vipps_may_still_change_is_offered_a_resync() {
        assert!(payment_is_open(&PaymentState::Created, 0));
        assert!(payment_is_open(&PaymentState::Authorized, 0));
        assert!(!payment_is_open(&PaymentState::Authorized, 3600));
        assert!(!payment_is_open(&PaymentState::Aborted, 0));
        assert!(charge_is_open(&ChargeState::Due));
        assert!(!charge_is_open(&ChargeState::Charged));
        assert!(agreement_can_stop(&AgreementState::Active));
        assert!(!agreement_can_stop(&AgreementState::Stopped));
        assert!(can_pause(RecurringStatus::Active) && !can_pause(RecurringStatus::Paused));
        assert!(can_resume(RecurringStatus::Paused) && !can_resume(RecurringStatus::Cancelled));
        assert!(can_change_terms(RecurringStatus::Paused) && !can_change_terms(RecurringStatus::Cancelling));
    }
}
