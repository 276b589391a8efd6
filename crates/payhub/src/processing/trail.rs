//! The trail: "what happened, as received". Every way something reaches payhub (an intent, a Vipps webhook,
//! a poll, Vipps' answer to a call, a ledger page or a settlement file) is kept as a **Message** with its raw
//! body, and what payhub understood of it as an **Inbound Report** pointing at that Message. Every change of
//! money names the report that caused it, so finance can walk from a booking back to the bytes received.
//!
//! This is the one place the flows write them: [`record`] for "this channel said this, and it means that", in
//! the caller's transaction; [`set_outcome`] for a report corrected after the change it caused; [`finish`] for
//! a Message kept before it was processed (the webhook intake, below the flows, keeps it with
//! `store::trail::NewMessage::received`); and [`Said::message`] / [`Means::report`] give the typed rows that the
//! batch form (`store::together`) writes many at a time. The words (channel, report type, outcome) are closed
//! sets in `domain::trail`. Reconciliation uses the same shape: one Message per retrieval (a ledger page, a
//! file) and one per transaction, with one Inbound Report per transaction.

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

pub use crate::domain::trail::{Channel, Outcome, ReportType};
use crate::store::trail::{self as rows, NewMessage, NewReport};
use crate::store::StoreResult;

/// What a channel said: the raw Message.
#[derive(Debug, Clone, Copy)]
pub struct Said<'a> {
    /// Where it came from.
    pub channel: Channel,
    /// What it is about (an intent id, a payment reference, an agreement id, a ledger id).
    pub subject: Option<&'a str>,
    /// The raw body, as received.
    pub body: &'a str,
}

impl<'a> Said<'a> {
    /// `body` from `channel`, about `subject`.
    pub fn new(channel: Channel, subject: Option<&'a str>, body: &'a str) -> Self {
        Self { channel, subject, body }
    }

    /// The Message row, already processed (its meaning is recorded with it).
    pub fn message(&self) -> NewMessage<'a> {
        NewMessage::processed(self.channel, self.subject, self.body)
    }
}

/// What payhub understood of a Message: the Inbound Report.
#[derive(Debug, Clone, Copy)]
pub struct Means<'a> {
    /// FinDock's report type.
    pub report_type: ReportType,
    /// The event within it: `Default`, `payment.captured`, `agreement.active`, `ledger.capture`…
    pub sub_type: &'a str,
    /// How it ended.
    pub outcome: Outcome,
    /// Amount in øre, when the event has one.
    pub amount_ore: Option<i64>,
    /// The payment reference it concerns.
    pub reference: Option<&'a str>,
    /// The installment it was booked against.
    pub installment_id: Option<&'a str>,
    /// The intent it belongs to.
    pub intent_id: Option<&'a str>,
    /// Why (a reason, an error), when there is more to say.
    pub detail: Option<&'a str>,
}

impl<'a> Means<'a> {
    /// A report of `report_type` / `sub_type` that ended as `outcome`; the rest is added with the setters.
    pub fn new(report_type: ReportType, sub_type: &'a str, outcome: Outcome) -> Self {
        Self {
            report_type,
            sub_type,
            outcome,
            amount_ore: None,
            reference: None,
            installment_id: None,
            intent_id: None,
            detail: None,
        }
    }

    /// Something Vipps said (`payment.captured`, `agreement.active`, `ledger.capture`…).
    pub fn vipps(sub_type: &'a str, outcome: Outcome) -> Self {
        Self::new(ReportType::Vipps, sub_type, outcome)
    }

    /// With the amount it names, in øre (when it names one).
    pub fn amount(mut self, ore: impl Into<Option<i64>>) -> Self {
        self.amount_ore = ore.into();
        self
    }

    /// About this payment reference.
    pub fn reference(mut self, reference: &'a str) -> Self {
        self.reference = Some(reference);
        self
    }

    /// Booked against this installment (when there is one).
    pub fn installment(mut self, id: Option<&'a str>) -> Self {
        self.installment_id = id;
        self
    }

    /// Belonging to this intent (when there is one).
    pub fn intent(mut self, id: Option<&'a str>) -> Self {
        self.intent_id = id;
        self
    }

    /// With why.
    pub fn detail(mut self, detail: Option<&'a str>) -> Self {
        self.detail = detail;
        self
    }

    /// The Inbound Report row for the Message `message_id`.
    pub fn report(&self, message_id: &'a str) -> NewReport<'a> {
        NewReport {
            message_id,
            report_type: self.report_type,
            sub_type: self.sub_type,
            amount_ore: self.amount_ore,
            reference: self.reference,
            status: self.outcome,
            installment_id: self.installment_id,
            intent_id: self.intent_id,
            detail: self.detail,
        }
    }
}

/// The ids of what [`record`] wrote.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The Message.
    pub message_id: String,
    /// The Inbound Report.
    pub report_id: String,
}

/// Records what a channel said and what it means, in the caller's transaction, so the report exists exactly
/// when the change it causes was committed.
pub async fn record(
    conn: &mut AnyConnection,
    said: Said<'_>,
    means: Means<'_>,
    now: DateTime<Utc>,
) -> StoreResult<Recorded> {
    let message_id = rows::insert_message(conn, &said.message(), now).await?;
    let report_id = rows::insert_report(conn, &means.report(&message_id), now).await?;
    Ok(Recorded { message_id, report_id })
}

/// Sets a report's outcome after the fact: a report recorded before the change it names was tried (its id is
/// the change's cause), which then turned out to move nothing.
pub async fn set_outcome(
    conn: &mut AnyConnection,
    report_id: &str,
    outcome: Outcome,
    detail: Option<&str>,
) -> StoreResult<()> {
    rows::set_report_outcome(conn, report_id, outcome, detail).await
}

/// Marks a received Message processed, or failed with why.
pub async fn finish(
    conn: &mut AnyConnection,
    message_id: &str,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    rows::finish_message(conn, message_id, error, now).await
}
