//! Vipps tells us: each account's webhook registration at Vipps (secret sealed here) and the jobs that process
//! what a delivery says; the intake itself (verify, store, queue before the 2xx) is [`super::intake`]'s.

use std::time::Duration;

use chrono::Utc;
use vipps_client::webhooks::EventType;
use vipps_client::IdempotencyKey;

use super::accounts::Accounts;
use super::client::VippsClients;
use crate::error::{ServiceError, ServiceResult};
use crate::jobs::heartbeat::Heartbeat;
use crate::jobs::{Handlers, Job};
use crate::store::{vipps_webhooks, Store};

/// The job that registers an account's webhook after the account was saved.
pub const REGISTER_JOB: &str = "vipps.webhook.register";

/// The job that brings one payment up to date after a webhook.
pub const SYNC_PAYMENT_JOB: &str = "vipps.payment.sync";

/// The job that brings one mandate up to date after an agreement webhook.
pub const SYNC_AGREEMENT_JOB: &str = "vipps.agreement.sync";

/// The job that brings one charge up to date after a charge webhook.
pub const SYNC_CHARGE_JOB: &str = "vipps.charge.sync";

/// The beat that keeps every account's webhook registered.
pub const REGISTER_BEAT: &str = "vipps.register_webhooks";

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

pub(crate) fn context(account_id: &str) -> String {
    format!("vipps_webhook:{account_id}")
}

/// The URL Vipps posts this account's events to.
pub fn intake_url(public_url: &url::Url, account_id: &str) -> String {
    format!("{}/webhooks/vipps/{account_id}", public_url.as_str().trim_end_matches('/'))
}

/// Registers each account's webhook at Vipps: what it needs of the application, and nothing more.
#[derive(Clone)]
pub struct Registrar {
    store: Store,
    accounts: Accounts,
    clients: VippsClients,
    public_url: url::Url,
}

impl Registrar {
    /// A registrar that registers `public_url`'s intake with each account's client.
    pub fn new(store: Store, accounts: Accounts, clients: VippsClients, public_url: url::Url) -> Self {
        Self { store, accounts, clients, public_url }
    }

    /// The same registrar for another public URL (the installation moved).
    pub fn with_public_url(mut self, public_url: url::Url) -> Self {
        self.public_url = public_url;
        self
    }

    /// Makes sure Vipps posts this account's payment events to payhub: registers the intake URL once (and again
    /// when the public URL changed, removing the old registration), keeping the signing secret sealed.
    pub async fn ensure_registered(&self, account_id: &str) -> ServiceResult<()> {
        // One registration at a time in this process, so two triggers (start-up and a save) cannot both register.
        static REGISTERING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _one_at_a_time = REGISTERING.lock().await;
        let url = intake_url(&self.public_url, account_id);
        let existing = {
            let mut conn = self.store.pool().acquire().await?;
            vipps_webhooks::registration(&mut conn, account_id).await?
        };
        let client = self.clients.get(&self.accounts, account_id).await?;
        if let Some(existing) = &existing {
            if existing.url == url {
                return Ok(());
            }
            if let Err(error) = client.webhooks().delete(&existing.webhook_id).await {
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
        // The key is stored before the call: a retry after a crash repeats this registration, while a later
        // registration of the same URL gets a new key (Vipps would replay the earlier, deleted one).
        let key = {
            let fresh = format!("wh-{}", uuid::Uuid::new_v4().simple());
            let mut conn = self.store.pool().acquire().await?;
            vipps_webhooks::attempt_key(&mut conn, account_id, &url, &fresh, Utc::now()).await?
        };
        let key = IdempotencyKey::parse(&key).map_err(|e| ServiceError::Internal(e.into()))?;
        let registered = client
            .webhooks()
            .register(&url, &subscribed_events(), &key)
            .await
            .map_err(|e| ServiceError::Internal(anyhow::anyhow!("registering the Vipps webhook: {e}")))?;
        let registration = vipps_webhooks::Registration {
            webhook_id: registered.id.clone(),
            url: url.clone(),
            secret_sealed: self.accounts.seal(registered.secret.expose(), &context(account_id)),
        };
        let mut tx = self.store.begin_write().await?;
        vipps_webhooks::save_registration(&mut tx, account_id, &registration, Utc::now()).await?;
        tx.commit().await?;
        tracing::info!(%account_id, %url, "registered the Vipps webhook");
        Ok(())
    }

    /// Registers webhooks for every account, logging (not failing on) accounts Vipps refuses.
    pub async fn register_all(&self) {
        let accounts = match self.accounts.list().await {
            Ok(accounts) => accounts,
            Err(error) => {
                tracing::warn!(%error, "cannot list accounts to register webhooks");
                return;
            }
        };
        for account in accounts {
            if let Err(error) = self.ensure_registered(&account.id).await {
                tracing::warn!(account = %account.name, %error, "Vipps webhook not registered; polling covers this account");
            }
        }
    }

    /// Registers the job that registers an account's webhook after the account was saved.
    pub fn register_job(&self, handlers: &Handlers) {
        let registrar = self.clone();
        handlers.register(REGISTER_JOB, move |job: Job| {
            let registrar = registrar.clone();
            async move {
                let account_id = job.payload["account"].as_str().unwrap_or_default().to_owned();
                match registrar.ensure_registered(&account_id).await {
                    // A deleted account needs no webhook.
                    Err(ServiceError::NotFound(_)) => Ok(()),
                    other => other.map_err(Into::into),
                }
            }
        });
    }

    /// Registers the beat that renews every account's registration (a changed public URL, a lost one).
    pub fn register_beat(&self, heartbeat: &Heartbeat) {
        let registrar = self.clone();
        heartbeat.register(REGISTER_BEAT, Duration::from_secs(300), move |_| {
            let registrar = registrar.clone();
            async move {
                registrar.register_all().await;
                Ok(())
            }
        });
    }
}
