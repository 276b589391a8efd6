//! Operator commands beside `serve`: `payhub check` (the configuration, the database, and each merchant
//! account's credentials at Vipps) and `payhub backup FILE` (SQLite); and the rule every command starts with:
//! only `serve` and `migrate` create a data directory, a database or a master key, and they say so in one line
//! naming the path. Any other command run where there is no database refuses, naming the path it looked at,
//! so an operator in the wrong directory is never shown the empty lists of a database made a moment ago.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::config::Config;
use crate::secrets::MasterKey;
use crate::store::{self, Backend, Store};
use crate::vipps::accounts::Accounts;
use crate::vipps::client::{CredentialCheck, VippsClients};

/// The end of `payhub --help`: where payhub keeps its data and which environment variables it reads.
pub const AFTER_HELP: &str = "\
Data directory: ./payhub-data (relative to the current directory) unless --data-dir DIR or PAYHUB_DATA_DIR
says otherwise. It holds the SQLite database (payhub.db) and the master key (master.key) that seals the Vipps
secrets; back them up together. Only `serve` and `migrate` create it; other commands refuse a missing database.

Environment (each also a key of the --config TOML file, e.g. PAYHUB_LISTEN is `listen`):
  PAYHUB_CONFIG                         the TOML configuration file
  PAYHUB_DATA_DIR                       the data directory (default ./payhub-data)
  PAYHUB_DATABASE_URL                   sqlite://FILE?mode=rwc or postgres://USER:PASSWORD@HOST/DB
  PAYHUB_MASTER_KEY                     32 bytes as hex or base64 (default: the key file in the data directory)
  PAYHUB_LISTEN                         address to bind (default 127.0.0.1:8080)
  PAYHUB_PUBLIC_URL                     where payers, browsers and Vipps reach payhub
  PAYHUB_LOG_FORMAT                     human or json
  PAYHUB_MAX_BODY_BYTES                 largest request body
  PAYHUB_POLL_SECONDS                   how often open payments are read again from Vipps
  PAYHUB_WORKERS                        background job workers in `serve`
  PAYHUB_VIPPS_TIMEOUT_MS               time limit of one Vipps call attempt
  PAYHUB_REQUEST_TIMEOUT_MS             time limit of one request to payhub
  PAYHUB_RECURRING_HORIZON              upcoming installments kept generated
  PAYHUB_CHARGE_LEAD_DAYS               days before the due date a charge is created
  PAYHUB_RECURRING_BEAT_SECONDS         how often the recurring beats run
  PAYHUB_RECONCILE_BEAT_HOURS           hours between runs of the ledger import (reconcile.import)
  PAYHUB_RETENTION_TRAIL_DAYS           days the trail is kept
  PAYHUB_REDACT_BODIES_AFTER_DAYS       days after which raw message bodies are redacted
  PAYHUB_RETENTION_OPERATIONAL_DAYS     days operational rows are kept
  PAYHUB_ALLOW_PRIVATE_WEBHOOK_TARGETS  whether outbound webhooks may reach private hosts
  PAYHUB_GIVE_SUBMISSIONS_PER_MINUTE    Giving Page submissions one address may make per minute
  PAYHUB_CLOCK_URL                      a vipps-sim whose virtual clock serve follows (fault runs, demos)
RUST_LOG filters the logs (default info). The README's Configuration section says more.";

/// What a command may do about a missing data directory, database or master key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// `serve` and `migrate`: create them, saying so.
    Create,
    /// Every other command that opens sealed secrets: refuse a missing database or master key.
    RefuseWithKey,
    /// Commands that never open a sealed secret (users, keys, backup): refuse a missing database.
    Refuse,
}

/// Applies the data-directory rule before a command opens anything. `origin` says where the data directory
/// (or database URL) came from, for the message (`--data-dir`, `PAYHUB_DATA_DIR`, the default …).
pub fn prepare(config: &Config, missing: Missing, origin: &str) -> anyhow::Result<()> {
    let database = store::sqlite_file(&config.database_url).map(|p| absolute(&p));
    let key_file = config.master_key.is_none().then(|| absolute(&config.data_dir.join("master.key")));
    let database_missing = database.as_ref().filter(|p| !p.exists());
    let key_missing = key_file.as_ref().filter(|p| !p.exists() && missing != Missing::Refuse);
    if missing != Missing::Create {
        if let Some(path) = database_missing {
            anyhow::bail!(
                "no payhub database at {} (looked there because of {origin}). Point payhub at your data directory \
                 with --data-dir DIR or PAYHUB_DATA_DIR (or at your database with PAYHUB_DATABASE_URL); to start a \
                 new one there, run `payhub serve` or `payhub migrate`",
                path.display()
            );
        }
        if let Some(path) = key_missing {
            anyhow::bail!(
                "no master key at {} and PAYHUB_MASTER_KEY is not set: the stored Vipps secrets open only with \
                 the key they were sealed with. Put the key file back (from your backup) or set PAYHUB_MASTER_KEY; \
                 only `payhub serve` and `payhub migrate` make a new key",
                path.display()
            );
        }
        return Ok(());
    }
    let mut creating = Vec::new();
    if let Some(path) = database_missing {
        if !config.database_url.contains("mode=rwc") {
            anyhow::bail!(
                "no SQLite database at {} and PAYHUB_DATABASE_URL does not ask for a new one (add ?mode=rwc to \
                 create it)",
                path.display()
            );
        }
        creating.push(format!("a new database at {}", path.display()));
    }
    // On PostgreSQL the database may yet turn out to be missing; the key file's creation is then logged by
    // whoever makes it, rather than announced here before the connection is known to work.
    if let Some(path) = key_missing.filter(|_| database.is_some()) {
        creating.push(format!("a new master key at {} (keep a copy apart from the backups)", path.display()));
    }
    if !creating.is_empty() {
        eprintln!("payhub: creating {}", creating.join(" and "));
    }
    Ok(())
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// `payhub check`: prints one line each for the configuration, the database and every merchant account
/// (`credentials ok`, `refused` or `unreachable`, with Vipps' answer); returns whether all were fine.
pub async fn check(config: &Config) -> anyhow::Result<bool> {
    println!(
        "configuration: ok (listen {}, public URL {}, data directory {})",
        config.listen,
        config.public_url,
        absolute(&config.data_dir).display()
    );
    let store = match Store::connect(&config.database_url).await {
        Ok(store) => store,
        Err(error) => {
            println!("database: unreachable: {error}");
            return Ok(false);
        }
    };
    let reached = store.ping().await;
    let backend = match store.backend() {
        Backend::Sqlite => "SQLite",
        Backend::Postgres => "PostgreSQL",
    };
    if let Err(error) = reached {
        println!("database: unreachable ({backend}): {error}");
        store.close().await;
        return Ok(false);
    }
    let key = match &config.master_key {
        Some(key) => key.clone(),
        None => MasterKey::load_or_create(&config.data_dir)?,
    };
    let accounts = Accounts::new(store.clone(), key);
    let list = match accounts.list().await {
        Ok(list) => list,
        Err(error) => {
            println!(
                "database: reached ({backend}), but payhub's tables cannot be read (run `payhub migrate`): {error}"
            );
            store.close().await;
            return Ok(false);
        }
    };
    println!("database: ok ({backend})");
    if list.is_empty() {
        println!("accounts: none yet (add one under Setup → Vipps, or with `payhub accounts add`)");
    }
    let clients = VippsClients::new(Duration::from_millis(config.vipps_timeout_ms));
    let mut ok = true;
    for view in list {
        let outcome = clients.check_credentials(&accounts, &view).await;
        ok &= outcome == CredentialCheck::Ok;
        println!(
            "account {} ({}, MSN {}, {}): {}{}",
            view.name,
            view.id,
            view.merchant_serial_number,
            view.vipps_base_url,
            outcome.label(),
            outcome.detail().map(|d| format!(": {d}")).unwrap_or_default()
        );
    }
    store.close().await;
    Ok(ok)
}

/// `payhub backup FILE`: a consistent copy of the SQLite database while payhub may be serving, with a progress
/// bar; on PostgreSQL it says to use `pg_dump`. The master key is not in the copy (see the README).
pub async fn backup(config: &Config, file: PathBuf) -> anyhow::Result<()> {
    if Backend::from_url(&config.database_url)? == Backend::Postgres {
        anyhow::bail!(
            "payhub backup copies an SQLite database; this one is PostgreSQL: use pg_dump, e.g. \
             `pg_dump --format=custom --file {} \"$PAYHUB_DATABASE_URL\"` (restore with pg_restore), and keep the \
             master key apart from it",
            file.display()
        );
    }
    let source = store::sqlite_file(&config.database_url).context("an in-memory database cannot be backed up")?;
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("backup {bar:40} {pos}/{len} pages ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (from, to, shown) = (source.clone(), file.clone(), bar.clone());
    let pages = tokio::task::spawn_blocking(move || {
        store::backup::backup_sqlite(&from, &to, |done, total| {
            shown.set_length(total);
            shown.set_position(done);
        })
    })
    .await
    .context("the backup task")??;
    bar.finish_and_clear();
    let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    let key = match &config.master_key {
        Some(_) => "it is PAYHUB_MASTER_KEY".to_owned(),
        None => format!("it is the file {}", absolute(&config.data_dir.join("master.key")).display()),
    };
    println!(
        "backed up {} to {} ({pages} pages of the one snapshot, {bytes} bytes, integrity ok). The master key is not in the backup ({key}): keep a \
         copy of it apart from the backups",
        absolute(&source).display(),
        absolute(&file).display()
    );
    Ok(())
}
