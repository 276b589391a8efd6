//! The heartbeat: named beats (a period and an async function) run as jobs.
//!
//! A scheduled run is keyed by (beat, scope, period start), unique in `beat_runs`, so each period runs once
//! however many instances tick; the scope is an account id or `*` for the whole installation. Every run's
//! start, duration and outcome is recorded and listable; [`Heartbeat::run_now`] runs a beat at once (CLI,
//! admin). A failed run is recorded and not retried: the next period runs it again. Runs of one beat never
//! overlap: a run that starts while the previous one is still going is recorded `skipped`. Time comes from the
//! queue's clock, so in sandbox mode periods follow the simulator's virtual clock.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Handlers, Job, NewJob, Queue};
use crate::domain::ids::new_id;
use crate::error::{ServiceError, ServiceResult};
use crate::store::{parse_timestamp, timestamp, StoreResult};

/// The job kind of one beat run.
pub const RUN: &str = "heartbeat.run";

/// The built-in beat that deletes old finished jobs and beat runs (hourly).
pub const PRUNE: &str = "jobs.prune";

/// How long finished jobs without a dedupe key, and finished beat runs, are kept.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The scope of an installation-wide run.
pub const ALL: &str = "*";

/// What a beat's function is told about its run.
#[derive(Debug, Clone)]
pub struct BeatContext {
    /// The run's id (`brn_…`).
    pub run_id: String,
    /// The beat's name.
    pub beat: String,
    /// An account id, or `*`.
    pub scope: String,
    /// The start of the period this run covers (the request time for a manual run).
    pub period_start: DateTime<Utc>,
    /// Whether it was started by hand.
    pub manual: bool,
}

/// (beat, scope)
type SeenKey = (String, String);

type BeatFn = Arc<dyn Fn(BeatContext) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

#[derive(Clone)]
struct Beat {
    period: Duration,
    run: BeatFn,
}

/// One recorded run of a beat.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BeatRun {
    /// `brn_…`
    pub id: String,
    /// The beat's name.
    pub beat: String,
    /// An account id, or `*`.
    pub scope: String,
    /// The period this run covers.
    pub period_start: DateTime<Utc>,
    /// `schedule` or `manual`.
    pub trigger: String,
    /// `scheduled`, `running`, `succeeded`, `failed`, or `skipped` (the previous run was still going).
    pub status: String,
    /// When the function started.
    pub started_at: Option<DateTime<Utc>>,
    /// How long it took, in milliseconds.
    pub duration_ms: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// The beats and their schedule. Cheap to clone.
#[derive(Clone)]
pub struct Heartbeat {
    queue: Queue,
    beats: Arc<RwLock<HashMap<String, Beat>>>,
    /// The last period this instance saw scheduled, per (beat, scope): ticks within it skip the database.
    seen: Arc<std::sync::Mutex<HashMap<SeenKey, DateTime<Utc>>>>,
}

/// The start of the period of length `period` that contains `at` (periods are aligned to the Unix epoch).
pub fn period_start(at: DateTime<Utc>, period: Duration) -> DateTime<Utc> {
    let millis = i64::try_from(period.as_millis()).unwrap_or(i64::MAX).max(1);
    let now = at.timestamp_millis();
    DateTime::from_timestamp_millis(now - now.rem_euclid(millis)).unwrap_or(at)
}

impl Heartbeat {
    /// A heartbeat scheduling on `queue`; register its job handler with [`Heartbeat::register_handler`].
    pub fn new(queue: Queue) -> Self {
        Self { queue, beats: Arc::default(), seen: Arc::default() }
    }

    /// Registers the handler that runs beat jobs, and the built-in [`PRUNE`] beat.
    pub fn register_handler(&self, handlers: &Handlers) {
        let me = self.clone();
        handlers.register(RUN, move |job: Job| {
            let me = me.clone();
            async move { me.run_job(job).await }
        });
        let me = self.clone();
        self.register(PRUNE, Duration::from_secs(3600), move |_| {
            let me = me.clone();
            async move {
                me.prune().await?;
                Ok(())
            }
        });
    }

    /// Ends beat runs whose worker died, and deletes jobs that ended (done or failed) more than [`RETENTION`]
    /// ago, except those holding a dedupe key (which must stay taken), and beat runs older than that; returns
    /// how many rows changed.
    pub async fn prune(&self) -> StoreResult<u64> {
        // A run still `running` after its job's lease ran out lost its worker (the process died): its job will
        // not run again (one attempt), so the run is over; the next period runs the beat anew.
        let lease = chrono::TimeDelta::from_std(self.queue.settings().lease).unwrap_or(chrono::TimeDelta::MAX);
        let lost_before = timestamp(self.queue.now().checked_sub_signed(lease).unwrap_or(DateTime::<Utc>::MIN_UTC));
        let lost = sqlx::query(
            "UPDATE beat_runs SET status = 'failed', error = 'its worker stopped before it finished' \
             WHERE status = 'running' AND started_at < $1",
        )
        .bind(&lost_before)
        .execute(self.queue.store().pool())
        .await?;
        let retention = chrono::TimeDelta::from_std(RETENTION).unwrap_or(chrono::TimeDelta::MAX);
        let before = timestamp(self.queue.now().checked_sub_signed(retention).unwrap_or(DateTime::<Utc>::MIN_UTC));
        let jobs = sqlx::query(
            "DELETE FROM jobs WHERE status IN ('done', 'failed') AND dedupe_key IS NULL AND finished_at < $1",
        )
        .bind(&before)
        .execute(self.queue.store().pool())
        .await?;
        let runs = sqlx::query("DELETE FROM beat_runs WHERE created_at < $1 AND status IN ('succeeded', 'failed')")
            .bind(&before)
            .execute(self.queue.store().pool())
            .await?;
        Ok(lost.rows_affected() + jobs.rows_affected() + runs.rows_affected())
    }

    /// Adds (or replaces) the beat `name`, run once per `period` (at least a second).
    pub fn register<F, Fut>(&self, name: impl Into<String>, period: Duration, run: F)
    where
        F: Fn(BeatContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let run: BeatFn = Arc::new(move |context| Box::pin(run(context)));
        let beat = Beat { period: period.max(Duration::from_secs(1)), run };
        let mut beats = self.beats.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        beats.insert(name.into(), beat);
    }

    /// The registered beats' names and periods (sorted by name).
    pub fn beats(&self) -> Vec<(String, Duration)> {
        let beats = self.beats.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut list: Vec<_> = beats.iter().map(|(name, beat)| (name.clone(), beat.period)).collect();
        list.sort();
        list
    }

    fn beat(&self, name: &str) -> Option<Beat> {
        let beats = self.beats.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        beats.get(name).cloned()
    }

    /// Schedules the current period's run of every beat (scope `*`) that has none yet; returns how many
    /// runs this call scheduled (0 when another instance was first).
    pub async fn tick(&self) -> StoreResult<usize> {
        let mut scheduled = 0;
        for (name, _) in self.beats() {
            if self.schedule(&name, ALL).await?.is_some() {
                scheduled += 1;
            }
        }
        Ok(scheduled)
    }

    /// Schedules the current period's run of `beat` for `scope` unless it exists; the new run's id, or
    /// `None` when the period already has its run (or the beat is unknown).
    pub async fn schedule(&self, beat: &str, scope: &str) -> StoreResult<Option<String>> {
        let Some(registered) = self.beat(beat) else { return Ok(None) };
        let start = period_start(self.queue.now(), registered.period);
        let key = (beat.to_owned(), scope.to_owned());
        {
            let seen = self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if seen.get(&key) == Some(&start) {
                return Ok(None);
            }
        }
        let run = self.insert_run(beat, scope, start, "schedule").await?;
        let mut seen = self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.insert(key, start);
        Ok(run)
    }

    /// Runs `beat` now, outside its schedule (for the CLI and the admin API); the run's id.
    pub async fn run_now(&self, beat: &str) -> ServiceResult<String> {
        if self.beat(beat).is_none() {
            return Err(ServiceError::NotFound("beat"));
        }
        self.insert_run(beat, ALL, self.queue.now(), "manual")
            .await?
            .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("a manual run of `{beat}` was already requested")))
    }

    async fn insert_run(
        &self,
        beat: &str,
        scope: &str,
        start: DateTime<Utc>,
        trigger: &str,
    ) -> StoreResult<Option<String>> {
        let id = new_id("brn");
        let mut tx = self.queue.store().begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO beat_runs (id, beat, scope, period_start, trigger, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, 'scheduled', $6) ON CONFLICT (beat, scope, period_start) DO NOTHING",
        )
        .bind(&id)
        .bind(beat)
        .bind(scope)
        .bind(timestamp(start))
        .bind(trigger)
        .bind(timestamp(self.queue.now()))
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            tx.commit().await?;
            return Ok(None);
        }
        let job = NewJob::new(RUN, serde_json::json!({ "run_id": id })).max_attempts(1);
        self.queue.enqueue(&mut tx, job).await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    async fn run_job(&self, job: Job) -> anyhow::Result<()> {
        let run_id = job
            .payload
            .get("run_id")
            .and_then(|v| v.as_str())
            .ok_or_else(|| anyhow::anyhow!("beat job without run_id"))?
            .to_owned();
        let Some(run) = self.run(&run_id).await? else { return Ok(()) };
        if !self.claim(&run).await? {
            tracing::info!(beat = %run.beat, run = %run_id, "skipped: the beat's previous run is still going");
            return Ok(());
        }
        let outcome = match self.beat(&run.beat) {
            None => Err(anyhow::anyhow!("no beat named `{}` is registered", run.beat)),
            Some(beat) => {
                let context = BeatContext {
                    run_id: run_id.clone(),
                    beat: run.beat.clone(),
                    scope: run.scope.clone(),
                    period_start: run.period_start,
                    manual: run.trigger == "manual",
                };
                let wall = std::time::Instant::now();
                let span = tracing::info_span!("beat", beat = %run.beat, run_id = %run_id, scope = %run.scope);
                let run_beat = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe((beat.run)(context)));
                let result = match tracing::Instrument::instrument(run_beat, span).await {
                    Ok(result) => result,
                    Err(_) => Err(anyhow::anyhow!("the beat panicked")),
                };
                Ok((result, wall.elapsed()))
            }
        };
        let (status, error, elapsed) = match outcome {
            Ok((Ok(()), elapsed)) => ("succeeded", None, elapsed),
            Ok((Err(e), elapsed)) => ("failed", Some(format!("{e:#}")), elapsed),
            Err(e) => ("failed", Some(format!("{e:#}")), Duration::ZERO),
        };
        if let Some(error) = &error {
            tracing::warn!(beat = %run.beat, run = %run_id, error = %error, "beat failed");
        }
        // A beat's name comes from the registered beats, a fixed set: a bounded label.
        let business = crate::ops::business();
        business.count("payhub_beat_runs_total", &[("beat", &run.beat), ("status", status)]);
        business.observe("payhub_beat_duration_seconds", &[("beat", &run.beat)], elapsed.as_secs_f64());
        sqlx::query("UPDATE beat_runs SET status = $1, duration_ms = $2, error = $3 WHERE id = $4")
            .bind(status)
            .bind(i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
            .bind(error.as_deref())
            .bind(&run_id)
            .execute(self.queue.store().pool())
            .await?;
        Ok(())
    }

    /// Marks `run` running unless another run of its beat and scope is (the partial unique index
    /// `beat_runs_one_running` decides, on both backends and across instances); a run that finds one running is
    /// recorded `skipped`, so a run longer than its period never has a second run beside it. A run left
    /// `running` by a worker that died (older than the job lease, as in [`Heartbeat::prune`]) is ended first.
    async fn claim(&self, run: &BeatRun) -> StoreResult<bool> {
        let pool = self.queue.store().pool();
        let lease = chrono::TimeDelta::from_std(self.queue.settings().lease).unwrap_or(chrono::TimeDelta::MAX);
        let lost_before = timestamp(self.queue.now().checked_sub_signed(lease).unwrap_or(DateTime::<Utc>::MIN_UTC));
        sqlx::query(
            "UPDATE beat_runs SET status = 'failed', error = 'its worker stopped before it finished' \
             WHERE beat = $1 AND scope = $2 AND status = 'running' AND started_at < $3",
        )
        .bind(&run.beat)
        .bind(&run.scope)
        .bind(&lost_before)
        .execute(pool)
        .await?;
        let started = timestamp(self.queue.now());
        let claimed = sqlx::query("UPDATE beat_runs SET status = 'running', started_at = $1 WHERE id = $2")
            .bind(&started)
            .bind(&run.id)
            .execute(pool)
            .await;
        match claimed {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                sqlx::query(
                    "UPDATE beat_runs SET status = 'skipped', started_at = $1, duration_ms = 0, \
                     error = 'the previous run of this beat was still going' WHERE id = $2",
                )
                .bind(&started)
                .bind(&run.id)
                .execute(pool)
                .await?;
                Ok(false)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// One run.
    pub async fn run(&self, id: &str) -> StoreResult<Option<BeatRun>> {
        let row = sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM beat_runs WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.queue.store().pool())
            .await?;
        row.as_ref().map(beat_run).transpose()
    }

    /// The most recent runs (newest first), of one beat or of all.
    pub async fn runs(&self, beat: Option<&str>, limit: i64) -> StoreResult<Vec<BeatRun>> {
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM beat_runs WHERE (CAST($1 AS TEXT) IS NULL OR beat = $1) \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(beat)
        .bind(limit.clamp(1, 1000))
        .fetch_all(self.queue.store().pool())
        .await?;
        rows.iter().map(beat_run).collect()
    }

    /// Ticks every `interval` until `shutdown` turns true (or its sender is dropped). Errors are logged.
    pub fn spawn_ticker(&self, interval: Duration, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                if *shutdown.borrow() {
                    return;
                }
                if let Err(error) = me.tick().await {
                    tracing::error!(error = %error, "heartbeat tick failed");
                }
                tokio::select! {
                    changed = shutdown.changed() => if changed.is_err() { return },
                    () = tokio::time::sleep(interval) => {},
                }
            }
        })
    }
}

const RUN_COLUMNS: &str = "id, beat, scope, period_start, trigger, status, started_at, duration_ms, error";

fn beat_run(row: &AnyRow) -> StoreResult<BeatRun> {
    let started: Option<String> = row.try_get("started_at")?;
    Ok(BeatRun {
        id: row.try_get("id")?,
        beat: row.try_get("beat")?,
        scope: row.try_get("scope")?,
        period_start: parse_timestamp(&row.try_get::<String, _>("period_start")?)?,
        trigger: row.try_get("trigger")?,
        status: row.try_get("status")?,
        started_at: started.as_deref().map(parse_timestamp).transpose()?,
        duration_ms: row.try_get("duration_ms")?,
        error: row.try_get("error")?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn periods_are_aligned_to_the_epoch() {
        let at = DateTime::parse_from_rfc3339("2026-11-23T20:17:42.5Z").unwrap().with_timezone(&Utc);
        let minute = period_start(at, Duration::from_secs(60));
        assert_eq!(timestamp(minute), "2026-11-23T20:17:00.000000Z");
        let hour = period_start(at, Duration::from_secs(3600));
        assert_eq!(timestamp(hour), "2026-11-23T20:00:00.000000Z");
        assert_eq!(period_start(minute, Duration::from_secs(60)), minute);
    }
}
