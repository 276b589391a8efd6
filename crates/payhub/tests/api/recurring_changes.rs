//! Changes to a recurring payment after it is set up: pausing (and a pause running out), amount and
//! Collection Day changes (reaching Vipps, the installments and the audit log, and never moving an installment
//! before the Start Date or charging more than the payer confirmed), and refunds of a charged installment.

use chrono::{Datelike, Days, Months, NaiveDate};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::recurring::{
    active_recurring, call, days_pass, id_of, installment, installments, installments_in, recurring, recurring_intent,
    today,
};
use crate::helpers::vipps::{charges_at_vipps, sim_client};
use crate::on_both_backends;

/// The first day of the month `months` after `day`'s.
fn first_of_month_after(day: NaiveDate, months: u32) -> NaiveDate {
    day.with_day(1).and_then(|d| d.checked_add_months(Months::new(months))).expect("a date")
}

on_both_backends! {
    async fn pausing_cancels_what_falls_due_and_charges_nothing_until_resumed(app) {
        let vipps = app.with_vipps().await;
        let start = today(&app);
        let (_, recurring_id, _mandate_id, agreement_id) =
            active_recurring(&app, &vipps, &recurring_intent(start, "150")).await;
        app.state.payments.collect_recurring().await.expect("collect");
        let first = installments(&app, &vipps, &recurring_id).await[0].clone();
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
        let listed = installments_in(&paused);
        assert_eq!(listed[0]["Status"], "Cancelled", "due before Until: {listed:?}");
        assert_eq!(listed[0]["ChargeStatus"], "CANCELLED", "{listed:?}");
        let at_vipps = charges_at_vipps(&vipps, &agreement_id).await;
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
        assert!(installments_in(&still).iter().all(|i| i["Status"] != "Pending" && i["Status"] != "Collected"), "{still}");
        assert_eq!(charges_at_vipps(&vipps, &agreement_id).await.len(), 1, "no charge while paused");

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
        let listed = installments(&app, &vipps, &recurring_id).await;
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
        assert!(installments_in(&after).iter().all(|i| i["DueDate"] != second_due.to_string()), "skipped while paused: {after}");
        assert_eq!(charges_at_vipps(&vipps, &agreement_id).await.len(), 1, "nothing charged while paused");

        // The third period is collected.
        let days_left = (third_due - today(&app)).num_days();
        days_pass(&app, &vipps, days_left - 2).await;
        days_pass(&app, &vipps, 3).await;
        let listed = installments(&app, &vipps, &recurring_id).await;
        let third: Vec<&Value> = listed.iter().filter(|i| i["DueDate"] == third_due.to_string()).collect();
        assert_eq!(third.len(), 1, "{listed:?}");
        assert_eq!(third[0]["Status"], "Collected", "{listed:?}");
    }

    async fn amount_and_collection_day_changes_reach_vipps_and_the_installments_and_are_recorded(app) {
        let vipps = app.with_vipps().await;
        let start = first_of_month_after(today(&app), 2);
        let (_, recurring_id, mandate_id, agreement_id) =
            active_recurring(&app, &vipps, &recurring_intent(start, "150")).await;
        let first = installments(&app, &vipps, &recurring_id).await[0].clone();
        assert_eq!(first["Status"], "Outstanding", "not charged yet: {first}");
        assert_eq!(first["DueDate"], start.to_string());
        let path = format!("/v2/Recurring/{recurring_id}");
        let patch = |body: Value| call(&app, &vipps, Method::PATCH, &path, body);

        // The amount.
        let (status, changed) = patch(json!({"Amount": 200})).await;
        assert_eq!(status, StatusCode::OK, "{changed}");
        assert_eq!(changed["Amount"], json!(200.0));
        assert_eq!(installments_in(&changed)[0]["Amount"], json!(200.0), "{changed}");
        let at_vipps = sim_client(&vipps).recurring().get_agreement(&agreement_id).await.expect("agreement");
        assert_eq!(at_vipps.pricing.amount, Some(20000), "the price at Vipps");
        let mandate = app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await;
        assert_eq!(mandate["Price"], json!(200.0), "{mandate}");

        // The Collection Day.
        let (status, changed) = patch(json!({"CollectionDay": 15})).await;
        assert_eq!(status, StatusCode::OK, "{changed}");
        assert_eq!(changed["CollectionDay"], 15);
        let moved = start.with_day(15).expect("date");
        assert_eq!(installments_in(&changed)[0]["DueDate"], moved.to_string(), "{changed}");
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
        let charges = charges_at_vipps(&vipps, &agreement_id).await;
        assert_eq!(charges.len(), 1);
        assert_eq!((charges[0].amount, charges[0].due), (20000, moved));
        days_pass(&app, &vipps, 3).await;
        let collected = installment(&app, &vipps, id_of(&first)).await;
        assert_eq!(collected["Status"], "Collected", "{collected}");
        assert_eq!(collected["Payments"][0]["AmountOre"], 20000);

        // Once charged, an installment keeps its amount and date.
        let (status, _) = patch(json!({"Amount": 300, "CollectionDay": 20})).await;
        assert_eq!(status, StatusCode::OK);
        let kept = installment(&app, &vipps, id_of(&first)).await;
        assert_eq!((kept["Amount"].clone(), kept["DueDate"].clone()), (json!(200.0), json!(moved.to_string())), "{kept}");
    }

    async fn a_charged_installment_is_refunded_in_part_then_in_full_and_never_beyond(app) {
        let vipps = app.with_vipps().await;
        let start = today(&app);
        let (_, recurring_id, _mandate_id, agreement_id) =
            active_recurring(&app, &vipps, &recurring_intent(start, "150")).await;
        app.state.payments.collect_recurring().await.expect("collect");
        let first = installments(&app, &vipps, &recurring_id).await[0].clone();
        let refund = |body: Value| call(&app, &vipps, Method::POST, "/v2/Refund", body);

        let (status, early) = refund(json!({"InstallmentId": first["Id"]})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "not charged yet: {early}");
        days_pass(&app, &vipps, 2).await;
        let collected = installment(&app, &vipps, id_of(&first)).await;
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

        let refunded = installment(&app, &vipps, id_of(&first)).await;
        assert_eq!(refunded["Status"], "Refunded", "{refunded}");
        let amounts: Vec<i64> = refunded["Payments"].as_array().map(|p| p.iter().filter_map(|p| p["AmountOre"].as_i64()).collect()).unwrap_or_default();
        assert_eq!(amounts, [15000, -5000, -10000], "{refunded}");
        let dates: Vec<&str> = refunded["Payments"].as_array().map(|p| p.iter().filter_map(|p| p["CollectionDate"].as_str()).collect()).unwrap_or_default();
        let now = app.state.payments.today().to_string();
        assert_eq!(dates[1..], [now.as_str(), now.as_str()], "refunds dated by payhub's clock, in Norway: {refunded}");

        // Vipps agrees; reading the charge again (its webhook) changes nothing.
        let charge = first["PaymentReference"].as_str().unwrap_or_default().to_owned();
        let at_vipps = sim_client(&vipps).recurring().get_charge(&agreement_id, &charge).await.expect("charge");
        assert_eq!(at_vipps.status, vipps_client::recurring::ChargeStatus::Refunded);
        app.state.payments.sync_charge(&charge, None).await.expect("sync charge");
        let again = installment(&app, &vipps, id_of(&first)).await;
        assert_eq!(again["Status"], "Refunded", "{again}");
        assert_eq!(again["Payments"].as_array().map(Vec::len), Some(3), "{again}");
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
        let price = sim_client(&vipps).recurring().get_agreement(&agreement_id).await.expect("agreement").pricing.amount;
        let charged: Vec<i64> = charges_at_vipps(&vipps, &agreement_id).await.iter().map(|c| c.amount).collect();
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
        let listed = installments_in(&changed);
        assert_eq!(listed.len(), 1, "{listed:?}");
        let due = NaiveDate::parse_from_str(listed[0]["DueDate"].as_str().unwrap_or_default(), "%Y-%m-%d").expect("date");
        assert!(due >= start, "due {due}, before the Start Date {start}: {changed}");
        let next = first_of_month_after(start, 1);
        assert_eq!(changed["NextCollectionDate"], next.to_string(), "{changed}");
    }
}
