//! Outbound webhooks end to end: endpoints through the admin API, events emitted in a transaction, deliveries
//! to a capture server on port 0, signatures checked with a verifier written here from the Standard Webhooks
//! text, retries after the receiver fails, and resending from the admin API.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use payhub::domain::webhook_target::WebhookTargets;
use payhub::processing::outbox;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::TestApp;
use crate::jobs::ManualClock;
use crate::on_both_backends;

#[derive(Debug, Clone)]
pub(crate) struct Captured {
    pub(crate) path: String,
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

/// A receiver on 127.0.0.1:0 that records every request and answers with the status it is told.
pub(crate) struct Capture {
    pub(crate) base: String,
    requests: Arc<Mutex<Vec<Captured>>>,
    status: Arc<AtomicU16>,
}

impl Capture {
    pub(crate) async fn start() -> Capture {
        let requests: Arc<Mutex<Vec<Captured>>> = Arc::default();
        let status = Arc::new(AtomicU16::new(200));
        let (log, answer) = (requests.clone(), status.clone());
        let app = axum::Router::new().route(
            "/{*path}",
            post(move |uri: axum::http::Uri, headers: HeaderMap, body: String| {
                let (log, answer) = (log.clone(), answer.clone());
                async move {
                    let header =
                        |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                    log.lock().unwrap().push(Captured {
                        path: uri.path().to_owned(),
                        id: header("webhook-id"),
                        timestamp: header("webhook-timestamp"),
                        signature: header("webhook-signature"),
                        body,
                    });
                    let status = answer.load(Ordering::SeqCst);
                    if status == 0 {
                        // Told to be slow: answer only after any sensible timeout.
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        return AxumStatus::OK;
                    }
                    AxumStatus::from_u16(status).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Capture { base: format!("http://{address}"), requests, status }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub(crate) fn requests(&self) -> Vec<Captured> {
        self.requests.lock().unwrap().clone()
    }
}

/// The receiver's side, written from the Standard Webhooks specification rather than from payhub's signer:
/// HMAC-SHA256 keyed with the base64-decoded part of `whsec_…` over `id.timestamp.body`, base64, prefixed `v1,`.
fn receiver_accepts(secret: &str, request: &Captured) -> bool {
    let key = BASE64.decode(secret.trim_start_matches("whsec_")).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", request.id, request.timestamp, request.body).as_bytes());
    let expected = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
    request.signature.split(' ').any(|s| s == expected)
}

async fn create_endpoint(app: &TestApp, body: Value) -> Value {
    let response = app.admin(Method::POST, "/admin/api/webhook-endpoints").json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "creating {body}");
    response.json().await.unwrap()
}

pub(crate) async fn deliveries(app: &TestApp) -> Vec<Value> {
    let body: Value =
        app.admin(Method::GET, "/admin/api/webhook-deliveries").send().await.unwrap().json().await.unwrap();
    body["deliveries"].as_array().unwrap().clone()
}

pub(crate) async fn emit(app: &TestApp, event: &str, data: Value, extra_url: Option<&str>) -> Vec<String> {
    let mut tx = app.state.jobs.queue.begin().await.unwrap();
    let ids = outbox::emit(&mut tx, event, data, extra_url).await.unwrap();
    tx.commit().await.unwrap();
    ids
}

on_both_backends! {
    async fn events_reach_subscribed_endpoints_and_the_intent_url_signed_per_standard_webhooks(app) {
        let capture = Capture::start().await;
        let clock = ManualClock::new();
        let jobs = app.state.jobs.fork_with_clock(clock.clock());
        let endpoint = create_endpoint(
            &app,
            json!({"url": capture.url("/hooks"), "description": "ERP", "event_types": ["paymentIntent.created"]}),
        )
        .await;
        let secret = endpoint["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("whsec_") && BASE64.decode(&secret[6..]).unwrap().len() == 32);
        create_endpoint(&app, json!({"url": capture.url("/other"), "event_types": ["installment.created"]})).await;

        let listed: Value =
            app.admin(Method::GET, "/admin/api/webhook-endpoints").send().await.unwrap().json().await.unwrap();
        let endpoints = listed["endpoints"].as_array().unwrap();
        assert_eq!(endpoints.len(), 2);
        assert!(endpoints.iter().all(|e| e.get("secret").is_none()), "secrets are shown once: {listed}");
        assert!(!listed.to_string().contains(&secret));
        assert!(listed.get("intent_webhook_secret").is_none(), "the intent secret is write-only: {listed}");
        // The intent webhook secret is shown once, when it is made (or made anew), never by a list.
        let rotated: Value =
            app.admin(Method::POST, "/admin/api/intent-webhook-secret").send().await.unwrap().json().await.unwrap();
        let intent_secret = rotated["secret"].as_str().unwrap().to_owned();
        assert!(intent_secret.starts_with("whsec_") && intent_secret != secret);
        let listed: Value =
            app.admin(Method::GET, "/admin/api/webhook-endpoints").send().await.unwrap().json().await.unwrap();
        assert_eq!(listed["intent_webhook_secret_set"], true);
        assert!(!listed.to_string().contains(&intent_secret), "{listed}");

        // A rolled-back transaction emits nothing.
        let mut tx = app.state.jobs.queue.begin().await.unwrap();
        outbox::emit(&mut tx, "paymentIntent.created", json!({"Id": "pi_rolled_back"}), None).await.unwrap();
        tx.rollback().await.unwrap();
        let ids = emit(&app, "paymentIntent.created", json!({"Id": "pi_1"}), Some(&capture.url("/intent"))).await;
        assert_eq!(ids.len(), 2, "the subscribed endpoint and the intent's WebhookURL");
        clock.advance(Duration::from_secs(1));
        assert_eq!(jobs.run_until_idle().await.unwrap(), 2);

        let mut requests = capture.requests();
        requests.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(requests.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["/hooks", "/intent"]);
        let (hook, intent) = (&requests[0], &requests[1]);
        assert!(receiver_accepts(&secret, hook), "endpoint delivery verifies: {hook:?}");
        assert!(!receiver_accepts(&intent_secret, hook));
        assert!(receiver_accepts(&intent_secret, intent), "intent delivery verifies with the installation secret");
        let now = clock.now();
        assert!(outbox::verify(&secret, &hook.id, &hook.timestamp, &hook.signature, hook.body.as_bytes(), now, Duration::from_secs(300)));
        assert_eq!(hook.timestamp, now.timestamp().to_string(), "webhook-timestamp follows the clock");
        assert!(ids.contains(&hook.id) && ids.contains(&intent.id) && hook.id != intent.id);
        let body: Value = serde_json::from_str(&hook.body).unwrap();
        assert_eq!(body["type"], "paymentIntent.created");
        assert_eq!(body["data"], json!({"Id": "pi_1"}));
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(hook.body, intent.body);

        let log = deliveries(&app).await;
        assert_eq!(log.len(), 2);
        for delivery in &log {
            assert_eq!(delivery["status"], "delivered", "{delivery}");
            assert_eq!(delivery["attempts"], 1);
            assert_eq!(delivery["last_status_code"], 200);
            assert!(delivery["delivered_at"].is_string());
        }
        assert_eq!(jobs.run_until_idle().await.unwrap(), 0);
        assert_eq!(capture.requests().len(), 2, "nothing is sent twice");
    }

    async fn a_failed_delivery_is_retried_with_backoff_and_can_be_resent_from_the_admin_api(app) {
        let capture = Capture::start().await;
        let clock = ManualClock::new();
        let jobs = app.state.jobs.fork_with_clock(clock.clock());
        let endpoint = create_endpoint(&app, json!({"url": capture.url("/hooks")})).await;
        let secret = endpoint["secret"].as_str().unwrap().to_owned();
        capture.answer(500);
        let ids = emit(&app, "installment.status_change", json!({"Id": "in_1", "Status": "Collected"}), None).await;
        assert_eq!(ids.len(), 1, "an endpoint without a filter receives every event");
        clock.advance(Duration::from_secs(1));
        assert_eq!(jobs.run_until_idle().await.unwrap(), 1);
        let delivery = &deliveries(&app).await[0];
        assert_eq!((delivery["status"].as_str(), delivery["attempts"].as_i64()), (Some("pending"), Some(1)));
        assert_eq!(delivery["last_status_code"], 500);
        assert!(delivery["last_error"].as_str().unwrap().contains("500"), "{delivery}");
        assert_eq!(jobs.run_until_idle().await.unwrap(), 0, "the retry waits for its backoff");

        capture.answer(204);
        clock.advance(Duration::from_secs(600));
        assert_eq!(jobs.run_until_idle().await.unwrap(), 1);
        let delivery = &deliveries(&app).await[0];
        assert_eq!((delivery["status"].as_str(), delivery["attempts"].as_i64()), (Some("delivered"), Some(2)));
        assert_eq!(delivery["last_status_code"], 204);
        assert!(delivery["last_error"].is_null());

        let path = format!("/admin/api/webhook-deliveries/{}/resend", ids[0]);
        let response = app.admin(Method::POST, &path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let resent: Value = response.json().await.unwrap();
        assert_eq!(resent["status"], "pending");
        assert_eq!(jobs.run_until_idle().await.unwrap(), 1);
        let requests = capture.requests();
        assert_eq!(requests.len(), 3);
        assert!(requests.iter().all(|r| r.id == ids[0] && receiver_accepts(&secret, r)), "same webhook-id each time");
        assert!(requests.windows(2).all(|w| w[0].body == w[1].body));
        let delivery = &deliveries(&app).await[0];
        assert_eq!((delivery["status"].as_str(), delivery["attempts"].as_i64()), (Some("delivered"), Some(3)));

        let missing = app.admin(Method::POST, "/admin/api/webhook-deliveries/msg_nope/resend").send().await.unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let audit: Value = app.admin(Method::GET, "/admin/api/audit").send().await.unwrap().json().await.unwrap();
        let actions: Vec<&str> = audit["entries"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
        assert!(actions.contains(&"webhook_endpoint.create") && actions.contains(&"webhook_delivery.resend"), "{actions:?}");

        let id = endpoint["id"].as_str().unwrap();
        let gone = app.admin(Method::DELETE, &format!("/admin/api/webhook-endpoints/{id}")).send().await.unwrap();
        assert_eq!(gone.status(), StatusCode::NO_CONTENT);
        let again = app.admin(Method::DELETE, &format!("/admin/api/webhook-endpoints/{id}")).send().await.unwrap();
        assert_eq!(again.status(), StatusCode::NOT_FOUND);
        assert!(emit(&app, "installment.created", json!({}), None).await.is_empty(), "no endpoint, no delivery");
    }

    async fn a_delivery_the_receiver_never_accepts_ends_failed_after_its_attempts(app) {
        let capture = Capture::start().await;
        let clock = ManualClock::new();
        let jobs = app.state.jobs.fork_with_clock(clock.clock());
        capture.answer(503);
        emit(&app, "paymentIntent.failed", json!({"Id": "pi_2"}), Some(&capture.url("/intent"))).await;
        // Deleting an endpoint fails its pending deliveries at once.
        let endpoint = create_endpoint(&app, json!({"url": capture.url("/gone")})).await;
        emit(&app, "paymentIntent.failed", json!({"Id": "pi_3"}), None).await;
        let id = endpoint["id"].as_str().unwrap();
        app.admin(Method::DELETE, &format!("/admin/api/webhook-endpoints/{id}")).send().await.unwrap();

        for _ in 0..outbox::DELIVERY_ATTEMPTS {
            clock.advance(Duration::from_secs(7200));
            jobs.run_until_idle().await.unwrap();
        }
        let log = deliveries(&app).await;
        let intent = log.iter().find(|d| d["endpoint_id"].is_null()).unwrap();
        assert_eq!(intent["status"], "failed");
        assert_eq!(intent["attempts"], outbox::DELIVERY_ATTEMPTS);
        assert_eq!(intent["last_status_code"], 503);
        let orphan = log.iter().find(|d| d["endpoint_id"] == id).unwrap();
        assert_eq!((orphan["status"].as_str(), orphan["attempts"].as_i64()), (Some("failed"), Some(1)));
        assert_eq!(orphan["last_error"], "the endpoint was deleted");
        assert_eq!(capture.requests().len() as i64, outbox::DELIVERY_ATTEMPTS, "the deleted endpoint got nothing");
        let failed: Value = app
            .admin(Method::GET, "/admin/api/webhook-deliveries?status=failed")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(failed["deliveries"].as_array().unwrap().len(), 2);
    }

    async fn bad_endpoint_input_is_refused_field_by_field_and_stores_nothing(app) {
        let response = app
            .admin(Method::POST, "/admin/api/webhook-endpoints")
            .json(&json!({"url": "ftp://example.org/x", "event_types": ["payment.teleported"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: Value = response.json().await.unwrap();
        let fields: Vec<&str> = body["Errors"].as_array().unwrap().iter().filter_map(|e| e["field"].as_str()).collect();
        assert_eq!(fields, ["url", "event_types"], "{body}");
        for bad in [json!({"url": "not a url"}), json!({"url": "https://x.example", "secret": "mine"}), json!({})] {
            let response = app.admin(Method::POST, "/admin/api/webhook-endpoints").json(&bad).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
        let listed: Value =
            app.admin(Method::GET, "/admin/api/webhook-endpoints").send().await.unwrap().json().await.unwrap();
        assert_eq!(listed["endpoints"], json!([]));
        let response = app.admin(Method::GET, "/admin/api/webhook-deliveries?status=lost").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let response = app.admin(Method::GET, "/admin/api/webhook-deliveries?limit=many").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }

    async fn a_receiver_that_does_not_answer_in_time_counts_as_a_failed_attempt(app) {
        let capture = Capture::start().await;
        capture.answer(0);
        let clock = ManualClock::new();
        let queue = payhub::jobs::Queue::new(app.state.store.clone()).with_clock(clock.clock());
        let key = app.state.config.master_key.clone().unwrap();
        let handlers = payhub::jobs::Handlers::default();
        outbox::Outbox::new(queue.clone(), key)
            .with_timeout(Duration::from_millis(200))
            .with_targets(WebhookTargets::AnyHost)
            .register(&handlers);
        emit(&app, "paymentIntent.processed", json!({"Id": "pi_slow"}), Some(&capture.url("/slow"))).await;
        clock.advance(Duration::from_secs(1));
        let started = std::time::Instant::now();
        assert_eq!(payhub::jobs::Worker::new(queue, handlers).run_until_idle().await.unwrap(), 1);
        assert!(started.elapsed() < Duration::from_millis(1500), "the attempt gave up at its timeout");
        let delivery = &deliveries(&app).await[0];
        assert_eq!((delivery["status"].as_str(), delivery["attempts"].as_i64()), (Some("pending"), Some(1)));
        assert!(delivery["last_status_code"].is_null());
        assert_eq!(delivery["last_error"], "no answer within 200ms");
    }

    async fn an_event_stamped_by_a_clock_ahead_of_the_queue_is_still_delivered_at_once(app) {
        let capture = Capture::start().await;
        let ahead = chrono::Utc::now() + chrono::TimeDelta::days(3);
        let mut tx = app.state.jobs.queue.begin().await.unwrap();
        outbox::emit_at(&mut tx, "paymentIntent.processed", json!({"Id": "pi_4"}), Some(&capture.url("/i")), ahead)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(app.state.jobs.run_until_idle().await.unwrap(), 1);
        let requests = capture.requests();
        assert_eq!(requests.len(), 1);
        let body: Value = serde_json::from_str(&requests[0].body).unwrap();
        assert_eq!(body["timestamp"], payhub::store::timestamp(ahead), "the body keeps the event's own time");
    }
}
