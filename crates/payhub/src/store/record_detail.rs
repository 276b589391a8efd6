//! What an installment's detail page shows: its payer, payments and refunds, and a timeline merging the
//! Messages and Inbound Reports behind it, its refunds and its audit entries. A fixed number of set-based reads
//! per page (one per source, each by an indexed column), never a query per timeline entry.

use sqlx::{AnyConnection, Row};

use super::StoreResult;

/// The payer as the page shows them.
#[derive(Debug, Clone, Default)]
pub struct PayerFacts {
    /// `py_…`
    pub id: String,
    /// First and last name, as given.
    pub name: String,
    /// Email, when known.
    pub email: Option<String>,
    /// Phone, when known.
    pub phone: Option<String>,
}

/// A payment (capture, charge or refund) of the installment.
#[derive(Debug, Clone)]
pub struct PaymentFacts {
    /// `pm_…`
    pub id: String,
    /// `capture` or `refund`.
    pub kind: String,
    /// Øre, negative for refunds.
    pub amount_ore: i64,
    /// Vipps' reference.
    pub psp_reference: String,
    /// The collection day.
    pub collection_date: String,
}

/// A refund request of the installment.
#[derive(Debug, Clone)]
pub struct RefundFacts {
    /// `rf_…`
    pub id: String,
    /// Øre (positive).
    pub amount_ore: i64,
    /// `Pending`, `Succeeded`, `Failed`.
    pub status: String,
    /// Why it was asked for.
    pub reason: Option<String>,
    /// When it was asked for (stored timestamp).
    pub created_at: String,
}

/// One line of the timeline.
#[derive(Debug, Clone)]
pub struct TimelineEntry {
    /// The stored timestamp, which sorts as time does.
    pub at: String,
    /// `Message`, `Refund` or `Audit`.
    pub source: &'static str,
    /// One line saying what happened.
    pub title: String,
    /// The raw body behind it (a Message's body, an audit entry's details), when there is one.
    pub body: Option<String>,
}

/// The payer of an installment.
pub async fn payer(conn: &mut AnyConnection, payer_id: &str) -> StoreResult<Option<PayerFacts>> {
    let row = sqlx::query("SELECT id, first_name, last_name, email, phone FROM payers WHERE id = $1")
        .bind(payer_id)
        .fetch_optional(conn)
        .await?;
    row.map(|row| {
        let first: Option<String> = row.try_get("first_name")?;
        let last: Option<String> = row.try_get("last_name")?;
        let name = [first, last].into_iter().flatten().collect::<Vec<_>>().join(" ");
        Ok(PayerFacts { id: row.try_get("id")?, name, email: row.try_get("email")?, phone: row.try_get("phone")? })
    })
    .transpose()
}

/// The installment's payments, oldest first.
pub async fn payments(conn: &mut AnyConnection, installment_id: &str) -> StoreResult<Vec<PaymentFacts>> {
    let rows = sqlx::query(
        "SELECT id, kind, amount_ore, psp_reference, collection_date FROM payments WHERE installment_id = $1 ORDER BY created_at, id",
    )
    .bind(installment_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(PaymentFacts {
                id: row.try_get("id")?,
                kind: row.try_get("kind")?,
                amount_ore: row.try_get("amount_ore")?,
                psp_reference: row.try_get("psp_reference")?,
                collection_date: row.try_get("collection_date")?,
            })
        })
        .collect()
}

/// The installment's refund requests, oldest first.
pub async fn refunds(conn: &mut AnyConnection, installment_id: &str) -> StoreResult<Vec<RefundFacts>> {
    let rows = sqlx::query(
        "SELECT id, amount_ore, status, reason, created_at FROM refunds WHERE installment_id = $1 ORDER BY created_at, id",
    )
    .bind(installment_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(RefundFacts {
                id: row.try_get("id")?,
                amount_ore: row.try_get("amount_ore")?,
                status: row.try_get("status")?,
                reason: row.try_get("reason")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .collect()
}

/// The installment's timeline in time order: every Inbound Report about it with the Message it came from, its
/// refunds, and the audit entries about it. Three reads, whatever the number of entries.
pub async fn timeline(
    conn: &mut AnyConnection,
    installment_id: &str,
    refunds: &[RefundFacts],
) -> StoreResult<Vec<TimelineEntry>> {
    let mut entries = Vec::new();
    let reports = sqlx::query(
        "SELECT r.created_at, r.report_type, r.sub_type, r.status, r.amount_ore, r.detail, m.direction, m.channel, m.body \
         FROM inbound_reports r JOIN messages m ON m.id = r.message_id WHERE r.installment_id = $1",
    )
    .bind(installment_id)
    .fetch_all(&mut *conn)
    .await?;
    for row in &reports {
        let report_type: String = row.try_get("report_type")?;
        let sub_type: String = row.try_get("sub_type")?;
        let status: String = row.try_get("status")?;
        let direction: String = row.try_get("direction")?;
        let channel: String = row.try_get("channel")?;
        let amount: Option<i64> = row.try_get("amount_ore")?;
        let detail: Option<String> = row.try_get("detail")?;
        let amount = amount.map(|ore| format!(", {} NOK", crate::domain::money::Money::from_ore(ore).kroner_string()));
        let detail = detail.map(|d| format!(" ({d})")).unwrap_or_default();
        entries.push(TimelineEntry {
            at: row.try_get("created_at")?,
            source: "Message",
            title: format!(
                "{report_type} {sub_type}: {status}{} · {direction} {channel}{detail}",
                amount.unwrap_or_default()
            ),
            body: Some(row.try_get("body")?),
        });
    }
    for refund in refunds {
        entries.push(TimelineEntry {
            at: refund.created_at.clone(),
            source: "Refund",
            title: format!(
                "Refund {} of {} NOK: {}",
                refund.id,
                crate::domain::money::Money::from_ore(refund.amount_ore).kroner_string(),
                refund.status
            ),
            body: refund.reason.clone().map(|r| format!("Reason: {r}")),
        });
    }
    let audits = sqlx::query(
        "SELECT at, actor, action, source, details FROM audit_log WHERE object_type = 'installment' AND object_id = $1",
    )
    .bind(installment_id)
    .fetch_all(conn)
    .await?;
    for row in &audits {
        let actor: String = row.try_get("actor")?;
        let action: String = row.try_get("action")?;
        let source: String = row.try_get("source")?;
        entries.push(TimelineEntry {
            at: row.try_get("at")?,
            source: "Audit",
            title: format!("{action} by {actor} from {source}"),
            body: Some(row.try_get("details")?),
        });
    }
    entries.sort_by(|a, b| a.at.cmp(&b.at));
    Ok(entries)
}
