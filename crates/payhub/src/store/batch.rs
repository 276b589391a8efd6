//! Multi-row statements for group commit: the rows of many one-time intents (or of Vipps' answers to their
//! creates) written by one statement per table inside one transaction, instead of one statement per row.
//!
//! Each statement carries at most [`ROWS_PER_STATEMENT`] rows: sqlx's SQLite binding costs grow with the square
//! of a statement's parameter count, so a larger batch is split into several statements.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Row};

use super::records::{self, NewMessage, NewOneTime, NewReport};
use super::{map_conflict, timestamp, StoreResult};
use crate::domain::ids::new_id;
use crate::domain::intent::PayerInput;
use crate::domain::status::{InstallmentStatus, IntentStatus};

/// The most rows one multi-row statement carries.
pub const ROWS_PER_STATEMENT: usize = 32;

/// `rows` copies of `template` joined by commas, where `{i}` in the template stands for the row's i-th own
/// parameter (numbered after `shared` parameters common to every row, which the template names as `$1`…).
fn values(template: &str, per_row: usize, shared: usize, rows: usize) -> String {
    let mut out = String::with_capacity(rows * (template.len() + 8));
    for row in 0..rows {
        if row > 0 {
            out.push_str(", ");
        }
        let base = shared + row * per_row + 1;
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '{' {
                let mut digits = String::new();
                while let Some(d) = chars.next_if(char::is_ascii_digit) {
                    digits.push(d);
                }
                chars.next_if_eq(&'}');
                let index: usize = digits.parse().unwrap_or_default();
                out.push('$');
                out.push_str(&(base + index).to_string());
            } else {
                out.push(c);
            }
        }
    }
    out
}

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

/// Stores messages (as [`records::insert_message`] does one); returns their ids in order.
pub async fn insert_messages(
    conn: &mut AnyConnection,
    messages: &[(NewMessage<'_>, DateTime<Utc>)],
) -> StoreResult<Vec<String>> {
    let ids: Vec<String> = messages.iter().map(|_| new_id("msg")).collect();
    for (chunk, chunk_ids) in messages.chunks(ROWS_PER_STATEMENT).zip(ids.chunks(ROWS_PER_STATEMENT)) {
        let sql = format!(
            "INSERT INTO messages (id, direction, channel, subject, body, status, received_at, processed_at) VALUES {}",
            values(
                "({0}, {1}, {2}, {3}, {4}, {5}, {6}, CASE WHEN {5} = 'New' THEN NULL ELSE {6} END)",
                7,
                0,
                chunk.len()
            )
        );
        let mut query: AnyQuery<'_> = sqlx::query(&sql);
        for ((message, at), id) in chunk.iter().zip(chunk_ids) {
            query = query
                .bind(id.as_str())
                .bind(message.direction)
                .bind(message.channel)
                .bind(message.subject)
                .bind(message.body)
                .bind(message.status)
                .bind(timestamp(*at));
        }
        query.execute(&mut *conn).await?;
    }
    Ok(ids)
}

/// Stores inbound reports (as [`records::insert_report`] does one); returns their ids in order.
pub async fn insert_reports(
    conn: &mut AnyConnection,
    reports: &[(NewReport<'_>, DateTime<Utc>)],
) -> StoreResult<Vec<String>> {
    let ids: Vec<String> = reports.iter().map(|_| new_id("ir")).collect();
    for (chunk, chunk_ids) in reports.chunks(ROWS_PER_STATEMENT).zip(ids.chunks(ROWS_PER_STATEMENT)) {
        let sql = format!(
            "INSERT INTO inbound_reports (id, message_id, report_type, sub_type, amount_ore, report_date, reference, status, \
             installment_id, intent_id, detail, created_at, updated_at) VALUES {}",
            values("({0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}, {8}, {9}, {10}, {11}, {11})", 12, 0, chunk.len())
        );
        let mut query: AnyQuery<'_> = sqlx::query(&sql);
        for ((report, at), id) in chunk.iter().zip(chunk_ids) {
            query = query
                .bind(id.as_str())
                .bind(report.message_id)
                .bind(report.report_type)
                .bind(report.sub_type)
                .bind(report.amount_ore)
                .bind(at.date_naive().to_string())
                .bind(report.reference)
                .bind(report.status)
                .bind(report.installment_id)
                .bind(report.intent_id)
                .bind(report.detail)
                .bind(timestamp(*at));
        }
        query.execute(&mut *conn).await?;
    }
    Ok(ids)
}

/// Records many one-time intents (as [`records::insert_one_time`] does one): the intents, their installments
/// (Outstanding) and the Vipps payments to create with their idempotency keys. A payment reference that is
/// taken fails the whole call with [`super::StoreError::Conflict`].
pub async fn insert_one_times(conn: &mut AnyConnection, new: &[(NewOneTime<'_>, DateTime<Utc>)]) -> StoreResult<()> {
    let stamps: Vec<String> = new.iter().map(|(_, now)| timestamp(*now)).collect();
    let dates: Vec<String> = new.iter().map(|(_, now)| now.date_naive().to_string()).collect();
    for (start, chunk) in (0..).step_by(ROWS_PER_STATEMENT).zip(new.chunks(ROWS_PER_STATEMENT)) {
        let at = &stamps[start..start + chunk.len()];
        let sql = format!(
            "INSERT INTO payment_intents (id, inbound_report_id, status, account_id, payer_id, installment_id, success_url, \
             failure_url, webhook_url, origin, campaign_id, created_at, updated_at) VALUES {}",
            values("({0}, {1}, 'Processing', {2}, {3}, {4}, {5}, {6}, {7}, {8}, {9}, {10}, {10})", 11, 0, chunk.len())
        );
        let mut query: AnyQuery<'_> = sqlx::query(&sql);
        for ((n, _), at) in chunk.iter().zip(at) {
            query = query
                .bind(n.intent_id)
                .bind(n.report_id)
                .bind(n.account_id)
                .bind(n.payer_id)
                .bind(n.installment_id)
                .bind(n.success_url)
                .bind(n.failure_url)
                .bind(n.webhook_url)
                .bind(n.origin)
                .bind(n.campaign_id)
                .bind(at.as_str());
        }
        query.execute(&mut *conn).await?;

        let sql = format!(
            "INSERT INTO installments (id, intent_id, payer_id, payment_profile_id, account_id, amount_ore, amount_open_ore, \
             due_date, status, payment_reference, bank_statement_description, product, created_at, updated_at) VALUES {}",
            values("({0}, {1}, {2}, {3}, {4}, {5}, {5}, {6}, 'Outstanding', {7}, {8}, {9}, {10}, {10})", 11, 0, chunk.len())
        );
        let mut query: AnyQuery<'_> = sqlx::query(&sql);
        for (((n, _), at), date) in chunk.iter().zip(at).zip(&dates[start..]) {
            query = query
                .bind(n.installment_id)
                .bind(n.intent_id)
                .bind(n.payer_id)
                .bind(n.profile_id)
                .bind(n.account_id)
                .bind(n.amount_ore)
                .bind(date.as_str())
                .bind(n.payment_reference)
                .bind(n.bank_statement_description)
                .bind(n.product)
                .bind(at.as_str());
        }
        query.execute(&mut *conn).await.map_err(map_conflict)?;

        let sql = format!(
            "INSERT INTO vipps_payments (reference, installment_id, account_id, idempotency_key, amount_ore, state, \
             customer_phone, description, created_at, updated_at) VALUES {}",
            values("({0}, {1}, {2}, {1}, {3}, 'CREATING', {4}, {5}, {6}, {6})", 7, 0, chunk.len())
        );
        let mut query: AnyQuery<'_> = sqlx::query(&sql);
        for ((n, _), at) in chunk.iter().zip(at) {
            query = query
                .bind(n.payment_reference)
                .bind(n.installment_id)
                .bind(n.account_id)
                .bind(n.amount_ore)
                .bind(n.customer_phone)
                .bind(n.bank_statement_description)
                .bind(at.as_str());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
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
    for chunk in emails.chunks(ROWS_PER_STATEMENT * 4) {
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
    for chunk in phones.chunks(ROWS_PER_STATEMENT * 4) {
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
    for chunk in payer_ids.chunks(ROWS_PER_STATEMENT * 4) {
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

/// Records Vipps' answers to creates: each payment becomes `CREATED` with its landing page (as
/// [`records::update_vipps_payment`] does one, with no error).
pub async fn mark_created(
    conn: &mut AnyConnection,
    created: &[(&str, Option<&str>)],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let at = timestamp(now);
    for chunk in created.chunks(ROWS_PER_STATEMENT * 2) {
        let chunk = pad(chunk);
        let cases = values("WHEN {0} THEN {1}", 2, 1, chunk.len()).replace(", WHEN", " WHEN");
        let references: Vec<String> = (0..chunk.len()).map(|i| format!("${}", 2 + 2 * i)).collect();
        let sql = format!(
            "UPDATE vipps_payments SET state = 'CREATED', redirect_url = COALESCE(CASE reference {cases} END, redirect_url), \
             last_error = NULL, updated_at = $1 WHERE reference IN ({})",
            references.join(", ")
        );
        let mut query: AnyQuery<'_> = sqlx::query(&sql).bind(at.as_str());
        for (reference, redirect_url) in chunk {
            query = query.bind(reference).bind(redirect_url);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Moves installments to `next` where that is a move forward (as [`records::advance_installment`] does one,
/// with no reason and no change of the open amount); returns how many moved.
pub async fn advance_installments(
    conn: &mut AnyConnection,
    ids: &[&str],
    next: InstallmentStatus,
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    // The list holds our own constants.
    let from: Vec<String> =
        InstallmentStatus::ALL.iter().filter(|s| s.can_become(next)).map(|s| format!("'{}'", s.as_str())).collect();
    if from.is_empty() {
        return Ok(0);
    }
    let mut moved = 0;
    for chunk in ids.chunks(ROWS_PER_STATEMENT * 4) {
        let chunk = pad(chunk);
        let sql = format!(
            "UPDATE installments SET status = $1, updated_at = $2 WHERE id IN ({}) AND status IN ({})",
            list(3, chunk.len()),
            from.join(", ")
        );
        let mut query: AnyQuery<'_> = sqlx::query(&sql).bind(next.as_str()).bind(timestamp(now));
        for id in chunk {
            query = query.bind(id);
        }
        moved += query.execute(&mut *conn).await?.rows_affected();
    }
    Ok(moved)
}

/// Sets the status of many intents (as [`records::set_intent_status`] does one).
pub async fn set_intents_status(
    conn: &mut AnyConnection,
    ids: &[&str],
    status: IntentStatus,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    for chunk in ids.chunks(ROWS_PER_STATEMENT * 4) {
        let chunk = pad(chunk);
        let sql =
            format!("UPDATE payment_intents SET status = $1, updated_at = $2 WHERE id IN ({})", list(3, chunk.len()));
        let mut query: AnyQuery<'_> = sqlx::query(&sql).bind(status.as_str()).bind(timestamp(now));
        for id in chunk {
            query = query.bind(id);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_number_each_row_after_the_shared_parameters() {
        assert_eq!(values("({0}, 'x', {1}, {0})", 2, 0, 2), "($1, 'x', $2, $1), ($3, 'x', $4, $3)");
        assert_eq!(values("WHEN {0} THEN {1}", 2, 1, 2), "WHEN $2 THEN $3, WHEN $4 THEN $5");
        assert_eq!(list(3, 3), "$3, $4, $5");
    }
}
