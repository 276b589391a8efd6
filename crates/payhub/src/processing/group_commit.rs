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
//! A batch reads first (who listens to events, which payers and profiles exist, how the answered installments
//! stand), then sends every row it writes as a few multi-row statements ([`batch::Steps`]). The events it
//! announces are composed from what it wrote and read, not read back row by row.
//!
//! On SQLite the writer runs on a thread of its own with a connection of its own that it drives directly
//! ([`SqliteWriter`]): a batch is one stretch of work on one thread, where sqlx would hand each statement to the
//! connection's thread and back.

use chrono::{DateTime, Utc};

use super::events::{self, Listeners};
use crate::batcher::Batcher;
use crate::domain::ids::new_id;
use crate::domain::intent::PayerInput;
use crate::domain::status::{InstallmentStatus, IntentStatus};
use crate::jobs::outbound::Outbox;
use crate::store::batch::{self, BatchConn, Endpoint};
use crate::store::intents::NewOneTime;
use crate::store::sqlite_writer::SqliteWriter;
use crate::store::trail::{NewMessage, NewReport};
use crate::store::{Backend, HeldWriter, Store, StoreError, StoreResult};

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
    /// Batches that failed together and were written one by one.
    fallbacks: Fallbacks,
}

/// A count of batches written one by one after failing together.
type Fallbacks = std::sync::Arc<std::sync::atomic::AtomicU64>;

fn stopped() -> StoreError {
    StoreError::Database(sqlx::Error::Protocol("the intent writer stopped".into()))
}

/// A writer task over its own held connection.
fn writer(store: &Store, fallbacks: &Fallbacks) -> Batcher<Write, Written> {
    let (store, fallbacks) = (store.clone(), fallbacks.clone());
    let held = std::sync::Arc::new(tokio::sync::Mutex::new(Held::new(&store)));
    Batcher::spawn(move |items| write_batch(store.clone(), held.clone(), fallbacks.clone(), items))
}

/// The connection a writer keeps across its batches.
enum Held {
    /// SQLite with a database file: a connection of its own, driven on the writer's thread.
    Sqlite(SqliteWriter),
    /// PostgreSQL, or SQLite in memory: a connection of sqlx's.
    Sqlx(HeldWriter),
}

impl Held {
    fn new(store: &Store) -> Held {
        SqliteWriter::new(store).map_or_else(|| Held::Sqlx(HeldWriter::new(store)), Held::Sqlite)
    }

    /// Writes a batch in one transaction; after a failure the connection is let go.
    async fn write(&mut self, answers: &[&CreatedAtVipps], records: &[&PendingIntent]) -> StoreResult<Vec<Recorded>> {
        let written = match self {
            Held::Sqlite(writer) => {
                async {
                    let mut tx = writer.begin().await?;
                    let recorded = together(&mut tx, answers, records).await?;
                    tx.commit()?;
                    Ok(recorded)
                }
                .await
            }
            Held::Sqlx(writer) => {
                async {
                    let mut tx = writer.begin().await?;
                    let recorded = together(&mut *tx, answers, records).await?;
                    tx.commit().await?;
                    Ok(recorded)
                }
                .await
            }
        };
        if written.is_err() {
            match self {
                Held::Sqlite(writer) => writer.discard(),
                Held::Sqlx(writer) => writer.discard(),
            }
        }
        written
    }
}

impl Writers {
    /// Starts the writer tasks over `store`: on SQLite one, on a thread of its own; on PostgreSQL two, on the
    /// current runtime.
    pub(crate) fn spawn(store: &Store) -> Writers {
        let fallbacks = Fallbacks::default();
        match store.backend() {
            Backend::Sqlite => {
                let (runtime, thread) =
                    own_thread().map_or((None, None), |(runtime, stop)| (Some(runtime), Some(stop)));
                let _entered = runtime.as_ref().map(tokio::runtime::Handle::enter);
                Writers { record: writer(store, &fallbacks), created: None, _thread: thread, fallbacks }
            }
            Backend::Postgres => Writers {
                record: writer(store, &fallbacks),
                created: Some(writer(store, &fallbacks)),
                _thread: None,
                fallbacks,
            },
        }
    }

    /// How many batches failed together and were written one by one since the writers started.
    pub(crate) fn fallbacks(&self) -> u64 {
        self.fallbacks.load(std::sync::atomic::Ordering::Relaxed)
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
#[derive(Clone)]
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
    held: std::sync::Arc<tokio::sync::Mutex<Held>>,
    fallbacks: Fallbacks,
    items: Vec<Write>,
) -> Vec<Written> {
    let records: Vec<&PendingIntent> =
        items.iter().filter_map(|w| if let Write::Record(i) = w { Some(&**i) } else { None }).collect();
    let answers: Vec<&CreatedAtVipps> =
        items.iter().filter_map(|w| if let Write::Created(a) = w { Some(&**a) } else { None }).collect();
    let together = held.lock().await.write(&answers, &records).await;
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
            fallbacks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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

/// The answers, then the new intents, of a batch in the caller's transaction. Returns what each intent was
/// recorded as, in order.
async fn together<C: BatchConn>(
    conn: &mut C,
    answers: &[&CreatedAtVipps],
    records: &[&PendingIntent],
) -> StoreResult<Vec<Recorded>> {
    // The endpoints, read once: every new intent needs them (to know who listens), and so does an answer that
    // someone may hear.
    let endpoints = if !records.is_empty() || answers.iter().any(|a| a.listeners.as_ref().is_none_or(Listeners::anyone))
    {
        batch::endpoints(&mut *conn).await?
    } else {
        Vec::new()
    };
    let mut out = Out { steps: batch::Steps::default(), outbox: Outbox::default(), endpoints: &endpoints };
    created_together(&mut *conn, &mut out, answers).await?;
    let recorded = record_together(&mut *conn, &mut out, records).await?;
    let Out { mut steps, outbox, .. } = out;
    outbox.write_to(&mut steps);
    conn.write(steps).await?;
    Ok(recorded)
}

/// What a batch will write: its statements, and its events addressed to the installation's `endpoints`.
struct Out<'e> {
    steps: batch::Steps,
    outbox: Outbox,
    endpoints: &'e [Endpoint],
}

impl Out<'_> {
    /// Announces `event_type` to the endpoints and `listeners`' own URL.
    fn emit(&mut self, listeners: &Listeners, event_type: &str, data: serde_json::Value, at: DateTime<Utc>) {
        self.outbox.emit(self.endpoints, event_type, data, listeners.url(), at);
    }
}

/// The key under which the database keeps a payer unique (lower-cased email, else phone); `None` for a payer
/// with neither, who is always new.
fn payer_key(payer: &PayerInput) -> Option<(bool, String)> {
    match (&payer.email, &payer.phone) {
        (Some(email), _) => Some((true, email.to_lowercase())),
        (None, Some(phone)) => Some((false, phone.as_str().to_owned())),
        (None, None) => None,
    }
}

/// The payers of the batch's intents, in order: found, or created (one per key, in the order of their keys, so
/// that the batches of two payhub instances on one PostgreSQL never wait for each other's rows in opposite
/// orders). A payer created meanwhile by someone else is read back.
async fn payers_of<C: BatchConn>(conn: &mut C, items: &[&PendingIntent]) -> StoreResult<Vec<String>> {
    let payers: Vec<&PayerInput> = items.iter().map(|i| &i.payer).collect();
    let mut found = batch::find_payers(&mut *conn, &payers).await?;
    let mut missing: Vec<usize> = (0..items.len()).filter(|&i| found[i].is_none()).collect();
    if !missing.is_empty() {
        missing.sort_by_key(|&i| payer_key(&items[i].payer));
        let mut new: Vec<(String, usize)> = Vec::new();
        let mut previous = None;
        for &i in &missing {
            let key = payer_key(&items[i].payer);
            if key.is_none() {
                let id = new_id("pay");
                found[i] = Some(id.clone());
                new.push((id, i));
            } else if key != previous {
                new.push((new_id("pay"), i));
            }
            previous = key;
        }
        let rows: Vec<_> = new.iter().map(|(id, i)| (id.as_str(), &items[*i].payer, items[*i].now)).collect();
        let mut steps = batch::Steps::default();
        steps.insert_payers(&rows);
        conn.write(steps).await?;
        let keyed: Vec<usize> = missing.into_iter().filter(|&i| found[i].is_none()).collect();
        let payers: Vec<&PayerInput> = keyed.iter().map(|&i| &items[i].payer).collect();
        for (i, id) in keyed.iter().zip(batch::find_payers(&mut *conn, &payers).await?) {
            found[*i] = Some(id.ok_or_else(|| StoreError::Conflict("payers".into()))?);
        }
    }
    Ok(found.into_iter().map(Option::unwrap_or_default).collect())
}

/// The Vipps wallet profiles of the batch's intents (by payer and phone), in order: found, or created as
/// [`payers_of`] creates payers.
async fn profiles_of<C: BatchConn>(
    conn: &mut C,
    items: &[&PendingIntent],
    payer_ids: &[String],
) -> StoreResult<Vec<String>> {
    let wanted: Vec<(&str, Option<&str>)> =
        items.iter().zip(payer_ids).map(|(i, payer)| (payer.as_str(), i.profile_phone.as_deref())).collect();
    let mut found = batch::find_profiles(&mut *conn, &wanted).await?;
    let mut missing: Vec<usize> = (0..items.len()).filter(|&i| found[i].is_none()).collect();
    if !missing.is_empty() {
        missing.sort_by_key(|&i| wanted[i]);
        missing.dedup_by_key(|i| wanted[*i]);
        let ids: Vec<String> = missing.iter().map(|_| new_id("pp")).collect();
        let rows: Vec<_> =
            missing.iter().zip(&ids).map(|(&i, id)| (id.as_str(), wanted[i].0, wanted[i].1, items[i].now)).collect();
        let mut steps = batch::Steps::default();
        steps.insert_profiles(&rows);
        conn.write(steps).await?;
        let again: Vec<usize> = (0..items.len()).filter(|&i| found[i].is_none()).collect();
        let pairs: Vec<(&str, Option<&str>)> = again.iter().map(|&i| wanted[i]).collect();
        for (i, id) in again.iter().zip(batch::find_profiles(&mut *conn, &pairs).await?) {
            found[*i] = Some(id.ok_or_else(|| StoreError::Conflict("payment_profiles".into()))?);
        }
    }
    Ok(found.into_iter().map(Option::unwrap_or_default).collect())
}

/// Adds the rows of every new intent of the batch to `steps` (its payers and profiles are found or created at
/// once), with the events that announce them.
async fn record_together<C: BatchConn>(
    conn: &mut C,
    out: &mut Out<'_>,
    items: &[&PendingIntent],
) -> StoreResult<Vec<Recorded>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let payer_ids = payers_of(&mut *conn, items).await?;
    let profile_ids = profiles_of(&mut *conn, items, &payer_ids).await?;
    let messages: Vec<_> = items.iter().map(|i| (i.message(), i.now)).collect();
    let message_ids = out.steps.insert_messages(&messages);
    let reports: Vec<_> = items.iter().zip(&message_ids).map(|(i, m)| (i.report(m, &i.reference), i.now)).collect();
    let report_ids = out.steps.insert_reports(&reports);
    let one_times: Vec<_> = items
        .iter()
        .zip(&report_ids)
        .zip(payer_ids.iter().zip(&profile_ids))
        .map(|((i, report), (payer, profile))| (i.one_time(&i.reference, report, payer, profile), i.now))
        .collect();
    out.steps.insert_one_times(&one_times);
    let mut recorded = Vec::with_capacity(items.len());
    for ((item, payer_id), (one_time, _)) in items.iter().zip(&payer_ids).zip(&one_times) {
        let listeners = Listeners::known(item.webhook_url.clone(), !out.endpoints.is_empty());
        if listeners.anyone() {
            // The intent and its installment as just written.
            let data = events::intent_data(
                &item.intent_id,
                IntentStatus::Processing,
                payer_id,
                Some((&item.installment_id, InstallmentStatus::Outstanding)),
            );
            out.emit(&listeners, "paymentIntent.created", data, item.now);
            let data = events::installment_data(&one_time.installment_row(item.now), &[]);
            out.emit(&listeners, "installment.created", data, item.now);
        }
        recorded.push(Recorded { reference: item.reference.clone(), listeners });
    }
    Ok(recorded)
}

/// Records one intent in its own transaction (the batch's code, for a batch of one); a taken payment reference
/// draws another (twice at most).
async fn record_alone(store: &Store, item: &PendingIntent) -> StoreResult<Recorded> {
    let mut redrawn: PendingIntent;
    let mut item = item;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut tx = store.begin_write().await?;
        match together(&mut *tx, &[], &[item]).await {
            Ok(mut recorded) => {
                tx.commit().await?;
                return recorded.pop().ok_or_else(stopped);
            }
            // A payment reference collision (1 in 10^12): draw another.
            Err(StoreError::Conflict(_)) if attempt < 3 => {
                drop(tx);
                redrawn = PendingIntent { reference: super::new_payment_reference(), ..item.clone() };
                item = &redrawn;
            }
            Err(error) => return Err(error),
        }
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

/// Adds every answer of the batch to `steps`: the payments become `CREATED`, their installments `Pending` and
/// their intents `Matched`, each traced by a message and a report, with the events of those moves.
async fn created_together<C: BatchConn>(conn: &mut C, out: &mut Out<'_>, items: &[&CreatedAtVipps]) -> StoreResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    // How the installments that someone may hear about stand before the moves.
    let heard: Vec<&&CreatedAtVipps> =
        items.iter().filter(|i| i.listeners.as_ref().is_none_or(Listeners::anyone)).collect();
    let ids: Vec<&str> = heard.iter().map(|i| i.installment_id.as_str()).collect();
    let mut standing =
        if ids.is_empty() { Default::default() } else { batch::installments_for_events(&mut *conn, &ids).await? };
    let messages: Vec<_> = items.iter().map(|i| (i.message(), i.now)).collect();
    let message_ids = out.steps.insert_messages(&messages);
    let reports: Vec<_> = items.iter().zip(&message_ids).map(|(i, m)| (i.report(m), i.now)).collect();
    out.steps.insert_reports(&reports);
    let created: Vec<_> = items.iter().map(|i| (i.reference.as_str(), i.redirect_url.as_deref(), i.now)).collect();
    out.steps.mark_created(&created);
    let moves: Vec<_> = items.iter().map(|i| (i.installment_id.as_str(), i.now)).collect();
    out.steps.advance_installments(&moves, InstallmentStatus::Pending);
    let intents: Vec<_> = items.iter().map(|i| (i.intent_id.as_str(), i.now)).collect();
    out.steps.set_intents_status(&intents, IntentStatus::Matched);
    for item in heard {
        let Some(events) = standing.get_mut(&item.installment_id) else { continue };
        let listeners = match &item.listeners {
            Some(listeners) => listeners.clone(),
            None => Listeners::known(events.webhook_url.clone(), !out.endpoints.is_empty()),
        };
        if !listeners.anyone() {
            continue;
        }
        let installment = &mut events.installment;
        if installment.status.can_become(InstallmentStatus::Pending) {
            installment.status = InstallmentStatus::Pending;
            let data = events::installment_data(installment, &events.payments);
            out.emit(&listeners, "installment.status_change", data, item.now);
        }
        let data = events::intent_data(
            &item.intent_id,
            IntentStatus::Matched,
            &events.intent_payer_id,
            Some((&installment.id, installment.status)),
        );
        out.emit(&listeners, "paymentIntent.processed", data, item.now);
    }
    Ok(())
}

/// Records one answer in its own transaction (the batch's code, for a batch of one).
pub(crate) async fn created_alone(store: &Store, item: &CreatedAtVipps) -> StoreResult<()> {
    let mut tx = store.begin_write().await?;
    together(&mut *tx, &[item], &[]).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The single number `sql` selects.
    async fn count(store: &Store, sql: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql).fetch_one(store.pool()).await.unwrap()
    }

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
        let held = std::sync::Arc::new(tokio::sync::Mutex::new(Held::new(&store)));
        assert!(matches!(*held.lock().await, Held::Sqlite(_)), "a database file gets the writer's own connection");
        let fallbacks = Fallbacks::default();
        let answers = write_batch(store.clone(), held, fallbacks.clone(), items).await;
        assert_eq!(fallbacks.load(std::sync::atomic::Ordering::Relaxed), 1);
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
        assert_eq!(count(&store, "SELECT COUNT(*) FROM payers").await, 1);
        assert_eq!(count(&store, "SELECT COUNT(*) FROM installments").await, 3);
        assert_eq!(count(&store, "SELECT COUNT(*) FROM vipps_payments WHERE state = 'CREATING'").await, 3);
        assert_eq!(count(&store, "SELECT COUNT(*) FROM messages").await, 3, "nothing of the failed batch stayed");
    }

    fn answer(item: &PendingIntent, reference: &str, listeners: Option<Listeners>) -> CreatedAtVipps {
        CreatedAtVipps {
            reference: reference.to_owned(),
            installment_id: item.installment_id.clone(),
            intent_id: item.intent_id.clone(),
            amount_ore: item.amount_ore,
            redirect_url: Some(format!("https://landing.example/{reference}")),
            body: "{}".into(),
            listeners,
            now: item.now,
        }
    }

    /// The events announced about `item`, in the order their jobs run, with its own ids replaced so that two
    /// intents' events compare.
    async fn events_of(store: &Store, item: &PendingIntent, reference: &str) -> Vec<String> {
        let mut conn = store.pool().acquire().await.unwrap();
        let payer: String = sqlx::query_scalar("SELECT payer_id FROM payment_intents WHERE id = $1")
            .bind(&item.intent_id)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT d.event_type, d.url, d.body FROM webhook_deliveries d \
             JOIN jobs j ON json_extract(j.payload, '$.delivery_id') = d.id ORDER BY j.id",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        rows.into_iter()
            .filter(|(_, _, body)| body.contains(&item.intent_id))
            .map(|(event, url, body)| {
                let mut body: serde_json::Value = serde_json::from_str(&body).unwrap();
                body["timestamp"] = serde_json::Value::Null;
                let body = body
                    .to_string()
                    .replace(&item.intent_id, "INTENT")
                    .replace(&item.installment_id, "INSTALLMENT")
                    .replace(&payer, "PAYER")
                    .replace(reference, "REFERENCE");
                format!("{event} {url} {body}")
            })
            .collect()
    }

    /// `paymentIntent.*` and `installment.*` as the per-row helpers announce them from the stored rows, for
    /// comparison with what a batch composed.
    async fn announce_from_rows(store: &Store, items: &[(&PendingIntent, &Listeners)], answered: bool) {
        let mut tx = store.begin_write().await.unwrap();
        for (item, listeners) in items {
            let (intent, installment) = (&item.intent_id, &item.installment_id);
            if answered {
                events::installment(&mut tx, listeners, "installment.status_change", installment, item.now)
                    .await
                    .unwrap();
                events::intent(&mut tx, listeners, "paymentIntent.processed", intent, item.now).await.unwrap();
            } else {
                events::intent(&mut tx, listeners, "paymentIntent.created", intent, item.now).await.unwrap();
                events::installment(&mut tx, listeners, "installment.created", installment, item.now).await.unwrap();
            }
        }
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn a_batch_announces_what_the_rows_it_wrote_say() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display())).await.unwrap();
        store.migrate().await.unwrap();
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, url, description, event_types, secret_sealed, created_at) \
             VALUES ('whe_1', 'http://127.0.0.1:9/erp', '', '[]', 'sealed', '2026-01-01T00:00:00Z')",
        )
        .execute(store.pool())
        .await
        .unwrap();
        // Written together: a new payer twice (the email in two cases), the first at half past midnight in Oslo,
        // and a payer known by phone alone with a WebhookURL of its own.
        let mut a = pending(1, "pi-100000000001");
        a.now = "2026-11-23T23:30:00Z".parse().unwrap();
        let mut b = pending(2, "pi-100000000002");
        b.payer.email = Some("same@example.org".into());
        let mut c = pending(3, "pi-100000000003");
        c.payer = PayerInput {
            phone: Some(crate::domain::phone::Phone::parse("4791234567").unwrap()),
            ..PayerInput::default()
        };
        c.profile_phone = Some("4791234567".into());
        c.webhook_url = Some("http://127.0.0.1:9/own".to_owned());
        let mut held = Held::new(&store);
        assert!(matches!(held, Held::Sqlite(_)), "a database file gets the writer's own connection");
        let recorded = held.write(&[], &[&a, &b, &c]).await.expect("the batch is written together");
        assert_eq!(recorded.len(), 3);
        assert!(recorded.iter().all(|r| r.listeners.anyone()));
        let heard = [(&a, &recorded[0].listeners), (&c, &recorded[2].listeners)];
        announce_from_rows(&store, &heard, false).await;
        // Answers: one whose listeners are known, one read from its intent.
        let (answer_a, answer_c) =
            (answer(&a, &a.reference, Some(recorded[0].listeners.clone())), answer(&c, &c.reference, None));
        held.write(&[&answer_a, &answer_c], &[]).await.expect("the answers are written together");
        announce_from_rows(&store, &heard, true).await;

        // Each intent's deliveries, in the order of their jobs: the batch's created events, the same read from the
        // rows, the batch's answered events, the same read from the rows.
        for (item, targets) in [(&a, 1), (&c, 2)] {
            let events = events_of(&store, item, &item.reference).await;
            assert_eq!(events.len(), 8 * targets, "{events:?}");
            let phase = |n: usize| events[n * 2 * targets..(n + 1) * 2 * targets].to_vec();
            assert_eq!(phase(0), phase(1), "created: the batch's, then from the rows");
            assert_eq!(phase(2), phase(3), "answered: the batch's, then from the rows");
        }

        assert_eq!(count(&store, "SELECT COUNT(*) FROM payers").await, 2);
        assert_eq!(count(&store, "SELECT COUNT(*) FROM payment_profiles").await, 2);
        assert_eq!(
            count(&store, "SELECT COUNT(*) FROM installments WHERE status = 'Pending'").await,
            2,
            "a and c were answered"
        );
        let dates: (String, String) = sqlx::query_as(
            "SELECT i.due_date, r.report_date FROM installments i JOIN inbound_reports r ON r.installment_id = i.id \
             AND r.report_type = 'PaymentIntent' WHERE i.id = $1",
        )
        .bind(&a.installment_id)
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(dates, ("2026-11-24".into(), "2026-11-24".into()), "the Oslo date, not the UTC one");
        assert_eq!(
            count(&store, "SELECT COUNT(*) FROM jobs").await,
            count(&store, "SELECT COUNT(*) FROM webhook_deliveries").await,
        );
    }
}
