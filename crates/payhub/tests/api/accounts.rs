//! The admin API for merchant accounts.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{account_body, with};
use crate::on_both_backends;

async fn error_fields(response: reqwest::Response) -> Vec<(String, String)> {
    let body: Value = response.json().await.unwrap();
    assert!(body["RequestId"].as_str().is_some_and(|id| !id.is_empty()), "{body}");
    body["Errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["field"].as_str().unwrap_or_default().to_owned(), e["error_code"].as_str().unwrap().to_owned()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

async fn defaults(app: &crate::helpers::TestApp) -> Vec<String> {
    let list: Value = app.admin(Method::GET, "/admin/api/accounts").send().await.unwrap().json().await.unwrap();
    list["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["is_default"] == true)
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect()
}

on_both_backends! {
    async fn moving_an_account_to_another_vipps_host_needs_its_secrets_again(app) {
        let created = app.create_account(account_body("Innsamling")).await;
        let id = created["id"].as_str().unwrap();
        let path = format!("/admin/api/accounts/{id}");
        // The stored secrets were given for the old host; they must not be sent to a new one unasked.
        let moved = app.admin(Method::PATCH, &path).json(&json!({"api_base_url": "https://vipps.example.net"})).send().await.unwrap();
        assert_eq!(moved.status(), StatusCode::BAD_REQUEST);
        assert_eq!(error_fields(moved).await, pairs(&[("client_secret", "010"), ("subscription_key", "010")]));
        let switched = app.admin(Method::PATCH, &path).json(&json!({"is_test": false})).send().await.unwrap();
        assert_eq!(switched.status(), StatusCode::BAD_REQUEST, "test to production is another host too");
        let unchanged: Value = app.admin(Method::GET, &path).send().await.unwrap().json().await.unwrap();
        assert_eq!(unchanged["api_base_url"], created["api_base_url"]);
        assert_eq!(unchanged["is_test"], created["is_test"]);
        let with_secrets = app
            .admin(Method::PATCH, &path)
            .json(&json!({"api_base_url": "https://vipps.example.net", "client_secret": "new-host-secret-1234", "subscription_key": "new-host-key-12345"}))
            .send()
            .await
            .unwrap();
        assert_eq!(with_secrets.status(), StatusCode::OK);
        // Other changes need no secrets.
        let renamed = app.admin(Method::PATCH, &path).json(&json!({"name": "Innsamling 2"})).send().await.unwrap();
        assert_eq!(renamed.status(), StatusCode::OK);
    }

    async fn an_account_is_created_read_listed_and_its_secrets_never_come_back(app) {
        let created = app.create_account(account_body("Main")).await;
        assert_eq!(created["name"], "Main");
        assert_eq!(created["merchant_serial_number"], "123456");
        assert_eq!(created["client_secret_set"], true);
        assert_eq!(created["subscription_key_set"], true);
        assert_eq!(created["retry_days"], 3);
        assert_eq!(created["is_default"], true, "the first account becomes the default");
        assert_eq!(created["vipps_base_url"], "https://apitest.vipps.no");
        let text = created.to_string();
        assert!(!text.contains("client-secret-Main") && !text.contains("subkey-Main"), "{text}");

        let id = created["id"].as_str().unwrap();
        let fetched: Value = app.admin(Method::GET, &format!("/admin/api/accounts/{id}")).send().await.unwrap().json().await.unwrap();
        assert_eq!(fetched, created);
        let list = app.admin(Method::GET, "/admin/api/accounts").send().await.unwrap().text().await.unwrap();
        assert!(list.contains(id) && !list.contains("client-secret-Main"));

        let credentials = app.state.accounts.credentials(id).await.unwrap();
        assert_eq!(credentials.client_secret.expose(), "client-secret-Main-Y8Kteew6GE2Zme");
        assert_eq!(credentials.subscription_key.expose(), "subkey-Main-0f14ebcab0ec4b29ae0cb9");
    }

    async fn exactly_one_account_is_the_default_while_any_exist(app) {
        let first = app.create_account(account_body("First")).await;
        app.create_account(account_body("Second")).await;
        assert_eq!(defaults(&app).await, ["First"]);
        let third = app.create_account(with(account_body("Third"), json!({"is_default": true}))).await;
        assert_eq!(defaults(&app).await, ["Third"]);

        // The default flag cannot simply be taken away.
        let id = third["id"].as_str().unwrap();
        let refused = app.admin(Method::PATCH, &format!("/admin/api/accounts/{id}")).json(&json!({"is_default": false})).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert_eq!(error_fields(refused).await, pairs(&[("is_default", "200")]));
        assert_eq!(defaults(&app).await, ["Third"]);

        // Making another the default moves the flag.
        let first_id = first["id"].as_str().unwrap();
        let moved = app.admin(Method::PATCH, &format!("/admin/api/accounts/{first_id}")).json(&json!({"is_default": true})).send().await.unwrap();
        assert_eq!(moved.status(), StatusCode::OK);
        assert_eq!(defaults(&app).await, ["First"]);

        // Deleting the default promotes the oldest remaining account.
        let deleted = app.admin(Method::DELETE, &format!("/admin/api/accounts/{first_id}")).send().await.unwrap();
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
        assert_eq!(defaults(&app).await, ["Second"]);
        assert_eq!(app.account_count().await, 2);
    }

    async fn an_update_changes_only_what_it_names_and_keeps_secrets_unless_given(app) {
        let created = app.create_account(account_body("Main")).await;
        let id = created["id"].as_str().unwrap();
        let updated: Value = app
            .admin(Method::PATCH, &format!("/admin/api/accounts/{id}"))
            .json(&json!({"retry_days": 14, "product_name": "Fast giver", "subscription_key": "new-subscription-key-value"}))
            .send().await.unwrap().json().await.unwrap();
        assert_eq!(updated["retry_days"], 14);
        assert_eq!(updated["product_name"], "Fast giver");
        assert_eq!(updated["merchant_serial_number"], "123456");
        let credentials = app.state.accounts.credentials(id).await.unwrap();
        assert_eq!(credentials.client_secret.expose(), "client-secret-Main-Y8Kteew6GE2Zme");
        assert_eq!(credentials.subscription_key.expose(), "new-subscription-key-value");
    }

    async fn invalid_fields_are_all_reported_and_nothing_is_written(app) {
        let body = with(account_body("Bad"), json!({
            "merchant_serial_number": "12ab",
            "retry_days": 15,
            "is_test": false,
            "merchant_agreement_url": "http://example.org/agreements",
            "reconciliation_enabled": true,
            "client_secret": ""
        }));
        let response = app.admin(Method::POST, "/admin/api/accounts").json(&body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            error_fields(response).await,
            pairs(&[
                ("merchant_serial_number", "200"),
                ("client_secret", "010"),
                ("merchant_agreement_url", "200"),
                ("retry_days", "200"),
                ("initial_ledger_date", "010"),
            ])
        );
        assert_eq!(app.account_count().await, 0);
    }

    async fn a_duplicate_name_is_a_conflict_whatever_its_case(app) {
        app.create_account(account_body("Main")).await;
        let response = app.admin(Method::POST, "/admin/api/accounts").json(&account_body("MAIN")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(error_fields(response).await, pairs(&[("name", "409")]));
        let other = app.create_account(account_body("Other")).await;
        let rename = app
            .admin(Method::PATCH, &format!("/admin/api/accounts/{}", other["id"].as_str().unwrap()))
            .json(&json!({"name": "main"}))
            .send().await.unwrap();
        assert_eq!(rename.status(), StatusCode::CONFLICT);
        assert_eq!(app.account_count().await, 2);
    }

    async fn malformed_bodies_get_the_error_envelope_and_change_nothing(app) {
        let cases: Vec<(reqwest::RequestBuilder, StatusCode, Option<&str>)> = vec![
            (app.admin(Method::POST, "/admin/api/accounts").header("content-type", "application/json").body("{\"name\": "), StatusCode::BAD_REQUEST, None),
            (app.admin(Method::POST, "/admin/api/accounts").json(&with(account_body("X"), json!({"retrydays": 3}))), StatusCode::BAD_REQUEST, None),
            (app.admin(Method::POST, "/admin/api/accounts").json(&with(account_body("X"), json!({"retry_days": "three"}))), StatusCode::BAD_REQUEST, Some("retry_days")),
            (app.admin(Method::POST, "/admin/api/accounts").json(&with(account_body("X"), json!({"is_test": "yes"}))), StatusCode::BAD_REQUEST, Some("is_test")),
            (app.admin(Method::POST, "/admin/api/accounts").body(account_body("X").to_string()), StatusCode::UNSUPPORTED_MEDIA_TYPE, None),
            (app.admin(Method::POST, "/admin/api/accounts").header("content-type", "application/json").body(format!("{{\"name\": \"{}\"}}", "x".repeat(200_000))), StatusCode::PAYLOAD_TOO_LARGE, None),
            (app.admin(Method::POST, "/admin/api/accounts").json(&json!([1, 2])), StatusCode::BAD_REQUEST, None),
        ];
        for (request, status, field) in cases {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), status);
            let body: Value = response.json().await.unwrap();
            let error = &body["Errors"][0];
            assert!(error["error_message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
            if let Some(field) = field {
                assert_eq!(error["field"], field, "{body}");
            }
        }
        assert_eq!(app.account_count().await, 0);
    }

    async fn unknown_accounts_and_endpoints_are_not_found_in_the_envelope(app) {
        for (method, path) in [(Method::GET, "/admin/api/accounts/acc_nope"), (Method::PATCH, "/admin/api/accounts/acc_nope"), (Method::DELETE, "/admin/api/accounts/acc_nope"), (Method::GET, "/admin/api/nothing")] {
            let mut request = app.admin(method.clone(), path);
            if method == Method::PATCH {
                request = request.json(&json!({"retry_days": 1}));
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {path}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["Errors"][0]["error_code"], "404");
        }
    }

    async fn every_change_is_in_the_audit_log_without_secrets(app) {
        let created = app.create_account(account_body("Main")).await;
        let id = created["id"].as_str().unwrap();
        app.admin(Method::PATCH, &format!("/admin/api/accounts/{id}")).json(&json!({"client_secret": "rotated-secret-value-123"})).send().await.unwrap();
        app.admin(Method::DELETE, &format!("/admin/api/accounts/{id}")).send().await.unwrap();
        let log: Value = app.admin(Method::GET, &format!("/admin/api/audit?object_id={id}")).send().await.unwrap().json().await.unwrap();
        let actions: Vec<&str> = log["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["account.delete", "account.update", "account.create"]);
        let entry = &log["entries"][1];
        assert!(entry["actor"].as_str().unwrap().starts_with("key:"), "{entry}");
        assert_eq!(entry["source"], "127.0.0.1");
        assert_eq!(entry["details"]["fields"], json!(["client_secret"]));
        let text = log.to_string();
        assert!(!text.contains("rotated-secret-value") && !text.contains("client-secret-Main"), "{text}");
    }
}
