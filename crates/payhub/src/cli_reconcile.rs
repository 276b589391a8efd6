//! CLI commands for reconciliation: `payhub reconcile run [--account NAME]` imports each ledger's new rows
//! and matches them now, through the same reconciler as the daily beat and the admin API.

use clap::Subcommand;

use crate::app::Application;
use crate::config::Config;
use crate::store::payouts::RunTrigger;

/// `payhub reconcile …`
#[derive(Debug, Subcommand)]
pub enum ReconcileCommand {
    /// Import the settlement ledgers' new rows and match them now (every account with reconciliation on, or one).
    Run {
        /// Only this account (by name).
        #[arg(long)]
        account: Option<String>,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `payhub reconcile …`; returns whether every run succeeded.
pub async fn reconcile(command: ReconcileCommand, config: Config) -> anyhow::Result<bool> {
    let state = Application::build_state(config, crate::jobs::system_clock()).await?;
    let ReconcileCommand::Run { account, json } = command;
    let actor = format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into()));
    let runs = match account.as_deref() {
        Some(name) => vec![state.reconciler.run_named(Some(name), RunTrigger::Command, Some(&actor)).await?],
        None => state.reconciler.run_all(RunTrigger::Command, Some(&actor)).await?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
    } else if runs.is_empty() {
        println!("no account has reconciliation enabled");
    }
    let mut ok = true;
    for run in &runs {
        ok &= run.outcome != "failed";
        if !json {
            let c = &run.counts;
            println!(
                "{}\t{}\t{} pages, {} new rows ({} already imported), {} booked, {} queued, {} payouts, {} unbalanced dates{}",
                run.account,
                run.outcome,
                c.pages,
                c.rows_new,
                c.rows_already,
                c.rows_booked,
                c.rows_queued,
                run.payouts,
                c.dates_unbalanced,
                run.error.as_deref().map(|e| format!("\t{e}")).unwrap_or_default()
            );
        }
    }
    state.store.close().await;
    Ok(ok)
}
