//! FinDock's outbound events: their names and the shape of their data and body. Every event payhub sends is
//! built here, whether a flow announces it in its own transaction or a batch of intents does
//! (`store::together`), so the two can never say different things.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::domain::intent::PROCESSOR;
use crate::domain::money::Kroner;
use crate::domain::recurring::MandateStatus;
use crate::domain::status::{InstallmentStatus, IntentStatus};
use crate::store::installments::InstallmentRow;
use crate::store::mandates::MandateRow;
use crate::store::payments::PaymentRow;
use crate::store::timestamp;

/// The event types payhub emits (FinDock's names); endpoints subscribe to these.
pub const EVENT_TYPES: &[&str] = &[
    "paymentIntent.created",
    "paymentIntent.processed",
    "paymentIntent.in_review",
    "paymentIntent.failed",
    "installment.created",
    "installment.status_change",
    "mandate.status_change",
];

/// An installment's event data, FinDock's shape (`installment.created`, `installment.status_change`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct InstallmentEvent {
    /// `ins_…`
    pub id: String,
    /// The installment's status after the change.
    pub status: InstallmentStatus,
    /// Why, when Vipps said (a failed charge's reason, say).
    pub status_reason: Option<String>,
    /// The amount due.
    pub amount: Kroner,
    /// What is still to be paid (a refund does not make money due again).
    pub amount_open: Kroner,
    /// What has been paid back.
    pub amount_refunded: Kroner,
    /// Always `Vipps`.
    pub payment_method: &'static str,
    /// The processor's name.
    pub payment_processor: &'static str,
    /// The Payment Intent that made it (none for installments a recurring schedule made).
    pub payment_intent_id: Option<String>,
    /// The payer's reference for this installment.
    pub payment_reference: String,
    /// The money moved: payments (positive) and refunds (negative).
    pub payments: Vec<EventPayment>,
}

/// One payment or refund in an [`InstallmentEvent`].
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct EventPayment {
    /// `pay_…`
    pub id: String,
    /// Positive for money in, negative for a refund.
    pub amount: Kroner,
    /// When the money moved (a date).
    pub collection_date: String,
    /// Always `Vipps`.
    pub payment_method: &'static str,
    /// The processor's name.
    pub payment_processor: &'static str,
}

/// A Payment Intent's event data, FinDock's shape (`paymentIntent.*`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct IntentEvent {
    /// The intent's id.
    pub id: String,
    /// Its status after the change.
    pub status: IntentStatus,
    /// The payer, as FinDock names it.
    pub payer: EventPayer,
    /// The installment it made, with that installment's status.
    pub one_time: Option<EventInstallment>,
}

/// The payer of an [`IntentEvent`].
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct EventPayer {
    /// The payer's contact.
    pub contact: EventContact,
}

/// A payer's contact id.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct EventContact {
    /// `pyr_…`
    pub id: String,
}

/// The installment an intent made.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct EventInstallment {
    /// `ins_…`
    pub id: String,
    /// Always `Installment`.
    #[serde(rename = "Type")]
    pub kind: &'static str,
    /// Its status.
    pub status: InstallmentStatus,
}

/// A mandate's event data, FinDock's shape (`mandate.status_change`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct MandateEvent {
    /// `mdt_…`
    pub id: String,
    /// The Vipps agreement's id.
    pub mandate_id: Option<String>,
    /// The mandate's status after the change.
    pub status: MandateStatus,
    /// Whether charges may be collected under it.
    pub active: bool,
    /// Always `Vipps`.
    pub payment_method: &'static str,
    /// The processor's name.
    pub payment_processor: &'static str,
    /// The Payment Intent that made it.
    pub payment_intent_id: Option<String>,
}

/// An event as delivered: its type, when it happened, and its data (one of the shapes above, by type).
#[derive(Serialize, ToSchema)]
pub struct EventBody<T: ToSchema> {
    /// The event type (`installment.status_change`, …).
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the change was committed (RFC 3339).
    pub timestamp: String,
    /// The record as it is after the change.
    pub data: T,
}

fn value(data: impl Serialize) -> Value {
    serde_json::to_value(data).unwrap_or(Value::Null)
}

/// An installment's event data, FinDock's shape.
pub(crate) fn installment_data(installment: &InstallmentRow, payments: &[PaymentRow]) -> Value {
    value(InstallmentEvent {
        id: installment.id.clone(),
        status: installment.status,
        status_reason: installment.status_reason.clone(),
        amount: Kroner(installment.amount_ore),
        amount_open: Kroner(installment.amount_open_ore.max(0)),
        amount_refunded: Kroner(crate::store::payments::refunded_ore(payments)),
        payment_method: "Vipps",
        payment_processor: PROCESSOR,
        payment_intent_id: installment.intent_id.clone(),
        payment_reference: installment.payment_reference.clone(),
        payments: payments
            .iter()
            .map(|p| EventPayment {
                id: p.id.clone(),
                amount: Kroner(p.amount_ore),
                collection_date: p.collection_date.to_string(),
                payment_method: "Vipps",
                payment_processor: PROCESSOR,
            })
            .collect(),
    })
}

/// An intent's event data, FinDock's shape: its status, payer, and the installment it made with that
/// installment's status.
pub(crate) fn intent_data(
    id: &str,
    status: IntentStatus,
    payer_id: &str,
    installment: Option<(&str, InstallmentStatus)>,
) -> Value {
    value(IntentEvent {
        id: id.to_owned(),
        status,
        payer: EventPayer { contact: EventContact { id: payer_id.to_owned() } },
        one_time: installment.map(|(id, status)| EventInstallment { id: id.to_owned(), kind: "Installment", status }),
    })
}

/// A mandate's event data, FinDock's shape.
pub(crate) fn mandate_data(mandate: &MandateRow) -> Value {
    value(MandateEvent {
        id: mandate.id.clone(),
        mandate_id: mandate.agreement_id.clone(),
        status: mandate.status,
        active: mandate.status.is_active(),
        payment_method: "Vipps",
        payment_processor: PROCESSOR,
        payment_intent_id: mandate.intent_id.clone(),
    })
}

/// An event's body as delivered: `{"type", "timestamp", "data"}`.
pub(crate) fn body(event_type: &str, data: Value, at: DateTime<Utc>) -> String {
    json!({ "type": event_type, "timestamp": timestamp(at), "data": data }).to_string()
}
