//! Setup URLs over HTTP: `SetupURL` on `GET /v2/Recurring/{Id}`, its page while the agreement is active, a
//! payer who stopped the agreement approving a new one for the same recurring payment (one new agreement
//! however many tabs or clicks, each submission in the trail with Origin `SetupURL`), collection going on under
//! the new agreement, and the pages for a recurring payment there is nothing to renew on.

use payhub::domain::role::Role;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::recurring::{active_recurring, days_pass, recurring, recurring_intent, today};
use crate::helpers::vipps::agreements_at_vipps;
use crate::helpers::{hidden_value, storage, Browser, TestApp, Vipps};
use crate::on_both_backends;
use crate::paylinks::link_field;

/// A monthly recurring payment of 100 kr, active; (recurring id, mandate id, agreement id, Setup URL path).
async fn active(app: &TestApp, vipps: &Vipps) -> (String, String, String, String) {
    let (_, recurring_id, mandate_id, agreement_id) =
        active_recurring(app, vipps, &recurring_intent(today(app), "100")).await;
    let read = recurring(app, vipps, &recurring_id).await;
    let url = read["SetupURL"].as_str().unwrap_or_else(|| panic!("a SetupURL: {read}"));
    let path = url.strip_prefix(&app.base).unwrap_or_else(|| panic!("{url} is under {}", app.base)).to_owned();
    assert!(path.starts_with("/renew/rn_") && path.len() > 50, "unguessable: {path}");
    assert_eq!(
        recurring(app, vipps, &recurring_id).await["SetupURL"],
        read["SetupURL"],
        "one link per recurring payment"
    );
    (recurring_id, mandate_id, agreement_id, path)
}

/// The payer stops the agreement in Vipps and payhub hears of it.
async fn stopped_by_the_payer(app: &TestApp, vipps: &Vipps, mandate_id: &str, agreement_id: &str) {
    assert_eq!(vipps.control(&format!("/_sim/agreements/{agreement_id}/stop"), json!({})).await, StatusCode::OK);
    app.state.payments.sync_agreement(mandate_id, None).await.unwrap();
}

async fn submit(browser: &Browser, path: &str, phone: &str) -> (StatusCode, String, Option<String>) {
    let (status, page) = browser.get(path).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let token = hidden_value(&page, "csrf_token").expect("csrf token");
    browser.post(path, &[("csrf_token", &token), ("lang", "en"), ("mobileNumber", phone)]).await
}

async fn setup_submissions(app: &TestApp) -> i64 {
    storage::count(
        app,
        "SELECT COUNT(*) FROM payment_intents pi JOIN inbound_reports r ON r.id = pi.inbound_report_id \
         JOIN messages m ON m.id = r.message_id WHERE pi.origin = 'SetupURL' AND m.subject = pi.id \
         AND r.report_type = 'PaymentIntent' AND r.intent_id = pi.id",
        &[],
    )
    .await
}

on_both_backends! {
    async fn a_payer_renews_a_stopped_agreement_and_the_recurring_payment_goes_on_collecting(app) {
        let vipps = app.with_vipps().await;
        let (recurring_id, mandate_id, agreement_id, path) = active(&app, &vipps).await;
        let browser = Browser::new(&app);
        let (status, page) = browser.get(&format!("{path}?lang=en")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("The agreement is active") && !page.contains("csrf_token"), "{page}");

        stopped_by_the_payer(&app, &vipps, &mandate_id, &agreement_id).await;
        assert_eq!(recurring(&app, &vipps, &recurring_id).await["Status"], "Ended");
        let (status, page) = browser.get(&path).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("lang=\"nb\"") && page.contains("Godkjenn ny avtale"), "{page}");
        assert!(page.contains("kr\u{a0}100") && page.contains("Hver måned"), "the terms: {page}");
        // This month's installment was cancelled with the agreement: a new one collects from next month.
        let next_month = today(&app).checked_add_months(chrono::Months::new(1)).unwrap();
        assert!(page.contains(&next_month.format("%d.%m.%Y").to_string()), "the next due date: {page}");
        assert_eq!(hidden_value(&page, "mobileNumber").as_deref(), Some("91234567"), "the payer's phone: {page}");
        let (_, page) = browser.get(&format!("{path}?lang=en&mobileNumber=48000000")).await;
        assert!(page.contains("Approve a new agreement") && page.contains("Monthly"), "{page}");
        assert_eq!(hidden_value(&page, "mobileNumber").as_deref(), Some("48000000"), "the link's number wins: {page}");

        // Two clicks and a second tab: one new agreement at Vipps, every submission in the trail.
        let (status_a, _, landing_a) = submit(&browser, &path, "48000000").await;
        let (status_b, _, landing_b) = submit(&browser, &path, "48000000").await;
        let (status_c, _, landing_c) = submit(&Browser::new(&app), &path, "").await;
        assert_eq!((status_a, status_b, status_c), (StatusCode::SEE_OTHER, StatusCode::SEE_OTHER, StatusCode::SEE_OTHER));
        let landing = landing_a.unwrap();
        assert!(landing.starts_with(&vipps.sim.base_url()), "{landing}");
        assert_eq!(Some(&landing), landing_b.as_ref());
        assert_eq!(Some(&landing), landing_c.as_ref(), "the same agreement from another tab");
        assert_eq!(agreements_at_vipps(&vipps).await, 2, "the first agreement and one new one");
        assert_eq!(setup_submissions(&app).await, 3, "each submission is a Message, an Inbound Report and an intent");
        let first = storage::text(&app, "SELECT m.body FROM messages m JOIN payment_intents pi ON pi.id = m.subject \
             WHERE pi.origin = 'SetupURL' ORDER BY m.received_at, m.id LIMIT 1", &[]).await.unwrap();
        assert!(first.contains("mobileNumber=48000000") && !first.contains("csrf_token"), "the form as received: {first}");
        // Storage: the renewal mandate has no API of its own until the recurring payment moves onto it.
        let renewal = storage::text(&app, "SELECT mandate_id FROM renewals WHERE recurring_payment_id = $1", &[&recurring_id]).await.unwrap();
        let new_agreement = storage::text(&app, "SELECT agreement_id FROM mandates WHERE id = $1", &[&renewal]).await.unwrap();
        assert_ne!(new_agreement, agreement_id);
        let read = crate::helpers::recurring::mandate(&app, &vipps, &renewal).await;
        assert_eq!(read["Status"], "Pending", "{read}");
        assert_eq!(read["Price"].as_f64(), Some(100.0), "the recurring payment's amount: {read}");

        // The payer approves; the payer's return brings payhub up to date and shows the page, now active.
        assert_eq!(vipps.control(&format!("/_sim/agreements/{new_agreement}/accept"), json!({})).await, StatusCode::OK);
        let back = storage::text(&app, "SELECT redirect_url FROM mandates WHERE id = $1", &[&renewal]).await.unwrap();
        let back = back.strip_prefix(&app.base).unwrap().to_owned();
        let response = browser.client.get(app.url(&back)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let to = response.headers()["location"].to_str().unwrap().to_owned();
        assert!(to.ends_with(&format!("{path}?lang=en")), "back to the Setup URL: {to}");
        let (_, page) = browser.get(&format!("{path}?lang=en")).await;
        assert!(page.contains("The agreement is active"), "{page}");
        let read = recurring(&app, &vipps, &recurring_id).await;
        assert_eq!(read["Status"], "Active", "{read}");
        assert_eq!(read["Mandate"]["Id"], renewal.as_str(), "{read}");
        assert_eq!(read["Mandate"]["Status"], "Active", "{read}");
        assert_eq!(read["NextCollectionDate"], next_month.to_string().as_str(), "no period missed while stopped is collected late: {read}");

        // A month on, the next installment is charged on the new agreement and collected.
        days_pass(&app, &vipps, 30).await;
        days_pass(&app, &vipps, 3).await;
        let collected = storage::count(
            &app,
            "SELECT COUNT(*) FROM installments WHERE recurring_payment_id = $1 AND mandate_id = $2 AND status = 'Collected'",
            &[&recurring_id, &renewal],
        ).await;
        assert_eq!(collected, 1, "{}", recurring(&app, &vipps, &recurring_id).await);
        let charged = crate::helpers::vipps::charge_ids_at_vipps(&vipps, &new_agreement).await;
        assert_eq!(charged.len(), 1, "charged on the new agreement: {charged:?}");
    }

    async fn a_setup_url_says_when_there_is_nothing_to_renew(app) {
        let vipps = app.with_vipps().await;
        let (recurring_id, _, _, path) = active(&app, &vipps).await;
        let browser = Browser::new(&app);
        let (status, page, _) = browser.post(&path, &[("csrf_token", "x"), ("mobileNumber", "")]).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page.contains("Avtalen er aktiv"), "an active agreement is not renewed: {page}");

        let (status, _) = crate::helpers::recurring::call(&app, &vipps, reqwest::Method::POST, &format!("/v2/Recurring/{recurring_id}/Cancel"), json!({})).await;
        assert!(status.is_success(), "{status}");
        let (status, page) = browser.get(&format!("{path}?lang=en")).await;
        assert_eq!(status, StatusCode::GONE);
        assert!(page.contains("cancelled") && page.contains(&recurring_id), "{page}");
        let (status, _, _) = browser.post(&path, &[("csrf_token", "x"), ("mobileNumber", "")]).await;
        assert_eq!(status, StatusCode::GONE);
        assert_eq!(setup_submissions(&app).await, 0, "nothing recorded");
        let (status, _) = browser.get("/renew/rn_unknown").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    async fn a_bad_number_or_a_stale_form_records_nothing(app) {
        let vipps = app.with_vipps().await;
        let (_, mandate_id, agreement_id, path) = active(&app, &vipps).await;
        stopped_by_the_payer(&app, &vipps, &mandate_id, &agreement_id).await;
        let browser = Browser::new(&app);
        let (status, page, _) = submit(&browser, &path, "12").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.contains("id=\"mobileNumber-error\"") && page.contains("8 digits"), "{page}");
        let (status, _, _) = browser.post(&path, &[("csrf_token", "gv_wrong"), ("mobileNumber", "")]).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(setup_submissions(&app).await, 0);
        assert_eq!(agreements_at_vipps(&vipps).await, 1);
    }

    async fn finance_copies_the_setup_url_of_a_stopped_agreement_from_its_page_and_the_payer_opens_it(app) {
        let vipps = app.with_vipps().await;
        let (_, recurring_id, mandate_id, agreement_id) =
            active_recurring(&app, &vipps, &recurring_intent(today(&app), "100")).await;
        let finance = app.browser(Role::Finance).await;
        let page_path = format!("/recurring/{recurring_id}");
        let (status, page) = finance.get(&page_path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(link_field(&page, "setup-url").is_none(), "nothing to renew while the agreement is active: {page}");

        stopped_by_the_payer(&app, &vipps, &mandate_id, &agreement_id).await;
        let (status, page) = finance.get(&page_path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let url = link_field(&page, "setup-url").unwrap_or_else(|| panic!("the Setup URL, to copy: {page}"));
        assert!(url.starts_with(&format!("{}/renew/rn_", app.base)), "the full link: {url}");
        assert!(page.contains("id=\"setup-url-copy\""), "{page}");
        let (_, again) = finance.get(&page_path).await;
        assert_eq!(link_field(&again, "setup-url"), Some(url.clone()), "made once");
        let read = recurring(&app, &vipps, &recurring_id).await;
        assert_eq!(read["SetupURL"], url.as_str(), "the API's SetupURL is the same link: {read}");

        // The payer opens it: the form to approve a new agreement.
        let path = url.strip_prefix(&app.base).unwrap().to_owned();
        let payer = Browser::new(&app);
        let (status, page) = payer.get(&format!("{path}?lang=en")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page.contains("Approve a new agreement") && page.contains("csrf_token"), "{page}");
        let (status, _, landing) = submit(&payer, &path, "48000000").await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(landing.is_some_and(|l| l.starts_with(&vipps.sim.base_url())));
    }
}
