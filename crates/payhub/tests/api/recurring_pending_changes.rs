//! Cancel, Pause and amount changes when Vipps does not confirm at once: a charge cancel answered 500 or 429, a
//! charge Vipps is already collecting (PROCESSING), a charge whose create is still in flight (unknown to Vipps
//! when the cancel asks), an agreement update whose answer is lost. Nothing is recorded as cancelled or refused
//! before Vipps says so: the API answers `202` with the change `Pending`, the `recurring.pending_changes` beat
//! retries with the same key, and the records end as Vipps has them.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use vipps_client::recurring::{ChargeEventKind, ChargeStatus, CreateCharge, TransactionType};

use crate::helpers::recurring::{
    active_recurring, call, days_pass, id_of, installment, installments, installments_in, recurring, recurring_intent,
    today,
};
use crate::helpers::vipps::{charges_at_vipps, clear_faults, fault, sim_client};
use crate::helpers::{TestApp, Vipps};
use crate::on_both_backends;

const BEAT: &str = "recurring.pending_changes";

/// Runs the pending-changes beat through the admin API, a minute later (it retries steps a minute old).
async fn pending_beat_runs(app: &TestApp, vipps: &Vipps) {
    vipps.sim.advance(61).await;
    let response = app.admin(Method::POST, &format!("/admin/api/beats/{BEAT}/run")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED, "the beat {BEAT} exists");
    app.state.jobs.run_until_idle().await.unwrap();
}

/// The newest change of a recurring payment's answer.
fn newest_change(body: &Value) -> Value {
    body["Changes"][0].clone()
}

/// A recurring payment of 100 kr starting today, Active, its first installment charged (PENDING at Vipps).
/// Returns (recurring id, agreement id, the first installment).
async fn charged_once(app: &TestApp, vipps: &Vipps) -> (String, String, Value) {
    let (_, recurring_id, _, agreement_id) = active_recurring(app, vipps, &recurring_intent(today(app), "100")).await;
    app.state.payments.collect_recurring().await.expect("collect");
    let first = installments(app, vipps, &recurring_id).await[0].clone();
    assert_eq!(first["ChargeStatus"], "PENDING", "{first}");
    (recurring_id, agreement_id, first)
}

/// The one charge Vipps holds for `agreement_id`.
async fn the_charge_at_vipps(vipps: &Vipps, agreement_id: &str) -> vipps_client::recurring::Charge {
    let charges = charges_at_vipps(vipps, agreement_id).await;
    assert_eq!(charges.len(), 1, "{charges:?}");
    charges[0].clone()
}

on_both_backends! {
    async fn a_cancel_whose_charge_cancel_vipps_does_not_answer_is_pending_until_the_beat_confirms_it(app) {
        let vipps = app.with_vipps().await;
        let (recurring_id, agreement_id, first) = charged_once(&app, &vipps).await;
        fault(&vipps, &format!("/recurring/v3/agreements/{agreement_id}/charges"), json!({"kind": "500", "times": 1000}))
            .await;
        let cancel_path = format!("/v2/Recurring/{recurring_id}/Cancel");
        let (status, answer) = call(&app, &vipps, Method::POST, &cancel_path, json!({"Reason": "Moved abroad"})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "Vipps did not confirm the charge cancel: {answer}");
        assert_eq!(answer["Status"], "Cancelling", "{answer}");
        assert_eq!(newest_change(&answer)["Kind"], "cancel", "{answer}");
        assert_eq!(newest_change(&answer)["Status"], "Pending", "{answer}");
        let listed = installments_in(&answer);
        assert_eq!(listed[0]["Status"], "Pending", "not cancelled before Vipps says so: {listed:?}");
        assert_eq!(listed[0]["ChargeStatus"], "PENDING", "{listed:?}");
        // A repeat while it is pending answers the same, and records no second change.
        let (status, again) = call(&app, &vipps, Method::POST, &cancel_path, json!({})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{again}");
        assert_eq!(again["Changes"].as_array().map(Vec::len), answer["Changes"].as_array().map(Vec::len), "{again}");

        // The beat, while Vipps still fails: still pending.
        pending_beat_runs(&app, &vipps).await;
        assert_eq!(recurring(&app, &vipps, &recurring_id).await["Status"], "Cancelling");
        clear_faults(&vipps).await;
        let live = the_charge_at_vipps(&vipps, &agreement_id).await.status;
        assert!(matches!(live, ChargeStatus::Pending | ChargeStatus::Due), "still live: {live:?}");
        // Vipps answers again: the beat cancels the charge, with the charge's own key, and finishes the cancel.
        pending_beat_runs(&app, &vipps).await;
        let done = recurring(&app, &vipps, &recurring_id).await;
        assert_eq!(done["Status"], "Cancelled", "{done}");
        assert_eq!(done["StatusReason"], "Moved abroad", "{done}");
        assert_eq!(newest_change(&done)["Status"], "Succeeded", "{done}");
        let listed = installments_in(&done);
        assert_eq!(listed[0]["Status"], "Cancelled", "{listed:?}");
        assert_eq!(listed[0]["ChargeStatus"], "CANCELLED", "{listed:?}");
        let at_vipps = the_charge_at_vipps(&vipps, &agreement_id).await;
        assert_eq!(at_vipps.status, ChargeStatus::Cancelled);
        let cancels: Vec<_> = at_vipps.history.iter().filter(|e| e.event == ChargeEventKind::Cancel).collect();
        assert_eq!(cancels.len(), 1, "{:?}", at_vipps.history);
        assert_eq!(cancels[0].idempotency_key.as_deref(), Some(format!("cc-{}", first["PaymentReference"].as_str().unwrap()).as_str()));
        // Nothing more is generated or charged for it.
        days_pass(&app, &vipps, 40).await;
        assert_eq!(charges_at_vipps(&vipps, &agreement_id).await.len(), 1);
        assert_eq!(installments(&app, &vipps, &recurring_id).await.len(), 1);
    }

    async fn a_pause_whose_charge_cancel_is_rate_limited_is_pending_until_the_beat_confirms_it(app) {
        let vipps = app.with_vipps().await;
        let (recurring_id, agreement_id, _) = charged_once(&app, &vipps).await;
        fault(
            &vipps,
            &format!("/recurring/v3/agreements/{agreement_id}/charges"),
            json!({"kind": "429", "times": 1000, "retryAfterSeconds": 0}),
        )
        .await;
        let until = today(&app) + chrono::Days::new(40);
        let (status, answer) =
            call(&app, &vipps, Method::POST, &format!("/v2/Recurring/{recurring_id}/Pause"), json!({"Until": until.to_string()}))
                .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        assert_eq!(answer["Status"], "Paused", "the pause itself is in effect: {answer}");
        assert_eq!(newest_change(&answer)["Kind"], "pause", "{answer}");
        assert_eq!(newest_change(&answer)["Status"], "Pending", "{answer}");
        assert_eq!(installments_in(&answer)[0]["Status"], "Pending", "{answer}");

        clear_faults(&vipps).await;
        let live = the_charge_at_vipps(&vipps, &agreement_id).await.status;
        assert!(matches!(live, ChargeStatus::Pending | ChargeStatus::Due), "still live: {live:?}");
        pending_beat_runs(&app, &vipps).await;
        let done = recurring(&app, &vipps, &recurring_id).await;
        assert_eq!(done["Status"], "Paused", "{done}");
        assert_eq!(newest_change(&done)["Status"], "Succeeded", "{done}");
        assert_eq!(installments_in(&done)[0]["Status"], "Cancelled", "{done}");
        assert_eq!(installments_in(&done)[0]["ChargeStatus"], "CANCELLED", "{done}");
        assert_eq!(the_charge_at_vipps(&vipps, &agreement_id).await.status, ChargeStatus::Cancelled);
    }

    async fn a_charge_vipps_is_already_collecting_is_recorded_collected_not_cancelled(app) {
        let vipps = app.with_vipps().await;
        let (recurring_id, agreement_id, first) = charged_once(&app, &vipps).await;
        let charge_id = first["PaymentReference"].as_str().unwrap().to_owned();
        let hold = format!("/_sim/agreements/{agreement_id}/charges/{charge_id}/hold-processing");
        assert_eq!(vipps.control(&hold, json!({})).await, StatusCode::OK);
        app.state.payments.sync_charge(&charge_id, None).await.expect("sync");
        assert_eq!(installments(&app, &vipps, &recurring_id).await[0]["ChargeStatus"], "PROCESSING");

        let (status, answer) =
            call(&app, &vipps, Method::POST, &format!("/v2/Recurring/{recurring_id}/Cancel"), json!({})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "a PROCESSING charge cannot be cancelled: {answer}");
        assert_eq!(answer["Status"], "Cancelling", "{answer}");
        assert_eq!(installments_in(&answer)[0]["Status"], "Pending", "{answer}");

        // Vipps finishes collecting it: the beat records the installment Collected (it can be refunded) and
        // finishes the cancel, naming the charge.
        vipps.sim.advance(2 * 86_400).await;
        assert_eq!(the_charge_at_vipps(&vipps, &agreement_id).await.status, ChargeStatus::Charged);
        pending_beat_runs(&app, &vipps).await;
        let done = recurring(&app, &vipps, &recurring_id).await;
        assert_eq!(done["Status"], "Cancelled", "{done}");
        let change = newest_change(&done);
        assert_eq!(change["Status"], "Succeeded", "{done}");
        assert!(change["Message"].as_str().unwrap_or_default().contains(&charge_id), "names the collected charge: {change}");
        let collected = installment(&app, &vipps, id_of(&first)).await;
        assert_eq!(collected["Status"], "Collected", "{collected}");
        assert_eq!(collected["Payments"].as_array().map(Vec::len), Some(1), "{collected}");
        let (status, refund) =
            call(&app, &vipps, Method::POST, "/v2/Refund", json!({"InstallmentId": first["Id"], "Reason": "Cancelled"})).await;
        assert_eq!(status, StatusCode::OK, "{refund}");
        assert_eq!(refund["InstallmentStatus"], "Refunded", "{refund}");
    }

    async fn a_charge_whose_create_is_in_flight_is_cancelled_once_vipps_has_it(app) {
        let vipps = app.with_vipps().await;
        let (_, recurring_id, _, agreement_id) =
            active_recurring(&app, &vipps, &recurring_intent(today(&app), "100")).await;
        // The create does not reach Vipps (yet): the charge stays unconfirmed.
        fault(&vipps, "/recurring/v3/agreements", json!({"kind": "500", "times": 4})).await;
        app.state.payments.collect_recurring().await.expect("collect");
        clear_faults(&vipps).await;
        let first = installments(&app, &vipps, &recurring_id).await[0].clone();
        assert_eq!(first["ChargeStatus"], "CREATING", "{first}");

        let (status, answer) =
            call(&app, &vipps, Method::POST, &format!("/v2/Recurring/{recurring_id}/Cancel"), json!({})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "Vipps does not know the charge yet: {answer}");
        assert_eq!(answer["Status"], "Cancelling", "{answer}");
        let listed = installments_in(&answer);
        assert_eq!(listed[0]["ChargeStatus"], "CREATING", "not cancelled on a 404: {listed:?}");
        assert_ne!(listed[0]["Status"], "Cancelled", "{listed:?}");

        // The create in flight lands at Vipps (same order id), after the cancel asked.
        let charge_id = first["PaymentReference"].as_str().unwrap();
        let mut create = CreateCharge::recurring(10_000, "Monthly gift", today(&app) + chrono::Days::new(1), 3, TransactionType::DirectCapture);
        create.order_id = Some(charge_id.to_owned());
        let key = vipps_client::RecurringIdempotencyKey::parse(&format!("in-flight-{charge_id}")).unwrap();
        sim_client(&vipps).recurring().create_charge(&agreement_id, &create, &key).await.expect("late create");

        pending_beat_runs(&app, &vipps).await;
        assert_eq!(the_charge_at_vipps(&vipps, &agreement_id).await.status, ChargeStatus::Cancelled, "cancelled once it exists");
        let done = recurring(&app, &vipps, &recurring_id).await;
        assert_eq!(done["Status"], "Cancelled", "{done}");
        assert_eq!(installments_in(&done)[0]["Status"], "Cancelled", "{done}");
        assert_eq!(installments_in(&done)[0]["ChargeStatus"], "CANCELLED", "{done}");
        // Its due date passes: nothing is charged.
        days_pass(&app, &vipps, 3).await;
        assert_eq!(the_charge_at_vipps(&vipps, &agreement_id).await.status, ChargeStatus::Cancelled);
    }

    async fn an_amount_change_whose_answer_is_lost_is_pending_and_applied_by_the_beat(app) {
        let vipps = app.with_vipps().await;
        let (_, recurring_id, _, agreement_id) =
            active_recurring(&app, &vipps, &recurring_intent(today(&app), "150")).await;
        // Vipps changes the price, but every answer comes too late.
        fault(&vipps, &format!("/recurring/v3/agreements/{agreement_id}"), json!({"kind": "delay", "times": 4, "delayMs": 1500}))
            .await;
        let path = format!("/v2/Recurring/{recurring_id}");
        let (status, answer) = call(&app, &vipps, Method::PATCH, &path, json!({"Amount": "200"})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "a timeout is not a refusal: {answer}");
        assert_eq!(answer["Amount"], json!(150.0), "{answer}");
        assert_eq!(newest_change(&answer)["Kind"], "amount", "{answer}");
        assert_eq!(newest_change(&answer)["Status"], "Pending", "{answer}");
        clear_faults(&vipps).await;
        let client = sim_client(&vipps);
        assert_eq!(client.recurring().get_agreement(&agreement_id).await.unwrap().pricing.amount, Some(20_000));

        pending_beat_runs(&app, &vipps).await;
        let done = recurring(&app, &vipps, &recurring_id).await;
        assert_eq!(done["Amount"], json!(200.0), "{done}");
        assert_eq!(newest_change(&done)["Status"], "Succeeded", "{done}");
        app.state.payments.collect_recurring().await.expect("collect");
        assert_eq!(installments(&app, &vipps, &recurring_id).await[0]["Amount"], json!(200.0));

        // A definite refusal is still a refusal: the payer stopped the agreement, Vipps refuses the update.
        assert_eq!(vipps.control(&format!("/_sim/agreements/{agreement_id}/stop"), json!({})).await, StatusCode::OK);
        let (status, refused) = call(&app, &vipps, Method::PATCH, &path, json!({"Amount": "250"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        let after = recurring(&app, &vipps, &recurring_id).await;
        assert_eq!(after["Amount"], json!(200.0), "{after}");
        assert_eq!(newest_change(&after)["Status"], "Failed", "{after}");
    }
}
