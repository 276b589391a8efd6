//! A record's timeline, as every detail page shows it: the Inbound Reports behind it with the Message each came
//! from, its refunds, the outbound webhook deliveries about it, the organisation's changes (amount, collection
//! day, pause, resume, cancel, Cancel Vipps Agreement) and the audit entries. One page asks for the records it
//! covers in a [`Subject`]; each source is one set-based read by an indexed column, never a read per entry.

use sqlx::{AnyConnection, Row};

use super::record_detail::RefundFacts;
use super::StoreResult;
use crate::domain::money::Money;

/// One line of the timeline.
#[derive(Debug, Clone)]
pub struct TimelineEntry {
    /// The stored timestamp, which sorts as time does.
    pub at: String,
    /// `Message`, `Refund`, `Delivery`, `Change` or `Audit`.
    pub source: &'static str,
    /// One line saying what happened.
    pub title: String,
    /// The raw body behind it (a Message's or a delivery's body, a change's or an audit entry's details).
    pub body: Option<String>,
    /// The page of the record the entry is (a delivery's own page), when it has one.
    pub link: Option<String>,
}

/// What a page's timeline covers. Reports are found by installment, or (those about no installment: an
/// agreement's, an intent's) by reference and intent; deliveries by the record their event names.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// Installments whose reports, and deliveries, belong here.
    pub installments: Vec<String>,
    /// References (agreement ids) of reports about no installment.
    pub references: Vec<String>,
    /// Intents whose reports about no installment, and whose deliveries, belong here.
    pub intents: Vec<String>,
    /// Other records whose deliveries belong here (a mandate).
    pub delivered: Vec<String>,
    /// Audit entries: (object type, ids).
    pub audited: Vec<(&'static str, Vec<String>)>,
    /// Changes: the mandate's, only those of this recurring payment (and the mandate's own) when given.
    pub changes: Option<(String, Option<String>)>,
}

/// `$from, $from+1, …` for `n` values.
fn marks(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

fn kroner(ore: i64) -> String {
    Money::from_ore(ore).kroner_string()
}

/// The timeline of `subject` in time order (oldest first), with `refunds` (already read for the page) in it.
pub async fn timeline(
    conn: &mut AnyConnection,
    subject: &Subject,
    refunds: &[RefundFacts],
) -> StoreResult<Vec<TimelineEntry>> {
    let mut entries = reports(conn, subject).await?;
    for refund in refunds {
        entries.push(TimelineEntry {
            at: refund.created_at.clone(),
            source: "Refund",
            title: format!("Refund {} of {} NOK: {}", refund.id, kroner(refund.amount_ore), refund.status),
            body: refund.reason.clone().map(|r| format!("Reason: {r}")),
            link: Some(format!("/refunds/{}", refund.id)),
        });
    }
    entries.extend(deliveries(conn, subject).await?);
    entries.extend(changes(conn, subject).await?);
    entries.extend(audits(conn, subject).await?);
    entries.sort_by(|a, b| a.at.cmp(&b.at));
    Ok(entries)
}

async fn reports(conn: &mut AnyConnection, subject: &Subject) -> StoreResult<Vec<TimelineEntry>> {
    const COLUMNS: &str = "SELECT r.id, r.created_at, r.report_type, r.sub_type, r.status, r.amount_ore, r.detail, \
                           m.direction, m.channel, m.body FROM inbound_reports r JOIN messages m ON m.id = r.message_id";
    let mut rows = Vec::new();
    if !subject.installments.is_empty() {
        let sql = format!("{COLUMNS} WHERE r.installment_id IN ({})", marks(1, subject.installments.len()));
        let mut query = sqlx::query(&sql);
        for id in &subject.installments {
            query = query.bind(id);
        }
        rows.extend(query.fetch_all(&mut *conn).await?);
    }
    // Reports about no installment, one equality read per agreement or intent (a page has one or two): an IN
    // list over both would let a planner pick the scan of every report without an installment.
    for (column, value) in
        subject.references.iter().map(|r| ("reference", r)).chain(subject.intents.iter().map(|i| ("intent_id", i)))
    {
        let sql = format!("{COLUMNS} WHERE r.installment_id IS NULL AND r.{column} = $1");
        rows.extend(sqlx::query(&sql).bind(value).fetch_all(&mut *conn).await?);
    }
    // A report found both by its agreement and by its intent is shown once.
    let mut seen = std::collections::HashSet::new();
    rows.retain(|row| row.try_get::<String, _>("id").map(|id| seen.insert(id)).unwrap_or(true));
    rows.iter()
        .map(|row| {
            let report_type: String = row.try_get("report_type")?;
            let sub_type: String = row.try_get("sub_type")?;
            let status: String = row.try_get("status")?;
            let direction: String = row.try_get("direction")?;
            let channel: String = row.try_get("channel")?;
            let amount: Option<i64> = row.try_get("amount_ore")?;
            let detail: Option<String> = row.try_get("detail")?;
            let amount = amount.map(|ore| format!(", {} NOK", kroner(ore))).unwrap_or_default();
            let detail = detail.map(|d| format!(" ({d})")).unwrap_or_default();
            Ok(TimelineEntry {
                at: row.try_get("created_at")?,
                source: "Message",
                title: format!("{report_type} {sub_type}: {status}{amount} · {direction} {channel}{detail}"),
                body: Some(row.try_get("body")?),
                link: None,
            })
        })
        .collect()
}

async fn deliveries(conn: &mut AnyConnection, subject: &Subject) -> StoreResult<Vec<TimelineEntry>> {
    let ids: Vec<&String> = subject.installments.iter().chain(&subject.intents).chain(&subject.delivered).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT id, created_at, event_type, url, status, attempts, last_status_code, last_error, body \
         FROM webhook_deliveries WHERE subject IN ({})",
        marks(1, ids.len())
    );
    let mut query = sqlx::query(&sql);
    for id in ids {
        query = query.bind(id);
    }
    let rows = query.fetch_all(conn).await?;
    rows.iter()
        .map(|row| {
            let id: String = row.try_get("id")?;
            let event_type: String = row.try_get("event_type")?;
            let url: String = row.try_get("url")?;
            let status: String = row.try_get("status")?;
            let attempts: i64 = row.try_get("attempts")?;
            let code: Option<i64> = row.try_get("last_status_code")?;
            let error: Option<String> = row.try_get("last_error")?;
            let code = code.map(|c| format!(", last answer {c}")).unwrap_or_default();
            let error = error.map(|e| format!(" ({e})")).unwrap_or_default();
            Ok(TimelineEntry {
                at: row.try_get("created_at")?,
                source: "Delivery",
                title: format!("Webhook {event_type} to {url}: {status} after {attempts} attempt(s){code}{error}"),
                body: Some(row.try_get("body")?),
                link: Some(format!("/deliveries/{id}")),
            })
        })
        .collect()
}

/// How a change's kind reads.
fn change_name(kind: &str) -> &str {
    match kind {
        "amount" => "Amount change",
        "collection_day" => "Collection day change",
        "pause" => "Pause",
        "resume" => "Resume",
        "cancel" => "Cancel",
        "cancel_agreement" => "Cancel Vipps Agreement",
        other => other,
    }
}

async fn changes(conn: &mut AnyConnection, subject: &Subject) -> StoreResult<Vec<TimelineEntry>> {
    let Some((mandate_id, recurring_id)) = &subject.changes else { return Ok(Vec::new()) };
    let rows = sqlx::query(
        "SELECT kind, details, status, message, actor, created_at FROM recurring_changes WHERE mandate_id = $1 \
         AND (CAST($2 AS TEXT) IS NULL OR recurring_payment_id = $2 OR recurring_payment_id IS NULL)",
    )
    .bind(mandate_id)
    .bind(recurring_id.as_deref())
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            let kind: String = row.try_get("kind")?;
            let status: String = row.try_get("status")?;
            let actor: String = row.try_get("actor")?;
            let details: String = row.try_get("details")?;
            let message: Option<String> = row.try_get("message")?;
            let message = message.map(|m| format!(" · {m}")).unwrap_or_default();
            Ok(TimelineEntry {
                at: row.try_get("created_at")?,
                source: "Change",
                title: format!("{}: {status} · by {actor}{message}", change_name(&kind)),
                body: Some(details),
                link: None,
            })
        })
        .collect()
}

async fn audits(conn: &mut AnyConnection, subject: &Subject) -> StoreResult<Vec<TimelineEntry>> {
    let mut clauses = Vec::new();
    let mut binds: Vec<&str> = Vec::new();
    for (object_type, ids) in subject.audited.iter().filter(|(_, ids)| !ids.is_empty()) {
        let n = binds.len() + 1;
        clauses.push(format!("(object_type = ${n} AND object_id IN ({}))", marks(n + 1, ids.len())));
        binds.push(object_type);
        binds.extend(ids.iter().map(String::as_str));
    }
    if clauses.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT at, actor, action, source, details FROM audit_log WHERE {}", clauses.join(" OR "));
    let mut query = sqlx::query(&sql);
    for value in binds {
        query = query.bind(value);
    }
    let rows = query.fetch_all(conn).await?;
    rows.iter()
        .map(|row| {
            let actor: String = row.try_get("actor")?;
            let action: String = row.try_get("action")?;
            let source: String = row.try_get("source")?;
            Ok(TimelineEntry {
                at: row.try_get("at")?,
                source: "Audit",
                title: format!("{action} by {actor} from {source}"),
                body: Some(row.try_get("details")?),
                link: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_number_on_from_where_they_start() {
        assert_eq!(super::marks(3, 2), "$3, $4");
        assert_eq!(super::marks(1, 1), "$1");
    }
}
