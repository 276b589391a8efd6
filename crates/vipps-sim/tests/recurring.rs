//! Recurring v3 behaviour (reference §5, §9.5).
#![allow(clippy::unwrap_used)]

mod common;

use chrono::{Datelike, Duration};
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn draft_body(price: i64) -> Value {
    json!({
        "phoneNumber": "4791234567",
        "interval": {"unit": "MONTH", "count": 1},
        "merchantRedirectUrl": "https://example.com/confirmation",
        "merchantAgreementUrl": "https://example.com/my-customer-agreement",
        "pricing": {"type": "LEGACY", "amount": price, "currency": "NOK"},
        "productName": "Premier League subscription",
        "productDescription": "Access to all games of English top football"
    })
}

/// Norwegian date `days` ahead of the simulator's clock.
fn date_in(t: &TestSim, days: i64) -> String {
    let d = t.sim.now().with_timezone(&chrono_tz::Europe::Oslo).date_naive() + Duration::days(days);
    format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
}

async fn active_agreement(t: &TestSim, body: &Value) -> String {
    let r = t.post("/recurring/v3/agreements", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.json()["agreementId"].as_str().unwrap().to_owned();
    let acc = t
        .call(
            Method::PATCH,
            &format!("/recurring/v3/agreements/{id}/accept"),
            Some(&uuid::Uuid::new_v4().to_string()),
            Some(&json!({"phoneNumber": "4791234567"})),
        )
        .await;
    assert_eq!(acc.status, StatusCode::NO_CONTENT, "{}", acc.text);
    id
}

fn charge(t: &TestSim, amount: i64, days: i64, retry: i64) -> Value {
    json!({"amount": amount, "transactionType": "DIRECT_CAPTURE", "description": "October", "due": date_in(t, days), "retryDays": retry})
}

#[tokio::test]
async fn an_agreement_with_an_initial_charge_is_accepted_charged_monthly_and_stopped() {
    let t = TestSim::start().await;
    let mut body = draft_body(49900);
    body["initialCharge"] = json!({"amount": 49900, "description": "First month", "transactionType": "DIRECT_CAPTURE", "orderId": "initial-order-1"});
    let r = t.post("/recurring/v3/agreements", &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let d = r.json();
    let id = d["agreementId"].as_str().unwrap().to_owned();
    assert!(id.starts_with("agr_"));
    assert_eq!(d["chargeId"], "initial-order-1");
    assert!(d["vippsConfirmationUrl"].as_str().unwrap().starts_with(&format!("{}/landing?token=", t.base)));
    uuid::Uuid::parse_str(d["uuid"].as_str().unwrap()).unwrap();

    let a = t.get(&format!("/recurring/v3/agreements/{id}")).await.json();
    assert_eq!(a["status"], "PENDING");
    assert_eq!(a["pricing"]["amount"], 49900);
    assert_eq!(a["interval"]["unit"], "MONTH");
    assert_eq!(a["countryCode"], "NO");

    let early = t.post(&format!("/recurring/v3/agreements/{id}/charges"), &charge(&t, 49900, 3, 2)).await;
    assert_eq!(early.problem_id(), "charge-creation-failed");

    let acc = t
        .control(Method::POST, &format!("/_sim/agreements/{id}/accept"), Some(&json!({"phoneNumber": "4798765432"})))
        .await;
    assert_eq!(acc.status, StatusCode::OK);
    assert_eq!(acc.json()["status"], "ACTIVE");
    assert!(acc.json()["start"].is_string());
    let initial = t.get(&format!("/recurring/v3/agreements/{id}/charges/initial-order-1")).await.json();
    assert_eq!(initial["status"], "CHARGED");
    assert_eq!(initial["type"], "INITIAL");
    assert_eq!(initial["summary"]["captured"], 49900);
    assert_eq!(initial["transactionId"].as_str().unwrap().len(), 10);

    let c = t.post(&format!("/recurring/v3/agreements/{id}/charges"), &charge(&t, 49900, 3, 2)).await;
    assert_eq!(c.status, StatusCode::CREATED, "{}", c.text);
    let cid = c.json()["chargeId"].as_str().unwrap().to_owned();
    assert!(cid.starts_with("chr-"));
    let got = t.get(&format!("/recurring/v3/agreements/{id}/charges/{cid}")).await.json();
    assert_eq!(got["status"], "DUE");
    assert!(got["due"].as_str().unwrap().ends_with("T00:00:00Z"));
    assert_eq!(got["history"][0]["event"], "CREATE");

    t.advance(2 * 86400).await;
    assert_eq!(t.get(&format!("/recurring/v3/agreements/{id}/charges/{cid}")).await.json()["status"], "DUE");
    t.advance(86400 + 3600).await;
    let charged = t.get(&format!("/recurring/v3/agreements/{id}/charges/{cid}")).await.json();
    assert_eq!(charged["status"], "CHARGED", "{charged}");
    assert_eq!(charged["summary"]["captured"], 49900);

    let refund = t
        .post(
            &format!("/recurring/v3/agreements/{id}/charges/{cid}/refund"),
            &json!({"amount": 10000, "description": "Goodwill"}),
        )
        .await;
    assert_eq!(refund.status, StatusCode::NO_CONTENT, "{}", refund.text);
    let refunded = t.get(&format!("/recurring/v3/agreements/{id}/charges/{cid}")).await.json();
    assert_eq!(refunded["status"], "PARTIALLY_REFUNDED");
    assert_eq!(refunded["summary"]["refunded"], 10000);
    let too_much = t
        .post(
            &format!("/recurring/v3/agreements/{id}/charges/{cid}/refund"),
            &json!({"amount": 40000, "description": "x"}),
        )
        .await;
    assert_eq!(too_much.status, StatusCode::BAD_REQUEST);

    let next = t.post(&format!("/recurring/v3/agreements/{id}/charges"), &charge(&t, 49900, 20, 2)).await.json();
    let next_id = next["chargeId"].as_str().unwrap().to_owned();
    let not_alone = t
        .call(
            Method::PATCH,
            &format!("/recurring/v3/agreements/{id}"),
            Some("stop-1"),
            Some(&json!({"status": "STOPPED", "productName": "x"})),
        )
        .await;
    assert_eq!(not_alone.problem_id(), "validation-error");
    let stop = t
        .call(
            Method::PATCH,
            &format!("/recurring/v3/agreements/{id}"),
            Some("stop-2"),
            Some(&json!({"status": "STOPPED"})),
        )
        .await;
    assert_eq!(stop.status, StatusCode::NO_CONTENT);
    let a = t.get(&format!("/recurring/v3/agreements/{id}")).await.json();
    assert_eq!(a["status"], "STOPPED");
    assert!(a["stop"].is_string());
    assert_eq!(t.get(&format!("/recurring/v3/agreements/{id}/charges/{next_id}")).await.json()["status"], "CANCELLED");
    let after = t
        .call(
            Method::PATCH,
            &format!("/recurring/v3/agreements/{id}"),
            Some("upd-1"),
            Some(&json!({"productName": "New"})),
        )
        .await;
    assert_eq!(after.problem_id(), "illegal-agreement-update");
    let listed = t.get(&format!("/recurring/v3/agreements/{id}/charges")).await.json();
    assert_eq!(listed.as_array().unwrap().len(), 3);
    let cancelled = t.get(&format!("/recurring/v3/agreements/{id}/charges?status=CANCELLED")).await.json();
    assert_eq!(cancelled.as_array().unwrap().len(), 1);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn charge_rules_reject_due_dates_retry_days_descriptions_and_amounts_out_of_range() {
    let t = TestSim::start().await;
    let id = active_agreement(&t, &draft_body(10000)).await;
    let path = format!("/recurring/v3/agreements/{id}/charges");
    let cases: Vec<(Value, &str)> = vec![
        (charge(&t, 10000, 0, 2), "charge-due-too-soon"),
        (charge(&t, 10000, 800, 2), "charge-due-in-too-long"),
        (charge(&t, 10000, 3, 15), "validation-error"),
        (charge(&t, 99, 3, 2), "validation-error"),
        (charge(&t, 50001, 3, 2), "charge-amount-too-high"),
        (
            json!({"amount": 10000, "transactionType": "DIRECT_CAPTURE", "description": "x".repeat(46), "due": date_in(&t, 3), "retryDays": 1}),
            "validation-error",
        ),
        (
            json!({"amount": 10000, "transactionType": "TELEPATHY", "description": "x", "due": date_in(&t, 3), "retryDays": 1}),
            "validation-error",
        ),
        (
            json!({"amount": 10000, "transactionType": "DIRECT_CAPTURE", "description": "x", "due": "03/10/2026", "retryDays": 1}),
            "validation-error",
        ),
        (
            json!({"amount": 10000, "transactionType": "DIRECT_CAPTURE", "description": "x", "type": "UNSCHEDULED", "retryDays": 0}),
            "unsupported-feature",
        ),
    ];
    for (body, id) in cases {
        let r = t.post(&path, &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert_eq!(r.problem_id(), id, "{body}: {}", r.text);
    }
    // Five times the price per interval, cumulative: 4 × 10000 + 10000 fits, one more does not.
    assert_eq!(t.post(&path, &charge(&t, 40000, 3, 0)).await.status, StatusCode::CREATED);
    assert_eq!(t.post(&path, &charge(&t, 10000, 4, 0)).await.status, StatusCode::CREATED);
    assert_eq!(t.post(&path, &charge(&t, 100, 5, 0)).await.problem_id(), "charge-amount-too-high");
    let mut with_order = charge(&t, 10000, 40, 0);
    with_order["orderId"] = json!("order-abc-1");
    assert_eq!(t.post(&path, &with_order).await.json()["chargeId"], "order-abc-1");
    let far = t.get(&format!("{path}/order-abc-1")).await.json();
    assert_eq!(far["status"], "PENDING", "due in 40 days is not yet DUE");
    let dup = t.post(&path, &with_order).await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    let unknown = t.post("/recurring/v3/agreements/agr_nope123/charges", &charge(&t, 10000, 3, 0)).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.problem_id(), "resource-not-found");
    t.sim.shutdown().await;
}

#[tokio::test]
async fn a_failing_charge_is_retried_daily_then_fails_with_the_chosen_reason() {
    let t = TestSim::start().await;
    let id = active_agreement(&t, &draft_body(10000)).await;
    let f = t
        .control(
            Method::POST,
            &format!("/_sim/agreements/{id}/fail-next-charge"),
            Some(&json!({"reason": "user_action_required"})),
        )
        .await;
    assert_eq!(f.status, StatusCode::NO_CONTENT);
    let bad = t
        .control(
            Method::POST,
            &format!("/_sim/agreements/{id}/fail-next-charge"),
            Some(&json!({"reason": "insufficient_funds"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let cid = t.post(&format!("/recurring/v3/agreements/{id}/charges"), &charge(&t, 10000, 2, 2)).await.json()
        ["chargeId"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/recurring/v3/agreements/{id}/charges/{cid}");
    t.advance(2 * 86400 + 3600).await;
    let c = t.get(&path).await.json();
    assert_eq!(c["status"], "DUE", "first attempt failed, retries remain: {c}");
    assert_eq!(c["failureReason"], "user_action_required");
    t.advance(86400).await;
    assert_eq!(t.get(&path).await.json()["status"], "DUE");
    t.advance(86400).await;
    let c = t.get(&path).await.json();
    assert_eq!(c["status"], "FAILED");
    assert_eq!(c["failureReason"], "user_action_required");
    assert_eq!(c["failureDescription"], "User action required");
    assert_eq!(c["history"].as_array().unwrap().last().unwrap()["event"], "FAIL");
    // The next charge is not affected.
    let ok = t.post(&format!("/recurring/v3/agreements/{id}/charges"), &charge(&t, 10000, 1, 0)).await.json()
        ["chargeId"]
        .as_str()
        .unwrap()
        .to_owned();
    t.advance(86400 + 3600).await;
    assert_eq!(t.get(&format!("/recurring/v3/agreements/{id}/charges/{ok}")).await.json()["status"], "CHARGED");
    t.sim.shutdown().await;
}

#[tokio::test]
async fn a_reserved_charge_is_captured_in_parts_and_the_rest_cancelled() {
    let t = TestSim::start().await;
    let id = active_agreement(&t, &draft_body(10000)).await;
    let mut body = charge(&t, 10000, 1, 0);
    body["transactionType"] = json!("RESERVE_CAPTURE");
    let cid = t.post(&format!("/recurring/v3/agreements/{id}/charges"), &body).await.json()["chargeId"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/recurring/v3/agreements/{id}/charges/{cid}");
    let early = t.post(&format!("{path}/capture"), &json!({"amount": 100, "description": "x"})).await;
    assert_eq!(early.problem_id(), "charge-capture-failed");
    t.advance(86400 + 3600).await;
    assert_eq!(t.get(&path).await.json()["status"], "RESERVED");
    assert_eq!(
        t.post(&format!("{path}/capture"), &json!({"amount": 4000, "description": "Shipped"})).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(t.get(&path).await.json()["status"], "PARTIALLY_CAPTURED");
    let over = t.post(&format!("{path}/capture"), &json!({"amount": 6001, "description": "x"})).await;
    assert_eq!(over.problem_id(), "charge-capture-failed");
    let tiny = t.post(&format!("{path}/capture"), &json!({"amount": 99, "description": "x"})).await;
    assert_eq!(tiny.problem_id(), "validation-error", "the spec's minimum capture is 100");
    let del = t.call(Method::DELETE, &path, Some("del-1"), None).await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    let c = t.get(&path).await.json();
    assert_eq!(c["status"], "CHARGED");
    assert_eq!(c["summary"], json!({"captured": 4000, "refunded": 0, "cancelled": 6000}));
    let again = t.call(Method::DELETE, &path, Some("del-2"), None).await;
    assert_eq!(again.problem_id(), "cancel-charge-failed");
    t.sim.shutdown().await;
}

#[tokio::test]
async fn pending_agreements_expire_after_ten_minutes_and_listing_filters_by_status() {
    let t = TestSim::start().await;
    let a =
        t.post("/recurring/v3/agreements", &draft_body(10000)).await.json()["agreementId"].as_str().unwrap().to_owned();
    let b = active_agreement(&t, &draft_body(10000)).await;
    let c =
        t.post("/recurring/v3/agreements", &draft_body(10000)).await.json()["agreementId"].as_str().unwrap().to_owned();
    assert_eq!(
        t.control(Method::POST, &format!("/_sim/agreements/{c}/reject"), None).await.json()["status"],
        "STOPPED"
    );
    t.advance(601).await;
    assert_eq!(t.get(&format!("/recurring/v3/agreements/{a}")).await.json()["status"], "EXPIRED");
    let ids = |v: Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(ids(t.get("/recurring/v3/agreements").await.json()), vec![b.clone()]);
    assert_eq!(ids(t.get("/recurring/v3/agreements?status=EXPIRED").await.json()), vec![a.clone()]);
    assert_eq!(ids(t.get("/recurring/v3/agreements?status=STOPPED").await.json()), vec![c.clone()]);
    assert_eq!(t.get("/recurring/v3/agreements?status=NAPPING").await.status, StatusCode::BAD_REQUEST);
    let accept_expired = t.control(Method::POST, &format!("/_sim/agreements/{a}/accept"), None).await;
    assert_eq!(accept_expired.status, StatusCode::CONFLICT);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn a_user_stop_leaves_reserved_charges_but_cancels_due_ones() {
    let t = TestSim::start().await;
    let id = active_agreement(&t, &draft_body(10000)).await;
    let mut reserve = charge(&t, 10000, 1, 0);
    reserve["transactionType"] = json!("RESERVE_CAPTURE");
    let r = t.post(&format!("/recurring/v3/agreements/{id}/charges"), &reserve).await.json()["chargeId"]
        .as_str()
        .unwrap()
        .to_owned();
    t.advance(86400 + 3600).await;
    let d = t.post(&format!("/recurring/v3/agreements/{id}/charges"), &charge(&t, 10000, 5, 0)).await.json()
        ["chargeId"]
        .as_str()
        .unwrap()
        .to_owned();
    let stop = t.control(Method::POST, &format!("/_sim/agreements/{id}/stop"), None).await;
    assert_eq!(stop.json()["status"], "STOPPED");
    assert_eq!(t.get(&format!("/recurring/v3/agreements/{id}/charges/{r}")).await.json()["status"], "RESERVED");
    assert_eq!(t.get(&format!("/recurring/v3/agreements/{id}/charges/{d}")).await.json()["status"], "CANCELLED");
    t.sim.shutdown().await;
}

#[tokio::test]
async fn recurring_idempotency_keys_follow_the_recurring_rules() {
    let t = TestSim::start().await;
    let body = draft_body(10000);
    let missing = t.call(Method::POST, "/recurring/v3/agreements", None, Some(&body)).await;
    assert_eq!(missing.problem_id(), "idempotency-key-header");
    let slash = t.call(Method::POST, "/recurring/v3/agreements", Some("a/b"), Some(&body)).await;
    assert_eq!(slash.problem_id(), "idempotency-key-header");
    let long = t.call(Method::POST, "/recurring/v3/agreements", Some(&"k".repeat(41)), Some(&body)).await;
    assert_eq!(long.problem_id(), "idempotency-key-header");
    let a = t.call(Method::POST, "/recurring/v3/agreements", Some("draft-1"), Some(&body)).await;
    let b = t.call(Method::POST, "/recurring/v3/agreements", Some("draft-1"), Some(&body)).await;
    assert_eq!(a.text, b.text);
    let c = t.call(Method::POST, "/recurring/v3/agreements", Some("draft-1"), Some(&draft_body(20000))).await;
    assert_eq!(c.status, StatusCode::CONFLICT);
    assert_eq!(c.problem_id(), "idempotency-conflict");
    t.sim.shutdown().await;
}

#[tokio::test]
async fn draft_validation_names_the_broken_field() {
    let t = TestSim::start().await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"productName": "x".repeat(46)}), "validation-error"),
        (json!({"pricing": {"type": "LEGACY", "currency": "NOK"}}), "validation-error"),
        (json!({"pricing": {"type": "LEGACY", "amount": 5000, "currency": "SEK"}}), "invalid-sale-unit"),
        (json!({"pricing": {"type": "VARIABLE", "currency": "NOK"}}), "invalid-suggested-max-amount"),
        (
            json!({"pricing": {"type": "VARIABLE", "currency": "NOK", "suggestedMaxAmount": 3000000}}),
            "invalid-suggested-max-amount",
        ),
        (json!({"interval": {"unit": "FORTNIGHT", "count": 1}}), "validation-error"),
        (json!({"interval": {"unit": "MONTH", "count": 32}}), "validation-error"),
        (json!({"merchantAgreementUrl": "http://example.com/x"}), "validation-error"),
        (json!({"phoneNumber": "12345"}), "validation-error"),
        (json!({"productName": 5}), "validation-error"),
    ];
    for (patch, id) in cases {
        let mut body = draft_body(5000);
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = t.post("/recurring/v3/agreements", &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{patch}: {}", r.text);
        assert_eq!(r.problem_id(), id, "{patch}: {}", r.text);
    }
    let raw = send(
        t.http
            .post(format!("{}/recurring/v3/agreements", t.base))
            .bearer_auth(&t.token)
            .header("Ocp-Apim-Subscription-Key", &t.merchant.subscription_key)
            .header("Idempotency-Key", "raw")
            .body("{not json"),
    )
    .await;
    assert_eq!(raw.problem_id(), "invalid-json");
    t.sim.shutdown().await;
}

#[tokio::test]
async fn a_batch_creates_valid_charges_and_reports_invalid_ones() {
    let t = TestSim::start().await;
    let id = active_agreement(&t, &draft_body(10000)).await;
    let mut good = charge(&t, 10000, 3, 1);
    good["agreementId"] = json!(id);
    good["orderId"] = json!("batch-order-1");
    let mut too_soon = charge(&t, 10000, 0, 1);
    too_soon["agreementId"] = json!(id);
    too_soon["orderId"] = json!("batch-order-2");
    let mut no_order = charge(&t, 10000, 3, 1);
    no_order["agreementId"] = json!(id);
    let r = t.post("/recurring/v3/agreements/charges", &json!([good, too_soon, no_order])).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let v = r.json();
    assert_eq!(v["validCharges"], json!(["batch-order-1"]));
    assert_eq!(v["invalidCharges"].as_array().unwrap().len(), 2);
    assert!(v["invalidCharges"][0]["errors"][0].as_str().unwrap().contains("charge-due-too-soon"));
    assert_eq!(t.get(&format!("/recurring/v3/agreements/{id}/charges/batch-order-1")).await.json()["status"], "DUE");
    assert_eq!(t.get("/recurring/v3/charges/batch-order-1").await.json()["agreementId"], id.as_str());
    t.sim.shutdown().await;
}

#[tokio::test]
async fn a_batch_charge_accepted_then_dropped_is_never_created_and_reported_by_charge_creation_failed() {
    let t = TestSim::start().await;
    let reg = t
        .post(
            "/webhooks/v1/webhooks",
            &json!({"url": "http://127.0.0.1:9/hook", "events": ["recurring.charge-creation-failed.v1"]}),
        )
        .await;
    assert_eq!(reg.status, StatusCode::CREATED, "{}", reg.text);
    t.control(Method::POST, "/_sim/webhooks/pause", None).await;
    let id = active_agreement(&t, &draft_body(10000)).await;
    let armed = t
        .control(
            Method::POST,
            &format!("/_sim/agreements/{id}/drop-next-batch-charge"),
            Some(&json!({"reason": "agreement_not_active"})),
        )
        .await;
    assert_eq!(armed.status, StatusCode::NO_CONTENT, "{}", armed.text);
    let unknown = t.control(Method::POST, "/_sim/agreements/agr_nope/drop-next-batch-charge", None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let mut first = charge(&t, 10000, 3, 1);
    first["agreementId"] = json!(id);
    first["orderId"] = json!("dropped-order-1");
    let mut second = charge(&t, 10000, 4, 1);
    second["agreementId"] = json!(id);
    second["orderId"] = json!("kept-order-2");
    let r = t.post("/recurring/v3/agreements/charges", &json!([first, second])).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    // Both are in the synchronous answer: the failure is asynchronous.
    assert_eq!(r.json()["validCharges"], json!(["dropped-order-1", "kept-order-2"]));
    assert_eq!(r.json()["invalidCharges"], json!([]));
    // Only the next one was dropped: it does not exist, the other does.
    let missing = t.get(&format!("/recurring/v3/agreements/{id}/charges/dropped-order-1")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text);
    assert_eq!(t.get(&format!("/recurring/v3/agreements/{id}/charges/kept-order-2")).await.json()["status"], "DUE");
    // The event is sent at the next processing tick, with the orderId as chargeId and Vipps' reason.
    t.advance(1).await;
    let d = t.control(Method::GET, "/_sim/webhooks/deliveries", None).await.json();
    let list = d["deliveries"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{d}");
    let body = &list[0]["body"];
    assert_eq!(body["eventType"], "recurring.charge-creation-failed.v1");
    assert_eq!(body["agreementId"], id.as_str());
    assert_eq!(body["chargeId"], "dropped-order-1");
    assert_eq!(body["failureReason"], "agreement_not_active");
    assert_eq!(body["amount"], 10000);
    // The orderId is free again: a re-send with it creates the charge.
    let mut again = charge(&t, 10000, 3, 1);
    again["orderId"] = json!("dropped-order-1");
    let created = t.post(&format!("/recurring/v3/agreements/{id}/charges"), &again).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(t.get(&format!("/recurring/v3/agreements/{id}/charges/dropped-order-1")).await.json()["status"], "DUE");
    t.sim.shutdown().await;
}

#[tokio::test]
async fn a_generic_conflict_fault_answers_409_without_an_order_id_in_its_words() {
    let t = TestSim::start().await;
    let id = active_agreement(&t, &draft_body(10000)).await;
    let f = t
        .control(
            Method::POST,
            "/_sim/faults",
            Some(&json!({"pathPrefix": format!("/recurring/v3/agreements/{id}/charges"), "kind": "409"})),
        )
        .await;
    assert_eq!(f.status, StatusCode::CREATED, "{}", f.text);
    let mut c = charge(&t, 10000, 3, 1);
    c["orderId"] = json!("conflicted-order-1");
    let r = t.post(&format!("/recurring/v3/agreements/{id}/charges"), &c).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.problem_id(), "conflict");
    assert!(!r.text.contains("already used"), "{}", r.text);
    // The operation did not happen.
    let missing = t.get(&format!("/recurring/v3/agreements/{id}/charges/conflicted-order-1")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn long_lists_come_in_pages_linked_by_a_continuation_token() {
    let t = TestSim::start_with(config_with(|c| c.list_page_size = 2)).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(active_agreement(&t, &draft_body(10000)).await);
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut rb = t
            .http
            .get(format!("{}/recurring/v3/agreements?status=ACTIVE", t.base))
            .bearer_auth(&t.token)
            .header("Ocp-Apim-Subscription-Key", &t.merchant.subscription_key);
        if let Some(tok) = &token {
            rb = rb.header("Continuation-Token", tok);
        }
        let r = send(rb).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        pages += 1;
        let page = r.json();
        assert!(page.as_array().unwrap().len() <= 2);
        seen.extend(page.as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_owned()));
        match r.headers.get("continuation-token") {
            Some(v) => token = Some(v.to_str().unwrap().to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids);
    let bogus = send(
        t.http
            .get(format!("{}/recurring/v3/agreements", t.base))
            .bearer_auth(&t.token)
            .header("Ocp-Apim-Subscription-Key", &t.merchant.subscription_key)
            .header("Continuation-Token", "not-a-token"),
    )
    .await;
    assert_eq!(bogus.status, StatusCode::BAD_REQUEST);
    // Charges page the same way.
    for d in 3..8 {
        t.post(&format!("/recurring/v3/agreements/{}/charges", ids[0]), &charge(&t, 100, d, 0)).await;
    }
    let first = t.get(&format!("/recurring/v3/agreements/{}/charges", ids[0])).await;
    assert_eq!(first.json().as_array().unwrap().len(), 2);
    assert!(first.headers.contains_key("continuation-token"));
    t.sim.shutdown().await;
}
