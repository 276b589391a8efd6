//! Mandates: payhub's side of a Vipps agreement, recorded before the agreement is drafted; their status only
//! moves forward, and the agreement's Vipps status is kept beside it.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::sql::decode;
use super::{timestamp, Backend, StoreResult};
use crate::domain::recurring::MandateStatus;
use crate::domain::vipps_state::AgreementState;

/// A mandate row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MandateRow {
    /// `mdt_…`
    pub id: String,
    /// The merchant account.
    pub account_id: String,
    /// The payer.
    pub payer_id: String,
    /// The intent that asked for it.
    pub intent_id: Option<String>,
    /// The Vipps agreement id (`agr_…`), once Vipps confirmed the draft.
    pub agreement_id: Option<String>,
    /// payhub's status.
    #[serde(serialize_with = "mandate_status_text")]
    pub status: MandateStatus,
    /// `CREATING` (draft not confirmed), `REFUSED`, or the agreement's Vipps status.
    pub vipps_status: AgreementState,
    /// The Idempotency-Key of the draft call.
    pub idempotency_key: String,
    /// Where the payer confirms the agreement.
    pub confirmation_url: Option<String>,
    /// Product name.
    pub product_name: String,
    /// Merchant agreement page.
    pub merchant_agreement_url: String,
    /// Where Vipps sends the payer back.
    pub redirect_url: String,
    /// Phone sent to Vipps.
    pub customer_phone: Option<String>,
    /// Agreement price in øre.
    pub price_ore: i64,
    /// Interval unit.
    pub interval_unit: String,
    /// Interval count.
    pub interval_count: i64,
    /// The installment of the initial payment.
    pub initial_installment_id: Option<String>,
    /// The last error from Vipps.
    pub last_error: Option<String>,
}

fn mandate_status_text<S: serde::Serializer>(status: &MandateStatus, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(status.as_str())
}

fn mandate_from_row(row: &AnyRow) -> StoreResult<MandateRow> {
    let status: String = row.try_get("status")?;
    Ok(MandateRow {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        payer_id: row.try_get("payer_id")?,
        intent_id: row.try_get("intent_id")?,
        agreement_id: row.try_get("agreement_id")?,
        status: status.parse().map_err(decode)?,
        vipps_status: AgreementState::parse(&row.try_get::<String, _>("vipps_status")?),
        idempotency_key: row.try_get("idempotency_key")?,
        confirmation_url: row.try_get("confirmation_url")?,
        product_name: row.try_get("product_name")?,
        merchant_agreement_url: row.try_get("merchant_agreement_url")?,
        redirect_url: row.try_get("redirect_url")?,
        customer_phone: row.try_get("customer_phone")?,
        price_ore: row.try_get("price_ore")?,
        interval_unit: row.try_get("interval_unit")?,
        interval_count: row.try_get("interval_count")?,
        initial_installment_id: row.try_get("initial_installment_id")?,
        last_error: row.try_get("last_error")?,
    })
}

/// One mandate by id (`mdt_…`) or by agreement id (`agr_…`).
pub async fn mandate(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<MandateRow>> {
    sqlx::query("SELECT * FROM mandates WHERE id = $1 OR agreement_id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(mandate_from_row)
        .transpose()
}

/// A mandate by id, locked like [`super::charges::lock_charge`].
pub async fn lock_mandate(conn: &mut AnyConnection, backend: Backend, id: &str) -> StoreResult<Option<MandateRow>> {
    let sql = match backend {
        Backend::Postgres => "SELECT * FROM mandates WHERE id = $1 FOR UPDATE",
        Backend::Sqlite => "SELECT * FROM mandates WHERE id = $1",
    };
    sqlx::query(sql).bind(id).fetch_optional(conn).await?.as_ref().map(mandate_from_row).transpose()
}

/// Records Vipps' answer to the draft: the agreement id and where the payer confirms it.
pub async fn set_mandate_drafted(
    conn: &mut AnyConnection,
    id: &str,
    agreement_id: &str,
    confirmation_url: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE mandates SET agreement_id = $2, confirmation_url = $3, vipps_status = 'PENDING', last_error = NULL, \
         updated_at = $4 WHERE id = $1 AND vipps_status = 'CREATING'",
    )
    .bind(id)
    .bind(agreement_id)
    .bind(confirmation_url)
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(())
}

/// Records an error from Vipps on a mandate (the draft keeps `CREATING` unless `refused`). A refusal only
/// lands on a draft still `CREATING`: an agreement Vipps confirmed meanwhile is never marked refused.
pub async fn set_mandate_error(
    conn: &mut AnyConnection,
    id: &str,
    error: &str,
    refused: bool,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE mandates SET last_error = $2, vipps_status = CASE WHEN $3 = 1 AND vipps_status = 'CREATING' THEN 'REFUSED' ELSE vipps_status END, \
         updated_at = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .bind(i64::from(refused))
    .bind(timestamp(now))
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves a mandate to `next` (with the agreement's Vipps status) if that is a move forward; returns whether
/// it moved. The Vipps status is recorded either way where that is a move forward
/// ([`AgreementState::may_become`]): a stale answer never moves it back.
pub async fn move_mandate(
    conn: &mut AnyConnection,
    id: &str,
    next: MandateStatus,
    vipps_status: &AgreementState,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    use MandateStatus::*;
    let from: Vec<String> = [Pending, Active, Stopped, Expired, Cancelled]
        .iter()
        .filter(|s| s.can_become(next))
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    let at = timestamp(now);
    let moved = if from.is_empty() {
        false
    } else {
        let sql = format!(
            "UPDATE mandates SET status = $2, vipps_status = $3, updated_at = $4 WHERE id = $1 AND status IN ({})",
            from.join(", ")
        );
        sqlx::query(&sql)
            .bind(id)
            .bind(next.as_str())
            .bind(vipps_status.as_str())
            .bind(&at)
            .execute(&mut *conn)
            .await?
            .rows_affected()
            == 1
    };
    if !moved {
        // The list holds our own constants.
        let from: Vec<String> = AgreementState::KNOWN
            .iter()
            .filter(|s| s.may_become(vipps_status))
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        if from.is_empty() {
            return Ok(false);
        }
        let sql = format!(
            "UPDATE mandates SET vipps_status = $2, updated_at = $3 WHERE id = $1 AND vipps_status IN ({})",
            from.join(", ")
        );
        sqlx::query(&sql).bind(id).bind(vipps_status.as_str()).bind(&at).execute(conn).await?;
    }
    Ok(moved)
}

/// Updates the price recorded for a mandate's agreement.
pub async fn set_mandate_price(
    conn: &mut AnyConnection,
    id: &str,
    price_ore: i64,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query("UPDATE mandates SET price_ore = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(price_ore)
        .bind(timestamp(now))
        .execute(conn)
        .await?;
    Ok(())
}

/// Records that the mandate's agreement was just read from Vipps.
pub async fn mark_checked(conn: &mut AnyConnection, id: &str, now: DateTime<Utc>) -> StoreResult<()> {
    sqlx::query("UPDATE mandates SET checked_at = $2 WHERE id = $1")
        .bind(id)
        .bind(timestamp(now))
        .execute(conn)
        .await?;
    Ok(())
}

/// Active mandates whose agreement was last read before `before` (or never), least recently read first: the
/// poll re-reads them so a stop whose webhook was lost is found before the next charge.
pub async fn unchecked_active_mandates(
    conn: &mut AnyConnection,
    before: DateTime<Utc>,
    limit: i64,
) -> StoreResult<Vec<String>> {
    let rows = sqlx::query(
        "SELECT id FROM mandates WHERE status = 'Active' AND COALESCE(checked_at, '') < $1 \
         ORDER BY COALESCE(checked_at, ''), id LIMIT $2",
    )
    .bind(timestamp(before))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Mandates whose agreement is not settled yet (draft unconfirmed, or waiting for the payer), oldest first. A
/// draft recorded at or after `drafts_before` is left out: its own request may still be waiting for Vipps, and
/// sending it again meanwhile could race that answer.
pub async fn pending_mandates(
    conn: &mut AnyConnection,
    drafts_before: DateTime<Utc>,
    limit: i64,
) -> StoreResult<Vec<String>> {
    let rows = sqlx::query(
        "SELECT id FROM mandates WHERE status = 'Pending' \
         AND (vipps_status = 'PENDING' OR (vipps_status = 'CREATING' AND created_at < $1)) \
         ORDER BY updated_at LIMIT $2",
    )
    .bind(timestamp(drafts_before))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}
