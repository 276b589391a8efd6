//! What confused readers of the records before the records UI: a refund made money look due again, a cancelled
//! recurring payment kept a next collection date, the mandate did not say how often it collects, refunds and
//! failed sign-ins left no audit entry, the audit log ran on real time in the sandbox while the rest of payhub
//! followed the virtual clock, the audit page showed raw ids and could not be filtered, and a finance API key
//! could refund but not read.

use payhub::domain::role::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::recurring::{active_recurring, call, mandate, recurring, recurring_intent, today};
use crate::helpers::{collected, seed_intent, Browser, TestApp, Vipps};
use crate::on_both_backends;

async fn refund(app: &TestApp, vipps: &Vipps, body: Value) -> (StatusCode, Value) {
    call(app, vipps, Method::POST, "/v2/Refund", body).await
}

async fn audit_entries(app: &TestApp) -> Vec<Value> {
    let body: Value = app.admin(Method::GET, "/admin/api/audit?limit=1000").send().await.unwrap().json().await.unwrap();
    body["entries"].as_array().cloned().unwrap_or_default()
}

on_both_backends! {
    async fn a_refund_leaves_nothing_open_and_shows_the_refunded_sum_apart(app) {
        let vipps = app.with_vipps().await;
        let (installment_id, _) = collected(&app, &vipps).await;
        let path = format!("/v2/Installment/{installment_id}");
        let before = app.v2_get(&vipps, &path).await;
        assert_eq!((before["AmountOpen"].clone(), before["AmountRefunded"].clone()), (json!(0.0), json!(0.0)), "{before}");

        let (status, answer) = refund(&app, &vipps, json!({"InstallmentId": installment_id, "Amount": 10})).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let after = app.v2_get(&vipps, &path).await;
        assert_eq!(after["Status"], "Partially refunded", "{after}");
        assert_eq!(after["AmountOpen"], json!(0.0), "a refund does not make money due again: {after}");
        assert_eq!(after["AmountRefunded"], json!(10.0), "{after}");

        let (status, answer) = refund(&app, &vipps, json!({"InstallmentId": installment_id})).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let all = app.v2_get(&vipps, &path).await;
        assert_eq!((all["Status"].clone(), all["AmountOpen"].clone(), all["AmountRefunded"].clone()),
                   (json!("Refunded"), json!(0.0), json!(36.0)), "{all}");
    }

    async fn a_cancelled_recurring_payment_has_no_next_collection_date(app) {
        let vipps = app.with_vipps().await;
        let (_, recurring_id, _, _) = active_recurring(&app, &vipps, &recurring_intent(today(&app), "100")).await;
        let open = recurring(&app, &vipps, &recurring_id).await;
        assert!(open["NextCollectionDate"].is_string(), "an active one shows it: {open}");
        let (status, cancelled) = call(&app, &vipps, Method::POST, &format!("/v2/Recurring/{recurring_id}/Cancel"), json!({})).await;
        assert_eq!(status, StatusCode::OK, "{cancelled}");
        let after = recurring(&app, &vipps, &recurring_id).await;
        assert_eq!(after["Status"], "Cancelled", "{after}");
        assert_eq!(after["NextCollectionDate"], Value::Null, "{after}");
    }

    async fn a_mandate_says_how_often_it_collects(app) {
        let vipps = app.with_vipps().await;
        let (_, _, mandate_id, _) = active_recurring(&app, &vipps, &recurring_intent(today(&app), "100")).await;
        let shown = mandate(&app, &vipps, &mandate_id).await;
        assert_eq!(shown["Interval"]["Unit"], "MONTH", "{shown}");
        assert_eq!(shown["Interval"]["Count"], 1, "{shown}");
        assert_eq!(shown["Interval"]["Text"], "per month", "{shown}");
    }

    async fn refunds_and_failed_sign_ins_are_audited(app) {
        let vipps = app.with_vipps().await;
        let (installment_id, _) = collected(&app, &vipps).await;
        let (status, answer) = refund(&app, &vipps, json!({"InstallmentId": installment_id, "Amount": "12.50", "Reason": "Wrong amount"})).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(Browser::new(&app).sign_in("nobody@example.org", "wrong password 1").await, StatusCode::UNAUTHORIZED);

        let entries = audit_entries(&app).await;
        let refunded = entries.iter().find(|e| e["action"] == "refund.request").unwrap_or_else(|| panic!("{entries:?}"));
        assert_eq!(refunded["object_type"], "installment");
        assert_eq!(refunded["object_id"], installment_id.as_str());
        assert!(refunded["actor"].as_str().unwrap().starts_with("key:"), "{refunded}");
        assert_eq!(refunded["details"]["amount"], "12.50", "{refunded}");
        assert_eq!(refunded["details"]["refund"], answer["Id"], "{refunded}");
        let failed = entries.iter().find(|e| e["action"] == "user.sign_in_failed").unwrap_or_else(|| panic!("{entries:?}"));
        assert_eq!(failed["details"]["email"], "nobody@example.org", "{failed}");
        assert!(!failed.to_string().contains("wrong password"), "the password tried is never written: {failed}");
    }

    async fn the_audit_log_follows_the_sandbox_clock(app) {
        let vipps = app.with_vipps().await;
        vipps.sim.advance(40 * 86_400).await;
        let (installment_id, _) = collected(&app, &vipps).await;
        let (status, answer) = refund(&app, &vipps, json!({"InstallmentId": installment_id, "Amount": 1})).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let browser = app.browser(Role::Finance).await;
        drop(browser);
        let entries = audit_entries(&app).await;
        let virtual_day = today(&app).to_string();
        for action in ["refund.request", "user.sign_in"] {
            let entry = entries.iter().find(|e| e["action"] == action).unwrap_or_else(|| panic!("{action}: {entries:?}"));
            assert!(entry["at"].as_str().unwrap().starts_with(&virtual_day), "{action} at the virtual {virtual_day}: {entry}");
        }
    }

    async fn the_audit_page_names_people_and_records_and_can_be_filtered(app) {
        let vipps = app.with_vipps().await;
        let (installment_id, _) = collected(&app, &vipps).await;
        let (status, _) = refund(&app, &vipps, json!({"InstallmentId": installment_id, "Amount": 2})).await;
        assert_eq!(status, StatusCode::OK);
        let admin = app.browser(Role::Admin).await;
        let (status, page) = admin.get("/setup/audit").await;
        assert_eq!(status, StatusCode::OK);
        assert!(!page.contains(">user:usr_") && !page.contains(">key:"), "people and keys by name, not by raw id: {page}");
        assert!(page.contains("Eric Johnson"), "the refunded installment by its payer's name: {page}");
        assert!(page.contains("name=\"action\""), "a filter form: {page}");
        let (status, page) = admin.get("/setup/audit?action=refund.request").await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("refund.request") && page.contains(&installment_id), "{page}");
        assert!(!page.contains("account.create"), "only refunds once filtered: {page}");
        let (_, page) = admin.get(&format!("/setup/audit?record={installment_id}")).await;
        assert!(page.contains("refund.request") && !page.contains("user.sign_in<"), "{page}");
    }

    async fn a_finance_key_reads_what_a_finance_user_sees_but_makes_no_intents(app) {
        let vipps = app.with_vipps().await;
        let (installment_id, _) = collected(&app, &vipps).await;
        let finance = app.key(Role::Finance).await;
        let read = app.http.get(app.url(&format!("/v2/Installment/{installment_id}"))).bearer_auth(&finance).send().await.unwrap();
        assert_eq!(read.status(), StatusCode::OK);
        let body: Value = read.json().await.unwrap();
        assert_eq!(body["Id"], installment_id.as_str());
        let methods = app.http.get(app.url("/v2/PaymentMethods")).bearer_auth(&finance).send().await.unwrap();
        assert_eq!(methods.status(), StatusCode::OK);
        let create = app.http.post(app.url("/v2/PaymentIntent")).bearer_auth(&finance).json(&seed_intent()).send().await.unwrap();
        assert_eq!(create.status(), StatusCode::FORBIDDEN, "finance reads and refunds; integrators take payments");
    }
}
