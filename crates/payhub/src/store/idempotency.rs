//! The Payment API's own idempotency: a key is claimed before any work (insert-or-nothing), and the first
//! response is stored against it and replayed to every repeat of the same request.
//!
//! A claim holds its key for a lease (`locked_until`, by payhub's clock). A claim whose holder died without
//! answering is taken again once its lease has run out; a claim still leased is "in progress". Completing or
//! giving up a claim succeeds only for the lease that claimed it, so a holder that outlived its lease cannot
//! overwrite the answer of the one that took the key over.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::{AnyConnection, Row};

use super::{timestamp, StoreResult};

/// One claim's hold on a key: the end of its lease, which also tells this claim from a later one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease(String);

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is new (or its last holder's lease ran out) and now ours: do the work, then [`complete`].
    Fresh(Lease),
    /// The same request finished before: replay this status and body.
    Replay(u16, String),
    /// The same request is being processed right now (its lease has not run out).
    InProgress,
    /// The key was used for a different request.
    Mismatch,
}

/// Claims `key` in `scope` for a request whose body hashes to `request_hash`, holding it for `lease` from `now`.
pub async fn claim(
    conn: &mut AnyConnection,
    scope: &str,
    key: &str,
    request_hash: &str,
    now: DateTime<Utc>,
    lease: Duration,
) -> StoreResult<Claim> {
    let until = timestamp(
        now.checked_add_signed(TimeDelta::from_std(lease).unwrap_or(TimeDelta::MAX))
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    );
    let inserted = sqlx::query(
        "INSERT INTO api_idempotency (scope, key, request_hash, created_at, locked_until) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT DO NOTHING",
    )
    .bind(scope)
    .bind(key)
    .bind(request_hash)
    .bind(timestamp(now))
    .bind(&until)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::Fresh(Lease(until)));
    }
    // The same request, never answered, whose holder's lease ran out: the holder died; take it over. One
    // statement, so of several takers one wins.
    let taken = sqlx::query(
        "UPDATE api_idempotency SET locked_until = $4
         WHERE scope = $1 AND key = $2 AND request_hash = $3 AND response_status IS NULL
           AND (locked_until IS NULL OR locked_until <= $5)",
    )
    .bind(scope)
    .bind(key)
    .bind(request_hash)
    .bind(&until)
    .bind(timestamp(now))
    .execute(&mut *conn)
    .await?;
    if taken.rows_affected() == 1 {
        return Ok(Claim::Fresh(Lease(until)));
    }
    let row = sqlx::query(
        "SELECT request_hash, response_status, response_body FROM api_idempotency WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_optional(conn)
    .await?;
    // Given up between our statements: the caller claims again.
    let Some(row) = row else { return Ok(Claim::InProgress) };
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

/// Stores the response given to the key claimed with `lease`; `false` when that claim no longer holds the key
/// (its lease ran out and another claim took the key over).
pub async fn complete(
    conn: &mut AnyConnection,
    scope: &str,
    key: &str,
    lease: &Lease,
    status: u16,
    body: &str,
) -> StoreResult<bool> {
    let stored = sqlx::query(
        "UPDATE api_idempotency SET response_status = $4, response_body = $5, locked_until = NULL
         WHERE scope = $1 AND key = $2 AND locked_until = $3 AND response_status IS NULL",
    )
    .bind(scope)
    .bind(key)
    .bind(&lease.0)
    .bind(i64::from(status))
    .bind(body)
    .execute(conn)
    .await?;
    Ok(stored.rows_affected() == 1)
}

/// Gives the key claimed with `lease` up, so a repeat runs the work again (the request failed in a way that
/// must not be replayed, e.g. an internal error, or its answer could not be stored).
pub async fn release(conn: &mut AnyConnection, scope: &str, key: &str, lease: &Lease) -> StoreResult<()> {
    sqlx::query(
        "DELETE FROM api_idempotency WHERE scope = $1 AND key = $2 AND locked_until = $3 AND response_status IS NULL",
    )
    .bind(scope)
    .bind(key)
    .bind(&lease.0)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes answered keys claimed before `before` (a repeat after that is a new request); returns how many.
pub async fn prune(conn: &mut AnyConnection, before: DateTime<Utc>) -> StoreResult<u64> {
    let done = sqlx::query("DELETE FROM api_idempotency WHERE response_status IS NOT NULL AND created_at < $1")
        .bind(timestamp(before))
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}
