//! `POST /_sim/report/bulk`: many captures booked at once on an API sales unit's ledger, for benchmarks of
//! ledger consumers (a real day's traffic would take hours to drive through the ePayment API).

use axum::extract::State;
use bytes::Bytes;
use chrono::{Duration, NaiveDate};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::book::{end_of, oslo_date};
use crate::reply::{sim_error, Reply};
use crate::state::{MoneyMovement, MovementKind, SharedSim};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BulkLedger {
    count: u64,
    #[serde(default)]
    msn: Option<String>,
    #[serde(default)]
    date: Option<NaiveDate>,
    #[serde(default)]
    amount_ore: Option<i64>,
    #[serde(default)]
    reference_prefix: Option<String>,
}

/// `POST /_sim/report/bulk` `{"count": N, "msn"?, "date"?: "YYYY-MM-DD", "amountOre"?: 10000,
/// "referencePrefix"?: "bulk-"}`: books N captures (pspReference `8<yymmdd><i>`, reference `<prefix><i>`, i
/// from 0) during the Norwegian date `date` (default: yesterday on the virtual clock) on the sales unit `msn`
/// (default: the merchant with the lowest MSN). They become ledger rows like any capture (with their fees, and the date's
/// fees-retained and payout when it closes), so the date must not have been closed by a Report API read yet.
/// → `201` `{"msn", "date", "count", "firstPspReference", "lastPspReference"}`.
pub(crate) async fn sim_bulk_ledger(State(sim): State<SharedSim>, body: Bytes) -> Reply {
    let req: BulkLedger = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return sim_error(StatusCode::BAD_REQUEST, &format!("expected {{\"count\": N}}: {e}")),
    };
    if !(1..=10_000_000).contains(&req.count) {
        return sim_error(StatusCode::BAD_REQUEST, "count must be 1 to 10000000");
    }
    let amount = req.amount_ore.unwrap_or(10_000);
    if !(100..=65_000_000).contains(&amount) {
        return sim_error(StatusCode::BAD_REQUEST, "amountOre must be 100 to 65000000");
    }
    let now = sim.clock.now();
    let date = req.date.unwrap_or_else(|| oslo_date(now).pred_opt().unwrap_or_default());
    let prefix = req.reference_prefix.unwrap_or_else(|| "bulk-".into());
    let mut db = sim.lock();
    let msn = match req.msn {
        Some(m) => m,
        None => match db.merchants.keys().min() {
            Some(m) => m.clone(),
            None => return sim_error(StatusCode::BAD_REQUEST, "no merchant"),
        },
    };
    // Spread over the date from 06:00 Oslo time, a millisecond apart (a million fit in under three hours).
    let start = end_of(date) - Duration::hours(18);
    let day = date.format("%y%m%d").to_string();
    let psp = |i: u64| format!("8{day}{i:08}");
    for i in 0..req.count {
        let movement = MoneyMovement {
            kind: MovementKind::Capture,
            amount,
            currency: "NOK".into(),
            psp_reference: psp(i),
            reference: format!("{prefix}{i}"),
            agreement_id: None,
            external_id: None,
            at: start + Duration::milliseconds(i64::try_from(i).unwrap_or(i64::MAX)),
        };
        db.record_movement(&msn, movement);
    }
    Reply::json(
        StatusCode::CREATED,
        &json!({"msn": msn, "date": date.to_string(), "count": req.count,
                "firstPspReference": psp(0), "lastPspReference": psp(req.count - 1)}),
    )
}
