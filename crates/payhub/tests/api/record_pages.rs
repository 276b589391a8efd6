//! The records' detail pages and their actions over HTTP, as a finance user: a payment's and a refund's page
//! linked from their lists and from the installment; a recurring payment's and a mandate's page with the chain
//! of related records and the changes in the timeline; pause, resume and Cancel Vipps Agreement, re-sync of an
//! open payment, and re-send of an outbound delivery, each with a confirmation step that changes nothing, a
//! refused form without its CSRF token, the change itself and its audit entry. Integrators and signed-out
//! browsers get none of it.

use payhub::domain::role::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::recurring::{
    active_recurring, call, installment, installments, mandate, recurring, recurring_intent, today,
};
use crate::helpers::vipps::sim_client;
use crate::helpers::{collected, seed_intent, Browser, TestApp};
use crate::on_both_backends;
use crate::outbound_webhooks::Capture;

/// The first `href="{prefix}…"` in a page.
fn link(page: &str, prefix: &str) -> Option<String> {
    let marker = format!("href=\"{prefix}");
    let start = page.find(&marker)? + "href=\"".len();
    let end = page[start..].find('"')? + start;
    Some(page[start..end].to_owned())
}

async fn audit_actions(app: &TestApp, object_id: &str) -> Vec<String> {
    let body: Value = app
        .admin(Method::GET, &format!("/admin/api/audit?object_id={object_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = body.get("entries").or(body.get("audit")).cloned().unwrap_or(body.clone());
    entries
        .as_array()
        .map_or_else(Vec::new, |a| a.iter().filter_map(|e| e["action"].as_str().map(str::to_owned)).collect())
}

on_both_backends! {
    async fn a_payment_and_its_refund_have_pages_linked_from_their_lists_and_the_installment(app) {
        let vipps = app.with_vipps().await;
        let (installment_id, reference) = collected(&app, &vipps).await;
        let finance = app.browser(Role::Finance).await;
        let csrf = finance.csrf().await;
        let path = format!("/installments/{installment_id}");
        let (status, _, _) = finance
            .post(&format!("{path}/refund/confirm"), &[("amount", "10"), ("reason", "Gave twice"), ("csrf_token", &csrf)])
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);

        let (_, list) = finance.get(&format!("/payments?q={reference}")).await;
        let payment_path = link(&list, "/payments/pmt_").expect("the payments list links each payment");
        let (status, payment) = finance.get(&payment_path).await;
        assert_eq!(status, StatusCode::OK, "{payment}");
        assert!(payment.contains("36.00 NOK") && payment.contains(&format!("href=\"{path}\"")), "{payment}");
        assert!(payment.contains("Timeline") && payment.contains("Refund from the installment"), "{payment}");

        let (_, refunds) = finance.get(&format!("/refunds?q={reference}")).await;
        let refund_path = link(&refunds, "/refunds/rf_").expect("the refunds list links each refund");
        let (status, refund) = finance.get(&refund_path).await;
        assert_eq!(status, StatusCode::OK);
        assert!(refund.contains("10.00 NOK") && refund.contains("Succeeded") && refund.contains("Gave twice"), "{refund}");
        assert!(refund.contains(&format!("href=\"{path}\"")) && refund.contains("refund.request by user:"), "{refund}");
        let (_, installment) = finance.get(&path).await;
        assert!(installment.contains(&format!("href=\"{refund_path}\"")), "the installment links its refund");
        assert!(installment.contains(&format!("href=\"{payment_path}\"")), "and its payments");

        assert_eq!(finance.get("/payments/pmt_unknown").await.0, StatusCode::NOT_FOUND);
        assert_eq!(finance.get("/refunds/rf_unknown").await.0, StatusCode::NOT_FOUND);
    }

    async fn an_open_payment_is_resynced_from_vipps_after_a_confirmation_step_and_audited(app) {
        let vipps = app.with_vipps().await;
        let (status, created) = app.intent(&vipps, &seed_intent()).await;
        assert_eq!(status, StatusCode::OK, "{created}");
        let installment_id = created["OneTime"]["Id"].as_str().unwrap().to_owned();
        let reference = created["OneTime"]["PaymentReference"].as_str().unwrap().to_owned();
        // The payer approves, but payhub hears nothing: no webhook, no return, no poll.
        assert_eq!(vipps.control(&format!("/_sim/payments/{reference}/approve"), json!({})).await, StatusCode::OK);
        let status_of = || async {
            app.v2_get(&vipps, &format!("/v2/Installment/{installment_id}")).await["Status"].as_str().unwrap().to_owned()
        };
        assert_eq!(status_of().await, "Pending");

        let finance = app.browser(Role::Finance).await;
        let path = format!("/installments/{installment_id}");
        let (_, page) = finance.get(&path).await;
        assert!(page.contains("Vipps payment") && page.contains("CREATED"), "{page}");
        assert!(page.contains(&format!("action=\"{path}/resync\"")), "an open payment offers a re-sync: {page}");
        let csrf = finance.csrf().await;
        let (status, review, _) = finance.post(&format!("{path}/resync"), &[("csrf_token", &csrf)]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(review.contains("Confirm the re-sync") && review.contains(&reference), "{review}");
        assert_eq!(status_of().await, "Pending", "the confirmation step changes nothing");
        let (status, _, _) = finance.post(&format!("{path}/resync/confirm"), &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "a form without its CSRF token is refused");
        assert_eq!(status_of().await, "Pending");

        let (status, _, location) = finance.post(&format!("{path}/resync/confirm"), &[("csrf_token", &csrf)]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location.as_deref(), Some(path.as_str()));
        assert_eq!(status_of().await, "Collected", "the re-sync read Vipps and captured");
        assert!(audit_actions(&app, &installment_id).await.contains(&"installment.resync".to_owned()));
        let (_, after) = finance.get(&path).await;
        assert!(after.contains("installment.resync by user:") && after.contains("vipps_poll"), "{after}");
        assert!(!after.contains(&format!("action=\"{path}/resync\"")), "a captured payment offers no re-sync");
    }

    async fn an_open_charge_is_resynced_from_vipps_from_its_installments_page(app) {
        let vipps = app.with_vipps().await;
        let (_, recurring_id, _, _) = active_recurring(&app, &vipps, &recurring_intent(today(&app), "150")).await;
        app.state.payments.collect_recurring().await.expect("collect");
        let first = installments(&app, &vipps, &recurring_id).await[0].clone();
        assert_eq!(first["ChargeStatus"], "PENDING", "{first}");
        let installment_id = first["Id"].as_str().unwrap().to_owned();
        // Vipps collects the charge; payhub polls nothing and hears nothing.
        vipps.sim.advance(5 * 86_400).await;
        let before = installment(&app, &vipps, &installment_id).await;
        assert_ne!(before["Status"], "Collected", "{before}");

        let finance = app.browser(Role::Finance).await;
        let csrf = finance.csrf().await;
        let path = format!("/installments/{installment_id}");
        let (_, page) = finance.get(&path).await;
        assert!(page.contains("Vipps charge") && page.contains("PENDING"), "{page}");
        let (_, review, _) = finance.post(&format!("{path}/resync"), &[("csrf_token", &csrf)]).await;
        assert!(review.contains("Read charge"), "{review}");
        let (status, _, _) = finance.post(&format!("{path}/resync/confirm"), &[("csrf_token", &csrf)]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let after = installment(&app, &vipps, &installment_id).await;
        assert_eq!(after["Status"], "Collected", "{after}");
        assert!(audit_actions(&app, &installment_id).await.contains(&"installment.resync".to_owned()));
    }

    async fn a_recurring_payment_is_paused_and_resumed_and_its_agreement_cancelled_from_its_pages(app) {
        let vipps = app.with_vipps().await;
        let body = recurring_intent(today(&app), "100");
        let (_, recurring_id, mandate_id, agreement_id) = active_recurring(&app, &vipps, &body).await;
        let (status, changed) =
            call(&app, &vipps, Method::PATCH, &format!("/v2/Recurring/{recurring_id}"), json!({"Amount": "150"})).await;
        assert!(status.is_success(), "{changed}");
        let finance = app.browser(Role::Finance).await;
        let csrf = finance.csrf().await;

        let (_, list) = finance.get(&format!("/recurring?q={recurring_id}")).await;
        let path = format!("/recurring/{recurring_id}");
        assert!(list.contains(&format!("href=\"{path}\"")), "the list links the recurring payment: {list}");
        let (status, page) = finance.get(&path).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains(&format!("href=\"/mandates/{mandate_id}\"")) && page.contains("href=\"/installments/ins_"), "{page}");
        assert!(page.contains("150.00 NOK") && page.contains("Amount change: Succeeded"), "the change in the timeline: {page}");
        assert!(page.contains(&format!("action=\"{path}/pause\"")), "an active one offers a pause: {page}");

        let until = (today(&app) + chrono::Days::new(40)).to_string();
        let (status, bad, _) = finance.post(&format!("{path}/pause"), &[("until", "soon"), ("csrf_token", &csrf)]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(bad.contains("Give the day collection starts again"), "{bad}");
        let (status, review, _) = finance.post(&format!("{path}/pause"), &[("until", &until), ("csrf_token", &csrf)]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(review.contains("Confirm the pause") && review.contains(&until), "{review}");
        assert_eq!(recurring(&app, &vipps, &recurring_id).await["Status"], "Active", "the review changes nothing");
        let (status, _, _) = finance.post(&format!("{path}/pause/confirm"), &[("until", &until)]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _, location) =
            finance.post(&format!("{path}/pause/confirm"), &[("until", &until), ("csrf_token", &csrf)]).await;
        assert_eq!((status, location.as_deref()), (StatusCode::SEE_OTHER, Some(path.as_str())));
        assert_eq!(recurring(&app, &vipps, &recurring_id).await["Status"], "Paused");
        let (_, paused) = finance.get(&path).await;
        assert!(paused.contains("Pause: Succeeded") && paused.contains("recurring.pause by user:"), "{paused}");
        assert!(paused.contains(&format!("action=\"{path}/resume\"")), "{paused}");

        let (_, review, _) = finance.post(&format!("{path}/resume"), &[("csrf_token", &csrf)]).await;
        assert!(review.contains("Confirm the resume"), "{review}");
        assert_eq!(recurring(&app, &vipps, &recurring_id).await["Status"], "Paused");
        let (status, _, _) = finance.post(&format!("{path}/resume/confirm"), &[("csrf_token", &csrf)]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(recurring(&app, &vipps, &recurring_id).await["Status"], "Active");
        assert!(audit_actions(&app, &recurring_id).await.contains(&"recurring.resume".to_owned()));

        let mandate_path = format!("/mandates/{mandate_id}");
        let (_, page) = finance.get(&mandate_path).await;
        assert!(page.contains(&agreement_id) && page.contains("per month") && page.contains(&format!("href=\"{path}\"")), "{page}");
        assert!(page.contains("agreement.active: Matched"), "the agreement's own Messages, about no installment: {page}");
        assert!(page.contains(&format!("action=\"{mandate_path}/cancel-agreement\"")), "{page}");
        let (_, review, _) = finance.post(&format!("{mandate_path}/cancel-agreement"), &[("csrf_token", &csrf)]).await;
        assert!(review.contains("Confirm Cancel Vipps Agreement"), "{review}");
        assert_eq!(mandate(&app, &vipps, &mandate_id).await["Status"], "Active", "the review changes nothing");
        let (status, _, _) = finance.post(&format!("{mandate_path}/cancel-agreement/confirm"), &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _, location) =
            finance.post(&format!("{mandate_path}/cancel-agreement/confirm"), &[("csrf_token", &csrf)]).await;
        assert_eq!((status, location.as_deref()), (StatusCode::SEE_OTHER, Some(mandate_path.as_str())));
        assert_eq!(mandate(&app, &vipps, &mandate_id).await["Status"], "Cancelled");
        assert_eq!(recurring(&app, &vipps, &recurring_id).await["Status"], "Cancelled");
        let (_, after) = finance.get(&mandate_path).await;
        assert!(after.contains("Cancel Vipps Agreement: Succeeded") && after.contains("mandate.cancel_vipps_agreement by user:"), "{after}");
        assert!(!after.contains(&format!("action=\"{mandate_path}/cancel-agreement\"")), "a stopped agreement offers no cancel");
        let (_, after) = finance.get(&path).await;
        assert!(after.contains("Next collection") && after.contains("none"), "a cancelled one collects nothing more: {after}");
    }

    async fn a_recurring_payments_amount_and_collection_day_are_changed_from_its_page(app) {
        let vipps = app.with_vipps().await;
        let body = recurring_intent(today(&app), "100");
        let (_, recurring_id, mandate_id, agreement_id) = active_recurring(&app, &vipps, &body).await;
        let finance = app.browser(Role::Finance).await;
        let csrf = finance.csrf().await;
        let path = format!("/recurring/{recurring_id}");
        let (_, page) = finance.get(&path).await;
        assert!(page.contains(&format!("action=\"{path}/amount\"")), "an active one offers an amount change: {page}");
        assert!(page.contains(&format!("action=\"{path}/collection-day\"")), "and a collection day change: {page}");

        // Bad input is shown on the page and changes nothing; so does an amount Vipps would refuse.
        for bad in ["ten", "0", "-5", "12.345"] {
            let (status, shown, _) = finance.post(&format!("{path}/amount"), &[("amount", bad), ("csrf_token", &csrf)]).await;
            assert_eq!(status, StatusCode::OK, "{bad}");
            assert!(shown.contains("class=\"alert"), "{bad}: {shown}");
        }
        let (_, review, _) = finance.post(&format!("{path}/amount"), &[("amount", "175,50"), ("csrf_token", &csrf)]).await;
        assert!(review.contains("Confirm the new amount") && review.contains("175.50"), "{review}");
        assert_eq!(recurring(&app, &vipps, &recurring_id).await["Amount"], 100.0, "the review changes nothing");
        let (status, _, _) = finance.post(&format!("{path}/amount/confirm"), &[("amount", "175.50")]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "no CSRF token, no change");
        let (status, _, location) =
            finance.post(&format!("{path}/amount/confirm"), &[("amount", "175.50"), ("csrf_token", &csrf)]).await;
        assert_eq!((status, location.as_deref()), (StatusCode::SEE_OTHER, Some(path.as_str())));
        assert_eq!(recurring(&app, &vipps, &recurring_id).await["Amount"], 175.5);
        let at_vipps = sim_client(&vipps).recurring().get_agreement(&agreement_id).await.expect("agreement");
        assert_eq!(at_vipps.pricing.amount, Some(17_550), "Vipps has the new price");
        assert!(audit_actions(&app, &recurring_id).await.contains(&"recurring.change_amount".to_owned()));

        for bad in ["0", "32", "first"] {
            let (status, shown, _) =
                finance.post(&format!("{path}/collection-day"), &[("day", bad), ("csrf_token", &csrf)]).await;
            assert_eq!(status, StatusCode::OK, "{bad}");
            assert!(shown.contains("class=\"alert"), "{bad}: {shown}");
        }
        let (_, review, _) = finance.post(&format!("{path}/collection-day"), &[("day", "17"), ("csrf_token", &csrf)]).await;
        assert!(review.contains("Confirm the new collection day") && review.contains("17"), "{review}");
        let (status, _, location) =
            finance.post(&format!("{path}/collection-day/confirm"), &[("day", "17"), ("csrf_token", &csrf)]).await;
        assert_eq!((status, location.as_deref()), (StatusCode::SEE_OTHER, Some(path.as_str())));
        assert_eq!(recurring(&app, &vipps, &recurring_id).await["CollectionDay"], 17);
        assert!(audit_actions(&app, &recurring_id).await.contains(&"recurring.change_collection_day".to_owned()));
        let (_, after) = finance.get(&path).await;
        assert!(after.contains("175.50 NOK") && after.contains("Collection day change: Succeeded"), "{after}");

        // A cancelled one offers no change, and a forged post is refused on the page.
        let (status, _) = call(&app, &vipps, Method::POST, "/v2/actions/CancelVippsAgreement", json!({"MandateId": mandate_id})).await;
        assert!(status.is_success());
        let (_, cancelled) = finance.get(&path).await;
        assert!(!cancelled.contains(&format!("action=\"{path}/amount\"")), "{cancelled}");
        let (status, refused, _) =
            finance.post(&format!("{path}/amount/confirm"), &[("amount", "200"), ("csrf_token", &csrf)]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(refused.contains("class=\"alert"), "{refused}");
        assert_eq!(recurring(&app, &vipps, &recurring_id).await["Amount"], 175.5);
    }

    async fn an_outbound_delivery_is_in_the_timeline_and_resent_from_its_page(app) {
        let vipps = app.with_vipps().await;
        let capture = Capture::start().await;
        let response = app
            .admin(Method::POST, "/admin/api/webhook-endpoints")
            .json(&json!({"url": capture.url("/hooks")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let (installment_id, _) = collected(&app, &vipps).await;
        app.state.jobs.run_until_idle().await.unwrap();
        let sent = capture.requests().len();
        assert!(sent >= 2, "installment.created and installment.status_change at least");

        let finance = app.browser(Role::Finance).await;
        let csrf = finance.csrf().await;
        let (_, page) = finance.get(&format!("/installments/{installment_id}")).await;
        assert!(page.contains("Webhook installment.status_change to") && page.contains(": delivered after 1 attempt"), "{page}");
        let delivery_path = link(&page, "/deliveries/").expect("a delivery in the timeline links its page");
        let (_, list) = finance.get("/deliveries").await;
        assert!(list.contains(&format!("href=\"{delivery_path}\"")), "the deliveries list links it too");
        let (status, delivery) = finance.get(&delivery_path).await;
        assert_eq!(status, StatusCode::OK);
        assert!(delivery.contains(&format!("href=\"/installments/{installment_id}\"")) && delivery.contains("delivered"), "{delivery}");

        let (_, review, _) = finance.post(&format!("{delivery_path}/resend"), &[("csrf_token", &csrf)]).await;
        assert!(review.contains("Confirm the re-send"), "{review}");
        assert_eq!(app.state.jobs.run_until_idle().await.unwrap(), 0, "the review queues nothing");
        let (status, _, _) = finance.post(&format!("{delivery_path}/resend/confirm"), &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _, location) =
            finance.post(&format!("{delivery_path}/resend/confirm"), &[("csrf_token", &csrf)]).await;
        assert_eq!((status, location.as_deref()), (StatusCode::SEE_OTHER, Some(delivery_path.as_str())));
        app.state.jobs.run_until_idle().await.unwrap();
        assert_eq!(capture.requests().len(), sent + 1, "sent once more");
        let delivery_id = delivery_path.trim_start_matches("/deliveries/");
        assert!(audit_actions(&app, delivery_id).await.contains(&"webhook_delivery.resend".to_owned()));
        let (_, after) = finance.get(&delivery_path).await;
        assert!(after.contains("after 2 attempt(s)") && after.contains("webhook_delivery.resend by user:"), "{after}");
    }

    async fn integrators_and_strangers_get_no_detail_page_and_no_action(app) {
        let vipps = app.with_vipps().await;
        let body = recurring_intent(today(&app), "100");
        let (_, recurring_id, mandate_id, _) = active_recurring(&app, &vipps, &body).await;
        let integrator = app.browser(Role::Integrator).await;
        let csrf = integrator.csrf().await;
        for path in [format!("/recurring/{recurring_id}"), format!("/mandates/{mandate_id}"), "/payments/pmt_x".into(), "/refunds/rf_x".into(), "/deliveries/msg_x".into()] {
            assert_eq!(integrator.get(&path).await.0, StatusCode::FORBIDDEN, "{path}");
            let stranger = Browser::new(&app).client.get(app.url(&path)).send().await.unwrap();
            assert_eq!(stranger.status(), StatusCode::SEE_OTHER, "{path}");
        }
        let (status, _, _) = integrator
            .post(&format!("/mandates/{mandate_id}/cancel-agreement/confirm"), &[("csrf_token", &csrf)])
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(mandate(&app, &vipps, &mandate_id).await["Status"], "Active");
    }
}
