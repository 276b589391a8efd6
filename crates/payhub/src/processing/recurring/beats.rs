//! The recurring beats that are not charges: GenerateInstallments (one installment per schedule period, up to
//! the horizon) and the polling fallback that brings agreements and charges up to date.

use chrono::NaiveDate;

use super::BeatCounts;
use crate::domain::ids::new_id;
use crate::domain::recurring::RecurringStatus;
use crate::error::ServiceResult;
use crate::processing::{outbox, Payments};
use crate::store::charges;
use crate::store::installments::{self, NewPeriodInstallment};
use crate::store::mandates;
use crate::store::recurring_payments::{self, RecurringRow};

impl Payments {
    /// GenerateInstallments: for every open recurring payment with an Active mandate, creates the installments
    /// of the coming periods up to the horizon (exactly one per period, whatever runs twice), skipping periods
    /// while paused, and resumes payments whose pause is over.
    pub async fn generate_installments(&self) -> ServiceResult<BeatCounts> {
        let counts = self.generate_for(None).await?;
        if counts.changed >= 10_000 && self.store.backend() == crate::store::Backend::Postgres {
            // Many new installments at once: refresh PostgreSQL's statistics now rather than at autovacuum's next
            // round, so CollectRecurring's queries are planned for the table as it is.
            let mut conn = self.store.pool().acquire().await?;
            crate::store::installments::analyze(&mut conn).await?;
        }
        Ok(counts)
    }

    pub(super) async fn generate_for(&self, mandate_id: Option<&str>) -> ServiceResult<BeatCounts> {
        let today = self.today();
        let now = self.now();
        let mut counts = BeatCounts::default();
        let mut after = Some(String::new());
        while let Some(cursor) = after.take() {
            let page: Vec<RecurringRow> = {
                let mut conn = self.store.pool().acquire().await?;
                match mandate_id {
                    Some(id) => recurring_payments::recurring_of_mandate(&mut conn, id)
                        .await?
                        .into_iter()
                        .filter(|r| r.status.is_open())
                        .collect(),
                    None => {
                        let (page, next) = recurring_payments::generation_page(&mut conn, &cursor, 1000).await?;
                        after = next;
                        page
                    }
                }
            };
            counts.looked_at += page.len();
            let mut items = Vec::new();
            let mut moves: Vec<(String, i64, Option<NaiveDate>)> = Vec::new();
            let mut resumed = Vec::new();
            let mut ended = Vec::new();
            for recurring in &page {
                let schedule = recurring.schedule()?;
                // A pause skips the periods that fell due while it lasted; a period still ahead is decided
                // when it falls due, so a payment resumed before then collects it.
                let pause = recurring.paused_until.filter(|_| recurring.status == RecurringStatus::Paused);
                if recurring.status == RecurringStatus::Paused && pause.is_none_or(|until| until <= today) {
                    resumed.push(recurring.id.clone());
                }
                let walk = schedule.walk(recurring.next_period, pause, today, self.recurring.horizon);
                for &(period, due_date) in &walk.due {
                    items.push(NewPeriodInstallment {
                        id: new_id("ins"),
                        recurring: recurring.clone(),
                        period,
                        due_date,
                        payment_reference: crate::processing::new_payment_reference(),
                    });
                }
                if walk.next_period != recurring.next_period || walk.next_date != recurring.next_collection_date {
                    moves.push((recurring.id.clone(), walk.next_period, walk.next_date));
                }
                if walk.ended {
                    ended.push(recurring.id.clone());
                }
            }
            if items.is_empty() && moves.is_empty() && resumed.is_empty() && ended.is_empty() {
                continue;
            }
            let mut tx = self.store.begin_write().await?;
            let inserted = installments::insert_period_installments(&mut tx, &items, now).await?;
            counts.changed += inserted.len();
            recurring_payments::set_next_periods(&mut tx, &moves, now).await?;
            for id in &resumed {
                recurring_payments::set_recurring_status(&mut tx, id, RecurringStatus::Active, None, None, now).await?;
            }
            for id in &ended {
                recurring_payments::set_recurring_status(
                    &mut tx,
                    id,
                    RecurringStatus::Ended,
                    Some("The schedule passed its End Date"),
                    None,
                    now,
                )
                .await?;
            }
            let anyone = outbox::Listeners::with_url(&mut tx, None).await?;
            let inserted: std::collections::HashSet<&String> = inserted.iter().collect();
            for item in items.iter().filter(|i| inserted.contains(&i.id)) {
                let listeners = match &item.recurring.webhook_url {
                    Some(url) => outbox::Listeners::with_url(&mut tx, Some(url.clone())).await?,
                    None => anyone.clone(),
                };
                outbox::installment(&mut tx, &listeners, "installment.created", &item.id, now).await?;
            }
            tx.commit().await?;
        }
        Ok(counts)
    }

    /// The recurring polling beat: drafts not confirmed or agreements waiting for the payer, and charges whose
    /// outcome may have changed by today, least recently checked first (so each is read within
    /// ceil(open / limit) polls); the charges' answers are recorded a page per transaction.
    pub async fn sync_recurring(&self, limit: i64) -> ServiceResult<BeatCounts> {
        let (mandates, charges) = {
            let mut conn = self.store.pool().acquire().await?;
            // A draft younger than a minute is its caller's (the intake still waiting for Vipps).
            let drafts_before = self.now() - chrono::Duration::seconds(60);
            let mut mandates = mandates::pending_mandates(&mut conn, drafts_before, limit).await?;
            // Active agreements are re-read once a day, a few per poll: a payer's stop whose webhook was lost
            // is found before the next charge is created.
            let a_day_ago = self.now() - chrono::Duration::days(1);
            mandates.extend(mandates::unchecked_active_mandates(&mut conn, a_day_ago, (limit / 10).max(1)).await?);
            let charges =
                charges::charges_to_poll(&mut conn, self.today(), self.now() - chrono::Duration::seconds(60), limit)
                    .await?;
            (mandates, charges)
        };
        // Stamped before Vipps is asked, so a charge that cannot be read (or stays open) waits behind the others.
        let mut tx = self.store.begin_write().await?;
        let ids: Vec<String> = charges.iter().map(|c| c.charge_id.clone()).collect();
        charges::mark_charges_checked(&mut tx, &ids, self.now()).await?;
        tx.commit().await?;
        let mut counts = BeatCounts { looked_at: mandates.len() + charges.len(), changed: 0 };
        for mandate in &mandates {
            if let Err(error) = self.sync_agreement(mandate, None).await {
                tracing::warn!(%mandate, %error, "agreement sync failed");
            } else {
                counts.changed += 1;
            }
        }
        counts.changed += self.sync_charges(&charges).await;
        Ok(counts)
    }
}
