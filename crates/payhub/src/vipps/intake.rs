//! The intake of Vipps' webhook deliveries: each is verified over its raw bytes on its own, then stored as a
//! Message with its processing job queued **together with the deliveries that arrived meanwhile**, in one write
//! transaction, before any of them is answered 2xx. Vipps sends many deliveries at once (a batch of charges, a
//! campaign's payments) and each one alone would be a write transaction and a commit of its own through the one
//! writer; together they share one. Nobody waits on a timer (see `batcher`): a delivery alone is written at once.
//!
//! The guarantees are those of one delivery per transaction: a delivery is answered 2xx only once its Message and
//! job are committed; a refused delivery changes nothing; and a batch that fails is written again one delivery
//! at a time, so one bad delivery never fails the others (Vipps sends the failed one again).

use std::sync::Arc;

use axum::http::HeaderMap;
use chrono::Utc;
use serde_json::{json, Value};
use vipps_client::webhooks::{EventType, SignedRequest, Verifier, WebhookEvent};

use super::accounts::Accounts;
use super::webhooks::{context, SYNC_AGREEMENT_JOB, SYNC_CHARGE_JOB, SYNC_PAYMENT_JOB};
use crate::batcher::Batcher;
use crate::domain::trail::Channel;
use crate::jobs::{enqueue, NewJob};
use crate::store::trail::{self, NewMessage};
use crate::store::vipps_webhooks::{self, Registration};
use crate::store::{Store, StoreResult};

/// Why a delivery was not accepted.
pub enum Refusal {
    /// No webhook is registered for this account.
    Unknown,
    /// The signature, the time or the body is not what Vipps sends: forged, tampered or stale.
    Unsigned(String),
    /// payhub could not store it; Vipps will deliver it again.
    Internal(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Refusal {
    fn from(error: E) -> Self {
        Refusal::Internal(error.into())
    }
}

/// A verified delivery, ready to be stored: its body, what it is about, and the job that processes it.
struct Verified {
    text: String,
    subject: Option<String>,
    job: Option<(&'static str, Value, String)>,
}

type Writes = Batcher<Verified, Result<(), String>>;
type Registrations = Batcher<String, Result<Option<Registration>, String>>;

/// Vipps' deliveries, verified one by one and written together. Cheap to clone; one per application.
#[derive(Clone)]
pub struct Intake {
    accounts: Accounts,
    registrations: Arc<Registrations>,
    writes: Arc<Writes>,
}

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Intake")
    }
}

impl Intake {
    /// The intake over `store` (starts its writer and its registration reader on the current runtime).
    pub fn new(store: Store, accounts: Accounts) -> Self {
        let registrations = crate::batcher::reader(store.pool().clone(), |conn, account_id: &String| {
            Box::pin(async move { vipps_webhooks::registration(conn, account_id).await.map_err(|e| e.to_string()) })
        });
        let writes = Batcher::spawn(move |batch: Vec<Verified>| {
            let store = store.clone();
            async move { write(&store, batch).await }
        });
        Self { accounts, registrations: Arc::new(registrations), writes: Arc::new(writes) }
    }

    /// Verifies a delivery over its raw bytes, stores it as a Message and queues its processing (in order per
    /// payment or agreement), all before the caller answers 2xx. A refused delivery changes nothing.
    pub async fn accept(&self, account_id: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), Refusal> {
        let registration = self
            .registrations
            .submit(account_id.to_owned())
            .await
            .unwrap_or_else(|| Err("the registration reader stopped".into()))
            .map_err(|e| Refusal::Internal(anyhow::anyhow!(e)))?;
        let Some(registration) = registration else { return Err(Refusal::Unknown) };
        let verified = self.verify(account_id, &registration, headers, body)?;
        match self.writes.submit(verified).await {
            Some(Ok(())) => Ok(()),
            Some(Err(error)) => Err(Refusal::Internal(anyhow::anyhow!(error))),
            None => Err(Refusal::Internal(anyhow::anyhow!("the webhook writer stopped"))),
        }
    }

    fn verify(
        &self,
        account_id: &str,
        registration: &Registration,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Verified, Refusal> {
        let secret = self.accounts.open(&registration.secret_sealed, &context(account_id))?;
        let registered = url::Url::parse(&registration.url)?;
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
            Ok(WebhookEvent::Charge(event)) => {
                let mut payload = json!({"charge": event.charge_id, "agreement": event.agreement_id});
                // An asynchronous batch create Vipps gave up on: the job needs Vipps' reason, as the charge is gone.
                if event.event_type == EventType::ChargeCreationFailed {
                    let reason = event.failure_reason.as_ref().map(ToString::to_string).or(event.failure_code.clone());
                    payload["creationFailed"] = json!(reason.unwrap_or_else(|| "no reason given".into()));
                }
                (
                    Some(event.charge_id.clone()),
                    Some((SYNC_CHARGE_JOB, payload, format!("agreement:{}", event.agreement_id))),
                )
            }
            _ => (None, None),
        };
        Ok(Verified { text: text.to_owned(), subject, job })
    }
}

/// Writes a batch in one transaction; when that fails, each delivery alone, so each gets its own outcome.
async fn write(store: &Store, batch: Vec<Verified>) -> Vec<Result<(), String>> {
    if batch.len() > 1 && write_all(store, &batch).await.is_ok() {
        return batch.iter().map(|_| Ok(())).collect();
    }
    let mut outcomes = Vec::with_capacity(batch.len());
    for delivery in &batch {
        outcomes.push(write_all(store, std::slice::from_ref(delivery)).await.map_err(|e| e.to_string()));
    }
    outcomes
}

async fn write_all(store: &Store, deliveries: &[Verified]) -> StoreResult<()> {
    let now = Utc::now();
    let mut tx = store.begin_write().await?;
    for delivery in deliveries {
        let message = NewMessage::received(Channel::VippsWebhook, delivery.subject.as_deref(), &delivery.text);
        let message_id = trail::insert_message(&mut tx, &message, now).await?;
        match &delivery.job {
            Some((kind, payload, ordering)) => {
                let mut payload = payload.clone();
                payload["message"] = json!(message_id);
                enqueue(&mut tx, NewJob::new(*kind, payload).ordering_key(ordering.clone())).await?;
            }
            None => trail::finish_message(&mut tx, &message_id, Some("not an event payhub processes"), now).await?,
        }
    }
    tx.commit().await?;
    Ok(())
}
