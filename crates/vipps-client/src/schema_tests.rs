//! Request bodies the client builds, validated against the official OpenAPI schemas in
//! `shared/reference/vipps-openapi` (found by walking up from the crate, or `VIPPS_OPENAPI_DIR`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::epayment::{
    CreatePaymentRequest, Customer, ForceApproveBody, ModificationRequest, QrFormat, Reference, UserFlow,
};
use crate::recurring::{
    AgreementUpdate, Campaign, ChargeAmount, CreateCharge, DraftAgreement, ForceAccept, InitialCharge, IntervalUnit,
    PricingRequest, PricingUpdate, TimePeriod, TransactionType,
};
use crate::webhooks::{EventType, RegisterRequest};
use crate::{Amount, Currency};

fn openapi_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("VIPPS_OPENAPI_DIR") {
        return Some(PathBuf::from(dir)).filter(|p| p.is_dir());
    }
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    loop {
        let candidate = dir.join("shared/reference/vipps-openapi");
        if candidate.is_dir() {
            return Some(candidate);
        }
        if !dir.pop() {
            return None;
        }
    }
}

/// Removes what a JSON Schema validator cannot use offline: external `$ref`s (the receipt schema
/// lives in another repository) become `{}`.
fn sanitise(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let external = map.get("$ref").and_then(Value::as_str).is_some_and(|r| r.starts_with("http"));
            if external {
                map.clear();
                return;
            }
            map.values_mut().for_each(sanitise);
        }
        Value::Array(items) => items.iter_mut().for_each(sanitise),
        _ => {}
    }
}

struct Spec(Value);

impl Spec {
    fn load(file: &str) -> Option<Spec> {
        let Some(dir) = openapi_dir() else {
            println!("skipped: OpenAPI folder not found");
            return None;
        };
        let text = std::fs::read_to_string(dir.join(file)).expect("readable OpenAPI file");
        let mut value: Value = serde_yaml::from_str(&text).expect("valid YAML");
        sanitise(&mut value);
        Some(Spec(value))
    }

    /// Errors of `instance` against `#/components/schemas/{schema}` (OpenAPI 3.0 ≈ draft 4).
    fn errors(&self, schema: &str, instance: &Value) -> Vec<String> {
        let mut root = self.0.clone();
        root["$ref"] = json!(format!("#/components/schemas/{schema}"));
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .build(&root)
            .unwrap_or_else(|e| panic!("schema {schema} does not compile: {e}"));
        validator.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path)).collect()
    }

    fn assert_valid(&self, schema: &str, instance: &impl serde::Serialize) {
        let instance = serde_json::to_value(instance).unwrap();
        let errors = self.errors(schema, &instance);
        assert!(errors.is_empty(), "{schema} rejects {instance}: {errors:#?}");
    }
}

fn reference() -> Reference {
    Reference::parse("acme-shop-123-order123abc").unwrap()
}

#[test]
fn epayment_request_bodies_match_the_official_schemas() {
    let Some(mut spec) = Spec::load("vipps-epayment-api/epayment.v1.yml") else { return };
    // Spec bug: the three `Customer` oneOf branches declare no `required`, so any object matches
    // all three and oneOf can never pass. Each branch evidently requires its single property.
    for (schema, property) in
        [("CustomerPhoneNumber", "phoneNumber"), ("PersonalQrCode", "personalQr"), ("CustomerToken", "customerToken")]
    {
        spec.0["components"]["schemas"][schema]["required"] = json!([property]);
    }

    let web = CreatePaymentRequest::web_redirect(Amount::nok(49900), reference(), "https://example.com/redirect")
        .description("One pair of socks");
    spec.assert_valid("CreatePaymentRequest", &web);

    let mut push = CreatePaymentRequest::push_message(Amount::nok(49900), reference(), "4791234567");
    push.metadata = Some([("orderId".to_owned(), "123".to_owned())].into_iter().collect());
    push.profile = Some(crate::epayment::ProfileRequest { scope: "name phoneNumber".into() });
    spec.assert_valid("CreatePaymentRequest", &push);

    let mut qr = CreatePaymentRequest::new(Amount::new(Currency::Dkk, 100), reference(), UserFlow::Qr);
    qr.qr_format = Some(QrFormat { format: "IMAGE/PNG".into(), size: Some(1024) });
    qr.customer = Some(Customer::PersonalQr("https://qr.vipps.no/p/abc".into()));
    spec.assert_valid("CreatePaymentRequest", &qr);

    let amount = Amount::nok(10000);
    spec.assert_valid("CaptureModificationRequest", &ModificationRequest { modification_amount: &amount });
    spec.assert_valid("RefundModificationRequest", &ModificationRequest { modification_amount: &amount });

    let phone = Customer::PhoneNumber("4791234567".into());
    spec.assert_valid("ForceApprove", &ForceApproveBody::Customer(&phone));
    spec.assert_valid("ForceApprove", &ForceApproveBody::Token("eyJ0eXAi"));

    // The check can fail: a body without `userFlow` or with a bad reference is rejected.
    let mut broken = serde_json::to_value(&web).unwrap();
    broken.as_object_mut().unwrap().remove("userFlow");
    assert!(!spec.errors("CreatePaymentRequest", &broken).is_empty());
    broken["userFlow"] = json!("WEB_REDIRECT");
    broken["reference"] = json!("x");
    assert!(!spec.errors("CreatePaymentRequest", &broken).is_empty());
}

#[test]
fn recurring_request_bodies_match_the_official_schemas() {
    let Some(spec) = Spec::load("vipps-recurring-api/openapi.yaml") else { return };

    let mut draft = DraftAgreement::new(
        PricingRequest::legacy(Currency::Nok, 49900),
        Some(TimePeriod::monthly()),
        "Premier League subscription",
        "https://example.com/my-customer-agreement",
        "https://example.com/confirmation",
    );
    draft.phone_number = Some("4791234567".into());
    draft.product_description = Some("Access to all games of English top football".into());
    draft.initial_charge =
        Some(InitialCharge::new(49900, "Premier League subscription", TransactionType::DirectCapture));
    draft.external_id = Some("sub-1234".into());
    spec.assert_valid("DraftAgreementV3", &draft);

    let mut variable = DraftAgreement::new(
        PricingRequest::variable(Currency::Nok, 30000),
        Some(TimePeriod::new(IntervalUnit::Week, 2)),
        "Electricity",
        "https://example.com/agreement",
        "https://example.com/back",
    );
    variable.is_app = Some(false);
    spec.assert_valid("DraftAgreementV3", &variable);

    draft.campaign = Some(Campaign::PeriodCampaign { price: 100, period: TimePeriod::new(IntervalUnit::Month, 3) });
    spec.assert_valid("DraftAgreementV3", &draft);

    let update = AgreementUpdate {
        product_name: Some("Premier League+".into()),
        pricing: Some(PricingUpdate::amount(59900)),
        ..AgreementUpdate::default()
    };
    spec.assert_valid("PatchAgreementV3", &update);
    spec.assert_valid("PatchAgreementV3", &json!({"status": "STOPPED"}));

    let due = chrono::NaiveDate::from_ymd_opt(2030, 12, 31).unwrap();
    let mut charge = CreateCharge::recurring(49900, "October", due, 5, TransactionType::DirectCapture);
    charge.order_id = Some("acme-sub-1234-2026-10".into());
    charge.external_id = Some("INV-2026-10-4471".into());
    spec.assert_valid("CreateChargeV3", &charge);

    spec.assert_valid("CaptureRequestV3", &ChargeAmount::new(19900, "Shipped"));
    spec.assert_valid("RefundRequest", &ChargeAmount::new(19900, "Returned"));
    spec.assert_valid("ForceAcceptAgreementV3", &ForceAccept { phone_number: "4791234567" });

    let mut broken = serde_json::to_value(&charge).unwrap();
    broken["retryDays"] = json!(15);
    assert!(!spec.errors("CreateChargeV3", &broken).is_empty());
}

#[test]
fn webhook_registration_body_matches_the_official_schema() {
    let Some(spec) = Spec::load("webhooks-api/swagger.yaml") else { return };
    let events = [EventType::PaymentAuthorized, EventType::ChargeCanceled];
    spec.assert_valid("RegisterRequest", &RegisterRequest { url: "https://example.com/hook", events: &events });
    assert!(!spec.errors("RegisterRequest", &json!({"url": "https://example.com/hook"})).is_empty());
}
