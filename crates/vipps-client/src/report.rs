//! Report API v2: ledgers, funds and fees (`/settlement/v1`, `/report/v2`). Production only.
//!
//! * [`Report::ledgers`]: the ledgers this key can see.
//! * [`Report::date_page`] / [`Report::by_date`]: the rows of one closed ledger date.
//! * [`Report::feed`]: a stream of rows from a stored cursor, waiting whenever Vipps says `tryLater`.

use std::time::Duration;

use futures::Stream;
use http::Method;
use serde::Deserialize;

use crate::client::{CallOptions, Client};
use crate::error::Error;
use crate::transport::ApiCall;
use crate::wire::{null_as_default, timestamp, wire_enum, Currency};

wire_enum! {
    /// Kind of ledger row. New kinds appear without notice: interpret unknown ones by the sign
    /// of `amount`.
    pub enum EntryType {
        /// A capture (+).
        Capture => "capture",
        /// A refund (−).
        Refund => "refund",
        /// Fees kept from the payout (− on funds, + on fees).
        FeesRetained => "fees-retained",
        /// A payout was scheduled (−); the last row of a date with a payout.
        PayoutScheduled => "payout-scheduled",
        /// 2023 name of `payout-scheduled`.
        ScheduledForPayout => "scheduled-for-payout",
        /// A payout was aborted (+).
        PayoutAborted => "payout-aborted",
        /// A disputed capture was retained (−).
        RetainedDisputedCapture => "retained-disputed-capture",
        /// A disputed capture was returned (+).
        ReturnedDisputedCapture => "returned-disputed-capture",
        /// A correction (±).
        Correction => "correction",
        /// The merchant covered a negative balance (+).
        TopUp => "top-up",
        /// A credit note (±).
        CreditNote => "credit-note",
        /// The fee of a capture (− on fees).
        CaptureFee => "capture-fee",
        /// Fees invoiced (gross settlement).
        FeesInvoiced => "fees-invoiced",
    }
}

/// Which account of a ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Money in and out.
    Funds,
    /// Fees.
    Fees,
}

impl Topic {
    fn as_str(self) -> &'static str {
        match self {
            Topic::Funds => "funds",
            Topic::Fees => "fees",
        }
    }
}

/// A `{scheme, id}` pair (bank account, organisation).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct SchemeId {
    /// E.g. `BBAN:NO`, `business:NO:ORG`.
    #[serde(default)]
    pub scheme: Option<String>,
    /// The number.
    #[serde(default)]
    pub id: Option<String>,
}

/// A sales unit settled by a ledger.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SalesUnit {
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// `api:<MSN>`, `NO:<number>`, …
    #[serde(default)]
    pub recipient_handle: Option<String>,
}

/// A ledger (one sales unit's settlement account).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Ledger {
    /// Ledger id.
    pub ledger_id: String,
    /// Currency.
    pub currency: Currency,
    /// Payout account.
    #[serde(default)]
    pub payout_bank_account: Option<SchemeId>,
    /// Owner organisation.
    #[serde(default)]
    pub owner: Option<SchemeId>,
    /// Handles settled here (`api:<MSN>` for API sales units).
    #[serde(default, deserialize_with = "null_as_default")]
    pub settles_for_recipient_handles: Vec<String>,
    /// Sales units (newer field).
    #[serde(default, deserialize_with = "null_as_default")]
    pub sales_units: Vec<SalesUnit>,
}

/// A page of ledgers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct LedgerPage {
    /// Ledgers.
    #[serde(default, deserialize_with = "null_as_default")]
    pub items: Vec<Ledger>,
    /// Cursor of the next page; absent or empty at the end.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// One row of a funds or fees report. Rows are immutable; fixes come as `correction` rows.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Entry {
    /// Id of this movement (one per capture/refund; fees carry their capture's).
    pub psp_reference: String,
    /// When (UTC or with an offset).
    #[serde(deserialize_with = "timestamp")]
    pub time: chrono::DateTime<chrono::FixedOffset>,
    /// Accounting date.
    pub ledger_date: chrono::NaiveDate,
    /// Kind of row.
    pub entry_type: EntryType,
    /// Payment reference / charge id / bank-transfer text.
    #[serde(default)]
    pub reference: Option<String>,
    /// Currency.
    pub currency: Currency,
    /// Signed effect on the balance, in minor units.
    pub amount: i64,
    /// Balance before.
    #[serde(default)]
    pub balance_before: Option<i64>,
    /// Balance after.
    #[serde(default)]
    pub balance_after: Option<i64>,
    /// `NO:57860`, `api:123455`, …; absent on fee and payout rows.
    #[serde(default)]
    pub recipient_handle: Option<String>,
    /// Payer's message (GDPR data, Vippsnummer payments only).
    #[serde(default)]
    pub message: Option<String>,
    /// Payer's name (GDPR data).
    #[serde(default)]
    pub name: Option<String>,
    /// Payer's masked phone number (GDPR data).
    #[serde(default)]
    pub masked_phone_no: Option<String>,
}

/// One page of a ledger date.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DatePage {
    /// Rows.
    #[serde(default, deserialize_with = "null_as_default")]
    pub items: Vec<Entry>,
    /// Cursor of the next page when `has_more`.
    #[serde(default)]
    pub cursor: Option<String>,
    /// More pages follow.
    #[serde(default)]
    pub has_more: bool,
    /// The date is not closed yet; ask again later (≥ 30 min).
    #[serde(default)]
    pub try_later: bool,
}

/// A page of a funds or fees report as received (the whole body), not decoded yet: a bulk reader decodes it
/// when it chooses, so the time on the wire and the time decoding can be told apart.
pub struct ReceivedPage {
    response: crate::transport::RawResponse,
}

impl std::fmt::Debug for ReceivedPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceivedPage").field("bytes", &self.response.body.len()).finish()
    }
}

impl ReceivedPage {
    /// The page of a ledger date; an unreadable body is [`Error::UnexpectedBody`].
    pub fn date_page(&self) -> Result<DatePage, Error> {
        self.response.json()
    }

    /// The page of a feed; an unreadable body, or one without a cursor, is [`Error::UnexpectedBody`].
    pub fn feed_page(&self) -> Result<FeedPage, Error> {
        let page: FeedPage = self.response.json()?;
        if page.cursor.is_empty() {
            return Err(self.response.unexpected("feed returned an empty cursor"));
        }
        Ok(page)
    }

    /// The size of the body, in bytes.
    pub fn len(&self) -> usize {
        self.response.body.len()
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.response.body.is_empty()
    }
}

/// A whole ledger date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateReport {
    /// The date is closed; all its rows.
    Ready(Vec<Entry>),
    /// The date is not closed yet.
    TryLater,
}

/// One page of the feed. Persist `cursor` after handling `items`; resume from it later.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct FeedPage {
    /// New rows.
    #[serde(default, deserialize_with = "null_as_default")]
    pub items: Vec<Entry>,
    /// Where to continue from (never empty).
    pub cursor: String,
    /// Caught up: wait before asking again with `cursor`.
    #[serde(default)]
    pub try_later: bool,
}

/// How [`Report::feed`] behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FeedOptions {
    /// Cursor to resume from (as stored from a previous [`FeedPage::cursor`]); `None` starts at the beginning.
    pub cursor: Option<String>,
    /// Wait this long after a `tryLater` page (Vipps: at most about once a minute).
    pub poll_interval: Duration,
    /// End the stream at the first `tryLater` page instead of waiting.
    pub stop_when_caught_up: bool,
    /// Ask for GDPR-sensitive fields.
    pub include_gdpr_sensitive_data: bool,
}

impl Default for FeedOptions {
    /// From the beginning, polling every 60 s, never ending, without GDPR data.
    fn default() -> Self {
        Self {
            cursor: None,
            poll_interval: Duration::from_secs(60),
            stop_when_caught_up: false,
            include_gdpr_sensitive_data: false,
        }
    }
}

impl FeedOptions {
    /// Resume from a stored cursor.
    pub fn resume(cursor: impl Into<String>) -> Self {
        Self { cursor: Some(cursor.into()), ..Self::default() }
    }
}

/// Report operations, from [`Client::report`].
#[derive(Debug, Clone)]
pub struct Report<'a> {
    client: &'a Client,
    options: CallOptions,
}

impl<'a> Report<'a> {
    pub(crate) fn new(client: &'a Client, options: CallOptions) -> Self {
        Self { client, options }
    }

    /// The same operations with other per-call options.
    #[must_use]
    pub fn with_options(mut self, options: CallOptions) -> Self {
        self.options = options;
        self
    }

    /// One page of ledgers, optionally only those settling for `recipient_handle` (`api:<MSN>`).
    pub async fn ledgers(&self, recipient_handle: Option<&str>, cursor: Option<&str>) -> Result<LedgerPage, Error> {
        let mut query = Vec::new();
        if let Some(handle) = recipient_handle {
            query.push(("settlesForRecipientHandles", handle));
        }
        if let Some(cursor) = cursor.filter(|c| !c.is_empty()) {
            query.push(("cursor", cursor));
        }
        let path = ["settlement", "v1", "ledgers"];
        self.client.inner.call(ApiCall::new(Method::GET, &path).query(&query), &self.options).await?.json()
    }

    /// One page of a ledger date. An unknown ledger, or (per the 2023 spec) a date not yet
    /// available, is [`crate::ErrorKind::NotFound`].
    pub async fn date_page(
        &self,
        ledger_id: &str,
        topic: Topic,
        date: chrono::NaiveDate,
        cursor: Option<&str>,
        include_gdpr_sensitive_data: bool,
    ) -> Result<DatePage, Error> {
        self.date_page_received(ledger_id, topic, date, cursor, include_gdpr_sensitive_data).await?.date_page()
    }

    /// One page of a ledger date as received, decoded apart ([`ReceivedPage::date_page`]), for callers that
    /// time the wire and the decoding separately. Errors as [`Report::date_page`].
    pub async fn date_page_received(
        &self,
        ledger_id: &str,
        topic: Topic,
        date: chrono::NaiveDate,
        cursor: Option<&str>,
        include_gdpr_sensitive_data: bool,
    ) -> Result<ReceivedPage, Error> {
        let date = date.format("%Y-%m-%d").to_string();
        let path = ["report", "v2", "ledgers", ledger_id, topic.as_str(), "dates", date.as_str()];
        let mut query = Vec::new();
        if let Some(cursor) = cursor.filter(|c| !c.is_empty()) {
            query.push(("cursor", cursor));
        }
        if include_gdpr_sensitive_data {
            query.push(("includeGDPRSensitiveData", "true"));
        }
        let response = self.client.inner.call(ApiCall::new(Method::GET, &path).query(&query), &self.options).await?;
        Ok(ReceivedPage { response })
    }

    /// One page of the feed as received, decoded apart ([`ReceivedPage::feed_page`]). Errors as
    /// [`Report::feed_page`].
    pub async fn feed_page_received(
        &self,
        ledger_id: &str,
        topic: Topic,
        cursor: Option<&str>,
        include_gdpr_sensitive_data: bool,
    ) -> Result<ReceivedPage, Error> {
        let path = ["report", "v2", "ledgers", ledger_id, topic.as_str(), "feed"];
        let mut query = Vec::new();
        if let Some(cursor) = cursor.filter(|c| !c.is_empty()) {
            query.push(("cursor", cursor));
        }
        if include_gdpr_sensitive_data {
            query.push(("includeGDPRSensitiveData", "true"));
        }
        let response = self.client.inner.call(ApiCall::new(Method::GET, &path).query(&query), &self.options).await?;
        Ok(ReceivedPage { response })
    }

    /// All rows of a ledger date, following `hasMore`/`cursor`; [`DateReport::TryLater`] while
    /// the date is open.
    pub async fn by_date(
        &self,
        ledger_id: &str,
        topic: Topic,
        date: chrono::NaiveDate,
        include_gdpr_sensitive_data: bool,
    ) -> Result<DateReport, Error> {
        let mut rows = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.date_page(ledger_id, topic, date, cursor.as_deref(), include_gdpr_sensitive_data).await?;
            if page.try_later {
                return Ok(DateReport::TryLater);
            }
            rows.extend(page.items);
            match page.cursor.filter(|c| !c.is_empty()) {
                Some(next) if page.has_more => {
                    if cursor.as_deref() == Some(next.as_str()) {
                        return Err(Error::UnexpectedBody {
                            status: 200,
                            content_type: None,
                            body: String::new(),
                            reason: "hasMore with an unchanged cursor".into(),
                        });
                    }
                    cursor = Some(next);
                }
                _ => return Ok(DateReport::Ready(rows)),
            }
        }
    }

    /// One page of the feed from `cursor` (`None`: from the beginning).
    pub async fn feed_page(
        &self,
        ledger_id: &str,
        topic: Topic,
        cursor: Option<&str>,
        include_gdpr_sensitive_data: bool,
    ) -> Result<FeedPage, Error> {
        self.feed_page_received(ledger_id, topic, cursor, include_gdpr_sensitive_data).await?.feed_page()
    }

    /// The feed as a stream of pages, starting at `options.cursor`.
    ///
    /// After a `tryLater` page the stream waits `poll_interval` before asking again (or ends, with
    /// `stop_when_caught_up`). Each page carries the cursor to persist. An error is yielded once
    /// and the stream ends; resume by calling `feed` again with the last stored cursor.
    pub fn feed(
        &self,
        ledger_id: &str,
        topic: Topic,
        options: FeedOptions,
    ) -> impl Stream<Item = Result<FeedPage, Error>> + Send + 'static {
        struct State {
            client: Client,
            call_options: CallOptions,
            ledger_id: String,
            topic: Topic,
            options: FeedOptions,
            wait_first: bool,
            done: bool,
        }
        let state = State {
            client: self.client.clone(),
            call_options: self.options.clone(),
            ledger_id: ledger_id.to_owned(),
            topic,
            options,
            wait_first: false,
            done: false,
        };
        futures::stream::unfold(state, |mut state| async move {
            if state.done {
                return None;
            }
            if state.wait_first {
                tokio::time::sleep(state.options.poll_interval).await;
            }
            let report = Report::new(&state.client, state.call_options.clone());
            let result = report
                .feed_page(
                    &state.ledger_id,
                    state.topic,
                    state.options.cursor.as_deref(),
                    state.options.include_gdpr_sensitive_data,
                )
                .await;
            match &result {
                Ok(page) => {
                    state.options.cursor = Some(page.cursor.clone());
                    state.wait_first = page.try_later;
                    state.done = page.try_later && state.options.stop_when_caught_up;
                }
                Err(_) => state.done = true,
            }
            Some((result, state))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_funds_row_with_an_offset_timestamp_and_unknown_type_is_read() {
        let row: Entry = serde_json::from_str(
            r#"{"pspReference":"3343121302","time":"2022-10-01T16:33:00.824993+0200","ledgerDate":"2022-10-01",
                "entryType":"brand-new-type","reference":"purchase-12","currency":"NOK","amount":-10000,
                "balanceBefore":40000,"balanceAfter":30000,"recipientHandle":"NO:57860","futureField":1}"#,
        )
        .unwrap();
        assert_eq!(row.entry_type, EntryType::Unknown("brand-new-type".into()));
        assert_eq!(row.amount, -10000);
        assert_eq!(row.time.timestamp(), 1_664_634_780);
    }
}
