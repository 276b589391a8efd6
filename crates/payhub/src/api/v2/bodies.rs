//! The Payment API's request bodies as types, for `/openapi.json`. The handlers read their bodies by hand (so
//! that every problem gets FinDock's code and the field's path, see [`super::request`]); these types state the
//! same rules: the fields each parser takes, which are required, their kinds, lengths and values. Unknown fields
//! are refused, except in `SalesforceFields`.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::Value;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::domain::money::AmountInput;

/// Body of `POST /v2/PaymentIntent`: a new payment, or paying an installment already owed.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PaymentIntentRequest {
    /// A new one-time or recurring payment.
    New(Box<NewIntent>),
    /// Pay an existing installment.
    Existing(PayInstallment),
}

/// A new payment: `OneTime` for a one-time payment; `Recurring` for a recurring one (with `OneTime` as its
/// optional initial payment). Every problem is answered at once, each with FinDock's code (`010` missing, `200`
/// invalid) and the field's path.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIntent {
    /// Where Vipps sends the payer after a payment or agreement (through payhub's return page).
    #[serde(rename = "SuccessURL")]
    #[schema(format = "uri", max_length = 2048)]
    pub success_url: String,
    /// Where the payer lands after a failure or cancel.
    #[serde(rename = "FailureURL")]
    #[schema(format = "uri", max_length = 2048)]
    pub failure_url: String,
    /// Accepted for FinDock compatibility and ignored.
    #[serde(rename = "RedirectURL")]
    pub redirect_url: Option<Value>,
    /// Where this intent's events are sent as well (FinDock's events, signed); a public host unless the
    /// operator allows private ones.
    #[serde(rename = "WebhookURL")]
    #[schema(format = "uri", max_length = 2048)]
    pub webhook_url: Option<String>,
    /// A free-text channel label (a form's name), kept on the records.
    #[serde(rename = "Origin")]
    #[schema(max_length = 255)]
    pub origin: Option<String>,
    /// The campaign the payment belongs to.
    #[serde(rename = "CampaignId")]
    #[schema(max_length = 64)]
    pub campaign_id: Option<String>,
    /// A repeat with the same key gets the first answer (the `Idempotency-Key` header wins when both are
    /// given); a different request with it gets `409`.
    #[serde(rename = "IdempotencyKey")]
    #[schema(max_length = 100)]
    pub idempotency_key: Option<String>,
    /// Kept with the intent's Message as sent.
    #[serde(rename = "SalesforceFields")]
    #[schema(value_type = Option<Object>)]
    pub salesforce_fields: Option<Value>,
    /// Who pays.
    #[serde(rename = "Payer")]
    pub payer: PayerInput,
    /// The one-time amount: required without `Recurring`, the optional initial payment with it.
    #[serde(rename = "OneTime")]
    pub one_time: Option<OneTimeInput>,
    /// The recurring payment's terms; a Vipps agreement is drafted for it.
    #[serde(rename = "Recurring")]
    pub recurring: Option<RecurringInput>,
    /// The method (Vipps), the merchant account and Vipps' parameters.
    #[serde(rename = "PaymentMethod")]
    pub payment_method: PaymentMethodInput,
}

/// Pay an installment already owed (FinDock's way), as its PayLink does: the request is recorded as an intent of
/// its own, no new installment and no second Vipps payment; the answer points at the installment's one payment,
/// made now if it has none. Other fields are ignored.
#[derive(Deserialize, ToSchema)]
pub struct PayInstallment {
    /// The installment to pay.
    #[serde(rename = "OneTime")]
    pub one_time: ExistingInstallment,
    /// As for a new payment.
    #[serde(rename = "IdempotencyKey")]
    #[schema(max_length = 100)]
    pub idempotency_key: Option<String>,
}

/// The installment to pay.
#[derive(Deserialize, ToSchema)]
pub struct ExistingInstallment {
    /// `ins_…`: open, not collected on an agreement.
    #[serde(rename = "Id")]
    pub id: String,
}

/// The payer: a Contact, an Account, or both. payhub finds the payer by email, then by phone, else makes one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayerInput {
    /// A person.
    #[serde(rename = "Contact")]
    pub contact: Option<PayerPart>,
    /// An organisation.
    #[serde(rename = "Account")]
    pub account: Option<PayerPart>,
}

/// A Contact or Account, by its fields (a Salesforce record `Id` is not supported).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayerPart {
    /// Any fields, kept as sent. payhub reads `FirstName`, `LastName` (or `Name`), `Email` (must look like an
    /// address) and `MobilePhone` (or `Phone`, a Norwegian mobile number).
    #[serde(rename = "SalesforceFields")]
    pub salesforce_fields: Option<BTreeMap<String, FieldValue>>,
}

/// A field value: text of at most 255 characters, a number, a boolean or `null`.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct FieldValue(pub Value);

impl PartialSchema for FieldValue {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Number, Type::Boolean, Type::Null]))
            .max_length(Some(255))
            .description(Some("Text of at most 255 characters, a number, a boolean or null."))
            .into()
    }
}

impl ToSchema for FieldValue {}

/// The only currency Vipps takes here.
#[derive(Deserialize, ToSchema)]
pub enum Currency {
    /// Norwegian kroner.
    #[serde(rename = "NOK")]
    Nok,
}

/// The one-time amount.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OneTimeInput {
    /// At least 1 NOK (Vipps' smallest payment).
    #[serde(rename = "Amount")]
    pub amount: AmountInput,
    /// `NOK` when given.
    #[serde(rename = "CurrencyISOCode")]
    pub currency_iso_code: Option<Currency>,
    /// Kept with the intent's Message as sent.
    #[serde(rename = "SalesforceFields")]
    #[schema(value_type = Option<Object>)]
    pub salesforce_fields: Option<Value>,
}

/// A frequency as a request may name it (FinDock's names and their common spellings).
#[derive(Deserialize, ToSchema)]
pub enum FrequencyName {
    /// Every week.
    Weekly,
    /// Every month.
    Monthly,
    /// Every three months.
    Quarterly,
    /// Every six months.
    #[serde(rename = "Half-yearly")]
    HalfYearly,
    /// Every six months.
    #[serde(rename = "Half-Yearly")]
    HalfYearlyCapital,
    /// Every six months.
    #[serde(rename = "Semi-annually")]
    SemiAnnually,
    /// Every year.
    Yearly,
    /// Every year.
    Annually,
}

/// A day of the month, 1 to 31, as a number or a string; 29–31 fall on a shorter month's last day.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct DayInput(pub Value);

impl PartialSchema for DayInput {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Integer, Type::String]))
            .minimum(Some(1.0))
            .maximum(Some(31.0))
            .pattern(Some(r"^\s*\+?0*([1-9]|[12][0-9]|3[01])\s*$"))
            .description(Some("A day of the month, 1 to 31, as a number or a string."))
            .into()
    }
}

impl ToSchema for DayInput {}

/// A recurring payment's terms.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecurringInput {
    /// Each installment's amount, within Vipps' limits for an agreement.
    #[serde(rename = "Amount")]
    pub amount: AmountInput,
    /// How often.
    #[serde(rename = "Frequency")]
    pub frequency: FrequencyName,
    /// The first period (`YYYY-MM-DD`, not before today); today when absent.
    #[serde(rename = "StartDate")]
    pub start_date: Option<NaiveDate>,
    /// The last day (`YYYY-MM-DD`, not before StartDate); at least one installment must fall due by then.
    #[serde(rename = "EndDate")]
    pub end_date: Option<NaiveDate>,
    /// The day of the month installments fall due.
    #[serde(rename = "CollectionDay")]
    pub collection_day: Option<DayInput>,
    /// `NOK` when given.
    #[serde(rename = "CurrencyISOCode")]
    pub currency_iso_code: Option<Currency>,
    /// Kept with the intent's Message as sent.
    #[serde(rename = "SalesforceFields")]
    #[schema(value_type = Option<Object>)]
    pub salesforce_fields: Option<Value>,
}

/// The only method.
#[derive(Deserialize, ToSchema)]
pub enum MethodName {
    /// Vipps MobilePay.
    Vipps,
}

/// The processor, by payhub's name or FinDock's.
#[derive(Deserialize, ToSchema)]
pub enum ProcessorName {
    /// payhub's name.
    #[serde(rename = "PayHub-Vipps")]
    PayHub,
    /// FinDock's name, taken as the same.
    #[serde(rename = "FinDock-Vipps")]
    FinDock,
}

/// The payment method.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentMethodInput {
    /// `Vipps`.
    #[serde(rename = "Name")]
    pub name: MethodName,
    /// The processor; `PayHub-Vipps` when absent.
    #[serde(rename = "Processor")]
    pub processor: Option<ProcessorName>,
    /// The merchant account's name (see `GET /v2/PaymentMethods`); the default account when absent.
    #[serde(rename = "Target")]
    #[schema(max_length = 80)]
    pub target: Option<String>,
    /// Vipps' parameters; an account's defaults fill what is absent.
    #[serde(rename = "Parameters")]
    pub parameters: Option<VippsParametersInput>,
}

/// What `PaymentMethod.Parameters` may hold (also listed by `GET /v2/PaymentMethods`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VippsParametersInput {
    /// The payer's mobile number (Norwegian, `+47 …` or 8 digits); Vipps asks the payer when absent.
    #[serde(rename = "mobileNumber")]
    #[schema(max_length = 32)]
    pub mobile_number: Option<String>,
    /// Shown to the payer and on the bank statement: 3 to 100 characters (at most 45 for a recurring payment,
    /// Vipps' charge description limit).
    #[serde(rename = "TransactionText")]
    #[schema(max_length = 100)]
    pub transaction_text: Option<String>,
    /// The installment's Product.
    #[serde(rename = "description")]
    #[schema(max_length = 255)]
    pub description: Option<String>,
    /// The agreement's product name (recurring).
    #[serde(rename = "ProductName")]
    #[schema(max_length = 45)]
    pub product_name: Option<String>,
    /// The agreement's management page (recurring).
    #[serde(rename = "MerchantAgreementUrl")]
    #[schema(max_length = 1024)]
    pub merchant_agreement_url: Option<String>,
}

/// Body of `POST /v2/Refund`: `PaymentId` or `InstallmentId` (one of them), and optionally a part of what is
/// left to refund.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    /// A payment (`pmt_…`) of the installment to refund.
    #[serde(rename = "PaymentId")]
    pub payment_id: Option<String>,
    /// The installment to refund (`ins_…`).
    #[serde(rename = "InstallmentId")]
    pub installment_id: Option<String>,
    /// How much; all that is left to refund when absent.
    #[serde(rename = "Amount")]
    pub amount: Option<AmountInput>,
    /// Why, kept on the refund.
    #[serde(rename = "Reason")]
    #[schema(max_length = 255)]
    pub reason: Option<String>,
    /// A repeat with the same key gets the first answer and never makes a second refund.
    #[serde(rename = "IdempotencyKey")]
    #[schema(max_length = 100)]
    pub idempotency_key: Option<String>,
}

/// Body of `PATCH /v2/Recurring/{id}`: `Amount` and/or `CollectionDay`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecurringChange {
    /// The new amount of each installment not yet charged (and the agreement's price).
    #[serde(rename = "Amount")]
    pub amount: Option<AmountInput>,
    /// The new day of the month installments not yet charged fall due.
    #[serde(rename = "CollectionDay")]
    pub collection_day: Option<DayInput>,
}

/// Body of `POST /v2/Recurring/{id}/Pause`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseBody {
    /// No charges before this day (`YYYY-MM-DD`, after today).
    #[serde(rename = "Until")]
    pub until: NaiveDate,
}

/// Body of `POST /v2/Recurring/{id}/Resume`: empty, or an empty object.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeBody {}

/// Body of `POST /v2/Recurring/{id}/Cancel`: empty, or an object with the reason.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// Why, kept as the recurring payment's StatusReason.
    #[serde(rename = "Reason")]
    #[schema(max_length = 255)]
    pub reason: Option<String>,
}

/// Body of `POST /v2/actions/CancelVippsAgreement`: `MandateId` or `AgreementId`, not both.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelAgreementBody {
    /// payhub's mandate id (`mdt_…`).
    #[serde(rename = "MandateId")]
    pub mandate_id: Option<String>,
    /// The Vipps agreement id (`agr_…`).
    #[serde(rename = "AgreementId")]
    pub agreement_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use serde_json::json;

    use super::*;
    use crate::api::v2::request;
    use crate::domain::webhook_target::WebhookTargets;

    fn documented(body: &Value) -> Option<PaymentIntentRequest> {
        serde_json::from_value(body.clone()).ok()
    }

    #[test]
    fn a_body_the_parser_takes_is_one_the_type_describes_and_unknown_fields_are_refused_by_both() {
        let one_time = json!({"SuccessURL": "https://example.org/ok", "FailureURL": "https://example.org/fail",
            "Origin": "Spring form", "IdempotencyKey": "k-1",
            "Payer": {"Contact": {"SalesforceFields": {"FirstName": "Kari", "Email": "", "Age": 40, "Gdpr": true}}},
            "OneTime": {"Amount": "36.50", "CurrencyISOCode": "NOK"},
            "PaymentMethod": {"Name": "Vipps", "Processor": "FinDock-Vipps", "Target": "Sandbox",
                              "Parameters": {"mobileNumber": "+47 912 34 567", "TransactionText": "Gift"}}});
        let recurring = json!({"SuccessURL": "https://example.org/ok", "FailureURL": "https://example.org/fail",
            "Payer": {"Account": {"SalesforceFields": {"Name": "Acme AS"}}},
            "Recurring": {"Amount": 100, "Frequency": "Half-Yearly", "StartDate": "2030-01-01", "CollectionDay": "15"},
            "PaymentMethod": {"Name": "Vipps"}});
        for body in [&one_time, &recurring] {
            assert!(request::parse(body, NaiveDate::MIN, WebhookTargets::PublicOnly).is_ok(), "{body}");
            assert!(matches!(documented(body), Some(PaymentIntentRequest::New(_))), "{body}");
        }
        assert!(matches!(documented(&json!({"OneTime": {"Id": "ins_1"}})), Some(PaymentIntentRequest::Existing(_))));
        let mut unknown = one_time.clone();
        unknown["Colour"] = json!("red");
        assert!(request::parse(&unknown, NaiveDate::MIN, WebhookTargets::PublicOnly).is_err());
        assert!(documented(&unknown).is_none());
        let mut processor = one_time;
        processor["PaymentMethod"]["Processor"] = json!("Stripe");
        assert!(request::parse(&processor, NaiveDate::MIN, WebhookTargets::PublicOnly).is_err());
        assert!(documented(&processor).is_none());
    }
}
