//! Group commit: "write these records together". A one-time intent needs two writes: one that records it
//! (message, report, payer, profile, intent, installment, the Vipps payment to create with its idempotency key)
//! before Vipps is called, and one that records Vipps' answer. [`Together`] takes either and answers when it is
//! committed; behind it, a writer task gathers every write waiting, of both kinds, into one transaction with one
//! multi-row statement per table ([`statements`]) and one commit. Nobody waits on a timer: a batch is whatever
//! queued while the previous one was being written, so one caller alone is written at once and many callers
//! share the writer's time. The flows that call it see one write and its result, never the batch.
//!
//! The guarantees are those of one-intent transactions: everything of an intent (and the outbound events that
//! announce it) commits together or not at all, the idempotency key is stored before the Vipps call, and a crash
//! at any point loses nothing (a payment left `CREATING` is re-sent with the same key by the poll). A batch that
//! fails (a payment reference collision, a payer created concurrently elsewhere) is rolled back and each of its
//! writes is done alone, so one failing intent never fails the others; [`Together::fallbacks`] counts those.
//!
//! **Events are composed by the caller's [`Announce`], called inside the batch.** What an event says depends on
//! what only the batch's transaction knows: the payer it found or created, the installment as it stood before an
//! answer moved it, which endpoints exist. So the events cannot travel in the records the flow hands in, and the
//! store cannot compose them itself (FinDock's event shapes live in `processing::outbox`, above the store). The
//! flow therefore passes its composer in when it starts the writers; the batch calls it with what it wrote and
//! read ([`IntentWritten`], [`AnswerWritten`]), and writes the deliveries it returns with the batch's other rows,
//! in the same transaction. A trait rather than two closures: one object, two named kinds of write.
//!
//! On SQLite the writer runs on a thread of its own with a connection of its own that it drives directly
//! ([`sqlite_writer`]): a batch is one stretch of work on one thread, where sqlx would hand each statement to
//! the connection's thread and back. On PostgreSQL new intents and answers have a writer each, each on a held
//! sqlx connection, so that two transactions (and their WAL flushes) are in flight at once.

mod batch;
pub(crate) mod sqlite_writer;
pub(crate) mod statements;
mod writer;

#[cfg(test)]
pub(crate) use writer::testing;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::installments::InstallmentRow;
use super::outbox::{Endpoint, Listeners, Outgoing};
use super::payments::PaymentRow;
use super::{Store, StoreResult};
use crate::domain::intent::PayerInput;
use crate::domain::status::IntentStatus;

/// Composes the outbound events of what a batch wrote. The batch calls it inside its transaction, only for
/// intents someone listens to, and writes what it adds to `out` with its other rows (see the module doc).
pub(crate) trait Announce: Send + Sync {
    /// The events of a new intent, as written.
    fn recorded(&self, endpoints: &[Endpoint], intent: &IntentWritten<'_>, out: &mut Outgoing);

    /// The events of Vipps' answer to the create of an intent's payment, as written.
    fn created(&self, endpoints: &[Endpoint], answer: &AnswerWritten<'_>, out: &mut Outgoing);
}

/// A new intent as a batch wrote it.
pub(crate) struct IntentWritten<'a> {
    pub intent_id: &'a str,
    /// The intent's status as written.
    pub status: IntentStatus,
    /// The payer found or created for it.
    pub payer_id: &'a str,
    /// Its installment as written (a recurring intent has one only when it asks for an initial payment).
    pub installment: Option<&'a InstallmentRow>,
    pub listeners: &'a Listeners,
    pub at: DateTime<Utc>,
}

/// Vipps' answer to a create as a batch wrote it.
pub(crate) struct AnswerWritten<'a> {
    pub intent_id: &'a str,
    /// The intent's status as written.
    pub status: IntentStatus,
    /// The intent's payer.
    pub payer_id: &'a str,
    /// The installment as it now stands.
    pub installment: &'a InstallmentRow,
    /// Whether the answer moved the installment (an installment already further on stays where it was).
    pub moved: bool,
    /// The installment's payments, oldest first.
    pub payments: &'a [PaymentRow],
    pub listeners: &'a Listeners,
    pub at: DateTime<Utc>,
}

/// An intent to record, everything owned (it travels to the writer task). A one-time intent's installment is
/// the payment; a recurring intent's (`recurring` set) is its initial payment, when it asks for one.
#[derive(Clone)]
pub(crate) struct PendingIntent {
    pub intent_id: String,
    /// The installment; empty for a recurring intent without an initial payment.
    pub installment_id: String,
    /// The payment reference drawn for it (another is drawn if it turns out to be taken).
    pub reference: String,
    pub raw_body: String,
    pub account_id: String,
    pub payer: PayerInput,
    /// The phone that identifies the payer's Vipps profile.
    pub profile_phone: Option<String>,
    pub amount_ore: i64,
    pub description: Option<String>,
    pub product: Option<String>,
    pub success_url: String,
    pub failure_url: String,
    pub webhook_url: Option<String>,
    pub customer_phone: Option<String>,
    pub origin: Option<String>,
    pub campaign_id: Option<String>,
    pub now: DateTime<Utc>,
    /// What a recurring intent records besides: its mandate and recurring payment.
    pub recurring: Option<PendingRecurring>,
}

/// The mandate (Pending, its agreement still to be drafted with the mandate's id as key) and the recurring
/// payment of a recurring intent.
#[derive(Clone)]
pub(crate) struct PendingRecurring {
    pub mandate_id: String,
    pub recurring_id: String,
    /// The agreement's price.
    pub price_ore: i64,
    pub product_name: String,
    pub merchant_agreement_url: String,
    /// Where Vipps sends the payer back.
    pub redirect_url: String,
    pub interval_unit: &'static str,
    pub interval_count: i64,
    pub schedule: crate::domain::schedule::Schedule,
    pub start_date: chrono::NaiveDate,
    pub end_date: Option<chrono::NaiveDate>,
    /// Whether the intent asks for an initial payment (the pending intent's installment).
    pub initial: bool,
    /// The report's detail: which recurring payment the intent made.
    pub detail: String,
}

/// A recorded intent: the payment reference it got, and who listens to its events.
pub(crate) struct Recorded {
    pub reference: String,
    pub listeners: Listeners,
}

/// Vipps' answer to the create of a recorded intent's payment.
pub(crate) struct CreatedAtVipps {
    pub reference: String,
    pub installment_id: String,
    pub intent_id: String,
    pub amount_ore: i64,
    pub redirect_url: Option<String>,
    /// The answer as stored in its message.
    pub body: String,
    /// Who listens to the intent's events; read again in the transaction when not known.
    pub listeners: Option<Listeners>,
    pub now: DateTime<Utc>,
}

/// The group-commit writers over one store: the one way the one-time flow writes an intent and Vipps' answer.
pub(crate) struct Together {
    writers: writer::Writers,
}

impl Together {
    /// Starts the writers over `store` (on SQLite one, on a thread of its own; on PostgreSQL two, on the current
    /// runtime); `announce` composes the events of what they write.
    pub(crate) fn start(store: &Store, announce: Arc<dyn Announce>) -> Together {
        Together { writers: writer::Writers::spawn(store, announce) }
    }

    /// Records a new intent; answers once it is committed.
    pub(crate) async fn record_intent(&self, intent: PendingIntent) -> StoreResult<Recorded> {
        self.writers.record(intent).await
    }

    /// Records Vipps' answer to a create (the payment `CREATED`, the installment `Pending`, the intent
    /// `Matched`); answers once it is committed.
    pub(crate) async fn created(&self, answer: CreatedAtVipps) -> StoreResult<()> {
        self.writers.created(answer).await
    }

    /// How many batches failed together and were written one by one since the writers started (each write
    /// still succeeds or fails on its own; a count that grows points at a bug or a database in trouble).
    pub(crate) fn fallbacks(&self) -> u64 {
        self.writers.fallbacks()
    }
}
