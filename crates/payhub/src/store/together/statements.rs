//! The statements of a batch: the rows of many one-time intents (or of Vipps' answers to their creates)
//! written by one statement per table inside one transaction, instead of one statement per row.
//!
//! Writes go through [`Steps`]: every statement takes its rows as one JSON parameter, so its text never depends
//! on the batch size (prepared once, no per-value binding, whose cost in sqlx's SQLite driver grows with the
//! square of a statement's parameter count). Reads look rows up with `IN` lists of at most [`IN_LIST`] values.
//! The outbox's multi-row statement (`Steps::insert_deliveries`) sits in `store::outbox`, next to its
//! single-row twin.
//!
//! Reads and writes run on a `BatchConn`: a sqlx connection (PostgreSQL's writers; on SQLite, a batch of one
//! written alone) or the SQLite writer's own connection ([`super::sqlite_writer`]). Every column a read returns
//! is text, so one row type serves both.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Row};

use super::PendingRecurring;
use crate::domain::ids::new_id;
use crate::domain::intent::PayerInput;
use crate::domain::schedule::oslo_date;
use crate::domain::status::{InstallmentStatus, IntentStatus};
use crate::store::installments::InstallmentRow;
use crate::store::intents::NewOneTime;
use crate::store::payers;
use crate::store::payments::PaymentRow;
use crate::store::trail::{NewMessage, NewReport};
use crate::store::{map_conflict, timestamp, StoreError, StoreResult};

/// The rows of a read, every column as text (`None` for NULL).
pub(crate) type Rows = Vec<Vec<Option<String>>>;

/// A connection a batch runs on, inside the batch's transaction.
pub(crate) trait BatchConn {
    /// Runs one read with text parameters (`$1`, `$2`, …); every column it selects must be text (or `CAST` to
    /// it).
    async fn read(&mut self, sql: &str, params: &[String]) -> StoreResult<Rows>;

    /// Runs the steps in order. A unique violation is [`StoreError::Conflict`].
    async fn write(&mut self, steps: Steps) -> StoreResult<()>;
}

impl BatchConn for AnyConnection {
    async fn read(&mut self, sql: &str, params: &[String]) -> StoreResult<Rows> {
        let mut query: AnyQuery<'_> = sqlx::query(sql);
        for param in params {
            query = query.bind(param.as_str());
        }
        let rows = query.fetch_all(&mut *self).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push((0..row.len()).map(|i| row.try_get::<Option<String>, _>(i)).collect::<Result<_, _>>()?);
        }
        Ok(out)
    }

    async fn write(&mut self, steps: Steps) -> StoreResult<()> {
        let sqlite = self.backend_name() == "SQLite";
        for step in &steps.steps {
            let mut query: AnyQuery<'_> = sqlx::query(if sqlite { &step.sqlite } else { &step.postgres });
            for param in &step.params {
                query = query.bind(param.as_str());
            }
            query.execute(&mut *self).await.map_err(map_conflict)?;
        }
        Ok(())
    }
}

/// The text of column `i` of a read's row; a missing value is a decode error naming `what`.
pub(in crate::store) fn text<'r>(row: &'r [Option<String>], i: usize, what: &str) -> StoreResult<&'r str> {
    row.get(i).and_then(Option::as_deref).ok_or_else(|| decode_error(format!("{what} is missing")))
}

/// Column `i` of a read's row, if it is not NULL.
fn optional(row: &[Option<String>], i: usize) -> Option<String> {
    row.get(i).cloned().flatten()
}

/// Column `i` of a read's row as an integer.
fn integer(row: &[Option<String>], i: usize, what: &str) -> StoreResult<i64> {
    text(row, i, what)?.parse().map_err(|_| decode_error(format!("{what} is not an integer")))
}

fn decode_error(message: String) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(message.into()))
}

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

/// Statements of a batch, collected and then sent together by `BatchConn::write`. Each statement reads its rows from
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

impl Steps {
    /// Adds a statement written as a template (see [`dialects`]) over `rows`, with `shared` as `$2`, `$3`, …;
    /// nothing when there are no rows.
    pub(in crate::store) fn push(&mut self, template: &str, rows: Vec<serde_json::Value>, shared: Vec<String>) {
        if rows.is_empty() {
            return;
        }
        let (sqlite, postgres) = dialects(template);
        let mut params = vec![serde_json::Value::Array(rows).to_string()];
        params.extend(shared);
        self.steps.push(Step { sqlite, postgres, params });
    }

    /// The statements in SQLite's dialect, in order, each with its parameters.
    pub(crate) fn sqlite(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.steps.iter().map(|step| (step.sqlite.as_str(), step.params.as_slice()))
    }

    /// Stores messages (as [`super::trail::insert_message`] does one); returns their ids in order.
    pub fn insert_messages(&mut self, messages: &[(NewMessage<'_>, DateTime<Utc>)]) -> Vec<String> {
        let ids: Vec<String> = messages.iter().map(|_| new_id("msg")).collect();
        let rows = messages
            .iter()
            .zip(&ids)
            .map(|((m, at), id)| {
                json!([id, "inbound", m.channel.as_str(), m.subject, m.body, m.status.as_str(), timestamp(*at)])
            })
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

    /// Stores inbound reports (as [`super::trail::insert_report`] does one); returns their ids in order.
    pub fn insert_reports(&mut self, reports: &[(NewReport<'_>, DateTime<Utc>)]) -> Vec<String> {
        let ids: Vec<String> = reports.iter().map(|_| new_id("ir")).collect();
        let rows = reports
            .iter()
            .zip(&ids)
            .map(|((r, at), id)| {
                json!([
                    id,
                    r.message_id,
                    r.report_type.as_str(),
                    r.sub_type,
                    r.amount_ore,
                    oslo_date(*at).to_string(),
                    r.reference,
                    r.status.as_str(),
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

    /// Records one-time intents before anything is sent to Vipps: the intents, their installments (Outstanding,
    /// due on the Oslo date) and the Vipps payments to create with their idempotency keys. A payment reference
    /// that is taken fails `BatchConn::write` with [`StoreError::Conflict`].
    pub fn insert_one_times(&mut self, new: &[(NewOneTime<'_>, DateTime<Utc>)]) {
        // Each intent's time as stored and its Oslo date, worked out once for the three tables.
        let stamps: Vec<(String, String)> =
            new.iter().map(|(_, at)| (timestamp(*at), oslo_date(*at).to_string())).collect();
        let rows = |f: &dyn Fn(&NewOneTime<'_>, &str, &str) -> serde_json::Value| {
            new.iter().zip(&stamps).map(|((n, _), (at, date))| f(n, at, date)).collect::<Vec<_>>()
        };
        self.push_intents(rows(&|n, at, _| intent_row(n, Some(n.installment_id), at)));
        self.push_installments(rows(&|n, at, date| installment_row(n, None, at, date)));
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

    /// Records recurring intents (as [`Steps::insert_one_times`] records one-time ones): the intent, the initial
    /// payment's installment when it asks for one, a Pending mandate whose agreement is still to be drafted (its
    /// id is the draft's Idempotency-Key), and the Active recurring payment.
    pub fn insert_recurring_intents(&mut self, new: &[(NewOneTime<'_>, &PendingRecurring, DateTime<Utc>)]) {
        let stamps: Vec<(String, String)> =
            new.iter().map(|(_, _, at)| (timestamp(*at), oslo_date(*at).to_string())).collect();
        let intents = new
            .iter()
            .zip(&stamps)
            .map(|((n, r, _), (at, _))| intent_row(n, r.initial.then_some(n.installment_id), at))
            .collect();
        self.push_intents(intents);
        let initial: Vec<_> = new
            .iter()
            .zip(&stamps)
            .filter(|((_, r, _), _)| r.initial)
            .map(|((n, r, _), (at, date))| installment_row(n, Some(&r.mandate_id), at, date))
            .collect();
        if !initial.is_empty() {
            self.push_installments(initial);
        }
        let mandates = new
            .iter()
            .zip(&stamps)
            .map(|((n, r, _), (at, _))| {
                json!([
                    r.mandate_id,
                    n.account_id,
                    n.payer_id,
                    n.profile_id,
                    n.intent_id,
                    r.product_name,
                    r.merchant_agreement_url,
                    r.redirect_url,
                    n.customer_phone,
                    r.price_ore,
                    r.interval_unit,
                    r.interval_count,
                    r.initial.then_some(n.installment_id),
                    at
                ])
            })
            .collect();
        self.push(
            "INSERT INTO mandates (id, account_id, payer_id, payment_profile_id, intent_id, status, vipps_status, \
             idempotency_key, product_name, merchant_agreement_url, redirect_url, customer_phone, price_ore, \
             interval_unit, interval_count, initial_installment_id, created_at, updated_at) \
             SELECT {r}->>0, {r}->>1, {r}->>2, {r}->>3, {r}->>4, 'Pending', 'CREATING', {r}->>0, {r}->>5, {r}->>6, \
             {r}->>7, {r}->>8, CAST({r}->>9 AS BIGINT), {r}->>10, CAST({r}->>11 AS BIGINT), {r}->>12, {r}->>13, \
             {r}->>13 FROM {rows}",
            mandates,
            Vec::new(),
        );
        let recurring = new
            .iter()
            .zip(&stamps)
            .map(|((n, r, _), (at, _))| {
                let next = r.schedule.next_on_or_after(r.start_date);
                json!([
                    r.recurring_id,
                    n.intent_id,
                    r.mandate_id,
                    n.account_id,
                    n.payer_id,
                    n.profile_id,
                    r.price_ore,
                    r.schedule.frequency().as_str(),
                    r.start_date.to_string(),
                    r.end_date.map(|d| d.to_string()),
                    r.schedule.collection_day().map(i64::from),
                    next.map_or(0, |(p, _)| i64::from(p)),
                    next.map(|(_, d)| d.to_string()),
                    n.bank_statement_description,
                    n.product,
                    at
                ])
            })
            .collect();
        self.push(
            "INSERT INTO recurring_payments (id, intent_id, mandate_id, account_id, payer_id, payment_profile_id, \
             amount_ore, frequency, start_date, end_date, collection_day, status, next_period, next_collection_date, \
             bank_statement_description, product, created_at, updated_at) \
             SELECT {r}->>0, {r}->>1, {r}->>2, {r}->>3, {r}->>4, {r}->>5, CAST({r}->>6 AS BIGINT), {r}->>7, {r}->>8, \
             {r}->>9, CAST({r}->>10 AS BIGINT), 'Active', CAST({r}->>11 AS BIGINT), {r}->>12, {r}->>13, {r}->>14, \
             {r}->>15, {r}->>15 FROM {rows}",
            recurring,
            Vec::new(),
        );
    }

    /// New intents (`Processing`), one row each.
    fn push_intents(&mut self, rows: Vec<serde_json::Value>) {
        self.push(
            "INSERT INTO payment_intents (id, inbound_report_id, status, account_id, payer_id, installment_id, \
             success_url, failure_url, webhook_url, origin, campaign_id, created_at, updated_at) \
             SELECT {r}->>0, {r}->>1, 'Processing', {r}->>2, {r}->>3, {r}->>4, {r}->>5, {r}->>6, {r}->>7, {r}->>8, \
             {r}->>9, {r}->>10, {r}->>10 FROM {rows}",
            rows,
            Vec::new(),
        );
    }

    /// New installments (`Outstanding`, due on the intent's Oslo date), one row each.
    fn push_installments(&mut self, rows: Vec<serde_json::Value>) {
        self.push(
            "INSERT INTO installments (id, intent_id, payer_id, payment_profile_id, account_id, amount_ore, \
             amount_open_ore, due_date, status, payment_reference, bank_statement_description, product, mandate_id, \
             created_at, updated_at) \
             SELECT {r}->>0, {r}->>1, {r}->>2, {r}->>3, {r}->>4, CAST({r}->>5 AS BIGINT), CAST({r}->>5 AS BIGINT), \
             {r}->>6, 'Outstanding', {r}->>7, {r}->>8, {r}->>9, {r}->>11, {r}->>10, {r}->>10 FROM {rows}",
            rows,
            Vec::new(),
        );
    }

    /// Records Vipps' answers to creates, each at its own time: each payment still `CREATING` becomes `CREATED`
    /// with its landing page (as [`crate::store::vipps_payments::update_vipps_payment`] does one, with no error);
    /// a payment another path already moved on (read back as authorized, say) is left as it is.
    pub fn mark_created(&mut self, created: &[(&str, Option<&str>, DateTime<Utc>)]) {
        let rows = created.iter().map(|(reference, url, at)| json!([reference, url, timestamp(*at)])).collect();
        self.push(
            "UPDATE vipps_payments SET state = 'CREATED', \
             redirect_url = COALESCE(answer.url, vipps_payments.redirect_url), last_error = NULL, \
             updated_at = answer.at \
             FROM (SELECT {r}->>0 AS reference, {r}->>1 AS url, {r}->>2 AS at FROM {rows}) AS answer \
             WHERE vipps_payments.reference = answer.reference AND vipps_payments.state = 'CREATING'",
            rows,
            Vec::new(),
        );
    }

    /// Moves installments to `next` where that is a move forward, each at its own time (as
    /// [`crate::store::installments::advance_installment`] does one, with no reason and no change of the open amount).
    pub fn advance_installments(&mut self, moves: &[(&str, DateTime<Utc>)], next: InstallmentStatus) {
        // The list holds our own constants.
        let from: Vec<String> =
            InstallmentStatus::ALL.iter().filter(|s| s.can_become(next)).map(|s| format!("'{}'", s.as_str())).collect();
        if from.is_empty() {
            return;
        }
        let rows = moves.iter().map(|(id, at)| json!([id, timestamp(*at)])).collect();
        self.push(
            &format!(
                "UPDATE installments SET status = $2, updated_at = moved.at \
                 FROM (SELECT {{r}}->>0 AS id, {{r}}->>1 AS at FROM {{rows}}) AS moved \
                 WHERE installments.id = moved.id AND installments.status IN ({})",
                from.join(", ")
            ),
            rows,
            vec![next.as_str().to_owned()],
        );
    }

    /// Moves many intents to `status` where that is a move forward, each at its own time (as
    /// [`crate::store::intents::set_intent_status`] does one).
    pub fn set_intents_status(&mut self, changes: &[(&str, DateTime<Utc>)], status: IntentStatus) {
        // The list holds our own constants.
        let from: Vec<String> =
            IntentStatus::ALL.iter().filter(|s| s.can_become(status)).map(|s| format!("'{}'", s.as_str())).collect();
        if from.is_empty() {
            return;
        }
        let rows = changes.iter().map(|(id, at)| json!([id, timestamp(*at)])).collect();
        self.push(
            &format!(
                "UPDATE payment_intents SET status = $2, updated_at = changed.at \
                 FROM (SELECT {{r}}->>0 AS id, {{r}}->>1 AS at FROM {{rows}}) AS changed \
                 WHERE payment_intents.id = changed.id AND payment_intents.status IN ({})",
                from.join(", ")
            ),
            rows,
            vec![status.as_str().to_owned()],
        );
    }

    /// Creates payers (as [`crate::store::payers::create_payer`] does one); a payer whose email or phone is taken
    /// meanwhile is skipped, and is found by reading again.
    pub fn insert_payers(&mut self, payers: &[(&str, &PayerInput, DateTime<Utc>)]) {
        let rows = payers
            .iter()
            .map(|(id, payer, at)| {
                json!([
                    id,
                    payer.first_name,
                    payer.last_name,
                    payer.email,
                    payer.phone.as_ref().map(|p| p.as_str()),
                    serde_json::to_string(&payer.fields).unwrap_or_else(|_| "{}".into()),
                    timestamp(*at)
                ])
            })
            .collect();
        self.push(
            "INSERT INTO payers (id, first_name, last_name, email, phone, fields, created_at, updated_at) \
             SELECT {r}->>0, {r}->>1, {r}->>2, {r}->>3, {r}->>4, {r}->>5, {r}->>6, {r}->>6 FROM {rows} \
             WHERE true ON CONFLICT DO NOTHING",
            rows,
            Vec::new(),
        );
    }

    /// Creates Vipps wallet profiles (as [`crate::store::payers::create_profile`] does one); one that exists
    /// meanwhile is skipped, and is found by reading again.
    pub fn insert_profiles(&mut self, profiles: &[(&str, &str, Option<&str>, DateTime<Utc>)]) {
        let rows = profiles
            .iter()
            .map(|(id, payer_id, phone, at)| json!([id, payer_id, phone.unwrap_or_default(), timestamp(*at)]))
            .collect();
        self.push(
            "INSERT INTO payment_profiles (id, payer_id, record_type, wallet_type, identifier, created_at) \
             SELECT {r}->>0, {r}->>1, 'Wallet', 'Vipps', {r}->>2, {r}->>3 FROM {rows} WHERE true \
             ON CONFLICT DO NOTHING",
            rows,
            Vec::new(),
        );
    }
}

/// Looks up each value of `keys` with `sql` (which names `{list}` where the `IN` list goes), in chunks of at
/// most [`IN_LIST`] values, and returns every row found.
async fn read_in<C: BatchConn>(conn: &mut C, sql: &str, keys: &[&str]) -> StoreResult<Rows> {
    let mut found = Vec::new();
    for chunk in keys.chunks(IN_LIST) {
        let chunk = pad(chunk);
        let params: Vec<String> = chunk.iter().map(|k| (*k).to_owned()).collect();
        found.extend(conn.read(&sql.replace("{list}", &list(1, params.len())), &params).await?);
    }
    Ok(found)
}

/// Payers by lower-cased email (`{list}` is the `IN` list). `email IS NOT NULL` lets the partial unique index
/// serve the lookup; without it SQLite scans every payer.
const PAYERS_BY_EMAIL: &str =
    "SELECT id, lower(email) FROM payers WHERE email IS NOT NULL AND lower(email) IN ({list})";

/// Payers by phone, newest first.
const PAYERS_BY_PHONE: &str = "SELECT id, phone FROM payers WHERE phone IN ({list}) ORDER BY created_at DESC";

/// The Vipps wallet profiles of payers.
const PROFILES_OF_PAYERS: &str =
    "SELECT id, payer_id, identifier FROM payment_profiles WHERE wallet_type = 'Vipps' AND payer_id IN ({list})";

/// Installments with their intents' payer and `WebhookURL`, as [`installments_for_events`] reads them.
const INSTALLMENTS_FOR_EVENTS: &str = "SELECT i.id, i.intent_id, i.payer_id, i.account_id, \
    CAST(i.amount_ore AS TEXT), CAST(i.amount_open_ore AS TEXT), i.due_date, i.status, i.status_reason, \
    i.payment_reference, i.bank_statement_description, i.product, i.recurring_payment_id, i.mandate_id, p.payer_id, \
    p.webhook_url FROM installments i JOIN payment_intents p ON p.id = i.intent_id WHERE i.id IN ({list})";

/// The payments of installments, oldest first.
const PAYMENTS_FOR_EVENTS: &str = "SELECT id, installment_id, CAST(amount_ore AS TEXT), collection_date, \
    psp_reference, kind, inbound_report_id FROM payments WHERE installment_id IN ({list}) ORDER BY created_at, id";

/// [`crate::store::payers::find_payer`] for many payers at once, in order. Emails are compared lower-cased as the
/// unique index does; an email that is not plain ASCII (where case rules could differ between Rust and the
/// database) is looked up on its own.
pub(crate) async fn find_payers<C: BatchConn>(
    conn: &mut C,
    payers: &[&PayerInput],
) -> StoreResult<Vec<Option<String>>> {
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
    let emails: Vec<&str> = emails.iter().map(String::as_str).collect();
    let mut by_email: HashMap<String, String> = HashMap::new();
    for row in read_in(&mut *conn, PAYERS_BY_EMAIL, &emails).await? {
        by_email.insert(text(&row, 1, "payer email")?.to_owned(), text(&row, 0, "payer id")?.to_owned());
    }
    let mut by_phone: HashMap<String, String> = HashMap::new();
    // Newest first, so that the oldest payer with the phone is the one kept, as the single lookup orders.
    for row in read_in(&mut *conn, PAYERS_BY_PHONE, &phones).await? {
        by_phone.insert(text(&row, 1, "payer phone")?.to_owned(), text(&row, 0, "payer id")?.to_owned());
    }
    let mut found: Vec<Option<String>> = payers
        .iter()
        .map(|payer| match (&payer.email, &payer.phone) {
            (Some(email), _) if email.is_ascii() => by_email.get(&email.to_ascii_lowercase()).cloned(),
            (None, Some(phone)) => by_phone.get(phone.as_str()).cloned(),
            _ => None,
        })
        .collect();
    for i in alone {
        let email = payers[i].email.clone().unwrap_or_default();
        let rows = conn.read(payers::PAYER_BY_EMAIL, &[email]).await?;
        found[i] = rows.first().map(|row| text(row, 0, "payer id").map(str::to_owned)).transpose()?;
    }
    Ok(found)
}

/// [`crate::store::payers::find_profile`] for many (payer, phone) pairs at once, in order.
pub(crate) async fn find_profiles<C: BatchConn>(
    conn: &mut C,
    wanted: &[(&str, Option<&str>)],
) -> StoreResult<Vec<Option<String>>> {
    let mut payer_ids: Vec<&str> = wanted.iter().map(|(payer, _)| *payer).collect();
    payer_ids.sort_unstable();
    payer_ids.dedup();
    let mut by_key: HashMap<(String, String), String> = HashMap::new();
    for row in read_in(&mut *conn, PROFILES_OF_PAYERS, &payer_ids).await? {
        let key = (text(&row, 1, "profile payer")?.to_owned(), text(&row, 2, "profile identifier")?.to_owned());
        by_key.insert(key, text(&row, 0, "profile id")?.to_owned());
    }
    Ok(wanted
        .iter()
        .map(|(payer, phone)| by_key.get(&((*payer).to_owned(), phone.unwrap_or_default().to_owned())).cloned())
        .collect())
}

/// An installment as its events describe it, with its intent's payer and `WebhookURL`.
pub(crate) struct InstallmentForEvents {
    /// The installment as it stands.
    pub installment: InstallmentRow,
    /// Its payments, oldest first.
    pub payments: Vec<PaymentRow>,
    /// The payer of the intent that made it.
    pub intent_payer_id: String,
    /// That intent's `WebhookURL`.
    pub webhook_url: Option<String>,
}

/// The installments of one-time intents with `ids`, as their events describe them, by id (an id with no such
/// installment is absent).
pub(crate) async fn installments_for_events<C: BatchConn>(
    conn: &mut C,
    ids: &[&str],
) -> StoreResult<HashMap<String, InstallmentForEvents>> {
    let mut found = HashMap::new();
    for row in read_in(&mut *conn, INSTALLMENTS_FOR_EVENTS, ids).await? {
        let status = text(&row, 7, "installment status")?;
        let due = text(&row, 6, "installment due date")?;
        let installment = InstallmentRow {
            id: text(&row, 0, "installment id")?.to_owned(),
            intent_id: optional(&row, 1),
            payer_id: text(&row, 2, "installment payer")?.to_owned(),
            account_id: text(&row, 3, "installment account")?.to_owned(),
            amount_ore: integer(&row, 4, "installment amount")?,
            amount_open_ore: integer(&row, 5, "installment open amount")?,
            due_date: chrono::NaiveDate::parse_from_str(due, "%Y-%m-%d")
                .map_err(|_| decode_error(format!("installment due date {due}")))?,
            status: status.parse().map_err(|_| decode_error(format!("installment status {status}")))?,
            status_reason: optional(&row, 8),
            payment_reference: text(&row, 9, "installment reference")?.to_owned(),
            bank_statement_description: optional(&row, 10),
            product: optional(&row, 11),
            recurring_payment_id: optional(&row, 12),
            mandate_id: optional(&row, 13),
        };
        let events = InstallmentForEvents {
            installment,
            payments: Vec::new(),
            intent_payer_id: text(&row, 14, "intent payer")?.to_owned(),
            webhook_url: optional(&row, 15),
        };
        found.insert(events.installment.id.clone(), events);
    }
    if found.is_empty() {
        return Ok(found);
    }
    for row in read_in(&mut *conn, PAYMENTS_FOR_EVENTS, ids).await? {
        let date = text(&row, 3, "payment collection date")?;
        let payment = PaymentRow {
            id: text(&row, 0, "payment id")?.to_owned(),
            amount_ore: integer(&row, 2, "payment amount")?,
            collection_date: chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
                .map_err(|_| decode_error(format!("payment collection date {date}")))?,
            psp_reference: text(&row, 4, "payment psp reference")?.to_owned(),
            kind: text(&row, 5, "payment kind")?.to_owned(),
            inbound_report_id: optional(&row, 6),
            ledger_date: None,
            fee_ore: None,
            net_amount_ore: None,
            payout_id: None,
        };
        if let Some(events) = found.get_mut(text(&row, 1, "payment installment")?) {
            events.payments.push(payment);
        }
    }
    Ok(found)
}

/// A new intent's row for [`Steps::push_intents`].
fn intent_row(n: &NewOneTime<'_>, installment_id: Option<&str>, at: &str) -> serde_json::Value {
    json!([
        n.intent_id,
        n.report_id,
        n.account_id,
        n.payer_id,
        installment_id,
        n.success_url,
        n.failure_url,
        n.webhook_url,
        n.origin,
        n.campaign_id,
        at
    ])
}

/// A new installment's row for [`Steps::push_installments`] (under a mandate for a recurring intent's initial
/// payment).
fn installment_row(n: &NewOneTime<'_>, mandate_id: Option<&str>, at: &str, date: &str) -> serde_json::Value {
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
        at,
        mandate_id
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite's plan for `sql` with `params`, one line per step.
    async fn plan(store: &crate::store::Store, sql: &str, params: &[String]) -> Vec<String> {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut query: AnyQuery<'_> = sqlx::query(&explain);
        for param in params {
            query = query.bind(param.as_str());
        }
        let rows = query.fetch_all(store.pool()).await.unwrap();
        rows.iter().map(|row| row.try_get::<String, _>(3).unwrap()).collect()
    }

    #[tokio::test]
    async fn every_read_and_write_of_a_batch_finds_its_rows_by_index() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("plan.db").display());
        let store = crate::store::Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let tables = ["payers", "payment_profiles", "installments", "payments", "payment_intents", "vipps_payments"];
        let scans = |plan: &[String]| -> Vec<String> {
            plan.iter().filter(|step| tables.iter().any(|t| step.starts_with(&format!("SCAN {t}")))).cloned().collect()
        };
        for read in [PAYERS_BY_EMAIL, PAYERS_BY_PHONE, PROFILES_OF_PAYERS, INSTALLMENTS_FOR_EVENTS, PAYMENTS_FOR_EVENTS]
        {
            let sql = read.replace("{list}", "$1, $2");
            let steps = plan(&store, &sql, &["a".into(), "b".into()]).await;
            assert!(scans(&steps).is_empty(), "{read}: {steps:?}");
        }
        let single = plan(&store, payers::PAYER_BY_EMAIL, &["a@example.org".into()]).await;
        assert!(scans(&single).is_empty(), "{single:?}");
        let now = chrono::Utc::now();
        let mut steps = Steps::default();
        steps.mark_created(&[("pi-1", None, now)]);
        steps.advance_installments(&[("ins_1", now)], InstallmentStatus::Pending);
        steps.set_intents_status(&[("pi_1", now)], IntentStatus::Matched);
        for (sql, params) in steps.sqlite() {
            let steps = plan(&store, sql, params).await;
            assert!(scans(&steps).is_empty(), "{sql}: {steps:?}");
        }
    }

    #[test]
    fn lists_count_parameters_from_where_they_start_and_templates_become_both_dialects() {
        assert_eq!(list(3, 3), "$3, $4, $5");
        let (sqlite, postgres) = dialects("SELECT {r}->>0 FROM {rows}");
        assert_eq!(sqlite, "SELECT value->>0 FROM json_each($1)");
        assert_eq!(postgres, "SELECT v->>0 FROM jsonb_array_elements($1::jsonb) AS t(v)");
    }
}
