//! One-time payments when answers race or go missing: a create still at Vipps while the poll runs, a create
//! whose answer was lost, a capture payhub did not make, refunds while the poll runs.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::vipps::{clear_faults, fault, faults_left, refund_payments, refunded_at_vipps, sim_client};
use crate::helpers::{collected, seed_intent, storage, TestApp, Vipps};
use crate::on_both_backends;

/// `POST /v2/Refund` with the integrator key, sent from a task of its own: its status and body.
fn refund_in_background(app: &TestApp, vipps: &Vipps, body: Value) -> tokio::task::JoinHandle<(StatusCode, Value)> {
    let (http, url, key) = (app.http.clone(), app.url("/v2/Refund"), vipps.integrator_key.clone());
    tokio::spawn(async move {
        let response = http.post(url).bearer_auth(key).json(&body).send().await.unwrap();
        (response.status(), response.json::<Value>().await.unwrap_or(Value::Null))
    })
}

async fn refund(app: &TestApp, vipps: &Vipps, body: Value) -> (StatusCode, Value) {
    refund_in_background(app, vipps, body).await.unwrap()
}

on_both_backends! {
    async fn a_create_still_at_vipps_is_not_sent_again_by_another_instances_poll(app) {
        let vipps = app.with_vipps().await;
        let other = app.second_instance(&vipps).await;
        // No webhook may read the payment meanwhile: every call the simulator sees here is a create.
        assert_eq!(vipps.control("/_sim/webhooks/pause", json!({})).await, StatusCode::NO_CONTENT);
        fault(&vipps, "/epayment/v1/payments", json!({"kind": "delay", "delayMs": 700, "times": 1})).await;
        let first = {
            let (http, url, key) = (app.http.clone(), app.url("/v2/PaymentIntent"), vipps.integrator_key.clone());
            tokio::spawn(async move {
                let response = http.post(url).bearer_auth(key).json(&seed_intent()).send().await.unwrap();
                (response.status(), response.json::<Value>().await.unwrap())
            })
        };
        // Storage: the recorded create has no API of its own while Vipps holds its answer back.
        storage::wait_for_count(&app, "SELECT COUNT(*) FROM vipps_payments", &[], 1).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        // A poll that sent the create again would use this rule up.
        fault(&vipps, "/epayment/v1/payments", json!({"kind": "500", "times": 1})).await;
        assert_eq!(other.payments.sync_open(100).await.unwrap(), 0, "a create younger than a minute is its caller's");
        let (status, created) = first.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{created}");
        assert_eq!(created["OneTime"]["Status"], "Pending");
        assert_eq!(faults_left(&vipps).await.len(), 1, "the other instance sent nothing");
        clear_faults(&vipps).await;
        let intent = app.v2_get(&vipps, &format!("/v2/PaymentIntent/{}", created["Id"].as_str().unwrap())).await;
        assert_eq!((intent["Status"].as_str(), intent["OneTime"]["Status"].as_str()), (Some("Matched"), Some("Pending")), "{intent}");
        other.store.close().await;
    }

    async fn a_create_whose_answer_was_lost_and_whose_key_vipps_forgot_is_read_back_not_failed(app) {
        let vipps = app.with_vipps().await;
        assert_eq!(vipps.control("/_sim/webhooks/pause", json!({})).await, StatusCode::NO_CONTENT);
        // Vipps creates the payment but its answer is lost, and so are the retries'.
        fault(&vipps, "/epayment/v1/payments", json!({"kind": "delay", "delayMs": 1500, "times": 1})).await;
        fault(&vipps, "/epayment/v1/payments", json!({"kind": "500", "times": 10})).await;
        let (status, answer) = app.intent(&vipps, &seed_intent()).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{answer}");
        let id = answer["Id"].as_str().unwrap().to_owned();
        clear_faults(&vipps).await;
        // Long after, Vipps no longer remembers the key: the same create meets its own reference (409).
        vipps.http.delete(format!("{}/_sim/idempotency", vipps.sim.base_url())).send().await.unwrap();
        vipps.sim.advance(90).await;
        app.state.payments.sync_open(100).await.unwrap();
        let intent = app.v2_get(&vipps, &format!("/v2/PaymentIntent/{id}")).await;
        assert_eq!(intent["Status"], "Matched", "the payment exists at Vipps: {intent}");
        assert_eq!(intent["OneTime"]["Status"], "Pending", "{intent}");
        assert!(intent["RedirectURL"].as_str().is_some_and(|u| u.starts_with(&vipps.sim.base_url())), "{intent}");

        let reference = intent["OneTime"]["PaymentReference"].as_str().unwrap();
        assert_eq!(vipps.control(&format!("/_sim/payments/{reference}/approve"), json!({})).await, StatusCode::OK);
        app.state.payments.sync_open(100).await.unwrap();
        let intent = app.v2_get(&vipps, &format!("/v2/PaymentIntent/{id}")).await;
        assert_eq!(intent["OneTime"]["Status"], "Collected", "{intent}");
    }

    async fn a_capture_made_in_the_vipps_portal_is_recorded_once_and_not_tried_again(app) {
        let vipps = app.with_vipps().await;
        assert_eq!(vipps.control("/_sim/webhooks/pause", json!({})).await, StatusCode::NO_CONTENT);
        let (status, created) = app.intent(&vipps, &seed_intent()).await;
        assert_eq!(status, StatusCode::OK, "{created}");
        let reference = created["OneTime"]["PaymentReference"].as_str().unwrap().to_owned();
        let installment_id = created["OneTime"]["Id"].as_str().unwrap().to_owned();
        assert_eq!(vipps.control(&format!("/_sim/payments/{reference}/approve"), json!({})).await, StatusCode::OK);
        // The merchant captures in the portal before payhub saw the approval.
        assert_eq!(vipps.control(&format!("/_sim/payments/{reference}/portal-capture"), json!({})).await, StatusCode::OK);
        let vipps_reference = vipps_client::epayment::Reference::parse(&reference).unwrap();
        let events = sim_client(&vipps).epayment().events(&vipps_reference).await.unwrap();
        let captured: Vec<_> = events.iter().filter(|e| e.name.to_string() == "CAPTURED").collect();
        assert_eq!(captured.len(), 1);

        vipps.sim.advance(90).await;
        app.state.payments.sync_open(100).await.unwrap();
        let installment = app.v2_get(&vipps, &format!("/v2/Installment/{installment_id}")).await;
        assert_eq!(installment["Status"], "Collected", "{installment}");
        assert_eq!(installment["AmountOpen"], json!(0.0), "{installment}");
        let payments = installment["Payments"].as_array().unwrap();
        assert_eq!(payments.len(), 1, "{installment}");
        assert_eq!(payments[0]["AmountOre"], 3600);
        assert_eq!(payments[0]["PspReference"], captured[0].psp_reference.as_str(), "the portal capture's own reference");

        assert_eq!(app.state.payments.sync_open(100).await.unwrap(), 0, "nothing is left to capture or read");
        let again = app.v2_get(&vipps, &format!("/v2/Installment/{installment_id}")).await;
        assert_eq!(again["Payments"].as_array().unwrap().len(), 1, "{again}");
        let events = sim_client(&vipps).epayment().events(&vipps_reference).await.unwrap();
        assert_eq!(events.iter().filter(|e| e.name.to_string() == "CAPTURED").count(), 1);
    }

    async fn an_installment_stays_partially_refunded_while_another_refund_is_pending(app) {
        let vipps = app.with_vipps().await;
        let (installment_id, reference) = collected(&app, &vipps).await;
        fault(&vipps, &format!("/epayment/v1/payments/{reference}/refund"), json!({"kind": "500", "times": 4})).await;
        let (status, pending) = refund(&app, &vipps, json!({"InstallmentId": installment_id, "Amount": 10})).await;
        assert_eq!(status, StatusCode::OK, "{pending}");
        assert_eq!(pending["Status"], "Pending", "{pending}");
        clear_faults(&vipps).await;

        let (status, rest) = refund(&app, &vipps, json!({"InstallmentId": installment_id})).await;
        assert_eq!(status, StatusCode::OK, "{rest}");
        assert_eq!((rest["Status"].as_str(), rest["Amount"].as_f64()), (Some("Succeeded"), Some(26.0)), "{rest}");
        assert_eq!(rest["InstallmentStatus"], "Partially refunded", "10 kr are not refunded yet: {rest}");
        let installment = app.v2_get(&vipps, &format!("/v2/Installment/{installment_id}")).await;
        assert_eq!(installment["Status"], "Partially refunded", "{installment}");

        vipps.sim.advance(90).await;
        app.state.payments.sync_open(100).await.unwrap();
        let installment = app.v2_get(&vipps, &format!("/v2/Installment/{installment_id}")).await;
        assert_eq!(installment["Status"], "Refunded", "{installment}");
        let mut refunds = refund_payments(&app, &vipps, &installment_id).await;
        refunds.sort_unstable();
        assert_eq!(refunds, [-2600, -1000]);
        assert_eq!(refunded_at_vipps(&vipps, &reference).await, 3600);
    }

    async fn a_refund_still_at_vipps_is_left_to_its_caller_by_the_poll(app) {
        let vipps = app.with_vipps().await;
        let (installment_id, reference) = collected(&app, &vipps).await;
        let path = format!("/epayment/v1/payments/{reference}/refund");
        fault(&vipps, &path, json!({"kind": "delay", "delayMs": 700, "times": 1})).await;
        let first = refund_in_background(&app, &vipps, json!({"InstallmentId": installment_id, "Amount": 10}));
        // Storage: the reserved refund has no API of its own while Vipps holds its answer back.
        storage::wait_for_count(&app, "SELECT COUNT(*) FROM refunds", &[], 1).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        // A poll that sent the refund again would use this rule up.
        fault(&vipps, &path, json!({"kind": "500", "times": 1})).await;
        app.state.payments.sync_open(100).await.unwrap();
        let (status, answer) = first.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["Status"], "Succeeded", "{answer}");
        assert!(answer["PaymentId"].as_str().is_some_and(|p| p.starts_with("pmt_")), "the caller recorded its refund: {answer}");
        assert_eq!(faults_left(&vipps).await.len(), 1, "the poll sent nothing");
        clear_faults(&vipps).await;
        assert_eq!(refund_payments(&app, &vipps, &installment_id).await, [-1000]);
        assert_eq!(refunded_at_vipps(&vipps, &reference).await, 1000);
    }
}
