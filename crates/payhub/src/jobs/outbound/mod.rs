//! Outbound webhooks: payhub tells the integrator's systems what happened.
//!
//! Targets are the endpoints configured for the installation (each with its own `whsec_…` secret, shown once
//! at creation and stored sealed) and, per payment intent, its `WebhookURL` (signed with the installation's
//! intent-webhook secret, created on first need and stored sealed). [`emit`] writes one delivery per target
//! inside the caller's transaction and enqueues a job for each; the job posts the body signed per
//! Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`) and is
//! retried with backoff until the receiver answers 2xx. The delivery log keeps attempts, the last status code
//! and error; any delivery can be sent again.
//!
//! The body is `{"type": "...", "timestamp": "...", "data": {...}}`; `webhook-id` is the delivery id and stays
//! the same across retries and resends, so receivers can drop duplicates.

mod signature;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

pub use signature::{new_secret, sign, verify, InvalidSecret};

use super::{Handlers, Job, NewJob, Queue};
use crate::auth::{self, Actor};
use crate::domain::ids::new_id;
use crate::domain::FieldError;
use crate::error::{ServiceError, ServiceResult};
use crate::secrets::MasterKey;
use crate::store::batch::{Endpoint, Steps};
use crate::store::{map_conflict, parse_timestamp, timestamp, StoreResult};

/// The job kind of one delivery attempt.
pub const DELIVER: &str = "webhook.deliver";

const INTENT_SECRET_NAME: &str = "intent_webhook_secret";

/// Attempts per delivery before it is marked `failed` (spread over a few hours with the default backoff).
pub const DELIVERY_ATTEMPTS: i64 = 12;

/// The event types payhub emits (FinDock's names).
pub const EVENT_TYPES: &[&str] = &[
    "paymentIntent.created",
    "paymentIntent.processed",
    "paymentIntent.in_review",
    "paymentIntent.failed",
    "installment.created",
    "installment.status_change",
    "mandate.status_change",
];

/// Writes one delivery of `event_type` per target (every endpoint subscribed to it, plus `extra_url`, the
/// intent's `WebhookURL`) inside the caller's transaction, and enqueues a delivery job for each. Returns the
/// delivery ids.
pub async fn emit(
    conn: &mut AnyConnection,
    event_type: &str,
    data: serde_json::Value,
    extra_url: Option<&str>,
) -> StoreResult<Vec<String>> {
    emit_at(conn, event_type, data, extra_url, Utc::now()).await
}

/// [`emit`] with the event's time given (sandbox mode passes the virtual clock's time); the deliveries are due
/// at once whichever clock that time came from.
pub async fn emit_at(
    conn: &mut AnyConnection,
    event_type: &str,
    data: serde_json::Value,
    extra_url: Option<&str>,
    at: DateTime<Utc>,
) -> StoreResult<Vec<String>> {
    let body = event_body(event_type, data, at);
    let endpoints: Vec<Endpoint> = sqlx::query("SELECT id, url, event_types FROM webhook_endpoints ORDER BY id")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| Ok(Endpoint::new(row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
        .collect::<Result<_, sqlx::Error>>()?;
    let now = timestamp(at);
    let mut ids = Vec::new();
    for (endpoint_id, url) in targets(&endpoints, event_type, extra_url) {
        let id = new_id("msg");
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, endpoint_id, url, event_type, body, status, attempts, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6)",
        )
        .bind(&id)
        .bind(endpoint_id)
        .bind(url)
        .bind(event_type)
        .bind(&body)
        .bind(&now)
        .execute(&mut *conn)
        .await?;
        // Due at once: an event stamped by a clock running ahead (the simulator's) must not wait for it.
        super::insert(conn, delivery_job(&id), at.min(Utc::now())).await?;
        ids.push(id);
    }
    Ok(ids)
}

/// An event's body as delivered.
fn event_body(event_type: &str, data: serde_json::Value, at: DateTime<Utc>) -> String {
    serde_json::json!({ "type": event_type, "timestamp": timestamp(at), "data": data }).to_string()
}

/// Where an event of `event_type` goes: every endpoint that takes it (with its id), then `extra_url`.
fn targets<'e>(
    endpoints: &'e [Endpoint],
    event_type: &'e str,
    extra_url: Option<&'e str>,
) -> impl Iterator<Item = (Option<&'e str>, &'e str)> {
    let endpoints =
        endpoints.iter().filter(move |e| e.takes(event_type)).map(|e| (Some(e.id.as_str()), e.url.as_str()));
    endpoints.chain(extra_url.filter(|u| !u.is_empty()).map(|url| (None, url)))
}

/// Events of a batch ([`crate::store::batch`]), addressed to their targets as [`emit_at`] addresses one, and
/// written with the batch's other rows by [`Outbox::write_to`].
#[derive(Default)]
pub(crate) struct Outbox {
    deliveries: Vec<serde_json::Value>,
    jobs: Vec<serde_json::Value>,
}

impl Outbox {
    /// Adds the deliveries of one event to `endpoints` (the installation's, read once for the batch) and
    /// `extra_url`.
    pub(crate) fn emit(
        &mut self,
        endpoints: &[Endpoint],
        event_type: &str,
        data: serde_json::Value,
        extra_url: Option<&str>,
        at: DateTime<Utc>,
    ) {
        let body = event_body(event_type, data, at);
        for (endpoint_id, url) in targets(endpoints, event_type, extra_url) {
            let id = new_id("msg");
            self.deliveries.push(serde_json::json!([id, endpoint_id, url, event_type, body, timestamp(at)]));
            self.jobs.push(delivery_job(&id).row(at.min(Utc::now())));
        }
    }

    /// Adds the deliveries and their jobs to `steps`.
    pub(crate) fn write_to(self, steps: &mut Steps) {
        steps.insert_deliveries(self.deliveries, self.jobs);
    }
}

fn delivery_job(delivery_id: &str) -> NewJob {
    NewJob::new(DELIVER, serde_json::json!({ "delivery_id": delivery_id })).max_attempts(DELIVERY_ATTEMPTS)
}

/// Body of `POST /admin/api/webhook-endpoints`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// Where to post (http or https).
    pub url: String,
    /// A note for people.
    #[serde(default)]
    pub description: String,
    /// The event types to send; empty or absent means all.
    #[serde(default)]
    pub event_types: Vec<String>,
}

/// An endpoint as the admin API shows it (never its secret).
#[derive(Debug, Clone, Serialize)]
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

/// One delivery of one event to one target, with its attempts.
#[derive(Debug, Clone, Serialize)]
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

const DELIVERY_COLUMNS: &str = "id, endpoint_id, url, event_type, body, status, attempts, last_status_code, \
                                last_error, created_at, delivered_at";

/// Outbound webhook services: endpoints, the delivery log, resend, and the delivery job. Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    queue: Queue,
    key: MasterKey,
    http: reqwest::Client,
    timeout: Duration,
}

impl Outbound {
    /// Outbound webhooks on `queue`'s database, sealing secrets with `key`; receivers get 10 s to answer.
    pub fn new(queue: Queue, key: MasterKey) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("payhub/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self { queue, key, http, timeout: Duration::from_secs(10) }
    }

    /// The same services with another receiver timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Registers the delivery job's handler.
    pub fn register(&self, handlers: &Handlers) {
        let me = self.clone();
        handlers.register(DELIVER, move |job: Job| {
            let me = me.clone();
            async move { me.deliver(job).await }
        });
    }

    /// Adds an endpoint; the answer carries its secret, the only time it is shown. Audited.
    pub async fn create_endpoint(&self, input: &NewEndpoint, actor: &Actor) -> ServiceResult<(EndpointView, String)> {
        let mut errors = Vec::new();
        match url::Url::parse(input.url.trim()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {}
            _ => errors.push(FieldError::invalid("url", "must be an absolute http or https URL")),
        }
        if input.description.chars().count() > 500 {
            errors.push(FieldError::invalid("description", "must be at most 500 characters"));
        }
        if let Some(bad) = input.event_types.iter().find(|t| !EVENT_TYPES.contains(&t.as_str()) && *t != "*") {
            errors.push(FieldError::invalid(
                "event_types",
                format!("unknown event type `{bad}`; known: {}", EVENT_TYPES.join(", ")),
            ));
        }
        if !errors.is_empty() {
            return Err(ServiceError::Invalid(errors));
        }
        let id = new_id("whe");
        let secret = new_secret();
        let now = self.queue.now();
        let mut tx = self.queue.store().begin_write().await?;
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, url, description, event_types, secret_sealed, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(input.url.trim())
        .bind(&input.description)
        .bind(serde_json::to_string(&input.event_types).unwrap_or_else(|_| "[]".into()))
        .bind(self.key.seal(&secret, &endpoint_context(&id)))
        .bind(timestamp(now))
        .execute(&mut *tx)
        .await
        .map_err(map_conflict)?;
        auth::audit(
            &mut tx,
            actor,
            "webhook_endpoint.create",
            "webhook_endpoint",
            &id,
            serde_json::json!({ "url": input.url.trim(), "event_types": input.event_types }),
        )
        .await?;
        tx.commit().await?;
        let view = EndpointView {
            id,
            url: input.url.trim().to_owned(),
            description: input.description.clone(),
            event_types: input.event_types.clone(),
            created_at: now,
        };
        Ok((view, secret))
    }

    /// Every endpoint, oldest first.
    pub async fn list_endpoints(&self) -> ServiceResult<Vec<EndpointView>> {
        let rows =
            sqlx::query("SELECT id, url, description, event_types, created_at FROM webhook_endpoints ORDER BY id")
                .fetch_all(self.queue.store().pool())
                .await?;
        Ok(rows.iter().map(endpoint_view).collect::<StoreResult<_>>()?)
    }

    /// Removes an endpoint. Its pending deliveries fail on their next attempt; the log keeps them. Audited.
    pub async fn delete_endpoint(&self, id: &str, actor: &Actor) -> ServiceResult<()> {
        let mut tx = self.queue.store().begin_write().await?;
        let gone = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1").bind(id).execute(&mut *tx).await?;
        if gone.rows_affected() == 0 {
            return Err(ServiceError::NotFound("webhook endpoint"));
        }
        auth::audit(&mut tx, actor, "webhook_endpoint.delete", "webhook_endpoint", id, serde_json::json!({})).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The secret that signs deliveries to intents' `WebhookURL`s, created (and sealed) on first need.
    pub async fn intent_secret(&self) -> ServiceResult<String> {
        let mut tx = self.queue.store().begin_write().await?;
        sqlx::query(
            "INSERT INTO installation_secrets (name, sealed, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(INTENT_SECRET_NAME)
        .bind(self.key.seal(&new_secret(), &installation_context(INTENT_SECRET_NAME)))
        .bind(timestamp(self.queue.now()))
        .execute(&mut *tx)
        .await?;
        let sealed: String = sqlx::query("SELECT sealed FROM installation_secrets WHERE name = $1")
            .bind(INTENT_SECRET_NAME)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        tx.commit().await?;
        let secret = self
            .key
            .open(&sealed, &installation_context(INTENT_SECRET_NAME))
            .map_err(|_| anyhow::anyhow!("the intent webhook secret does not open with this master key"))?;
        Ok(secret.expose().to_owned())
    }

    /// The most recent deliveries (newest first), optionally only those in `status`.
    pub async fn deliveries(&self, status: Option<&str>, limit: i64) -> ServiceResult<Vec<DeliveryView>> {
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE (CAST($1 AS TEXT) IS NULL OR status = $1) \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(status)
        .bind(limit.clamp(1, 1000))
        .fetch_all(self.queue.store().pool())
        .await?;
        Ok(rows.iter().map(delivery_view).collect::<StoreResult<_>>()?)
    }

    /// One delivery.
    pub async fn delivery(&self, id: &str) -> ServiceResult<DeliveryView> {
        let row = sqlx::query(&format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.queue.store().pool())
            .await?
            .ok_or(ServiceError::NotFound("webhook delivery"))?;
        Ok(delivery_view(&row)?)
    }

    /// Sends a delivery again (whatever its state), with a fresh set of attempts and the same `webhook-id`.
    /// Audited.
    pub async fn resend(&self, id: &str, actor: &Actor) -> ServiceResult<DeliveryView> {
        let mut tx = self.queue.store().begin_write().await?;
        let updated = sqlx::query("UPDATE webhook_deliveries SET status = 'pending', updated_at = $1 WHERE id = $2")
            .bind(timestamp(self.queue.now()))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(ServiceError::NotFound("webhook delivery"));
        }
        self.queue.enqueue(&mut tx, delivery_job(id)).await?;
        auth::audit(&mut tx, actor, "webhook_delivery.resend", "webhook_delivery", id, serde_json::json!({})).await?;
        tx.commit().await?;
        self.delivery(id).await
    }

    async fn secret_for(&self, endpoint_id: Option<&str>) -> anyhow::Result<Option<String>> {
        match endpoint_id {
            None => Ok(Some(self.intent_secret().await.map_err(|e| anyhow::anyhow!("{e}"))?)),
            Some(id) => {
                let row = sqlx::query("SELECT secret_sealed FROM webhook_endpoints WHERE id = $1")
                    .bind(id)
                    .fetch_optional(self.queue.store().pool())
                    .await?;
                let Some(row) = row else { return Ok(None) };
                let sealed: String = row.try_get(0)?;
                let secret = self
                    .key
                    .open(&sealed, &endpoint_context(id))
                    .map_err(|_| anyhow::anyhow!("endpoint {id}: its secret does not open with this master key"))?;
                Ok(Some(secret.expose().to_owned()))
            }
        }
    }

    /// One attempt of one delivery (the [`DELIVER`] job).
    async fn deliver(&self, job: Job) -> anyhow::Result<()> {
        let delivery_id = job
            .payload
            .get("delivery_id")
            .and_then(|v| v.as_str())
            .ok_or_else(|| anyhow::anyhow!("delivery job without delivery_id"))?
            .to_owned();
        let row = sqlx::query("SELECT endpoint_id, url, body, status FROM webhook_deliveries WHERE id = $1")
            .bind(&delivery_id)
            .fetch_optional(self.queue.store().pool())
            .await?;
        let Some(row) = row else {
            tracing::warn!(delivery = %delivery_id, "delivery job for a delivery that does not exist");
            return Ok(());
        };
        let status: String = row.try_get("status")?;
        if status != "pending" {
            return Ok(());
        }
        let endpoint_id: Option<String> = row.try_get("endpoint_id")?;
        let url: String = row.try_get("url")?;
        let body: String = row.try_get("body")?;
        let outcome = match self.secret_for(endpoint_id.as_deref()).await? {
            None => Attempt { status_code: None, error: Some("the endpoint was deleted".into()), final_: true },
            Some(secret) => self.post(&secret, &delivery_id, &url, &body).await,
        };
        let now = timestamp(self.queue.now());
        let delivered = outcome.error.is_none();
        let final_failure = !delivered && (outcome.final_ || job.is_last_attempt());
        let status = if delivered {
            "delivered"
        } else if final_failure {
            "failed"
        } else {
            "pending"
        };
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, last_status_code = $2, \
             last_error = $3, updated_at = $4, delivered_at = CASE WHEN $1 = 'delivered' THEN $4 ELSE delivered_at END \
             WHERE id = $5",
        )
        .bind(status)
        .bind(outcome.status_code)
        .bind(outcome.error.as_deref())
        .bind(&now)
        .bind(&delivery_id)
        .execute(self.queue.store().pool())
        .await?;
        match outcome.error {
            Some(error) if !final_failure => Err(anyhow::anyhow!("delivery {delivery_id} to {url}: {error}")),
            _ => Ok(()),
        }
    }

    async fn post(&self, secret: &str, id: &str, url: &str, body: &str) -> Attempt {
        let sent_at = self.queue.now().timestamp();
        let signature = match sign(secret, id, sent_at, body.as_bytes()) {
            Ok(signature) => signature,
            Err(e) => return Attempt { status_code: None, error: Some(e.to_string()), final_: true },
        };
        let request = self
            .http
            .post(url)
            .timeout(self.timeout)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", sent_at.to_string())
            .header("webhook-signature", signature)
            .body(body.to_owned());
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                Attempt { status_code: Some(i64::from(response.status().as_u16())), error: None, final_: false }
            }
            Ok(response) => Attempt {
                status_code: Some(i64::from(response.status().as_u16())),
                error: Some(format!("the receiver answered {}", response.status())),
                final_: false,
            },
            Err(e) if e.is_timeout() => Attempt {
                status_code: None,
                error: Some(format!("no answer within {:?}", self.timeout)),
                final_: false,
            },
            Err(e) => Attempt { status_code: None, error: Some(format!("could not send: {e}")), final_: false },
        }
    }
}

struct Attempt {
    status_code: Option<i64>,
    error: Option<String>,
    final_: bool,
}

fn endpoint_context(id: &str) -> String {
    format!("webhook_endpoint:{id}:secret")
}

fn installation_context(name: &str) -> String {
    format!("installation:{name}")
}
