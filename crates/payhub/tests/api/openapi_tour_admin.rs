//! A tour of the admin API (`/admin/api`) through real HTTP with the Vipps simulator: every operation the
//! document lists under it is driven to a success answer, so the conformance check (`helpers::conformance`)
//! holds each success schema to a real answer; the tour ends by proving it reached every one.

use std::time::Duration;

use payhub::domain::role::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::conformance::document;
use crate::helpers::{account_body, TestApp, Vipps};
use crate::on_both_backends;

const NUMBER: &str = "57860";

/// Calls `method path` with `key` and an optional JSON body; the status and the JSON answer (`null` if none).
async fn call(app: &TestApp, key: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = app.http.request(method, app.url(path)).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Calls with the admin key and asserts the status.
async fn admin(app: &TestApp, method: Method, path: &str, body: Option<Value>, expected: StatusCode) -> Value {
    let (status, answer) = call(app, &app.admin_key, method.clone(), path, body).await;
    assert_eq!(status, expected, "{method} {path}: {answer}");
    answer
}

fn id_of(value: &Value) -> String {
    value["id"].as_str().unwrap_or_else(|| panic!("no id in {value}")).to_owned()
}

async fn accounts_and_access(app: &TestApp, vipps: &Vipps) {
    let listed = admin(app, Method::GET, "/admin/api/accounts", None, StatusCode::OK).await;
    let sandbox = id_of(&listed["accounts"][0]);
    let today = payhub::domain::schedule::oslo_date((vipps.sim.clock_fn())()).to_string();
    let changed = json!({"reconciliation_enabled": true, "initial_ledger_date": today, "retry_days": 5});
    let patched =
        admin(app, Method::PATCH, &format!("/admin/api/accounts/{sandbox}"), Some(changed), StatusCode::OK).await;
    assert_eq!((patched["retry_days"].as_i64(), patched["reconciliation_enabled"].as_bool()), (Some(5), Some(true)));
    let read = admin(app, Method::GET, &format!("/admin/api/accounts/{sandbox}"), None, StatusCode::OK).await;
    assert_eq!(read, patched);
    let spare = admin(app, Method::POST, "/admin/api/accounts", Some(account_body("Spare")), StatusCode::CREATED).await;
    assert_eq!(spare["client_secret_set"], true);
    assert!(spare.get("client_secret").is_none(), "a secret never comes back: {spare}");
    admin(app, Method::DELETE, &format!("/admin/api/accounts/{}", id_of(&spare)), None, StatusCode::NO_CONTENT).await;

    let key = json!({"name": "tour key", "role": "finance"});
    let created = admin(app, Method::POST, "/admin/api/keys", Some(key), StatusCode::CREATED).await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(created["key"]["prefix"].as_str().unwrap()), "{created}");
    let keys = admin(app, Method::GET, "/admin/api/keys", None, StatusCode::OK).await;
    assert!(!keys.to_string().contains(&secret), "the list never shows a key itself");
    let path = format!("/admin/api/keys/{}", id_of(&created["key"]));
    admin(app, Method::DELETE, &path, None, StatusCode::NO_CONTENT).await;
    assert_eq!(call(app, &secret, Method::GET, "/admin/api/payouts", None).await.0, StatusCode::UNAUTHORIZED);

    let user = json!({"email": "tour@example.org", "password": "a long password 123", "role": "finance"});
    let user = admin(app, Method::POST, "/admin/api/users", Some(user), StatusCode::CREATED).await;
    assert!(user.get("password_hash").is_none() && user["disabled_at"].is_null(), "{user}");
    admin(app, Method::DELETE, &format!("/admin/api/users/{}", id_of(&user)), None, StatusCode::NO_CONTENT).await;
    let users = admin(app, Method::GET, "/admin/api/users", None, StatusCode::OK).await;
    assert!(users["users"][0]["disabled_at"].is_string(), "{users}");

    let audit =
        admin(app, Method::GET, &format!("/admin/api/audit?object_id={sandbox}&limit=5"), None, StatusCode::OK).await;
    assert_eq!(audit["entries"][0]["action"], "account.update", "{audit}");
}

async fn webhooks_and_jobs(app: &TestApp) {
    let endpoint = json!({"url": "http://127.0.0.1:9/hooks", "description": "tour", "event_types": []});
    let created = admin(app, Method::POST, "/admin/api/webhook-endpoints", Some(endpoint), StatusCode::CREATED).await;
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"), "{created}");
    let rotated = admin(app, Method::POST, "/admin/api/intent-webhook-secret", None, StatusCode::CREATED).await;
    assert!(rotated["secret"].is_string());
    let listed = admin(app, Method::GET, "/admin/api/webhook-endpoints", None, StatusCode::OK).await;
    assert_eq!(listed["intent_webhook_secret_set"], true);
    assert!(!listed.to_string().contains("whsec_"), "secrets are write-only: {listed}");

    let mut tx = app.state.jobs.queue.begin().await.unwrap();
    let ids = payhub::processing::outbox::emit(&mut tx, "installment.status_change", json!({"Id": "in_1"}), None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let deliveries =
        admin(app, Method::GET, "/admin/api/webhook-deliveries?status=pending", None, StatusCode::OK).await;
    assert_eq!(deliveries["deliveries"][0]["id"], ids[0].as_str());
    let path = format!("/admin/api/webhook-deliveries/{}/resend", ids[0]);
    let resent = admin(app, Method::POST, &path, None, StatusCode::ACCEPTED).await;
    assert_eq!(resent["status"], "pending");
    let path = format!("/admin/api/webhook-endpoints/{}", id_of(&created));
    admin(app, Method::DELETE, &path, None, StatusCode::NO_CONTENT).await;

    app.state.jobs.heartbeat.register("tour", Duration::from_secs(600), |_| async { Ok(()) });
    let run = admin(app, Method::POST, "/admin/api/beats/tour/run", None, StatusCode::ACCEPTED).await;
    let jobs = admin(app, Method::GET, "/admin/api/jobs?limit=50", None, StatusCode::OK).await;
    assert!(jobs["counts"]["queued"].as_i64().unwrap() >= 1, "{jobs}");
    app.state.jobs.run_until_idle().await.unwrap();
    let beats = admin(app, Method::GET, "/admin/api/beats", None, StatusCode::OK).await;
    assert!(beats["beats"].as_array().unwrap().contains(&json!({"name": "tour", "period_seconds": 600})));
    assert!(beats["runs"].as_array().unwrap().iter().any(|r| r["id"] == run["run_id"]), "{beats}");
}

/// Payers pay the Vipps number straight; the portal's settlement file of it is imported.
async fn settlement_file_imported(app: &TestApp, vipps: &Vipps, finance: &str) {
    for (ore, name) in [(25_000, "Kari Test"), (10_000, "Ola Test"), (5_000, "Per Test")] {
        let body =
            json!({"vippsNumber": NUMBER, "amount": ore, "name": name, "message": "gave", "phoneNumber": "4791234567"});
        assert_eq!(vipps.control("/_sim/vipps-number-payments", body).await, StatusCode::CREATED);
    }
    let url = format!("{}/_sim/vipps-number-payments/{NUMBER}/settlement.csv?lang=no", vipps.sim.base_url());
    let file = vipps.http.get(url).send().await.unwrap().bytes().await.unwrap();
    let response = app
        .http
        .post(app.url("/admin/api/reconciliation/files?account=Sandbox"))
        .bearer_auth(finance)
        .header("content-type", "text/csv")
        .body(file)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let imported: Value = response.json().await.unwrap();
    assert_eq!(imported["summary"], "3 new, 0 already imported", "{imported}");
}

async fn reconciliation(app: &TestApp, vipps: &Vipps) {
    let finance = app.key(Role::Finance).await;
    let finance = finance.as_str();
    settlement_file_imported(app, vipps, finance).await;
    let (status, page) =
        call(app, finance, Method::GET, "/admin/api/reconciliation/queue?status=open&limit=2", None).await;
    assert_eq!((status, page["items"].as_array().map(Vec::len)), (StatusCode::OK, Some(2)), "{page}");
    assert!(page["next_after"].is_string(), "{page}");

    let next = "/admin/api/reconciliation/queue/next";
    let (status, first) = call(app, finance, Method::POST, next, None).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let a = id_of(&first["item"]);
    let path = format!("/admin/api/reconciliation/queue/{a}/create");
    let (status, booked) = call(app, finance, Method::POST, &path, Some(json!({"product": "Tour"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{booked}");
    let installment = booked["installments"][0]["installment_id"].clone();
    let (status, undone) =
        call(app, finance, Method::POST, &format!("/admin/api/reconciliation/queue/{a}/undo"), None).await;
    assert_eq!((status, &undone["item"]["status"]), (StatusCode::OK, &json!("open")), "{undone}");
    let body = json!({"installment_ids": [installment]});
    let (status, matched) =
        call(app, finance, Method::POST, &format!("/admin/api/reconciliation/queue/{a}/match"), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{matched}");

    let (_, second) = call(app, finance, Method::POST, next, None).await;
    let b = id_of(&second["item"]);
    let path = format!("/admin/api/reconciliation/queue/{b}/ignore?next=true");
    let (status, ignored) = call(app, finance, Method::POST, &path, Some(json!({"remark": "staff test"}))).await;
    assert_eq!((status, &ignored["ignored"]), (StatusCode::OK, &json!(b)), "{ignored}");
    let (_, none) = call(app, finance, Method::POST, next, None).await;
    assert_eq!(none, json!({"item": null}), "the last item is leased by Ignore & Next");
    let (status, retried) = call(app, finance, Method::POST, "/admin/api/reconciliation/queue/retry", None).await;
    assert_eq!((status, retried["matched"].as_u64()), (StatusCode::OK, Some(0)), "{retried}");
    let (status, item) = call(app, finance, Method::GET, &format!("/admin/api/reconciliation/queue/{b}"), None).await;
    assert_eq!((status, &item["item"]["status"]), (StatusCode::OK, &json!("ignored")), "{item}");

    let (status, runs) =
        call(app, finance, Method::POST, "/admin/api/reconciliation/runs", Some(json!({"account": "Sandbox"}))).await;
    assert_eq!((status, &runs["runs"][0]["account"]), (StatusCode::OK, &json!("Sandbox")), "{runs}");
    let (status, listed) =
        call(app, finance, Method::GET, "/admin/api/reconciliation/runs?account=Sandbox", None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert!(listed["runs"].as_array().unwrap().len() >= 2, "the file's run and this one: {listed}");
    let (status, payouts) = call(app, finance, Method::GET, "/admin/api/payouts?limit=10", None).await;
    assert_eq!(status, StatusCode::OK, "{payouts}");
}

async fn giving_pages(app: &TestApp) {
    let page = json!({"slug": "tour", "title": {"nb": "Gi en gave", "en": "Give"}, "amounts": [100, {"amount": "250", "narrative": "Clean water"}],
        "frequencies": ["OneTime", "Monthly"], "account": "Sandbox", "parameter_defaults": {"TransactionText": "Gift to us"}});
    let created = admin(app, Method::POST, "/admin/api/giving-pages", Some(page), StatusCode::CREATED).await;
    assert_eq!((created["amounts"][1]["amount"].as_f64(), created["min_amount"].as_f64()), (Some(250.0), Some(10.0)));
    let path = format!("/admin/api/giving-pages/{}", id_of(&created));
    let changed =
        admin(app, Method::PATCH, &path, Some(json!({"active": false, "campaign": null})), StatusCode::OK).await;
    assert_eq!(changed["active"], false);
    let mut read = admin(app, Method::GET, &path, None, StatusCode::OK).await;
    // The change's answer carries the clock's full precision; the stored time is rounded to microseconds.
    read["updated_at"] = changed["updated_at"].clone();
    assert_eq!(read, changed);
    let listed = admin(app, Method::GET, "/admin/api/giving-pages", None, StatusCode::OK).await;
    assert_eq!(listed["giving_pages"][0]["url"], created["url"]);
    admin(app, Method::DELETE, &path, None, StatusCode::NO_CONTENT).await;
}

on_both_backends! {
    with &[("PAYHUB_RECONCILE_BEAT_HOURS", "876000")];
    async fn every_admin_api_operation_answers_a_success_the_document_describes(app) {
        let vipps = app.with_vipps().await;
        accounts_and_access(&app, &vipps).await;
        webhooks_and_jobs(&app).await;
        reconciliation(&app, &vipps).await;
        giving_pages(&app).await;

        let seen = app.conformance.seen();
        let mut unreached = Vec::new();
        for (path, item) in document()["paths"].as_object().unwrap() {
            if !path.starts_with("/admin/api") {
                continue;
            }
            for method in item.as_object().unwrap().keys() {
                let operation = format!("{} {path} ", method.to_uppercase());
                if !seen.iter().any(|s| s.starts_with(&operation) && s[operation.len()..].starts_with('2')) {
                    unreached.push(operation);
                }
            }
        }
        assert!(unreached.is_empty(), "operations the tour never brought to a success: {unreached:#?}\nseen: {seen:#?}");
    }
}
