//! Report API against the simulator: ledgers, the funds feed resumed from a stored cursor, and a
//! closed ledger date with fees and payout.
#![allow(clippy::unwrap_used)]

mod common;

use common::{unique, TestEnv};
use futures::StreamExt;
use vipps_client::epayment::{CreatePaymentRequest, Reference};
use vipps_client::report::{DateReport, Entry, EntryType, FeedOptions, Topic};
use vipps_client::{Amount, Client, ErrorKind, IdempotencyKey};

async fn captured_payment(env: &TestEnv, client: &Client, amount: i64) -> Reference {
    let reference = Reference::parse(&unique("report")).unwrap();
    let request = CreatePaymentRequest::web_redirect(Amount::nok(amount), reference.clone(), "https://example.com/r");
    client.epayment().create(&request, &IdempotencyKey::random()).await.unwrap();
    env.approve(reference.as_str()).await;
    client.epayment().capture(&reference, &Amount::nok(amount), &IdempotencyKey::random()).await.unwrap();
    reference
}

async fn caught_up(client: &Client, ledger: &str, topic: Topic, cursor: Option<String>) -> (Vec<Entry>, String) {
    let mut options = match cursor {
        Some(cursor) => FeedOptions::resume(cursor),
        None => FeedOptions::default(),
    };
    options.stop_when_caught_up = true;
    let pages: Vec<_> = client.report().feed(ledger, topic, options).collect().await;
    let mut rows = Vec::new();
    let mut last = String::new();
    for page in pages {
        let page = page.unwrap();
        rows.extend(page.items);
        last = page.cursor;
    }
    (rows, last)
}

#[tokio::test]
async fn the_funds_feed_resumes_from_a_stored_cursor_and_a_closed_date_has_fees_and_payout() {
    // Start at noon in Oslo so that all bookings fall on one ledger date.
    let noon = "2026-11-20T11:00:00Z".parse().unwrap();
    let env = TestEnv::start_with(vipps_sim::SimConfig { clock_start: Some(noon), ..Default::default() }).await;
    let client = env.client();
    let msn = env.merchant().msn.clone();

    let ledgers = client.report().ledgers(Some(&format!("api:{msn}")), None).await.unwrap();
    assert_eq!(ledgers.items.len(), 1);
    let ledger = ledgers.items[0].ledger_id.clone();
    assert_eq!(ledgers.items[0].settles_for_recipient_handles, [format!("api:{msn}")]);

    let first = captured_payment(&env, &client, 10000).await;
    client.epayment().refund(&first, &Amount::nok(2500), &IdempotencyKey::random()).await.unwrap();
    let (rows, cursor) = caught_up(&client, &ledger, Topic::Funds, None).await;
    let summary: Vec<(EntryType, i64)> = rows.iter().map(|r| (r.entry_type.clone(), r.amount)).collect();
    assert_eq!(summary, [(EntryType::Capture, 10000), (EntryType::Refund, -2500)]);
    assert_eq!(rows[0].reference.as_deref(), Some(first.as_str()));
    assert_eq!(rows[1].balance_after, Some(7500));

    // Later: resume from the stored cursor and get only what is new.
    let second = captured_payment(&env, &client, 20000).await;
    let (rows, _) = caught_up(&client, &ledger, Topic::Funds, Some(cursor)).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].reference.as_deref(), Some(second.as_str()));

    let day = rows[0].ledger_date;
    assert_eq!(day, chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap());
    assert_eq!(client.report().by_date(&ledger, Topic::Funds, day, false).await.unwrap(), DateReport::TryLater);
    env.sim.advance(2 * 86_400).await;
    let DateReport::Ready(funds) = client.report().by_date(&ledger, Topic::Funds, day, false).await.unwrap() else {
        panic!("the date should be closed");
    };
    let types: Vec<EntryType> = funds.iter().map(|r| r.entry_type.clone()).collect();
    assert_eq!(types[..3], [EntryType::Capture, EntryType::Refund, EntryType::Capture]);
    assert!(types.contains(&EntryType::FeesRetained), "{types:?}");
    assert_eq!(types.last(), Some(&EntryType::PayoutScheduled));
    assert_eq!(funds.last().unwrap().balance_after, Some(0));
    assert_eq!(funds.iter().map(|r| r.amount).sum::<i64>(), 0, "everything paid out or retained");

    let DateReport::Ready(fees) = client.report().by_date(&ledger, Topic::Fees, day, false).await.unwrap() else {
        panic!("the date should be closed");
    };
    let capture_fees = fees.iter().filter(|r| r.entry_type == EntryType::CaptureFee).count();
    assert_eq!(capture_fees, 2);

    let err = client.report().by_date("no-such-ledger", Topic::Funds, day, false).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}
