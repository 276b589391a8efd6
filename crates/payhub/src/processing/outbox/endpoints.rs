//! Administering the outbox: webhook endpoints (each with its own secret, shown once at creation and stored
//! sealed), the installation's intent-webhook secret, the delivery log, and sending a delivery again. Every
//! change is audited in its own transaction.

use serde::Deserialize;

use super::deliver::{delivery_job, endpoint_context, installation_context, new_secret, INTENT_SECRET_NAME};
use super::events::EVENT_TYPES;
use super::Outbox;
use crate::auth::{self, Actor};
use crate::domain::ids::new_id;
use crate::domain::FieldError;
use crate::error::{ServiceError, ServiceResult};
use crate::store::outbox::{self as table, DeliveryView, EndpointView};

/// Body of `POST /admin/api/webhook-endpoints`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// Where to post: an absolute http or https URL of a public host.
    pub url: String,
    /// A note for people (at most 500 characters).
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: String,
    /// The event types to send (FinDock's names, or `*`); empty or absent means all.
    #[serde(default)]
    pub event_types: Vec<String>,
}

impl Outbox {
    /// Adds an endpoint; the answer carries its secret, the only time it is shown. Audited.
    pub async fn create_endpoint(&self, input: &NewEndpoint, actor: &Actor) -> ServiceResult<(EndpointView, String)> {
        let mut errors = Vec::new();
        match url::Url::parse(input.url.trim()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
                if let Err(refused) = self.targets.check_url(&url) {
                    errors.push(FieldError::invalid("url", format!("must point to a public host: {refused}")));
                }
            }
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
        let secret = new_secret();
        let view = EndpointView {
            id: new_id("whe"),
            url: input.url.trim().to_owned(),
            description: input.description.clone(),
            event_types: input.event_types.clone(),
            created_at: self.queue.now(),
        };
        let mut tx = self.queue.store().begin_write().await?;
        table::insert_endpoint(&mut tx, &view, &self.key.seal(&secret, &endpoint_context(&view.id))).await?;
        auth::audit(
            &mut tx,
            actor,
            "webhook_endpoint.create",
            "webhook_endpoint",
            &view.id,
            serde_json::json!({ "url": view.url, "event_types": input.event_types }),
        )
        .await?;
        tx.commit().await?;
        Ok((view, secret))
    }

    /// Every endpoint, oldest first.
    pub async fn list_endpoints(&self) -> ServiceResult<Vec<EndpointView>> {
        Ok(table::list_endpoints(self.queue.store().pool()).await?)
    }

    /// Removes an endpoint. Its pending deliveries fail on their next attempt; the log keeps them. Audited.
    pub async fn delete_endpoint(&self, id: &str, actor: &Actor) -> ServiceResult<()> {
        let mut tx = self.queue.store().begin_write().await?;
        if !table::delete_endpoint(&mut tx, id).await? {
            return Err(ServiceError::NotFound("webhook endpoint"));
        }
        auth::audit(&mut tx, actor, "webhook_endpoint.delete", "webhook_endpoint", id, serde_json::json!({})).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The secret that signs deliveries to intents' `WebhookURL`s, created (and sealed) on first need.
    pub async fn intent_secret(&self) -> ServiceResult<String> {
        let fresh = self.key.seal(&new_secret(), &installation_context(INTENT_SECRET_NAME));
        let mut tx = self.queue.store().begin_write().await?;
        let sealed = table::installation_secret(&mut tx, INTENT_SECRET_NAME, &fresh, self.queue.now()).await?;
        tx.commit().await?;
        let secret = self
            .key
            .open(&sealed, &installation_context(INTENT_SECRET_NAME))
            .map_err(|_| anyhow::anyhow!("the intent webhook secret does not open with this master key"))?;
        Ok(secret.expose().to_owned())
    }

    /// Makes the intent webhook secret anew and answers it: the one time it is shown (receivers of intents'
    /// `WebhookURL` deliveries verify with it; deliveries signed with the old one are not re-signed). Audited.
    pub async fn rotate_intent_secret(&self, actor: &Actor) -> ServiceResult<String> {
        let secret = new_secret();
        let sealed = self.key.seal(&secret, &installation_context(INTENT_SECRET_NAME));
        let mut tx = self.queue.store().begin_write().await?;
        table::replace_installation_secret(&mut tx, INTENT_SECRET_NAME, &sealed, self.queue.now()).await?;
        auth::audit(
            &mut tx,
            actor,
            "webhook.intent_secret.rotate",
            "installation_secret",
            INTENT_SECRET_NAME,
            serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(secret)
    }

    /// Whether the intent webhook secret has been made (lists say so instead of showing it).
    pub async fn intent_secret_set(&self) -> ServiceResult<bool> {
        let mut conn = self.queue.store().pool().acquire().await?;
        Ok(table::installation_secret_exists(&mut conn, INTENT_SECRET_NAME).await?)
    }

    /// The most recent deliveries (newest first), optionally only those in `status`.
    pub async fn deliveries(&self, status: Option<&str>, limit: i64) -> ServiceResult<Vec<DeliveryView>> {
        Ok(table::deliveries(self.queue.store().pool(), status, limit).await?)
    }

    /// One delivery.
    pub async fn delivery(&self, id: &str) -> ServiceResult<DeliveryView> {
        table::delivery(self.queue.store().pool(), id).await?.ok_or(ServiceError::NotFound("webhook delivery"))
    }

    /// Sends a delivery again (whatever its state), with a fresh set of attempts and the same `webhook-id`.
    /// Audited.
    pub async fn resend(&self, id: &str, actor: &Actor) -> ServiceResult<DeliveryView> {
        let mut tx = self.queue.store().begin_write().await?;
        if !table::reset_delivery(&mut tx, id, self.queue.now()).await? {
            return Err(ServiceError::NotFound("webhook delivery"));
        }
        self.queue.enqueue(&mut tx, delivery_job(id)).await?;
        auth::audit(&mut tx, actor, "webhook_delivery.resend", "webhook_delivery", id, serde_json::json!({})).await?;
        tx.commit().await?;
        self.delivery(id).await
    }
}
