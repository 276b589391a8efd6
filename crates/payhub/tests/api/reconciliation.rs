//! Reconciliation against the simulator's Report API: a ledger day imported and booked completely; a crash
//! between pages and inside a page, then a re-run (dates and feed); racing instances; a capture payhub never
//! recorded; an amount that differs going to the queue.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::cli::{payhub_of, run_beside};
use crate::helpers::vipps::sim_client;
use crate::helpers::{collected, storage, TestApp, Vipps};
use crate::on_both_backends;

/// The simulator's Oslo date now.
fn today(vipps: &Vipps) -> chrono::NaiveDate {
    payhub::domain::schedule::oslo_date((vipps.sim.clock_fn())())
}

/// Turns reconciliation on for the Sandbox account from today.
async fn enable(app: &TestApp, vipps: &Vipps) {
    let accounts: Value = app.admin(Method::GET, "/admin/api/accounts").send().await.unwrap().json().await.unwrap();
    let id = accounts["accounts"][0]["id"].as_str().unwrap();
    let body = json!({"reconciliation_enabled": true, "initial_ledger_date": today(vipps).to_string()});
    let response = app.admin(Method::PATCH, &format!("/admin/api/accounts/{id}")).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
}

/// `POST /admin/api/reconciliation/runs` for Sandbox; the run.
async fn import_now(app: &TestApp) -> Value {
    let response = app
        .admin(Method::POST, "/admin/api/reconciliation/runs")
        .json(&json!({"account": "Sandbox"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["runs"][0].clone()
}

async fn installment(app: &TestApp, vipps: &Vipps, id: &str) -> Value {
    app.v2_get(vipps, &format!("/v2/Installment/{id}")).await
}

async fn refund(app: &TestApp, vipps: &Vipps, installment_id: &str, amount: &str) {
    let response = app
        .http
        .post(app.url("/v2/Refund"))
        .bearer_auth(&vipps.integrator_key)
        .json(&json!({"InstallmentId": installment_id, "Amount": amount}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// Every row the simulator's ledger holds for the closed dates from `from` on: (funds, fees).
async fn rows_at_vipps(vipps: &Vipps, from: chrono::NaiveDate) -> (usize, usize) {
    let client = sim_client(vipps);
    let report = client.report();
    let ledgers = report.ledgers(None, None).await.unwrap();
    let ledger = &ledgers.items[0].ledger_id;
    let (mut funds, mut fees) = (0, 0);
    let mut date = from;
    while date < today(vipps) {
        for (topic, count) in
            [(vipps_client::report::Topic::Funds, &mut funds), (vipps_client::report::Topic::Fees, &mut fees)]
        {
            if let vipps_client::report::DateReport::Ready(rows) =
                report.by_date(ledger, topic, date, false).await.unwrap()
            {
                *count += rows.len();
            }
        }
        date = date.succ_opt().unwrap();
    }
    (funds, fees)
}

/// Storage: the counts a complete, duplicate-free import leaves (ledger rows; their Messages; their Inbound
/// Reports; Payments settled; rows not booked).
async fn ledger_counts(app: &TestApp) -> [i64; 5] {
    [
        storage::count(app, "SELECT COUNT(*) FROM ledger_entries", &[]).await,
        storage::count(app, "SELECT COUNT(*) FROM messages m JOIN inbound_reports r ON r.message_id = m.id WHERE m.channel = 'vipps_ledger'", &[]).await,
        storage::count(app, "SELECT COUNT(*) FROM inbound_reports WHERE sub_type LIKE 'ledger.%'", &[]).await,
        storage::count(app, "SELECT COUNT(*) FROM payments WHERE ledger_date IS NOT NULL", &[]).await,
        storage::count(app, "SELECT COUNT(*) FROM ledger_entries WHERE status <> 'booked'", &[]).await,
    ]
}

// The daily beat would import in the background as soon as the simulator's clock passes midnight; these
// tests run the import by hand, so the beat's period is made longer than the tests' span.
on_both_backends! {
    with &[("PAYHUB_RECONCILE_BEAT_HOURS", "876000")];
    async fn a_ledger_day_with_captures_a_refund_fees_and_a_payout_books_completely_and_balances(app) {
        let vipps = app.with_vipps().await;
        enable(&app, &vipps).await;
        let start = today(&vipps);
        let (a, _) = collected(&app, &vipps).await;
        let (b, _) = collected(&app, &vipps).await;
        let (c, _) = collected(&app, &vipps).await;
        refund(&app, &vipps, &c, "10").await;

        // The day is still open: the dates endpoint says tryLater, the feed serves its rows as they come (three
        // captures, the refund, three capture fees), stored but not booked until the date closes.
        let first = import_now(&app).await;
        assert_eq!(first["outcome"], "succeeded", "{first}");
        assert_eq!(first["counts"]["rows_new"], 7, "{first}");
        assert_eq!(first["counts"]["rows_booked"], 0, "{first}");

        vipps.sim.advance(86_400).await;
        let done = import_now(&app).await;
        assert_eq!(done["outcome"], "succeeded", "{done}");
        // Funds: three captures, a refund, fees retained, the payout; fees: three capture fees, fees retained. The
        // closing rows are new; the others were stored from the feed and are read again, never twice.
        assert_eq!(done["counts"]["rows_new"], 3, "{done}");
        assert_eq!(done["counts"]["rows_already"], 7, "{done}");
        assert_eq!(done["counts"]["rows_booked"], 10, "{done}");
        assert_eq!(done["counts"]["rows_queued"], 0, "{done}");
        assert_eq!(done["counts"]["dates_unbalanced"], 0, "{done}");
        assert_eq!(done["payouts"], 1);

        let fee = 3600 * 175 / 10_000 + 100; // the simulator's price: 1.75 % (half up) + 1 kr
        let payouts: Value = app.admin(Method::GET, "/admin/api/payouts").send().await.unwrap().json().await.unwrap();
        let payout = &payouts["payouts"][0];
        assert_eq!(payout["amount_ore"], 3 * 3600 - 1000 - 3 * fee, "{payout}");
        assert_eq!(payout["fees_retained_ore"], -3 * fee);
        assert_eq!(payout["captures_ore"], 3 * 3600);
        assert_eq!(payout["refunds_ore"], -1000);
        assert_eq!(payout["rows_count"], 6);
        assert_eq!(payout["first_date"], start.to_string());
        assert_eq!(payout["ledger_date"], start.to_string());
        assert!(payout["payout_number"].as_str().unwrap().starts_with("2000"), "{payout}");

        for id in [&a, &b] {
            let i = installment(&app, &vipps, id).await;
            assert_eq!(i["Status"], "Paid", "{i}");
            let p = &i["Payments"][0];
            assert_eq!(p["LedgerDate"], start.to_string());
            assert_eq!(p["FeeOre"], fee);
            assert_eq!(p["NetAmountOre"], 3600 - fee);
            assert_eq!(p["PayoutId"], payout["id"]);
        }
        // A partly refunded installment stays so; its capture and refund are settled all the same.
        let refunded = installment(&app, &vipps, &c).await;
        assert_eq!(refunded["Status"], "Partially refunded", "{refunded}");
        assert!(refunded["Payments"].as_array().unwrap().iter().all(|p| p["LedgerDate"] == start.to_string()), "{refunded}");

        // Storage: every row booked once, each with its Message and Inbound Report; both topics of the day balance.
        let (funds, fees) = rows_at_vipps(&vipps, start).await;
        assert_eq!((funds, fees), (6, 4));
        assert_eq!(ledger_counts(&app).await, [10, 10, 10, 4, 0]);
        assert_eq!(storage::count(&app, "SELECT COUNT(*) FROM ledger_days WHERE status = 'balanced'", &[]).await, 2);
        assert_eq!(storage::count(&app, "SELECT COUNT(*) FROM inbound_reports WHERE sub_type LIKE 'ledger.%' AND status = 'Matched'", &[]).await, 10);
        // One page Message per retrieval, besides the rows' (two topics, the day, then the open day).
        assert!(storage::count(&app, "SELECT COUNT(*) FROM messages m WHERE m.channel = 'vipps_ledger' AND NOT EXISTS (SELECT 1 FROM inbound_reports r WHERE r.message_id = m.id)", &[]).await >= 2);

        // Again: nothing new, nothing twice.
        let again = import_now(&app).await;
        assert_eq!(again["outcome"], "no_new_data", "{again}");
        assert_eq!(ledger_counts(&app).await, [10, 10, 10, 4, 0]);
        let runs: Value = app.admin(Method::GET, "/admin/api/reconciliation/runs").send().await.unwrap().json().await.unwrap();
        assert_eq!(runs["runs"].as_array().unwrap().len(), 3);
        assert_eq!(runs["runs"][0]["trigger"], "admin");
    }

    async fn a_crash_between_pages_and_inside_a_page_then_a_rerun_gives_the_rows_of_an_uninterrupted_run(app) {
        let vipps = app.with_vipps().await;
        enable(&app, &vipps).await;
        let start = today(&vipps);
        // Three days with a payment each: at least one page per topic and day.
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(collected(&app, &vipps).await.0);
            vipps.sim.advance(86_400).await;
        }
        // A statement that fails inside the third day's funds page, after its Messages and reports were written.
        let third = (start + chrono::Days::new(2)).to_string();
        fail_ledger_inserts_on(&app, &third).await;
        let crashed = import_now(&app).await;
        assert_eq!(crashed["outcome"], "failed", "{crashed}");
        assert!(crashed["error"].as_str().unwrap().contains("injected"), "{crashed}");
        // The pages before it are kept whole; nothing of the failed page is.
        let kept = storage::count(&app, "SELECT COUNT(*) FROM ledger_entries", &[]).await;
        assert!(kept > 0);
        assert_eq!(storage::count(&app, "SELECT COUNT(*) FROM ledger_entries WHERE ledger_date = $1", &[&third]).await, 0);
        assert_eq!(ledger_counts(&app).await[1], kept, "no Message or report without its row");

        stop_failing(&app).await;
        let rerun = import_now(&app).await;
        assert_eq!(rerun["outcome"], "succeeded", "{rerun}");
        let (funds, fees) = rows_at_vipps(&vipps, start).await;
        let total = (funds + fees) as i64;
        assert_eq!(ledger_counts(&app).await, [total, total, total, 3, 0]);
        for id in &ids {
            assert_eq!(installment(&app, &vipps, id).await["Status"], "Paid");
        }
        let payouts: Value = app.admin(Method::GET, "/admin/api/payouts").send().await.unwrap().json().await.unwrap();
        assert_eq!(payouts["payouts"].as_array().unwrap().len(), 3, "one payout per day");
    }

    async fn a_capture_payhub_never_recorded_is_booked_from_the_ledger_and_says_so(app) {
        let vipps = app.with_vipps().await;
        enable(&app, &vipps).await;
        // Webhooks held and nobody polls: the merchant captures in the portal, payhub hears nothing.
        assert_eq!(vipps.control("/_sim/webhooks/pause", json!({})).await, StatusCode::NO_CONTENT);
        let (status, created) = app.intent(&vipps, &crate::helpers::seed_intent()).await;
        assert_eq!(status, StatusCode::OK);
        let reference = created["OneTime"]["PaymentReference"].as_str().unwrap();
        let id = created["OneTime"]["Id"].as_str().unwrap();
        assert_eq!(vipps.control(&format!("/_sim/payments/{reference}/approve"), json!({})).await, StatusCode::OK);
        assert_eq!(vipps.control(&format!("/_sim/payments/{reference}/portal-capture"), json!({})).await, StatusCode::OK);
        assert_eq!(installment(&app, &vipps, id).await["Status"], "Pending");

        vipps.sim.advance(86_400).await;
        let done = import_now(&app).await;
        assert_eq!(done["counts"]["rows_queued"], 0, "{done}");
        let paid = installment(&app, &vipps, id).await;
        assert_eq!(paid["Status"], "Paid", "{paid}");
        let payment = &paid["Payments"][0];
        assert_eq!(payment["AmountOre"], 3600);
        assert!(payment["FeeOre"].as_i64().unwrap() > 0);
        let report = payment["InboundReportId"].as_str().unwrap();
        let detail = storage::text(&app, "SELECT detail FROM inbound_reports WHERE id = $1", &[report]).await.unwrap();
        assert!(detail.contains("booked from the ledger"), "{detail}");
        assert_eq!(storage::text(&app, "SELECT sub_type FROM inbound_reports WHERE id = $1", &[report]).await.unwrap(), "ledger.capture");
    }

    async fn an_amount_that_differs_goes_to_the_queue_with_the_reason(app) {
        let vipps = app.with_vipps().await;
        enable(&app, &vipps).await;
        assert_eq!(vipps.control("/_sim/webhooks/pause", json!({})).await, StatusCode::NO_CONTENT);
        let (_, created) = app.intent(&vipps, &crate::helpers::seed_intent()).await;
        let reference = created["OneTime"]["PaymentReference"].as_str().unwrap();
        let id = created["OneTime"]["Id"].as_str().unwrap();
        vipps.control(&format!("/_sim/payments/{reference}/approve"), json!({})).await;
        // 10 kr of the 36 kr captured in the portal.
        assert_eq!(vipps.control(&format!("/_sim/payments/{reference}/portal-capture"), json!({"amount": 1000})).await, StatusCode::OK);

        vipps.sim.advance(86_400).await;
        let done = import_now(&app).await;
        assert_eq!(done["counts"]["rows_queued"], 2, "the capture and its fee: {done}");
        assert_eq!(installment(&app, &vipps, id).await["Status"], "Pending", "never booked silently");
        let reasons = storage::pairs(
            &app,
            "SELECT q.reason, q.detail FROM match_queue q JOIN ledger_entries l ON l.id = q.entry_id WHERE q.status = 'open' ORDER BY l.topic DESC",
            &[],
        )
        .await;
        assert_eq!(reasons[0].0, "amount_differs", "{reasons:?}");
        assert!(reasons[0].1.contains("10.00") && reasons[0].1.contains("36.00"), "{reasons:?}");
        assert_eq!(reasons[1].0, "no_candidate", "{reasons:?}");
        // A re-run keeps one item per line.
        import_now(&app).await;
        assert_eq!(storage::count(&app, "SELECT COUNT(*) FROM match_queue", &[]).await, 2);
    }

    async fn the_command_and_the_beat_run_by_hand_import_and_say_what_they_did(app) {
        let vipps = app.with_vipps().await;
        let (id, _) = collected(&app, &vipps).await;
        vipps.sim.advance(86_400).await;
        // Reconciliation off: the command refuses, the beat has nothing to do.
        let (code, _, err) = run_beside(payhub_of(&app, &["reconcile", "run", "--account", "Sandbox"])).await;
        assert_ne!(code, 0);
        assert!(err.contains("reconciliation is not enabled"), "{err}");
        let (code, out, _) = run_beside(payhub_of(&app, &["reconcile", "run"])).await;
        assert_eq!((code, out.trim()), (0, "no account has reconciliation enabled"));

        let accounts: Value = app.admin(Method::GET, "/admin/api/accounts").send().await.unwrap().json().await.unwrap();
        let account = accounts["accounts"][0]["id"].as_str().unwrap();
        let yesterday = (today(&vipps) - chrono::Days::new(1)).to_string();
        let body = json!({"reconciliation_enabled": true, "initial_ledger_date": yesterday});
        app.admin(Method::PATCH, &format!("/admin/api/accounts/{account}")).json(&body).send().await.unwrap();
        let (code, out, err) = run_beside(payhub_of(&app, &["reconcile", "run", "--account", "Sandbox"])).await;
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.starts_with("Sandbox\tsucceeded\t4 pages, 5 new rows (0 already imported), 5 booked, 0 queued, 1 payouts"), "{out}");
        assert_eq!(installment(&app, &vipps, &id).await["Status"], "Paid");
        let (code, out, err) = run_beside(payhub_of(&app, &["heartbeat", "run", "reconcile.import"])).await;
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.starts_with("reconcile.import\tsucceeded"), "{out}");
        assert_eq!(storage::count(&app, "SELECT COUNT(*) FROM reconcile_runs WHERE trigger = 'beat' AND outcome = 'no_new_data'", &[]).await, 1);
        assert_eq!(storage::count(&app, "SELECT COUNT(*) FROM ledger_entries", &[]).await, 5);
    }
}

on_both_backends! {
    async fn racing_instances_import_a_ledger_once(app) {
        let vipps = app.with_vipps().await;
        enable(&app, &vipps).await;
        for _ in 0..2 {
            collected(&app, &vipps).await;
        }
        vipps.sim.advance(86_400).await;
        let other = app.second_instance(&vipps).await;
        // The beat: each instance ticks (this one's own worker may too); one run for the period.
        let (x, y) = tokio::join!(app.state.jobs.heartbeat.tick(), other.jobs.heartbeat.tick());
        x.unwrap();
        y.unwrap();
        let (x, y) = tokio::join!(app.state.jobs.run_until_idle(), other.jobs.run_until_idle());
        x.unwrap();
        y.unwrap();
        storage::wait_for_count(&app, "SELECT COUNT(*) FROM reconcile_runs WHERE trigger = 'beat' AND outcome <> 'running'", &[], 1).await;
        assert_eq!(storage::count(&app, "SELECT COUNT(*) FROM reconcile_runs WHERE trigger = 'beat'", &[]).await, 1);
        let after_beat = ledger_counts(&app).await;
        assert_eq!(after_beat, [7, 7, 7, 2, 0], "two captures, fees retained and the payout; two fees and fees retained");

        // By hand, at once from both instances, over a new day: rows written once whoever wins each page.
        collected(&app, &vipps).await;
        vipps.sim.advance(86_400).await;
        let (x, y) = tokio::join!(
            app.state.reconciler.run_named(Some("Sandbox"), payhub::store::payouts::RunTrigger::Command, None),
            other.reconciler.run_named(Some("Sandbox"), payhub::store::payouts::RunTrigger::Command, None),
        );
        let outcomes = [x.unwrap().outcome, y.unwrap().outcome];
        assert!(outcomes.iter().any(|o| o == "succeeded"), "{outcomes:?}");
        // Whichever lost a page stopped; one more run finishes anything it left.
        import_now(&app).await;
        assert_eq!(ledger_counts(&app).await, [12, 12, 12, 3, 0]);
        other.store.close().await;
    }

    async fn a_crash_between_feed_pages_then_a_rerun_gives_the_rows_of_an_uninterrupted_run(app) {
        let vipps = app.with_vipps().await;
        enable(&app, &vipps).await;
        let start = today(&vipps);
        // 2,500 captures on the open date: the dates endpoint says tryLater, the feed serves them (and their
        // fees) in pages of 1,000.
        let bulk = json!({"count": 2500, "date": start.to_string(), "amountOre": 10_000});
        assert_eq!(vipps.control("/_sim/report/bulk", bulk).await, StatusCode::CREATED);
        // The second funds page fails inside, after the first was written.
        let psp = format!("8{}{:08}", start.format("%y%m%d"), 1500);
        fail_ledger_inserts_when(&app, &format!("NEW.psp_reference = '{psp}'")).await;
        let crashed = import_now(&app).await;
        assert_eq!(crashed["outcome"], "failed", "{crashed}");
        assert_eq!(ledger_counts(&app).await[..3], [1000, 1000, 1000], "the first feed page whole, nothing of the second");
        let cursors = "SELECT COUNT(*) FROM ledger_positions WHERE topic = 'funds' AND feed_cursor IS NOT NULL AND date_done IS NULL";
        assert_eq!(storage::count(&app, cursors, &[]).await, 1, "the cursor is stored with its page");

        stop_failing(&app).await;
        let rerun = import_now(&app).await;
        assert_eq!(rerun["outcome"], "succeeded", "{rerun}");
        assert_eq!(rerun["counts"]["rows_new"], 4000, "{rerun}");
        assert_eq!(ledger_counts(&app).await[..3], [5000, 5000, 5000]);
        // Caught up: the feed says tryLater, nothing new.
        let again = import_now(&app).await;
        assert_eq!(again["outcome"], "no_new_data", "{again}");

        // The date closes: the dates endpoint reads it whole (its captures already stored through the feed, its
        // fees retained and payout new), and the feed's rows of that date are passed over.
        vipps.sim.advance(86_400).await;
        let closed = import_now(&app).await;
        assert_eq!(closed["outcome"], "succeeded", "{closed}");
        let (funds, fees) = rows_at_vipps(&vipps, start).await;
        assert_eq!((funds, fees), (2502, 2501));
        let total = (funds + fees) as i64;
        assert_eq!(ledger_counts(&app).await[..3], [total, total, total]);
        assert_eq!(storage::count(&app, "SELECT COUNT(*) FROM ledger_days WHERE status = 'balanced'", &[]).await, 2);
        let unique = "SELECT COUNT(*) FROM (SELECT DISTINCT topic, psp_reference, entry_type FROM ledger_entries) d";
        assert_eq!(storage::count(&app, unique, &[]).await, total);
        assert_eq!(closed["payouts"], 1, "{closed}");
    }
}

/// Makes every insert of ledger rows dated `date` fail (a real failing statement, by a trigger).
async fn fail_ledger_inserts_on(app: &TestApp, date: &str) {
    fail_ledger_inserts_when(app, &format!("NEW.ledger_date = '{date}'")).await;
}

/// Makes every insert of a ledger row for which `condition` (SQL over `NEW`) holds fail.
async fn fail_ledger_inserts_when(app: &TestApp, condition: &str) {
    use sqlx::Executor;
    let mut conn = app.state.store.pool_for_tests().acquire().await.unwrap();
    match app.backend {
        crate::helpers::Backend::Sqlite => {
            conn.execute(
                format!(
                    "CREATE TRIGGER injected_fault BEFORE INSERT ON ledger_entries WHEN {condition} \
                     BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
                )
                .as_str(),
            )
            .await
            .unwrap();
        }
        crate::helpers::Backend::Postgres => {
            conn.execute(
                format!(
                    "CREATE FUNCTION injected_fault() RETURNS trigger AS $$ BEGIN \
                     IF {condition} THEN RAISE EXCEPTION 'injected fault'; END IF; RETURN NEW; END \
                     $$ LANGUAGE plpgsql; \
                     CREATE TRIGGER injected_fault BEFORE INSERT ON ledger_entries FOR EACH ROW EXECUTE FUNCTION injected_fault()"
                )
                .as_str(),
            )
            .await
            .unwrap();
        }
    }
}

async fn stop_failing(app: &TestApp) {
    use sqlx::Executor;
    let mut conn = app.state.store.pool_for_tests().acquire().await.unwrap();
    let sql = match app.backend {
        crate::helpers::Backend::Sqlite => "DROP TRIGGER injected_fault",
        crate::helpers::Backend::Postgres => "DROP TRIGGER injected_fault ON ledger_entries",
    };
    conn.execute(sql).await.unwrap();
}
