//! The payer and test controls offered as `Simulator` methods.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn library_controls_act_as_the_payer_like_the_http_controls() {
    let t = TestSim::start().await;
    let a = unique_ref("lib");
    let b = unique_ref("lib");
    let declined = unique_ref("lib");
    t.post("/epayment/v1/payments", &payment_body(&a, 1000)).await;
    t.post("/epayment/v1/payments", &payment_body(&b, 1000)).await;
    t.post("/epayment/v1/payments", &payment_body(&declined, 151)).await;
    t.sim.approve_payment(&a).await.unwrap();
    t.sim.reject_payment(&b).await.unwrap();
    assert!(t.sim.approve_payment(&a).await.unwrap_err().to_string().contains("AUTHORIZED"));
    assert!(t.sim.approve_payment("no-such-payment").await.is_err());
    assert!(t.sim.approve_payment(&declined).await.unwrap_err().to_string().contains("insufficient funds"));
    assert_eq!(t.get(&format!("/epayment/v1/payments/{a}")).await.json()["state"], "AUTHORIZED");
    assert_eq!(t.get(&format!("/epayment/v1/payments/{b}")).await.json()["state"], "ABORTED");

    let draft = json!({
        "interval": {"unit": "MONTH", "count": 1},
        "merchantRedirectUrl": "https://example.com/back",
        "merchantAgreementUrl": "https://example.com/manage",
        "pricing": {"type": "LEGACY", "amount": 10000, "currency": "NOK"},
        "productName": "Socks"
    });
    let id = t.post("/recurring/v3/agreements", &draft).await.json()["agreementId"].as_str().unwrap().to_owned();
    assert!(t.sim.fail_next_charge(&id, "insufficient_funds", None).await.is_err(), "deprecated reasons are refused");
    t.sim.accept_agreement(&id).await.unwrap();
    t.sim.fail_next_charge(&id, "technical_error", Some(1)).await.unwrap();
    let due = (t.sim.now().with_timezone(&chrono_tz::Europe::Oslo).date_naive() + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let c = t
        .post(
            &format!("/recurring/v3/agreements/{id}/charges"),
            &json!({"amount": 10000, "transactionType": "DIRECT_CAPTURE", "description": "Box", "due": due, "retryDays": 2}),
        )
        .await;
    assert_eq!(c.status, StatusCode::CREATED);
    let cid = c.json()["chargeId"].as_str().unwrap().to_owned();
    t.advance(86400 + 3600).await;
    let after_first = t.get(&format!("/recurring/v3/agreements/{id}/charges/{cid}")).await.json();
    assert_eq!(after_first["status"], "DUE", "one forced failure, then a retry: {after_first}");
    t.advance(86400).await;
    assert_eq!(t.get(&format!("/recurring/v3/agreements/{id}/charges/{cid}")).await.json()["status"], "CHARGED");
    t.sim.stop_agreement(&id).await.unwrap();
    assert_eq!(t.get(&format!("/recurring/v3/agreements/{id}")).await.json()["status"], "STOPPED");
    assert!(t.sim.reject_agreement(&id).await.is_err());
    t.sim.shutdown().await;
}
