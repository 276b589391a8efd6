//! The organisation's changes to a recurring payment: amount, Collection Day, pause, resume, cancel. Each is
//! recorded as a `recurring_changes` row (the Idempotency-Key of any Vipps call) and audited.

use chrono::{Days, NaiveDate, Utc};
use serde_json::json;
use vipps_client::recurring::{AgreementUpdate, PricingUpdate};
use vipps_client::ErrorKind;

use super::{invalid, key, CancelOutcome};
use crate::auth::Actor;
use crate::domain::money::Money;
use crate::domain::recurring::{MandateStatus, RecurringStatus, MAX_RECURRING_ORE, MIN_RECURRING_ORE};
use crate::domain::status::InstallmentStatus;
use crate::domain::vipps_state::ChargeState;
use crate::error::{ServiceError, ServiceResult};
use crate::processing::one_time::describe;
use crate::processing::{outbox, Payments};
use crate::store::audit::{self, AuditEntry};
use crate::store::changes;
use crate::store::charges;
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
        audit::record(
            conn,
            &AuditEntry {
                at: Utc::now(),
                actor: actor.label.clone(),
                action: action.into(),
                object_type: object_type.into(),
                object_id: id.into(),
                source: actor.source.clone(),
                details,
            },
        )
        .await?;
        Ok(())
    }

    /// Changes the amount: the agreement's price at Vipps first (key: the change's id), then the recurring
    /// payment and its installments not yet charged. Only while the mandate is Active: a Pending agreement
    /// cannot change at Vipps, and the payer confirms the price it shows.
    pub async fn change_amount(&self, recurring_id: &str, amount: Money, actor: &Actor) -> ServiceResult<()> {
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
        if let Some(agreement_id) = mandate.agreement_id.as_deref().filter(|_| mandate.status == MandateStatus::Active)
        {
            let client = self.clients.get(&self.accounts, &mandate.account_id).await?;
            let mut update = AgreementUpdate::default();
            update.pricing = Some(PricingUpdate::amount(amount.ore()));
            if let Err(error) = client.recurring().update_agreement(agreement_id, &update, &key(&change_id)?).await {
                let message = describe(&error);
                let mut conn = self.store.pool().acquire().await?;
                changes::finish_change(&mut conn, &change_id, false, Some(&message), self.now()).await?;
                return Err(invalid("Amount", format!("Vipps did not accept the new price: {message}")));
            }
        } else {
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
        let now = self.now();
        let mut tx = self.store.begin_write().await?;
        recurring_payments::set_recurring_terms(&mut tx, &recurring.id, Some(amount.ore()), None, now).await?;
        mandates::set_mandate_price(&mut tx, &mandate.id, amount.ore(), now).await?;
        for installment in installments::open_installments(&mut tx, &mandate.id, Some(&recurring.id)).await? {
            installments::reshape_outstanding(&mut tx, &installment, Some(amount.ore()), None, now).await?;
        }
        changes::finish_change(&mut tx, &change_id, true, None, now).await?;
        self.audit(&mut tx, actor, "recurring.change_amount", "recurring_payment", &recurring.id, details).await?;
        tx.commit().await?;
        Ok(())
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

    /// Pauses collection until `until` (exclusive): installments already generated and due before it are
    /// cancelled (with their charges at Vipps), and periods that fall due while the pause lasts get none.
    pub async fn pause(&self, recurring_id: &str, until: NaiveDate, actor: &Actor) -> ServiceResult<()> {
        let today = self.today();
        if until <= today {
            return Err(invalid("Until", format!("Until must be after today ({today})")));
        }
        let (recurring, mandate) = self.open_recurring(recurring_id).await?;
        let details = json!({"until": until.to_string()});
        let reason = format!("Paused until {until}");
        self.cancel_open(&mandate, Some(&recurring.id), &reason, Some(until)).await?;
        let now = self.now();
        let mut tx = self.store.begin_write().await?;
        let change_id = changes::insert_change(
            &mut tx,
            Some(&mandate.id),
            Some(&recurring.id),
            "pause",
            &details,
            &actor.label,
            now,
        )
        .await?;
        recurring_payments::set_recurring_status(
            &mut tx,
            &recurring.id,
            RecurringStatus::Paused,
            None,
            Some(until),
            now,
        )
        .await?;
        changes::finish_change(&mut tx, &change_id, true, None, now).await?;
        self.audit(&mut tx, actor, "recurring.pause", "recurring_payment", &recurring.id, details).await?;
        tx.commit().await?;
        Ok(())
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
        changes::finish_change(&mut tx, &change_id, true, None, now).await?;
        self.audit(&mut tx, actor, "recurring.resume", "recurring_payment", &recurring.id, json!({})).await?;
        tx.commit().await?;
        self.generate_for(Some(&mandate.id)).await?;
        Ok(())
    }

    /// Cancels a recurring payment: its open installments are cancelled (with their charges at Vipps), and
    /// when the account says so, the Vipps agreement is stopped too.
    pub async fn cancel_recurring(
        &self,
        recurring_id: &str,
        reason: Option<&str>,
        actor: &Actor,
    ) -> ServiceResult<Option<CancelOutcome>> {
        let (recurring, mandate) = self.open_recurring(recurring_id).await?;
        let reason = reason.map_or_else(|| "Cancelled by the organisation".to_owned(), str::to_owned);
        let details = json!({"reason": reason});
        let now = self.now();
        {
            let mut tx = self.store.begin_write().await?;
            let change_id = changes::insert_change(
                &mut tx,
                Some(&mandate.id),
                Some(&recurring.id),
                "cancel",
                &details,
                &actor.label,
                now,
            )
            .await?;
            recurring_payments::set_recurring_status(
                &mut tx,
                &recurring.id,
                RecurringStatus::Cancelled,
                Some(&reason),
                None,
                now,
            )
            .await?;
            changes::finish_change(&mut tx, &change_id, true, None, now).await?;
            self.audit(&mut tx, actor, "recurring.cancel", "recurring_payment", &recurring.id, details).await?;
            tx.commit().await?;
        }
        self.cancel_open(&mandate, Some(&recurring.id), &reason, None).await?;
        let account = self.accounts.get(&mandate.account_id).await?;
        if account.cancel_agreement_on_cancel && mandate.status.is_active() {
            return Ok(Some(self.cancel_agreement(&mandate.id, actor).await?));
        }
        Ok(None)
    }

    /// Cancels the open installments of a mandate (or one recurring payment), due before `before` when given:
    /// their charges are cancelled at Vipps first (key derived from the charge), then the installments.
    pub(super) async fn cancel_open(
        &self,
        mandate: &MandateRow,
        recurring_id: Option<&str>,
        reason: &str,
        before: Option<NaiveDate>,
    ) -> ServiceResult<()> {
        let installments = {
            let mut conn = self.store.pool().acquire().await?;
            let mut open = Vec::new();
            for id in installments::open_installments(&mut conn, &mandate.id, recurring_id).await? {
                let Some(row) = installments::installment(&mut conn, &id).await? else { continue };
                if before.is_some_and(|b| row.due_date >= b) {
                    continue;
                }
                open.push((row, charges::charge_of_installment(&mut conn, &id).await?));
            }
            open
        };
        let client = self.clients.get(&self.accounts, &mandate.account_id).await?;
        let now = self.now();
        for (installment, charge) in installments {
            if let Some(charge) =
                charge.filter(|c| matches!(c.state, ChargeState::Pending | ChargeState::Due | ChargeState::Creating))
            {
                match client
                    .recurring()
                    .cancel_charge(&charge.agreement_id, &charge.charge_id, &key(&format!("cc-{}", charge.charge_id))?)
                    .await
                {
                    Ok(_) => {}
                    Err(error) if error.kind() == ErrorKind::NotFound && charge.state == ChargeState::Creating => {}
                    Err(error) => {
                        // Already processed or cancelled at Vipps: read what it is.
                        tracing::info!(charge = %charge.charge_id, error = %describe(&error), "charge not cancelled at Vipps");
                        self.sync_charge(&charge.charge_id, None).await?;
                        continue;
                    }
                }
                let mut conn = self.store.pool().acquire().await?;
                charges::update_charge(
                    &mut conn,
                    &charge.charge_id,
                    &ChargeState::Cancelled,
                    None,
                    None,
                    None,
                    None,
                    now,
                )
                .await?;
            }
            let mut tx = self.store.begin_write().await?;
            let listeners = outbox::Listeners::of_intent(&mut tx, installment.intent_id.as_deref()).await?;
            outbox::move_installment(
                &mut tx,
                &listeners,
                &installment.id,
                InstallmentStatus::Cancelled,
                Some(reason),
                None,
                now,
            )
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }
}
