//! Group commit of one-time intents. Each intent needs two writes: one that records it (message, report, payer,
//! profile, intent, installment, the Vipps payment to create with its idempotency key) before Vipps is called,
//! and one that records Vipps' answer. One writer task gathers every write waiting, of both kinds, into one
//! transaction with one multi-row statement per table and one commit, and answers each caller on its own
//! channel. Nobody waits on a timer: a batch is whatever queued while the previous one was being written, so one
//! client alone is written at once and many clients share the writer's time.
//!
//! The guarantees are those of the one-intent transactions: everything of an intent (and the outbox events
//! that announce it) commits together or not at all, the idempotency key is stored before the Vipps call, and
//! a crash at any point loses nothing (a payment left `CREATING` is re-sent with the same key by the poll).
//! When a batch fails (e.g. a payment reference collision, or a payer created concurrently elsewhere), it is
//! rolled back and each of its writes is done alone, so one failing intent never fails the others.
//!
//! On SQLite the writer runs on a thread of its own: every statement is a round trip to the database's thread,
//! and on the shared runtime each of those waited behind the HTTP work queued there.

use chrono::{DateTime, Utc};

use super::events::{self, Listeners};
use crate::batcher::Batcher;
use crate::domain::intent::PayerInput;
use crate::domain::status::{InstallmentStatus, IntentStatus};
use crate::store::records::{self, NewMessage, NewOneTime, NewReport};
use crate::store::{batch, Backend, HeldWriter, Store, StoreError, StoreResult};

/// A write for the writer: a new intent, or Vipps' answer to the create of one.
pub(crate) enum Write {
    /// Record a new intent (before Vipps is called).
    Record(Box<PendingIntent>),
    /// Record Vipps' answer to its create.
    Created(Box<CreatedAtVipps>),
}

/// The writer's answer to a [`Write`] of the same kind.
pub(crate) enum Written {
    /// The intent was recorded.
    Record(StoreResult<Recorded>),
    /// The answer was recorded.
    Created(StoreResult<()>),
}

/// The group-commit writers of one [`super::Payments`]. On SQLite one writer takes both kinds of write (the
/// database has one writer anyway, and one transaction for both costs one commit). On PostgreSQL new intents and
/// answers have a writer each, so that two transactions (and their WAL flushes) are in flight at once.
pub(crate) struct Writers {
    record: Batcher<Write, Written>,
    /// The writer of answers, where it is not `record`'s.
    created: Option<Batcher<Write, Written>>,
    /// Ends the writer's own thread (SQLite) when the writers are dropped.
    _thread: Option<tokio::sync::oneshot::Sender<()>>,
}

fn stopped() -> StoreError {
    StoreError::Database(sqlx::Error::Protocol("the intent writer stopped".into()))
}

/// A writer task over its own held connection.
fn writer(store: &Store) -> Batcher<Write, Written> {
    let store = store.clone();
    let held = std::sync::Arc::new(tokio::sync::Mutex::new(HeldWriter::new(&store)));
    Batcher::spawn(move |items| write_batch(store.clone(), held.clone(), items))
}

impl Writers {
    /// Starts the writer tasks over `store`: on SQLite one, on a thread of its own; on PostgreSQL two, on the
    /// current runtime.
    pub(crate) fn spawn(store: &Store) -> Writers {
        match store.backend() {
            Backend::Sqlite => {
                let (runtime, thread) =
                    own_thread().map_or((None, None), |(runtime, stop)| (Some(runtime), Some(stop)));
                let _entered = runtime.as_ref().map(tokio::runtime::Handle::enter);
                Writers { record: writer(store), created: None, _thread: thread }
            }
            Backend::Postgres => Writers { record: writer(store), created: Some(writer(store)), _thread: None },
        }
    }

    /// Records a new intent with whatever else is waiting to be written.
    pub(crate) async fn record(&self, intent: PendingIntent) -> StoreResult<Recorded> {
        match self.record.submit(Write::Record(Box::new(intent))).await {
            Some(Written::Record(result)) => result,
            _ => Err(stopped()),
        }
    }

    /// Records Vipps' answer to a create with whatever else is waiting to be written.
    pub(crate) async fn created(&self, answer: CreatedAtVipps) -> StoreResult<()> {
        let writer = self.created.as_ref().unwrap_or(&self.record);
        match writer.submit(Write::Created(Box::new(answer))).await {
            Some(Written::Created(result)) => result,
            _ => Err(stopped()),
        }
    }
}

/// A thread of its own for the SQLite writer, with a runtime that serves nothing else. It ends when the
/// returned sender is dropped (and with it the writer task).
fn own_thread() -> Option<(tokio::runtime::Handle, tokio::sync::oneshot::Sender<()>)> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
    let handle = runtime.handle().clone();
    let (stop, stop_received) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("payhub-writer".into())
        .spawn(move || {
            runtime.block_on(async {
                let _ = stop_received.await;
            })
        })
        .ok()?;
    Some((handle, stop))
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

/// Writes a batch in one transaction on the writer's own connection; when that fails, each write alone.
async fn write_batch(
    store: Store,
    held: std::sync::Arc<tokio::sync::Mutex<HeldWriter>>,
    items: Vec<Write>,
) -> Vec<Written> {
    let records: Vec<&PendingIntent> =
        items.iter().filter_map(|w| if let Write::Record(i) = w { Some(&**i) } else { None }).collect();
    let answers: Vec<&CreatedAtVipps> =
        items.iter().filter_map(|w| if let Write::Created(a) = w { Some(&**a) } else { None }).collect();
    let mut held = held.lock().await;
    let together = async {
        let mut tx = held.begin().await?;
        created_together(&mut tx, &answers).await?;
        let recorded = record_together(&mut tx, &records).await?;
        tx.commit().await?;
        Ok::<_, StoreError>(recorded)
    }
    .await;
    if together.is_err() {
        held.discard();
    }
    drop(held);
    match together {
        Ok(recorded) => {
            let mut recorded = recorded.into_iter();
            items
                .iter()
                .map(|w| match w {
                    Write::Record(_) => Written::Record(recorded.next().ok_or_else(stopped)),
                    Write::Created(_) => Written::Created(Ok(())),
                })
                .collect()
        }
        Err(error) => {
            if items.len() > 1 {
                tracing::info!(%error, writes = items.len(), "group commit failed; writing each alone");
            }
            let mut written = Vec::with_capacity(items.len());
            for item in &items {
                written.push(match item {
                    Write::Record(intent) => Written::Record(record_alone(&store, intent).await),
                    Write::Created(answer) => Written::Created(created_alone(&store, answer).await),
                });
            }
            written
        }
    }
}

/// Records every intent of the batch in the writer's transaction.
async fn record_together(tx: &mut sqlx::AnyConnection, items: &[&PendingIntent]) -> StoreResult<Vec<Recorded>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let any_endpoint =
        if items.iter().any(|i| i.webhook_url.is_none()) { events::any_endpoint(&mut *tx).await? } else { false };
    let payers: Vec<&PayerInput> = items.iter().map(|i| &i.payer).collect();
    let mut payer_ids = batch::find_payers(&mut *tx, &payers).await?;
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
        payer_ids[i] = Some(records::create_payer(&mut *tx, &items[i].payer, items[i].now).await?);
    }
    let payer_ids: Vec<String> = payer_ids.into_iter().map(Option::unwrap_or_default).collect();
    let wanted: Vec<(&str, Option<&str>)> =
        items.iter().zip(&payer_ids).map(|(i, payer)| (payer.as_str(), i.profile_phone.as_deref())).collect();
    let mut profile_ids = batch::find_profiles(&mut *tx, &wanted).await?;
    let mut missing: Vec<usize> = (0..items.len()).filter(|&i| profile_ids[i].is_none()).collect();
    missing.sort_by_key(|&i| wanted[i]);
    for i in missing {
        let (payer_id, phone) = wanted[i];
        profile_ids[i] = Some(records::create_profile(&mut *tx, payer_id, phone, items[i].now).await?);
    }
    let profile_ids: Vec<String> = profile_ids.into_iter().map(Option::unwrap_or_default).collect();
    let mut steps = batch::Steps::default();
    let messages: Vec<_> = items.iter().map(|i| (i.message(), i.now)).collect();
    let message_ids = steps.insert_messages(&messages);
    let reports: Vec<_> = items.iter().zip(&message_ids).map(|(i, m)| (i.report(m, &i.reference), i.now)).collect();
    let report_ids = steps.insert_reports(&reports);
    let one_times: Vec<_> = items
        .iter()
        .zip(&report_ids)
        .zip(payer_ids.iter().zip(&profile_ids))
        .map(|((i, report), (payer, profile))| (i.one_time(&i.reference, report, payer, profile), i.now))
        .collect();
    steps.insert_one_times(&one_times);
    steps.run(&mut *tx).await?;
    let mut recorded = Vec::with_capacity(items.len());
    for item in items {
        let listeners = Listeners::known(item.webhook_url.clone(), any_endpoint);
        if listeners.anyone() {
            events::intent(&mut *tx, &listeners, "paymentIntent.created", &item.intent_id, item.now).await?;
            events::installment(&mut *tx, &listeners, "installment.created", &item.installment_id, item.now).await?;
        }
        recorded.push(Recorded { reference: item.reference.clone(), listeners });
    }
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

/// Records every answer of the batch in the writer's transaction: the payments become `CREATED`, their
/// installments `Pending` and their intents `Matched`, each traced by a message and a report.
async fn created_together(tx: &mut sqlx::AnyConnection, items: &[&CreatedAtVipps]) -> StoreResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let mut steps = batch::Steps::default();
    let messages: Vec<_> = items.iter().map(|i| (i.message(), i.now)).collect();
    let message_ids = steps.insert_messages(&messages);
    let reports: Vec<_> = items.iter().zip(&message_ids).map(|(i, m)| (i.report(m), i.now)).collect();
    steps.insert_reports(&reports);
    let created: Vec<_> = items.iter().map(|i| (i.reference.as_str(), i.redirect_url.as_deref())).collect();
    steps.mark_created(&created, now);
    let (quiet, heard): (Vec<&&CreatedAtVipps>, Vec<&&CreatedAtVipps>) =
        items.iter().partition(|i| i.listeners.as_ref().is_some_and(|l| !l.anyone()));
    let installments: Vec<&str> = quiet.iter().map(|i| i.installment_id.as_str()).collect();
    steps.advance_installments(&installments, InstallmentStatus::Pending, now);
    let intents: Vec<&str> = quiet.iter().map(|i| i.intent_id.as_str()).collect();
    steps.set_intents_status(&intents, IntentStatus::Matched, now);
    steps.run(&mut *tx).await?;
    for item in heard {
        announce_created(&mut *tx, item).await?;
    }
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
        let items = items.into_iter().map(|i| Write::Record(Box::new(i))).collect();
        let held = std::sync::Arc::new(tokio::sync::Mutex::new(HeldWriter::new(&store)));
        let answers = write_batch(store.clone(), held, items).await;
        let references: Vec<String> = answers
            .into_iter()
            .map(|a| match a {
                Written::Record(recorded) => recorded.unwrap().reference,
                Written::Created(_) => panic!("a record was answered as an answer"),
            })
            .collect();
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
