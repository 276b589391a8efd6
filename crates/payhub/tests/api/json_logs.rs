//! JSON logs: a line logged while handling a request carries the request id, the account and the record it
//! concerns; a job's lines carry the job; no line carries a secret.

use std::io::Write;
use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{account_body, seed_intent, with, Backend, TestApp};

/// A writer that keeps what the JSON formatter writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn traffic(app: TestApp) -> Vec<u8> {
    let vipps = app.with_vipps().await;
    let merchant = vipps.sim.merchants()[0].clone();
    // An account Vipps refuses: its intent is refused at Vipps, which payhub logs inside the request.
    let body = with(
        account_body("Refused"),
        json!({"merchant_serial_number": merchant.msn, "client_key": merchant.client_id,
               "client_secret": "not-the-secret-0123456789", "api_base_url": vipps.sim.base_url()}),
    );
    app.create_account(body).await;
    let mut intent = seed_intent();
    intent["PaymentMethod"]["Target"] = json!("Refused");
    let (status, answer) = app.intent(&vipps, &intent).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{answer}");
    let intent_id = answer["Id"].as_str().unwrap().to_owned();
    // A delivery nobody answers: the job's failure is logged in the job's span.
    let (status, _) = app.intent(&vipps, &with(seed_intent(), json!({"WebhookURL": "http://127.0.0.1:9/hook"}))).await;
    assert_eq!(status, StatusCode::OK);
    app.state.jobs.run_until_idle().await.unwrap();
    intent_id.into_bytes()
}

fn check(backend: Backend) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter("info,sqlx=warn")
        .with_writer(move || writer.clone())
        .finish();
    // One thread runs the app and the test, so this thread's subscriber sees every task's lines.
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let intent_id = runtime.block_on(async {
        let app = TestApp::spawn(backend).await?;
        Some(String::from_utf8(traffic(app).await).unwrap())
    });
    let Some(intent_id) = intent_id else {
        eprintln!("skipped: PAYHUB_TEST_DATABASE_URL is not set");
        return;
    };
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("every line is JSON")).collect();
    let refused = lines
        .iter()
        .find(|l| l["message"] == "Vipps refused the payment")
        .unwrap_or_else(|| panic!("the refusal is logged: {text}"));
    let span = &refused["span"];
    assert!(span["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{refused}");
    assert!(refused["account_id"].as_str().is_some_and(|a| a.starts_with("acc_")), "the account: {refused}");
    assert_eq!(refused["intent_id"], intent_id.as_str(), "the intent: {refused}");
    assert!(refused["reference"].as_str().is_some_and(|r| r.starts_with("pi-")), "the payment reference: {refused}");
    let job = lines
        .iter()
        .find(|l| l["message"] == "job failed" && l["span"]["kind"] == "webhook.deliver")
        .unwrap_or_else(|| panic!("the failed delivery's line: {text}"));
    assert_eq!(job["span"]["name"], "job", "{job}");
    assert!(job["span"]["job_id"].is_number() && job["span"]["attempt"] == 1, "{job}");
    assert!(job["span"]["record"].as_str().is_some_and(|r| !r.is_empty()), "the delivery: {job}");
    for secret in ["not-the-secret-0123456789", "client-secret-", "subkey-"] {
        assert!(!text.contains(secret), "a secret in the logs: {secret}");
    }
}

#[test]
fn log_lines_name_the_request_account_and_record_and_never_a_secret_on_sqlite() {
    check(Backend::Sqlite);
}

#[test]
fn log_lines_name_the_request_account_and_record_and_never_a_secret_on_postgres() {
    check(Backend::Postgres);
}
