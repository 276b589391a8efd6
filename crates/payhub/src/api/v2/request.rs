//! Parsing `POST /v2/PaymentIntent` (FinDock v2, PascalCase) into a one-time or a recurring intent. Every problem is
//! reported with FinDock's code and the path of the field: `010` a core parameter is missing, `011` a
//! processor parameter is missing, `200` invalid data. Unknown fields are refused rather than silently dropped,
//! except inside `SalesforceFields`, which are kept as sent.

use serde_json::{Map, Value};
use url::Url;

use crate::api::error::ErrorItem;
use chrono::NaiveDate;

use crate::domain::intent::{Intent, OneTimeIntent, PayerInput, VippsParameters};
use crate::domain::money::Money;
use crate::domain::phone::Phone;
use crate::domain::recurring::{
    RecurringIntent, RecurringTerms, MAX_CHARGE_DESCRIPTION, MAX_RECURRING_ORE, MIN_RECURRING_ORE,
};
use crate::domain::schedule::{Frequency, Schedule};
use crate::domain::webhook_target::WebhookTargets;

pub use crate::domain::intent::{FINDOCK_PROCESSOR, PROCESSOR};

/// Vipps' smallest payment, 1 NOK: a smaller one would be recorded, then refused by Vipps.
const MIN_ONE_TIME_ORE: i64 = 100;

/// The Vipps parameters an intent may carry (`PaymentMethod.Parameters`).
pub const PARAMETERS: [&str; 5] =
    ["mobileNumber", "TransactionText", "description", "ProductName", "MerchantAgreementUrl"];

struct Errors(Vec<ErrorItem>);

impl Errors {
    fn missing(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(ErrorItem { error_code: "010", error_message: message.into(), field: Some(field.to_owned()) });
    }

    fn invalid(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(ErrorItem { error_code: "200", error_message: message.into(), field: Some(field.to_owned()) });
    }
}

fn object<'a>(value: &'a Value, path: &str, allowed: &[&str], errors: &mut Errors) -> Option<&'a Map<String, Value>> {
    match value {
        Value::Object(map) => {
            for key in map.keys().filter(|k| !allowed.contains(&k.as_str())) {
                errors.invalid(&format!("{path}.{key}"), format!("Unknown field {key}"));
            }
            Some(map)
        }
        Value::Null => None,
        _ => {
            errors.invalid(path, format!("{path} must be an object"));
            None
        }
    }
}

fn text(map: &Map<String, Value>, key: &str, path: &str, max: usize, errors: &mut Errors) -> Option<String> {
    match map.get(key) {
        None | Some(Value::Null) => None,
        // Counted as sent (as the document's maxLength counts), before blank text is taken as absent.
        Some(Value::String(s)) if s.chars().count() > max => {
            errors.invalid(path, format!("{key} must be at most {max} characters"));
            None
        }
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.trim().to_owned()),
        Some(_) => {
            errors.invalid(path, format!("{key} must be a string"));
            None
        }
    }
}

fn web_url(map: &Map<String, Value>, key: &str, required: bool, errors: &mut Errors) -> Option<Url> {
    match text(map, key, key, 2048, errors) {
        None if required && !errors.0.iter().any(|e| e.field.as_deref() == Some(key)) => {
            errors.missing(key, format!("{key} is required"));
            None
        }
        None => None,
        Some(raw) => match Url::parse(&raw) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Some(url),
            _ => {
                errors.invalid(key, format!("{key} must be an absolute http(s) URL"));
                None
            }
        },
    }
}

fn payer(value: Option<&Value>, errors: &mut Errors) -> PayerInput {
    let mut payer = PayerInput::default();
    let Some(value) = value.filter(|v| !v.is_null()) else {
        errors.missing("Payer", "Payer is required for a new payment");
        return payer;
    };
    let Some(map) = object(value, "Payer", &["Contact", "Account"], errors) else { return payer };
    if map.get("Contact").is_none_or(Value::is_null) && map.get("Account").is_none_or(Value::is_null) {
        errors.missing("Payer.Contact", "Payer needs a Contact or an Account");
        return payer;
    }
    for part in ["Contact", "Account"] {
        let path = format!("Payer.{part}");
        let Some(block) = map.get(part).and_then(|v| object(v, &path, &["SalesforceFields", "Id"], errors)) else {
            continue;
        };
        if text(block, "Id", &format!("{path}.Id"), 64, errors).is_some() {
            // A Salesforce record id names nothing here; ignoring it would file the payment under another payer.
            errors.invalid(
                &format!("{path}.Id"),
                format!("{path}.Id is not supported: payhub finds the payer by email, then by phone"),
            );
        }
        let fields_path = format!("{path}.SalesforceFields");
        match block.get("SalesforceFields") {
            None | Some(Value::Null) => {}
            Some(Value::Object(fields)) => {
                for (key, value) in fields {
                    let field_path = format!("{fields_path}.{key}");
                    let as_text = match value {
                        Value::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
                        Value::Null => None,
                        Value::Bool(_) | Value::Number(_) => None,
                        _ => {
                            errors.invalid(&field_path, format!("{key} must be a string, number or boolean"));
                            continue;
                        }
                    };
                    if value.as_str().is_some_and(|s| s.chars().count() > 255) {
                        errors.invalid(&field_path, format!("{key} must be at most 255 characters"));
                        continue;
                    }
                    match key.as_str() {
                        "FirstName" => payer.first_name = payer.first_name.take().or(as_text),
                        "LastName" | "Name" => payer.last_name = payer.last_name.take().or(as_text),
                        "Email" => match as_text {
                            Some(email) if !looks_like_email(&email) => {
                                errors.invalid(&field_path, "Email must look like name@example.org")
                            }
                            email => payer.email = payer.email.take().or(email),
                        },
                        "MobilePhone" | "Phone" => {
                            if let Some(number) = as_text {
                                match Phone::parse(&number) {
                                    Ok(phone) => payer.phone = payer.phone.take().or(Some(phone)),
                                    Err(e) => errors.invalid(&field_path, e.to_string()),
                                }
                            }
                        }
                        _ => {}
                    }
                    payer.fields.insert(format!("{part}.{key}"), value.clone());
                }
            }
            Some(_) => errors.invalid(&fields_path, "SalesforceFields must be an object"),
        }
    }
    payer
}

/// `SalesforceFields` beside an intent's own fields (`prefix` is its parent's path and a dot, or nothing):
/// kept with the Message as sent, so any fields, but an object or nothing.
fn kept_fields(map: &Map<String, Value>, prefix: &str, errors: &mut Errors) {
    if map.get("SalesforceFields").is_some_and(|v| !v.is_object() && !v.is_null()) {
        errors.invalid(&format!("{prefix}SalesforceFields"), "SalesforceFields must be an object");
    }
}

fn looks_like_email(email: &str) -> bool {
    email.len() <= 254
        && email.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !email.chars().any(char::is_whitespace)
}

fn parameters(map: Option<&Map<String, Value>>, errors: &mut Errors) -> VippsParameters {
    let mut out = VippsParameters::default();
    let Some(map) = map else { return out };
    let base = "PaymentMethod.Parameters";
    for key in map.keys().filter(|k| !PARAMETERS.contains(&k.as_str())) {
        errors.invalid(&format!("{base}.{key}"), format!("Unknown Vipps parameter {key}; see GET /v2/PaymentMethods"));
    }
    if let Some(number) = text(map, "mobileNumber", &format!("{base}.mobileNumber"), 32, errors) {
        match Phone::parse(&number) {
            Ok(phone) => out.mobile_number = Some(phone),
            Err(e) => errors.invalid(&format!("{base}.mobileNumber"), e.to_string()),
        }
    }
    out.transaction_text = text(map, "TransactionText", &format!("{base}.TransactionText"), 100, errors);
    if out.transaction_text.as_ref().is_some_and(|t| t.chars().count() < 3) {
        errors
            .invalid(&format!("{base}.TransactionText"), "TransactionText must be 3 to 100 characters (a Vipps rule)");
    }
    out.description = text(map, "description", &format!("{base}.description"), 255, errors);
    out.product_name = text(map, "ProductName", &format!("{base}.ProductName"), 45, errors);
    out.merchant_agreement_url =
        text(map, "MerchantAgreementUrl", &format!("{base}.MerchantAgreementUrl"), 1024, errors);
    out
}

fn date(map: &Map<String, Value>, key: &str, path: &str, errors: &mut Errors) -> Option<NaiveDate> {
    let text = text(map, key, path, 10, errors)?;
    match NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
        Ok(date) => Some(date),
        Err(_) => {
            errors.invalid(path, format!("{key} must be a date as YYYY-MM-DD"));
            None
        }
    }
}

/// The `Recurring` object: amount within Vipps' limits, a known frequency, dates that make a schedule starting
/// no earlier than `today`.
fn recurring_terms(value: &Value, today: NaiveDate, errors: &mut Errors) -> Option<RecurringTerms> {
    let map = object(
        value,
        "Recurring",
        &["Amount", "Frequency", "StartDate", "EndDate", "CollectionDay", "CurrencyISOCode", "Id", "SalesforceFields"],
        errors,
    )?;
    kept_fields(map, "Recurring.", errors);
    if map.get("Id").is_some_and(|v| !v.is_null()) {
        errors.invalid("Recurring.Id", "Changing an existing recurring payment goes through PATCH /v2/Recurring/{Id}");
    }
    let amount = match map.get("Amount") {
        None | Some(Value::Null) => {
            errors.missing("Recurring.Amount", "Recurring.Amount is required");
            None
        }
        Some(value) => match Money::from_json(value) {
            Ok(money) if !(MIN_RECURRING_ORE..=MAX_RECURRING_ORE).contains(&money.ore()) => {
                errors.invalid(
                    "Recurring.Amount",
                    format!(
                        "Recurring.Amount must be from {} to {} NOK (Vipps' limits for an agreement)",
                        Money::from_ore(MIN_RECURRING_ORE).kroner_string(),
                        Money::from_ore(MAX_RECURRING_ORE).kroner_string()
                    ),
                );
                None
            }
            Ok(money) => Some(money),
            Err(e) => {
                errors.invalid("Recurring.Amount", e.to_string());
                None
            }
        },
    };
    if let Some(currency) = text(map, "CurrencyISOCode", "Recurring.CurrencyISOCode", 3, errors) {
        if currency != "NOK" {
            errors.invalid("Recurring.CurrencyISOCode", "Vipps can only be used with Norwegian Krone");
        }
    }
    let frequency = match text(map, "Frequency", "Recurring.Frequency", 32, errors) {
        None => {
            if !errors.0.iter().any(|e| e.field.as_deref() == Some("Recurring.Frequency")) {
                errors.missing("Recurring.Frequency", "Recurring.Frequency is required");
            }
            None
        }
        Some(name) => match name.parse::<Frequency>() {
            Ok(frequency) => Some(frequency),
            Err(message) => {
                errors.invalid("Recurring.Frequency", message);
                None
            }
        },
    };
    let start = date(map, "StartDate", "Recurring.StartDate", errors);
    let end = date(map, "EndDate", "Recurring.EndDate", errors);
    if start.is_some_and(|start| start < today) {
        errors.invalid("Recurring.StartDate", format!("StartDate must not be in the past (today is {today})"));
    }
    let start = start.unwrap_or(today);
    if end.is_some_and(|end| end < start) {
        errors.invalid("Recurring.EndDate", "EndDate must not be before StartDate");
    }
    let collection_day = match map.get("CollectionDay") {
        None | Some(Value::Null) => None,
        Some(value) => {
            let day = value.as_u64().or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()));
            match day.and_then(|d| u32::try_from(d).ok()).filter(|d| (1..=31).contains(d)) {
                Some(day) => Some(day),
                None => {
                    errors.invalid("Recurring.CollectionDay", "CollectionDay must be a day of the month from 1 to 31");
                    None
                }
            }
        }
    };
    let (amount, frequency) = (amount?, frequency?);
    let schedule = Schedule::new(start, end, frequency, collection_day).ok()?;
    if schedule.next_on_or_after(start).is_none() {
        errors.invalid("Recurring.EndDate", "No installment falls due between StartDate and EndDate");
        return None;
    }
    Some(RecurringTerms { amount, frequency, start_date: start, end_date: end, collection_day })
}

/// Parses the body of `POST /v2/PaymentIntent`; `today` is payhub's date (a StartDate may not be earlier), and
/// `targets` says which hosts a `WebhookURL` may name. Returns every problem found, not just the first.
pub fn parse(body: &Value, today: NaiveDate, targets: WebhookTargets) -> Result<Intent, Vec<ErrorItem>> {
    let mut errors = Errors(Vec::new());
    let terms = match body.get("Recurring") {
        None | Some(Value::Null) => None,
        Some(value) => recurring_terms(value, today, &mut errors).map(Some).unwrap_or_else(|| {
            if errors.0.is_empty() {
                errors.invalid("Recurring", "Recurring is not valid");
            }
            None
        }),
    };
    let recurring = body.get("Recurring").is_some_and(|v| !v.is_null());
    let one_time = parse_common(body, recurring, targets, &mut errors);
    match (one_time, terms) {
        (Some(base), None) if errors.0.is_empty() && !recurring => Ok(Intent::OneTime(base.0)),
        (Some((mut base, initial)), Some(terms)) if errors.0.is_empty() => {
            if base.parameters.transaction_text.as_ref().is_some_and(|t| t.chars().count() > MAX_CHARGE_DESCRIPTION) {
                return Err(vec![ErrorItem {
                    error_code: "200",
                    error_message: format!(
                        "TransactionText must be at most {MAX_CHARGE_DESCRIPTION} characters for a recurring payment (the Vipps charge description limit)"
                    ),
                    field: Some("PaymentMethod.Parameters.TransactionText".into()),
                }]);
            }
            if initial.is_some_and(|m| m.ore() < MIN_RECURRING_ORE) {
                return Err(vec![ErrorItem {
                    error_code: "200",
                    error_message: "An initial payment must be at least 1 NOK (a Vipps rule)".into(),
                    field: Some("OneTime.Amount".into()),
                }]);
            }
            base.amount = terms.amount;
            Ok(Intent::Recurring(RecurringIntent { base, terms, initial }))
        }
        _ => Err(errors.0),
    }
}

/// Everything but `Recurring`: the intent with its one-time amount (the initial payment of a recurring
/// intent, where it is optional; a placeholder amount when absent).
fn parse_common(
    body: &Value,
    recurring: bool,
    targets: WebhookTargets,
    errors: &mut Errors,
) -> Option<(OneTimeIntent, Option<Money>)> {
    let Value::Object(root) = body else {
        errors.0.push(ErrorItem {
            error_code: "200",
            error_message: "The body must be a JSON object".into(),
            field: None,
        });
        return None;
    };
    const ROOT: [&str; 12] = [
        "SuccessURL",
        "FailureURL",
        "RedirectURL",
        "WebhookURL",
        "Origin",
        "CampaignId",
        "IdempotencyKey",
        "SalesforceFields",
        "Payer",
        "OneTime",
        "Recurring",
        "PaymentMethod",
    ];
    for key in root.keys().filter(|k| !ROOT.contains(&k.as_str())) {
        errors.invalid(key, format!("Unknown field {key}"));
    }
    kept_fields(root, "", errors);
    let success_url = web_url(root, "SuccessURL", true, errors);
    let failure_url = web_url(root, "FailureURL", true, errors);
    let webhook_url = web_url(root, "WebhookURL", false, errors).filter(|url| match targets.check_url(url) {
        Ok(()) => true,
        Err(refused) => {
            errors.invalid("WebhookURL", format!("WebhookURL must point to a public host: {refused}"));
            false
        }
    });
    let origin = text(root, "Origin", "Origin", 255, errors);
    let campaign_id = text(root, "CampaignId", "CampaignId", 64, errors);
    text(root, "IdempotencyKey", "IdempotencyKey", 100, errors);

    let mut amount = None;
    match root.get("OneTime") {
        None | Some(Value::Null) => {
            if !recurring {
                errors.missing("OneTime", "OneTime is required");
            }
        }
        Some(value) => {
            if let Some(one_time) =
                object(value, "OneTime", &["Amount", "CurrencyISOCode", "Id", "SalesforceFields"], errors)
            {
                kept_fields(one_time, "OneTime.", errors);
                if one_time.get("Id").is_some_and(|v| !v.is_null()) {
                    errors.invalid("OneTime.Id", "OneTime.Id must be the text id of an existing installment (ins_…)");
                }
                match one_time.get("Amount") {
                    None | Some(Value::Null) => errors.missing("OneTime.Amount", "OneTime.Amount is required"),
                    Some(value) => match Money::from_json(value) {
                        Ok(money) if money.ore() < MIN_ONE_TIME_ORE => errors.invalid(
                            "OneTime.Amount",
                            "OneTime.Amount must be at least 1 NOK (Vipps' smallest payment)",
                        ),
                        Ok(money) => amount = Some(money),
                        Err(e) => errors.invalid("OneTime.Amount", e.to_string()),
                    },
                }
                if let Some(currency) = text(one_time, "CurrencyISOCode", "OneTime.CurrencyISOCode", 3, errors) {
                    if currency != "NOK" {
                        errors.invalid("OneTime.CurrencyISOCode", "Vipps can only be used with Norwegian Krone");
                    }
                }
            }
        }
    }

    let payer = payer(root.get("Payer"), errors);

    let mut target = None;
    let mut params = VippsParameters::default();
    match root.get("PaymentMethod") {
        None | Some(Value::Null) => errors.missing("PaymentMethod", "PaymentMethod is required"),
        Some(value) => {
            if let Some(method) = object(value, "PaymentMethod", &["Name", "Processor", "Target", "Parameters"], errors)
            {
                match text(method, "Name", "PaymentMethod.Name", 64, errors) {
                    None if !errors.0.iter().any(|e| e.field.as_deref() == Some("PaymentMethod.Name")) => {
                        errors.missing("PaymentMethod.Name", "PaymentMethod.Name is required")
                    }
                    Some(name) if name != "Vipps" => errors
                        .invalid("PaymentMethod.Name", format!("Payment method {name} is not supported; use Vipps")),
                    _ => {}
                }
                if let Some(processor) = text(method, "Processor", "PaymentMethod.Processor", 64, errors) {
                    if processor != PROCESSOR && processor != FINDOCK_PROCESSOR {
                        errors.invalid(
                            "PaymentMethod.Processor",
                            format!("Processor {processor} is not supported; use {PROCESSOR}"),
                        );
                    }
                }
                target = text(method, "Target", "PaymentMethod.Target", 80, errors);
                let parameter_map = match method.get("Parameters") {
                    None | Some(Value::Null) => None,
                    Some(Value::Object(map)) => Some(map),
                    Some(_) => {
                        errors.invalid("PaymentMethod.Parameters", "Parameters must be an object");
                        None
                    }
                };
                params = parameters(parameter_map, errors);
            }
        }
    }

    let initial = amount;
    let amount = match (amount, recurring) {
        (Some(amount), _) => amount,
        (None, true) => Money::from_ore(MIN_RECURRING_ORE),
        (None, false) => return None,
    };
    match (success_url, failure_url) {
        (Some(success_url), Some(failure_url)) if errors.0.is_empty() => Some((
            OneTimeIntent {
                success_url,
                failure_url,
                webhook_url,
                origin,
                campaign_id,
                amount,
                payer,
                target,
                parameters: params,
            },
            initial,
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A one-time intent parsed as the API does (with no date constraint).
    fn parse_intent(body: &Value) -> Result<OneTimeIntent, Vec<ErrorItem>> {
        match parse(body, NaiveDate::MIN, WebhookTargets::PublicOnly) {
            Ok(Intent::OneTime(intent)) => Ok(intent),
            Ok(Intent::Recurring(_)) => Err(vec![ErrorItem {
                error_code: "200",
                error_message: "A one-time intent was expected".into(),
                field: Some("Recurring".into()),
            }]),
            Err(errors) => Err(errors),
        }
    }

    fn seed() -> Value {
        json!({"SuccessURL": "https://example.org/ok", "FailureURL": "https://example.org/fail",
               "Payer": {"Contact": {"SalesforceFields": {"FirstName": "Eric", "LastName": "Johnson", "Email": ""}}},
               "OneTime": {"Amount": "36"},
               "PaymentMethod": {"Name": "Vipps", "Processor": "FinDock-Vipps", "Parameters": {"mobileNumber": "+47 912 34 567"}}})
    }

    fn fields(result: Result<OneTimeIntent, Vec<ErrorItem>>) -> Vec<(String, &'static str)> {
        result.err().unwrap_or_default().into_iter().map(|e| (e.field.unwrap_or_default(), e.error_code)).collect()
    }

    #[test]
    fn the_findock_seed_message_parses() {
        let intent = parse_intent(&seed()).ok().unwrap_or_else(|| unreachable!());
        assert_eq!(intent.amount, Money::from_ore(3600));
        assert_eq!(intent.payer.first_name.as_deref(), Some("Eric"));
        assert_eq!(intent.payer.email, None, "an empty email is no email");
        assert_eq!(intent.parameters.mobile_number.map(|p| p.to_string()).as_deref(), Some("4791234567"));
        assert_eq!(intent.target, None);
    }

    #[test]
    fn every_problem_is_reported_with_its_code_and_path() {
        let mut body = seed();
        body["SuccessURL"] = json!(null);
        body["FailureURL"] = json!("/relative");
        body["OneTime"]["Amount"] = json!("1,50");
        body["OneTime"]["CurrencyISOCode"] = json!("EUR");
        body["PaymentMethod"]["Processor"] = json!("Stripe");
        body["PaymentMethod"]["Parameters"]["mobileNumber"] = json!("12");
        body["Colour"] = json!("red");
        assert_eq!(
            fields(parse_intent(&body)),
            [
                ("Colour".to_owned(), "200"),
                ("SuccessURL".to_owned(), "010"),
                ("FailureURL".to_owned(), "200"),
                ("OneTime.Amount".to_owned(), "200"),
                ("OneTime.CurrencyISOCode".to_owned(), "200"),
                ("PaymentMethod.Processor".to_owned(), "200"),
                ("PaymentMethod.Parameters.mobileNumber".to_owned(), "200"),
            ]
        );
    }

    #[test]
    fn a_webhook_url_that_is_not_public_is_a_200_on_its_field_unless_private_targets_are_allowed() {
        let mut body = seed();
        body["WebhookURL"] = json!("http://169.254.169.254/latest/meta-data");
        body["OneTime"]["Amount"] = json!("abc");
        let errors = parse_intent(&body).err().unwrap_or_default();
        let fields: Vec<_> = errors.iter().map(|e| (e.field.clone().unwrap_or_default(), e.error_code)).collect();
        assert_eq!(fields, [("WebhookURL".to_owned(), "200"), ("OneTime.Amount".to_owned(), "200")]);
        assert_eq!(
            errors[0].error_message,
            "WebhookURL must point to a public host: 169.254.169.254 is a link-local address"
        );
        body["OneTime"]["Amount"] = json!("36");
        assert!(parse(&body, NaiveDate::MIN, WebhookTargets::AnyHost).is_ok());
        body["WebhookURL"] = json!("https://hooks.example.org/payhub");
        assert!(parse_intent(&body).is_ok());
    }

    #[test]
    fn amounts_and_methods_are_checked() {
        for (amount, ok) in [
            (json!(36), true),
            (json!("36.5"), true),
            (json!(0), false),
            (json!(-1), false),
            (json!(1.005), false),
            (json!("abc"), false),
            (json!(1e30), false),
        ] {
            let mut body = seed();
            body["OneTime"]["Amount"] = amount.clone();
            assert_eq!(parse_intent(&body).is_ok(), ok, "{amount}");
        }
        let mut body = seed();
        body["PaymentMethod"]["Name"] = json!("CreditCard");
        assert_eq!(fields(parse_intent(&body)), [("PaymentMethod.Name".to_owned(), "200")]);
        let mut body = seed();
        body["PaymentMethod"] = json!({"Processor": "PayHub-Vipps"});
        assert_eq!(fields(parse_intent(&body)), [("PaymentMethod.Name".to_owned(), "010")]);
        let mut body = seed();
        body["OneTime"] = json!(null);
        assert_eq!(fields(parse_intent(&body)), [("OneTime".to_owned(), "010")]);
        assert!(parse_intent(&json!([])).is_err());
    }
}
