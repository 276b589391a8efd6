//! The ledger import: discover an account's ledgers, then read funds and fees from where the last run stopped:
//! closed dates through the dates endpoint (which answers only once a date is closed), then the rows after them
//! through the feed, from its stored cursor. Each page is written in one transaction with its Message, one
//! Message and Inbound Report per new row, and the position it reached (the date done, the date's page cursor,
//! the feed's cursor), so a crash at any point loses nothing and a re-run writes nothing twice.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use vipps_client::report::{Entry, Topic as WireTopic};
use vipps_client::{Client, ErrorKind};

use crate::domain::ledger::{EntrySource, Topic};
use crate::store::ledger::{self, LedgerRow, NewEntry, NewLedger, PageWritten, Position};
use crate::store::{Store, StoreError};

/// What reading one topic of one ledger did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicImport {
    /// Pages read (and written).
    pub pages: u64,
    /// Rows stored for the first time.
    pub rows_new: u64,
    /// Rows read again.
    pub rows_already: u64,
    /// Time spent waiting for Vipps (the pages on the wire).
    pub fetch: std::time::Duration,
    /// Time spent decoding the pages into rows.
    pub parse: std::time::Duration,
    /// Time spent writing.
    pub write: std::time::Duration,
}

impl TopicImport {
    fn add(&mut self, page: PageWritten, write: std::time::Duration) {
        self.pages += 1;
        self.rows_new += page.new;
        self.rows_already += page.already;
        self.write += write;
    }
}

/// Why an import stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Vipps refused or failed.
    #[error("Vipps Report API: {0}")]
    Vipps(#[from] vipps_client::Error),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another importer moved this ledger's position while this one was reading: it owns the work.
    #[error("another import of ledger {0} ({1}) is running")]
    Raced(String, &'static str),
}

/// The account's ledgers for its API sales unit (`api:<MSN>`), stored (or refreshed).
pub async fn discover(
    store: &Store,
    client: &Client,
    account_id: &str,
    msn: &str,
    now: DateTime<Utc>,
) -> Result<Vec<LedgerRow>, ImportError> {
    let handle = format!("api:{msn}");
    let report = client.report();
    let mut cursor: Option<String> = None;
    let mut found = Vec::new();
    loop {
        let page = report.ledgers(Some(&handle), cursor.as_deref()).await?;
        found.extend(page.items);
        match page.cursor.filter(|c| !c.is_empty()) {
            Some(next) if cursor.as_deref() != Some(next.as_str()) => cursor = Some(next),
            _ => break,
        }
    }
    let mut conn = store.pool().acquire().await.map_err(StoreError::from)?;
    let mut out = Vec::with_capacity(found.len());
    for l in &found {
        let row = ledger::upsert_ledger(
            &mut conn,
            account_id,
            &NewLedger {
                vipps_ledger_id: &l.ledger_id,
                recipient_handle: l.settles_for_recipient_handles.first().map_or(handle.as_str(), String::as_str),
                currency: l.currency.as_str(),
                payout_account: l.payout_bank_account.as_ref().and_then(|a| a.id.as_deref()),
                payout_scheme: l.payout_bank_account.as_ref().and_then(|a| a.scheme.as_deref()),
            },
            now,
        )
        .await?;
        out.push(row);
    }
    Ok(out)
}

fn wire(topic: Topic) -> WireTopic {
    match topic {
        Topic::Funds => WireTopic::Funds,
        Topic::Fees => WireTopic::Fees,
    }
}

/// A received row as its Message body: the fields as Vipps named them, in Vipps' order (fields this version
/// does not know are not kept). Serialised straight from the row, without building a JSON tree per row.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct EntryBody<'a> {
    psp_reference: &'a str,
    time: String,
    ledger_date: String,
    entry_type: &'a str,
    reference: Option<&'a str>,
    currency: &'a str,
    amount: i64,
    balance_before: Option<i64>,
    balance_after: Option<i64>,
    recipient_handle: Option<&'a str>,
    name: Option<&'a str>,
    message: Option<&'a str>,
    masked_phone_no: Option<&'a str>,
}

fn entry_body(e: &Entry) -> String {
    let body = EntryBody {
        psp_reference: &e.psp_reference,
        time: e.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, false),
        ledger_date: e.ledger_date.to_string(),
        entry_type: e.entry_type.as_str(),
        reference: e.reference.as_deref(),
        currency: e.currency.as_str(),
        amount: e.amount,
        balance_before: e.balance_before,
        balance_after: e.balance_after,
        recipient_handle: e.recipient_handle.as_deref(),
        name: e.name.as_deref(),
        message: e.message.as_deref(),
        masked_phone_no: e.masked_phone_no.as_deref(),
    };
    serde_json::to_string(&body).unwrap_or_default()
}

/// Reads one topic of `ledger` from its stored position: first each closed date from the one after the last
/// done (or `initial_date`), following its pages, until Vipps says a date is not closed yet (`tryLater`, or the
/// older 404); then the feed from its stored cursor for the rows after those dates, until Vipps says it is
/// caught up (`tryLater`). Dates before `initial_date` are never asked for, and the feed's rows of dates
/// already imported whole are passed over.
pub async fn import_topic(
    store: &Store,
    client: &Client,
    ledger: &LedgerRow,
    topic: Topic,
    initial_date: NaiveDate,
    clock: &crate::jobs::Clock,
) -> Result<TopicImport, ImportError> {
    let mut done = TopicImport::default();
    let report = client.report();
    let mut position = {
        let mut conn = store.pool().acquire().await.map_err(StoreError::from)?;
        read_position(&mut conn, store, &ledger.id, topic, clock()).await?
    };
    loop {
        let date = next_date(&position, initial_date);
        let started = std::time::Instant::now();
        let received = report
            .date_page_received(&ledger.vipps_ledger_id, wire(topic), date, position.page_cursor.as_deref(), true)
            .await;
        done.fetch += started.elapsed();
        let started = std::time::Instant::now();
        let page = match received.and_then(|r| r.date_page()) {
            Ok(p) if p.try_later => break,
            Ok(p) => p,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound) => break,
            Err(e) => return Err(e.into()),
        };
        let rows = Rows::of(&page.items, |_| true);
        let next_cursor = page.cursor.clone().filter(|c| page.has_more && !c.is_empty());
        let page_body = json!({
            "request": format!("/report/v2/ledgers/{}/{}/dates/{date}", ledger.vipps_ledger_id, topic.as_str()),
            "cursor": position.page_cursor,
            "items": page.items.len(),
            "hasMore": page.has_more,
            "nextCursor": next_cursor,
        })
        .to_string();
        let entries = rows.entries(topic);
        done.parse += started.elapsed();
        let mut reached = position.clone();
        match next_cursor {
            Some(cursor) => {
                reached.page_date = Some(date);
                reached.page_cursor = Some(cursor);
            }
            None => {
                reached.date_done = Some(date);
                reached.page_date = None;
                reached.page_cursor = None;
            }
        }
        let started = std::time::Instant::now();
        let written = write_page(store, ledger, topic, &position, reached, &entries, &page_body, clock()).await?;
        position = written.1;
        done.add(written.0, started.elapsed());
    }
    loop {
        let from = next_date(&position, initial_date);
        let started = std::time::Instant::now();
        let received = report
            .feed_page_received(&ledger.vipps_ledger_id, wire(topic), position.feed_cursor.as_deref(), true)
            .await;
        done.fetch += started.elapsed();
        let started = std::time::Instant::now();
        let page = received.and_then(|r| r.feed_page())?;
        if page.try_later && page.items.is_empty() && position.feed_cursor.as_deref() == Some(page.cursor.as_str()) {
            done.parse += started.elapsed();
            break;
        }
        let rows = Rows::of(&page.items, |e| e.ledger_date >= from);
        let entries = rows.entries(topic);
        let page_body = json!({
            "request": format!("/report/v2/ledgers/{}/{}/feed", ledger.vipps_ledger_id, topic.as_str()),
            "cursor": position.feed_cursor,
            "items": page.items.len(),
            "kept": entries.len(),
            "nextCursor": page.cursor,
            "tryLater": page.try_later,
        })
        .to_string();
        done.parse += started.elapsed();
        let mut reached = position.clone();
        reached.feed_cursor = Some(page.cursor.clone());
        // Rows come in booking order and a date's rows (its fees retained and payout last) all come before the
        // next date's first: a row of a later date means every date before it is whole.
        if let Some(latest) = entries.iter().map(|e| e.ledger_date).max().filter(|d| *d > from) {
            reached.date_done = latest.pred_opt().max(reached.date_done);
        }
        let started = std::time::Instant::now();
        let written = write_page(store, ledger, topic, &position, reached, &entries, &page_body, clock()).await?;
        position = written.1;
        done.add(written.0, started.elapsed());
        if page.try_later {
            break;
        }
    }
    Ok(done)
}

/// The first ledger date not imported whole: the date being paged through, else the day after the last date
/// done, never before `initial_date`.
fn next_date(position: &Position, initial_date: NaiveDate) -> NaiveDate {
    match (position.page_date, position.date_done) {
        (Some(d), _) => d,
        (None, Some(d)) => d.succ_opt().unwrap_or(d).max(initial_date),
        (None, None) => initial_date,
    }
}

/// The rows of a page to store, with what they need beyond the page itself: each row's Message body and its
/// time in UTC.
struct Rows<'a> {
    kept: Vec<(&'a Entry, String, DateTime<Utc>)>,
}

impl<'a> Rows<'a> {
    /// The rows of `items` that `keep` says to store, in order.
    fn of(items: &'a [Entry], keep: impl Fn(&Entry) -> bool) -> Rows<'a> {
        let kept = items.iter().filter(|e| keep(e)).map(|e| (e, entry_body(e), e.time.with_timezone(&Utc))).collect();
        Rows { kept }
    }

    /// The rows as the store takes them.
    fn entries(&self, topic: Topic) -> Vec<NewEntry<'_>> {
        self.kept
            .iter()
            .map(|(e, body, time)| NewEntry {
                topic,
                psp_reference: &e.psp_reference,
                entry_type: e.entry_type.as_str(),
                amount_ore: e.amount,
                balance_before_ore: e.balance_before,
                balance_after_ore: e.balance_after,
                currency: e.currency.as_str(),
                ledger_date: e.ledger_date,
                time: *time,
                reference: e.reference.as_deref(),
                recipient_handle: e.recipient_handle.as_deref(),
                payer_name: e.name.as_deref(),
                payer_message: e.message.as_deref(),
                masked_phone: e.masked_phone_no.as_deref(),
                body,
            })
            .collect()
    }
}

async fn read_position(
    conn: &mut sqlx::AnyConnection,
    store: &Store,
    ledger_id: &str,
    topic: Topic,
    now: DateTime<Utc>,
) -> Result<Position, ImportError> {
    // Outside a write transaction the lock is only a read (SQLite) or released at once (PostgreSQL's
    // autocommit); the position is checked again under the lock before anything is written.
    Ok(ledger::lock_position(conn, store.backend(), ledger_id, topic, now).await?)
}

/// Writes one page: under the position's lock, checks that nobody moved it since it was read (else
/// [`ImportError::Raced`]), stores the page's Message and new rows, and `reached` (the position after the page,
/// its next `seq` moved on by the rows stored), in one transaction.
#[allow(clippy::too_many_arguments)]
async fn write_page(
    store: &Store,
    ledger: &LedgerRow,
    topic: Topic,
    read: &Position,
    reached: Position,
    entries: &[NewEntry<'_>],
    page_body: &str,
    now: DateTime<Utc>,
) -> Result<(PageWritten, Position), ImportError> {
    let mut tx = store.begin_write().await?;
    let mut position = ledger::lock_position(&mut tx, store.backend(), &ledger.id, topic, now).await?;
    if position != *read {
        return Err(ImportError::Raced(ledger.vipps_ledger_id.clone(), topic.as_str()));
    }
    ledger::insert_page_message(&mut tx, &ledger.vipps_ledger_id, page_body, now).await?;
    let written = ledger::insert_entries(&mut tx, ledger, EntrySource::Api, entries, &mut position, now).await?;
    let position = Position { next_seq: position.next_seq, ..reached };
    ledger::set_position(&mut tx, &ledger.id, topic, &position, now).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok((written, position))
}
