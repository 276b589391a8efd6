//! Group commit of one-time intents. Each intent needs two write transactions: one that records it (message,
//! report, payer, profile, intent, installment, the Vipps payment to create with its idempotency key) before
//! Vipps is called, and one that records Vipps' answer. A writer task per kind gathers every intent waiting to
//! be written into one transaction with one multi-row statement per table and one commit, and answers each
//! caller on its own channel. Nobody waits on a timer: a batch is whatever queued while the previous one was
//! being written, so one client alone is written at once and many clients share the writer's time.
//!
//! The guarantees are those of the one-intent transactions: everything of an intent (and the outbox events
//! that announce it) commits together or not at all, the idempotency key is stored before the Vipps call, and
//! a crash at any point loses nothing (a payment left `CREATING` is re-sent with the same key by the poll).
//! When a batch fails (e.g. a payment reference collision, or a payer created concurrently elsewhere), it is
//! rolled back and each of its intents is written alone, so one failing intent never fails the others.

use chrono::{DateTime, Utc};

use super::events::{self, Listeners};
use crate::batcher::Batcher;
use crate::domain::intent::PayerInput;
use crate::domain::status::{InstallmentStatus, IntentStatus};
use crate::store::records::{self, NewMessage, NewOneTime, NewReport};
use crate::store::{batch, Store, StoreError, StoreResult};

/// The writers of one [`super::Payments`].
pub(crate) struct Writers {
    /// Records new intents (the first transaction).
    pub record: Batcher<PendingIntent, StoreResult<Recorded>>,
    /// Records Vipps' answers to their creates (the second transaction).
    pub created: Batcher<CreatedAtVipps, StoreResult<()>>,
}

impl Writers {
    /// Starts both writer tasks over `store`.
    pub(crate) fn spawn(store: &Store) -> Writers {
        let for_record = store.clone();
        let for_created = store.clone();
        Writers {
            record: Batcher::spawn(move |items| record_batch(for_record.clone(), items)),
            created: Batcher::spawn(move |items| created_batch(for_created.clone(), items)),
        }
    }
}

/// An intent to record, everything owned (it travels to the writer task).
pub(crate) struct PendingIntent {
    pub intent_id: String,
    pub installment_id: String,
    /// The payment reference drawn for it (another is drawn if it turns out to be taken).
    pub reference: String,
    pub raw_body: String,
    pub account_id: String,
    pub payer: PayerInput,
    /// The phone that identifies the payer's Vipps profile.
    pub profile_phone: Option<String>,
    pub amount_ore: i64,
    pub description: Option<String>,
    pub product: Option<String>,
    pub success_url: String,
    pub failure_url: String,
    pub webhook_url: Option<String>,
    pub customer_phone: Option<String>,
    pub origin: Option<String>,
    pub campaign_id: Option<String>,
    pub now: DateTime<Utc>,
}

/// A recorded intent: the payment reference it got, and who listens to its events.
pub(crate) struct Recorded {
    pub reference: String,
    pub listeners: Listeners,
}

impl PendingIntent {
    fn message(&self) -> NewMessage<'_> {
        NewMessage {
            direction: "inbound",
            channel: "api",
            subject: Some(&self.intent_id),
            body: &self.raw_body,
            status: "Processed",
        }
    }

    fn report<'a>(&'a self, message_id: &'a str, reference: &'a str) -> NewReport<'a> {
        NewReport {
            message_id,
            report_type: "PaymentIntent",
            sub_type: "Default",
            amount_ore: Some(self.amount_ore),
            reference: Some(reference),
            status: "Matched",
            installment_id: Some(&self.installment_id),
            intent_id: Some(&self.intent_id),
            detail: None,
        }
    }

    fn one_time<'a>(
        &'a self,
        reference: &'a str,
        report_id: &'a str,
        payer_id: &'a str,
        profile_id: &'a str,
    ) -> NewOneTime<'a> {
        NewOneTime {
            intent_id: &self.intent_id,
            installment_id: &self.installment_id,
            payment_reference: reference,
            report_id,
            account_id: &self.account_id,
            payer_id,
            profile_id,
            amount_ore: self.amount_ore,
            bank_statement_description: self.description.as_deref(),
            product: self.product.as_deref(),
            success_url: &self.success_url,
            failure_url: &self.failure_url,
            webhook_url: self.webhook_url.as_deref(),
            customer_phone: self.customer_phone.as_deref(),
            origin: self.origin.as_deref(),
            campaign_id: self.campaign_id.as_deref(),
        }
    }
}

async fn record_batch(store: Store, items: Vec<PendingIntent>) -> Vec<StoreResult<Recorded>> {
    match record_together(&store, &items).await {
        Ok(recorded) => recorded.into_iter().map(Ok).collect(),
        Err(error) => {
            if items.len() > 1 {
                tracing::info!(%error, intents = items.len(), "group commit failed; recording each intent alone");
            }
            let mut answers = Vec::with_capacity(items.len());
            for item in &items {
                answers.push(record_alone(&store, item).await);
            }
            answers
        }
    }
}

/// Records every intent of the batch in one transaction.
async fn record_together(store: &Store, items: &[PendingIntent]) -> StoreResult<Vec<Recorded>> {
    let mut tx = store.begin_write().await?;
    let any_endpoint =
        if items.iter().any(|i| i.webhook_url.is_none()) { events::any_endpoint(&mut tx).await? } else { false };
    let payers: Vec<&PayerInput> = items.iter().map(|i| &i.payer).collect();
    let mut payer_ids = batch::find_payers(&mut tx, &payers).await?;
    // New payers and profiles are created in a fixed order (by their keys), so that the batches of two payhub
    // instances on one PostgreSQL never wait for each other's rows in opposite orders (a deadlock). Each creation is safe against a concurrent
    // one (and a second intent of the same payer in this batch): it reads the winner back.
    let mut missing: Vec<usize> = (0..items.len()).filter(|&i| payer_ids[i].is_none()).collect();
    missing.sort_by_key(|&i| {
        (
            items[i].payer.email.as_ref().map(|e| e.to_lowercase()),
            items[i].payer.phone.as_ref().map(|p| p.as_str().to_owned()),
        )
    });
    for i in missing {
        payer_ids[i] = Some(records::create_payer(&mut tx, &items[i].payer, items[i].now).await?);
    }
    let payer_ids: Vec<String> = payer_ids.into_iter().map(Option::unwrap_or_default).collect();
    let wanted: Vec<(&str, Option<&str>)> =
        items.iter().zip(&payer_ids).map(|(i, payer)| (payer.as_str(), i.profile_phone.as_deref())).collect();
    let mut profile_ids = batch::find_profiles(&mut tx, &wanted).await?;
    let mut missing: Vec<usize> = (0..items.len()).filter(|&i| profile_ids[i].is_none()).collect();
    missing.sort_by_key(|&i| wanted[i]);
    for i in missing {
        let (payer_id, phone) = wanted[i];
        profile_ids[i] = Some(records::create_profile(&mut tx, payer_id, phone, items[i].now).await?);
    }
    let profile_ids: Vec<String> = profile_ids.into_iter().map(Option::unwrap_or_default).collect();
    let messages: Vec<_> = items.iter().map(|i| (i.message(), i.now)).collect();
    let message_ids = batch::insert_messages(&mut tx, &messages).await?;
    let reports: Vec<_> = items.iter().zip(&message_ids).map(|(i, m)| (i.report(m, &i.reference), i.now)).collect();
    let report_ids = batch::insert_reports(&mut tx, &reports).await?;
    let one_times: Vec<_> = items
        .iter()
        .zip(&report_ids)
        .zip(payer_ids.iter().zip(&profile_ids))
        .map(|((i, report), (payer, profile))| (i.one_time(&i.reference, report, payer, profile), i.now))
        .collect();
    batch::insert_one_times(&mut tx, &one_times).await?;
    let mut recorded = Vec::with_capacity(items.len());
    for item in items {
        let listeners = Listeners::known(item.webhook_url.clone(), any_endpoint);
        if listeners.anyone() {
            events::intent(&mut tx, &listeners, "paymentIntent.created", &item.intent_id, item.now).await?;
            events::installment(&mut tx, &listeners, "installment.created", &item.installment_id, item.now).await?;
        }
        recorded.push(Recorded { reference: item.reference.clone(), listeners });
    }
    tx.commit().await?;
    Ok(recorded)
}

/// Records one intent in its own transaction; a taken payment reference draws another (twice at most).
async fn record_alone(store: &Store, item: &PendingIntent) -> StoreResult<Recorded> {
    let mut reference = item.reference.clone();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut tx = store.begin_write().await?;
        let listeners = Listeners::with_url(&mut tx, item.webhook_url.clone()).await?;
        let payer_id = match records::find_payer(&mut tx, &item.payer).await? {
            Some(id) => id,
            None => records::create_payer(&mut tx, &item.payer, item.now).await?,
        };
        let profile_id = match records::find_profile(&mut tx, &payer_id, item.profile_phone.as_deref()).await? {
            Some(id) => id,
            None => records::create_profile(&mut tx, &payer_id, item.profile_phone.as_deref(), item.now).await?,
        };
        let message_id = records::insert_message(&mut tx, &item.message(), item.now).await?;
        let report_id = records::insert_report(&mut tx, &item.report(&message_id, &reference), item.now).await?;
        let inserted =
            records::insert_one_time(&mut tx, &item.one_time(&reference, &report_id, &payer_id, &profile_id), item.now)
                .await;
        match inserted {
            // A payment reference collision (1 in 10^12): draw another.
            Err(StoreError::Conflict(_)) if attempt < 3 => {
                drop(tx);
                reference = super::new_payment_reference();
                continue;
            }
            other => other?,
        }
        events::intent(&mut tx, &listeners, "paymentIntent.created", &item.intent_id, item.now).await?;
        events::installment(&mut tx, &listeners, "installment.created", &item.installment_id, item.now).await?;
        tx.commit().await?;
        return Ok(Recorded { reference, listeners });
    }
}

/// Vipps' answer to the create of a recorded intent's payment.
pub(crate) struct CreatedAtVipps {
    pub reference: String,
    pub installment_id: String,
    pub intent_id: String,
    pub amount_ore: i64,
    pub redirect_url: Option<String>,
    /// The answer as stored in its message.
    pub body: String,
    /// Who listens to the intent's events; read again in the transaction when not known.
    pub listeners: Option<Listeners>,
    pub now: DateTime<Utc>,
}

impl CreatedAtVipps {
    fn message(&self) -> NewMessage<'_> {
        NewMessage {
            direction: "inbound",
            channel: "vipps_call",
            subject: Some(&self.reference),
            body: &self.body,
            status: "Processed",
        }
    }

    fn report<'a>(&'a self, message_id: &'a str) -> NewReport<'a> {
        NewReport {
            message_id,
            report_type: "Vipps",
            sub_type: "payment.created",
            amount_ore: Some(self.amount_ore),
            reference: Some(&self.reference),
            status: "Matched",
            installment_id: Some(&self.installment_id),
            intent_id: Some(&self.intent_id),
            detail: None,
        }
    }
}

async fn created_batch(store: Store, items: Vec<CreatedAtVipps>) -> Vec<StoreResult<()>> {
    match created_together(&store, &items).await {
        Ok(()) => items.iter().map(|_| Ok(())).collect(),
        Err(error) => {
            if items.len() > 1 {
                tracing::info!(%error, answers = items.len(), "group commit failed; recording each answer alone");
            }
            let mut answers = Vec::with_capacity(items.len());
            for item in &items {
                answers.push(created_alone(&store, item).await);
            }
            answers
        }
    }
}

/// Records every answer of the batch in one transaction: the payments become `CREATED`, their installments
/// `Pending` and their intents `Matched`, each traced by a message and a report.
async fn created_together(store: &Store, items: &[CreatedAtVipps]) -> StoreResult<()> {
    let now = Utc::now();
    let mut tx = store.begin_write().await?;
    let messages: Vec<_> = items.iter().map(|i| (i.message(), i.now)).collect();
    let message_ids = batch::insert_messages(&mut tx, &messages).await?;
    let reports: Vec<_> = items.iter().zip(&message_ids).map(|(i, m)| (i.report(m), i.now)).collect();
    batch::insert_reports(&mut tx, &reports).await?;
    let created: Vec<_> = items.iter().map(|i| (i.reference.as_str(), i.redirect_url.as_deref())).collect();
    batch::mark_created(&mut tx, &created, now).await?;
    let (quiet, heard): (Vec<&CreatedAtVipps>, Vec<&CreatedAtVipps>) =
        items.iter().partition(|i| i.listeners.as_ref().is_some_and(|l| !l.anyone()));
    let installments: Vec<&str> = quiet.iter().map(|i| i.installment_id.as_str()).collect();
    batch::advance_installments(&mut tx, &installments, InstallmentStatus::Pending, now).await?;
    let intents: Vec<&str> = quiet.iter().map(|i| i.intent_id.as_str()).collect();
    batch::set_intents_status(&mut tx, &intents, IntentStatus::Matched, now).await?;
    for item in heard {
        announce_created(&mut tx, item).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The installment and intent moves of one answer, with their events.
async fn announce_created(tx: &mut sqlx::AnyConnection, item: &CreatedAtVipps) -> StoreResult<()> {
    let listeners = match &item.listeners {
        Some(listeners) => listeners.clone(),
        None => Listeners::of_intent(&mut *tx, Some(&item.intent_id)).await?,
    };
    events::move_installment(
        &mut *tx,
        &listeners,
        &item.installment_id,
        InstallmentStatus::Pending,
        None,
        None,
        item.now,
    )
    .await?;
    records::set_intent_status(&mut *tx, &item.intent_id, IntentStatus::Matched, item.now).await?;
    events::intent(&mut *tx, &listeners, "paymentIntent.processed", &item.intent_id, item.now).await?;
    Ok(())
}

/// Records one answer in its own transaction.
pub(crate) async fn created_alone(store: &Store, item: &CreatedAtVipps) -> StoreResult<()> {
    let mut tx = store.begin_write().await?;
    let message_id = records::insert_message(&mut tx, &item.message(), item.now).await?;
    records::insert_report(&mut tx, &item.report(&message_id), item.now).await?;
    records::update_vipps_payment(
        &mut tx,
        &item.reference,
        "CREATED",
        item.redirect_url.as_deref(),
        None,
        None,
        None,
        item.now,
    )
    .await?;
    announce_created(&mut tx, item).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(n: usize, reference: &str) -> PendingIntent {
        PendingIntent {
            intent_id: format!("pi_test{n}"),
            installment_id: format!("ins_test{n}"),
            reference: reference.to_owned(),
            raw_body: "{}".into(),
            account_id: "acc_test".into(),
            payer: PayerInput { email: Some("Same@Example.org".into()), ..PayerInput::default() },
            profile_phone: None,
            amount_ore: 3600,
            description: None,
            product: None,
            success_url: "https://example.org/thanks".into(),
            failure_url: "https://example.org/sorry".into(),
            webhook_url: None,
            customer_phone: None,
            origin: None,
            campaign_id: None,
            now: Utc::now(),
        }
    }

    #[tokio::test]
    async fn a_batch_that_fails_is_written_one_by_one_and_a_taken_reference_is_drawn_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display())).await.unwrap();
        store.migrate().await.unwrap();
        // Three intents of one new payer; two drew the same payment reference, so the shared transaction fails.
        let items = vec![pending(1, "pi-100000000001"), pending(2, "pi-100000000001"), pending(3, "pi-100000000003")];
        let answers = record_batch(store.clone(), items).await;
        let references: Vec<String> = answers.into_iter().map(|a| a.unwrap().reference).collect();
        assert_eq!(references[0], "pi-100000000001");
        assert_ne!(references[1], "pi-100000000001", "the second drew another reference");
        assert_eq!(references[2], "pi-100000000003");
        let mut conn = store.pool().acquire().await.unwrap();
        let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql);
        assert_eq!(count("SELECT COUNT(*) FROM payers").fetch_one(&mut *conn).await.unwrap(), 1);
        assert_eq!(count("SELECT COUNT(*) FROM installments").fetch_one(&mut *conn).await.unwrap(), 3);
        assert_eq!(
            count("SELECT COUNT(*) FROM vipps_payments WHERE state = 'CREATING'").fetch_one(&mut *conn).await.unwrap(),
            3
        );
        assert_eq!(
            count("SELECT COUNT(*) FROM messages").fetch_one(&mut *conn).await.unwrap(),
            3,
            "nothing of the failed batch stayed"
        );
    }
}
