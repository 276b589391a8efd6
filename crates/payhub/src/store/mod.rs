//! Persistence: one API over SQLite and PostgreSQL.
//!
//! The backend is chosen once, from the database URL's scheme. Queries are written in the SQL both backends
//! share (`$1` placeholders, `ON CONFLICT`, `RETURNING`); where a backend needs its own statement, the twin
//! sits next to it. Each table family has its own submodule; nothing outside `store` writes SQL.

pub mod accounts;
pub mod audit;
pub mod backup;
pub mod changes;
pub mod charges;
pub mod checkpoint;
pub mod dashboard;
pub mod giving_pages;
pub mod guided;
pub mod idempotency;
pub mod installments;
pub mod intents;
pub mod ledger;
pub mod listing;
pub mod mandates;
pub mod match_queue;
pub mod outbox;
pub mod payers;
pub mod paylinks;
pub mod payments;
pub mod payouts;
pub mod record_detail;
pub mod recurring_payments;
pub mod refunds;
pub mod renewals;
pub mod settlement;
mod sql;
pub mod timeline;
pub mod together;
pub mod trail;
pub mod users;
pub mod vipps_payments;
pub mod vipps_webhooks;

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

/// The database engine behind a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file (the embedded default), in WAL mode with a busy timeout.
    Sqlite,
    /// A PostgreSQL server (production, several instances).
    Postgres,
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL names no backend payhub supports.
    #[error("unsupported database URL scheme `{0}` (use sqlite: or postgres:)")]
    UnknownScheme(String),
    /// A uniqueness rule of the schema was violated; the name is the constraint or index.
    #[error("conflict with an existing record ({0})")]
    Conflict(String),
    /// The record asked for does not exist.
    #[error("not found")]
    NotFound,
    /// The database the URL names does not exist (a PostgreSQL database not yet created); the message says
    /// which and how to make it.
    #[error("{0}")]
    MissingDatabase(String),
    /// Anything else the driver reported.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Anything else SQLite reported to the group-commit writer's own connection (`together::sqlite_writer`).
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Result of a storage call.
pub type StoreResult<T> = Result<T, StoreError>;

impl Backend {
    /// The statement that starts a write transaction: on SQLite it takes the write lock at once.
    fn begin_write(self) -> &'static str {
        match self {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }

    /// The backend a database URL asks for; an unknown scheme is an error, never a silent default.
    pub fn from_url(url: &str) -> StoreResult<Backend> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            other => Err(StoreError::UnknownScheme(other.to_owned())),
        }
    }
}

/// A pool of connections to payhub's database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    /// SQLite: the one connection write transactions use, so that its page and statement caches stay warm (a
    /// connection's page cache is dropped whenever another connection wrote). PostgreSQL: the pool.
    writer: AnyPool,
    backend: Backend,
    write_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// API key lookups of requests arriving together (see [`users::active_key_coalesced`]).
    key_reads: std::sync::Arc<std::sync::OnceLock<KeyReads>>,
    /// SQLite: the task that checkpoints the write-ahead log off the writer's path ([`checkpoint`]).
    checkpoints: Option<std::sync::Arc<checkpoint::Checkpoints>>,
    /// SQLite: the database file, for connections opened outside sqlx ([`together::sqlite_writer`]); `None` in memory.
    sqlite_file: Option<std::sync::Arc<str>>,
}

type KeyReads = crate::batcher::Batcher<String, Result<Option<users::ApiKeyRecord>, String>>;

/// A write transaction; on SQLite it also holds this process's writer slot until it ends. `'c` is the connection
/// it runs on when that is borrowed (`HeldWriter`); a transaction on a pooled connection is `'static`.
pub struct WriteTx<'c> {
    tx: sqlx::Transaction<'c, sqlx::Any>,
    _guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx<'_> {
    /// Commits.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    /// Rolls back (dropping it does too).
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl std::ops::Deref for WriteTx<'_> {
    type Target = sqlx::AnyConnection;

    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

/// A write connection one task keeps for itself across its transactions (the group-commit writer): it skips the
/// pool's checkout and the ping sqlx sends on every return to the pool, two round trips to the database per
/// transaction. Its transactions queue on the same in-process lock as [`Store::begin_write`]'s.
pub(crate) struct HeldWriter {
    store: Store,
    conn: Option<sqlx::AnyConnection>,
}

impl HeldWriter {
    /// A held writer for `store`; the connection is opened by the first transaction.
    pub(crate) fn new(store: &Store) -> Self {
        HeldWriter { store: store.clone(), conn: None }
    }

    /// Starts a write transaction on the held connection, opening one first if there is none.
    pub(crate) async fn begin(&mut self) -> StoreResult<WriteTx<'_>> {
        let guard = self.store.write_slot().await;
        let conn = match &mut self.conn {
            Some(conn) => conn,
            empty => empty.insert(self.store.writer.acquire().await?.detach()),
        };
        Ok(WriteTx { tx: sqlx::Connection::begin_with(conn, self.store.backend.begin_write()).await?, _guard: guard })
    }

    /// Lets the connection go after a failed transaction: the next one opens a fresh connection, so a broken
    /// connection is never used twice.
    pub(crate) fn discard(&mut self) {
        self.conn = None;
    }
}

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

/// Every migration, in order. A released migration is never edited; add a new one.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "foundation",
        sqlite: include_str!("../../migrations/sqlite/0001_foundation.sql"),
        postgres: include_str!("../../migrations/postgres/0001_foundation.sql"),
    },
    Migration {
        version: 2,
        name: "jobs",
        sqlite: include_str!("../../migrations/sqlite/0002_jobs.sql"),
        postgres: include_str!("../../migrations/postgres/0002_jobs.sql"),
    },
    Migration {
        version: 3,
        name: "payments",
        sqlite: include_str!("../../migrations/sqlite/0003_payments.sql"),
        postgres: include_str!("../../migrations/postgres/0003_payments.sql"),
    },
    Migration {
        version: 4,
        name: "parameter_defaults",
        sqlite: include_str!("../../migrations/sqlite/0004_parameter_defaults.sql"),
        postgres: include_str!("../../migrations/postgres/0004_parameter_defaults.sql"),
    },
    Migration {
        version: 5,
        name: "recurring",
        sqlite: include_str!("../../migrations/sqlite/0005_recurring.sql"),
        postgres: include_str!("../../migrations/postgres/0005_recurring.sql"),
    },
    Migration {
        version: 6,
        name: "login_failures",
        sqlite: include_str!("../../migrations/sqlite/0006_login_failures.sql"),
        postgres: include_str!("../../migrations/postgres/0006_login_failures.sql"),
    },
    Migration {
        version: 7,
        name: "idempotency_lease",
        sqlite: include_str!("../../migrations/sqlite/0007_idempotency_lease.sql"),
        postgres: include_str!("../../migrations/postgres/0007_idempotency_lease.sql"),
    },
    Migration {
        version: 8,
        name: "webhook_attempts",
        sqlite: include_str!("../../migrations/sqlite/0008_webhook_attempts.sql"),
        postgres: include_str!("../../migrations/postgres/0008_webhook_attempts.sql"),
    },
    Migration {
        version: 9,
        name: "refund_api_keys",
        sqlite: include_str!("../../migrations/sqlite/0009_refund_api_keys.sql"),
        postgres: include_str!("../../migrations/postgres/0009_refund_api_keys.sql"),
    },
    Migration {
        version: 10,
        name: "poll_order",
        sqlite: include_str!("../../migrations/sqlite/0010_poll_order.sql"),
        postgres: include_str!("../../migrations/postgres/0010_poll_order.sql"),
    },
    Migration {
        version: 11,
        name: "reconciliation",
        sqlite: include_str!("../../migrations/sqlite/0011_reconciliation.sql"),
        postgres: include_str!("../../migrations/postgres/0011_reconciliation.sql"),
    },
    Migration {
        version: 12,
        name: "guided_matching",
        sqlite: include_str!("../../migrations/sqlite/0012_guided_matching.sql"),
        postgres: include_str!("../../migrations/postgres/0012_guided_matching.sql"),
    },
    Migration {
        version: 13,
        name: "giving_pages",
        sqlite: include_str!("../../migrations/sqlite/0013_giving_pages.sql"),
        postgres: include_str!("../../migrations/postgres/0013_giving_pages.sql"),
    },
    Migration {
        version: 14,
        name: "records",
        sqlite: include_str!("../../migrations/sqlite/0014_records.sql"),
        postgres: include_str!("../../migrations/postgres/0014_records.sql"),
    },
    Migration {
        version: 15,
        name: "prune_indexes",
        sqlite: include_str!("../../migrations/sqlite/0015_prune_indexes.sql"),
        postgres: include_str!("../../migrations/postgres/0015_prune_indexes.sql"),
    },
    Migration {
        version: 16,
        name: "paylinks",
        sqlite: include_str!("../../migrations/sqlite/0016_paylinks.sql"),
        postgres: include_str!("../../migrations/postgres/0016_paylinks.sql"),
    },
    Migration {
        version: 17,
        name: "record_pages",
        sqlite: include_str!("../../migrations/sqlite/0017_record_pages.sql"),
        postgres: include_str!("../../migrations/postgres/0017_record_pages.sql"),
    },
    Migration {
        version: 18,
        name: "reconcile_speed",
        sqlite: include_str!("../../migrations/sqlite/0018_reconcile_speed.sql"),
        postgres: include_str!("../../migrations/postgres/0018_reconcile_speed.sql"),
    },
    Migration {
        version: 19,
        name: "setup_urls",
        sqlite: include_str!("../../migrations/sqlite/0019_setup_urls.sql"),
        postgres: include_str!("../../migrations/postgres/0019_setup_urls.sql"),
    },
    Migration {
        version: 20,
        name: "records_speed",
        sqlite: include_str!("../../migrations/sqlite/0020_records_speed.sql"),
        postgres: include_str!("../../migrations/postgres/0020_records_speed.sql"),
    },
];

impl Store {
    /// Connects to the database at `url`. For SQLite the file's folder is created when the URL asks for
    /// creation (`mode=rwc`); a missing file without that intent is an error.
    pub async fn connect(url: &str) -> StoreResult<Store> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let options = AnyConnectOptions::from_str(url)?;
        let (pool, writer) = match backend {
            Backend::Sqlite => {
                if url.contains("mode=rwc") {
                    if let Some(parent) =
                        sqlite_path(url).and_then(|p| std::path::Path::new(p).parent().map(|d| d.to_owned()))
                    {
                        if !parent.as_os_str().is_empty() {
                            std::fs::create_dir_all(&parent).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
                        }
                    }
                }
                let sqlite_pool = |connections: u32| {
                    AnyPoolOptions::new()
                        .max_connections(connections)
                        .acquire_timeout(Duration::from_secs(10))
                        // A file in this process cannot drop the connection; the ping before each use would cost a
                        // round trip to the connection's thread for nothing.
                        .test_before_acquire(false)
                        .after_connect(|conn, _| {
                            Box::pin(async move {
                                conn.execute(sqlite_pragmas().as_str()).await?;
                                Ok(())
                            })
                        })
                };
                let pool = sqlite_pool(8).connect_with(options.clone()).await?;
                let writer = sqlite_pool(1).connect_with(options).await?;
                (pool, writer)
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await
                    .map_err(|e| missing_postgres_database(url, e))?;
                (pool.clone(), pool)
            }
        };
        let write_lock = std::sync::Arc::default();
        let checkpoints = (backend == Backend::Sqlite)
            .then(|| std::sync::Arc::new(checkpoint::spawn(pool.clone(), std::sync::Arc::clone(&write_lock))));
        let sqlite_file = (backend == Backend::Sqlite && !url.contains(":memory:") && !url.contains("mode=memory"))
            .then(|| sqlite_path(url).map(std::sync::Arc::from))
            .flatten();
        Ok(Store { pool, writer, backend, write_lock, key_reads: std::sync::Arc::default(), checkpoints, sqlite_file })
    }

    /// The backend this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The connection pool, for tests that inspect tables directly. Application code goes through `store`.
    #[doc(hidden)]
    pub fn pool_for_tests(&self) -> &AnyPool {
        &self.pool
    }

    /// Starts a transaction that will write. On SQLite, writers of this process queue on an async lock first
    /// (SQLite has one writer; waiting in its busy handler sleeps in steps of up to 100 ms, queueing here costs
    /// nothing), then take the database's write lock at once (`BEGIN IMMEDIATE`), so another process still
    /// waits on the busy timeout instead of failing when it upgrades a read lock.
    pub(crate) async fn begin_write(&self) -> StoreResult<WriteTx<'static>> {
        let guard = self.write_slot().await;
        Ok(WriteTx { tx: self.writer.begin_with(self.backend.begin_write()).await?, _guard: guard })
    }

    /// This process's writer slot on SQLite (see [`Store::begin_write`]); PostgreSQL needs none.
    async fn write_slot(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match self.backend {
            Backend::Sqlite => Some(self.write_lock.clone().lock_owned().await),
            Backend::Postgres => None,
        }
    }

    /// Applies every migration not yet applied, each in its own transaction. Safe to run from several
    /// processes at once (PostgreSQL takes an advisory lock; SQLite's write lock serialises).
    pub async fn migrate(&self) -> StoreResult<Vec<i64>> {
        let mut conn = self.pool.acquire().await?;
        if self.backend == Backend::Postgres {
            conn.execute("SELECT pg_advisory_lock(72657731)").await?;
        }
        let result = self.migrate_on(&mut conn).await;
        if self.backend == Backend::Postgres {
            conn.execute("SELECT pg_advisory_unlock(72657731)").await?;
        }
        result
    }

    async fn migrate_on(&self, conn: &mut sqlx::pool::PoolConnection<sqlx::Any>) -> StoreResult<Vec<i64>> {
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
        )
        .await?;
        let applied: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations")
            .fetch_all(&mut **conn)
            .await?
            .iter()
            .map(|row| row.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()?;
        let mut newly = Vec::new();
        for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
            let sql = match self.backend {
                Backend::Sqlite => migration.sqlite,
                Backend::Postgres => migration.postgres,
            };
            conn.execute(self.backend.begin_write()).await?;
            let outcome = async {
                conn.execute(sql).await?;
                sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
                    .bind(migration.version)
                    .bind(migration.name)
                    .bind(timestamp(Utc::now()))
                    .execute(&mut **conn)
                    .await?;
                Ok::<_, sqlx::Error>(())
            }
            .await;
            match outcome {
                Ok(()) => conn.execute("COMMIT").await?,
                Err(e) => {
                    conn.execute("ROLLBACK").await?;
                    return Err(e.into());
                }
            };
            tracing::info!(version = migration.version, name = migration.name, "applied migration");
            newly.push(migration.version);
        }
        Ok(newly)
    }

    /// Checks that the database answers (used by `/readyz`).
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection (at shutdown).
    pub async fn close(&self) {
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.stop();
        }
        self.pool.close().await;
        self.writer.close().await;
    }
}

/// The settings of every SQLite connection: WAL, a busy timeout, foreign keys, `NORMAL` sync (in WAL mode the
/// log is synced at checkpoints, not at each commit), an 8 MiB page cache, and the automatic checkpoint as a
/// backstop only ([`checkpoint`]).
fn sqlite_pragmas() -> String {
    format!(
        "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; \
         PRAGMA synchronous = NORMAL; PRAGMA cache_size = -8192; PRAGMA wal_autocheckpoint = {};",
        checkpoint::BACKSTOP_FRAMES
    )
}

/// PostgreSQL's "database does not exist" (SQLSTATE 3D000) as a message an operator can act on: payhub creates
/// the schema (`payhub migrate`), never the database itself, which needs rights payhub should not hold.
fn missing_postgres_database(url: &str, error: sqlx::Error) -> StoreError {
    let missing = matches!(&error, sqlx::Error::Database(db) if db.code().as_deref() == Some("3D000"));
    if !missing {
        return StoreError::Database(error);
    }
    let parsed = url::Url::parse(url).ok();
    let name = parsed.as_ref().map(|u| u.path().trim_start_matches('/').to_owned()).unwrap_or_default();
    let server = parsed
        .as_ref()
        .map(|u| format!("{}:{}", u.host_str().unwrap_or("localhost"), u.port().unwrap_or(5432)))
        .unwrap_or_default();
    StoreError::MissingDatabase(format!(
        "the PostgreSQL database \"{name}\" does not exist on {server} (PAYHUB_DATABASE_URL). Create it first \
         (`createdb -h HOST -U USER {name}`, or `CREATE DATABASE {name};` in psql), then run `payhub migrate`, \
         or point PAYHUB_DATABASE_URL at an existing database"
    ))
}

/// The file an SQLite database URL names (`None` for another backend or an in-memory database).
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    if Backend::from_url(url).ok()? != Backend::Sqlite || url.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    sqlite_path(url).filter(|p| !p.is_empty()).map(std::path::PathBuf::from)
}

fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    Some(rest.split('?').next().unwrap_or(rest))
}

/// Formats a time the way every table stores it: RFC 3339, UTC, microseconds (sorts as text).
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Reads a stored timestamp back.
pub(crate) fn parse_timestamp(text: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))
}

/// Reads a boolean column on either backend (PostgreSQL `BOOLEAN`, SQLite integer).
pub(crate) fn get_bool(row: &AnyRow, column: &str) -> StoreResult<bool> {
    match row.try_get::<bool, _>(column) {
        Ok(value) => Ok(value),
        Err(_) => Ok(row.try_get::<i64, _>(column)? != 0),
    }
}

/// Turns a unique-constraint violation into [`StoreError::Conflict`] naming the constraint.
pub(crate) fn map_conflict(error: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &error {
        if db.is_unique_violation() {
            let name = db.constraint().map(str::to_owned).unwrap_or_else(|| unique_name_from_message(db.message()));
            return StoreError::Conflict(name);
        }
    }
    StoreError::Database(error)
}

/// SQLite reports `UNIQUE constraint failed: accounts.name`-style messages without a constraint name;
/// the index is recognisable by the column list.
fn unique_name_from_message(message: &str) -> String {
    message.rsplit(": ").next().unwrap_or(message).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_scheme_chooses_the_backend() {
        assert_eq!(Backend::from_url("sqlite://x.db").ok(), Some(Backend::Sqlite));
        assert_eq!(Backend::from_url("postgres://localhost/x").ok(), Some(Backend::Postgres));
        assert_eq!(Backend::from_url("postgresql://localhost/x").ok(), Some(Backend::Postgres));
        assert!(matches!(Backend::from_url("mysql://x"), Err(StoreError::UnknownScheme(s)) if s == "mysql"));
        assert!(Backend::from_url("payhub.db").is_err());
    }
}
