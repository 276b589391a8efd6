//! Batch statements for group commit: the rows of many one-time intents (or of Vipps' answers to their creates)
//! written by one statement per table inside one transaction, instead of one statement per row.
//!
//! Writes go through [`Steps`]: every statement takes its rows as one JSON parameter, so its text never depends
//! on the batch size (prepared once, no per-value binding, whose cost in sqlx's SQLite driver grows with the
//! square of a statement's parameter count), and on SQLite all statements of a step go to the database's thread
//! as one script. Reads look rows up with `IN` lists of at most [`IN_LIST`] values.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Row};

use super::records::{self, NewMessage, NewOneTime, NewReport};
use super::{map_conflict, timestamp, StoreResult};
use crate::domain::ids::new_id;
use crate::domain::intent::PayerInput;
use crate::domain::status::{InstallmentStatus, IntentStatus};

/// The most values one `IN (…)` list of a batch read carries.
pub const IN_LIST: usize = 128;

/// `$first, $first+1, …` for `count` parameters.
fn list(first: usize, count: usize) -> String {
    (first..first + count).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ")
}

type AnyQuery<'q> = Query<'q, Any, AnyArguments<'q>>;

/// The length an `IN (…)` list of `n` values is padded to (by repeating its last value, which changes nothing):
/// a power of two, so that a few statement texts serve every batch size and stay in the statement cache.
fn padded(n: usize) -> usize {
    n.next_power_of_two()
}

/// `chunk` padded to [`padded`] length by repeating its last item.
fn pad<T: Copy>(chunk: &[T]) -> Vec<T> {
    let mut out = chunk.to_vec();
    if let Some(last) = chunk.last() {
        out.resize(padded(chunk.len()), *last);
    }
    out
}

/// Statements of a batch, collected and then sent together by [`Steps::run`]. Each statement reads its rows from
/// one JSON parameter (an array with one array per row), so its text is the same for every batch size: it is
/// prepared once and stays in the statement cache, and binding costs one parameter instead of one per value.
#[derive(Default)]
pub struct Steps {
    steps: Vec<Step>,
}

/// One statement in both dialects, with its parameters (`$1` = the rows, then any shared values).
struct Step {
    sqlite: String,
    postgres: String,
    params: Vec<String>,
}

/// The row source of a statement template in each dialect: `{rows}` is the set of rows (from `$1`), `{r}` one
/// row, `{r}->>N` its N-th value as text (or as a number on SQLite, where the JSON holds one).
fn dialects(template: &str) -> (String, String) {
    let sqlite = template.replace("{rows}", "json_each($1)").replace("{r}", "value");
    let postgres = template.replace("{rows}", "jsonb_array_elements($1::jsonb) AS t(v)").replace("{r}", "v");
    (sqlite, postgres)
}

/// `$N` renumbered to `$(N + offset)`, for a statement joined after others into one SQLite script.
fn renumbered(sql: &str, offset: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '$' {
            let mut digits = String::new();
            while let Some(d) = chars.next_if(char::is_ascii_digit) {
                digits.push(d);
            }
            match digits.parse::<usize>() {
                Ok(n) => out.push_str(&(n + offset).to_string()),
                Err(_) => out.push_str(&digits),
            }
        }
    }
    out
}

impl Steps {
    fn push(&mut self, template: &str, rows: Vec<serde_json::Value>, shared: Vec<String>) {
        if rows.is_empty() {
            return;
        }
        let (sqlite, postgres) = dialects(template);
        let mut params = vec![serde_json::Value::Array(rows).to_string()];
        params.extend(shared);
        self.steps.push(Step { sqlite, postgres, params });
    }

    /// Sends the statements in order: on SQLite as one script (one round trip to the database's thread), on
    /// PostgreSQL one after the other (its protocol takes one statement with parameters at a time). A unique
    /// violation (a taken payment reference) is [`super::StoreError::Conflict`].
    pub async fn run(self, conn: &mut AnyConnection) -> StoreResult<()> {
        if self.steps.is_empty() {
            return Ok(());
        }
        if conn.backend_name() == "SQLite" {
            let mut script = String::new();
            let mut offset = 0;
            for step in &self.steps {
                script.push_str(&renumbered(&step.sqlite, offset));
                script.push_str(";\n");
                offset += step.params.len();
            }
            let mut query: AnyQuery<'_> = sqlx::query(&script);
            for param in self.steps.iter().flat_map(|s| &s.params) {
                query = query.bind(param.as_str());
            }
            query.execute(&mut *conn).await.map_err(map_conflict)?;
        } else {
            for step in &self.steps {
                let mut query: AnyQuery<'_> = sqlx::query(&step.postgres);
                for param in &step.params {
                    query = query.bind(param.as_str());
                }
                query.execute(&mut *conn).await.map_err(map_conflict)?;
            }
        }
        Ok(())
    }

    /// Stores messages (as [`records::insert_message`] does one); returns their ids in order.
    pub fn insert_messages(&mut self, messages: &[(NewMessage<'_>, DateTime<Utc>)]) -> Vec<String> {
        let ids: Vec<String> = messages.iter().map(|_| new_id("msg")).collect();
        let rows = messages
            .iter()
            .zip(&ids)
            .map(|((m, at), id)| json!([id, m.direction, m.channel, m.subject, m.body, m.status, timestamp(*at)]))
            .collect();
        self.push(
            "INSERT INTO messages (id, direction, channel, subject, body, status, received_at, processed_at) \
             SELECT {r}->>0, {r}->>1, {r}->>2, {r}->>3, {r}->>4, {r}->>5, {r}->>6, \
             CASE WHEN {r}->>5 = 'New' THEN NULL ELSE {r}->>6 END FROM {rows}",
            rows,
            Vec::new(),
        );
        ids
    }

    /// Stores inbound reports (as [`records::insert_report`] does one); returns their ids in order.
    pub fn insert_reports(&mut self, reports: &[(NewReport<'_>, DateTime<Utc>)]) -> Vec<String> {
        let ids: Vec<String> = reports.iter().map(|_| new_id("ir")).collect();
        let rows = reports
            .iter()
            .zip(&ids)
            .map(|((r, at), id)| {
                json!([
                    id,
                    r.message_id,
                    r.report_type,
                    r.sub_type,
                    r.amount_ore,
                    at.date_naive().to_string(),
                    r.reference,
                    r.status,
                    r.installment_id,
                    r.intent_id,
                    r.detail,
                    timestamp(*at)
                ])
            })
            .collect();
        self.push(
            "INSERT INTO inbound_reports (id, message_id, report_type, sub_type, amount_ore, report_date, reference, \
             status, installment_id, intent_id, detail, created_at, updated_at) \
             SELECT {r}->>0, {r}->>1, {r}->>2, {r}->>3, CAST({r}->>4 AS BIGINT), {r}->>5, {r}->>6, {r}->>7, {r}->>8, \
             {r}->>9, {r}->>10, {r}->>11, {r}->>11 FROM {rows}",
            rows,
            Vec::new(),
        );
        ids
    }

    /// Records many one-time intents (as [`records::insert_one_time`] does one): the intents, their
    /// installments (Outstanding) and the Vipps payments to create with their idempotency keys. A payment
    /// reference that is taken fails [`Steps::run`] with [`super::StoreError::Conflict`].
    pub fn insert_one_times(&mut self, new: &[(NewOneTime<'_>, DateTime<Utc>)]) {
        let rows = |f: &dyn Fn(&NewOneTime<'_>, String, String) -> serde_json::Value| {
            new.iter().map(|(n, at)| f(n, timestamp(*at), at.date_naive().to_string())).collect::<Vec<_>>()
        };
        self.push(
            "INSERT INTO payment_intents (id, inbound_report_id, status, account_id, payer_id, installment_id, \
             success_url, failure_url, webhook_url, origin, campaign_id, created_at, updated_at) \
             SELECT {r}->>0, {r}->>1, 'Processing', {r}->>2, {r}->>3, {r}->>4, {r}->>5, {r}->>6, {r}->>7, {r}->>8, \
             {r}->>9, {r}->>10, {r}->>10 FROM {rows}",
            rows(&|n, at, _| {
                json!([
                    n.intent_id,
                    n.report_id,
                    n.account_id,
                    n.payer_id,
                    n.installment_id,
                    n.success_url,
                    n.failure_url,
                    n.webhook_url,
                    n.origin,
                    n.campaign_id,
                    at
                ])
            }),
            Vec::new(),
        );
        self.push(
            "INSERT INTO installments (id, intent_id, payer_id, payment_profile_id, account_id, amount_ore, \
             amount_open_ore, due_date, status, payment_reference, bank_statement_description, product, created_at, \
             updated_at) \
             SELECT {r}->>0, {r}->>1, {r}->>2, {r}->>3, {r}->>4, CAST({r}->>5 AS BIGINT), CAST({r}->>5 AS BIGINT), \
             {r}->>6, 'Outstanding', {r}->>7, {r}->>8, {r}->>9, {r}->>10, {r}->>10 FROM {rows}",
            rows(&|n, at, date| {
                json!([
                    n.installment_id,
                    n.intent_id,
                    n.payer_id,
                    n.profile_id,
                    n.account_id,
                    n.amount_ore,
                    date,
                    n.payment_reference,
                    n.bank_statement_description,
                    n.product,
                    at
                ])
            }),
            Vec::new(),
        );
        self.push(
            "INSERT INTO vipps_payments (reference, installment_id, account_id, idempotency_key, amount_ore, state, \
             customer_phone, description, created_at, updated_at) \
             SELECT {r}->>0, {r}->>1, {r}->>2, {r}->>1, CAST({r}->>3 AS BIGINT), 'CREATING', {r}->>4, {r}->>5, \
             {r}->>6, {r}->>6 FROM {rows}",
            rows(&|n, at, _| {
                json!([
                    n.payment_reference,
                    n.installment_id,
                    n.account_id,
                    n.amount_ore,
                    n.customer_phone,
                    n.bank_statement_description,
                    at
                ])
            }),
            Vec::new(),
        );
    }

    /// Records Vipps' answers to creates: each payment becomes `CREATED` with its landing page (as
    /// [`records::update_vipps_payment`] does one, with no error).
    pub fn mark_created(&mut self, created: &[(&str, Option<&str>)], now: DateTime<Utc>) {
        let rows = created.iter().map(|(reference, url)| json!([reference, url])).collect();
        self.push(
            "UPDATE vipps_payments SET state = 'CREATED', \
             redirect_url = COALESCE((SELECT {r}->>1 FROM {rows} WHERE {r}->>0 = vipps_payments.reference), redirect_url), \
             last_error = NULL, updated_at = $2 WHERE reference IN (SELECT {r}->>0 FROM {rows})",
            rows,
            vec![timestamp(now)],
        );
    }

    /// Moves installments to `next` where that is a move forward (as [`records::advance_installment`] does one,
    /// with no reason and no change of the open amount).
    pub fn advance_installments(&mut self, ids: &[&str], next: InstallmentStatus, now: DateTime<Utc>) {
        // The list holds our own constants.
        let from: Vec<String> =
            InstallmentStatus::ALL.iter().filter(|s| s.can_become(next)).map(|s| format!("'{}'", s.as_str())).collect();
        if from.is_empty() {
            return;
        }
        let rows = ids.iter().map(|id| json!([id])).collect();
        self.push(
            &format!(
                "UPDATE installments SET status = $2, updated_at = $3 WHERE id IN (SELECT {{r}}->>0 FROM {{rows}}) \
                 AND status IN ({})",
                from.join(", ")
            ),
            rows,
            vec![next.as_str().to_owned(), timestamp(now)],
        );
    }

    /// Sets the status of many intents (as [`records::set_intent_status`] does one).
    pub fn set_intents_status(&mut self, ids: &[&str], status: IntentStatus, now: DateTime<Utc>) {
        let rows = ids.iter().map(|id| json!([id])).collect();
        self.push(
            "UPDATE payment_intents SET status = $2, updated_at = $3 WHERE id IN (SELECT {r}->>0 FROM {rows})",
            rows,
            vec![status.as_str().to_owned(), timestamp(now)],
        );
    }
}

/// [`records::find_payer`] for many payers at once, in order. Emails are compared lower-cased as the unique
/// index does; an email that is not plain ASCII (where case rules could differ between Rust and the database)
/// is looked up on its own.
pub async fn find_payers(conn: &mut AnyConnection, payers: &[&PayerInput]) -> StoreResult<Vec<Option<String>>> {
    let mut found: Vec<Option<String>> = vec![None; payers.len()];
    let mut emails: Vec<String> = Vec::new();
    let mut phones: Vec<&str> = Vec::new();
    let mut alone: Vec<usize> = Vec::new();
    for (i, payer) in payers.iter().enumerate() {
        match (&payer.email, &payer.phone) {
            (Some(email), _) if email.is_ascii() => emails.push(email.to_ascii_lowercase()),
            (Some(_), _) => alone.push(i),
            (None, Some(phone)) => phones.push(phone.as_str()),
            (None, None) => {}
        }
    }
    emails.sort_unstable();
    emails.dedup();
    phones.sort_unstable();
    phones.dedup();
    let mut by_email: HashMap<String, String> = HashMap::new();
    for chunk in emails.chunks(IN_LIST) {
        let chunk = pad(&chunk.iter().map(String::as_str).collect::<Vec<_>>());
        let sql = format!("SELECT id, lower(email) FROM payers WHERE lower(email) IN ({})", list(1, chunk.len()));
        let mut query: AnyQuery<'_> = sqlx::query(&sql);
        for email in chunk {
            query = query.bind(email);
        }
        for row in query.fetch_all(&mut *conn).await? {
            by_email.insert(row.try_get(1)?, row.try_get(0)?);
        }
    }
    let mut by_phone: HashMap<String, String> = HashMap::new();
    for chunk in phones.chunks(IN_LIST) {
        let chunk = pad(chunk);
        // The oldest payer with the phone, as the single lookup orders.
        let sql =
            format!("SELECT id, phone FROM payers WHERE phone IN ({}) ORDER BY created_at DESC", list(1, chunk.len()));
        let mut query: AnyQuery<'_> = sqlx::query(&sql);
        for phone in chunk {
            query = query.bind(phone);
        }
        for row in query.fetch_all(&mut *conn).await? {
            by_phone.insert(row.try_get(1)?, row.try_get(0)?);
        }
    }
    for (i, payer) in payers.iter().enumerate() {
        found[i] = match (&payer.email, &payer.phone) {
            (Some(email), _) if email.is_ascii() => by_email.get(&email.to_ascii_lowercase()).cloned(),
            (None, Some(phone)) => by_phone.get(phone.as_str()).cloned(),
            _ => None,
        };
    }
    for i in alone {
        found[i] = records::find_payer(&mut *conn, payers[i]).await?;
    }
    Ok(found)
}

/// [`records::find_profile`] for many (payer, phone) pairs at once, in order.
pub async fn find_profiles(
    conn: &mut AnyConnection,
    wanted: &[(&str, Option<&str>)],
) -> StoreResult<Vec<Option<String>>> {
    let mut payer_ids: Vec<&str> = wanted.iter().map(|(payer, _)| *payer).collect();
    payer_ids.sort_unstable();
    payer_ids.dedup();
    let mut by_key: HashMap<(String, String), String> = HashMap::new();
    for chunk in payer_ids.chunks(IN_LIST) {
        let chunk = pad(chunk);
        let sql = format!(
            "SELECT id, payer_id, identifier FROM payment_profiles WHERE wallet_type = 'Vipps' AND payer_id IN ({})",
            list(1, chunk.len())
        );
        let mut query: AnyQuery<'_> = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            by_key.insert((row.try_get(1)?, row.try_get(2)?), row.try_get(0)?);
        }
    }
    Ok(wanted
        .iter()
        .map(|(payer, phone)| by_key.get(&((*payer).to_owned(), phone.unwrap_or_default().to_owned())).cloned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_renumbering_count_parameters_from_where_they_start() {
        assert_eq!(list(3, 3), "$3, $4, $5");
        assert_eq!(
            renumbered("SELECT $1, $2 FROM t WHERE a = $12 AND b = '$'", 3),
            "SELECT $4, $5 FROM t WHERE a = $15 AND b = '$'"
        );
        let (sqlite, postgres) = dialects("SELECT {r}->>0 FROM {rows}");
        assert_eq!(sqlite, "SELECT value->>0 FROM json_each($1)");
        assert_eq!(postgres, "SELECT v->>0 FROM jsonb_array_elements($1::jsonb) AS t(v)");
    }
}
