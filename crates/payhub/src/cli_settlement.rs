//! CLI commands of reconciliation's settlement files: `payhub reconcile import-file --account NAME FILE` reads
//! a settlement report downloaded from the Vipps portal and imports it whole (or refuses it whole, naming the
//! line and column), with a progress bar while rows are written; the operator is recorded as `cli:<user>`.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::app::Application;
use crate::auth::Actor;
use crate::config::Config;
use crate::reconcile::file_import::{self, ImportError};

/// Runs `payhub reconcile import-file`; false when the file was refused (the reason is printed).
pub async fn import_file(account: String, file: std::path::PathBuf, config: Config) -> anyhow::Result<bool> {
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let state = Application::build_state(config, crate::jobs::system_clock()).await?;
    let mut conn = state.store.pool().acquire().await?;
    let Some(record) = crate::store::accounts::get_by_name(&mut conn, &account).await? else {
        eprintln!("no account named {account}");
        return Ok(false);
    };
    drop(conn);
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} rows")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(format!("importing {}", file.display()));
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let actor = Actor::cli();
    let outcome =
        file_import::import_file(&state.store, &record, &bytes, &actor.label, chrono::Utc::now(), &progress).await;
    bar.finish_and_clear();
    state.store.close().await;
    match outcome {
        Ok(imported) => {
            println!(
                "{}: {} ({} rows, {} to the Guided Matching queue, {} for the rules)",
                file.display(),
                imported.summary(),
                imported.rows,
                imported.queued,
                imported.for_rules
            );
            for day in &imported.unbalanced {
                println!(
                    "warning: {} {} does not add up (from line {})",
                    day.msn.as_deref().unwrap_or("?"),
                    day.ledger_date,
                    day.line
                );
            }
            Ok(true)
        }
        Err(ImportError::Store(e)) => Err(e.into()),
        Err(refused) => {
            eprintln!("{}: not imported: {refused}", file.display());
            Ok(false)
        }
    }
}
