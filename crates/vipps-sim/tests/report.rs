//! Report API: ledgers, funds and fees by date and by feed, built from captures, refunds, fees and
//! payouts across Norwegian ledger days on the virtual clock; checked against the 2023 swagger.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{DateTime, Utc};
use common::openapi::load;
use common::{config_with, payment_body, unique_ref, Resp, TestSim};
use reqwest::Method;
use serde_json::{json, Value};

const REPORT_SPEC: &str = "vipps-report-api/swagger.yaml";
const DATES: &str = "/report/v2/ledgers/{ledgerId}/{topic}/dates/{ledgerDate}";
const FEED: &str = "/report/v2/ledgers/{ledgerId}/{topic}/feed";

/// Monday 2 March 2026, 09:00 in Oslo (UTC+1).
fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T08:00:00Z").unwrap().with_timezone(&Utc)
}

async fn sim() -> TestSim {
    TestSim::start_with(config_with(|c| c.clock_start = Some(start()))).await
}

fn amount(v: i64) -> Value {
    json!({"modificationAmount": {"currency": "NOK", "value": v}})
}

/// The fee model documented in the README: 1.75 % rounded half up + 100 øre per capture.
fn fee(v: i64) -> i64 {
    (v * 175 + 5_000) / 10_000 + 100
}

/// Creates and approves a payment of `value` øre; returns its reference.
async fn authorized(t: &TestSim, value: i64) -> String {
    let reference = unique_ref("rep");
    let r = t.post("/epayment/v1/payments", &payment_body(&reference, value)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = t.control(Method::POST, &format!("/_sim/payments/{reference}/approve"), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    reference
}

/// Captures `value` and returns the operation's pspReference.
async fn capture(t: &TestSim, reference: &str, value: i64) -> String {
    let r = t.post(&format!("/epayment/v1/payments/{reference}/capture"), &amount(value)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["pspReference"].as_str().unwrap().to_owned()
}

async fn refund(t: &TestSim, reference: &str, value: i64) -> String {
    let r = t.post(&format!("/epayment/v1/payments/{reference}/refund"), &amount(value)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["pspReference"].as_str().unwrap().to_owned()
}

async fn ledger_id(t: &TestSim) -> String {
    let r = t.get("/settlement/v1/ledgers").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    v["items"][0]["ledgerId"].as_str().unwrap().to_owned()
}

fn items(r: &Resp) -> Vec<Value> {
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["items"].as_array().unwrap().clone()
}

fn summary(rows: &[Value]) -> Vec<(String, i64)> {
    rows.iter().map(|e| (e["entryType"].as_str().unwrap().to_owned(), e["amount"].as_i64().unwrap())).collect()
}

/// Every row's balanceBefore is the previous row's balanceAfter, and after = before + amount.
fn assert_running_balance(rows: &[Value], opening: i64) -> i64 {
    let mut balance = opening;
    for e in rows {
        assert_eq!(e["balanceBefore"].as_i64().unwrap(), balance, "{e}");
        balance += e["amount"].as_i64().unwrap();
        assert_eq!(e["balanceAfter"].as_i64().unwrap(), balance, "{e}");
    }
    balance
}

#[tokio::test]
async fn captures_refunds_fees_and_payouts_become_ledger_rows_across_two_norwegian_days() {
    let t = sim().await;
    let ledger = ledger_id(&t).await;
    let funds_feed = format!("/report/v2/ledgers/{ledger}/funds/feed");
    let fees_feed = format!("/report/v2/ledgers/{ledger}/fees/feed");

    // Day 1 (2026-03-02): two partial captures and a refund on A, one capture on B.
    let a = authorized(&t, 10_000).await;
    let b = authorized(&t, 20_000).await;
    let c1 = capture(&t, &a, 6_000).await;
    let c2 = capture(&t, &a, 4_000).await;
    let r1 = refund(&t, &a, 3_000).await;
    let c3 = capture(&t, &b, 20_000).await;

    // The feed shows the day's movements at once; the date itself is still open.
    let r = t.get(&funds_feed).await;
    let day1_live = items(&r);
    assert_eq!(
        summary(&day1_live),
        [("capture".into(), 6_000), ("capture".into(), 4_000), ("refund".into(), -3_000), ("capture".into(), 20_000)]
    );
    let psps: Vec<&str> = day1_live.iter().map(|e| e["pspReference"].as_str().unwrap()).collect();
    assert_eq!(psps, [c1.as_str(), c2.as_str(), r1.as_str(), c3.as_str()]);
    assert_eq!(day1_live[0]["reference"], a.as_str());
    assert_eq!(day1_live[3]["reference"], b.as_str());
    assert!(day1_live.iter().all(|e| e["recipientHandle"] == "api:123456" && e["ledgerDate"] == "2026-03-02"));
    assert_running_balance(&day1_live, 0);
    let v = r.json();
    assert_eq!(v["tryLater"], true);
    let stored_cursor = v["cursor"].as_str().unwrap().to_owned();
    assert!(!stored_cursor.is_empty());
    let open = t.get(&format!("/report/v2/ledgers/{ledger}/funds/dates/2026-03-02")).await;
    assert_eq!(open.status, 200);
    assert_eq!(open.json(), json!({"items": [], "hasMore": false, "tryLater": true}));

    // Fees appear per capture with the capture's pspReference, no fee on the refund.
    let fees_live = items(&t.get(&fees_feed).await);
    assert_eq!(
        summary(&fees_live),
        [
            ("capture-fee".into(), -fee(6_000)),
            ("capture-fee".into(), -fee(4_000)),
            ("capture-fee".into(), -fee(20_000))
        ]
    );
    assert_eq!(fees_live[2]["pspReference"], c3.as_str());

    // 23:00 UTC is midnight in Oslo: day 1 closes.
    t.advance(15 * 3600 + 60).await;
    let day_fees = fee(6_000) + fee(4_000) + fee(20_000);
    let net = 27_000 - day_fees;
    let day1 = items(&t.get(&format!("/report/v2/ledgers/{ledger}/funds/dates/2026-03-02")).await);
    assert_eq!(&day1[..4], &day1_live[..], "rows never change once returned");
    assert_eq!(summary(&day1[4..]), [("fees-retained".into(), -day_fees), ("payout-scheduled".into(), -net)]);
    assert_eq!(assert_running_balance(&day1, 0), 0);
    assert!(day1[4].get("recipientHandle").is_none() && day1[5].get("recipientHandle").is_none());
    assert!(day1[5]["reference"].as_str().unwrap().starts_with("Vipps utbet. "));
    assert_eq!(day1[5]["ledgerDate"], "2026-03-02");
    assert_eq!(day1[5]["time"], "2026-03-02T23:00:00.000000Z");
    let fees1 = items(&t.get(&format!("/report/v2/ledgers/{ledger}/fees/dates/2026-03-02")).await);
    assert_eq!(fees1.len(), 4);
    assert_eq!(summary(&fees1[3..]), [("fees-retained".into(), day_fees)]);
    assert_eq!(assert_running_balance(&fees1, 0), 0);
    assert_eq!(fees1[3]["pspReference"], day1[4]["pspReference"], "both fees-retained rows are one movement");

    // The feed resumes exactly after the stored cursor: only the closing rows are new.
    let r = t.get(&format!("{funds_feed}?cursor={stored_cursor}")).await;
    assert_eq!(items(&r), day1[4..].to_vec());
    let end_cursor = r.json()["cursor"].as_str().unwrap().to_owned();
    assert_eq!(r.json()["tryLater"], true);
    let again = t.get(&format!("{funds_feed}?cursor={end_cursor}")).await;
    assert_eq!(again.json(), json!({"items": [], "cursor": end_cursor, "tryLater": true}));

    // Day 2: a refund larger than the day's income leaves a negative balance and no payout.
    refund(&t, &b, 5_000).await;
    let day2_open = t.get(&format!("/report/v2/ledgers/{ledger}/funds/dates/2026-03-03")).await;
    assert_eq!(day2_open.json()["tryLater"], true);
    t.advance(86_400).await;
    let day2 = items(&t.get(&format!("/report/v2/ledgers/{ledger}/funds/dates/2026-03-03")).await);
    assert_eq!(summary(&day2), [("refund".into(), -5_000)]);
    assert_eq!(assert_running_balance(&day2, 0), -5_000);
    let fees2 = t.get(&format!("/report/v2/ledgers/{ledger}/fees/dates/2026-03-03")).await;
    assert_eq!(fees2.json(), json!({"items": [], "hasMore": false, "tryLater": false}));

    // Reading the whole feed again from the start gives the same rows, byte for byte.
    let all = items(&t.get(&funds_feed).await);
    assert_eq!(all.len(), 7);
    assert_eq!(&all[..6], &day1[..]);
    assert_eq!(all[6], day2[0]);
    assert_eq!(t.get(&funds_feed).await.text, t.get(&funds_feed).await.text);
}

#[tokio::test]
async fn recurring_charges_are_booked_like_captures_under_their_order_id_or_external_id() {
    let t = sim().await;
    let ledger = ledger_id(&t).await;
    let draft = json!({
        "pricing": {"type": "LEGACY", "amount": 19_900, "currency": "NOK"},
        "interval": {"unit": "MONTH", "count": 1},
        "merchantRedirectUrl": "https://example.com/redirect",
        "merchantAgreementUrl": "https://example.com/agreement",
        "phoneNumber": "4791234567",
        "productName": "Magazine",
        "initialCharge": {"amount": 19_900, "description": "First month", "transactionType": "DIRECT_CAPTURE", "orderId": "rep-initial-0001"}
    });
    let r = t.post("/recurring/v3/agreements", &draft).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json()["agreementId"].as_str().unwrap().to_owned();
    let r = t.control(Method::POST, &format!("/_sim/agreements/{id}/accept"), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rows = items(&t.get(&format!("/report/v2/ledgers/{ledger}/funds/feed")).await);
    assert_eq!(summary(&rows), [("capture".into(), 19_900)]);
    assert_eq!(rows[0]["reference"], "rep-initial-0001");

    // A charge with an externalId, charged on its due date: the row carries the externalId.
    let charge = json!({"amount": 19_900, "transactionType": "DIRECT_CAPTURE", "description": "April",
                        "due": "2026-03-03", "retryDays": 0, "externalId": "ext-april-42"});
    let r = t.post(&format!("/recurring/v3/agreements/{id}/charges"), &charge).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let charge_id = r.json()["chargeId"].as_str().unwrap().to_owned();
    t.advance(86_400).await;
    let c = t.get(&format!("/recurring/v3/agreements/{id}/charges/{charge_id}")).await.json();
    assert_eq!(c["status"], "CHARGED", "{c}");
    let rows = items(&t.get(&format!("/report/v2/ledgers/{ledger}/funds/feed")).await);
    let last = rows.last().unwrap();
    assert_eq!((last["entryType"].as_str().unwrap(), last["amount"].as_i64().unwrap()), ("capture", 19_900));
    assert_eq!(last["reference"], "ext-april-42");
    assert_eq!(last["ledgerDate"], "2026-03-03", "charged at 00:00 Norwegian time on the due date");
    let day1 = items(&t.get(&format!("/report/v2/ledgers/{ledger}/funds/dates/2026-03-02")).await);
    assert_eq!(
        summary(&day1),
        [
            ("capture".into(), 19_900),
            ("fees-retained".into(), -fee(19_900)),
            ("payout-scheduled".into(), -(19_900 - fee(19_900)))
        ]
    );
}

#[tokio::test]
async fn a_date_with_more_than_1000_rows_comes_in_pages_with_has_more_and_a_cursor() {
    let t = sim().await;
    let ledger = ledger_id(&t).await;
    let reference = authorized(&t, 1_001 * 1_000).await;
    let t = std::sync::Arc::new(t);
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (t, reference) = (t.clone(), reference.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < 1_001 {
                capture(&t, &reference, 1_000).await;
                i += 8;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    t.advance(86_400).await;

    // By date: 1001 captures + fees-retained + payout-scheduled = 1003 rows in two pages.
    let path = format!("/report/v2/ledgers/{ledger}/funds/dates/2026-03-02");
    let first = t.get(&path).await;
    let p1 = items(&first);
    let v = first.json();
    assert_eq!(p1.len(), 1000);
    assert_eq!(v["hasMore"], true);
    assert_eq!(v["tryLater"], false);
    let cursor = v["cursor"].as_str().unwrap();
    let second = t.get(&format!("{path}?cursor={cursor}")).await;
    let p2 = items(&second);
    assert_eq!(p2.len(), 3);
    assert_eq!(second.json()["hasMore"], false);
    assert!(second.json().get("cursor").is_none());
    assert_eq!(summary(&p2[1..])[1].0, "payout-scheduled");
    let mut all = p1.clone();
    all.extend(p2);
    assert_eq!(assert_running_balance(&all, 0), 0);
    // The same cursor gives the same page again.
    assert_eq!(t.get(&format!("{path}?cursor={cursor}")).await.text, second.text);

    // Feed: 1000, then the rest with tryLater at the end.
    let feed = format!("/report/v2/ledgers/{ledger}/funds/feed");
    let f1 = t.get(&feed).await;
    assert_eq!(items(&f1).len(), 1000);
    assert_eq!(f1.json()["tryLater"], false);
    let f2 = t.get(&format!("{feed}?cursor={}", f1.json()["cursor"].as_str().unwrap())).await;
    assert_eq!(items(&f2), all[1000..].to_vec());
    assert_eq!(f2.json()["tryLater"], true);
}

#[tokio::test]
async fn payments_straight_to_a_vipps_number_never_reach_the_api_sales_units_report() {
    let t = sim().await;
    let ledger = ledger_id(&t).await;
    let a = authorized(&t, 5_000).await;
    capture(&t, &a, 5_000).await;
    let r = t
        .control(
            Method::POST,
            "/_sim/vipps-number-payments",
            Some(&json!({"vippsNumber": "57860", "amount": 12_300, "reference": "lunsj-1", "name": "Ola Nordmann",
                          "message": "Lunsj", "phoneNumber": "4791235678"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let booked = r.json();
    assert_eq!(booked["recipientHandle"], "NO:57860");
    assert_eq!(booked["entry"]["amount"], 12_300);
    assert_eq!(booked["entry"]["maskedPhoneNo"], "xxxx 5678");
    let vm_ledger = booked["ledgerId"].as_str().unwrap().to_owned();
    assert_ne!(vm_ledger, ledger);

    // The API sales unit's keys see one ledger, its own; the number's ledger is not theirs.
    let r = t.get("/settlement/v1/ledgers?settlesForRecipientHandles=NO:57860").await;
    assert_eq!(r.json()["items"], json!([]));
    let r = t.get("/settlement/v1/ledgers?settlesForRecipientHandles=api:123456").await;
    assert_eq!(r.json()["items"][0]["settlesForRecipientHandles"], json!(["api:123456"]));
    let r = t.get(&format!("/report/v2/ledgers/{vm_ledger}/funds/feed")).await;
    assert_eq!(r.status, 404, "{}", r.text);
    let rows = items(&t.get(&format!("/report/v2/ledgers/{ledger}/funds/feed?includeGDPRSensitiveData=true")).await);
    assert_eq!(summary(&rows), [("capture".into(), 5_000)]);
    assert!(rows.iter().all(|e| e.get("maskedPhoneNo").is_none() && e.get("name").is_none()));
    t.advance(86_400).await;
    let day = items(&t.get(&format!("/report/v2/ledgers/{ledger}/funds/dates/2026-03-02")).await);
    assert!(day.iter().all(|e| e["amount"] != 12_300 && e["recipientHandle"] != "NO:57860"));

    let list = t.control(Method::GET, "/_sim/vipps-number-payments", None).await.json();
    assert_eq!(list["ledgers"][0]["balance"], 12_300);
    let bad = t
        .control(Method::POST, "/_sim/vipps-number-payments", Some(&json!({"vippsNumber": "5x", "amount": 100})))
        .await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn report_calls_need_a_valid_token_and_only_reach_the_callers_own_ledger() {
    let t = sim().await;
    let ledger = ledger_id(&t).await;
    let feed = format!("{}/report/v2/ledgers/{ledger}/funds/feed", t.base);

    let r = common::send(t.http.get(&feed).header("Ocp-Apim-Subscription-Key", &t.merchant.subscription_key)).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json(), json!({"code": "Unauthorized", "message": "Please check your API keys"}));
    let r = common::send(
        t.http.get(&feed).bearer_auth("nope").header("Ocp-Apim-Subscription-Key", &t.merchant.subscription_key),
    )
    .await;
    assert_eq!(r.status, 401);
    // No Merchant-Serial-Number is needed on the Report API.
    let r = common::send(
        t.http.get(&feed).bearer_auth(&t.token).header("Ocp-Apim-Subscription-Key", &t.merchant.subscription_key),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // The other merchant's ledger is "not found", not forbidden.
    let other = t.sim.merchants()[1].clone();
    let other_token = t.token_for(&other).await;
    let r = common::send(
        t.http.get(&feed).bearer_auth(&other_token).header("Ocp-Apim-Subscription-Key", &other.subscription_key),
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["detail"], "No such ledgerId");

    for (path, status) in [
        (format!("/report/v2/ledgers/{ledger}/taxes/feed"), 400),
        (format!("/report/v2/ledgers/{ledger}/funds/dates/2026-3-x"), 400),
        (format!("/report/v2/ledgers/{ledger}/funds/feed?cursor=garbage%%%"), 400),
        (format!("/report/v2/ledgers/{ledger}/funds/feed?cursor=ZjF8MXwy"), 400),
        (format!("/report/v2/ledgers/{ledger}/funds/feed?includeGDPRSensitiveData=yes"), 400),
        (format!("/report/v2/ledgers/{ledger}/fees/feed?cursor={}", feed_cursor_for(&ledger, "funds", 0)), 400),
        (format!("/report/v2/ledgers/{ledger}/funds/feed?cursor={}", feed_cursor_for(&ledger, "funds", 5)), 400),
        ("/settlement/v1/ledgers?cursor=abc".to_owned(), 400),
    ] {
        let r = t.get(&path).await;
        assert_eq!(r.status, status, "{path}: {}", r.text);
        let v = r.json();
        assert_eq!(v["status"], status, "{path}");
        assert!(v["type"].is_string() && v["title"].is_string() && v["detail"].is_string());
        assert_eq!(r.headers["content-type"], "application/problem+json");
    }
}

/// A feed cursor as the simulator writes it (only to show forged positions are refused).
fn feed_cursor_for(ledger: &str, topic: &str, pos: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("f1|{ledger}|{topic}|{pos}"))
}

#[tokio::test]
async fn report_responses_match_the_2023_swagger_with_payout_scheduled_read_as_scheduled_for_payout() {
    let Some(spec) = load(REPORT_SPEC) else { return };
    let t = sim().await;
    let ledger = ledger_id(&t).await;
    let a = authorized(&t, 10_000).await;
    capture(&t, &a, 10_000).await;
    refund(&t, &a, 1_000).await;

    let ledgers = t.get("/settlement/v1/ledgers").await;
    spec.assert_valid("getLedgers", &spec.response_schema("/settlement/v1/ledgers", "get", "200"), &ledgers.json());
    let open = t.get(&format!("/report/v2/ledgers/{ledger}/funds/dates/2026-03-02")).await;
    spec.assert_valid("open date", &spec.response_schema(DATES, "get", "200"), &open.json());
    t.advance(86_400).await;

    let mut seen = std::collections::BTreeSet::new();
    for topic in ["funds", "fees"] {
        for path in [
            format!("/report/v2/ledgers/{ledger}/{topic}/dates/2026-03-02"),
            format!("/report/v2/ledgers/{ledger}/{topic}/feed"),
        ] {
            let r = t.get(&path).await;
            let mut v = r.json();
            for e in v["items"].as_array_mut().unwrap() {
                seen.insert(e["entryType"].as_str().unwrap().to_owned());
                // Current name (reference §6.4); the 2023 file still lists the old one.
                if e["entryType"] == "payout-scheduled" {
                    e["entryType"] = json!("scheduled-for-payout");
                }
            }
            let op = if path.ends_with("feed") { FEED } else { DATES };
            spec.assert_valid(&path, &spec.response_schema(op, "get", "200"), &v);
        }
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["capture", "capture-fee", "fees-retained", "payout-scheduled", "refund"]
    );

    let unauth = common::send(t.http.get(format!("{}/settlement/v1/ledgers", t.base))).await;
    assert_eq!(unauth.status, 401);
    spec.assert_valid("401", &spec.response_schema(DATES, "get", "401"), &unauth.json());
    let missing = t.get("/report/v2/ledgers/999/funds/feed").await;
    assert_eq!(missing.status, 404);
    spec.assert_valid("problem", &spec.component("Problem"), &missing.json());
}
