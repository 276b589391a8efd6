//! ePayment v1 and access token against the official OpenAPI files (skipped without them).
#![allow(clippy::unwrap_used)]

mod common;

use common::openapi::{load, Spec};
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const EP: &str = "vipps-epayment-api/epayment.v1.yml";

fn check(spec: &Spec, path: &str, method: &str, r: &Resp) {
    let schema = spec.response_schema(path, method, r.status.as_str());
    spec.assert_valid(&format!("{method} {path} → {}", r.status), &schema, &r.json());
}

fn amount(v: i64) -> Value {
    json!({"modificationAmount": {"currency": "NOK", "value": v}})
}

#[tokio::test]
async fn every_epayment_response_matches_the_openapi_schema_for_its_status() {
    let Some(spec) = load(EP) else { return };
    let t = TestSim::start().await;
    let p = "/epayment/v1/payments/{reference}";
    let reference = unique_ref("conf");
    let body = payment_body(&reference, 10000);
    spec.assert_valid("our create request", &spec.request_schema("/epayment/v1/payments", "post"), &body);
    let created = t.post("/epayment/v1/payments", &body).await;
    assert_eq!(created.status, StatusCode::CREATED);
    check(&spec, "/epayment/v1/payments", "post", &created);
    check(&spec, p, "get", &t.get(&format!("/epayment/v1/payments/{reference}")).await);

    let approve = json!({"customer": {"phoneNumber": "4791234567"}});
    spec.assert_valid(
        "force approve request",
        &spec.request_schema("/epayment/v1/test/payments/{reference}/approve", "post"),
        &approve,
    );
    let ok =
        t.call(Method::POST, &format!("/epayment/v1/test/payments/{reference}/approve"), None, Some(&approve)).await;
    assert_eq!(ok.status, StatusCode::OK);
    check(&spec, p, "get", &t.get(&format!("/epayment/v1/payments/{reference}")).await);

    spec.assert_valid("capture request", &spec.request_schema(&format!("{p}/capture"), "post"), &amount(4000));
    let cap = t.post(&format!("/epayment/v1/payments/{reference}/capture"), &amount(4000)).await;
    check(&spec, &format!("{p}/capture"), "post", &cap);
    spec.assert_valid("refund request", &spec.request_schema(&format!("{p}/refund"), "post"), &amount(1000));
    let refund = t.post(&format!("/epayment/v1/payments/{reference}/refund"), &amount(1000)).await;
    check(&spec, &format!("{p}/refund"), "post", &refund);
    let cancel = t.post(&format!("/epayment/v1/payments/{reference}/cancel"), &json!({})).await;
    check(&spec, &format!("{p}/cancel"), "post", &cancel);
    check(&spec, &format!("{p}/events"), "get", &t.get(&format!("/epayment/v1/payments/{reference}/events")).await);

    // Error responses: 400 (code), 400 (validation), 404, 409.
    let too_much = t.post(&format!("/epayment/v1/payments/{reference}/capture"), &amount(999_999)).await;
    assert_eq!(too_much.status, StatusCode::BAD_REQUEST);
    check(&spec, &format!("{p}/capture"), "post", &too_much);
    let mut bad = payment_body("bad", 10000);
    bad["reference"] = json!("x");
    let invalid = t.post("/epayment/v1/payments", &bad).await;
    check(&spec, "/epayment/v1/payments", "post", &invalid);
    let missing = t.post("/epayment/v1/payments/no-such-ref-1/capture", &amount(100)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    check(&spec, &format!("{p}/capture"), "post", &missing);
    let dup = t.post("/epayment/v1/payments", &body).await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    check(&spec, "/epayment/v1/payments", "post", &dup);

    // Terminated and expired payments still match GetPaymentResponse.
    let term = unique_ref("conf-term");
    t.post("/epayment/v1/payments", &payment_body(&term, 10000)).await;
    let r = t.post(&format!("/epayment/v1/payments/{term}/cancel"), &json!({})).await;
    check(&spec, &format!("{p}/cancel"), "post", &r);
    let exp = unique_ref("conf-exp");
    let mut qr = payment_body(&exp, 10000);
    qr["userFlow"] = json!("QR");
    qr["qrFormat"] = json!({"format": "IMAGE/PNG", "size": 500});
    qr["metadata"] = json!({"orderLine": "socks"});
    qr["profile"] = json!({"scope": "name phoneNumber"});
    spec.assert_valid("QR create request", &spec.request_schema("/epayment/v1/payments", "post"), &qr);
    check(&spec, "/epayment/v1/payments", "post", &t.post("/epayment/v1/payments", &qr).await);
    t.advance(601).await;
    let g = t.get(&format!("/epayment/v1/payments/{exp}")).await;
    assert_eq!(g.json()["state"], "EXPIRED");
    check(&spec, p, "get", &g);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn epayment_webhook_bodies_match_the_webhook_event_schema() {
    let Some(spec) = load(EP) else { return };
    let t = TestSim::start().await;
    // Port 9 (discard) is closed on test machines: deliveries fail fast but are recorded.
    let reg = t
        .post(
            "/webhooks/v1/webhooks",
            &json!({"url": "http://127.0.0.1:9/hook", "events": [
                "epayments.payment.created.v1", "epayments.payment.authorized.v1",
                "epayments.payment.captured.v1", "epayments.payment.aborted.v1"]}),
        )
        .await;
    assert_eq!(reg.status, StatusCode::CREATED);
    t.control(Method::POST, "/_sim/webhooks/pause", None).await;
    let a = unique_ref("wh");
    t.post("/epayment/v1/payments", &payment_body(&a, 10000)).await;
    t.control(Method::POST, &format!("/_sim/payments/{a}/approve"), None).await;
    t.post(&format!("/epayment/v1/payments/{a}/capture"), &amount(10000)).await;
    let b = unique_ref("wh");
    t.post("/epayment/v1/payments", &payment_body(&b, 10000)).await;
    t.control(Method::POST, &format!("/_sim/payments/{b}/reject"), None).await;
    let d = t.control(Method::GET, "/_sim/webhooks/deliveries", None).await.json();
    let list = d["deliveries"].as_array().unwrap();
    assert_eq!(list.len(), 5);
    for item in list {
        spec.assert_valid("webhook body", &spec.component("WebhookEvent"), &item["body"]);
    }
    t.sim.shutdown().await;
}

/// A named change to a valid create body.
type Mutation = Box<dyn Fn(&mut Value)>;

#[tokio::test]
async fn create_requests_the_schema_rejects_are_rejected_with_400() {
    let Some(spec) = load(EP) else { return };
    let t = TestSim::start().await;
    let schema = spec.request_schema("/epayment/v1/payments", "post");
    let mutations: Vec<(&str, Mutation)> = vec![
        (
            "no amount",
            Box::new(|b| {
                b.as_object_mut().unwrap().remove("amount");
            }),
        ),
        (
            "no paymentMethod",
            Box::new(|b| {
                b.as_object_mut().unwrap().remove("paymentMethod");
            }),
        ),
        (
            "no userFlow",
            Box::new(|b| {
                b.as_object_mut().unwrap().remove("userFlow");
            }),
        ),
        (
            "no reference",
            Box::new(|b| {
                b.as_object_mut().unwrap().remove("reference");
            }),
        ),
        ("string amount", Box::new(|b| b["amount"]["value"] = json!("1000"))),
        ("unknown currency", Box::new(|b| b["amount"]["currency"] = json!("SEK"))),
        ("unknown userFlow", Box::new(|b| b["userFlow"] = json!("CARRIER_PIGEON"))),
        ("unknown payment method", Box::new(|b| b["paymentMethod"]["type"] = json!("CASH"))),
        ("short reference", Box::new(|b| b["reference"] = json!("abc"))),
        ("reference with space", Box::new(|b| b["reference"] = json!("abc def ghi"))),
        ("amount above maximum", Box::new(|b| b["amount"]["value"] = json!(65_000_001))),
        ("negative amount", Box::new(|b| b["amount"]["value"] = json!(-1))),
        ("description too short", Box::new(|b| b["paymentDescription"] = json!("ab"))),
    ];
    for (what, mutate) in mutations {
        let mut body = payment_body(&unique_ref("rej"), 1000);
        mutate(&mut body);
        assert!(!spec.errors(&schema, &body).is_empty(), "{what}: the schema should reject {body}");
        let r = t.post("/epayment/v1/payments", &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {}", r.text);
        check(&spec, "/epayment/v1/payments", "post", &r);
    }
    t.sim.shutdown().await;
}

#[tokio::test]
async fn references_of_51_to_64_characters_are_accepted_as_current_vipps_does_though_the_2023_spec_caps_them_at_50() {
    let Some(spec) = load(EP) else { return };
    let t = TestSim::start().await;
    let reference = format!("long-{}", "x".repeat(59));
    assert_eq!(reference.len(), 64);
    let body = payment_body(&reference, 1000);
    assert!(
        !spec.errors(&spec.request_schema("/epayment/v1/payments", "post"), &body).is_empty(),
        "the 2023 file caps references at 50"
    );
    assert_eq!(t.post("/epayment/v1/payments", &body).await.status, StatusCode::CREATED);
    let too_long = payment_body(&format!("long-{}", "x".repeat(60)), 1000);
    assert_eq!(t.post("/epayment/v1/payments", &too_long).await.status, StatusCode::BAD_REQUEST);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn the_access_token_response_matches_the_openapi_schema() {
    let Some(spec) = load("access-token-api/swagger.yaml") else { return };
    let t = TestSim::start().await;
    let m = &t.merchant;
    let r = send(
        t.http
            .post(format!("{}/accesstoken/get", t.base))
            .header("client_id", &m.client_id)
            .header("client_secret", &m.client_secret)
            .header("Ocp-Apim-Subscription-Key", &m.subscription_key)
            .header("Merchant-Serial-Number", &m.msn),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    spec.assert_valid("token", &spec.response_schema("/accesstoken/get", "post", "200"), &r.json());
    t.sim.shutdown().await;
}

#[tokio::test]
async fn capture_guaranteed_until_is_returned_as_current_vipps_does_though_the_2023_spec_lacks_it() {
    let Some(spec) = load(EP) else { return };
    let t = TestSim::start().await;
    let schema = spec.component("GetPaymentResponse");
    let reference = unique_ref("cgu");
    t.post("/epayment/v1/payments", &payment_body(&reference, 1000)).await;
    t.control(Method::POST, &format!("/_sim/payments/{reference}/approve"), None).await;
    let p = t.get(&format!("/epayment/v1/payments/{reference}")).await.json();
    let until = chrono::DateTime::parse_from_rfc3339(p["captureGuaranteedUntil"].as_str().unwrap()).unwrap();
    assert!(until > t.sim.now());
    let mut without = p.clone();
    without.as_object_mut().unwrap().remove("captureGuaranteedUntil");
    assert!(spec.errors(&schema, &without).is_empty(), "the field is an addition, everything else conforms");
    t.sim.shutdown().await;
}
