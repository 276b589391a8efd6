//! Recurring v3 and Webhooks v1 against the official OpenAPI files (skipped without them).
#![allow(clippy::unwrap_used)]

mod common;

use chrono::{Datelike, Duration};
use common::openapi::{load, Spec};
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const REC: &str = "vipps-recurring-api/openapi.yaml";

fn check(spec: &Spec, path: &str, method: &str, r: &Resp) {
    let schema = spec.response_schema(path, method, r.status.as_str());
    spec.assert_valid(&format!("{method} {path} → {}", r.status), &schema, &r.json());
}

fn date_in(t: &TestSim, days: i64) -> String {
    let d = t.sim.now().with_timezone(&chrono_tz::Europe::Oslo).date_naive() + Duration::days(days);
    format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
}

fn examples(spec_file: &str, path: &str) -> Vec<(String, Value)> {
    let Some(dir) = common::openapi::spec_dir() else { return Vec::new() };
    let text = std::fs::read_to_string(dir.join(spec_file)).unwrap();
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let doc: Value = serde_json::to_value(yaml).unwrap();
    let pointer = format!("/paths/{}/post/requestBody/content/application~1json/examples", path.replace('/', "~1"));
    doc.pointer(&pointer)
        .and_then(Value::as_object)
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v["value"].clone())).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn every_draft_example_in_the_spec_is_accepted_and_answered_per_schema() {
    let Some(spec) = load(REC) else { return };
    let t = TestSim::start().await;
    let list = examples(REC, "/recurring/v3/agreements");
    assert!(list.len() >= 5, "the 2023 file has several draft examples");
    for (name, body) in list {
        // The spec's own examples are the input; the 2023 campaign `oneOf` is ambiguous, so they
        // are not re-validated against it.
        let r = t.post("/recurring/v3/agreements", &body).await;
        assert_eq!(r.status, StatusCode::CREATED, "example {name}: {}", r.text);
        check(&spec, "/recurring/v3/agreements", "post", &r);
        let id = r.json()["agreementId"].as_str().unwrap().to_owned();
        let got = t.get(&format!("/recurring/v3/agreements/{id}")).await;
        check(&spec, "/recurring/v3/agreements/{agreementId}", "get", &got);
        let accept = json!({"phoneNumber": "4791234567"});
        let a = t
            .call(
                Method::PATCH,
                &format!("/recurring/v3/agreements/{id}/accept"),
                Some(&unique_ref("acc")),
                Some(&accept),
            )
            .await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "example {name}: {}", a.text);
        check(
            &spec,
            "/recurring/v3/agreements/{agreementId}",
            "get",
            &t.get(&format!("/recurring/v3/agreements/{id}")).await,
        );
    }
    check(&spec, "/recurring/v3/agreements", "get", &t.get("/recurring/v3/agreements?status=ACTIVE").await);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn charge_responses_match_the_schema_in_every_status() {
    let Some(spec) = load(REC) else { return };
    let t = TestSim::start().await;
    let mut draft =
        examples(REC, "/recurring/v3/agreements").into_iter().find(|(n, _)| n == "Minimal").map(|(_, v)| v).unwrap();
    draft["initialCharge"] =
        json!({"amount": 2500, "description": "First month", "transactionType": "RESERVE_CAPTURE"});
    let r = t.post("/recurring/v3/agreements", &draft).await.json();
    let id = r["agreementId"].as_str().unwrap().to_owned();
    let initial = r["chargeId"].as_str().unwrap().to_owned();
    t.control(Method::POST, &format!("/_sim/agreements/{id}/accept"), None).await;
    let cp = "/recurring/v3/agreements/{agreementId}/charges/{chargeId}";
    check(&spec, cp, "get", &t.get(&format!("/recurring/v3/agreements/{id}/charges/{initial}")).await);

    let create = |days: i64, tt: &str| json!({"amount": 2500, "transactionType": tt, "description": "Monthly", "due": date_in(&t, days), "retryDays": 1});
    let body = create(2, "DIRECT_CAPTURE");
    spec.assert_valid(
        "charge request",
        &spec.request_schema("/recurring/v3/agreements/{agreementId}/charges", "post"),
        &body,
    );
    let c = t.post(&format!("/recurring/v3/agreements/{id}/charges"), &body).await;
    check(&spec, "/recurring/v3/agreements/{agreementId}/charges", "post", &c);
    // This charge is processed first and made to fail; the next one is charged.
    let failing = c.json()["chargeId"].as_str().unwrap().to_owned();
    t.control(
        Method::POST,
        &format!("/_sim/agreements/{id}/fail-next-charge"),
        Some(&json!({"reason": "user_action_required"})),
    )
    .await;
    let due = t.post(&format!("/recurring/v3/agreements/{id}/charges"), &create(3, "DIRECT_CAPTURE")).await.json()
        ["chargeId"]
        .as_str()
        .unwrap()
        .to_owned();
    check(&spec, cp, "get", &t.get(&format!("/recurring/v3/agreements/{id}/charges/{due}")).await);
    t.advance(6 * 86400).await;
    let charged = t.get(&format!("/recurring/v3/agreements/{id}/charges/{due}")).await;
    assert_eq!(charged.json()["status"], "CHARGED");
    check(&spec, cp, "get", &charged);
    let failed = t.get(&format!("/recurring/v3/agreements/{id}/charges/{failing}")).await;
    assert_eq!(failed.json()["status"], "FAILED");
    check(&spec, cp, "get", &failed);
    let refund = json!({"amount": 1000, "description": "Goodwill"});
    spec.assert_valid("refund request", &spec.request_schema(&format!("{cp}/refund"), "post"), &refund);
    assert_eq!(
        t.post(&format!("/recurring/v3/agreements/{id}/charges/{due}/refund"), &refund).await.status,
        StatusCode::NO_CONTENT
    );
    check(&spec, cp, "get", &t.get(&format!("/recurring/v3/agreements/{id}/charges/{due}")).await);
    let capture = json!({"amount": 2500, "description": "Shipped"});
    spec.assert_valid("capture request", &spec.request_schema(&format!("{cp}/capture"), "post"), &capture);
    assert_eq!(
        t.post(&format!("/recurring/v3/agreements/{id}/charges/{initial}/capture"), &capture).await.status,
        StatusCode::NO_CONTENT
    );
    check(&spec, "/recurring/v3/charges/{chargeId}", "get", &t.get(&format!("/recurring/v3/charges/{initial}")).await);
    check(
        &spec,
        "/recurring/v3/agreements/{agreementId}/charges",
        "get",
        &t.get(&format!("/recurring/v3/agreements/{id}/charges")).await,
    );
    let stop = json!({"status": "STOPPED"});
    spec.assert_valid("patch request", &spec.request_schema("/recurring/v3/agreements/{agreementId}", "patch"), &stop);
    t.call(Method::PATCH, &format!("/recurring/v3/agreements/{id}"), Some("stop-it"), Some(&stop)).await;
    check(
        &spec,
        "/recurring/v3/agreements/{agreementId}",
        "get",
        &t.get(&format!("/recurring/v3/agreements/{id}")).await,
    );

    // Error bodies are ErrorV3.
    let errors = [
        t.post(&format!("/recurring/v3/agreements/{id}/charges"), &create(3, "DIRECT_CAPTURE")).await,
        t.get("/recurring/v3/agreements/agr_missing").await,
        t.call(Method::POST, "/recurring/v3/agreements", None, Some(&draft)).await,
        t.post(&format!("/recurring/v3/agreements/{id}/charges/{due}/refund"), &json!({"amount": "lots"})).await,
    ];
    for e in &errors {
        assert!(e.status.is_client_error(), "{}", e.text);
        check(&spec, "/recurring/v3/agreements/{agreementId}", "get", e);
    }
    t.sim.shutdown().await;
}

#[tokio::test]
async fn charges_due_tomorrow_are_accepted_as_vipps_does_since_october_2025_though_2023_production_wanted_two_days() {
    let Some(_spec) = load(REC) else { return };
    let t = TestSim::start().await;
    let draft =
        examples(REC, "/recurring/v3/agreements").into_iter().find(|(n, _)| n == "Minimal").map(|(_, v)| v).unwrap();
    let id = t.post("/recurring/v3/agreements", &draft).await.json()["agreementId"].as_str().unwrap().to_owned();
    t.control(Method::POST, &format!("/_sim/agreements/{id}/accept"), None).await;
    let body = json!({"amount": 2500, "transactionType": "DIRECT_CAPTURE", "description": "x", "due": date_in(&t, 1), "retryDays": 0});
    assert_eq!(t.post(&format!("/recurring/v3/agreements/{id}/charges"), &body).await.status, StatusCode::CREATED);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn charge_requests_the_schema_rejects_are_rejected_with_400() {
    let Some(spec) = load(REC) else { return };
    let t = TestSim::start().await;
    let draft =
        examples(REC, "/recurring/v3/agreements").into_iter().find(|(n, _)| n == "Minimal").map(|(_, v)| v).unwrap();
    let id = t.post("/recurring/v3/agreements", &draft).await.json()["agreementId"].as_str().unwrap().to_owned();
    t.control(Method::POST, &format!("/_sim/agreements/{id}/accept"), None).await;
    let schema = spec.request_schema("/recurring/v3/agreements/{agreementId}/charges", "post");
    let good = json!({"amount": 2500, "transactionType": "DIRECT_CAPTURE", "description": "x", "due": date_in(&t, 3), "retryDays": 1});
    let bad: Vec<Value> = vec![
        json!({"transactionType": "DIRECT_CAPTURE", "description": "x", "due": date_in(&t, 3), "retryDays": 1}),
        json!({"amount": 99, "transactionType": "DIRECT_CAPTURE", "description": "x", "due": date_in(&t, 3), "retryDays": 1}),
        json!({"amount": 2500, "transactionType": "MAYBE_CAPTURE", "description": "x", "due": date_in(&t, 3), "retryDays": 1}),
        json!({"amount": 2500, "transactionType": "DIRECT_CAPTURE", "description": "x", "due": date_in(&t, 3), "retryDays": 15}),
        json!({"amount": 2500, "transactionType": "DIRECT_CAPTURE", "description": "x", "due": date_in(&t, 3)}),
    ];
    for body in bad {
        assert!(!spec.errors(&schema, &body).is_empty(), "the schema should reject {body}");
        let r = t.post(&format!("/recurring/v3/agreements/{id}/charges"), &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        check(&spec, "/recurring/v3/agreements/{agreementId}/charges", "post", &r);
    }
    assert!(spec.errors(&schema, &good).is_empty());
    assert_eq!(t.post(&format!("/recurring/v3/agreements/{id}/charges"), &good).await.status, StatusCode::CREATED);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn webhook_registration_responses_match_the_webhooks_schema() {
    let Some(spec) = load("webhooks-api/swagger.yaml") else { return };
    let t = TestSim::start().await;
    let body = json!({"url": "https://example.com/hooks", "events": ["epayments.payment.captured.v1", "recurring.charge-failed.v1"]});
    spec.assert_valid("register request", &spec.request_schema("/v1/webhooks", "post"), &body);
    let r = t.post("/webhooks/v1/webhooks", &body).await;
    assert_eq!(r.status, StatusCode::CREATED);
    check(&spec, "/v1/webhooks", "post", &r);
    check(&spec, "/v1/webhooks", "get", &t.get("/webhooks/v1/webhooks").await);
    let bad = t
        .post("/webhooks/v1/webhooks", &json!({"url": "not a url", "events": ["epayments.payment.captured.v1"]}))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    check(&spec, "/v1/webhooks", "post", &bad);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        t.call(Method::DELETE, &format!("/webhooks/v1/webhooks/{id}"), None, None).await.status,
        StatusCode::NO_CONTENT
    );
    t.sim.shutdown().await;
}

#[tokio::test]
async fn flexible_pricing_without_an_interval_is_accepted_as_current_vipps_does_though_the_2023_spec_requires_both() {
    let Some(spec) = load(REC) else { return };
    let t = TestSim::start().await;
    let body = json!({
        "pricing": {"type": "FLEXIBLE", "currency": "NOK"},
        "merchantRedirectUrl": "https://example.com/redirect",
        "merchantAgreementUrl": "https://example.com/agreement",
        "productName": "Pay as you go"
    });
    assert!(!spec.errors(&spec.request_schema("/recurring/v3/agreements", "post"), &body).is_empty());
    let r = t.post("/recurring/v3/agreements", &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.json()["agreementId"].as_str().unwrap().to_owned();
    t.control(Method::POST, &format!("/_sim/agreements/{id}/accept"), None).await;
    let a = t.get(&format!("/recurring/v3/agreements/{id}")).await.json();
    assert_eq!(a["pricing"]["type"], "FLEXIBLE");
    // FLEXIBLE has no ceiling: a charge far above any price is accepted.
    let c = json!({"amount": 5_000_000, "transactionType": "DIRECT_CAPTURE", "description": "Usage", "due": date_in(&t, 2), "retryDays": 0});
    assert_eq!(t.post(&format!("/recurring/v3/agreements/{id}/charges"), &c).await.status, StatusCode::CREATED);
    t.sim.shutdown().await;
}
