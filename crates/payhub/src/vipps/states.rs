//! Vipps' states, as the client reads them, turned into the states payhub records ([`crate::domain::vipps_state`]).
//! Exhaustive: a state the client learns fails to compile here until it is mapped.

use vipps_client::epayment::State;
use vipps_client::recurring::{AgreementStatus, ChargeStatus};

use crate::domain::vipps_state::{AgreementState, ChargeState, PaymentState};

impl From<&State> for PaymentState {
    fn from(state: &State) -> Self {
        match state {
            State::Created => PaymentState::Created,
            State::Aborted => PaymentState::Aborted,
            State::Expired => PaymentState::Expired,
            State::Authorized => PaymentState::Authorized,
            State::Terminated => PaymentState::Terminated,
            State::Unknown(other) => PaymentState::Other(other.clone()),
        }
    }
}

impl From<&AgreementStatus> for AgreementState {
    fn from(status: &AgreementStatus) -> Self {
        match status {
            AgreementStatus::Pending => AgreementState::Pending,
            AgreementStatus::Active => AgreementState::Active,
            AgreementStatus::Stopped => AgreementState::Stopped,
            AgreementStatus::Expired => AgreementState::Expired,
            AgreementStatus::Unknown(other) => AgreementState::Other(other.clone()),
        }
    }
}

impl From<&ChargeStatus> for ChargeState {
    fn from(status: &ChargeStatus) -> Self {
        match status {
            ChargeStatus::Pending => ChargeState::Pending,
            ChargeStatus::Due => ChargeState::Due,
            ChargeStatus::Processing => ChargeState::Processing,
            ChargeStatus::Reserved => ChargeState::Reserved,
            ChargeStatus::Charged => ChargeState::Charged,
            ChargeStatus::PartiallyCaptured => ChargeState::PartiallyCaptured,
            ChargeStatus::Failed => ChargeState::Failed,
            ChargeStatus::Cancelled => ChargeState::Cancelled,
            ChargeStatus::PartiallyRefunded => ChargeState::PartiallyRefunded,
            ChargeStatus::Refunded => ChargeState::Refunded,
            ChargeStatus::Unknown(other) => ChargeState::Other(other.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_states_keep_vipps_names() {
        for state in [State::Created, State::Aborted, State::Expired, State::Authorized, State::Terminated] {
            assert_eq!(PaymentState::from(&state).as_str(), state.as_str());
        }
        for status in
            [AgreementStatus::Pending, AgreementStatus::Active, AgreementStatus::Stopped, AgreementStatus::Expired]
        {
            assert_eq!(AgreementState::from(&status).as_str(), status.as_str());
        }
        for status in [
            ChargeStatus::Pending,
            ChargeStatus::Due,
            ChargeStatus::Processing,
            ChargeStatus::Reserved,
            ChargeStatus::Charged,
            ChargeStatus::PartiallyCaptured,
            ChargeStatus::Failed,
            ChargeStatus::Cancelled,
            ChargeStatus::PartiallyRefunded,
            ChargeStatus::Refunded,
            ChargeStatus::Unknown("LATER".into()),
        ] {
            assert_eq!(ChargeState::from(&status).as_str(), status.as_str());
        }
    }
}
