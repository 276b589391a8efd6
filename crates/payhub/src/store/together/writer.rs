//! The group-commit writer tasks: each serves a [`Batcher`] (a batch is whatever queued while the previous one
//! was written), keeps a connection across its batches, writes a batch in one transaction, and writes each of
//! its writes alone when the batch fails, counting such batches.

use std::sync::Arc;

use super::batch::together;
use super::sqlite_writer::SqliteWriter;
use super::{Announce, CreatedAtVipps, PendingIntent, Recorded};
use crate::batcher::Batcher;
use crate::domain::ids::new_payment_reference;
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

/// The group-commit writers of one [`super::Together`]. On SQLite one writer takes both kinds of write (the
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

/// What every batch of a writer needs besides its connection.
#[derive(Clone)]
struct Context {
    store: Store,
    announce: Arc<dyn Announce>,
    fallbacks: Fallbacks,
}

/// A writer task over its own held connection.
fn writer(context: &Context) -> Batcher<Write, Written> {
    let context = context.clone();
    let held = Arc::new(tokio::sync::Mutex::new(Held::new(&context.store)));
    Batcher::spawn(move |items| write_batch(context.clone(), held.clone(), items))
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
    async fn write(
        &mut self,
        announce: &dyn Announce,
        answers: &[&CreatedAtVipps],
        records: &[&PendingIntent],
    ) -> StoreResult<Vec<Recorded>> {
        let written = match self {
            Held::Sqlite(writer) => {
                async {
                    let mut tx = writer.begin().await?;
                    let recorded = together(&mut tx, announce, answers, records).await?;
                    tx.commit()?;
                    Ok(recorded)
                }
                .await
            }
            Held::Sqlx(writer) => {
                async {
                    let mut tx = writer.begin().await?;
                    let recorded = together(&mut *tx, announce, answers, records).await?;
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
    pub(crate) fn spawn(store: &Store, announce: Arc<dyn Announce>) -> Writers {
        let context = Context { store: store.clone(), announce, fallbacks: Fallbacks::default() };
        let fallbacks = context.fallbacks.clone();
        match store.backend() {
            Backend::Sqlite => {
                let (runtime, thread) =
                    own_thread().map_or((None, None), |(runtime, stop)| (Some(runtime), Some(stop)));
                let _entered = runtime.as_ref().map(tokio::runtime::Handle::enter);
                Writers { record: writer(&context), created: None, _thread: thread, fallbacks }
            }
            Backend::Postgres => {
                Writers { record: writer(&context), created: Some(writer(&context)), _thread: None, fallbacks }
            }
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

/// Writes a batch in one transaction on the writer's own connection; when that fails, each write alone.
async fn write_batch(context: Context, held: Arc<tokio::sync::Mutex<Held>>, items: Vec<Write>) -> Vec<Written> {
    let Context { store, announce, fallbacks } = context;
    let records: Vec<&PendingIntent> =
        items.iter().filter_map(|w| if let Write::Record(i) = w { Some(&**i) } else { None }).collect();
    let answers: Vec<&CreatedAtVipps> =
        items.iter().filter_map(|w| if let Write::Created(a) = w { Some(&**a) } else { None }).collect();
    let together = held.lock().await.write(&*announce, &answers, &records).await;
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
                    Write::Record(intent) => Written::Record(record_alone(&store, &*announce, intent).await),
                    Write::Created(answer) => Written::Created(created_alone(&store, &*announce, answer).await),
                });
            }
            written
        }
    }
}

/// Records one intent in its own transaction (the batch's code, for a batch of one); a taken payment reference
/// draws another (twice at most).
async fn record_alone(store: &Store, announce: &dyn Announce, item: &PendingIntent) -> StoreResult<Recorded> {
    let mut redrawn: PendingIntent;
    let mut item = item;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut tx = store.begin_write().await?;
        match together(&mut *tx, announce, &[], &[item]).await {
            Ok(mut recorded) => {
                tx.commit().await?;
                return recorded.pop().ok_or_else(stopped);
            }
            // A payment reference collision (1 in 10^12): draw another.
            Err(StoreError::Conflict(_)) if attempt < 3 => {
                drop(tx);
                redrawn = PendingIntent { reference: new_payment_reference(), ..item.clone() };
                item = &redrawn;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Records one answer in its own transaction (the batch's code, for a batch of one).
async fn created_alone(store: &Store, announce: &dyn Announce, item: &CreatedAtVipps) -> StoreResult<()> {
    let mut tx = store.begin_write().await?;
    together(&mut *tx, announce, &[item], &[]).await?;
    tx.commit().await?;
    Ok(())
}

/// Helpers for tests of what a batch writes, here and in the outbox.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::domain::intent::PayerInput;

    /// A new intent of a payer known by email, with `reference` drawn for it.
    pub(crate) fn pending(n: usize, reference: &str) -> PendingIntent {
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
            now: chrono::Utc::now(),
            recurring: None,
        }
    }

    /// Writes `answers` and `records` as one batch on a writer's own connection to `store`'s file.
    pub(crate) async fn write_once(
        store: &Store,
        announce: &dyn Announce,
        answers: &[&CreatedAtVipps],
        records: &[&PendingIntent],
    ) -> StoreResult<Vec<Recorded>> {
        let mut held = Held::new(store);
        assert!(matches!(held, Held::Sqlite(_)), "a database file gets the writer's own connection");
        held.write(announce, answers, records).await
    }
}

#[cfg(test)]
mod tests {
    use super::testing::pending;
    use super::*;
    use crate::store::outbox::{Endpoint, Outgoing};
    use crate::store::together::{AnswerWritten, IntentWritten};

    /// Announces nothing.
    struct Silent;

    impl Announce for Silent {
        fn recorded(&self, _: &[Endpoint], _: &IntentWritten<'_>, _: &mut Outgoing) {}
        fn created(&self, _: &[Endpoint], _: &AnswerWritten<'_>, _: &mut Outgoing) {}
    }

    /// The single number `sql` selects.
    async fn count(store: &Store, sql: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql).fetch_one(store.pool()).await.unwrap()
    }

    #[tokio::test]
    async fn a_batch_that_fails_is_written_one_by_one_and_a_taken_reference_is_drawn_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display())).await.unwrap();
        store.migrate().await.unwrap();
        // Three intents of one new payer; two drew the same payment reference, so the shared transaction fails.
        let items = vec![pending(1, "pi-100000000001"), pending(2, "pi-100000000001"), pending(3, "pi-100000000003")];
        let items = items.into_iter().map(|i| Write::Record(Box::new(i))).collect();
        let held = Arc::new(tokio::sync::Mutex::new(Held::new(&store)));
        assert!(matches!(*held.lock().await, Held::Sqlite(_)), "a database file gets the writer's own connection");
        let context = Context { store: store.clone(), announce: Arc::new(Silent), fallbacks: Fallbacks::default() };
        let answers = write_batch(context.clone(), held, items).await;
        assert_eq!(context.fallbacks.load(std::sync::atomic::Ordering::Relaxed), 1);
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
}
