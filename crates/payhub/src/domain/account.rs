//! Merchant accounts (FinDock "Targets"): one Vipps sales unit each, and the rules every way in shares.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use url::Url;

use super::FieldError;
use crate::secrets::Secret;

/// The validated, non-secret settings of a merchant account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSettings {
    /// Unique name (case-insensitive), used as `Target` in the Payment API.
    pub name: String,
    /// Vipps Merchant Serial Number, 4–10 digits.
    pub merchant_serial_number: String,
    /// Vipps `client_id`.
    pub client_key: String,
    /// A Vipps test (MT) sales unit.
    pub is_test: bool,
    /// Default agreement product name for recurring payments (≤ 45 characters, Vipps' limit).
    pub product_name: Option<String>,
    /// The payer's agreement-management page (absolute https; http only for test accounts).
    pub merchant_agreement_url: Option<String>,
    /// Days Vipps retries a failed recurring charge, 0–14.
    pub retry_days: i64,
    /// The account used when an intent names no `Target`.
    pub is_default: bool,
    /// Import and reconcile the settlement ledger.
    pub reconciliation_enabled: bool,
    /// First ledger date to import; required when reconciliation is on.
    pub initial_ledger_date: Option<NaiveDate>,
    /// Vipps API base URL override (e.g. a simulator); absent means the test or production host.
    pub api_base_url: Option<String>,
    /// Default values of the Vipps parameters, used when an intent does not give one.
    pub parameter_defaults: BTreeMap<String, ParameterDefault>,
    /// Stop the Vipps agreement when a recurring payment is cancelled in payhub.
    pub cancel_agreement_on_cancel: bool,
    /// Where money beyond what matched installments expect goes when a person matches a settlement line.
    pub remainder_handling: RemainderHandling,
}

/// What a manual match does with an amount that differs from what the chosen installments expect (FinDock's
/// Process Installment options), per account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RemainderHandling {
    /// Fill the installments in order; what is left goes on the next one (an overpayment beyond the last stays
    /// on the report).
    #[default]
    BookOnNext,
    /// Book the whole amount on the first installment chosen.
    BookAllOnFirst,
    /// Book what the installments expect; leave the difference on the report for a person.
    LeaveOnReport,
}

impl RemainderHandling {
    /// Every choice, in the order a form lists them.
    pub const ALL: [RemainderHandling; 3] = [Self::BookOnNext, Self::BookAllOnFirst, Self::LeaveOnReport];

    /// The stored and sent word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BookOnNext => "book_on_next",
            Self::BookAllOnFirst => "book_all_on_first",
            Self::LeaveOnReport => "leave_on_report",
        }
    }

    /// How a form labels it.
    pub fn label(self) -> &'static str {
        match self {
            Self::BookOnNext => "Book the remainder on the next installment",
            Self::BookAllOnFirst => "Book all on the first installment",
            Self::LeaveOnReport => "Leave the remainder on the report",
        }
    }

    /// The choice a stored word names; an unknown word is the default.
    pub fn parse(word: &str) -> Option<RemainderHandling> {
        Self::ALL.into_iter().find(|r| r.as_str() == word)
    }
}

/// Where a Vipps parameter's default comes from: a fixed value, or a field of the payer as the intent sent it
/// (e.g. `MobilePhone`, so any phone field of a front end reaches Vipps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParameterDefault {
    /// A fixed value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The name of a payer field (`SalesforceFields` of Contact or Account) to take the value from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_field: Option<String>,
}

impl AccountSettings {
    /// The Vipps API host this account talks to.
    pub fn vipps_base_url(&self) -> &str {
        match &self.api_base_url {
            Some(url) => url,
            None if self.is_test => "https://apitest.vipps.no",
            None => "https://api.vipps.no",
        }
    }
}

/// Input for creating or updating an account, from the admin API, the CLI or the Setup page. Absent fields
/// keep their current value on update (or take the default on create); an empty text clears an optional field.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountInput {
    /// Unique name (case-insensitive, at most 80 characters), the Payment API's `Target`. Required on create.
    pub name: Option<String>,
    /// Vipps Merchant Serial Number, 4 to 10 digits. Required on create.
    pub merchant_serial_number: Option<String>,
    /// Vipps `client_id`. Required on create.
    pub client_key: Option<String>,
    /// Vipps `client_secret`; write-only (never in an answer). Required on create.
    #[schema(value_type = Option<String>, format = Password)]
    pub client_secret: Option<Secret>,
    /// Vipps `Ocp-Apim-Subscription-Key`; write-only (never in an answer). Required on create.
    #[schema(value_type = Option<String>, format = Password)]
    pub subscription_key: Option<Secret>,
    /// A Vipps test (MT) sales unit.
    pub is_test: Option<bool>,
    /// Default agreement product name for recurring payments (at most 45 characters, Vipps' limit).
    pub product_name: Option<String>,
    /// The payer's agreement-management page (absolute https; http only for test accounts).
    pub merchant_agreement_url: Option<String>,
    /// Days Vipps retries a failed recurring charge, 0 to 14.
    pub retry_days: Option<i64>,
    /// The account used when an intent names no `Target`.
    pub is_default: Option<bool>,
    /// Import and reconcile the settlement ledger (needs `initial_ledger_date`).
    pub reconciliation_enabled: Option<bool>,
    /// First ledger date to import, as `YYYY-MM-DD`; required when reconciliation is on.
    pub initial_ledger_date: Option<String>,
    /// Vipps API base URL override (e.g. a simulator); absent means the test or production host.
    pub api_base_url: Option<String>,
    /// Default values of the Vipps parameters, by parameter name; replaces the whole map when given.
    pub parameter_defaults: Option<BTreeMap<String, ParameterDefault>>,
    /// Stop the Vipps agreement when a recurring payment is cancelled in payhub.
    pub cancel_agreement_on_cancel: Option<bool>,
    /// What a manual match does with an amount the chosen installments do not expect.
    pub remainder_handling: Option<RemainderHandling>,
}

/// New secret values to seal, when given.
#[derive(Debug, Default)]
pub struct SecretChanges {
    /// A new client secret.
    pub client_secret: Option<Secret>,
    /// A new subscription key.
    pub subscription_key: Option<Secret>,
}

/// Default RetryDays for a new account, as in FinDock.
pub const DEFAULT_RETRY_DAYS: i64 = 3;

fn blank_to_none(value: Option<&String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Validates `input` on top of `current` (None when creating). Returns every problem at once, so a form can
/// show each beside its field.
pub fn validate(
    input: &AccountInput,
    current: Option<&AccountSettings>,
) -> Result<(AccountSettings, SecretChanges), Vec<FieldError>> {
    let mut errors = Vec::new();
    let creating = current.is_none();

    let text = |given: &Option<String>, now: Option<&String>| -> Option<String> {
        match given {
            Some(v) => blank_to_none(Some(v)),
            None => now.cloned(),
        }
    };

    let name = text(&input.name, current.map(|c| &c.name));
    match &name {
        None => errors.push(FieldError::missing("name", "Name is required.")),
        Some(n) if n.chars().count() > 80 => {
            errors.push(FieldError::invalid("name", "Name must be at most 80 characters."))
        }
        Some(n) if n.chars().any(char::is_control) => {
            errors.push(FieldError::invalid("name", "Name must not contain control characters."))
        }
        Some(_) => {}
    }

    let msn = text(&input.merchant_serial_number, current.map(|c| &c.merchant_serial_number));
    match &msn {
        None => errors.push(FieldError::missing("merchant_serial_number", "Merchant Serial Number is required.")),
        Some(m) if !(4..=10).contains(&m.len()) || !m.bytes().all(|b| b.is_ascii_digit()) => {
            errors.push(FieldError::invalid("merchant_serial_number", "Merchant Serial Number must be 4 to 10 digits."))
        }
        Some(_) => {}
    }

    let client_key = text(&input.client_key, current.map(|c| &c.client_key));
    match &client_key {
        None => errors.push(FieldError::missing("client_key", "Client Key is required.")),
        Some(k) if k.len() > 200 || k.chars().any(char::is_whitespace) => {
            errors.push(FieldError::invalid("client_key", "Client Key must be at most 200 characters without spaces."))
        }
        Some(_) => {}
    }

    let mut secrets = SecretChanges::default();
    for (field, label, given) in [
        ("client_secret", "Client Secret", &input.client_secret),
        ("subscription_key", "Subscription Key", &input.subscription_key),
    ] {
        let value = given.as_ref().map(|s| s.expose().trim().to_owned()).filter(|s| !s.is_empty());
        match value {
            None if creating => errors.push(FieldError::missing(field, format!("{label} is required."))),
            None => {}
            Some(v) if v.len() > 500 || v.chars().any(char::is_whitespace) => errors
                .push(FieldError::invalid(field, format!("{label} must be at most 500 characters without spaces."))),
            Some(v) => {
                let secret = Some(Secret::new(v));
                if field == "client_secret" {
                    secrets.client_secret = secret;
                } else {
                    secrets.subscription_key = secret;
                }
            }
        }
    }

    let is_test = input.is_test.or(current.map(|c| c.is_test)).unwrap_or(false);

    let product_name = text(&input.product_name, current.and_then(|c| c.product_name.as_ref()));
    if product_name.as_ref().is_some_and(|p| p.chars().count() > 45) {
        errors.push(FieldError::invalid("product_name", "Product Name must be at most 45 characters (a Vipps limit)."));
    }

    let agreement_url = text(&input.merchant_agreement_url, current.and_then(|c| c.merchant_agreement_url.as_ref()));
    if let Some(url) = &agreement_url {
        if let Err(message) = check_url(url, is_test) {
            errors.push(FieldError::invalid("merchant_agreement_url", format!("Merchant Agreement Url {message}")));
        }
    }

    let api_base_url = text(&input.api_base_url, current.and_then(|c| c.api_base_url.as_ref()))
        .map(|u| u.trim_end_matches('/').to_owned());
    if let Some(url) = &api_base_url {
        if let Err(message) = check_url(url, is_test) {
            errors.push(FieldError::invalid("api_base_url", format!("Vipps API base URL {message}")));
        }
    }

    let retry_days = input.retry_days.or(current.map(|c| c.retry_days)).unwrap_or(DEFAULT_RETRY_DAYS);
    if !(0..=14).contains(&retry_days) {
        errors.push(FieldError::invalid("retry_days", "RetryDays must be between 0 and 14."));
    }

    let is_default = input.is_default.or(current.map(|c| c.is_default)).unwrap_or(false);
    let cancel_agreement_on_cancel =
        input.cancel_agreement_on_cancel.or(current.map(|c| c.cancel_agreement_on_cancel)).unwrap_or(false);
    let remainder_handling = input.remainder_handling.or(current.map(|c| c.remainder_handling)).unwrap_or_default();
    let reconciliation_enabled =
        input.reconciliation_enabled.or(current.map(|c| c.reconciliation_enabled)).unwrap_or(false);

    let initial_ledger_date = match &input.initial_ledger_date {
        Some(v) => match blank_to_none(Some(v)) {
            None => None,
            Some(d) => match NaiveDate::parse_from_str(&d, "%Y-%m-%d") {
                Ok(date) => Some(date),
                Err(_) => {
                    errors.push(FieldError::invalid(
                        "initial_ledger_date",
                        "Initial Ledger Date must be a date like 2026-01-31.",
                    ));
                    None
                }
            },
        },
        None => current.and_then(|c| c.initial_ledger_date),
    };
    let date_was_invalid = errors.iter().any(|e| e.field == "initial_ledger_date");
    if reconciliation_enabled && initial_ledger_date.is_none() && !date_was_invalid {
        errors.push(FieldError::missing(
            "initial_ledger_date",
            "Initial Ledger Date is required when reconciliation of incoming payments is enabled.",
        ));
    }

    let parameter_defaults = match &input.parameter_defaults {
        Some(map) => map.clone(),
        None => current.map(|c| c.parameter_defaults.clone()).unwrap_or_default(),
    };
    for (name, default) in &parameter_defaults {
        let known = crate::domain::intent::VIPPS_PARAMETERS.contains(&name.as_str());
        let field_ok = default.payer_field.as_ref().is_none_or(|f| {
            !f.is_empty() && f.len() <= 80 && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        });
        let one_source = default.value.is_some() != default.payer_field.is_some();
        if !known {
            errors.push(FieldError::invalid(
                "parameter_defaults",
                format!("{name} is not a Vipps parameter ({})", crate::domain::intent::VIPPS_PARAMETERS.join(", ")),
            ));
        } else if !one_source || !field_ok || default.value.as_ref().is_some_and(|v| v.chars().count() > 255) {
            errors.push(FieldError::invalid(
                "parameter_defaults",
                format!("{name} needs exactly one of value (at most 255 characters) or payer_field (a field name)"),
            ));
        }
    }

    match (name, msn, client_key) {
        (Some(name), Some(merchant_serial_number), Some(client_key)) if errors.is_empty() => Ok((
            AccountSettings {
                name,
                merchant_serial_number,
                client_key,
                is_test,
                product_name,
                merchant_agreement_url: agreement_url,
                retry_days,
                is_default,
                reconciliation_enabled,
                initial_ledger_date,
                api_base_url,
                parameter_defaults,
                cancel_agreement_on_cancel,
                remainder_handling,
            },
            secrets,
        )),
        _ => Err(errors),
    }
}

fn check_url(text: &str, is_test: bool) -> Result<(), &'static str> {
    let url = Url::parse(text).map_err(|_| "must be an absolute URL.")?;
    if url.host().is_none() || text.len() > 1024 {
        return Err("must be an absolute URL of at most 1024 characters.");
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_test => Ok(()),
        "http" => Err("must use https (http is allowed only for test accounts)."),
        _ => Err("must be an https URL."),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn valid() -> AccountInput {
        AccountInput {
            name: Some("Main".into()),
            merchant_serial_number: Some("123456".into()),
            client_key: Some("fb492b5e-7907-4d83-ba20-c7fb60ca35de".into()),
            client_secret: Some(Secret::new("Y8Kteew6GE2ZmeycEt6egg==")),
            subscription_key: Some(Secret::new("0f14ebcab0ec4b29ae0cb90d91b4a84a")),
            merchant_agreement_url: Some("https://example.org/agreements".into()),
            ..Default::default()
        }
    }

    fn fields(errors: Vec<FieldError>) -> Vec<&'static str> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_complete_account_gets_the_defaults() {
        let (settings, secrets) = validate(&valid(), None).unwrap();
        assert_eq!(settings.retry_days, 3);
        assert!(!settings.is_default && !settings.is_test);
        assert_eq!(secrets.client_secret.unwrap().expose(), "Y8Kteew6GE2ZmeycEt6egg==");
        assert_eq!(settings.vipps_base_url(), "https://api.vipps.no");
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let input = AccountInput {
            name: Some("  ".into()),
            merchant_serial_number: Some("12a".into()),
            client_secret: None,
            retry_days: Some(15),
            reconciliation_enabled: Some(true),
            merchant_agreement_url: Some("http://example.org".into()),
            ..valid()
        };
        assert_eq!(
            fields(validate(&input, None).unwrap_err()),
            [
                "name",
                "merchant_serial_number",
                "client_secret",
                "merchant_agreement_url",
                "retry_days",
                "initial_ledger_date"
            ]
        );
    }

    #[test]
    fn msn_is_four_to_ten_digits() {
        for (msn, ok) in
            [("1234", true), ("1234567890", true), ("123", false), ("12345678901", false), ("12 34", false)]
        {
            let input = AccountInput { merchant_serial_number: Some(msn.into()), ..valid() };
            assert_eq!(validate(&input, None).is_ok(), ok, "{msn}");
        }
    }

    #[test]
    fn http_agreement_urls_are_allowed_only_for_test_accounts() {
        let input = AccountInput { merchant_agreement_url: Some("http://localhost:8000/a".into()), ..valid() };
        assert!(validate(&input, None).is_err());
        let input = AccountInput { is_test: Some(true), ..input };
        assert!(validate(&input, None).is_ok());
        let input = AccountInput { merchant_agreement_url: Some("ftp://x.org/a".into()), ..input };
        assert!(validate(&input, None).is_err());
        let input = AccountInput { merchant_agreement_url: Some("/relative".into()), ..valid() };
        assert!(validate(&input, None).is_err());
    }

    #[test]
    fn an_update_keeps_what_it_does_not_mention_and_secrets_stay_unchanged() {
        let (current, _) = validate(&valid(), None).unwrap();
        let patch = AccountInput { retry_days: Some(7), ..Default::default() };
        let (updated, secrets) = validate(&patch, Some(&current)).unwrap();
        assert_eq!(updated.retry_days, 7);
        assert_eq!(updated.name, "Main");
        assert!(secrets.client_secret.is_none() && secrets.subscription_key.is_none());
        let clear = AccountInput { product_name: Some(String::new()), ..Default::default() };
        assert_eq!(validate(&clear, Some(&current)).unwrap().0.product_name, None);
    }

    #[test]
    fn reconciliation_needs_a_valid_initial_ledger_date() {
        let input = AccountInput {
            reconciliation_enabled: Some(true),
            initial_ledger_date: Some("2026-02-30".into()),
            ..valid()
        };
        assert_eq!(fields(validate(&input, None).unwrap_err()), ["initial_ledger_date"]);
        let input = AccountInput { initial_ledger_date: Some("2026-02-28".into()), ..input };
        assert_eq!(validate(&input, None).unwrap().0.initial_ledger_date, NaiveDate::from_ymd_opt(2026, 2, 28));
    }
}
