//! Reconciliation: the daily import of each account's Vipps settlement ledger and the automatic matching of
//! its rows against payhub's records (what no rule books waits in Guided Matching's queue).
//!
//! A run, per account with reconciliation enabled and an initial ledger date: discover the ledgers of the
//! API sales unit, import funds then fees ([`import`]), check every fully imported date that holds unmatched
//! rows (a date that does not balance is flagged and its rows held, never booked), then run the rules
//! ([`matching`]). Runs are recorded (`reconcile_runs`); the beat [`BEAT`] runs it daily, once per period
//! across instances (the heartbeat's guarantee), and `payhub reconcile run` and the admin API run it now.

pub mod file_import;
pub mod import;
pub mod matching;
pub mod queue;
pub mod settlement_file;

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::ledger::Topic;
use crate::error::{ServiceError, ServiceResult};
use crate::jobs::heartbeat::Heartbeat;
use crate::jobs::Clock;
use crate::store::ledger;
use crate::store::payouts::{self, RunCounts, RunTrigger};
use crate::store::{Store, StoreResult};
use crate::vipps::accounts::{AccountView, Accounts};
use crate::vipps::client::VippsClients;

/// The daily import beat.
pub const BEAT: &str = "reconcile.import";

/// The import and matching of settlement ledgers. Cheap to clone.
#[derive(Clone)]
pub struct Reconciler {
    store: Store,
    accounts: Accounts,
    clients: VippsClients,
    clock: Clock,
}

/// How one account's run ended.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RunSummary {
    /// The run (`rr_…`).
    pub run_id: String,
    /// The account's name.
    pub account: String,
    /// `succeeded`, `no_new_data`, `failed`.
    pub outcome: String,
    /// Counts.
    pub counts: RunCounts,
    /// Payouts recorded.
    pub payouts: u64,
    /// Why it failed.
    pub error: Option<String>,
    /// Time spent waiting for Vipps.
    #[serde(skip)]
    pub fetch: Duration,
    /// Time spent writing pages.
    #[serde(skip)]
    pub write: Duration,
    /// Time spent checking and matching.
    #[serde(skip)]
    pub matching: Duration,
}

/// Where a run's time went, phase by phase (the benchmark prints them; Vipps' pages and the database are
/// tuned apart).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Phases {
    /// Waiting for Vipps: the pages on the wire.
    pub fetch: Duration,
    /// Decoding the pages into rows (and each row's Message body).
    pub parse: Duration,
    /// Writing the pages: rows, Messages, Inbound Reports, positions.
    pub write: Duration,
    /// Checking the dates and matching their rows.
    pub matching: Duration,
}

impl Reconciler {
    /// A reconciler over these parts; `clock` gives the time records are stamped with.
    pub fn new(store: Store, accounts: Accounts, clients: VippsClients, clock: Clock) -> Self {
        Self { store, accounts, clients, clock }
    }

    /// Registers the beat [`BEAT`] (every `period`, daily by default): every account with reconciliation on.
    pub fn register_beat(&self, heartbeat: &Heartbeat, period: Duration) {
        let me = self.clone();
        heartbeat.register(BEAT, period, move |_| {
            let me = me.clone();
            async move {
                let runs = me.run_all(RunTrigger::Beat, None).await?;
                if let Some(failed) = runs.iter().find(|r| r.outcome == "failed") {
                    anyhow::bail!("{}: {}", failed.account, failed.error.as_deref().unwrap_or("failed"));
                }
                Ok(())
            }
        });
    }

    /// Runs every account with reconciliation enabled and an initial ledger date, one after the other.
    pub async fn run_all(&self, trigger: RunTrigger, actor: Option<&str>) -> ServiceResult<Vec<RunSummary>> {
        let mut out = Vec::new();
        for account in self.accounts.list().await? {
            if account.reconciliation_enabled && account.initial_ledger_date.is_some() {
                out.push(self.run_account(&account, trigger, actor).await?);
            }
        }
        Ok(out)
    }

    /// Runs the account named `name` (or the default account); refused when its reconciliation is off.
    pub async fn run_named(
        &self,
        name: Option<&str>,
        trigger: RunTrigger,
        actor: Option<&str>,
    ) -> ServiceResult<RunSummary> {
        let account = self.accounts.resolve(name).await?.ok_or(ServiceError::NotFound("account"))?;
        self.run_account(&account, trigger, actor).await
    }

    /// Imports and matches one account's ledgers now; the run is recorded whatever its outcome. A failure is
    /// a summary with outcome `failed` (what was written before it stays: the next run continues from there).
    pub async fn run_account(
        &self,
        account: &AccountView,
        trigger: RunTrigger,
        actor: Option<&str>,
    ) -> ServiceResult<RunSummary> {
        Ok(self.run_account_timed(account, trigger, actor).await?.0)
    }

    /// [`Reconciler::run_account`], with where its time went.
    pub async fn run_account_timed(
        &self,
        account: &AccountView,
        trigger: RunTrigger,
        actor: Option<&str>,
    ) -> ServiceResult<(RunSummary, Phases)> {
        let Some(initial) = account.initial_ledger_date.filter(|_| account.reconciliation_enabled) else {
            return Err(ServiceError::Invalid(vec![crate::domain::FieldError::invalid(
                "reconciliation_enabled",
                format!("reconciliation is not enabled for account {}", account.name),
            )]));
        };
        let run_id = {
            let mut conn = self.store.pool().acquire().await.map_err(crate::store::StoreError::from)?;
            payouts::start_run(&mut conn, &account.id, trigger, actor, self.now()).await?
        };
        let mut summary = RunSummary {
            run_id: run_id.clone(),
            account: account.name.clone(),
            outcome: "running".into(),
            counts: RunCounts::default(),
            payouts: 0,
            error: None,
            fetch: Duration::ZERO,
            write: Duration::ZERO,
            matching: Duration::ZERO,
        };
        let mut phases = Phases::default();
        let result = self.import_and_match(account, initial, &mut summary, &mut phases).await;
        let (outcome, error) = match result {
            Ok(()) if summary.counts.rows_new == 0 && summary.counts.rows_booked == 0 => ("no_new_data", None),
            Ok(()) => ("succeeded", None),
            Err(e) => ("failed", Some(e)),
        };
        summary.outcome = outcome.into();
        summary.error = error;
        let mut conn = self.store.pool().acquire().await.map_err(crate::store::StoreError::from)?;
        payouts::finish_run(&mut conn, &run_id, &summary.counts, outcome, summary.error.as_deref(), self.now()).await?;
        if let Some(e) = &summary.error {
            tracing::warn!(account = %account.name, run = %run_id, error = %e, "reconciliation run failed");
        }
        Ok((summary, phases))
    }

    async fn import_and_match(
        &self,
        account: &AccountView,
        initial: chrono::NaiveDate,
        summary: &mut RunSummary,
        phases: &mut Phases,
    ) -> Result<(), String> {
        let client = self.clients.for_account(&self.accounts, account).await.map_err(|e| e.to_string())?;
        let ledgers = import::discover(&self.store, &client, &account.id, &account.merchant_serial_number, self.now())
            .await
            .map_err(|e| e.to_string())?;
        for ledger in &ledgers {
            for topic in Topic::ALL {
                let done = import::import_topic(&self.store, &client, ledger, topic, initial, &self.clock)
                    .await
                    .map_err(|e| e.to_string())?;
                summary.counts.pages += done.pages;
                summary.counts.rows_new += done.rows_new;
                summary.counts.rows_already += done.rows_already;
                summary.fetch += done.fetch + done.parse;
                summary.write += done.write;
                phases.fetch += done.fetch;
                phases.parse += done.parse;
                phases.write += done.write;
            }
        }
        let started = std::time::Instant::now();
        let settled = self.settle_new(&account.id).await.map_err(|e| e.to_string())?;
        summary.counts.dates_unbalanced += settled.0;
        summary.counts.rows_booked += settled.1.booked;
        summary.counts.rows_queued += settled.1.queued;
        summary.payouts += settled.1.payouts;
        summary.matching += started.elapsed();
        phases.matching += started.elapsed();
        Ok(())
    }

    /// Checks every fully imported date of the account's ledgers that holds unmatched rows, then matches the
    /// rows of the dates that balance. Returns the dates flagged and what matching did. A settlement-file
    /// import calls this after storing its rows.
    pub async fn settle_new(&self, account_id: &str) -> StoreResult<(u64, matching::Matched)> {
        settle_new(&self.store, account_id, self.now()).await
    }

    fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }
}

/// [`Reconciler::settle_new`] on a store.
pub async fn settle_new(store: &Store, account_id: &str, now: DateTime<Utc>) -> StoreResult<(u64, matching::Matched)> {
    let mut flagged = 0;
    let ledgers = {
        let mut conn = store.pool().acquire().await?;
        ledger::ledgers_of(&mut conn, account_id).await?
    };
    for l in &ledgers {
        for topic in Topic::ALL {
            let mut tx = store.begin_write().await?;
            let position = ledger::lock_position(&mut tx, store.backend(), &l.id, topic, now).await?;
            // Only whole dates are checked: a date still being read would balance on its first pages alone.
            let through = match position.date_done {
                Some(d) => d,
                None if l.recipient_handle.starts_with("api:") => {
                    tx.rollback().await?;
                    continue;
                }
                None => chrono::NaiveDate::MAX,
            };
            if let Some((lo, hi)) = ledger::unchecked_range(&mut tx, &l.id, topic, through).await? {
                let checks = ledger::check_days(&mut tx, &l.id, topic, lo, hi, now).await?;
                flagged += checks.iter().filter(|c| c.problem.is_some()).count() as u64;
            }
            tx.commit().await?;
        }
    }
    let matched = matching::match_new(store, account_id, now).await?;
    Ok((flagged, matched))
}
