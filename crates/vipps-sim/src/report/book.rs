//! The ledger of one API sales unit, built incrementally from its money movements
//! (`Db::movements`) and the virtual clock. Deterministic: the same movements, synced at the
//! same virtual times, give the same rows, pspReferences and balances.

use chrono::{DateTime, Days, NaiveDate, SecondsFormat, TimeZone, Utc};
use chrono_tz::Europe::Oslo;
use serde::Serialize;

use crate::state::{MoneyMovement, MovementKind};

/// Fee per capture: this many basis points of the captured amount (rounded half up) …
pub(crate) const FEE_BASIS_POINTS: i64 = 175;
/// … plus this many øre. Refunds carry no fee and do not return the capture's fee.
pub(crate) const FEE_FIXED_ORE: i64 = 100;

/// The fee Vipps (in the simulator's model) takes for capturing `amount` øre.
pub(crate) fn capture_fee(amount: i64) -> i64 {
    (amount.saturating_mul(FEE_BASIS_POINTS).saturating_add(5_000)) / 10_000 + FEE_FIXED_ORE
}

/// The Norwegian (Europe/Oslo) calendar date of `at`: the ledger date before any late booking.
pub(crate) fn oslo_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&Oslo).date_naive()
}

/// The instant a Norwegian date ends (midnight Oslo time of the next day), in UTC.
pub(crate) fn end_of(date: NaiveDate) -> DateTime<Utc> {
    let next = date.checked_add_days(Days::new(1)).unwrap_or(date);
    let midnight = next.and_hms_opt(0, 0, 0).unwrap_or_default();
    // Midnight always exists in Europe/Oslo (DST switches happen at 02:00/03:00).
    match Oslo.from_local_datetime(&midnight).earliest() {
        Some(t) => t.with_timezone(&Utc),
        None => Utc.from_utc_datetime(&midnight),
    }
}

/// Report API time format: UTC with microseconds (`2020-10-05T00:00:00.000000Z`).
fn fmt_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// One row (`Transaction` in the 2023 file) as sent.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EntryJson<'a> {
    pub(crate) psp_reference: &'a str,
    pub(crate) time: String,
    pub(crate) ledger_date: String,
    pub(crate) entry_type: &'a str,
    pub(crate) reference: &'a str,
    pub(crate) currency: &'a str,
    pub(crate) amount: i64,
    pub(crate) balance_before: i64,
    pub(crate) balance_after: i64,
    /// Absent (not null) on fee and payout rows: the 2023 schema types it as a plain string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) recipient_handle: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) masked_phone_no: Option<&'a str>,
}

/// A row kept pre-serialised: pages are served by concatenating these.
pub(crate) struct Row {
    pub(crate) date: NaiveDate,
    pub(crate) json: Box<str>,
}

/// Which of the two account views a request reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Topic {
    Funds,
    Fees,
}

impl Topic {
    pub(crate) fn parse(s: &str) -> Option<Topic> {
        match s {
            "funds" => Some(Topic::Funds),
            "fees" => Some(Topic::Fees),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Topic::Funds => "funds",
            Topic::Fees => "fees",
        }
    }
}

/// The funds and fees ledgers of one API sales unit (`api:<MSN>`).
pub(crate) struct Book {
    msn: String,
    ledger_id: String,
    handle: String,
    /// Movements of `Db::movements[msn]` already booked.
    consumed: usize,
    funds: Vec<Row>,
    fees: Vec<Row>,
    funds_balance: i64,
    fees_balance: i64,
    /// The date that has rows but has not been closed yet.
    open: Option<NaiveDate>,
    /// Capture fees booked on the open date (retained from the funds at its close).
    open_fees: i64,
    /// Every date up to and including this one is closed; a late movement is booked after it.
    closed_through: Option<NaiveDate>,
    payouts: u64,
}

/// Ledger id of the API sales unit `msn` (stable, numeric like Vipps' ids).
pub(crate) fn ledger_id(msn: &str) -> String {
    format!("30{msn}")
}

impl Book {
    pub(crate) fn new(msn: &str) -> Book {
        Book {
            msn: msn.to_owned(),
            ledger_id: ledger_id(msn),
            handle: format!("api:{msn}"),
            consumed: 0,
            funds: Vec::new(),
            fees: Vec::new(),
            funds_balance: 0,
            fees_balance: 0,
            open: None,
            open_fees: 0,
            closed_through: None,
            payouts: 0,
        }
    }

    pub(crate) fn rows(&self, topic: Topic) -> &[Row] {
        match topic {
            Topic::Funds => &self.funds,
            Topic::Fees => &self.fees,
        }
    }

    /// Whether every row of `date` is final (the date ended on the virtual clock).
    pub(crate) fn is_closed(&self, date: NaiveDate) -> bool {
        self.closed_through.is_some_and(|c| date <= c)
    }

    /// Books the movements not seen yet and closes every date that ended before `now`.
    pub(crate) fn sync(&mut self, movements: &[MoneyMovement], now: DateTime<Utc>) {
        let today = oslo_date(now);
        for m in movements.get(self.consumed..).unwrap_or_default() {
            let mut date = oslo_date(m.at);
            if let Some(c) = self.closed_through {
                if date <= c {
                    date = c.succ_opt().unwrap_or(c);
                }
            }
            if let Some(open) = self.open {
                if open < date {
                    self.close(open);
                }
            }
            self.open = Some(date);
            self.book(m, date);
        }
        self.consumed = movements.len();
        if let Some(open) = self.open {
            if open < today {
                self.close(open);
            }
        }
        if let Some(yesterday) = today.pred_opt() {
            if self.closed_through.is_none_or(|c| c < yesterday) {
                self.closed_through = Some(yesterday);
            }
        }
    }

    fn book(&mut self, m: &MoneyMovement, date: NaiveDate) {
        let reference = m.external_id.as_deref().unwrap_or(&m.reference);
        let (entry_type, amount) = match m.kind {
            MovementKind::Capture | MovementKind::ChargeCapture => ("capture", m.amount),
            MovementKind::Refund | MovementKind::ChargeRefund => ("refund", -m.amount),
        };
        let handle = self.handle.clone();
        self.push_funds(date, m.at, entry_type, &m.psp_reference, reference, amount, Some(&handle), &m.currency);
        if amount > 0 {
            let fee = capture_fee(amount);
            self.open_fees += fee;
            self.push_fees(date, m.at, "capture-fee", &m.psp_reference, reference, -fee);
        }
    }

    fn close(&mut self, date: NaiveDate) {
        let at = end_of(date);
        let day = date.format("%Y%m%d").to_string();
        if self.open_fees > 0 {
            let fees = std::mem::take(&mut self.open_fees);
            let psp = format!("{}-FR-{day}", self.ledger_id);
            self.push_funds(date, at, "fees-retained", &psp, "", -fees, None, "NOK");
            self.push_fees(date, at, "fees-retained", &psp, "", fees);
        }
        if self.funds_balance > 0 {
            self.payouts += 1;
            let payout_no = 2_000_000 + self.payouts;
            let psp = format!("{}-{payout_no}", self.ledger_id);
            let text = format!("Vipps utbet. {payout_no} API {}", self.msn);
            let amount = -self.funds_balance;
            self.push_funds(date, at, "payout-scheduled", &psp, &text, amount, None, "NOK");
        }
        self.open = None;
        if self.closed_through.is_none_or(|c| c < date) {
            self.closed_through = Some(date);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push_funds(
        &mut self,
        date: NaiveDate,
        at: DateTime<Utc>,
        entry_type: &str,
        psp: &str,
        reference: &str,
        amount: i64,
        handle: Option<&str>,
        currency: &str,
    ) {
        let before = self.funds_balance;
        self.funds_balance += amount;
        let json = entry(date, at, entry_type, psp, reference, currency, amount, before, self.funds_balance, handle);
        self.funds.push(Row { date, json });
    }

    fn push_fees(
        &mut self,
        date: NaiveDate,
        at: DateTime<Utc>,
        entry_type: &str,
        psp: &str,
        reference: &str,
        amount: i64,
    ) {
        let before = self.fees_balance;
        self.fees_balance += amount;
        let json = entry(date, at, entry_type, psp, reference, "NOK", amount, before, self.fees_balance, None);
        self.fees.push(Row { date, json });
    }
}

#[allow(clippy::too_many_arguments)]
fn entry(
    date: NaiveDate,
    at: DateTime<Utc>,
    entry_type: &str,
    psp: &str,
    reference: &str,
    currency: &str,
    amount: i64,
    before: i64,
    after: i64,
    handle: Option<&str>,
) -> Box<str> {
    let e = EntryJson {
        psp_reference: psp,
        time: fmt_time(at),
        ledger_date: date.to_string(),
        entry_type,
        reference,
        currency,
        amount,
        balance_before: before,
        balance_after: after,
        recipient_handle: handle,
        message: None,
        name: None,
        masked_phone_no: None,
    };
    serde_json::to_string(&e).unwrap_or_default().into_boxed_str()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn mv(kind: MovementKind, amount: i64, psp: &str, t: &str) -> MoneyMovement {
        MoneyMovement {
            kind,
            amount,
            currency: "NOK".into(),
            psp_reference: psp.into(),
            reference: "order-1".into(),
            agreement_id: None,
            external_id: None,
            at: at(t),
        }
    }

    #[test]
    fn the_fee_is_a_percentage_rounded_half_up_plus_a_fixed_part() {
        assert_eq!(capture_fee(10_000), 175 + 100);
        assert_eq!(capture_fee(100), 2 + 100);
        assert_eq!(capture_fee(200), 4 + 100); // 3.5 rounds up
    }

    #[test]
    fn a_norwegian_day_ends_at_local_midnight_in_summer_and_winter() {
        let d = NaiveDate::from_ymd_opt(2026, 7, 1).unwrap();
        assert_eq!(end_of(d), at("2026-07-01T22:00:00Z"));
        let d = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        assert_eq!(end_of(d), at("2026-01-01T23:00:00Z"));
        // 23:30 UTC on 31 December is already 1 January in Oslo.
        assert_eq!(oslo_date(at("2026-12-31T23:30:00Z")), NaiveDate::from_ymd_opt(2027, 1, 1).unwrap());
    }

    #[test]
    fn a_closed_day_ends_with_fees_retained_and_a_payout_of_the_balance() {
        let ms = vec![
            mv(MovementKind::Capture, 10_000, "p1", "2026-03-02T10:00:00Z"),
            mv(MovementKind::Refund, 4_000, "p2", "2026-03-02T11:00:00Z"),
        ];
        let mut b = Book::new("123456");
        b.sync(&ms, at("2026-03-02T12:00:00Z"));
        assert_eq!(b.funds.len(), 2);
        assert!(!b.is_closed(NaiveDate::from_ymd_opt(2026, 3, 2).unwrap()));
        b.sync(&ms, at("2026-03-03T00:30:00Z"));
        let types: Vec<String> = b
            .funds
            .iter()
            .map(|r| serde_json::from_str::<serde_json::Value>(&r.json).unwrap()["entryType"].as_str().unwrap().into())
            .collect();
        assert_eq!(types, ["capture", "refund", "fees-retained", "payout-scheduled"]);
        assert_eq!(b.funds_balance, 0);
        assert_eq!(b.fees_balance, 0);
        assert!(b.is_closed(NaiveDate::from_ymd_opt(2026, 3, 2).unwrap()));
    }

    #[test]
    fn a_negative_balance_carries_over_without_a_payout() {
        let ms = vec![
            mv(MovementKind::Capture, 1_000, "p1", "2026-03-02T10:00:00Z"),
            mv(MovementKind::Refund, 1_000, "p2", "2026-03-02T11:00:00Z"),
        ];
        let mut b = Book::new("123456");
        b.sync(&ms, at("2026-03-04T00:30:00Z"));
        assert_eq!(b.funds.len(), 3);
        assert_eq!(b.funds_balance, -capture_fee(1_000));
    }

    fn rows_of(b: &Book) -> (Vec<String>, Vec<String>) {
        (b.funds.iter().map(|r| r.json.to_string()).collect(), b.fees.iter().map(|r| r.json.to_string()).collect())
    }

    #[test]
    fn the_same_movements_give_the_same_rows_whether_synced_at_each_step_or_once() {
        let ms = vec![
            mv(MovementKind::Capture, 10_000, "p1", "2026-03-29T00:30:00Z"),
            mv(MovementKind::ChargeCapture, 4_900, "p2", "2026-03-29T21:59:00Z"),
            mv(MovementKind::Refund, 2_000, "p3", "2026-03-29T22:01:00Z"),
            mv(MovementKind::ChargeRefund, 100, "p4", "2026-03-31T08:00:00Z"),
            mv(MovementKind::Capture, 300, "p5", "2026-04-02T08:00:00Z"),
        ];
        let end = at("2026-04-05T00:00:00Z");
        let mut eager = Book::new("123456");
        for i in 0..=ms.len() {
            eager.sync(&ms[..i], ms.get(i).map_or(end, |m| m.at));
        }
        let mut lazy = Book::new("123456");
        lazy.sync(&ms, end);
        assert_eq!(rows_of(&eager), rows_of(&lazy));
        // 2026-03-29 is the switch to summer time: 21:59 UTC is 23:59 in Oslo, 22:01 UTC the next day.
        let dates: Vec<String> = lazy
            .funds
            .iter()
            .map(|r| serde_json::from_str::<serde_json::Value>(&r.json).unwrap()["ledgerDate"].as_str().unwrap().into())
            .collect();
        assert_eq!(
            dates,
            [
                "2026-03-29",
                "2026-03-29",
                "2026-03-29",
                "2026-03-29",
                "2026-03-30",
                "2026-03-31",
                "2026-04-02",
                "2026-04-02"
            ]
        );
        let mut other = Book::new("123456");
        other.sync(&ms, end);
        assert_eq!(rows_of(&other), rows_of(&lazy));
    }

    #[test]
    fn a_movement_dated_in_a_closed_day_is_booked_on_the_next_day() {
        let mut ms = vec![mv(MovementKind::Capture, 1_000, "p1", "2026-03-02T10:00:00Z")];
        let mut b = Book::new("123456");
        b.sync(&ms, at("2026-03-03T10:00:00Z"));
        ms.push(mv(MovementKind::Capture, 1_000, "p2", "2026-03-02T22:59:00Z"));
        b.sync(&ms, at("2026-03-03T10:00:01Z"));
        let last: serde_json::Value = serde_json::from_str(&b.funds.last().unwrap().json).unwrap();
        assert_eq!(last["ledgerDate"], "2026-03-03");
        assert_eq!(last["pspReference"], "p2");
    }
}
