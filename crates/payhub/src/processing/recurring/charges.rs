//! Charges: CollectRecurring turns due installments into Vipps charges (recorded first, then sent, in batches
//! when there are many), and each charge's outcome at Vipps moves its installment (Collected with a Payment,
//! Failed with Vipps' reason, Cancelled). A batch charge Vipps accepted and then dropped is sent again once
//! with the same order id, or its installment fails with Vipps' reason.

use std::collections::BTreeMap;

use chrono::Days;
use sha2::{Digest, Sha256};
use vipps_client::recurring::{BatchCharge, CreateCharge, TransactionType};
use vipps_client::{ErrorKind, RecurringProblem};

use super::{key, BeatCounts};
use crate::domain::recurring::MAX_CHARGE_DESCRIPTION;
use crate::domain::status::InstallmentStatus;
use crate::domain::vipps_state::{ChargeKind, ChargeState};
use crate::error::{ServiceError, ServiceResult};
use crate::processing::one_time::{describe, is_transient};
use crate::processing::{outbox, Payments};
use crate::store::charges::{self, ChargeRow, NewCharge};
use crate::store::installments;

/// Cuts a description to Vipps' 45 characters at a word boundary where there is one.
pub(super) fn charge_description(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= MAX_CHARGE_DESCRIPTION {
        return text.to_owned();
    }
    let cut: String = text.chars().take(MAX_CHARGE_DESCRIPTION).collect();
    match cut.rfind(' ') {
        Some(i) if i > 10 => cut[..i].trim_end().to_owned(),
        _ => cut,
    }
}

/// Whether Vipps' message says a charge's order id is taken (not that an Idempotency-Key was reused).
fn order_id_taken(message: &str) -> bool {
    message.contains("orderId") && message.contains("already used")
}

impl Payments {
    /// A charge Vipps accepted and then dropped (its `charge-creation-failed` event, or a 404 for a charge it
    /// confirmed): sent again once, one by one, with the same order id; failed with Vipps' reason when it was
    /// sent again already or Vipps refuses the new create. Called under the charge's lock.
    pub(super) async fn send_dropped_charge(
        &self,
        client: &vipps_client::Client,
        charge_id: &str,
        reason: Option<&str>,
    ) -> ServiceResult<()> {
        // Read again under the lock: another sync may have sent it again meanwhile.
        let row = {
            let mut conn = self.store.pool().acquire().await?;
            charges::charge(&mut conn, charge_id).await?.ok_or(ServiceError::NotFound("charge"))?
        };
        if row.state != ChargeState::Pending {
            return Ok(());
        }
        let said = match reason {
            Some(reason) => format!("Vipps did not create the charge: {reason}"),
            None => "Vipps does not have the charge it accepted".to_owned(),
        };
        if row.last_error.as_deref().is_some_and(|e| e.starts_with(SENT_AGAIN_PREFIX)) {
            return self.refuse_charge(&row, &format!("{said} (after it was sent again)")).await;
        }
        let tomorrow = self.today().checked_add_days(Days::new(1)).unwrap_or(self.today());
        let due = row.due_date.max(tomorrow);
        // A key of its own: the first create's answer must not be replayed.
        let charge_key = key(&format!("rs-{}-{}", row.charge_id, due.format("%Y%m%d")))?;
        let answer = client.recurring().create_charge(&row.agreement_id, &create_request(&row, due), &charge_key).await;
        match answer {
            Ok(_) => {
                tracing::info!(%charge_id, %said, "charge sent again with the same order id");
                self.note_charge_error(charge_id, &format!("{SENT_AGAIN_PREFIX}{said}")).await
            }
            Err(error) if order_id_taken(&describe(&error)) => {
                // Vipps has it after all: its state is read and recorded by the next sync.
                self.note_charge_error(charge_id, &format!("{SENT_AGAIN_PREFIX}{said}")).await
            }
            Err(error) if is_transient(error.kind()) || is_configuration(error.kind()) => {
                self.note_charge_error(charge_id, &describe(&error)).await?;
                Err(ServiceError::Internal(anyhow::anyhow!("charge not sent again: {}", describe(&error))))
            }
            Err(error) => {
                let refused = format!("{said}; sent again, {}", describe(&error));
                self.refuse_charge(&row, &refused).await?;
                if error.problem().and_then(|p| p.recurring_problem()) == Some(RecurringProblem::ChargeCreationFailed) {
                    if let Err(error) = Box::pin(self.sync_agreement(&row.mandate_id, None)).await {
                        tracing::warn!(mandate = %row.mandate_id, %error, "agreement sync after a refused charge failed");
                    }
                }
                Ok(())
            }
        }
    }

    /// Records that Vipps will not make a charge: the charge `REFUSED`, its installment Failed with `message`.
    async fn refuse_charge(&self, c: &ChargeRow, message: &str) -> ServiceResult<()> {
        let now = self.now();
        let mut tx = self.store.begin_write().await?;
        let listened =
            installments::installments_with_webhook(&mut tx, std::slice::from_ref(&c.installment_id)).await?;
        refuse_in(&mut tx, c, listened.get(&c.installment_id).cloned(), message, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// CollectRecurring: every Outstanding installment due within the lead window becomes one Vipps charge
    /// (recorded first, then sent; in batches when there are many), and charges left unconfirmed by a crash or
    /// a lost answer are sent again with the same order ids.
    pub async fn collect_recurring(&self) -> ServiceResult<BeatCounts> {
        let today = self.today();
        let until = today.checked_add_days(Days::new(u64::from(self.recurring.lead_days.max(1)))).unwrap_or(today);
        let tomorrow = today.checked_add_days(Days::new(1)).unwrap_or(today);
        let mut counts = BeatCounts::default();
        // Unconfirmed charges first (stale: a minute without an answer).
        let stale = {
            let mut conn = self.store.pool().acquire().await?;
            charges::creating_charges(&mut conn, self.now() - chrono::Duration::seconds(60), 100_000).await?
        };
        let mut by_account: BTreeMap<String, Vec<ChargeRow>> = BTreeMap::new();
        for charge in stale {
            by_account.entry(charge.account_id.clone()).or_default().push(charge);
        }
        for (account_id, charges) in by_account {
            counts.looked_at += charges.len();
            counts.changed += self.send_charges_of(&account_id, &charges).await;
        }
        let mut retry_days: BTreeMap<String, i64> = BTreeMap::new();
        let mut after = Some(String::new());
        while let Some(cursor) = after.take() {
            let page = {
                let mut conn = self.store.pool().acquire().await?;
                let (page, next) = charges::chargeable_page(
                    &mut conn,
                    until,
                    &cursor,
                    self.recurring.batch_size.clamp(1, 2000) as i64 * 4,
                )
                .await?;
                after = next;
                page
            };
            counts.looked_at += page.len();
            let mut new = Vec::with_capacity(page.len());
            for item in &page {
                let retry = match retry_days.get(&item.account_id) {
                    Some(days) => *days,
                    None => {
                        let days = self.accounts.get(&item.account_id).await.map(|a| a.retry_days).unwrap_or(3);
                        retry_days.insert(item.account_id.clone(), days);
                        days
                    }
                };
                new.push(NewCharge {
                    charge_id: item.payment_reference.clone(),
                    installment_id: item.installment_id.clone(),
                    mandate_id: item.mandate_id.clone(),
                    agreement_id: item.agreement_id.clone(),
                    account_id: item.account_id.clone(),
                    kind: ChargeKind::Recurring,
                    amount_ore: item.amount_ore,
                    due_date: item.due_date.max(tomorrow),
                    retry_days: retry,
                    description: charge_description(item.description.as_deref().unwrap_or(&item.product_name)),
                    state: ChargeState::Creating,
                });
            }
            let inserted = {
                let mut tx = self.store.begin_write().await?;
                let inserted = charges::insert_charges(&mut tx, &new, self.now()).await?;
                tx.commit().await?;
                inserted
            };
            // Only what this call recorded is sent: a racing instance sends its own.
            let inserted: std::collections::HashSet<String> = inserted.into_iter().collect();
            let mut by_account: BTreeMap<String, Vec<ChargeRow>> = BTreeMap::new();
            for charge in new.into_iter().filter(|c| inserted.contains(&c.charge_id)) {
                by_account.entry(charge.account_id.clone()).or_default().push(ChargeRow::from_new(charge));
            }
            for (account_id, charges) in by_account {
                counts.changed += self.send_charges_of(&account_id, &charges).await;
            }
        }
        Ok(counts)
    }

    /// Accounts whose charges wait because Vipps refuses the account (wrong credentials, a product not
    /// enabled): (account id, charges waiting, Vipps' latest words), for the dashboard.
    pub async fn account_problems(&self) -> ServiceResult<Vec<(String, i64, String)>> {
        let mut conn = self.store.pool().acquire().await?;
        Ok(charges::configuration_problems(&mut conn).await?)
    }

    /// [`Self::send_charges`] for one account, whose trouble (a deleted account, a secret that will not open, a
    /// database error) is logged and left for the next run: it never stops the other accounts' charges.
    async fn send_charges_of(&self, account_id: &str, charges: &[ChargeRow]) -> usize {
        match self.send_charges(account_id, charges).await {
            Ok(confirmed) => confirmed,
            Err(error) => {
                tracing::warn!(%account_id, %error, charges = charges.len(), "charges not sent; the next run tries again");
                0
            }
        }
    }

    /// Sends recorded charges to Vipps: one by one when few, else in batches. Charges Vipps accepts (or already
    /// has: its "orderId … already used", confirmed by reading the charge) become Pending; refused ones (any
    /// other conflict too) fail their installment with Vipps' reason; when Vipps does not answer they stay
    /// `CREATING` for the next run. A batch answer is not the end: Vipps may still drop an accepted charge
    /// ([`Self::charge_creation_failed`]). Returns how many were confirmed.
    pub(super) async fn send_charges(&self, account_id: &str, charges: &[ChargeRow]) -> ServiceResult<usize> {
        let client = self.clients.get(&self.accounts, account_id).await?;
        let mut confirmed = Vec::new();
        let mut refused: Vec<(ChargeRow, String)> = Vec::new();
        let mut agreements_to_sync = Vec::new();
        // A charge sent again after its recorded due date (Vipps or payhub was away) is due tomorrow instead:
        // Vipps refuses a due date that is not ahead. Its key then names the new date (a key may not be used
        // again for another body); the order id still keeps it one charge.
        let tomorrow = self.today().checked_add_days(Days::new(1)).unwrap_or(self.today());
        let due = |c: &ChargeRow| c.due_date.max(tomorrow);
        let moved = |c: &ChargeRow| (due(c) != c.due_date).then(|| due(c).format("%Y%m%d").to_string());
        let request = |c: &ChargeRow| create_request(c, due(c));
        // Charges Vipps says it has by their order id: read back to confirm before they count as created.
        let mut taken: Vec<ChargeRow> = Vec::new();
        if charges.len() < self.recurring.batch_threshold.max(1) {
            for c in charges {
                let charge_key = match moved(c) {
                    Some(day) => format!("chg-{}-{day}", c.charge_id),
                    None => format!("chg-{}", c.charge_id),
                };
                let answer = client.recurring().create_charge(&c.agreement_id, &request(c), &key(&charge_key)?).await;
                match answer {
                    Ok(_) => confirmed.push(c.charge_id.clone()),
                    // Vipps already has a charge with this order id (ours: the answer of an earlier create was
                    // lost). Any other conflict is a refusal.
                    Err(error) if order_id_taken(&describe(&error)) => taken.push(c.clone()),
                    Err(error) if is_transient(error.kind()) => {
                        self.note_charge_error(&c.charge_id, &describe(&error)).await?;
                    }
                    Err(error) if is_configuration(error.kind()) => {
                        self.note_charge_error(&c.charge_id, &configuration_problem(&error)).await?;
                    }
                    Err(error) => {
                        if error.problem().and_then(|p| p.recurring_problem())
                            == Some(RecurringProblem::ChargeCreationFailed)
                        {
                            agreements_to_sync.push(c.mandate_id.clone());
                        }
                        refused.push((c.clone(), describe(&error)));
                    }
                }
            }
        } else {
            for chunk in charges.chunks(self.recurring.batch_size.clamp(1, 2000)) {
                let items: Vec<BatchCharge> =
                    chunk.iter().map(|c| BatchCharge::new(&c.agreement_id, &c.charge_id, &request(c))).collect();
                let mut digest = Sha256::new();
                for c in chunk {
                    digest.update(c.charge_id.as_bytes());
                    if let Some(day) = moved(c) {
                        digest.update(format!("@{day}").as_bytes());
                    }
                    digest.update(b",");
                }
                let batch_key = key(&format!("cb-{}", &hex::encode(digest.finalize())[..32]))?;
                match client.recurring().create_charges_batch(&items, &batch_key).await {
                    Ok(answer) => {
                        confirmed.extend(answer.valid_charges);
                        for invalid in answer.invalid_charges {
                            let order_id =
                                invalid.charge_batch_item_dto["orderId"].as_str().unwrap_or_default().to_owned();
                            let Some(c) = chunk.iter().find(|c| c.charge_id == order_id) else { continue };
                            let text = invalid.errors.join("; ");
                            if order_id_taken(&text) {
                                taken.push(c.clone());
                            } else {
                                if text.starts_with("charge-creation-failed") {
                                    agreements_to_sync.push(c.mandate_id.clone());
                                }
                                refused.push((c.clone(), format!("Vipps: {text}")));
                            }
                        }
                    }
                    Err(error) if is_transient(error.kind()) || is_configuration(error.kind()) => {
                        tracing::warn!(%account_id, error = %describe(&error), charges = chunk.len(), "charge batch not confirmed; the next run re-sends it");
                        let note = if is_configuration(error.kind()) {
                            configuration_problem(&error)
                        } else {
                            describe(&error)
                        };
                        for c in chunk {
                            self.note_charge_error(&c.charge_id, &note).await?;
                        }
                    }
                    Err(error) => {
                        for c in chunk {
                            refused.push((c.clone(), describe(&error)));
                        }
                    }
                }
            }
        }
        for c in taken {
            match client.recurring().get_charge(&c.agreement_id, &c.charge_id).await {
                Ok(_) => confirmed.push(c.charge_id.clone()),
                Err(error) if error.kind() == ErrorKind::NotFound => {
                    refused.push((c, "Vipps: the order id is used, but not by this agreement's charge".to_owned()))
                }
                Err(error) => self.note_charge_error(&c.charge_id, &describe(&error)).await?,
            }
        }
        let now = self.now();
        let count = confirmed.len();
        if !confirmed.is_empty() || !refused.is_empty() {
            let mut tx = self.store.begin_write().await?;
            charges::confirm_charges(&mut tx, &confirmed, &ChargeState::Pending, now).await?;
            let by_id: BTreeMap<&str, &ChargeRow> = charges.iter().map(|c| (c.charge_id.as_str(), c)).collect();
            let installments: Vec<String> =
                confirmed.iter().filter_map(|id| by_id.get(id.as_str()).map(|c| c.installment_id.clone())).collect();
            let anyone = outbox::Listeners::with_url(&mut tx, None).await?;
            let listened = installments::installments_with_webhook(&mut tx, &installments).await?;
            if !anyone.anyone() && listened.is_empty() {
                installments::installments_pending(&mut tx, &installments, now).await?;
            } else {
                for id in &installments {
                    let listeners = match listened.get(id) {
                        Some(url) => outbox::Listeners::with_url(&mut tx, Some(url.clone())).await?,
                        None => anyone.clone(),
                    };
                    outbox::move_installment(&mut tx, &listeners, id, InstallmentStatus::Pending, None, None, now)
                        .await?;
                }
            }
            for (c, message) in &refused {
                refuse_in(&mut tx, c, listened.get(&c.installment_id).cloned(), message, now).await?;
            }
            tx.commit().await?;
        }
        for mandate in agreements_to_sync {
            // Boxed: an agreement sync may sync charges, which may send them again.
            if let Err(error) = Box::pin(self.sync_agreement(&mandate, None)).await {
                tracing::warn!(%mandate, %error, "agreement sync after a refused charge failed");
            }
        }
        Ok(count)
    }

    async fn note_charge_error(&self, charge_id: &str, message: &str) -> ServiceResult<()> {
        let mut conn = self.store.pool().acquire().await?;
        charges::note_charge_error(&mut conn, charge_id, message, self.now()).await?;
        Ok(())
    }
}

/// How a charge's note starts once it was sent again after Vipps dropped it: a second drop fails it.
const SENT_AGAIN_PREFIX: &str = "sent again after Vipps dropped it: ";

/// The create request of a recorded charge, due on `due`, with the charge id as its order id.
fn create_request(c: &ChargeRow, due: chrono::NaiveDate) -> CreateCharge {
    let mut create = CreateCharge::recurring(
        c.amount_ore,
        c.description.clone(),
        due,
        u8::try_from(c.retry_days).unwrap_or(0),
        TransactionType::DirectCapture,
    );
    create.order_id = Some(c.charge_id.clone());
    create
}

/// In the caller's transaction: the charge `REFUSED` and its installment Failed with `message`, announced to
/// whoever listens (the intent's `webhook_url`, and the endpoints).
async fn refuse_in(
    tx: &mut sqlx::AnyConnection,
    c: &ChargeRow,
    webhook_url: Option<String>,
    message: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> ServiceResult<()> {
    charges::update_charge(&mut *tx, &c.charge_id, &ChargeState::Refused, None, None, None, Some(message), now).await?;
    let listeners = outbox::Listeners::with_url(&mut *tx, webhook_url).await?;
    outbox::move_installment(tx, &listeners, &c.installment_id, InstallmentStatus::Failed, Some(message), None, now)
        .await?;
    Ok(())
}

/// Whether Vipps refused the account rather than the charge (credentials, a product not enabled, a sales unit
/// not set up): the organisation must fix the account, and the payer did nothing wrong, so the charge waits.
fn is_configuration(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::Authentication | ErrorKind::Forbidden | ErrorKind::MerchantConfiguration)
}

/// The note a charge keeps while its account is refused; [`charges::configuration_problems`] finds it by its
/// prefix.
fn configuration_problem(error: &vipps_client::Error) -> String {
    format!("{}{}", charges::CONFIGURATION_PREFIX, describe(error))
}

impl ChargeRow {
    fn from_new(c: NewCharge) -> ChargeRow {
        ChargeRow {
            charge_id: c.charge_id,
            installment_id: c.installment_id,
            mandate_id: c.mandate_id,
            agreement_id: c.agreement_id,
            account_id: c.account_id,
            kind: c.kind,
            amount_ore: c.amount_ore,
            due_date: c.due_date,
            retry_days: c.retry_days,
            description: c.description,
            state: c.state,
            failure_reason: None,
            transaction_id: None,
            captured_ore: 0,
            refunded_ore: 0,
            last_error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_cut_at_a_word_boundary() {
        assert_eq!(charge_description("Monthly gift"), "Monthly gift");
        let long = "Monthly gift to the Norwegian Society for the Protection of Birds";
        let cut = charge_description(long);
        assert!(
            cut.chars().count() <= MAX_CHARGE_DESCRIPTION && long.starts_with(&cut) && !cut.ends_with(' '),
            "{cut}"
        );
        assert_eq!(cut, "Monthly gift to the Norwegian Society for");
    }
}
