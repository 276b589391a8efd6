//! Webhook registrations and verification of the simulator's signed deliveries.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{unique, CaptureServer, TestEnv};
use vipps_client::epayment::{CreatePaymentRequest, PaymentEventName, Reference};
use vipps_client::webhooks::{EventType, SignedRequest, Verifier, VerifyError, WebhookEvent};
use vipps_client::{Amount, ErrorKind, IdempotencyKey, Secret};

#[tokio::test]
async fn registrations_can_be_created_listed_and_deleted() {
    let env = TestEnv::start().await;
    let client = env.client();
    let webhooks = client.webhooks();

    let registration = webhooks
        .register("https://hub.example.com/vipps/webhooks", &EventType::EPAYMENT, &IdempotencyKey::random())
        .await
        .unwrap();
    assert!(!registration.secret.expose().is_empty());
    assert_eq!(format!("{:?}", registration.secret), "[redacted]");

    let listed = webhooks.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, registration.id);
    assert_eq!(listed[0].url, "https://hub.example.com/vipps/webhooks");
    assert_eq!(listed[0].events.len(), 8);
    assert!(listed[0].events.contains(&EventType::PaymentAuthorized));

    webhooks.delete(&registration.id).await.unwrap();
    assert!(webhooks.list().await.unwrap().is_empty());
    let err = webhooks.delete(&registration.id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");

    let err = webhooks.register("https://hub.example.com/x", &[], &IdempotencyKey::random()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[tokio::test]
async fn signed_deliveries_verify_and_tampering_is_detected() {
    let env = TestEnv::start().await;
    let client = env.client();
    let mut receiver = CaptureServer::start().await;
    let path = "/hooks/vipps?account=1";
    let host = receiver.addr.to_string();
    let url = format!("http://{host}{path}");
    let registration = client
        .webhooks()
        .register(&url, &[EventType::PaymentCreated, EventType::PaymentAuthorized], &IdempotencyKey::random())
        .await
        .unwrap();

    let reference = Reference::parse(&unique("hook")).unwrap();
    let request = CreatePaymentRequest::web_redirect(Amount::nok(1000), reference.clone(), "https://example.com/r");
    client.epayment().create(&request, &IdempotencyKey::random()).await.unwrap();
    env.approve(reference.as_str()).await;

    let verifier = Verifier::new(registration.secret.clone());
    let mut names = Vec::new();
    for _ in 0..2 {
        let delivery = receiver.next().await;
        assert_eq!(delivery.path_and_query, path);
        let signed = SignedRequest::new(path, &host, &delivery.headers, &delivery.body);
        verifier.verify(&signed).unwrap();
        match WebhookEvent::parse(&delivery.body).unwrap() {
            WebhookEvent::Payment(event) => {
                assert_eq!(event.reference, reference.as_str());
                assert_eq!(event.msn, env.merchant().msn);
                names.push(event.name);
            }
            other => panic!("unexpected event {other:?}"),
        }

        let mut tampered = delivery.body.to_vec();
        let last = tampered.len() - 2;
        tampered[last] ^= 1;
        let signed = SignedRequest::new(path, &host, &delivery.headers, &tampered);
        assert_eq!(verifier.verify(&signed), Err(VerifyError::ContentHashMismatch));

        let signed = SignedRequest::new(path, &host, &delivery.headers, &delivery.body);
        let wrong = Verifier::new(Secret::new("another-registration-secret"));
        assert_eq!(wrong.verify(&signed), Err(VerifyError::SignatureMismatch));

        let later = chrono::Utc::now() + chrono::Duration::minutes(10);
        assert!(matches!(verifier.verify_at(&signed, later), Err(VerifyError::StaleDate { .. })));
        let strict = verifier.clone().with_tolerance(Duration::ZERO);
        let soon = chrono::Utc::now() + chrono::Duration::seconds(5);
        assert!(matches!(strict.verify_at(&signed, soon), Err(VerifyError::StaleDate { .. })));

        let other_path = SignedRequest::new("/hooks/vipps", &host, &delivery.headers, &delivery.body);
        assert_eq!(verifier.verify(&other_path), Err(VerifyError::SignatureMismatch));
    }
    assert_eq!(names, [PaymentEventName::Created, PaymentEventName::Authorized]);
}

#[tokio::test]
async fn recurring_deliveries_verify_and_parse_as_agreement_and_charge_events() {
    use vipps_client::recurring::{DraftAgreement, InitialCharge, PricingRequest, TimePeriod, TransactionType};
    use vipps_client::webhooks::Actor;
    use vipps_client::{Currency, RecurringIdempotencyKey};

    let env = TestEnv::start().await;
    let client = env.client();
    let mut receiver = CaptureServer::start().await;
    let host = receiver.addr.to_string();
    let registration = client
        .webhooks()
        .register(&format!("http://{host}/recurring"), &EventType::RECURRING, &IdempotencyKey::random())
        .await
        .unwrap();

    let mut draft = DraftAgreement::new(
        PricingRequest::legacy(Currency::Nok, 10000),
        Some(TimePeriod::monthly()),
        "Gym",
        "https://example.com/agreement",
        "https://example.com/back",
    );
    draft.initial_charge = Some(InitialCharge::new(10000, "First month", TransactionType::DirectCapture));
    let created = client.recurring().create_agreement(&draft, &RecurringIdempotencyKey::random()).await.unwrap();
    client
        .recurring()
        .test_accept(&created.agreement_id, "4791234567", &RecurringIdempotencyKey::random())
        .await
        .unwrap();
    client.recurring().stop_agreement(&created.agreement_id, &RecurringIdempotencyKey::random()).await.unwrap();

    let verifier = Verifier::new(registration.secret.clone());
    let mut seen = Vec::new();
    while !seen.contains(&EventType::AgreementStopped) {
        let delivery = receiver.next().await;
        verifier.verify(&SignedRequest::new("/recurring", &host, &delivery.headers, &delivery.body)).unwrap();
        match WebhookEvent::parse(&delivery.body).unwrap() {
            WebhookEvent::Agreement(event) => {
                assert_eq!(event.agreement_id, created.agreement_id);
                if event.event_type == EventType::AgreementStopped {
                    assert_eq!(event.actor, Some(Actor::Merchant));
                }
                seen.push(event.event_type);
            }
            WebhookEvent::Charge(event) => {
                assert_eq!(event.agreement_id, created.agreement_id);
                assert_eq!(Some(&event.charge_id), created.charge_id.as_ref());
                seen.push(event.event_type);
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert!(seen.contains(&EventType::AgreementActivated), "{seen:?}");
    assert!(seen.contains(&EventType::ChargeCaptured), "{seen:?}");
}
