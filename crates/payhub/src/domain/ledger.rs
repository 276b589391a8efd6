//! The words of reconciliation: how payhub reads a Vipps ledger row (its kind, from the entry type or, for a
//! type Vipps added later, from the sign of the amount), where a ledger row stands, why a row waits in the
//! Guided Matching queue, and the matching rules. Closed sets, stored as text: a finance user filtering by
//! reason or status must find every row, and an unknown stored word is a decode error, not a silent default.

use std::fmt;
use std::str::FromStr;

/// Which of a ledger's two accounts a row is on (the Report API's `topic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// Money in and out (captures, refunds, retained fees, payouts).
    Funds,
    /// Fees (capture fees, their retention).
    Fees,
}

impl Topic {
    /// Both topics, in the order they are imported.
    pub const ALL: [Topic; 2] = [Topic::Funds, Topic::Fees];

    /// The stored and wire word.
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Funds => "funds",
            Topic::Fees => "fees",
        }
    }
}

impl FromStr for Topic {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "funds" => Ok(Topic::Funds),
            "fees" => Ok(Topic::Fees),
            other => Err(format!("unknown ledger topic `{other}`")),
        }
    }
}

/// What a ledger row is, to payhub. Vipps adds entry types without notice; one payhub does not know is kept as
/// sent and read by the sign of its amount ([`EntryKind::classify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// Money captured from a payer (+).
    Capture,
    /// Money refunded to a payer (−).
    Refund,
    /// The fee of one capture (fees topic, −).
    CaptureFee,
    /// The day's fees retained from the funds (− on funds, + on fees).
    FeesRetained,
    /// A payout scheduled (−; `payout-scheduled`, formerly `scheduled-for-payout`).
    Payout,
    /// A payout aborted (+).
    PayoutAborted,
    /// A disputed capture retained or returned.
    Dispute,
    /// A correction by Vipps (±).
    Correction,
    /// Other known money movements that are not a payer's (top-up, credit note, fees invoiced).
    Other,
    /// An entry type payhub does not know, with a positive amount.
    UnknownCredit,
    /// An entry type payhub does not know, with a zero or negative amount.
    UnknownDebit,
}

impl EntryKind {
    /// Every kind.
    pub const ALL: [EntryKind; 11] = [
        Self::Capture,
        Self::Refund,
        Self::CaptureFee,
        Self::FeesRetained,
        Self::Payout,
        Self::PayoutAborted,
        Self::Dispute,
        Self::Correction,
        Self::Other,
        Self::UnknownCredit,
        Self::UnknownDebit,
    ];

    /// The kind of a row with Vipps' `entry_type` and signed `amount` (øre).
    pub fn classify(entry_type: &str, amount: i64) -> EntryKind {
        match entry_type {
            "capture" => Self::Capture,
            "refund" => Self::Refund,
            "capture-fee" => Self::CaptureFee,
            "fees-retained" => Self::FeesRetained,
            "payout-scheduled" | "scheduled-for-payout" => Self::Payout,
            "payout-aborted" => Self::PayoutAborted,
            "retained-disputed-capture" | "returned-disputed-capture" => Self::Dispute,
            "correction" => Self::Correction,
            "top-up" | "credit-note" | "fees-invoiced" => Self::Other,
            _ if amount > 0 => Self::UnknownCredit,
            _ => Self::UnknownDebit,
        }
    }

    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Capture => "capture",
            Self::Refund => "refund",
            Self::CaptureFee => "capture_fee",
            Self::FeesRetained => "fees_retained",
            Self::Payout => "payout",
            Self::PayoutAborted => "payout_aborted",
            Self::Dispute => "dispute",
            Self::Correction => "correction",
            Self::Other => "other",
            Self::UnknownCredit => "unknown_credit",
            Self::UnknownDebit => "unknown_debit",
        }
    }
}

impl FromStr for EntryKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| format!("unknown entry kind `{s}`"))
    }
}

/// Where a stored ledger row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryStatus {
    /// Imported, not matched yet (or waiting for the payout that covers it).
    New,
    /// Booked against payhub's records.
    Booked,
    /// Waiting in the Guided Matching queue.
    Queued,
    /// Decided not to book (by a person).
    Ignored,
    /// Its ledger date does not balance: flagged, nothing of it booked.
    Held,
}

impl EntryStatus {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Booked => "booked",
            Self::Queued => "queued",
            Self::Ignored => "ignored",
            Self::Held => "held",
        }
    }
}

impl FromStr for EntryStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::New, Self::Booked, Self::Queued, Self::Ignored, Self::Held]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown ledger entry status `{s}`"))
    }
}

/// Where a ledger row came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntrySource {
    /// The Report API.
    Api,
    /// A settlement file from the Vipps portal.
    File,
}

impl EntrySource {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::File => "file",
        }
    }
}

/// Why a ledger row waits for a person (the `match_queue.reason` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueReason {
    /// Nothing of payhub's matches it.
    NoCandidate,
    /// More than one record of payhub's matches it equally.
    SeveralCandidates,
    /// The record found expects another amount.
    AmountDiffers,
    /// The installment found was already settled by another row.
    AlreadyPaid,
    /// An entry type payhub does not know (or a known one it never books on its own).
    UnknownType,
    /// A payment straight to a Vipps number: no payhub record can carry its reference.
    VippsNumberPayment,
    /// A disputed capture, retained or returned.
    Dispute,
    /// A correction by Vipps.
    Correction,
}

impl QueueReason {
    /// Every reason.
    pub const ALL: [QueueReason; 8] = [
        Self::NoCandidate,
        Self::SeveralCandidates,
        Self::AmountDiffers,
        Self::AlreadyPaid,
        Self::UnknownType,
        Self::VippsNumberPayment,
        Self::Dispute,
        Self::Correction,
    ];

    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoCandidate => "no_candidate",
            Self::SeveralCandidates => "several_candidates",
            Self::AmountDiffers => "amount_differs",
            Self::AlreadyPaid => "already_paid",
            Self::UnknownType => "unknown_type",
            Self::VippsNumberPayment => "vipps_number_payment",
            Self::Dispute => "dispute",
            Self::Correction => "correction",
        }
    }

    /// Said to a finance user.
    pub fn describe(self) -> &'static str {
        match self {
            Self::NoCandidate => "no installment or payment matches this line",
            Self::SeveralCandidates => "several installments match this line equally",
            Self::AmountDiffers => "the amount differs from what was expected",
            Self::AlreadyPaid => "the installment was already paid by another line",
            Self::UnknownType => "an entry type payhub does not book on its own",
            Self::VippsNumberPayment => "a payment straight to a Vipps number",
            Self::Dispute => "a disputed capture",
            Self::Correction => "a correction by Vipps",
        }
    }
}

impl fmt::Display for QueueReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for QueueReason {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| format!("unknown queue reason `{s}`"))
    }
}

/// Where a queue item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueStatus {
    /// Waiting for a person.
    Open,
    /// Matched by a person.
    Matched,
    /// Ignored by a person (with a remark).
    Ignored,
}

impl QueueStatus {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Matched => "matched",
            Self::Ignored => "ignored",
        }
    }
}

impl FromStr for QueueStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Open, Self::Matched, Self::Ignored]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown queue status `{s}`"))
    }
}

/// One matching rule (the `match_rules.rule` column). Rules are data: per account and report sub type
/// (`ledger.<entryType>`), tried in order; the first that finds something decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchRule {
    /// The Payment recorded under the row's pspReference.
    PaymentByPspReference,
    /// The installment whose payment reference (ePayment reference / recurring charge id) is the row's reference.
    InstallmentByReference,
    /// The refund Payment recorded under the row's pspReference.
    RefundByPspReference,
    /// A capture fee attached to the Payment of the capture with the same pspReference.
    FeeOfCapture,
    /// Part of a payout: fees retained and the payout row make a Payout covering its dates.
    Payout,
}

impl MatchRule {
    /// Every rule.
    pub const ALL: [MatchRule; 5] = [
        Self::PaymentByPspReference,
        Self::InstallmentByReference,
        Self::RefundByPspReference,
        Self::FeeOfCapture,
        Self::Payout,
    ];

    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PaymentByPspReference => "payment_by_psp_reference",
            Self::InstallmentByReference => "installment_by_reference",
            Self::RefundByPspReference => "refund_by_psp_reference",
            Self::FeeOfCapture => "fee_of_capture",
            Self::Payout => "payout",
        }
    }

    /// The shipped rules for a report sub type (what migration 11 stores for account `''`).
    pub fn defaults(sub_type: &str) -> &'static [MatchRule] {
        match sub_type {
            "ledger.capture" => &[Self::PaymentByPspReference, Self::InstallmentByReference],
            "ledger.refund" => &[Self::RefundByPspReference],
            "ledger.capture-fee" => &[Self::FeeOfCapture],
            "ledger.fees-retained" | "ledger.payout-scheduled" | "ledger.scheduled-for-payout" => &[Self::Payout],
            _ => &[],
        }
    }
}

impl FromStr for MatchRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| format!("unknown matching rule `{s}`"))
    }
}

/// The payout number in a payout row's bank text (`Vipps utbet. 2000023 Vippsnr 57860`, `Utb. 2000167 …`).
pub fn payout_number(bank_text: &str) -> Option<&str> {
    bank_text.split_whitespace().find(|w| w.len() >= 4 && w.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_entry_types_are_read_by_their_sign() {
        assert_eq!(EntryKind::classify("capture", 100), EntryKind::Capture);
        assert_eq!(EntryKind::classify("scheduled-for-payout", -5), EntryKind::Payout);
        assert_eq!(EntryKind::classify("brand-new", 5), EntryKind::UnknownCredit);
        assert_eq!(EntryKind::classify("brand-new", -5), EntryKind::UnknownDebit);
        for kind in EntryKind::ALL {
            assert_eq!(kind.as_str().parse::<EntryKind>(), Ok(kind));
        }
    }

    #[test]
    fn stored_words_round_trip() {
        for r in QueueReason::ALL {
            assert_eq!(r.as_str().parse::<QueueReason>(), Ok(r));
        }
        for r in MatchRule::ALL {
            assert_eq!(r.as_str().parse::<MatchRule>(), Ok(r));
        }
        assert_eq!(MatchRule::defaults("ledger.capture").len(), 2);
        assert!(MatchRule::defaults("ledger.correction").is_empty());
    }

    #[test]
    fn the_payout_number_is_read_from_the_bank_text() {
        assert_eq!(payout_number("Vipps utbet. 2000023 Vippsnr 57860"), Some("2000023"));
        assert_eq!(payout_number("Utb. 2000167 Vippsnr 548005"), Some("2000167"));
        assert_eq!(payout_number(""), None);
    }
}
