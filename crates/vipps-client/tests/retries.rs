//! Retries reuse the caller's idempotency key: after an injected 500, 429, dropped connection
//! or timeout, the operation still happens exactly once.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{unique, Proxy, TestEnv};
use serde_json::json;
use vipps_client::epayment::{CreatePaymentRequest, PaymentEventName, Reference};
use vipps_client::{Amount, CallOptions, Client, ErrorKind, IdempotencyKey, RetryPolicy};

async fn authorized_payment(env: &TestEnv, client: &Client) -> Reference {
    let reference = Reference::parse(&unique("retry")).unwrap();
    let request = CreatePaymentRequest::web_redirect(Amount::nok(1000), reference.clone(), "https://example.com/r");
    client.epayment().create(&request, &IdempotencyKey::random()).await.unwrap();
    env.approve(reference.as_str()).await;
    reference
}

async fn captures(client: &Client, reference: &Reference) -> usize {
    let events = client.epayment().events(reference).await.unwrap();
    events.iter().filter(|e| e.name == PaymentEventName::Captured).count()
}

/// Runs one capture through a proxy after injecting `rule`, and checks the retries.
async fn capture_after_fault(rule: serde_json::Value, options: CallOptions) -> (Proxy, Duration) {
    let env = TestEnv::start().await;
    let proxy = Proxy::start(env.base()).await;
    let client = common::client_for(&proxy.base_url, env.merchant(), |_| {});
    let reference = authorized_payment(&env, &client).await;
    let path = format!("/epayment/v1/payments/{reference}/capture");
    env.fault(&path, rule, 1).await;

    let key = IdempotencyKey::random();
    let started = Instant::now();
    let response = client.epayment().with_options(options).capture(&reference, &Amount::nok(300), &key).await.unwrap();
    let took = started.elapsed();
    assert_eq!(response.aggregate.captured_amount, Amount::nok(300));
    assert_eq!(captures(&client, &reference).await, 1, "the capture must happen exactly once");

    let attempts: Vec<_> = proxy.seen().into_iter().filter(|s| s.path == path).collect();
    assert!(attempts.len() >= 2, "expected a retry, saw {attempts:?}");
    assert!(attempts.iter().all(|a| a.idempotency_key.as_deref() == Some(key.as_str())), "{attempts:?}");
    (proxy, took)
}

#[tokio::test]
async fn a_server_error_is_retried_with_the_same_key() {
    let (proxy, _) = capture_after_fault(json!({"kind": "500"}), CallOptions::default()).await;
    let statuses: Vec<u16> = proxy.seen().iter().filter(|s| s.path.ends_with("/capture")).map(|s| s.status).collect();
    assert_eq!(statuses, [500, 200]);
}

#[tokio::test]
async fn a_429_is_retried_after_retry_after() {
    let (proxy, took) =
        capture_after_fault(json!({"kind": "429", "retryAfterSeconds": 1}), CallOptions::default()).await;
    let statuses: Vec<u16> = proxy.seen().iter().filter(|s| s.path.ends_with("/capture")).map(|s| s.status).collect();
    assert_eq!(statuses, [429, 200]);
    assert!(took >= Duration::from_millis(950), "Retry-After: 1 was not honoured ({took:?})");
}

#[tokio::test]
async fn a_timeout_after_vipps_acted_is_retried_and_replayed() {
    let options = CallOptions::timeout(Duration::from_millis(400));
    let (proxy, took) = capture_after_fault(json!({"kind": "delay", "delayMs": 3000}), options).await;
    assert!(took < Duration::from_millis(2500), "the per-call timeout was not applied ({took:?})");
    let completed: Vec<u16> = proxy.seen().iter().filter(|s| s.path.ends_with("/capture")).map(|s| s.status).collect();
    assert!(completed.contains(&200), "{completed:?}");
}

#[tokio::test]
async fn a_dropped_connection_is_retried() {
    let env = TestEnv::start().await;
    let client = env.client();
    let reference = authorized_payment(&env, &client).await;
    env.fault(&format!("/epayment/v1/payments/{reference}/capture"), json!({"kind": "drop"}), 2).await;
    let key = IdempotencyKey::random();
    client.epayment().capture(&reference, &Amount::nok(300), &key).await.unwrap();
    assert_eq!(captures(&client, &reference).await, 1);
}

#[tokio::test]
async fn client_errors_are_not_retried_and_the_retry_budget_is_finite() {
    let env = TestEnv::start().await;
    let proxy = Proxy::start(env.base()).await;
    let client = common::client_for(&proxy.base_url, env.merchant(), |_| {});
    let reference = authorized_payment(&env, &client).await;
    let path = format!("/epayment/v1/payments/{reference}/capture");

    // 400 (too much): one attempt only.
    let err = client.epayment().capture(&reference, &Amount::nok(99_999), &IdempotencyKey::random()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OperationNotAllowed);
    assert_eq!(proxy.count("POST", &path), 1);

    // Persistent 500: 1 + max_retries attempts, then the error.
    env.fault(&path, json!({"kind": "500"}), 10).await;
    let options =
        CallOptions::default().with_retry(RetryPolicy::new(2, Duration::from_millis(5), Duration::from_millis(10)));
    let err = client
        .epayment()
        .with_options(options)
        .capture(&reference, &Amount::nok(100), &IdempotencyKey::random())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ServerError);
    assert!(err.is_retryable());
    assert_eq!(proxy.count("POST", &path), 1 + 3);
    assert_eq!(captures(&client, &reference).await, 0);
}

#[tokio::test]
async fn a_retry_after_longer_than_allowed_is_returned_instead_of_waited() {
    let env = TestEnv::start().await;
    let client = env.client();
    let reference = authorized_payment(&env, &client).await;
    env.fault(&format!("/epayment/v1/payments/{reference}"), json!({"kind": "429", "retryAfterSeconds": 3600}), 1)
        .await;
    let started = Instant::now();
    let err = client.epayment().get(&reference).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.problem().and_then(|p| p.retry_after), Some(Duration::from_secs(3600)));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_timeout_without_retries_is_reported_as_a_timeout() {
    let env = TestEnv::start().await;
    let client = env.client();
    let reference = authorized_payment(&env, &client).await;
    env.fault(&format!("/epayment/v1/payments/{reference}/capture"), json!({"kind": "delay", "delayMs": 2000}), 1)
        .await;
    let options = CallOptions::timeout(Duration::from_millis(200)).with_retry(RetryPolicy::none());
    let started = Instant::now();
    let err = client
        .epayment()
        .with_options(options)
        .capture(&reference, &Amount::nok(300), &IdempotencyKey::random())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.is_retryable());
    assert!(started.elapsed() < Duration::from_millis(1500));
}
