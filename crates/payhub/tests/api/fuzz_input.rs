//! Generated hostile input (proptest): valid-shaped bodies for the Payment API and the admin API with their
//! fields mutated (wrong types, huge, negative and fractional amounts, NUL and unusual unicode, keys missing,
//! added or given twice in the raw text, arrays for objects, deep nesting, cut-off text). Whatever comes in,
//! payhub answers without a 5xx and without a panic, and a refused request (4xx) writes nothing: the row count
//! of every table is what it was before it, but for the one answer the Payment API keeps under the request's
//! IdempotencyKey (it replays refusals too, by design). Each case is measured once the simulator has delivered
//! the webhooks that earlier, accepted cases set off, so what they write is not counted against a refusal.
//!
//! `PAYHUB_FUZZ_CASES` sets the cases per endpoint (default 64, for CI);
//! `PAYHUB_FUZZ_CASES=10000 cargo test --release -p payhub --test api fuzz_input::` runs a long campaign.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::Row;

use crate::helpers::recurring::{active_recurring, recurring_intent, today};
use crate::helpers::vipps::sim_deliveries;
use crate::helpers::{account_body, collected, seed_intent, Backend, TestApp, Vipps};
use crate::on_both_backends;

/// Cases per endpoint.
fn cases() -> u32 {
    std::env::var("PAYHUB_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
}

/// Strings a careless parser trips on: NUL, controls, bidi and BOM characters, emoji, numbers and dates as text,
/// SQL and path fragments, empty and long ones, and arbitrary unicode.
fn odd_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::sample::select(vec![
            "",
            " ",
            "\0",
            "a\0b",
            "\u{7}\u{1b}[31m",
            "\u{202e}evil",
            "\u{feff}36",
            "🙂",
            "Ω≈ç√∫",
            "\u{10ffff}",
            "36",
            " 36 ",
            "-1",
            "0",
            "-0",
            "0.001",
            "36,5",
            "1e3",
            "1e309",
            "NaN",
            "Infinity",
            "99999999999999999999999999",
            "0x24",
            "2026-02-30",
            "9999-12-31",
            "-2026-01-01",
            "2026-01-01T25:00:00Z",
            "'; DROP TABLE payers; --",
            "../../etc/passwd",
            "%00",
            "\\u0000",
            "null",
            "true",
            "[]",
            "{}",
            "+47 912 34 567",
            "+4791234567999999",
            "a@b",
            "@example.org",
            "javascript:alert(1)",
            "http://169.254.169.254/latest",
            "file:///etc/passwd",
            "http://[::1]:0/",
            "Monthly",
            "monthly",
            "Weekly",
        ])
        .prop_map(str::to_owned),
        (1usize..5_000, any::<char>()).prop_map(|(n, c)| std::iter::repeat_n(c, n).collect()),
    ]
}

/// Numbers of every kind: huge, negative, fractional, at the edges of i64 and u64, and tiny.
fn odd_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(vec![
            0.0,
            -0.0,
            0.5,
            0.99,
            1.0,
            1.001,
            36.005,
            -36.0,
            1e15,
            1e300,
            5e-324,
            9.007_199_254_740_993e15
        ])
        .prop_map(Value::from),
        prop::sample::select(vec![i64::MIN, i64::MAX, -1, 0, 1, 36, 3600, 100_000_000, i64::from(i32::MAX) + 1])
            .prop_map(Value::from),
    ]
}

/// Any JSON value, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        odd_number(),
        odd_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(odd_string(), inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A value to put where a field was: mostly scalars of the wrong or an extreme kind, sometimes a structure.
fn hostile_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => odd_number(),
        3 => odd_string().prop_map(Value::from),
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::from),
        2 => any_json(),
    ]
}

/// One change to a valid body. Fields are named by their index in the endpoint's list of paths.
#[derive(Debug, Clone)]
enum Mutation {
    /// The field gets another value.
    Set(usize, Value),
    /// The field is left out.
    Remove(usize),
    /// An unknown key beside the field.
    Extra(usize, String, Value),
    /// The field's key appears twice in the raw text, the first time with another value.
    Duplicate(usize, Value),
    /// The field is `depth` arrays (or objects) deep; `closed` false leaves them open.
    Deep(usize, usize, bool, bool),
    /// The whole body is another value (an array where an object is expected, a string, …).
    Whole(Value),
    /// The text is cut after this fraction (in thousandths) of its length.
    Cut(u16),
    /// A byte that is not UTF-8 (or a control byte) is put into the text at this fraction of its length.
    Byte(u16, u8),
}

fn mutation(fields: usize) -> impl Strategy<Value = Mutation> {
    let field = 0..fields;
    prop_oneof![
        6 => (field.clone(), hostile_value()).prop_map(|(f, v)| Mutation::Set(f, v)),
        2 => field.clone().prop_map(Mutation::Remove),
        1 => (field.clone(), odd_string(), any_json()).prop_map(|(f, k, v)| Mutation::Extra(f, k, v)),
        2 => (field.clone(), hostile_value()).prop_map(|(f, v)| Mutation::Duplicate(f, v)),
        1 => (field, 1usize..2_000, any::<bool>(), any::<bool>()).prop_map(|(f, d, o, c)| Mutation::Deep(f, d, o, c)),
        1 => any_json().prop_map(Mutation::Whole),
        1 => (0u16..1000).prop_map(Mutation::Cut),
        1 => (0u16..1000, prop::sample::select(vec![0x00, 0x0b, 0x7f, 0x80, 0xc3, 0xfe, 0xff])).prop_map(|(at, b)| Mutation::Byte(at, b)),
    ]
}

/// A marker left in the JSON where raw text replaces it afterwards.
const RAW: &str = "\u{1}payhub-fuzz-raw\u{1}";

/// The object that holds the last key of `path`, if the body still has one there.
fn parent<'a>(body: &'a mut Value, path: &[&str]) -> Option<&'a mut serde_json::Map<String, Value>> {
    let (_, ancestors) = path.split_last()?;
    let mut node = body;
    for key in ancestors {
        node = node.as_object_mut()?.get_mut(*key)?;
    }
    node.as_object_mut()
}

/// `base` with `mutations` applied, as the bytes sent.
fn mutated(base: &Value, paths: &[&[&str]], mutations: &[Mutation]) -> Vec<u8> {
    let mut body = base.clone();
    let mut raw: Vec<(String, String)> = Vec::new();
    let mut bytes: Vec<(u16, u8)> = Vec::new();
    let mut cut = None;
    for change in mutations {
        match change {
            Mutation::Set(f, value) => {
                if let (Some(object), Some(key)) = (parent(&mut body, paths[*f]), paths[*f].last()) {
                    object.insert((*key).to_owned(), value.clone());
                }
            }
            Mutation::Remove(f) => {
                if let (Some(object), Some(key)) = (parent(&mut body, paths[*f]), paths[*f].last()) {
                    object.remove(*key);
                }
            }
            Mutation::Extra(f, key, value) => {
                if let Some(object) = parent(&mut body, paths[*f]) {
                    object.insert(key.clone(), value.clone());
                }
            }
            Mutation::Duplicate(f, value) => {
                if let (Some(object), Some(key)) = (parent(&mut body, paths[*f]), paths[*f].last()) {
                    if let Some(current) = object.remove(*key) {
                        // `"key": RAW<n>` becomes `"key": <value>, "key": <current>` in the text.
                        let marker = format!("{RAW}{}", raw.len());
                        object.insert((*key).to_owned(), Value::from(marker.clone()));
                        let twice = format!("{value}, {}: {current}", Value::from(*key));
                        raw.push((Value::from(marker).to_string(), twice));
                    }
                }
            }
            Mutation::Deep(f, depth, objects, closed) => {
                if let (Some(object), Some(key)) = (parent(&mut body, paths[*f]), paths[*f].last()) {
                    let marker = format!("{RAW}{}", raw.len());
                    object.insert((*key).to_owned(), Value::from(marker.clone()));
                    let (open, close) = if *objects { ("{\"a\":", "}") } else { ("[", "]") };
                    let mut text = open.repeat(*depth);
                    text.push('1');
                    if *closed {
                        text.push_str(&close.repeat(*depth));
                    }
                    raw.push((Value::from(marker).to_string(), text));
                }
            }
            Mutation::Whole(value) => body = value.clone(),
            Mutation::Cut(at) => cut = Some(*at),
            Mutation::Byte(at, byte) => bytes.push((*at, *byte)),
        }
    }
    let mut text = body.to_string();
    // The last first: a later marker's text may hold an earlier one.
    for (marker, replacement) in raw.into_iter().rev() {
        text = text.replace(&marker, &replacement);
    }
    let mut out = text.into_bytes();
    for (at, byte) in bytes {
        let index = out.len() * usize::from(at) / 1000;
        out.insert(index, byte);
    }
    if let Some(at) = cut {
        out.truncate(out.len() * usize::from(at) / 1000);
    }
    out
}

/// The row count of every table of payhub's (storage itself: the claim is that a refusal writes nothing).
async fn row_counts(app: &TestApp) -> BTreeMap<String, i64> {
    let pool = app.state.store.pool_for_tests();
    let tables_sql = match app.backend {
        Backend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        Backend::Postgres => "SELECT CAST(tablename AS TEXT) FROM pg_tables WHERE schemaname = current_schema()",
    };
    let tables: Vec<String> = sqlx::query(tables_sql)
        .fetch_all(pool)
        .await
        .expect("tables")
        .iter()
        .map(|row| row.try_get::<String, _>(0).expect("name"))
        .collect();
    let sql = tables
        .iter()
        .map(|t| format!("SELECT '{t}', CAST(COUNT(*) AS BIGINT) FROM {t}"))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    sqlx::query(&sql)
        .fetch_all(pool)
        .await
        .expect("counts")
        .iter()
        .map(|row| (row.try_get::<String, _>(0).expect("table"), row.try_get::<i64, _>(1).expect("count")))
        .collect()
}

/// One endpoint under fuzzing: where, with which key, from which valid body, and which fields to mutate.
struct Target<'a> {
    /// The simulator whose webhooks (sent in the background for earlier, accepted cases) must have landed
    /// before a case is measured; `None` for endpoints that never reach Vipps.
    vipps: Option<&'a Vipps>,
    method: Method,
    path: String,
    key: &'a str,
    base: Value,
    fields: &'a [&'a [&'a str]],
}

/// Sends `cases()` mutated bodies to `target`; fails on a 5xx, a dropped connection (a panic in a handler) or a
/// refusal that changed a row count, naming the input (shrunk by proptest to a small one).
async fn fuzz(app: &TestApp, target: Target<'_>) {
    let handle = tokio::runtime::Handle::current();
    let strategy = prop::collection::vec(mutation(target.fields.len()), 1..4);
    let mut runner = TestRunner::new(Config { cases: cases(), failure_persistence: None, ..Config::default() });
    let outcome = runner.run(&strategy, |mutations| {
        let body = mutated(&target.base, target.fields, &mutations);
        // proptest's runner is synchronous; the tests' runtime has two worker threads, so this one may block.
        tokio::task::block_in_place(|| handle.block_on(send_one(app, &target, body)))
    });
    if let Err(error) = outcome {
        panic!("{} {}: {error}", target.method, target.path);
    }
}

/// Waits until the simulator has delivered every webhook it queued (an accepted case's payment sends
/// `payment.created` in the background, and payhub records it): what lands afterwards is not a case's doing.
async fn settled(vipps: Option<&Vipps>) {
    let Some(vipps) = vipps else { return };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let pending = sim_deliveries(vipps).await.iter().filter(|d| d["status"] == "pending").count();
        if pending == 0 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{pending} webhook deliveries still pending after 30 s");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn send_one(app: &TestApp, target: &Target<'_>, body: Vec<u8>) -> Result<(), TestCaseError> {
    let shown = String::from_utf8_lossy(&body[..body.len().min(2_000)]).into_owned();
    settled(target.vipps).await;
    let before = row_counts(app).await;
    let response = app
        .http
        .request(target.method.clone(), app.url(&target.path))
        .bearer_auth(target.key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| TestCaseError::fail(format!("no answer (a panic?): {e}; body {shown}")))?;
    let status = response.status();
    let answer = response.text().await.unwrap_or_default();
    prop_assert!(!status.is_server_error(), "{status} for body {shown}: {answer}");
    if status.is_client_error() {
        let after = row_counts(app).await;
        // By design the Payment API keeps every answer under its IdempotencyKey, a refusal too (for replay):
        // that one row is allowed, nothing else.
        let kept_answer = |t: &str, n: i64| t == "api_idempotency" && before.get(t) == Some(&(n - 1));
        let changed: Vec<_> = after.iter().filter(|(t, n)| before.get(*t) != Some(n) && !kept_answer(t, **n)).collect();
        prop_assert!(changed.is_empty(), "refused with {status} yet wrote {changed:?}; body {shown}: {answer}");
    }
    Ok(())
}

const INTENT_FIELDS: &[&[&str]] = &[
    &["SuccessURL"],
    &["FailureURL"],
    &["Payer"],
    &["Payer", "Contact"],
    &["Payer", "Contact", "SalesforceFields"],
    &["Payer", "Contact", "SalesforceFields", "FirstName"],
    &["Payer", "Contact", "SalesforceFields", "LastName"],
    &["Payer", "Contact", "SalesforceFields", "Email"],
    &["OneTime"],
    &["OneTime", "Amount"],
    &["Recurring"],
    &["Recurring", "Amount"],
    &["Recurring", "Frequency"],
    &["Recurring", "StartDate"],
    &["PaymentMethod"],
    &["PaymentMethod", "Name"],
    &["PaymentMethod", "Processor"],
    &["PaymentMethod", "Parameters"],
    &["PaymentMethod", "Parameters", "mobileNumber"],
    &["PaymentMethod", "Parameters", "TransactionText"],
    &["IdempotencyKey"],
];

// A Vipps call that outlasts its timeout is answered 502 by design; on a loaded machine the tests' 1 s timeout
// can pass, and that 502 is not what this fuzzing looks for.
on_both_backends! { with &[("PAYHUB_VIPPS_TIMEOUT_MS", "20000")];
    async fn generated_hostile_intents_get_no_5xx_and_a_refusal_writes_nothing(app) {
        let vipps = app.with_vipps().await;
        for base in [seed_intent(), recurring_intent(today(&app), "100")] {
            let target = Target { vipps: Some(&vipps), method: Method::POST, path: "/v2/PaymentIntent".into(), key: &vipps.integrator_key,
                base, fields: INTENT_FIELDS };
            fuzz(&app, target).await;
        }
    }

    async fn generated_hostile_refunds_and_recurring_changes_get_no_5xx_and_a_refusal_writes_nothing(app) {
        let vipps = app.with_vipps().await;
        let (installment_id, _) = collected(&app, &vipps).await;
        let base = json!({"InstallmentId": installment_id, "Amount": 1});
        let fields: &[&[&str]] = &[&["InstallmentId"], &["Amount"], &["IdempotencyKey"], &["Reason"]];
        fuzz(&app, Target { vipps: Some(&vipps), method: Method::POST, path: "/v2/Refund".into(), key: &vipps.integrator_key, base, fields }).await;

        let (_, recurring_id, _, _) = active_recurring(&app, &vipps, &recurring_intent(today(&app), "100")).await;
        let fields: &[&[&str]] = &[&["Amount"], &["CollectionDay"], &["Frequency"], &["EndDate"]];
        fuzz(&app, Target { vipps: Some(&vipps), method: Method::PATCH, path: format!("/v2/Recurring/{recurring_id}"),
            key: &vipps.integrator_key, base: json!({"Amount": 200}), fields }).await;
        fuzz(&app, Target { vipps: Some(&vipps), method: Method::PATCH, path: format!("/v2/Recurring/{recurring_id}"),
            key: &vipps.integrator_key, base: json!({"CollectionDay": 5}), fields }).await;
    }

    async fn generated_hostile_admin_input_gets_no_5xx_and_a_refusal_writes_nothing(app) {
        let key = app.admin_key.clone();
        let fields: &[&[&str]] = &[&["name"], &["merchant_serial_number"], &["client_key"], &["client_secret"],
            &["subscription_key"], &["is_test"], &["product_name"], &["merchant_agreement_url"], &["retry_days"],
            &["api_base_url"]];
        fuzz(&app, Target { vipps: None, method: Method::POST, path: "/admin/api/accounts".into(), key: &key,
            base: account_body("Fuzz"), fields }).await;

        let fields: &[&[&str]] = &[&["url"], &["description"], &["event_types"]];
        let base = json!({"url": "http://127.0.0.1:9/hooks", "description": "ERP", "event_types": ["paymentIntent.created"]});
        fuzz(&app, Target { vipps: None, method: Method::POST, path: "/admin/api/webhook-endpoints".into(), key: &key, base, fields }).await;

        let fields: &[&[&str]] = &[&["email"], &["password"], &["role"]];
        let base = json!({"email": "fuzz@example.org", "password": "a long password 1", "role": "finance"});
        fuzz(&app, Target { vipps: None, method: Method::POST, path: "/admin/api/users".into(), key: &key, base, fields }).await;
    }
}

#[test]
fn a_duplicate_key_mutation_puts_the_key_twice_in_the_text() {
    let base = json!({"OneTime": {"Amount": "36"}});
    let body = mutated(&base, &[&["OneTime", "Amount"]], &[Mutation::Duplicate(0, json!(-1))]);
    assert_eq!(String::from_utf8(body).unwrap(), r#"{"OneTime":{"Amount":-1, "Amount": "36"}}"#);
    let body = mutated(&base, &[&["OneTime", "Amount"]], &[Mutation::Deep(0, 3, false, true)]);
    assert_eq!(String::from_utf8(body).unwrap(), r#"{"OneTime":{"Amount":[[[1]]]}}"#);
}
