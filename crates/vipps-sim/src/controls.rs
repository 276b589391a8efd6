//! General `/_sim/` controls: the virtual clock and the merchant list. Payment, agreement,
//! webhook and fault controls live beside the API they drive.

use axum::extract::State;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{StatusCode, Uri};
use serde::Deserialize;
use serde_json::json;

use crate::reply::{sim_error, Reply};
use crate::state::SharedSim;

fn clock_body(now: DateTime<Utc>) -> Reply {
    Reply::json(
        StatusCode::OK,
        &json!({"now": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true), "epochSeconds": now.timestamp()}),
    )
}

/// `GET /_sim/clock` → `{"now": RFC 3339, "epochSeconds": N}`.
pub(crate) async fn get_clock(State(sim): State<SharedSim>) -> Reply {
    clock_body(sim.clock.now())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: i64,
}

/// `POST /_sim/clock/advance` `{"seconds": N}` (N ≥ 0): moves the clock and processes all work
/// that became due (expiries, charges), in time order. Answers like `GET /_sim/clock`.
pub(crate) async fn advance_clock(State(sim): State<SharedSim>, body: Bytes) -> Reply {
    let req: Advance = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return sim_error(StatusCode::BAD_REQUEST, &format!("expected {{\"seconds\": N}}: {e}")),
    };
    if !(0..=100 * 366 * 86400).contains(&req.seconds) {
        return sim_error(StatusCode::BAD_REQUEST, "seconds must be between 0 and 100 years");
    }
    if !advance(&sim, req.seconds) {
        return sim_error(StatusCode::BAD_REQUEST, "the virtual clock stops at 9000-01-01");
    }
    clock_body(sim.clock.now())
}

/// Advances the clock by `seconds`, running due work at each timer's own time; false if the
/// clock would pass its end (then nothing moves).
pub(crate) fn advance(sim: &SharedSim, seconds: i64) -> bool {
    let moved = sim.clock.advance(seconds);
    sim.process_due();
    moved
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetClock {
    now: DateTime<Utc>,
}

/// `PUT /_sim/clock` `{"now": RFC 3339}`: moves the clock forward to that time (never back:
/// an earlier time is refused with 409) and processes due work.
pub(crate) async fn set_clock(State(sim): State<SharedSim>, body: Bytes) -> Reply {
    let req: SetClock = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return sim_error(StatusCode::BAD_REQUEST, &format!("expected {{\"now\": RFC 3339}}: {e}")),
    };
    if req.now > crate::clock::latest() {
        return sim_error(StatusCode::BAD_REQUEST, "the virtual clock stops at 9000-01-01");
    }
    if !sim.clock.set(req.now) {
        return sim_error(StatusCode::CONFLICT, "the virtual clock never goes backwards");
    }
    sim.process_due();
    clock_body(sim.clock.now())
}

/// `GET /_sim/merchants` → `{"merchants": [{msn, clientId, clientSecret, subscriptionKey}]}`.
pub(crate) async fn merchants(State(sim): State<SharedSim>) -> Reply {
    let list: Vec<_> = sim
        .config
        .merchants
        .iter()
        .map(|m| {
            json!({"msn": m.msn, "clientId": m.client_id, "clientSecret": m.client_secret,
                   "subscriptionKey": m.subscription_key})
        })
        .collect();
    Reply::json(StatusCode::OK, &json!({"merchants": list}))
}

/// `DELETE /_sim/idempotency`: forgets every remembered Idempotency-Key, as Vipps does once its retention
/// (undocumented, §10.5) has passed: a repeat with such a key runs anew (a create then meets its own reference,
/// 409/4150) → `204`.
pub(crate) async fn forget_idempotency_keys(State(sim): State<SharedSim>) -> Reply {
    sim.lock().idem.clear();
    Reply::empty(StatusCode::NO_CONTENT)
}

/// Unknown paths: `404` Problem JSON.
pub(crate) async fn not_found(uri: Uri) -> Reply {
    sim_error(StatusCode::NOT_FOUND, &format!("no such resource: {}", uri.path()))
}
