//! The pipeline for one-time payments: an intent's message becomes an inbound report and records (payer,
//! profile, installment, the Vipps payment to create) in one transaction; Vipps' answers (webhooks, polls, the
//! payer's return) become inbound reports that move the installment forward, each traceable to its message.
//!
//! Every call to Vipps that changes state carries an Idempotency-Key derived from our own record and stored
//! before the call: the installment id for the create, `cap-<installment>` for its capture, the refund's id for
//! a refund. A retry after any crash therefore repeats the same operation at Vipps instead of adding one.

pub mod background;
mod capture;
pub mod intake;
pub mod one_time;
pub mod outbox;
pub mod payer_return;
pub mod paylinks;
pub mod recurring;
pub mod refunds;
pub mod retention;
pub mod submissions;
pub mod trail;

use chrono::Utc;
use url::Url;

use crate::domain::account::ParameterDefault;
use crate::domain::ids::new_id;
pub(crate) use crate::domain::ids::new_payment_reference;
use crate::domain::intent::{OneTimeIntent, VippsParameters};
use crate::domain::phone::Phone;
use crate::domain::vipps_state::PaymentState;
use crate::error::ErrorItem;
use crate::error::ServiceError;
use crate::store::together::{PendingIntent, Recorded, Together};
use crate::store::vipps_payments::VippsPaymentRow;
use crate::store::{Store, StoreError};
use crate::vipps::accounts::Accounts;
use crate::vipps::client::VippsClients;

/// The payment services, shared by the API, the webhook intake, the beats and the CLI.
#[derive(Clone)]
pub struct Payments {
    pub(crate) store: Store,
    pub(crate) accounts: Accounts,
    pub(crate) clients: VippsClients,
    pub(crate) public_url: Url,
    pub(crate) locks: one_time::ReferenceLocks,
    pub(crate) clock: crate::jobs::Clock,
    pub(crate) recurring: recurring::RecurringSettings,
    together: std::sync::Arc<std::sync::OnceLock<Together>>,
}

/// A recorded intent whose Vipps payment was created: the intent is `Matched`, its installment `Pending`.
#[derive(Debug, Clone)]
pub struct IntentCreated {
    /// `pi_…`
    pub intent_id: String,
    /// The installment.
    pub installment_id: String,
    /// The Vipps reference, `pi-` + digits.
    pub payment_reference: String,
    /// Vipps' landing page, where the payer goes next.
    pub redirect_url: Option<String>,
    /// The merchant account's name.
    pub target: String,
}

/// Why an intent was not (fully) processed.
#[derive(Debug)]
pub enum IntentError {
    /// Invalid data found while resolving (e.g. an unknown Target): code 200, nothing written.
    Invalid(Vec<ErrorItem>),
    /// No Target given and no default account configured: code 098, nothing written.
    NoDefault,
    /// Recorded, but Vipps refused or did not answer; the message is Vipps' or ours.
    Provider {
        /// The recorded intent.
        intent_id: String,
        /// What went wrong.
        message: String,
    },
    /// A failure of payhub itself.
    Internal(anyhow::Error),
}

impl From<ServiceError> for IntentError {
    fn from(error: ServiceError) -> Self {
        IntentError::Internal(error.into())
    }
}

impl From<StoreError> for IntentError {
    fn from(error: StoreError) -> Self {
        IntentError::Internal(error.into())
    }
}

impl From<sqlx::Error> for IntentError {
    fn from(error: sqlx::Error) -> Self {
        IntentError::Internal(error.into())
    }
}

/// The intent's Vipps parameters with the account's defaults filled in where the intent gave none: a fixed
/// value, or a payer field (found under Contact, then Account). A default phone that does not parse is an
/// error naming the parameter and its source.
fn with_defaults(
    intent: &OneTimeIntent,
    defaults: &std::collections::BTreeMap<String, ParameterDefault>,
) -> Result<VippsParameters, Vec<ErrorItem>> {
    let mut parameters = intent.parameters.clone();
    let resolve = |name: &str| -> Option<(String, String)> {
        let default = defaults.get(name)?;
        if let Some(value) = &default.value {
            return Some((value.clone(), "its default value".into()));
        }
        let field = default.payer_field.as_ref()?;
        ["Contact", "Account"].iter().find_map(|part| {
            let value = intent.payer.fields.get(&format!("{part}.{field}"))?;
            let text = match value {
                serde_json::Value::String(s) => s.trim().to_owned(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => return None,
            };
            (!text.is_empty()).then(|| (text, format!("Payer.{part}.SalesforceFields.{field}")))
        })
    };
    if parameters.mobile_number.is_none() {
        if let Some((text, source)) = resolve("mobileNumber") {
            match Phone::parse(&text) {
                Ok(phone) => parameters.mobile_number = Some(phone),
                Err(e) => {
                    return Err(vec![ErrorItem {
                        error_code: "200",
                        error_message: format!("mobileNumber from {source}: {e}"),
                        field: Some(if source.starts_with("Payer.") {
                            source
                        } else {
                            "PaymentMethod.Parameters.mobileNumber".into()
                        }),
                    }])
                }
            }
        }
    }
    let fill = |slot: &mut Option<String>, name: &str| {
        if slot.is_none() {
            *slot = resolve(name).map(|(text, _)| text);
        }
    };
    fill(&mut parameters.transaction_text, "TransactionText");
    fill(&mut parameters.description, "description");
    fill(&mut parameters.product_name, "ProductName");
    fill(&mut parameters.merchant_agreement_url, "MerchantAgreementUrl");
    if let Some(text) = &parameters.transaction_text {
        if !(3..=100).contains(&text.chars().count()) {
            return Err(vec![ErrorItem {
                error_code: "200",
                error_message: "TransactionText must be 3 to 100 characters (a Vipps rule)".into(),
                field: Some("PaymentMethod.Parameters.TransactionText".into()),
            }]);
        }
    }
    Ok(parameters)
}

impl Payments {
    /// The payment services over the given parts.
    pub fn new(store: Store, accounts: Accounts, clients: VippsClients, public_url: Url) -> Self {
        Self {
            store,
            accounts,
            clients,
            public_url,
            locks: one_time::ReferenceLocks::default(),
            clock: crate::jobs::system_clock(),
            recurring: recurring::RecurringSettings::default(),
            together: std::sync::Arc::default(),
        }
    }

    /// The same services on another clock (sandbox mode follows the simulator's virtual clock).
    pub fn with_clock(mut self, clock: crate::jobs::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The same services with other recurring settings.
    pub fn with_recurring(mut self, settings: recurring::RecurringSettings) -> Self {
        self.recurring = settings;
        self
    }

    /// How many group-commit batches failed together and were written one intent at a time (each write still
    /// succeeds or fails on its own; a count that grows points at a bug or a database in trouble).
    pub fn group_commit_fallbacks(&self) -> u64 {
        self.together.get().map_or(0, Together::fallbacks)
    }

    /// The store's writer of intents and Vipps' answers, started on first use (on the runtime of that use),
    /// announcing what it writes through the outbox.
    pub(crate) fn together(&self) -> &Together {
        self.together.get_or_init(|| Together::start(&self.store, std::sync::Arc::new(outbox::BatchEvents)))
    }

    /// The account an intent's Target names, or the default account.
    async fn account_for(&self, target: Option<&str>) -> Result<crate::vipps::accounts::AccountView, IntentError> {
        match (self.accounts.resolve(target).await?, target) {
            (Some(account), _) => Ok(account),
            (None, Some(target)) => Err(IntentError::Invalid(vec![ErrorItem {
                error_code: "200",
                error_message: format!("No merchant account named {target}"),
                field: Some("PaymentMethod.Target".into()),
            }])),
            (None, None) => Err(IntentError::NoDefault),
        }
    }

    /// The URL Vipps sends the payer back to; it checks the payment and forwards to SuccessURL or FailureURL.
    pub fn return_url(&self, intent_id: &str) -> String {
        format!("{}/v2/return/{intent_id}", self.public_url.as_str().trim_end_matches('/'))
    }

    /// Records a one-time intent and creates its Vipps payment.
    pub async fn create_one_time(&self, intent: &OneTimeIntent, raw_body: &str) -> Result<IntentCreated, IntentError> {
        let account = self.account_for(intent.target.as_deref()).await?;
        let parameters = with_defaults(intent, &account.parameter_defaults).map_err(IntentError::Invalid)?;
        let now = Utc::now();
        let intent_id = new_id("pi");
        let installment_id = new_id("ins");
        let phone = parameters.mobile_number.as_ref().map(|p| p.as_str().to_owned());
        let description = parameters.transaction_text.clone();

        let pending = PendingIntent {
            intent_id: intent_id.clone(),
            installment_id: installment_id.clone(),
            reference: new_payment_reference(),
            raw_body: raw_body.to_owned(),
            account_id: account.id.clone(),
            payer: intent.payer.clone(),
            profile_phone: phone.clone().or_else(|| intent.payer.phone.as_ref().map(|p| p.as_str().to_owned())),
            amount_ore: intent.amount.ore(),
            description: description.clone(),
            product: parameters.description.clone(),
            success_url: intent.success_url.to_string(),
            failure_url: intent.failure_url.to_string(),
            webhook_url: intent.webhook_url.as_ref().map(|u| u.to_string()),
            customer_phone: phone.clone(),
            origin: intent.origin.clone(),
            campaign_id: intent.campaign_id.clone(),
            now,
            recurring: None,
        };
        let Recorded { reference, listeners } = self.together().record_intent(pending).await?;

        let row = VippsPaymentRow {
            reference: reference.clone(),
            installment_id: installment_id.clone(),
            account_id: account.id.clone(),
            idempotency_key: installment_id.clone(),
            amount_ore: intent.amount.ore(),
            state: PaymentState::Creating,
            customer_phone: phone,
            description,
            redirect_url: None,
            authorized_ore: 0,
            captured_ore: 0,
            refunded_ore: 0,
            cancelled_ore: 0,
            last_error: None,
        };
        match self
            .create_row_at_vipps(&row, &intent_id, Some(one_time::Known { account: &account, listeners: &listeners }))
            .await
        {
            Ok(redirect_url) => Ok(IntentCreated {
                intent_id,
                installment_id,
                payment_reference: reference,
                redirect_url,
                target: account.name,
            }),
            Err(message) => Err(IntentError::Provider { intent_id, message }),
        }
    }
}
