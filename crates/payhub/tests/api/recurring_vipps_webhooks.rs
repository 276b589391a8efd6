//! Vipps' webhooks drive a recurring payment's lifecycle alone: agreement-activated makes the mandate Active,
//! charge-captured collects the installment. Every event delivered again (twice), a late event after the
//! agreement is stopped, and an event about a charge payhub never made are each kept raw and change nothing.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::recurring::{
    id_of, installment, installments, installments_in, mandate, recurring, recurring_intent, settle_until, today,
};
use crate::helpers::vipps::{deliver, sim_deliveries};
use crate::helpers::{storage, TestApp, Vipps};
use crate::on_both_backends;

/// What a duplicate or late event must not change: the recurring payment, its mandate and each installment as
/// the API shows them; and in storage the rows of installments, Payments, charges, Inbound Reports and outbound
/// deliveries (a duplicate must write nothing, not even a row the API would not show).
async fn snapshot(app: &TestApp, vipps: &Vipps, recurring_id: &str, mandate_id: &str) -> Value {
    let mut out = serde_json::Map::new();
    let recurring = recurring(app, vipps, recurring_id).await;
    for one in installments_in(&recurring) {
        out.insert(id_of(&one).to_owned(), installment(app, vipps, id_of(&one)).await);
    }
    out.insert("recurring".into(), recurring);
    out.insert("mandate".into(), mandate(app, vipps, mandate_id).await);
    for table in ["installments", "payments", "vipps_charges", "inbound_reports", "webhook_deliveries"] {
        out.insert(table.into(), json!(storage::count(app, &format!("SELECT COUNT(*) FROM {table}"), &[]).await));
    }
    Value::Object(out)
}

on_both_backends! {
    async fn vipps_webhooks_activate_the_mandate_and_collect_the_charge(app) {
        let vipps = app.with_vipps().await;
        // The account's webhook registration is a job.
        app.state.jobs.run_until_idle().await.unwrap();
        // Storage: the registration row, which holds the secret payhub verifies Vipps' signatures with.
        assert_eq!(storage::count(&app, "SELECT COUNT(*) FROM vipps_webhooks", &[]).await, 1);
        let start = today(&app);
        let (status, created) = app.intent(&vipps, &recurring_intent(start, "150")).await;
        assert_eq!(status, StatusCode::OK, "{created}");
        let recurring_id = created["Recurring"]["Id"].as_str().unwrap().to_owned();
        let mandate_id = created["Recurring"]["Mandate"]["Id"].as_str().unwrap().to_owned();
        let agreement_id = created["Recurring"]["Mandate"]["MandateId"].as_str().unwrap().to_owned();

        // The payer accepts: Vipps' agreement-activated alone makes the mandate Active.
        assert_eq!(vipps.control(&format!("/_sim/agreements/{agreement_id}/accept"), json!({})).await, StatusCode::OK);
        // The raw message log has no API; the webhook's arrival is waited for there.
        let arrived = "SELECT COUNT(*) FROM messages WHERE channel = 'vipps_webhook' AND subject = $1 AND body LIKE $2";
        storage::wait_for_count(&app, arrived, &[agreement_id.as_str(), "%"], 1).await;
        settle_until(&app, || async {
            app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await["Status"] == "Active"
        })
        .await;
        let list = installments(&app, &vipps, &recurring_id).await;
        assert_eq!(list.len(), 1, "activation generated the first installment: {list:?}");

        // The charge beat sends the charge; Vipps processes it on the due date and its webhook collects it.
        app.state.payments.collect_recurring().await.unwrap();
        let charge_id = installments(&app, &vipps, &recurring_id).await[0]["PaymentReference"].as_str().unwrap().to_owned();
        vipps.sim.advance(2 * 86_400).await;
        storage::wait_for_count(&app, arrived, &[charge_id.as_str(), "%charge-captured%"], 1).await;
        let installment_id = list[0]["Id"].as_str().unwrap().to_owned();
        settle_until(&app, || async { installment(&app, &vipps, &installment_id).await["Status"] == "Collected" }).await;
        let one = installment(&app, &vipps, &installment_id).await;
        assert_eq!(one["Payments"].as_array().map(Vec::len), Some(1), "{one}");
        assert_eq!(one["Payments"][0]["AmountOre"], 15000);
        settle_until(&app, || async {
            storage::vipps_webhook_messages(&app, Some("New")).await == 0
        })
        .await;

        // Every event delivered again, twice: nothing changes.
        let (url, secret) = storage::webhook_registration(&app).await;
        let bodies: Vec<String> = sim_deliveries(&vipps)
            .await
            .iter()
            .filter(|d| d["eventType"].as_str().is_some_and(|t| t.starts_with("recurring.")))
            .map(|d| d["body"].to_string())
            .collect();
        assert!(bodies.iter().any(|b| b.contains("agreement-activated")), "{bodies:?}");
        assert!(bodies.iter().any(|b| b.contains("charge-captured")), "{bodies:?}");
        let before = snapshot(&app, &vipps, &recurring_id, &mandate_id).await;
        let messages = storage::vipps_webhook_messages(&app, None).await;
        for _ in 0..2 {
            for body in &bodies {
                assert_eq!(deliver(&app, &url, &secret, body, chrono::Utc::now()).await, StatusCode::OK);
            }
        }
        app.state.jobs.run_until_idle().await.unwrap();
        assert_eq!(snapshot(&app, &vipps, &recurring_id, &mandate_id).await, before, "duplicated events changed something");
        assert_eq!(
            storage::vipps_webhook_messages(&app, None).await,
            messages + 2 * i64::try_from(bodies.len()).unwrap(),
            "every delivery kept raw"
        );
        assert_eq!(storage::vipps_webhook_messages(&app, Some("New")).await, 0);

        // The agreement is stopped; a late agreement-activated (and a late charge event) change nothing.
        let stop = app
            .http
            .post(app.url("/v2/actions/CancelVippsAgreement"))
            .bearer_auth(&vipps.integrator_key)
            .json(&json!({"MandateId": mandate_id}))
            .send()
            .await
            .unwrap();
        assert_eq!(stop.status(), StatusCode::OK);
        vipps.control("/_sim/webhooks/pause", json!({})).await;
        app.state.jobs.run_until_idle().await.unwrap();
        let mandate = app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await;
        assert_eq!(mandate["Status"], "Cancelled", "{mandate}");
        let before = snapshot(&app, &vipps, &recurring_id, &mandate_id).await;
        for body in bodies.iter().filter(|b| b.contains("agreement-activated") || b.contains("charge-captured")) {
            assert_eq!(deliver(&app, &url, &secret, body, chrono::Utc::now()).await, StatusCode::OK);
        }
        app.state.jobs.run_until_idle().await.unwrap();
        assert_eq!(snapshot(&app, &vipps, &recurring_id, &mandate_id).await, before, "late events changed something");
        assert_eq!(app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await["Status"], "Cancelled");

        // An event about a charge payhub never made is kept, processed, and changes nothing.
        let captured = bodies.iter().find(|b| b.contains("charge-captured")).unwrap();
        let foreign = captured.replace(&charge_id, "chr-not-ours");
        assert_ne!(&foreign, captured);
        assert_eq!(deliver(&app, &url, &secret, &foreign, chrono::Utc::now()).await, StatusCode::OK);
        app.state.jobs.run_until_idle().await.unwrap();
        assert_eq!(snapshot(&app, &vipps, &recurring_id, &mandate_id).await, before);
        assert_eq!(storage::vipps_webhook_messages(&app, Some("New")).await, 0);
    }
}
