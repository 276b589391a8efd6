//! Guided Matching with settlement files: a Vipps-number payment made on the simulator, exported by it as the
//! portal's settlement report, imported, and worked through the queue by people, on both backends.

use payhub::domain::role::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::cli::{payhub_of, run_beside};
use crate::helpers::storage::count;
use crate::helpers::{TestApp, Vipps};
use crate::on_both_backends;

const NUMBER: &str = "57860";

/// A payer pays `kroner` straight to the Vipps number, with a message.
async fn pay_vipps_number(vipps: &Vipps, ore: i64, name: &str, message: &str) {
    let body =
        json!({"vippsNumber": NUMBER, "amount": ore, "name": name, "message": message, "phoneNumber": "4791234567"});
    assert_eq!(vipps.control("/_sim/vipps-number-payments", body).await, StatusCode::CREATED);
}

/// The Vipps number's settlement report, as the simulator exports it (the portal's Details csv).
async fn settlement_file(vipps: &Vipps, lang: &str) -> Vec<u8> {
    let url = format!("{}/_sim/vipps-number-payments/{NUMBER}/settlement.csv?lang={lang}", vipps.sim.base_url());
    let response = vipps.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.bytes().await.unwrap().to_vec()
}

async fn upload(app: &TestApp, key: &str, account: &str, file: Vec<u8>) -> (StatusCode, Value) {
    let response = app
        .http
        .post(app.url(&format!("/admin/api/reconciliation/files?account={account}")))
        .bearer_auth(key)
        .header("content-type", "text/csv")
        .body(file)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn call(app: &TestApp, key: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = app.http.request(method, app.url(path)).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn open_items(app: &TestApp, key: &str) -> Vec<Value> {
    let (status, body) = call(app, key, Method::GET, "/admin/api/reconciliation/queue", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().unwrap().clone()
}

async fn ledger_rows(app: &TestApp) -> i64 {
    count(app, "SELECT COUNT(*) FROM ledger_entries", &[]).await
}

on_both_backends! {
    async fn a_vipps_number_payment_in_an_exported_file_is_matched_by_a_person_to_a_new_installment(app) {
        let vipps = app.with_vipps().await;
        let finance = app.key(Role::Finance).await;
        pay_vipps_number(&vipps, 25_000, "Kari Test", "Til sommerleiren,\nhilsen Kari").await;
        let file = settlement_file(&vipps, "no").await;

        let (status, body) = upload(&app, &finance, "Sandbox", file.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["summary"], "1 new, 0 already imported");
        assert_eq!(body["import"]["queued"], 1);
        // The file is one Message; its row is a Message and an Inbound Report of its own.
        assert_eq!(count(&app, "SELECT COUNT(*) FROM messages WHERE channel = 'settlement_file'", &[]).await, 2);
        assert_eq!(count(&app, "SELECT COUNT(*) FROM inbound_reports WHERE sub_type = 'ledger.capture' AND status = 'New'", &[]).await, 1);

        // Re-importing the same file (or its English twin) is a no-op that says so.
        let (status, again) = upload(&app, &finance, "Sandbox", file).await;
        assert_eq!((status, again["summary"].as_str()), (StatusCode::CREATED, Some("0 new, 1 already imported")));
        let (_, english) = upload(&app, &finance, "Sandbox", settlement_file(&vipps, "en").await).await;
        assert_eq!(english["summary"], "0 new, 1 already imported");
        assert_eq!(ledger_rows(&app).await, 1);

        let items = open_items(&app, &finance).await;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["reason"], "vipps_number_payment");
        let (status, taken) = call(&app, &finance, Method::POST, "/admin/api/reconciliation/queue/next", None).await;
        assert_eq!(status, StatusCode::OK, "{taken}");
        let id = taken["item"]["id"].as_str().unwrap().to_owned();
        assert_eq!(taken["item"]["worked_by"].as_str().map(|w| w.contains("finance key")), Some(true), "{taken}");
        assert_eq!(taken["raw"]["name"], "Kari Test");
        assert_eq!(taken["raw"]["message"], "Til sommerleiren,\nhilsen Kari");
        assert_eq!(taken["raw"]["maskedPhoneNo"], "+47 xxxx 4567");
        assert_eq!(taken["suggestions"], json!([]), "nothing expected this gift");

        let path = format!("/admin/api/reconciliation/queue/{id}/create");
        let (status, booked) = call(&app, &finance, Method::POST, &path, Some(json!({"product": "Sommerleir"}))).await;
        assert_eq!(status, StatusCode::CREATED, "{booked}");
        let installment_id = booked["installments"][0]["installment_id"].as_str().unwrap().to_owned();
        assert_eq!(booked["installments"][0]["amount_ore"], 25_000);
        assert_eq!(booked["remainder_ore"], 0);
        let installment = app.v2_get(&vipps, &format!("/v2/Installment/{installment_id}")).await;
        assert_eq!(installment["Status"], "Paid", "{installment}");

        // The Payment names the row's Inbound Report, which says who matched it; the decision is audited.
        let report = count(&app, "SELECT COUNT(*) FROM payments p JOIN inbound_reports r ON r.id = p.inbound_report_id \
            WHERE p.installment_id = $1 AND r.status = 'Matched' AND r.detail LIKE 'matched by %'", &[&installment_id]).await;
        assert_eq!(report, 1);
        let (_, audit) = call(&app, &app.admin_key, Method::GET, &format!("/admin/api/audit?object_id={id}"), None).await;
        let actions: Vec<&str> = audit["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["reconciliation.match", "reconciliation.create"]);
        assert!(open_items(&app, &finance).await.is_empty());

        // Undo is a reversal: the Payment stays, reversed by the undo's own Inbound Report, whose Message says
        // who undid what; the installment is open again (no money on it), the item waits again.
        let (status, undone) = call(&app, &finance, Method::POST, &format!("/admin/api/reconciliation/queue/{id}/undo"), None).await;
        assert_eq!(status, StatusCode::OK, "{undone}");
        assert_eq!(undone["item"]["status"], "open");
        let installment = app.v2_get(&vipps, &format!("/v2/Installment/{installment_id}")).await;
        assert_eq!(installment["Status"], "Outstanding", "{installment}");
        assert_eq!(installment["Payments"], json!([]), "{installment}");
        assert_eq!(count(&app, "SELECT COUNT(*) FROM payments WHERE installment_id = $1", &[&installment_id]).await, 1);
        let reversed = count(&app, "SELECT COUNT(*) FROM payments p JOIN inbound_reports r ON r.id = p.reversed_by_report_id \
            JOIN messages m ON m.id = r.message_id WHERE p.installment_id = $1 AND r.report_type = 'GuidedMatching' \
            AND r.sub_type = 'undo' AND r.amount_ore = -25000 AND m.channel = 'guided_matching' AND m.body LIKE '%finance key%'",
            &[&installment_id]).await;
        assert_eq!(reversed, 1, "the reversal names its cause");
        // The line's own report still names the Payment it caused, and says the match was undone.
        assert_eq!(count(&app, "SELECT COUNT(*) FROM payments p JOIN inbound_reports r ON r.id = p.inbound_report_id \
            WHERE p.installment_id = $1 AND r.status = 'New' AND r.detail LIKE 'match undone by %'", &[&installment_id]).await, 1);
        let (_, audit) = call(&app, &app.admin_key, Method::GET, &format!("/admin/api/audit?object_id={id}"), None).await;
        assert_eq!(audit["entries"][0]["action"], "reconciliation.undo", "{audit}");
        assert_eq!(audit["entries"][0]["details"]["undone"][0]["amount_ore"], 25_000, "{audit}");
        assert_eq!(undone["suggestions"][0]["installment_id"], installment_id.as_str());
        let (status, again) = call(&app, &finance, Method::POST, &format!("/admin/api/reconciliation/queue/{id}/undo"), None).await;
        assert_eq!(status, StatusCode::CONFLICT, "{again}");
        let (status, booked) = call(&app, &finance, Method::POST, &format!("/admin/api/reconciliation/queue/{id}/match"),
            Some(json!({"installment_ids": [installment_id]}))).await;
        assert_eq!(status, StatusCode::OK, "{booked}");
        let installment = app.v2_get(&vipps, &format!("/v2/Installment/{installment_id}")).await;
        assert_eq!(installment["Status"], "Paid", "{installment}");
        // The new match books a Payment of its own beside the reversed one.
        assert_eq!(installment["Payments"].as_array().map(Vec::len), Some(1), "{installment}");
        assert_eq!(count(&app, "SELECT COUNT(*) FROM payments WHERE installment_id = $1 AND reversed_by_report_id IS NULL", &[&installment_id]).await, 1);
        assert_eq!(count(&app, "SELECT COUNT(*) FROM payments WHERE installment_id = $1", &[&installment_id]).await, 2);
    }

    async fn bad_files_are_refused_whole_and_write_nothing(app) {
        let vipps = app.with_vipps().await;
        let finance = app.key(Role::Finance).await;
        pay_vipps_number(&vipps, 10_000, "Ola Test", "hei").await;
        pay_vipps_number(&vipps, 20_000, "Per Test", "hei").await;
        let good = String::from_utf8(settlement_file(&vipps, "no").await).unwrap();
        // The second row's amount is broken: the first row is fine, yet nothing is written.
        let bad = good.replacen(",200.00,", ",2OO.00,", 1);
        assert_ne!(good, bad);
        let (status, body) = upload(&app, &finance, "Sandbox", bad.into_bytes()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let message = body["Errors"][0]["error_message"].as_str().unwrap();
        assert!(message.contains("line 3, column 8 (Beløp)"), "{message}");
        for (status, _) in [
            upload(&app, &finance, "Sandbox", b"Date,Text,Amount\n2026-01-01,Coffee,-35.00\n".to_vec()).await,
            upload(&app, &finance, "Sandbox", Vec::new()).await,
        ] {
            assert_eq!(status, StatusCode::BAD_REQUEST);
        }
        let (status, body) = upload(&app, &finance, "Nobody", good.clone().into_bytes()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        // A row of the account's own sales unit waits until the Report API import has found its ledger.
        let msn = vipps.sim.merchants()[0].msn.clone();
        let own = good.replace(&format!(",{NUMBER},"), &format!(",{msn},"));
        let (status, body) = upload(&app, &finance, "Sandbox", own.into_bytes()).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(count(&app, "SELECT COUNT(*) FROM messages WHERE channel = 'settlement_file'", &[]).await, 0);
        assert_eq!(count(&app, "SELECT COUNT(*) FROM reconcile_runs", &[]).await, 0);
        assert_eq!(ledger_rows(&app).await, 0);
        // Integrators may not upload at all.
        let integrator = app.key(Role::Integrator).await;
        assert_eq!(upload(&app, &integrator, "Sandbox", good.into_bytes()).await.0, StatusCode::FORBIDDEN);
    }

    async fn two_people_taking_next_get_different_items(app) {
        let vipps = app.with_vipps().await;
        let (anne, bob) = (app.key(Role::Finance).await, app.key(Role::Admin).await);
        for n in 1..=3 {
            pay_vipps_number(&vipps, 10_000 * n, "Walk Up", "gave").await;
        }
        let (status, _) = upload(&app, &anne, "Sandbox", settlement_file(&vipps, "no").await).await;
        assert_eq!(status, StatusCode::CREATED);
        let next = "/admin/api/reconciliation/queue/next";
        let (a, b) = tokio::join!(call(&app, &anne, Method::POST, next, None), call(&app, &bob, Method::POST, next, None));
        let (a, b) = (a.1["item"]["id"].as_str().unwrap().to_owned(), b.1["item"]["id"].as_str().unwrap().to_owned());
        assert_ne!(a, b, "two people never get the same item");
        let (_, c) = call(&app, &anne, Method::POST, next, None).await;
        let c = c["item"]["id"].as_str().unwrap().to_owned();
        assert!(c != a && c != b);
        let (_, none) = call(&app, &bob, Method::POST, next, None).await;
        assert_eq!(none, json!({"item": null}), "every open item is leased");
        // Bob cannot decide Anne's item while she holds it; Anne ignores it and takes the next (none free).
        let (status, body) = call(&app, &bob, Method::POST, &format!("/admin/api/reconciliation/queue/{a}/ignore"), Some(json!({"remark": "mine"}))).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        let (status, body) = call(&app, &anne, Method::POST, &format!("/admin/api/reconciliation/queue/{a}/ignore"), Some(json!({"remark": ""}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "a remark is required: {body}");
        let (status, body) = call(&app, &anne, Method::POST, &format!("/admin/api/reconciliation/queue/{a}/ignore?next=true"), Some(json!({"remark": "test payment by staff"}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["next_id"], Value::Null);
        assert_eq!(open_items(&app, &anne).await.len(), 2);
        assert_eq!(count(&app, "SELECT COUNT(*) FROM inbound_reports WHERE status = 'Ignored' AND detail LIKE '%test payment by staff'", &[]).await, 1);
        // A lease ends: ten minutes later Bob's Next finds Anne's untouched item.
        vipps.control("/_sim/clock/advance", json!({"seconds": 11 * 60})).await;
        let (_, later) = call(&app, &bob, Method::POST, next, None).await;
        assert!(later["item"]["id"].is_string(), "{later}");
    }

    async fn retry_books_an_open_item_once_the_installment_it_names_exists(app) {
        let vipps = app.with_vipps().await;
        let finance = app.key(Role::Finance).await;
        let (status, intent) = app.intent(&vipps, &crate::helpers::seed_intent()).await;
        assert_eq!(status, StatusCode::OK, "{intent}");
        let reference = intent["OneTime"]["PaymentReference"].as_str().unwrap().to_owned();
        let installment_id = intent["OneTime"]["Id"].as_str().unwrap().to_owned();
        // Another gift first, that names nothing payhub knows: retry leaves it.
        pay_vipps_number(&vipps, 3_600, "Eric Johnson", "random gift").await;
        let (status, _) = upload(&app, &finance, "Sandbox", settlement_file(&vipps, "no").await).await;
        assert_eq!(status, StatusCode::CREATED);
        let retry = "/admin/api/reconciliation/queue/retry";
        let (_, first) = call(&app, &finance, Method::POST, retry, None).await;
        assert_eq!(first, json!({"tried": 1, "matched": 0}));
        // The payer pays the 36 kr by Vipps number instead, naming the payment reference.
        pay_vipps_number(&vipps, 3_600, "Eric Johnson", &format!("Betaling {reference}")).await;
        let (_, imported) = upload(&app, &finance, "Sandbox", settlement_file(&vipps, "no").await).await;
        assert_eq!(imported["summary"], "1 new, 1 already imported");
        let (_, second) = call(&app, &finance, Method::POST, retry, None).await;
        assert_eq!(second, json!({"tried": 2, "matched": 1}));
        let installment = app.v2_get(&vipps, &format!("/v2/Installment/{installment_id}")).await;
        assert_eq!(installment["Status"], "Paid", "{installment}");
        assert_eq!(open_items(&app, &finance).await.len(), 1);
        // What the rules booked is not a person's match: undo is refused.
        let (_, all) = call(&app, &finance, Method::GET, "/admin/api/reconciliation/queue?status=matched", None).await;
        let matched = all["items"][0]["id"].as_str().unwrap();
        let (status, _) = call(&app, &finance, Method::POST, &format!("/admin/api/reconciliation/queue/{matched}/undo"), None).await;
        assert_eq!(status, StatusCode::CONFLICT);
    }

    async fn a_line_whose_manual_match_was_undone_is_booked_by_the_rules_with_a_payment_of_its_own(app) {
        let vipps = app.with_vipps().await;
        let finance = app.key(Role::Finance).await;
        let (_, named) = app.intent(&vipps, &crate::helpers::seed_intent()).await;
        let (_, other) = app.intent(&vipps, &crate::helpers::seed_intent()).await;
        let reference = named["OneTime"]["PaymentReference"].as_str().unwrap().to_owned();
        let named_id = named["OneTime"]["Id"].as_str().unwrap().to_owned();
        let other_id = other["OneTime"]["Id"].as_str().unwrap().to_owned();
        pay_vipps_number(&vipps, 3_600, "Eric Johnson", &format!("Betaling {reference}")).await;
        upload(&app, &finance, "Sandbox", settlement_file(&vipps, "no").await).await;
        // A person books the line on the wrong installment, then undoes it.
        let id = open_items(&app, &finance).await[0]["id"].as_str().unwrap().to_owned();
        let (status, booked) = call(&app, &finance, Method::POST, &format!("/admin/api/reconciliation/queue/{id}/match"),
            Some(json!({"installment_ids": [other_id]}))).await;
        assert_eq!(status, StatusCode::OK, "{booked}");
        let (status, undone) = call(&app, &finance, Method::POST, &format!("/admin/api/reconciliation/queue/{id}/undo"), None).await;
        assert_eq!(status, StatusCode::OK, "{undone}");
        // The rules then book it where it names: with a Payment of its own, beside the reversed one.
        let (_, retried) = call(&app, &finance, Method::POST, "/admin/api/reconciliation/queue/retry", None).await;
        assert_eq!(retried, json!({"tried": 1, "matched": 1}));
        let installment = app.v2_get(&vipps, &format!("/v2/Installment/{named_id}")).await;
        assert_eq!(installment["Status"], "Paid", "{installment}");
        assert_eq!(installment["Payments"].as_array().map(Vec::len), Some(1), "the money is on a Payment: {installment}");
        assert_eq!(count(&app, "SELECT COUNT(*) FROM payments WHERE installment_id = $1 AND reversed_by_report_id IS NULL \
            AND amount_ore = 3600 AND ledger_entry_id IS NOT NULL", &[&named_id]).await, 1);
        assert_eq!(app.v2_get(&vipps, &format!("/v2/Installment/{other_id}")).await["Status"], "Pending", "back as it was");
        // The records pages show the reversed Payment as reversed, naming the undo's report.
        let browser = app.browser(Role::Finance).await;
        let (_, page) = browser.get(&format!("/installments/{other_id}")).await;
        let reversed_id = page.split("href=\"/payments/").nth(1).and_then(|r| r.split('"').next()).expect("the payment").to_owned();
        assert!(page.contains("reversed by ir_"), "the installment's page marks it: {page}");
        let (_, payment) = browser.get(&format!("/payments/{reversed_id}")).await;
        assert!(payment.contains("Reversed") && payment.contains("ir_"), "the payment's page names the reversal: {payment}");
        let (_, named_page) = browser.get(&format!("/installments/{named_id}")).await;
        assert!(!named_page.contains("reversed by ir_"), "a live Payment is not marked: {named_page}");
    }

    async fn a_payment_over_several_installments_is_split_as_the_account_says(app) {
        let vipps = app.with_vipps().await;
        let finance = app.key(Role::Finance).await;
        let mut installments = Vec::new();
        for _ in 0..2 {
            let (_, intent) = app.intent(&vipps, &crate::helpers::seed_intent()).await;
            installments.push(intent["OneTime"]["Id"].as_str().unwrap().to_owned());
        }
        // 100 kr for two installments of 36 kr: 72 kr booked, 28 kr left on the report (leave on report).
        let accounts: Value = app.admin(Method::GET, "/admin/api/accounts").send().await.unwrap().json().await.unwrap();
        let account_id = accounts["accounts"][0]["id"].as_str().unwrap().to_owned();
        let patched = app.admin(Method::PATCH, &format!("/admin/api/accounts/{account_id}"))
            .json(&json!({"remainder_handling": "leave_on_report"})).send().await.unwrap();
        assert_eq!(patched.status(), StatusCode::OK);
        let bad = app.admin(Method::PATCH, &format!("/admin/api/accounts/{account_id}"))
            .json(&json!({"remainder_handling": "keep_it"})).send().await.unwrap();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        pay_vipps_number(&vipps, 10_000, "Eric Johnson", "two gifts").await;
        upload(&app, &finance, "Sandbox", settlement_file(&vipps, "no").await).await;
        let id = open_items(&app, &finance).await[0]["id"].as_str().unwrap().to_owned();
        let (status, booked) = call(&app, &finance, Method::POST, &format!("/admin/api/reconciliation/queue/{id}/match"),
            Some(json!({"installment_ids": installments}))).await;
        assert_eq!(status, StatusCode::OK, "{booked}");
        let amounts: Vec<i64> = booked["installments"].as_array().unwrap().iter().map(|b| b["amount_ore"].as_i64().unwrap()).collect();
        assert_eq!(amounts, [3_600, 3_600]);
        assert_eq!(booked["remainder_ore"], 2_800);
        for id in &installments {
            assert_eq!(app.v2_get(&vipps, &format!("/v2/Installment/{id}")).await["Status"], "Paid");
        }
    }

    async fn the_command_line_imports_a_file_once_and_refuses_a_bad_one_whole(app) {
        let vipps = app.with_vipps().await;
        pay_vipps_number(&vipps, 12_300, "Kari Test", "gave").await;
        let file = settlement_file(&vipps, "en").await;
        let path = app.data_dir.path().join("settlement.csv");
        std::fs::write(&path, &file).unwrap();
        let args = ["reconcile", "import-file", "--account", "Sandbox", path.to_str().unwrap()];
        let (code, out, err) = run_beside(payhub_of(&app, &args)).await;
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("1 new, 0 already imported"), "{out}");
        let (code, out, _) = run_beside(payhub_of(&app, &args)).await;
        assert_eq!(code, 0);
        assert!(out.contains("0 new, 1 already imported"), "{out}");
        let bad = String::from_utf8(file).unwrap().replace(",123.00,", ",12x.00,");
        std::fs::write(&path, bad).unwrap();
        let (code, _, err) = run_beside(payhub_of(&app, &args)).await;
        assert_eq!(code, 1);
        assert!(err.contains("not imported: line 2, column 8 (Amount)"), "{err}");
        assert_eq!(ledger_rows(&app).await, 1);
    }

    async fn a_finance_user_uploads_a_file_and_works_the_queue_on_the_pages(app) {
        let vipps = app.with_vipps().await;
        pay_vipps_number(&vipps, 4_500, "Ola Test", "Loddsalg").await;
        pay_vipps_number(&vipps, 9_900, "Per Test", "Kake").await;
        let file = String::from_utf8(settlement_file(&vipps, "no").await).unwrap();
        let browser = app.browser(Role::Finance).await;
        let csrf = browser.csrf().await;
        let (status, page) = browser.get("/reconciliation/files").await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("Sandbox"), "the account is offered");
        // A broken paste is refused whole, in words, and nothing is written.
        let broken = file.replace(",45.00,", ",45.0.0,");
        let (status, page, _) = browser.post("/reconciliation/files", &[("csrf_token", &csrf), ("account", "Sandbox"), ("csv", &broken)]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("Not imported (nothing was written): line 2, column 8 (Beløp)"), "{page}");
        assert_eq!(ledger_rows(&app).await, 0);
        let (_, page, _) = browser.post("/reconciliation/files", &[("csrf_token", &csrf), ("account", "Sandbox"), ("csv", &file)]).await;
        assert!(page.contains("Imported: 2 new, 0 already imported"), "{page}");
        let (_, page) = browser.get("/reconciliation/queue").await;
        assert!(page.contains("Ola Test") && page.contains("Per Test"), "{page}");
        // Next opens the oldest item; Ignore & Next decides it and opens the other.
        let (status, _, location) = browser.post("/reconciliation/queue/next", &[("csrf_token", &csrf)]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let first = location.unwrap();
        let (_, page) = browser.get(&first).await;
        assert!(page.contains("Loddsalg") && page.contains("+47 xxxx 4567"), "the raw line: {page}");
        let (status, page, _) = browser.post(&format!("{first}/ignore"), &[("csrf_token", &csrf), ("remark", ""), ("then", "next")]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("Say why"), "a remark is required: {page}");
        let (status, _, location) = browser.post(&format!("{first}/ignore"), &[("csrf_token", &csrf), ("remark", "lottery float"), ("then", "next")]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let second = location.unwrap();
        assert_ne!(second, first);
        let (status, _, _) = browser.post(&format!("{second}/create"), &[("csrf_token", &csrf), ("product", "Kake")]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, page) = browser.get(&second).await;
        assert!(page.contains("matched") && page.contains("Undo this match"), "{page}");
        // Without the CSRF token nothing happens.
        let (status, _, _) = browser.post(&format!("{second}/undo"), &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(open_items(&app, &app.key(Role::Finance).await).await.is_empty());
    }
}
