//! Delivering outbound events: each delivery is a job ([`DELIVER`]) that posts the stored body to its target,
//! signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64
//! HMAC-SHA256>`), and is retried with backoff until the receiver answers 2xx or the attempts run out. Endpoints
//! sign with their own `whsec_…` secret; intents' `WebhookURL`s with the installation's intent-webhook secret.
//! `webhook-id` is the delivery id and stays the same across retries and resends, so receivers can drop
//! duplicates.
//!
//! Unless private targets are allowed, a delivery goes only to public addresses: a host written as an address
//! is judged before sending, and a name is resolved by [`CheckedResolver`], which hands the connection only the
//! addresses it judged, all of them public. The address checked is the address connected to, so a name that
//! resolves elsewhere a moment later (DNS rebinding) gains nothing. A refused delivery fails at once, without
//! retries; redirects are never followed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use super::Outbox;
use crate::domain::webhook_target::{RefusedTarget, WebhookTargets};
use crate::jobs::{Job, NewJob};
use crate::store::outbox as table;

/// The job kind of one delivery attempt.
pub const DELIVER: &str = "webhook.deliver";

/// Attempts per delivery before it is marked `failed` (spread over a few hours with the default backoff).
pub const DELIVERY_ATTEMPTS: i64 = 12;

/// The job that sends delivery `delivery_id`.
pub(super) fn delivery_job(delivery_id: &str) -> NewJob {
    NewJob::new(DELIVER, serde_json::json!({ "delivery_id": delivery_id })).max_attempts(DELIVERY_ATTEMPTS)
}

const SECRET_PREFIX: &str = "whsec_";
/// The installation secret that signs deliveries to intents' `WebhookURL`s.
pub(super) const INTENT_SECRET_NAME: &str = "intent_webhook_secret";

/// A new random signing secret: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", BASE64.encode(bytes))
}

/// A secret that is not `whsec_` + base64 (or decodes to nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a webhook secret is `whsec_` followed by base64")]
pub struct InvalidSecret;

fn secret_bytes(secret: &str) -> Result<Vec<u8>, InvalidSecret> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    match BASE64.decode(encoded) {
        Ok(bytes) if !bytes.is_empty() => Ok(bytes),
        _ => Err(InvalidSecret),
    }
}

fn signature_bytes(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return Vec::new(),
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// The `webhook-signature` value for `body` sent with `id` at `timestamp` (Unix seconds):
/// `v1,` + base64 of HMAC-SHA256 over `"{id}.{timestamp}.{body}"` keyed with the decoded secret.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, InvalidSecret> {
    let key = secret_bytes(secret)?;
    Ok(format!("v1,{}", BASE64.encode(signature_bytes(&key, id, timestamp, body))))
}

/// Checks a delivery as a receiver would: the timestamp within `tolerance` of `now`, and one of the
/// space-separated `v1,` signatures matching (compared in constant time).
pub fn verify(
    secret: &str,
    id: &str,
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> bool {
    let Ok(key) = secret_bytes(secret) else { return false };
    let Ok(timestamp) = timestamp_header.trim().parse::<i64>() else { return false };
    let skew = now.timestamp().abs_diff(timestamp);
    if skew > tolerance.as_secs() {
        return false;
    }
    let expected = signature_bytes(&key, id, timestamp, body);
    signature_header.split(' ').filter_map(|part| part.strip_prefix("v1,")).any(|candidate| {
        BASE64.decode(candidate).is_ok_and(|given| {
            use subtle::ConstantTimeEq;
            given.len() == expected.len() && bool::from(given.ct_eq(&expected))
        })
    })
}

/// The HTTP client deliveries are sent with: no redirects followed, and for [`WebhookTargets::PublicOnly`] names
/// resolved by [`CheckedResolver`] and no proxy (a proxy would resolve the name itself, unchecked).
pub(super) fn client(targets: WebhookTargets) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("payhub/", env!("CARGO_PKG_VERSION")));
    let builder = match targets {
        WebhookTargets::AnyHost => builder,
        WebhookTargets::PublicOnly => builder.no_proxy().dns_resolver(Arc::new(CheckedResolver { targets })),
    };
    builder.build().unwrap_or_default()
}

/// Resolves a delivery's host with the system resolver and answers only when every address is a target
/// `targets` takes; the connection then uses exactly those addresses.
struct CheckedResolver {
    targets: WebhookTargets,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let targets = self.targets;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let ips: Vec<IpAddr> = addresses.iter().map(SocketAddr::ip).collect();
            targets.check_resolved(&host, &ips)?;
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The refusal behind a failed send, if the resolver refused the target.
fn refusal(error: &reqwest::Error) -> Option<&RefusedTarget> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = cause {
        if let Some(refused) = error.downcast_ref::<RefusedTarget>() {
            return Some(refused);
        }
        cause = error.source();
    }
    None
}

/// A delivery's error for a target that is not public: final, it is not retried.
fn refused(refused: &RefusedTarget) -> Attempt {
    Attempt {
        status_code: None,
        error: Some(format!(
            "refused: {refused}, not a public host (PAYHUB_ALLOW_PRIVATE_WEBHOOK_TARGETS allows private targets)"
        )),
        final_: true,
    }
}

impl Outbox {
    /// The secret that signs deliveries to endpoint `endpoint_id` (or, for `None`, to intents' `WebhookURL`s);
    /// `None` once the endpoint is deleted.
    async fn secret_for(&self, endpoint_id: Option<&str>) -> anyhow::Result<Option<String>> {
        match endpoint_id {
            None => Ok(Some(self.intent_secret().await.map_err(|e| anyhow::anyhow!("{e}"))?)),
            Some(id) => {
                let Some(sealed) = table::endpoint_secret(self.queue.store().pool(), id).await? else {
                    return Ok(None);
                };
                let secret = self
                    .key
                    .open(&sealed, &endpoint_context(id))
                    .map_err(|_| anyhow::anyhow!("endpoint {id}: its secret does not open with this master key"))?;
                Ok(Some(secret.expose().to_owned()))
            }
        }
    }

    /// One attempt of one delivery (the [`DELIVER`] job).
    pub(super) async fn deliver(&self, job: Job) -> anyhow::Result<()> {
        let delivery_id = job
            .payload
            .get("delivery_id")
            .and_then(|v| v.as_str())
            .ok_or_else(|| anyhow::anyhow!("delivery job without delivery_id"))?
            .to_owned();
        tracing::Span::current().record("record", delivery_id.as_str());
        let Some(table::ToSend { endpoint_id, url, body, status }) =
            table::to_send(self.queue.store().pool(), &delivery_id).await?
        else {
            tracing::warn!(delivery = %delivery_id, "delivery job for a delivery that does not exist");
            return Ok(());
        };
        if status != "pending" {
            return Ok(());
        }
        let outcome = match self.secret_for(endpoint_id.as_deref()).await? {
            None => Attempt { status_code: None, error: Some("the endpoint was deleted".into()), final_: true },
            Some(secret) => self.post(&secret, &delivery_id, &url, &body).await,
        };
        let delivered = outcome.error.is_none();
        let final_failure = !delivered && (outcome.final_ || job.is_last_attempt());
        let status = if delivered {
            "delivered"
        } else if final_failure {
            "failed"
        } else {
            "pending"
        };
        let counted = if status == "pending" { "retrying" } else { status };
        crate::ops::business().count("payhub_webhook_deliveries_total", &[("outcome", counted)]);
        let (code, error) = (outcome.status_code, outcome.error.as_deref());
        table::record_attempt(self.queue.store().pool(), &delivery_id, status, code, error, self.queue.now()).await?;
        match outcome.error {
            Some(error) if !final_failure => Err(anyhow::anyhow!("delivery {delivery_id} to {url}: {error}")),
            _ => Ok(()),
        }
    }

    async fn post(&self, secret: &str, id: &str, url: &str, body: &str) -> Attempt {
        // Names are judged once resolved, by the client's resolver; addresses are never resolved, so here.
        if let Some(refusal) = url::Url::parse(url).ok().and_then(|u| self.targets.check_literal(&u).err()) {
            return refused(&refusal);
        }
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
            Err(e) => match refusal(&e) {
                Some(refusal) => refused(refusal),
                None if e.is_timeout() => Attempt {
                    status_code: None,
                    error: Some(format!("no answer within {:?}", self.timeout)),
                    final_: false,
                },
                None => Attempt { status_code: None, error: Some(format!("could not send: {e}")), final_: false },
            },
        }
    }
}

struct Attempt {
    status_code: Option<i64>,
    error: Option<String>,
    final_: bool,
}

/// What an endpoint's sealed secret is bound to.
pub(super) fn endpoint_context(id: &str) -> String {
    format!("webhook_endpoint:{id}:secret")
}

/// What an installation secret is bound to.
pub(super) fn installation_context(name: &str) -> String {
    format!("installation:{name}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // The test vector published with the Standard Webhooks specification.
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TIMESTAMP: i64 = 1_614_265_330;
    const VECTOR_BODY: &str = r#"{"test": 2432232314}"#;
    const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    #[test]
    fn signing_reproduces_the_standard_webhooks_test_vector() {
        assert_eq!(sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY.as_bytes()).unwrap(), VECTOR_SIGNATURE);
    }

    #[test]
    fn verification_accepts_the_vector_and_rejects_any_change() {
        let tolerance = Duration::from_secs(300);
        let now = at(VECTOR_TIMESTAMP + 10);
        let ts = VECTOR_TIMESTAMP.to_string();
        assert!(verify(VECTOR_SECRET, VECTOR_ID, &ts, VECTOR_SIGNATURE, VECTOR_BODY.as_bytes(), now, tolerance));
        let rotated = format!("v1,bm90IGl0 {VECTOR_SIGNATURE}");
        assert!(verify(VECTOR_SECRET, VECTOR_ID, &ts, &rotated, VECTOR_BODY.as_bytes(), now, tolerance));
        assert!(!verify(VECTOR_SECRET, VECTOR_ID, &ts, VECTOR_SIGNATURE, br#"{"test": 2432232315}"#, now, tolerance));
        assert!(!verify(VECTOR_SECRET, "msg_other", &ts, VECTOR_SIGNATURE, VECTOR_BODY.as_bytes(), now, tolerance));
        assert!(!verify(&new_secret(), VECTOR_ID, &ts, VECTOR_SIGNATURE, VECTOR_BODY.as_bytes(), now, tolerance));
        let late = at(VECTOR_TIMESTAMP + 301);
        assert!(!verify(VECTOR_SECRET, VECTOR_ID, &ts, VECTOR_SIGNATURE, VECTOR_BODY.as_bytes(), late, tolerance));
        for bad in ["", "v1,", "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "v1,***"] {
            assert!(!verify(VECTOR_SECRET, VECTOR_ID, &ts, bad, VECTOR_BODY.as_bytes(), now, tolerance), "{bad}");
        }
        assert!(!verify(VECTOR_SECRET, VECTOR_ID, "soon", VECTOR_SIGNATURE, VECTOR_BODY.as_bytes(), now, tolerance));
        assert!(!verify("whsec_!!", VECTOR_ID, &ts, VECTOR_SIGNATURE, VECTOR_BODY.as_bytes(), now, tolerance));
    }

    #[test]
    fn new_secrets_are_prefixed_random_and_32_bytes() {
        let a = new_secret();
        assert!(a.starts_with("whsec_"));
        assert_eq!(secret_bytes(&a).unwrap().len(), 32);
        assert_ne!(a, new_secret());
        assert_eq!(secret_bytes("whsec_"), Err(InvalidSecret));
    }
}
