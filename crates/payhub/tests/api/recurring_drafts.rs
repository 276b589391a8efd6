//! Agreement drafts when answers race or go missing (issue #14 item 5, the recurring half): a draft still at
//! Vipps while another instance polls, and a draft met by an ambiguous conflict; and a mandate payhub learns is
//! Active only after the first period's due date (its first installment is still collected).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::recurring::{active_recurring, installments, mandate, recurring_intent, today};
use crate::helpers::vipps::{agreements_at_vipps, clear_faults, fault, faults_left};
use crate::helpers::{storage, TestApp, Vipps};
use crate::on_both_backends;

const AGREEMENTS: &str = "/recurring/v3/agreements";

/// `POST /v2/PaymentIntent` with a recurring body, from a task of its own.
fn intent_in_background(app: &TestApp, vipps: &Vipps, body: Value) -> tokio::task::JoinHandle<(StatusCode, Value)> {
    let (http, url, key) = (app.http.clone(), app.url("/v2/PaymentIntent"), vipps.integrator_key.clone());
    tokio::spawn(async move {
        let response = http.post(url).bearer_auth(key).json(&body).send().await.unwrap();
        (response.status(), response.json::<Value>().await.unwrap_or(Value::Null))
    })
}

on_both_backends! {
    async fn a_draft_still_at_vipps_is_not_sent_again_by_another_instances_poll(app) {
        let vipps = app.with_vipps().await;
        let other = app.second_instance(&vipps).await;
        assert_eq!(vipps.control("/_sim/webhooks/pause", json!({})).await, StatusCode::NO_CONTENT);
        fault(&vipps, AGREEMENTS, json!({"kind": "delay", "delayMs": 700, "times": 1})).await;
        let first = intent_in_background(&app, &vipps, recurring_intent(today(&app), "100"));
        // Storage: the recorded mandate has no API of its own while Vipps holds the draft's answer back.
        storage::wait_for_count(&app, "SELECT COUNT(*) FROM mandates", &[], 1).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        // A poll that sent the draft again would use this rule up.
        fault(&vipps, AGREEMENTS, json!({"kind": "500", "times": 1})).await;
        other.payments.sync_recurring(100).await.unwrap();
        let (status, created) = first.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{created}");
        assert_eq!(faults_left(&vipps).await.len(), 1, "the other instance sent nothing");
        clear_faults(&vipps).await;
        let mandate_id = created["Recurring"]["Mandate"]["Id"].as_str().unwrap().to_owned();
        let read = mandate(&app, &vipps, &mandate_id).await;
        assert_eq!(read["Status"], "Pending", "{read}");
        assert!(read["MandateId"].as_str().is_some_and(|a| a.starts_with("agr_")), "{read}");
        assert_eq!(agreements_at_vipps(&vipps).await, 1);
        let intent = app.v2_get(&vipps, &format!("/v2/PaymentIntent/{}", created["Id"].as_str().unwrap())).await;
        assert_eq!(intent["Status"], "Matched", "{intent}");
        other.store.close().await;
    }

    async fn a_draft_met_by_a_conflict_is_asked_again_not_failed(app) {
        let vipps = app.with_vipps().await;
        assert_eq!(vipps.control("/_sim/webhooks/pause", json!({})).await, StatusCode::NO_CONTENT);
        // A generic 409: Vipps may or may not hold the agreement; it is not a refusal of this draft.
        fault(&vipps, AGREEMENTS, json!({"kind": "409", "times": 1})).await;
        let (status, answer) = app.intent(&vipps, &recurring_intent(today(&app), "100")).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{answer}");
        let id = answer["Id"].as_str().unwrap().to_owned();
        let intent = app.v2_get(&vipps, &format!("/v2/PaymentIntent/{id}")).await;
        assert_ne!(intent["Status"], "Failed", "a conflict is not a refusal: {intent}");
        // A minute on, the poll asks Vipps again with the same key and records its answer.
        vipps.sim.advance(90).await;
        app.state.payments.sync_recurring(100).await.unwrap();
        let intent = app.v2_get(&vipps, &format!("/v2/PaymentIntent/{id}")).await;
        assert_eq!(intent["Status"], "Matched", "{intent}");
        let mandate_id = intent["Recurring"]["Mandate"]["Id"].as_str().unwrap_or_default().to_owned();
        let read = mandate(&app, &vipps, &mandate_id).await;
        assert!(read["MandateId"].as_str().is_some_and(|a| a.starts_with("agr_")), "{read}");
        assert_eq!(agreements_at_vipps(&vipps).await, 1);
    }

    async fn a_mandate_seen_active_after_its_start_date_still_collects_the_first_month(app) {
        let vipps = app.with_vipps().await;
        assert_eq!(vipps.control("/_sim/webhooks/pause", json!({})).await, StatusCode::NO_CONTENT);
        let start = today(&app);
        let (status, created) = app.intent(&vipps, &recurring_intent(start, "100")).await;
        assert_eq!(status, StatusCode::OK, "{created}");
        let recurring_id = created["Recurring"]["Id"].as_str().unwrap().to_owned();
        let mandate_id = created["Recurring"]["Mandate"]["Id"].as_str().unwrap().to_owned();
        let agreement_id = created["Recurring"]["Mandate"]["MandateId"].as_str().unwrap().to_owned();
        // The payer approves at once, but payhub hears of it only ten days on (webhook lost, Vipps failing the polls).
        assert_eq!(vipps.control(&format!("/_sim/agreements/{agreement_id}/accept"), json!({})).await, StatusCode::OK);
        vipps.sim.advance(10 * 86_400).await;
        app.state.payments.sync_agreement(&mandate_id, None).await.unwrap();
        assert_eq!(mandate(&app, &vipps, &mandate_id).await["Status"], "Active");
        app.state.payments.generate_installments().await.unwrap();
        let list = installments(&app, &vipps, &recurring_id).await;
        let first: Vec<&Value> = list.iter().filter(|i| i["DueDate"] == start.to_string()).collect();
        assert_eq!(first.len(), 1, "the first month (due {start}) is owed, not skipped: {list:?}");
        assert_eq!(first[0]["Status"], "Outstanding", "{list:?}");
        // Collected as any late installment is: charged at Vipps from tomorrow on.
        app.state.payments.collect_recurring().await.unwrap();
        let list = installments(&app, &vipps, &recurring_id).await;
        let first = list.iter().find(|i| i["DueDate"] == start.to_string()).unwrap();
        assert_eq!(first["Status"], "Pending", "{list:?}");
        assert_eq!(list.iter().filter(|i| i["Status"] != "Outstanding" && i["Status"] != "Pending").count(), 0, "{list:?}");
    }

    async fn a_stale_pending_answer_does_not_move_an_active_agreement_back(app) {
        use payhub::domain::recurring::MandateStatus;
        use payhub::domain::vipps_state::AgreementState;
        let vipps = app.with_vipps().await;
        let (_, _, mandate_id, _) = active_recurring(&app, &vipps, &recurring_intent(today(&app), "100")).await;
        // A read that left before the payer approved (PENDING) is recorded after ACTIVE was: it must not win.
        let mut conn = app.state.store.pool_for_tests().acquire().await.unwrap();
        let now = app.state.payments.now();
        let moved = payhub::store::mandates::move_mandate(&mut conn, &mandate_id, MandateStatus::Pending, &AgreementState::Pending, now)
            .await
            .unwrap();
        assert!(!moved);
        drop(conn);
        // Storage: the agreement's Vipps status has no API field of its own.
        let state = storage::text(&app, "SELECT vipps_status FROM mandates WHERE id = $1", &[&mandate_id]).await;
        assert_eq!(state.as_deref(), Some("ACTIVE"));
        assert_eq!(mandate(&app, &vipps, &mandate_id).await["Status"], "Active");
    }
}
