//! Webhooks API v1 (reference §4): registrations, event fan-out and ordered, signed delivery.
//!
//! Events are queued per registration and resource (a payment or an agreement with its
//! charges); only the head of a queue is attempted, so a later event waits while an earlier
//! one is retried. Delivery runs on real time in a background task; the virtual clock only
//! stamps event times.

mod sign;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::auth::{authorize, Api};
use crate::idempotency::{self, KeyError, Lookup};
use crate::reply::{wh_problem, Reply};
use crate::state::SharedSim;

/// Every event type a registration may subscribe to (reference §4.2).
pub(crate) const EVENT_TYPES: &[&str] = &[
    "epayments.payment.created.v1",
    "epayments.payment.aborted.v1",
    "epayments.payment.expired.v1",
    "epayments.payment.cancelled.v1",
    "epayments.payment.captured.v1",
    "epayments.payment.refunded.v1",
    "epayments.payment.authorized.v1",
    "epayments.payment.terminated.v1",
    "recurring.agreement-activated.v1",
    "recurring.agreement-rejected.v1",
    "recurring.agreement-stopped.v1",
    "recurring.agreement-expired.v1",
    "recurring.charge-reserved.v1",
    "recurring.charge-captured.v1",
    "recurring.charge-canceled.v1",
    "recurring.charge-refunded.v1",
    "recurring.charge-failed.v1",
    "recurring.charge-creation-failed.v1",
    "user.checked-in.v1",
];

/// Registrations allowed per event type and MSN (`user.checked-in.v1`: 1).
const MAX_PER_EVENT: usize = 25;
/// Attempts before an event is dropped (≈ 7 days on the documented schedule).
const MAX_ATTEMPTS: u32 = 35;

struct Registration {
    id: String,
    msn: String,
    url: url::Url,
    events: Vec<String>,
    secret: Arc<str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Pending,
    Delivered,
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Delivered => "delivered",
            Status::Failed => "failed",
        }
    }
}

struct Delivery {
    hook_id: String,
    url: url::Url,
    secret: Arc<str>,
    event_type: &'static str,
    resource: String,
    body: Bytes,
    status: Status,
    attempts: u32,
    in_flight: bool,
    next_attempt: Instant,
    last_status: Option<u16>,
    last_error: Option<String>,
    occurred: String,
}

/// Registrations and the delivery queues.
pub(crate) struct Hub {
    regs: Vec<Registration>,
    deliveries: Vec<Delivery>,
    queues: HashMap<(String, String), VecDeque<usize>>,
    paused: bool,
    wake: Arc<Notify>,
}

impl Hub {
    pub(crate) fn new(wake: Arc<Notify>) -> Hub {
        Hub { regs: Vec::new(), deliveries: Vec::new(), queues: HashMap::new(), paused: false, wake }
    }

    /// Queues `event_type` for every registration of `msn` that subscribes to it. `resource`
    /// orders deliveries (e.g. `payment:MSN:REF`, `agreement:ID`); `body` is only built when
    /// someone listens.
    pub(crate) fn emit(
        &mut self,
        msn: &str,
        event_type: &'static str,
        resource: &str,
        occurred: String,
        body: impl FnOnce() -> Value,
    ) {
        let targets: Vec<usize> = self
            .regs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.msn == msn && r.events.iter().any(|e| e == event_type))
            .map(|(i, _)| i)
            .collect();
        if targets.is_empty() {
            return;
        }
        let body = Bytes::from(serde_json::to_vec(&body()).unwrap_or_default());
        let now = Instant::now();
        for i in targets {
            let reg = &self.regs[i];
            let idx = self.deliveries.len();
            self.deliveries.push(Delivery {
                hook_id: reg.id.clone(),
                url: reg.url.clone(),
                secret: reg.secret.clone(),
                event_type,
                resource: resource.to_owned(),
                body: body.clone(),
                status: Status::Pending,
                attempts: 0,
                in_flight: false,
                next_attempt: now,
                last_status: None,
                last_error: None,
                occurred: occurred.clone(),
            });
            self.queues.entry((reg.id.clone(), resource.to_owned())).or_default().push_back(idx);
        }
        self.wake.notify_one();
    }
}

fn problem_for_key(e: KeyError, instance: &str) -> Reply {
    let reason = match e {
        KeyError::Missing => "Idempotency-Key must not be empty",
        KeyError::Invalid(r) => r,
    };
    wh_problem(StatusCode::BAD_REQUEST, reason, instance, &[("Idempotency-Key", reason)])
}

#[derive(Deserialize)]
struct RegisterRequest {
    url: String,
    events: Vec<String>,
}

fn acceptable_url(raw: &str) -> Result<url::Url, &'static str> {
    let url = url::Url::parse(raw).map_err(|_| "url must be an absolute URI")?;
    let local = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match url.scheme() {
        "https" => {}
        "http" if local => {}
        _ => return Err("url must use https (the simulator also accepts http to 127.0.0.1/localhost)"),
    }
    if url.host_str().is_none() || raw.len() > 2048 {
        return Err("url must have a host and be at most 2048 characters");
    }
    Ok(url)
}

/// `POST /webhooks/v1/webhooks` `{url, events}` → `201 {id, secret}`.
pub(crate) async fn register(State(sim): State<SharedSim>, headers: HeaderMap, uri: Uri, body: Bytes) -> Reply {
    let instance = uri.path();
    let now = sim.clock.now();
    let mut db = sim.lock();
    let msn = match authorize(&db, now, &headers, Api::Webhooks, instance) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let key = if idempotency::has_key(&headers) {
        match idempotency::read_key(&headers, Api::Webhooks) {
            Ok(k) => Some(k),
            Err(e) => return problem_for_key(e, instance),
        }
    } else {
        None
    };
    let mut fresh = None;
    if let Some(k) = &key {
        match db.idem.check(Api::Webhooks, &msn, k, &Method::POST, instance, &body) {
            Lookup::Replay(r) => return r,
            Lookup::Conflict => {
                return wh_problem(
                    StatusCode::CONFLICT,
                    "Idempotency-Key reused for a different request",
                    instance,
                    &[],
                )
            }
            Lookup::Fresh(fp) => fresh = Some(fp),
        }
    }
    let reply = register_inner(&mut db.hooks, &msn, &body, instance);
    if let (Some(k), Some(fp)) = (key, fresh) {
        db.idem.store(Api::Webhooks, &msn, &k, fp, &reply);
    }
    reply
}

fn register_inner(hub: &mut Hub, msn: &str, body: &[u8], instance: &str) -> Reply {
    let req: RegisterRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return wh_problem(StatusCode::BAD_REQUEST, "Invalid request body", instance, &[("body", &e.to_string())])
        }
    };
    let url = match acceptable_url(&req.url) {
        Ok(u) => u,
        Err(reason) => return wh_problem(StatusCode::BAD_REQUEST, reason, instance, &[("url", reason)]),
    };
    if req.events.is_empty() {
        return wh_problem(StatusCode::BAD_REQUEST, "events must not be empty", instance, &[("events", "required")]);
    }
    for e in &req.events {
        if !EVENT_TYPES.contains(&e.as_str()) {
            return wh_problem(
                StatusCode::BAD_REQUEST,
                &format!("Unknown event type {e}"),
                instance,
                &[("events", "unknown event type")],
            );
        }
        let limit = if e == "user.checked-in.v1" { 1 } else { MAX_PER_EVENT };
        let count = hub.regs.iter().filter(|r| r.msn == msn && r.events.contains(e)).count();
        if count >= limit {
            return wh_problem(
                StatusCode::BAD_REQUEST,
                &format!("Maximum number of webhooks ({limit}) for event {e} reached"),
                instance,
                &[("events", "limit reached")],
            );
        }
    }
    let mut events = req.events;
    events.dedup();
    let id = uuid::Uuid::new_v4().to_string();
    let secret = {
        use base64::Engine;
        let bytes: Vec<u8> = (0..48).map(|_| rand::random::<u8>()).collect();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    hub.regs.push(Registration {
        id: id.clone(),
        msn: msn.to_owned(),
        url,
        events,
        secret: Arc::from(secret.as_str()),
    });
    Reply::json(StatusCode::CREATED, &json!({"id": id, "secret": secret}))
}

/// `GET /webhooks/v1/webhooks` → `{"webhooks": [{id, url, events}]}` for the caller's MSN.
pub(crate) async fn list(State(sim): State<SharedSim>, headers: HeaderMap, uri: Uri) -> Reply {
    let now = sim.clock.now();
    let db = sim.lock();
    let msn = match authorize(&db, now, &headers, Api::Webhooks, uri.path()) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let hooks: Vec<Value> = db
        .hooks
        .regs
        .iter()
        .filter(|r| r.msn == msn)
        .map(|r| json!({"id": r.id, "url": r.url.as_str(), "events": r.events}))
        .collect();
    Reply::json(StatusCode::OK, &json!({"webhooks": hooks}))
}

/// `DELETE /webhooks/v1/webhooks/{id}` → `204`; unknown id (or another merchant's) → 404.
/// Pending deliveries of a deleted registration are marked failed.
pub(crate) async fn delete(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Reply {
    let now = sim.clock.now();
    let mut db = sim.lock();
    let msn = match authorize(&db, now, &headers, Api::Webhooks, uri.path()) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let hub = &mut db.hooks;
    let Some(pos) = hub.regs.iter().position(|r| r.id == id && r.msn == msn) else {
        return wh_problem(StatusCode::NOT_FOUND, "Webhook not found", uri.path(), &[]);
    };
    hub.regs.remove(pos);
    let Hub { queues, deliveries, .. } = hub;
    queues.retain(|(hook, _), q| {
        if *hook == id {
            for &i in q.iter() {
                if let Some(d) = deliveries.get_mut(i) {
                    if d.status == Status::Pending {
                        d.status = Status::Failed;
                        d.last_error = Some("webhook deleted".to_owned());
                    }
                }
            }
            false
        } else {
            true
        }
    });
    Reply::empty(StatusCode::NO_CONTENT)
}

/// Real-time delay before attempt `attempts + 1`, following the documented schedule
/// (≈ 2 s for the first 4 retries, then 60 s, 120 s, hourly, daily) scaled by `base` / 2 s.
fn backoff(base: Duration, attempts: u32) -> Duration {
    let units: u32 = match attempts {
        0..=4 => 1,
        5 => 30,
        6 => 60,
        7..=29 => 1800,
        _ => 43_200,
    };
    base.saturating_mul(units)
}

struct Job {
    idx: usize,
    url: url::Url,
    secret: Arc<str>,
    body: Bytes,
}

/// Background task: sends the head of every ready queue, concurrently across queues.
pub(crate) async fn delivery_loop(sim: SharedSim) {
    let client = match reqwest::Client::builder()
        .timeout(sim.config.webhook_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("webhook delivery disabled: cannot build HTTP client: {e}");
            return;
        }
    };
    loop {
        let (jobs, next) = collect_ready(&sim);
        for job in jobs {
            let sim = sim.clone();
            let client = client.clone();
            tokio::spawn(async move {
                let outcome = send(&client, &job).await;
                finish(&sim, job.idx, outcome);
            });
        }
        let wait = next.map_or(Duration::from_secs(1), |n| n.saturating_duration_since(Instant::now()));
        tokio::select! {
            _ = sim.webhook_wake.notified() => {}
            _ = tokio::time::sleep(wait.min(Duration::from_secs(1))) => {}
        }
    }
}

fn collect_ready(sim: &SharedSim) -> (Vec<Job>, Option<Instant>) {
    let now = Instant::now();
    let mut db = sim.lock();
    let hub = &mut db.hooks;
    let mut jobs = Vec::new();
    let mut next: Option<Instant> = None;
    if hub.paused {
        return (jobs, None);
    }
    let Hub { queues, deliveries, .. } = hub;
    for q in queues.values() {
        let Some(&idx) = q.front() else { continue };
        let Some(d) = deliveries.get_mut(idx) else {
            continue;
        };
        if d.in_flight {
            continue;
        }
        if d.next_attempt <= now {
            d.in_flight = true;
            jobs.push(Job { idx, url: d.url.clone(), secret: d.secret.clone(), body: d.body.clone() });
        } else {
            next = Some(next.map_or(d.next_attempt, |n| n.min(d.next_attempt)));
        }
    }
    (jobs, next)
}

async fn send(client: &reqwest::Client, job: &Job) -> Result<u16, (Option<u16>, String)> {
    let (host, pq) = sign::url_parts(&job.url);
    let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let sig = sign::sign(&job.secret, &pq, &host, &date, &job.body);
    let resp = client
        .post(job.url.clone())
        .header("Content-Type", "application/json")
        .header("x-ms-date", date)
        .header("x-ms-content-sha256", sig.content_sha256)
        .header("Authorization", sig.authorization)
        .body(job.body.clone())
        .send()
        .await;
    match resp {
        Ok(r) if r.status().is_success() => Ok(r.status().as_u16()),
        Ok(r) => Err((Some(r.status().as_u16()), format!("receiver answered {}", r.status()))),
        Err(e) => Err((None, e.to_string())),
    }
}

fn finish(sim: &SharedSim, idx: usize, outcome: Result<u16, (Option<u16>, String)>) {
    let base = sim.config.webhook_retry_base;
    let mut db = sim.lock();
    let hub = &mut db.hooks;
    let Some(d) = hub.deliveries.get_mut(idx) else {
        return;
    };
    d.in_flight = false;
    d.attempts += 1;
    let done = match outcome {
        Ok(code) => {
            d.last_status = Some(code);
            d.last_error = None;
            if d.status == Status::Pending {
                d.status = Status::Delivered;
            }
            true
        }
        Err((code, err)) => {
            d.last_status = code;
            d.last_error = Some(err);
            if d.status != Status::Pending {
                true // registration deleted meanwhile
            } else if d.attempts >= MAX_ATTEMPTS {
                d.status = Status::Failed;
                true
            } else {
                d.next_attempt = Instant::now() + backoff(base, d.attempts);
                false
            }
        }
    };
    if done {
        let key = (d.hook_id.clone(), d.resource.clone());
        if let Some(q) = hub.queues.get_mut(&key) {
            if q.front() == Some(&idx) {
                q.pop_front();
            }
            if q.is_empty() {
                hub.queues.remove(&key);
            }
        }
    }
    hub.wake.notify_one();
}

#[derive(Deserialize)]
pub(crate) struct DeliveriesQuery {
    status: Option<String>,
}

/// `GET /_sim/webhooks/deliveries[?status=pending|delivered|failed]` →
/// `{"paused": bool, "deliveries": [{id, webhookId, url, eventType, resource, status, attempts,
/// lastStatus, lastError, occurred, body}]}` in emission order.
pub(crate) async fn sim_deliveries(State(sim): State<SharedSim>, Query(q): Query<DeliveriesQuery>) -> Reply {
    let db = sim.lock();
    let hub = &db.hooks;
    let list: Vec<Value> = hub
        .deliveries
        .iter()
        .enumerate()
        .filter(|(_, d)| q.status.as_deref().is_none_or(|s| s == d.status.as_str()))
        .map(|(i, d)| {
            json!({
                "id": i,
                "webhookId": d.hook_id,
                "url": d.url.as_str(),
                "eventType": d.event_type,
                "resource": d.resource,
                "status": d.status.as_str(),
                "attempts": d.attempts,
                "lastStatus": d.last_status,
                "lastError": d.last_error,
                "occurred": d.occurred,
                "body": serde_json::from_slice::<Value>(&d.body).unwrap_or(Value::Null),
            })
        })
        .collect();
    Reply::json(StatusCode::OK, &json!({"paused": hub.paused, "deliveries": list}))
}

/// `POST /_sim/webhooks/pause`: stop sending (events keep queueing) → `204`.
pub(crate) async fn sim_pause(State(sim): State<SharedSim>) -> Reply {
    sim.lock().hooks.paused = true;
    Reply::empty(StatusCode::NO_CONTENT)
}

/// `POST /_sim/webhooks/resume`: send queued events again → `204`.
pub(crate) async fn sim_resume(State(sim): State<SharedSim>) -> Reply {
    let mut db = sim.lock();
    db.hooks.paused = false;
    db.hooks.wake.notify_one();
    Reply::empty(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_local_http_urls_are_accepted() {
        assert!(acceptable_url("https://example.com/hook").is_ok());
        assert!(acceptable_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(acceptable_url("http://localhost/hook").is_ok());
        assert!(acceptable_url("http://example.com/hook").is_err());
        assert!(acceptable_url("ftp://example.com/hook").is_err());
        assert!(acceptable_url("/relative").is_err());
    }

    #[test]
    fn backoff_follows_the_documented_shape() {
        let b = Duration::from_secs(2);
        assert_eq!(backoff(b, 1), Duration::from_secs(2));
        assert_eq!(backoff(b, 5), Duration::from_secs(60));
        assert_eq!(backoff(b, 6), Duration::from_secs(120));
        assert_eq!(backoff(b, 10), Duration::from_secs(3600));
        assert_eq!(backoff(b, 30), Duration::from_secs(86_400));
    }
}
