//! The payer's phone: the landing page behind `redirectUrl` / `vippsConfirmationUrl`, driven as a
//! browser without JavaScript would (GET the page, POST its form, follow the 303 by hand).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{payment_body, unique_ref, Resp, TestSim};
use serde_json::{json, Value};

fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn token_of(url: &str) -> String {
    let u = url::Url::parse(url).unwrap();
    u.query_pairs().find(|(k, _)| k == "token").map(|(_, v)| v.into_owned()).unwrap()
}

async fn open(url: &str) -> Resp {
    common::send(browser().get(url)).await
}

/// Submits the landing form as a browser does.
async fn press(t: &TestSim, token: &str, action: &str, phone: &str) -> Resp {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("token", token)
        .append_pair("phoneNumber", phone)
        .append_pair("action", action)
        .finish();
    common::send(
        browser()
            .post(format!("{}/landing", t.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body),
    )
    .await
}

async fn new_payment(t: &TestSim, value: i64, description: &str) -> (String, String, Value) {
    let reference = unique_ref("payer");
    let mut body = payment_body(&reference, value);
    body["paymentDescription"] = json!(description);
    let r = t.post("/epayment/v1/payments", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let redirect = r.json()["redirectUrl"].as_str().unwrap().to_owned();
    (reference, redirect, body)
}

async fn state(t: &TestSim, reference: &str) -> String {
    t.get(&format!("/epayment/v1/payments/{reference}")).await.json()["state"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn approving_on_the_landing_page_authorizes_the_payment_and_returns_to_the_shop() {
    let t = TestSim::start().await;
    let (reference, redirect, body) = new_payment(&t, 12_345, "Socks <b>&</b> \"shoes\"").await;

    let page = open(&redirect).await;
    assert_eq!(page.status, 200);
    assert!(page.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.text.contains("123,45 kr"), "{}", page.text);
    assert!(page.text.contains("Sales unit 123456"));
    assert!(page.text.contains("Socks &lt;b&gt;&amp;&lt;/b&gt; &quot;shoes&quot;"), "{}", page.text);
    assert!(!page.text.contains("<b>&</b>"));
    assert!(page.text.contains("<form method=\"post\" action=\"/landing\">"));
    assert!(page.text.contains("value=\"approve\"") && page.text.contains("value=\"reject\""));
    assert!(!page.text.contains("<script"));

    let r = press(&t, &token_of(&redirect), "approve", "4798765432").await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(r.headers["location"], body["returnUrl"].as_str().unwrap());
    let p = t.get(&format!("/epayment/v1/payments/{reference}")).await.json();
    assert_eq!(p["state"], "AUTHORIZED");
    assert_eq!(p["aggregate"]["authorizedAmount"]["value"], 12_345);

    // Back button: the page now says there is nothing left to approve, and a second press does nothing.
    let again = open(&redirect).await;
    assert_eq!(again.status, 409);
    assert!(again.text.contains("already been handled (AUTHORIZED)"), "{}", again.text);
    let r = press(&t, &token_of(&redirect), "reject", "").await;
    assert_eq!(r.status, 409);
    assert_eq!(state(&t, &reference).await, "AUTHORIZED");
}

#[tokio::test]
async fn rejecting_on_the_landing_page_aborts_the_payment_and_returns_to_the_shop() {
    let t = TestSim::start().await;
    let (reference, redirect, body) = new_payment(&t, 5_000, "Lunch").await;
    let r = press(&t, &token_of(&redirect), "reject", "").await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(r.headers["location"], body["returnUrl"].as_str().unwrap());
    assert_eq!(state(&t, &reference).await, "ABORTED");
    let page = open(&redirect).await;
    assert_eq!(page.status, 409);
    assert!(page.text.contains("cancelled or rejected (ABORTED)"));
}

#[tokio::test]
async fn an_expired_payment_shows_a_clear_page_and_cannot_be_approved() {
    let t = TestSim::start().await;
    let (reference, redirect, _) = new_payment(&t, 5_000, "Lunch").await;
    t.advance(11 * 60).await;
    let page = open(&redirect).await;
    assert_eq!(page.status, 410);
    assert!(page.text.contains("has expired"), "{}", page.text);
    let r = press(&t, &token_of(&redirect), "approve", "").await;
    assert_eq!(r.status, 410);
    assert_eq!(state(&t, &reference).await, "EXPIRED");
}

#[tokio::test]
async fn unknown_tokens_bad_actions_and_bad_phone_numbers_get_a_page_not_a_crash() {
    let t = TestSim::start().await;
    let r = open(&format!("{}/landing?token=nope", t.base)).await;
    assert_eq!(r.status, 404);
    assert!(r.text.contains("not known"));
    let r = open(&format!("{}/landing", t.base)).await;
    assert_eq!(r.status, 404);
    let (reference, redirect, _) = new_payment(&t, 5_000, "Lunch").await;
    let token = token_of(&redirect);
    assert_eq!(press(&t, &token, "steal", "").await.status, 400);
    let r = press(&t, &token, "approve", "12<x>").await;
    assert_eq!(r.status, 400);
    assert!(!r.text.contains("<x>"));
    let r = common::send(browser().post(format!("{}/landing", t.base)).body(vec![0xff, 0xfe, b'&', b'='])).await;
    assert_eq!(r.status, 404);
    assert_eq!(state(&t, &reference).await, "CREATED");
}

#[tokio::test]
async fn accepting_an_agreement_on_the_landing_page_activates_it_and_returns_to_the_merchant() {
    let t = TestSim::start().await;
    let draft = json!({
        "phoneNumber": "4791234567",
        "interval": {"unit": "MONTH", "count": 1},
        "merchantRedirectUrl": "https://example.com/agreement-done?x=1&y=2",
        "merchantAgreementUrl": "https://example.com/my-agreement",
        "pricing": {"type": "LEGACY", "amount": 29_900, "currency": "NOK"},
        "productName": "Avis <Pluss>",
        "initialCharge": {"amount": 9_900, "description": "First month", "transactionType": "DIRECT_CAPTURE"}
    });
    let r = t.post("/recurring/v3/agreements", &draft).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let v = r.json();
    let id = v["agreementId"].as_str().unwrap().to_owned();
    let url = v["vippsConfirmationUrl"].as_str().unwrap().to_owned();

    let page = open(&url).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("Avis &lt;Pluss&gt;"), "{}", page.text);
    assert!(page.text.contains("299,00 kr"));
    assert!(page.text.contains("To pay now: 99,00 kr (First month)"));
    assert!(page.text.contains("value=\"4791234567\""), "the number the merchant sent is filled in");

    let r = press(&t, &token_of(&url), "approve", "").await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(r.headers["location"], "https://example.com/agreement-done?x=1&y=2");
    let a = t.get(&format!("/recurring/v3/agreements/{id}")).await.json();
    assert_eq!(a["status"], "ACTIVE");
    let again = open(&url).await;
    assert_eq!(again.status, 409);
}

#[tokio::test]
async fn rejecting_an_agreement_on_the_landing_page_stops_it() {
    let t = TestSim::start().await;
    let draft = json!({
        "phoneNumber": "4791234567",
        "interval": {"unit": "WEEK", "count": 2},
        "merchantRedirectUrl": "https://example.com/back",
        "merchantAgreementUrl": "https://example.com/my-agreement",
        "pricing": {"type": "VARIABLE", "suggestedMaxAmount": 50_000, "currency": "NOK"},
        "productName": "Power"
    });
    let r = t.post("/recurring/v3/agreements", &draft).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let v = r.json();
    let id = v["agreementId"].as_str().unwrap().to_owned();
    let url = v["vippsConfirmationUrl"].as_str().unwrap().to_owned();
    let page = open(&url).await;
    assert!(page.text.contains("Variable price, up to 500,00 kr"), "{}", page.text);
    let r = press(&t, &token_of(&url), "reject", "").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.headers["location"], "https://example.com/back");
    let a = t.get(&format!("/recurring/v3/agreements/{id}")).await.json();
    assert_eq!(a["status"], "STOPPED");
}
