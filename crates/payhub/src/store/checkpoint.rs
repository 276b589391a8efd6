//! SQLite WAL checkpoints, off the writer's path.
//!
//! In WAL mode every commit appends pages to the write-ahead log, and a checkpoint copies them back into the
//! database file and syncs both files. SQLite's own automatic checkpoint runs inside the commit that crosses
//! its threshold, so the writer (and every request waiting for it) stalls for the copy and two `fsync`s, a few
//! times a second under load. Here a task of the store does that work instead:
//!
//! - every [`PERIOD`] it runs, on a connection of the store's pool, a `PASSIVE` checkpoint, which copies what is in the log without taking the write
//!   lock, so the writer goes on appending meanwhile;
//! - when the log has grown past [`CATCH_UP_FRAMES`], it takes this process's writer slot (see
//!   `Store::begin_write`) for a second `PASSIVE` checkpoint, which then has only the few pages written
//!   during the first one to copy. With the log fully copied, the writer's next commit starts the log again from
//!   its beginning, so it stays small.
//!
//! Connections that write keep an automatic checkpoint at [`BACKSTOP_FRAMES`], far above what the task lets the
//! log reach, so that the log stays bounded if the task falls behind or is not running. Checkpoints change
//! nothing a transaction can see and take nothing from durability: a commit is in the log before it is
//! acknowledged either way.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{AnyConnection, AnyPool, Row};

/// How often the checkpoint task copies the log into the database file.
pub const PERIOD: Duration = Duration::from_millis(50);

/// Log size (pages) above which the task takes the writer slot to copy the rest and let the log start again.
pub const CATCH_UP_FRAMES: i64 = 1_000;

/// The automatic checkpoint threshold (pages) of connections that write: a backstop for when the task is behind.
pub const BACKSTOP_FRAMES: i64 = 20_000;

/// The running checkpoint task of a [`super::Store`]; it stops when the store is closed or its last clone is
/// dropped.
#[derive(Debug)]
pub(crate) struct Checkpoints {
    stop: tokio::sync::watch::Sender<bool>,
}

impl Checkpoints {
    /// Stops the task (after the checkpoint in progress, if any).
    pub(crate) fn stop(&self) {
        self.stop.send_replace(true);
    }
}

/// One `PASSIVE` checkpoint; returns the pages in the log.
async fn checkpoint(conn: &mut AnyConnection) -> Result<i64, sqlx::Error> {
    // The row is (busy, pages in the log, pages of it now in the database file).
    sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&mut *conn).await?.try_get(1)
}

/// How long the task waits after a failure before it tries again (meanwhile SQLite's own checkpoint at
/// [`BACKSTOP_FRAMES`] keeps the log bounded).
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Starts the checkpoint task on `pool` (the store's, whose connections wait on the busy timeout for another
/// process's checkpoint). `write_slot` is the store's writer slot.
pub(crate) fn spawn(pool: AnyPool, write_slot: Arc<tokio::sync::Mutex<()>>) -> Checkpoints {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut wait = PERIOD;
        loop {
            tokio::select! {
                // A change (closed) or no sender left (dropped): either way, stop.
                _ = stopped.changed() => break,
                () = tokio::time::sleep(wait) => {}
            }
            let outcome = async {
                let mut conn = pool.acquire().await?;
                if checkpoint(&mut conn).await? >= CATCH_UP_FRAMES {
                    let _slot = write_slot.lock().await;
                    checkpoint(&mut conn).await?;
                }
                Ok::<_, sqlx::Error>(())
            }
            .await;
            wait = match outcome {
                Ok(()) => PERIOD,
                Err(error) => {
                    tracing::warn!(%error, "WAL checkpoint failed; trying again in 5 s");
                    RETRY_AFTER
                }
            };
        }
    });
    Checkpoints { stop }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// Bytes of one page in the log (a 4 KiB page and its frame header).
    const FRAME_BYTES: u64 = 4096 + 24;

    /// Commits `commits` small write transactions (a page or two of log each) on a new database, with the
    /// checkpoint task running or stopped, and returns the log file's size: the longest the log ever was.
    async fn log_high_water_mark(task: bool, commits: usize) -> u64 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = Store::connect(&format!("sqlite://{}?mode=rwc", path.display())).await.unwrap();
        if !task {
            if let Some(checkpoints) = &store.checkpoints {
                checkpoints.stop();
            }
        }
        sqlx::query("CREATE TABLE filler (n BIGINT NOT NULL, pad TEXT NOT NULL)").execute(store.pool()).await.unwrap();
        for n in 0..commits {
            let mut tx = store.begin_write().await.unwrap();
            sqlx::query("INSERT INTO filler (n, pad) VALUES ($1, $2)")
                .bind(n as i64)
                .bind("x".repeat(200))
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            // A pause of two periods every 250 commits: on a machine loaded by other work the writes can
            // otherwise outrun the task's timer altogether, and the test would measure the scheduler, not the
            // task. The volume between pauses stays well under the catch-up size's tolerance below.
            if task && n % 250 == 249 {
                tokio::time::sleep(2 * PERIOD).await;
            }
        }
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM filler").fetch_one(store.pool()).await.unwrap();
        assert_eq!(rows, commits as i64, "every committed row is there");
        let size = std::fs::metadata(dir.path().join("t.db-wal")).unwrap().len();
        store.close().await;
        size
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_task_keeps_the_log_short_while_writes_go_on() {
        let commits = 6 * CATCH_UP_FRAMES as usize;
        // The control: the connections' own threshold is far above this volume, so without the task the log
        // only grows (one page or more per commit).
        let alone = log_high_water_mark(false, commits).await;
        assert!(alone >= commits as u64 * FRAME_BYTES, "without the task the log grew to {alone} bytes");
        // With the task the log is copied and starts again whenever it passes the catch-up size; between two
        // rounds of the task a few hundred commits at most are added. On a machine loaded by other work the task
        // can miss a whole run (a checkpoint that fails waits seconds before the next), so it gets three runs:
        // a task that never keeps the log short still fails all three.
        let mut sizes = Vec::new();
        for _ in 0..3 {
            let with_task = log_high_water_mark(true, commits).await;
            sizes.push(with_task);
            if with_task < 3 * CATCH_UP_FRAMES as u64 * FRAME_BYTES {
                return;
            }
        }
        panic!("with the task the log still grew to {sizes:?} bytes in three runs (alone: {alone})");
    }
}
