//! `/_sim/agreements/...` controls: act as the payer, and force the next charge to fail.

use super::*;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct PayerBody {
    phone_number: Option<String>,
}

/// `POST /_sim/agreements/{agreementId}/accept|reject|stop` with optional `{"phoneNumber"}` →
/// `200` with the agreement as `GET` shows it; `409` if the agreement is in the wrong status.
pub(crate) async fn sim_action(
    State(sim): State<SharedSim>,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    let req: PayerBody = if body.iter().all(u8::is_ascii_whitespace) {
        PayerBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return sim_error(StatusCode::BAD_REQUEST, &format!("expected {{\"phoneNumber\": \"47…\"}}: {e}"))
            }
        }
    };
    let now = sim.clock.now();
    let mut db = sim.lock();
    let result = match action.as_str() {
        "accept" => payer_accept(&mut db, &id, req.phone_number.as_deref(), now),
        "reject" => payer_reject(&mut db, &id, now),
        "stop" => payer_stop(&mut db, &id, now),
        _ => return sim_error(StatusCode::NOT_FOUND, "action must be accept, reject or stop"),
    };
    match result {
        Ok(()) => match db.recurring.agreements.get(&id) {
            Some(a) => Reply::json(StatusCode::OK, &agreement_json(a)),
            None => sim_error(StatusCode::NOT_FOUND, "no such agreement"),
        },
        Err(PayerError::NotFound) => sim_error(StatusCode::NOT_FOUND, "no such agreement"),
        Err(PayerError::BadPhone) => sim_error(StatusCode::BAD_REQUEST, "phoneNumber must be 10 to 15 digits"),
        Err(PayerError::NotPending(s)) => sim_error(StatusCode::CONFLICT, &format!("the agreement is {s}")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct FailNext {
    reason: String,
    attempts: Option<u32>,
}

/// `POST /_sim/agreements/{agreementId}/fail-next-charge` `{"reason": R, "attempts": N?}`: the
/// next charge processed on the agreement (the initial charge at acceptance, else the next due
/// charge) fails with `R` on its first `N` attempts (default: every attempt, so it ends `FAILED`).
pub(crate) async fn sim_fail_next_charge(State(sim): State<SharedSim>, Path(id): Path<String>, body: Bytes) -> Reply {
    let req: FailNext = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return sim_error(StatusCode::BAD_REQUEST, &format!("expected {{\"reason\": R, \"attempts\": N}}: {e}"))
        }
    };
    if !FAILURE_REASONS.contains(&req.reason.as_str()) {
        return sim_error(StatusCode::BAD_REQUEST, &format!("reason must be one of {}", FAILURE_REASONS.join(", ")));
    }
    match set_fail_next(&mut sim.lock(), &id, &req.reason, req.attempts) {
        Ok(()) => Reply::empty(StatusCode::NO_CONTENT),
        Err(e) => sim_error(StatusCode::NOT_FOUND, e),
    }
}

/// Arms a forced failure for the next charge processed on `agreement_id`.
pub(crate) fn set_fail_next(
    db: &mut Db,
    agreement_id: &str,
    reason: &str,
    attempts: Option<u32>,
) -> Result<(), &'static str> {
    if !FAILURE_REASONS.contains(&reason) {
        return Err("unknown failure reason");
    }
    if !db.recurring.agreements.contains_key(agreement_id) {
        return Err("no such agreement");
    }
    db.recurring.fail_next.insert(agreement_id.to_owned(), (attempts.unwrap_or(u32::MAX), reason.to_owned()));
    Ok(())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct DropNext {
    reason: Option<String>,
    times: Option<u32>,
}

/// `POST /_sim/agreements/{agreementId}/drop-next-batch-charge` `{"reason": R?, "times": N?}`: the next `N`
/// (default 1) charges for the agreement sent in an async batch are listed in `validCharges` but never created
/// (GET answers 404), and `recurring.charge-creation-failed.v1` with `failureReason` `R` (default
/// `technical_error`) is sent at the next processing tick → `204`.
pub(crate) async fn sim_drop_next_batch_charge(
    State(sim): State<SharedSim>,
    Path(id): Path<String>,
    body: Bytes,
) -> Reply {
    let req: DropNext = if body.iter().all(u8::is_ascii_whitespace) {
        DropNext::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return sim_error(StatusCode::BAD_REQUEST, &format!("expected {{\"reason\": R, \"times\": N}}: {e}"))
            }
        }
    };
    match set_drop_next_batch(&mut sim.lock(), &id, req.reason.as_deref(), req.times) {
        Ok(()) => Reply::empty(StatusCode::NO_CONTENT),
        Err(e) => sim_error(StatusCode::NOT_FOUND, e),
    }
}

/// Arms the asynchronous failure of the next `times` (default 1) batch charges on `agreement_id`.
pub(crate) fn set_drop_next_batch(
    db: &mut Db,
    agreement_id: &str,
    reason: Option<&str>,
    times: Option<u32>,
) -> Result<(), &'static str> {
    if !db.recurring.agreements.contains_key(agreement_id) {
        return Err("no such agreement");
    }
    let reason = reason.filter(|r| !r.is_empty()).unwrap_or("technical_error").to_owned();
    db.recurring.drop_next_batch.insert(agreement_id.to_owned(), (times.unwrap_or(1).max(1), reason));
    Ok(())
}

/// `POST /_sim/agreements/{agreementId}/charges/{chargeId}/hold-processing`: Vipps starts collecting a
/// `PENDING` or `DUE` charge now: it is `PROCESSING` (cannot be cancelled) until its attempt time, when it
/// ends `CHARGED` / `RESERVED` (or fails) as a `DUE` charge would → `200` with the charge; `409` in another
/// status.
pub(crate) async fn sim_hold_processing(
    State(sim): State<SharedSim>,
    Path((agreement_id, charge_id)): Path<(String, String)>,
) -> Reply {
    let mut db = sim.lock();
    let Some(a) = db.recurring.agreements.get_mut(&agreement_id) else {
        return sim_error(StatusCode::NOT_FOUND, "no such agreement");
    };
    let Some(c) = a.charges.iter_mut().find(|c| c.id == charge_id) else {
        return sim_error(StatusCode::NOT_FOUND, "no such charge");
    };
    if !matches!(c.status, ChargeStatus::Pending | ChargeStatus::Due) {
        return sim_error(StatusCode::CONFLICT, &format!("the charge is {}", c.status.as_str()));
    }
    c.status = ChargeStatus::Processing;
    let a = &*a;
    match a.charges.iter().find(|c| c.id == charge_id) {
        Some(c) => Reply::json(StatusCode::OK, &charge_json(a, c)),
        None => sim_error(StatusCode::NOT_FOUND, "no such charge"),
    }
}
