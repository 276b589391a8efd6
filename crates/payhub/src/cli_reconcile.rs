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
    /// Import a settlement report (CSV) from the Vipps portal for an account: Vipps-number payments go to the
    /// Guided Matching queue; re-importing a file says "n new, m already imported".
    ImportFile {
        /// The account (by name) the file belongs to.
        #[arg(long)]
        account: String,
        /// The CSV file.
        file: std::path::PathBuf,
    },
}

/// Runs `payhub reconcile …`; returns whether every run succeeded.
pub async fn reconcile(command: ReconcileCommand, config: Config) -> anyhow::Result<bool> {
    let (account, json) = match command {
        ReconcileCommand::Run { account, json } => (account, json),
        ReconcileCommand::ImportFile { account, file } => {
            return crate::cli_settlement::import_file(account, file, config).await
        }
    };
    let state = Application::build_state(config, crate::jobs::system_clock()).await?;
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
