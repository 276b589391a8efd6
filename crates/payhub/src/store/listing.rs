//! The records lists: a filtered page of installments, payments, refunds, recurring payments or mandates, each
//! line with its payer, account and campaign. Paged by key (`created_at`, `id`, newest first; migration 14's
//! indexes), never by OFFSET, so the thousandth page costs what the first does and a CSV export reads page
//! after page in constant memory. Each family's tables and columns are described once ([`Family`]'s shape);
//! the filters, search and paging are shared.

use chrono::NaiveDate;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::StoreResult;
use crate::domain::schedule::interval_text;
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

/// A record family with a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Expected money.
    Installments,
    /// Real money: captures and charges (positive), refunds (negative).
    Payments,
    /// Refund requests.
    Refunds,
    /// Recurring payments.
    Recurring,
    /// Mandates (Vipps agreements).
    Mandates,
}

/// How a column's value is read and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text as stored.
    Text,
    /// Øre, shown in NOK.
    Money,
    /// A Vipps interval stored as `<unit> <count>`, shown in words.
    Interval,
}

/// One cell of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// Text (empty when the record has none).
    Text(String),
    /// Øre.
    Money(i64),
}

/// One record as its list shows it: its id, its stored creation time (the paging key) and its cells, in the
/// order of [`Family::columns`].
#[derive(Debug, Clone)]
pub struct Line {
    /// The record's id.
    pub id: String,
    /// Stored creation time (RFC 3339, UTC).
    pub created_at: String,
    /// The cells.
    pub cells: Vec<Cell>,
}

impl Line {
    /// Where the next page starts when this is the last line of a page.
    pub fn cursor(&self) -> Cursor {
        Cursor { created_at: self.created_at.clone(), id: self.id.clone() }
    }
}

/// Where a family's facts are: its table (alias `t`, or `i` for installments) joined to its payer `p`, its
/// account `a`, its intent `pint` and (for payments and refunds) its installment `i`.
struct Shape {
    from: &'static str,
    status: &'static str,
    amount: &'static str,
    due: Option<&'static str>,
    collected: Option<&'static str>,
    intent: &'static str,
    installment: Option<&'static str>,
    reference: Option<&'static str>,
    mandate: &'static str,
    recurring: Option<&'static str>,
    payer: &'static str,
    account: &'static str,
    columns: &'static [(&'static str, &'static str, Kind)],
}

const JOINS_OF_I: &str = "JOIN payers p ON p.id = i.payer_id LEFT JOIN accounts a ON a.id = i.account_id \
     LEFT JOIN payment_intents pint ON pint.id = i.intent_id";
const JOINS_OF_T: &str = "JOIN payers p ON p.id = t.payer_id LEFT JOIN accounts a ON a.id = t.account_id \
     LEFT JOIN payment_intents pint ON pint.id = t.intent_id";
const PAYER: &str = "TRIM(COALESCE(p.first_name, '') || ' ' || COALESCE(p.last_name, ''))";
const REFUNDED: &str = "CAST((SELECT COALESCE(-SUM(x.amount_ore), 0) FROM payments x WHERE x.installment_id = i.id AND x.amount_ore < 0) AS BIGINT)";

impl Family {
    fn shape(self) -> Shape {
        use Kind::*;
        match self {
            Family::Installments => Shape {
                from: "installments i",
                status: "i.status",
                amount: "i.amount_ore",
                due: Some("i.due_date"),
                collected: Some("EXISTS (SELECT 1 FROM payments y WHERE y.installment_id = i.id AND y.amount_ore > 0 AND y.collection_date >= ? AND y.collection_date <= ?)"),
                intent: "i.intent_id",
                installment: Some("i.id"),
                reference: Some("i.payment_reference"),
                mandate: "i.mandate_id",
                recurring: Some("i.recurring_payment_id"),
                payer: "i.payer_id",
                account: "i.account_id",
                columns: &[
                    ("Id", "i.id", Text),
                    ("Created (UTC)", "i.created_at", Text),
                    ("Due date", "i.due_date", Text),
                    ("Status", "i.status", Text),
                    ("Amount (NOK)", "i.amount_ore", Money),
                    ("Open (NOK)", "CASE WHEN i.amount_open_ore < 0 THEN 0 ELSE i.amount_open_ore END", Money),
                    ("Refunded (NOK)", REFUNDED, Money),
                    ("Payment reference", "i.payment_reference", Text),
                    ("Payer", PAYER, Text),
                    ("Email", "p.email", Text),
                    ("Phone", "p.phone", Text),
                    ("Account", "a.name", Text),
                    ("Campaign", "pint.campaign_id", Text),
                    ("Origin", "pint.origin", Text),
                    ("Recurring payment", "i.recurring_payment_id", Text),
                ],
            },
            Family::Payments | Family::Refunds => {
                let payments = self == Family::Payments;
                Shape {
                    from: if payments { "payments t JOIN installments i ON i.id = t.installment_id" } else { "refunds t JOIN installments i ON i.id = t.installment_id" },
                    status: if payments { "t.kind" } else { "t.status" },
                    amount: "t.amount_ore",
                    due: Some("i.due_date"),
                    collected: payments.then_some("t.collection_date >= ? AND t.collection_date <= ?"),
                    intent: "i.intent_id",
                    installment: Some("i.id"),
                    reference: Some("i.payment_reference"),
                    mandate: "i.mandate_id",
                    recurring: Some("i.recurring_payment_id"),
                    payer: "i.payer_id",
                    account: "i.account_id",
                    columns: if payments {
                        &[
                            ("Id", "t.id", Text),
                            ("Created (UTC)", "t.created_at", Text),
                            ("Collection date", "t.collection_date", Text),
                            ("Type", "t.kind", Text),
                            ("Amount (NOK)", "t.amount_ore", Money),
                            ("Vipps reference", "t.psp_reference", Text),
                            ("Installment", "i.id", Text),
                            ("Payment reference", "i.payment_reference", Text),
                            ("Payer", PAYER, Text),
                            ("Email", "p.email", Text),
                            ("Account", "a.name", Text),
                            ("Campaign", "pint.campaign_id", Text),
                        ]
                    } else {
                        &[
                            ("Id", "t.id", Text),
                            ("Created (UTC)", "t.created_at", Text),
                            ("Status", "t.status", Text),
                            ("Amount (NOK)", "t.amount_ore", Money),
                            ("Reason", "t.reason", Text),
                            ("Vipps reference", "t.psp_reference", Text),
                            ("Error", "t.error", Text),
                            ("Installment", "i.id", Text),
                            ("Payment reference", "i.payment_reference", Text),
                            ("Payer", PAYER, Text),
                            ("Account", "a.name", Text),
                        ]
                    },
                }
            }
            Family::Recurring => Shape {
                from: "recurring_payments t",
                status: "t.status",
                amount: "t.amount_ore",
                due: Some("t.next_collection_date"),
                collected: None,
                intent: "t.intent_id",
                installment: None,
                reference: None,
                mandate: "t.mandate_id",
                recurring: Some("t.id"),
                payer: "t.payer_id",
                account: "t.account_id",
                columns: &[
                    ("Id", "t.id", Text),
                    ("Created (UTC)", "t.created_at", Text),
                    ("Status", "t.status", Text),
                    ("Amount (NOK)", "t.amount_ore", Money),
                    ("Frequency", "t.frequency", Text),
                    ("Start date", "t.start_date", Text),
                    ("Next collection", "CASE WHEN t.status IN ('Active', 'Paused') THEN t.next_collection_date END", Text),
                    ("Mandate", "t.mandate_id", Text),
                    ("Payer", PAYER, Text),
                    ("Email", "p.email", Text),
                    ("Account", "a.name", Text),
                    ("Campaign", "pint.campaign_id", Text),
                ],
            },
            Family::Mandates => Shape {
                from: "mandates t",
                status: "t.status",
                amount: "t.price_ore",
                due: None,
                collected: None,
                intent: "t.intent_id",
                installment: None,
                reference: None,
                mandate: "t.id",
                recurring: None,
                payer: "t.payer_id",
                account: "t.account_id",
                columns: &[
                    ("Id", "t.id", Text),
                    ("Created (UTC)", "t.created_at", Text),
                    ("Status", "t.status", Text),
                    ("Agreement", "t.agreement_id", Text),
                    ("Price (NOK)", "t.price_ore", Money),
                    ("Interval", "t.interval_unit || ' ' || CAST(t.interval_count AS TEXT)", Interval),
                    ("Product name", "t.product_name", Text),
                    ("Payer", PAYER, Text),
                    ("Phone", "t.customer_phone", Text),
                    ("Account", "a.name", Text),
                ],
            },
        }
    }

    /// The alias whose `created_at` and `id` page the list.
    fn key(self) -> &'static str {
        match self {
            Family::Installments => "i",
            _ => "t",
        }
    }

    /// The column headers, in the order of each line's cells.
    pub fn columns(self) -> Vec<(&'static str, Kind)> {
        self.shape().columns.iter().map(|(name, _, kind)| (*name, *kind)).collect()
    }

    /// The statuses (for payments: the types) a list can be narrowed to.
    pub fn statuses(self) -> &'static [&'static str] {
        match self {
            Family::Installments => &[
                "Outstanding",
                "Pending",
                "Collected",
                "Partially refunded",
                "Refunded",
                "Failed",
                "Cancelled",
                "Paid",
            ],
            Family::Payments => &["capture", "refund"],
            Family::Refunds => &["Pending", "Succeeded", "Failed"],
            Family::Recurring => &["Active", "Paused", "Cancelled", "Ended"],
            Family::Mandates => &["Pending", "Active", "Stopped", "Expired", "Cancelled"],
        }
    }

    /// Whether the list can be narrowed by a due or collection date.
    pub fn dates(self) -> (bool, bool) {
        let shape = self.shape();
        (shape.due.is_some(), shape.collected.is_some())
    }
}

fn conditions(family: Family, filter: &ListFilter, after: Option<&Cursor>) -> Conditions {
    let shape = family.shape();
    let key = family.key();
    let mut c = Conditions::default();
    if let Some(status) = &filter.status {
        c.text(&format!("{} = ?", shape.status), status);
    }
    if let Some(account) = &filter.account_id {
        c.text(&format!("{} = ?", shape.account), account);
    }
    if let Some(campaign) = &filter.campaign {
        c.text("pint.campaign_id = ?", campaign);
    }
    if let Some(origin) = &filter.origin {
        c.text("pint.origin = ?", origin);
    }
    if let Some(min) = filter.min_ore {
        c.add(&format!("{} >= ?", shape.amount), vec![Value::Int(min)]);
    }
    if let Some(max) = filter.max_ore {
        c.add(&format!("{} <= ?", shape.amount), vec![Value::Int(max)]);
    }
    let from = filter.from.map(|d| d.to_string());
    let to = filter.to.map(|d| d.to_string());
    let until = filter.to.and_then(|d| d.succ_opt()).map(|d| d.to_string());
    match (filter.date_field, shape.due, shape.collected) {
        (DateField::Due, Some(due), _) => {
            if let Some(from) = &from {
                c.text(&format!("{due} >= ?"), from);
            }
            if let Some(to) = &to {
                c.text(&format!("{due} <= ?"), to);
            }
        }
        (DateField::Collected, _, Some(collected)) if from.is_some() || to.is_some() => c.add(
            collected,
            vec![
                Value::Text(from.unwrap_or_else(|| "0000-01-01".into())),
                Value::Text(to.unwrap_or_else(|| "9999-12-31".into())),
            ],
        ),
        (DateField::Collected, _, Some(_)) => {}
        _ => {
            if let Some(from) = &from {
                c.text(&format!("{key}.created_at >= ?"), from);
            }
            if let Some(until) = &until {
                c.text(&format!("{key}.created_at < ?"), until);
            }
        }
    }
    let nothing = "1 = 0";
    let text = |c: &mut Conditions, column: Option<&str>, value: &str| match column {
        Some(column) => c.text(&format!("{column} = ?"), value),
        None => c.clauses.push(nothing.into()),
    };
    match &filter.lookup {
        None => {}
        Some(Lookup::Intent(id)) => text(&mut c, Some(shape.intent), id),
        Some(Lookup::Reference(reference)) => text(&mut c, shape.reference, reference),
        Some(Lookup::Installment(id)) => text(&mut c, shape.installment, id),
        Some(Lookup::Agreement(id)) => {
            c.text(&format!("{} IN (SELECT m.id FROM mandates m WHERE m.agreement_id = ?)", shape.mandate), id)
        }
        Some(Lookup::Mandate(id)) => text(&mut c, Some(shape.mandate), id),
        Some(Lookup::Recurring(id)) => text(&mut c, shape.recurring, id),
        // The payer's own phone, or the number the payment or agreement was sent to Vipps with.
        Some(Lookup::Phone(phone)) => {
            let mut parts = vec![
                format!("{} IN (SELECT q.id FROM payers q WHERE q.phone = ?)", shape.payer),
                format!("{} IN (SELECT m.id FROM mandates m WHERE m.customer_phone = ?)", shape.mandate),
            ];
            if let Some(installment) = shape.installment {
                parts.push(format!(
                    "{installment} IN (SELECT v.installment_id FROM vipps_payments v WHERE v.customer_phone = ?)"
                ));
            }
            let values = parts.iter().map(|_| Value::Text(phone.clone())).collect();
            c.add(&format!("({})", parts.join(" OR ")), values);
        }
        Some(Lookup::Email(email)) => {
            c.text(&format!("{} IN (SELECT q.id FROM payers q WHERE lower(q.email) = ?)", shape.payer), email)
        }
        Some(Lookup::PspReference(reference)) => match (shape.reference, shape.installment) {
            (Some(column), Some(installment)) => c.add(
                &format!("({column} = ? OR {installment} IN (SELECT z.installment_id FROM payments z WHERE z.psp_reference = ?))"),
                vec![Value::Text(reference.clone()), Value::Text(reference.clone())],
            ),
            _ => c.clauses.push(nothing.into()),
        },
        Some(Lookup::Name(name)) => c.text(
            &format!(
                "{} IN (SELECT q.id FROM payers q WHERE lower(COALESCE(q.first_name, '') || ' ' || COALESCE(q.last_name, '')) LIKE ?)",
                shape.payer
            ),
            &format!("%{}%", name.replace(['%', '_'], "")),
        ),
    }
    if let Some(after) = after {
        c.add(
            &format!("({key}.created_at < ? OR ({key}.created_at = ? AND {key}.id < ?))"),
            vec![
                Value::Text(after.created_at.clone()),
                Value::Text(after.created_at.clone()),
                Value::Text(after.id.clone()),
            ],
        );
    }
    c
}

fn line_from_row(row: &AnyRow, kinds: &[Kind]) -> StoreResult<Line> {
    let mut cells = Vec::with_capacity(kinds.len());
    for (n, kind) in kinds.iter().enumerate() {
        cells.push(match kind {
            Kind::Money => Cell::Money(row.try_get::<Option<i64>, _>(n)?.unwrap_or_default()),
            Kind::Text => Cell::Text(row.try_get::<Option<String>, _>(n)?.unwrap_or_default()),
            Kind::Interval => {
                let text = row.try_get::<Option<String>, _>(n)?.unwrap_or_default();
                let (unit, count) = text.split_once(' ').unwrap_or((&text, "1"));
                Cell::Text(interval_text(unit, count.parse().unwrap_or(1)))
            }
        });
    }
    let text = |n: usize| match &cells[n] {
        Cell::Text(text) => text.clone(),
        Cell::Money(_) => String::new(),
    };
    Ok(Line { id: text(0), created_at: text(1), cells })
}

/// A page of `family` matching `filter`, newest first, starting after `after`; at most `limit` (1–5000).
pub async fn lines(
    conn: &mut AnyConnection,
    family: Family,
    filter: &ListFilter,
    after: Option<&Cursor>,
    limit: i64,
) -> StoreResult<Vec<Line>> {
    let shape = family.shape();
    let conditions = conditions(family, filter, after);
    let filtered = if conditions.clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.clauses.join(" AND "))
    };
    let columns: Vec<&str> = shape.columns.iter().map(|(_, sql, _)| *sql).collect();
    let joins = if shape.installment.is_some() { JOINS_OF_I } else { JOINS_OF_T };
    let key = family.key();
    let sql = format!(
        "SELECT {} FROM {} {joins} {filtered} ORDER BY {key}.created_at DESC, {key}.id DESC LIMIT {}",
        columns.join(", "),
        shape.from,
        limit.clamp(1, 5000)
    );
    let mut query = sqlx::query(&sql);
    for value in conditions.values {
        query = match value {
            Value::Text(text) => query.bind(text),
            Value::Int(number) => query.bind(number),
        };
    }
    let kinds: Vec<Kind> = shape.columns.iter().map(|(_, _, kind)| *kind).collect();
    query.fetch_all(conn).await?.iter().map(|row| line_from_row(row, &kinds)).collect()
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
        let c = conditions(Family::Installments, &filter, None);
        assert_eq!(c.clauses[0], "i.status = $1");
        assert!(c.clauses[1].contains("i.payment_reference = $2") && c.clauses[1].contains("psp_reference = $3"));
        assert_eq!(c.values.len(), 3);
    }
}
