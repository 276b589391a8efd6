//! Recurring intake: a recurring intent becomes its records (payer, profile, Pending mandate, recurring
//! payment, the initial payment's installment) in one transaction, then its agreement is drafted at Vipps.

use super::RecurringCreated;
use crate::domain::ids::new_id;
use crate::domain::recurring::{RecurringIntent, MAX_CHARGE_DESCRIPTION};
use crate::domain::schedule::oslo_date;
use crate::error::ErrorItem;
use crate::processing::trail::{self, Channel, Means, Outcome, ReportType, Said};
use crate::processing::{outbox, with_defaults, IntentError, Payments};
use crate::store::installments;
use crate::store::intents;
use crate::store::mandates;
use crate::store::payers;
use crate::store::recurring_payments;
use crate::store::StoreError;

impl Payments {
    /// Records a recurring intent (payer, profile, Pending mandate, recurring payment, the initial payment's
    /// installment) and drafts its agreement at Vipps.
    pub async fn create_recurring(
        &self,
        intent: &RecurringIntent,
        raw_body: &str,
    ) -> Result<RecurringCreated, IntentError> {
        let base = &intent.base;
        let account = self.account_for(base.target.as_deref()).await?;
        let parameters = with_defaults(base, &account.parameter_defaults).map_err(IntentError::Invalid)?;
        let field_error = |code: &'static str, field: &str, message: String| {
            IntentError::Invalid(vec![ErrorItem {
                error_code: code,
                error_message: message,
                field: Some(field.into()),
            }])
        };
        if parameters.transaction_text.as_ref().is_some_and(|t| t.chars().count() > MAX_CHARGE_DESCRIPTION) {
            return Err(field_error(
                "200",
                "PaymentMethod.Parameters.TransactionText",
                format!("TransactionText must be at most {MAX_CHARGE_DESCRIPTION} characters for a recurring payment (the Vipps charge description limit)"),
            ));
        }
        let Some(product_name) = parameters.product_name.clone().or_else(|| account.product_name.clone()) else {
            return Err(field_error(
                "011",
                "PaymentMethod.Parameters.ProductName",
                format!("ProductName is required: send it, or set a Product Name on the account {}", account.name),
            ));
        };
        let Some(agreement_url) =
            parameters.merchant_agreement_url.clone().or_else(|| account.merchant_agreement_url.clone())
        else {
            return Err(field_error(
                "011",
                "PaymentMethod.Parameters.MerchantAgreementUrl",
                format!(
                    "MerchantAgreementUrl is required: send it, or set a Merchant Agreement Url on the account {}",
                    account.name
                ),
            ));
        };
        let url_ok = url::Url::parse(&agreement_url).is_ok_and(|u| {
            u.scheme() == "https" && u.host_str().is_some()
                || u.scheme() == "http" && matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))
        });
        if !url_ok {
            return Err(field_error(
                "200",
                "PaymentMethod.Parameters.MerchantAgreementUrl",
                "MerchantAgreementUrl must be an absolute https URL (a Vipps rule; http only to localhost)".into(),
            ));
        }
        let schedule = intent
            .terms
            .schedule()
            .ok_or_else(|| field_error("200", "Recurring", "The schedule is not valid".into()))?;
        let now = self.now();
        let intent_id = new_id("pi");
        let mandate_id = new_id("mdt");
        let recurring_id = new_id("rp");
        let initial_id = intent.initial.map(|_| new_id("ins"));
        let phone = parameters.mobile_number.as_ref().map(|p| p.as_str().to_owned());
        let (unit, count) = intent.terms.frequency.vipps_interval();

        let profile_phone = phone.clone().or_else(|| base.payer.phone.as_ref().map(|p| p.as_str().to_owned()));
        let (known_payer, known_profile, listeners) = {
            let mut conn = self.store.pool().acquire().await?;
            let payer = payers::find_payer(&mut conn, &base.payer).await?;
            let profile = match &payer {
                Some(id) => payers::find_profile(&mut conn, id, profile_phone.as_deref()).await?,
                None => None,
            };
            let listeners =
                outbox::Listeners::with_url(&mut conn, base.webhook_url.as_ref().map(|u| u.to_string())).await?;
            (payer, profile, listeners)
        };

        let mut attempt = 0;
        loop {
            attempt += 1;
            let initial_reference = initial_id.as_ref().map(|_| crate::processing::new_payment_reference());
            let mut tx = self.store.begin_write().await?;
            let detail = format!("recurring payment {recurring_id}");
            let trail::Recorded { report_id, .. } = trail::record(
                &mut tx,
                Said::new(Channel::Api, Some(&intent_id), raw_body),
                Means::new(ReportType::PaymentIntent, "Default", Outcome::Matched)
                    .amount(intent.terms.amount.ore())
                    .installment(initial_id.as_deref())
                    .intent(Some(&intent_id))
                    .detail(Some(&detail)),
                now,
            )
            .await?;
            let payer_id = match &known_payer {
                Some(id) => id.clone(),
                None => payers::create_payer(&mut tx, &base.payer, now).await?,
            };
            let profile_id = match (&known_profile, &known_payer) {
                (Some(id), Some(_)) => id.clone(),
                _ => payers::create_profile(&mut tx, &payer_id, profile_phone.as_deref(), now).await?,
            };
            intents::insert_intent(
                &mut tx,
                &intents::NewIntentRow {
                    id: &intent_id,
                    report_id: &report_id,
                    account_id: &account.id,
                    payer_id: &payer_id,
                    installment_id: initial_id.as_deref(),
                    success_url: base.success_url.as_str(),
                    failure_url: base.failure_url.as_str(),
                    webhook_url: base.webhook_url.as_ref().map(url::Url::as_str),
                    origin: base.origin.as_deref(),
                    campaign_id: base.campaign_id.as_deref(),
                },
                now,
            )
            .await?;
            if let (Some(id), Some(reference), Some(amount)) = (&initial_id, &initial_reference, intent.initial) {
                let inserted = installments::insert_mandate_installment(
                    &mut tx,
                    &installments::NewMandateInstallment {
                        id,
                        intent_id: &intent_id,
                        payer_id: &payer_id,
                        profile_id: &profile_id,
                        account_id: &account.id,
                        mandate_id: &mandate_id,
                        amount_ore: amount.ore(),
                        due_date: oslo_date(now),
                        payment_reference: reference,
                        bank_statement_description: parameters.transaction_text.as_deref(),
                        product: parameters.description.as_deref(),
                    },
                    now,
                )
                .await;
                match inserted {
                    Err(StoreError::Conflict(_)) if attempt < 3 => continue,
                    other => other?,
                }
            }
            mandates::insert_mandate(
                &mut tx,
                &mandates::NewMandate {
                    id: &mandate_id,
                    account_id: &account.id,
                    payer_id: &payer_id,
                    profile_id: &profile_id,
                    intent_id: &intent_id,
                    product_name: &product_name,
                    merchant_agreement_url: &agreement_url,
                    redirect_url: &self.return_url(&intent_id),
                    customer_phone: phone.as_deref(),
                    price_ore: intent.terms.amount.ore(),
                    interval_unit: unit,
                    interval_count: i64::from(count),
                    initial_installment_id: initial_id.as_deref(),
                },
                now,
            )
            .await?;
            recurring_payments::insert_recurring(
                &mut tx,
                &recurring_payments::NewRecurring {
                    id: &recurring_id,
                    intent_id: &intent_id,
                    mandate_id: &mandate_id,
                    account_id: &account.id,
                    payer_id: &payer_id,
                    profile_id: &profile_id,
                    amount_ore: intent.terms.amount.ore(),
                    schedule,
                    start_date: intent.terms.start_date,
                    end_date: intent.terms.end_date,
                    bank_statement_description: parameters.transaction_text.as_deref(),
                    product: parameters.description.as_deref(),
                },
                now,
            )
            .await?;
            outbox::intent(&mut tx, &listeners, "paymentIntent.created", &intent_id, now).await?;
            if let Some(id) = &initial_id {
                outbox::installment(&mut tx, &listeners, "installment.created", id, now).await?;
            }
            tx.commit().await?;
            break;
        }
        match self.draft_agreement(&mandate_id).await {
            Ok(mandate) => Ok(RecurringCreated {
                intent_id,
                recurring_id,
                mandate_id,
                initial_installment_id: initial_id,
                redirect_url: mandate.confirmation_url,
                target: account.name,
            }),
            Err(message) => Err(IntentError::Provider { intent_id, message }),
        }
    }
}
