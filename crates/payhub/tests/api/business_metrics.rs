//! `/metrics` carries the figures operators watch after real traffic: intents by outcome, Vipps calls by API,
//! status and latency, Vipps webhook intake and outbound delivery outcomes, the job queue's depth and age, and
//! beat runs with their durations.

use payhub::jobs::NewJob;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{collected, seed_intent, with, TestApp};
use crate::on_both_backends;

/// The value of the series `series` (name and labels exactly), 0 when absent. The figures are process-wide, so
/// tests compare before and after.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.parse().unwrap())
}

/// The sum of every series whose name and labels start with `prefix`.
fn sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next())
        .map(|v| v.parse::<f64>().unwrap())
        .sum()
}

async fn scrape(app: &TestApp) -> String {
    let response = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

on_both_backends! {
    async fn metrics_show_the_business_figures_after_real_traffic(app) {
        let vipps = app.with_vipps().await;
        let before = scrape(&app).await;

        // Intents: one collected (ePayment create, get, capture at the simulator), one refused at input.
        collected(&app, &vipps).await;
        let (status, _) = app.intent(&vipps, &with(seed_intent(), json!({"OneTime": {"Amount": "0.5"}}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        // An intent whose WebhookURL nobody answers: its deliveries are tried and will be tried again.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let hook = format!("http://{}/hook", closed.local_addr().unwrap());
        drop(closed);
        let (status, _) = app.intent(&vipps, &with(seed_intent(), json!({"WebhookURL": hook}))).await;
        assert_eq!(status, StatusCode::OK);
        app.state.jobs.run_until_idle().await.unwrap();
        // A forged Vipps webhook for the account.
        let account = app.state.accounts.resolve(Some("Sandbox")).await.unwrap().unwrap();
        let forged = app
            .http
            .post(app.url(&format!("/webhooks/vipps/{}", account.id)))
            .header("content-type", "application/json")
            .body(r#"{"reference": "pi-forged", "name": "AUTHORIZED"}"#)
            .send()
            .await
            .unwrap();
        assert!(forged.status().is_client_error());
        // A beat run now, and a job of a kind no worker takes, due a minute ago.
        let (beat, _) = app.state.jobs.heartbeat.beats().into_iter().find(|(b, _)| b.starts_with("jobs.")).unwrap();
        app.state.jobs.heartbeat.run_now(&beat).await.unwrap();
        app.state.jobs.run_until_idle().await.unwrap();
        let past = app.state.jobs.queue.now() - chrono::TimeDelta::seconds(60);
        app.state.jobs.queue.enqueue_now(NewJob::new("metrics.test", json!({})).run_at(past)).await.unwrap();

        let after = scrape(&app).await;
        let grew = |series: &str| value(&after, series) - value(&before, series);
        let grew_sum = |prefix: &str| sum(&after, prefix) - sum(&before, prefix);
        assert!(grew("payhub_intents_total{outcome=\"created\"}") >= 2.0, "{after}");
        assert!(grew("payhub_intents_total{outcome=\"refused\"}") >= 1.0, "{after}");
        assert!(grew("payhub_vipps_calls_total{api=\"accesstoken\",status=\"200\"}") >= 1.0, "{after}");
        assert!(grew_sum("payhub_vipps_calls_total{api=\"epayment\",status=\"2") >= 3.0, "create, get, capture: {after}");
        assert!(grew("payhub_vipps_call_duration_seconds_count{api=\"epayment\"}") >= 3.0, "{after}");
        assert!(after.contains("# TYPE payhub_vipps_call_duration_seconds histogram"));
        assert!(grew_sum("payhub_vipps_webhooks_total{outcome=\"") >= 1.0, "{after}");
        assert!(grew("payhub_webhook_deliveries_total{outcome=\"retrying\"}") >= 1.0, "{after}");
        assert!(grew(&format!("payhub_beat_runs_total{{beat=\"{beat}\",status=\"succeeded\"}}")) >= 1.0, "{after}");
        assert!(grew(&format!("payhub_beat_duration_seconds_count{{beat=\"{beat}\"}}")) >= 1.0, "{after}");
        assert_eq!(value(&after, "payhub_jobs_queued{kind=\"metrics.test\"}"), 1.0, "{after}");
        assert!(value(&after, "payhub_jobs_oldest_due_age_seconds{kind=\"metrics.test\"}") >= 60.0, "{after}");
        // No secret and no payer's data in any label.
        assert!(!after.contains("subkey") && !after.contains("pi-forged") && !after.contains("Eric"), "{after}");
    }
}
