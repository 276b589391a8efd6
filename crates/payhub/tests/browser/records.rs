//! The finance records pages in a real browser on a phone-sized screen: a finance user signs in, finds a payment
//! by its reference from the search box, opens it, refunds part of it through the confirmation step and sees
//! the refund in the timeline; a list's filter survives a reload; an integrator, an integrator's API key and a
//! signed-out browser get no records page.

use payhub::auth::{self, Actor};
use payhub::domain::role::Role;
use reqwest::StatusCode;

use crate::helpers::webdriver::Browser;
use crate::helpers::{axe, collected, Backend, TestApp};

/// Signs the browser in through the sign-in page as a new user of `role`.
async fn sign_in(app: &TestApp, browser: &Browser, role: Role) {
    let email = format!("{role}-{}@example.org", uuid::Uuid::new_v4().simple());
    auth::create_user(&app.state.store, &email, "a long password 123", role, &Actor::cli()).await.unwrap();
    browser.open(&app.url("/login")).await;
    browser.type_into("#email", &email).await;
    browser.type_into("#password", "a long password 123").await;
    browser.click("main button[type=submit]").await;
    browser.wait_for("Sign out").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finance_finds_a_payment_by_its_reference_and_refunds_part_of_it() {
    let Some(browser) = Browser::start().await else { return };
    let app = TestApp::spawn(Backend::Sqlite).await.expect("app");
    let vipps = app.with_vipps().await;
    let (installment_id, reference) = collected(&app, &vipps).await;
    sign_in(&app, &browser, Role::Finance).await;

    browser.open(&app.url("/installments")).await;
    browser.type_into("form.search input[name=q]", &reference).await;
    browser.click("form.search button").await;
    browser.wait_for(&format!("href=\"/installments/{installment_id}\"")).await;
    axe::check(&browser, "the installments list").await;
    browser.click(&format!("a[href=\"/installments/{installment_id}\"]")).await;
    browser.wait_for("Timeline").await;
    assert!(browser.url().await.ends_with(&format!("/installments/{installment_id}")));
    assert_eq!(browser.text("h1").await, format!("Installment {reference}"));
    axe::check(&browser, "the installment's page").await;
    let width = browser.script("return document.documentElement.scrollWidth").await;
    assert!(width.as_u64() <= Some(390), "the page fits a phone's width: {width}");

    browser.type_into("#amount", "10").await;
    browser.type_into("#reason", "Gave twice").await;
    browser.click("form[action$=\"/refund\"] button").await;
    browser.wait_for("Confirm the refund").await;
    let payments = app.v2_get(&vipps, &format!("/v2/Installment/{installment_id}")).await;
    assert_eq!(payments["Payments"].as_array().unwrap().len(), 1, "the confirmation step changes nothing");
    browser.click("button.danger").await;
    let page = browser.wait_for("of 10.00 NOK: Succeeded").await;
    assert!(page.contains("Reason: Gave twice") && page.contains("refund.request by user:"), "{page}");
    assert!(browser.url().await.ends_with(&format!("/installments/{installment_id}")));
    let after = app.v2_get(&vipps, &format!("/v2/Installment/{installment_id}")).await;
    assert_eq!(after["Status"], "Partially refunded", "{after}");

    // A filter lives in the URL: after a reload the list is still filtered and the form still says so.
    browser.open(&app.url("/installments")).await;
    browser.script("document.getElementById('status').value = 'Partially refunded'").await;
    browser.click("form.filters button").await;
    for _ in 0..100 {
        if browser.url().await.contains("status=Partially+refunded") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(browser.url().await.contains("status=Partially+refunded"), "the filter is in the URL");
    browser.script("location.reload()").await;
    browser.wait_for(&format!("href=\"/installments/{installment_id}\"")).await;
    assert_eq!(browser.value("#status").await, "Partially refunded");
    assert!(browser.url().await.contains("status=Partially+refunded"));

    // Signed out, the records are behind the sign-in page.
    browser.click("header button.link").await;
    browser.wait_for("Sign in").await;
    browser.open(&app.url(&format!("/installments/{installment_id}"))).await;
    browser.wait_for("name=\"password\"").await;
    assert!(browser.url().await.contains("/login?next="));
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integrator_and_an_integrator_key_get_no_records_page() {
    let Some(browser) = Browser::start().await else { return };
    let app = TestApp::spawn(Backend::Sqlite).await.expect("app");
    let vipps = app.with_vipps().await;
    let (installment_id, _) = collected(&app, &vipps).await;
    sign_in(&app, &browser, Role::Integrator).await;
    for path in ["/installments".to_owned(), format!("/installments/{installment_id}"), "/payments".into()] {
        browser.open(&app.url(&path)).await;
        let page = browser.wait_for("Not allowed").await;
        assert!(!page.contains("Timeline") && !page.contains("Nordmann"), "{page}");
    }
    browser.quit().await;
    // A key is for the API: a page asked with it sends the caller to sign in and shows nothing.
    let answer = app
        .http
        .get(app.url(&format!("/installments/{installment_id}")))
        .bearer_auth(&vipps.integrator_key)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert!(answer.headers()["location"].to_str().unwrap().starts_with("/login"));
}
