//! The wiring every handler receives: the store, the payment flows, the Vipps accounts, the job queue, the
//! configuration and the metrics, built once at start-up.
//!
//! It sits below the edge (`api`, `web`) and above the flows, so handlers can reach every flow while the
//! flows themselves take only the parts they need ([`Payments`], the [`Store`], the clock), never the whole
//! state.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::jobs::{Clock, Jobs};
use crate::ops::Metrics;
use crate::pages::GivingPages;
use crate::processing::outbox::Outbox;
use crate::processing::recurring::RecurringSettings;
use crate::processing::retention::Retention;
use crate::processing::Payments;
use crate::secrets::MasterKey;
use crate::store::Store;
use crate::vipps::accounts::Accounts;
use crate::vipps::client::VippsClients;
use crate::vipps::webhooks::Registrar;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// The merchant account registry.
    pub accounts: Accounts,
    /// The configuration the server runs with.
    pub config: Arc<Config>,
    /// Request metrics.
    pub metrics: Arc<Metrics>,
    /// The payment flows.
    pub payments: Payments,
    /// The job queue, its handlers and the heartbeat.
    pub jobs: Jobs,
    /// Outbound webhooks: endpoints, the delivery log, and the job that sends deliveries.
    pub outbox: Outbox,
    /// The settlement ledger import and matching.
    pub reconciler: crate::reconcile::Reconciler,
    /// Giving Pages: their settings, the gifts they take, their rendered-page cache.
    pub pages: GivingPages,
    /// Vipps' webhook deliveries: verified one by one, written together.
    pub vipps_intake: crate::vipps::intake::Intake,
}

impl AppState {
    /// Connects, migrates, loads the master key, and registers the job handlers and the beats: everything
    /// `payhub serve` needs except the listener, and everything a CLI command that runs payhub's work needs.
    pub async fn build(config: Config, clock: Clock) -> anyhow::Result<AppState> {
        let store = Store::connect(&config.database_url).await?;
        store.migrate().await?;
        let key = match &config.master_key {
            Some(key) => key.clone(),
            None => MasterKey::load_or_create(&config.data_dir)?,
        };
        let jobs = Jobs::with_clock(store.clone(), clock.clone());
        let outbox = Outbox::new(jobs.queue.clone(), key.clone()).with_targets(config.webhook_targets());
        outbox.install(&jobs);
        let accounts = Accounts::new(store.clone(), key);
        let reconciler = crate::reconcile::Reconciler::new(
            store.clone(),
            accounts.clone(),
            VippsClients::new(Duration::from_millis(config.vipps_timeout_ms)),
            clock.clone(),
        );
        let payments = Payments::new(
            store.clone(),
            accounts.clone(),
            VippsClients::new(Duration::from_millis(config.vipps_timeout_ms)),
            config.public_url.clone(),
        )
        .with_clock(clock)
        .with_recurring(RecurringSettings {
            horizon: config.recurring_horizon,
            lead_days: config.charge_lead_days,
            ..Default::default()
        });
        let pages = GivingPages::new(store.clone(), payments.clone(), config.give_submissions_per_minute);
        let vipps_intake = crate::vipps::intake::Intake::new(store.clone(), accounts.clone());
        let state = AppState {
            pages,
            vipps_intake,
            accounts,
            store,
            config: Arc::new(config),
            metrics: Arc::new(Metrics::default()),
            payments,
            jobs,
            outbox,
            reconciler,
        };
        state.registrar().register_job(&state.jobs.handlers);
        state.payments.register_jobs(&state.jobs.handlers);
        state.payments.register_beats(
            &state.jobs.heartbeat,
            state.config.poll_seconds,
            state.config.recurring_beat_seconds,
        );
        state.registrar().register_beat(&state.jobs.heartbeat);
        state.reconciler.register_beat(
            &state.jobs.heartbeat,
            Duration::from_secs(u64::from(state.config.reconcile_beat_hours) * 3600),
        );
        state.payments.register_retention(
            &state.jobs.heartbeat,
            Retention {
                trail_days: state.config.retention_trail_days,
                redact_after_days: state.config.redact_bodies_after_days,
                operational_days: state.config.retention_operational_days,
            },
        );
        Ok(state)
    }

    /// Who registers each account's webhook at Vipps.
    pub fn registrar(&self) -> Registrar {
        Registrar::new(
            self.store.clone(),
            self.accounts.clone(),
            self.payments.clients.clone(),
            self.config.public_url.clone(),
        )
    }
}
