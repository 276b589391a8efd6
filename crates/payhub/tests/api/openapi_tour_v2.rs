//! A tour of the Payment API (`/v2`): every operation driven through the real HTTP API with the Vipps simulator
//! to its success answer. Each answer (and each request the API took) is checked against `/openapi.json` by the
//! conformance check of every test app; at the end, the tour proves it reached every `/v2` operation the
//! document names with a 2xx answer.

use chrono::Days;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::conformance::document;
use crate::helpers::recurring::{active_recurring, call, recurring_intent, today};
use crate::helpers::{seed_intent, TestApp, Vipps};
use crate::on_both_backends;

/// `GET` a Payment API path with the integrator key, with no body; (status, JSON).
async fn get(app: &TestApp, vipps: &Vipps, path: &str) -> (StatusCode, Value) {
    let response = app.http.get(app.url(path)).bearer_auth(&vipps.integrator_key).send().await.expect("get");
    let status = response.status();
    (status, response.json().await.expect("json"))
}

/// The payer's browser at `/v2/return/{intent}`: the status.
async fn payer_back(app: &TestApp, intent_id: &str) -> StatusCode {
    app.http.get(app.url(&format!("/v2/return/{intent_id}"))).send().await.expect("return").status()
}

/// Every `/v2` operation of the document, as `METHOD /path`.
fn documented_v2_operations() -> Vec<String> {
    let paths = document()["paths"].as_object().expect("paths");
    paths
        .iter()
        .filter(|(path, _)| path.starts_with("/v2/"))
        .flat_map(|(path, item)| {
            item.as_object().expect("path item").keys().map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect()
}

on_both_backends! {
    async fn every_payment_api_operation_answers_as_the_document_says(app) {
        let vipps = app.with_vipps().await;

        let (status, methods) = get(&app, &vipps, "/v2/PaymentMethods").await;
        assert_eq!(status, StatusCode::OK, "{methods}");
        assert_eq!(methods["PaymentMethods"][0]["Processors"][0]["Targets"][0]["Name"], "Sandbox", "{methods}");

        // A one-time payment, its IdempotencyKey replayed.
        let send = || {
            app.http
                .post(app.url("/v2/PaymentIntent"))
                .bearer_auth(&vipps.integrator_key)
                .header("Idempotency-Key", "tour-one-time")
                .json(&seed_intent())
                .send()
        };
        let first = send().await.expect("intent");
        assert_eq!(first.status(), StatusCode::OK);
        let created: Value = first.json().await.expect("json");
        let again = send().await.expect("repeat");
        assert_eq!(again.status(), StatusCode::OK);
        assert_eq!(again.headers().get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
        assert_eq!(again.json::<Value>().await.expect("json"), created, "a repeat gets the first answer");
        let intent_id = created["Id"].as_str().expect("intent id");
        let installment_id = created["OneTime"]["Id"].as_str().expect("installment id");
        let reference = created["OneTime"]["PaymentReference"].as_str().expect("reference");

        // The payer back before Vipps decided (a checking page), then after approving (forwarded).
        assert_eq!(payer_back(&app, intent_id).await, StatusCode::OK);
        assert_eq!(vipps.control(&format!("/_sim/payments/{reference}/approve"), json!({})).await, StatusCode::OK);
        assert_eq!(payer_back(&app, intent_id).await, StatusCode::SEE_OTHER);

        let (status, intent) = get(&app, &vipps, &format!("/v2/PaymentIntent/{intent_id}")).await;
        assert_eq!((status, intent["OneTime"]["Status"].clone()), (StatusCode::OK, json!("Collected")), "{intent}");
        let (status, installment) = get(&app, &vipps, &format!("/v2/Installment/{installment_id}")).await;
        assert_eq!((status, installment["Payments"][0]["Type"].clone()), (StatusCode::OK, json!("capture")), "{installment}");

        let refund = json!({"InstallmentId": installment_id, "Amount": "10.50", "Reason": "Tour", "IdempotencyKey": "tour-refund"});
        let (status, refunded) = call(&app, &vipps, Method::POST, "/v2/Refund", refund).await;
        assert_eq!((status, refunded["Amount"].clone()), (StatusCode::OK, json!(10.5)), "{refunded}");
        let (_, installment) = get(&app, &vipps, &format!("/v2/Installment/{installment_id}")).await;
        assert_eq!(installment["AmountRefunded"], json!(10.5), "{installment}");

        // Paying an installment already owed: the same payment, the request recorded as an intent of its own.
        let (status, owed) = app.intent(&vipps, &seed_intent()).await;
        assert_eq!(status, StatusCode::OK, "{owed}");
        let owed_id = owed["OneTime"]["Id"].as_str().expect("installment id");
        let (status, paying) = app.intent(&vipps, &json!({"OneTime": {"Id": owed_id}})).await;
        assert_eq!((status, &paying["RedirectURL"]), (StatusCode::OK, &owed["RedirectURL"]), "{paying}");
        assert_ne!(paying["Id"], owed["Id"], "{paying}");

        // A recurring payment: read, changed, paused, resumed and cancelled.
        let start = today(&app);
        let (created, recurring_id, mandate_id, _) = active_recurring(&app, &vipps, &recurring_intent(start, "100")).await;
        assert_eq!(created["Recurring"]["Mandate"]["Id"], json!(mandate_id), "{created}");
        let (status, mandate) = get(&app, &vipps, &format!("/v2/Mandate/{mandate_id}")).await;
        assert_eq!((status, mandate["Status"].clone()), (StatusCode::OK, json!("Active")), "{mandate}");
        let path = format!("/v2/Recurring/{recurring_id}");
        let (status, recurring) = get(&app, &vipps, &path).await;
        assert_eq!((status, recurring["Status"].clone()), (StatusCode::OK, json!("Active")), "{recurring}");
        let (status, changed) = call(&app, &vipps, Method::PATCH, &path, json!({"Amount": 150, "CollectionDay": "15"})).await;
        assert!(status.is_success(), "{status} {changed}");
        assert_eq!(changed["CollectionDay"], 15, "{changed}");
        let until = start.checked_add_days(Days::new(40)).expect("date");
        let (status, paused) = call(&app, &vipps, Method::POST, &format!("{path}/Pause"), json!({"Until": until.to_string()})).await;
        assert!(status.is_success(), "{status} {paused}");
        let (status, resumed) = call(&app, &vipps, Method::POST, &format!("{path}/Resume"), json!({})).await;
        assert_eq!((status, resumed["Status"].clone()), (StatusCode::OK, json!("Active")), "{resumed}");
        let (status, cancelled) = call(&app, &vipps, Method::POST, &format!("{path}/Cancel"), json!({"Reason": "Tour"})).await;
        assert!(status.is_success(), "{status} {cancelled}");

        // FinDock's action on another agreement.
        let (_, _, mandate_id, _) = active_recurring(&app, &vipps, &recurring_intent(start, "100")).await;
        let (status, stopped) =
            call(&app, &vipps, Method::POST, "/v2/actions/CancelVippsAgreement", json!({"MandateId": mandate_id})).await;
        assert_eq!((status, stopped["IsSuccess"].clone()), (StatusCode::OK, json!(true)), "{stopped}");

        let seen = app.conformance.seen();
        let missing: Vec<String> = documented_v2_operations()
            .into_iter()
            .filter(|operation| !seen.iter().any(|s| s.starts_with(&format!("{operation} 2"))))
            .collect();
        assert!(missing.is_empty(), "operations the tour never brought to a 2xx: {missing:?}\nseen: {seen:#?}");
        assert!(app.conformance.violations().is_empty(), "{:#?}", app.conformance.violations());
    }
}
