//! Retention: what payhub keeps and for how long. Operational rows (answered idempotency keys, finished
//! webhook deliveries, raw webhook Messages that became no report, ended sessions and links, failed sign-ins)
//! go after days; raw Message bodies, which hold payers' personal data, can be redacted earlier than the
//! records they document; the trail behind money stays at least five years, and past that only rows no
//! payment or intent points at go. A daily beat runs it; `payhub heartbeat run retention.prune` runs it now.

use std::time::Duration;

use chrono::{DateTime, Days, Utc};
use futures::future::BoxFuture;

use super::Payments;
use crate::error::ServiceResult;
use crate::jobs::heartbeat::Heartbeat;
use crate::store::{idempotency, outbox, trail, users, StoreResult};

/// The beat that prunes (daily).
pub const PRUNE: &str = "retention.prune";

/// How long what is kept (see the module doc and the configuration's `retention_*` settings).
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Days the trail is kept at least.
    pub trail_days: u32,
    /// Days after which raw bodies are redacted; 0: never.
    pub redact_after_days: u32,
    /// Days operational rows are kept.
    pub operational_days: u32,
}

/// How many rows one pruning removed or redacted.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pruned {
    /// Operational rows deleted.
    pub operational: u64,
    /// Message bodies redacted.
    pub redacted: u64,
    /// Inbound Reports deleted past the trail's days.
    pub trail: u64,
}

fn days_before(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    now.checked_sub_days(Days::new(u64::from(days))).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl Payments {
    /// Prunes and redacts as `retention` says, on payhub's clock. Each step is a write of its own, with the
    /// writer slot on SQLite like every other write, and the trail's steps go [`trail::PRUNE_BATCH`] rows at a
    /// time: a large backlog never holds the database's one writer for long.
    pub async fn prune(&self, retention: &Retention) -> ServiceResult<Pruned> {
        let now = self.now();
        let operational = days_before(now, retention.operational_days);
        let trail_before = days_before(now, retention.trail_days);
        let mut pruned = Pruned::default();
        let mut tx = self.store.begin_write().await?;
        pruned.operational += idempotency::prune(&mut tx, operational).await?;
        pruned.operational += outbox::prune_deliveries(&mut tx, operational).await?;
        pruned.operational += users::prune(&mut tx, now, operational).await?;
        tx.commit().await?;
        pruned.operational += self.in_batches(|conn| Box::pin(trail::prune_unreported(conn, operational))).await?;
        if retention.redact_after_days > 0 {
            let before = days_before(now, retention.redact_after_days);
            pruned.redacted = self.in_batches(|conn| Box::pin(trail::redact_bodies(conn, before))).await?;
        }
        pruned.trail = self.in_batches(|conn| Box::pin(trail::prune_trail(conn, trail_before))).await?;
        self.in_batches(|conn| Box::pin(trail::prune_unreported(conn, trail_before))).await?;
        Ok(pruned)
    }

    /// Runs `step` (which touches at most [`trail::PRUNE_BATCH`] rows) in transactions of its own until a run
    /// touches fewer; how many rows in all.
    async fn in_batches<F>(&self, step: F) -> ServiceResult<u64>
    where
        F: for<'c> Fn(&'c mut sqlx::AnyConnection) -> BoxFuture<'c, StoreResult<u64>>,
    {
        let mut total = 0;
        loop {
            let mut tx = self.store.begin_write().await?;
            let done = step(&mut tx).await?;
            tx.commit().await?;
            total += done;
            if done < trail::PRUNE_BATCH as u64 {
                return Ok(total);
            }
        }
    }

    /// Registers the daily [`PRUNE`] beat.
    pub fn register_retention(&self, heartbeat: &Heartbeat, retention: Retention) {
        let payments = self.clone();
        heartbeat.register(PRUNE, Duration::from_secs(86_400), move |_| {
            let payments = payments.clone();
            async move {
                let pruned = payments.prune(&retention).await?;
                tracing::info!(?pruned, "retention: pruned and redacted");
                Ok(())
            }
        });
    }
}
