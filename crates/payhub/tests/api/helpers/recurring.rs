//! Recurring payments through the Payment API: a monthly intent, the agreement accepted in the simulator, the
//! days passing on the simulator's clock with payhub's beats, and the recurring payment, its installments and
//! each installment read back (`GET /v2/Recurring/{id}`, `GET /v2/Installment/{id}`).

use chrono::NaiveDate;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{TestApp, Vipps};

/// payhub's today (it follows the simulator's clock).
pub fn today(app: &TestApp) -> NaiveDate {
    app.state.payments.today()
}

/// A monthly recurring intent starting `start`.
pub fn recurring_intent(start: NaiveDate, amount: &str) -> Value {
    json!({"SuccessURL": "https://example.org/thanks", "FailureURL": "https://example.org/sorry",
           "Payer": {"Contact": {"SalesforceFields": {"FirstName": "Kari", "LastName": "Nordmann", "Email": "kari@example.org"}}},
           "Recurring": {"Amount": amount, "Frequency": "Monthly", "StartDate": start.to_string()},
           "PaymentMethod": {"Name": "Vipps", "Processor": "PayHub-Vipps",
                             "Parameters": {"mobileNumber": "91234567", "TransactionText": "Monthly gift"}}})
}

/// Creates a recurring intent, accepts the agreement in the simulator and brings the mandate to Active.
/// Returns (intent answer, recurring id, mandate id, agreement id).
pub async fn active_recurring(app: &TestApp, vipps: &Vipps, body: &Value) -> (Value, String, String, String) {
    let (status, created) = app.intent(vipps, body).await;
    assert_eq!(status, 200, "{created}");
    let recurring_id = created["Recurring"]["Id"].as_str().expect("recurring id").to_owned();
    let mandate_id = created["Recurring"]["Mandate"]["Id"].as_str().expect("mandate id").to_owned();
    let agreement_id = created["Recurring"]["Mandate"]["MandateId"].as_str().expect("agreement id").to_owned();
    assert_eq!(vipps.control(&format!("/_sim/agreements/{agreement_id}/accept"), json!({})).await, 200);
    app.state.payments.sync_agreement(&mandate_id, None).await.expect("sync agreement");
    let mandate = app.v2_get(vipps, &format!("/v2/Mandate/{mandate_id}")).await;
    assert_eq!(mandate["Status"], "Active", "{mandate}");
    (created, recurring_id, mandate_id, agreement_id)
}

/// Brings `count` recurring payments of 100 kr starting today to Active, each with its first installment
/// Outstanding. Returns (recurring id, agreement id) of each.
pub async fn active_many(app: &TestApp, vipps: &Vipps, count: usize) -> Vec<(String, String)> {
    let start = today(app);
    let mut out = Vec::new();
    for _ in 0..count {
        let (_, recurring_id, _, agreement_id) = active_recurring(app, vipps, &recurring_intent(start, "100")).await;
        out.push((recurring_id, agreement_id));
    }
    out
}

/// Advances the simulator's clock by `days` and runs payhub's recurring beats (poll, generate, collect).
pub async fn days_pass(app: &TestApp, vipps: &Vipps, days: i64) {
    vipps.sim.advance(days * 86_400).await;
    let payments = &app.state.payments;
    payments.sync_recurring(1000).await.expect("sync");
    payments.generate_installments().await.expect("generate");
    payments.collect_recurring().await.expect("collect");
}

/// A Payment API request with the integrator key; answers (status, JSON body or `null`).
pub async fn call(app: &TestApp, vipps: &Vipps, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
    let response = app
        .http
        .request(method, app.url(path))
        .bearer_auth(&vipps.integrator_key)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `GET /v2/Recurring/{id}`.
pub async fn recurring(app: &TestApp, vipps: &Vipps, id: &str) -> Value {
    app.v2_get(vipps, &format!("/v2/Recurring/{id}")).await
}

/// `GET /v2/Mandate/{id}` (a mandate id or the Vipps agreement id).
pub async fn mandate(app: &TestApp, vipps: &Vipps, id: &str) -> Value {
    app.v2_get(vipps, &format!("/v2/Mandate/{id}")).await
}

/// The installments listed in a recurring payment's or a mandate's answer (each with its `ChargeStatus`).
pub fn installments_in(body: &Value) -> Vec<Value> {
    body["Installments"].as_array().cloned().unwrap_or_default()
}

/// The installments of a recurring payment, as `GET /v2/Recurring/{id}` lists them; panics when it lists none.
pub async fn installments(app: &TestApp, vipps: &Vipps, recurring_id: &str) -> Vec<Value> {
    let body = recurring(app, vipps, recurring_id).await;
    body["Installments"].as_array().cloned().unwrap_or_else(|| panic!("installments in {body}"))
}

/// `GET /v2/Installment/{id}`: one installment with its Payments.
pub async fn installment(app: &TestApp, vipps: &Vipps, id: &str) -> Value {
    app.v2_get(vipps, &format!("/v2/Installment/{id}")).await
}

/// The `Id` of an installment (or any record) in an answer.
pub fn id_of(record: &Value) -> &str {
    record["Id"].as_str().unwrap_or_else(|| panic!("an Id in {record}"))
}

/// Processes queued jobs (webhooks arriving in the background) until `done` holds; panics after ten seconds.
pub async fn settle_until<F, Fut>(app: &TestApp, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        app.state.jobs.run_until_idle().await.expect("jobs");
        if done().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the expected state never came");
}

/// Every charge payhub recorded for each of `agreements` exists at Vipps once and Vipps holds no other; and the
/// schema's exactly-once rules hold (one charge per installment, one installment per period, at most one Payment
/// per installment).
pub async fn assert_one_charge_per_installment(app: &TestApp, vipps: &Vipps, agreements: &[String]) {
    for agreement in agreements {
        let at_vipps = super::vipps::charge_ids_at_vipps(vipps, agreement).await;
        let recorded = super::storage::charge_ids(app, agreement).await;
        let distinct: std::collections::BTreeSet<&String> = at_vipps.iter().collect();
        assert_eq!(distinct.len(), at_vipps.len(), "a charge id twice at Vipps for {agreement}: {at_vipps:?}");
        assert_eq!(at_vipps, recorded, "Vipps and payhub disagree on the charges of {agreement}");
    }
    super::storage::assert_one_row_per_installment(app).await;
}
