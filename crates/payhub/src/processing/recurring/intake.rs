//! Recurring intake: a recurring intent becomes its records (the trail, payer, profile, Pending mandate,
//! recurring payment, the initial payment's installment) through the same shared writer as a one-time intent
//! (`store::together`), then its agreement is drafted at Vipps.

use super::RecurringCreated;
use crate::domain::ids::{new_id, new_payment_reference};
use crate::domain::recurring::{RecurringIntent, MAX_CHARGE_DESCRIPTION};
use crate::error::ErrorItem;
use crate::processing::{with_defaults, IntentError, Payments};
use crate::store::together::{PendingIntent, PendingRecurring};

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
        // Recorded with the other intents waiting to be written, in one transaction, as a one-time intent is.
        let pending = PendingIntent {
            intent_id: intent_id.clone(),
            installment_id: initial_id.clone().unwrap_or_default(),
            reference: if initial_id.is_some() { new_payment_reference() } else { String::new() },
            raw_body: raw_body.to_owned(),
            account_id: account.id.clone(),
            payer: base.payer.clone(),
            profile_phone,
            amount_ore: intent.initial.map_or(0, |amount| amount.ore()),
            description: parameters.transaction_text.clone(),
            product: parameters.description.clone(),
            success_url: base.success_url.to_string(),
            failure_url: base.failure_url.to_string(),
            webhook_url: base.webhook_url.as_ref().map(|u| u.to_string()),
            customer_phone: phone,
            origin: base.origin.clone(),
            campaign_id: base.campaign_id.clone(),
            now,
            recurring: Some(PendingRecurring {
                mandate_id: mandate_id.clone(),
                recurring_id: recurring_id.clone(),
                price_ore: intent.terms.amount.ore(),
                product_name,
                merchant_agreement_url: agreement_url,
                redirect_url: self.return_url(&intent_id),
                interval_unit: unit,
                interval_count: i64::from(count),
                schedule,
                start_date: intent.terms.start_date,
                end_date: intent.terms.end_date,
                initial: initial_id.is_some(),
                detail: format!("recurring payment {recurring_id}"),
            }),
        };
        self.together().record_intent(pending).await?;
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
