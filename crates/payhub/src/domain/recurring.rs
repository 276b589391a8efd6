//! Recurring payments as payhub understands them: the mandate (a Vipps agreement) and its statuses, the
//! recurring payment and its statuses, and a recurring intent after parsing. Pure: no clock, no I/O.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;

use super::intent::OneTimeIntent;
use super::money::Money;
use super::schedule::{Frequency, Schedule};

/// The smallest agreement price and charge Vipps accepts, in øre (1 NOK).
pub const MIN_RECURRING_ORE: i64 = 100;

/// The largest recurring amount payhub sends to Vipps, in øre (20 000 NOK, the largest agreement ceiling the
/// Recurring API documents).
pub const MAX_RECURRING_ORE: i64 = 2_000_000;

/// The longest charge description Vipps accepts (characters).
pub const MAX_CHARGE_DESCRIPTION: usize = 45;

/// Where a mandate stands. Mirrors the Vipps agreement, plus `Cancelled` when payhub stopped it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MandateStatus {
    /// Drafted at Vipps, waiting for the payer (or not yet confirmed by Vipps).
    Pending,
    /// Accepted: charges may be created.
    Active,
    /// Stopped at Vipps (by the payer in the app, or rejected).
    Stopped,
    /// The payer did not accept in time, or the initial charge failed.
    Expired,
    /// Stopped by the organisation through payhub.
    Cancelled,
}

named_values!(
    MandateStatus,
    "Where a mandate (a Vipps agreement) stands.",
    [
        MandateStatus::Pending,
        MandateStatus::Active,
        MandateStatus::Stopped,
        MandateStatus::Expired,
        MandateStatus::Cancelled
    ]
);

impl MandateStatus {
    /// The name shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Active => "Active",
            Self::Stopped => "Stopped",
            Self::Expired => "Expired",
            Self::Cancelled => "Cancelled",
        }
    }

    /// Whether charges may be collected under it (FinDock's Active flag).
    pub fn is_active(self) -> bool {
        self == Self::Active
    }

    /// Whether `self → next` is a move forward. Stopped, Expired and Cancelled are final.
    pub fn can_become(self, next: MandateStatus) -> bool {
        use MandateStatus::*;
        match self {
            Pending => matches!(next, Active | Stopped | Expired | Cancelled),
            Active => matches!(next, Stopped | Cancelled),
            Stopped | Expired | Cancelled => false,
        }
    }
}

impl fmt::Display for MandateStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MandateStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use MandateStatus::*;
        [Pending, Active, Stopped, Expired, Cancelled]
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("unknown mandate status `{s}`"))
    }
}

/// Where a recurring payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecurringStatus {
    /// Installments are generated and collected.
    Active,
    /// No installments fall due until the pause ends.
    Paused,
    /// Cancelled by the organisation; Vipps has not yet confirmed the cancel of every charge still live there
    /// (nothing new is generated or charged; the `recurring.pending_changes` beat finishes it).
    Cancelling,
    /// Cancelled by the organisation.
    Cancelled,
    /// Ended: its mandate ended at Vipps, or the schedule passed its End Date.
    Ended,
}

named_values!(
    RecurringStatus,
    "Where a recurring payment stands.",
    [
        RecurringStatus::Active,
        RecurringStatus::Paused,
        RecurringStatus::Cancelling,
        RecurringStatus::Cancelled,
        RecurringStatus::Ended
    ]
);

impl RecurringStatus {
    /// The name shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "Active",
            Self::Paused => "Paused",
            Self::Cancelling => "Cancelling",
            Self::Cancelled => "Cancelled",
            Self::Ended => "Ended",
        }
    }

    /// Whether it can still change (Cancelled and Ended are final; Cancelling is on its way to Cancelled).
    pub fn is_open(self) -> bool {
        matches!(self, Self::Active | Self::Paused)
    }
}

impl fmt::Display for RecurringStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RecurringStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use RecurringStatus::*;
        [Active, Paused, Cancelling, Cancelled, Ended]
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("unknown recurring payment status `{s}`"))
    }
}

/// The terms of a recurring payment as the intent gives them.
#[derive(Debug, Clone, PartialEq)]
pub struct RecurringTerms {
    /// The amount of each installment.
    pub amount: Money,
    /// How often.
    pub frequency: Frequency,
    /// The first day an installment may fall due.
    pub start_date: NaiveDate,
    /// No installment falls due after this day.
    pub end_date: Option<NaiveDate>,
    /// Day of the month (monthly and longer frequencies).
    pub collection_day: Option<u32>,
}

impl RecurringTerms {
    /// The schedule these terms describe (already validated when parsed).
    pub fn schedule(&self) -> Option<Schedule> {
        Schedule::new(self.start_date, self.end_date, self.frequency, self.collection_day).ok()
    }
}

/// A new recurring payment, ready to be recorded: the common intent fields (whose `amount` is the recurring
/// amount), the terms, and the optional initial one-time payment (Vipps `initialCharge`).
#[derive(Debug, Clone, PartialEq)]
pub struct RecurringIntent {
    /// URLs, payer, target and parameters, as for a one-time intent.
    pub base: OneTimeIntent,
    /// Amount, frequency and dates.
    pub terms: RecurringTerms,
    /// The initial payment collected when the payer accepts, if any.
    pub initial: Option<Money>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_mandate_statuses_never_move() {
        use MandateStatus::*;
        for last in [Stopped, Expired, Cancelled] {
            for next in [Pending, Active, Stopped, Expired, Cancelled] {
                assert!(!last.can_become(next), "{last} → {next}");
            }
        }
        assert!(Pending.can_become(Active) && Active.can_become(Cancelled) && !Active.can_become(Pending));
        assert_eq!("Cancelled".parse(), Ok(Cancelled));
        assert_eq!("Paused".parse(), Ok(RecurringStatus::Paused));
        assert!(RecurringStatus::Paused.is_open() && !RecurringStatus::Ended.is_open());
    }
}
