//! The organisation's changes to a recurring payment: amount, Collection Day, pause, resume, cancel. Each is
//! recorded as a `recurring_changes` row (the Idempotency-Key of any Vipps call) and audited; one Vipps has not
//! confirmed stays `Pending` and is finished by `pending`.

use chrono::{Days, NaiveDate};
use serde_json::json;
use vipps_client::recurring::{AgreementUpdate, PricingUpdate};

use super::{invalid, key, CancelOutcome, ChangeOutcome};
use crate::auth::Actor;
use crate::domain::money::Money;
use crate::domain::recurring::{MandateStatus, RecurringStatus, MAX_RECURRING_ORE, MIN_RECURRING_ORE};
use crate::error::{ServiceError, ServiceResult};
use crate::processing::one_time::{describe, is_transient};
use crate::processing::Payments;
use crate::store::changes;
use crate::store::installments;
use crate::store::mandates::{self, MandateRow};
use crate::store::recurring_payments::{self, RecurringRow};

impl Payments {
    async fn open_recurring(&self, id: &str) -> ServiceResult<(RecurringRow, MandateRow)> {
        let mut conn = self.store.pool().acquire().await?;
        let recurring =
            recurring_payments::recurring(&mut conn, id).await?.ok_or(ServiceError::NotFound("recurring payment"))?;
        let mandate =
            mandates::mandate(&mut conn, &recurring.mandate_id).await?.ok_or(ServiceError::NotFound("mandate"))?;
        if !recurring.status.is_open() {
            return Err(invalid("Id", format!("The recurring payment is {}; it cannot change", recurring.status)));
        }
        Ok((recurring, mandate))
    }

    pub(super) async fn audit(
        &self,
        conn: &mut sqlx::AnyConnection,
        actor: &Actor,
        action: &str,
        object_type: &str,
        id: &str,
        details: serde_json::Value,
    ) -> ServiceResult<()> {
        crate::auth::audit(conn, actor, action, object_type, id, details).await
    }

    /// Changes the amount: the agreement's price at Vipps first (key: the change's id), then the recurring
    /// payment and its installments not yet charged. Only while the mandate is Active: a Pending agreement
    /// cannot change at Vipps, and the payer confirms the price it shows. When Vipps does not answer (timeout,
    /// 5xx, 429 after the client's retries) the change stays Pending and the `recurring.pending_changes` beat
    /// sends it again with the same key; only Vipps' definite refusal fails it.
    pub async fn change_amount(
        &self,
        recurring_id: &str,
        amount: Money,
        actor: &Actor,
    ) -> ServiceResult<ChangeOutcome> {
        if !(MIN_RECURRING_ORE..=MAX_RECURRING_ORE).contains(&amount.ore()) {
            return Err(invalid(
                "Amount",
                format!(
                    "Amount must be from {} to {} NOK (Vipps' limits for an agreement)",
                    Money::from_ore(MIN_RECURRING_ORE).kroner_string(),
                    Money::from_ore(MAX_RECURRING_ORE).kroner_string()
                ),
            ));
        }
        let (recurring, mandate) = self.open_recurring(recurring_id).await?;
        let details = json!({"from_ore": recurring.amount_ore, "to_ore": amount.ore()});
        let change_id = {
            let mut conn = self.store.pool().acquire().await?;
            changes::insert_change(
                &mut conn,
                Some(&mandate.id),
                Some(&recurring.id),
                "amount",
                &details,
                &actor.label,
                self.now(),
            )
            .await?
        };
        if mandate.agreement_id.is_none() || mandate.status != MandateStatus::Active {
            let message = match mandate.status {
                MandateStatus::Pending => "The agreement waits for the payer, who confirms the price it shows; \
                                           change the amount once the mandate is Active"
                    .to_owned(),
                other => format!("The mandate is {other}; its agreement cannot change"),
            };
            let mut conn = self.store.pool().acquire().await?;
            changes::finish_change(&mut conn, &change_id, false, Some(&message), self.now()).await?;
            return Err(invalid("Id", message));
        }
        match self.send_amount(&change_id, &mandate, &recurring.id, amount.ore(), actor, details).await? {
            ChangeOutcome::Refused(message) => {
                Err(invalid("Amount", format!("Vipps did not accept the new price: {message}")))
            }
            outcome => Ok(outcome),
        }
    }

    /// Sends an amount change's new price to Vipps (key: the change's id, so a repeat is the same request) and
    /// applies it once Vipps confirms; keeps it Pending when Vipps does not answer; fails it when Vipps refuses.
    pub(super) async fn send_amount(
        &self,
        change_id: &str,
        mandate: &MandateRow,
        recurring_id: &str,
        amount_ore: i64,
        actor: &Actor,
        details: serde_json::Value,
    ) -> ServiceResult<ChangeOutcome> {
        let Some(agreement_id) = mandate.agreement_id.as_deref() else {
            return Ok(ChangeOutcome::Refused("the agreement was never created at Vipps".into()));
        };
        let client = self.clients.get(&self.accounts, &mandate.account_id).await?;
        let mut update = AgreementUpdate::default();
        update.pricing = Some(PricingUpdate::amount(amount_ore));
        if let Err(error) = client.recurring().update_agreement(agreement_id, &update, &key(change_id)?).await {
            let message = describe(&error);
            if is_transient(error.kind()) {
                return self
                    .still_pending(
                        change_id,
                        format!("Vipps did not answer ({message}); payhub sends the new price again with the same key"),
                    )
                    .await;
            }
            let mut conn = self.store.pool().acquire().await?;
            changes::finish_change(&mut conn, change_id, false, Some(&message), self.now()).await?;
            return Ok(ChangeOutcome::Refused(message));
        }
        let now = self.now();
        let mut tx = self.store.begin_write().await?;
        recurring_payments::set_recurring_terms(&mut tx, recurring_id, Some(amount_ore), None, now).await?;
        mandates::set_mandate_price(&mut tx, &mandate.id, amount_ore, now).await?;
        for installment in installments::open_installments(&mut tx, &mandate.id, Some(recurring_id)).await? {
            installments::reshape_outstanding(&mut tx, &installment, Some(amount_ore), None, now).await?;
        }
        changes::finish_change(&mut tx, change_id, true, None, now).await?;
        self.audit(&mut tx, actor, "recurring.change_amount", "recurring_payment", recurring_id, details).await?;
        tx.commit().await?;
        Ok(ChangeOutcome::Done)
    }

    /// Changes the Collection Day: installments not yet charged move to the new day of their month (never
    /// before the Start Date or after the End Date); those already charged keep theirs.
    pub async fn change_collection_day(&self, recurring_id: &str, day: u32, actor: &Actor) -> ServiceResult<()> {
        if !(1..=31).contains(&day) {
            return Err(invalid("CollectionDay", "CollectionDay must be a day of the month from 1 to 31"));
        }
        let (recurring, mandate) = self.open_recurring(recurring_id).await?;
        let details = json!({"from": recurring.collection_day, "to": day});
        let mut changed = recurring.clone();
        changed.collection_day = Some(day);
        let schedule = changed.schedule()?;
        let now = self.now();
        let tomorrow = self.today().checked_add_days(Days::new(1)).unwrap_or(self.today());
        let mut tx = self.store.begin_write().await?;
        let change_id = changes::insert_change(
            &mut tx,
            Some(&mandate.id),
            Some(&recurring.id),
            "collection_day",
            &details,
            &actor.label,
            now,
        )
        .await?;
        recurring_payments::set_recurring_terms(&mut tx, &recurring.id, None, Some(day), now).await?;
        for installment in installments::open_installments(&mut tx, &mandate.id, Some(&recurring.id)).await? {
            if let Some(period) = installments::installment_period(&mut tx, &installment).await? {
                let due = schedule.period_date_of(u32::try_from(period).unwrap_or(0)).map(|d| {
                    let d = d.max(recurring.start_date);
                    recurring.end_date.map_or(d, |end| d.min(end)).max(tomorrow)
                });
                installments::reshape_outstanding(&mut tx, &installment, None, due, now).await?;
            }
        }
        let next = schedule.period_on_or_after(u32::try_from(recurring.next_period).unwrap_or(u32::MAX));
        recurring_payments::set_next_period(&mut tx, &recurring.id, recurring.next_period, next.map(|(_, d)| d), now)
            .await?;
        changes::finish_change(&mut tx, &change_id, true, None, now).await?;
        self.audit(&mut tx, actor, "recurring.change_collection_day", "recurring_payment", &recurring.id, details)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Pauses collection until `until` (exclusive): periods that fall due while the pause lasts get no
    /// installment, and those already generated and due before it are cancelled with their charges at Vipps.
    /// The pause is in effect at once; its charge cancels are Pending until Vipps confirms each (the
    /// `recurring.pending_changes` beat retries them).
    pub async fn pause(&self, recurring_id: &str, until: NaiveDate, actor: &Actor) -> ServiceResult<ChangeOutcome> {
        let today = self.today();
        if until <= today {
            return Err(invalid("Until", format!("Until must be after today ({today})")));
        }
        let (recurring, mandate) = self.open_recurring(recurring_id).await?;
        let details = json!({"until": until.to_string()});
        let reason = format!("Paused until {until}");
        let change = StatusChange { kind: "pause", status: RecurringStatus::Paused, reason: None, until: Some(until) };
        let change_id = self.record_status_change(&mandate, &recurring, change, details, actor).await?;
        let progress = self.cancel_installments(&mandate, Some(&recurring.id), &reason, Some(until)).await?;
        self.finish_pause(&change_id, progress).await
    }

    /// Resumes a paused recurring payment: the periods still ahead are collected as usual (the next one is
    /// generated now, also when it falls before the pause's Until); installments the pause cancelled stay so.
    pub async fn resume(&self, recurring_id: &str, actor: &Actor) -> ServiceResult<()> {
        let (recurring, mandate) = self.open_recurring(recurring_id).await?;
        if recurring.status != RecurringStatus::Paused {
            return Err(invalid("Id", "The recurring payment is not paused"));
        }
        let now = self.now();
        let mut tx = self.store.begin_write().await?;
        let change_id = changes::insert_change(
            &mut tx,
            Some(&mandate.id),
            Some(&recurring.id),
            "resume",
            &json!({}),
            &actor.label,
            now,
        )
        .await?;
        recurring_payments::set_recurring_status(&mut tx, &recurring.id, RecurringStatus::Active, None, None, now)
            .await?;
        // A pause whose charge cancels Vipps has not all confirmed ends here: what is still open is collected.
        while let Some(pause) = changes::pending_change_of(&mut tx, &recurring.id, "pause").await? {
            let message =
                "Resumed before Vipps confirmed every charge cancel; what is still open is collected as usual";
            changes::finish_change(&mut tx, &pause.id, false, Some(message), now).await?;
        }
        changes::finish_change(&mut tx, &change_id, true, None, now).await?;
        self.audit(&mut tx, actor, "recurring.resume", "recurring_payment", &recurring.id, json!({})).await?;
        tx.commit().await?;
        self.generate_for(Some(&mandate.id)).await?;
        Ok(())
    }

    /// Cancels a recurring payment: it is Cancelling at once (nothing new is generated or charged), its open
    /// installments are cancelled with their charges at Vipps, and when the account says so the Vipps agreement
    /// is stopped too. It becomes Cancelled once Vipps confirmed every live charge cancelled (or final);
    /// until then the change is Pending and the `recurring.pending_changes` beat retries. Asked again while
    /// Cancelling, it retries now and answers where it stands.
    pub async fn cancel_recurring(
        &self,
        recurring_id: &str,
        reason: Option<&str>,
        actor: &Actor,
    ) -> ServiceResult<(ChangeOutcome, Option<CancelOutcome>)> {
        let pending = {
            let mut conn = self.store.pool().acquire().await?;
            changes::pending_change_of(&mut conn, recurring_id, "cancel").await?
        };
        if let Some(change) = pending {
            return Ok((self.settle_change(&change).await?, None));
        }
        let (recurring, mandate) = self.open_recurring(recurring_id).await?;
        let reason = reason.map_or_else(|| "Cancelled by the organisation".to_owned(), str::to_owned);
        let details = json!({"reason": reason});
        let change =
            StatusChange { kind: "cancel", status: RecurringStatus::Cancelling, reason: Some(&reason), until: None };
        let change_id = self.record_status_change(&mandate, &recurring, change, details, actor).await?;
        let mut progress = self.cancel_installments(&mandate, Some(&recurring.id), &reason, None).await?;
        let account = self.accounts.get(&mandate.account_id).await?;
        let mut stopped = None;
        if account.cancel_agreement_on_cancel && mandate.status.is_active() {
            let outcome = self.cancel_agreement(&mandate.id, actor).await?;
            if outcome.is_success && !progress.settled() {
                // Stopping the agreement cancels its pending charges at Vipps: read them again.
                progress = self.cancel_installments(&mandate, Some(&recurring.id), &reason, None).await?;
            }
            stopped = Some(outcome);
        }
        Ok((self.finish_cancel(&change_id, &recurring.id, &reason, progress).await?, stopped))
    }

    /// Records the organisation's change of a recurring payment's status in one transaction: the change row
    /// (its id keys the Vipps calls that follow), the new status and the audit entry. Returns the change's id.
    async fn record_status_change(
        &self,
        mandate: &MandateRow,
        recurring: &RecurringRow,
        change: StatusChange<'_>,
        details: serde_json::Value,
        actor: &Actor,
    ) -> ServiceResult<String> {
        let now = self.now();
        let mut tx = self.store.begin_write().await?;
        let change_id = changes::insert_change(
            &mut tx,
            Some(&mandate.id),
            Some(&recurring.id),
            change.kind,
            &details,
            &actor.label,
            now,
        )
        .await?;
        recurring_payments::set_recurring_status(
            &mut tx,
            &recurring.id,
            change.status,
            change.reason,
            change.until,
            now,
        )
        .await?;
        let action = format!("recurring.{}", change.kind);
        self.audit(&mut tx, actor, &action, "recurring_payment", &recurring.id, details).await?;
        tx.commit().await?;
        Ok(change_id)
    }
}

/// A change of a recurring payment's status asked for by the organisation.
struct StatusChange<'a> {
    /// The change's kind (`pause`, `cancel`), also naming its audit entry.
    kind: &'a str,
    /// The status it moves to at once.
    status: RecurringStatus,
    /// Why, when the status keeps a reason.
    reason: Option<&'a str>,
    /// Until when, for a pause.
    until: Option<NaiveDate>,
}
