//! Bad input to recurring payments is refused with the field it concerns, and nothing is written: intents with
//! a bad frequency, date, amount, collection day, currency or transaction text; changes, pauses and cancels
//! that do not fit; and changes or cancels of records that do not exist (404).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::recurring::{active_recurring, recurring_intent, today};
use crate::helpers::vipps::{agreements_at_vipps, sim_client};
use crate::helpers::{storage, TestApp, Vipps};
use crate::on_both_backends;

/// Nothing of an intent was written (storage: not a row in any table an intent writes, which no API could
/// show) and nothing reached Vipps.
async fn assert_nothing_written(app: &TestApp, vipps: &Vipps, what: &str) {
    for table in
        ["payment_intents", "mandates", "recurring_payments", "installments", "payers", "messages", "vipps_charges"]
    {
        assert_eq!(
            storage::count(app, &format!("SELECT COUNT(*) FROM {table}"), &[]).await,
            0,
            "{what}: a row in {table}"
        );
    }
    assert_eq!(agreements_at_vipps(vipps).await, 0, "{what}: an agreement at Vipps");
}

fn with_recurring(today: chrono::NaiveDate, changes: Value) -> Value {
    let start = today + chrono::Days::new(2);
    let mut body = recurring_intent(start, "100");
    for (k, v) in changes.as_object().unwrap() {
        body["Recurring"][k] = v.clone();
    }
    body
}

on_both_backends! {
    async fn bad_recurring_intents_are_refused_with_the_field_and_nothing_is_written(app) {
        let vipps = app.with_vipps().await;
        let today = today(&app);
        let long_text = "A monthly gift to the society, thank you very much";
        assert!(long_text.chars().count() > 45);
        let mut long = recurring_intent(today, "100");
        long["PaymentMethod"]["Parameters"]["TransactionText"] = json!(long_text);
        let cases: Vec<(&str, Value, &str)> = vec![
            ("unknown frequency", with_recurring(today, json!({"Frequency": "Fortnightly"})), "Recurring.Frequency"),
            ("start date in the past", with_recurring(today, json!({"StartDate": (today - chrono::Days::new(1)).to_string()})), "Recurring.StartDate"),
            ("end date before start date", with_recurring(today, json!({"StartDate": (today + chrono::Days::new(10)).to_string(), "EndDate": (today + chrono::Days::new(5)).to_string()})), "Recurring.EndDate"),
            ("amount 0.50", with_recurring(today, json!({"Amount": "0.50"})), "Recurring.Amount"),
            ("amount 20000.01", with_recurring(today, json!({"Amount": "20000.01"})), "Recurring.Amount"),
            ("amount 0", with_recurring(today, json!({"Amount": 0})), "Recurring.Amount"),
            ("negative amount", with_recurring(today, json!({"Amount": "-100"})), "Recurring.Amount"),
            ("amount not a number", with_recurring(today, json!({"Amount": "a lot"})), "Recurring.Amount"),
            ("transaction text over 45 characters", long, "PaymentMethod.Parameters.TransactionText"),
            ("malformed start date", with_recurring(today, json!({"StartDate": "2027-13-01"})), "Recurring.StartDate"),
            ("start date in another format", with_recurring(today, json!({"StartDate": "01.02.2027"})), "Recurring.StartDate"),
            ("malformed end date", with_recurring(today, json!({"EndDate": "someday"})), "Recurring.EndDate"),
            ("collection day 32", with_recurring(today, json!({"CollectionDay": 32})), "Recurring.CollectionDay"),
            ("collection day 0", with_recurring(today, json!({"CollectionDay": 0})), "Recurring.CollectionDay"),
            ("collection day text", with_recurring(today, json!({"CollectionDay": "first"})), "Recurring.CollectionDay"),
            ("currency", with_recurring(today, json!({"CurrencyISOCode": "EUR"})), "Recurring.CurrencyISOCode"),
            ("no frequency", with_recurring(today, json!({"Frequency": null})), "Recurring.Frequency"),
            ("no amount", with_recurring(today, json!({"Amount": null})), "Recurring.Amount"),
        ];
        for (what, body, field) in &cases {
            let (status, answer) = app.intent(&vipps, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {answer}");
            let errors = answer["Errors"].as_array().unwrap_or_else(|| panic!("{what}: envelope {answer}"));
            assert!(!errors.is_empty(), "{what}: {answer}");
            for item in errors {
                assert!(item["error_code"].as_str().is_some_and(|c| c.len() == 3), "{what}: {item}");
                assert!(item["error_message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {item}");
            }
            let named = errors.iter().find(|e| e["field"] == *field).unwrap_or_else(|| panic!("{what}: no error names {field}: {answer}"));
            assert!(named["error_code"] == "200" || named["error_code"] == "010", "{what}: {named}");
            assert_nothing_written(&app, &vipps, what).await;
        }
        let (_, answer) = app.intent(&vipps, &cases[8].1).await;
        assert_eq!(answer["Errors"][0]["error_code"], "200", "{answer}");
        assert_eq!(answer["Errors"].as_array().map(Vec::len), Some(1), "{answer}");

        // The account's default TransactionText counts too.
        let account = app.state.accounts.list().await.unwrap().remove(0);
        let response = app
            .admin(Method::PATCH, &format!("/admin/api/accounts/{}", account.id))
            .json(&json!({"parameter_defaults": {"TransactionText": {"value": long_text}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut without = recurring_intent(today, "100");
        without["PaymentMethod"]["Parameters"].as_object_mut().unwrap().remove("TransactionText");
        let (status, answer) = app.intent(&vipps, &without).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["Errors"][0]["field"], "PaymentMethod.Parameters.TransactionText", "{answer}");
        assert_nothing_written(&app, &vipps, "default transaction text").await;
        let response = app
            .admin(Method::PATCH, &format!("/admin/api/accounts/{}", account.id))
            .json(&json!({"parameter_defaults": {}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);

        // The limits themselves are accepted.
        for amount in ["1", "20000"] {
            let (status, answer) = app.intent(&vipps, &recurring_intent(today, amount)).await;
            assert_eq!(status, StatusCode::OK, "{amount}: {answer}");
        }
        // Storage: a mandate row for each accepted intent, and only those.
        assert_eq!(storage::count(&app, "SELECT COUNT(*) FROM mandates", &[]).await, 2);
        assert_eq!(agreements_at_vipps(&vipps).await, 2);
    }

    async fn changes_and_cancels_of_unknown_records_are_404(app) {
        let vipps = app.with_vipps().await;
        let send = |method: Method, path: &str, body: Value| {
            app.http.request(method, app.url(path)).bearer_auth(&vipps.integrator_key).json(&body).send()
        };
        for (method, path, body) in [
            (Method::PATCH, "/v2/Recurring/rp_unknown", json!({"Amount": 100})),
            (Method::PATCH, "/v2/Recurring/rp_unknown", json!({"CollectionDay": 5})),
            (Method::POST, "/v2/Recurring/rp_unknown/Cancel", json!({})),
            (Method::POST, "/v2/Recurring/rp_unknown/Pause", json!({"Until": "2099-01-01"})),
            (Method::POST, "/v2/Recurring/rp_unknown/Resume", json!({})),
        ] {
            let response = send(method.clone(), path, body).await.unwrap();
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {path}");
            let answer: Value = response.json().await.unwrap();
            assert_eq!(answer["Errors"][0]["error_code"], "404", "{method} {path}: {answer}");
        }
        let missing = app.v2_get(&vipps, "/v2/Recurring/rp_unknown").await;
        assert_eq!(missing["Errors"][0]["error_code"], "404", "{missing}");
        for body in [json!({"MandateId": "mdt_unknown"}), json!({"AgreementId": "agr_unknown"})] {
            let response = send(Method::POST, "/v2/actions/CancelVippsAgreement", body.clone()).await.unwrap();
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{body}");
            let answer: Value = response.json().await.unwrap();
            assert_eq!(answer["IsSuccess"], false, "{answer}");
            assert!(answer["Message"].as_str().is_some_and(|m| m.contains("unknown")), "{answer}");
        }
        // A mandate id given as an agreement id (and the reverse) is not a match either.
        let (_, _, mandate_id, agreement_id) =
            active_recurring(&app, &vipps, &recurring_intent(today(&app), "100")).await;
        for body in [json!({"AgreementId": mandate_id}), json!({"MandateId": agreement_id})] {
            let response = send(Method::POST, "/v2/actions/CancelVippsAgreement", body.clone()).await.unwrap();
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{body}");
        }
        assert_eq!(app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await["Status"], "Active");
        // Bad bodies: both ids, neither, unknown fields.
        for body in [json!({"MandateId": mandate_id, "AgreementId": agreement_id}), json!({}), json!({"Mandate": mandate_id})] {
            let response = send(Method::POST, "/v2/actions/CancelVippsAgreement", body.clone()).await.unwrap();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
            let answer: Value = response.json().await.unwrap();
            assert_eq!(answer["IsSuccess"], false, "{answer}");
        }
        assert_eq!(app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await["Status"], "Active");
    }

    async fn bad_changes_to_a_recurring_payment_are_refused_and_change_nothing(app) {
        let vipps = app.with_vipps().await;
        let client = sim_client(&vipps);
        let (_, recurring_id, _, agreement_id) =
            active_recurring(&app, &vipps, &recurring_intent(today(&app), "100")).await;
        let send = |method: Method, path: String, body: Value| {
            app.http.request(method, app.url(&path)).bearer_auth(&vipps.integrator_key).json(&body).send()
        };
        let before = app.v2_get(&vipps, &format!("/v2/Recurring/{recurring_id}")).await;
        let today = today(&app);
        let patch = format!("/v2/Recurring/{recurring_id}");
        let cases: Vec<(Method, String, Value, &str)> = vec![
            (Method::PATCH, patch.clone(), json!({"Amount": "0.50"}), "Amount"),
            (Method::PATCH, patch.clone(), json!({"Amount": "20000.01"}), "Amount"),
            (Method::PATCH, patch.clone(), json!({"Amount": "a lot"}), "Amount"),
            (Method::PATCH, patch.clone(), json!({"Amount": -5}), "Amount"),
            (Method::PATCH, patch.clone(), json!({"CollectionDay": 32}), "CollectionDay"),
            (Method::PATCH, patch.clone(), json!({"CollectionDay": 0}), "CollectionDay"),
            (Method::PATCH, patch.clone(), json!({}), "Amount"),
            (Method::PATCH, patch.clone(), json!({"Frequency": "Weekly"}), "Frequency"),
            (Method::PATCH, patch.clone(), json!({"Amount": "150", "CollectionDay": 40}), "CollectionDay"),
            (Method::POST, format!("{patch}/Pause"), json!({"Until": today.to_string()}), "Until"),
            (Method::POST, format!("{patch}/Pause"), json!({"Until": "next month"}), "Until"),
            (Method::POST, format!("{patch}/Pause"), json!({}), "Until"),
            (Method::POST, format!("{patch}/Resume"), json!({}), "Id"),
            (Method::POST, format!("{patch}/Cancel"), json!({"Reason": "x".repeat(256)}), "Reason"),
        ];
        for (method, path, body, field) in cases {
            let response = send(method.clone(), path.clone(), body.clone()).await.unwrap();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{method} {path} {body}");
            let answer: Value = response.json().await.unwrap();
            assert!(
                answer["Errors"].as_array().is_some_and(|e| e.iter().any(|e| e["field"] == field)),
                "{method} {path} {body}: {answer}"
            );
        }
        let after = app.v2_get(&vipps, &format!("/v2/Recurring/{recurring_id}")).await;
        assert_eq!(after, before, "a refused change changed the recurring payment");
        let agreement = client.recurring().get_agreement(&agreement_id).await.unwrap();
        assert_eq!(agreement.pricing.amount, Some(10000), "the price at Vipps is unchanged");
        // Storage: not even a Failed change row for a request refused before it reached Vipps.
        assert_eq!(storage::count(&app, "SELECT COUNT(*) FROM recurring_changes", &[]).await, 0);
    }
}
