//! The pipeline for one-time payments: an intent's message becomes an inbound report and records (payer,
//! profile, installment, the Vipps payment to create) in one transaction; Vipps' answers (webhooks, polls, the
//! payer's return) become inbound reports that move the installment forward, each traceable to its message.
//!
//! Every call to Vipps that changes state carries an Idempotency-Key derived from our own record and stored
//! before the call: the installment id for the create, `cap-<installment>` for its capture, the refund's id for
//! a refund. A retry after any crash therefore repeats the same operation at Vipps instead of adding one.

pub mod events;
pub mod recurring;
pub mod refunds;
pub mod vipps_payment;

use chrono::Utc;
use rand::Rng;
use url::Url;

use crate::api::error::ErrorItem;
use crate::domain::account::ParameterDefault;
use crate::domain::ids::new_id;
use crate::domain::intent::{OneTimeIntent, VippsParameters};
use crate::domain::phone::Phone;
use crate::error::ServiceError;
use crate::store::records::{self, NewMessage, NewOneTime, NewReport, VippsPaymentRow};
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
    pub(crate) locks: vipps_payment::ReferenceLocks,
    pub(crate) clock: crate::jobs::Clock,
    pub(crate) recurring: recurring::RecurringSettings,
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

fn new_payment_reference() -> String {
    format!("pi-{}", rand::thread_rng().gen_range(100_000_000_000u64..1_000_000_000_000u64))
}

impl Payments {
    /// The payment services over the given parts.
    pub fn new(store: Store, accounts: Accounts, clients: VippsClients, public_url: Url) -> Self {
        Self {
            store,
            accounts,
            clients,
            public_url,
            locks: vipps_payment::ReferenceLocks::default(),
            clock: crate::jobs::system_clock(),
            recurring: recurring::RecurringSettings::default(),
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

        // Reads first, outside the write lock: who the payer is, their profile, who listens to events.
        let profile_phone = phone.clone().or_else(|| intent.payer.phone.as_ref().map(|p| p.as_str().to_owned()));
        let (known_payer, known_profile, listeners) = {
            let mut conn = self.store.pool().acquire().await?;
            let payer = records::find_payer(&mut conn, &intent.payer).await?;
            let profile = match &payer {
                Some(id) => records::find_profile(&mut conn, id, profile_phone.as_deref()).await?,
                None => None,
            };
            let listeners =
                events::Listeners::with_url(&mut conn, intent.webhook_url.as_ref().map(|u| u.to_string())).await?;
            (payer, profile, listeners)
        };

        let mut attempt = 0;
        let reference = loop {
            attempt += 1;
            let reference = new_payment_reference();
            let mut tx = self.store.begin_write().await?;
            let message_id = records::insert_message(
                &mut tx,
                &NewMessage {
                    direction: "inbound",
                    channel: "api",
                    subject: Some(&intent_id),
                    body: raw_body,
                    status: "Processed",
                },
                now,
            )
            .await?;
            let report_id = records::insert_report(
                &mut tx,
                &NewReport {
                    message_id: &message_id,
                    report_type: "PaymentIntent",
                    sub_type: "Default",
                    amount_ore: Some(intent.amount.ore()),
                    reference: Some(&reference),
                    status: "Matched",
                    installment_id: Some(&installment_id),
                    intent_id: Some(&intent_id),
                    detail: None,
                },
                now,
            )
            .await?;
            let payer_id = match &known_payer {
                Some(id) => id.clone(),
                None => records::create_payer(&mut tx, &intent.payer, now).await?,
            };
            let profile_id = match (&known_profile, &known_payer) {
                (Some(id), Some(_)) => id.clone(),
                // Looked up just before: create it (a concurrent creation is taken care of).
                _ => records::create_profile(&mut tx, &payer_id, profile_phone.as_deref(), now).await?,
            };
            let inserted = records::insert_one_time(
                &mut tx,
                &NewOneTime {
                    intent_id: &intent_id,
                    installment_id: &installment_id,
                    payment_reference: &reference,
                    report_id: &report_id,
                    account_id: &account.id,
                    payer_id: &payer_id,
                    profile_id: &profile_id,
                    amount_ore: intent.amount.ore(),
                    bank_statement_description: description.as_deref(),
                    product: parameters.description.as_deref(),
                    success_url: intent.success_url.as_str(),
                    failure_url: intent.failure_url.as_str(),
                    webhook_url: intent.webhook_url.as_ref().map(Url::as_str),
                    customer_phone: phone.as_deref(),
                    origin: intent.origin.as_deref(),
                    campaign_id: intent.campaign_id.as_deref(),
                },
                now,
            )
            .await;
            match inserted {
                // A payment reference collision (1 in 10^12): draw another.
                Err(StoreError::Conflict(_)) if attempt < 3 => continue,
                other => other?,
            }
            events::intent(&mut tx, &listeners, "paymentIntent.created", &intent_id, now).await?;
            events::installment(&mut tx, &listeners, "installment.created", &installment_id, now).await?;
            tx.commit().await?;
            break reference;
        };

        let row = VippsPaymentRow {
            reference: reference.clone(),
            installment_id: installment_id.clone(),
            account_id: account.id.clone(),
            idempotency_key: installment_id.clone(),
            amount_ore: intent.amount.ore(),
            state: "CREATING".into(),
            customer_phone: phone,
            description,
            redirect_url: None,
            authorized_ore: 0,
            captured_ore: 0,
            refunded_ore: 0,
        };
        match self
            .create_row_at_vipps(
                &row,
                &intent_id,
                Some(vipps_payment::Known { account: &account, listeners: &listeners }),
            )
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
