//! The dashboard's charts with real data made through the Payment API and the simulator: a collected one-time
//! payment, a collected recurring charge and a failed charge. The SVG is read back bar by bar
//! (`data-category`, `data-series`, `data-value`) and compared with what the API says of the same records.

use chrono::NaiveDate;
use payhub::domain::role::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::recurring::{active_recurring, days_pass, installments, recurring_intent, today};
use crate::helpers::{collected, seed_intent};
use crate::on_both_backends;

/// The bars of the chart `id` in `page`: (category, series, value).
fn bars_of(page: &str, id: &str) -> Vec<(String, String, i64)> {
    let chart = page.split(&format!("data-chart=\"{id}\"")).nth(1).unwrap_or_else(|| panic!("chart {id}: {page}"));
    let chart = chart.split("</svg>").next().unwrap_or_default();
    let attr = |rect: &str, name: &str| {
        rect.split(&format!("{name}=\"")).nth(1).and_then(|s| s.split('"').next()).map(str::to_owned)
    };
    chart
        .split("<rect ")
        .skip(1)
        .filter_map(|rect| {
            let value = attr(rect, "data-value")?.parse().ok()?;
            Some((attr(rect, "data-category")?, attr(rect, "data-series").unwrap_or_default(), value))
        })
        .collect()
}

/// A payment's (Oslo collection date as the chart labels it, øre).
fn payment_of(installment: &Value) -> (String, i64) {
    let payment = &installment["Payments"][0];
    let date =
        NaiveDate::parse_from_str(payment["CollectionDate"].as_str().unwrap_or_default(), "%Y-%m-%d").expect("date");
    (date.format("%-d.%-m.").to_string(), payment["AmountOre"].as_i64().expect("amount"))
}

on_both_backends! {
    async fn the_dashboard_charts_the_money_and_failures_the_api_reports(app) {
        let vipps = app.with_vipps().await;
        let (one_time_id, _) = collected(&app, &vipps).await;
        let (_, recurring_id, _, _) = active_recurring(&app, &vipps, &recurring_intent(today(&app), "150")).await;
        app.state.payments.collect_recurring().await.expect("collect");
        days_pass(&app, &vipps, 2).await;

        // An agreement whose initial charge Vipps refuses.
        let mut body = recurring_intent(today(&app), "70");
        body["OneTime"] = json!({"Amount": "50"});
        let (status, created) = app.intent(&vipps, &body).await;
        assert_eq!(status, StatusCode::OK, "{created}");
        let agreement = created["Recurring"]["Mandate"]["MandateId"].as_str().unwrap_or_default().to_owned();
        let mandate = created["Recurring"]["Mandate"]["Id"].as_str().unwrap_or_default().to_owned();
        let failing = vipps.control(&format!("/_sim/agreements/{agreement}/fail-next-charge"), json!({"reason": "user_action_required"})).await;
        assert_eq!(failing, StatusCode::NO_CONTENT);
        assert_eq!(vipps.control(&format!("/_sim/agreements/{agreement}/accept"), json!({})).await, StatusCode::OK);
        app.state.payments.sync_agreement(&mandate, None).await.expect("sync");
        let failed = app.v2_get(&vipps, &format!("/v2/Installment/{}", created["OneTime"]["Id"].as_str().unwrap_or_default())).await;
        assert_eq!(failed["Status"], "Failed", "{failed}");

        // One one-time intent left open, due today.
        let (status, open) = app.intent(&vipps, &seed_intent()).await;
        assert_eq!(status, StatusCode::OK, "{open}");

        let one_time = app.v2_get(&vipps, &format!("/v2/Installment/{one_time_id}")).await;
        let first_id = installments(&app, &vipps, &recurring_id).await[0]["Id"].as_str().unwrap_or_default().to_owned();
        let recurring_first = app.v2_get(&vipps, &format!("/v2/Installment/{first_id}")).await;
        assert_eq!(recurring_first["Status"], "Collected", "{recurring_first}");
        let (one_time_day, one_time_ore) = payment_of(&one_time);
        let (recurring_day, recurring_ore) = payment_of(&recurring_first);

        let finance = app.browser(Role::Finance).await;
        let (status, page) = finance.get("/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("role=\"img\"") && page.contains("<title id="), "accessible charts: {page}");
        assert!(!page.contains("<script"), "no script");

        let account = app.state.accounts.list().await.expect("accounts").remove(0).id;
        let money = bars_of(&page, &format!("collected-{account}"));
        assert_eq!(money.len(), 2, "one bar per series and day: {money:?}");
        assert!(money.contains(&(one_time_day, "One-time".into(), one_time_ore)), "{money:?}");
        assert!(money.contains(&(recurring_day, "Recurring".into(), recurring_ore)), "{money:?}");
        let words = format!("{},00\u{a0}kr", recurring_ore / 100);
        assert!(page.contains(&words), "the amount in Norwegian writing ({words}): {page}");

        let failures = bars_of(&page, "failed");
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(failures[0].0.contains("user action required") && failures[0].2 == 1, "{failures:?}");

        let ages = bars_of(&page, "open-age");
        let due_now: i64 = ages.iter().filter(|(label, _, _)| label == "0–7 days").map(|b| b.2).sum();
        assert_eq!(due_now, 1, "the one open intent due today: {ages:?}");

        let agreements = bars_of(&page, "agreements");
        assert_eq!(agreements.iter().map(|b| b.2).sum::<i64>(), 15_000, "the one active 150 kr monthly agreement: {agreements:?}");

        let integrator = app.browser(Role::Integrator).await;
        let (_, page) = integrator.get("/").await;
        assert!(!page.contains("data-chart"), "no money figures for an integrator");
    }
}
