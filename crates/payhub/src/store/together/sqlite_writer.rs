//! The group-commit writer's own SQLite connection, driven synchronously on the writer's thread.
//!
//! sqlx runs every SQLite connection on a thread of its own and hands each statement (and each batch of result
//! rows) over to it and back through channels. For the group-commit writer that cost more than the statements:
//! a batch made about seven round trips, each waking the other thread, and on a shared machine a woken thread
//! waits tens of microseconds before it runs. This connection is opened with the same settings as the pool's
//! (see [`crate::store::sqlite_pragmas`]) and runs on the thread that calls it, so a batch is one stretch of work on
//! one thread. Its transactions take this process's writer slot like every other writer's
//! ([`crate::store::Store::begin_write`]), so they never compete with sqlx's writers for SQLite's lock.

use std::path::PathBuf;

use rusqlite::types::ValueRef;

use super::statements::{BatchConn, Rows, Steps};
use crate::store::{Store, StoreError, StoreResult};

/// Statements the connection keeps prepared (a batch uses about twenty distinct texts).
const STATEMENT_CACHE: usize = 128;

/// A SQLite connection one writer keeps for itself across its transactions.
pub(crate) struct SqliteWriter {
    store: Store,
    path: PathBuf,
    conn: Option<rusqlite::Connection>,
}

impl SqliteWriter {
    /// A writer for `store`'s database file; `None` when the store has no file of its own (PostgreSQL, or an
    /// in-memory SQLite database, which a second connection would not see).
    pub(crate) fn new(store: &Store) -> Option<SqliteWriter> {
        let path = store.sqlite_file.as_ref()?;
        Some(SqliteWriter { store: store.clone(), path: PathBuf::from(&**path), conn: None })
    }

    /// Starts a write transaction (`BEGIN IMMEDIATE`) after taking this process's writer slot; the connection
    /// is opened first if there is none.
    pub(crate) async fn begin(&mut self) -> StoreResult<SqliteTx<'_>> {
        let guard = self.store.write_slot().await;
        let conn = match &mut self.conn {
            Some(conn) => conn,
            empty => empty.insert(open(&self.path)?),
        };
        conn.execute_batch("BEGIN IMMEDIATE").map_err(sqlite_error)?;
        Ok(SqliteTx { conn, open: true, _guard: guard })
    }

    /// Lets the connection go after a failed transaction, so that a broken connection is never used twice.
    pub(crate) fn discard(&mut self) {
        self.conn = None;
    }
}

/// Opens the database file with the settings of the store's pool.
fn open(path: &std::path::Path) -> StoreResult<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(path, flags).map_err(sqlite_error)?;
    conn.execute_batch(&crate::store::sqlite_pragmas()).map_err(sqlite_error)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// A write transaction of a [`SqliteWriter`]; it rolls back when dropped without [`SqliteTx::commit`].
pub(crate) struct SqliteTx<'w> {
    conn: &'w mut rusqlite::Connection,
    open: bool,
    _guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl SqliteTx<'_> {
    /// Commits.
    pub(crate) fn commit(mut self) -> StoreResult<()> {
        self.open = false;
        self.conn.execute_batch("COMMIT").map_err(sqlite_error)
    }
}

impl Drop for SqliteTx<'_> {
    fn drop(&mut self) {
        if self.open {
            // Nothing to do if this fails: the caller discards the connection after a failed transaction,
            // and closing it rolls back.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// Binds `params` to a statement written with `$N` placeholders: SQLite numbers named parameters by first
/// appearance, so each is bound by its name's number.
fn bind(statement: &mut rusqlite::Statement<'_>, params: &[String]) -> StoreResult<()> {
    for index in 1..=statement.parameter_count() {
        let number = statement
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(index);
        let value = params
            .get(number - 1)
            .ok_or_else(|| StoreError::Database(sqlx::Error::Protocol(format!("no value for parameter ${number}"))))?;
        statement.raw_bind_parameter(index, value.as_str()).map_err(sqlite_error)?;
    }
    Ok(())
}

impl BatchConn for SqliteTx<'_> {
    async fn read(&mut self, sql: &str, params: &[String]) -> StoreResult<Rows> {
        let mut statement = self.conn.prepare_cached(sql).map_err(sqlite_error)?;
        bind(&mut statement, params)?;
        let columns = statement.column_count();
        let mut rows = statement.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(sqlite_error)? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(match row.get_ref(i).map_err(sqlite_error)? {
                    ValueRef::Null => None,
                    ValueRef::Integer(n) => Some(n.to_string()),
                    ValueRef::Real(x) => Some(x.to_string()),
                    ValueRef::Text(text) | ValueRef::Blob(text) => Some(String::from_utf8_lossy(text).into_owned()),
                });
            }
            out.push(values);
        }
        Ok(out)
    }

    async fn write(&mut self, steps: Steps) -> StoreResult<()> {
        for (sql, params) in steps.sqlite() {
            let mut statement = self.conn.prepare_cached(sql).map_err(sqlite_error)?;
            bind(&mut statement, params)?;
            statement.raw_execute().map_err(sqlite_error)?;
        }
        Ok(())
    }
}

/// A SQLite error as a [`StoreError`]: a unique violation is [`StoreError::Conflict`] naming the columns, as
/// [`crate::store::map_conflict`] names them for sqlx's errors.
fn sqlite_error(error: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(failure, Some(message)) = &error {
        const UNIQUE: std::ffi::c_int = 2067;
        const PRIMARY_KEY: std::ffi::c_int = 1555;
        if matches!(failure.extended_code, UNIQUE | PRIMARY_KEY) {
            return StoreError::Conflict(crate::store::unique_name_from_message(message));
        }
    }
    StoreError::Sqlite(error)
}
