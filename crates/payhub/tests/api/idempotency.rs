//! The Payment API's IdempotencyKey when a request does not end normally: the caller gives up (payhub's own
//! request time limit, a client disconnect), the process dies holding the key, or storing the answer fails. A
//! repeat with the key gets the first answer, or "still processing" until there is one; never 409 for ever.

use std::time::{Duration, Instant};

use payhub::auth::{self, Actor};
use payhub::domain::role::Role;
use payhub::store::idempotency::{self, Claim};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::vipps::{fault, refund_payments, refunded_at_vipps};
use crate::helpers::{collected, seed_intent, storage, with, TestApp, Vipps};
use crate::on_both_backends;

/// `POST path` with the integrator key and `body` (its `IdempotencyKey` says the key): status, body, and
/// whether payhub says it replayed a stored answer.
async fn post(app: &TestApp, vipps: &Vipps, path: &str, body: &Value) -> (StatusCode, Value, bool) {
    let response =
        app.http.post(app.url(path)).bearer_auth(&vipps.integrator_key).json(body).send().await.expect("request");
    let status = response.status();
    let replayed = response.headers().get("idempotent-replayed").is_some();
    (status, response.json().await.unwrap_or(Value::Null), replayed)
}

/// The answer to a repeat while the first request with the key is still at work.
fn assert_still_processing(status: StatusCode, body: &Value) {
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["Errors"][0]["error_code"], "409", "{body}");
    assert_eq!(body["Errors"][0]["field"], "IdempotencyKey", "{body}");
    let message = body["Errors"][0]["error_message"].as_str().unwrap_or_default();
    assert!(message.contains("still being processed") && message.contains("retry"), "{body}");
}

/// Repeats `body` at `path` until it is answered with something other than "still processing" (at most
/// `within`); that answer, and how many repeats were told to wait.
async fn repeat_until_answered(
    app: &TestApp,
    vipps: &Vipps,
    path: &str,
    body: &Value,
    within: Duration,
) -> ((StatusCode, Value, bool), usize) {
    let started = Instant::now();
    let mut told_to_wait = 0;
    loop {
        let (status, answer, replayed) = post(app, vipps, path, body).await;
        if status != StatusCode::CONFLICT {
            return ((status, answer, replayed), told_to_wait);
        }
        assert_still_processing(status, &answer);
        told_to_wait += 1;
        assert!(started.elapsed() < within, "still 409 after {:?}: {answer}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// payhub gives up on a request after 2 s here; each Vipps attempt after 1 s (the suite's setting). Vipps holds
// its answer to the refund back for 20 s three times, so the refund needs four attempts, about 5 s: longer than
// the request may take, as 20 s ×3 outlasts the 30 s limit with the default 15 s attempts.
on_both_backends! {
    with &[("PAYHUB_REQUEST_TIMEOUT_MS", "2000")];

    async fn a_refund_that_outlasts_its_request_is_finished_and_its_repeat_gets_the_answer(app) {
        let vipps = app.with_vipps().await;
        let (installment_id, reference) = collected(&app, &vipps).await;
        fault(&vipps, &format!("/epayment/v1/payments/{reference}/refund"), json!({"kind": "delay", "delayMs": 20_000, "times": 3})).await;
        let body = json!({"InstallmentId": installment_id, "Amount": 20, "IdempotencyKey": "refund-k"});

        let started = Instant::now();
        let (status, first, _) = post(&app, &vipps, "/v2/Refund", &body).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "payhub's time limit ends the request: {first}");
        let told = first["Errors"][0]["error_message"].as_str().unwrap_or_default();
        assert!(told.contains("same IdempotencyKey"), "the caller is told how to get the answer: {first}");
        assert_eq!(first["Errors"][0]["error_code"], "503", "{first}");
        assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());

        let ((status, answer, replayed), told_to_wait) =
            repeat_until_answered(&app, &vipps, "/v2/Refund", &body, Duration::from_secs(20)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert!(replayed, "the first request's answer, not a second refund");
        assert!(told_to_wait >= 1, "the refund was still at Vipps when the first repeat came");
        assert_eq!(answer["Status"], "Succeeded", "{answer}");
        assert_eq!(answer["Amount"], json!(20.0));
        assert!(answer["Id"].as_str().is_some_and(|id| !id.is_empty()), "{answer}");

        let (status, again, replayed) = post(&app, &vipps, "/v2/Refund", &body).await;
        assert_eq!((status, &again, replayed), (StatusCode::OK, &answer, true), "every repeat gets the same answer");
        assert_eq!(refund_payments(&app, &vipps, &installment_id).await, [-2000]);
        assert_eq!(refunded_at_vipps(&vipps, &reference).await, 2000, "Vipps refunded once");

        // A new key is a new refund, of what is left and no more.
        let second = json!({"InstallmentId": installment_id, "Amount": 20, "IdempotencyKey": "refund-k2"});
        let (status, refused, _) = post(&app, &vipps, "/v2/Refund", &second).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        assert_eq!(refused["Errors"][0]["field"], "Amount", "{refused}");
        assert_eq!(refunded_at_vipps(&vipps, &reference).await, 2000);
    }

    async fn a_repeat_while_the_first_request_works_is_told_to_retry_and_then_replayed(app) {
        let vipps = app.with_vipps().await;
        let (installment_id, reference) = collected(&app, &vipps).await;
        fault(&vipps, &format!("/epayment/v1/payments/{reference}/refund"), json!({"kind": "delay", "delayMs": 20_000, "times": 3})).await;
        let body = json!({"InstallmentId": installment_id, "IdempotencyKey": "refund-all"});
        // The first caller is still waiting when the repeat comes; neither sees the other's work twice.
        let first = {
            let (http, url, key, body) =
                (app.http.clone(), app.url("/v2/Refund"), vipps.integrator_key.clone(), body.clone());
            tokio::spawn(async move { http.post(url).bearer_auth(key).json(&body).send().await.unwrap().status() })
        };
        storage::wait_for_count(&app, "SELECT COUNT(*) FROM refunds", &[], 1).await;
        let (status, answer, _) = post(&app, &vipps, "/v2/Refund", &body).await;
        assert_still_processing(status, &answer);
        let ((status, answer, _), _) = repeat_until_answered(&app, &vipps, "/v2/Refund", &body, Duration::from_secs(20)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["Amount"], json!(36.0), "{answer}");
        assert_eq!(first.await.unwrap(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refunded_at_vipps(&vipps, &reference).await, 3600);
        // Storage: the claim is the only record of a key; one row, holding the answer.
        assert_eq!(storage::count(&app, "SELECT COUNT(*) FROM api_idempotency WHERE key = 'refund-all' AND response_status = 200", &[]).await, 1);
    }

    async fn a_refund_repeated_after_its_lease_ran_out_finishes_the_same_refund(app) {
        // The first request is still at Vipps (which already refunded) when its key's lease runs out, as when
        // the payhub holding it died after the call: the repeat runs the work again, and must find the refund
        // the key already made instead of reserving and sending a second one.
        let vipps = app.with_vipps().await;
        let (installment_id, reference) = collected(&app, &vipps).await;
        fault(&vipps, &format!("/epayment/v1/payments/{reference}/refund"), json!({"kind": "delay", "delayMs": 20_000, "times": 3})).await;
        let body = json!({"InstallmentId": installment_id, "Amount": 10, "IdempotencyKey": "refund-once"});
        let first = {
            let (http, url, key, body) =
                (app.http.clone(), app.url("/v2/Refund"), vipps.integrator_key.clone(), body.clone());
            tokio::spawn(async move {
                let response = http.post(url).bearer_auth(key).json(&body).send().await.unwrap();
                (response.status(), response.json::<Value>().await.unwrap_or(Value::Null))
            })
        };
        storage::wait_for_count(&app, "SELECT COUNT(*) FROM refunds", &[], 1).await;
        vipps.sim.advance(15 * 60).await;
        // The repeat runs the work again; it may itself outlast the time limit (it waits for the first run's
        // call to Vipps), so it is repeated until it is answered.
        let started = Instant::now();
        let (status, repeat) = loop {
            let (status, answer, _) = post(&app, &vipps, "/v2/Refund", &body).await;
            if status != StatusCode::CONFLICT && status != StatusCode::SERVICE_UNAVAILABLE {
                break (status, answer);
            }
            assert!(started.elapsed() < Duration::from_secs(20), "still {status} after {:?}: {answer}", started.elapsed());
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(status, StatusCode::OK, "{repeat}");
        assert_eq!(repeat["Status"], "Succeeded", "{repeat}");
        assert_eq!(repeat["Amount"], json!(10.0), "{repeat}");
        let (status, first) = first.await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "payhub's time limit ended the first request: {first}");
        let (status, again, replayed) = post(&app, &vipps, "/v2/Refund", &body).await;
        assert_eq!((status, &again, replayed), (StatusCode::OK, &repeat, true));
        assert_eq!(refund_payments(&app, &vipps, &installment_id).await, [-1000]);
        assert_eq!(refunded_at_vipps(&vipps, &reference).await, 1000, "Vipps refunded once");
    }

    async fn a_key_held_by_a_process_that_died_is_taken_again_when_its_lease_runs_out(app) {
        let vipps = app.with_vipps().await;
        let (record, api_key) = auth::create_api_key(&app.state.store, "crashing integrator", Role::Integrator, &Actor::cli()).await.unwrap();
        let vipps = Vipps { integrator_key: api_key, ..vipps };
        let body = with(seed_intent(), json!({"IdempotencyKey": "order-77"}));
        // Another payhub process claimed the key for this very request (the scope is the caller's, the hash the
        // body's) and died before it answered.
        let bytes = serde_json::to_vec(&body).unwrap();
        let hash = hex::encode(Sha256::digest(&bytes));
        let mut conn = app.state.store.pool_for_tests().acquire().await.unwrap();
        let claimed = idempotency::claim(&mut conn, &format!("intent:{}", record.id), "order-77", &hash, app.state.payments.now(), Duration::from_secs(600)).await.unwrap();
        assert!(matches!(claimed, Claim::Fresh(_)), "{claimed:?}");
        drop(conn);

        let (status, answer, _) = post(&app, &vipps, "/v2/PaymentIntent", &body).await;
        assert_still_processing(status, &answer);
        vipps.sim.advance(5 * 60).await;
        let (status, answer, _) = post(&app, &vipps, "/v2/PaymentIntent", &body).await;
        assert_still_processing(status, &answer);

        vipps.sim.advance(60 * 60).await;
        let (status, created, replayed) = post(&app, &vipps, "/v2/PaymentIntent", &body).await;
        assert_eq!(status, StatusCode::OK, "the lease ran out, so the request runs: {created}");
        assert!(!replayed);
        assert_eq!(created["Status"], "Matched", "{created}");
        let (status, again, replayed) = post(&app, &vipps, "/v2/PaymentIntent", &body).await;
        assert_eq!((status, &again, replayed), (StatusCode::OK, &created, true));
    }
}

on_both_backends! {
    async fn a_blank_key_longer_than_100_characters_is_refused_not_taken_as_no_key(app) {
        let vipps = app.with_vipps().await;
        let (installment, _) = collected(&app, &vipps).await;
        let body = json!({"InstallmentId": installment, "Amount": 1, "IdempotencyKey": "\n".repeat(101)});
        let (status, answer, _) = post(&app, &vipps, "/v2/Refund", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["Errors"][0]["field"], "IdempotencyKey", "{answer}");
        assert!(refund_payments(&app, &vipps, &installment).await.is_empty(), "nothing refunded");
    }

    async fn a_second_key_cannot_refund_more_than_is_left_while_the_first_is_at_vipps(app) {
        // A refund's amount is reserved before Vipps is called (captured minus refunds pending or done, under a
        // lock of the installment), so a second key while the first refund is held up at Vipps gets what is left
        // and no more. A second partial refund within what is left is a new refund, as the caller asked.
        let vipps = app.with_vipps().await;
        let (installment_id, reference) = collected(&app, &vipps).await;
        fault(&vipps, &format!("/epayment/v1/payments/{reference}/refund"), json!({"kind": "delay", "delayMs": 20_000, "times": 3})).await;
        let first = {
            let (http, url, key) = (app.http.clone(), app.url("/v2/Refund"), vipps.integrator_key.clone());
            let body = json!({"InstallmentId": installment_id, "Amount": 20, "IdempotencyKey": "first"});
            tokio::spawn(async move {
                let response = http.post(url).bearer_auth(key).json(&body).send().await.unwrap();
                (response.status(), response.json::<Value>().await.unwrap())
            })
        };
        // Storage: the reservation has no API of its own while Vipps holds the answer back.
        storage::wait_for_count(&app, "SELECT COUNT(*) FROM refunds", &[], 1).await;
        let (status, refused, _) = post(&app, &vipps, "/v2/Refund", &json!({"InstallmentId": installment_id, "Amount": 20, "IdempotencyKey": "second"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        assert!(!first.is_finished(), "the first refund is still held up at Vipps");
        assert!(refused["Errors"][0]["error_message"].as_str().unwrap().contains("16.00 NOK"), "{refused}");
        let (status, everything, _) = post(&app, &vipps, "/v2/Refund", &json!({"InstallmentId": installment_id, "IdempotencyKey": "third"})).await;
        assert_eq!(status, StatusCode::OK, "{everything}");
        assert_eq!(everything["Amount"], json!(16.0), "all that is left is the rest after the first: {everything}");
        let (status, first) = first.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{first}");
        assert_eq!(first["Amount"], json!(20.0));
        let (status, _, _) = post(&app, &vipps, "/v2/Refund", &json!({"InstallmentId": installment_id, "Amount": 1, "IdempotencyKey": "fourth"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let mut payments = refund_payments(&app, &vipps, &installment_id).await;
        payments.sort_unstable();
        assert_eq!(payments, [-2000, -1600]);
        assert_eq!(refunded_at_vipps(&vipps, &reference).await, 3600, "never more than was captured");
    }

    async fn an_answer_that_cannot_be_stored_leaves_no_claim_behind(app) {
        // Storage: the claim here is about the database failing to store the answer. A trigger makes every
        // UPDATE of the key table fail; taking and giving up a key (INSERT, DELETE) still work.
        let vipps = app.with_vipps().await;
        let breaking: &[&str] = match app.backend {
            crate::helpers::Backend::Sqlite => &["CREATE TRIGGER fail_complete BEFORE UPDATE ON api_idempotency BEGIN SELECT RAISE(ABORT, 'injected failure'); END"],
            crate::helpers::Backend::Postgres => &[
                "CREATE FUNCTION fail_complete() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql",
                "CREATE TRIGGER fail_complete BEFORE UPDATE ON api_idempotency FOR EACH ROW EXECUTE FUNCTION fail_complete()",
            ],
        };
        for sql in breaking {
            sqlx::query(sql).execute(app.state.store.pool_for_tests()).await.unwrap();
        }
        let body = with(seed_intent(), json!({"IdempotencyKey": "order-88"}));
        let (status, first, _) = post(&app, &vipps, "/v2/PaymentIntent", &body).await;
        assert_eq!(status, StatusCode::OK, "the work was done and its answer is given: {first}");
        assert_eq!(storage::count(&app, "SELECT COUNT(*) FROM api_idempotency WHERE key = 'order-88'", &[]).await, 0, "no claim left behind");

        let mending = match app.backend {
            crate::helpers::Backend::Sqlite => "DROP TRIGGER fail_complete",
            crate::helpers::Backend::Postgres => "DROP TRIGGER fail_complete ON api_idempotency",
        };
        sqlx::query(mending).execute(app.state.store.pool_for_tests()).await.unwrap();
        let (status, second, replayed) = post(&app, &vipps, "/v2/PaymentIntent", &body).await;
        assert_eq!(status, StatusCode::OK, "the key is free again, so the repeat runs: {second}");
        assert!(!replayed);
        let (status, third, replayed) = post(&app, &vipps, "/v2/PaymentIntent", &body).await;
        assert_eq!((status, &third, replayed), (StatusCode::OK, &second, true), "and is kept this time");
    }
}
