//! Retention: operational rows go in days, raw bodies (with payers' personal data) can be redacted earlier, and
//! the trail behind money stays at least five years.

use payhub::domain::role::Role;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{seed_intent, storage, TestApp};
use crate::on_both_backends;

async fn rows(app: &TestApp, table: &str) -> i64 {
    storage::count(app, &format!("SELECT COUNT(*) FROM {table}"), &[]).await
}

/// Runs the retention beat now and waits for it.
async fn prune(app: &TestApp) {
    app.state.jobs.heartbeat.run_now("retention.prune").await.expect("the retention beat exists");
    app.state.jobs.run_until_idle().await.unwrap();
}

on_both_backends! {
    async fn operational_rows_go_after_their_days_and_the_trail_of_money_stays(app) {
        let vipps = app.with_vipps().await;
        let _signed_in = app.browser(Role::Admin).await;
        let response = app
            .http
            .post(app.url("/v2/PaymentIntent"))
            .bearer_auth(&vipps.integrator_key)
            .header("Idempotency-Key", "retention-1")
            .json(&seed_intent())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let intent: serde_json::Value = response.json().await.unwrap();
        let (sessions, keys, trail) = (rows(&app, "sessions").await, rows(&app, "api_idempotency").await, rows(&app, "inbound_reports").await);
        assert!(sessions >= 1 && keys == 1 && trail >= 1);
        // Storage itself: retention is about rows.
        vipps.sim.advance(15 * 86_400).await;
        prune(&app).await;
        assert_eq!(rows(&app, "sessions").await, 0, "sessions ended long ago");
        assert_eq!(rows(&app, "api_idempotency").await, 0, "answered idempotency keys older than the window");
        assert_eq!(rows(&app, "inbound_reports").await, trail, "the trail behind a payment stays");
        let answer = app.v2_get(&vipps, &format!("/v2/PaymentIntent/{}", intent["Id"].as_str().unwrap())).await;
        assert_eq!(answer["Id"], intent["Id"]);
        // Five years on, what an intent or a payment still points at stays; the rest of the trail may go.
        vipps.sim.advance(5 * 366 * 86_400).await;
        prune(&app).await;
        let behind_the_intent = "SELECT COUNT(*) FROM payment_intents i JOIN inbound_reports r ON r.id = i.inbound_report_id \
                                 JOIN messages m ON m.id = r.message_id WHERE i.id = $1";
        assert_eq!(storage::count(&app, behind_the_intent, &[intent["Id"].as_str().unwrap()]).await, 1);
        assert!(rows(&app, "inbound_reports").await < trail, "reports nothing points at went after five years");
    }
}

on_both_backends! {
    with &[("PAYHUB_REDACT_BODIES_AFTER_DAYS", "30")];
    async fn raw_bodies_are_redacted_after_the_days_set_and_the_reports_keep_the_facts(app) {
        let vipps = app.with_vipps().await;
        let body = crate::helpers::with(seed_intent(), json!({"Payer": {"Contact": {"SalesforceFields": {"Email": "kari@example.org"}}}}));
        let (status, _) = app.intent(&vipps, &body).await;
        assert_eq!(status, StatusCode::OK);
        let holding = "SELECT COUNT(*) FROM messages WHERE body LIKE '%kari@example.org%'";
        assert_eq!(storage::count(&app, holding, &[]).await, 1);
        vipps.sim.advance(20 * 86_400).await;
        prune(&app).await;
        assert_eq!(storage::count(&app, holding, &[]).await, 1, "not yet");
        vipps.sim.advance(11 * 86_400).await;
        prune(&app).await;
        assert_eq!(storage::count(&app, holding, &[]).await, 0, "the payer's email is gone from the raw body");
        let reports = storage::count(&app, "SELECT COUNT(*) FROM inbound_reports WHERE amount_ore = 3600 AND report_type = 'PaymentIntent'", &[]).await;
        assert_eq!(reports, 1, "the report keeps the amount");
    }
}
