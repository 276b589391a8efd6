//! Recurring payments end to end against vipps-sim, driving its virtual clock: agreement → mandate Active →
//! installments on schedule → charges → Collected.

use chrono::{Datelike, Days, Months, NaiveDate};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Row;

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
    }
}

// -------------------------------------------------------------------------------------------------------------
// The lifecycle: failures, stops, cancellation, initial charge, pause, changes, refunds.

/// A request with the integrator key; answers (status, JSON body or `null`).
async fn call(app: &TestApp, vipps: &Vipps, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
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
async fn recurring(app: &TestApp, vipps: &Vipps, id: &str) -> Value {
    app.v2_get(vipps, &format!("/v2/Recurring/{id}")).await
}

/// The installments of a recurring payment or mandate answer.
fn installments(body: &Value) -> Vec<Value> {
    body["Installments"].as_array().cloned().unwrap_or_default()
}

/// `GET /v2/Installment/{id}`.
async fn installment(app: &TestApp, vipps: &Vipps, id: &Value) -> Value {
    app.v2_get(vipps, &format!("/v2/Installment/{}", id.as_str().unwrap_or_default())).await
}

/// A Vipps client with the simulator merchant's own credentials: what Vipps itself holds.
fn vipps_api(vipps: &Vipps) -> vipps_client::Client {
    let merchant = vipps.sim.merchants()[0].clone();
    let credentials = vipps_client::Credentials {
        client_id: merchant.client_id,
        client_secret: vipps_client::Secret::new(merchant.client_secret),
        subscription_key: vipps_client::Secret::new(merchant.subscription_key),
        msn: vipps_client::Msn::parse(&merchant.msn).expect("msn"),
    };
    let system = vipps_client::SystemInfo {
        name: "payhub-tests".into(),
        version: "1".into(),
        plugin_name: "payhub-tests".into(),
        plugin_version: "1".into(),
    };
    let base = url::Url::parse(&vipps.sim.base_url()).expect("simulator url");
    vipps_client::Client::new(vipps_client::ClientConfig::new(
        vipps_client::Environment::Custom(base),
        credentials,
        system,
    ))
    .expect("vipps client")
}

/// Every charge of an agreement at Vipps.
async fn vipps_charges(vipps: &Vipps, agreement_id: &str) -> Vec<vipps_client::recurring::Charge> {
    vipps_api(vipps).recurring().list_charges(agreement_id, None, None).await.expect("charges at Vipps").items
}

/// A number from the database.
async fn scalar(app: &TestApp, sql: &str, bind: &str) -> i64 {
    let mut conn = app.state.store.pool_for_tests().acquire().await.expect("connection");
    sqlx::query(sql).bind(bind).fetch_one(&mut *conn).await.expect("query").try_get::<i64, _>(0).expect("number")
}

/// The first day of the month `months` after today's.
fn first_of_month_after(day: NaiveDate, months: u32) -> NaiveDate {
    day.with_day(1).and_then(|d| d.checked_add_months(Months::new(months))).expect("a date")
}

on_both_backends! {
    async fn a_charge_that_keeps_failing_fails_its_installment_with_the_vipps_reason_after_the_retry_days(app) {
        let vipps = app.with_vipps().await;
        let start = today(&app);
        let (_, recurring_id, _mandate_id, agreement_id) =
            active_recurring(&app, &vipps, &recurring_intent(start, "150")).await;
        let failing = vipps
            .control(&format!("/_sim/agreements/{agreement_id}/fail-next-charge"), json!({"reason": "user_action_required"}))
            .await;
        assert_eq!(failing, StatusCode::NO_CONTENT);
        app.state.payments.collect_recurring().await.expect("collect");
        let first = installments(&recurring(&app, &vipps, &recurring_id).await)[0].clone();
        assert_eq!(first["Status"], "Pending", "{first}");
        let charge = vipps_charges(&vipps, &agreement_id).await.remove(0);
        assert_eq!(charge.retry_days, 3, "the account's RetryDays reach Vipps");
        let due = charge.due;

        // Vipps tries on the due date and on each of the 3 retry days; until the last one, still Pending.
        days_pass(&app, &vipps, 3).await;
        assert!(today(&app) < due + Days::new(3));
        let waiting = installment(&app, &vipps, &first["Id"]).await;
        assert_eq!(waiting["Status"], "Pending", "still retrying: {waiting}");
        assert!(waiting["StatusReason"].is_null(), "{waiting}");

        days_pass(&app, &vipps, 1).await;
        assert!(today(&app) >= due + Days::new(3));
        let failed = installment(&app, &vipps, &first["Id"]).await;
        assert_eq!(failed["Status"], "Failed", "{failed}");
        let reason = failed["StatusReason"].as_str().unwrap_or_default();
        assert!(reason.contains("user action required"), "Vipps' reason in StatusReason: {reason}");
        assert_eq!(failed["Payments"].as_array().map(Vec::len), Some(0), "no money, no Payment");
        let listed = installments(&recurring(&app, &vipps, &recurring_id).await);
        assert_eq!(listed[0]["ChargeStatus"], "FAILED", "{listed:?}");

        // One failed charge does not end the agreement: next month is charged as usual.
        let recurring_now = recurring(&app, &vipps, &recurring_id).await;
        assert_eq!(recurring_now["Status"], "Active", "{recurring_now}");
        assert_eq!(recurring_now["Mandate"]["Active"], true);
        days_pass(&app, &vipps, 27).await;
        days_pass(&app, &vipps, 3).await;
        let listed = installments(&recurring(&app, &vipps, &recurring_id).await);
        let second_due = start.checked_add_months(Months::new(1)).map(|d| d.to_string()).unwrap_or_default();
        assert_eq!(listed[1]["DueDate"], second_due, "{listed:?}");
        assert_eq!(listed[1]["Status"], "Collected", "{listed:?}");
    }

    async fn a_payer_stopping_the_agreement_in_the_app_ends_the_recurring_payment_and_stops_charging(app) {
        let vipps = app.with_vipps().await;
        let start = today(&app);
        let (_, recurring_id, mandate_id, agreement_id) =
            active_recurring(&app, &vipps, &recurring_intent(start, "150")).await;
        app.state.payments.collect_recurring().await.expect("collect");
        let first = installments(&recurring(&app, &vipps, &recurring_id).await)[0].clone();
        assert_eq!(first["ChargeStatus"], "PENDING", "{first}");

        assert_eq!(vipps.control(&format!("/_sim/agreements/{agreement_id}/stop"), json!({})).await, StatusCode::OK);
        app.state.payments.sync_agreement(&mandate_id, None).await.expect("sync");

        let mandate = app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await;
        assert_eq!(mandate["Status"], "Stopped", "{mandate}");
        assert_eq!(mandate["Active"], false);
        assert_eq!(mandate["VippsStatus"], "STOPPED");
        let ended = recurring(&app, &vipps, &recurring_id).await;
        assert_eq!(ended["Status"], "Ended", "{ended}");
        assert!(ended["StatusReason"].as_str().is_some_and(|r| r.contains("stopped")), "{ended}");
        let listed = installments(&ended);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0]["Status"], "Cancelled", "{listed:?}");
        assert_eq!(listed[0]["ChargeStatus"], "CANCELLED", "Vipps cancelled the pending charge: {listed:?}");

        // Two months of beats: nothing new is generated, nothing charged.
        for _ in 0..4 {
            days_pass(&app, &vipps, 16).await;
        }
        let later = recurring(&app, &vipps, &recurring_id).await;
        assert_eq!(installments(&later).len(), 1, "no installment after the stop: {later}");
        assert_eq!(later["Status"], "Ended");
        let charges = vipps_charges(&vipps, &agreement_id).await;
        assert_eq!(charges.len(), 1, "no charge sent after the stop");
        let mandate = app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await;
        assert!(installments(&mandate).iter().all(|i| i["Status"] == "Cancelled"), "{mandate}");
    }

    async fn cancel_vipps_agreement_by_mandate_or_agreement_id_stops_it_and_cancels_everything_open(app) {
        let vipps = app.with_vipps().await;
        let cancel = |body: Value| call(&app, &vipps, Method::POST, "/v2/actions/CancelVippsAgreement", body);
        for by_mandate in [true, false] {
            let (_, recurring_id, mandate_id, agreement_id) =
                active_recurring(&app, &vipps, &recurring_intent(today(&app), "150")).await;
            app.state.payments.collect_recurring().await.expect("collect");
            let first = installments(&recurring(&app, &vipps, &recurring_id).await)[0].clone();
            assert_eq!(first["ChargeStatus"], "PENDING", "{first}");

            let body = if by_mandate { json!({"MandateId": mandate_id}) } else { json!({"AgreementId": agreement_id}) };
            let (status, answer) = cancel(body.clone()).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            assert_eq!(answer["IsSuccess"], true, "{answer}");
            assert!(answer["Message"].as_str().is_some_and(|m| !m.is_empty()), "{answer}");

            let mandate = app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await;
            assert_eq!(mandate["Status"], "Cancelled", "{mandate}");
            assert_eq!(mandate["Active"], false);
            let cancelled = recurring(&app, &vipps, &recurring_id).await;
            assert_eq!(cancelled["Status"], "Cancelled", "{cancelled}");
            let listed = installments(&cancelled);
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0]["Status"], "Cancelled", "{listed:?}");
            assert_eq!(listed[0]["ChargeStatus"], "CANCELLED", "{listed:?}");
            let at_vipps = vipps_api(&vipps).recurring().get_agreement(&agreement_id).await.expect("agreement");
            assert_eq!(at_vipps.status, vipps_client::recurring::AgreementStatus::Stopped);
            assert!(vipps_charges(&vipps, &agreement_id)
                .await
                .iter()
                .all(|c| c.status == vipps_client::recurring::ChargeStatus::Cancelled));

            // Again: Vipps refuses, and says why.
            let (status, again) = cancel(body).await;
            assert_eq!(status, StatusCode::OK, "{again}");
            assert_eq!(again["IsSuccess"], false, "{again}");
            let message = again["Message"].as_str().unwrap_or_default();
            assert!(message.contains("STOPPED") && message.contains("cannot be updated"), "Vipps' own message: {message}");
            let mandate = app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await;
            assert_eq!(mandate["Status"], "Cancelled", "a refused repeat changes nothing: {mandate}");

            // Nothing is charged afterwards.
            days_pass(&app, &vipps, 35).await;
            assert_eq!(installments(&recurring(&app, &vipps, &recurring_id).await).len(), 1);
            assert_eq!(vipps_charges(&vipps, &agreement_id).await.len(), 1);
        }

        // Bad requests answer IsSuccess false and write nothing.
        let changes_before = scalar(&app, "SELECT COUNT(*) FROM recurring_changes WHERE id <> $1", "").await;
        let (_, _, mandate_id, agreement_id) =
            active_recurring(&app, &vipps, &recurring_intent(today(&app), "150")).await;
        for (body, expected) in [
            (json!({"MandateId": mandate_id, "AgreementId": agreement_id}), StatusCode::BAD_REQUEST),
            (json!({}), StatusCode::BAD_REQUEST),
            (json!({"MandateId": "  "}), StatusCode::BAD_REQUEST),
            (json!({"MandateId": mandate_id, "Force": true}), StatusCode::BAD_REQUEST),
            (json!({"MandateId": "mdt_unknown"}), StatusCode::NOT_FOUND),
            (json!({"AgreementId": "agr_unknown"}), StatusCode::NOT_FOUND),
            (json!({"MandateId": agreement_id}), StatusCode::NOT_FOUND),
            (json!({"AgreementId": mandate_id}), StatusCode::NOT_FOUND),
        ] {
            let (status, answer) = cancel(body.clone()).await;
            assert_eq!(status, expected, "{body} → {answer}");
            assert_eq!(answer["IsSuccess"], false, "{body} → {answer}");
            assert!(answer["Message"].as_str().is_some_and(|m| !m.is_empty()), "{body} → {answer}");
        }
        let changes_after = scalar(&app, "SELECT COUNT(*) FROM recurring_changes WHERE id <> $1", "").await;
        assert_eq!(changes_after, changes_before, "a refused request records no change");
        let mandate = app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await;
        assert_eq!(mandate["Status"], "Active", "{mandate}");
    }

    async fn an_initial_charge_is_collected_when_the_agreement_is_accepted(app) {
        let vipps = app.with_vipps().await;
        let start = today(&app).checked_add_days(Days::new(10)).expect("date");
        let mut body = recurring_intent(start, "150");
        body["OneTime"] = json!({"Amount": "50"});
        let (created, recurring_id, mandate_id, agreement_id) = active_recurring(&app, &vipps, &body).await;
        let initial_id = created["OneTime"]["Id"].clone();
        assert!(initial_id.as_str().is_some_and(|id| id.starts_with("ins")), "{created}");

        let initial = installment(&app, &vipps, &initial_id).await;
        assert_eq!(initial["Status"], "Collected", "{initial}");
        assert_eq!(initial["Amount"], json!(50.0));
        let payments = initial["Payments"].as_array().cloned().unwrap_or_default();
        assert_eq!(payments.len(), 1, "{initial}");
        assert_eq!(payments[0]["AmountOre"], 5000);
        let mandate = app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await;
        assert_eq!(mandate["InitialInstallmentId"], initial_id);

        // The recurring amount is charged separately, from the Start Date.
        let listed = installments(&recurring(&app, &vipps, &recurring_id).await);
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0]["DueDate"], start.to_string());
        assert_eq!(listed[0]["Amount"], json!(150.0));
        let charges = vipps_charges(&vipps, &agreement_id).await;
        assert_eq!(charges.len(), 1, "only the initial charge so far");
        assert_eq!(charges[0].amount, 5000);
    }

    async fn pausing_cancels_what_falls_due_and_charges_nothing_until_resumed(app) {
        let vipps = app.with_vipps().await;
        let start = today(&app);
        let (_, recurring_id, _mandate_id, agreement_id) =
            active_recurring(&app, &vipps, &recurring_intent(start, "150")).await;
        app.state.payments.collect_recurring().await.expect("collect");
        let first = installments(&recurring(&app, &vipps, &recurring_id).await)[0].clone();
        assert_eq!(first["ChargeStatus"], "PENDING", "{first}");
        let pause_path = format!("/v2/Recurring/{recurring_id}/Pause");
        let pause = |until: Value| call(&app, &vipps, Method::POST, &pause_path, json!({"Until": until}));

        // Until must be after today.
        for until in [start.to_string(), (start - Days::new(1)).to_string(), "tomorrow".into()] {
            let (status, refused) = pause(json!(until)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{until}: {refused}");
        }
        assert_eq!(recurring(&app, &vipps, &recurring_id).await["Status"], "Active");

        // Paused past the second due date.
        let second_due = start.checked_add_months(Months::new(1)).expect("date");
        let until = second_due + Days::new(5);
        let (status, paused) = pause(json!(until.to_string())).await;
        assert_eq!(status, StatusCode::OK, "{paused}");
        assert_eq!(paused["Status"], "Paused");
        assert_eq!(paused["PausedUntil"], until.to_string());
        let listed = installments(&paused);
        assert_eq!(listed[0]["Status"], "Cancelled", "due before Until: {listed:?}");
        assert_eq!(listed[0]["ChargeStatus"], "CANCELLED", "{listed:?}");
        let at_vipps = vipps_charges(&vipps, &agreement_id).await;
        assert_eq!(at_vipps.len(), 1);
        assert_eq!(at_vipps[0].status, vipps_client::recurring::ChargeStatus::Cancelled, "cancelled at Vipps too");

        // A week of beats while paused: nothing charged.
        for _ in 0..7 {
            days_pass(&app, &vipps, 1).await;
        }
        let still = recurring(&app, &vipps, &recurring_id).await;
        assert_eq!(still["Status"], "Paused", "{still}");
        let third_due = start.checked_add_months(Months::new(2)).map(|d| d.to_string()).unwrap_or_default();
        assert_eq!(still["NextCollectionDate"], third_due, "the first date after the pause: {still}");
        assert!(installments(&still).iter().all(|i| i["Status"] != "Pending" && i["Status"] != "Collected"), "{still}");
        assert_eq!(vipps_charges(&vipps, &agreement_id).await.len(), 1, "no charge while paused");

        // Resumed before the second due date: that one is collected after all.
        let (status, resumed) =
            call(&app, &vipps, Method::POST, &format!("/v2/Recurring/{recurring_id}/Resume"), json!({})).await;
        assert_eq!(status, StatusCode::OK, "{resumed}");
        assert_eq!(resumed["Status"], "Active");
        assert!(resumed["PausedUntil"].is_null(), "{resumed}");
        let (status, again) =
            call(&app, &vipps, Method::POST, &format!("/v2/Recurring/{recurring_id}/Resume"), json!({})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "not paused any more: {again}");
        let days_left = (second_due - today(&app)).num_days();
        days_pass(&app, &vipps, days_left - 2).await;
        days_pass(&app, &vipps, 3).await;
        let listed = installments(&recurring(&app, &vipps, &recurring_id).await);
        let second: Vec<&Value> = listed.iter().filter(|i| i["DueDate"] == second_due.to_string()).collect();
        assert_eq!(second.len(), 1, "{listed:?}");
        assert_eq!(second[0]["Status"], "Collected", "{listed:?}");
    }

    async fn a_pause_that_runs_out_skips_the_periods_inside_it_and_collects_the_next(app) {
        let vipps = app.with_vipps().await;
        let start = today(&app);
        let (_, recurring_id, _mandate_id, agreement_id) =
            active_recurring(&app, &vipps, &recurring_intent(start, "150")).await;
        app.state.payments.collect_recurring().await.expect("collect");
        let second_due = start.checked_add_months(Months::new(1)).expect("date");
        let third_due = start.checked_add_months(Months::new(2)).expect("date");
        let until = second_due + Days::new(5);
        let (status, paused) = call(&app, &vipps, Method::POST, &format!("/v2/Recurring/{recurring_id}/Pause"), json!({"Until": until.to_string()})).await;
        assert_eq!(status, StatusCode::OK, "{paused}");

        // Day by day through the pause: the second period is never charged.
        while today(&app) < until {
            days_pass(&app, &vipps, 1).await;
        }
        days_pass(&app, &vipps, 1).await;
        let after = recurring(&app, &vipps, &recurring_id).await;
        assert_eq!(after["Status"], "Active", "the pause ran out: {after}");
        assert!(after["PausedUntil"].is_null(), "{after}");
        assert!(installments(&after).iter().all(|i| i["DueDate"] != second_due.to_string()), "skipped while paused: {after}");
        assert_eq!(vipps_charges(&vipps, &agreement_id).await.len(), 1, "nothing charged while paused");

        // The third period is collected.
        let days_left = (third_due - today(&app)).num_days();
        days_pass(&app, &vipps, days_left - 2).await;
        days_pass(&app, &vipps, 3).await;
        let listed = installments(&recurring(&app, &vipps, &recurring_id).await);
        let third: Vec<&Value> = listed.iter().filter(|i| i["DueDate"] == third_due.to_string()).collect();
        assert_eq!(third.len(), 1, "{listed:?}");
        assert_eq!(third[0]["Status"], "Collected", "{listed:?}");
    }

    async fn amount_and_collection_day_changes_reach_vipps_and_the_installments_and_are_recorded(app) {
        let vipps = app.with_vipps().await;
        let start = first_of_month_after(today(&app), 2);
        let (_, recurring_id, mandate_id, agreement_id) =
            active_recurring(&app, &vipps, &recurring_intent(start, "150")).await;
        let first = installments(&recurring(&app, &vipps, &recurring_id).await)[0].clone();
        assert_eq!(first["Status"], "Outstanding", "not charged yet: {first}");
        assert_eq!(first["DueDate"], start.to_string());
        let path = format!("/v2/Recurring/{recurring_id}");
        let patch = |body: Value| call(&app, &vipps, Method::PATCH, &path, body);

        // The amount.
        let (status, changed) = patch(json!({"Amount": 200})).await;
        assert_eq!(status, StatusCode::OK, "{changed}");
        assert_eq!(changed["Amount"], json!(200.0));
        assert_eq!(installments(&changed)[0]["Amount"], json!(200.0), "{changed}");
        let at_vipps = vipps_api(&vipps).recurring().get_agreement(&agreement_id).await.expect("agreement");
        assert_eq!(at_vipps.pricing.amount, Some(20000), "the price at Vipps");
        let mandate = app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await;
        assert_eq!(mandate["Price"], json!(200.0), "{mandate}");

        // The Collection Day.
        let (status, changed) = patch(json!({"CollectionDay": 15})).await;
        assert_eq!(status, StatusCode::OK, "{changed}");
        assert_eq!(changed["CollectionDay"], 15);
        let moved = start.with_day(15).expect("date");
        assert_eq!(installments(&changed)[0]["DueDate"], moved.to_string(), "{changed}");
        assert_eq!(changed["NextCollectionDate"], moved.checked_add_months(Months::new(1)).map(|d| d.to_string()).unwrap_or_default());

        // Bad changes are refused and change nothing.
        for body in [json!({}), json!({"Amount": 0.5}), json!({"CollectionDay": 32}), json!({"Amount": 100, "Frequency": "Weekly"})] {
            let (status, refused) = patch(body.clone()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {refused}");
        }

        // Both are listed, and in the audit log.
        let body = recurring(&app, &vipps, &recurring_id).await;
        assert_eq!(body["Amount"], json!(200.0));
        let kinds: Vec<(String, String)> = body["Changes"]
            .as_array()
            .map(|c| c.iter().map(|c| (c["Kind"].as_str().unwrap_or_default().to_owned(), c["Status"].as_str().unwrap_or_default().to_owned())).collect())
            .unwrap_or_default();
        let newest_first = [("collection_day".to_owned(), "Succeeded".to_owned()), ("amount".to_owned(), "Succeeded".to_owned())];
        assert_eq!(kinds, newest_first, "{body}");
        let audit: Value = app
            .admin(Method::GET, &format!("/admin/api/audit?object_id={recurring_id}"))
            .send()
            .await
            .expect("audit")
            .json()
            .await
            .expect("json");
        let actions: Vec<&str> = audit["entries"].as_array().map(|e| e.iter().filter_map(|e| e["action"].as_str()).collect()).unwrap_or_default();
        assert!(actions.contains(&"recurring.change_amount") && actions.contains(&"recurring.change_collection_day"), "{audit}");
        let amount_entry = audit["entries"].as_array().and_then(|e| e.iter().find(|e| e["action"] == "recurring.change_amount")).cloned().unwrap_or_default();
        assert_eq!(amount_entry["details"]["to_ore"], 20000, "{amount_entry}");
        assert!(amount_entry["actor"].as_str().is_some_and(|a| a.starts_with("key:")), "{amount_entry}");

        // The charge goes to Vipps on the new day with the new amount.
        let days_left = (moved - today(&app)).num_days();
        days_pass(&app, &vipps, days_left - 2).await;
        let charges = vipps_charges(&vipps, &agreement_id).await;
        assert_eq!(charges.len(), 1);
        assert_eq!((charges[0].amount, charges[0].due), (20000, moved));
        days_pass(&app, &vipps, 3).await;
        let collected = installment(&app, &vipps, &first["Id"]).await;
        assert_eq!(collected["Status"], "Collected", "{collected}");
        assert_eq!(collected["Payments"][0]["AmountOre"], 20000);

        // Once charged, an installment keeps its amount and date.
        let (status, _) = patch(json!({"Amount": 300, "CollectionDay": 20})).await;
        assert_eq!(status, StatusCode::OK);
        let kept = installment(&app, &vipps, &first["Id"]).await;
        assert_eq!((kept["Amount"].clone(), kept["DueDate"].clone()), (json!(200.0), json!(moved.to_string())), "{kept}");
    }

    async fn a_charged_installment_is_refunded_in_part_then_in_full_and_never_beyond(app) {
        let vipps = app.with_vipps().await;
        let start = today(&app);
        let (_, recurring_id, _mandate_id, agreement_id) =
            active_recurring(&app, &vipps, &recurring_intent(start, "150")).await;
        app.state.payments.collect_recurring().await.expect("collect");
        let first = installments(&recurring(&app, &vipps, &recurring_id).await)[0].clone();
        let refund = |body: Value| call(&app, &vipps, Method::POST, "/v2/Refund", body);

        let (status, early) = refund(json!({"InstallmentId": first["Id"]})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "not charged yet: {early}");
        days_pass(&app, &vipps, 2).await;
        let collected = installment(&app, &vipps, &first["Id"]).await;
        assert_eq!(collected["Status"], "Collected", "{collected}");
        let payment_id = collected["Payments"][0]["Id"].clone();

        let (status, partial) = refund(json!({"InstallmentId": first["Id"], "Amount": "50", "Reason": "Asked for less"})).await;
        assert_eq!(status, StatusCode::OK, "{partial}");
        assert_eq!(partial["Status"], "Succeeded");
        assert_eq!(partial["InstallmentStatus"], "Partially refunded");
        let (status, too_much) = refund(json!({"InstallmentId": first["Id"], "Amount": "100.01"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{too_much}");
        assert_eq!(too_much["Errors"][0]["field"], "Amount");
        let (status, rest) = refund(json!({"PaymentId": payment_id})).await;
        assert_eq!(status, StatusCode::OK, "{rest}");
        assert_eq!(rest["Amount"], json!(100.0));
        assert_eq!(rest["InstallmentStatus"], "Refunded");
        let (status, _) = refund(json!({"InstallmentId": first["Id"], "Amount": 1})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "nothing left to refund");

        let refunded = installment(&app, &vipps, &first["Id"]).await;
        assert_eq!(refunded["Status"], "Refunded", "{refunded}");
        let amounts: Vec<i64> = refunded["Payments"].as_array().map(|p| p.iter().filter_map(|p| p["AmountOre"].as_i64()).collect()).unwrap_or_default();
        assert_eq!(amounts, [15000, -5000, -10000], "{refunded}");
        let dates: Vec<&str> = refunded["Payments"].as_array().map(|p| p.iter().filter_map(|p| p["CollectionDate"].as_str()).collect()).unwrap_or_default();
        let now = app.state.payments.today().to_string();
        assert_eq!(dates[1..], [now.as_str(), now.as_str()], "refunds dated by payhub's clock, in Norway: {refunded}");

        // Vipps agrees; reading the charge again (its webhook) changes nothing.
        let charge = first["PaymentReference"].as_str().unwrap_or_default().to_owned();
        let at_vipps = vipps_api(&vipps).recurring().get_charge(&agreement_id, &charge).await.expect("charge");
        assert_eq!(at_vipps.status, vipps_client::recurring::ChargeStatus::Refunded);
        app.state.payments.sync_charge(&charge, None).await.expect("sync charge");
        let again = installment(&app, &vipps, &first["Id"]).await;
        assert_eq!(again["Status"], "Refunded", "{again}");
        assert_eq!(again["Payments"].as_array().map(Vec::len), Some(3), "{again}");
    }
}

/// Processes queued jobs (webhooks arriving in the background) until `done` holds.
async fn settle_until<F, Fut>(app: &TestApp, mut done: F)
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

on_both_backends! {
    async fn a_payer_stop_reaches_payhub_by_its_webhook_alone(app) {
        let vipps = app.with_vipps().await;
        app.state.jobs.run_until_idle().await.expect("webhook registration");
        let start = today(&app);
        let (_, recurring_id, mandate_id, agreement_id) =
            active_recurring(&app, &vipps, &recurring_intent(start, "150")).await;
        app.state.payments.collect_recurring().await.expect("collect");
        settle_until(&app, || async { true }).await;

        assert_eq!(vipps.control(&format!("/_sim/agreements/{agreement_id}/stop"), json!({})).await, StatusCode::OK);
        settle_until(&app, || async {
            app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await["Status"] == "Stopped"
        })
        .await;
        let ended = recurring(&app, &vipps, &recurring_id).await;
        assert_eq!(ended["Status"], "Ended", "{ended}");
        let listed = installments(&ended);
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0]["Status"], "Cancelled", "{listed:?}");
        settle_until(&app, || async {
            installments(&recurring(&app, &vipps, &recurring_id).await)[0]["ChargeStatus"] == "CANCELLED"
        })
        .await;
    }

    async fn a_payer_stop_whose_webhook_is_lost_is_found_by_the_beats_before_the_next_charge(app) {
        let vipps = app.with_vipps().await;
        let start = today(&app);
        let (_, recurring_id, mandate_id, agreement_id) =
            active_recurring(&app, &vipps, &recurring_intent(start, "150")).await;
        app.state.payments.collect_recurring().await.expect("collect");
        assert_eq!(vipps.control(&format!("/_sim/agreements/{agreement_id}/stop"), json!({})).await, StatusCode::OK);

        // No webhook: the beats read the cancelled charge on its due date, and with it the agreement.
        days_pass(&app, &vipps, 2).await;
        let mandate = app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await;
        assert_eq!(mandate["Status"], "Stopped", "{mandate}");
        let ended = recurring(&app, &vipps, &recurring_id).await;
        assert_eq!(ended["Status"], "Ended", "{ended}");
        let listed = installments(&ended);
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0]["Status"], "Cancelled", "{listed:?}");

        // And nothing is tried again.
        days_pass(&app, &vipps, 35).await;
        let later = installments(&recurring(&app, &vipps, &recurring_id).await);
        assert_eq!(later.len(), 1, "no installment after the stop: {later:?}");
        assert_eq!(vipps_charges(&vipps, &agreement_id).await.len(), 1);
    }

    async fn a_failed_initial_charge_fails_its_installment_with_the_vipps_reason(app) {
        let vipps = app.with_vipps().await;
        let start = today(&app).checked_add_days(Days::new(10)).expect("date");
        let mut body = recurring_intent(start, "150");
        body["OneTime"] = json!({"Amount": "50"});
        let (status, created) = app.intent(&vipps, &body).await;
        assert_eq!(status, StatusCode::OK, "{created}");
        let mandate_id = created["Recurring"]["Mandate"]["Id"].as_str().unwrap_or_default().to_owned();
        let agreement_id = created["Recurring"]["Mandate"]["MandateId"].as_str().unwrap_or_default().to_owned();
        let recurring_id = created["Recurring"]["Id"].as_str().unwrap_or_default().to_owned();
        let failing = vipps
            .control(&format!("/_sim/agreements/{agreement_id}/fail-next-charge"), json!({"reason": "user_action_required"}))
            .await;
        assert_eq!(failing, StatusCode::NO_CONTENT);
        assert_eq!(vipps.control(&format!("/_sim/agreements/{agreement_id}/accept"), json!({})).await, StatusCode::OK);
        app.state.payments.sync_agreement(&mandate_id, None).await.expect("sync");

        let initial = installment(&app, &vipps, &created["OneTime"]["Id"]).await;
        assert_eq!(initial["Status"], "Failed", "{initial}");
        let reason = initial["StatusReason"].as_str().unwrap_or_default();
        assert!(reason.contains("user action required"), "Vipps' reason: {reason}");
        let mandate = app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await;
        assert_eq!(mandate["Active"], false, "Vipps expired the agreement: {mandate}");
        assert_eq!(mandate["Status"], "Expired", "{mandate}");
        let ended = recurring(&app, &vipps, &recurring_id).await;
        assert_eq!(ended["Status"], "Ended", "{ended}");
        days_pass(&app, &vipps, 12).await;
        assert!(installments(&recurring(&app, &vipps, &recurring_id).await).is_empty(), "nothing generated");
    }
}

on_both_backends! {
    async fn an_initial_charge_taken_just_before_the_payer_stops_is_still_collected(app) {
        let vipps = app.with_vipps().await;
        let start = today(&app).checked_add_days(Days::new(10)).expect("date");
        let mut body = recurring_intent(start, "150");
        body["OneTime"] = json!({"Amount": "50"});
        let (status, created) = app.intent(&vipps, &body).await;
        assert_eq!(status, StatusCode::OK, "{created}");
        let mandate_id = created["Recurring"]["Mandate"]["Id"].as_str().unwrap_or_default().to_owned();
        let agreement_id = created["Recurring"]["Mandate"]["MandateId"].as_str().unwrap_or_default().to_owned();
        // Accepted (the initial charge is taken) and stopped before payhub hears of either.
        assert_eq!(vipps.control(&format!("/_sim/agreements/{agreement_id}/accept"), json!({})).await, StatusCode::OK);
        assert_eq!(vipps.control(&format!("/_sim/agreements/{agreement_id}/stop"), json!({})).await, StatusCode::OK);
        app.state.payments.sync_agreement(&mandate_id, None).await.expect("sync");

        let initial = installment(&app, &vipps, &created["OneTime"]["Id"]).await;
        assert_eq!(initial["Status"], "Collected", "the money was taken: {initial}");
        assert_eq!(initial["Payments"][0]["AmountOre"], 5000, "{initial}");
        let mandate = app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await;
        assert_eq!(mandate["Status"], "Stopped", "{mandate}");
        let ended = recurring(&app, &vipps, created["Recurring"]["Id"].as_str().unwrap_or_default()).await;
        assert_eq!(ended["Status"], "Ended", "{ended}");
    }

    async fn a_stop_while_a_charge_was_never_confirmed_is_synced_without_hanging(app) {
        let vipps = app.with_vipps().await;
        let start = today(&app);
        let (_, recurring_id, mandate_id, agreement_id) =
            active_recurring(&app, &vipps, &recurring_intent(start, "150")).await;
        // The charge is recorded but never reaches Vipps.
        let prefix = format!("/recurring/v3/agreements/{agreement_id}/charges");
        let fault = vipps
            .http
            .post(format!("{}/_sim/faults", vipps.sim.base_url()))
            .json(&json!({"pathPrefix": prefix, "kind": "500", "times": 20}))
            .send()
            .await
            .expect("fault");
        assert_eq!(fault.status(), StatusCode::CREATED);
        app.state.payments.collect_recurring().await.expect("collect");
        vipps.http.delete(format!("{}/_sim/faults", vipps.sim.base_url())).send().await.expect("clear faults");
        assert!(vipps_charges(&vipps, &agreement_id).await.is_empty(), "nothing reached Vipps");
        let charge_state = scalar(&app, "SELECT COUNT(*) FROM vipps_charges WHERE mandate_id = $1 AND state = 'CREATING'", &mandate_id).await;
        assert_eq!(charge_state, 1, "recorded, unconfirmed");

        assert_eq!(vipps.control(&format!("/_sim/agreements/{agreement_id}/stop"), json!({})).await, StatusCode::OK);
        let synced = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            app.state.payments.sync_agreement(&mandate_id, None),
        )
        .await;
        synced.expect("the agreement sync must not wait for itself").expect("sync");
        let mandate = app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await;
        assert_eq!(mandate["Status"], "Stopped", "{mandate}");
        let listed = installments(&recurring(&app, &vipps, &recurring_id).await);
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0]["Status"], "Cancelled", "{listed:?}");
        assert!(vipps_charges(&vipps, &agreement_id).await.is_empty(), "no charge on a stopped agreement");
    }
}

on_both_backends! {
    async fn cancelling_a_recurring_payment_cancels_its_charge_and_stops_the_agreement_when_the_account_says_so(app) {
        let vipps = app.with_vipps().await;
        let cancel = |id: String, body: Value| {
            let path = format!("/v2/Recurring/{id}/Cancel");
            let (app, vipps) = (&app, &vipps);
            async move { call(app, vipps, Method::POST, &path, body).await }
        };

        // Account default: the recurring payment ends here; the agreement stays at Vipps.
        let (_, recurring_id, mandate_id, agreement_id) =
            active_recurring(&app, &vipps, &recurring_intent(today(&app), "150")).await;
        app.state.payments.collect_recurring().await.expect("collect");
        let (status, cancelled) = cancel(recurring_id.clone(), json!({"Reason": "Donor asked by phone"})).await;
        assert_eq!(status, StatusCode::OK, "{cancelled}");
        assert_eq!(cancelled["Status"], "Cancelled");
        assert_eq!(cancelled["StatusReason"], "Donor asked by phone");
        assert!(cancelled.get("CancelVippsAgreement").is_none(), "{cancelled}");
        let listed = installments(&cancelled);
        assert_eq!((listed[0]["Status"].clone(), listed[0]["ChargeStatus"].clone()), (json!("Cancelled"), json!("CANCELLED")), "{listed:?}");
        assert_eq!(vipps_api(&vipps).recurring().get_agreement(&agreement_id).await.expect("agreement").status, vipps_client::recurring::AgreementStatus::Active);
        let (status, again) = cancel(recurring_id.clone(), json!({})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "already cancelled: {again}");
        days_pass(&app, &vipps, 35).await;
        assert_eq!(installments(&recurring(&app, &vipps, &recurring_id).await).len(), 1, "nothing more generated");
        assert_eq!(vipps_charges(&vipps, &agreement_id).await.len(), 1, "nothing more charged");
        let mandate = app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await;
        assert_eq!(mandate["Status"], "Active", "{mandate}");

        // With the account's setting, the agreement is stopped at Vipps too.
        let account = app.state.accounts.list().await.expect("accounts").remove(0);
        let updated = app
            .admin(Method::PATCH, &format!("/admin/api/accounts/{}", account.id))
            .json(&json!({"cancel_agreement_on_cancel": true}))
            .send()
            .await
            .expect("update account");
        assert!(updated.status().is_success(), "{}", updated.text().await.unwrap_or_default());
        let (_, recurring_id, mandate_id, agreement_id) =
            active_recurring(&app, &vipps, &recurring_intent(today(&app), "150")).await;
        let (status, cancelled) = cancel(recurring_id.clone(), json!({})).await;
        assert_eq!(status, StatusCode::OK, "{cancelled}");
        assert_eq!(cancelled["Status"], "Cancelled");
        assert_eq!(cancelled["CancelVippsAgreement"]["IsSuccess"], true, "{cancelled}");
        let mandate = app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await;
        assert_eq!(mandate["Status"], "Cancelled", "{mandate}");
        assert_eq!(vipps_api(&vipps).recurring().get_agreement(&agreement_id).await.expect("agreement").status, vipps_client::recurring::AgreementStatus::Stopped);
    }

    async fn an_amount_change_before_the_payer_accepts_never_charges_more_than_the_agreement_shows(app) {
        let vipps = app.with_vipps().await;
        let start = today(&app);
        let (status, created) = app.intent(&vipps, &recurring_intent(start, "150")).await;
        assert_eq!(status, StatusCode::OK, "{created}");
        let recurring_id = created["Recurring"]["Id"].as_str().unwrap_or_default().to_owned();
        let mandate_id = created["Recurring"]["Mandate"]["Id"].as_str().unwrap_or_default().to_owned();
        let agreement_id = created["Recurring"]["Mandate"]["MandateId"].as_str().unwrap_or_default().to_owned();
        let (status, answer) =
            call(&app, &vipps, Method::PATCH, &format!("/v2/Recurring/{recurring_id}"), json!({"Amount": 200})).await;

        assert_eq!(vipps.control(&format!("/_sim/agreements/{agreement_id}/accept"), json!({})).await, StatusCode::OK);
        app.state.payments.sync_agreement(&mandate_id, None).await.expect("sync");
        app.state.payments.collect_recurring().await.expect("collect");
        let price = vipps_api(&vipps).recurring().get_agreement(&agreement_id).await.expect("agreement").pricing.amount;
        let charged: Vec<i64> = vipps_charges(&vipps, &agreement_id).await.iter().map(|c| c.amount).collect();
        assert_eq!(charged.len(), 1);
        assert_eq!(Some(charged[0]), price, "the payer confirmed {price:?}; PATCH answered {status} {answer}");
        let shown = recurring(&app, &vipps, &recurring_id).await;
        assert_eq!(Some((shown["Amount"].as_f64().unwrap_or_default() * 100.0).round() as i64), price, "{shown}");
        if status != StatusCode::OK {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
            assert_eq!(shown["Changes"][0]["Status"], "Failed", "the refused change is listed: {shown}");
        }
    }

    async fn a_collection_day_change_never_moves_an_installment_before_the_start_date(app) {
        let vipps = app.with_vipps().await;
        let start = first_of_month_after(today(&app), 2).with_day(15).expect("date");
        let (_, recurring_id, _mandate_id, _agreement_id) =
            active_recurring(&app, &vipps, &recurring_intent(start, "150")).await;
        let (status, changed) =
            call(&app, &vipps, Method::PATCH, &format!("/v2/Recurring/{recurring_id}"), json!({"CollectionDay": 1})).await;
        assert_eq!(status, StatusCode::OK, "{changed}");
        let listed = installments(&changed);
        assert_eq!(listed.len(), 1, "{listed:?}");
        let due = NaiveDate::parse_from_str(listed[0]["DueDate"].as_str().unwrap_or_default(), "%Y-%m-%d").expect("date");
        assert!(due >= start, "due {due}, before the Start Date {start}: {changed}");
        let next = first_of_month_after(start, 1);
        assert_eq!(changed["NextCollectionDate"], next.to_string(), "{changed}");
    }
}
