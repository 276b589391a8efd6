//! Users, API keys, sessions and one-time setup links.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{map_conflict, parse_timestamp, timestamp, StoreResult};
use crate::domain::role::Role;

/// A person who signs in to the web UI.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct UserRecord {
    /// `usr_…`
    pub id: String,
    /// Sign-in name.
    pub email: String,
    /// Argon2 PHC string; never leaves the server.
    #[serde(skip)]
    pub password_hash: String,
    /// What the user may do.
    pub role: Role,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
    /// Set when the user may no longer sign in.
    pub disabled_at: Option<DateTime<Utc>>,
}

/// An API key as stored: only a hash of the key itself.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ApiKeyRecord {
    /// `key_…`
    pub id: String,
    /// A label chosen by the admin.
    pub name: String,
    /// What the key may do.
    pub role: Role,
    /// The key's first characters, to recognise it in a list.
    pub prefix: String,
    /// Who created it (an audit actor string).
    pub created_by: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked; a revoked key authenticates nothing.
    pub revoked_at: Option<DateTime<Utc>>,
}

fn role_of(row: &AnyRow) -> StoreResult<Role> {
    let text: String = row.try_get("role")?;
    text.parse().map_err(|e: String| super::StoreError::Database(sqlx::Error::Decode(e.into())))
}

fn optional_time(row: &AnyRow, column: &str) -> StoreResult<Option<DateTime<Utc>>> {
    row.try_get::<Option<String>, _>(column)?.as_deref().map(parse_timestamp).transpose()
}

fn user_from_row(row: &AnyRow) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        role: role_of(row)?,
        created_at: parse_timestamp(&row.try_get::<String, _>("created_at")?)?,
        disabled_at: optional_time(row, "disabled_at")?,
    })
}

fn key_from_row(row: &AnyRow) -> StoreResult<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: role_of(row)?,
        prefix: row.try_get("prefix")?,
        created_by: row.try_get("created_by")?,
        created_at: parse_timestamp(&row.try_get::<String, _>("created_at")?)?,
        revoked_at: optional_time(row, "revoked_at")?,
    })
}

/// Inserts a user; a taken email (case-insensitive) is a conflict.
pub async fn insert_user(conn: &mut AnyConnection, user: &UserRecord) -> StoreResult<()> {
    sqlx::query("INSERT INTO users (id, email, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(user.role.as_str())
        .bind(timestamp(user.created_at))
        .execute(conn)
        .await
        .map_err(map_conflict)?;
    Ok(())
}

/// A user by sign-in email (case-insensitive).
pub async fn user_by_email(conn: &mut AnyConnection, email: &str) -> StoreResult<Option<UserRecord>> {
    sqlx::query("SELECT * FROM users WHERE lower(email) = lower($1)")
        .bind(email)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
}

/// A user by id.
pub async fn user_by_id(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<UserRecord>> {
    sqlx::query("SELECT * FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
}

/// Every user, oldest first.
pub async fn list_users(conn: &mut AnyConnection) -> StoreResult<Vec<UserRecord>> {
    sqlx::query("SELECT * FROM users ORDER BY created_at, id")
        .fetch_all(conn)
        .await?
        .iter()
        .map(user_from_row)
        .collect()
}

/// How many users exist (none: first run).
pub async fn count_users(conn: &mut AnyConnection) -> StoreResult<i64> {
    Ok(sqlx::query("SELECT COUNT(*) FROM users").fetch_one(conn).await?.try_get(0)?)
}

/// Marks a user disabled and ends their sessions. Returns false when no active user had that id.
pub async fn disable_user(conn: &mut AnyConnection, id: &str, at: DateTime<Utc>) -> StoreResult<bool> {
    let done = sqlx::query("UPDATE users SET disabled_at = $2 WHERE id = $1 AND disabled_at IS NULL")
        .bind(id)
        .bind(timestamp(at))
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(id).execute(conn).await?;
    Ok(done.rows_affected() == 1)
}

/// Inserts an API key (its hash).
pub async fn insert_key(conn: &mut AnyConnection, key: &ApiKeyRecord, key_hash: &str) -> StoreResult<()> {
    sqlx::query("INSERT INTO api_keys (id, name, role, key_hash, prefix, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(&key.id)
        .bind(&key.name)
        .bind(key.role.as_str())
        .bind(key_hash)
        .bind(&key.prefix)
        .bind(&key.created_by)
        .bind(timestamp(key.created_at))
        .execute(conn)
        .await
        .map_err(map_conflict)?;
    Ok(())
}

/// The active (not revoked) key with this hash.
pub async fn active_key_by_hash(conn: &mut AnyConnection, key_hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
    sqlx::query("SELECT * FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL")
        .bind(key_hash)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(key_from_row)
        .transpose()
}

/// [`active_key_by_hash`] for every request waiting at once: one read per distinct hash, on one connection.
pub(crate) async fn active_key_coalesced(
    store: &super::Store,
    key_hash: String,
) -> Result<Option<ApiKeyRecord>, String> {
    let reader = store.key_reads.get_or_init(|| {
        crate::batcher::reader(store.pool().clone(), |conn, hash: &String| {
            Box::pin(async move { active_key_by_hash(conn, hash).await.map_err(|e| e.to_string()) })
        })
    });
    reader.submit(key_hash).await.unwrap_or_else(|| Err("the key reader stopped".into()))
}

/// Every key, newest first (hashes are not read).
pub async fn list_keys(conn: &mut AnyConnection) -> StoreResult<Vec<ApiKeyRecord>> {
    sqlx::query("SELECT * FROM api_keys ORDER BY created_at DESC, id")
        .fetch_all(conn)
        .await?
        .iter()
        .map(key_from_row)
        .collect()
}

/// Revokes a key. Returns false when no active key had that id.
pub async fn revoke_key(conn: &mut AnyConnection, id: &str, at: DateTime<Utc>) -> StoreResult<bool> {
    let done = sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(id)
        .bind(timestamp(at))
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// A signed-in browser session, found by the hash of its cookie.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// The signed-in user.
    pub user: UserRecord,
    /// The token every form of this session must carry.
    pub csrf_token: String,
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
}

/// Stores a new session.
pub async fn insert_session(
    conn: &mut AnyConnection,
    token_hash: &str,
    user_id: &str,
    csrf_token: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash)
    .bind(user_id)
    .bind(csrf_token)
    .bind(timestamp(now))
    .bind(timestamp(expires_at))
    .execute(conn)
    .await?;
    Ok(())
}

/// The live session with this token hash, with its (enabled) user.
pub async fn session_by_hash(
    conn: &mut AnyConnection,
    token_hash: &str,
    now: DateTime<Utc>,
) -> StoreResult<Option<SessionRecord>> {
    let row = sqlx::query(
        "SELECT s.csrf_token, s.expires_at, u.* FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.disabled_at IS NULL",
    )
    .bind(token_hash)
    .bind(timestamp(now))
    .fetch_optional(conn)
    .await?;
    row.map(|row| {
        Ok(SessionRecord {
            user: user_from_row(&row)?,
            csrf_token: row.try_get("csrf_token")?,
            expires_at: parse_timestamp(&row.try_get::<String, _>("expires_at")?)?,
        })
    })
    .transpose()
}

/// Ends a session (sign out).
pub async fn delete_session(conn: &mut AnyConnection, token_hash: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash).execute(conn).await?;
    Ok(())
}

/// Ends every setup link.
pub async fn delete_setup_links(conn: &mut AnyConnection) -> StoreResult<()> {
    sqlx::query("DELETE FROM setup_links").execute(conn).await?;
    Ok(())
}

/// Stores a one-time setup link (its hash).
pub async fn insert_setup_link(
    conn: &mut AnyConnection,
    token_hash: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO setup_links (token_hash, created_at, expires_at) VALUES ($1, $2, $3)")
        .bind(token_hash)
        .bind(timestamp(now))
        .bind(timestamp(expires_at))
        .execute(conn)
        .await?;
    Ok(())
}

/// Uses up a setup link: true only for the first use of a live link.
pub async fn consume_setup_link(conn: &mut AnyConnection, token_hash: &str, now: DateTime<Utc>) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE setup_links SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(token_hash)
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether a setup link is live (exists, unused, not expired), without using it up.
pub async fn setup_link_is_live(conn: &mut AnyConnection, token_hash: &str, now: DateTime<Utc>) -> StoreResult<bool> {
    Ok(sqlx::query("SELECT 1 FROM setup_links WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2")
        .bind(token_hash)
        .bind(timestamp(now))
        .fetch_optional(conn)
        .await?
        .is_some())
}

/// Failed sign-ins since `since`: for this email (lower-cased) and from this address.
pub async fn recent_failures(
    conn: &mut AnyConnection,
    email: &str,
    source: &str,
    since: DateTime<Utc>,
) -> StoreResult<(Vec<DateTime<Utc>>, i64)> {
    let rows =
        sqlx::query("SELECT failed_at FROM login_failures WHERE email = $1 AND failed_at >= $2 ORDER BY failed_at")
            .bind(email)
            .bind(timestamp(since))
            .fetch_all(&mut *conn)
            .await?;
    let by_email = rows.iter().map(|row| parse_timestamp(&row.try_get::<String, _>(0)?)).collect::<StoreResult<_>>()?;
    let by_source: i64 = sqlx::query("SELECT COUNT(*) FROM login_failures WHERE source = $1 AND failed_at >= $2")
        .bind(source)
        .bind(timestamp(since))
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    Ok((by_email, by_source))
}

/// Records a failed sign-in, and forgets failures older than `forget_before`.
pub async fn insert_failure(
    conn: &mut AnyConnection,
    email: &str,
    source: &str,
    now: DateTime<Utc>,
    forget_before: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM login_failures WHERE failed_at < $1")
        .bind(timestamp(forget_before))
        .execute(&mut *conn)
        .await?;
    sqlx::query("INSERT INTO login_failures (id, email, source, failed_at) VALUES ($1, $2, $3, $4)")
        .bind(crate::domain::ids::new_id("lf"))
        .bind(email)
        .bind(source)
        .bind(timestamp(now))
        .execute(conn)
        .await?;
    Ok(())
}

/// Forgets an email's failed sign-ins (after a successful one).
pub async fn clear_failures(conn: &mut AnyConnection, email: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM login_failures WHERE email = $1").bind(email).execute(conn).await?;
    Ok(())
}

/// Deletes sessions and setup links that ended before `now`, and failed sign-ins before `before`; returns how
/// many rows went.
pub async fn prune(conn: &mut AnyConnection, now: DateTime<Utc>, before: DateTime<Utc>) -> StoreResult<u64> {
    let mut gone = 0;
    for sql in ["DELETE FROM sessions WHERE expires_at < $1", "DELETE FROM setup_links WHERE expires_at < $1"] {
        gone += sqlx::query(sql).bind(timestamp(now)).execute(&mut *conn).await?.rows_affected();
    }
    gone += sqlx::query("DELETE FROM login_failures WHERE failed_at < $1")
        .bind(timestamp(before))
        .execute(conn)
        .await?
        .rows_affected();
    Ok(gone)
}
