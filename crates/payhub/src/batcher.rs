//! A writer (or reader) task that serves many callers with one piece of work: whatever was queued while the
//! previous batch ran becomes the next batch. Nobody waits on a timer, so one caller alone is served at once and
//! many callers share the cost of a transaction, a commit or a round trip to the database's thread.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

/// The most items one batch holds.
pub(crate) const MAX_BATCH: usize = 64;

/// A task that runs a function over batches of queued items and answers each caller on its own channel.
pub(crate) struct Batcher<I, O> {
    sender: mpsc::UnboundedSender<(I, oneshot::Sender<O>)>,
}

impl<I, O> std::fmt::Debug for Batcher<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Batcher")
    }
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Starts the task (on the current tokio runtime). `run` answers every item of its batch, in order. The
    /// task ends when the last handle is dropped.
    pub(crate) fn spawn<F, Fut>(run: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<O>> + Send + 'static,
    {
        let (sender, mut receiver) = mpsc::unbounded_channel::<(I, oneshot::Sender<O>)>();
        tokio::spawn(async move {
            let mut queued = Vec::with_capacity(MAX_BATCH);
            while receiver.recv_many(&mut queued, MAX_BATCH).await > 0 {
                let (items, answers): (Vec<I>, Vec<oneshot::Sender<O>>) = queued.drain(..).unzip();
                // Its own task, so that a panic fails this batch's callers (their channels close) and not the
                // batcher.
                if let Ok(outputs) = tokio::spawn(run(items)).await {
                    for (answer, output) in answers.into_iter().zip(outputs) {
                        let _ = answer.send(output);
                    }
                }
            }
        });
        Self { sender }
    }

    /// Queues `item` and waits for its answer; `None` when the task failed before answering.
    pub(crate) async fn submit(&self, item: I) -> Option<O> {
        let (answer, answered) = oneshot::channel();
        self.sender.send((item, answer)).ok()?;
        answered.await.ok()
    }
}

/// A reader over `pool`: requests that arrive together for records by key share one connection and one read
/// per distinct key (the same API key, the default account). Each read starts after its callers queued, so no
/// caller sees older data than a read of its own would have. `read` looks up one key.
pub(crate) fn reader<K, V, F>(pool: sqlx::AnyPool, read: F) -> Batcher<K, Result<V, String>>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + 'static,
    F: for<'c> Fn(&'c mut sqlx::AnyConnection, &'c K) -> BoxFuture<'c, Result<V, String>> + Send + Sync + 'static,
{
    let read = std::sync::Arc::new(read);
    Batcher::spawn(move |keys: Vec<K>| {
        let (pool, read) = (pool.clone(), read.clone());
        async move {
            let mut conn = match pool.acquire().await {
                Ok(conn) => conn,
                Err(error) => return keys.iter().map(|_| Err(error.to_string())).collect(),
            };
            let mut found: HashMap<K, Result<V, String>> = HashMap::new();
            for key in &keys {
                if !found.contains_key(key) {
                    let value = read(&mut conn, key).await;
                    found.insert(key.clone(), value);
                }
            }
            keys.iter().map(|key| found[key].clone()).collect()
        }
    })
}
