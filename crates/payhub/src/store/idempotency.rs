//! The Payment API's own idempotency: a key is claimed before any work (insert-or-nothing), and the first
//! response is stored against it and replayed to every repeat of the same request.

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::{timestamp, StoreResult};

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is new and now ours: do the work, then [`complete`].
    Fresh,
    /// The same request finished before: replay this status and body.
    Replay(u16, String),
    /// The same request is being processed right now.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
}

/// Claims `key` in `scope` for a request whose body hashes to `request_hash`.
pub async fn claim(
    conn: &mut AnyConnection,
    scope: &str,
    key: &str,
    request_hash: &str,
    now: DateTime<Utc>,
) -> StoreResult<Claim> {
    let inserted = sqlx::query(
        "INSERT INTO api_idempotency (scope, key, request_hash, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(scope)
    .bind(key)
    .bind(request_hash)
    .bind(timestamp(now))
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::Fresh);
    }
    let row = sqlx::query(
        "SELECT request_hash, response_status, response_body FROM api_idempotency WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_one(conn)
    .await?;
    let stored_hash: String = row.try_get(0)?;
    if stored_hash != request_hash {
        return Ok(Claim::Mismatch);
    }
    let status: Option<i64> = row.try_get(1)?;
    let body: Option<String> = row.try_get(2)?;
    Ok(match (status, body) {
        (Some(status), Some(body)) => Claim::Replay(u16::try_from(status).unwrap_or(500), body),
        _ => Claim::InProgress,
    })
}

/// Stores the response given to the claimed key.
pub async fn complete(conn: &mut AnyConnection, scope: &str, key: &str, status: u16, body: &str) -> StoreResult<()> {
    sqlx::query("UPDATE api_idempotency SET response_status = $3, response_body = $4 WHERE scope = $1 AND key = $2")
        .bind(scope)
        .bind(key)
        .bind(i64::from(status))
        .bind(body)
        .execute(conn)
        .await?;
    Ok(())
}

/// Gives a claimed key up (the request failed in a way that must not be replayed, e.g. an internal error).
pub async fn release(conn: &mut AnyConnection, scope: &str, key: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM api_idempotency WHERE scope = $1 AND key = $2 AND response_status IS NULL")
        .bind(scope)
        .bind(key)
        .execute(conn)
        .await?;
    Ok(())
}
