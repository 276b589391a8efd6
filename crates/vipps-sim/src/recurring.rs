//! Recurring API v3 (reference §5). Placeholder until the full implementation lands.

use axum::extract::State;
use chrono::{DateTime, Utc};
use http::StatusCode;

use crate::reply::{sim_error, Reply};
use crate::state::{Db, SharedSim};

/// Agreements and charges.
#[derive(Default)]
pub(crate) struct Store {}

pub(crate) fn expire_agreement(_db: &mut Db, _id: &str, _at: DateTime<Utc>) {}
pub(crate) fn attempt_charge(_db: &mut Db, _a: &str, _c: &str, _at: DateTime<Utc>) {}

pub(crate) async fn todo_reply(State(_sim): State<SharedSim>) -> Reply {
    sim_error(
        StatusCode::NOT_IMPLEMENTED,
        "Recurring v3 is not implemented yet",
    )
}

pub(crate) use todo_reply as draft;
pub(crate) use todo_reply as list_agreements;
pub(crate) use todo_reply as create_charges_async;
pub(crate) use todo_reply as get_agreement;
pub(crate) use todo_reply as update_agreement;
pub(crate) use todo_reply as force_accept;
pub(crate) use todo_reply as create_charge;
pub(crate) use todo_reply as list_charges;
pub(crate) use todo_reply as get_charge;
pub(crate) use todo_reply as cancel_charge;
pub(crate) use todo_reply as capture_charge;
pub(crate) use todo_reply as refund_charge;
pub(crate) use todo_reply as get_charge_by_id;
pub(crate) use todo_reply as sim_action;
pub(crate) use todo_reply as sim_fail_next_charge;
