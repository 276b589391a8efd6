//! Fault injection controls (crate README, "Controls").
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn a_500_fault_fails_n_times_then_the_call_succeeds() {
    let t = TestSim::start().await;
    let add = t
        .control(
            Method::POST,
            "/_sim/faults",
            Some(&json!({"pathPrefix": "/epayment/v1/payments", "kind": "500", "times": 2})),
        )
        .await;
    assert_eq!(add.status, StatusCode::CREATED);
    let reference = unique_ref("f500");
    let body = payment_body(&reference, 1000);
    for _ in 0..2 {
        let r = t.call(Method::POST, "/epayment/v1/payments", Some("same-key"), Some(&body)).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    let r = t.call(Method::POST, "/epayment/v1/payments", Some("same-key"), Some(&body)).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(t.control(Method::GET, "/_sim/faults", None).await.json()["faults"].as_array().unwrap().len(), 0);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn a_429_fault_carries_retry_after() {
    let t = TestSim::start().await;
    t.control(
        Method::POST,
        "/_sim/faults",
        Some(&json!({"pathPrefix": "/epayment/", "kind": "429", "retryAfterSeconds": 7})),
    )
    .await;
    let r = t.get("/epayment/v1/payments/whatever-123").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers["retry-after"], "7");
    assert_eq!(t.get("/epayment/v1/payments/whatever-123").await.status, StatusCode::NOT_FOUND);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn a_dropped_connection_gives_the_client_a_transport_error_and_nothing_happens() {
    let t = TestSim::start().await;
    t.control(Method::POST, "/_sim/faults", Some(&json!({"pathPrefix": "/epayment/v1/payments", "kind": "drop"})))
        .await;
    let reference = unique_ref("drop");
    let err = t
        .http
        .post(format!("{}/epayment/v1/payments", t.base))
        .bearer_auth(&t.token)
        .header("Ocp-Apim-Subscription-Key", &t.merchant.subscription_key)
        .header("Merchant-Serial-Number", &t.merchant.msn)
        .header("Idempotency-Key", "k1")
        .json(&payment_body(&reference, 1000))
        .send()
        .await;
    assert!(err.is_err(), "expected a transport error, got {err:?}");
    assert_eq!(t.get(&format!("/epayment/v1/payments/{reference}")).await.status, StatusCode::NOT_FOUND);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn a_delayed_create_times_out_at_the_client_but_the_payment_exists() {
    let t = TestSim::start().await;
    t.control(
        Method::POST,
        "/_sim/faults",
        Some(&json!({"pathPrefix": "/epayment/v1/payments", "kind": "delay", "delayMs": 400})),
    )
    .await;
    let reference = unique_ref("slow");
    let err = t
        .http
        .post(format!("{}/epayment/v1/payments", t.base))
        .timeout(Duration::from_millis(100))
        .bearer_auth(&t.token)
        .header("Ocp-Apim-Subscription-Key", &t.merchant.subscription_key)
        .header("Merchant-Serial-Number", &t.merchant.msn)
        .header("Idempotency-Key", "k1")
        .json(&payment_body(&reference, 1000))
        .send()
        .await;
    assert!(err.is_err_and(|e| e.is_timeout()));
    let p = t.get(&format!("/epayment/v1/payments/{reference}")).await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.json()["state"], "CREATED");
    t.sim.shutdown().await;
}

#[tokio::test]
async fn invalid_fault_rules_are_refused() {
    let t = TestSim::start().await;
    for body in [
        json!({"pathPrefix": "/x", "kind": "teapot"}),
        json!({"pathPrefix": "x", "kind": "500"}),
        json!({"pathPrefix": "/_sim/clock", "kind": "500"}),
        json!({"pathPrefix": "/x", "kind": "500", "times": 0}),
        json!({"kind": "500"}),
    ] {
        assert_eq!(
            t.control(Method::POST, "/_sim/faults", Some(&body)).await.status,
            StatusCode::BAD_REQUEST,
            "{body}"
        );
    }
    t.sim.shutdown().await;
}

#[tokio::test]
async fn with_rate_limits_on_the_documented_per_minute_limits_answer_429_until_the_minute_passes() {
    let t = TestSim::start_with(config_with(|c| c.rate_limits = true)).await;
    let reference = unique_ref("rate");
    t.post("/epayment/v1/payments", &payment_body(&reference, 10_000)).await;
    t.control(Method::POST, &format!("/_sim/payments/{reference}/approve"), None).await;
    let capture = json!({"modificationAmount": {"currency": "NOK", "value": 100}});
    for _ in 0..5 {
        let r = t.post(&format!("/epayment/v1/payments/{reference}/capture"), &capture).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let limited = t.post(&format!("/epayment/v1/payments/{reference}/capture"), &capture).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    let wait: i64 = limited.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait));
    // Reads have their own, larger budget.
    assert_eq!(t.get(&format!("/epayment/v1/payments/{reference}")).await.status, StatusCode::OK);
    t.advance(wait).await;
    assert_eq!(t.post(&format!("/epayment/v1/payments/{reference}/capture"), &capture).await.status, StatusCode::OK);
    // Recurring: listing agreements is limited to 5 a minute per merchant.
    for _ in 0..5 {
        assert_eq!(t.get("/recurring/v3/agreements").await.status, StatusCode::OK);
    }
    assert_eq!(t.get("/recurring/v3/agreements").await.status, StatusCode::TOO_MANY_REQUESTS);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn locked_and_bad_gateway_faults_answer_423_problem_and_502_html() {
    let t = TestSim::start().await;
    t.control(Method::POST, "/_sim/faults", Some(&json!({"pathPrefix": "/epayment/", "kind": "423"}))).await;
    t.control(Method::POST, "/_sim/faults", Some(&json!({"pathPrefix": "/recurring/", "kind": "502"}))).await;
    let locked = t.get("/epayment/v1/payments/whatever-123").await;
    assert_eq!(locked.status, StatusCode::LOCKED);
    assert_eq!(locked.error_code(), "6160");
    let gw = t.get("/recurring/v3/agreements").await;
    assert_eq!(gw.status, StatusCode::BAD_GATEWAY);
    assert!(gw.text.starts_with("<html>"));
    assert_eq!(gw.headers["content-type"], "text/html");
    t.sim.shutdown().await;
}
