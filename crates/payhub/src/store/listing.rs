//! The records lists: a filtered page of installments with the payer, account, campaign and refunded sum each
//! line shows. Paged by key (`created_at`, `id`, newest first; migration 14's indexes), never by OFFSET, so the
//! thousandth page costs what the first does and a CSV export reads page after page in constant memory.

use chrono::NaiveDate;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::sql::date;
use super::StoreResult;
use crate::domain::search::Lookup;

/// Which date a list's date range applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DateField {
    /// When the record was made (UTC).
    #[default]
    Created,
    /// The installment's due date.
    Due,
    /// The day its money was collected (a capture or charge).
    Collected,
}

/// A list's filters; every field given narrows it.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Status, exactly as shown (`Collected`, `Partially refunded`).
    pub status: Option<String>,
    /// Merchant account id.
    pub account_id: Option<String>,
    /// The intent's CampaignId.
    pub campaign: Option<String>,
    /// The intent's Origin.
    pub origin: Option<String>,
    /// Which date `from` and `to` apply to.
    pub date_field: DateField,
    /// From this day, inclusive.
    pub from: Option<NaiveDate>,
    /// Up to this day, inclusive.
    pub to: Option<NaiveDate>,
    /// At least this amount, øre.
    pub min_ore: Option<i64>,
    /// At most this amount, øre.
    pub max_ore: Option<i64>,
    /// What the search box recognised.
    pub lookup: Option<Lookup>,
}

/// Where a page starts: after the line with this creation time and id (the previous page's last line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Its stored `created_at`.
    pub created_at: String,
    /// Its id.
    pub id: String,
}

impl Cursor {
    /// The cursor as the URL carries it (`<created_at>~<id>`).
    pub fn encode(&self) -> String {
        format!("{}~{}", self.created_at, self.id)
    }

    /// A cursor from the URL; `None` for anything else.
    pub fn decode(text: &str) -> Option<Cursor> {
        let (created_at, id) = text.split_once('~')?;
        let plausible = |s: &str| !s.is_empty() && s.len() <= 64 && !s.contains(char::is_whitespace);
        (plausible(created_at) && plausible(id)).then(|| Cursor { created_at: created_at.into(), id: id.into() })
    }
}

/// One installment as its list shows it.
#[derive(Debug, Clone)]
pub struct InstallmentLine {
    /// `ins_…`
    pub id: String,
    /// Stored creation time (RFC 3339, UTC).
    pub created_at: String,
    /// Due date.
    pub due_date: NaiveDate,
    /// Status.
    pub status: String,
    /// Amount, øre.
    pub amount_ore: i64,
    /// Still open, øre.
    pub amount_open_ore: i64,
    /// Given back by refunds, øre (positive).
    pub refunded_ore: i64,
    /// The order id Vipps sees.
    pub payment_reference: String,
    /// Payer's first and last name.
    pub payer_name: String,
    /// Payer's email.
    pub payer_email: Option<String>,
    /// Payer's phone (MSISDN).
    pub payer_phone: Option<String>,
    /// Merchant account's name.
    pub account_name: Option<String>,
    /// The intent's CampaignId.
    pub campaign: Option<String>,
    /// The intent's Origin.
    pub origin: Option<String>,
    /// Its recurring payment, if any.
    pub recurring_id: Option<String>,
}

impl InstallmentLine {
    /// Where the next page starts when this is the last line of a page.
    pub fn cursor(&self) -> Cursor {
        Cursor { created_at: self.created_at.clone(), id: self.id.clone() }
    }
}

enum Value {
    Text(String),
    Int(i64),
}

/// `WHERE` clauses with `?` placeholders numbered as they are added.
#[derive(Default)]
struct Conditions {
    clauses: Vec<String>,
    values: Vec<Value>,
}

impl Conditions {
    fn add(&mut self, clause: &str, values: Vec<Value>) {
        let mut clause = clause.to_owned();
        for value in values {
            self.values.push(value);
            clause = clause.replacen('?', &format!("${}", self.values.len()), 1);
        }
        self.clauses.push(clause);
    }

    fn text(&mut self, clause: &str, value: &str) {
        self.add(clause, vec![Value::Text(value.to_owned())]);
    }
}

const INSTALLMENT_COLUMNS: &str = "i.id, i.created_at, i.due_date, i.status, i.amount_ore, i.amount_open_ore, \
     i.payment_reference, i.recurring_payment_id, p.first_name, p.last_name, p.email, p.phone, \
     a.name AS account_name, pint.campaign_id, pint.origin, \
     CAST((SELECT COALESCE(-SUM(x.amount_ore), 0) FROM payments x WHERE x.installment_id = i.id AND x.amount_ore < 0) AS BIGINT) AS refunded_ore";

fn installment_conditions(filter: &ListFilter, after: Option<&Cursor>) -> Conditions {
    let mut c = Conditions::default();
    if let Some(status) = &filter.status {
        c.text("i.status = ?", status);
    }
    if let Some(account) = &filter.account_id {
        c.text("i.account_id = ?", account);
    }
    if let Some(campaign) = &filter.campaign {
        c.text("pint.campaign_id = ?", campaign);
    }
    if let Some(origin) = &filter.origin {
        c.text("pint.origin = ?", origin);
    }
    if let Some(min) = filter.min_ore {
        c.add("i.amount_ore >= ?", vec![Value::Int(min)]);
    }
    if let Some(max) = filter.max_ore {
        c.add("i.amount_ore <= ?", vec![Value::Int(max)]);
    }
    let from = filter.from.map(|d| d.to_string());
    let to = filter.to.map(|d| d.to_string());
    let until = filter.to.and_then(|d| d.succ_opt()).map(|d| d.to_string());
    match filter.date_field {
        DateField::Created => {
            if let Some(from) = &from {
                c.text("i.created_at >= ?", from);
            }
            if let Some(until) = &until {
                c.text("i.created_at < ?", until);
            }
        }
        DateField::Due => {
            if let Some(from) = &from {
                c.text("i.due_date >= ?", from);
            }
            if let Some(to) = &to {
                c.text("i.due_date <= ?", to);
            }
        }
        DateField::Collected if from.is_some() || to.is_some() => {
            c.add(
                "EXISTS (SELECT 1 FROM payments y WHERE y.installment_id = i.id AND y.amount_ore > 0 \
                 AND y.collection_date >= ? AND y.collection_date <= ?)",
                vec![
                    Value::Text(from.unwrap_or_else(|| "0000-01-01".into())),
                    Value::Text(to.unwrap_or_else(|| "9999-12-31".into())),
                ],
            );
        }
        DateField::Collected => {}
    }
    match &filter.lookup {
        None => {}
        Some(Lookup::Intent(id)) => c.text("i.intent_id = ?", id),
        Some(Lookup::Reference(reference)) => c.text("i.payment_reference = ?", reference),
        Some(Lookup::Installment(id)) => c.text("i.id = ?", id),
        Some(Lookup::Agreement(id)) => c.text("i.mandate_id IN (SELECT m.id FROM mandates m WHERE m.agreement_id = ?)", id),
        Some(Lookup::Mandate(id)) => c.text("i.mandate_id = ?", id),
        Some(Lookup::Recurring(id)) => c.text("i.recurring_payment_id = ?", id),
        // The payer's own phone, or the number the payment or agreement was sent to Vipps with.
        Some(Lookup::Phone(phone)) => c.add(
            "(i.payer_id IN (SELECT q.id FROM payers q WHERE q.phone = ?) \
             OR i.id IN (SELECT v.installment_id FROM vipps_payments v WHERE v.customer_phone = ?) \
             OR i.mandate_id IN (SELECT m.id FROM mandates m WHERE m.customer_phone = ?))",
            vec![Value::Text(phone.clone()), Value::Text(phone.clone()), Value::Text(phone.clone())],
        ),
        Some(Lookup::Email(email)) => {
            c.text("i.payer_id IN (SELECT q.id FROM payers q WHERE lower(q.email) = ?)", email)
        }
        Some(Lookup::PspReference(reference)) => c.add(
            "(i.payment_reference = ? OR i.id IN (SELECT z.installment_id FROM payments z WHERE z.psp_reference = ?))",
            vec![Value::Text(reference.clone()), Value::Text(reference.clone())],
        ),
        Some(Lookup::Name(name)) => c.text(
            "i.payer_id IN (SELECT q.id FROM payers q WHERE lower(COALESCE(q.first_name, '') || ' ' || COALESCE(q.last_name, '')) LIKE ?)",
            &format!("%{}%", name.replace(['%', '_'], "")),
        ),
    }
    if let Some(after) = after {
        c.add(
            "(i.created_at < ? OR (i.created_at = ? AND i.id < ?))",
            vec![
                Value::Text(after.created_at.clone()),
                Value::Text(after.created_at.clone()),
                Value::Text(after.id.clone()),
            ],
        );
    }
    c
}

fn line_from_row(row: &AnyRow) -> StoreResult<InstallmentLine> {
    let first: Option<String> = row.try_get("first_name")?;
    let last: Option<String> = row.try_get("last_name")?;
    Ok(InstallmentLine {
        id: row.try_get("id")?,
        created_at: row.try_get("created_at")?,
        due_date: date(row, "due_date")?,
        status: row.try_get("status")?,
        amount_ore: row.try_get("amount_ore")?,
        amount_open_ore: row.try_get("amount_open_ore")?,
        refunded_ore: row.try_get("refunded_ore")?,
        payment_reference: row.try_get("payment_reference")?,
        payer_name: format!("{} {}", first.unwrap_or_default(), last.unwrap_or_default()).trim().to_owned(),
        payer_email: row.try_get("email")?,
        payer_phone: row.try_get("phone")?,
        account_name: row.try_get("account_name")?,
        campaign: row.try_get("campaign_id")?,
        origin: row.try_get("origin")?,
        recurring_id: row.try_get("recurring_payment_id")?,
    })
}

/// A page of installments matching `filter`, newest first, starting after `after`; at most `limit` (1–5000).
pub async fn installments(
    conn: &mut AnyConnection,
    filter: &ListFilter,
    after: Option<&Cursor>,
    limit: i64,
) -> StoreResult<Vec<InstallmentLine>> {
    let conditions = installment_conditions(filter, after);
    let filtered = if conditions.clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.clauses.join(" AND "))
    };
    let sql = format!(
        "SELECT {INSTALLMENT_COLUMNS} FROM installments i JOIN payers p ON p.id = i.payer_id \
         LEFT JOIN accounts a ON a.id = i.account_id LEFT JOIN payment_intents pint ON pint.id = i.intent_id \
         {filtered} ORDER BY i.created_at DESC, i.id DESC LIMIT {}",
        limit.clamp(1, 5000)
    );
    let mut query = sqlx::query(&sql);
    for value in conditions.values {
        query = match value {
            Value::Text(text) => query.bind(text),
            Value::Int(number) => query.bind(number),
        };
    }
    query.fetch_all(conn).await?.iter().map(line_from_row).collect()
}

/// The merchant accounts a list can be narrowed to: (id, name), by name.
pub async fn account_choices(conn: &mut AnyConnection) -> StoreResult<Vec<(String, String)>> {
    let rows = sqlx::query("SELECT id, name FROM accounts ORDER BY name").fetch_all(conn).await?;
    rows.iter().map(|row| Ok((row.try_get("id")?, row.try_get("name")?))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_survives_the_url_and_nonsense_is_no_cursor() {
        let cursor = Cursor { created_at: "2026-12-01T10:00:00.000000Z".into(), id: "ins_1".into() };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(Cursor::decode("no tilde"), None);
        assert_eq!(Cursor::decode("~ins_1"), None);
    }

    #[test]
    fn placeholders_are_numbered_in_the_order_values_are_bound() {
        let filter = ListFilter {
            status: Some("Collected".into()),
            lookup: Some(Lookup::PspReference("123".into())),
            ..ListFilter::default()
        };
        let c = installment_conditions(&filter, None);
        assert_eq!(c.clauses[0], "i.status = $1");
        assert!(c.clauses[1].contains("i.payment_reference = $2") && c.clauses[1].contains("psp_reference = $3"));
        assert_eq!(c.values.len(), 3);
    }
}
