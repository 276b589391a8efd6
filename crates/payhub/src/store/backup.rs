//! A consistent copy of a live SQLite database, with SQLite's online backup API.
//!
//! The copy is one snapshot: the source connection holds a read transaction for the whole copy, so the backup
//! steps all read the same version of the database while `payhub serve` goes on writing (in WAL mode readers
//! and writers do not block each other; the log grows until the copy is done). Without that transaction each
//! step would see a new version and SQLite would restart the copy after every write.

use std::path::{Path, PathBuf};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::{StoreError, StoreResult};

/// Pages copied per step: 400 KiB at SQLite's default page size, so the progress bar moves smoothly; the
/// snapshot makes the number of steps irrelevant to the copy's consistency.
pub const PAGES_PER_STEP: u64 = 100;

/// Copies the SQLite database `source` to `target` as one consistent snapshot, calling `progress(copied, total)`
/// in pages after each step, then checks the copy with `PRAGMA integrity_check`. The copy is written under a
/// temporary name beside `target` and renamed at the end, so an interrupted backup never leaves a file that
/// looks like a finished one. `target` must not exist. Returns the pages copied.
pub fn backup_sqlite(source: &Path, target: &Path, mut progress: impl FnMut(u64, u64)) -> StoreResult<u64> {
    if target.exists() {
        return Err(invalid(format!("{} exists already; name a new file", target.display())));
    }
    let partial = partial_name(target);
    let _ = std::fs::remove_file(&partial);
    let outcome = (|| {
        // Read-write without create: a WAL database opened read-only needs its shared-memory file to exist,
        // which it does not when no payhub runs; and a missing source must be an error, never a new file.
        let src = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        src.busy_timeout(std::time::Duration::from_secs(5))?;
        // The snapshot: a read transaction that the backup's steps share (it needs one read to begin).
        src.execute_batch("BEGIN; SELECT count(*) FROM sqlite_master;")?;
        let mut dst = Connection::open(&partial)?;
        let pages;
        {
            let backup = Backup::new(&src, &mut dst)?;
            loop {
                let step = backup.step(PAGES_PER_STEP as std::os::raw::c_int)?;
                let p = backup.progress();
                let total = u64::try_from(p.pagecount).unwrap_or(0);
                let remaining = u64::try_from(p.remaining).unwrap_or(0);
                progress(total.saturating_sub(remaining), total);
                match step {
                    StepResult::Done => {
                        pages = total;
                        break;
                    }
                    StepResult::More => {}
                    // Busy or locked: the target is ours alone and the source is read under a snapshot, so only
                    // a moment's lock (a checkpoint's) can cause it: wait and go on.
                    _ => std::thread::sleep(std::time::Duration::from_millis(20)),
                }
            }
        }
        src.execute_batch("COMMIT")?;
        let verdict: String = dst.query_row("PRAGMA integrity_check", [], |row| row.get(0))?;
        if verdict != "ok" {
            return Err(invalid(format!("the copy failed its integrity check: {verdict}")));
        }
        dst.close().map_err(|(_, e)| StoreError::Sqlite(e))?;
        std::fs::rename(&partial, target).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        Ok(pages)
    })();
    if outcome.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    outcome
}

/// `PRAGMA integrity_check` of the SQLite file at `path`: `ok`, or what SQLite found.
pub fn integrity_check(path: &Path) -> StoreResult<String> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    Ok(conn.query_row("PRAGMA integrity_check", [], |row| row.get(0))?)
}

fn partial_name(target: &Path) -> PathBuf {
    let mut name = target.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    target.with_file_name(name)
}

fn invalid(message: String) -> StoreError {
    StoreError::Database(sqlx::Error::Configuration(message.into()))
}
