//! Recurring payments end to end against vipps-sim, driving its virtual clock: agreement → mandate Active →
//! installments on schedule → charges → Collected.

use chrono::{Days, NaiveDate};
use serde_json::{json, Value};

use crate::helpers::{TestApp, Vipps};
use crate::on_both_backends;

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

/// Advances the simulator's clock by `days` and runs payhub's recurring beats (poll, generate, collect).
pub async fn days_pass(app: &TestApp, vipps: &Vipps, days: i64) {
    vipps.sim.advance(days * 86_400).await;
    let payments = &app.state.payments;
    payments.sync_recurring(1000).await.expect("sync");
    payments.generate_installments().await.expect("generate");
    payments.collect_recurring().await.expect("collect");
}

on_both_backends! {
    async fn accept_then_monthly_installments_are_charged_and_collected(app) {
        let vipps = app.with_vipps().await;
        let start = today(&app);
        let (created, recurring_id, _mandate_id, _agreement_id) =
            active_recurring(&app, &vipps, &recurring_intent(start, "150")).await;
        assert_eq!(created["Status"], "Matched");
        assert!(created["RedirectURL"].as_str().is_some_and(|u| u.contains("/landing?token=")), "{created}");

        // The first installment is generated on activation and charged by the collect beat.
        app.state.payments.collect_recurring().await.expect("collect");
        let recurring = app.v2_get(&vipps, &format!("/v2/Recurring/{recurring_id}")).await;
        let installments = recurring["Installments"].as_array().expect("installments").clone();
        assert_eq!(installments.len(), 1, "{recurring}");
        assert_eq!(installments[0]["Status"], "Pending");
        assert_eq!(installments[0]["DueDate"], start.to_string());
        assert_eq!(installments[0]["Amount"], json!(150.0));

        // Vipps processes the charge on its due date (tomorrow at the earliest).
        days_pass(&app, &vipps, 2).await;
        let first = app.v2_get(&vipps, &format!("/v2/Installment/{}", installments[0]["Id"].as_str().unwrap_or_default())).await;
        assert_eq!(first["Status"], "Collected", "{first}");
        assert_eq!(first["Payments"].as_array().map(Vec::len), Some(1));
        assert_eq!(first["Payments"][0]["AmountOre"], 15000);

        // A month later, the next one.
        days_pass(&app, &vipps, 28).await;
        days_pass(&app, &vipps, 3).await;
        let recurring = app.v2_get(&vipps, &format!("/v2/Recurring/{recurring_id}")).await;
        let installments = recurring["Installments"].as_array().expect("installments").clone();
        assert!(installments.len() >= 2, "{recurring}");
        let second = &installments[1];
        assert_eq!(second["DueDate"], start.checked_add_months(chrono::Months::new(1)).map(|d| d.to_string()).unwrap_or_default());
        assert_eq!(second["Status"], "Collected", "{recurring}");
        let _ = Days::new(1);
    }
}
