//! ePayment lifecycle against the simulator.
#![allow(clippy::unwrap_used)]

mod common;

use common::{unique, TestEnv};
use vipps_client::epayment::{CreatePaymentRequest, Customer, PaymentEventName, Reference, State, TestApproval};
use vipps_client::{Amount, EpaymentErrorCode, ErrorKind, IdempotencyKey};

fn reference() -> Reference {
    Reference::parse(&unique("order")).unwrap()
}

fn key(label: &str) -> IdempotencyKey {
    IdempotencyKey::parse(&unique(label)).unwrap()
}

#[tokio::test]
async fn a_payment_goes_from_created_to_captured_refunded_and_cancelled() {
    let env = TestEnv::start().await;
    let client = env.client();
    let epayment = client.epayment();
    let reference = reference();

    let request =
        CreatePaymentRequest::web_redirect(Amount::nok(1000), reference.clone(), "https://example.com/return")
            .description("One pair of socks");
    let created = epayment.create(&request, &key("create")).await.unwrap();
    assert_eq!(created.reference, reference.as_str());
    assert!(created.redirect_url.is_some());

    let payment = epayment.get(&reference).await.unwrap();
    assert_eq!(payment.state, State::Created);
    assert_eq!(payment.amount, Amount::nok(1000));
    assert_eq!(payment.aggregate.authorized_amount.value, 0);

    env.approve(reference.as_str()).await;
    let payment = epayment.get(&reference).await.unwrap();
    assert_eq!(payment.state, State::Authorized);
    assert_eq!(payment.aggregate.authorized_amount, Amount::nok(1000));

    let captured = epayment.capture(&reference, &Amount::nok(250), &key("capture")).await.unwrap();
    assert_eq!(captured.state, State::Authorized);
    assert_eq!(captured.aggregate.captured_amount, Amount::nok(250));

    let refunded = epayment.refund(&reference, &Amount::nok(100), &key("refund")).await.unwrap();
    assert_eq!(refunded.aggregate.refunded_amount, Amount::nok(100));

    let cancelled = epayment.cancel(&reference, false, &key("cancel")).await.unwrap();
    assert_eq!(cancelled.state, State::Authorized);
    assert_eq!(cancelled.aggregate.cancelled_amount, Amount::nok(750));
    assert_eq!(cancelled.aggregate.captured_amount, Amount::nok(250));

    let names: Vec<PaymentEventName> = epayment.events(&reference).await.unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(
        names,
        [
            PaymentEventName::Created,
            PaymentEventName::Authorized,
            PaymentEventName::Captured,
            PaymentEventName::Refunded,
            PaymentEventName::Cancelled,
        ]
    );
}

#[tokio::test]
async fn test_approve_authorizes_a_push_payment_and_cancel_before_approval_terminates() {
    let env = TestEnv::start().await;
    let client = env.client();
    let epayment = client.epayment();

    let approved = reference();
    let request = CreatePaymentRequest::push_message(Amount::nok(4990), approved.clone(), "4791234567");
    let created = epayment.create(&request, &key("create")).await.unwrap();
    assert_eq!(created.redirect_url, None);
    epayment
        .test_approve(&approved, &TestApproval::Customer(Customer::PhoneNumber("4791234567".into())))
        .await
        .unwrap();
    assert_eq!(epayment.get(&approved).await.unwrap().state, State::Authorized);

    // Approval with the token of the redirect URL.
    let by_token = reference();
    let request = CreatePaymentRequest::web_redirect(Amount::nok(1000), by_token.clone(), "https://example.com/r");
    let created = epayment.create(&request, &key("create")).await.unwrap();
    let redirect: url::Url = created.redirect_url.unwrap().parse().unwrap();
    let token = redirect.query_pairs().find(|(k, _)| k == "token").unwrap().1.into_owned();
    let err = epayment.test_approve(&by_token, &TestApproval::Token("not-the-token".into())).await.unwrap_err();
    assert_eq!(err.problem().unwrap().epayment_code(), Some(vipps_client::EpaymentErrorCode::TestApproveFailed));
    epayment.test_approve(&by_token, &TestApproval::Token(token)).await.unwrap();
    assert_eq!(epayment.get(&by_token).await.unwrap().state, State::Authorized);

    let terminated = reference();
    let request = CreatePaymentRequest::web_redirect(Amount::nok(1000), terminated.clone(), "https://example.com/r");
    epayment.create(&request, &key("create")).await.unwrap();
    let response = epayment.cancel(&terminated, true, &key("cancel")).await.unwrap();
    assert_eq!(response.state, State::Terminated);
    assert_eq!(epayment.get(&terminated).await.unwrap().state, State::Terminated);
}

#[tokio::test]
async fn documented_error_codes_reach_the_caller_as_kinds() {
    let env = TestEnv::start().await;
    let client = env.client();
    let epayment = client.epayment();
    let reference = reference();
    let request = CreatePaymentRequest::web_redirect(Amount::nok(1000), reference.clone(), "https://example.com/r");
    epayment.create(&request, &key("create")).await.unwrap();

    // Same reference, new key: the reference already exists.
    let err = epayment.create(&request, &key("create")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReferenceAlreadyExists, "{err}");

    // Capture before the user approved.
    let err = epayment.capture(&reference, &Amount::nok(100), &key("capture")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OperationNotAllowed, "{err}");
    assert_eq!(err.problem().unwrap().epayment_code(), Some(EpaymentErrorCode::CaptureBeforeReservation));
    assert!(err.problem().unwrap().trace_id.is_some());

    env.approve(reference.as_str()).await;
    let err = epayment.capture(&reference, &Amount::nok(5000), &key("capture")).await.unwrap_err();
    assert_eq!(err.problem().unwrap().epayment_code(), Some(EpaymentErrorCode::CaptureAmountTooHigh));

    // The same key for a different capture is an idempotency conflict.
    let k = key("capture");
    epayment.capture(&reference, &Amount::nok(100), &k).await.unwrap();
    let err = epayment.capture(&reference, &Amount::nok(200), &k).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::IdempotencyConflict, "{err}");
    // ...while repeating the identical request replays the first answer.
    let replay = epayment.capture(&reference, &Amount::nok(100), &k).await.unwrap();
    assert_eq!(replay.aggregate.captured_amount, Amount::nok(100));

    let missing = Reference::parse("does-not-exist-123").unwrap();
    let err = epayment.get(&missing).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

#[tokio::test]
async fn every_call_carries_the_system_headers_and_the_msn() {
    let env = TestEnv::start().await;
    let proxy = common::Proxy::start(env.base()).await;
    let client = common::client_for(&proxy.base_url, env.merchant(), |_| {});
    let reference = reference();
    let request = CreatePaymentRequest::web_redirect(Amount::nok(1000), reference.clone(), "https://example.com/r");
    let k = key("create");
    client.epayment().create(&request, &k).await.unwrap();
    client.epayment().get(&reference).await.unwrap();

    let seen = proxy.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    for s in &seen {
        let h = |n: &str| s.headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(h("vipps-system-name").as_deref(), Some("payhub"));
        assert_eq!(h("vipps-system-version").as_deref(), Some("0.1.0"));
        assert_eq!(h("vipps-system-plugin-name").as_deref(), Some("vipps-client-tests"));
        assert_eq!(h("vipps-system-plugin-version").as_deref(), Some("0.1.0"));
        assert_eq!(h("merchant-serial-number").as_deref(), Some(env.merchant().msn.as_str()));
        assert_eq!(h("ocp-apim-subscription-key").as_deref(), Some(env.merchant().subscription_key.as_str()));
    }
    assert_eq!(seen[1].idempotency_key.as_deref(), Some(k.as_str()));
    assert!(seen[1].headers.get("authorization").unwrap().to_str().unwrap().starts_with("Bearer "));
    assert_eq!(seen[2].idempotency_key, None);
}
