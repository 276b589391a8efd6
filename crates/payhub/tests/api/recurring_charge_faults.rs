//! Recurring payments when creating a charge fails: Vipps answers 500, or answers too late (the charge was made
//! but payhub never heard), for a single charge and for a batch, with beats racing and due dates passing. Every
//! charge stays unconfirmed until Vipps confirms it, is sent again with the same order id after a minute, and
//! each installment is charged once and collected once.

use serde_json::json;

use crate::helpers::recurring::{active_many, assert_one_charge_per_installment, installment, installments};
use crate::helpers::vipps::{charge_ids_at_vipps, clear_faults, fault};
use crate::helpers::{TestApp, Vipps};
use crate::on_both_backends;

/// The charges of `payments`' installments as the API lists them: (charge id, Vipps status) for each installment
/// with a charge.
async fn charge_states(app: &TestApp, vipps: &Vipps, payments: &[(String, String)]) -> Vec<(String, String)> {
    let mut states = Vec::new();
    for (recurring_id, _) in payments {
        for one in installments(app, vipps, recurring_id).await {
            if let Some(state) = one["ChargeStatus"].as_str() {
                states.push((one["PaymentReference"].as_str().unwrap().to_owned(), state.to_owned()));
            }
        }
    }
    states
}

/// After the fault: every charge still unconfirmed (`CREATING`) and its installment Outstanding.
async fn assert_unconfirmed(app: &TestApp, vipps: &Vipps, payments: &[(String, String)]) {
    let states = charge_states(app, vipps, payments).await;
    assert_eq!(states.len(), payments.len(), "{states:?}");
    assert!(states.iter().map(|(_, s)| s).all(|s| s == "CREATING"), "{states:?}");
    for (recurring_id, _) in payments {
        let list = installments(app, vipps, recurring_id).await;
        assert_eq!(list[0]["Status"], "Outstanding", "{list:?}");
    }
}

/// Vipps processes the charges; each installment ends Collected with one Payment and one charge at Vipps.
async fn assert_collected_once(app: &TestApp, vipps: &Vipps, payments: &[(String, String)]) {
    vipps.sim.advance(2 * 86_400).await;
    app.state.payments.sync_recurring(1000).await.unwrap();
    for (recurring_id, agreement_id) in payments {
        let list = installments(app, vipps, recurring_id).await;
        assert_eq!(list.len(), 1, "{list:?}");
        let one = installment(app, vipps, list[0]["Id"].as_str().unwrap()).await;
        assert_eq!(one["Status"], "Collected", "{one}");
        assert_eq!(one["Payments"].as_array().map(Vec::len), Some(1), "{one}");
        assert_eq!(charge_ids_at_vipps(vipps, agreement_id).await.len(), 1, "{agreement_id}");
    }
    let agreements: Vec<String> = payments.iter().map(|(_, a)| a.clone()).collect();
    assert_one_charge_per_installment(app, vipps, &agreements).await;
}

on_both_backends! {
    async fn a_single_charge_create_answered_500_is_sent_again_after_a_minute(app) {
        let vipps = app.with_vipps().await;
        let payments = active_many(&app, &vipps, 1).await;
        // Every attempt of the call (the client retries three times) fails.
        fault(&vipps, "/recurring/v3/agreements", json!({"kind": "500", "times": 4})).await;
        app.state.payments.collect_recurring().await.unwrap();
        assert_unconfirmed(&app, &vipps, &payments).await;
        assert_eq!(charge_ids_at_vipps(&vipps, &payments[0].1).await.len(), 0);
        // Within the minute nothing is sent again.
        app.state.payments.collect_recurring().await.unwrap();
        assert_unconfirmed(&app, &vipps, &payments).await;
        // After it, the collect beat sends it again with the same order id.
        vipps.sim.advance(61).await;
        app.state.payments.collect_recurring().await.unwrap();
        let states = charge_states(&app, &vipps, &payments).await;
        assert!(states.iter().map(|(_, s)| s).all(|s| s == "PENDING"), "{states:?}");
        assert_eq!(installments(&app, &vipps, &payments[0].0).await[0]["Status"], "Pending");
        assert_collected_once(&app, &vipps, &payments).await;
    }

    async fn a_single_charge_create_whose_answer_is_lost_is_confirmed_by_the_poll(app) {
        let vipps = app.with_vipps().await;
        let payments = active_many(&app, &vipps, 1).await;
        // Vipps makes the charge but every answer comes too late.
        fault(&vipps, "/recurring/v3/agreements", json!({"kind": "delay", "times": 4, "delayMs": 1500})).await;
        app.state.payments.collect_recurring().await.unwrap();
        assert_unconfirmed(&app, &vipps, &payments).await;
        clear_faults(&vipps).await;
        assert_eq!(charge_ids_at_vipps(&vipps, &payments[0].1).await.len(), 1, "the delayed call was performed");
        // The poll reads it back (no second create); the collect beat finds nothing to re-send.
        vipps.sim.advance(61).await;
        app.state.payments.sync_recurring(1000).await.unwrap();
        app.state.payments.collect_recurring().await.unwrap();
        let states = charge_states(&app, &vipps, &payments).await;
        assert!(states.iter().map(|(_, s)| s).all(|s| s != "CREATING"), "{states:?}");
        assert_collected_once(&app, &vipps, &payments).await;
    }

    async fn a_single_charge_create_whose_answer_is_lost_is_resent_by_the_collect_beat(app) {
        let vipps = app.with_vipps().await;
        let payments = active_many(&app, &vipps, 1).await;
        fault(&vipps, "/recurring/v3/agreements", json!({"kind": "delay", "times": 4, "delayMs": 1500})).await;
        app.state.payments.collect_recurring().await.unwrap();
        assert_unconfirmed(&app, &vipps, &payments).await;
        clear_faults(&vipps).await;
        vipps.sim.advance(61).await;
        app.state.payments.collect_recurring().await.unwrap();
        let states = charge_states(&app, &vipps, &payments).await;
        assert!(states.iter().map(|(_, s)| s).all(|s| s == "PENDING"), "{states:?}");
        assert_collected_once(&app, &vipps, &payments).await;
    }

    async fn a_charge_batch_answered_500_is_sent_again_after_a_minute(app) {
        let vipps = app.with_vipps().await;
        let payments = active_many(&app, &vipps, 6).await;
        fault(&vipps, "/recurring/v3/agreements/charges", json!({"kind": "500", "times": 4})).await;
        app.state.payments.collect_recurring().await.unwrap();
        assert_unconfirmed(&app, &vipps, &payments).await;
        for (_, agreement) in &payments {
            assert_eq!(charge_ids_at_vipps(&vipps, agreement).await.len(), 0);
        }
        vipps.sim.advance(61).await;
        app.state.payments.collect_recurring().await.unwrap();
        let states = charge_states(&app, &vipps, &payments).await;
        assert!(states.iter().map(|(_, s)| s).all(|s| s == "PENDING"), "{states:?}");
        assert_collected_once(&app, &vipps, &payments).await;
    }

    async fn a_charge_batch_whose_answer_is_lost_is_resent_without_a_second_charge(app) {
        let vipps = app.with_vipps().await;
        let payments = active_many(&app, &vipps, 6).await;
        fault(&vipps, "/recurring/v3/agreements/charges", json!({"kind": "delay", "times": 4, "delayMs": 1500})).await;
        app.state.payments.collect_recurring().await.unwrap();
        assert_unconfirmed(&app, &vipps, &payments).await;
        clear_faults(&vipps).await;
        for (_, agreement) in &payments {
            assert_eq!(charge_ids_at_vipps(&vipps, agreement).await.len(), 1, "the delayed batch was performed");
        }
        // One of them is read back by a webhook-driven sync first, so the re-sent batch differs from the first
        // (another key): Vipps answers "already used" for each order id, which confirms them.
        let first = installments(&app, &vipps, &payments[0].0).await[0]["PaymentReference"].as_str().unwrap().to_owned();
        app.state.payments.sync_charge(&first, None).await.unwrap();
        vipps.sim.advance(61).await;
        app.state.payments.collect_recurring().await.unwrap();
        let states = charge_states(&app, &vipps, &payments).await;
        assert!(states.iter().map(|(_, s)| s).all(|s| s != "CREATING" && s != "REFUSED"), "{states:?}");
        for (recurring_id, _) in &payments {
            assert_eq!(installments(&app, &vipps, recurring_id).await[0]["Status"], "Pending");
        }
        assert_collected_once(&app, &vipps, &payments).await;
    }

    async fn unconfirmed_charges_resent_by_racing_beats_are_charged_once(app) {
        let vipps = app.with_vipps().await;
        let payments = active_many(&app, &vipps, 6).await;
        fault(&vipps, "/recurring/v3/agreements/charges", json!({"kind": "500", "times": 4})).await;
        app.state.payments.collect_recurring().await.unwrap();
        assert_unconfirmed(&app, &vipps, &payments).await;
        vipps.sim.advance(61).await;
        // The collect beat (re-send as a batch) and the poll (read, then create one by one) of two instances.
        let other = app.second_instance(&vipps).await;
        let tasks: Vec<_> = [app.state.payments.clone(), other.payments.clone(), app.state.payments.clone(), other.payments.clone()]
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                tokio::spawn(async move {
                    if i < 2 { p.collect_recurring().await.map(|_| ()) } else { p.sync_recurring(1000).await.map(|_| ()) }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().expect("racing beat");
        }
        let states = charge_states(&app, &vipps, &payments).await;
        assert!(states.iter().map(|(_, s)| s).all(|s| s == "PENDING" || s == "DUE"), "{states:?}");
        assert_collected_once(&app, &vipps, &payments).await;
        other.store.close().await;
    }

    async fn a_charge_unconfirmed_past_its_due_date_is_still_charged_once(app) {
        let vipps = app.with_vipps().await;
        let payments = active_many(&app, &vipps, 1).await;
        fault(&vipps, "/recurring/v3/agreements", json!({"kind": "500", "times": 4})).await;
        app.state.payments.collect_recurring().await.unwrap();
        assert_unconfirmed(&app, &vipps, &payments).await;
        // Vipps (or payhub) is away for two days: the due date recorded for the charge has passed.
        vipps.sim.advance(2 * 86_400).await;
        app.state.payments.sync_recurring(1000).await.unwrap();
        app.state.payments.collect_recurring().await.unwrap();
        let states = charge_states(&app, &vipps, &payments).await;
        assert!(states.iter().map(|(_, s)| s).all(|s| s == "PENDING" || s == "DUE"), "{states:?}");
        let list = installments(&app, &vipps, &payments[0].0).await;
        assert_eq!(list[0]["Status"], "Pending", "{list:?}");
        assert_collected_once(&app, &vipps, &payments).await;
    }

    async fn a_batch_that_never_reached_vipps_before_its_due_date_is_still_charged_once(app) {
        let vipps = app.with_vipps().await;
        let payments = active_many(&app, &vipps, 5).await;
        fault(&vipps, "/recurring/v3/agreements/charges", json!({"kind": "500", "times": 4})).await;
        app.state.payments.collect_recurring().await.unwrap();
        assert_unconfirmed(&app, &vipps, &payments).await;
        vipps.sim.advance(2 * 86_400).await;
        app.state.payments.collect_recurring().await.unwrap();
        let states = charge_states(&app, &vipps, &payments).await;
        assert!(states.iter().map(|(_, s)| s).all(|s| s == "PENDING"), "{states:?}");
        assert_collected_once(&app, &vipps, &payments).await;
    }

    async fn a_batch_unconfirmed_past_its_due_date_is_still_charged_once(app) {
        let vipps = app.with_vipps().await;
        let payments = active_many(&app, &vipps, 5).await;
        fault(&vipps, "/recurring/v3/agreements/charges", json!({"kind": "delay", "times": 4, "delayMs": 1500})).await;
        app.state.payments.collect_recurring().await.unwrap();
        assert_unconfirmed(&app, &vipps, &payments).await;
        clear_faults(&vipps).await;
        vipps.sim.advance(2 * 86_400).await;
        app.state.payments.collect_recurring().await.unwrap();
        app.state.payments.sync_recurring(1000).await.unwrap();
        let states = charge_states(&app, &vipps, &payments).await;
        assert!(states.iter().map(|(_, s)| s).all(|s| s != "CREATING" && s != "REFUSED"), "{states:?}");
        assert_collected_once(&app, &vipps, &payments).await;
    }
}
