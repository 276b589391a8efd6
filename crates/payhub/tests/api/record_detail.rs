//! An installment's detail page over HTTP: found from the search box and opened from the list, its timeline,
//! and a part refund through the form, its confirmation step (which changes nothing) and the refund itself,
//! seen afterwards in the timeline and the audit log. Integrators and signed-out browsers get no page, and a
//! form without its CSRF token is refused.

use payhub::domain::role::Role;
use reqwest::StatusCode;

use crate::helpers::{collected, Browser, TestApp};
use crate::on_both_backends;

async fn refunds_of(app: &TestApp, vipps: &crate::helpers::Vipps, installment_id: &str) -> usize {
    let installment: serde_json::Value = app.v2_get(vipps, &format!("/v2/Installment/{installment_id}")).await;
    installment["Payments"].as_array().map_or(0, |p| p.iter().filter(|p| p["AmountOre"].as_i64() < Some(0)).count())
}

on_both_backends! {
    async fn finance_finds_a_payment_opens_it_and_refunds_part_with_a_confirmation_step(app) {
        let vipps = app.with_vipps().await;
        let (installment_id, reference) = collected(&app, &vipps).await;
        let finance = app.browser(Role::Finance).await;
        let page_path = format!("/installments/{installment_id}");

        let (_, found) = finance.get(&format!("/installments?q={reference}")).await;
        assert!(found.contains(&format!("href=\"{page_path}\"")), "the list links the record: {found}");
        let (status, page) = finance.get(&page_path).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains(&reference) && page.contains("36.00 NOK") && page.contains("Timeline"), "{page}");
        assert!(page.contains("<details>") && page.contains("Message"), "the Messages behind it, expandable: {page}");
        assert!(page.contains("action=\"/installments/") && page.contains("name=\"amount\""), "the refund form: {page}");
        assert!(!page.contains("Bearer "), "no credentials shown: {page}");

        let csrf = finance.csrf().await;
        let (status, bad, _) = finance.post(&format!("{page_path}/refund"), &[("amount", "lots"), ("csrf_token", &csrf)]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(bad.contains("must be in NOK"), "{bad}");
        let (status, review, _) = finance
            .post(&format!("{page_path}/refund"), &[("amount", "10"), ("reason", "Gave twice"), ("csrf_token", &csrf)])
            .await;
        assert_eq!(status, StatusCode::OK);
        assert!(review.contains("Confirm the refund") && review.contains("10.00 NOK") && review.contains("Gave twice"), "{review}");
        assert_eq!(refunds_of(&app, &vipps, &installment_id).await, 0, "the confirmation step changes nothing");

        let (status, _, location) = finance.post(&format!("{page_path}/refund/confirm"), &[("amount", "10")]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "a form without its CSRF token is refused");
        assert_eq!(refunds_of(&app, &vipps, &installment_id).await, 0);
        assert_eq!(location, None);

        let (status, _, location) = finance
            .post(&format!("{page_path}/refund/confirm"), &[("amount", "10"), ("reason", "Gave twice"), ("csrf_token", &csrf)])
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location.as_deref(), Some(page_path.as_str()));
        assert_eq!(refunds_of(&app, &vipps, &installment_id).await, 1);
        let (_, after) = finance.get(&page_path).await;
        assert!(after.contains("of 10.00 NOK: Succeeded") && after.contains("refund.request by user:"), "{after}");
        assert!(after.contains("Reason: Gave twice"), "{after}");

        let (_, too_much, _) = finance
            .post(&format!("{page_path}/refund/confirm"), &[("amount", "30"), ("csrf_token", &csrf)])
            .await;
        assert!(too_much.contains("at most what is left to refund (26.00 NOK)"), "{too_much}");
        assert_eq!(refunds_of(&app, &vipps, &installment_id).await, 1, "a refused refund changes nothing");

        let admin = app.browser(Role::Admin).await;
        let (_, audit) = admin.get("/setup/audit").await;
        assert!(audit.contains("refund.request") && audit.contains(&installment_id), "{audit}");
    }

    async fn integrators_and_strangers_get_no_record_page(app) {
        let vipps = app.with_vipps().await;
        let (installment_id, _) = collected(&app, &vipps).await;
        let path = format!("/installments/{installment_id}");
        let integrator = app.browser(Role::Integrator).await;
        assert_eq!(integrator.get(&path).await.0, StatusCode::FORBIDDEN);
        let csrf = integrator.csrf().await;
        let (status, _, _) = integrator.post(&format!("{path}/refund/confirm"), &[("amount", "1"), ("csrf_token", &csrf)]).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let stranger = Browser::new(&app).client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(stranger.status(), StatusCode::SEE_OTHER);
        assert_eq!(refunds_of(&app, &vipps, &installment_id).await, 0);
        let finance = app.browser(Role::Finance).await;
        assert_eq!(finance.get("/installments/ins_unknown").await.0, StatusCode::NOT_FOUND);
    }
}
