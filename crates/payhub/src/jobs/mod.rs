//! Background work: a durable job queue in the database, the workers that run it, and the heartbeat (periodic
//! beats run as jobs). What the jobs do is registered by the modules above (outbound deliveries by
//! `processing::outbox`, Vipps' webhooks and the flows' beats by `processing::background`).
//!
//! A job is enqueued **inside the caller's transaction** ([`enqueue`], [`Queue::enqueue`]), so it exists
//! exactly when the change that asked for it was committed. Workers claim due jobs with a lease
//! (`locked_until`); a worker that dies leaves its job to be claimed again when the lease runs out, so a
//! handler may run more than once for one job and must be idempotent. Failures are retried with exponential
//! backoff and jitter until `max_attempts`, then the job is `failed` with its last error kept.
//!
//! - A **dedupe key** makes enqueueing insert-or-nothing (unique in the schema).
//! - An **ordering key** serialises jobs: a job runs only when no earlier job (lower id) with the same key is
//!   still queued or running, so a later one waits while an earlier one is retried. A job that ends `failed`
//!   no longer holds the later ones back. Ids are taken at insert: on PostgreSQL, two transactions enqueueing
//!   with the same key at once are ordered by id, not by commit, so callers for whom that matters serialise
//!   them (for instance by locking a shared row first).
//!
//! SQLite serialises claims with its write lock (`BEGIN IMMEDIATE`); PostgreSQL claims with
//! `FOR UPDATE SKIP LOCKED`, so any number of workers in any number of processes may run at once.

pub mod heartbeat;
mod worker;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

pub use worker::{spawn_workers, Handler, Handlers, Worker};

use crate::store::{parse_timestamp, timestamp, Backend, Store, StoreResult};

/// The time source of the queue, the heartbeat and webhook timestamps. In sandbox mode it follows the
/// simulator's virtual clock; tests drive it by hand.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// A job to enqueue. Build with [`NewJob::new`] and the chained options.
#[derive(Debug, Clone)]
pub struct NewJob {
    kind: String,
    payload: serde_json::Value,
    dedupe_key: Option<String>,
    ordering_key: Option<String>,
    run_at: Option<DateTime<Utc>>,
    max_attempts: Option<i64>,
}

impl NewJob {
    /// A job of `kind` (the handler's name) carrying `payload`, due now, with the queue's default attempts.
    pub fn new(kind: impl Into<String>, payload: serde_json::Value) -> Self {
        Self { kind: kind.into(), payload, dedupe_key: None, ordering_key: None, run_at: None, max_attempts: None }
    }

    /// Enqueue only if no job with this key was ever enqueued (the key stays taken after the job ends).
    pub fn dedupe_key(mut self, key: impl Into<String>) -> Self {
        self.dedupe_key = Some(key.into());
        self
    }

    /// Run strictly after every earlier job with the same key has ended (done or failed).
    pub fn ordering_key(mut self, key: impl Into<String>) -> Self {
        self.ordering_key = Some(key.into());
        self
    }

    /// Not before `at`.
    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }

    /// At most `n` attempts (at least 1).
    pub fn max_attempts(mut self, n: i64) -> Self {
        self.max_attempts = Some(n.max(1));
        self
    }

    /// The job as a row for a batch insert (`store::outbox`'s `Steps::insert_deliveries`): kind, payload,
    /// dedupe key, ordering key, max attempts, run at, created at; enqueued at `now`, as [`enqueue`] would.
    pub(crate) fn row(&self, now: DateTime<Utc>) -> serde_json::Value {
        serde_json::json!([
            self.kind,
            self.payload.to_string(),
            self.dedupe_key,
            self.ordering_key,
            self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS),
            timestamp(self.run_at.unwrap_or(now)),
            timestamp(now)
        ])
    }
}

/// Default number of attempts of a job that does not say.
pub const DEFAULT_MAX_ATTEMPTS: i64 = 10;

/// Enqueues `job` on `conn` (inside the caller's transaction), due at once by the wall clock unless it says
/// otherwise. Returns the new job's id, or `None` when its dedupe key was already taken.
pub async fn enqueue(conn: &mut AnyConnection, job: NewJob) -> StoreResult<Option<i64>> {
    insert(conn, job, Utc::now()).await
}

/// [`enqueue`] as of `now` (the job is due then unless it says otherwise, and is stamped created then).
pub(crate) async fn insert(conn: &mut AnyConnection, job: NewJob, now: DateTime<Utc>) -> StoreResult<Option<i64>> {
    let row = sqlx::query(
        "INSERT INTO jobs (kind, payload, status, dedupe_key, ordering_key, attempts, max_attempts, run_at, created_at) \
         VALUES ($1, $2, 'queued', $3, $4, 0, $5, $6, $7) ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
    )
    .bind(&job.kind)
    .bind(job.payload.to_string())
    .bind(job.dedupe_key.as_deref())
    .bind(job.ordering_key.as_deref())
    .bind(job.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS))
    .bind(timestamp(job.run_at.unwrap_or(now)))
    .bind(timestamp(now))
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        Some(row) => Some(row.try_get::<i64, _>(0)?),
        None => None,
    })
}

/// A claimed job, as a handler receives it.
#[derive(Debug, Clone)]
pub struct Job {
    /// The job's id (increasing in enqueue order).
    pub id: i64,
    /// The handler's name.
    pub kind: String,
    /// What the enqueuer passed.
    pub payload: serde_json::Value,
    /// This attempt's number, from 1.
    pub attempt: i64,
    /// The last attempt's number; when `attempt == max_attempts` a failure is final.
    pub max_attempts: i64,
    /// The ordering key, if any.
    pub ordering_key: Option<String>,
    token: String,
}

impl Job {
    /// Whether a failure of this attempt ends the job as `failed`.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }
}

/// A job's stored state (for tests, the CLI and the admin pages).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobRecord {
    /// The job's id.
    pub id: i64,
    /// The handler's name.
    pub kind: String,
    /// `queued`, `running`, `done` or `failed`.
    pub status: String,
    /// Attempts started so far.
    pub attempts: i64,
    /// The attempt limit.
    pub max_attempts: i64,
    /// When it is (or was) next due.
    pub run_at: DateTime<Utc>,
    /// The last failure's message, kept after a final failure.
    pub last_error: Option<String>,
    /// The dedupe key, if any.
    pub dedupe_key: Option<String>,
    /// The ordering key, if any.
    pub ordering_key: Option<String>,
}

/// How many jobs are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct QueueCounts {
    /// Waiting to run (including retries waiting for their backoff).
    pub queued: i64,
    /// Claimed by a worker whose lease may or may not have expired.
    pub running: i64,
    /// Finished successfully.
    pub done: i64,
    /// Gave up after the last attempt.
    pub failed: i64,
}

/// Timing rules of a [`Queue`].
#[derive(Debug, Clone, Copy)]
pub struct QueueSettings {
    /// How long a claim lasts; a job still running after this is claimed again by another worker.
    pub lease: Duration,
    /// The delay before the first retry; it doubles with each further attempt.
    pub backoff_base: Duration,
    /// The longest delay between attempts.
    pub backoff_max: Duration,
    /// How long an idle worker waits before looking for due jobs again.
    pub poll_interval: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(300),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(3600),
            poll_interval: Duration::from_millis(500),
        }
    }
}

/// The job queue over a [`Store`]. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    store: Store,
    clock: Clock,
    settings: QueueSettings,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("settings", &self.settings).finish_non_exhaustive()
    }
}

const JOB_COLUMNS: &str =
    "id, kind, payload, status, attempts, max_attempts, run_at, last_error, dedupe_key, ordering_key";

impl Queue {
    /// A queue on `store` with the wall clock and default settings.
    pub fn new(store: Store) -> Self {
        Self { store, clock: system_clock(), settings: QueueSettings::default() }
    }

    /// The same queue reading time from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The same queue with other timing rules.
    pub fn with_settings(mut self, settings: QueueSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The store the queue lives in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The queue's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The queue's timing rules.
    pub fn settings(&self) -> QueueSettings {
        self.settings
    }

    /// The current time by the queue's clock.
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// Enqueues `job` on `conn` (inside the caller's transaction), due by this queue's clock unless it says
    /// otherwise. `None` when its dedupe key was already taken.
    pub async fn enqueue(&self, conn: &mut AnyConnection, job: NewJob) -> StoreResult<Option<i64>> {
        insert(conn, job, self.now()).await
    }

    /// A write transaction on the queue's database (SQLite takes its write lock at once), for callers outside
    /// this crate that enqueue together with other writes.
    pub async fn begin(&self) -> StoreResult<crate::store::WriteTx<'static>> {
        self.store.begin_write().await
    }

    /// Enqueues `job` in a transaction of its own.
    pub async fn enqueue_now(&self, job: NewJob) -> StoreResult<Option<i64>> {
        let mut tx = self.store.begin_write().await?;
        let id = self.enqueue(&mut tx, job).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Claims the next due job whose kind is in `kinds`, leasing it until now + lease; `None` when nothing is
    /// due. A job whose lease ran out on its last attempt is marked `failed` here.
    pub async fn claim(&self, kinds: &[String]) -> StoreResult<Option<Job>> {
        if kinds.is_empty() {
            return Ok(None);
        }
        let now = self.now();
        let now_text = timestamp(now);
        let lease = TimeDelta::from_std(self.settings.lease).unwrap_or(TimeDelta::MAX);
        let until = timestamp(now.checked_add_signed(lease).unwrap_or(DateTime::<Utc>::MAX_UTC));
        let token = uuid::Uuid::new_v4().simple().to_string();
        // A read first, on indexes only: an idle poll must not take SQLite's write lock away from the requests
        // being served.
        let anything_due = sqlx::query(
            "SELECT 1 WHERE EXISTS (SELECT 1 FROM jobs WHERE status = 'queued' AND run_at <= $1) \
             OR EXISTS (SELECT 1 FROM jobs WHERE status = 'running' AND locked_until <= $1)",
        )
        .bind(&now_text)
        .fetch_optional(self.store.pool())
        .await?;
        if anything_due.is_none() {
            return Ok(None);
        }
        let mut tx = self.bookkeeping().await?;
        sqlx::query(
            "UPDATE jobs SET status = 'failed', finished_at = $1, locked_until = NULL, \
             last_error = 'the lease ran out during the last attempt (worker stopped or too slow)' \
             WHERE status = 'running' AND locked_until <= $1 AND attempts >= max_attempts",
        )
        .bind(&now_text)
        .execute(&mut *tx)
        .await?;
        let placeholders: Vec<String> = (0..kinds.len()).map(|i| format!("${}", i + 2)).collect();
        let lock = match self.store.backend() {
            Backend::Postgres => " FOR UPDATE OF j SKIP LOCKED",
            Backend::Sqlite => "",
        };
        // Expired leases first (rare), then due jobs in (run_at, id) order straight from the partial index.
        let candidates = [
            "j.status = 'running' AND j.locked_until <= $1 ORDER BY j.id",
            "j.status = 'queued' AND j.run_at <= $1 ORDER BY j.run_at, j.id",
        ];
        let mut found = None;
        for candidate in candidates {
            let (condition, order) = candidate.split_once(" ORDER BY ").unwrap_or((candidate, "j.id"));
            let select = format!(
                "SELECT j.id FROM jobs j WHERE {condition} AND j.kind IN ({}) \
                 AND (j.ordering_key IS NULL OR NOT EXISTS (SELECT 1 FROM jobs e WHERE e.ordering_key = j.ordering_key \
                      AND e.id < j.id AND e.status IN ('queued', 'running'))) \
                 ORDER BY {order} LIMIT 1{lock}",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&select).bind(&now_text);
            for kind in kinds {
                query = query.bind(kind);
            }
            if let Some(row) = query.fetch_optional(&mut *tx).await? {
                found = Some(row);
                break;
            }
        }
        let Some(row) = found else {
            tx.commit().await?;
            return Ok(None);
        };
        let id: i64 = row.try_get(0)?;
        let row = sqlx::query(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_until = $1, locked_by = $2 \
             WHERE id = $3 RETURNING id, kind, payload, attempts, max_attempts, ordering_key",
        )
        .bind(&until)
        .bind(&token)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let payload: String = row.try_get("payload")?;
        Ok(Some(Job {
            id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
            attempt: row.try_get("attempts")?,
            max_attempts: row.try_get("max_attempts")?,
            ordering_key: row.try_get("ordering_key")?,
            token,
        }))
    }

    /// A transaction for the queue's own bookkeeping. On PostgreSQL it commits without waiting for the disk
    /// (`synchronous_commit = off`): a crash may forget the last claims and completions, which only means those
    /// jobs run again — the at-least-once promise every handler is written for.
    async fn bookkeeping(&self) -> StoreResult<crate::store::WriteTx<'static>> {
        let mut tx = self.store.begin_write().await?;
        if self.store.backend() == Backend::Postgres {
            sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
        }
        Ok(tx)
    }

    /// Marks a claimed job done. `false` when the claim was lost (the lease ran out and another worker took it).
    pub async fn complete(&self, job: &Job) -> StoreResult<bool> {
        let mut tx = self.bookkeeping().await?;
        let done = sqlx::query(
            "UPDATE jobs SET status = 'done', finished_at = $1, locked_until = NULL, last_error = NULL \
             WHERE id = $2 AND locked_by = $3 AND status = 'running'",
        )
        .bind(timestamp(self.now()))
        .bind(job.id)
        .bind(&job.token)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Extends a claimed job's lease to now + lease (workers do this while a handler runs). `false` when the
    /// claim was lost.
    pub async fn renew(&self, job: &Job) -> StoreResult<bool> {
        let lease = TimeDelta::from_std(self.settings.lease).unwrap_or(TimeDelta::MAX);
        let until = self.now().checked_add_signed(lease).unwrap_or(DateTime::<Utc>::MAX_UTC);
        let mut tx = self.bookkeeping().await?;
        let renewed =
            sqlx::query("UPDATE jobs SET locked_until = $1 WHERE id = $2 AND locked_by = $3 AND status = 'running'")
                .bind(timestamp(until))
                .bind(job.id)
                .bind(&job.token)
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(renewed.rows_affected() == 1)
    }

    /// Records a failed attempt: the job is queued again after a backoff, or `failed` after its last attempt.
    /// `false` when the claim was lost.
    pub async fn fail(&self, job: &Job, error: &str) -> StoreResult<bool> {
        let now = self.now();
        let error: String = error.chars().take(2000).collect();
        let mut tx = self.bookkeeping().await?;
        let result = if job.is_last_attempt() {
            sqlx::query(
                "UPDATE jobs SET status = 'failed', finished_at = $1, locked_until = NULL, last_error = $2 \
                 WHERE id = $3 AND locked_by = $4 AND status = 'running'",
            )
            .bind(timestamp(now))
            .bind(&error)
            .bind(job.id)
            .bind(&job.token)
            .execute(&mut *tx)
            .await?
        } else {
            let delay = backoff(self.settings, job.attempt);
            let next = now.checked_add_signed(delay).unwrap_or(DateTime::<Utc>::MAX_UTC);
            sqlx::query(
                "UPDATE jobs SET status = 'queued', run_at = $1, locked_until = NULL, last_error = $2 \
                 WHERE id = $3 AND locked_by = $4 AND status = 'running'",
            )
            .bind(timestamp(next))
            .bind(&error)
            .bind(job.id)
            .bind(&job.token)
            .execute(&mut *tx)
            .await?
        };
        tx.commit().await?;
        Ok(result.rows_affected() == 1)
    }

    /// One job's stored state.
    pub async fn get(&self, id: i64) -> StoreResult<Option<JobRecord>> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.store.pool())
            .await?;
        row.as_ref().map(job_record).transpose()
    }

    /// The most recent jobs (newest first), optionally only those in `status`.
    pub async fn recent(&self, status: Option<&str>, limit: i64) -> StoreResult<Vec<JobRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE (CAST($1 AS TEXT) IS NULL OR status = $1) ORDER BY id DESC LIMIT $2"
        ))
        .bind(status)
        .bind(limit.clamp(1, 1000))
        .fetch_all(self.store.pool())
        .await?;
        rows.iter().map(job_record).collect()
    }

    /// Queued jobs by kind: how many, and how long the oldest that is due has waited (zero when none is due),
    /// for `/metrics`. Kinds are the registered handlers' names, a fixed set.
    pub async fn depth(&self) -> StoreResult<Vec<(String, i64, f64)>> {
        let now = self.now();
        let rows = sqlx::query(
            "SELECT kind, COUNT(*) AS n, MIN(CASE WHEN run_at <= $1 THEN run_at END) AS oldest \
             FROM jobs WHERE status = 'queued' GROUP BY kind ORDER BY kind",
        )
        .bind(crate::store::timestamp(now))
        .fetch_all(self.store.pool())
        .await?;
        let mut depth = Vec::new();
        for row in rows {
            let oldest: Option<String> = row.try_get("oldest")?;
            let age = match oldest {
                Some(text) => (now - parse_timestamp(&text)?).num_milliseconds().max(0) as f64 / 1000.0,
                None => 0.0,
            };
            depth.push((row.try_get("kind")?, row.try_get("n")?, age));
        }
        Ok(depth)
    }

    /// How many jobs are in each state.
    pub async fn counts(&self) -> StoreResult<QueueCounts> {
        let rows =
            sqlx::query("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").fetch_all(self.store.pool()).await?;
        let mut counts = QueueCounts::default();
        for row in rows {
            let status: String = row.try_get("status")?;
            let n: i64 = row.try_get("n")?;
            match status.as_str() {
                "queued" => counts.queued = n,
                "running" => counts.running = n,
                "done" => counts.done = n,
                _ => counts.failed = n,
            }
        }
        Ok(counts)
    }
}

fn job_record(row: &AnyRow) -> StoreResult<JobRecord> {
    Ok(JobRecord {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
        run_at: parse_timestamp(&row.try_get::<String, _>("run_at")?)?,
        last_error: row.try_get("last_error")?,
        dedupe_key: row.try_get("dedupe_key")?,
        ordering_key: row.try_get("ordering_key")?,
    })
}

/// The delay after failed attempt number `attempt` (from 1): `base · 2^(attempt-1)` capped at the maximum,
/// then a random point in its upper half, so retries of many jobs spread out ("equal jitter").
pub fn backoff(settings: QueueSettings, attempt: i64) -> TimeDelta {
    let exponent = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let base = settings.backoff_base.as_millis().max(1);
    let full = base.saturating_mul(1u128 << exponent).min(settings.backoff_max.as_millis().max(1));
    let full = i64::try_from(full).unwrap_or(i64::MAX / 2);
    let half = full / 2;
    let jittered = half + rand::thread_rng().gen_range(0..=full - half);
    TimeDelta::milliseconds(jittered)
}

/// Registers handlers on a set of services: kept by [`Jobs::install`] so that forks get them too.
type Installer = Arc<dyn Fn(&Queue, &Handlers) + Send + Sync>;

/// The background-work services the application shares: the queue, the handlers its workers run and the
/// heartbeat. Cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    /// The queue.
    pub queue: Queue,
    /// The handlers by job kind; register more before spawning workers.
    pub handlers: Handlers,
    /// Periodic beats.
    pub heartbeat: heartbeat::Heartbeat,
    installed: Arc<Mutex<Vec<Installer>>>,
}

impl Jobs {
    /// The services over `store` with the wall clock. Registers the handler of beat runs.
    pub fn new(store: Store) -> Self {
        Self::with_clock(store, system_clock())
    }

    /// The services reading time from `clock` (sandbox mode, tests).
    pub fn with_clock(store: Store, clock: Clock) -> Self {
        let queue = Queue::new(store.clone()).with_clock(clock.clone());
        let handlers = Handlers::default();
        let heartbeat = heartbeat::Heartbeat::new(queue.clone());
        heartbeat.register_handler(&handlers);
        Self { queue, handlers, heartbeat, installed: Arc::default() }
    }

    /// Registers handlers that belong to every set of services over this database, forks included: `install`
    /// runs now on this set, and on each fork with the fork's queue (so they read the fork's clock). The
    /// outbox's delivery job is one: a set of workers that cannot send deliveries would leave them queued.
    pub fn install(&self, install: impl Fn(&Queue, &Handlers) + Send + Sync + 'static) {
        install(&self.queue, &self.handlers);
        self.installed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(Arc::new(install));
    }

    /// A separate set of services over the same database reading time from `clock`, with only the built-in
    /// and installed handlers (tests drive it by hand next to the application's own).
    pub fn fork_with_clock(&self, clock: Clock) -> Self {
        let fork = Self::with_clock(self.queue.store().clone(), clock);
        let installed = self.installed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        for install in &installed {
            install(&fork.queue, &fork.handlers);
        }
        *fork.installed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = installed;
        fork
    }

    /// A worker running this set's handlers.
    pub fn worker(&self) -> Worker {
        Worker::new(self.queue.clone(), self.handlers.clone())
    }

    /// Starts `n` workers (see [`spawn_workers`]) and the heartbeat's ticker (every second); all stop when
    /// `shutdown` turns true. Await the handles to let work in progress finish.
    pub fn spawn_workers(
        &self,
        n: usize,
        shutdown: &tokio::sync::watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut handles = spawn_workers(&self.worker(), n, shutdown);
        handles.push(self.heartbeat.spawn_ticker(Duration::from_secs(1), shutdown.clone()));
        handles
    }

    /// Runs every due job now, repeatedly, until none is due; returns how many ran.
    pub async fn run_until_idle(&self) -> StoreResult<usize> {
        self.worker().run_until_idle().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_stops_at_the_maximum() {
        let settings = QueueSettings {
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(60),
            ..QueueSettings::default()
        };
        for _ in 0..50 {
            let first = backoff(settings, 1).num_milliseconds();
            assert!((1000..=2000).contains(&first), "{first}");
            let third = backoff(settings, 3).num_milliseconds();
            assert!((4000..=8000).contains(&third), "{third}");
            let late = backoff(settings, 40).num_milliseconds();
            assert!((30_000..=60_000).contains(&late), "{late}");
        }
        assert!(backoff(settings, 0).num_milliseconds() <= 2000);
        assert!(backoff(settings, i64::MAX).num_milliseconds() <= 60_000);
    }
}
