//! FinDock's outbound events: their names and the shape of their data and body. Every event payhub sends is
//! built here, whether a flow announces it in its own transaction or a batch of intents does
//! (`store::together`), so the two can never say different things.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::domain::intent::PROCESSOR;
use crate::domain::money::{signed_json_kroner, Money};
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

/// An installment's event data, FinDock's shape.
pub(crate) fn installment_data(installment: &InstallmentRow, payments: &[PaymentRow]) -> Value {
    json!({
        "Id": installment.id,
        "Status": installment.status.as_str(),
        "StatusReason": installment.status_reason,
        "Amount": Money::from_ore(installment.amount_ore).to_json_kroner(),
        "AmountOpen": Money::from_ore(installment.amount_open_ore.max(0)).to_json_kroner(),
        "AmountRefunded": Money::from_ore(crate::store::payments::refunded_ore(payments)).to_json_kroner(),
        "PaymentMethod": "Vipps",
        "PaymentProcessor": PROCESSOR,
        "PaymentIntentId": installment.intent_id,
        "PaymentReference": installment.payment_reference,
        "Payments": payments.iter().map(|p| json!({
            "Id": p.id,
            "Amount": signed_json_kroner(p.amount_ore),
            "CollectionDate": p.collection_date.to_string(),
            "PaymentMethod": "Vipps",
            "PaymentProcessor": PROCESSOR,
        })).collect::<Vec<_>>(),
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
    json!({
        "Id": id,
        "Status": status.as_str(),
        "Payer": {"Contact": {"Id": payer_id}},
        "OneTime": installment.map(|(id, status)| json!({"Id": id, "Type": "Installment", "Status": status.as_str()})),
    })
}

/// A mandate's event data, FinDock's shape.
pub(crate) fn mandate_data(mandate: &MandateRow) -> Value {
    json!({
        "Id": mandate.id,
        "MandateId": mandate.agreement_id,
        "Status": mandate.status.as_str(),
        "Active": mandate.status.is_active(),
        "PaymentMethod": "Vipps",
        "PaymentProcessor": PROCESSOR,
        "PaymentIntentId": mandate.intent_id,
    })
}

/// An event's body as delivered: `{"type", "timestamp", "data"}`.
pub(crate) fn body(event_type: &str, data: Value, at: DateTime<Utc>) -> String {
    json!({ "type": event_type, "timestamp": timestamp(at), "data": data }).to_string()
}
