//! Retention: what payhub keeps and for how long. Operational rows (answered idempotency keys, finished
//! webhook deliveries, raw webhook Messages that became no report, ended sessions and links, failed sign-ins)
//! go after days; raw Message bodies, which hold payers' personal data, can be redacted earlier than the
//! records they document; the trail behind money stays at least five years, and past that only rows no
//! payment or intent points at go. A daily beat runs it; `payhub heartbeat run retention.prune` runs it now.

use std::time::Duration;

use chrono::{DateTime, Days, Utc};

use super::Payments;
use crate::error::ServiceResult;
use crate::jobs::heartbeat::Heartbeat;
use crate::store::{idempotency, outbox, trail, users};

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
    /// Prunes and redacts as `retention` says, on payhub's clock.
    pub async fn prune(&self, retention: &Retention) -> ServiceResult<Pruned> {
        let now = self.now();
        let operational = days_before(now, retention.operational_days);
        let mut pruned = Pruned::default();
        let mut conn = self.store.pool().acquire().await?;
        pruned.operational += idempotency::prune(&mut conn, operational).await?;
        pruned.operational += outbox::prune_deliveries(&mut conn, operational).await?;
        pruned.operational += users::prune(&mut conn, now, operational).await?;
        pruned.operational += trail::prune_unreported(&mut conn, operational).await?;
        if retention.redact_after_days > 0 {
            pruned.redacted = trail::redact_bodies(&mut conn, days_before(now, retention.redact_after_days)).await?;
        }
        pruned.trail = trail::prune_trail(&mut conn, days_before(now, retention.trail_days)).await?;
        Ok(pruned)
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
