//! The finance records lists over HTTP: the search box recognises references, ids, Vipps references, phones in
//! any form, emails and names; filters live in the URL; pages follow by key without repeating a line; the CSV
//! at the same path with `.csv` is the whole filtered list, with a Norwegian-Excel variant.

use chrono::NaiveDate;
use payhub::domain::role::Role;
use payhub::domain::search::Lookup;
use payhub::store::listing::{self, Cursor, DateField, Family, ListFilter};
use payhub::store::Backend;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::recurring::{active_recurring, recurring_intent, today};
use crate::helpers::{collected, seed_intent, Browser, TestApp, Vipps};
use crate::on_both_backends;

/// A one-time intent of `amount` kr from Kari Nordmann (kari@example.org, 987 65 432); its payment reference.
async fn karis_intent(app: &TestApp, vipps: &Vipps, amount: &str) -> String {
    let mut body = seed_intent();
    body["Payer"] = json!({"Contact": {"SalesforceFields": {"FirstName": "Kari", "LastName": "Nordmann", "Email": "kari@example.org"}}});
    body["OneTime"]["Amount"] = json!(amount);
    body["PaymentMethod"]["Parameters"]["mobileNumber"] = json!("98765432");
    body["CampaignId"] = json!("winter");
    let (status, created) = app.intent(vipps, &body).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    created["OneTime"]["PaymentReference"].as_str().unwrap().to_owned()
}

fn q(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

on_both_backends! {
    async fn one_search_box_finds_a_payment_by_what_a_reader_has_at_hand(app) {
        let vipps = app.with_vipps().await;
        let (erics_installment, erics_reference) = collected(&app, &vipps).await;
        let karis_reference = karis_intent(&app, &vipps, "250").await;
        let installment: Value = app.v2_get(&vipps, &format!("/v2/Installment/{erics_installment}")).await;
        let psp = installment["Payments"][0]["PspReference"].as_str().unwrap().to_owned();
        let finance = app.browser(Role::Finance).await;

        let (status, all) = finance.get("/installments").await;
        assert_eq!(status, StatusCode::OK);
        assert!(all.contains(&erics_reference) && all.contains(&karis_reference), "{all}");
        assert!(all.contains("name=\"q\""), "the search box: {all}");
        let erics = [erics_reference.as_str(), erics_installment.as_str(), psp.as_str(), "johnson", "+47 912 34 567", "004791234567", "4791234567"];
        for text in erics {
            let (status, found) = finance.get(&format!("/installments?q={}", q(text))).await;
            assert_eq!(status, StatusCode::OK, "{text}");
            assert!(found.contains(&erics_reference) && !found.contains(&karis_reference), "{text}: {found}");
        }
        for text in [karis_reference.as_str(), "KARI@example.org", "98 76 54 32", "Kari Nordmann"] {
            let (_, found) = finance.get(&format!("/installments?q={}", q(text))).await;
            assert!(found.contains(&karis_reference) && !found.contains(&erics_reference), "{text}: {found}");
        }
        let (_, nothing) = finance.get("/installments?q=pi-000000").await;
        assert!(nothing.contains("Nothing matches"), "{nothing}");
    }

    async fn filters_narrow_the_list_and_pages_follow_by_key(app) {
        let vipps = app.with_vipps().await;
        let (_, collected_reference) = collected(&app, &vipps).await;
        let mut references = vec![collected_reference.clone()];
        for n in 0..54 {
            references.push(karis_intent(&app, &vipps, &format!("{}", 100 + n)).await);
        }
        let finance = app.browser(Role::Finance).await;

        let (_, page) = finance.get("/installments?status=Collected").await;
        assert!(page.contains(&collected_reference) && !page.contains(&references[1]), "{page}");
        let (_, page) = finance.get("/installments?campaign=winter&min=150&max=152,50").await;
        let shown: Vec<&String> = references.iter().filter(|r| page.contains(r.as_str())).collect();
        assert_eq!(shown.len(), 3, "150, 151 and 152 kr of the winter campaign: {page}");
        let (_, page) = finance.get("/installments?from=nonsense").await;
        assert!(page.contains("From must be a date"), "{page}");

        let (_, first) = finance.get("/installments").await;
        let next = first.split("href=\"").filter_map(|s| s.split('"').next()).find(|h| h.contains("after="))
            .unwrap_or_else(|| panic!("a next link: {first}")).replace("&amp;", "&");
        let (status, second) = finance.get(&next).await;
        assert_eq!(status, StatusCode::OK);
        let on_first: Vec<&String> = references.iter().filter(|r| first.contains(r.as_str())).collect();
        let on_second: Vec<&String> = references.iter().filter(|r| second.contains(r.as_str())).collect();
        assert_eq!((on_first.len(), on_second.len()), (50, 5));
        assert!(on_first.iter().all(|r| !on_second.contains(r)), "no line twice");
        assert!(!second.contains("after="), "the last page has no next link");
    }

    async fn the_csv_is_the_whole_filtered_list_in_nok_also_for_norwegian_excel(app) {
        let vipps = app.with_vipps().await;
        let (installment_id, reference) = collected(&app, &vipps).await;
        for n in 0..3 {
            karis_intent(&app, &vipps, &format!("{}.50", 10 + n)).await;
        }
        let finance = app.browser(Role::Finance).await;
        let (_, page) = finance.get("/installments?q=johnson").await;
        assert!(page.contains("/installments.csv?q=johnson"), "the CSV link keeps the filter: {page}");

        let response = finance.client.get(format!("{}/installments.csv?q=johnson", finance.base)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
        let csv = response.text().await.unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 2, "header and Eric's one line: {csv}");
        assert!(lines[0].starts_with("Id,Created (UTC),Due date,Status,Amount (NOK)"), "{csv}");
        assert!(lines[1].starts_with(&installment_id) && lines[1].contains(&reference) && lines[1].contains(",36.00,0.00,0.00,"), "{csv}");

        let bytes = finance.client.get(format!("{}/installments.csv?format=excel-no&q=kari", finance.base)).send().await.unwrap().bytes().await.unwrap();
        assert!(bytes.starts_with("\u{feff}".as_bytes()), "a UTF-8 byte order mark");
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].contains("Id;Created (UTC);Due date"), "{text}");
        assert!(["10,50", "11,50", "12,50"].iter().all(|a| text.contains(&format!(";{a};{a};0,00;"))), "{text}");
    }

    async fn integrators_and_strangers_get_no_records(app) {
        let integrator = app.browser(Role::Integrator).await;
        for path in ["/installments", "/installments.csv"] {
            assert_eq!(integrator.get(path).await.0, StatusCode::FORBIDDEN, "{path}");
            let response = Browser::new(&app).client.get(app.url(path)).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
            let key = app.key(Role::Integrator).await;
            let with_key = app.http.get(app.url(path)).bearer_auth(key).send().await.unwrap();
            assert_eq!(with_key.status(), StatusCode::SEE_OTHER, "a key opens no page: {path}");
        }
    }

    async fn payments_refunds_recurring_payments_and_mandates_have_lists_too(app) {
        let vipps = app.with_vipps().await;
        let (installment_id, _) = collected(&app, &vipps).await;
        let refund = app.http.post(app.url("/v2/Refund")).bearer_auth(&vipps.integrator_key)
            .json(&json!({"InstallmentId": installment_id, "Amount": 10, "Reason": "Asked twice"})).send().await.unwrap();
        assert_eq!(refund.status(), StatusCode::OK);
        let refund: Value = refund.json().await.unwrap();
        let (_, recurring_id, mandate_id, agreement_id) = active_recurring(&app, &vipps, &recurring_intent(today(&app), "200")).await;
        let installment: Value = app.v2_get(&vipps, &format!("/v2/Installment/{installment_id}")).await;
        let capture_psp = installment["Payments"][0]["PspReference"].as_str().unwrap().to_owned();
        let finance = app.browser(Role::Finance).await;

        let (status, payments) = finance.get("/payments?q=johnson").await;
        assert_eq!(status, StatusCode::OK);
        assert!(payments.contains(&capture_psp) && payments.contains("36.00") && payments.contains("-10.00"), "{payments}");
        let (_, refunds_only) = finance.get("/payments?status=refund").await;
        assert!(!refunds_only.contains(&capture_psp) && refunds_only.contains("-10.00"), "{refunds_only}");
        let (_, refunds) = finance.get("/refunds").await;
        assert!(refunds.contains(refund["Id"].as_str().unwrap()) && refunds.contains("Succeeded") && refunds.contains("Asked twice"), "{refunds}");
        let (_, recurring) = finance.get(&format!("/recurring?q={agreement_id}")).await;
        assert!(recurring.contains(&recurring_id) && recurring.contains("Monthly") && recurring.contains("200.00"), "{recurring}");
        let (_, none) = finance.get("/recurring?q=johnson").await;
        assert!(!none.contains(&recurring_id), "Eric has no recurring payment: {none}");
        let (_, mandates) = finance.get("/mandates?q=kari@example.org").await;
        assert!(mandates.contains(&mandate_id) && mandates.contains(&agreement_id) && mandates.contains("per month"), "{mandates}");

        for (path, rows) in [("/payments.csv", 2), ("/refunds.csv", 1), ("/recurring.csv", 1), ("/mandates.csv", 1)] {
            let csv = finance.client.get(format!("{}{path}", finance.base)).send().await.unwrap().text().await.unwrap();
            assert!(csv.starts_with("Id,Created (UTC),"), "{path}: {csv}");
            assert_eq!(csv.lines().count(), rows + 1, "header and one line each: {path}: {csv}");
        }
        let csv = finance.client.get(format!("{}/mandates.csv?format=excel-no", finance.base)).send().await.unwrap().text().await.unwrap();
        assert!(csv.contains(&format!("{agreement_id};")) && csv.contains(";per month;"), "{csv}");
    }

    async fn what_vipps_said_what_we_sent_and_the_queue_have_lists_too(app) {
        let vipps = app.with_vipps().await;
        let mut body = seed_intent();
        body["WebhookURL"] = json!("http://127.0.0.1:9/hook");
        let (status, created) = app.intent(&vipps, &body).await;
        assert_eq!(status, StatusCode::OK, "{created}");
        let intent_id = created["Id"].as_str().unwrap().to_owned();
        let reference = created["OneTime"]["PaymentReference"].as_str().unwrap().to_owned();
        let finance = app.browser(Role::Finance).await;

        let (status, reports) = finance.get(&format!("/reports?q={intent_id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(reports.contains("PaymentIntent") && reports.contains(&intent_id), "{reports}");
        let (_, none) = finance.get("/reports?q=pi_unknown").await;
        assert!(none.contains("Nothing matches"), "{none}");
        let (status, messages) = finance.get("/messages?status=Processed").await;
        assert_eq!(status, StatusCode::OK);
        assert!(messages.contains("api"), "the intent's own message: {messages}");
        let (status, deliveries) = finance.get(&format!("/deliveries?q={}", q(&reference))).await;
        assert_eq!(status, StatusCode::OK);
        assert!(deliveries.contains("installment.created") || deliveries.contains("paymentIntent.created"), "{deliveries}");
        let (status, jobs) = finance.get("/jobs").await;
        assert_eq!(status, StatusCode::OK);
        assert!(jobs.contains("<h1>Jobs</h1>"), "{jobs}");
        for (path, header) in [("/reports.csv", "Id,Created (UTC),Type,Event"), ("/messages.csv", "Id,Received (UTC),Direction"),
                               ("/deliveries.csv", "Id,Created (UTC),Event"), ("/jobs.csv", "Id,Created (UTC),Kind")] {
            let csv = finance.client.get(format!("{}{path}", finance.base)).send().await.unwrap().text().await.unwrap();
            assert!(csv.starts_with(header), "{path}: {csv}");
        }
    }

    async fn a_deep_page_a_due_week_and_a_phone_are_read_by_index_not_by_reading_the_list(app) {
        let store = &app.state.store;
        let backend = store.backend();
        two_years_of_installments(&app, 4000).await;
        let after = Cursor { created_at: "2026-01-01T00:00:00.000000Z".into(), id: "ins_0".into() };
        let due_week = ListFilter {
            date_field: DateField::Due,
            from: NaiveDate::from_ymd_opt(2025, 6, 1),
            to: NaiveDate::from_ymd_opt(2025, 6, 7),
            ..ListFilter::default()
        };
        let phone = ListFilter { lookup: Some(Lookup::Phone("4790000042".into())), ..ListFilter::default() };
        let mut tx = store.pool_for_tests().begin().await.unwrap();
        if backend == Backend::Postgres {
            // A few thousand rows are cheapest read whole; this asks what the planner can do with the indexes.
            sqlx::query("SET LOCAL enable_seqscan = off").execute(&mut *tx).await.unwrap();
        }
        let deep = listing::plan(&mut tx, backend, Family::Installments, &ListFilter::default(), Some(&after), 50).await.unwrap();
        let due = listing::plan(&mut tx, backend, Family::Installments, &due_week, None, 50).await.unwrap();
        let by_phone = listing::plan(&mut tx, backend, Family::Installments, &phone, None, 50).await.unwrap();
        match backend {
            Backend::Sqlite => {
                // `SCAN i` reads the installments from the newest on; `SEARCH i` goes to the lines asked for.
                assert!(deep.iter().any(|l| l.starts_with("SEARCH i USING COVERING INDEX installments_created ((created_at,id)<(?,?))")), "{deep:#?}");
                assert!(due.iter().any(|l| l.starts_with("SEARCH i USING COVERING INDEX installments_due_created (due_date>? AND due_date<?)")), "{due:#?}");
                assert!(by_phone.iter().any(|l| l.starts_with("SEARCH q USING INDEX payers_phone (phone=?)")), "{by_phone:#?}");
                // Reading the (partial) index of installments under a mandate is reading those only: there are
                // none here, and where there are many the planner weighs it against the mandates' phones.
                let whole_list = |l: &String| {
                    (l.starts_with("SCAN i") || l.starts_with("SCAN j")) && !l.ends_with("USING INDEX installments_mandate")
                };
                for plan in [&deep, &due, &by_phone] {
                    assert!(!plan.iter().any(whole_list), "{plan:#?}");
                }
            }
            Backend::Postgres => {
                assert!(deep.iter().any(|l| l.contains("Index Cond: (ROW(created_at, id) < ROW(")), "{deep:#?}");
            }
        }
    }
}

/// `n` installments of 100 payers (phones 4790000000 on), created and due one a day over two years from
/// 2025-01-01, written directly and then analysed, so the planner sees a list with its statistics.
async fn two_years_of_installments(app: &TestApp, n: u32) {
    let pool = app.state.store.pool_for_tests();
    let mut tx = pool.begin().await.unwrap();
    for p in 0..100 {
        sqlx::query("INSERT INTO payers (id, first_name, last_name, email, phone, fields, created_at, updated_at) VALUES ($1, 'Giver', $2, $3, $4, '{}', '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z')")
            .bind(format!("pay_plan{p:03}")).bind(format!("Nordmann{p}")).bind(format!("giver{p}@example.org")).bind(format!("47900000{p:02}"))
            .execute(&mut *tx).await.unwrap();
    }
    let start = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
    for k in 0..n {
        let day = start + chrono::Days::new(u64::from(k) * 730 / u64::from(n));
        sqlx::query("INSERT INTO installments (id, payer_id, account_id, amount_ore, amount_open_ore, due_date, status, payment_reference, created_at, updated_at) VALUES ($1, $2, 'acc_plan', 10000, 0, $3, 'Collected', $4, $5, $5)")
            .bind(format!("ins_plan{k:06}")).bind(format!("pay_plan{:03}", k % 100)).bind(day.to_string())
            .bind(format!("pi-plan{k:06}")).bind(format!("{day}T12:00:{:02}.000000Z", k % 60))
            .execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    sqlx::query(if app.state.store.backend() == Backend::Sqlite { "ANALYZE" } else { "ANALYZE installments" })
        .execute(pool)
        .await
        .unwrap();
}
