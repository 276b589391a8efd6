//! Response shapes documented in the reference (incl. newer fields) deserialize into the typed
//! structs; unknown values and extra fields are tolerated.
#![allow(clippy::unwrap_used)]

use vipps_client::epayment::{
    CreatePaymentResponse, ModificationResponse, Payment, PaymentEvent, PaymentEventName, PaymentMethodType, State,
};
use vipps_client::recurring::{
    Agreement, AgreementStatus, BatchChargeResponse, Charge, ChargeEventKind, ChargeStatus, ChargeType,
    DraftAgreementResponse, FailureReason, PricingType, TransactionType,
};
use vipps_client::report::{DatePage, EntryType, FeedPage, LedgerPage};
use vipps_client::webhooks::{EventType, Registration, Webhook};
use vipps_client::{Amount, Currency};

#[test]
fn a_payment_with_the_newer_capture_guarantee_deserializes() {
    let p: Payment = serde_json::from_str(
        r#"{
        "aggregate": {
          "authorizedAmount": { "currency": "NOK", "value": 49900 },
          "cancelledAmount":  { "currency": "NOK", "value": 0 },
          "capturedAmount":   { "currency": "NOK", "value": 10000 },
          "refundedAmount":   { "currency": "NOK", "value": 0 }
        },
        "amount": { "currency": "NOK", "value": 49900 },
        "state": "AUTHORIZED",
        "paymentMethod": { "type": "WALLET", "cardBin": "540185" },
        "profile": { "sub": "c06c4afe-d9e1-4c5d-939a-177d752a0944" },
        "pspReference": "37c34d8c-2649-448e-864b-060d5d93e4c4",
        "reference": "acme-shop-123-order123abc",
        "redirectUrl": "https://landing.vipps.no?token=abc",
        "metadata": { "orderId": "123" },
        "captureGuaranteedUntil": "2026-09-01T07:53:44.812+00:00",
        "someFutureField": { "nested": true }
      }"#,
    )
    .unwrap();
    assert_eq!(p.state, State::Authorized);
    assert_eq!(p.aggregate.captured_amount, Amount::nok(10000));
    assert_eq!(p.payment_method.kind, PaymentMethodType::Wallet);
    assert_eq!(p.payment_method.card_bin.as_deref(), Some("540185"));
    assert_eq!(p.profile.sub.as_deref(), Some("c06c4afe-d9e1-4c5d-939a-177d752a0944"));
    assert_eq!(p.capture_guaranteed_until.unwrap().timestamp(), 1_788_249_224);
}

#[test]
fn an_unknown_state_and_an_empty_profile_are_tolerated() {
    let p: Payment = serde_json::from_str(
        r#"{"aggregate":{"authorizedAmount":{"currency":"EUR","value":0},"cancelledAmount":{"currency":"EUR","value":0},
            "capturedAmount":{"currency":"EUR","value":0},"refundedAmount":{"currency":"EUR","value":0}},
            "amount":{"currency":"EUR","value":100},"state":"ON_HOLD","paymentMethod":{"type":"PAY_LATER"},
            "profile":{},"pspReference":"x","reference":"acme-shop-123"}"#,
    )
    .unwrap();
    assert_eq!(p.state, State::Unknown("ON_HOLD".into()));
    assert_eq!(p.payment_method.kind, PaymentMethodType::Unknown("PAY_LATER".into()));
    assert_eq!(p.amount, Amount::new(Currency::Eur, 100));
    assert_eq!(p.profile.sub, None);
}

#[test]
fn create_and_cancel_responses_deserialize() {
    let push: CreatePaymentResponse = serde_json::from_str(r#"{"reference":"acme-shop-123-order123abc"}"#).unwrap();
    assert_eq!(push.redirect_url, None);
    let cancelled: ModificationResponse = serde_json::from_str(
        r#"{
        "amount": { "currency": "NOK", "value": 1000 },
        "state": "TERMINATED",
        "aggregate": {
          "authorizedAmount": { "currency": "NOK", "value": 0 },
          "cancelledAmount":  { "currency": "NOK", "value": 1000 },
          "capturedAmount":   { "currency": "NOK", "value": 0 },
          "refundedAmount":   { "currency": "NOK", "value": 0 }
        },
        "pspReference": "70b6ebe0-b400-4652-a3ea-70645e025035",
        "reference": "UNIQUE-PAYMENT-REFERENCE"
      }"#,
    )
    .unwrap();
    assert_eq!(cancelled.state, State::Terminated);
    assert_eq!(cancelled.aggregate.cancelled_amount.value, 1000);
}

#[test]
fn the_documented_event_log_deserializes_with_variable_fractions_and_missing_keys() {
    let events: Vec<PaymentEvent> = serde_json::from_str(r#"[
      { "reference": "acme-shop-123-order123abc", "pspReference": "83b3fdb0-9547-4ec5-bdb7-5600ce70e792",
        "name": "CREATED", "amount": { "currency": "NOK", "value": 49900 },
        "timestamp": "2023-03-27T10:51:44.5333258Z", "idempotencyKey": "19986263-dedf-4b8e-a424-8d042eee4013", "success": true },
      { "reference": "acme-shop-123-order123abc", "pspReference": "1304787731",
        "name": "AUTHORIZED", "amount": { "currency": "NOK", "value": 49900 },
        "timestamp": "2023-03-27T10:51:59.378Z", "idempotencyKey": "19986263-dedf-4b8e-a424-8d042eee4013", "success": true },
      { "reference": "acme-shop-123-order123abc", "pspReference": "2018200034",
        "name": "CAPTURED", "amount": { "currency": "NOK", "value": 10000 },
        "timestamp": "2023-03-27T10:52:07.748Z", "idempotencyKey": null, "success": false },
      { "reference": "acme-shop-123-order123abc", "pspReference": "2019200034",
        "name": "CANCELLED", "amount": { "currency": "NOK", "value": 750 },
        "timestamp": "2023-03-27T10:52:15.616Z", "success": true }
    ]"#).unwrap();
    let names: Vec<_> = events.iter().map(|e| e.name.clone()).collect();
    assert_eq!(
        names,
        [
            PaymentEventName::Created,
            PaymentEventName::Authorized,
            PaymentEventName::Captured,
            PaymentEventName::Cancelled
        ]
    );
    assert!(!events[2].success);
    assert_eq!(events[3].idempotency_key, None);
}

#[test]
fn agreements_with_legacy_and_variable_pricing_deserialize() {
    let draft: DraftAgreementResponse = serde_json::from_str(
        r#"{"agreementId":"agr_TGSuPyV","uuid":"9c2ca95c-245f-4a2e-aab2-4a08eb78e6fb",
            "vippsConfirmationUrl":"https://api.vipps.no/dwo-api-application/v1/deeplink/vippsgateway?v=2/token=eyJraWQi","chargeId":null}"#,
    )
    .unwrap();
    assert_eq!(draft.agreement_id, "agr_TGSuPyV");
    assert_eq!(draft.charge_id, None);

    let legacy: Agreement = serde_json::from_str(
        r#"{
        "id": "agr_ADbq4JK", "created": "2018-08-22T12:59:56Z", "start": "2018-08-22T13:00:00Z", "stop": null,
        "status": "ACTIVE", "productName": "Premier League subscription",
        "productDescription": "Access to all games of English top football",
        "pricing": { "type": "LEGACY", "amount": 49900, "currency": "NOK" },
        "interval": { "unit": "MONTH", "count": 2, "text": "every 2 months" },
        "campaign": null, "merchantAgreementUrl": "https://www.merchant.no/subscriptions/1234/",
        "merchantRedirectUrl": "https://example.com/confirmation", "sub": null, "userinfoUrl": null,
        "externalId": "sub-1234", "uuid": "6080c099-d7f2-43ef-a82b-2991ccc3a239", "countryCode": "NO"
      }"#,
    )
    .unwrap();
    assert_eq!(legacy.status, AgreementStatus::Active);
    assert_eq!(legacy.pricing.kind, PricingType::Legacy);
    assert_eq!(legacy.pricing.amount, Some(49900));
    assert_eq!(legacy.interval.as_ref().unwrap().count, 2);
    assert!(legacy.stop.is_none());

    let variable: Agreement = serde_json::from_str(
        r#"{"id":"agr_5kSeqz","created":"2024-01-01T00:00:00Z","status":"PENDING","productName":"Power",
            "pricing":{"type":"VARIABLE","suggestedMaxAmount":500000,"maxAmount":1800000,"currency":"NOK"},
            "merchantAgreementUrl":"https://example.com/a","merchantRedirectUrl":"https://example.com/b",
            "uuid":"6080c099-d7f2-43ef-a82b-2991ccc3a239","countryCode":"NO"}"#,
    )
    .unwrap();
    assert_eq!(variable.pricing.kind, PricingType::Variable);
    assert_eq!(variable.pricing.max_amount, Some(1_800_000));
    assert_eq!(variable.interval, None, "pay-per-use agreements have no interval");
}

#[test]
fn the_documented_charge_deserializes_and_unknown_statuses_are_kept() {
    let charge: Charge = serde_json::from_str(
        r#"{
        "id": "chr_WCVbcA", "agreementId": "agr_5kSeqz", "externalId": "external-id-2468",
        "externalAgreementId": "external-id-2468", "amount": 1000, "currency": "NOK",
        "description": "Premier League subscription: September", "due": "2022-09-16T00:00:00Z", "retryDays": 5,
        "status": "REFUNDED", "type": "RECURRING", "transactionType": "RESERVE_CAPTURE",
        "transactionId": "5001419121", "failureReason": null, "failureDescription": null,
        "summary": { "captured": 1000, "refunded": 600, "cancelled": 0 },
        "history": [
          { "occurred": "2022-09-14T10:31:15Z", "event": "CREATE",  "amount": 1000, "idempotencyKey": "e80bd8c6", "success": true },
          { "occurred": "2022-09-16T06:01:00Z", "event": "RESERVE", "amount": 1000, "idempotencyKey": "chr-4assY8f-agr_FJw2Anb-ProcessPayment", "success": true },
          { "occurred": "2022-09-18T06:01:00Z", "event": "CAPTURE", "amount": 1000, "idempotencyKey": "096b1415", "success": true },
          { "occurred": "2022-09-20T06:01:00Z", "event": "REFUND",  "amount": 600,  "idempotencyKey": "0bc7cc3b", "success": true }
        ]
      }"#,
    )
    .unwrap();
    assert_eq!(charge.status, ChargeStatus::Refunded);
    assert_eq!(charge.kind, ChargeType::Recurring);
    assert_eq!(charge.transaction_type, TransactionType::ReserveCapture);
    assert_eq!(charge.due, chrono::NaiveDate::from_ymd_opt(2022, 9, 16).unwrap());
    assert_eq!(charge.summary.refunded, 600);
    assert_eq!(charge.history[3].event, ChargeEventKind::Refund);

    let failed: Charge = serde_json::from_str(
        r#"{"id":"chr-123ab","agreementId":"agr_5kSeqz","amount":1000,"currency":"NOK","description":"x",
            "due":"2026-10-01","retryDays":0,"status":"UNKNOWN","type":"UNSCHEDULED","transactionType":"DIRECT_CAPTURE",
            "transactionId":null,"failureReason":"user_action_required","failureDescription":"User action required",
            "summary":null,"history":null}"#,
    )
    .unwrap();
    assert_eq!(failed.status, ChargeStatus::Unknown("UNKNOWN".into()));
    assert_eq!(failed.kind, ChargeType::Unscheduled);
    assert_eq!(failed.failure_reason, Some(FailureReason::UserActionRequired));
    assert!(failed.history.is_empty());

    let batch: BatchChargeResponse = serde_json::from_str(
        r#"{"validCharges":["order-1"],"invalidCharges":[{"chargeBatchItemDto":{"due":"2026-10-01","retryDays":5,
            "amount":1000,"description":"x","transactionType":"DIRECT_CAPTURE","orderId":"order-2"},"errors":["agreement not active"]}]}"#,
    )
    .unwrap();
    assert_eq!(batch.valid_charges, ["order-1"]);
    assert_eq!(batch.invalid_charges[0].errors, ["agreement not active"]);
}

#[test]
fn webhook_registration_responses_deserialize() {
    let r: Registration = serde_json::from_str(
        r#"{"id":"497f6eca-6276-4993-bfeb-53cbbbba6f08","secret":"090a478d-37ff-4e77-970e-d457aeb26a3a"}"#,
    )
    .unwrap();
    assert_eq!(r.secret.expose(), "090a478d-37ff-4e77-970e-d457aeb26a3a");
    let w: Webhook = serde_json::from_str(
        r#"{"id":"497f6eca-6276-4993-bfeb-53cbbbba6f08","url":"https://example.com/callbacks",
            "events":["epayments.payment.captured.v1","service.payment.created.v2"]}"#,
    )
    .unwrap();
    assert_eq!(w.events, [EventType::PaymentCaptured, EventType::Unknown("service.payment.created.v2".into())]);
}

#[test]
fn report_pages_deserialize_including_newer_fields() {
    let ledgers: LedgerPage = serde_json::from_str(
        r#"{"items":[{"ledgerId":"302321","currency":"NOK","payoutBankAccount":{"scheme":"BBAN:NO","id":"86011117947"},
            "owner":{"scheme":"business:NO:ORG","id":"987654321"},"settlesForRecipientHandles":["api:123455"],
            "salesUnits":[{"name":"ACME Fitness Oslo","recipientHandle":"api:123455"}]}],"cursor":""}"#,
    )
    .unwrap();
    assert_eq!(ledgers.items[0].settles_for_recipient_handles, ["api:123455"]);
    assert_eq!(ledgers.items[0].sales_units[0].name.as_deref(), Some("ACME Fitness Oslo"));

    let day: DatePage = serde_json::from_str(
        r#"{"items":[
          {"pspReference":"3343121302","time":"2022-10-01T16:33:00.824993+0200","ledgerDate":"2022-10-01","entryType":"capture",
           "reference":"purchase-12","currency":"NOK","amount":10000,"balanceBefore":0,"balanceAfter":10000,"recipientHandle":"NO:57860",
           "message":"Thanks","name":"Ola Nordmann","maskedPhoneNo":"xxxx 5678"},
          {"pspReference":"12345-2000023","time":"2022-10-01T23:59:59.000000Z","ledgerDate":"2022-10-01","entryType":"payout-scheduled",
           "reference":"Vipps utbet. 2000023 Vippsnr 57860","currency":"NOK","amount":-28800,"balanceBefore":28800,"balanceAfter":0,"recipientHandle":null}
        ],"cursor":"abc","hasMore":true,"tryLater":false}"#,
    )
    .unwrap();
    assert!(day.has_more);
    assert_eq!(day.items[0].masked_phone_no.as_deref(), Some("xxxx 5678"));
    assert_eq!(day.items[1].entry_type, EntryType::PayoutScheduled);
    assert_eq!(day.items[1].amount, -28800);

    let open: DatePage = serde_json::from_str(r#"{"items": [], "tryLater": true}"#).unwrap();
    assert!(open.try_later && !open.has_more && open.cursor.is_none());

    let feed: FeedPage = serde_json::from_str(r#"{"items":[],"cursor":"opaque-1","tryLater":true}"#).unwrap();
    assert_eq!(feed.cursor, "opaque-1");
}
