//! Workers: claim a due job, run its kind's handler, record the outcome.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, RwLock};

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Job, Queue};
use crate::store::StoreResult;

/// Runs one kind of job. A plain `async fn(Job) -> anyhow::Result<()>` (or closure) is a handler.
/// An `Err` (or a panic) counts as a failed attempt and is retried; handlers must be idempotent, since a job
/// whose worker died is run again.
pub trait Handler: Send + Sync {
    /// Runs `job`.
    fn handle(&self, job: Job) -> BoxFuture<'static, anyhow::Result<()>>;
}

impl<F, Fut> Handler for F
where
    F: Fn(Job) -> Fut + Send + Sync,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    fn handle(&self, job: Job) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(self(job))
    }
}

/// The handlers by job kind, shared by every worker; registering later reaches running workers too.
#[derive(Clone, Default)]
pub struct Handlers(Arc<RwLock<HashMap<String, Arc<dyn Handler>>>>);

impl Handlers {
    /// Registers (or replaces) the handler of `kind`.
    pub fn register(&self, kind: impl Into<String>, handler: impl Handler + 'static) {
        let mut map = self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.insert(kind.into(), Arc::new(handler));
    }

    /// The kinds that have a handler (sorted).
    pub fn kinds(&self) -> Vec<String> {
        let map = self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut kinds: Vec<String> = map.keys().cloned().collect();
        kinds.sort();
        kinds
    }

    fn get(&self, kind: &str) -> Option<Arc<dyn Handler>> {
        let map = self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.get(kind).cloned()
    }
}

/// Claims and runs jobs of the registered kinds.
#[derive(Clone)]
pub struct Worker {
    queue: Queue,
    handlers: Handlers,
}

impl Worker {
    /// A worker on `queue` running `handlers`.
    pub fn new(queue: Queue, handlers: Handlers) -> Self {
        Self { queue, handlers }
    }

    /// Claims one due job and runs it; `false` when nothing was due.
    pub async fn run_one(&self) -> StoreResult<bool> {
        let Some(job) = self.queue.claim(&self.handlers.kinds()).await? else {
            return Ok(false);
        };
        // Every log line of the job names it and the record it is about (the ordering key: a payment reference,
        // an agreement; or what the handler records), never its payload, which may hold a payer's data.
        let span = tracing::info_span!(
            "job",
            job_id = job.id,
            kind = %job.kind,
            attempt = job.attempt,
            record = tracing::field::Empty
        );
        if let Some(key) = &job.ordering_key {
            span.record("record", key.as_str());
        }
        let outcome = match self.handlers.get(&job.kind) {
            Some(handler) => {
                let run = tracing::Instrument::instrument(
                    AssertUnwindSafe(handler.handle(job.clone())).catch_unwind(),
                    span.clone(),
                );
                match self.renewing_lease(&job, run).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(anyhow::anyhow!("the handler panicked")),
                }
            }
            None => Err(anyhow::anyhow!("no handler for job kind `{}`", job.kind)),
        };
        match outcome {
            Ok(()) => {
                if !self.queue.complete(&job).await? {
                    span.in_scope(|| tracing::warn!("job finished after its claim was lost"));
                }
            }
            Err(error) => {
                let message = format!("{error:#}");
                span.in_scope(|| tracing::warn!(error = %message, "job failed"));
                self.queue.fail(&job, &message).await?;
            }
        }
        Ok(true)
    }

    /// Drives `work` to its end while renewing `job`'s lease every third of the lease, so a slow handler is not
    /// mistaken for a dead worker. Both run side by side: a renewal waiting for the database (say, for a write
    /// transaction the handler itself holds) never stops the handler from progressing.
    async fn renewing_lease<T>(&self, job: &Job, work: impl Future<Output = T>) -> T {
        let every = (self.queue.settings().lease / 3).max(std::time::Duration::from_millis(10));
        let renewer = async {
            loop {
                tokio::time::sleep(every).await;
                match self.queue.renew(job).await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(job = job.id, kind = %job.kind, "lost the claim on a running job"),
                    Err(error) => tracing::warn!(job = job.id, error = %error, "could not renew a job's lease"),
                }
            }
        };
        tokio::select! {
            result = work => result,
            never = renewer => never,
        }
    }

    /// Runs every due job, repeatedly, until none is due; returns how many ran (for tests and the CLI).
    pub async fn run_until_idle(&self) -> StoreResult<usize> {
        let mut ran = 0;
        while self.run_one().await? {
            ran += 1;
        }
        Ok(ran)
    }

    /// Runs jobs until `shutdown` turns true (or its sender is dropped); between empty polls it waits the
    /// queue's poll interval. A job in progress is finished before it stops.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let interval = self.queue.settings().poll_interval;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let wait = match self.run_one().await {
                Ok(true) => continue,
                Ok(false) => interval,
                Err(error) => {
                    tracing::error!(error = %error, "job queue unavailable");
                    interval.max(std::time::Duration::from_secs(1))
                }
            };
            tokio::select! {
                changed = shutdown.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(wait) => {},
            }
        }
    }
}

/// Starts `n` workers on the current runtime; they stop when `shutdown` turns true. Await the handles to
/// let jobs in progress finish.
pub fn spawn_workers(worker: &Worker, n: usize, shutdown: &watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    (0..n).map(|_| tokio::spawn(worker.clone().run(shutdown.clone()))).collect()
}
