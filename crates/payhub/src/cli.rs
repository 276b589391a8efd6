//! The command line: `serve`, `migrate`, and admin tasks for accounts, users and API keys. Secrets are read
//! from a prompt (or from standard input when it is not a terminal), never from arguments, so they stay out of
//! shell history and process listings.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::app::{shutdown_signal, Application};
use crate::auth::{self, Actor};
use crate::config::{Config, LogFormat};
use crate::domain::account::AccountInput;
use crate::domain::role::Role;
use crate::error::ServiceError;
use crate::secrets::{MasterKey, Secret};
use crate::store::{users as user_store, Store};
use crate::vipps::accounts::{AccountView, Accounts};

/// payhub: a self-hosted payment hub for Vipps MobilePay.
#[derive(Debug, Parser)]
#[command(name = "payhub", version, about, propagate_version = true, after_help = crate::cli_ops::AFTER_HELP)]
pub struct Cli {
    /// TOML configuration file (also PAYHUB_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory: the SQLite database and the master key (also PAYHUB_DATA_DIR; default ./payhub-data).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Write logs as JSON lines (same as PAYHUB_LOG_FORMAT=json).
    #[arg(long, global = true)]
    pub log_json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (applies migrations first).
    Serve {
        /// Start an in-process Vipps simulator, point a "Sandbox" merchant account at it and print an
        /// integrator API key, so the whole payment flow runs locally without a Vipps account.
        #[arg(long)]
        sandbox: bool,
    },
    /// Apply database migrations and exit (creates the database and master key when there are none).
    Migrate,
    /// Check the configuration, the database, and each merchant account's credentials at Vipps (exit 1 if any
    /// is refused or unreachable).
    Check,
    /// Copy the SQLite database to FILE while payhub may be serving (on PostgreSQL: use pg_dump). The master
    /// key is not in the copy: keep it apart.
    Backup {
        /// The copy to write; must not exist yet.
        file: PathBuf,
    },
    /// Manage Vipps merchant accounts.
    #[command(subcommand)]
    Accounts(Box<AccountsCommand>),
    /// Manage users who sign in to the web UI.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Change recurring payments: amount, collection day, pause, resume, cancel.
    #[command(subcommand)]
    Recurring(crate::cli_recurring::RecurringCommand),
    /// Vipps agreements (mandates): cancel one.
    #[command(subcommand)]
    Agreements(crate::cli_recurring::AgreementsCommand),
    /// The heartbeat's beats: run them now, list them.
    #[command(subcommand)]
    Heartbeat(crate::cli_recurring::HeartbeatCommand),
    /// Reconciliation: import the Vipps settlement ledgers and match them.
    #[command(subcommand)]
    Reconcile(crate::cli_reconcile::ReconcileCommand),
}

/// `payhub accounts …`
#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Add an account; the client secret and subscription key are prompted for (or read from stdin, one per line).
    Add(AccountArgs),
    /// List accounts.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one account (by id or name) as JSON; secrets show only whether they are set.
    Show {
        /// Account id or name.
        account: String,
    },
    /// Change an account; only the options given change.
    Update {
        /// Account id or name.
        account: String,
        /// The fields to change.
        #[command(flatten)]
        fields: AccountArgs,
        /// Ask for a new client secret.
        #[arg(long)]
        new_client_secret: bool,
        /// Ask for a new subscription key.
        #[arg(long)]
        new_subscription_key: bool,
    },
    /// Remove an account.
    Remove {
        /// Account id or name.
        account: String,
    },
}

/// Account settings as command-line options.
#[derive(Debug, Args)]
pub struct AccountArgs {
    /// Unique account name (the Payment API's Target).
    #[arg(long)]
    pub name: Option<String>,
    /// Merchant Serial Number (4–10 digits).
    #[arg(long)]
    pub msn: Option<String>,
    /// Client Key (client_id).
    #[arg(long)]
    pub client_key: Option<String>,
    /// A Vipps test sales unit.
    #[arg(long)]
    pub test: Option<bool>,
    /// Default agreement product name.
    #[arg(long)]
    pub product_name: Option<String>,
    /// Merchant Agreement Url.
    #[arg(long)]
    pub agreement_url: Option<String>,
    /// RetryDays (0–14, default 3).
    #[arg(long)]
    pub retry_days: Option<i64>,
    /// Make this the default account.
    #[arg(long)]
    pub default: Option<bool>,
    /// Enable Reconciliation Incoming Payments.
    #[arg(long)]
    pub reconciliation: Option<bool>,
    /// Stop the Vipps agreement when a recurring payment is cancelled in payhub.
    #[arg(long)]
    pub cancel_agreement_on_cancel: Option<bool>,
    /// What a manual match books when the amount differs: book_on_next, book_all_on_first, leave_on_report.
    #[arg(long, value_parser = parse_remainder_handling)]
    pub remainder_handling: Option<crate::domain::account::RemainderHandling>,
    /// Initial Ledger Date (YYYY-MM-DD).
    #[arg(long)]
    pub initial_ledger_date: Option<String>,
    /// Vipps API base URL override (e.g. a simulator).
    #[arg(long)]
    pub api_base_url: Option<String>,
    /// Default values of Vipps parameters, as JSON: `{"mobileNumber": {"payer_field": "MobilePhone"}}`.
    #[arg(long, value_parser = parse_parameter_defaults)]
    pub parameter_defaults: Option<ParameterDefaults>,
}

/// Parameter defaults as the command line takes them.
pub type ParameterDefaults = std::collections::BTreeMap<String, crate::domain::account::ParameterDefault>;

fn parse_remainder_handling(text: &str) -> Result<crate::domain::account::RemainderHandling, String> {
    crate::domain::account::RemainderHandling::parse(text)
        .ok_or_else(|| "use book_on_next, book_all_on_first or leave_on_report".to_owned())
}

fn parse_parameter_defaults(text: &str) -> Result<ParameterDefaults, String> {
    serde_json::from_str(text).map_err(|e| format!("not parameter defaults JSON: {e}"))
}

impl AccountArgs {
    fn to_input(&self) -> AccountInput {
        AccountInput {
            name: self.name.clone(),
            merchant_serial_number: self.msn.clone(),
            client_key: self.client_key.clone(),
            client_secret: None,
            subscription_key: None,
            is_test: self.test,
            product_name: self.product_name.clone(),
            merchant_agreement_url: self.agreement_url.clone(),
            retry_days: self.retry_days,
            is_default: self.default,
            reconciliation_enabled: self.reconciliation,
            initial_ledger_date: self.initial_ledger_date.clone(),
            api_base_url: self.api_base_url.clone(),
            parameter_defaults: self.parameter_defaults.clone(),
            cancel_agreement_on_cancel: self.cancel_agreement_on_cancel,
            remainder_handling: self.remainder_handling,
        }
    }
}

/// `payhub users …`
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create an admin user; the password is prompted for (or read from stdin).
    CreateAdmin {
        /// Sign-in email.
        #[arg(long)]
        email: String,
    },
    /// Create a user with any role; the password is prompted for (or read from stdin).
    Create {
        /// Sign-in email.
        #[arg(long)]
        email: String,
        /// admin, finance or integrator.
        #[arg(long)]
        role: Role,
    },
    /// List users.
    List,
}

/// `payhub keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key and print it (shown once).
    Create {
        /// A label for the key.
        #[arg(long)]
        name: String,
        /// admin, finance or integrator.
        #[arg(long)]
        role: Role,
    },
    /// List API keys (never the keys themselves).
    List,
    /// Revoke an API key by id.
    Revoke {
        /// The key's id (`key_…`).
        id: String,
    },
}

/// Runs the command line; the process exit code says how it went (2 for bad configuration or input).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut env: std::collections::HashMap<String, String> =
        std::env::vars().filter(|(k, _)| k.starts_with("PAYHUB_")).collect();
    let origin = if let Some(dir) = &cli.data_dir {
        env.insert("PAYHUB_DATA_DIR".into(), dir.display().to_string());
        "--data-dir".to_owned()
    } else if env.contains_key("PAYHUB_DATABASE_URL") {
        "PAYHUB_DATABASE_URL".to_owned()
    } else if env.contains_key("PAYHUB_DATA_DIR") {
        "PAYHUB_DATA_DIR".to_owned()
    } else if cli.config.is_some() || env.contains_key("PAYHUB_CONFIG") {
        "the configuration file, else the default ./payhub-data".to_owned()
    } else {
        let here = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_else(|_| "?".into());
        format!("the default ./payhub-data, in the current directory {here}")
    };
    let mut config = match Config::from_sources(cli.config.as_deref(), &env) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    if cli.log_json {
        config.log_format = LogFormat::Json;
    }
    crate::ops::init_logging(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config, &origin)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            match error.downcast_ref::<ServiceError>() {
                Some(ServiceError::Invalid(errors) | ServiceError::Conflict(errors)) => {
                    for e in errors {
                        eprintln!("error: {}: {}", e.field, e.message);
                    }
                }
                _ => eprintln!("error: {error:#}"),
            }
            ExitCode::from(2)
        }
    }
}

async fn open(config: &Config) -> anyhow::Result<(Store, Accounts)> {
    let store = Store::connect(&config.database_url).await.context("opening the database (PAYHUB_DATABASE_URL)")?;
    store.migrate().await?;
    let key = match &config.master_key {
        Some(key) => key.clone(),
        None => MasterKey::load_or_create(&config.data_dir)?,
    };
    Ok((store.clone(), Accounts::new(store, key)))
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(&config.database_url).await.context("opening the database (PAYHUB_DATABASE_URL)")?;
    store.migrate().await?;
    Ok(store)
}

async fn run(command: Command, config: Config, origin: &str) -> anyhow::Result<()> {
    use crate::cli_ops::Missing;
    let missing = match &command {
        Command::Serve { .. } | Command::Migrate => Missing::Create,
        Command::Users(_) | Command::Keys(_) | Command::Backup { .. } => Missing::Refuse,
        Command::Accounts(_)
        | Command::Check
        | Command::Recurring(_)
        | Command::Agreements(_)
        | Command::Heartbeat(_)
        | Command::Reconcile(_) => Missing::RefuseWithKey,
    };
    crate::cli_ops::prepare(&config, missing, origin)?;
    match command {
        Command::Serve { sandbox } => serve(config, sandbox).await,
        Command::Check => {
            if !crate::cli_ops::check(&config).await? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Backup { file } => crate::cli_ops::backup(&config, file).await,
        Command::Migrate => {
            let store = Store::connect(&config.database_url).await?;
            let applied = store.migrate().await?;
            store.close().await;
            // The key comes with the database it seals secrets for, so the commands that follow can use it.
            if config.master_key.is_none() {
                MasterKey::load_or_create(&config.data_dir)?;
            }
            println!(
                "migrations applied: {}",
                if applied.is_empty() { "none (up to date)".into() } else { format!("{applied:?}") }
            );
            Ok(())
        }
        Command::Accounts(command) => accounts(*command, &config).await,
        Command::Users(command) => users(command, &config).await,
        Command::Keys(command) => keys(command, &config).await,
        Command::Recurring(command) => crate::cli_recurring::recurring(command, config).await,
        Command::Agreements(command) => {
            if !crate::cli_recurring::agreements(command, config).await? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Heartbeat(command) => {
            if !crate::cli_recurring::heartbeat(command, config).await? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Reconcile(command) => {
            if !crate::cli_reconcile::reconcile(command, config).await? {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

async fn serve(mut config: Config, sandbox: bool) -> anyhow::Result<()> {
    let simulator = if sandbox {
        // Payments move in seconds in a demo: poll often, run the recurring beats often, and follow the
        // simulator's virtual clock (so `POST /_sim/clock/advance` moves a month along).
        config.poll_seconds = config.poll_seconds.min(5);
        config.recurring_beat_seconds = config.recurring_beat_seconds.min(5);
        // A sandbox's webhook receivers are local (a `WebhookURL` at 127.0.0.1 is the usual demo).
        config.allow_private_webhook_targets = true;
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        Some(vipps_sim::Simulator::start(vipps_sim::SimConfig::default(), listen).await?)
    } else {
        None
    };
    let app = match &simulator {
        Some(simulator) => Application::build_with_clock(config, std::sync::Arc::new(simulator.clock_fn())).await?,
        None => match config.clock_url.clone() {
            Some(url) => Application::build_with_clock(config, crate::app::follow_clock(&url).await?).await?,
            None => Application::build(config).await?,
        },
    };
    let state = app.state().clone();
    if let Some(simulator) = &simulator {
        provision_sandbox(&state, simulator).await?;
    }
    let public = state.config.public_url.clone();
    tracing::info!(address = %app.address(), public_url = %public, backend = ?state.store.backend(), "payhub listening");
    let mut conn = state.store.pool().acquire().await?;
    if user_store::count_users(&mut conn).await? == 0 {
        let token = auth::create_setup_link(&state.store).await?;
        println!("No users yet. Create the first admin at {}first-run?token={token} (valid 24 hours, once)", public);
        println!("or run: payhub users create-admin --email you@example.org");
    }
    drop(conn);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let background = app.spawn_background(state.config.workers, &stopped);
    app.run_until(shutdown_signal()).await?;
    let _ = stop.send(true);
    for handle in background {
        let _ = handle.await;
    }
    state.store.close().await;
    if let Some(simulator) = simulator {
        simulator.shutdown().await;
    }
    Ok(())
}

/// Points the "Sandbox" account at the in-process simulator (created or updated), and prints an integrator API
/// key and the simulator's URL, also as `PAYHUB_SANDBOX_*=` lines for scripts.
async fn provision_sandbox(state: &crate::state::AppState, simulator: &vipps_sim::Simulator) -> anyhow::Result<()> {
    let merchant = simulator.merchants().first().cloned().context("the simulator has no merchant")?;
    let input = AccountInput {
        name: Some("Sandbox".into()),
        merchant_serial_number: Some(merchant.msn.clone()),
        client_key: Some(merchant.client_id.clone()),
        client_secret: Some(Secret::new(merchant.client_secret.clone())),
        subscription_key: Some(Secret::new(merchant.subscription_key.clone())),
        is_test: Some(true),
        product_name: Some("Sandbox donation".into()),
        merchant_agreement_url: Some(format!("{}sandbox/agreements", state.config.public_url)),
        api_base_url: Some(simulator.base_url()),
        ..AccountInput::default()
    };
    let actor = Actor { label: "sandbox".into(), source: "cli".into(), at: state.jobs.queue.now() };
    match state.accounts.resolve(Some("Sandbox")).await? {
        Some(existing) => state.accounts.update(&existing.id, &input, &actor).await?,
        None => state.accounts.create(&input, &actor).await?,
    };
    let (_, key) = auth::create_api_key(&state.store, "sandbox", Role::Integrator, &actor).await?;
    println!(
        "Sandbox: a Vipps simulator runs at {} and the merchant account \"Sandbox\" points at it.",
        simulator.base_url()
    );
    println!("Sandbox: integrator API key (Authorization: Bearer …) below; the README walks through a payment.");
    println!("PAYHUB_SANDBOX_API_KEY={key}");
    println!("PAYHUB_SANDBOX_VIPPS_URL={}", simulator.base_url());
    Ok(())
}

/// Reads one secret: a hidden prompt on a terminal, else the next line of standard input.
fn read_secret(prompt: &str, lines: &mut impl Iterator<Item = std::io::Result<String>>) -> anyhow::Result<Secret> {
    if std::io::stdin().is_terminal() {
        Ok(Secret::new(rpassword::prompt_password(prompt)?))
    } else {
        let line =
            lines.next().transpose()?.with_context(|| format!("expected a line on standard input for: {prompt}"))?;
        Ok(Secret::new(line.trim_end_matches(['\r', '\n']).to_owned()))
    }
}

async fn find_account(accounts: &Accounts, key: &str) -> anyhow::Result<AccountView> {
    if key.starts_with("acc_") {
        if let Ok(view) = accounts.get(key).await {
            return Ok(view);
        }
    }
    accounts.resolve(Some(key)).await?.with_context(|| format!("no account with id or name `{key}`"))
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

async fn accounts(command: AccountsCommand, config: &Config) -> anyhow::Result<()> {
    let (_store, accounts) = open(config).await?;
    let actor = Actor::cli();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    match command {
        AccountsCommand::Add(args) => {
            let mut input = args.to_input();
            input.client_secret = Some(read_secret("Client Secret: ", &mut lines)?);
            input.subscription_key = Some(read_secret("Subscription Key: ", &mut lines)?);
            let view = accounts.create(&input, &actor).await?;
            println!("added account {} ({}){}", view.name, view.id, if view.is_default { ", the default" } else { "" });
        }
        AccountsCommand::List { json } => {
            let list = accounts.list().await?;
            if json {
                print_json(&list)?;
            } else {
                println!("{:<38} {:<24} {:<11} {:<5} {:<7} DEFAULT", "ID", "NAME", "MSN", "TEST", "RETRY");
                for a in list {
                    println!(
                        "{:<38} {:<24} {:<11} {:<5} {:<7} {}",
                        a.id,
                        a.name,
                        a.merchant_serial_number,
                        if a.is_test { "yes" } else { "no" },
                        a.retry_days,
                        if a.is_default { "yes" } else { "" }
                    );
                }
            }
        }
        AccountsCommand::Show { account } => print_json(&find_account(&accounts, &account).await?)?,
        AccountsCommand::Update { account, fields, new_client_secret, new_subscription_key } => {
            let current = find_account(&accounts, &account).await?;
            let mut input = fields.to_input();
            if new_client_secret {
                input.client_secret = Some(read_secret("New Client Secret: ", &mut lines)?);
            }
            if new_subscription_key {
                input.subscription_key = Some(read_secret("New Subscription Key: ", &mut lines)?);
            }
            let view = accounts.update(&current.id, &input, &actor).await?;
            println!("updated account {} ({})", view.name, view.id);
        }
        AccountsCommand::Remove { account } => {
            let current = find_account(&accounts, &account).await?;
            accounts.delete(&current.id, &actor).await?;
            println!("removed account {} ({})", current.name, current.id);
        }
    }
    Ok(())
}

async fn users(command: UsersCommand, config: &Config) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let (email, role) = match command {
        UsersCommand::List => {
            let mut conn = store.pool().acquire().await?;
            for user in user_store::list_users(&mut conn).await? {
                println!(
                    "{}  {:<32} {:<10} {}",
                    user.id,
                    user.email,
                    user.role,
                    if user.disabled_at.is_some() { "disabled" } else { "active" }
                );
            }
            return Ok(());
        }
        UsersCommand::CreateAdmin { email } => (email, Role::Admin),
        UsersCommand::Create { email, role } => (email, role),
    };
    let password = read_secret("Password: ", &mut lines)?;
    let user = auth::create_user(&store, &email, password.expose(), role, &Actor::cli()).await?;
    println!("created {} user {} ({})", user.role, user.email, user.id);
    Ok(())
}

async fn keys(command: KeysCommand, config: &Config) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let actor = Actor::cli();
    match command {
        KeysCommand::Create { name, role } => {
            let (record, secret) = auth::create_api_key(&store, &name, role, &actor).await?;
            eprintln!("created {} key {} ({}); it is shown only now:", record.role, record.name, record.id);
            println!("{secret}");
        }
        KeysCommand::List => {
            let mut conn = store.pool().acquire().await?;
            for key in user_store::list_keys(&mut conn).await? {
                println!(
                    "{}  {:<24} {:<10} {}…  {}",
                    key.id,
                    key.name,
                    key.role,
                    key.prefix,
                    if key.revoked_at.is_some() { "revoked" } else { "active" }
                );
            }
        }
        KeysCommand::Revoke { id } => {
            auth::revoke_api_key(&store, &id, &actor).await?;
            println!("revoked {id}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }
}
