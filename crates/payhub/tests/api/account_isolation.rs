//! One merchant account's trouble stays its own: an account with payments cannot be deleted, and an account
//! whose credentials Vipps refuses neither stops the other accounts' collection nor fails its payers'
//! installments (it waits, and the dashboard says why).

use payhub::domain::role::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::recurring::{active_recurring, installments, recurring_intent, today};
use crate::helpers::{account_body, TestApp, Vipps};
use crate::on_both_backends;

/// A second account on the simulator's merchant, named `name`.
async fn second_account(app: &TestApp, vipps: &Vipps, name: &str) -> Value {
    let merchant = vipps.sim.merchants()[0].clone();
    app.create_account(json!({
        "name": name,
        "merchant_serial_number": merchant.msn,
        "client_key": merchant.client_id,
        "client_secret": merchant.client_secret,
        "subscription_key": merchant.subscription_key,
        "is_test": true,
        "api_base_url": vipps.sim.base_url(),
        "merchant_agreement_url": "https://example.org/agreements",
        "product_name": "Monthly gift",
    }))
    .await
}

async fn account_id(app: &TestApp, name: &str) -> String {
    app.state.accounts.list().await.unwrap().into_iter().find(|a| a.name == name).unwrap().id
}

on_both_backends! {
    async fn an_account_with_payments_cannot_be_deleted(app) {
        let vipps = app.with_vipps().await;
        let (status, created) = app.intent(&vipps, &crate::helpers::seed_intent()).await;
        assert_eq!(status, StatusCode::OK, "{created}");
        let id = account_id(&app, "Sandbox").await;
        let response = app.admin(Method::DELETE, &format!("/admin/api/accounts/{id}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let body: Value = response.json().await.unwrap();
        assert!(body["Errors"][0]["error_message"].as_str().unwrap().contains("payments"), "{body}");
        assert_eq!(app.account_count().await, 1, "nothing deleted");
        // An account without any record can go.
        let empty = app.create_account(account_body("Empty")).await;
        let response = app.admin(Method::DELETE, &format!("/admin/api/accounts/{}", empty["id"].as_str().unwrap())).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }

    async fn refused_credentials_on_one_account_leave_the_others_collecting_and_fail_no_payer(app) {
        let vipps = app.with_vipps().await;
        second_account(&app, &vipps, "Second").await;
        let start = today(&app);
        let (_, broken_rp, _, _) = active_recurring(&app, &vipps, &recurring_intent(start, "100")).await;
        let mut body = recurring_intent(start, "100");
        body["PaymentMethod"]["Target"] = json!("Second");
        let (_, working_rp, _, _) = active_recurring(&app, &vipps, &body).await;
        let broken = account_id(&app, "Sandbox").await;
        let response = app
            .admin(Method::PATCH, &format!("/admin/api/accounts/{broken}"))
            .json(&json!({"client_secret": "a-secret-vipps-does-not-know"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);

        app.state.payments.collect_recurring().await.expect("one account's trouble does not fail the beat");
        app.state.payments.sync_recurring(1000).await.expect("nor the poll");
        let working = installments(&app, &vipps, &working_rp).await;
        assert_eq!(working[0]["Status"], "Pending", "the other account was charged: {working:?}");
        let waiting = installments(&app, &vipps, &broken_rp).await;
        assert_eq!(waiting[0]["Status"], "Outstanding", "not the payer's fault, so not Failed: {waiting:?}");

        let admin = app.browser(Role::Admin).await;
        let (_, dashboard) = admin.get("/").await;
        assert!(dashboard.contains("Sandbox") && dashboard.contains("credentials"), "{dashboard}");

        // Fixed credentials: the next run (past the minute a charge waits before it is sent again) charges what
        // waited.
        let merchant = vipps.sim.merchants()[0].clone();
        app.admin(Method::PATCH, &format!("/admin/api/accounts/{broken}"))
            .json(&json!({"client_secret": merchant.client_secret}))
            .send()
            .await
            .unwrap();
        vipps.sim.advance(120).await;
        app.state.payments.collect_recurring().await.unwrap();
        let charged = installments(&app, &vipps, &broken_rp).await;
        assert_eq!(charged[0]["Status"], "Pending", "{charged:?}");
    }
}
