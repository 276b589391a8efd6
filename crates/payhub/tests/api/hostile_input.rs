//! Bad input to the Payment API gets a clear error in FinDock's envelope, with the request's id, and writes
//! nothing: odd content types, duplicate keys, NUL characters, fields payhub cannot honour, amounts Vipps
//! would refuse later.

use payhub::domain::role::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{seed_intent, with, TestApp};
use crate::on_both_backends;

/// Rows in the tables a refused intent must not touch (checks storage itself: "nothing written").
async fn written(app: &TestApp) -> i64 {
    let mut total = 0;
    for table in ["payment_intents", "messages", "payers", "installments"] {
        let count: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(app.state.store.pool_for_tests())
            .await
            .unwrap();
        total += count;
    }
    total
}

async fn post_raw(app: &TestApp, key: &str, content_type: &str, body: &str) -> (StatusCode, Value) {
    let response = app
        .http
        .post(app.url("/v2/PaymentIntent"))
        .bearer_auth(key)
        .header("content-type", content_type)
        .header("x-request-id", "req-hostile-1")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap_or(Value::Null))
}

fn fields(answer: &Value) -> Vec<String> {
    answer["Errors"].as_array().into_iter().flatten().filter_map(|e| e["field"].as_str().map(str::to_owned)).collect()
}

on_both_backends! {
    async fn a_refused_intent_names_its_request_id(app) {
        let vipps = app.with_vipps().await;
        let body = with(seed_intent(), json!({"OneTime": {"Amount": "abc"}})).to_string();
        let (status, answer) = post_raw(&app, &vipps.integrator_key, "application/json", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(answer["RequestId"], "req-hostile-1", "{answer}");
    }

    async fn only_json_bodies_are_taken(app) {
        let vipps = app.with_vipps().await;
        let body = seed_intent().to_string();
        for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
            let (status, answer) = post_raw(&app, &vipps.integrator_key, content_type, &body).await;
            assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type}: {answer}");
            assert_eq!(answer["Errors"][0]["error_code"], "415");
        }
        assert_eq!(written(&app).await, 0);
    }

    async fn a_key_given_twice_is_refused_not_guessed(app) {
        let vipps = app.with_vipps().await;
        let body = seed_intent().to_string().replace(r#""Amount":"36""#, r#""Amount":"36","Amount":"3600""#);
        assert!(body.contains("3600"), "{body}");
        let (status, answer) = post_raw(&app, &vipps.integrator_key, "application/json", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(answer["Errors"][0]["error_message"].as_str().unwrap().contains("Amount"), "{answer}");
        assert_eq!(written(&app).await, 0);
    }

    async fn a_nul_character_is_refused_with_its_field(app) {
        let vipps = app.with_vipps().await;
        let body = with(seed_intent(), json!({"Payer": {"Contact": {"SalesforceFields": {"LastName": "John\u{0}son"}}}}));
        let (status, answer) = app.intent(&vipps, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(fields(&answer), ["Payer.Contact.SalesforceFields.LastName"], "{answer}");
        let body = with(seed_intent(), json!({"PaymentMethod": {"Parameters": {"TransactionText": "Gift\u{0} for you"}}}));
        let (status, answer) = app.intent(&vipps, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(fields(&answer), ["PaymentMethod.Parameters.TransactionText"], "{answer}");
        let response = app.http.get(app.url("/v2/PaymentIntent/pi_%00x")).bearer_auth(&vipps.integrator_key).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(written(&app).await, 0);
    }

    async fn a_payer_id_payhub_cannot_honour_is_refused(app) {
        let vipps = app.with_vipps().await;
        let body = with(seed_intent(), json!({"Payer": {"Contact": {"Id": "0035g00000AbCdE"}}}));
        let (status, answer) = app.intent(&vipps, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(fields(&answer), ["Payer.Contact.Id"], "{answer}");
        assert_eq!(written(&app).await, 0);
    }

    async fn an_amount_under_one_krone_is_refused_before_vipps_sees_it(app) {
        let vipps = app.with_vipps().await;
        for amount in [json!("0.99"), json!(0.5)] {
            let (status, answer) = app.intent(&vipps, &with(seed_intent(), json!({"OneTime": {"Amount": amount}}))).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
            assert_eq!(fields(&answer), ["OneTime.Amount"], "{answer}");
        }
        assert_eq!(written(&app).await, 0);
        let (status, answer) = app.intent(&vipps, &with(seed_intent(), json!({"OneTime": {"Amount": "1"}}))).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }

    async fn the_admin_api_refuses_a_nul_character_too(app) {
        let response = app
            .admin(reqwest::Method::POST, "/admin/api/users")
            .json(&json!({"email": "a\u{0}b@example.org", "password": "a long password 1", "role": Role::Finance}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(fields(&answer), ["email"], "{answer}");
    }
}
