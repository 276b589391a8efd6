//! ePayment v1 behaviour (reference §3, §9.3).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

fn amount(v: i64) -> serde_json::Value {
    json!({"modificationAmount": {"currency": "NOK", "value": v}})
}

#[tokio::test]
async fn a_web_payment_walks_from_created_through_partial_captures_refund_and_cancel() {
    let t = TestSim::start().await;
    let reference = unique_ref("order");
    let created = t.post("/epayment/v1/payments", &payment_body(&reference, 1000)).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let c = created.json();
    assert_eq!(c["reference"], reference.as_str());
    let redirect = c["redirectUrl"].as_str().unwrap();
    assert!(redirect.starts_with(&format!("{}/landing?token=", t.base)));

    let p = t.get(&format!("/epayment/v1/payments/{reference}")).await.json();
    assert_eq!(p["state"], "CREATED");
    assert_eq!(p["amount"]["value"], 1000);
    assert_eq!(p["aggregate"]["authorizedAmount"]["value"], 0);
    let create_psp = p["pspReference"].as_str().unwrap().to_owned();

    // Capture before authorization fails with 6080.
    let early = t.post(&format!("/epayment/v1/payments/{reference}/capture"), &amount(100)).await;
    assert_eq!(early.status, StatusCode::BAD_REQUEST);
    assert_eq!(early.error_code(), "6080");

    let token = redirect.split("token=").nth(1).unwrap();
    let ok = t
        .call(
            Method::POST,
            &format!("/epayment/v1/test/payments/{reference}/approve"),
            None,
            Some(&json!({"token": token})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let p = t.get(&format!("/epayment/v1/payments/{reference}")).await.json();
    assert_eq!(p["state"], "AUTHORIZED");
    assert_eq!(p["aggregate"]["authorizedAmount"]["value"], 1000);
    assert_eq!(p["pspReference"], create_psp.as_str());

    let c1 = t.post(&format!("/epayment/v1/payments/{reference}/capture"), &amount(250)).await;
    assert_eq!(c1.status, StatusCode::OK, "{}", c1.text);
    let c1 = c1.json();
    assert_eq!(c1["state"], "AUTHORIZED");
    assert_eq!(c1["aggregate"]["capturedAmount"]["value"], 250);
    assert_ne!(c1["pspReference"], create_psp.as_str());
    let too_much = t.post(&format!("/epayment/v1/payments/{reference}/capture"), &amount(751)).await;
    assert_eq!(too_much.error_code(), "6090");
    let c2 = t.post(&format!("/epayment/v1/payments/{reference}/capture"), &amount(250)).await.json();
    assert_eq!(c2["aggregate"]["capturedAmount"]["value"], 500);
    assert_ne!(c2["pspReference"], c1["pspReference"]);

    let r_too_much = t.post(&format!("/epayment/v1/payments/{reference}/refund"), &amount(501)).await;
    assert_eq!(r_too_much.error_code(), "6150");
    let r1 = t.post(&format!("/epayment/v1/payments/{reference}/refund"), &amount(200)).await.json();
    assert_eq!(r1["aggregate"]["refundedAmount"]["value"], 200);

    let cancel = t.post(&format!("/epayment/v1/payments/{reference}/cancel"), &json!({})).await;
    assert_eq!(cancel.status, StatusCode::OK, "{}", cancel.text);
    let cancel = cancel.json();
    assert_eq!(cancel["state"], "AUTHORIZED");
    assert_eq!(cancel["aggregate"]["cancelledAmount"]["value"], 500);
    let after_cancel = t.post(&format!("/epayment/v1/payments/{reference}/capture"), &amount(100)).await;
    assert_eq!(after_cancel.error_code(), "6070");

    let events = t.get(&format!("/epayment/v1/payments/{reference}/events")).await.json();
    let names: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["CREATED", "AUTHORIZED", "CAPTURED", "CAPTURED", "REFUNDED", "CANCELLED"]);
    let psps: std::collections::HashSet<&str> =
        events.as_array().unwrap().iter().map(|e| e["pspReference"].as_str().unwrap()).collect();
    assert_eq!(psps.len(), 6, "every operation has its own pspReference");
    assert_eq!(events[5]["amount"]["value"], 500);
    assert!(events[5].get("idempotencyKey").is_none());
    t.sim.shutdown().await;
}

#[tokio::test]
async fn a_created_payment_expires_after_ten_virtual_minutes() {
    let t = TestSim::start().await;
    let reference = unique_ref("exp");
    assert_eq!(t.post("/epayment/v1/payments", &payment_body(&reference, 5000)).await.status, StatusCode::CREATED);
    t.sim.advance(599).await;
    assert_eq!(t.get(&format!("/epayment/v1/payments/{reference}")).await.json()["state"], "CREATED");
    t.sim.advance(2).await;
    assert_eq!(t.get(&format!("/epayment/v1/payments/{reference}")).await.json()["state"], "EXPIRED");
    let approve = t.control(Method::POST, &format!("/_sim/payments/{reference}/approve"), None).await;
    assert_eq!(approve.status, StatusCode::CONFLICT);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn cancelling_before_authorization_terminates_the_payment() {
    let t = TestSim::start().await;
    let reference = unique_ref("term");
    t.post("/epayment/v1/payments", &payment_body(&reference, 1000)).await;
    let r = t
        .post(&format!("/epayment/v1/payments/{reference}/cancel"), &json!({"cancelTransactionOnly": true}))
        .await
        .json();
    assert_eq!(r["state"], "TERMINATED");
    assert_eq!(r["aggregate"]["cancelledAmount"]["value"], 1000);
    assert_eq!(r["aggregate"]["authorizedAmount"]["value"], 0);
    let again = t.post(&format!("/epayment/v1/payments/{reference}/cancel"), &json!({})).await;
    assert_eq!(again.error_code(), "6050");
    t.sim.shutdown().await;
}

#[tokio::test]
async fn payer_controls_reject_and_abandon_end_the_payment() {
    let t = TestSim::start().await;
    let a = unique_ref("rej");
    let b = unique_ref("abd");
    t.post("/epayment/v1/payments", &payment_body(&a, 1000)).await;
    t.post("/epayment/v1/payments", &payment_body(&b, 1000)).await;
    let r = t.control(Method::POST, &format!("/_sim/payments/{a}/reject"), None).await;
    assert_eq!(r.json()["state"], "ABORTED");
    let r = t.control(Method::POST, &format!("/_sim/payments/{b}/abandon"), None).await;
    assert_eq!(r.json()["state"], "EXPIRED");
    let r = t.control(Method::POST, &format!("/_sim/payments/{a}/dance"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let c = unique_ref("apr");
    t.post("/epayment/v1/payments", &payment_body(&c, 1000)).await;
    let bad_phone =
        t.control(Method::POST, &format!("/_sim/payments/{c}/approve"), Some(&json!({"phoneNumber": "12"}))).await;
    assert_eq!(bad_phone.status, StatusCode::BAD_REQUEST);
    let ok = t
        .control(Method::POST, &format!("/_sim/payments/{c}/approve"), Some(&json!({"phoneNumber": "4798765432"})))
        .await;
    assert_eq!(ok.json()["state"], "AUTHORIZED");
    t.sim.shutdown().await;
}

#[tokio::test]
async fn the_same_idempotency_key_replays_and_a_different_body_conflicts() {
    let t = TestSim::start().await;
    let reference = unique_ref("idem");
    let body = payment_body(&reference, 1000);
    let first = t.call(Method::POST, "/epayment/v1/payments", Some("key-1"), Some(&body)).await;
    let second = t.call(Method::POST, "/epayment/v1/payments", Some("key-1"), Some(&body)).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(first.text, second.text);
    let other =
        t.call(Method::POST, "/epayment/v1/payments", Some("key-1"), Some(&payment_body(&unique_ref("x"), 1000))).await;
    assert_eq!(other.status, StatusCode::CONFLICT);
    assert_eq!(other.error_code(), "4020");
    // A new key with the same reference: reference already exists.
    let dup = t.call(Method::POST, "/epayment/v1/payments", Some("key-2"), Some(&body)).await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(dup.error_code(), "4150");
    // A 4xx is remembered: replaying key-2 gives the same 409 even though nothing changed.
    let dup_again = t.call(Method::POST, "/epayment/v1/payments", Some("key-2"), Some(&body)).await;
    assert_eq!(dup_again.status, StatusCode::CONFLICT);
    assert_eq!(dup_again.text, dup.text);
    // A capture replay does not capture twice.
    t.control(Method::POST, &format!("/_sim/payments/{reference}/approve"), None).await;
    let path = format!("/epayment/v1/payments/{reference}/capture");
    let c1 = t.call(Method::POST, &path, Some("cap-1"), Some(&amount(300))).await;
    let c2 = t.call(Method::POST, &path, Some("cap-1"), Some(&amount(300))).await;
    assert_eq!(c1.text, c2.text);
    assert_eq!(
        t.get(&format!("/epayment/v1/payments/{reference}")).await.json()["aggregate"]["capturedAmount"]["value"],
        300
    );
    let c3 = t.call(Method::POST, &path, Some("cap-1"), Some(&amount(301))).await;
    assert_eq!(c3.error_code(), "4010");
    let missing = t.call(Method::POST, &path, None, Some(&amount(1))).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    let long = t.call(Method::POST, &path, Some(&"k".repeat(51)), Some(&amount(1))).await;
    assert_eq!(long.status, StatusCode::BAD_REQUEST);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn invalid_create_requests_get_the_documented_codes() {
    let t = TestSim::start().await;
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (json!({"amount": {"currency": "NOK", "value": 99}}), "6010"),
        (json!({"amount": {"currency": "DKK", "value": 1000}}), "5040"),
        (json!({"amount": {"currency": "NOK", "value": 10.5}}), "4040"),
        (json!({"amount": {"currency": "SEK", "value": 1000}}), "4040"),
        (json!({"amount": {"currency": "NOK", "value": -5}}), "4040"),
        (json!({"customer": {"phoneNumber": "+47 912 34 567"}}), "4070"),
        (json!({"returnUrl": "http://example.com/back"}), "4090"),
        (json!({"returnUrl": null}), "4140"),
        (json!({"paymentMethod": {"type": "BITCOIN"}}), "4160"),
        (json!({"metadata": {"a":"1","b":"2","c":"3","d":"4","e":"5","f":"6"}}), "4100"),
        (json!({"profile": {"scope": "name shoeSize"}}), "4080"),
    ];
    for (patch, code) in cases {
        let mut body = payment_body(&unique_ref("val"), 1000);
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = t.post("/epayment/v1/payments", &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{patch}: {}", r.text);
        assert_eq!(r.error_code(), code, "{patch}: {}", r.text);
    }
    let validation: Vec<(serde_json::Value, &str)> = vec![
        (json!({"reference": "short"}), "reference"),
        (json!({"reference": "has_underscore_1"}), "reference"),
        (json!({"userFlow": "TELEPATHY"}), "userFlow"),
        (json!({"paymentDescription": "ab"}), "paymentDescription"),
    ];
    for (patch, field) in validation {
        let mut body = payment_body(&unique_ref("val"), 1000);
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = t.post("/epayment/v1/payments", &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{patch}");
        assert_eq!(r.json()["extraDetails"][0]["name"], field, "{}", r.text);
    }
    let mut push = payment_body(&unique_ref("push"), 1000);
    push["userFlow"] = json!("PUSH_MESSAGE");
    push.as_object_mut().unwrap().remove("customer");
    assert_eq!(t.post("/epayment/v1/payments", &push).await.error_code(), "4140");
    let mut no_ref = payment_body("x", 1000);
    no_ref.as_object_mut().unwrap().remove("reference");
    let r = t.post("/epayment/v1/payments", &no_ref).await;
    assert_eq!(r.json()["extraDetails"][0]["name"], "reference");
    let raw = send(
        t.http
            .post(format!("{}/epayment/v1/payments", t.base))
            .bearer_auth(&t.token)
            .header("Ocp-Apim-Subscription-Key", &t.merchant.subscription_key)
            .header("Merchant-Serial-Number", &t.merchant.msn)
            .header("Idempotency-Key", "raw-1")
            .body("{not json"),
    )
    .await;
    assert_eq!(raw.status, StatusCode::BAD_REQUEST);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn a_push_payment_has_no_redirect_url_and_another_merchant_cannot_see_it() {
    let t = TestSim::start().await;
    let reference = unique_ref("push");
    let mut body = payment_body(&reference, 1000);
    body["userFlow"] = json!("PUSH_MESSAGE");
    let r = t.post("/epayment/v1/payments", &body).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.json().get("redirectUrl").is_none());
    let other = t.sim.merchants()[1].clone();
    let token = t.token_for(&other).await;
    let r = send(
        t.http
            .get(format!("{}/epayment/v1/payments/{reference}", t.base))
            .bearer_auth(token)
            .header("Ocp-Apim-Subscription-Key", &other.subscription_key)
            .header("Merchant-Serial-Number", &other.msn),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn refunds_need_a_capture_and_stop_at_the_captured_amount() {
    let t = TestSim::start().await;
    let reference = unique_ref("ref");
    t.post("/epayment/v1/payments", &payment_body(&reference, 1000)).await;
    t.control(Method::POST, &format!("/_sim/payments/{reference}/approve"), None).await;
    let r = t.post(&format!("/epayment/v1/payments/{reference}/refund"), &amount(100)).await;
    assert_eq!(r.error_code(), "6020");
    t.post(&format!("/epayment/v1/payments/{reference}/capture"), &amount(1000)).await;
    let full = t.post(&format!("/epayment/v1/payments/{reference}/capture"), &amount(1)).await;
    assert_eq!(full.error_code(), "6170");
    let cancel = t.post(&format!("/epayment/v1/payments/{reference}/cancel"), &json!({})).await;
    assert_eq!(cancel.error_code(), "6040");
    assert_eq!(
        t.post(&format!("/epayment/v1/payments/{reference}/refund"), &amount(1000)).await.status,
        StatusCode::OK
    );
    let again = t.post(&format!("/epayment/v1/payments/{reference}/refund"), &amount(1)).await;
    assert_eq!(again.error_code(), "6180");
    t.sim.shutdown().await;
}

#[tokio::test]
async fn test_environment_magic_amounts_make_approval_fail_and_leave_the_payment_created() {
    let t = TestSim::start().await;
    let reference = unique_ref("magic");
    // 151 øre: insufficient funds (the 100 øre minimum still holds).
    t.post("/epayment/v1/payments", &payment_body(&reference, 151)).await;
    let r =
        t.call(Method::POST, &format!("/epayment/v1/test/payments/{reference}/approve"), None, Some(&json!({}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "10010");
    let c = t.control(Method::POST, &format!("/_sim/payments/{reference}/approve"), None).await;
    assert_eq!(c.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(t.get(&format!("/epayment/v1/payments/{reference}")).await.json()["state"], "CREATED");
    t.sim.shutdown().await;
}

#[tokio::test]
async fn a_transient_capture_failure_is_logged_unsuccessful_and_a_retry_with_the_same_key_runs_again() {
    let t = TestSim::start().await;
    let reference = unique_ref("transient");
    t.post("/epayment/v1/payments", &payment_body(&reference, 1000)).await;
    t.sim.approve_payment(&reference).await.unwrap();
    let arm = t
        .control(Method::POST, &format!("/_sim/payments/{reference}/fail-next-capture"), Some(&json!({"code": "6280"})))
        .await;
    assert_eq!(arm.status, StatusCode::NO_CONTENT);
    let bad = t
        .control(Method::POST, &format!("/_sim/payments/{reference}/fail-next-capture"), Some(&json!({"code": "6090"})))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let path = format!("/epayment/v1/payments/{reference}/capture");
    let first = t.call(Method::POST, &path, Some("cap-once"), Some(&amount(1000))).await;
    assert_eq!(first.status, StatusCode::BAD_REQUEST);
    assert_eq!(first.error_code(), "6280");
    let retry = t.call(Method::POST, &path, Some("cap-once"), Some(&amount(1000))).await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.text);
    assert_eq!(retry.json()["aggregate"]["capturedAmount"]["value"], 1000);
    let replay = t.call(Method::POST, &path, Some("cap-once"), Some(&amount(1000))).await;
    assert_eq!(replay.text, retry.text, "the success is remembered");
    let events = t.get(&format!("/epayment/v1/payments/{reference}/events")).await.json();
    let captured: Vec<bool> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "CAPTURED")
        .map(|e| e["success"].as_bool().unwrap())
        .collect();
    assert_eq!(captured, [false, true]);
    t.sim.shutdown().await;
}
