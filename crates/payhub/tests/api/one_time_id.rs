//! `OneTime.Id` in `POST /v2/PaymentIntent`: paying an installment already owed goes through the same path as
//! a PayLink. Every request is a Message, its Inbound Report and an intent of its own (Origin `PaymentAPI`); an
//! installment with no Vipps payment yet (made by hand in Guided Matching) gets one, keyed `ins_….1`; however
//! often it is asked, Vipps holds one payment for the installment.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::vipps::sim_client;
use crate::helpers::{seed_intent, storage, TestApp, Vipps};
use crate::on_both_backends;
use crate::paylinks::made_by_hand;

/// Vipps' own count of the payments created under `reference` (its CREATED events).
async fn created_at_vipps(vipps: &Vipps, reference: &str) -> usize {
    let reference = vipps_client::epayment::Reference::parse(reference).unwrap();
    match sim_client(vipps).epayment().events(&reference).await {
        Ok(events) => events.iter().filter(|e| e.name.to_string() == "CREATED" && e.success).count(),
        Err(_) => 0,
    }
}

/// The `OneTime.Id` requests recorded for an installment: intents with Origin `PaymentAPI`, each named by its
/// Message (subject) and Inbound Report. Storage: the trail's rows themselves are the claim.
async fn api_requests(app: &TestApp, installment_id: &str) -> i64 {
    storage::count(
        app,
        "SELECT COUNT(*) FROM payment_intents pi JOIN inbound_reports r ON r.id = pi.inbound_report_id \
         JOIN messages m ON m.id = r.message_id WHERE pi.origin = 'PaymentAPI' AND pi.installment_id = $1 \
         AND m.subject = pi.id AND m.channel = 'api' AND r.installment_id = $1 AND r.intent_id = pi.id",
        &[installment_id],
    )
    .await
}

async fn vipps_payments(app: &TestApp, installment_id: &str) -> i64 {
    storage::count(app, "SELECT COUNT(*) FROM vipps_payments WHERE installment_id = $1", &[installment_id]).await
}

on_both_backends! {
    async fn an_installment_made_by_hand_is_paid_by_its_id_with_one_vipps_payment(app) {
        let vipps = app.with_vipps().await;
        let (installment_id, reference) = made_by_hand(&app, &vipps).await;
        assert_eq!(created_at_vipps(&vipps, &reference).await, 0);
        let body = json!({"OneTime": {"Id": installment_id}});

        let (status, first) = app.intent(&vipps, &body).await;
        assert_eq!(status, StatusCode::OK, "{first}");
        let landing = first["RedirectURL"].as_str().unwrap_or_else(|| panic!("a landing page: {first}")).to_owned();
        assert!(landing.starts_with(&vipps.sim.base_url()), "{first}");
        assert_eq!(first["OneTime"]["Id"], installment_id.as_str());
        assert_eq!(first["OneTime"]["PaymentReference"], reference.as_str());
        let first_id = first["Id"].as_str().unwrap().to_owned();
        assert!(first_id.starts_with("pi_"), "the request's own intent: {first}");
        assert_eq!(created_at_vipps(&vipps, &reference).await, 1, "Vipps got the payment");
        let key = storage::text(&app, "SELECT idempotency_key FROM vipps_payments WHERE installment_id = $1", &[&installment_id]).await;
        assert_eq!(key, Some(format!("{installment_id}.1")), "keyed by the installment and the attempt");

        let (status, second) = app.intent(&vipps, &body).await;
        assert_eq!(status, StatusCode::OK, "{second}");
        assert_eq!(second["RedirectURL"], first["RedirectURL"], "the open payment, not a new one");
        assert_ne!(second["Id"], first["Id"], "each request is its own intent");
        assert_eq!(created_at_vipps(&vipps, &reference).await, 1, "Vipps still has one payment");
        assert_eq!(vipps_payments(&app, &installment_id).await, 1);

        assert_eq!(api_requests(&app, &installment_id).await, 2, "every request is in the trail");
        let message = storage::text(&app, "SELECT body FROM messages WHERE subject = $1", &[&first_id]).await.unwrap();
        assert!(message.contains(&installment_id), "the request as received: {message}");
        let report = storage::pairs(
            &app,
            "SELECT r.reference, CAST(r.amount_ore AS TEXT) FROM inbound_reports r JOIN payment_intents pi ON pi.inbound_report_id = r.id WHERE pi.id = $1",
            &[&first_id],
        ).await;
        assert_eq!(report, vec![(reference.clone(), "25000".to_owned())]);
        let read = app.v2_get(&vipps, &format!("/v2/PaymentIntent/{first_id}")).await;
        assert_eq!(read["Status"], "Matched", "the payer was sent to Vipps: {read}");
        assert_eq!(read["RedirectURL"], first["RedirectURL"], "{read}");

        // The payer pays and comes back through the request's intent to the installment's PayLink page.
        assert_eq!(vipps.control(&format!("/_sim/payments/{reference}/approve"), json!({})).await, StatusCode::OK);
        let response = app.http.get(app.url(&format!("/v2/return/{first_id}"))).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let back = response.headers()["location"].to_str().unwrap().to_owned();
        assert!(back.starts_with(&format!("{}/pay/pl_", app.base)), "{back}");
        let read = app.v2_get(&vipps, &format!("/v2/Installment/{installment_id}")).await;
        assert_eq!(read["Status"], "Collected", "{read}");
        let (status, paid) = app.intent(&vipps, &body).await;
        assert_eq!(status, StatusCode::CONFLICT, "{paid}");
        assert_eq!(created_at_vipps(&vipps, &reference).await, 1);
    }

    async fn paying_an_installment_with_a_payment_by_its_id_is_recorded_too(app) {
        let vipps = app.with_vipps().await;
        let (status, created) = app.intent(&vipps, &seed_intent()).await;
        assert_eq!(status, StatusCode::OK, "{created}");
        let installment_id = created["OneTime"]["Id"].as_str().unwrap().to_owned();
        let reference = created["OneTime"]["PaymentReference"].as_str().unwrap().to_owned();
        assert_eq!(api_requests(&app, &installment_id).await, 0);
        let (status, again) = app.intent(&vipps, &json!({"OneTime": {"Id": installment_id}})).await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again["RedirectURL"], created["RedirectURL"], "the open payment");
        assert_eq!(api_requests(&app, &installment_id).await, 1, "the request is traceable");
        assert_eq!(created_at_vipps(&vipps, &reference).await, 1);
        let read = app.v2_get(&vipps, &format!("/v2/PaymentIntent/{}", again["Id"].as_str().unwrap())).await;
        assert_eq!(read["OneTime"]["Id"], installment_id.as_str(), "{read}");
    }

    async fn a_failed_or_cancelled_installment_says_so_and_makes_nothing(app) {
        let vipps = app.with_vipps().await;
        let (status, created) = app.intent(&vipps, &seed_intent()).await;
        assert_eq!(status, StatusCode::OK, "{created}");
        let installment_id = created["OneTime"]["Id"].as_str().unwrap().to_owned();
        let reference = created["OneTime"]["PaymentReference"].as_str().unwrap().to_owned();
        assert_eq!(vipps.control(&format!("/_sim/payments/{reference}/reject"), json!({})).await, StatusCode::OK);
        app.state.payments.sync(&reference, None).await.unwrap();
        let (status, failed) = app.intent(&vipps, &json!({"OneTime": {"Id": installment_id}})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{failed}");
        assert!(failed.to_string().contains("expired or was stopped"), "{failed}");

        // No flow cancels a one-time installment (the organisation's cancel is on recurring ones): the row is moved.
        let (other, _) = made_by_hand(&app, &vipps).await;
        let mut conn = app.state.store.pool_for_tests().acquire().await.unwrap();
        sqlx::query("UPDATE installments SET status = 'Cancelled' WHERE id = $1").bind(&other).execute(&mut *conn).await.unwrap();
        drop(conn);
        let (status, cancelled) = app.intent(&vipps, &json!({"OneTime": {"Id": other}})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{cancelled}");
        assert!(cancelled.to_string().contains("is cancelled"), "{cancelled}");
        assert_eq!(api_requests(&app, &installment_id).await + api_requests(&app, &other).await, 0, "nothing recorded");
        assert_eq!(vipps_payments(&app, &other).await, 0);
    }
}
