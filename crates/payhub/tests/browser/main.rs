//! Payer pages in a real browser: headless Chromium on a phone-sized screen, against payhub and the Vipps
//! simulator, with axe-core checking each page. SQLite only: what is checked here is the browser's side (the
//! HTTP tests run both backends).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod helpers;
mod records;

use reqwest::{Method, StatusCode};
use serde_json::json;

use helpers::webdriver::Browser;
use helpers::{axe, storage, Backend, TestApp};

/// An app with the simulator and the `spring` page, and a browser; `None` when no browser is installed.
async fn start() -> Option<(TestApp, helpers::Vipps, Browser)> {
    let browser = Browser::start().await?;
    let app = TestApp::spawn(Backend::Sqlite).await.expect("app");
    let vipps = app.with_vipps().await;
    let response = app
        .admin(Method::POST, "/admin/api/giving-pages")
        .json(&json!({"slug": "spring", "title": {"nb": "Vårinnsamling for rent vann", "en": "Spring appeal for clean water"},
            "intro": {"nb": "Hver gave gir en familie rent vann.", "en": "Every gift gives a family clean water."},
            "amounts": [{"amount": 100, "narrative": {"nb": "Vannfilter", "en": "A water filter"}}, 250, 500],
            "frequencies": ["OneTime", "Monthly"], "account": "Sandbox", "max_amount": 5000,
            "thank_you": {"nb": "Gaven din gir rent vann.", "en": "Your gift gives clean water."}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    Some((app, vipps, browser))
}

/// On the simulator's payer page: the phone payhub sent is shown; approve.
async fn approve_in_vipps(browser: &Browser) -> String {
    browser.wait_for("Vipps MobilePay · simulator").await;
    let phone = browser.value("input[name=phoneNumber]").await;
    browser.click("button[value=approve]").await;
    phone
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_time_gift_on_a_phone_prefilled_then_typed() {
    let Some((app, _vipps, browser)) = start().await else { return };
    browser.open(&app.url("/give/spring?mobileNumber=4791234567")).await;
    assert_eq!(browser.value("#mobileNumber").await, "4791234567", "the query pre-fills the phone");
    assert_eq!(browser.script("return document.documentElement.lang").await, "nb");
    axe::check(&browser, "the giving page").await;
    let shot = browser.screenshot().await;
    let saved = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("giving-page.png");
    std::fs::write(&saved, &shot).unwrap();
    if std::env::var_os("PAYHUB_UPDATE_SCREENSHOTS").is_some() {
        std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/giving-page.png"), &shot).unwrap();
    }
    assert!(shot.starts_with(b"\x89PNG"), "a phone-sized screenshot, at {}", saved.display());

    browser.click("label[for=preset-25000]").await;
    browser.type_into("#mobileNumber", "930 00 002").await;
    browser.type_into("#firstName", "Kari").await;
    browser.type_into("#email", "kari@example.no").await;
    browser.click("button[type=submit]").await;
    let phone = approve_in_vipps(&browser).await;
    assert_eq!(phone, "4793000002", "Vipps got the number the payer typed, not the query's");
    let page = browser.wait_for("Takk for gaven!").await;
    assert!(page.contains("Gaven din gir rent vann."));
    assert!(browser.url().await.contains("/give/spring/thanks/"));
    axe::check(&browser, "the thank-you page").await;
    assert_eq!(storage::text(&app, "SELECT status FROM installments", &[]).await.as_deref(), Some("Collected"));
    assert_eq!(
        storage::text(&app, "SELECT CAST(amount_ore AS TEXT) FROM installments", &[]).await.as_deref(),
        Some("25000")
    );
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monthly_gift_on_a_phone() {
    let Some((app, _vipps, browser)) = start().await else { return };
    browser.open(&app.url("/give/spring?phone=%2B47%20912%2034%20567")).await;
    assert_eq!(browser.value("#mobileNumber").await, "+47 912 34 567");
    browser.click("label[for=frequency-Monthly]").await;
    browser.type_into("#amount", "150").await;
    browser.type_into("#mobileNumber", "93000003").await;
    browser.click("button[type=submit]").await;
    browser.wait_for("Vipps MobilePay · simulator").await;
    let phone = browser.value("input[name=phoneNumber]").await;
    assert_eq!(phone, "4793000003");
    browser.click("button[value=approve]").await;
    browser.wait_for("Takk for at du gir fast!").await;
    axe::check(&browser, "the thank-you page of a monthly gift").await;
    assert_eq!(storage::text(&app, "SELECT status FROM mandates", &[]).await.as_deref(), Some("Active"));
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_amount_is_shown_beside_its_field() {
    let Some((app, _vipps, browser)) = start().await else { return };
    browser.open(&app.url("/give/spring")).await;
    browser.type_into("#amount", "tusen").await;
    browser.click("button[type=submit]").await;
    browser.wait_for("Noe må rettes").await;
    assert!(browser.text("#amount-error").await.contains("Skriv beløpet i kroner"));
    assert_eq!(
        browser.script("return document.getElementById('amount').getAttribute('aria-describedby')").await,
        "amount-hint amount-error"
    );
    assert_eq!(browser.value("#amount").await, "tusen", "what the payer typed stays");
    axe::check(&browser, "the giving page with errors").await;
    assert_eq!(storage::count(&app, "SELECT COUNT(*) FROM messages", &[]).await, 0, "nothing recorded");
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_in_english() {
    let Some((app, _vipps, browser)) = start().await else { return };
    browser.open(&app.url("/give/spring?lang=en&amount=75")).await;
    assert_eq!(browser.script("return document.documentElement.lang").await, "en");
    assert_eq!(browser.text("h1").await, "Spring appeal for clean water");
    assert_eq!(browser.text("button[type=submit]").await, "Give with Vipps");
    assert_eq!(browser.value("#amount").await, "75");
    axe::check(&browser, "the giving page in English").await;
    browser.type_into("#amount", "1").await;
    browser.click("button[type=submit]").await;
    browser.wait_for("Something needs fixing").await;
    assert!(browser.text("#amount-error").await.contains("below the smallest gift"));
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paylink_paid_once_then_says_already_paid() {
    let Some((app, vipps, browser)) = start().await else { return };
    let body = helpers::with(helpers::seed_intent(), json!({"SuccessURL": app.url("/healthz")}));
    let (status, created) = app.intent(&vipps, &body).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let installment_id = created["OneTime"]["Id"].as_str().unwrap().to_owned();
    let installment = app.v2_get(&vipps, &format!("/v2/Installment/{installment_id}")).await;
    let pay_url = installment["PayURL"].as_str().expect("an open installment has a PayURL").to_owned();
    browser.open(&pay_url).await;
    assert_eq!(browser.value("#mobileNumber").await, "91234567", "pre-filled with the payer's phone");
    assert_eq!(browser.text(".amount").await.replace('\u{a0}', " "), "kr 36");
    axe::check(&browser, "the PayLink page").await;
    browser.click("button[type=submit]").await;
    approve_in_vipps(&browser).await;
    // The return to payhub reads the payment and captures it; the browser's navigation runs on its own.
    let mut paid = app.v2_get(&vipps, &format!("/v2/Installment/{installment_id}")).await;
    for _ in 0..50 {
        if paid["Status"] == "Collected" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        paid = app.v2_get(&vipps, &format!("/v2/Installment/{installment_id}")).await;
    }
    assert_eq!(paid["Status"], "Collected", "{paid}");
    assert!(paid["PayURL"].is_null(), "{paid}");
    browser.open(&format!("{pay_url}?lang=en")).await;
    browser.wait_for("already paid").await;
    axe::check(&browser, "the already-paid page").await;
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_agreement_renewed_on_its_setup_url() {
    let Some((app, vipps, browser)) = start().await else { return };
    let body = helpers::recurring::recurring_intent(helpers::recurring::today(&app), "100");
    let (_, recurring_id, mandate_id, agreement_id) = helpers::recurring::active_recurring(&app, &vipps, &body).await;
    let stop = format!("/_sim/agreements/{agreement_id}/stop");
    assert_eq!(vipps.control(&stop, json!({})).await, StatusCode::OK);
    app.state.payments.sync_agreement(&mandate_id, None).await.unwrap();
    let read = app.v2_get(&vipps, &format!("/v2/Recurring/{recurring_id}")).await;
    assert_eq!(read["Status"], "Ended", "{read}");
    let setup_url = read["SetupURL"].as_str().expect("a SetupURL").to_owned();

    browser.open(&setup_url).await;
    browser.wait_for("Godkjenn ny avtale").await;
    assert_eq!(browser.value("#mobileNumber").await, "91234567", "pre-filled with the payer's phone");
    assert_eq!(browser.text(".amount").await.replace('\u{a0}', " "), "kr 100");
    axe::check(&browser, "the Setup URL page").await;
    browser.type_into("#mobileNumber", "930 00 004").await;
    browser.click("button[type=submit]").await;
    let phone = approve_in_vipps(&browser).await;
    assert_eq!(phone, "4793000004", "Vipps got the number the payer typed");
    // Back from Vipps, payhub reads the new agreement and shows the Setup URL again: active now.
    browser.wait_for("Avtalen er aktiv").await;
    axe::check(&browser, "the Setup URL page once active").await;
    let read = app.v2_get(&vipps, &format!("/v2/Recurring/{recurring_id}")).await;
    assert_eq!(read["Status"], "Active", "{read}");
    assert_ne!(read["Mandate"]["Id"], mandate_id.as_str(), "a new mandate: {read}");
    assert_eq!(read["Mandate"]["Status"], "Active", "{read}");
    browser.quit().await;
}
