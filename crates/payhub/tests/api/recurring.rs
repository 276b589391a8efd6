//! Recurring payments end to end against vipps-sim, driving its virtual clock: agreement → mandate Active →
//! installments on schedule → charges → Collected; and how one ends or fails: a charge failing after the retry
//! days, the payer stopping the agreement (heard by webhook or found by the beats), Cancel Vipps Agreement,
//! cancelling the recurring payment, and the initial charge taken or failed at acceptance.

use chrono::{Days, Months};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::recurring::{
    active_recurring, call, days_pass, id_of, installment, installments, installments_in, mandate, recurring,
    recurring_intent, settle_until, today,
};
use crate::helpers::storage;
use crate::helpers::vipps::{charges_at_vipps, clear_faults, fault, sim_client};
use crate::on_both_backends;

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
        let first = installments(&app, &vipps, &recurring_id).await[0].clone();
        assert_eq!(first["Status"], "Pending", "{first}");
        let charge = charges_at_vipps(&vipps, &agreement_id).await.remove(0);
        assert_eq!(charge.retry_days, 3, "the account's RetryDays reach Vipps");
        let due = charge.due;

        // Vipps tries on the due date and on each of the 3 retry days; until the last one, still Pending.
        days_pass(&app, &vipps, 3).await;
        assert!(today(&app) < due + Days::new(3));
        let waiting = installment(&app, &vipps, id_of(&first)).await;
        assert_eq!(waiting["Status"], "Pending", "still retrying: {waiting}");
        assert!(waiting["StatusReason"].is_null(), "{waiting}");

        days_pass(&app, &vipps, 1).await;
        assert!(today(&app) >= due + Days::new(3));
        let failed = installment(&app, &vipps, id_of(&first)).await;
        assert_eq!(failed["Status"], "Failed", "{failed}");
        let reason = failed["StatusReason"].as_str().unwrap_or_default();
        assert!(reason.contains("user action required"), "Vipps' reason in StatusReason: {reason}");
        assert_eq!(failed["Payments"].as_array().map(Vec::len), Some(0), "no money, no Payment");
        let listed = installments(&app, &vipps, &recurring_id).await;
        assert_eq!(listed[0]["ChargeStatus"], "FAILED", "{listed:?}");

        // One failed charge does not end the agreement: next month is charged as usual.
        let recurring_now = recurring(&app, &vipps, &recurring_id).await;
        assert_eq!(recurring_now["Status"], "Active", "{recurring_now}");
        assert_eq!(recurring_now["Mandate"]["Active"], true);
        days_pass(&app, &vipps, 27).await;
        days_pass(&app, &vipps, 3).await;
        let listed = installments(&app, &vipps, &recurring_id).await;
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
        let first = installments(&app, &vipps, &recurring_id).await[0].clone();
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
        let listed = installments_in(&ended);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0]["Status"], "Cancelled", "{listed:?}");
        assert_eq!(listed[0]["ChargeStatus"], "CANCELLED", "Vipps cancelled the pending charge: {listed:?}");

        // Two months of beats: nothing new is generated, nothing charged.
        for _ in 0..4 {
            days_pass(&app, &vipps, 16).await;
        }
        let later = recurring(&app, &vipps, &recurring_id).await;
        assert_eq!(installments_in(&later).len(), 1, "no installment after the stop: {later}");
        assert_eq!(later["Status"], "Ended");
        let charges = charges_at_vipps(&vipps, &agreement_id).await;
        assert_eq!(charges.len(), 1, "no charge sent after the stop");
        let mandate = app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await;
        assert!(installments_in(&mandate).iter().all(|i| i["Status"] == "Cancelled"), "{mandate}");
    }

    async fn cancel_vipps_agreement_by_mandate_or_agreement_id_stops_it_and_cancels_everything_open(app) {
        let vipps = app.with_vipps().await;
        let cancel = |body: Value| call(&app, &vipps, Method::POST, "/v2/actions/CancelVippsAgreement", body);
        for by_mandate in [true, false] {
            let (_, recurring_id, mandate_id, agreement_id) =
                active_recurring(&app, &vipps, &recurring_intent(today(&app), "150")).await;
            app.state.payments.collect_recurring().await.expect("collect");
            let first = installments(&app, &vipps, &recurring_id).await[0].clone();
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
            let listed = installments_in(&cancelled);
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0]["Status"], "Cancelled", "{listed:?}");
            assert_eq!(listed[0]["ChargeStatus"], "CANCELLED", "{listed:?}");
            let at_vipps = sim_client(&vipps).recurring().get_agreement(&agreement_id).await.expect("agreement");
            assert_eq!(at_vipps.status, vipps_client::recurring::AgreementStatus::Stopped);
            assert!(charges_at_vipps(&vipps, &agreement_id)
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
            assert_eq!(installments(&app, &vipps, &recurring_id).await.len(), 1);
            assert_eq!(charges_at_vipps(&vipps, &agreement_id).await.len(), 1);
        }

        // Bad requests answer IsSuccess false and write nothing.
        // Storage: every change row counts, also one no recurring payment would list.
        let changes_before = storage::count(&app, "SELECT COUNT(*) FROM recurring_changes", &[]).await;
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
        let changes_after = storage::count(&app, "SELECT COUNT(*) FROM recurring_changes", &[]).await;
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

        let initial = installment(&app, &vipps, initial_id.as_str().expect("initial id")).await;
        assert_eq!(initial["Status"], "Collected", "{initial}");
        assert_eq!(initial["Amount"], json!(50.0));
        let payments = initial["Payments"].as_array().cloned().unwrap_or_default();
        assert_eq!(payments.len(), 1, "{initial}");
        assert_eq!(payments[0]["AmountOre"], 5000);
        let mandate = app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await;
        assert_eq!(mandate["InitialInstallmentId"], initial_id);

        // The recurring amount is charged separately, from the Start Date.
        let listed = installments(&app, &vipps, &recurring_id).await;
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0]["DueDate"], start.to_string());
        assert_eq!(listed[0]["Amount"], json!(150.0));
        let charges = charges_at_vipps(&vipps, &agreement_id).await;
        assert_eq!(charges.len(), 1, "only the initial charge so far");
        assert_eq!(charges[0].amount, 5000);
    }

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
        let listed = installments_in(&ended);
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0]["Status"], "Cancelled", "{listed:?}");
        settle_until(&app, || async {
            installments(&app, &vipps, &recurring_id).await[0]["ChargeStatus"] == "CANCELLED"
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
        let listed = installments_in(&ended);
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0]["Status"], "Cancelled", "{listed:?}");

        // And nothing is tried again.
        days_pass(&app, &vipps, 35).await;
        let later = installments(&app, &vipps, &recurring_id).await;
        assert_eq!(later.len(), 1, "no installment after the stop: {later:?}");
        assert_eq!(charges_at_vipps(&vipps, &agreement_id).await.len(), 1);
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

        let initial = installment(&app, &vipps, id_of(&created["OneTime"])).await;
        assert_eq!(initial["Status"], "Failed", "{initial}");
        let reason = initial["StatusReason"].as_str().unwrap_or_default();
        assert!(reason.contains("user action required"), "Vipps' reason: {reason}");
        let mandate = app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await;
        assert_eq!(mandate["Active"], false, "Vipps expired the agreement: {mandate}");
        assert_eq!(mandate["Status"], "Expired", "{mandate}");
        let ended = recurring(&app, &vipps, &recurring_id).await;
        assert_eq!(ended["Status"], "Ended", "{ended}");
        days_pass(&app, &vipps, 12).await;
        assert!(installments(&app, &vipps, &recurring_id).await.is_empty(), "nothing generated");
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

        let initial = installment(&app, &vipps, id_of(&created["OneTime"])).await;
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
        fault(&vipps, &format!("/recurring/v3/agreements/{agreement_id}/charges"), json!({"kind": "500", "times": 20})).await;
        app.state.payments.collect_recurring().await.expect("collect");
        clear_faults(&vipps).await;
        assert!(charges_at_vipps(&vipps, &agreement_id).await.is_empty(), "nothing reached Vipps");
        let charges: Vec<Value> = installments_in(&mandate(&app, &vipps, &mandate_id).await)
            .into_iter()
            .filter(|i| !i["ChargeStatus"].is_null())
            .collect();
        assert_eq!(charges.len(), 1, "recorded: {charges:?}");
        assert_eq!(charges[0]["ChargeStatus"], "CREATING", "unconfirmed: {charges:?}");

        assert_eq!(vipps.control(&format!("/_sim/agreements/{agreement_id}/stop"), json!({})).await, StatusCode::OK);
        let synced = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            app.state.payments.sync_agreement(&mandate_id, None),
        )
        .await;
        synced.expect("the agreement sync must not wait for itself").expect("sync");
        let mandate = app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await;
        assert_eq!(mandate["Status"], "Stopped", "{mandate}");
        let listed = installments(&app, &vipps, &recurring_id).await;
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0]["Status"], "Cancelled", "{listed:?}");
        assert!(charges_at_vipps(&vipps, &agreement_id).await.is_empty(), "no charge on a stopped agreement");
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
        let listed = installments_in(&cancelled);
        assert_eq!((listed[0]["Status"].clone(), listed[0]["ChargeStatus"].clone()), (json!("Cancelled"), json!("CANCELLED")), "{listed:?}");
        assert_eq!(sim_client(&vipps).recurring().get_agreement(&agreement_id).await.expect("agreement").status, vipps_client::recurring::AgreementStatus::Active);
        let (status, again) = cancel(recurring_id.clone(), json!({})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "already cancelled: {again}");
        days_pass(&app, &vipps, 35).await;
        assert_eq!(installments(&app, &vipps, &recurring_id).await.len(), 1, "nothing more generated");
        assert_eq!(charges_at_vipps(&vipps, &agreement_id).await.len(), 1, "nothing more charged");
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
        assert_eq!(sim_client(&vipps).recurring().get_agreement(&agreement_id).await.expect("agreement").status, vipps_client::recurring::AgreementStatus::Stopped);
    }

}
