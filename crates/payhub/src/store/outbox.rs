//! The outbox's tables: webhook endpoints, the deliveries of outbound events (one row per event and target, each
//! sent by a job), and the installation's secrets that sign deliveries. Every statement on them is here, the
//! single-row ones (an event of a flow's own transaction) next to the multi-row one (a batch's events,
//! [`Steps::insert_deliveries`]). What an event says and where it goes is decided by `processing::outbox`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};

use super::together::statements::{text, BatchConn, Steps};
use super::{map_conflict, parse_timestamp, timestamp, StoreResult};

/// Who will hear an intent's events: its WebhookURL, and whether any endpoint is configured. Read once per
/// transaction; when nobody listens an event costs nothing (most installations run without endpoints).
#[derive(Debug, Clone, Default)]
pub struct Listeners {
    url: Option<String>,
    anyone: bool,
}

impl Listeners {
    /// Whether anyone listens at all.
    pub fn anyone(&self) -> bool {
        self.anyone
    }

    /// The intent's `WebhookURL`, if it has one.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// The listeners of `intent_id`'s events (its WebhookURL is read from the intent).
    pub async fn of_intent(conn: &mut AnyConnection, intent_id: Option<&str>) -> StoreResult<Listeners> {
        let url = match intent_id {
            None => None,
            Some(id) => sqlx::query("SELECT webhook_url FROM payment_intents WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
                .map(|row| row.try_get::<Option<String>, _>(0))
                .transpose()?
                .flatten(),
        };
        Self::with_url(conn, url).await
    }

    /// The listeners when the intent's WebhookURL is already known.
    pub async fn with_url(conn: &mut AnyConnection, url: Option<String>) -> StoreResult<Listeners> {
        if url.is_some() {
            return Ok(Listeners { url, anyone: true });
        }
        Ok(Listeners { url: None, anyone: any_endpoint(conn).await? })
    }

    /// The listeners of an intent with this WebhookURL when whether any endpoint is configured is known (read
    /// once for a batch).
    pub fn known(url: Option<String>, any_endpoint: bool) -> Listeners {
        let anyone = url.is_some() || any_endpoint;
        Listeners { url, anyone }
    }
}

/// Whether any webhook endpoint is configured.
pub async fn any_endpoint(conn: &mut AnyConnection) -> StoreResult<bool> {
    Ok(sqlx::query("SELECT 1 FROM webhook_endpoints LIMIT 1").fetch_optional(conn).await?.is_some())
}

/// A configured webhook endpoint, as events are addressed to it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `whe_…`
    pub id: String,
    /// Where deliveries go.
    pub url: String,
    /// The event types it takes (empty takes every type).
    event_types: Vec<String>,
}

impl Endpoint {
    /// An endpoint as stored: `event_types` is its JSON array of types (unreadable counts as empty).
    pub fn new(id: String, url: String, event_types: &str) -> Endpoint {
        Endpoint { id, url, event_types: serde_json::from_str(event_types).unwrap_or_default() }
    }

    /// Whether the endpoint takes events of `event_type`.
    pub fn takes(&self, event_type: &str) -> bool {
        self.event_types.is_empty() || self.event_types.iter().any(|t| t == event_type || t == "*")
    }
}

/// Every configured webhook endpoint, in id order: on a flow's transaction, or on a batch's connection.
pub(crate) async fn endpoints<C: BatchConn>(conn: &mut C) -> StoreResult<Vec<Endpoint>> {
    let rows = conn.read("SELECT id, url, event_types FROM webhook_endpoints ORDER BY id", &[]).await?;
    rows.iter()
        .map(|row| {
            Ok(Endpoint::new(
                text(row, 0, "endpoint id")?.to_owned(),
                text(row, 1, "endpoint url")?.to_owned(),
                text(row, 2, "endpoint event types")?,
            ))
        })
        .collect()
}

/// One delivery of one event to one target, as composed before it is stored (pending, no attempts yet).
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// `msg_…`, also the `webhook-id` the receiver sees.
    pub id: String,
    /// The endpoint, or `None` for an intent's `WebhookURL`.
    pub endpoint_id: Option<String>,
    /// Where it goes.
    pub url: String,
    /// The event type.
    pub event_type: String,
    /// The body, as sent on every attempt.
    pub body: String,
    /// When the event happened (its creation time in the log).
    pub at: DateTime<Utc>,
}

/// The record a delivery is about: its event's `data.Id` (an installment, an intent or a mandate), so the
/// record's timeline finds it by key.
fn subject_of(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    value.get("data")?.get("Id")?.as_str().map(str::to_owned)
}

/// Stores one delivery inside the caller's transaction (a flow's own event; a batch's go through
/// [`Steps::insert_deliveries`]).
pub async fn insert_delivery(conn: &mut AnyConnection, delivery: &NewDelivery) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, endpoint_id, url, event_type, body, status, attempts, created_at, \
         updated_at, subject) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6, $7)",
    )
    .bind(&delivery.id)
    .bind(delivery.endpoint_id.as_deref())
    .bind(&delivery.url)
    .bind(&delivery.event_type)
    .bind(&delivery.body)
    .bind(timestamp(delivery.at))
    .bind(subject_of(&delivery.body))
    .execute(conn)
    .await?;
    Ok(())
}

/// A batch's deliveries with the rows of the jobs that send them, collected while the batch is composed and
/// written with its other rows.
#[derive(Default)]
pub struct Outgoing {
    deliveries: Vec<serde_json::Value>,
    jobs: Vec<serde_json::Value>,
}

impl Outgoing {
    /// Adds a delivery and the row of the job that sends it (the queue's batch row, `jobs::NewJob::row`).
    pub fn add(&mut self, delivery: &NewDelivery, job: serde_json::Value) {
        let d = delivery;
        self.deliveries.push(serde_json::json!([
            d.id,
            d.endpoint_id,
            d.url,
            d.event_type,
            d.body,
            timestamp(d.at),
            subject_of(&d.body)
        ]));
        self.jobs.push(job);
    }
}

impl Steps {
    /// Writes a batch's deliveries (as [`insert_delivery`] writes one) and the jobs that send them (as the
    /// queue enqueues one).
    pub(crate) fn insert_deliveries(&mut self, outgoing: Outgoing) {
        self.push(
            "INSERT INTO webhook_deliveries (id, endpoint_id, url, event_type, body, status, attempts, created_at, \
             updated_at, subject) SELECT {r}->>0, {r}->>1, {r}->>2, {r}->>3, {r}->>4, 'pending', 0, {r}->>5, \
             {r}->>5, {r}->>6 FROM {rows}",
            outgoing.deliveries,
            Vec::new(),
        );
        self.push(
            "INSERT INTO jobs (kind, payload, status, dedupe_key, ordering_key, attempts, max_attempts, run_at, \
             created_at) SELECT {r}->>0, {r}->>1, 'queued', {r}->>2, {r}->>3, 0, CAST({r}->>4 AS BIGINT), {r}->>5, \
             {r}->>6 FROM {rows} WHERE true ON CONFLICT (dedupe_key) DO NOTHING",
            outgoing.jobs,
            Vec::new(),
        );
    }
}

/// An endpoint as the admin API shows it (never its secret).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EndpointView {
    /// `whe_…`
    pub id: String,
    /// Where deliveries go.
    pub url: String,
    /// A note for people.
    pub description: String,
    /// Subscribed event types; empty means all.
    pub event_types: Vec<String>,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

/// Stores a new endpoint with its sealed secret. A taken id is [`super::StoreError::Conflict`].
pub async fn insert_endpoint(
    conn: &mut AnyConnection,
    endpoint: &EndpointView,
    secret_sealed: &str,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, url, description, event_types, secret_sealed, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&endpoint.id)
    .bind(&endpoint.url)
    .bind(&endpoint.description)
    .bind(serde_json::to_string(&endpoint.event_types).unwrap_or_else(|_| "[]".into()))
    .bind(secret_sealed)
    .bind(timestamp(endpoint.created_at))
    .execute(conn)
    .await
    .map_err(map_conflict)?;
    Ok(())
}

/// Every endpoint, oldest first.
pub async fn list_endpoints(pool: &AnyPool) -> StoreResult<Vec<EndpointView>> {
    let rows = sqlx::query("SELECT id, url, description, event_types, created_at FROM webhook_endpoints ORDER BY id")
        .fetch_all(pool)
        .await?;
    rows.iter().map(endpoint_view).collect()
}

fn endpoint_view(row: &AnyRow) -> StoreResult<EndpointView> {
    let types: String = row.try_get("event_types")?;
    Ok(EndpointView {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        description: row.try_get("description")?,
        event_types: serde_json::from_str(&types).unwrap_or_default(),
        created_at: parse_timestamp(&row.try_get::<String, _>("created_at")?)?,
    })
}

/// Removes an endpoint; whether it existed.
pub async fn delete_endpoint(conn: &mut AnyConnection, id: &str) -> StoreResult<bool> {
    let gone = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1").bind(id).execute(conn).await?;
    Ok(gone.rows_affected() > 0)
}

/// An endpoint's sealed secret; `None` once the endpoint is deleted.
pub async fn endpoint_secret(pool: &AnyPool, id: &str) -> StoreResult<Option<String>> {
    let row =
        sqlx::query("SELECT secret_sealed FROM webhook_endpoints WHERE id = $1").bind(id).fetch_optional(pool).await?;
    Ok(row.map(|row| row.try_get(0)).transpose()?)
}

/// The installation secret `name`, sealed: stored as `sealed` if there is none yet, so that every instance
/// ends up with the first one written.
pub async fn installation_secret(
    conn: &mut AnyConnection,
    name: &str,
    sealed: &str,
    at: DateTime<Utc>,
) -> StoreResult<String> {
    sqlx::query(
        "INSERT INTO installation_secrets (name, sealed, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(sealed)
    .bind(timestamp(at))
    .execute(&mut *conn)
    .await?;
    Ok(sqlx::query("SELECT sealed FROM installation_secrets WHERE name = $1")
        .bind(name)
        .fetch_one(conn)
        .await?
        .try_get(0)?)
}

/// Puts `sealed` in place of the installation secret `name` (made anew).
pub async fn replace_installation_secret(
    conn: &mut AnyConnection,
    name: &str,
    sealed: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM installation_secrets WHERE name = $1").bind(name).execute(&mut *conn).await?;
    sqlx::query("INSERT INTO installation_secrets (name, sealed, created_at) VALUES ($1, $2, $3)")
        .bind(name)
        .bind(sealed)
        .bind(timestamp(at))
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether the installation secret `name` exists.
pub async fn installation_secret_exists(conn: &mut AnyConnection, name: &str) -> StoreResult<bool> {
    Ok(sqlx::query("SELECT name FROM installation_secrets WHERE name = $1")
        .bind(name)
        .fetch_optional(conn)
        .await?
        .is_some())
}

/// One delivery of one event to one target, with its attempts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    /// `msg_…`, also sent as `webhook-id`.
    pub id: String,
    /// The endpoint, or `null` for an intent's `WebhookURL`.
    pub endpoint_id: Option<String>,
    /// Where it goes.
    pub url: String,
    /// The event type.
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// The last HTTP status the receiver answered, if it answered.
    pub last_status_code: Option<i64>,
    /// The last failure (status, timeout, connection error).
    pub last_error: Option<String>,
    /// The body sent (the same on every attempt).
    pub body: serde_json::Value,
    /// When the event was emitted.
    pub created_at: DateTime<Utc>,
    /// When the receiver accepted it.
    pub delivered_at: Option<DateTime<Utc>>,
}

const DELIVERY_COLUMNS: &str = "id, endpoint_id, url, event_type, body, status, attempts, last_status_code, \
                                last_error, created_at, delivered_at";

fn delivery_view(row: &AnyRow) -> StoreResult<DeliveryView> {
    let body: String = row.try_get("body")?;
    let delivered: Option<String> = row.try_get("delivered_at")?;
    Ok(DeliveryView {
        id: row.try_get("id")?,
        endpoint_id: row.try_get("endpoint_id")?,
        url: row.try_get("url")?,
        event_type: row.try_get("event_type")?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        last_status_code: row.try_get("last_status_code")?,
        last_error: row.try_get("last_error")?,
        body: serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
        created_at: parse_timestamp(&row.try_get::<String, _>("created_at")?)?,
        delivered_at: delivered.as_deref().map(parse_timestamp).transpose()?,
    })
}

/// The most recent deliveries (newest first), optionally only those in `status`; `limit` is clamped to 1–1000.
pub async fn deliveries(pool: &AnyPool, status: Option<&str>, limit: i64) -> StoreResult<Vec<DeliveryView>> {
    let rows = sqlx::query(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE (CAST($1 AS TEXT) IS NULL OR status = $1) \
         ORDER BY created_at DESC, id DESC LIMIT $2"
    ))
    .bind(status)
    .bind(limit.clamp(1, 1000))
    .fetch_all(pool)
    .await?;
    rows.iter().map(delivery_view).collect()
}

/// One delivery.
pub async fn delivery(pool: &AnyPool, id: &str) -> StoreResult<Option<DeliveryView>> {
    let row = sqlx::query(&format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(delivery_view).transpose()
}

/// Makes a delivery pending again (whatever its state), for a fresh set of attempts; whether it exists.
pub async fn reset_delivery(conn: &mut AnyConnection, id: &str, at: DateTime<Utc>) -> StoreResult<bool> {
    let updated = sqlx::query("UPDATE webhook_deliveries SET status = 'pending', updated_at = $1 WHERE id = $2")
        .bind(timestamp(at))
        .bind(id)
        .execute(conn)
        .await?;
    Ok(updated.rows_affected() > 0)
}

/// What an attempt of a delivery needs: where it goes, what it says, and whether it is still to be sent.
pub struct ToSend {
    /// The endpoint whose secret signs it, or `None` for an intent's `WebhookURL`.
    pub endpoint_id: Option<String>,
    /// Where it goes.
    pub url: String,
    /// The body.
    pub body: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
}

/// A delivery as its next attempt needs it.
pub async fn to_send(pool: &AnyPool, id: &str) -> StoreResult<Option<ToSend>> {
    let row = sqlx::query("SELECT endpoint_id, url, body, status FROM webhook_deliveries WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(ToSend {
        endpoint_id: row.try_get("endpoint_id")?,
        url: row.try_get("url")?,
        body: row.try_get("body")?,
        status: row.try_get("status")?,
    }))
}

/// Records one attempt: the delivery's new `status`, the receiver's status code and the failure, if any.
pub async fn record_attempt(
    pool: &AnyPool,
    id: &str,
    status: &str,
    status_code: Option<i64>,
    error: Option<&str>,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, last_status_code = $2, \
         last_error = $3, updated_at = $4, delivered_at = CASE WHEN $1 = 'delivered' THEN $4 ELSE delivered_at END \
         WHERE id = $5",
    )
    .bind(status)
    .bind(status_code)
    .bind(error)
    .bind(timestamp(at))
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes deliveries that ended (delivered or failed) before `before`; returns how many.
pub async fn prune_deliveries(conn: &mut AnyConnection, before: DateTime<Utc>) -> StoreResult<u64> {
    let done =
        sqlx::query("DELETE FROM webhook_deliveries WHERE status IN ('delivered', 'failed') AND updated_at < $1")
            .bind(timestamp(before))
            .execute(conn)
            .await?;
    Ok(done.rows_affected())
}
