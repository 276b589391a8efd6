//! Report API paging and the resumable feed stream. The simulator has no Report API yet, so a
//! small canned server plays it, following the documented paging rules (§6.5 of the reference).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Json;
use futures::StreamExt;
use serde_json::{json, Value};
use vipps_client::report::{DateReport, EntryType, FeedOptions, Topic};
use vipps_client::{Client, ErrorKind, RetryPolicy};
use vipps_sim::Merchant;

fn row(psp: &str, amount: i64, gdpr: bool) -> Value {
    let mut row = json!({"pspReference": psp, "time": "2026-11-01T10:00:00.000000Z", "ledgerDate": "2026-11-01",
        "entryType": "capture", "reference": "order-1", "currency": "NOK", "amount": amount,
        "balanceBefore": 0, "balanceAfter": amount, "recipientHandle": "api:123456"});
    if gdpr {
        row["name"] = json!("Ola Nordmann");
    }
    row
}

#[derive(Default)]
struct Canned {
    caught_up_calls: AtomicUsize,
}

async fn dates(
    Path((ledger, topic, date)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> axum::response::Response {
    if ledger != "302321" || topic != "funds" {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"type": "about:blank", "title": "No such ledgerId", "status": 404})),
        )
            .into_response();
    }
    let gdpr = q.get("includeGDPRSensitiveData").is_some_and(|v| v == "true");
    match (date.as_str(), q.get("cursor").map(String::as_str)) {
        ("2026-11-01", None) => {
            Json(json!({"items": [row("a", 100, gdpr), row("b", 200, gdpr)], "cursor": "p2", "hasMore": true}))
                .into_response()
        }
        ("2026-11-01", Some("p2")) => Json(json!({"items": [], "cursor": "p3", "hasMore": true})).into_response(),
        ("2026-11-01", Some("p3")) => Json(json!({"items": [row("c", -50, gdpr)], "hasMore": false})).into_response(),
        _ => Json(json!({"items": [], "tryLater": true})).into_response(),
    }
}

async fn feed(
    State(canned): State<Arc<Canned>>,
    Path((ledger, _topic)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> axum::response::Response {
    if ledger != "302321" {
        return (StatusCode::NOT_FOUND, Json(json!({"title": "No such ledgerId", "status": 404}))).into_response();
    }
    let body = match q.get("cursor").map(String::as_str) {
        None => json!({"items": [row("r1", 100, false), row("r2", 200, false)], "cursor": "c2", "tryLater": false}),
        Some("c2") => json!({"items": [row("r3", 300, false)], "cursor": "c3", "tryLater": false}),
        Some("c3") if canned.caught_up_calls.fetch_add(1, Ordering::SeqCst) == 0 => {
            json!({"items": [], "cursor": "c3", "tryLater": true})
        }
        Some("c3") => json!({"items": [row("r4", 400, false)], "cursor": "c4", "tryLater": true}),
        Some("c4") => json!({"items": [], "cursor": "c4", "tryLater": true}),
        Some(_) => json!({"items": [], "cursor": "", "tryLater": true}),
    };
    Json(body).into_response()
}

async fn start() -> Client {
    let app = axum::Router::new()
        .route(
            "/accesstoken/get",
            post(|| async { Json(json!({"token_type": "Bearer", "expires_in": "86400", "access_token": "t"})) }),
        )
        .route(
            "/settlement/v1/ledgers",
            get(|| async {
                Json(json!({"items": [{"ledgerId": "302321", "currency": "NOK", "settlesForRecipientHandles": ["api:123456"]}], "cursor": ""}))
            }),
        )
        .route("/report/v2/ledgers/{ledger}/{topic}/dates/{date}", get(dates))
        .route("/report/v2/ledgers/{ledger}/{topic}/feed", get(feed))
        .with_state(Arc::new(Canned::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    common::client_for(&format!("http://{addr}"), &Merchant::random("123456"), |c| c.retry = RetryPolicy::none())
}

fn date(s: &str) -> chrono::NaiveDate {
    s.parse().unwrap()
}

#[tokio::test]
async fn a_closed_date_is_read_across_pages_and_an_open_one_says_try_later() {
    let client = start().await;
    let ledgers = client.report().ledgers(Some("api:123456"), None).await.unwrap();
    assert_eq!(ledgers.items[0].ledger_id, "302321");

    match client.report().by_date("302321", Topic::Funds, date("2026-11-01"), true).await.unwrap() {
        DateReport::Ready(rows) => {
            let ids: Vec<_> = rows.iter().map(|r| r.psp_reference.as_str()).collect();
            assert_eq!(ids, ["a", "b", "c"], "an empty page with hasMore must not end the date");
            assert_eq!(rows[2].amount, -50);
            assert_eq!(rows[0].entry_type, EntryType::Capture);
            assert_eq!(rows[2].name.as_deref(), Some("Ola Nordmann"), "GDPR flag repeated on every page");
        }
        DateReport::TryLater => panic!("date is closed"),
    }
    let open = client.report().by_date("302321", Topic::Funds, date("2026-11-23"), false).await.unwrap();
    assert_eq!(open, DateReport::TryLater);
    let err = client.report().by_date("999", Topic::Funds, date("2026-11-01"), false).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn the_feed_stream_pages_until_caught_up_and_resumes_from_a_stored_cursor() {
    let client = start().await;
    let mut options = FeedOptions::default();
    options.stop_when_caught_up = true;
    let pages: Vec<_> = client.report().feed("302321", Topic::Funds, options).collect().await;
    let pages: Vec<_> = pages.into_iter().map(Result::unwrap).collect();
    let summary: Vec<(usize, &str, bool)> =
        pages.iter().map(|p| (p.items.len(), p.cursor.as_str(), p.try_later)).collect();
    assert_eq!(summary, [(2, "c2", false), (1, "c3", false), (0, "c3", true)]);

    // Resume later from the stored cursor: new rows have arrived; after tryLater the stream waits.
    let mut options = FeedOptions::resume("c3");
    options.poll_interval = Duration::from_millis(100);
    let started = Instant::now();
    let stream = client.report().feed("302321", Topic::Funds, options);
    let pages: Vec<_> = stream.take(2).collect().await;
    let first = pages[0].as_ref().unwrap();
    assert_eq!(first.items[0].psp_reference, "r4");
    assert_eq!((first.cursor.as_str(), first.try_later), ("c4", true));
    let second = pages[1].as_ref().unwrap();
    assert_eq!((second.items.len(), second.cursor.as_str()), (0, "c4"));
    assert!(started.elapsed() >= Duration::from_millis(100), "no wait after tryLater");
}

#[tokio::test]
async fn a_feed_error_is_yielded_once_and_ends_the_stream() {
    let client = start().await;
    let pages: Vec<_> = client.report().feed("999", Topic::Funds, FeedOptions::default()).collect().await;
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].as_ref().unwrap_err().kind(), ErrorKind::NotFound);

    let pages: Vec<_> = client.report().feed("302321", Topic::Funds, FeedOptions::resume("bogus")).collect().await;
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].as_ref().unwrap_err().kind(), ErrorKind::UnexpectedBody, "an empty cursor is refused");
}
