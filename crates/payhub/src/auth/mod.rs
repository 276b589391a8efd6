//! Who is calling and what they may do: users, roles, API keys, sessions, CSRF, and the audit trail of
//! changes they make.

pub mod http;
pub mod password;
pub mod tokens;

use chrono::{DateTime, Duration, Utc};

use crate::domain::ids::new_id;
use crate::domain::role::Role;
use crate::domain::FieldError;
use crate::error::{ServiceError, ServiceResult};
use crate::store::audit::{self, AuditEntry};
use crate::store::users::{self as user_store, ApiKeyRecord, SessionRecord, UserRecord};
use crate::store::{Store, StoreError};

/// How long a browser session lasts.
pub const SESSION_HOURS: i64 = 12;

/// Who made a change and from where, for the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `user:<id> <email>`, `key:<id> <name>`, or `cli:<os user>`.
    pub label: String,
    /// The client's IP address, or `cli`.
    pub source: String,
    /// When the change is made, on payhub's clock: the simulator's virtual clock in the sandbox, so the audit
    /// log and the records it explains tell one time.
    pub at: DateTime<Utc>,
}

impl Actor {
    /// The operator at the command line.
    pub fn cli() -> Actor {
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        Actor { label: format!("cli:{user}"), source: "cli".into(), at: Utc::now() }
    }
}

/// An authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user's or key's id.
    pub id: String,
    /// Human label for logs and the audit trail.
    pub label: String,
    /// What the caller may do.
    pub role: Role,
    /// The session's CSRF token (browser sessions only).
    pub csrf_token: Option<String>,
    /// Where the request came from.
    pub source: String,
    /// When the request arrived, on payhub's clock (see [`Actor::at`]).
    pub at: DateTime<Utc>,
}

impl Principal {
    /// The audit actor for changes this caller makes.
    pub fn actor(&self) -> Actor {
        Actor { label: self.label.clone(), source: self.source.clone(), at: self.at }
    }
}

/// Writes one audit entry inside the caller's transaction.
pub async fn audit(
    conn: &mut sqlx::AnyConnection,
    actor: &Actor,
    action: &str,
    object_type: &str,
    object_id: &str,
    details: serde_json::Value,
) -> ServiceResult<()> {
    let entry = AuditEntry {
        at: actor.at,
        actor: actor.label.clone(),
        action: action.to_owned(),
        object_type: object_type.to_owned(),
        object_id: object_id.to_owned(),
        source: actor.source.clone(),
        details,
    };
    audit::record(conn, &entry).await?;
    Ok(())
}

fn check_email(email: &str) -> Result<String, FieldError> {
    let email = email.trim();
    let plausible = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if email.is_empty() {
        Err(FieldError::missing("email", "Email is required."))
    } else if !plausible {
        Err(FieldError::invalid("email", "Email must look like name@example.org."))
    } else {
        Ok(email.to_owned())
    }
}

/// Creates a user who signs in with `email` and `password`.
pub async fn create_user(
    store: &Store,
    email: &str,
    password: &str,
    role: Role,
    actor: &Actor,
) -> ServiceResult<UserRecord> {
    let mut errors = Vec::new();
    let email = check_email(email).map_err(|e| errors.push(e)).ok();
    if let Err(message) = password::check_new_password(password) {
        errors.push(FieldError::invalid("password", message));
    }
    let Some(email) = email.filter(|_| errors.is_empty()) else {
        return Err(ServiceError::Invalid(errors));
    };
    let user = UserRecord {
        id: new_id("usr"),
        email,
        password_hash: password::hash(password).await?,
        role,
        created_at: Utc::now(),
        disabled_at: None,
    };
    let mut tx = store.begin_write().await?;
    match user_store::insert_user(&mut tx, &user).await {
        Err(StoreError::Conflict(_)) => {
            return Err(ServiceError::Conflict(vec![FieldError::invalid(
                "email",
                "A user with this email already exists.",
            )]))
        }
        other => other?,
    }
    audit(&mut tx, actor, "user.create", "user", &user.id, serde_json::json!({"email": user.email, "role": role}))
        .await?;
    tx.commit().await?;
    Ok(user)
}

/// Disables a user and ends their sessions.
pub async fn disable_user(store: &Store, id: &str, actor: &Actor) -> ServiceResult<()> {
    let mut tx = store.begin_write().await?;
    if !user_store::disable_user(&mut tx, id, Utc::now()).await? {
        return Err(ServiceError::NotFound("user"));
    }
    audit(&mut tx, actor, "user.disable", "user", id, serde_json::json!({})).await?;
    tx.commit().await?;
    Ok(())
}

/// Creates an API key; returns the stored record and the key itself, which is shown this once only.
pub async fn create_api_key(
    store: &Store,
    name: &str,
    role: Role,
    actor: &Actor,
) -> ServiceResult<(ApiKeyRecord, String)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 80 || name.chars().any(char::is_control) {
        return Err(ServiceError::Invalid(vec![FieldError::invalid(
            "name",
            "Name is required, at most 80 characters.",
        )]));
    }
    let secret = tokens::new_token("phk_");
    let record = ApiKeyRecord {
        id: new_id("key"),
        name: name.to_owned(),
        role,
        prefix: secret.chars().take(12).collect(),
        created_by: actor.label.clone(),
        created_at: Utc::now(),
        revoked_at: None,
    };
    let mut tx = store.begin_write().await?;
    user_store::insert_key(&mut tx, &record, &tokens::hash_token(&secret)).await?;
    audit(
        &mut tx,
        actor,
        "api_key.create",
        "api_key",
        &record.id,
        serde_json::json!({"name": record.name, "role": role}),
    )
    .await?;
    tx.commit().await?;
    Ok((record, secret))
}

/// Revokes an API key at once.
pub async fn revoke_api_key(store: &Store, id: &str, actor: &Actor) -> ServiceResult<()> {
    let mut tx = store.begin_write().await?;
    if !user_store::revoke_key(&mut tx, id, Utc::now()).await? {
        return Err(ServiceError::NotFound("api key"));
    }
    audit(&mut tx, actor, "api_key.revoke", "api_key", id, serde_json::json!({})).await?;
    tx.commit().await?;
    Ok(())
}

/// The active key that `secret` is, if any.
/// Requests that arrive together share the reads (one per distinct key, on one connection); every read starts
/// after its requests arrived, so a revocation is seen at once as before.
pub async fn authenticate_key(store: &Store, secret: &str) -> ServiceResult<Option<ApiKeyRecord>> {
    user_store::active_key_coalesced(store, tokens::hash_token(secret))
        .await
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!(e)))
}

/// Failed sign-ins for one email, within [`LOCKOUT_MINUTES`], after which it is locked.
pub const EMAIL_FAILURES: usize = 5;

/// Failed sign-ins from one address, within [`LOCKOUT_MINUTES`], after which it is locked.
pub const SOURCE_FAILURES: i64 = 20;

/// The window failures are counted in, and how long a lock lasts after the failure that set it.
pub const LOCKOUT_MINUTES: i64 = 15;

/// The outcome of a password sign-in.
#[derive(Debug)]
pub enum SignIn {
    /// Signed in: the session cookie's value.
    Session(String),
    /// Wrong email or wrong password (the caller cannot tell which).
    Refused,
    /// Too many failures for this email or from this address: nothing was checked. Try again in this many
    /// minutes.
    Locked(i64),
}

/// Checks a password sign-in and opens a session. Wrong email and wrong password are indistinguishable to the
/// caller, in answer and in time; after [`EMAIL_FAILURES`] failures for an email (whether or not it has a
/// user) or [`SOURCE_FAILURES`] from an address within [`LOCKOUT_MINUTES`], attempts are refused unchecked
/// until the window has passed, so passwords cannot be guessed at speed. A sign-in and a failed one are
/// audited at `audit_at` (payhub's clock); lockout windows and sessions run on real time. Refusals of a locked
/// email are not audited: they are not checked, and an attacker must not be able to fill the log.
pub async fn sign_in(
    store: &Store,
    email: &str,
    password: &str,
    source: &str,
    audit_at: DateTime<Utc>,
) -> ServiceResult<SignIn> {
    let email = email.trim();
    let key = email.to_lowercase();
    let now = Utc::now();
    let window = Duration::minutes(LOCKOUT_MINUTES);
    let mut conn = store.pool().acquire().await?;
    let (by_email, by_source) = user_store::recent_failures(&mut conn, &key, source, now - window).await?;
    let locked_until = if by_email.len() >= EMAIL_FAILURES {
        by_email.get(by_email.len() - EMAIL_FAILURES).map(|first| *first + window)
    } else if by_source >= SOURCE_FAILURES {
        Some(now + window)
    } else {
        None
    };
    if let Some(until) = locked_until {
        tracing::warn!(%source, "sign-in refused: too many failures for this email or from this address");
        return Ok(SignIn::Locked(((until - now).num_seconds() + 59).max(60) / 60));
    }
    let user = user_store::user_by_email(&mut conn, email).await?;
    drop(conn);
    let known_id = user.as_ref().map(|u| u.id.clone()).unwrap_or_default();
    let user = user.filter(|u| u.disabled_at.is_none());
    // An email without a user is checked against a stand-in hash, at the same cost as a real check.
    let hash = user.as_ref().map_or_else(|| password::stand_in_hash().to_owned(), |u| u.password_hash.clone());
    let matches = password::verify(password, &hash).await;
    let Some(user) = user.filter(|_| matches) else {
        let mut tx = store.begin_write().await?;
        user_store::insert_failure(&mut tx, &key, source, now, now - Duration::days(1)).await?;
        let actor = Actor { label: "anonymous".into(), source: source.to_owned(), at: audit_at };
        let tried: String = email.chars().take(254).collect();
        audit(&mut tx, &actor, "user.sign_in_failed", "user", &known_id, serde_json::json!({"email": tried})).await?;
        tx.commit().await?;
        return Ok(SignIn::Refused);
    };
    let token = tokens::new_token("");
    let mut tx = store.begin_write().await?;
    user_store::clear_failures(&mut tx, &key).await?;
    user_store::insert_session(
        &mut tx,
        &tokens::hash_token(&token),
        &user.id,
        &tokens::new_token(""),
        now,
        now + Duration::hours(SESSION_HOURS),
    )
    .await?;
    let actor = Actor { label: format!("user:{} {}", user.id, user.email), source: source.to_owned(), at: audit_at };
    audit(&mut tx, &actor, "user.sign_in", "user", &user.id, serde_json::json!({})).await?;
    tx.commit().await?;
    Ok(SignIn::Session(token))
}

/// The live session a cookie value opens.
pub async fn session(store: &Store, cookie: &str) -> ServiceResult<Option<SessionRecord>> {
    let mut conn = store.pool().acquire().await?;
    Ok(user_store::session_by_hash(&mut conn, &tokens::hash_token(cookie), Utc::now()).await?)
}

/// Ends a session.
pub async fn sign_out(store: &Store, cookie: &str) -> ServiceResult<()> {
    let mut conn = store.pool().acquire().await?;
    user_store::delete_session(&mut conn, &tokens::hash_token(cookie)).await?;
    Ok(())
}

/// Creates a one-time link for creating the first admin; returns the token (valid 24 hours).
pub async fn create_setup_link(store: &Store) -> ServiceResult<String> {
    let token = tokens::new_token("");
    let now = Utc::now();
    let mut tx = store.begin_write().await?;
    // Only the newest link works: a link printed by an earlier start (maybe to a log others read) is over.
    user_store::delete_setup_links(&mut tx).await?;
    user_store::insert_setup_link(&mut tx, &tokens::hash_token(&token), now, now + Duration::hours(24)).await?;
    tx.commit().await?;
    Ok(token)
}

/// Whether a setup link may still be used (and no user exists yet).
pub async fn setup_link_is_live(store: &Store, token: &str) -> ServiceResult<bool> {
    let mut conn = store.pool().acquire().await?;
    Ok(user_store::count_users(&mut conn).await? == 0
        && user_store::setup_link_is_live(&mut conn, &tokens::hash_token(token), Utc::now()).await?)
}

/// Creates the first admin through a setup link, which is used up; fails when the link is dead or a user
/// already exists. Audited at `audit_at` (payhub's clock).
pub async fn create_first_admin(
    store: &Store,
    token: &str,
    email: &str,
    password: &str,
    source: &str,
    audit_at: DateTime<Utc>,
) -> ServiceResult<UserRecord> {
    let mut errors = Vec::new();
    if let Err(e) = check_email(email) {
        errors.push(e);
    }
    if let Err(message) = password::check_new_password(password) {
        errors.push(FieldError::invalid("password", message));
    }
    if !errors.is_empty() {
        return Err(ServiceError::Invalid(errors));
    }
    {
        let mut tx = store.begin_write().await?;
        if user_store::count_users(&mut tx).await? > 0
            || !user_store::consume_setup_link(&mut tx, &tokens::hash_token(token), Utc::now()).await?
        {
            return Err(ServiceError::NotFound("setup link"));
        }
        tx.commit().await?;
    }
    let actor = Actor { label: "setup-link".into(), source: source.to_owned(), at: audit_at };
    create_user(store, email, password, Role::Admin, &actor).await
}
