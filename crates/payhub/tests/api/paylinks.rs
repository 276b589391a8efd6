//! PayLinks over HTTP: the `PayURL` of an open installment, its page (payee, due date, open amount, the
//! payer's phone), paying it through the simulator, and the link afterwards ("already paid"); a double submit
//! that makes one Vipps payment; links whose installment was stopped or cancelled; and the link on the
//! installment's page in the records UI, to copy.

use payhub::domain::role::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{hidden_value, seed_intent, storage, with, Browser, TestApp, Vipps};
use crate::on_both_backends;

/// A one-time intent of 1 234,50 kr; its installment id, payment reference and PayLink path.
async fn open_installment(app: &TestApp, vipps: &Vipps) -> (String, String, String) {
    let body = with(seed_intent(), json!({"OneTime": {"Amount": "1234.50"}}));
    let (status, created) = app.intent(vipps, &body).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let installment_id = created["OneTime"]["Id"].as_str().unwrap().to_owned();
    let reference = created["OneTime"]["PaymentReference"].as_str().unwrap().to_owned();
    let installment = app.v2_get(vipps, &format!("/v2/Installment/{installment_id}")).await;
    let url =
        installment["PayURL"].as_str().unwrap_or_else(|| panic!("an open installment has a PayURL: {installment}"));
    let path = url.strip_prefix(&app.base).unwrap_or_else(|| panic!("{url} is under {}", app.base)).to_owned();
    assert!(path.starts_with("/pay/pl_") && path.len() > 40, "unguessable: {path}");
    let again = app.v2_get(vipps, &format!("/v2/Installment/{installment_id}")).await;
    assert_eq!(again["PayURL"], installment["PayURL"], "one link per installment");
    (installment_id, reference, path)
}

async fn submit(browser: &Browser, path: &str, phone: &str) -> (StatusCode, String, Option<String>) {
    let (status, page) = browser.get(path).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let token = hidden_value(&page, "csrf_token").expect("csrf token");
    browser.post(path, &[("csrf_token", &token), ("lang", "nb"), ("mobileNumber", phone)]).await
}

/// PayLink submissions of an installment, each a Message, its Inbound Report and an intent with Origin PayLink.
async fn paylink_submissions(app: &TestApp, installment_id: &str) -> i64 {
    storage::count(
        app,
        "SELECT COUNT(*) FROM payment_intents pi JOIN inbound_reports r ON r.id = pi.inbound_report_id \
         JOIN messages m ON m.id = r.message_id WHERE pi.origin = 'PayLink' AND pi.installment_id = $1 \
         AND m.subject = pi.id AND r.installment_id = $1 AND r.intent_id = pi.id",
        &[installment_id],
    )
    .await
}

/// An open installment of 250 kr made by hand (Guided Matching's create, through its store call) for the payer
/// and account of a one-time intent made first; its id and payment reference. It has no Vipps payment and no
/// PayLink yet.
pub(crate) async fn made_by_hand(app: &TestApp, vipps: &Vipps) -> (String, String) {
    let (status, created) = app.intent(vipps, &seed_intent()).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let paid = created["OneTime"]["Id"].as_str().unwrap();
    let owner = storage::pairs(app, "SELECT payer_id, account_id FROM installments WHERE id = $1", &[paid]).await;
    let (payer_id, account_id) = owner[0].clone();
    let reference = payhub::domain::ids::new_payment_reference();
    let mut conn = app.state.store.pool_for_tests().acquire().await.unwrap();
    let new = payhub::store::guided::NewManualInstallment {
        payer_id: &payer_id,
        account_id: &account_id,
        amount_ore: 25_000,
        due_date: chrono::Utc::now().date_naive(),
        payment_reference: &reference,
        product: Some("Medlemskap"),
    };
    let installment_id =
        payhub::store::guided::insert_manual_installment(&mut conn, &new, chrono::Utc::now()).await.unwrap();
    (installment_id, reference)
}

/// The link a record's page offers to copy: the value of its read-only field `id`.
pub(crate) fn link_field(page: &str, id: &str) -> Option<String> {
    let field = &page[page.find(&format!("id=\"{id}\""))?..];
    let field = &field[..field.find('>')?];
    let value = &field[field.find("value=\"")? + 7..];
    Some(value[..value.find('"')?].replace("&amp;", "&"))
}

async fn vipps_payments(app: &TestApp, installment_id: &str) -> i64 {
    storage::count(app, "SELECT COUNT(*) FROM vipps_payments WHERE installment_id = $1", &[installment_id]).await
}

on_both_backends! {
    async fn a_paylink_is_paid_once_and_then_says_already_paid(app) {
        let vipps = app.with_vipps().await;
        let (installment_id, reference, path) = open_installment(&app, &vipps).await;
        let browser = Browser::new(&app);
        let (status, page) = browser.get(&path).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("lang=\"nb\""), "{page}");
        assert!(page.contains("kr\u{a0}1\u{a0}234,50"), "open amount: {page}");
        assert!(page.contains(&chrono::Utc::now().date_naive().format("%d.%m.%Y").to_string()), "due date: {page}");
        assert!(page.contains("Sandbox"), "payee: {page}");
        assert_eq!(hidden_value(&page, "mobileNumber").as_deref(), Some("91234567"), "the payer's phone: {page}");
        let (status, page) = browser.get(&format!("{path}?lang=en&mobileNumber=48000000")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("Pay with Vipps") && page.contains("Due date"), "{page}");
        assert_eq!(hidden_value(&page, "mobileNumber").as_deref(), Some("48000000"), "the link's number wins: {page}");

        let (status, _, location) = submit(&browser, &path, "912 34 567").await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(location.unwrap().starts_with(&vipps.sim.base_url()));
        assert_eq!(vipps.control(&format!("/_sim/payments/{reference}/approve"), json!({})).await, StatusCode::OK);
        app.state.payments.sync(&reference, None).await.unwrap();

        let installment = app.v2_get(&vipps, &format!("/v2/Installment/{installment_id}")).await;
        assert_eq!(installment["Status"], "Collected", "{installment}");
        assert_eq!(installment["PayURL"], Value::Null, "no link once paid: {installment}");
        let (status, page) = browser.get(&path).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("Allerede betalt"), "{page}");
        let (_, page) = browser.get(&format!("{path}?lang=en")).await;
        assert!(page.contains("already paid"), "{page}");
        assert!(!page.contains("csrf_token"), "no form to pay again: {page}");
        assert_eq!(vipps_payments(&app, &installment_id).await, 1);
    }

    async fn a_double_submit_or_a_second_tab_makes_one_vipps_payment(app) {
        let vipps = app.with_vipps().await;
        let (installment_id, _, path) = open_installment(&app, &vipps).await;
        let first = Browser::new(&app);
        let second = Browser::new(&app);
        let (status_a, _, landing_a) = submit(&first, &path, "").await;
        let (status_b, _, landing_b) = submit(&first, &path, "").await;
        let (status_c, _, landing_c) = submit(&second, &path, "48000000").await;
        assert_eq!((status_a, status_b, status_c), (StatusCode::SEE_OTHER, StatusCode::SEE_OTHER, StatusCode::SEE_OTHER));
        assert!(landing_a.is_some());
        assert_eq!(landing_a, landing_b, "the same Vipps payment");
        assert_eq!(landing_a, landing_c, "the same Vipps payment from another tab");
        assert_eq!(vipps_payments(&app, &installment_id).await, 1);
        assert_eq!(paylink_submissions(&app, &installment_id).await, 3, "every submission is in the trail");
    }

    async fn a_paylink_submission_is_a_message_and_an_inbound_report_with_origin_paylink(app) {
        let vipps = app.with_vipps().await;
        let (installment_id, reference, path) = open_installment(&app, &vipps).await;
        assert_eq!(paylink_submissions(&app, &installment_id).await, 0);
        let browser = Browser::new(&app);
        let (status, _, _) = submit(&browser, &path, "48000000").await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(paylink_submissions(&app, &installment_id).await, 1);
        // Storage: the trail's rows themselves are the claim (the Message keeps the form as received).
        let body = storage::text(
            &app,
            "SELECT m.body FROM messages m JOIN payment_intents pi ON pi.id = m.subject WHERE pi.origin = 'PayLink' AND pi.installment_id = $1",
            &[&installment_id],
        ).await.unwrap();
        assert!(body.contains("mobileNumber=48000000") && !body.contains("csrf_token"), "{body}");
        let report = storage::pairs(
            &app,
            "SELECT r.reference, CAST(r.amount_ore AS TEXT) FROM inbound_reports r JOIN payment_intents pi ON pi.inbound_report_id = r.id WHERE pi.origin = 'PayLink'",
            &[],
        ).await;
        assert_eq!(report, vec![(reference, "123450".to_owned())]);
        let status = storage::text(&app, "SELECT status FROM payment_intents WHERE origin = 'PayLink'", &[]).await;
        assert_eq!(status.as_deref(), Some("Matched"), "the payer was sent to Vipps");
        // A refused form is no submission.
        let (status, _, _) = submit(&browser, &path, "12").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(paylink_submissions(&app, &installment_id).await, 1);
    }

    async fn an_open_installment_with_no_vipps_payment_gets_one_through_its_paylink(app) {
        let vipps = app.with_vipps().await;
        let (installment_id, reference) = made_by_hand(&app, &vipps).await;
        assert_eq!(vipps_payments(&app, &installment_id).await, 0);
        let read = app.v2_get(&vipps, &format!("/v2/Installment/{installment_id}")).await;
        let url = read["PayURL"].as_str().unwrap_or_else(|| panic!("an open installment has a PayURL: {read}"));
        let path = url.strip_prefix(&app.base).unwrap().to_owned();

        // Two tabs at once: one Vipps payment, keyed by the installment and the attempt.
        let (first, second) = (Browser::new(&app), Browser::new(&app));
        let ((status_a, _, landing_a), (status_b, _, landing_b)) =
            tokio::join!(submit(&first, &path, "48000000"), submit(&second, &path, ""));
        assert_eq!((status_a, status_b), (StatusCode::SEE_OTHER, StatusCode::SEE_OTHER));
        assert!(landing_a.as_deref().is_some_and(|l| l.starts_with(&vipps.sim.base_url())), "{landing_a:?}");
        assert_eq!(landing_a, landing_b, "the same Vipps payment");
        assert_eq!(vipps_payments(&app, &installment_id).await, 1);
        let key = storage::text(&app, "SELECT idempotency_key FROM vipps_payments WHERE installment_id = $1", &[&installment_id]).await;
        assert_eq!(key, Some(format!("{installment_id}.1")));

        assert_eq!(vipps.control(&format!("/_sim/payments/{reference}/approve"), json!({})).await, StatusCode::OK);
        app.state.payments.sync(&reference, None).await.unwrap();
        let read = app.v2_get(&vipps, &format!("/v2/Installment/{installment_id}")).await;
        assert_eq!(read["Status"], "Collected", "{read}");
        assert_eq!(read["Payments"][0]["AmountOre"], 25_000, "{read}");
        let (_, page) = first.get(&format!("{path}?lang=en")).await;
        assert!(page.contains("already paid"), "{page}");
    }

    async fn a_bad_number_is_shown_beside_its_field_and_changes_nothing(app) {
        let vipps = app.with_vipps().await;
        let (installment_id, _, path) = open_installment(&app, &vipps).await;
        let browser = Browser::new(&app);
        let (status, page, _) = submit(&browser, &path, "12").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.contains("id=\"mobileNumber-error\"") && page.contains("8 siffer"), "{page}");
        let (status, _, _) = browser.post(&path, &[("csrf_token", "gv_wrong"), ("mobileNumber", "")]).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(vipps_payments(&app, &installment_id).await, 1);
    }

    async fn stopped_and_cancelled_installments_say_so(app) {
        let vipps = app.with_vipps().await;
        let (installment_id, reference, path) = open_installment(&app, &vipps).await;
        assert_eq!(vipps.control(&format!("/_sim/payments/{reference}/reject"), json!({})).await, StatusCode::OK);
        app.state.payments.sync(&reference, None).await.unwrap();
        let installment = app.v2_get(&vipps, &format!("/v2/Installment/{installment_id}")).await;
        assert_eq!(installment["Status"], "Failed", "{installment}");
        assert_eq!(installment["PayURL"], Value::Null);
        let browser = Browser::new(&app);
        let (status, page) = browser.get(&format!("{path}?lang=en")).await;
        assert_eq!(status, StatusCode::GONE);
        assert!(page.contains("expired") && page.contains(&reference), "{page}");

        // No payer flow cancels a one-time installment (the organisation's cancel is on recurring ones), so
        // the row is moved here to see the page's wording.
        let (other, _, other_path) = open_installment(&app, &vipps).await;
        let mut conn = app.state.store.pool_for_tests().acquire().await.unwrap();
        sqlx::query("UPDATE installments SET status = 'Cancelled' WHERE id = $1").bind(&other).execute(&mut *conn).await.unwrap();
        drop(conn);
        let (status, page) = browser.get(&format!("{other_path}?lang=en")).await;
        assert_eq!(status, StatusCode::GONE);
        assert!(page.contains("cancelled"), "{page}");
        let (status, page, _) = browser.post(&other_path, &[("csrf_token", "x"), ("mobileNumber", "")]).await;
        assert_eq!(status, StatusCode::GONE, "{page}");

        let (status, _) = browser.get("/pay/pl_unknown").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    async fn the_payment_api_pays_an_existing_installment_by_its_id(app) {
        let vipps = app.with_vipps().await;
        let (status, created) = app.intent(&vipps, &seed_intent()).await;
        assert_eq!(status, StatusCode::OK, "{created}");
        let installment_id = created["OneTime"]["Id"].as_str().unwrap().to_owned();
        let reference = created["OneTime"]["PaymentReference"].as_str().unwrap().to_owned();
        let (status, again) = app.intent(&vipps, &json!({"OneTime": {"Id": installment_id}})).await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again["RedirectURL"], created["RedirectURL"], "the open payment, not a new one");
        assert!(again["Id"].as_str().is_some_and(|id| id.starts_with("pi_")) && again["Id"] != created["Id"], "the request's own intent: {again}");
        assert_eq!(again["OneTime"]["Id"], installment_id.as_str());
        assert_eq!(vipps_payments(&app, &installment_id).await, 1);
        assert_eq!(storage::count(&app, "SELECT COUNT(*) FROM installments", &[]).await, 1);

        assert_eq!(vipps.control(&format!("/_sim/payments/{reference}/approve"), json!({})).await, StatusCode::OK);
        app.state.payments.sync(&reference, None).await.unwrap();
        let (status, paid) = app.intent(&vipps, &json!({"OneTime": {"Id": installment_id}})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{paid}");
        assert!(paid.to_string().contains("already paid"), "{paid}");
        let (status, unknown) = app.intent(&vipps, &json!({"OneTime": {"Id": "ins_nothing"}})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{unknown}");
        assert_eq!(vipps_payments(&app, &installment_id).await, 1);
    }

    async fn finance_copies_an_installments_paylink_from_its_page_and_the_payer_pays_through_it(app) {
        let vipps = app.with_vipps().await;
        let (installment_id, reference) = made_by_hand(&app, &vipps).await;
        let finance = app.browser(Role::Finance).await;
        let page_path = format!("/installments/{installment_id}");
        let (status, page) = finance.get(&page_path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let url = link_field(&page, "paylink").unwrap_or_else(|| panic!("the PayLink, to copy: {page}"));
        assert!(url.starts_with(&format!("{}/pay/pl_", app.base)), "the full link: {url}");
        assert!(page.contains("readonly") && page.contains("id=\"paylink-copy\""), "read-only, with a copy button: {page}");
        let (_, again) = finance.get(&page_path).await;
        assert_eq!(link_field(&again, "paylink"), Some(url.clone()), "made once");
        let read = app.v2_get(&vipps, &format!("/v2/Installment/{installment_id}")).await;
        assert_eq!(read["PayURL"], url.as_str(), "the API's PayURL is the same link: {read}");
        let (_, admin_page) = app.browser(Role::Admin).await.get(&page_path).await;
        assert_eq!(link_field(&admin_page, "paylink"), Some(url.clone()));

        // The payer opens the link and pays through it.
        let path = url.strip_prefix(&app.base).unwrap().to_owned();
        let payer = Browser::new(&app);
        let (status, page) = payer.get(&format!("{path}?lang=en")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page.contains("Pay with Vipps") && page.contains("kr\u{a0}250"), "{page}");
        let (status, _, landing) = submit(&payer, &path, "48000000").await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(landing.is_some_and(|l| l.starts_with(&vipps.sim.base_url())));
        assert_eq!(vipps.control(&format!("/_sim/payments/{reference}/approve"), json!({})).await, StatusCode::OK);
        app.state.payments.sync(&reference, None).await.unwrap();
        let (status, page) = finance.get(&page_path).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("Collected") && link_field(&page, "paylink").is_none(), "no link once paid: {page}");
    }
}
