//! The records lists: a filtered page of installments, payments, refunds, recurring payments or mandates, each
//! line with its payer, account and campaign. Paged by key (`created_at`, `id`, newest first; migration 14's
//! indexes), never by OFFSET, so the thousandth page costs what the first does and a CSV export reads page
//! after page in constant memory. Each family's tables and columns are described once ([`Family`]'s shape);
//! the filters, search and paging are shared.

use chrono::NaiveDate;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

mod families;

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
    /// Inbound reports: what each message meant.
    Reports,
    /// Messages: every exchange as received or sent.
    Messages,
    /// Outbound webhook deliveries.
    Deliveries,
    /// The job queue.
    Jobs,
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
fn conditions(family: Family, filter: &ListFilter, after: Option<&Cursor>) -> Conditions {
    let shape = family.shape();
    let mut c = Conditions::default();
    let nothing = "1 = 0";
    // `{}` in `clause` is the family's column; a family without it matches nothing.
    let on = |c: &mut Conditions, column: Option<&str>, clause: &str, values: Vec<Value>| match column {
        Some(column) => c.add(&clause.replace("{}", column), values),
        None => c.clauses.push(nothing.into()),
    };
    let text = |value: &str| vec![Value::Text(value.to_owned())];
    if let Some(status) = &filter.status {
        on(&mut c, Some(shape.status), "{} = ?", text(status));
    }
    if let Some(account) = &filter.account_id {
        on(&mut c, shape.account, "{} = ?", text(account));
    }
    if let Some(campaign) = &filter.campaign {
        on(
            &mut c,
            shape.intent,
            "{} IN (SELECT pc.id FROM payment_intents pc WHERE pc.campaign_id = ?)",
            text(campaign),
        );
    }
    if let Some(origin) = &filter.origin {
        on(&mut c, shape.intent, "{} IN (SELECT po.id FROM payment_intents po WHERE po.origin = ?)", text(origin));
    }
    if let Some(min) = filter.min_ore {
        on(&mut c, shape.amount, "{} >= ?", vec![Value::Int(min)]);
    }
    if let Some(max) = filter.max_ore {
        on(&mut c, shape.amount, "{} <= ?", vec![Value::Int(max)]);
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
                c.text(&format!("{} >= ?", shape.created), from);
            }
            if let Some(until) = &until {
                c.text(&format!("{} < ?", shape.created), until);
            }
        }
    }
    // An id or reference: the family's own column for it, else where such text is kept raw.
    let id = |c: &mut Conditions, column: Option<&str>, value: &str| match (column, shape.raw) {
        (Some(column), _) => c.text(&format!("{column} = ?"), value),
        (None, Some((raw, false))) => c.text(&format!("{raw} = ?"), value),
        (None, Some((raw, true))) => c.text(&format!("{raw} LIKE ?"), &format!("%{}%", value.replace(['%', '_'], ""))),
        (None, None) => c.clauses.push(nothing.into()),
    };
    match &filter.lookup {
        None => {}
        Some(Lookup::Intent(value)) => id(&mut c, shape.intent, value),
        Some(Lookup::Reference(value)) => id(&mut c, shape.reference, value),
        Some(Lookup::Installment(value)) => id(&mut c, shape.installment, value),
        Some(Lookup::Agreement(value)) => match shape.mandate {
            Some(mandate) => {
                c.text(&format!("{mandate} IN (SELECT m.id FROM mandates m WHERE m.agreement_id = ?)"), value)
            }
            None => id(&mut c, None, value),
        },
        Some(Lookup::Mandate(value)) => id(&mut c, shape.mandate, value),
        Some(Lookup::Recurring(value)) => id(&mut c, shape.recurring, value),
        Some(Lookup::Phone(phone)) => match phone_clause(&shape, phone) {
            Some((sql, values)) => c.add(&sql, values),
            None => c.clauses.push(nothing.into()),
        },
        Some(Lookup::Email(email)) => {
            on(&mut c, shape.payer, "{} IN (SELECT q.id FROM payers q WHERE lower(q.email) = ?)", text(email))
        }
        Some(Lookup::PspReference(reference)) => match psp_clause(&shape, reference) {
            Some((sql, values)) => c.add(&sql, values),
            None => id(&mut c, None, reference),
        },
        // Ten bare digits starting with 47 are a Norwegian phone with its country code and as often a Vipps
        // reference: the reader meant one of them, so either finds it.
        Some(Lookup::PhoneOrReference { phone, reference }) => {
            match (phone_clause(&shape, phone), psp_clause(&shape, reference)) {
                (Some((a, mut x)), Some((b, y))) => {
                    x.extend(y);
                    c.add(&format!("({a} OR {b})"), x);
                }
                (Some((sql, values)), None) | (None, Some((sql, values))) => c.add(&sql, values),
                (None, None) => id(&mut c, None, reference),
            }
        }
        Some(Lookup::Name(name)) => on(
            &mut c,
            shape.payer,
            "{} IN (SELECT q.id FROM payers q WHERE lower(COALESCE(q.first_name, '') || ' ' || COALESCE(q.last_name, '')) LIKE ?)",
            text(&format!("%{}%", name.replace(['%', '_'], ""))),
        ),
    }
    if let Some(after) = after {
        let last_id = if shape.numeric_id {
            Value::Int(after.id.parse().unwrap_or(i64::MAX))
        } else {
            Value::Text(after.id.clone())
        };
        // A row value, not `created < ? OR (created = ? AND id < ?)`: both backends range-scan the (created, id)
        // index for it, where SQLite read that OR by scanning the index from the newest line down to the cursor
        // (1.9 s for a page deep in 1,000,000 installments, and a CSV export that slowed with every page).
        c.add(
            &format!("({}, {}.id) < (?, ?)", shape.created, shape.key()),
            vec![Value::Text(after.created_at.clone()), last_id],
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

/// The statement that reads a page of `family`, and its values in placeholder order. Keys first: the inner
/// query finds the page's ids (by the filters, in key order, from indexes where it can), and only those lines
/// are then joined to their payer, account and intent and have their refunded sum added up. A filter answered
/// by sorting (a due-date range, a payer's records) so sorts ids, not whole lines (34 ms → 10 ms for one week's
/// due installments of 1,000,000).
fn statement(family: Family, filter: &ListFilter, after: Option<&Cursor>, limit: i64) -> (String, Vec<Value>) {
    let shape = family.shape();
    let conditions = conditions(family, filter, after);
    let filtered = if conditions.clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.clauses.join(" AND "))
    };
    let columns: Vec<&str> = shape.columns.iter().map(|(_, sql, _)| *sql).collect();
    let (from, through, key, created) = (shape.from, shape.through, shape.key(), shape.created);
    let order = format!("ORDER BY {created} DESC, {key}.id DESC");
    let sql = format!(
        "SELECT {} FROM (SELECT {key}.id AS page_id FROM {from} {through} {filtered} {order} LIMIT {}) page \
         JOIN {from} ON {key}.id = page.page_id {through} {} {order}",
        columns.join(", "),
        limit.clamp(1, 5000),
        shape.joins,
    );
    (sql, conditions.values)
}

fn bound(sql: &str, values: Vec<Value>) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
    let mut query = sqlx::query(sql);
    for value in values {
        query = match value {
            Value::Text(text) => query.bind(text),
            Value::Int(number) => query.bind(number),
        };
    }
    query
}

/// A page of `family` matching `filter`, newest first, starting after `after`; at most `limit` (1–5000).
pub async fn lines(
    conn: &mut AnyConnection,
    family: Family,
    filter: &ListFilter,
    after: Option<&Cursor>,
    limit: i64,
) -> StoreResult<Vec<Line>> {
    let (sql, values) = statement(family, filter, after, limit);
    let kinds: Vec<Kind> = family.shape().columns.iter().map(|(_, _, kind)| *kind).collect();
    bound(&sql, values).fetch_all(conn).await?.iter().map(|row| line_from_row(row, &kinds)).collect()
}

/// How the database would read the page [`lines`] reads with the same arguments, one step a line: SQLite's
/// `EXPLAIN QUERY PLAN` (`SEARCH i USING INDEX …`), PostgreSQL's `EXPLAIN`. For tests that pin which lists are
/// read by index, and for an operator asking why a list is slow.
pub async fn plan(
    conn: &mut AnyConnection,
    backend: super::Backend,
    family: Family,
    filter: &ListFilter,
    after: Option<&Cursor>,
    limit: i64,
) -> StoreResult<Vec<String>> {
    let (sql, values) = statement(family, filter, after, limit);
    let explain = format!("EXPLAIN {}{sql}", if backend == super::Backend::Sqlite { "QUERY PLAN " } else { "" });
    let rows = bound(&explain, values).fetch_all(conn).await?;
    // SQLite's plan is (id, parent, notused, detail); PostgreSQL's one text column.
    let column = if backend == super::Backend::Sqlite { 3 } else { 0 };
    rows.iter().map(|row| Ok(row.try_get::<String, _>(column)?)).collect()
}

/// The merchant accounts a list can be narrowed to: (id, name), by name.
pub async fn account_choices(conn: &mut AnyConnection) -> StoreResult<Vec<(String, String)>> {
    let rows = sqlx::query("SELECT id, name FROM accounts ORDER BY name").fetch_all(conn).await?;
    rows.iter().map(|row| Ok((row.try_get("id")?, row.try_get("name")?))).collect()
}

/// Rows whose payer has `phone`, or whose payment or agreement was sent to Vipps with it. Where the rows have an
/// installment this is one set of installment ids, each part found by an indexed equality (the payer's phone,
/// the agreement's, the Vipps payment's) and joined by index to its installments: an OR of three `IN`s read the
/// whole list instead on both backends (1.0 s on SQLite at 1,000,000 installments).
fn phone_clause(shape: &families::Shape, phone: &str) -> Option<(String, Vec<Value>)> {
    let mut parts = Vec::new();
    if let Some(installment) = shape.installment {
        if shape.payer.is_some() {
            parts.push("SELECT j.id FROM payers q JOIN installments j ON j.payer_id = q.id WHERE q.phone = ?");
        }
        if shape.mandate.is_some() {
            parts.push(
                "SELECT j.id FROM mandates m JOIN installments j ON j.mandate_id = m.id WHERE m.customer_phone = ?",
            );
        }
        parts.push("SELECT v.installment_id FROM vipps_payments v WHERE v.customer_phone = ?");
        let values = parts.iter().map(|_| Value::Text(phone.to_owned())).collect();
        return Some((format!("{installment} IN ({})", parts.join(" UNION ALL ")), values));
    }
    let mut parts = Vec::new();
    if let Some(payer) = shape.payer {
        parts.push(format!("{payer} IN (SELECT q.id FROM payers q WHERE q.phone = ?)"));
    }
    if let Some(mandate) = shape.mandate {
        parts.push(format!("{mandate} IN (SELECT m.id FROM mandates m WHERE m.customer_phone = ?)"));
    }
    if parts.is_empty() {
        return None;
    }
    let values = parts.iter().map(|_| Value::Text(phone.to_owned())).collect();
    Some((format!("({})", parts.join(" OR ")), values))
}

/// Rows whose reference is `reference` or that hold a Payment Vipps gave that psp reference.
fn psp_clause(shape: &families::Shape, reference: &str) -> Option<(String, Vec<Value>)> {
    let (column, installment) = (shape.reference?, shape.installment?);
    Some((
        format!(
            "({column} = ? OR {installment} IN (SELECT z.installment_id FROM payments z WHERE z.psp_reference = ?))"
        ),
        vec![Value::Text(reference.to_owned()), Value::Text(reference.to_owned())],
    ))
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
