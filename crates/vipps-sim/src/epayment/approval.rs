//! The payer: approve / reject / abandon (landing page, force approve, `/_sim/payments/...`),
//! test magic amounts, and expiry.

use super::*;

/// Why a payer action was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PayerError {
    NotFound,
    NotPending(&'static str),
    BadPhone,
}

/// The decline a `CREATED` payment's magic amount causes, if any.
pub(crate) fn declined(db: &Db, msn: &str, reference: &str) -> Option<&'static str> {
    db.epayment.get(msn, reference).filter(|p| p.state == PaymentState::Created).and_then(|p| magic_decline(p.amount))
}

/// Test-environment magic amounts that make the payer's card fail (reference §8).
pub(crate) fn magic_decline(amount: i64) -> Option<&'static str> {
    match amount {
        151 => Some("insufficient funds"),
        182 => Some("refused by issuer"),
        183 => Some("suspected fraud"),
        184 => Some("withdrawal limit exceeded"),
        186 => Some("expired card"),
        187 => Some("invalid card"),
        197 => Some("3-D Secure denied"),
        _ => None,
    }
}

/// The payer approves: `CREATED` → `AUTHORIZED`.
pub(crate) fn payer_approve(
    db: &mut Db,
    msn: &str,
    reference: &str,
    phone: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), PayerError> {
    if phone.is_some_and(|p| !valid_phone(p)) {
        return Err(PayerError::BadPhone);
    }
    let Db { epayment, hooks, .. } = db;
    let p = epayment.get_mut(msn, reference).ok_or(PayerError::NotFound)?;
    if p.state != PaymentState::Created {
        return Err(PayerError::NotPending(p.state.as_str()));
    }
    p.state = PaymentState::Authorized;
    p.authorized = p.amount;
    p.authorized_at = Some(at);
    if let Some(ph) = phone {
        p.phone = Some(ph.to_owned());
    }
    if p.scope.is_some() {
        p.sub = Some(uuid::Uuid::new_v4().to_string());
    }
    let key = Some(p.create_key.clone());
    push_event(hooks, "AUTHORIZED", p.amount, p, key, at);
    Ok(())
}

/// The payer rejects in the app: `CREATED` → `ABORTED`.
pub(crate) fn payer_reject(db: &mut Db, msn: &str, reference: &str, at: DateTime<Utc>) -> Result<(), PayerError> {
    end_created(db, msn, reference, PaymentState::Aborted, "ABORTED", at)
}

/// The payer walks away: `CREATED` → `EXPIRED` at once (the expiry is brought forward).
pub(crate) fn payer_abandon(db: &mut Db, msn: &str, reference: &str, at: DateTime<Utc>) -> Result<(), PayerError> {
    end_created(db, msn, reference, PaymentState::Expired, "EXPIRED", at)
}

pub(super) fn end_created(
    db: &mut Db,
    msn: &str,
    reference: &str,
    to: PaymentState,
    name: &'static str,
    at: DateTime<Utc>,
) -> Result<(), PayerError> {
    let Db { epayment, hooks, .. } = db;
    let p = epayment.get_mut(msn, reference).ok_or(PayerError::NotFound)?;
    if p.state != PaymentState::Created {
        return Err(PayerError::NotPending(p.state.as_str()));
    }
    p.state = to;
    push_event(hooks, name, p.amount, p, None, at);
    Ok(())
}

/// Timer: a payment still `CREATED` at its expiry becomes `EXPIRED`.
pub(crate) fn expire(db: &mut Db, msn: &str, reference: &str, at: DateTime<Utc>) {
    let _ = end_created(db, msn, reference, PaymentState::Expired, "EXPIRED", at);
}

/// `POST /epayment/v1/test/payments/{reference}/approve` `{customer?}` or `{token}` → `200`, no body.
pub(crate) async fn force_approve(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path(reference): Path<String>,
    body: Bytes,
) -> Reply {
    let instance = uri.path();
    let now = sim.clock.now();
    let mut db = sim.lock();
    let msn = match authorize(&db, now, &headers, Api::EPayment, instance) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let req: ForceApproveRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ForceApproveRequest::default()
    } else {
        match parse(&body, instance) {
            Ok(r) => r,
            Err(r) => return r,
        }
    };
    if let Some(t) = &req.token {
        let expected = LandingTarget::Payment { msn: msn.clone(), reference: reference.clone() };
        if db.landing.get(t) != Some(&expected) {
            return ep_error(
                StatusCode::BAD_REQUEST,
                "10010",
                "Approve failed",
                "The token does not belong to this payment",
                instance,
            );
        }
    }
    let phone = req.customer.and_then(|c| c.phone_number);
    if let Some(why) = declined(&db, &msn, &reference) {
        return ep_error(
            StatusCode::BAD_REQUEST,
            "10010",
            "Approve failed",
            &format!("The payer's card was declined: {why}"),
            instance,
        );
    }
    match payer_approve(&mut db, &msn, &reference, phone.as_deref(), now) {
        Ok(()) => Reply::empty(StatusCode::OK),
        Err(PayerError::NotFound) => not_found(&reference, instance),
        Err(PayerError::BadPhone) => ep_error(
            StatusCode::BAD_REQUEST,
            "4070",
            "Invalid phone number",
            "phoneNumber must be 10 to 15 digits",
            instance,
        ),
        Err(PayerError::NotPending(s)) => ep_error(
            StatusCode::BAD_REQUEST,
            "10020",
            "Approve not allowed",
            &format!("The payment is {s}, not CREATED"),
            instance,
        ),
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct PayerBody {
    phone_number: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct MsnQuery {
    pub(super) msn: Option<String>,
}

/// Finds the MSN holding `reference` (or checks the given one); `None` if absent or ambiguous.
pub(crate) fn find_msn(db: &Db, reference: &str, msn: Option<&str>) -> Result<String, Reply> {
    if let Some(m) = msn {
        return match db.epayment.get(m, reference) {
            Some(_) => Ok(m.to_owned()),
            None => Err(sim_error(StatusCode::NOT_FOUND, "no such payment")),
        };
    }
    let mut found = db.epayment.payments.iter().filter(|(_, ps)| ps.contains_key(reference)).map(|(m, _)| m);
    match (found.next(), found.next()) {
        (Some(m), None) => Ok(m.clone()),
        (None, _) => Err(sim_error(StatusCode::NOT_FOUND, "no such payment")),
        (Some(_), Some(_)) => Err(sim_error(StatusCode::CONFLICT, "reference exists for several merchants; add ?msn=")),
    }
}

/// `POST /_sim/payments/{reference}/approve|reject|abandon[?msn=]` with optional
/// `{"phoneNumber": "47…"}` → `200` with the payment as `GET` shows it; `409` if not `CREATED`.
pub(crate) async fn sim_action(
    State(sim): State<SharedSim>,
    Path((reference, action)): Path<(String, String)>,
    Query(q): Query<MsnQuery>,
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
    let msn = match find_msn(&db, &reference, q.msn.as_deref()) {
        Ok(m) => m,
        Err(r) => return r,
    };
    if action == "approve" {
        if let Some(why) = declined(&db, &msn, &reference) {
            return sim_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("card declined ({why}); the payment stays CREATED"),
            );
        }
    }
    let result = match action.as_str() {
        "approve" => payer_approve(&mut db, &msn, &reference, req.phone_number.as_deref(), now),
        "reject" => payer_reject(&mut db, &msn, &reference, now),
        "abandon" => payer_abandon(&mut db, &msn, &reference, now),
        _ => return sim_error(StatusCode::NOT_FOUND, "action must be approve, reject or abandon"),
    };
    match result {
        Ok(()) => match db.epayment.get(&msn, &reference) {
            Some(p) => Reply::json(StatusCode::OK, &payment_json(p)),
            None => sim_error(StatusCode::NOT_FOUND, "no such payment"),
        },
        Err(PayerError::NotFound) => sim_error(StatusCode::NOT_FOUND, "no such payment"),
        Err(PayerError::BadPhone) => sim_error(StatusCode::BAD_REQUEST, "phoneNumber must be 10 to 15 digits"),
        Err(PayerError::NotPending(s)) => sim_error(StatusCode::CONFLICT, &format!("the payment is {s}, not CREATED")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct FailCapture {
    code: String,
    times: Option<u32>,
}

/// Arms transient failures for the next `times` captures of a payment (`6280` capture failed,
/// `6260` funds unavailable). Such a capture answers 400 with the code, logs a `CAPTURED`
/// event with `success: false`, and is not remembered under its idempotency key.
pub(crate) fn set_fail_capture(
    db: &mut Db,
    msn: &str,
    reference: &str,
    code: &str,
    times: u32,
) -> Result<(), &'static str> {
    let code = match code {
        "6280" => "6280",
        "6260" => "6260",
        _ => return Err("code must be 6280 or 6260"),
    };
    if times == 0 {
        return Err("times must be at least 1");
    }
    if db.epayment.get(msn, reference).is_none() {
        return Err("no such payment");
    }
    db.epayment.fail_capture.insert((msn.to_owned(), reference.to_owned()), (times, code));
    Ok(())
}

/// `POST /_sim/payments/{reference}/fail-next-capture[?msn=]` `{"code": "6280" | "6260",
/// "times": 1}` → `204`: the next captures fail transiently (see [`set_fail_capture`]).
pub(crate) async fn sim_fail_next_capture(
    State(sim): State<SharedSim>,
    Path(reference): Path<String>,
    Query(q): Query<MsnQuery>,
    body: Bytes,
) -> Reply {
    let req: FailCapture = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return sim_error(StatusCode::BAD_REQUEST, &format!("expected {{\"code\": \"6280\", \"times\": 1}}: {e}"))
        }
    };
    let mut db = sim.lock();
    let msn = match find_msn(&db, &reference, q.msn.as_deref()) {
        Ok(m) => m,
        Err(r) => return r,
    };
    match set_fail_capture(&mut db, &msn, &reference, &req.code, req.times.unwrap_or(1)) {
        Ok(()) => Reply::empty(StatusCode::NO_CONTENT),
        Err(e) => sim_error(StatusCode::BAD_REQUEST, e),
    }
}
