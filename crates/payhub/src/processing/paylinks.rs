//! Paying an existing installment, through its PayLink or the Payment API's `OneTime.Id`: the ask enters through
//! the trail like every channel's intent (Message, Inbound Report, a payment intent with `Origin` = `PayLink` or
//! `PaymentAPI`), then the payer is sent to the installment's one Vipps payment. A one-time installment got its
//! payment from the intake, so that one is reused; an open installment with none yet (one made by hand in Guided
//! Matching) gets it here, recorded before the call under a key derived from the installment and the attempt
//! (`ins_….1`), and the installment id being unique among Vipps payments, however many tabs, clicks or requests
//! ask there is one payment per installment.

use super::submissions::{self, Submission, PAYLINK, PAYMENT_API};
use super::Payments;
use crate::domain::ids::new_id;
use crate::domain::phone::Phone;
use crate::domain::status::IntentStatus;
use crate::domain::vipps_state::PaymentState;
use crate::error::{ServiceError, ServiceResult};
use crate::store::installments::InstallmentRow;
use crate::store::{intents, paylinks, vipps_payments};

/// What paying an existing installment came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkPayment {
    /// The payer approves the payment here (Vipps' landing page).
    Pay(String),
    /// Vipps has no payment waiting for the payer and none could be made now (why, in Vipps' words).
    NotStarted(String),
}

/// One ask to pay an existing installment, as the trail keeps it.
struct Ask<'a> {
    origin: &'a str,
    raw: &'a str,
    return_url: &'a str,
    detail: &'a str,
    phone: Option<&'a str>,
}

impl Payments {
    /// The full URL of the installment's PayLink, its token made the first time it is asked for (most asks
    /// only read). The caller has checked that a link may pay it ([`paylinks::payable`]).
    pub async fn paylink_url(&self, installment_id: &str) -> ServiceResult<String> {
        let existing = {
            let mut conn = self.store.pool().acquire().await?;
            paylinks::existing_token(&mut conn, installment_id).await?
        };
        let token = match existing {
            Some(token) => token,
            None => {
                let mut tx = self.store.begin_write().await?;
                let fresh = crate::auth::tokens::new_token("pl_");
                let token = paylinks::token_of(&mut tx, installment_id, &fresh, self.now()).await?;
                tx.commit().await?;
                token
            }
        };
        Ok(format!("{}/pay/{token}", self.public_url.as_str().trim_end_matches('/')))
    }

    /// A payer pays `installment` through its PayLink `token`: records the submission (`raw` is the form),
    /// makes the installment's Vipps payment if it has none yet (with `phone`, if given), and answers where the
    /// payer goes. The caller has checked that the link may pay it ([`paylinks::payable`]).
    pub async fn pay_by_link(
        &self,
        installment: &InstallmentRow,
        token: &str,
        phone: Option<&Phone>,
        raw: &str,
        lang: &str,
    ) -> ServiceResult<LinkPayment> {
        let back = format!("{}/pay/{token}?lang={lang}", self.public_url.as_str().trim_end_matches('/'));
        let detail = format!("PayLink: pay installment {}", installment.id);
        let ask = Ask { origin: PAYLINK, raw, return_url: &back, detail: &detail, phone: phone.map(Phone::as_str) };
        Ok(self.pay_installment(installment, ask).await?.1)
    }

    /// The Payment API's `OneTime.Id`: the same as paying through the installment's PayLink (`raw` is the request
    /// body), with the payer's stored phone for a payment made here; the payer comes back to the PayLink's page,
    /// which tells the outcome. Answers the request's own intent id (`pi_…`) and where the payer goes. The caller
    /// has checked that the installment may be paid ([`paylinks::payable`]).
    pub async fn pay_by_id(&self, installment: &InstallmentRow, raw: &str) -> ServiceResult<(String, LinkPayment)> {
        let back = self.paylink_url(&installment.id).await?;
        let phone = {
            let mut conn = self.store.pool().acquire().await?;
            paylinks::payer_phone(&mut conn, &installment.payer_id).await?
        };
        let detail = format!("Payment API: pay installment {} (OneTime.Id)", installment.id);
        let ask = Ask { origin: PAYMENT_API, raw, return_url: &back, detail: &detail, phone: phone.as_deref() };
        self.pay_installment(installment, ask).await
    }

    /// Records the ask, makes the installment's Vipps payment if it has none yet, and answers the new intent's id
    /// and where the payer goes; the intent ends `Matched` or `Failed`.
    async fn pay_installment(
        &self,
        installment: &InstallmentRow,
        ask: Ask<'_>,
    ) -> ServiceResult<(String, LinkPayment)> {
        let intent_id = new_id("pi");
        let now = self.now();
        {
            let mut tx = self.store.begin_write().await?;
            let submission = Submission {
                intent_id: &intent_id,
                origin: ask.origin,
                raw: ask.raw,
                account_id: &installment.account_id,
                payer_id: &installment.payer_id,
                installment_id: Some(&installment.id),
                amount_ore: installment.amount_open_ore,
                reference: Some(&installment.payment_reference),
                return_url: ask.return_url,
                detail: ask.detail,
            };
            submissions::record(&mut tx, submission, now).await?;
            // The installment's first Vipps payment, if the intake made none: a second tab's insert does nothing.
            let key = format!("{}.1", installment.id);
            let new = paylinks::LinkPayment {
                reference: &installment.payment_reference,
                installment_id: &installment.id,
                account_id: &installment.account_id,
                idempotency_key: &key,
                amount_ore: installment.amount_open_ore,
                customer_phone: ask.phone,
                description: installment.bank_statement_description.as_deref(),
            };
            paylinks::insert_payment_if_none(&mut tx, &new, now).await?;
            tx.commit().await?;
        }
        let row = {
            let mut conn = self.store.pool().acquire().await?;
            vipps_payments::vipps_payment_of(&mut conn, &installment.id)
                .await?
                .ok_or(ServiceError::NotFound("vipps payment"))?
        };
        let outcome = match row.state {
            PaymentState::Created => match row.redirect_url {
                Some(url) => LinkPayment::Pay(url),
                None => LinkPayment::NotStarted("Vipps gave no landing page".into()),
            },
            // Sent again with its stored key (Vipps replays the first answer); a payment made for this ask itself
            // brings the payer back through this intent to its return URL.
            PaymentState::Creating => match self.create_at_vipps_for(&row.reference, &intent_id).await {
                Ok(Some(url)) => LinkPayment::Pay(url),
                Ok(None) => LinkPayment::NotStarted("Vipps gave no landing page".into()),
                Err(message) => LinkPayment::NotStarted(message),
            },
            other => LinkPayment::NotStarted(format!("the installment's Vipps payment is {}", other.as_str())),
        };
        let status = match outcome {
            LinkPayment::Pay(_) => IntentStatus::Matched,
            LinkPayment::NotStarted(_) => IntentStatus::Failed,
        };
        let mut tx = self.store.begin_write().await?;
        intents::set_intent_status(&mut tx, &intent_id, status, self.now()).await?;
        tx.commit().await?;
        Ok((intent_id, outcome))
    }
}
