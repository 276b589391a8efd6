//! Small SQL helpers the table families share: placeholder lists for multi-row statements, date and decode
//! conversions, and the id-ordered page walk. Nothing here names a table of its own.

use chrono::NaiveDate;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{StoreError, StoreResult};

/// Rows per multi-row statement. Binding costs grow with the square of a statement's parameter count in
/// sqlx's SQLite driver (each `$N` is looked up by name), so statements stay at a few thousand parameters.
pub(super) const CHUNK: usize = 100;

pub(super) fn decode<E: std::fmt::Display>(error: E) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(error.to_string().into()))
}

pub(super) fn date(row: &AnyRow, column: &str) -> StoreResult<NaiveDate> {
    let text: String = row.try_get(column)?;
    NaiveDate::parse_from_str(&text, "%Y-%m-%d").map_err(decode)
}

pub(super) fn opt_date(row: &AnyRow, column: &str) -> StoreResult<Option<NaiveDate>> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| NaiveDate::parse_from_str(&t, "%Y-%m-%d").map_err(decode)).transpose()
}

/// `($1, $2, …), (…)`: placeholders for `rows` rows of `columns` values each; `tail` is appended to each row
/// (SQL literals, or `$k` to repeat the row's k-th value).
pub(super) fn placeholders(rows: usize, columns: usize, tail: &[&str]) -> String {
    (0..rows)
        .map(|r| {
            let mut cells: Vec<String> = (1..=columns).map(|c| format!("${}", r * columns + c)).collect();
            for extra in tail {
                cells.push(match extra.strip_prefix('$').and_then(|k| k.parse::<usize>().ok()) {
                    Some(k) => format!("${}", r * columns + k),
                    None => (*extra).to_owned(),
                });
            }
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$from, $from+1, …` for an `IN (…)` list of `n` values.
pub(super) fn list(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// Ids of rows with `status` after `after_id`, in id order, read along the table's `(status, id)` index (a
/// pure range scan on both backends, whatever share of the table has that status).
pub(super) async fn ids_page(
    conn: &mut AnyConnection,
    table: &str,
    status: &str,
    after_id: &str,
    limit: i64,
) -> StoreResult<Vec<String>> {
    let sql = format!("SELECT id FROM {table} WHERE status = $1 AND id > $2 ORDER BY status, id LIMIT $3");
    let rows = sqlx::query(&sql).bind(status).bind(after_id).bind(limit).fetch_all(conn).await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_rows_then_columns() {
        assert_eq!(placeholders(2, 3, &[]), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(placeholders(2, 2, &["'x'", "$2"]), "($1, $2, 'x', $2), ($3, $4, 'x', $4)");
        assert_eq!(list(3, 2), "$3, $4");
    }
}
