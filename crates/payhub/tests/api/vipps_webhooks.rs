//! Vipps webhooks: registered per account, verified over the raw body, queued, processed in order; polling
//! covers lost ones; forged, stale and tampered deliveries change nothing.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::vipps::deliver;
use crate::helpers::{seed_intent, storage, TestApp, Vipps};
use crate::on_both_backends;

/// Registers the account's webhook at the simulator now (not waiting for the job); its URL and secret.
async fn registered(app: &TestApp) -> (String, String) {
    let account = app.state.accounts.list().await.unwrap().remove(0);
    app.state.registrar().ensure_registered(&account.id).await.expect("webhook registered at the simulator");
    storage::webhook_registration(app).await
}

async fn installment_status(app: &TestApp, vipps: &Vipps, created: &Value) -> Value {
    app.v2_get(vipps, &format!("/v2/Installment/{}", created["OneTime"]["Id"].as_str().unwrap())).await
}

/// Waits (real time, bounded) until `at_least` of the simulator's deliveries reached payhub's raw message log
/// (which has no API).
async fn wait_for_webhooks(app: &TestApp, at_least: i64) {
    storage::wait_for_count(app, "SELECT COUNT(*) FROM messages WHERE channel = 'vipps_webhook'", &[], at_least).await;
}

on_both_backends! {
    async fn deliveries_arriving_together_are_each_stored_with_their_job_and_forged_ones_among_them_are_not(app) {
        let vipps = app.with_vipps().await;
        let (url, secret) = registered(&app).await;
        vipps.control("/_sim/webhooks/pause", json!({})).await;
        let now = chrono::Utc::now();
        let event = |i: usize| json!({"msn": "0", "reference": format!("ref-{i}"), "pspReference": format!("psp-{i}"),
            "name": "AUTHORIZED", "amount": {"currency": "NOK", "value": 3600}, "timestamp": "2026-11-23T10:00:00Z",
            "success": true}).to_string();
        // 200 at once, every fifth forged (signed with another secret): they share write transactions.
        let forged_secret = "bm90IHRoZSBzZWNyZXQgdmlwcHMgZ2F2ZSB1cw==";
        let sends = (0..200).map(|i| {
            let (app, url, body) = (&app, url.clone(), event(i));
            let key = if i % 5 == 0 { forged_secret.to_owned() } else { secret.clone() };
            async move { (i, deliver(app, &url, &key, &body, now).await) }
        });
        let answers = futures::future::join_all(sends).await;
        for (i, status) in &answers {
            let expected = if i % 5 == 0 { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
            assert_eq!(*status, expected, "delivery {i}");
        }
        assert_eq!(storage::vipps_webhook_messages(&app, None).await, 160, "every acknowledged delivery, no forged one");
        let jobs = storage::count(&app, "SELECT COUNT(*) FROM jobs WHERE kind = 'vipps.payment.sync'", &[]).await;
        assert_eq!(jobs, 160, "each with its job");
        let forged = storage::count(&app, "SELECT COUNT(*) FROM messages WHERE subject = 'ref-0' OR subject = 'ref-5'", &[]).await;
        assert_eq!(forged, 0);
    }

    async fn a_signed_webhook_is_stored_queued_and_collects_the_payment(app) {
        let vipps = app.with_vipps().await;
        registered(&app).await;
        let (_, created) = app.intent(&vipps, &seed_intent()).await;
        let reference = created["OneTime"]["PaymentReference"].as_str().unwrap();
        vipps.control(&format!("/_sim/payments/{reference}/approve"), json!({})).await;
        wait_for_webhooks(&app, 2).await;
        // Process what arrived; the capture makes Vipps send more, so settle until nothing new is waiting.
        for _ in 0..50 {
            app.state.jobs.run_until_idle().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if storage::vipps_webhook_messages(&app, Some("New")).await == 0 {
                break;
            }
        }
        let installment = installment_status(&app, &vipps, &created).await;
        assert_eq!(installment["Status"], "Collected", "{installment}");
        assert_eq!(installment["Payments"].as_array().unwrap().len(), 1);
        assert_eq!(storage::vipps_webhook_messages(&app, Some("New")).await, 0, "every webhook processed");
    }

    async fn with_webhooks_lost_the_poll_still_completes_the_payment(app) {
        let vipps = app.with_vipps().await;
        registered(&app).await;
        vipps.control("/_sim/webhooks/pause", json!({})).await;
        let (_, created) = app.intent(&vipps, &seed_intent()).await;
        let reference = created["OneTime"]["PaymentReference"].as_str().unwrap();
        vipps.control(&format!("/_sim/payments/{reference}/approve"), json!({})).await;
        app.state.payments.sync_open(100).await.unwrap();
        assert_eq!(installment_status(&app, &vipps, &created).await["Status"], "Collected");
        assert_eq!(storage::vipps_webhook_messages(&app, None).await, 0);
    }

    async fn duplicated_and_reordered_webhooks_reach_the_same_final_state(app) {
        let vipps = app.with_vipps().await;
        let (url, secret) = registered(&app).await;
        vipps.control("/_sim/webhooks/pause", json!({})).await;
        let (_, created) = app.intent(&vipps, &seed_intent()).await;
        let reference = created["OneTime"]["PaymentReference"].as_str().unwrap();
        vipps.control(&format!("/_sim/payments/{reference}/approve"), json!({})).await;
        let event = |name: &str| json!({"msn": "0", "reference": reference, "pspReference": format!("psp-{name}"), "name": name,
            "amount": {"currency": "NOK", "value": 3600}, "timestamp": "2026-11-23T10:00:00Z", "success": true}).to_string();
        let now = chrono::Utc::now();
        for name in ["CAPTURED", "AUTHORIZED", "AUTHORIZED", "CREATED"] {
            assert_eq!(deliver(&app, &url, &secret, &event(name), now).await, StatusCode::OK);
        }
        app.state.jobs.run_until_idle().await.unwrap();
        let installment = installment_status(&app, &vipps, &created).await;
        assert_eq!(installment["Status"], "Collected", "{installment}");
        assert_eq!(installment["Payments"].as_array().unwrap().len(), 1, "one capture, however many events");
        assert_eq!(storage::vipps_webhook_messages(&app, None).await, 4, "every delivery kept raw");
    }

    async fn a_webhook_for_a_payment_payhub_did_not_create_is_noted_once_not_retried(app) {
        let vipps = app.with_vipps().await;
        let (url, secret) = registered(&app).await;
        vipps.control("/_sim/webhooks/pause", json!({})).await;
        let body = json!({"msn": "0", "reference": "made-in-the-portal-1", "pspReference": "x", "name": "AUTHORIZED",
            "amount": {"currency": "NOK", "value": 3600}, "timestamp": "2026-11-23T10:00:00Z", "success": true}).to_string();
        assert_eq!(deliver(&app, &url, &secret, &body, chrono::Utc::now()).await, StatusCode::OK);
        app.state.jobs.run_until_idle().await.unwrap();
        // Storage itself: the job's attempts and the message's outcome have no API.
        let attempts = storage::count(&app, "SELECT CAST(COALESCE(SUM(attempts), 0) AS BIGINT) FROM jobs WHERE kind = 'vipps.payment.sync'", &[]).await;
        assert_eq!(attempts, 1, "ran once, not retried");
        let failed = storage::count(&app, "SELECT COUNT(*) FROM jobs WHERE kind = 'vipps.payment.sync' AND status <> 'done'", &[]).await;
        assert_eq!(failed, 0, "the job is done: there is nothing of payhub's to bring up to date");
        let noted = storage::count(&app, "SELECT COUNT(*) FROM messages WHERE channel = 'vipps_webhook' AND status = 'Failed' AND error LIKE '%no payment of payhub%'", &[]).await;
        assert_eq!(noted, 1, "the message says why it was not processed");
    }

    async fn forged_tampered_and_stale_webhooks_are_rejected_and_change_nothing(app) {
        let vipps = app.with_vipps().await;
        let (url, secret) = registered(&app).await;
        vipps.control("/_sim/webhooks/pause", json!({})).await;
        let (_, created) = app.intent(&vipps, &seed_intent()).await;
        let reference = created["OneTime"]["PaymentReference"].as_str().unwrap();
        let body = json!({"msn": "0", "reference": reference, "pspReference": "x", "name": "AUTHORIZED",
            "amount": {"currency": "NOK", "value": 3600}, "timestamp": "2026-11-23T10:00:00Z", "success": true}).to_string();
        let now = chrono::Utc::now();
        let before = storage::count(&app, "SELECT COUNT(*) FROM messages", &[]).await;
        assert_eq!(deliver(&app, &url, "wrong-secret", &body, now).await, StatusCode::UNAUTHORIZED);
        assert_eq!(deliver(&app, &url, &secret, &body, now - chrono::Duration::minutes(20)).await, StatusCode::UNAUTHORIZED);
        // Tampered: signed for one body, sent with another.
        let parsed = url::Url::parse(&url).unwrap();
        let host = format!("{}:{}", parsed.host_str().unwrap(), parsed.port().unwrap());
        let headers = vipps_client::webhooks::sign(&vipps_client::Secret::new(&secret), parsed.path(), &host, &vipps_client::webhooks::format_date(now), body.as_bytes());
        let tampered = app.http.post(&url).header("x-ms-date", headers.date).header("x-ms-content-sha256", headers.content_sha256)
            .header("authorization", headers.authorization).body(body.replace("3600", "1")).send().await.unwrap();
        assert_eq!(tampered.status(), StatusCode::UNAUTHORIZED);
        let unsigned = app.http.post(&url).body(body.clone()).send().await.unwrap();
        assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);
        let unknown = app.http.post(app.url("/webhooks/vipps/acc_nope")).body(body).send().await.unwrap();
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        assert_eq!(storage::count(&app, "SELECT COUNT(*) FROM messages", &[]).await, before);
        assert_eq!(installment_status(&app, &vipps, &created).await["Status"], "Pending");
    }
}

on_both_backends! {
    async fn a_public_url_that_changes_and_changes_back_keeps_a_live_registration(app) {
        let vipps = app.with_vipps().await;
        let account = app.state.accounts.list().await.unwrap().remove(0);
        let here = app.state.registrar();
        let elsewhere = here.clone().with_public_url("https://payhub.example.org/".parse().unwrap());
        here.ensure_registered(&account.id).await.unwrap();
        elsewhere.ensure_registered(&account.id).await.unwrap();
        here.ensure_registered(&account.id).await.unwrap();
        // Storage: the registration payhub holds has no API of its own.
        let held = storage::text(&app, "SELECT webhook_id FROM vipps_webhooks", &[]).await.unwrap();
        let live: Vec<String> = crate::helpers::vipps::sim_client(&vipps).webhooks().list().await.unwrap().into_iter().map(|h| h.id).collect();
        assert!(live.contains(&held), "payhub holds {held}, Vipps has {live:?}");
        assert_eq!(live.len(), 1, "one registration: {live:?}");
    }

    async fn saving_an_account_registers_its_webhook_at_vipps(app) {
        let _vipps = app.with_vipps().await;
        assert_eq!(storage::count(&app, "SELECT COUNT(*) FROM vipps_webhooks", &[]).await, 0, "registration waits for the job");
        app.state.jobs.run_until_idle().await.unwrap();
        assert_eq!(storage::count(&app, "SELECT COUNT(*) FROM vipps_webhooks", &[]).await, 1);
        // Registering again (start-up, the beat) keeps the one registration.
        app.state.registrar().register_all().await;
        assert_eq!(storage::count(&app, "SELECT COUNT(*) FROM vipps_webhooks", &[]).await, 1);
    }
}
