//! Recurring payments under stress: charge beats racing (in one instance and across two), faults on charge
//! creation (single and batch), Vipps webhooks driving the lifecycle (duplicated and late ones change
//! nothing), bad input refused with nothing written, the CLI, and the admin API's beats.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Row;

use crate::helpers::{TestApp, Vipps};
use crate::on_both_backends;
use crate::recurring::{active_recurring, recurring_intent, today};

// ---------------------------------------------------------------------------------------------------------
// Helpers

async fn scalar(app: &TestApp, sql: &str) -> i64 {
    let mut conn = app.state.store.pool_for_tests().acquire().await.unwrap();
    sqlx::query(sql).fetch_one(&mut *conn).await.unwrap().try_get::<i64, _>(0).unwrap()
}

/// Rows of two text columns.
async fn pairs(app: &TestApp, sql: &str) -> Vec<(String, String)> {
    let mut conn = app.state.store.pool_for_tests().acquire().await.unwrap();
    sqlx::query(sql)
        .fetch_all(&mut *conn)
        .await
        .unwrap()
        .iter()
        .map(|row| (row.try_get::<String, _>(0).unwrap(), row.try_get::<String, _>(1).unwrap()))
        .collect()
}

/// A Vipps client of the simulator's merchant: what Vipps itself holds, independent of payhub's records.
fn sim_client(vipps: &Vipps) -> vipps_client::Client {
    let merchant = &vipps.sim.merchants()[0];
    let credentials = vipps_client::Credentials {
        client_id: merchant.client_id.clone(),
        client_secret: vipps_client::Secret::new(merchant.client_secret.clone()),
        subscription_key: vipps_client::Secret::new(merchant.subscription_key.clone()),
        msn: vipps_client::Msn::parse(&merchant.msn).unwrap(),
    };
    let system = vipps_client::SystemInfo {
        name: "payhub-tests".into(),
        version: "0.1.0".into(),
        plugin_name: "recurring-robustness".into(),
        plugin_version: "0.1.0".into(),
    };
    let config = vipps_client::ClientConfig::new(
        vipps_client::Environment::Custom(vipps.sim.base_url().parse().unwrap()),
        credentials,
        system,
    );
    vipps_client::Client::new(config).unwrap()
}

/// The ids of the charges Vipps holds for an agreement (every page).
async fn charges_at_vipps(client: &vipps_client::Client, agreement_id: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client.recurring().list_charges(agreement_id, None, token.as_deref()).await.unwrap();
        ids.extend(page.items.into_iter().map(|c| c.id));
        match page.continuation_token {
            Some(next) if !next.is_empty() => token = Some(next),
            _ => break,
        }
    }
    ids.sort();
    ids
}

/// The agreements Vipps holds for the merchant, in any status (Vipps lists one status at a time).
async fn agreements_at_vipps(client: &vipps_client::Client) -> usize {
    use vipps_client::recurring::AgreementStatus;
    let mut count = 0;
    for status in
        [AgreementStatus::Pending, AgreementStatus::Active, AgreementStatus::Stopped, AgreementStatus::Expired]
    {
        let mut filter = vipps_client::recurring::ListAgreements::default();
        filter.status = Some(status);
        filter.page_size = Some(1000);
        count += client.recurring().list_agreements(&filter).await.unwrap().items.len();
    }
    count
}

/// The charge ids payhub recorded for an agreement.
async fn charges_in_payhub(app: &TestApp, agreement_id: &str) -> Vec<String> {
    let mut ids: Vec<String> = pairs(
        app,
        &format!("SELECT charge_id, installment_id FROM vipps_charges WHERE agreement_id = '{agreement_id}'"),
    )
    .await
    .into_iter()
    .map(|(charge, _)| charge)
    .collect();
    ids.sort();
    ids
}

async fn fault(vipps: &Vipps, prefix: &str, mut rule: Value) {
    rule["pathPrefix"] = json!(prefix);
    assert_eq!(vipps.control("/_sim/faults", rule).await, StatusCode::CREATED);
}

async fn clear_faults(vipps: &Vipps) {
    vipps.http.delete(format!("{}/_sim/faults", vipps.sim.base_url())).send().await.unwrap();
}

async fn installments(app: &TestApp, vipps: &Vipps, recurring_id: &str) -> Vec<Value> {
    let recurring = app.v2_get(vipps, &format!("/v2/Recurring/{recurring_id}")).await;
    recurring["Installments"].as_array().cloned().unwrap_or_else(|| panic!("installments in {recurring}"))
}

async fn installment(app: &TestApp, vipps: &Vipps, id: &str) -> Value {
    app.v2_get(vipps, &format!("/v2/Installment/{id}")).await
}

/// Each instance's `collect_recurring` on a task of its own, all at once; every one must succeed.
async fn race_collect(instances: &[payhub::processing::Payments]) {
    let tasks: Vec<_> = instances
        .iter()
        .cloned()
        .map(|payments| tokio::spawn(async move { payments.collect_recurring().await }))
        .collect();
    for task in tasks {
        task.await.unwrap().expect("a racing collect succeeds");
    }
}

async fn race_generate(instances: &[payhub::processing::Payments]) {
    let tasks: Vec<_> = instances
        .iter()
        .cloned()
        .map(|payments| tokio::spawn(async move { payments.generate_installments().await }))
        .collect();
    for task in tasks {
        task.await.unwrap().expect("a racing generate succeeds");
    }
}

/// A second payhub instance on the same database: its own pool, queue and Vipps clients, the same clock.
async fn second_instance(app: &TestApp, vipps: &Vipps) -> payhub::state::AppState {
    let config = (*app.state.config).clone();
    payhub::app::Application::build_state(config, std::sync::Arc::new(vipps.sim.clock_fn()))
        .await
        .expect("second instance")
}

/// Every charge payhub recorded exists at Vipps once and Vipps holds no other; one charge per installment.
async fn assert_one_charge_per_installment(app: &TestApp, client: &vipps_client::Client, agreements: &[String]) {
    for agreement in agreements {
        let at_vipps = charges_at_vipps(client, agreement).await;
        let recorded = charges_in_payhub(app, agreement).await;
        let distinct: BTreeSet<&String> = at_vipps.iter().collect();
        assert_eq!(distinct.len(), at_vipps.len(), "a charge id twice at Vipps for {agreement}: {at_vipps:?}");
        assert_eq!(at_vipps, recorded, "Vipps and payhub disagree on the charges of {agreement}");
    }
    assert_eq!(
        scalar(app, "SELECT COUNT(*) FROM vipps_charges").await,
        scalar(app, "SELECT COUNT(DISTINCT installment_id) FROM vipps_charges").await
    );
    assert_eq!(
        scalar(app, "SELECT COUNT(*) FROM installments WHERE recurring_payment_id IS NOT NULL").await,
        scalar(app, "SELECT COUNT(*) FROM (SELECT DISTINCT recurring_payment_id, period FROM installments WHERE recurring_payment_id IS NOT NULL) x").await,
        "one installment per period"
    );
    assert_eq!(
        scalar(app, "SELECT COUNT(*) FROM payments").await,
        scalar(app, "SELECT COUNT(DISTINCT installment_id) FROM payments").await,
        "at most one Payment per installment"
    );
}

/// Waits (real time, bounded) until `sql` counts at least `at_least`.
async fn wait_until(app: &TestApp, sql: &str, at_least: i64) {
    for _ in 0..200 {
        if scalar(app, sql).await >= at_least {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {sql} >= {at_least}");
}

/// Processes queued jobs until `done` holds (webhooks keep arriving in the background).
async fn settle_until<F, Fut>(app: &TestApp, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        app.state.jobs.run_until_idle().await.unwrap();
        if done().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the queued webhooks never brought the expected state");
}

// ---------------------------------------------------------------------------------------------------------
// 1. Racing beats

on_both_backends! {
    async fn racing_charge_beats_make_exactly_one_charge_per_installment(app) {
        let vipps = app.with_vipps().await;
        let client = sim_client(&vipps);
        let start = today(&app);
        let mut agreements = Vec::new();
        let mut recurring_ids = Vec::new();
        for _ in 0..12 {
            let (_, recurring_id, _, agreement_id) = active_recurring(&app, &vipps, &recurring_intent(start, "100")).await;
            agreements.push(agreement_id);
            recurring_ids.push(recurring_id);
        }
        assert_eq!(scalar(&app, "SELECT COUNT(*) FROM installments WHERE status = 'Outstanding'").await, 12);
        let other = second_instance(&app, &vipps).await;
        let instances = [app.state.payments.clone(), app.state.payments.clone(), other.payments.clone(), other.payments.clone()];

        // Round 1: four collect beats at once, two per instance.
        race_collect(&instances).await;
        assert_eq!(scalar(&app, "SELECT COUNT(*) FROM vipps_charges").await, 12);
        assert_one_charge_per_installment(&app, &client, &agreements).await;
        for (recurring_id, agreement) in recurring_ids.iter().zip(&agreements) {
            let list = installments(&app, &vipps, recurring_id).await;
            assert_eq!(list.len(), 1, "{list:?}");
            assert_eq!(list[0]["Status"], "Pending", "{list:?}");
            assert_eq!(charges_at_vipps(&client, agreement).await.len(), 1);
        }
        // Again, nothing new: every installment has its charge.
        race_collect(&instances).await;
        assert_eq!(scalar(&app, "SELECT COUNT(*) FROM vipps_charges").await, 12);

        // Vipps charges them on the due date.
        vipps.sim.advance(2 * 86_400).await;
        app.state.payments.sync_recurring(1000).await.unwrap();
        assert_eq!(scalar(&app, "SELECT COUNT(*) FROM installments WHERE status = 'Collected'").await, 12);
        assert_eq!(scalar(&app, "SELECT COUNT(*) FROM payments").await, 12);

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
        assert_eq!(
            scalar(&app, &format!("SELECT COUNT(*) FROM installments WHERE status = 'Outstanding' AND due_date <= '{until}'")).await,
            0,
            "every installment due within the lead window has its charge"
        );
        assert!(scalar(&app, "SELECT COUNT(*) FROM vipps_charges").await >= 24);
        assert_one_charge_per_installment(&app, &client, &agreements).await;
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

/// Outbound events recorded, by type.
async fn events(app: &TestApp) -> BTreeMap<String, i64> {
    let mut conn = app.state.store.pool_for_tests().acquire().await.unwrap();
    sqlx::query("SELECT event_type, COUNT(*) FROM webhook_deliveries GROUP BY event_type")
        .fetch_all(&mut *conn)
        .await
        .unwrap()
        .iter()
        .map(|row| (row.try_get::<String, _>(0).unwrap(), row.try_get::<i64, _>(1).unwrap()))
        .collect()
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
        let other = second_instance(&app, &vipps).await;
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
        assert_eq!(scalar(&app, "SELECT COUNT(*) FROM inbound_reports WHERE sub_type = 'agreement.active'").await, 1, "one report of the activation");

        // The charge, then its outcome read by everyone at once.
        race_collect(&instances).await;
        let charge_id = charges_in_payhub(&app, &agreement_id).await.remove(0);
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
        assert_eq!(scalar(&app, "SELECT COUNT(*) FROM payments").await, 1);
        assert_eq!(scalar(&app, "SELECT COUNT(*) FROM inbound_reports WHERE sub_type = 'charge.charged'").await, 1, "one report of the charge");
        other.store.close().await;
    }
}

// ---------------------------------------------------------------------------------------------------------
// 2. Faults on charge creation

/// Brings `count` recurring payments to Active with their first installment Outstanding.
async fn active_many(app: &TestApp, vipps: &Vipps, count: usize) -> Vec<(String, String)> {
    let start = today(app);
    let mut out = Vec::new();
    for _ in 0..count {
        let (_, recurring_id, _, agreement_id) = active_recurring(app, vipps, &recurring_intent(start, "100")).await;
        out.push((recurring_id, agreement_id));
    }
    out
}

async fn charge_states(app: &TestApp) -> BTreeMap<String, String> {
    pairs(app, "SELECT charge_id, state FROM vipps_charges").await.into_iter().collect()
}

/// After the fault: every charge still unconfirmed (`CREATING`) and its installment Outstanding.
async fn assert_unconfirmed(app: &TestApp, vipps: &Vipps, payments: &[(String, String)]) {
    let states = charge_states(app).await;
    assert_eq!(states.len(), payments.len(), "{states:?}");
    assert!(states.values().all(|s| s == "CREATING"), "{states:?}");
    for (recurring_id, _) in payments {
        let list = installments(app, vipps, recurring_id).await;
        assert_eq!(list[0]["Status"], "Outstanding", "{list:?}");
    }
}

/// Vipps processes the charges; each installment ends Collected with one Payment and one charge at Vipps.
async fn assert_collected_once(app: &TestApp, vipps: &Vipps, payments: &[(String, String)]) {
    vipps.sim.advance(2 * 86_400).await;
    app.state.payments.sync_recurring(1000).await.unwrap();
    let client = sim_client(vipps);
    for (recurring_id, agreement_id) in payments {
        let list = installments(app, vipps, recurring_id).await;
        assert_eq!(list.len(), 1, "{list:?}");
        let one = installment(app, vipps, list[0]["Id"].as_str().unwrap()).await;
        assert_eq!(one["Status"], "Collected", "{one}");
        assert_eq!(one["Payments"].as_array().map(Vec::len), Some(1), "{one}");
        assert_eq!(charges_at_vipps(&client, agreement_id).await.len(), 1, "{agreement_id}");
    }
    let agreements: Vec<String> = payments.iter().map(|(_, a)| a.clone()).collect();
    assert_one_charge_per_installment(app, &client, &agreements).await;
}

on_both_backends! {
    async fn a_single_charge_create_answered_500_is_sent_again_after_a_minute(app) {
        let vipps = app.with_vipps().await;
        let client = sim_client(&vipps);
        let payments = active_many(&app, &vipps, 1).await;
        // Every attempt of the call (the client retries three times) fails.
        fault(&vipps, "/recurring/v3/agreements", json!({"kind": "500", "times": 4})).await;
        app.state.payments.collect_recurring().await.unwrap();
        assert_unconfirmed(&app, &vipps, &payments).await;
        assert_eq!(charges_at_vipps(&client, &payments[0].1).await.len(), 0);
        // Within the minute nothing is sent again.
        app.state.payments.collect_recurring().await.unwrap();
        assert_unconfirmed(&app, &vipps, &payments).await;
        // After it, the collect beat sends it again with the same order id.
        vipps.sim.advance(61).await;
        app.state.payments.collect_recurring().await.unwrap();
        let states = charge_states(&app).await;
        assert!(states.values().all(|s| s == "PENDING"), "{states:?}");
        assert_eq!(installments(&app, &vipps, &payments[0].0).await[0]["Status"], "Pending");
        assert_collected_once(&app, &vipps, &payments).await;
    }

    async fn a_single_charge_create_whose_answer_is_lost_is_confirmed_by_the_poll(app) {
        let vipps = app.with_vipps().await;
        let client = sim_client(&vipps);
        let payments = active_many(&app, &vipps, 1).await;
        // Vipps makes the charge but every answer comes too late.
        fault(&vipps, "/recurring/v3/agreements", json!({"kind": "delay", "times": 4, "delayMs": 1500})).await;
        app.state.payments.collect_recurring().await.unwrap();
        assert_unconfirmed(&app, &vipps, &payments).await;
        clear_faults(&vipps).await;
        assert_eq!(charges_at_vipps(&client, &payments[0].1).await.len(), 1, "the delayed call was performed");
        // The poll reads it back (no second create); the collect beat finds nothing to re-send.
        vipps.sim.advance(61).await;
        app.state.payments.sync_recurring(1000).await.unwrap();
        app.state.payments.collect_recurring().await.unwrap();
        let states = charge_states(&app).await;
        assert!(states.values().all(|s| s != "CREATING"), "{states:?}");
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
        let states = charge_states(&app).await;
        assert!(states.values().all(|s| s == "PENDING"), "{states:?}");
        assert_collected_once(&app, &vipps, &payments).await;
    }

    async fn a_charge_batch_answered_500_is_sent_again_after_a_minute(app) {
        let vipps = app.with_vipps().await;
        let client = sim_client(&vipps);
        let payments = active_many(&app, &vipps, 6).await;
        fault(&vipps, "/recurring/v3/agreements/charges", json!({"kind": "500", "times": 4})).await;
        app.state.payments.collect_recurring().await.unwrap();
        assert_unconfirmed(&app, &vipps, &payments).await;
        for (_, agreement) in &payments {
            assert_eq!(charges_at_vipps(&client, agreement).await.len(), 0);
        }
        vipps.sim.advance(61).await;
        app.state.payments.collect_recurring().await.unwrap();
        let states = charge_states(&app).await;
        assert!(states.values().all(|s| s == "PENDING"), "{states:?}");
        assert_collected_once(&app, &vipps, &payments).await;
    }

    async fn a_charge_batch_whose_answer_is_lost_is_resent_without_a_second_charge(app) {
        let vipps = app.with_vipps().await;
        let client = sim_client(&vipps);
        let payments = active_many(&app, &vipps, 6).await;
        fault(&vipps, "/recurring/v3/agreements/charges", json!({"kind": "delay", "times": 4, "delayMs": 1500})).await;
        app.state.payments.collect_recurring().await.unwrap();
        assert_unconfirmed(&app, &vipps, &payments).await;
        clear_faults(&vipps).await;
        for (_, agreement) in &payments {
            assert_eq!(charges_at_vipps(&client, agreement).await.len(), 1, "the delayed batch was performed");
        }
        // One of them is read back by a webhook-driven sync first, so the re-sent batch differs from the first
        // (another key): Vipps answers "already used" for each order id, which confirms them.
        let first = charges_in_payhub(&app, &payments[0].1).await.remove(0);
        app.state.payments.sync_charge(&first, None).await.unwrap();
        vipps.sim.advance(61).await;
        app.state.payments.collect_recurring().await.unwrap();
        let states = charge_states(&app).await;
        assert!(states.values().all(|s| s != "CREATING" && s != "REFUSED"), "{states:?}");
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
        let other = second_instance(&app, &vipps).await;
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
        let states = charge_states(&app).await;
        assert!(states.values().all(|s| s == "PENDING" || s == "DUE"), "{states:?}");
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
        let states = charge_states(&app).await;
        assert!(states.values().all(|s| s == "PENDING" || s == "DUE"), "{states:?}");
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
        let states = charge_states(&app).await;
        assert!(states.values().all(|s| s == "PENDING"), "{states:?}");
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
        let states = charge_states(&app).await;
        assert!(states.values().all(|s| s != "CREATING" && s != "REFUSED"), "{states:?}");
        assert_collected_once(&app, &vipps, &payments).await;
    }
}

// ---------------------------------------------------------------------------------------------------------
// 3. Webhooks

/// Posts `body` to the intake signed with `secret`, as Vipps does.
async fn deliver(app: &TestApp, url: &str, secret: &str, body: &str) -> StatusCode {
    let parsed = url::Url::parse(url).unwrap();
    let host = format!("{}:{}", parsed.host_str().unwrap(), parsed.port().unwrap());
    let headers = vipps_client::webhooks::sign(
        &vipps_client::Secret::new(secret),
        parsed.path(),
        &host,
        &vipps_client::webhooks::format_date(chrono::Utc::now()),
        body.as_bytes(),
    );
    app.http
        .post(url)
        .header("x-ms-date", headers.date)
        .header("x-ms-content-sha256", headers.content_sha256)
        .header("authorization", headers.authorization)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
        .status()
}

async fn webhook_registration(app: &TestApp) -> (String, String) {
    let account = app.state.accounts.list().await.unwrap().remove(0);
    let mut conn = app.state.store.pool_for_tests().acquire().await.unwrap();
    let row = sqlx::query("SELECT url, secret_sealed FROM vipps_webhooks").fetch_one(&mut *conn).await.unwrap();
    let sealed: String = row.try_get(1).unwrap();
    let secret = app.state.accounts.open(&sealed, &format!("vipps_webhook:{}", account.id)).unwrap();
    (row.try_get(0).unwrap(), secret.expose().to_owned())
}

/// The event bodies the simulator sent (or queued) for payhub.
async fn sim_deliveries(vipps: &Vipps) -> Vec<Value> {
    let answer: Value = vipps
        .http
        .get(format!("{}/_sim/webhooks/deliveries", vipps.sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["deliveries"].as_array().cloned().unwrap_or_default()
}

/// What a duplicate or late event must not change.
async fn snapshot(app: &TestApp) -> Value {
    let mut out = serde_json::Map::new();
    for (name, sql) in [
        ("installments", "SELECT COUNT(*) FROM installments"),
        ("collected", "SELECT COUNT(*) FROM installments WHERE status = 'Collected'"),
        ("payments", "SELECT COUNT(*) FROM payments"),
        ("charges", "SELECT COUNT(*) FROM vipps_charges"),
        ("reports", "SELECT COUNT(*) FROM inbound_reports"),
        ("deliveries", "SELECT COUNT(*) FROM webhook_deliveries"),
    ] {
        out.insert(name.into(), json!(scalar(app, sql).await));
    }
    out.insert("mandates".into(), json!(pairs(app, "SELECT id, status FROM mandates ORDER BY id").await));
    out.insert("recurring".into(), json!(pairs(app, "SELECT id, status FROM recurring_payments ORDER BY id").await));
    Value::Object(out)
}

on_both_backends! {
    async fn vipps_webhooks_activate_the_mandate_and_collect_the_charge(app) {
        let vipps = app.with_vipps().await;
        // The account's webhook registration is a job.
        app.state.jobs.run_until_idle().await.unwrap();
        assert_eq!(scalar(&app, "SELECT COUNT(*) FROM vipps_webhooks").await, 1);
        let start = today(&app);
        let (status, created) = app.intent(&vipps, &recurring_intent(start, "150")).await;
        assert_eq!(status, StatusCode::OK, "{created}");
        let recurring_id = created["Recurring"]["Id"].as_str().unwrap().to_owned();
        let mandate_id = created["Recurring"]["Mandate"]["Id"].as_str().unwrap().to_owned();
        let agreement_id = created["Recurring"]["Mandate"]["MandateId"].as_str().unwrap().to_owned();

        // The payer accepts: Vipps' agreement-activated alone makes the mandate Active.
        assert_eq!(vipps.control(&format!("/_sim/agreements/{agreement_id}/accept"), json!({})).await, StatusCode::OK);
        wait_until(&app, &format!("SELECT COUNT(*) FROM messages WHERE channel = 'vipps_webhook' AND subject = '{agreement_id}'"), 1).await;
        settle_until(&app, || async {
            app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await["Status"] == "Active"
        })
        .await;
        let list = installments(&app, &vipps, &recurring_id).await;
        assert_eq!(list.len(), 1, "activation generated the first installment: {list:?}");

        // The charge beat sends the charge; Vipps processes it on the due date and its webhook collects it.
        app.state.payments.collect_recurring().await.unwrap();
        let charge_id = charges_in_payhub(&app, &agreement_id).await.remove(0);
        vipps.sim.advance(2 * 86_400).await;
        wait_until(&app, &format!("SELECT COUNT(*) FROM messages WHERE channel = 'vipps_webhook' AND subject = '{charge_id}' AND body LIKE '%charge-captured%'"), 1).await;
        let installment_id = list[0]["Id"].as_str().unwrap().to_owned();
        settle_until(&app, || async { installment(&app, &vipps, &installment_id).await["Status"] == "Collected" }).await;
        let one = installment(&app, &vipps, &installment_id).await;
        assert_eq!(one["Payments"].as_array().map(Vec::len), Some(1), "{one}");
        assert_eq!(one["Payments"][0]["AmountOre"], 15000);
        settle_until(&app, || async {
            scalar(&app, "SELECT COUNT(*) FROM messages WHERE channel = 'vipps_webhook' AND status = 'New'").await == 0
        })
        .await;

        // Every event delivered again, twice: nothing changes.
        let (url, secret) = webhook_registration(&app).await;
        let bodies: Vec<String> = sim_deliveries(&vipps)
            .await
            .iter()
            .filter(|d| d["eventType"].as_str().is_some_and(|t| t.starts_with("recurring.")))
            .map(|d| d["body"].to_string())
            .collect();
        assert!(bodies.iter().any(|b| b.contains("agreement-activated")), "{bodies:?}");
        assert!(bodies.iter().any(|b| b.contains("charge-captured")), "{bodies:?}");
        let before = snapshot(&app).await;
        let messages = scalar(&app, "SELECT COUNT(*) FROM messages WHERE channel = 'vipps_webhook'").await;
        for _ in 0..2 {
            for body in &bodies {
                assert_eq!(deliver(&app, &url, &secret, body).await, StatusCode::OK);
            }
        }
        app.state.jobs.run_until_idle().await.unwrap();
        assert_eq!(snapshot(&app).await, before, "duplicated events changed something");
        assert_eq!(
            scalar(&app, "SELECT COUNT(*) FROM messages WHERE channel = 'vipps_webhook'").await,
            messages + 2 * i64::try_from(bodies.len()).unwrap(),
            "every delivery kept raw"
        );
        assert_eq!(scalar(&app, "SELECT COUNT(*) FROM messages WHERE channel = 'vipps_webhook' AND status = 'New'").await, 0);

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
        let before = snapshot(&app).await;
        for body in bodies.iter().filter(|b| b.contains("agreement-activated") || b.contains("charge-captured")) {
            assert_eq!(deliver(&app, &url, &secret, body).await, StatusCode::OK);
        }
        app.state.jobs.run_until_idle().await.unwrap();
        assert_eq!(snapshot(&app).await, before, "late events changed something");
        assert_eq!(app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await["Status"], "Cancelled");

        // An event about a charge payhub never made is kept, processed, and changes nothing.
        let captured = bodies.iter().find(|b| b.contains("charge-captured")).unwrap();
        let foreign = captured.replace(&charge_id, "chr-not-ours");
        assert_ne!(&foreign, captured);
        assert_eq!(deliver(&app, &url, &secret, &foreign).await, StatusCode::OK);
        app.state.jobs.run_until_idle().await.unwrap();
        assert_eq!(snapshot(&app).await, before);
        assert_eq!(scalar(&app, "SELECT COUNT(*) FROM messages WHERE channel = 'vipps_webhook' AND status = 'New'").await, 0);
    }
}

// ---------------------------------------------------------------------------------------------------------
// 4. Bad input

/// Nothing of an intent was written and nothing reached Vipps.
async fn assert_nothing_written(app: &TestApp, client: &vipps_client::Client, what: &str) {
    for table in
        ["payment_intents", "mandates", "recurring_payments", "installments", "payers", "messages", "vipps_charges"]
    {
        assert_eq!(scalar(app, &format!("SELECT COUNT(*) FROM {table}")).await, 0, "{what}: a row in {table}");
    }
    assert_eq!(agreements_at_vipps(client).await, 0, "{what}: an agreement at Vipps");
}

fn with_recurring(today: chrono::NaiveDate, changes: Value) -> Value {
    let start = today + chrono::Days::new(2);
    let mut body = recurring_intent(start, "100");
    for (k, v) in changes.as_object().unwrap() {
        body["Recurring"][k] = v.clone();
    }
    body
}

on_both_backends! {
    async fn bad_recurring_intents_are_refused_with_the_field_and_nothing_is_written(app) {
        let vipps = app.with_vipps().await;
        let client = sim_client(&vipps);
        let today = today(&app);
        let long_text = "A monthly gift to the society, thank you very much";
        assert!(long_text.chars().count() > 45);
        let mut long = recurring_intent(today, "100");
        long["PaymentMethod"]["Parameters"]["TransactionText"] = json!(long_text);
        let cases: Vec<(&str, Value, &str)> = vec![
            ("unknown frequency", with_recurring(today, json!({"Frequency": "Fortnightly"})), "Recurring.Frequency"),
            ("start date in the past", with_recurring(today, json!({"StartDate": (today - chrono::Days::new(1)).to_string()})), "Recurring.StartDate"),
            ("end date before start date", with_recurring(today, json!({"StartDate": (today + chrono::Days::new(10)).to_string(), "EndDate": (today + chrono::Days::new(5)).to_string()})), "Recurring.EndDate"),
            ("amount 0.50", with_recurring(today, json!({"Amount": "0.50"})), "Recurring.Amount"),
            ("amount 20000.01", with_recurring(today, json!({"Amount": "20000.01"})), "Recurring.Amount"),
            ("amount 0", with_recurring(today, json!({"Amount": 0})), "Recurring.Amount"),
            ("negative amount", with_recurring(today, json!({"Amount": "-100"})), "Recurring.Amount"),
            ("amount not a number", with_recurring(today, json!({"Amount": "a lot"})), "Recurring.Amount"),
            ("transaction text over 45 characters", long, "PaymentMethod.Parameters.TransactionText"),
            ("malformed start date", with_recurring(today, json!({"StartDate": "2027-13-01"})), "Recurring.StartDate"),
            ("start date in another format", with_recurring(today, json!({"StartDate": "01.02.2027"})), "Recurring.StartDate"),
            ("malformed end date", with_recurring(today, json!({"EndDate": "someday"})), "Recurring.EndDate"),
            ("collection day 32", with_recurring(today, json!({"CollectionDay": 32})), "Recurring.CollectionDay"),
            ("collection day 0", with_recurring(today, json!({"CollectionDay": 0})), "Recurring.CollectionDay"),
            ("collection day text", with_recurring(today, json!({"CollectionDay": "first"})), "Recurring.CollectionDay"),
            ("currency", with_recurring(today, json!({"CurrencyISOCode": "EUR"})), "Recurring.CurrencyISOCode"),
            ("no frequency", with_recurring(today, json!({"Frequency": null})), "Recurring.Frequency"),
            ("no amount", with_recurring(today, json!({"Amount": null})), "Recurring.Amount"),
        ];
        for (what, body, field) in &cases {
            let (status, answer) = app.intent(&vipps, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {answer}");
            let errors = answer["Errors"].as_array().unwrap_or_else(|| panic!("{what}: envelope {answer}"));
            assert!(!errors.is_empty(), "{what}: {answer}");
            for item in errors {
                assert!(item["error_code"].as_str().is_some_and(|c| c.len() == 3), "{what}: {item}");
                assert!(item["error_message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {item}");
            }
            let named = errors.iter().find(|e| e["field"] == *field).unwrap_or_else(|| panic!("{what}: no error names {field}: {answer}"));
            assert!(named["error_code"] == "200" || named["error_code"] == "010", "{what}: {named}");
            assert_nothing_written(&app, &client, what).await;
        }
        let (_, answer) = app.intent(&vipps, &cases[8].1).await;
        assert_eq!(answer["Errors"][0]["error_code"], "200", "{answer}");
        assert_eq!(answer["Errors"].as_array().map(Vec::len), Some(1), "{answer}");

        // The account's default TransactionText counts too.
        let account = app.state.accounts.list().await.unwrap().remove(0);
        let response = app
            .admin(Method::PATCH, &format!("/admin/api/accounts/{}", account.id))
            .json(&json!({"parameter_defaults": {"TransactionText": {"value": long_text}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut without = recurring_intent(today, "100");
        without["PaymentMethod"]["Parameters"].as_object_mut().unwrap().remove("TransactionText");
        let (status, answer) = app.intent(&vipps, &without).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["Errors"][0]["field"], "PaymentMethod.Parameters.TransactionText", "{answer}");
        assert_nothing_written(&app, &client, "default transaction text").await;
        let response = app
            .admin(Method::PATCH, &format!("/admin/api/accounts/{}", account.id))
            .json(&json!({"parameter_defaults": {}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);

        // The limits themselves are accepted.
        for amount in ["1", "20000"] {
            let (status, answer) = app.intent(&vipps, &recurring_intent(today, amount)).await;
            assert_eq!(status, StatusCode::OK, "{amount}: {answer}");
        }
        assert_eq!(scalar(&app, "SELECT COUNT(*) FROM mandates").await, 2);
        assert_eq!(agreements_at_vipps(&client).await, 2);
    }

    async fn changes_and_cancels_of_unknown_records_are_404(app) {
        let vipps = app.with_vipps().await;
        let send = |method: Method, path: &str, body: Value| {
            app.http.request(method, app.url(path)).bearer_auth(&vipps.integrator_key).json(&body).send()
        };
        for (method, path, body) in [
            (Method::PATCH, "/v2/Recurring/rp_unknown", json!({"Amount": 100})),
            (Method::PATCH, "/v2/Recurring/rp_unknown", json!({"CollectionDay": 5})),
            (Method::POST, "/v2/Recurring/rp_unknown/Cancel", json!({})),
            (Method::POST, "/v2/Recurring/rp_unknown/Pause", json!({"Until": "2099-01-01"})),
            (Method::POST, "/v2/Recurring/rp_unknown/Resume", json!({})),
        ] {
            let response = send(method.clone(), path, body).await.unwrap();
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {path}");
            let answer: Value = response.json().await.unwrap();
            assert_eq!(answer["Errors"][0]["error_code"], "404", "{method} {path}: {answer}");
        }
        let missing = app.v2_get(&vipps, "/v2/Recurring/rp_unknown").await;
        assert_eq!(missing["Errors"][0]["error_code"], "404", "{missing}");
        for body in [json!({"MandateId": "mdt_unknown"}), json!({"AgreementId": "agr_unknown"})] {
            let response = send(Method::POST, "/v2/actions/CancelVippsAgreement", body.clone()).await.unwrap();
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{body}");
            let answer: Value = response.json().await.unwrap();
            assert_eq!(answer["IsSuccess"], false, "{answer}");
            assert!(answer["Message"].as_str().is_some_and(|m| m.contains("unknown")), "{answer}");
        }
        // A mandate id given as an agreement id (and the reverse) is not a match either.
        let (_, _, mandate_id, agreement_id) =
            active_recurring(&app, &vipps, &recurring_intent(today(&app), "100")).await;
        for body in [json!({"AgreementId": mandate_id}), json!({"MandateId": agreement_id})] {
            let response = send(Method::POST, "/v2/actions/CancelVippsAgreement", body.clone()).await.unwrap();
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{body}");
        }
        assert_eq!(app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await["Status"], "Active");
        // Bad bodies: both ids, neither, unknown fields.
        for body in [json!({"MandateId": mandate_id, "AgreementId": agreement_id}), json!({}), json!({"Mandate": mandate_id})] {
            let response = send(Method::POST, "/v2/actions/CancelVippsAgreement", body.clone()).await.unwrap();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
            let answer: Value = response.json().await.unwrap();
            assert_eq!(answer["IsSuccess"], false, "{answer}");
        }
        assert_eq!(app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await["Status"], "Active");
    }
}

on_both_backends! {
    async fn concurrent_repeats_of_one_recurring_intent_make_one_agreement(app) {
        let vipps = app.with_vipps().await;
        let client = sim_client(&vipps);
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
        assert_eq!(scalar(&app, "SELECT COUNT(*) FROM mandates").await, 1);
        assert_eq!(scalar(&app, "SELECT COUNT(*) FROM recurring_payments").await, 1);
        assert_eq!(agreements_at_vipps(&client).await, 1);
    }

    async fn bad_changes_to_a_recurring_payment_are_refused_and_change_nothing(app) {
        let vipps = app.with_vipps().await;
        let client = sim_client(&vipps);
        let (_, recurring_id, _, agreement_id) =
            active_recurring(&app, &vipps, &recurring_intent(today(&app), "100")).await;
        let send = |method: Method, path: String, body: Value| {
            app.http.request(method, app.url(&path)).bearer_auth(&vipps.integrator_key).json(&body).send()
        };
        let before = app.v2_get(&vipps, &format!("/v2/Recurring/{recurring_id}")).await;
        let today = today(&app);
        let patch = format!("/v2/Recurring/{recurring_id}");
        let cases: Vec<(Method, String, Value, &str)> = vec![
            (Method::PATCH, patch.clone(), json!({"Amount": "0.50"}), "Amount"),
            (Method::PATCH, patch.clone(), json!({"Amount": "20000.01"}), "Amount"),
            (Method::PATCH, patch.clone(), json!({"Amount": "a lot"}), "Amount"),
            (Method::PATCH, patch.clone(), json!({"Amount": -5}), "Amount"),
            (Method::PATCH, patch.clone(), json!({"CollectionDay": 32}), "CollectionDay"),
            (Method::PATCH, patch.clone(), json!({"CollectionDay": 0}), "CollectionDay"),
            (Method::PATCH, patch.clone(), json!({}), "Amount"),
            (Method::PATCH, patch.clone(), json!({"Frequency": "Weekly"}), "Frequency"),
            (Method::PATCH, patch.clone(), json!({"Amount": "150", "CollectionDay": 40}), "CollectionDay"),
            (Method::POST, format!("{patch}/Pause"), json!({"Until": today.to_string()}), "Until"),
            (Method::POST, format!("{patch}/Pause"), json!({"Until": "next month"}), "Until"),
            (Method::POST, format!("{patch}/Pause"), json!({}), "Until"),
            (Method::POST, format!("{patch}/Resume"), json!({}), "Id"),
            (Method::POST, format!("{patch}/Cancel"), json!({"Reason": "x".repeat(256)}), "Reason"),
        ];
        for (method, path, body, field) in cases {
            let response = send(method.clone(), path.clone(), body.clone()).await.unwrap();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{method} {path} {body}");
            let answer: Value = response.json().await.unwrap();
            assert!(
                answer["Errors"].as_array().is_some_and(|e| e.iter().any(|e| e["field"] == field)),
                "{method} {path} {body}: {answer}"
            );
        }
        let after = app.v2_get(&vipps, &format!("/v2/Recurring/{recurring_id}")).await;
        assert_eq!(after, before, "a refused change changed the recurring payment");
        let agreement = client.recurring().get_agreement(&agreement_id).await.unwrap();
        assert_eq!(agreement.pricing.amount, Some(10000), "the price at Vipps is unchanged");
        assert_eq!(scalar(&app, "SELECT COUNT(*) FROM recurring_changes").await, 0);
    }
}

// ---------------------------------------------------------------------------------------------------------
// 5. The CLI

fn payhub(app: &TestApp, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_payhub"));
    command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    command
        .env("PAYHUB_DATA_DIR", app.data_dir.path())
        .env("PAYHUB_DATABASE_URL", &app.database_url)
        .env("PAYHUB_MASTER_KEY", &app.master_key)
        .env("PAYHUB_VIPPS_TIMEOUT_MS", "5000")
        .env("RUST_LOG", "warn")
        .args(args);
    command
}

/// Runs the binary off the runtime's threads (the simulator and payhub answer it from them).
async fn run_cli(mut command: Command) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(b"").unwrap();
        let output = child.wait_with_output().unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

on_both_backends! {
    async fn the_cli_runs_and_lists_beats_and_cancels_agreements(app) {
        let vipps = app.with_vipps().await;
        let client = sim_client(&vipps);
        let (_, recurring_id, mandate_id, agreement_id) =
            active_recurring(&app, &vipps, &recurring_intent(today(&app), "120")).await;

        let (code, out, err) = run_cli(payhub(&app, &["heartbeat", "list"])).await;
        assert_eq!(code, 0, "{err}");
        for beat in ["recurring.collect", "recurring.generate_installments", "vipps.sync_recurring", "vipps.sync_payments"] {
            let line = out.lines().find(|l| l.starts_with(beat)).unwrap_or_else(|| panic!("{beat} in {out}"));
            assert!(line.contains("never run"), "{line}");
        }

        // Every beat, run now: each prints its outcome; the collect beat charges the installment.
        let (code, out, err) = run_cli(payhub(&app, &["heartbeat", "run"])).await;
        assert_eq!(code, 0, "{out}\n{err}");
        for beat in ["recurring.collect", "recurring.generate_installments", "vipps.sync_recurring", "vipps.sync_payments", "vipps.register_webhooks"] {
            let line = out.lines().find(|l| l.starts_with(beat)).unwrap_or_else(|| panic!("{beat} in {out}"));
            assert!(line.contains("succeeded"), "{line}");
        }
        assert_eq!(installments(&app, &vipps, &recurring_id).await[0]["Status"], "Pending");
        assert_eq!(charges_at_vipps(&client, &agreement_id).await.len(), 1);
        let (code, out, _) = run_cli(payhub(&app, &["heartbeat", "list"])).await;
        assert_eq!(code, 0);
        let line = out.lines().find(|l| l.starts_with("recurring.collect")).unwrap();
        assert!(line.contains("succeeded"), "{line}");
        // One beat by name; an unknown name is an error.
        let (code, out, err) = run_cli(payhub(&app, &["heartbeat", "run", "recurring.generate_installments"])).await;
        assert_eq!(code, 0, "{err}");
        assert_eq!(out.lines().count(), 1, "{out}");
        let (code, _, err) = run_cli(payhub(&app, &["heartbeat", "run", "no.such.beat"])).await;
        assert_ne!(code, 0);
        assert!(err.contains("no.such.beat"), "{err}");

        // Bad input to the recurring commands: refused with a message, nothing changed.
        for (args, needle) in [
            (vec!["recurring", "show", "rp_unknown"], "No such"),
            (vec!["recurring", "change-amount", &recurring_id, "0.50"], "Amount"),
            (vec!["recurring", "change-amount", &recurring_id, "lots"], "amount"),
            (vec!["recurring", "change-day", &recurring_id, "32"], "CollectionDay"),
            (vec!["recurring", "pause", &recurring_id, "--until", "soon"], "--until"),
            (vec!["recurring", "resume", &recurring_id], "not paused"),
        ] {
            let (code, out, err) = run_cli(payhub(&app, &args)).await;
            assert_ne!(code, 0, "{args:?}: {out}");
            assert!(err.contains(needle), "{args:?}: {err}");
        }
        let (code, out, err) = run_cli(payhub(&app, &["recurring", "show", &recurring_id])).await;
        assert_eq!(code, 0, "{err}");
        let shown: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(shown["Amount"], json!(120.0), "{shown}");
        assert_eq!(shown["Status"], "Active", "{shown}");

        // Cancel Vipps Agreement: unknown ids, missing flags, then the real one.
        let (code, out, _) = run_cli(payhub(&app, &["agreements", "cancel", "--agreement-id", "agr_unknown"])).await;
        assert_eq!(code, 1, "{out}");
        let answer: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(answer["IsSuccess"], false);
        assert!(answer["Message"].as_str().unwrap().contains("agr_unknown"), "{answer}");
        let (code, out, _) = run_cli(payhub(&app, &["agreements", "cancel", "--mandate-id", &agreement_id])).await;
        assert_eq!(code, 1, "an agreement id is not a mandate id: {out}");
        let (code, _, err) = run_cli(payhub(&app, &["agreements", "cancel"])).await;
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("--mandate-id") && err.contains("--agreement-id"), "{err}");
        let (code, _, err) =
            run_cli(payhub(&app, &["agreements", "cancel", "--mandate-id", &mandate_id, "--agreement-id", &agreement_id])).await;
        assert_eq!(code, 2, "{err}");
        assert_eq!(app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await["Status"], "Active");

        let (code, out, err) = run_cli(payhub(&app, &["agreements", "cancel", "--agreement-id", &agreement_id])).await;
        assert_eq!(code, 0, "{out}\n{err}");
        let answer: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(answer["IsSuccess"], true, "{answer}");
        assert_eq!(app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await["Status"], "Cancelled");
        let agreement = client.recurring().get_agreement(&agreement_id).await.unwrap();
        assert_eq!(agreement.status, vipps_client::recurring::AgreementStatus::Stopped);
        let list = installments(&app, &vipps, &recurring_id).await;
        assert!(list.iter().all(|i| i["Status"] == "Cancelled"), "{list:?}");
        // Again: Vipps refuses (already stopped), exit 1 with Vipps' message.
        let (code, out, _) = run_cli(payhub(&app, &["agreements", "cancel", "--mandate-id", &mandate_id])).await;
        assert_eq!(code, 1, "{out}");
        let answer: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(answer["IsSuccess"], false, "{answer}");
        assert!(answer["Message"].as_str().is_some_and(|m| !m.is_empty()), "{answer}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// 6. The admin API's beats

on_both_backends! {
    async fn the_admin_api_runs_the_recurring_beats_now_and_shows_their_last_run(app) {
        let vipps = app.with_vipps().await;
        let client = sim_client(&vipps);
        let (_, recurring_id, _, agreement_id) =
            active_recurring(&app, &vipps, &recurring_intent(today(&app), "130")).await;
        for beat in ["recurring.generate_installments", "recurring.collect"] {
            let response = app.admin(Method::POST, &format!("/admin/api/beats/{beat}/run")).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::ACCEPTED, "{beat}");
            let run_id = response.json::<Value>().await.unwrap()["run_id"].as_str().unwrap().to_owned();
            app.state.jobs.run_until_idle().await.unwrap();
            let beats: Value = app.admin(Method::GET, "/admin/api/beats").send().await.unwrap().json().await.unwrap();
            assert!(beats["beats"].as_array().unwrap().iter().any(|b| b["name"] == beat), "{beats}");
            let run = beats["runs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["id"] == run_id.as_str())
                .unwrap_or_else(|| panic!("run {run_id} in {beats}"))
                .clone();
            assert_eq!(run["beat"], beat, "{run}");
            assert_eq!(run["status"], "succeeded", "{run}");
            assert_eq!(run["trigger"], "manual", "{run}");
            assert!(run["started_at"].is_string(), "{run}");
            // The newest run of the beat is this one.
            let newest = beats["runs"].as_array().unwrap().iter().find(|r| r["beat"] == beat).unwrap();
            assert_eq!(newest["id"], run_id.as_str(), "{beats}");
        }
        assert_eq!(installments(&app, &vipps, &recurring_id).await[0]["Status"], "Pending");
        assert_eq!(charges_at_vipps(&client, &agreement_id).await.len(), 1);

        // Unknown beat → 404; only admins may run beats.
        let response = app.admin(Method::POST, "/admin/api/beats/no.such.beat/run").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let finance = app.key(payhub::domain::role::Role::Finance).await;
        let response = app.http.post(app.url("/admin/api/beats/recurring.collect/run")).bearer_auth(&finance).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let response = app.http.post(app.url("/admin/api/beats/recurring.collect/run")).bearer_auth(&vipps.integrator_key).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
}
