//! Recurring agreement and charge lifecycles against the simulator.
#![allow(clippy::unwrap_used)]

mod common;

use chrono::Days;
use common::{unique, Proxy, TestEnv};
use serde_json::json;
use vipps_client::recurring::{
    AgreementStatus, AgreementUpdate, BatchCharge, ChargeAmount, ChargeStatus, ChargeType, Completion, CreateCharge,
    DraftAgreement, InitialCharge, ListAgreements, PricingRequest, TimePeriod, TransactionType,
};
use vipps_client::{Client, Currency, ErrorKind, RecurringIdempotencyKey};

fn key() -> RecurringIdempotencyKey {
    RecurringIdempotencyKey::random()
}

fn draft(price: i64) -> DraftAgreement {
    let mut draft = DraftAgreement::new(
        PricingRequest::legacy(Currency::Nok, price),
        Some(TimePeriod::monthly()),
        "Premier League subscription",
        "https://example.com/my-agreement",
        "https://example.com/confirmation",
    );
    draft.phone_number = Some("4791234567".into());
    draft
}

async fn active_agreement(client: &Client, draft: &DraftAgreement) -> String {
    let recurring = client.recurring();
    let created = recurring.create_agreement(draft, &key()).await.unwrap();
    recurring.test_accept(&created.agreement_id, "4791234567", &key()).await.unwrap();
    created.agreement_id
}

fn days_ahead(env: &TestEnv, days: u64) -> chrono::NaiveDate {
    env.sim.now().date_naive().checked_add_days(Days::new(days)).unwrap()
}

#[tokio::test]
async fn an_agreement_is_drafted_accepted_updated_charged_and_stopped() {
    let env = TestEnv::start().await;
    let client = env.client();
    let recurring = client.recurring();

    let mut with_initial = draft(49900);
    with_initial.initial_charge = Some(InitialCharge::new(49900, "First month", TransactionType::DirectCapture));
    let created = recurring.create_agreement(&with_initial, &key()).await.unwrap();
    assert!(created.agreement_id.starts_with("agr_"), "{}", created.agreement_id);
    assert!(created.vipps_confirmation_url.is_some());
    let initial_charge = created.charge_id.clone().expect("initial charge id");

    let pending = recurring.get_agreement(&created.agreement_id).await.unwrap();
    assert_eq!(pending.status, AgreementStatus::Pending);
    assert_eq!(pending.pricing.amount, Some(49900));

    recurring.test_accept(&created.agreement_id, "4791234567", &key()).await.unwrap();
    let active = recurring.get_agreement(&created.agreement_id).await.unwrap();
    assert_eq!(active.status, AgreementStatus::Active);
    assert!(active.start.is_some());
    let initial = recurring.get_charge(&created.agreement_id, &initial_charge).await.unwrap();
    assert_eq!(initial.status, ChargeStatus::Charged);
    assert_eq!(initial.kind, ChargeType::Initial);

    let listed = recurring.list_agreements(&ListAgreements::status(AgreementStatus::Active)).await.unwrap();
    assert!(listed.items.iter().any(|a| a.id == created.agreement_id));

    let mut update = AgreementUpdate::default();
    update.product_name = Some("Premier League+".into());
    recurring.update_agreement(&created.agreement_id, &update, &key()).await.unwrap();
    assert_eq!(recurring.get_agreement(&created.agreement_id).await.unwrap().product_name, "Premier League+");
    let err = recurring.update_agreement(&created.agreement_id, &AgreementUpdate::default(), &key()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);

    let charge = CreateCharge::recurring(49900, "October", days_ahead(&env, 3), 2, TransactionType::DirectCapture);
    let charge_id = recurring.create_charge(&created.agreement_id, &charge, &key()).await.unwrap();
    let due = recurring.get_charge(&created.agreement_id, &charge_id).await.unwrap();
    assert_eq!(due.status, ChargeStatus::Due);
    assert_eq!(due.due, days_ahead(&env, 3));
    assert_eq!(due.amount, 49900);
    let by_id = recurring.get_charge_by_id(&charge_id).await.unwrap();
    assert_eq!((by_id.agreement_id.as_str(), by_id.status), (created.agreement_id.as_str(), ChargeStatus::Due));

    assert_eq!(recurring.stop_agreement(&created.agreement_id, &key()).await.unwrap(), Completion::Done);
    let stopped = recurring.get_agreement(&created.agreement_id).await.unwrap();
    assert_eq!(stopped.status, AgreementStatus::Stopped);
    assert_eq!(
        recurring.get_charge(&created.agreement_id, &charge_id).await.unwrap().status,
        ChargeStatus::Cancelled,
        "stopping cancels due charges"
    );

    let err = recurring.update_agreement(&created.agreement_id, &update, &key()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::IllegalAgreementUpdate, "{err}");
    let err = recurring.create_charge(&created.agreement_id, &charge, &key()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OperationNotAllowed, "{err}");
}

#[tokio::test]
async fn a_reserved_charge_is_captured_refunded_and_another_cancelled() {
    let env = TestEnv::start().await;
    let client = env.client();
    let recurring = client.recurring();
    let agreement = active_agreement(&client, &draft(10000)).await;

    let mut reserve =
        CreateCharge::recurring(10000, "November", days_ahead(&env, 2), 0, TransactionType::ReserveCapture);
    reserve.order_id = Some(unique("charge"));
    let charge_id = recurring.create_charge(&agreement, &reserve, &key()).await.unwrap();
    assert_eq!(Some(&charge_id), reserve.order_id.as_ref(), "the orderId becomes the charge id");
    let later = CreateCharge::recurring(10000, "December", days_ahead(&env, 20), 0, TransactionType::DirectCapture);
    let later_id = recurring.create_charge(&agreement, &later, &key()).await.unwrap();

    env.sim.advance(3 * 86_400).await;
    let reserved = recurring.get_charge(&agreement, &charge_id).await.unwrap();
    assert_eq!(reserved.status, ChargeStatus::Reserved);

    let done = recurring.capture_charge(&agreement, &charge_id, &ChargeAmount::new(6000, "Shipped"), &key()).await;
    assert_eq!(done.unwrap(), Completion::Done);
    let partly = recurring.get_charge(&agreement, &charge_id).await.unwrap();
    assert_eq!(partly.status, ChargeStatus::PartiallyCaptured);
    assert_eq!(partly.summary.captured, 6000);

    let err = recurring
        .capture_charge(&agreement, &charge_id, &ChargeAmount::new(9000, "Too much"), &key())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OperationNotAllowed, "{err}");

    recurring.refund_charge(&agreement, &charge_id, &ChargeAmount::new(1000, "Returned"), &key()).await.unwrap();
    let refunded = recurring.get_charge(&agreement, &charge_id).await.unwrap();
    assert_eq!(refunded.summary.refunded, 1000);

    recurring.cancel_charge(&agreement, &later_id, &key()).await.unwrap();
    assert_eq!(recurring.get_charge(&agreement, &later_id).await.unwrap().status, ChargeStatus::Cancelled);

    let all = recurring.list_charges(&agreement, None, None).await.unwrap();
    let ids: Vec<&str> = all.items.iter().map(|c| c.id.as_str()).collect();
    assert!(ids.contains(&charge_id.as_str()) && ids.contains(&later_id.as_str()), "{ids:?}");
    let cancelled = recurring.list_charges(&agreement, Some(&ChargeStatus::Cancelled), None).await.unwrap();
    assert_eq!(cancelled.items.len(), 1);
    assert_eq!(cancelled.items[0].id, later_id);
}

#[tokio::test]
async fn documented_recurring_problems_reach_the_caller_as_kinds() {
    let env = TestEnv::start().await;
    let client = env.client();
    let recurring = client.recurring();
    let agreement = active_agreement(&client, &draft(10000)).await;

    let today = CreateCharge::recurring(10000, "Too soon", days_ahead(&env, 0), 0, TransactionType::DirectCapture);
    let err = recurring.create_charge(&agreement, &today, &key()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ChargeDueTooSoon, "{err}");
    assert!(err.problem().unwrap().trace_id.is_some());

    let far = CreateCharge::recurring(10000, "Too late", days_ahead(&env, 3 * 365), 0, TransactionType::DirectCapture);
    let err = recurring.create_charge(&agreement, &far, &key()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ChargeDueTooLate, "{err}");

    let big = CreateCharge::recurring(60000, "Too much", days_ahead(&env, 2), 0, TransactionType::DirectCapture);
    let err = recurring.create_charge(&agreement, &big, &key()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ChargeAmountTooHigh, "{err}");

    let k = key();
    let ok = CreateCharge::recurring(10000, "Fine", days_ahead(&env, 2), 0, TransactionType::DirectCapture);
    let first = recurring.create_charge(&agreement, &ok, &k).await.unwrap();
    let again = recurring.create_charge(&agreement, &ok, &k).await.unwrap();
    assert_eq!(first, again, "the same key and body replay the first answer");
    let mut other = ok.clone();
    other.amount = 20000;
    let err = recurring.create_charge(&agreement, &other, &k).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::IdempotencyConflict, "{err}");

    let err = recurring.get_agreement("agr_doesnotexist").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(RecurringIdempotencyKey::parse("a/b").is_err());
}

#[tokio::test]
async fn a_batch_reports_valid_and_invalid_charges() {
    let env = TestEnv::start().await;
    let client = env.client();
    let agreement = active_agreement(&client, &draft(10000)).await;
    let charge = CreateCharge::recurring(10000, "Batch", days_ahead(&env, 2), 1, TransactionType::DirectCapture);
    let good = BatchCharge::new(&agreement, unique("batch"), &charge);
    let mut bad = BatchCharge::new(&agreement, unique("batch"), &charge);
    bad.retry_days = 30;
    let response = client.recurring().create_charges_batch(&[good.clone(), bad], &key()).await.unwrap();
    assert_eq!(response.valid_charges.len(), 1);
    assert_eq!(response.valid_charges[0], good.order_id);
    assert_eq!(response.invalid_charges.len(), 1);
    assert!(!response.invalid_charges[0].errors.is_empty());
    let fetched = client.recurring().get_charge(&agreement, &good.order_id).await.unwrap();
    assert_eq!(fetched.amount, 10000);
}

#[tokio::test]
async fn a_charge_retried_after_a_server_error_is_created_once() {
    let env = TestEnv::start().await;
    let proxy = Proxy::start(env.base()).await;
    let client = common::client_for(&proxy.base_url, env.merchant(), |_| {});
    let agreement = active_agreement(&client, &draft(10000)).await;
    let path = format!("/recurring/v3/agreements/{agreement}/charges");
    env.fault(&path, json!({"kind": "500"}), 1).await;

    let charge = CreateCharge::recurring(10000, "Retried", days_ahead(&env, 2), 0, TransactionType::DirectCapture);
    let k = key();
    client.recurring().create_charge(&agreement, &charge, &k).await.unwrap();
    let charges = client.recurring().list_charges(&agreement, None, None).await.unwrap();
    assert_eq!(charges.items.len(), 1, "exactly one charge despite the retry");
    let posts: Vec<_> = proxy.seen().into_iter().filter(|s| s.method == "POST" && s.path == path).collect();
    assert_eq!(posts.iter().map(|s| s.status).collect::<Vec<_>>(), [500, 201]);
    assert!(posts.iter().all(|s| s.idempotency_key.as_deref() == Some(k.as_str())));
}
