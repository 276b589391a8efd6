//! A payment intent as payhub understands it, after the Payment API's message was parsed and checked.

use std::collections::BTreeMap;

use url::Url;

use super::money::Money;
use super::phone::Phone;

/// The processor name payhub answers to (in intents, events and answers alike), and FinDock's, accepted as an
/// alias.
pub const PROCESSOR: &str = "PayHub-Vipps";
/// FinDock's name for the Vipps processor.
pub const FINDOCK_PROCESSOR: &str = "FinDock-Vipps";

/// A payment intent of either kind, as every channel (the Payment API, Giving Pages, PayLinks) hands it to
/// the intake.
#[derive(Debug, Clone, PartialEq)]
pub enum Intent {
    /// A one-time payment.
    OneTime(OneTimeIntent),
    /// A recurring payment, with an optional initial payment.
    Recurring(super::recurring::RecurringIntent),
}

/// The person or organisation paying, as the intent describes them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PayerInput {
    /// First name.
    pub first_name: Option<String>,
    /// Last name (or the organisation's name).
    pub last_name: Option<String>,
    /// Email (deduplication key).
    pub email: Option<String>,
    /// Mobile phone from the payer's fields, normalised (deduplication key).
    pub phone: Option<Phone>,
    /// Every field as sent (`SalesforceFields` of Contact and Account), kept as given.
    pub fields: BTreeMap<String, serde_json::Value>,
}

/// The Vipps parameters an intent may carry (`PaymentMethod.Parameters`), by their API names.
pub const VIPPS_PARAMETERS: [&str; 5] =
    ["mobileNumber", "TransactionText", "description", "ProductName", "MerchantAgreementUrl"];

/// The Vipps parameters of an intent (`PaymentMethod.Parameters`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VippsParameters {
    /// `mobileNumber`: the number Vipps should use; when absent Vipps asks the payer.
    pub mobile_number: Option<Phone>,
    /// `TransactionText`: the Bank Statement Description, sent to Vipps as the payment description.
    pub transaction_text: Option<String>,
    /// `description`: the installment's Product.
    pub description: Option<String>,
    /// `ProductName`: the agreement's product name (recurring).
    pub product_name: Option<String>,
    /// `MerchantAgreementUrl` (recurring).
    pub merchant_agreement_url: Option<String>,
}

/// A new one-time payment, ready to be recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct OneTimeIntent {
    /// Where the payer goes after paying.
    pub success_url: Url,
    /// Where the payer goes when the payment fails or is cancelled.
    pub failure_url: Url,
    /// Where this intent's events are posted, besides the configured endpoints.
    pub webhook_url: Option<Url>,
    /// Free-text channel label.
    pub origin: Option<String>,
    /// Campaign to link.
    pub campaign_id: Option<String>,
    /// The amount.
    pub amount: Money,
    /// The payer.
    pub payer: PayerInput,
    /// The merchant account's name (`Target`); `None` means the default account.
    pub target: Option<String>,
    /// The Vipps parameters.
    pub parameters: VippsParameters,
}
