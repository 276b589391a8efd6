//! The words of the trail: where a Message came from, what an Inbound Report says it is, and how it ended.
//! Every change of money points back to one Inbound Report and its Message, so these are closed sets, not
//! free text: a finance user filtering the trail by channel or outcome must find every row.

/// Where a Message came from (the `messages.channel` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// An integrator's call of the Payment API (or a page that takes intents).
    Api,
    /// A delivery of Vipps' webhooks, stored before it is processed.
    VippsWebhook,
    /// What payhub read from Vipps on its own (a poll, a sync after a webhook or the payer's return).
    VippsPoll,
    /// Vipps' answer to a call payhub made (a create, a capture, a refund).
    VippsCall,
    /// A page of the Vipps settlement ledger (Report API), or one transaction of it.
    Ledger,
    /// A settlement file uploaded from the Vipps portal, or one row of it.
    SettlementFile,
    /// A person's decision in Guided Matching that reverses money booked before (the undo of a match).
    GuidedMatching,
}

impl Channel {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Api => "api",
            Channel::VippsWebhook => "vipps_webhook",
            Channel::VippsPoll => "vipps_poll",
            Channel::VippsCall => "vipps_call",
            Channel::Ledger => "vipps_ledger",
            Channel::SettlementFile => "settlement_file",
            Channel::GuidedMatching => "guided_matching",
        }
    }
}

/// Where a Message stands (the `messages.status` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStatus {
    /// Kept, waiting to be processed (a webhook before its job ran).
    New,
    /// Processed.
    Processed,
    /// Processing failed, with the error kept beside it.
    Failed,
}

impl MessageStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::New => "New",
            MessageStatus::Processed => "Processed",
            MessageStatus::Failed => "Failed",
        }
    }
}

/// Who an Inbound Report speaks for (the `inbound_reports.report_type` column): FinDock's report types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportType {
    /// A payment intent received (sub type `Default`).
    PaymentIntent,
    /// Something Vipps said: a payment, agreement or charge event, or a ledger entry (`ledger.<entryType>`).
    Vipps,
    /// What a person decided in Guided Matching (sub type `undo`: a match reversed).
    GuidedMatching,
}

impl ReportType {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportType::PaymentIntent => "PaymentIntent",
            ReportType::Vipps => "Vipps",
            ReportType::GuidedMatching => "GuidedMatching",
        }
    }
}

/// How an Inbound Report ended (the `inbound_reports.status` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Recorded, not processed yet.
    New,
    /// Processed and booked against payhub's records.
    Matched,
    /// Understood and deliberately not booked (with why in the detail).
    Ignored,
    /// Could not be processed (with the error in the detail).
    Failed,
}

impl Outcome {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::New => "New",
            Outcome::Matched => "Matched",
            Outcome::Ignored => "Ignored",
            Outcome::Failed => "Failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_words_stay_what_earlier_versions_wrote() {
        let channels = [
            Channel::Api,
            Channel::VippsWebhook,
            Channel::VippsPoll,
            Channel::VippsCall,
            Channel::Ledger,
            Channel::SettlementFile,
            Channel::GuidedMatching,
        ];
        let words: Vec<_> = channels.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            words,
            ["api", "vipps_webhook", "vipps_poll", "vipps_call", "vipps_ledger", "settlement_file", "guided_matching"]
        );
        assert_eq!(ReportType::PaymentIntent.as_str(), "PaymentIntent");
        assert_eq!(Outcome::Ignored.as_str(), "Ignored");
    }
}
