//! Statuses of installments and payment intents, and the moves between them. Terminal statuses never move
//! backwards: a late or repeated event cannot undo a collection or a failure.

use std::fmt;
use std::str::FromStr;

/// Where an installment (one expected amount) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstallmentStatus {
    /// Created; nothing sent to Vipps yet.
    Outstanding,
    /// At Vipps, waiting for the payer or the charge date.
    Pending,
    /// Captured / charged.
    Collected,
    /// Part of the collected amount was refunded.
    PartiallyRefunded,
    /// All of the collected amount was refunded.
    Refunded,
    /// Collected and seen in the settlement ledger.
    Paid,
    /// Not collected: rejected, expired, cancelled at Vipps, insufficient funds…
    Failed,
    /// Cancelled by the organisation.
    Cancelled,
}

named_values!(
    InstallmentStatus,
    "Where an installment stands (FinDock's statuses).",
    [
        InstallmentStatus::Outstanding,
        InstallmentStatus::Pending,
        InstallmentStatus::Collected,
        InstallmentStatus::PartiallyRefunded,
        InstallmentStatus::Refunded,
        InstallmentStatus::Paid,
        InstallmentStatus::Failed,
        InstallmentStatus::Cancelled,
    ]
);

impl InstallmentStatus {
    /// Every status.
    pub const ALL: [InstallmentStatus; 8] = [
        Self::Outstanding,
        Self::Pending,
        Self::Collected,
        Self::PartiallyRefunded,
        Self::Refunded,
        Self::Paid,
        Self::Failed,
        Self::Cancelled,
    ];

    /// The name shown in the API (FinDock's wording).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Outstanding => "Outstanding",
            Self::Pending => "Pending",
            Self::Collected => "Collected",
            Self::PartiallyRefunded => "Partially refunded",
            Self::Refunded => "Refunded",
            Self::Paid => "Paid",
            Self::Failed => "Failed",
            Self::Cancelled => "Cancelled",
        }
    }

    /// Whether `self → next` is a move forward. Staying put is not a move.
    pub fn can_become(self, next: InstallmentStatus) -> bool {
        use InstallmentStatus::*;
        match self {
            Outstanding => matches!(next, Pending | Collected | Failed | Cancelled),
            Pending => matches!(next, Collected | Failed | Cancelled),
            Collected => matches!(next, PartiallyRefunded | Refunded | Paid),
            Paid => matches!(next, PartiallyRefunded | Refunded),
            PartiallyRefunded => matches!(next, Refunded),
            Refunded | Failed | Cancelled => false,
        }
    }

    /// Whether money was collected on this installment (so it can be refunded).
    pub fn is_collected(self) -> bool {
        matches!(self, Self::Collected | Self::Paid | Self::PartiallyRefunded)
    }
}

impl fmt::Display for InstallmentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InstallmentStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use InstallmentStatus::*;
        [Outstanding, Pending, Collected, PartiallyRefunded, Refunded, Paid, Failed, Cancelled]
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("unknown installment status `{s}`"))
    }
}

/// Where a payment intent stands (FinDock's statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntentStatus {
    /// Received, not yet processed.
    New,
    /// Being processed.
    Processing,
    /// Needs a person.
    GuidedReview,
    /// Processed: its installment or recurring payment exists.
    Matched,
    /// Processing failed.
    Failed,
}

named_values!(
    IntentStatus,
    "Where a Payment Intent stands.",
    [
        IntentStatus::New,
        IntentStatus::Processing,
        IntentStatus::GuidedReview,
        IntentStatus::Matched,
        IntentStatus::Failed,
    ]
);

impl IntentStatus {
    /// The name shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "New",
            Self::Processing => "Processing",
            Self::GuidedReview => "Guided Review",
            Self::Matched => "Matched",
            Self::Failed => "Failed",
        }
    }

    /// Whether `self → next` is a move forward: an intent is decided once (Matched or Failed) and stays so, so a
    /// late answer cannot undo a decision. Staying put is not a move.
    pub fn can_become(self, next: IntentStatus) -> bool {
        use IntentStatus::*;
        match self {
            New => matches!(next, Processing | GuidedReview | Matched | Failed),
            Processing => matches!(next, GuidedReview | Matched | Failed),
            GuidedReview => matches!(next, Matched | Failed),
            Matched | Failed => false,
        }
    }

    /// Every status.
    pub const ALL: [IntentStatus; 5] = [Self::New, Self::Processing, Self::GuidedReview, Self::Matched, Self::Failed];
}

impl FromStr for IntentStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use IntentStatus::*;
        [New, Processing, GuidedReview, Matched, Failed]
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("unknown intent status `{s}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use InstallmentStatus::*;

    #[test]
    fn a_decided_intent_stays_decided() {
        use IntentStatus::*;
        for decided in [Matched, Failed] {
            assert!(IntentStatus::ALL.iter().all(|next| !decided.can_become(*next)), "{decided:?}");
        }
        assert!(Processing.can_become(Matched) && Processing.can_become(Failed) && !Processing.can_become(New));
    }

    #[test]
    fn terminal_statuses_never_move_backwards() {
        for terminal in [Refunded, Failed, Cancelled] {
            for next in [Outstanding, Pending, Collected, PartiallyRefunded, Refunded, Paid, Failed, Cancelled] {
                assert!(!terminal.can_become(next), "{terminal} → {next}");
            }
        }
        assert!(!Collected.can_become(Pending) && !Collected.can_become(Failed));
        assert!(
            Pending.can_become(Collected)
                && Collected.can_become(PartiallyRefunded)
                && PartiallyRefunded.can_become(Refunded)
        );
        assert_eq!("Partially refunded".parse(), Ok(PartiallyRefunded));
        assert_eq!("Guided Review".parse(), Ok(IntentStatus::GuidedReview));
    }
}
