//! One-time payments end to end against the simulator: intent → payer → capture → Collected → refund.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{seed_intent, storage, with, TestApp, Vipps};
use crate::on_both_backends;

async fn pay(app: &TestApp, vipps: &Vipps) -> Value {
    let (status, created) = app.intent(vipps, &seed_intent()).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    created
}

/// The payer comes back from Vipps: payhub checks the payment and forwards them.
async fn come_back(app: &TestApp, intent_id: &str) -> String {
    let response = app.http.get(app.url(&format!("/v2/return/{intent_id}"))).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// The rows of `table` (optionally `table WHERE …`). Storage: these tests claim a row is written exactly once
/// (one payer per email, one installment per idempotency key), or not at all for a refused intent.
async fn count(app: &TestApp, table: &str) -> i64 {
    storage::count(app, &format!("SELECT COUNT(*) FROM {table}"), &[]).await
}

on_both_backends! {
    async fn the_findock_seed_message_is_approved_captured_and_collected(app) {
        let vipps = app.with_vipps().await;
        let created = pay(&app, &vipps).await;
        let id = created["Id"].as_str().unwrap();
        assert!(id.starts_with("pi_"), "{created}");
        assert_eq!(created["Status"], "Matched");
        assert!(created["RedirectURL"].as_str().unwrap().starts_with(&vipps.sim.base_url()), "{created}");
        assert_eq!(created["PaymentMethod"]["Processor"], "PayHub-Vipps");
        assert_eq!(created["PaymentMethod"]["Target"], "Sandbox");
        let reference = created["OneTime"]["PaymentReference"].as_str().unwrap().to_owned();
        assert!(reference.starts_with("pi-") && reference[3..].bytes().all(|b| b.is_ascii_digit()), "{reference}");
        assert_eq!(created["OneTime"]["Status"], "Pending");

        assert_eq!(vipps.control(&format!("/_sim/payments/{reference}/approve"), json!({})).await, StatusCode::OK);
        assert_eq!(come_back(&app, id).await, "https://example.org/thanks");

        let installment_id = created["OneTime"]["Id"].as_str().unwrap();
        let installment = app.v2_get(&vipps, &format!("/v2/Installment/{installment_id}")).await;
        assert_eq!(installment["Status"], "Collected", "{installment}");
        assert_eq!(installment["Amount"], json!(36.0));
        assert_eq!(installment["AmountOpen"], json!(0.0));
        assert_eq!(installment["PaymentReference"], reference.as_str());
        let payments = installment["Payments"].as_array().unwrap();
        assert_eq!(payments.len(), 1, "{installment}");
        assert_eq!(payments[0]["AmountOre"], 3600);
        assert!(payments[0]["PspReference"].as_str().is_some_and(|p| !p.is_empty()));
        assert!(payments[0]["InboundReportId"].as_str().unwrap().starts_with("ir_"), "traceable to its report");

        let intent = app.v2_get(&vipps, &format!("/v2/PaymentIntent/{id}")).await;
        assert_eq!(intent["Status"], "Matched");
        assert_eq!(intent["OneTime"]["Status"], "Collected");

        // Coming back twice, or polling, changes nothing.
        come_back(&app, id).await;
        app.state.payments.sync_open(100).await.unwrap();
        let again = app.v2_get(&vipps, &format!("/v2/Installment/{installment_id}")).await;
        assert_eq!(again["Payments"].as_array().unwrap().len(), 1);
        assert_eq!(count(&app, "payers").await, 1);
        assert_eq!(count(&app, "payment_profiles").await, 1);
    }

    async fn a_rejected_payment_fails_with_the_reason_and_sends_the_payer_to_failure(app) {
        let vipps = app.with_vipps().await;
        let created = pay(&app, &vipps).await;
        let reference = created["OneTime"]["PaymentReference"].as_str().unwrap();
        assert_eq!(vipps.control(&format!("/_sim/payments/{reference}/reject"), json!({})).await, StatusCode::OK);
        assert_eq!(come_back(&app, created["Id"].as_str().unwrap()).await, "https://example.org/sorry");
        let installment = app.v2_get(&vipps, &format!("/v2/Installment/{}", created["OneTime"]["Id"].as_str().unwrap())).await;
        assert_eq!(installment["Status"], "Failed");
        assert!(installment["StatusReason"].as_str().unwrap().contains("Rejected"), "{installment}");
        assert_eq!(installment["Payments"], json!([]));
        // A late approval cannot move a failed installment back.
        vipps.control(&format!("/_sim/payments/{reference}/approve"), json!({})).await;
        app.state.payments.sync_open(100).await.unwrap();
        let installment = app.v2_get(&vipps, &format!("/v2/Installment/{}", created["OneTime"]["Id"].as_str().unwrap())).await;
        assert_eq!(installment["Status"], "Failed");
    }

    async fn a_payer_back_before_vipps_decided_waits_on_a_checking_page_not_the_failure_url(app) {
        let vipps = app.with_vipps().await;
        let created = pay(&app, &vipps).await;
        let intent_id = created["Id"].as_str().unwrap();
        // Back before approving (the app was closed, or Vipps is slower than the payer).
        let response = app.http.get(app.url(&format!("/v2/return/{intent_id}"))).header("accept-language", "nb-NO,nb;q=0.9").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let page = response.text().await.unwrap();
        assert!(page.contains("Vi sjekker betalingen"), "{page}");
        assert!(page.contains(r#"http-equiv="refresh""#), "the page looks again by itself: {page}");
        assert!(page.contains(r#"lang="nb""#) && page.contains("width=device-width"));
        let response = app.http.get(app.url(&format!("/v2/return/{intent_id}"))).header("accept-language", "en-GB").send().await.unwrap();
        assert!(response.text().await.unwrap().contains("checking your payment"));
        // Once Vipps has decided, the same address forwards.
        let reference = created["OneTime"]["PaymentReference"].as_str().unwrap();
        vipps.control(&format!("/_sim/payments/{reference}/approve"), json!({})).await;
        assert_eq!(come_back(&app, intent_id).await, "https://example.org/thanks");
        assert_eq!(app.http.get(app.url("/v2/return/pi_unknown")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    }

    async fn an_expired_payment_fails_once_the_clock_passes_ten_minutes(app) {
        let vipps = app.with_vipps().await;
        let created = pay(&app, &vipps).await;
        vipps.sim.advance(11 * 60).await;
        app.state.payments.sync_open(100).await.unwrap();
        let installment = app.v2_get(&vipps, &format!("/v2/Installment/{}", created["OneTime"]["Id"].as_str().unwrap())).await;
        assert_eq!(installment["Status"], "Failed", "{installment}");
        assert!(installment["StatusReason"].as_str().unwrap().contains("Expired"));
    }

    async fn refunds_are_partial_or_full_and_never_exceed_what_was_captured(app) {
        let vipps = app.with_vipps().await;
        let created = pay(&app, &vipps).await;
        let reference = created["OneTime"]["PaymentReference"].as_str().unwrap();
        let installment_id = created["OneTime"]["Id"].as_str().unwrap();
        let refund = |body: Value| {
            let app = &app;
            let key = vipps.integrator_key.clone();
            async move {
                let response = app.http.post(app.url("/v2/Refund")).bearer_auth(key).json(&body).send().await.unwrap();
                (response.status(), response.json::<Value>().await.unwrap())
            }
        };
        let (status, early) = refund(json!({"InstallmentId": installment_id})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{early}");
        assert!(early["Errors"][0]["error_message"].as_str().unwrap().contains("collected"));

        vipps.control(&format!("/_sim/payments/{reference}/approve"), json!({})).await;
        come_back(&app, created["Id"].as_str().unwrap()).await;
        let payment_id = app.v2_get(&vipps, &format!("/v2/Installment/{installment_id}")).await["Payments"][0]["Id"].as_str().unwrap().to_owned();

        let (status, partial) = refund(json!({"PaymentId": payment_id, "Amount": "10.50", "Reason": "Wrong size"})).await;
        assert_eq!(status, StatusCode::OK, "{partial}");
        assert_eq!(partial["Status"], "Succeeded");
        assert_eq!(partial["InstallmentStatus"], "Partially refunded");
        let (status, too_much) = refund(json!({"InstallmentId": installment_id, "Amount": 30})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{too_much}");
        assert_eq!(too_much["Errors"][0]["field"], "Amount");
        let (status, rest) = refund(json!({"InstallmentId": installment_id})).await;
        assert_eq!(status, StatusCode::OK, "{rest}");
        assert_eq!(rest["Amount"], json!(25.5));
        assert_eq!(rest["InstallmentStatus"], "Refunded");
        let (status, _) = refund(json!({"InstallmentId": installment_id, "Amount": 1})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        let installment = app.v2_get(&vipps, &format!("/v2/Installment/{installment_id}")).await;
        let amounts: Vec<i64> = installment["Payments"].as_array().unwrap().iter().map(|p| p["AmountOre"].as_i64().unwrap()).collect();
        assert_eq!(amounts, [3600, -1050, -2550]);
        assert_eq!(installment["Status"], "Refunded");
    }

    async fn concurrent_refunds_never_exceed_the_captured_amount(app) {
        let vipps = app.with_vipps().await;
        let created = pay(&app, &vipps).await;
        let reference = created["OneTime"]["PaymentReference"].as_str().unwrap();
        let installment_id = created["OneTime"]["Id"].as_str().unwrap().to_owned();
        vipps.control(&format!("/_sim/payments/{reference}/approve"), json!({})).await;
        come_back(&app, created["Id"].as_str().unwrap()).await;
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let http = app.http.clone();
            let url = app.url("/v2/Refund");
            let key = vipps.integrator_key.clone();
            let body = json!({"InstallmentId": installment_id, "Amount": 10});
            tasks.push(tokio::spawn(async move { http.post(url).bearer_auth(key).json(&body).send().await.unwrap().status() }));
        }
        let mut ok = 0;
        for task in tasks {
            if task.await.unwrap() == StatusCode::OK {
                ok += 1;
            }
        }
        assert_eq!(ok, 3, "36 kroner hold three refunds of 10");
        let installment = app.v2_get(&vipps, &format!("/v2/Installment/{installment_id}")).await;
        let refunded: i64 = installment["Payments"].as_array().unwrap().iter().map(|p| p["AmountOre"].as_i64().unwrap()).filter(|a| *a < 0).sum();
        assert_eq!(refunded, -3000);
    }

    async fn the_same_idempotency_key_returns_the_first_response_and_creates_nothing_new(app) {
        let vipps = app.with_vipps().await;
        let body = with(seed_intent(), json!({"IdempotencyKey": "order-1001"}));
        let (first_status, first) = app.intent(&vipps, &body).await;
        let (second_status, second) = app.intent(&vipps, &body).await;
        assert_eq!((first_status, &first), (second_status, &second));
        assert_eq!(count(&app, "installments").await, 1);
        let different = with(body.clone(), json!({"OneTime": {"Amount": "37"}}));
        let (status, conflict) = app.intent(&vipps, &different).await;
        assert_eq!(status, StatusCode::CONFLICT, "{conflict}");
        // The header works the same way, and racing duplicates still make one installment.
        let mut racing = Vec::new();
        for _ in 0..4 {
            let http = app.http.clone();
            let url = app.url("/v2/PaymentIntent");
            let key = vipps.integrator_key.clone();
            let body = seed_intent();
            racing.push(tokio::spawn(async move {
                let response = http.post(url).bearer_auth(key).header("Idempotency-Key", "race-7").json(&body).send().await.unwrap();
                (response.status(), response.json::<Value>().await.unwrap())
            }));
        }
        let mut answers = Vec::new();
        for task in racing {
            answers.push(task.await.unwrap());
        }
        assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
        assert_eq!(answers[0].0, StatusCode::OK);
        assert_eq!(count(&app, "installments").await, 2);
    }

    async fn invalid_intents_get_the_envelope_with_code_and_field_and_write_nothing(app) {
        let vipps = app.with_vipps().await;
        let cases = [
            (json!({"OneTime": {"Amount": 0}}), "200", "OneTime.Amount"),
            (json!({"OneTime": {"Amount": -1}}), "200", "OneTime.Amount"),
            (json!({"OneTime": {"Amount": "1,50"}}), "200", "OneTime.Amount"),
            (json!({"OneTime": {"Amount": 1.005}}), "200", "OneTime.Amount"),
            (json!({"OneTime": {"Amount": "abc"}}), "200", "OneTime.Amount"),
            (json!({"OneTime": {"Amount": 1e20}}), "200", "OneTime.Amount"),
            (json!({"OneTime": {"Amount": 10, "CurrencyISOCode": "SEK"}}), "200", "OneTime.CurrencyISOCode"),
            (json!({"OneTime": {}}), "010", "OneTime.Amount"),
            (json!({"SuccessURL": "not a url"}), "200", "SuccessURL"),
            (json!({"FailureURL": null}), "010", "FailureURL"),
            (json!({"PaymentMethod": {"Name": "Vipps", "Target": "Nope"}}), "200", "PaymentMethod.Target"),
            (json!({"PaymentMethod": {"Name": "Klarna"}}), "200", "PaymentMethod.Name"),
            (json!({"PaymentMethod": {"Name": "Vipps", "Processor": "Stripe"}}), "200", "PaymentMethod.Processor"),
            (json!({"PaymentMethod": {"Name": "Vipps", "Parameters": {"mobileNumber": "12"}}}), "200", "PaymentMethod.Parameters.mobileNumber"),
        ];
        for (change, code, field) in cases {
            let (status, body) = app.intent(&vipps, &with(seed_intent(), change.clone())).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{change}: {body}");
            let error = &body["Errors"][0];
            assert_eq!((error["error_code"].as_str().unwrap(), error["field"].as_str().unwrap()), (code, field), "{change}: {body}");
        }
        assert_eq!(count(&app, "installments").await, 0);
        assert_eq!(count(&app, "payers").await, 0);
        assert_eq!(count(&app, "messages").await, 0);
    }

    async fn without_a_default_account_an_intent_gets_code_098(app) {
        let key = app.key(payhub::domain::role::Role::Integrator).await;
        let response = app.http.post(app.url("/v2/PaymentIntent")).bearer_auth(key).json(&seed_intent()).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["Errors"][0]["error_code"], "098");
    }
}

/// A receiver on 127.0.0.1:0 that keeps the event types it is sent.
async fn event_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    let seen: std::sync::Arc<std::sync::Mutex<Vec<Value>>> = Default::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(serde_json::from_str(&body).unwrap_or(Value::Null));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

on_both_backends! {
    async fn the_intents_webhook_url_hears_every_step_in_findocks_names(app) {
        let vipps = app.with_vipps().await;
        let (url, seen) = event_receiver().await;
        let (status, created) = app.intent(&vipps, &with(seed_intent(), json!({"WebhookURL": url}))).await;
        assert_eq!(status, StatusCode::OK, "{created}");
        let reference = created["OneTime"]["PaymentReference"].as_str().unwrap();
        vipps.control(&format!("/_sim/payments/{reference}/approve"), json!({})).await;
        come_back(&app, created["Id"].as_str().unwrap()).await;
        app.state.jobs.run_until_idle().await.unwrap();
        let events = seen.lock().unwrap().clone();
        let mut types: Vec<String> = events.iter().map(|e| {
            let status = e["data"]["Status"].as_str().unwrap_or_default();
            format!("{} {status}", e["type"].as_str().unwrap())
        }).collect();
        types.sort();
        assert_eq!(types, [
            "installment.created Outstanding",
            "installment.status_change Collected",
            "installment.status_change Pending",
            "paymentIntent.created Processing",
            "paymentIntent.processed Matched",
        ], "{events:?}");
        let collected = events.iter().find(|e| e["data"]["Status"] == "Collected").unwrap();
        assert_eq!(collected["data"]["Payments"][0]["Amount"], json!(36.0));
        assert_eq!(collected["data"]["PaymentIntentId"], created["Id"]);
    }
}

async fn vipps_payment_count(vipps: &Vipps, reference: &str) -> usize {
    // The simulator's event log for the reference: exactly one CREATED means exactly one payment.
    let merchant = &vipps.sim.merchants()[0];
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{}/accesstoken/get", vipps.sim.base_url()))
        .header("client_id", &merchant.client_id)
        .header("client_secret", &merchant.client_secret)
        .header("Ocp-Apim-Subscription-Key", &merchant.subscription_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let events: Value = http
        .get(format!("{}/epayment/v1/payments/{reference}/events", vipps.sim.base_url()))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .header("Ocp-Apim-Subscription-Key", &merchant.subscription_key)
        .header("Merchant-Serial-Number", &merchant.msn)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    events.as_array().map(|e| e.iter().filter(|e| e["name"] == "CREATED").count()).unwrap_or(0)
}

on_both_backends! {
    async fn faults_on_create_still_make_exactly_one_vipps_payment(app) {
        let vipps = app.with_vipps().await;
        for fault in [json!({"kind": "500", "times": 2}), json!({"kind": "429", "times": 1, "retryAfterSeconds": 1}), json!({"kind": "delay", "times": 1, "delayMs": 1500})] {
            let mut rule = fault.clone();
            rule["pathPrefix"] = json!("/epayment/v1/payments");
            assert_eq!(vipps.control("/_sim/faults", rule).await, StatusCode::CREATED);
            let (status, created) = app.intent(&vipps, &seed_intent()).await;
            assert_eq!(status, StatusCode::OK, "{fault}: {created}");
            let reference = created["OneTime"]["PaymentReference"].as_str().unwrap();
            assert!(created["RedirectURL"].is_string(), "{fault}: {created}");
            assert_eq!(vipps_payment_count(&vipps, reference).await, 1, "{fault}");
        }
    }

    async fn when_vipps_stays_down_the_intent_says_so_and_the_poll_finishes_it_later(app) {
        let vipps = app.with_vipps().await;
        vipps.control("/_sim/faults", json!({"pathPrefix": "/epayment/v1/payments", "kind": "500", "times": 20})).await;
        let (status, failed) = app.intent(&vipps, &seed_intent()).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{failed}");
        assert_eq!(failed["Errors"][0]["error_code"], "500");
        let id = failed["Id"].as_str().unwrap();
        let intent = app.v2_get(&vipps, &format!("/v2/PaymentIntent/{id}")).await;
        assert_eq!(intent["Status"], "Processing");
        assert_eq!(intent["OneTime"]["Status"], "Outstanding");
        vipps.http.delete(format!("{}/_sim/faults", vipps.sim.base_url())).send().await.unwrap();
        // The poll leaves a create to its caller for a minute.
        app.state.payments.sync_open(100).await.unwrap();
        assert_eq!(app.v2_get(&vipps, &format!("/v2/PaymentIntent/{id}")).await["Status"], "Processing");
        vipps.sim.advance(61).await;
        app.state.payments.sync_open(100).await.unwrap();
        let intent = app.v2_get(&vipps, &format!("/v2/PaymentIntent/{id}")).await;
        assert_eq!(intent["Status"], "Matched", "{intent}");
        assert_eq!(intent["OneTime"]["Status"], "Pending");
        assert!(intent["RedirectURL"].is_string());
        let reference = intent["OneTime"]["PaymentReference"].as_str().unwrap();
        assert_eq!(vipps_payment_count(&vipps, reference).await, 1);
    }
}

on_both_backends! {
    async fn account_parameter_defaults_fill_what_the_intent_leaves_out(app) {
        let vipps = app.with_vipps().await;
        let account = app.state.accounts.list().await.unwrap().remove(0);
        let response = app
            .admin(reqwest::Method::PATCH, &format!("/admin/api/accounts/{}", account.id))
            .json(&json!({"parameter_defaults": {"mobileNumber": {"payer_field": "MobilePhone"}, "TransactionText": {"value": "Gave til Røde Kors"}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = json!({"SuccessURL": "https://example.org/thanks", "FailureURL": "https://example.org/sorry",
            "Payer": {"Contact": {"SalesforceFields": {"FirstName": "Kari", "MobilePhone": "004798765432"}}},
            "OneTime": {"Amount": 100}, "PaymentMethod": {"Name": "Vipps"}});
        let (status, created) = app.intent(&vipps, &body).await;
        assert_eq!(status, StatusCode::OK, "{created}");
        let installment = app.v2_get(&vipps, &format!("/v2/Installment/{}", created["OneTime"]["Id"].as_str().unwrap())).await;
        assert_eq!(installment["BankStatementDescription"], "Gave til Røde Kors");
        // The simulator's payment carries the phone from the payer field, normalised.
        let page = vipps.http.get(created["RedirectURL"].as_str().unwrap()).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("Gave til Røde Kors"), "the landing page shows the text");
        // Storage: the phone payhub sent Vipps is kept only in its Vipps payment record.
        let phone = storage::text(&app, "SELECT customer_phone FROM vipps_payments", &[]).await;
        assert_eq!(phone.as_deref(), Some("4798765432"));

        // A payer field that is not a phone number is refused, naming where it came from.
        let bad = with(body.clone(), json!({"Payer": {"Contact": {"SalesforceFields": {"MobilePhone": "call me"}}}}));
        let (status, refused) = app.intent(&vipps, &bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        assert_eq!(refused["Errors"][0]["field"], "Payer.Contact.SalesforceFields.MobilePhone");

        let invalid = app
            .admin(reqwest::Method::PATCH, &format!("/admin/api/accounts/{}", account.id))
            .json(&json!({"parameter_defaults": {"colour": {"value": "red"}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
    }
}

on_both_backends! {
    async fn racing_intents_from_one_payer_make_one_payer(app) {
        let vipps = app.with_vipps().await;
        let body = with(seed_intent(), json!({"Payer": {"Contact": {"SalesforceFields": {"FirstName": "Kari", "Email": "kari@example.org"}}}}));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let http = app.http.clone();
            let url = app.url("/v2/PaymentIntent");
            let key = vipps.integrator_key.clone();
            let body = body.clone();
            tasks.push(tokio::spawn(async move { http.post(url).bearer_auth(key).json(&body).send().await.unwrap().status() }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), StatusCode::OK);
        }
        assert_eq!(count(&app, "installments").await, 8);
        assert_eq!(count(&app, "payers").await, 1, "deduplicated by email, also under a race");
    }
}

on_both_backends! {
    async fn intents_sent_at_once_are_each_recorded_once_with_their_payer_and_events(app) {
        // Many intents arrive together, so they are written in shared transactions (group commit): three new
        // payers among them are each created once, and every intent with a WebhookURL announces each step.
        let vipps = app.with_vipps().await;
        let (url, seen) = event_receiver().await;
        let bodies: Vec<Value> = (0..24)
            .map(|i| {
                let payer = json!({"Contact": {"SalesforceFields": {"FirstName": "Many", "LastName": "At Once",
                    "Email": format!("Payer{}@Example.org", i % 3)}}});
                let body = with(seed_intent(), json!({"Payer": payer}));
                if i % 2 == 0 { with(body, json!({"WebhookURL": url})) } else { body }
            })
            .collect();
        let answers = futures::future::join_all(bodies.iter().map(|body| app.intent(&vipps, body))).await;
        let mut references = std::collections::HashSet::new();
        for (status, created) in &answers {
            assert_eq!(*status, StatusCode::OK, "{created}");
            assert_eq!(created["Status"], "Matched", "{created}");
            assert_eq!(created["OneTime"]["Status"], "Pending", "{created}");
            references.insert(created["OneTime"]["PaymentReference"].as_str().unwrap().to_owned());
        }
        assert_eq!(references.len(), 24, "every intent has its own payment");
        assert_eq!(count(&app, "payers").await, 3, "a payer sent many times at once is created once");
        assert_eq!(count(&app, "payment_profiles").await, 3);
        assert_eq!(count(&app, "payment_intents WHERE status = 'Matched'").await, 24);
        assert_eq!(count(&app, "installments WHERE status = 'Pending'").await, 24);
        assert_eq!(count(&app, "vipps_payments WHERE state = 'CREATED' AND redirect_url IS NOT NULL").await, 24);
        assert_eq!(count(&app, "messages").await, 48, "the intent and Vipps' answer, each");
        assert_eq!(count(&app, "inbound_reports").await, 48);
        for (_, created) in &answers {
            let intent = app.v2_get(&vipps, &format!("/v2/PaymentIntent/{}", created["Id"].as_str().unwrap())).await;
            assert_eq!(intent["Status"], "Matched", "{intent}");
        }
        app.state.jobs.run_until_idle().await.unwrap();
        let events = seen.lock().unwrap().clone();
        let mut per_intent: std::collections::HashMap<String, Vec<String>> = Default::default();
        for event in &events {
            let intent = event["data"]["PaymentIntentId"].as_str().or(event["data"]["Id"].as_str()).unwrap_or_default();
            let step = format!("{} {}", event["type"].as_str().unwrap(), event["data"]["Status"].as_str().unwrap_or_default());
            per_intent.entry(intent.to_owned()).or_default().push(step);
        }
        assert_eq!(per_intent.len(), 12, "only the intents with a WebhookURL are heard: {events:?}");
        for steps in per_intent.values_mut() {
            steps.sort();
            assert_eq!(steps, &[
                "installment.created Outstanding",
                "installment.status_change Pending",
                "paymentIntent.created Processing",
                "paymentIntent.processed Matched",
            ]);
        }
    }
}

on_both_backends! {
    async fn one_time_and_recurring_intents_arriving_together_share_one_intake(app) {
        let vipps = app.with_vipps().await;
        let (own_url, heard) = event_receiver().await;
        let today = crate::helpers::recurring::today(&app);
        let bodies: Vec<Value> = (0..12)
            .map(|n| {
                let mut body = match n % 3 {
                    0 => seed_intent(),
                    1 => crate::helpers::recurring::recurring_intent(today, "150"),
                    _ => with(crate::helpers::recurring::recurring_intent(today, "150"), json!({"OneTime": {"Amount": "50"}})),
                };
                body["WebhookURL"] = json!(own_url);
                body
            })
            .collect();
        let answers = futures::future::join_all(bodies.iter().map(|body| app.intent(&vipps, body))).await;
        for (n, (status, created)) in answers.iter().enumerate() {
            assert_eq!(*status, StatusCode::OK, "{created}");
            assert!(created["RedirectURL"].is_string(), "{created}");
            match n % 3 {
                0 => assert_eq!(created["OneTime"]["Status"], "Pending", "{created}"),
                1 => assert!(created["Recurring"]["Id"].is_string() && created["OneTime"].is_null(), "{created}"),
                _ => assert!(created["Recurring"]["Id"].is_string() && created["OneTime"]["Id"].is_string(), "{created}"),
            }
        }
        assert_eq!(app.state.payments.group_commit_fallbacks(), 0, "no batch had to be written one by one");
        // Every intent is traceable to its Message and Inbound Report, whichever kind it is (storage: the trail
        // has no API yet).
        for (_, created) in &answers {
            let id = created["Id"].as_str().unwrap();
            let traced = storage::count(&app, "SELECT COUNT(*) FROM payment_intents i JOIN inbound_reports r ON r.id = i.inbound_report_id \
                 JOIN messages m ON m.id = r.message_id WHERE i.id = $1 AND r.report_type = 'PaymentIntent' AND m.channel = 'api'", &[id]).await;
            assert_eq!(traced, 1, "{id}");
        }
        app.state.jobs.run_until_idle().await.unwrap();
        let events = heard.lock().unwrap().clone();
        for (n, (_, created)) in answers.iter().enumerate() {
            let id = created["Id"].as_str().unwrap();
            let of_intent: Vec<&Value> = events.iter().filter(|e| e["data"]["Id"] == id || e["data"]["PaymentIntentId"] == id).collect();
            let created_events = of_intent.iter().filter(|e| e["type"] == "paymentIntent.created").count();
            let installments = of_intent.iter().filter(|e| e["type"] == "installment.created").count();
            assert_eq!(created_events, 1, "intent {n}: {of_intent:?}");
            assert_eq!(installments, usize::from(n % 3 != 1), "intent {n} announces its installment if it has one");
        }
    }

    async fn concurrent_intents_are_written_together_and_every_one_is_announced(app) {
        let vipps = app.with_vipps().await;
        let (endpoint_url, at_endpoint) = event_receiver().await;
        let (own_url, at_own_url) = event_receiver().await;
        let response = app
            .admin(reqwest::Method::POST, "/admin/api/webhook-endpoints")
            .json(&json!({"url": endpoint_url}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        // Arriving together: one new payer many times (the email in varying case), payers known by phone alone,
        // payers with neither, and intents with a WebhookURL of their own.
        let bodies: Vec<Value> = (0..24)
            .map(|n| {
                let fields = match n % 4 {
                    0 => json!({"LastName": "Same", "Email": if n % 8 == 0 { "Same@Example.org" } else { "same@example.org" }}),
                    1 => json!({"LastName": "Phone", "MobilePhone": format!("+47 9{:07}", n)}),
                    2 => json!({"LastName": "Nobody"}),
                    _ => json!({"LastName": "Own", "Email": format!("own{n}@example.org")}),
                };
                let mut body = with(seed_intent(), json!({"Payer": {"Contact": {"SalesforceFields": fields}}}));
                if n % 4 == 3 {
                    body["WebhookURL"] = json!(own_url);
                }
                body
            })
            .collect();
        let answers = futures::future::join_all(bodies.iter().map(|body| app.intent(&vipps, body))).await;
        let mut references = std::collections::HashSet::new();
        for (status, created) in &answers {
            assert_eq!(*status, StatusCode::OK, "{created}");
            assert!(created["RedirectURL"].is_string(), "{created}");
            references.insert(created["OneTime"]["PaymentReference"].as_str().unwrap().to_owned());
        }
        assert_eq!(references.len(), 24);
        assert_eq!(app.state.payments.group_commit_fallbacks(), 0, "no batch had to be written one by one");
        let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains("payhub_group_commit_fallbacks_total 0"), "{metrics}");

        app.state.jobs.run_until_idle().await.unwrap();
        let count = |events: &[Value], intent: &str| {
            let mut types: Vec<String> = events
                .iter()
                .filter(|e| e.to_string().contains(intent))
                .map(|e| format!("{} {}", e["type"].as_str().unwrap(), e["data"]["Status"].as_str().unwrap()))
                .collect();
            types.sort();
            types
        };
        let expected =
            ["installment.created Outstanding", "installment.status_change Pending", "paymentIntent.created Processing", "paymentIntent.processed Matched"];
        let at_endpoint = at_endpoint.lock().unwrap().clone();
        let at_own_url = at_own_url.lock().unwrap().clone();
        for (n, (_, created)) in answers.iter().enumerate() {
            let intent = created["Id"].as_str().unwrap();
            assert_eq!(count(&at_endpoint, intent), expected, "intent {n} at the endpoint");
            let own: &[&str] = if n % 4 == 3 { &expected } else { &[] };
            assert_eq!(count(&at_own_url, intent), own, "intent {n} at its WebhookURL");
        }
        let payers: Vec<String> = answers
            .iter()
            .step_by(4)
            .map(|(_, created)| created["Payer"]["Contact"]["Id"].as_str().unwrap_or_default().to_owned())
            .collect();
        let same = storage::count(&app, "SELECT COUNT(*) FROM payers WHERE lower(email) = 'same@example.org'", &[]).await;
        assert_eq!(same, 1, "one payer for one email: {payers:?}");
    }
}
