//! Setup URLs: a payer whose agreement was stopped or expired approves a **new agreement for the same recurring
//! payment** (FinDock's `Setup URL`; Vipps agreements hold no card to update, so renewing is re-consent).
//!
//! The submission enters through the trail like any channel's intent (Message, Inbound Report, a payment intent
//! with `Origin` = `SetupURL`), and a renewal mandate is recorded in the same transaction, before Vipps is
//! called; its id is the draft's Idempotency-Key ([`Payments::draft_agreement`], the same draft every other
//! agreement takes). At most one renewal waits for the payer per recurring payment (the schema's
//! `renewals_waiting`): a second tab or a double click is sent to the same agreement. When Vipps says the
//! new agreement is ACTIVE, [`Payments::carry_over`] moves the recurring payment onto it in the transaction that
//! records the activation: Active again, from the first period due that day or later (periods missed while it
//! had no agreement are not collected late).

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

use crate::domain::ids::new_id;
use crate::domain::phone::Phone;
use crate::domain::recurring::{MandateStatus, RecurringStatus};
use crate::domain::status::IntentStatus;
use crate::error::{ServiceError, ServiceResult};
use crate::processing::submissions::{self, Submission, SETUP_URL};
use crate::processing::Payments;
use crate::store::mandates::{self, MandateRow};
use crate::store::recurring_payments::{self, RecurringRow};
use crate::store::renewals::{self, NewRenewal};
use crate::store::{intents, StoreError};

/// Where a recurring payment stands, as its Setup URL tells the payer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Collecting on an active agreement: nothing to renew.
    Active,
    /// Its first agreement still waits for the payer's approval in Vipps.
    AwaitingApproval,
    /// The agreement was stopped or expired and the schedule goes on: the payer may approve a new one.
    Renewable,
    /// Cancelled by the organisation.
    Cancelled,
    /// Ended for good: the schedule passed its End Date.
    Ended,
}

/// What a Setup URL's page shows.
#[derive(Debug, Clone)]
pub struct SetupView {
    /// The recurring payment.
    pub recurring: RecurringRow,
    /// Its current mandate.
    pub mandate: MandateRow,
    /// The payee (the merchant account's name).
    pub payee: String,
    /// The phone to pre-fill: the payer's, else the one the agreement was made with.
    pub phone: Option<String>,
    /// Where it stands.
    pub standing: Standing,
    /// The first due date a new agreement would collect (today or later, by payhub's clock).
    pub next_due: Option<chrono::NaiveDate>,
}

/// What a Setup URL submission came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewed {
    /// The payer approves the new agreement here (Vipps' confirmation page).
    Approve(String),
    /// Nothing to renew (the standing says why); nothing was recorded.
    NotRenewable(Standing),
    /// Vipps refused the draft or did not answer (the submission is recorded; the poll retries an unanswered
    /// draft with the same key).
    Provider(String),
}

/// Where a renewed recurring payment resumes: the first period due `today` or later that has no installment yet
/// (one generated before the agreement ended was cancelled with it, and a period has one installment at most).
/// `None`: the schedule has ended.
fn resume_at(recurring: &RecurringRow, today: chrono::NaiveDate) -> ServiceResult<Option<(u32, chrono::NaiveDate)>> {
    let schedule = recurring.schedule()?;
    let generated = u32::try_from(recurring.next_period).unwrap_or(0);
    Ok(match schedule.next_on_or_after(today) {
        Some((period, _)) if period < generated => schedule.period_on_or_after(generated),
        other => other,
    })
}

fn standing(recurring: &RecurringRow, mandate: &MandateRow, today: chrono::NaiveDate) -> ServiceResult<Standing> {
    Ok(match (recurring.status, mandate.status) {
        (RecurringStatus::Cancelled | RecurringStatus::Cancelling, _) | (_, MandateStatus::Cancelled) => {
            Standing::Cancelled
        }
        (RecurringStatus::Active | RecurringStatus::Paused, MandateStatus::Pending) => Standing::AwaitingApproval,
        (RecurringStatus::Active | RecurringStatus::Paused, _) => Standing::Active,
        (RecurringStatus::Ended, MandateStatus::Stopped | MandateStatus::Expired)
            if resume_at(recurring, today)?.is_some() =>
        {
            Standing::Renewable
        }
        (RecurringStatus::Ended, _) => Standing::Ended,
    })
}

impl Payments {
    /// The recurring payment's Setup URL (`{public}/renew/{token}`), its token made the first time it is asked
    /// for (two first asks at once agree on one).
    pub async fn setup_url(&self, recurring_id: &str) -> ServiceResult<String> {
        let existing = {
            let mut conn = self.store.pool().acquire().await?;
            renewals::existing_setup_token(&mut conn, recurring_id).await?
        };
        let token = match existing {
            Some(token) => token,
            None => {
                let mut tx = self.store.begin_write().await?;
                let fresh = crate::auth::tokens::new_token("rn_");
                let token = renewals::setup_token_of(&mut tx, recurring_id, &fresh, self.now()).await?;
                tx.commit().await?;
                token
            }
        };
        Ok(format!("{}/renew/{token}", self.public_url.as_str().trim_end_matches('/')))
    }

    /// The recurring payment's Setup URL while its payer can use it (the agreement was stopped or expired and
    /// the schedule goes on: [`Standing::Renewable`]), else `None` and no token is made.
    pub async fn renewable_setup_url(
        &self,
        recurring: &RecurringRow,
        mandate: &MandateRow,
    ) -> ServiceResult<Option<String>> {
        if standing(recurring, mandate, self.today())? != Standing::Renewable {
            return Ok(None);
        }
        Ok(Some(self.setup_url(&recurring.id).await?))
    }

    /// What the Setup URL `token` shows; `None` when no recurring payment has this token.
    pub async fn setup_view(&self, token: &str) -> ServiceResult<Option<SetupView>> {
        let mut conn = self.store.pool().acquire().await?;
        let Some(recurring_id) = renewals::recurring_of_setup_token(&mut conn, token).await? else { return Ok(None) };
        let recurring = recurring_payments::recurring(&mut conn, &recurring_id)
            .await?
            .ok_or(ServiceError::NotFound("recurring payment"))?;
        let mandate =
            mandates::mandate(&mut conn, &recurring.mandate_id).await?.ok_or(ServiceError::NotFound("mandate"))?;
        let payer_phone = crate::store::paylinks::payer_phone(&mut conn, &recurring.payer_id).await?;
        drop(conn);
        let payee = self.accounts.get(&recurring.account_id).await.map(|a| a.name).unwrap_or_default();
        let standing = standing(&recurring, &mandate, self.today())?;
        let phone = payer_phone.or_else(|| mandate.customer_phone.clone());
        let next_due = resume_at(&recurring, self.today())?.map(|(_, due)| due);
        Ok(Some(SetupView { recurring, mandate, payee, phone, standing, next_due }))
    }

    /// A payer's approval on the Setup URL `token`: records the submission (`raw` is the form) and a renewal
    /// mandate, drafts its agreement at Vipps, and answers where the payer approves it. A renewal already
    /// waiting for the payer is reused, never drafted twice. `lang` is kept in the page's return address.
    pub async fn renew(&self, token: &str, phone: Option<&Phone>, raw: &str, lang: &str) -> ServiceResult<Renewed> {
        let Some(view) = self.setup_view(token).await? else { return Err(ServiceError::NotFound("setup link")) };
        if view.standing != Standing::Renewable {
            return Ok(Renewed::NotRenewable(view.standing));
        }
        let (recurring, old) = (&view.recurring, &view.mandate);
        let intent_id = new_id("pi");
        let mandate_id = new_id("mdt");
        let back = format!("{}/renew/{token}?lang={lang}", self.public_url.as_str().trim_end_matches('/'));
        let (unit, count) = recurring.frequency.vipps_interval();
        let now = self.now();
        let redirect_url = self.return_url(&intent_id);
        let customer_phone = phone.map(|p| p.as_str().to_owned()).or_else(|| view.phone.clone());
        let new = NewRenewal {
            id: &mandate_id,
            intent_id: &intent_id,
            recurring_id: &recurring.id,
            account_id: &recurring.account_id,
            payer_id: &recurring.payer_id,
            payment_profile_id: recurring.payment_profile_id.as_deref(),
            product_name: &old.product_name,
            merchant_agreement_url: &old.merchant_agreement_url,
            redirect_url: &redirect_url,
            customer_phone: customer_phone.as_deref(),
            price_ore: recurring.amount_ore,
            interval_unit: unit,
            interval_count: i64::from(count),
        };
        let detail = format!("Setup URL: a new agreement for recurring payment {}", recurring.id);
        let submission = Submission {
            intent_id: &intent_id,
            origin: SETUP_URL,
            raw,
            account_id: &recurring.account_id,
            payer_id: &recurring.payer_id,
            installment_id: None,
            amount_ore: recurring.amount_ore,
            reference: None,
            return_url: &back,
            detail: &detail,
        };
        // The submission, and the renewal it asks for unless one already waits for the payer: one transaction.
        let waiting = {
            let mut tx = self.store.begin_write().await?;
            submissions::record(&mut tx, submission, now).await?;
            let waiting = renewals::open_renewal(&mut tx, &recurring.id).await?;
            if waiting.is_none() {
                match renewals::insert_renewal(&mut tx, &new, now).await {
                    Ok(()) => {}
                    // Another tab's renewal was recorded meanwhile: this submission is recorded again without it.
                    Err(StoreError::Conflict(_)) => {
                        tx.rollback().await?;
                        let mut tx = self.store.begin_write().await?;
                        submissions::record(&mut tx, submission, now).await?;
                        let waiting = renewals::open_renewal(&mut tx, &recurring.id).await?;
                        tx.commit().await?;
                        return self.approve_waiting(waiting, &intent_id).await;
                    }
                    Err(other) => return Err(other.into()),
                }
            }
            tx.commit().await?;
            waiting
        };
        if waiting.is_some() {
            return self.approve_waiting(waiting, &intent_id).await;
        }
        match self.draft_agreement(&mandate_id).await {
            Ok(mandate) => Ok(match mandate.confirmation_url {
                Some(url) => Renewed::Approve(url),
                None => Renewed::Provider("Vipps gave no page to approve the agreement on".into()),
            }),
            Err(message) => Ok(Renewed::Provider(message)),
        }
    }

    /// Sends the payer to the renewal already waiting (drafting it again with its own key if Vipps has not
    /// answered it yet); the submission's own intent is Matched when it does.
    async fn approve_waiting(&self, waiting: Option<String>, intent_id: &str) -> ServiceResult<Renewed> {
        let Some(mandate_id) = waiting else {
            return Ok(Renewed::Provider("The renewal could not be recorded; please try again".into()));
        };
        let outcome = match self.draft_agreement(&mandate_id).await {
            Ok(mandate) => match mandate.confirmation_url {
                Some(url) => Renewed::Approve(url),
                None => Renewed::Provider("Vipps gave no page to approve the agreement on".into()),
            },
            Err(message) => Renewed::Provider(message),
        };
        let status = if matches!(outcome, Renewed::Approve(_)) { IntentStatus::Matched } else { IntentStatus::Failed };
        let mut tx = self.store.begin_write().await?;
        intents::set_intent_status(&mut tx, intent_id, status, self.now()).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// In the transaction that records a mandate's activation: if the mandate renews a recurring payment, the
    /// recurring payment moves onto it (Active again, from the first period due today or later that has no
    /// installment yet, see [`resume_at`]). Returns the
    /// recurring payment moved, if any.
    pub(super) async fn carry_over(
        &self,
        tx: &mut AnyConnection,
        mandate_id: &str,
        now: DateTime<Utc>,
    ) -> ServiceResult<Option<String>> {
        let Some(recurring_id) = renewals::renewed_by(&mut *tx, mandate_id).await? else { return Ok(None) };
        let Some(recurring) = recurring_payments::recurring(&mut *tx, &recurring_id).await? else { return Ok(None) };
        let Some((period, due)) = resume_at(&recurring, self.today())? else {
            tracing::warn!(recurring = %recurring_id, mandate = %mandate_id, "renewed after the schedule ended; nothing to collect");
            return Ok(None);
        };
        let moved = renewals::carry_over(&mut *tx, &recurring_id, mandate_id, i64::from(period), due, now).await?;
        if !moved {
            tracing::warn!(recurring = %recurring_id, mandate = %mandate_id, status = %recurring.status, "renewal active, but the recurring payment was not Ended; left as it is");
        }
        Ok(moved.then_some(recurring_id))
    }

    /// The renewal mandate a Setup URL submission's intent asked for, if the intent is one.
    pub(crate) async fn renewal_of_intent(&self, intent_id: &str) -> ServiceResult<Option<String>> {
        let mut conn = self.store.pool().acquire().await?;
        Ok(renewals::renewal_of_intent(&mut conn, intent_id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standings_follow_the_recurring_payment_and_its_mandate() {
        use crate::domain::schedule::Frequency;
        let today = chrono::NaiveDate::from_ymd_opt(2027, 3, 17).unwrap_or_default();
        let recurring = |status, end| RecurringRow {
            id: "rp_1".into(),
            intent_id: None,
            mandate_id: "mdt_1".into(),
            account_id: "acc_1".into(),
            payer_id: "py_1".into(),
            payment_profile_id: None,
            amount_ore: 10_000,
            frequency: Frequency::Monthly,
            start_date: today,
            end_date: end,
            collection_day: None,
            status,
            status_reason: None,
            paused_until: None,
            next_period: 0,
            next_collection_date: None,
            bank_statement_description: None,
            product: None,
            webhook_url: None,
        };
        let mandate = |status| MandateRow {
            id: "mdt_1".into(),
            account_id: "acc_1".into(),
            payer_id: "py_1".into(),
            intent_id: None,
            agreement_id: None,
            status,
            vipps_status: crate::domain::vipps_state::AgreementState::Creating,
            idempotency_key: "mdt_1".into(),
            confirmation_url: None,
            product_name: "Gave".into(),
            merchant_agreement_url: "https://example.org".into(),
            redirect_url: "https://example.org".into(),
            customer_phone: None,
            price_ore: 10_000,
            interval_unit: "MONTH".into(),
            interval_count: 1,
            initial_installment_id: None,
            last_error: None,
        };
        let of = |r, m| standing(&recurring(r, None), &mandate(m), today).ok();
        assert_eq!(of(RecurringStatus::Active, MandateStatus::Active), Some(Standing::Active));
        assert_eq!(of(RecurringStatus::Active, MandateStatus::Pending), Some(Standing::AwaitingApproval));
        assert_eq!(of(RecurringStatus::Ended, MandateStatus::Stopped), Some(Standing::Renewable));
        assert_eq!(of(RecurringStatus::Ended, MandateStatus::Expired), Some(Standing::Renewable));
        assert_eq!(of(RecurringStatus::Cancelled, MandateStatus::Cancelled), Some(Standing::Cancelled));
        let past_end = standing(
            &recurring(RecurringStatus::Ended, Some(today)),
            &mandate(MandateStatus::Stopped),
            today + chrono::Days::new(40),
        );
        assert_eq!(past_end.ok(), Some(Standing::Ended), "a schedule past its End Date is not renewed");
        // Period 1 (a month on) was generated before the stop: the renewal resumes at period 2.
        let mut generated = recurring(RecurringStatus::Ended, None);
        generated.next_period = 2;
        let resumed = resume_at(&generated, today).ok().flatten().map(|(p, d)| (p, d.to_string()));
        assert_eq!(resumed, Some((2, "2027-05-17".to_owned())));
        assert_eq!(resume_at(&recurring(RecurringStatus::Ended, None), today).ok().flatten().map(|(p, _)| p), Some(0));
    }
}
