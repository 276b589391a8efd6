//! Server-side request forgery: payhub posts events to URLs integrators and admins give it, so a `WebhookURL` or
//! an endpoint URL must not make it post to itself, the private network or a cloud metadata service. Such
//! targets are refused at input (a `200` field error, nothing written) and again at send time, after the name is
//! resolved (a delivery refused there fails at once). These tests run with
//! `PAYHUB_ALLOW_PRIVATE_WEBHOOK_TARGETS=false`; the harness allows private targets for the other tests, whose
//! receivers listen on 127.0.0.1.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{seed_intent, storage, with};
use crate::jobs::ManualClock;
use crate::on_both_backends;
use crate::outbound_webhooks::{deliveries, emit, Capture};

/// Targets that are not on the public internet, each written as an integrator might.
const PRIVATE_TARGETS: [&str; 24] = [
    "http://127.0.0.1:8080/hook",
    "http://127.1.2.3/",
    "http://10.0.0.5/",
    "http://172.16.0.1/",
    "http://192.168.1.10/",
    "http://100.64.0.1/",
    "http://169.254.169.254/latest/meta-data",
    "http://0.0.0.0/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://192.0.2.1/",
    "http://[::1]/",
    "http://[::]/",
    "http://[fc00::1]/",
    "http://[fe80::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://0177.0.0.1/",
    "http://localhost/",
    "http://localhost./",
    "http://api.localhost/",
    "http://intranet/",
];

fn errors_on<'a>(answer: &'a Value, field: &str) -> Vec<&'a Value> {
    answer["Errors"].as_array().into_iter().flatten().filter(|e| e["field"] == field).collect()
}

on_both_backends! {
    with &[("PAYHUB_ALLOW_PRIVATE_WEBHOOK_TARGETS", "false")];

    async fn a_webhook_url_that_is_not_public_is_refused_with_a_field_error_and_nothing_written(app) {
        let vipps = app.with_vipps().await;
        let mut accepted = Vec::new();
        for target in PRIVATE_TARGETS {
            let (status, answer) = app.intent(&vipps, &with(seed_intent(), json!({"WebhookURL": target}))).await;
            if status != StatusCode::BAD_REQUEST {
                accepted.push(format!("{target} → {status}"));
                continue;
            }
            let errors = errors_on(&answer, "WebhookURL");
            assert_eq!(errors.len(), 1, "{target}: {answer}");
            assert_eq!(errors[0]["error_code"], "200", "{target}: {answer}");
            let message = errors[0]["error_message"].as_str().unwrap();
            assert!(message.contains("public"), "{target}: {message}");
        }
        assert!(accepted.is_empty(), "accepted: {accepted:#?}");
        assert_eq!(storage::count(&app, "SELECT COUNT(*) FROM payment_intents", &[]).await, 0);
        assert_eq!(storage::count(&app, "SELECT COUNT(*) FROM webhook_deliveries", &[]).await, 0);

        // A public name is taken without looking it up (it is checked again when an event is sent).
        let public = json!({"WebhookURL": "https://hooks.example.org/payhub"});
        let (status, answer) = app.intent(&vipps, &with(seed_intent(), public)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }

    async fn an_endpoint_url_that_is_not_public_is_refused_and_nothing_stored(app) {
        let mut accepted = Vec::new();
        for target in PRIVATE_TARGETS {
            let response =
                app.admin(Method::POST, "/admin/api/webhook-endpoints").json(&json!({"url": target})).send().await.unwrap();
            let status = response.status();
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            if status != StatusCode::BAD_REQUEST {
                accepted.push(format!("{target} → {status}"));
                continue;
            }
            let errors = errors_on(&answer, "url");
            assert_eq!(errors.len(), 1, "{target}: {answer}");
            assert_eq!(errors[0]["error_code"], "200", "{target}: {answer}");
            assert!(errors[0]["error_message"].as_str().unwrap().contains("public"), "{target}: {answer}");
        }
        assert!(accepted.is_empty(), "accepted: {accepted:#?}");
        let listed: Value =
            app.admin(Method::GET, "/admin/api/webhook-endpoints").send().await.unwrap().json().await.unwrap();
        assert_eq!(listed["endpoints"], json!([]));
        let public = json!({"url": "https://hooks.example.org/payhub"});
        let response = app.admin(Method::POST, "/admin/api/webhook-endpoints").json(&public).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }

    async fn a_delivery_whose_target_resolves_to_a_private_address_fails_at_once_and_sends_nothing(app) {
        // Rows that name such targets exist when they were written before this check, or while the setting was
        // on; the delivery resolves the name itself and refuses it.
        let capture = Capture::start().await;
        let port = capture.base.rsplit(':').next().unwrap().to_owned();
        let by_name = format!("http://localhost:{port}/by-name");
        let by_address = format!("http://127.0.0.1:{port}/by-address");
        emit(&app, "paymentIntent.created", json!({"Id": "pi_1"}), Some(&by_name)).await;
        emit(&app, "paymentIntent.created", json!({"Id": "pi_2"}), Some(&by_address)).await;
        assert_eq!(app.state.jobs.run_until_idle().await.unwrap(), 2);
        assert!(capture.requests().is_empty(), "nothing reached the receiver: {:?}", capture.requests());
        let log = deliveries(&app).await;
        assert_eq!(log.len(), 2);
        for delivery in &log {
            assert_eq!(delivery["status"], "failed", "refused at once, not retried: {delivery}");
            assert_eq!(delivery["attempts"], 1, "{delivery}");
            let error = delivery["last_error"].as_str().unwrap();
            assert!(error.contains("refused") && error.contains("loopback"), "{error}");
        }
        let named = log.iter().find(|d| d["url"] == by_name).unwrap();
        assert!(named["last_error"].as_str().unwrap().contains("refused: localhost resolves to "), "{named}");
        let literal = log.iter().find(|d| d["url"] == by_address).unwrap();
        assert!(literal["last_error"].as_str().unwrap().contains("refused: 127.0.0.1 is a loopback"), "{literal}");

        // Resending asks again and gets the same refusal.
        let id = named["id"].as_str().unwrap();
        let path = format!("/admin/api/webhook-deliveries/{id}/resend");
        assert_eq!(app.admin(Method::POST, &path).send().await.unwrap().status(), StatusCode::ACCEPTED);
        assert_eq!(app.state.jobs.run_until_idle().await.unwrap(), 1);
        assert!(capture.requests().is_empty());
        let named = deliveries(&app).await.into_iter().find(|d| d["id"] == id).unwrap();
        assert_eq!((named["status"].as_str(), named["attempts"].as_i64()), (Some("failed"), Some(2)));
    }
}

on_both_backends! {
    async fn with_private_targets_allowed_a_local_receiver_by_name_is_taken_and_reached(app) {
        let capture = Capture::start().await;
        let port = capture.base.rsplit(':').next().unwrap().to_owned();
        let url = format!("http://localhost:{port}/local");
        let response =
            app.admin(Method::POST, "/admin/api/webhook-endpoints").json(&json!({"url": url})).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let clock = ManualClock::new();
        let jobs = app.state.jobs.fork_with_clock(clock.clock());
        emit(&app, "installment.created", json!({"Id": "in_1"}), None).await;
        clock.advance(Duration::from_secs(1));
        assert_eq!(jobs.run_until_idle().await.unwrap(), 1);
        assert_eq!(capture.requests().iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["/local"]);
        assert_eq!(deliveries(&app).await[0]["status"], "delivered");
    }
}
