//! Access token and gateway checks (reference §2, §1.2, §9.1).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn the_token_response_has_string_values_and_a_one_hour_lifetime() {
    let t = TestSim::start().await;
    let m = &t.merchant;
    let r = send(
        t.http
            .post(format!("{}/accesstoken/get", t.base))
            .header("client_id", &m.client_id)
            .header("client_secret", &m.client_secret)
            .header("Ocp-Apim-Subscription-Key", &m.subscription_key),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], "3600");
    let on: i64 = v["expires_on"].as_str().unwrap().parse().unwrap();
    let nb: i64 = v["not_before"].as_str().unwrap().parse().unwrap();
    assert_eq!(on - nb, 3600);
    assert!(v["access_token"].as_str().unwrap().len() > 20);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn wrong_credentials_or_a_missing_subscription_key_get_401() {
    let t = TestSim::start().await;
    let m = &t.merchant;
    let url = format!("{}/accesstoken/get", t.base);
    let wrong_secret = send(
        t.http
            .post(&url)
            .header("client_id", &m.client_id)
            .header("client_secret", "nope")
            .header("Ocp-Apim-Subscription-Key", &m.subscription_key),
    )
    .await;
    assert_eq!(wrong_secret.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_secret.json()["error"], "invalid_client");
    let other = t.sim.merchants()[1].clone();
    let mixed = send(
        t.http
            .post(&url)
            .header("client_id", &m.client_id)
            .header("client_secret", &m.client_secret)
            .header("Ocp-Apim-Subscription-Key", &other.subscription_key),
    )
    .await;
    assert_eq!(mixed.status, StatusCode::UNAUTHORIZED);
    let no_key =
        send(t.http.post(&url).header("client_id", &m.client_id).header("client_secret", &m.client_secret)).await;
    assert_eq!(no_key.status, StatusCode::UNAUTHORIZED);
    let no_creds = send(t.http.post(&url).header("Ocp-Apim-Subscription-Key", &m.subscription_key)).await;
    assert_eq!(no_creds.status, StatusCode::BAD_REQUEST);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn api_calls_need_a_bearer_token_of_the_same_merchant() {
    let t = TestSim::start().await;
    let m = &t.merchant;
    let url = format!("{}/epayment/v1/payments/unknown-ref-123", t.base);
    let no_auth = send(
        t.http
            .get(&url)
            .header("Ocp-Apim-Subscription-Key", &m.subscription_key)
            .header("Merchant-Serial-Number", &m.msn),
    )
    .await;
    assert_eq!(no_auth.status, StatusCode::UNAUTHORIZED);
    let not_bearer = send(
        t.http
            .get(&url)
            .header("Authorization", t.token.clone())
            .header("Ocp-Apim-Subscription-Key", &m.subscription_key)
            .header("Merchant-Serial-Number", &m.msn),
    )
    .await;
    assert_eq!(not_bearer.status, StatusCode::UNAUTHORIZED);
    let bogus = send(
        t.http
            .get(&url)
            .bearer_auth("made-up")
            .header("Ocp-Apim-Subscription-Key", &m.subscription_key)
            .header("Merchant-Serial-Number", &m.msn),
    )
    .await;
    assert_eq!(bogus.status, StatusCode::UNAUTHORIZED);
    let no_msn =
        send(t.http.get(&url).bearer_auth(&t.token).header("Ocp-Apim-Subscription-Key", &m.subscription_key)).await;
    assert_eq!(no_msn.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_msn.json()["extraDetails"][0]["name"], "Merchant-Serial-Number");
    let other = t.sim.merchants()[1].clone();
    let wrong_msn = send(
        t.http
            .get(&url)
            .bearer_auth(&t.token)
            .header("Ocp-Apim-Subscription-Key", &m.subscription_key)
            .header("Merchant-Serial-Number", &other.msn),
    )
    .await;
    assert_eq!(wrong_msn.status, StatusCode::FORBIDDEN);
    let other_key = send(
        t.http
            .get(&url)
            .bearer_auth(&t.token)
            .header("Ocp-Apim-Subscription-Key", &other.subscription_key)
            .header("Merchant-Serial-Number", &other.msn),
    )
    .await;
    assert_eq!(other_key.status, StatusCode::UNAUTHORIZED);
    let ok = t.get("/epayment/v1/payments/unknown-ref-123").await;
    assert_eq!(ok.status, StatusCode::NOT_FOUND);
    assert_eq!(ok.error_code(), "5090");
    t.sim.shutdown().await;
}

#[tokio::test]
async fn a_token_expires_after_one_hour_on_the_virtual_clock() {
    let t = TestSim::start().await;
    assert_eq!(t.get("/epayment/v1/payments/unknown-ref-123").await.status, StatusCode::NOT_FOUND);
    t.sim.advance(3590).await;
    assert_eq!(t.get("/epayment/v1/payments/unknown-ref-123").await.status, StatusCode::NOT_FOUND);
    let r = t.control(Method::POST, "/_sim/clock/advance", Some(&json!({"seconds": 11}))).await;
    assert_eq!(r.status, StatusCode::OK);
    let expired = t.get("/epayment/v1/payments/unknown-ref-123").await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert!(expired.text.contains("expired"));
    t.sim.shutdown().await;
}

#[tokio::test]
async fn the_clock_controls_report_advance_and_refuse_going_back() {
    let t = TestSim::start().await;
    let before = t.control(Method::GET, "/_sim/clock", None).await.json();
    let e0 = before["epochSeconds"].as_i64().unwrap();
    let after = t.control(Method::POST, "/_sim/clock/advance", Some(&json!({"seconds": 86400}))).await.json();
    assert!(after["epochSeconds"].as_i64().unwrap() - e0 >= 86400);
    let back = t.control(Method::PUT, "/_sim/clock", Some(&json!({"now": "2001-01-01T00:00:00Z"}))).await;
    assert_eq!(back.status, StatusCode::CONFLICT);
    let set = t.control(Method::PUT, "/_sim/clock", Some(&json!({"now": "2099-01-01T00:00:00Z"}))).await;
    assert_eq!(set.status, StatusCode::OK);
    let now = set.json()["now"].as_str().unwrap().to_owned();
    assert!(now.starts_with("2099-01-01T00:00:0"), "{now}");
    let bad = t.control(Method::POST, "/_sim/clock/advance", Some(&json!({"seconds": "ten"}))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let past_end = t.control(Method::PUT, "/_sim/clock", Some(&json!({"now": "9999-01-01T00:00:00Z"}))).await;
    assert_eq!(past_end.status, StatusCode::BAD_REQUEST);
    for _ in 0..80 {
        t.control(Method::POST, "/_sim/clock/advance", Some(&json!({"seconds": 100_i64 * 365 * 86400}))).await;
    }
    let end = t.control(Method::GET, "/_sim/clock", None).await.json();
    assert!(end["now"].as_str().unwrap() < "9000-01-02", "{end}");
    t.sim.shutdown().await;
}

#[tokio::test]
async fn a_frozen_clock_stamps_every_event_with_the_configured_time_until_advanced() {
    let start = chrono::DateTime::parse_from_rfc3339("2026-05-17T10:00:00Z").unwrap().with_timezone(&chrono::Utc);
    let t = TestSim::start_with(config_with(|c| {
        c.clock_start = Some(start);
        c.clock_runs = false;
    }))
    .await;
    let reference = unique_ref("frozen");
    t.post("/epayment/v1/payments", &payment_body(&reference, 1000)).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    t.sim.approve_payment(&reference).await.unwrap();
    let events = t.get(&format!("/epayment/v1/payments/{reference}/events")).await.json();
    assert_eq!(events[0]["timestamp"], "2026-05-17T10:00:00.000Z");
    assert_eq!(events[1]["timestamp"], "2026-05-17T10:00:00.000Z");
    t.advance(90).await;
    assert_eq!(t.control(Method::GET, "/_sim/clock", None).await.json()["now"], "2026-05-17T10:01:30.000Z");
    t.sim.shutdown().await;
}
