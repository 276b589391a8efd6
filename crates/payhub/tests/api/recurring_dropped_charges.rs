//! Charges Vipps accepted in a batch answer and then dropped (the batch endpoint is asynchronous: Vipps sends
//! `recurring.charge-creation-failed.v1` and the charge never exists): the installment's charge is sent again
//! once with the same order id, or the installment fails with Vipps' reason. And a 409 that is not Vipps'
//! "orderId already used" is not taken for a charge Vipps has.

use serde_json::json;

use crate::helpers::recurring::{active_many, installment, installments, settle_until};
use crate::helpers::vipps::{charge_ids_at_vipps, deliver, fault, sim_deliveries};
use crate::helpers::{storage, TestApp, Vipps};
use crate::on_both_backends;

/// The first installment of `recurring_id`: (its id, its charge's id).
async fn first_charge(app: &TestApp, vipps: &Vipps, recurring_id: &str) -> (String, String) {
    let list = installments(app, vipps, recurring_id).await;
    (list[0]["Id"].as_str().unwrap().to_owned(), list[0]["PaymentReference"].as_str().unwrap().to_owned())
}

/// Six payments (a batch), the first one's charge dropped by Vipps after the batch answer; every charge is
/// Pending in payhub after the collect beat. Returns the payments.
async fn batch_with_one_dropped(app: &TestApp, vipps: &Vipps, reason: &str) -> Vec<(String, String)> {
    let payments = active_many(app, vipps, 6).await;
    vipps.sim.drop_next_batch_charge(&payments[0].1, Some(reason), None).await.unwrap();
    app.state.payments.collect_recurring().await.unwrap();
    for (recurring_id, _) in &payments {
        assert_eq!(installments(app, vipps, recurring_id).await[0]["ChargeStatus"], "PENDING");
    }
    assert_eq!(charge_ids_at_vipps(vipps, &payments[0].1).await.len(), 0, "Vipps dropped it");
    payments
}

const ARRIVED: &str = "SELECT COUNT(*) FROM messages WHERE channel = 'vipps_webhook' AND subject = $1 AND body LIKE $2";

on_both_backends! {
    async fn a_batch_charge_vipps_dropped_is_sent_again_once_with_the_same_order_id(app) {
        let vipps = app.with_vipps().await;
        // The account's webhook registration.
        app.state.jobs.run_until_idle().await.unwrap();
        let payments = batch_with_one_dropped(&app, &vipps, "technical_error").await;
        let (installment_id, charge_id) = first_charge(&app, &vipps, &payments[0].0).await;
        // Vipps' charge-creation-failed arrives and is processed: the charge is created again, same order id.
        vipps.sim.advance(1).await;
        storage::wait_for_count(&app, ARRIVED, &[charge_id.as_str(), "%charge-creation-failed%"], 1).await;
        settle_until(&app, || async { !charge_ids_at_vipps(&vipps, &payments[0].1).await.is_empty() }).await;
        assert_eq!(charge_ids_at_vipps(&vipps, &payments[0].1).await, vec![charge_id.clone()]);
        assert_eq!(installment(&app, &vipps, &installment_id).await["Status"], "Pending");
        // The same event delivered again changes nothing: the charge exists, so nothing is re-sent.
        let (url, secret) = storage::webhook_registration(&app).await;
        let body = sim_deliveries(&vipps)
            .await
            .into_iter()
            .find(|d| d["eventType"] == "recurring.charge-creation-failed.v1")
            .map(|d| d["body"].to_string())
            .unwrap();
        assert_eq!(deliver(&app, &url, &secret, &body, chrono::Utc::now()).await, reqwest::StatusCode::OK);
        app.state.jobs.run_until_idle().await.unwrap();
        assert_eq!(charge_ids_at_vipps(&vipps, &payments[0].1).await.len(), 1);
        // Vipps processes every charge; each installment is collected once.
        vipps.sim.advance(2 * 86_400).await;
        app.state.payments.sync_recurring(1000).await.unwrap();
        for (recurring_id, agreement_id) in &payments {
            let (id, _) = first_charge(&app, &vipps, recurring_id).await;
            settle_until(&app, || async { installment(&app, &vipps, &id).await["Status"] == "Collected" }).await;
            let one = installment(&app, &vipps, &id).await;
            assert_eq!(one["Payments"].as_array().map(Vec::len), Some(1), "{one}");
            assert_eq!(charge_ids_at_vipps(&vipps, agreement_id).await.len(), 1);
        }
    }

    async fn a_dropped_batch_charge_whose_resend_is_refused_fails_with_vipps_reason(app) {
        let vipps = app.with_vipps().await;
        app.state.jobs.run_until_idle().await.unwrap();
        vipps.control("/_sim/webhooks/pause", json!({})).await;
        let payments = batch_with_one_dropped(&app, &vipps, "agreement_not_active").await;
        let (installment_id, charge_id) = first_charge(&app, &vipps, &payments[0].0).await;
        vipps.sim.advance(1).await;
        // The payer stops the agreement at Vipps before payhub hears of either: the re-send is refused.
        vipps.sim.stop_agreement(&payments[0].1).await.unwrap();
        let (url, secret) = storage::webhook_registration(&app).await;
        let body = sim_deliveries(&vipps)
            .await
            .into_iter()
            .find(|d| d["eventType"] == "recurring.charge-creation-failed.v1")
            .map(|d| d["body"].to_string())
            .expect("the charge-creation-failed event");
        assert!(body.contains(&charge_id), "{body}");
        assert_eq!(deliver(&app, &url, &secret, &body, chrono::Utc::now()).await, reqwest::StatusCode::OK);
        app.state.jobs.run_until_idle().await.unwrap();
        let one = installment(&app, &vipps, &installment_id).await;
        assert_eq!(one["Status"], "Failed", "{one}");
        let reason = one["StatusReason"].as_str().unwrap_or_default();
        assert!(reason.contains("agreement_not_active"), "Vipps' reason is kept: {one}");
        assert_eq!(charge_ids_at_vipps(&vipps, &payments[0].1).await.len(), 0);
        // The others are untouched.
        for (recurring_id, _) in &payments[1..] {
            assert_eq!(installments(&app, &vipps, recurring_id).await[0]["Status"], "Pending");
        }
    }

    async fn the_poll_sends_a_dropped_batch_charge_again_when_vipps_does_not_know_it(app) {
        let vipps = app.with_vipps().await;
        let payments = batch_with_one_dropped(&app, &vipps, "technical_error").await;
        let (installment_id, charge_id) = first_charge(&app, &vipps, &payments[0].0).await;
        // No webhook reached payhub: reading the charge (the poll's step) finds no charge at Vipps.
        app.state.payments.sync_charge(&charge_id, None).await.expect("a dropped charge is not an error");
        assert_eq!(charge_ids_at_vipps(&vipps, &payments[0].1).await, vec![charge_id.clone()]);
        assert_eq!(installment(&app, &vipps, &installment_id).await["Status"], "Pending");
        vipps.sim.advance(2 * 86_400).await;
        app.state.payments.sync_recurring(1000).await.unwrap();
        let one = installment(&app, &vipps, &installment_id).await;
        assert_eq!(one["Status"], "Collected", "{one}");
        assert_eq!(one["Payments"].as_array().map(Vec::len), Some(1), "{one}");
    }

    async fn a_generic_409_to_a_charge_create_is_not_counted_as_created(app) {
        let vipps = app.with_vipps().await;
        let payments = active_many(&app, &vipps, 1).await;
        // Vipps answers its generic "conflict" problem, not "orderId … already used": it has no such charge.
        fault(&vipps, &format!("/recurring/v3/agreements/{}/charges", payments[0].1), json!({"kind": "409"})).await;
        app.state.payments.collect_recurring().await.unwrap();
        assert_eq!(charge_ids_at_vipps(&vipps, &payments[0].1).await.len(), 0);
        let list = installments(&app, &vipps, &payments[0].0).await;
        assert_ne!(list[0]["ChargeStatus"], "PENDING", "{list:?}");
        assert_ne!(list[0]["Status"], "Pending", "{list:?}");
    }
}
