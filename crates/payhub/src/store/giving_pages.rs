//! The `giving_pages` and `giving_donations` tables: hosted donation pages (settings stored whole, as checked
//! JSON) and which intent each page submission became.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{get_bool, map_conflict, parse_timestamp, timestamp, StoreError, StoreResult};
use crate::domain::giving_page::GivingPageSettings;

/// A stored Giving Page.
#[derive(Debug, Clone)]
pub struct GivingPageRecord {
    /// `gp_…`
    pub id: String,
    /// The checked settings (their `slug` and `active` mirror the columns).
    pub settings: GivingPageSettings,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, slug, settings, active, created_at, updated_at";

fn from_row(row: &AnyRow) -> StoreResult<GivingPageRecord> {
    let text: String = row.try_get("settings")?;
    let mut settings: GivingPageSettings =
        serde_json::from_str(&text).map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))?;
    settings.slug = row.try_get("slug")?;
    settings.active = get_bool(row, "active")?;
    Ok(GivingPageRecord {
        id: row.try_get("id")?,
        settings,
        created_at: parse_timestamp(&row.try_get::<String, _>("created_at")?)?,
        updated_at: parse_timestamp(&row.try_get::<String, _>("updated_at")?)?,
    })
}

fn settings_json(settings: &GivingPageSettings) -> StoreResult<String> {
    serde_json::to_string(settings).map_err(|e| StoreError::Database(sqlx::Error::Encode(Box::new(e))))
}

/// Every page, by slug.
pub async fn list(conn: &mut AnyConnection) -> StoreResult<Vec<GivingPageRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM giving_pages ORDER BY slug");
    sqlx::query(&sql).fetch_all(conn).await?.iter().map(from_row).collect()
}

/// One page by id.
pub async fn get(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<GivingPageRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM giving_pages WHERE id = $1");
    sqlx::query(&sql).bind(id).fetch_optional(conn).await?.as_ref().map(from_row).transpose()
}

/// One page by its slug.
pub async fn by_slug(conn: &mut AnyConnection, slug: &str) -> StoreResult<Option<GivingPageRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM giving_pages WHERE slug = $1");
    sqlx::query(&sql).bind(slug).fetch_optional(conn).await?.as_ref().map(from_row).transpose()
}

/// Adds a page; a taken slug is [`StoreError::Conflict`].
pub async fn insert(conn: &mut AnyConnection, record: &GivingPageRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO giving_pages (id, slug, settings, active, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&record.id)
    .bind(&record.settings.slug)
    .bind(settings_json(&record.settings)?)
    .bind(record.settings.active)
    .bind(timestamp(record.created_at))
    .bind(timestamp(record.updated_at))
    .execute(conn)
    .await
    .map_err(map_conflict)?;
    Ok(())
}

/// Replaces a page's settings; a taken slug is [`StoreError::Conflict`], a missing page [`StoreError::NotFound`].
pub async fn update(
    conn: &mut AnyConnection,
    id: &str,
    settings: &GivingPageSettings,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let done =
        sqlx::query("UPDATE giving_pages SET slug = $1, settings = $2, active = $3, updated_at = $4 WHERE id = $5")
            .bind(&settings.slug)
            .bind(settings_json(settings)?)
            .bind(settings.active)
            .bind(timestamp(at))
            .bind(id)
            .execute(conn)
            .await
            .map_err(map_conflict)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Deletes a page that never took a gift (one that did is kept for its donations' sake: deactivate it).
/// Returns whether a row went.
pub async fn delete_unused(conn: &mut AnyConnection, id: &str) -> StoreResult<bool> {
    let done = sqlx::query(
        "DELETE FROM giving_pages WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM giving_donations WHERE page_id = $1)",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Records which intent a page submission became, under the thank-you page's token.
pub async fn insert_donation(
    conn: &mut AnyConnection,
    token: &str,
    page_id: &str,
    intent_id: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO giving_donations (token, page_id, intent_id, created_at) VALUES ($1, $2, $3, $4)")
        .bind(token)
        .bind(page_id)
        .bind(intent_id)
        .bind(timestamp(at))
        .execute(conn)
        .await?;
    Ok(())
}

/// The page id and intent id behind a thank-you page's token.
pub async fn donation(conn: &mut AnyConnection, token: &str) -> StoreResult<Option<(String, String)>> {
    let row = sqlx::query("SELECT page_id, intent_id FROM giving_donations WHERE token = $1")
        .bind(token)
        .fetch_optional(conn)
        .await?;
    row.map(|r| Ok((r.try_get("page_id")?, r.try_get("intent_id")?))).transpose()
}

/// How many gifts a page handed to the intake (for the admin list).
pub async fn donation_count(conn: &mut AnyConnection, page_id: &str) -> StoreResult<i64> {
    Ok(sqlx::query("SELECT COUNT(*) AS n FROM giving_donations WHERE page_id = $1")
        .bind(page_id)
        .fetch_one(conn)
        .await?
        .try_get("n")?)
}

/// One gift a page took, as the admin list shows it.
#[derive(Debug, Clone)]
pub struct GiftRow {
    /// The page's slug.
    pub slug: String,
    /// The intent (`pi_…`), as the Payment API knows it.
    pub intent_id: String,
    /// When the payer submitted it.
    pub created_at: DateTime<Utc>,
    /// The amount in øre (of the one-time payment, or of each recurring installment).
    pub amount_ore: i64,
    /// `OneTime`, or the recurring payment's frequency.
    pub kind: String,
    /// The installment's status (one-time) or the recurring payment's.
    pub status: String,
}

/// The newest gifts of every page.
pub async fn recent_gifts(conn: &mut AnyConnection, limit: i64) -> StoreResult<Vec<GiftRow>> {
    let rows = sqlx::query(
        "SELECT p.slug, d.intent_id, d.created_at, \
                COALESCE(i.amount_ore, r.amount_ore, 0) AS amount_ore, \
                COALESCE(r.frequency, 'OneTime') AS kind, \
                COALESCE(CASE WHEN r.id IS NULL THEN i.status ELSE r.status END, '') AS status \
         FROM giving_donations d \
         JOIN giving_pages p ON p.id = d.page_id \
         LEFT JOIN payment_intents pi ON pi.id = d.intent_id \
         LEFT JOIN recurring_payments r ON r.intent_id = d.intent_id \
         LEFT JOIN installments i ON i.id = pi.installment_id AND r.id IS NULL \
         ORDER BY d.created_at DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(GiftRow {
                slug: r.try_get("slug")?,
                intent_id: r.try_get("intent_id")?,
                created_at: parse_timestamp(&r.try_get::<String, _>("created_at")?)?,
                amount_ore: r.try_get("amount_ore")?,
                kind: r.try_get("kind")?,
                status: r.try_get("status")?,
            })
        })
        .collect()
}
