//! Access token: fetched once and shared, refreshed before expiry, refreshed after a 401.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{unique, Proxy, TestEnv};
use serde_json::json;
use vipps_client::epayment::{CreatePaymentRequest, Reference};
use vipps_client::{Amount, ErrorKind, IdempotencyKey, Secret};
use vipps_sim::SimConfig;

async fn payment(client: &vipps_client::Client) -> Reference {
    let reference = Reference::parse(&unique("token")).unwrap();
    let request = CreatePaymentRequest::web_redirect(Amount::nok(1000), reference.clone(), "https://example.com/r");
    client.epayment().create(&request, &IdempotencyKey::random()).await.unwrap();
    reference
}

#[tokio::test]
async fn concurrent_callers_share_one_token_fetch() {
    let env = TestEnv::start().await;
    let proxy = Proxy::start(env.base()).await;
    let client = common::client_for(&proxy.base_url, env.merchant(), |_| {});
    let reference = payment(&client).await;
    client.clear_token();

    let calls = (0..20).map(|_| {
        let client = client.clone();
        let reference = reference.clone();
        tokio::spawn(async move { client.epayment().get(&reference).await })
    });
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(proxy.token_fetches(), 2, "one fetch before create, one shared by the 20 calls");
}

#[tokio::test]
async fn the_token_is_refreshed_before_it_expires() {
    let config = SimConfig { token_lifetime: chrono::Duration::seconds(2), ..SimConfig::default() };
    let env = TestEnv::start_with(config).await;
    let proxy = Proxy::start(env.base()).await;
    let client = common::client_for(&proxy.base_url, env.merchant(), |_| {});
    let reference = payment(&client).await;
    client.epayment().get(&reference).await.unwrap();
    assert_eq!(proxy.token_fetches(), 1);

    // Lifetime 2 s: the client refreshes after half of it, before the simulator would refuse it.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    client.epayment().get(&reference).await.unwrap();
    assert_eq!(proxy.token_fetches(), 2);
    assert!(proxy.seen().iter().all(|s| s.status != 401), "no call should have used an expired token");
}

#[tokio::test]
async fn a_token_rejected_with_401_is_replaced_once_and_the_call_repeated() {
    let env = TestEnv::start().await;
    let proxy = Proxy::start(env.base()).await;
    let client = common::client_for(&proxy.base_url, env.merchant(), |_| {});
    let reference = payment(&client).await;

    // The simulator's clock passes the token's expiry; the client's cache still thinks it fresh.
    env.sim.advance(2 * 3600).await;
    let found = client.epayment().get(&reference).await.unwrap();
    assert_eq!(found.reference, reference.as_str());

    let statuses: Vec<u16> = proxy.seen().iter().filter(|s| s.method == "GET").map(|s| s.status).collect();
    assert_eq!(statuses, [401, 200]);
    assert_eq!(proxy.token_fetches(), 2);
}

#[tokio::test]
async fn wrong_credentials_fail_as_authentication_without_retry_loops() {
    let env = TestEnv::start().await;
    let proxy = Proxy::start(env.base()).await;
    let client = common::client_for(&proxy.base_url, env.merchant(), |c| {
        c.credentials.client_secret = Secret::new("wrong");
    });
    let err = client.authenticate().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
    assert_eq!(err.status(), Some(401));
    assert!(!format!("{err:?}").contains(&env.merchant().subscription_key), "the key must not leak into errors");
    assert_eq!(proxy.token_fetches(), 1);

    let err = client.epayment().get(&Reference::parse("whatever-123").unwrap()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication);
    assert_eq!(proxy.token_fetches(), 2);
}

#[tokio::test]
async fn a_failing_token_endpoint_is_retried() {
    let env = TestEnv::start().await;
    env.fault("/accesstoken/get", json!({"kind": "500"}), 2).await;
    let client = env.client();
    client.authenticate().await.unwrap();
}

#[tokio::test]
async fn a_failed_early_refresh_keeps_using_the_still_valid_token() {
    let config = SimConfig { token_lifetime: chrono::Duration::seconds(6), ..SimConfig::default() };
    let env = TestEnv::start_with(config).await;
    let proxy = Proxy::start(env.base()).await;
    let client = common::client_for(&proxy.base_url, env.merchant(), |c| {
        c.retry = vipps_client::RetryPolicy::new(1, Duration::from_millis(5), Duration::from_millis(10));
    });
    let reference = payment(&client).await;

    // Past the refresh point (half of 6 s) but before expiry, the token endpoint fails.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    env.fault("/accesstoken/get", json!({"kind": "500"}), 2).await;
    client.epayment().get(&reference).await.unwrap();
    let token_calls: Vec<u16> =
        proxy.seen().iter().filter(|s| s.path == "/accesstoken/get").map(|s| s.status).collect();
    assert_eq!(token_calls, [200, 500, 500], "one refresh attempt with one retry, then the old token");
    assert!(proxy.seen().iter().all(|s| s.status != 401));

    // Once the endpoint works again the next call refreshes.
    client.epayment().get(&reference).await.unwrap();
    assert_eq!(proxy.token_fetches(), 4);
}
