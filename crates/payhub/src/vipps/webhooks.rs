//! Vipps tells us: each account's webhook registration at Vipps (secret sealed here), and the intake that
//! verifies a delivery over its raw bytes, stores it as a Message, and queues its processing — in order per
//! payment — before answering 2xx.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::Row;
use vipps_client::webhooks::{EventType, SignedRequest, Verifier, WebhookEvent};
use vipps_client::IdempotencyKey;

use crate::app::AppState;
use crate::error::{ServiceError, ServiceResult};
use crate::jobs::{enqueue, NewJob};
use crate::store::timestamp;
use crate::store::trail::{self, NewMessage};

/// The job that registers an account's webhook after the account was saved.
pub const REGISTER_JOB: &str = "vipps.webhook.register";

/// The job that brings one payment up to date after a webhook.
pub const SYNC_PAYMENT_JOB: &str = "vipps.payment.sync";

/// The job that brings one mandate up to date after an agreement webhook.
pub const SYNC_AGREEMENT_JOB: &str = "vipps.agreement.sync";

/// The job that brings one charge up to date after a charge webhook.
pub const SYNC_CHARGE_JOB: &str = "vipps.charge.sync";

/// The events payhub subscribes to: every ePayment event and every Recurring event.
pub fn subscribed_events() -> Vec<EventType> {
    let mut events = PAYMENT_EVENTS.to_vec();
    events.extend(EventType::RECURRING);
    events
}

/// The ePayment events payhub listens to.
pub const PAYMENT_EVENTS: [EventType; 8] = [
    EventType::PaymentCreated,
    EventType::PaymentAborted,
    EventType::PaymentExpired,
    EventType::PaymentCancelled,
    EventType::PaymentCaptured,
    EventType::PaymentRefunded,
    EventType::PaymentAuthorized,
    EventType::PaymentTerminated,
];

fn context(account_id: &str) -> String {
    format!("vipps_webhook:{account_id}")
}

/// The URL Vipps posts this account's events to.
pub fn intake_url(state: &AppState, account_id: &str) -> String {
    format!("{}/webhooks/vipps/{account_id}", state.config.public_url.as_str().trim_end_matches('/'))
}

/// Makes sure Vipps posts this account's payment events to payhub: registers the intake URL once (and again
/// when the public URL changed, removing the old registration), keeping the signing secret sealed.
pub async fn ensure_registered(state: &AppState, account_id: &str) -> ServiceResult<()> {
    // One registration at a time in this process, so two triggers (start-up and a save) cannot both register.
    static REGISTERING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = REGISTERING.lock().await;
    let url = intake_url(state, account_id);
    let existing = {
        let mut conn = state.store.pool().acquire().await?;
        sqlx::query("SELECT webhook_id, url FROM vipps_webhooks WHERE account_id = $1")
            .bind(account_id)
            .fetch_optional(&mut *conn)
            .await?
    };
    let client = state.payments.clients.get(&state.accounts, account_id).await?;
    if let Some(row) = &existing {
        let stored_url: String = row.try_get(1)?;
        if stored_url == url {
            return Ok(());
        }
        let old_id: String = row.try_get(0)?;
        if let Err(error) = client.webhooks().delete(&old_id).await {
            tracing::warn!(%account_id, %error, "could not remove the old Vipps webhook registration");
        }
    }
    // Registrations for our URL that we hold no secret for (left by a crash or another instance) would only
    // deliver events we must reject: remove them first.
    match client.webhooks().list().await {
        Ok(hooks) => {
            for hook in hooks.iter().filter(|h| h.url == url) {
                if let Err(error) = client.webhooks().delete(&hook.id).await {
                    tracing::warn!(%account_id, %error, "could not remove a stale Vipps webhook registration");
                }
            }
        }
        Err(error) => tracing::warn!(%account_id, %error, "could not list Vipps webhook registrations"),
    }
    let digest = hex::encode(Sha256::digest(url.as_bytes()));
    let key = IdempotencyKey::parse(&format!("wh{}-{}", &digest[..8], account_id.trim_start_matches("acc_")))
        .map_err(|e| ServiceError::Internal(e.into()))?;
    let registration = client
        .webhooks()
        .register(&url, &subscribed_events(), &key)
        .await
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("registering the Vipps webhook: {e}")))?;
    let sealed = state.accounts.seal(registration.secret.expose(), &context(account_id));
    let mut tx = state.store.begin_write().await?;
    sqlx::query("DELETE FROM vipps_webhooks WHERE account_id = $1").bind(account_id).execute(&mut *tx).await?;
    sqlx::query("INSERT INTO vipps_webhooks (account_id, webhook_id, url, secret_sealed, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(account_id)
        .bind(&registration.id)
        .bind(&url)
        .bind(&sealed)
        .bind(timestamp(Utc::now()))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(%account_id, %url, "registered the Vipps webhook");
    Ok(())
}

/// Registers webhooks for every account, logging (not failing on) accounts Vipps refuses.
pub async fn register_all(state: &AppState) {
    let accounts = match state.accounts.list().await {
        Ok(accounts) => accounts,
        Err(error) => {
            tracing::warn!(%error, "cannot list accounts to register webhooks");
            return;
        }
    };
    for account in accounts {
        if let Err(error) = ensure_registered(state, &account.id).await {
            tracing::warn!(account = %account.name, %error, "Vipps webhook not registered; polling covers this account");
        }
    }
}

/// `POST /webhooks/vipps/{account}`: verifies the signature over the raw body, stores the Message and queues
/// its processing; 2xx only after the durable write. Forged, tampered or stale deliveries get 401 and change
/// nothing.
pub async fn intake(
    State(state): State<AppState>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match accept(&state, &account_id, &headers, &body).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(Refusal::Unknown) => StatusCode::NOT_FOUND.into_response(),
        Err(Refusal::Unsigned(reason)) => {
            tracing::warn!(%account_id, %reason, "rejected a Vipps webhook");
            (StatusCode::UNAUTHORIZED, "signature not valid").into_response()
        }
        Err(Refusal::Internal(error)) => {
            tracing::error!(%account_id, error = ?error, "could not store a Vipps webhook");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

enum Refusal {
    Unknown,
    Unsigned(String),
    Internal(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Refusal {
    fn from(error: E) -> Self {
        Refusal::Internal(error.into())
    }
}

async fn accept(state: &AppState, account_id: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), Refusal> {
    let row = {
        let mut conn = state.store.pool().acquire().await?;
        sqlx::query("SELECT url, secret_sealed FROM vipps_webhooks WHERE account_id = $1")
            .bind(account_id)
            .fetch_optional(&mut *conn)
            .await?
    };
    let Some(row) = row else { return Err(Refusal::Unknown) };
    let url: String = row.try_get(0)?;
    let sealed: String = row.try_get(1)?;
    let secret = state.accounts.open(&sealed, &context(account_id))?;
    let registered = url::Url::parse(&url)?;
    let host = match registered.port() {
        Some(port) => format!("{}:{port}", registered.host_str().unwrap_or_default()),
        None => registered.host_str().unwrap_or_default().to_owned(),
    };
    let path_and_query = match registered.query() {
        Some(query) => format!("{}?{query}", registered.path()),
        None => registered.path().to_owned(),
    };
    let verifier = Verifier::new(vipps_client::Secret::new(secret.expose()));
    verifier
        .verify(&SignedRequest::new(&path_and_query, &host, headers, body))
        .map_err(|e| Refusal::Unsigned(e.to_string()))?;
    let text = std::str::from_utf8(body).map_err(|_| Refusal::Unsigned("body is not UTF-8".into()))?;
    let (subject, job) = match WebhookEvent::parse(body) {
        Ok(WebhookEvent::Payment(event)) => (
            Some(event.reference.clone()),
            Some((SYNC_PAYMENT_JOB, json!({"reference": event.reference}), format!("payment:{}", event.reference))),
        ),
        Ok(WebhookEvent::Agreement(event)) => (
            Some(event.agreement_id.clone()),
            Some((
                SYNC_AGREEMENT_JOB,
                json!({"agreement": event.agreement_id}),
                format!("agreement:{}", event.agreement_id),
            )),
        ),
        Ok(WebhookEvent::Charge(event)) => (
            Some(event.charge_id.clone()),
            Some((
                SYNC_CHARGE_JOB,
                json!({"charge": event.charge_id, "agreement": event.agreement_id}),
                format!("agreement:{}", event.agreement_id),
            )),
        ),
        _ => (None, None),
    };
    let now = Utc::now();
    let mut tx = state.store.begin_write().await?;
    let message_id = trail::insert_message(
        &mut tx,
        &NewMessage {
            direction: "inbound",
            channel: "vipps_webhook",
            subject: subject.as_deref(),
            body: text,
            status: "New",
        },
        now,
    )
    .await?;
    match job {
        Some((kind, mut payload, ordering)) => {
            payload["message"] = json!(message_id);
            enqueue(&mut tx, NewJob::new(kind, payload).ordering_key(ordering)).await?;
        }
        None => trail::finish_message(&mut tx, &message_id, Some("not an event payhub processes"), now).await?,
    }
    tx.commit().await?;
    Ok(())
}

/// Registers the job handlers: processing queued webhooks (the payment is read back from Vipps and the
/// records brought up to date; duplicates and reordering are harmless, the read-back is the truth), and
/// registering an account's webhook after it was saved.
pub fn register_handlers(state: &AppState) {
    let registrar = state.clone();
    state.jobs.handlers.register(REGISTER_JOB, move |job: crate::jobs::Job| {
        let state = registrar.clone();
        async move {
            let account_id = job.payload["account"].as_str().unwrap_or_default().to_owned();
            match ensure_registered(&state, &account_id).await {
                // A deleted account needs no webhook.
                Err(ServiceError::NotFound(_)) => Ok(()),
                other => other.map_err(Into::into),
            }
        }
    });
    let payments = state.payments.clone();
    let store = state.store.clone();
    state.jobs.handlers.register(SYNC_PAYMENT_JOB, move |job: crate::jobs::Job| {
        let payments = payments.clone();
        let store = store.clone();
        async move {
            let reference = job.payload["reference"].as_str().unwrap_or_default().to_owned();
            let message = job.payload["message"].as_str().map(str::to_owned);
            let outcome = payments.sync(&reference, message.as_deref()).await;
            if let Some(message) = &message {
                let mut conn = store.pool().acquire().await?;
                let error = outcome.as_ref().err().map(ToString::to_string);
                trail::finish_message(&mut conn, message, error.as_deref(), Utc::now()).await?;
            }
            outcome.map_err(Into::into)
        }
    });
    for kind in [SYNC_AGREEMENT_JOB, SYNC_CHARGE_JOB] {
        let payments = state.payments.clone();
        let store = state.store.clone();
        state.jobs.handlers.register(kind, move |job: crate::jobs::Job| {
            let payments = payments.clone();
            let store = store.clone();
            async move {
                let message = job.payload["message"].as_str().map(str::to_owned);
                let outcome = if job.kind == SYNC_AGREEMENT_JOB {
                    let agreement = job.payload["agreement"].as_str().unwrap_or_default().to_owned();
                    payments.sync_agreement(&agreement, message.as_deref()).await
                } else {
                    let charge = job.payload["charge"].as_str().unwrap_or_default().to_owned();
                    payments.sync_charge(&charge, message.as_deref()).await
                };
                match outcome {
                    Ok(()) => finish(&store, message.as_deref(), Ok(())).await,
                    // An event about an agreement or charge payhub did not make is not ours to process.
                    Err(ServiceError::NotFound(what)) => {
                        finish(&store, message.as_deref(), Err(format!("no {what} of payhub's matches this event")))
                            .await
                    }
                    Err(error) => {
                        finish(&store, message.as_deref(), Err(error.to_string())).await?;
                        Err(error.into())
                    }
                }
            }
        });
    }
}

async fn finish(store: &crate::store::Store, message: Option<&str>, outcome: Result<(), String>) -> anyhow::Result<()> {
    if let Some(message) = message {
        let mut conn = store.pool().acquire().await?;
        trail::finish_message(&mut conn, message, outcome.err().as_deref(), Utc::now()).await?;
    }
    Ok(())
}
