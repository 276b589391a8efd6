//! Garbage in, documented 4xx out: no input makes the simulator fail or panic.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn malformed_bodies_on_every_endpoint_get_a_client_error_and_the_server_keeps_serving() {
    let t = TestSim::start().await;
    let reference = unique_ref("bad");
    t.post("/epayment/v1/payments", &payment_body(&reference, 1000)).await;
    let agreement = t
        .post(
            "/recurring/v3/agreements",
            &json!({"interval": {"unit": "MONTH", "count": 1}, "merchantRedirectUrl": "https://e.com/r",
                    "merchantAgreementUrl": "https://e.com/a", "pricing": {"amount": 1000, "currency": "NOK"},
                    "productName": "x"}),
        )
        .await
        .json()["agreementId"]
        .as_str()
        .unwrap()
        .to_owned();
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let huge_number = r#"{"amount": {"currency": "NOK", "value": 1e400}}"#.to_owned();
    let bodies: Vec<String> = vec![
        String::new(),
        "null".into(),
        "[]".into(),
        "{}".into(),
        "{\"a\":".into(),
        "\u{0}\u{1}\u{2}".into(),
        "\"just a string\"".into(),
        "{\"amount\": {\"currency\": \"NOK\", \"value\": 99999999999999999999999}}".into(),
        "{\"modificationAmount\": {\"currency\": null, \"value\": -9223372036854775808}}".into(),
        "{\"amount\": -9223372036854775808, \"description\": \"x\", \"due\": \"9999-99-99\", \"retryDays\": -1, \"transactionType\": \"DIRECT_CAPTURE\"}".into(),
        "{\"status\": \"STOPPED\", \"pricing\": {\"amount\": null}}".into(),
        "{\"url\": \"https://\\u0000\", \"events\": [null]}".into(),
        deep,
        huge_number,
    ];
    let paths: Vec<(Method, String)> = vec![
        (Method::POST, "/epayment/v1/payments".into()),
        (Method::POST, format!("/epayment/v1/payments/{reference}/capture")),
        (Method::POST, format!("/epayment/v1/payments/{reference}/refund")),
        (Method::POST, format!("/epayment/v1/payments/{reference}/cancel")),
        (Method::POST, format!("/epayment/v1/test/payments/{reference}/approve")),
        (Method::POST, "/recurring/v3/agreements".into()),
        (Method::PATCH, format!("/recurring/v3/agreements/{agreement}")),
        (Method::PATCH, format!("/recurring/v3/agreements/{agreement}/accept")),
        (Method::POST, format!("/recurring/v3/agreements/{agreement}/charges")),
        (Method::POST, "/recurring/v3/agreements/charges".into()),
        (Method::POST, format!("/recurring/v3/agreements/{agreement}/charges/x/capture")),
        (Method::POST, format!("/recurring/v3/agreements/{agreement}/charges/x/refund")),
        (Method::POST, "/webhooks/v1/webhooks".into()),
        (Method::POST, "/_sim/clock/advance".into()),
        (Method::PUT, "/_sim/clock".into()),
        (Method::POST, "/_sim/faults".into()),
        (Method::POST, format!("/_sim/payments/{reference}/approve")),
        (Method::POST, format!("/_sim/agreements/{agreement}/accept")),
        (Method::POST, format!("/_sim/agreements/{agreement}/fail-next-charge")),
    ];
    let mut n = 0;
    for (method, path) in &paths {
        for (i, body) in bodies.iter().enumerate() {
            let r = send(
                t.http
                    .request(method.clone(), format!("{}{path}", t.base))
                    .bearer_auth(&t.token)
                    .header("Ocp-Apim-Subscription-Key", &t.merchant.subscription_key)
                    .header("Merchant-Serial-Number", &t.merchant.msn)
                    .header("Idempotency-Key", format!("bad-{n}-{i}"))
                    .header("Content-Type", "application/json")
                    .body(body.clone()),
            )
            .await;
            n += 1;
            assert!(!r.status.is_server_error(), "{method} {path} with body #{i}: {} {}", r.status, r.text);
        }
    }
    // Odd paths and headers.
    for path in
        ["/epayment/v1/payments/%FF%FE", "/recurring/v3/agreements/%00", "/nothing/here", "/_sim/payments/x/y/z"]
    {
        let r = t.get(path).await;
        assert!(r.status.is_client_error(), "{path}: {}", r.status);
    }
    let weird = send(
        t.http
            .get(format!("{}/epayment/v1/payments/{reference}", t.base))
            .header("Authorization", "Bearer ")
            .header("Ocp-Apim-Subscription-Key", "")
            .header("Merchant-Serial-Number", "١٢٣٤٥٦"),
    )
    .await;
    assert_eq!(weird.status, reqwest::StatusCode::UNAUTHORIZED);
    assert_eq!(t.get(&format!("/epayment/v1/payments/{reference}")).await.status, reqwest::StatusCode::OK);
    t.sim.shutdown().await;
}
