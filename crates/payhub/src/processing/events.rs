//! Outbound events, FinDock's names and shapes: written to the outbox in the same transaction as the change
//! they announce, so an event exists exactly when its change was committed.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::AnyConnection;

use crate::domain::money::{signed_json_kroner, Money};
use crate::domain::status::{InstallmentStatus, IntentStatus};
use crate::jobs::outbound;
use crate::store::installments::{self, InstallmentRow};
use crate::store::intents;
use crate::store::payments;
use crate::store::StoreResult;

/// An installment's event data, FinDock's shape.
pub(crate) fn installment_data(installment: &InstallmentRow, payments: &[payments::PaymentRow]) -> Value {
    json!({
        "Id": installment.id,
        "Status": installment.status.as_str(),
        "StatusReason": installment.status_reason,
        "Amount": Money::from_ore(installment.amount_ore).to_json_kroner(),
        "AmountOpen": Money::from_ore(installment.amount_open_ore.max(0)).to_json_kroner(),
        "PaymentMethod": "Vipps",
        "PaymentProcessor": crate::domain::intent::PROCESSOR,
        "PaymentIntentId": installment.intent_id,
        "PaymentReference": installment.payment_reference,
        "Payments": payments.iter().map(|p| json!({
            "Id": p.id,
            "Amount": signed_json_kroner(p.amount_ore),
            "CollectionDate": p.collection_date.to_string(),
            "PaymentMethod": "Vipps",
            "PaymentProcessor": crate::domain::intent::PROCESSOR,
        })).collect::<Vec<_>>(),
    })
}

async fn webhook_url(conn: &mut AnyConnection, intent_id: Option<&str>) -> StoreResult<Option<String>> {
    let Some(id) = intent_id else { return Ok(None) };
    let row =
        sqlx::query("SELECT webhook_url FROM payment_intents WHERE id = $1").bind(id).fetch_optional(conn).await?;
    Ok(row.map(|row| sqlx::Row::try_get::<Option<String>, _>(&row, 0)).transpose()?.flatten())
}

/// Who will hear an intent's events: its WebhookURL, and whether any endpoint is configured. Read once per
/// transaction; when nobody listens an event costs nothing (most installations run without endpoints).
#[derive(Debug, Clone, Default)]
pub struct Listeners {
    url: Option<String>,
    anyone: bool,
}

impl Listeners {
    /// Whether anyone listens at all.
    pub fn anyone(&self) -> bool {
        self.anyone
    }

    /// The intent's `WebhookURL`, if it has one.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// The listeners of `intent_id`'s events (its WebhookURL is read from the intent).
    pub async fn of_intent(conn: &mut AnyConnection, intent_id: Option<&str>) -> StoreResult<Listeners> {
        let url = webhook_url(&mut *conn, intent_id).await?;
        Self::with_url(conn, url).await
    }

    /// The listeners when the intent's WebhookURL is already known.
    pub async fn with_url(conn: &mut AnyConnection, url: Option<String>) -> StoreResult<Listeners> {
        if url.is_some() {
            return Ok(Listeners { url, anyone: true });
        }
        Ok(Listeners { url: None, anyone: any_endpoint(conn).await? })
    }

    /// The listeners of an intent with this WebhookURL when whether any endpoint is configured is known (read
    /// once for a batch, see [`any_endpoint`]).
    pub fn known(url: Option<String>, any_endpoint: bool) -> Listeners {
        let anyone = url.is_some() || any_endpoint;
        Listeners { url, anyone }
    }
}

/// Whether any webhook endpoint is configured.
pub async fn any_endpoint(conn: &mut AnyConnection) -> StoreResult<bool> {
    Ok(sqlx::query("SELECT 1 FROM webhook_endpoints LIMIT 1").fetch_optional(conn).await?.is_some())
}

/// `installment.created` or `installment.status_change` for the installment as it now stands.
pub async fn installment(
    conn: &mut AnyConnection,
    listeners: &Listeners,
    event: &str,
    installment_id: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    if !listeners.anyone {
        return Ok(());
    }
    let Some(row) = installments::installment(&mut *conn, installment_id).await? else { return Ok(()) };
    let payments = payments::payments_of(&mut *conn, installment_id).await?;
    outbound::emit_at(conn, event, installment_data(&row, &payments), listeners.url.as_deref(), at).await?;
    Ok(())
}

/// Moves an installment forward (see [`installments::advance_installment`]) and, when it moved, announces
/// `installment.status_change` in the same transaction. Returns whether it moved.
pub async fn move_installment(
    conn: &mut AnyConnection,
    listeners: &Listeners,
    id: &str,
    next: crate::domain::status::InstallmentStatus,
    reason: Option<&str>,
    amount_open_ore: Option<i64>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let moved = installments::advance_installment(&mut *conn, id, next, reason, amount_open_ore, now).await?;
    if moved {
        installment(conn, listeners, "installment.status_change", id, now).await?;
    }
    Ok(moved)
}

/// `paymentIntent.created|processed|failed` for an intent.
pub async fn intent(
    conn: &mut AnyConnection,
    listeners: &Listeners,
    event: &str,
    intent_id: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    if !listeners.anyone {
        return Ok(());
    }
    let Some(intent) = intents::intent(&mut *conn, intent_id).await? else { return Ok(()) };
    let installment = match &intent.installment_id {
        Some(id) => installments::installment(&mut *conn, id).await?,
        None => None,
    };
    let one_time = installment.as_ref().map(|i| (i.id.as_str(), i.status));
    let data = intent_data(&intent.id, intent.status, &intent.payer_id, one_time);
    outbound::emit_at(conn, event, data, listeners.url.as_deref(), at).await?;
    Ok(())
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

/// `mandate.status_change` for a mandate as it now stands.
pub async fn mandate(
    conn: &mut AnyConnection,
    listeners: &Listeners,
    mandate_id: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    if !listeners.anyone {
        return Ok(());
    }
    let Some(mandate) = crate::store::mandates::mandate(&mut *conn, mandate_id).await? else { return Ok(()) };
    let data = json!({
        "Id": mandate.id,
        "MandateId": mandate.agreement_id,
        "Status": mandate.status.as_str(),
        "Active": mandate.status.is_active(),
        "PaymentMethod": "Vipps",
        "PaymentProcessor": crate::domain::intent::PROCESSOR,
        "PaymentIntentId": mandate.intent_id,
    });
    outbound::emit_at(conn, "mandate.status_change", data, listeners.url.as_deref(), at).await?;
    Ok(())
}
