//! CLI commands for recurring payments, mandates and the heartbeat: `payhub recurring …`,
//! `payhub agreements cancel …`, `payhub heartbeat …`. Each acts through the same services as the API and
//! records the operator (`cli:<user>`) in the audit log.

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Args, Subcommand};

use crate::app::Application;
use crate::auth::Actor;
use crate::config::Config;
use crate::domain::money::Money;
use crate::processing::recurring::ChangeOutcome;
use crate::state::AppState;

/// `payhub recurring …`
#[derive(Debug, Subcommand)]
pub enum RecurringCommand {
    /// Show a recurring payment with its mandate and installments (JSON).
    Show {
        /// `rp_…`
        id: String,
    },
    /// Change the amount (NOK, e.g. 150 or 150.50); the Vipps agreement's price changes first.
    ChangeAmount {
        /// `rp_…`
        id: String,
        /// New amount in NOK.
        amount: String,
    },
    /// Change the Collection Day (1–31) of installments not yet charged and of those to come.
    ChangeDay {
        /// `rp_…`
        id: String,
        /// Day of the month.
        day: u32,
    },
    /// Pause collection until a date (YYYY-MM-DD); installments due before it are cancelled.
    Pause {
        /// `rp_…`
        id: String,
        /// Collection resumes on this day.
        #[arg(long)]
        until: String,
    },
    /// Resume a paused recurring payment.
    Resume {
        /// `rp_…`
        id: String,
    },
    /// Cancel a recurring payment and its open installments.
    Cancel {
        /// `rp_…`
        id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
}

/// `payhub agreements …`
#[derive(Debug, Subcommand)]
pub enum AgreementsCommand {
    /// Cancel Vipps Agreement: stop it at Vipps and cancel the mandate, its recurring payments and open
    /// installments. Exits with status 1 when Vipps refuses (its message is printed).
    Cancel(CancelArgs),
}

/// Which mandate to cancel: one of the two.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct CancelArgs {
    /// payhub's mandate id (`mdt_…`).
    #[arg(long)]
    pub mandate_id: Option<String>,
    /// The Vipps agreement id (`agr_…`).
    #[arg(long)]
    pub agreement_id: Option<String>,
}

/// `payhub heartbeat …`
#[derive(Debug, Subcommand)]
pub enum HeartbeatCommand {
    /// Run beats now (all, or the ones named) and wait for them; prints each run's outcome.
    Run {
        /// Beat names (see `payhub heartbeat list`); none means every beat.
        beats: Vec<String>,
    },
    /// List the beats with their period and last run.
    List,
}

async fn state(config: Config) -> anyhow::Result<AppState> {
    Application::build_state(config, crate::jobs::system_clock()).await
}

/// Runs `payhub recurring …`.
pub async fn recurring(command: RecurringCommand, config: Config) -> anyhow::Result<()> {
    let state = state(config).await?;
    let actor = Actor::cli();
    let payments = &state.payments;
    let id = match &command {
        RecurringCommand::Show { id }
        | RecurringCommand::ChangeAmount { id, .. }
        | RecurringCommand::ChangeDay { id, .. }
        | RecurringCommand::Pause { id, .. }
        | RecurringCommand::Resume { id }
        | RecurringCommand::Cancel { id, .. } => id.clone(),
    };
    let outcome = match command {
        RecurringCommand::Show { .. } => ChangeOutcome::Done,
        RecurringCommand::ChangeAmount { amount, .. } => {
            let amount = Money::parse_kroner(&amount).map_err(|e| anyhow::anyhow!("amount: {e}"))?;
            payments.change_amount(&id, amount, &actor).await?
        }
        RecurringCommand::ChangeDay { day, .. } => {
            payments.change_collection_day(&id, day, &actor).await?;
            ChangeOutcome::Done
        }
        RecurringCommand::Pause { until, .. } => {
            let until = NaiveDate::parse_from_str(&until, "%Y-%m-%d").context("--until must be YYYY-MM-DD")?;
            payments.pause(&id, until, &actor).await?
        }
        RecurringCommand::Resume { .. } => {
            payments.resume(&id, &actor).await?;
            ChangeOutcome::Done
        }
        RecurringCommand::Cancel { reason, .. } => {
            let (outcome, stopped) = payments.cancel_recurring(&id, reason.as_deref(), &actor).await?;
            if let Some(stopped) = stopped {
                eprintln!(
                    "Cancel Vipps Agreement: {} ({})",
                    if stopped.is_success { "done" } else { "refused" },
                    stopped.message
                );
            }
            outcome
        }
    };
    if let ChangeOutcome::Pending { change_id, message } = &outcome {
        eprintln!("Pending at Vipps ({change_id}): {message}");
    }
    let answer = crate::api::v2::recurring::get_recurring(axum::extract::State(state.clone()), axum::extract::Path(id))
        .await
        .map_err(|e| {
            anyhow::anyhow!("{}", e.error_items().first().map(|i| i.error_message.clone()).unwrap_or_default())
        })?;
    let body = axum::body::to_bytes(answer.into_body(), 1 << 20).await?;
    println!("{}", String::from_utf8_lossy(&body));
    state.store.close().await;
    Ok(())
}

/// Runs `payhub agreements …`; returns whether the action succeeded.
pub async fn agreements(command: AgreementsCommand, config: Config) -> anyhow::Result<bool> {
    let AgreementsCommand::Cancel(args) = command;
    let state = state(config).await?;
    let (reference, by_mandate) = match (args.mandate_id, args.agreement_id) {
        (Some(id), _) => (id, true),
        (None, Some(id)) => (id, false),
        (None, None) => anyhow::bail!("give --mandate-id or --agreement-id"),
    };
    let mandate = {
        let mut conn = state.store.pool().acquire().await?;
        crate::store::mandates::mandate(&mut conn, &reference).await?
    };
    let known = mandate.is_some_and(|m| {
        if by_mandate {
            m.id == reference
        } else {
            m.agreement_id.as_deref() == Some(reference.as_str())
        }
    });
    if !known {
        let what = if by_mandate { "mandate id" } else { "agreement id" };
        println!(
            "{}",
            serde_json::json!({"IsSuccess": false, "Message": format!("No mandate with {what} {reference}")})
        );
        return Ok(false);
    }
    let outcome = cancel_vipps_agreement(&state, &reference, &Actor::cli()).await?;
    println!("{}", serde_json::json!({"IsSuccess": outcome.is_success, "Message": outcome.message}));
    state.store.close().await;
    Ok(outcome.is_success)
}

/// The Cancel Vipps Agreement action as a library function: stops the agreement of the mandate named by
/// `mandate_ref` (a mandate id `mdt_…` or an agreement id `agr_…`) at Vipps and cancels the mandate, its
/// recurring payments and open installments.
pub async fn cancel_vipps_agreement(
    state: &AppState,
    mandate_ref: &str,
    actor: &Actor,
) -> anyhow::Result<crate::processing::recurring::CancelOutcome> {
    Ok(state.payments.cancel_agreement(mandate_ref, actor).await?)
}

/// Runs `payhub heartbeat …`.
pub async fn heartbeat(command: HeartbeatCommand, config: Config) -> anyhow::Result<bool> {
    let state = state(config).await?;
    let heartbeat = &state.jobs.heartbeat;
    let mut ok = true;
    match command {
        HeartbeatCommand::List => {
            for (name, period) in heartbeat.beats() {
                let last = heartbeat.runs(Some(&name), 1).await?.into_iter().next();
                println!(
                    "{name}\tevery {}s\t{}",
                    period.as_secs(),
                    last.map_or_else(
                        || "never run".to_owned(),
                        |r| format!("last {} {} ({} ms)", r.period_start, r.status, r.duration_ms.unwrap_or(0))
                    )
                );
            }
        }
        HeartbeatCommand::Run { beats } => {
            let names: Vec<String> =
                if beats.is_empty() { heartbeat.beats().into_iter().map(|(name, _)| name).collect() } else { beats };
            // One beat at a time, each with the jobs it queued, so the bar moves as beats finish (a charge run
            // over many agreements takes minutes); indicatif hides the bar when stderr is not a terminal.
            let bar = indicatif::ProgressBar::new(names.len() as u64).with_style(
                indicatif::ProgressStyle::with_template("{spinner} {bar:30} {pos}/{len} beats, now {msg} ({elapsed})")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            let mut runs = Vec::new();
            for name in &names {
                bar.set_message(name.clone());
                runs.push(heartbeat.run_now(name).await.with_context(|| format!("beat {name}"))?);
                state.jobs.run_until_idle().await?;
                bar.inc(1);
            }
            bar.finish_and_clear();
            for id in runs {
                if let Some(run) = heartbeat.run(&id).await? {
                    ok &= run.status == "succeeded";
                    println!(
                        "{}\t{}\t{} ms{}",
                        run.beat,
                        run.status,
                        run.duration_ms.unwrap_or(0),
                        run.error.map(|e| format!("\t{e}")).unwrap_or_default()
                    );
                }
            }
        }
    }
    state.store.close().await;
    Ok(ok)
}
