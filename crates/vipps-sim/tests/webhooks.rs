//! Webhooks v1: registration rules, signed ordered delivery, retries, pause/resume (reference §4).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxStatus, Uri};
use base64::Engine;
use common::*;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Headers, path-and-query and body of one received webhook.
type Received = (HeaderMap, String, Vec<u8>);

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    fail_next: Arc<AtomicU32>,
    calls: Arc<AtomicU32>,
}

async fn receive(State(r): State<Receiver>, uri: Uri, headers: HeaderMap, body: axum::body::Bytes) -> AxStatus {
    r.calls.fetch_add(1, Ordering::SeqCst);
    if r.fail_next.load(Ordering::SeqCst) > 0 {
        r.fail_next.fetch_sub(1, Ordering::SeqCst);
        return AxStatus::INTERNAL_SERVER_ERROR;
    }
    let pq = uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    r.got.lock().unwrap().push((headers, pq, body.to_vec()));
    AxStatus::OK
}

async fn start_receiver() -> (Receiver, String) {
    let r = Receiver::default();
    let app = axum::Router::new().route("/hook/{*rest}", axum::routing::post(receive)).with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, format!("http://127.0.0.1:{}/hook/vipps?x=1", addr.port()))
}

async fn wait_for(r: &Receiver, n: usize) -> Vec<Value> {
    for _ in 0..300 {
        if r.got.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    r.got.lock().unwrap().iter().map(|(_, _, b)| serde_json::from_slice(b).unwrap()).collect()
}

fn verify(secret: &str, host: &str, headers: &HeaderMap, pq: &str, body: &[u8]) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let hash = b64.encode(Sha256::digest(body));
    assert_eq!(headers["x-ms-content-sha256"].to_str().unwrap(), hash);
    let date = headers["x-ms-date"].to_str().unwrap();
    assert!(date.ends_with(" GMT"));
    let to_sign = format!("POST\n{pq}\n{date};{host};{hash}");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(to_sign.as_bytes());
    let sig = b64.encode(mac.finalize().into_bytes());
    assert_eq!(
        headers["authorization"].to_str().unwrap(),
        format!("HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={sig}")
    );
}

const EP_EVENTS: [&str; 4] = [
    "epayments.payment.created.v1",
    "epayments.payment.authorized.v1",
    "epayments.payment.captured.v1",
    "epayments.payment.refunded.v1",
];

#[tokio::test]
async fn epayment_events_arrive_signed_in_order_even_when_the_first_one_is_retried() {
    let t = TestSim::start().await;
    let (recv, url) = start_receiver().await;
    let reg = t.post("/webhooks/v1/webhooks", &json!({"url": url, "events": EP_EVENTS})).await;
    assert_eq!(reg.status, StatusCode::CREATED, "{}", reg.text);
    let secret = reg.json()["secret"].as_str().unwrap().to_owned();
    recv.fail_next.store(3, Ordering::SeqCst);

    let reference = unique_ref("hook");
    t.post("/epayment/v1/payments", &payment_body(&reference, 1000)).await;
    t.control(Method::POST, &format!("/_sim/payments/{reference}/approve"), None).await;
    t.post(
        &format!("/epayment/v1/payments/{reference}/capture"),
        &json!({"modificationAmount": {"currency": "NOK", "value": 400}}),
    )
    .await;

    let bodies = wait_for(&recv, 3).await;
    let names: Vec<&str> = bodies.iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["CREATED", "AUTHORIZED", "CAPTURED"]);
    assert!(recv.calls.load(Ordering::SeqCst) >= 6, "three failures then three successes");
    assert_eq!(bodies[2]["amount"]["value"], 400);
    assert_eq!(bodies[2]["msn"], t.merchant.msn.as_str());
    assert_eq!(bodies[0]["reference"], reference.as_str());
    assert_eq!(bodies[2]["success"], true);
    let port = url.split(':').nth(2).unwrap().split('/').next().unwrap();
    for (headers, pq, body) in recv.got.lock().unwrap().iter() {
        assert_eq!(pq, "/hook/vipps?x=1");
        verify(&secret, &format!("127.0.0.1:{port}"), headers, pq, body);
    }
    let d = t.control(Method::GET, "/_sim/webhooks/deliveries", None).await.json();
    let first = &d["deliveries"][0];
    assert_eq!(first["eventType"], "epayments.payment.created.v1");
    assert_eq!(first["status"], "delivered");
    assert_eq!(first["attempts"], 4);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn paused_delivery_queues_events_until_resumed() {
    let t = TestSim::start().await;
    let (recv, url) = start_receiver().await;
    t.post("/webhooks/v1/webhooks", &json!({"url": url, "events": EP_EVENTS})).await;
    assert_eq!(t.control(Method::POST, "/_sim/webhooks/pause", None).await.status, StatusCode::NO_CONTENT);
    let reference = unique_ref("pause");
    t.post("/epayment/v1/payments", &payment_body(&reference, 1000)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(recv.calls.load(Ordering::SeqCst), 0);
    let pending = t.control(Method::GET, "/_sim/webhooks/deliveries?status=pending", None).await.json();
    assert_eq!(pending["paused"], true);
    assert_eq!(pending["deliveries"].as_array().unwrap().len(), 1);
    t.control(Method::POST, "/_sim/webhooks/resume", None).await;
    assert_eq!(wait_for(&recv, 1).await.len(), 1);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn registrations_are_validated_limited_listed_and_deleted() {
    let t = TestSim::start().await;
    let bad_url = t.post("/webhooks/v1/webhooks", &json!({"url": "http://example.com/x", "events": EP_EVENTS})).await;
    assert_eq!(bad_url.status, StatusCode::BAD_REQUEST);
    let bad_event =
        t.post("/webhooks/v1/webhooks", &json!({"url": "https://example.com/x", "events": ["nope.v1"]})).await;
    assert_eq!(bad_event.status, StatusCode::BAD_REQUEST);
    let no_events = t.post("/webhooks/v1/webhooks", &json!({"url": "https://example.com/x", "events": []})).await;
    assert_eq!(no_events.status, StatusCode::BAD_REQUEST);
    let wrong_type = t.post("/webhooks/v1/webhooks", &json!({"url": 5, "events": EP_EVENTS})).await;
    assert_eq!(wrong_type.status, StatusCode::BAD_REQUEST);
    let mut ids = Vec::new();
    for i in 0..25 {
        let r = t
            .post(
                "/webhooks/v1/webhooks",
                &json!({"url": format!("https://example.com/{i}"), "events": ["epayments.payment.captured.v1"]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        ids.push(r.json()["id"].as_str().unwrap().to_owned());
    }
    let over = t
        .post(
            "/webhooks/v1/webhooks",
            &json!({"url": "https://example.com/26", "events": ["epayments.payment.captured.v1"]}),
        )
        .await;
    assert_eq!(over.status, StatusCode::BAD_REQUEST);
    let listed = t.get("/webhooks/v1/webhooks").await.json();
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 25);
    assert!(listed["webhooks"][0].get("secret").is_none(), "the secret is only returned once");
    let del = t.call(Method::DELETE, &format!("/webhooks/v1/webhooks/{}", ids[0]), None, None).await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    let again = t.call(Method::DELETE, &format!("/webhooks/v1/webhooks/{}", ids[0]), None, None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let now_ok = t
        .post(
            "/webhooks/v1/webhooks",
            &json!({"url": "https://example.com/26", "events": ["epayments.payment.captured.v1"]}),
        )
        .await;
    assert_eq!(now_ok.status, StatusCode::CREATED);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn recurring_agreement_and_charge_events_arrive_in_order_with_the_documented_fields() {
    let t = TestSim::start().await;
    let (recv, url) = start_receiver().await;
    let events = [
        "recurring.agreement-activated.v1",
        "recurring.agreement-stopped.v1",
        "recurring.charge-captured.v1",
        "recurring.charge-canceled.v1",
    ];
    assert_eq!(
        t.post("/webhooks/v1/webhooks", &json!({"url": url, "events": events})).await.status,
        StatusCode::CREATED
    );
    let draft = json!({
        "interval": {"unit": "MONTH", "count": 1},
        "merchantRedirectUrl": "https://example.com/back",
        "merchantAgreementUrl": "https://example.com/manage",
        "pricing": {"type": "LEGACY", "amount": 10000, "currency": "NOK"},
        "productName": "Socks every month",
        "externalId": "sub-77",
        "initialCharge": {"amount": 10000, "description": "First box", "transactionType": "DIRECT_CAPTURE", "orderId": "first-box-77"}
    });
    let id = t.post("/recurring/v3/agreements", &draft).await.json()["agreementId"].as_str().unwrap().to_owned();
    t.control(Method::POST, &format!("/_sim/agreements/{id}/accept"), None).await;
    let due = (t.sim.now().with_timezone(&chrono_tz::Europe::Oslo).date_naive() + chrono::Duration::days(5))
        .format("%Y-%m-%d")
        .to_string();
    let c = t.post(&format!("/recurring/v3/agreements/{id}/charges"), &json!({"amount": 10000, "transactionType": "DIRECT_CAPTURE", "description": "Box 2", "due": due, "retryDays": 0})).await;
    assert_eq!(c.status, StatusCode::CREATED);
    t.call(
        Method::PATCH,
        &format!("/recurring/v3/agreements/{id}"),
        Some("stop-77"),
        Some(&json!({"status": "STOPPED"})),
    )
    .await;
    let bodies = wait_for(&recv, 4).await;
    let types: Vec<&str> = bodies.iter().map(|b| b["eventType"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "recurring.agreement-activated.v1",
            "recurring.charge-captured.v1",
            "recurring.agreement-stopped.v1",
            "recurring.charge-canceled.v1"
        ]
    );
    assert_eq!(bodies[0]["agreementId"], id.as_str());
    assert_eq!(bodies[0]["actor"], "USER");
    assert_eq!(bodies[0]["agreementExternalId"], "sub-77");
    assert_eq!(bodies[1]["chargeId"], "first-box-77");
    assert_eq!(bodies[1]["chargeType"], "INITIAL");
    assert_eq!(bodies[1]["amountCaptured"], 10000);
    assert_eq!(bodies[1]["transactionId"].as_str().unwrap().len(), 10);
    assert_eq!(bodies[2]["actor"], "MERCHANT");
    assert_eq!(bodies[3]["amountCanceled"], 10000);
    assert_eq!(bodies[3]["msn"], t.merchant.msn.as_str());
    t.sim.shutdown().await;
}
