//! Outbound events, FinDock's names and shapes: written to the outbox in the same transaction as the change
//! they announce, so an event exists exactly when its change was committed.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::AnyConnection;

use crate::domain::money::{signed_json_kroner, Money};
use crate::jobs::outbound;
use crate::store::records::{self, InstallmentRow};
use crate::store::StoreResult;

fn installment_data(installment: &InstallmentRow, payments: &[records::PaymentRow]) -> Value {
    json!({
        "Id": installment.id,
        "Status": installment.status.as_str(),
        "StatusReason": installment.status_reason,
        "Amount": Money::from_ore(installment.amount_ore).to_json_kroner(),
        "AmountOpen": Money::from_ore(installment.amount_open_ore.max(0)).to_json_kroner(),
        "PaymentMethod": "Vipps",
        "PaymentProcessor": crate::api::v2::request::PROCESSOR,
        "PaymentIntentId": installment.intent_id,
        "PaymentReference": installment.payment_reference,
        "Payments": payments.iter().map(|p| json!({
            "Id": p.id,
            "Amount": signed_json_kroner(p.amount_ore),
            "CollectionDate": p.collection_date.to_string(),
            "PaymentMethod": "Vipps",
            "PaymentProcessor": crate::api::v2::request::PROCESSOR,
        })).collect::<Vec<_>>(),
    })
}

async fn webhook_url(conn: &mut AnyConnection, intent_id: Option<&str>) -> StoreResult<Option<String>> {
    Ok(match intent_id {
        Some(id) => records::intent(conn, id).await?.and_then(|i| i.webhook_url),
        None => None,
    })
}

/// `installment.created` or `installment.status_change` for the installment as it now stands.
pub async fn installment(
    conn: &mut AnyConnection,
    event: &str,
    installment_id: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let Some(row) = records::installment(&mut *conn, installment_id).await? else { return Ok(()) };
    let payments = records::payments_of(&mut *conn, installment_id).await?;
    let url = webhook_url(&mut *conn, row.intent_id.as_deref()).await?;
    outbound::emit_at(conn, event, installment_data(&row, &payments), url.as_deref(), at).await?;
    Ok(())
}

/// `paymentIntent.created|processed|failed` for an intent.
pub async fn intent(conn: &mut AnyConnection, event: &str, intent_id: &str, at: DateTime<Utc>) -> StoreResult<()> {
    let Some(intent) = records::intent(&mut *conn, intent_id).await? else { return Ok(()) };
    let one_time = match &intent.installment_id {
        Some(id) => records::installment(&mut *conn, id)
            .await?
            .map(|i| json!({"Id": i.id, "Type": "Installment", "Status": i.status.as_str()})),
        None => None,
    };
    let data = json!({
        "Id": intent.id,
        "Status": intent.status.as_str(),
        "Payer": {"Contact": {"Id": intent.payer_id}},
        "OneTime": one_time,
    });
    outbound::emit_at(conn, event, data, intent.webhook_url.as_deref(), at).await?;
    Ok(())
}
