//! Recurring payments under races: charge beats of one instance and of two on the same database racing each
//! other, syncs of one agreement and its charge read by everyone at once, and one recurring intent sent four
//! times at once. Each change happens once: one charge per installment (at Vipps and in payhub), one event and
//! one report per change, one agreement per idempotency key.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::recurring::{
    active_recurring, assert_one_charge_per_installment, installment, installments, recurring_intent, today,
};
use crate::helpers::vipps::{agreements_at_vipps, charge_ids_at_vipps};
use crate::helpers::{storage, TestApp, Vipps};
use crate::on_both_backends;

/// Each instance's `collect_recurring` on a task of its own, all at once; every one must succeed.
async fn race_collect(instances: &[payhub::processing::Payments]) {
    race(instances, |payments| async move { payments.collect_recurring().await.map(|_| ()) }).await;
}

/// Each instance's `generate_installments` on a task of its own, all at once; every one must succeed.
async fn race_generate(instances: &[payhub::processing::Payments]) {
    race(instances, |payments| async move { payments.generate_installments().await.map(|_| ()) }).await;
}

/// The installments of `recurring_ids` in `status`, as the API lists them.
async fn in_status(app: &TestApp, vipps: &Vipps, recurring_ids: &[String], status: &str) -> usize {
    let mut n = 0;
    for id in recurring_ids {
        n += installments(app, vipps, id).await.iter().filter(|i| i["Status"] == status).count();
    }
    n
}

on_both_backends! {
    async fn racing_charge_beats_make_exactly_one_charge_per_installment(app) {
        let vipps = app.with_vipps().await;
        let start = today(&app);
        let mut agreements = Vec::new();
        let mut recurring_ids = Vec::new();
        for _ in 0..12 {
            let (_, recurring_id, _, agreement_id) = active_recurring(&app, &vipps, &recurring_intent(start, "100")).await;
            agreements.push(agreement_id);
            recurring_ids.push(recurring_id);
        }
        assert_eq!(in_status(&app, &vipps, &recurring_ids, "Outstanding").await, 12);
        let other = app.second_instance(&vipps).await;
        let instances = [app.state.payments.clone(), app.state.payments.clone(), other.payments.clone(), other.payments.clone()];

        // Round 1: four collect beats at once, two per instance.
        race_collect(&instances).await;
        // Storage: exactly one charge row each, however many beats raced.
        assert_eq!(storage::count(&app, "SELECT COUNT(*) FROM vipps_charges", &[]).await, 12);
        assert_one_charge_per_installment(&app, &vipps, &agreements).await;
        for (recurring_id, agreement) in recurring_ids.iter().zip(&agreements) {
            let list = installments(&app, &vipps, recurring_id).await;
            assert_eq!(list.len(), 1, "{list:?}");
            assert_eq!(list[0]["Status"], "Pending", "{list:?}");
            assert_eq!(charge_ids_at_vipps(&vipps, agreement).await.len(), 1);
        }
        // Again, nothing new: every installment has its charge.
        race_collect(&instances).await;
        assert_eq!(storage::count(&app, "SELECT COUNT(*) FROM vipps_charges", &[]).await, 12);

        // Vipps charges them on the due date.
        vipps.sim.advance(2 * 86_400).await;
        app.state.payments.sync_recurring(1000).await.unwrap();
        assert_eq!(in_status(&app, &vipps, &recurring_ids, "Collected").await, 12);
        // Storage: one Payment row per collected installment, not one per racing reader.
        assert_eq!(storage::count(&app, "SELECT COUNT(*) FROM payments", &[]).await, 12);

        // Round 2, a month on: generate and collect racing each other, on both instances.
        vipps.sim.advance(29 * 86_400).await;
        app.state.payments.sync_recurring(1000).await.unwrap();
        race_generate(&instances).await;
        let mixed: Vec<_> = instances
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, payments)| {
                tokio::spawn(async move {
                    if i % 2 == 0 { payments.generate_installments().await } else { payments.collect_recurring().await }
                })
            })
            .collect();
        for task in mixed {
            task.await.unwrap().expect("racing beat");
        }
        race_collect(&instances).await;
        let until = (today(&app) + chrono::Days::new(3)).to_string();
        let mut uncharged = Vec::new();
        for recurring_id in &recurring_ids {
            uncharged.extend(
                installments(&app, &vipps, recurring_id)
                    .await
                    .into_iter()
                    .filter(|i| i["Status"] == "Outstanding" && i["DueDate"].as_str().is_some_and(|d| d <= until.as_str())),
            );
        }
        assert!(uncharged.is_empty(), "every installment due within the lead window has its charge: {uncharged:?}");
        assert!(storage::count(&app, "SELECT COUNT(*) FROM vipps_charges", &[]).await >= 24);
        assert_one_charge_per_installment(&app, &vipps, &agreements).await;
        for recurring_id in &recurring_ids {
            let list = installments(&app, &vipps, recurring_id).await;
            let periods: BTreeSet<String> = list.iter().map(|i| i["DueDate"].to_string()).collect();
            assert_eq!(periods.len(), list.len(), "one installment per due date: {list:?}");
        }
        other.store.close().await;
    }
}

/// Each instance's call on a task of its own, all at once; every one must succeed.
async fn race<F, Fut>(instances: &[payhub::processing::Payments], call: F)
where
    F: Fn(payhub::processing::Payments) -> Fut,
    Fut: std::future::Future<Output = Result<(), payhub::error::ServiceError>> + Send + 'static,
{
    let tasks: Vec<_> = instances.iter().cloned().map(|payments| tokio::spawn(call(payments))).collect();
    for task in tasks {
        task.await.unwrap().expect("a racing call succeeds");
    }
}

/// Outbound events emitted so far, by type, as the admin API lists their deliveries.
async fn events(app: &TestApp) -> BTreeMap<String, i64> {
    let answer: Value =
        app.admin(Method::GET, "/admin/api/webhook-deliveries?limit=1000").send().await.unwrap().json().await.unwrap();
    let deliveries = answer["deliveries"].as_array().unwrap_or_else(|| panic!("deliveries in {answer}"));
    assert!(deliveries.len() < 1000, "more deliveries than one page: {}", deliveries.len());
    let mut by_type = BTreeMap::new();
    for delivery in deliveries {
        *by_type.entry(delivery["event_type"].as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    by_type
}

on_both_backends! {
    async fn racing_syncs_of_an_agreement_and_its_charge_record_each_change_once(app) {
        let vipps = app.with_vipps().await;
        let response = app
            .admin(Method::POST, "/admin/api/webhook-endpoints")
            .json(&json!({"url": "https://example.org/hooks", "description": "ERP"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let other = app.second_instance(&vipps).await;
        let instances = [app.state.payments.clone(), app.state.payments.clone(), other.payments.clone(), other.payments.clone()];
        let (status, created) = app.intent(&vipps, &recurring_intent(today(&app), "140")).await;
        assert_eq!(status, StatusCode::OK, "{created}");
        let recurring_id = created["Recurring"]["Id"].as_str().unwrap().to_owned();
        let mandate_id = created["Recurring"]["Mandate"]["Id"].as_str().unwrap().to_owned();
        let agreement_id = created["Recurring"]["Mandate"]["MandateId"].as_str().unwrap().to_owned();
        assert_eq!(vipps.control(&format!("/_sim/agreements/{agreement_id}/accept"), json!({})).await, StatusCode::OK);
        let before = events(&app).await;

        // Webhook jobs and polls of both instances read the activation at once.
        let id = mandate_id.clone();
        race(&instances, move |p| { let id = id.clone(); async move { p.sync_agreement(&id, None).await } }).await;
        assert_eq!(app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await["Status"], "Active");
        let list = installments(&app, &vipps, &recurring_id).await;
        assert_eq!(list.len(), 1, "{list:?}");
        let after = events(&app).await;
        let added = |name: &str, after: &BTreeMap<String, i64>| after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0);
        assert_eq!(added("mandate.status_change", &after), 1, "{after:?}");
        assert_eq!(added("installment.created", &after), 1, "{after:?}");
        // Storage: one Inbound Report row of the activation, however many read it.
        let reports = "SELECT COUNT(*) FROM inbound_reports WHERE sub_type = $1";
        assert_eq!(storage::count(&app, reports, &["agreement.active"]).await, 1, "one report of the activation");

        // The charge, then its outcome read by everyone at once.
        race_collect(&instances).await;
        let charge_id = installments(&app, &vipps, &recurring_id).await[0]["PaymentReference"].as_str().unwrap().to_owned();
        assert_eq!(charge_ids_at_vipps(&vipps, &agreement_id).await, vec![charge_id.clone()], "the charge at Vipps");
        vipps.sim.advance(2 * 86_400).await;
        let id = charge_id.clone();
        race(&instances, move |p| { let id = id.clone(); async move { p.sync_charge(&id, None).await } }).await;
        let one = installment(&app, &vipps, list[0]["Id"].as_str().unwrap()).await;
        assert_eq!(one["Status"], "Collected", "{one}");
        assert_eq!(one["Payments"].as_array().map(Vec::len), Some(1), "{one}");
        let after = events(&app).await;
        // Outstanding → Pending → Collected: two changes, each announced once.
        assert_eq!(added("installment.status_change", &after), 2, "{after:?}");
        assert_eq!(added("mandate.status_change", &after), 1, "{after:?}");
        assert_eq!(storage::count(&app, "SELECT COUNT(*) FROM payments", &[]).await, 1);
        assert_eq!(storage::count(&app, reports, &["charge.charged"]).await, 1, "one report of the charge");
        other.store.close().await;
    }
}

on_both_backends! {
    async fn concurrent_repeats_of_one_recurring_intent_make_one_agreement(app) {
        let vipps = app.with_vipps().await;
        let mut body = recurring_intent(today(&app), "100");
        body["IdempotencyKey"] = json!("donation-form-4711");
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let http = app.http.clone();
                let url = app.url("/v2/PaymentIntent");
                let key = vipps.integrator_key.clone();
                let body = body.clone();
                tokio::spawn(async move {
                    let response = http.post(url).bearer_auth(key).json(&body).send().await.unwrap();
                    (response.status(), response.json::<Value>().await.unwrap())
                })
            })
            .collect();
        let mut ids = BTreeSet::new();
        for task in tasks {
            let (status, answer) = task.await.unwrap();
            assert_eq!(status, StatusCode::OK, "{answer}");
            ids.insert(answer["Recurring"]["Mandate"]["MandateId"].as_str().unwrap().to_owned());
        }
        assert_eq!(ids.len(), 1, "{ids:?}");
        // Storage: one row each, however many requests raced.
        assert_eq!(storage::count(&app, "SELECT COUNT(*) FROM mandates", &[]).await, 1);
        assert_eq!(storage::count(&app, "SELECT COUNT(*) FROM recurring_payments", &[]).await, 1);
        assert_eq!(agreements_at_vipps(&vipps).await, 1);
    }
}
