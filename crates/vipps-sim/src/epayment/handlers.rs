//! The merchant-facing endpoints: create, get, events, capture, refund, cancel.

use super::*;

pub(super) fn key_problem(e: KeyError, instance: &str) -> Reply {
    match e {
        KeyError::Missing => ep_validation(instance, "Idempotency-Key", "The Idempotency-Key header is required"),
        KeyError::Invalid(r) => ep_validation(instance, "Idempotency-Key", r),
    }
}

/// Runs a state-changing ePayment operation under the gateway checks and the idempotency store.
pub(super) fn modify(
    sim: &SharedSim,
    headers: &HeaderMap,
    instance: &str,
    body: &[u8],
    conflict_code: &str,
    limit: Limit<'_>,
    op: impl FnOnce(&mut Db, &str, &str, DateTime<Utc>) -> Reply,
) -> Reply {
    let now = sim.clock.now();
    let mut db = sim.lock();
    let msn = match authorize(&db, now, headers, Api::EPayment, instance) {
        Ok(m) => m,
        Err(r) => return r,
    };
    if sim.config.rate_limits {
        if let Err(r) = db.epayment.rate.hit(&msn, &limit, now) {
            return r;
        }
    }
    let key = match idempotency::read_key(headers, Api::EPayment) {
        Ok(k) => k,
        Err(e) => return key_problem(e, instance),
    };
    let fp = match db.idem.check(Api::EPayment, &msn, &key, &Method::POST, instance, body) {
        Lookup::Replay(r) => return r,
        Lookup::Conflict => {
            return ep_error(
                StatusCode::CONFLICT,
                conflict_code,
                "Idempotency conflict",
                "The Idempotency-Key was already used for a different request",
                instance,
            )
        }
        Lookup::Fresh(fp) => fp,
    };
    let reply = op(&mut db, &msn, &key, now);
    if !std::mem::take(&mut db.epayment.transient) {
        db.idem.store(Api::EPayment, &msn, &key, fp, &reply);
    }
    reply
}

/// `POST /epayment/v1/payments` → `201 {redirectUrl?, reference}`.
pub(crate) async fn create(State(sim): State<SharedSim>, headers: HeaderMap, uri: Uri, body: Bytes) -> Reply {
    let instance = uri.path();
    let base = sim.base_url.clone();
    let timeout = sim.config.payer_timeout;
    // Parse and validate before taking the lock; the outcome is still only returned after the
    // gateway checks, and stored under the idempotency key like any other reply.
    let checked_at = sim.clock.now();
    let parsed =
        parse::<CreateRequest>(&body, instance).and_then(|r| validate_create(&r, checked_at, instance).map(|()| r));
    let counted = parsed.as_ref().map(|r| r.reference.clone()).unwrap_or_default();
    let limit = Limit { op: "epayment.create", resource: &counted, per_minute: 5 };
    modify(&sim, &headers, instance, &body, "4020", limit, |db, msn, key, now| {
        let req = match parsed {
            Ok(r) => r,
            Err(r) => return r,
        };
        if db.epayment.get(msn, &req.reference).is_some() {
            return ep_error(
                StatusCode::CONFLICT,
                "4150",
                "Reference already exists",
                &format!("A payment with reference {} already exists", req.reference),
                instance,
            );
        }
        let _ = (&req.customer_interaction, req.qr_format.as_ref().map(|q| (&q.format, q.size)));
        let token = db.new_landing(LandingTarget::Payment { msn: msn.to_owned(), reference: req.reference.clone() });
        let redirect_url = match req.user_flow {
            UserFlow::PushMessage => None,
            _ => Some(format!("{base}/landing?token={token}")),
        };
        let expires = match req.expires_at.as_deref().and_then(|s| DateTime::parse_from_rfc3339(s).ok()) {
            Some(at) => at.with_timezone(&Utc),
            None => now + timeout,
        };
        let mut p = Payment {
            msn: msn.to_owned(),
            reference: req.reference.clone(),
            amount: req.amount.value,
            currency: "NOK",
            state: PaymentState::Created,
            method: match req.payment_method.kind {
                PaymentMethodType::Wallet => "WALLET",
                PaymentMethodType::Card => "CARD",
            },
            return_url: req.return_url,
            phone: req.customer.and_then(|c| c.phone_number),
            description: req.payment_description,
            metadata: req.metadata,
            scope: req.profile.and_then(|p| p.scope),
            psp_reference: uuid::Uuid::new_v4().to_string(),
            redirect_url: redirect_url.clone(),
            create_key: key.to_owned(),
            authorized: 0,
            captured: 0,
            refunded: 0,
            cancelled: 0,
            events: Vec::with_capacity(4),
            authorized_at: None,
            last_capture_at: None,
            sub: None,
        };
        push_event(&mut db.hooks, "CREATED", p.amount, &mut p, Some(key.to_owned()), now);
        db.epayment.payments.entry(msn.to_owned()).or_default().insert(req.reference.clone(), p);
        db.schedule(expires, Timer::PaymentExpiry { msn: msn.to_owned(), reference: req.reference.clone() });
        let body = match redirect_url {
            Some(u) => json!({"redirectUrl": u, "reference": req.reference}),
            None => json!({"reference": req.reference}),
        };
        Reply::json(StatusCode::CREATED, &body)
    })
}

pub(super) fn not_found(reference: &str, instance: &str) -> Reply {
    ep_error(
        StatusCode::NOT_FOUND,
        "5090",
        "Reference not found",
        &format!("No payment with reference {reference} for this merchant"),
        instance,
    )
}

pub(super) fn read_payment(
    sim: &SharedSim,
    headers: &HeaderMap,
    instance: &str,
    reference: &str,
    f: impl FnOnce(&Payment) -> Value,
) -> Reply {
    let now = sim.clock.now();
    let mut db = sim.lock();
    let msn = match authorize(&db, now, headers, Api::EPayment, instance) {
        Ok(m) => m,
        Err(r) => return r,
    };
    if sim.config.rate_limits {
        let limit = Limit { op: "epayment.read", resource: reference, per_minute: 120 };
        if let Err(r) = db.epayment.rate.hit(&msn, &limit, now) {
            return r;
        }
    }
    match db.epayment.get(&msn, reference) {
        Some(p) => Reply::json(StatusCode::OK, &f(p)),
        None => not_found(reference, instance),
    }
}

/// `GET /epayment/v1/payments/{reference}` → `200 GetPaymentResponse`.
pub(crate) async fn get_payment(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path(reference): Path<String>,
) -> Reply {
    read_payment(&sim, &headers, uri.path(), &reference, payment_json)
}

/// `GET /epayment/v1/payments/{reference}/events` → `200 [PaymentEvent]`, oldest first.
pub(crate) async fn events(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path(reference): Path<String>,
) -> Reply {
    read_payment(&sim, &headers, uri.path(), &reference, |p| {
        Value::Array(p.events.iter().map(|e| event_json(p, e)).collect())
    })
}

/// `POST /epayment/v1/payments/{reference}/capture` `{modificationAmount}` → `200 ModificationResponse`.
pub(crate) async fn capture(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path(reference): Path<String>,
    body: Bytes,
) -> Reply {
    let instance = uri.path();
    let limit = Limit { op: "epayment.capture", resource: &reference, per_minute: 5 };
    modify(&sim, &headers, instance, &body, "4010", limit, |db, msn, key, now| {
        let req: ModificationRequest = match parse(&body, instance) {
            Ok(r) => r,
            Err(r) => return r,
        };
        let Db { epayment, hooks, .. } = &mut *db;
        // Field-level borrow, so the forced-failure table stays reachable.
        let Some(p) = epayment.payments.get_mut(msn).and_then(|m| m.get_mut(&reference)) else {
            return not_found(&reference, instance);
        };
        let bad =
            |code: &str, title: &str, detail: &str| ep_error(StatusCode::BAD_REQUEST, code, title, detail, instance);
        let x = req.modification_amount.value;
        if req.modification_amount.currency != Currency::Nok || x <= 0 {
            return bad(
                "4040",
                "Invalid amount",
                "modificationAmount must be a positive amount in the payment's currency",
            );
        }
        match p.state {
            PaymentState::Authorized => {}
            PaymentState::Created => {
                return bad("6080", "Cannot capture before reservation", "The payment is not authorized yet")
            }
            _ => return bad("6200", "Cannot be captured", &format!("The payment is {}", p.state.as_str())),
        }
        let remaining = p.authorized - p.cancelled - p.captured;
        if p.authorized_at.is_some_and(|a| now > a + chrono::Duration::days(180)) {
            return bad("6100", "Capture period expired", "Captures are possible for 180 days after authorization");
        }
        if remaining == 0 && p.cancelled > 0 {
            return bad("6070", "Cannot capture cancelled payment", "The remaining amount was cancelled");
        }
        if remaining == 0 {
            return bad("6170", "Already captured", "The payment is fully captured");
        }
        if x > remaining {
            return bad("6090", "Capture amount too high", &format!("At most {remaining} can be captured"));
        }
        let forced = (msn.to_owned(), reference.clone());
        if let Some((left, code)) = epayment.fail_capture.get_mut(&forced) {
            let code = *code;
            *left -= 1;
            if *left == 0 {
                epayment.fail_capture.remove(&forced);
            }
            epayment.transient = true;
            record_event(hooks, "CAPTURED", x, p, Some(key.to_owned()), now, false);
            let title = if code == "6260" { "Funds unavailable" } else { "Capture failed, retry" };
            return bad(code, title, "The capture failed downstream; retry shortly with the same Idempotency-Key");
        }
        p.captured += x;
        p.last_capture_at = Some(now);
        let psp = push_event(hooks, "CAPTURED", x, p, Some(key.to_owned()), now);
        let reply = Reply::json(StatusCode::OK, &modification_json(p, &psp));
        let movement = payment_movement(MovementKind::Capture, x, p, psp, now);
        db.record_movement(msn, movement);
        reply
    })
}

/// `POST /_sim/payments/{reference}/portal-capture` `{"amount"?: øre}`: the merchant captures in the Vipps
/// portal (business.vipps.no) rather than through the API: the amount (default: all that is left) is captured,
/// logged as a `CAPTURED` event without an idempotency key, booked and announced like an API capture; the
/// merchant's system learns of it only from the webhook or by reading the payment → `200` payment.
pub(crate) async fn sim_portal_capture(
    State(sim): State<SharedSim>,
    Path(reference): Path<String>,
    Query(q): Query<MsnQuery>,
    body: Bytes,
) -> Reply {
    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct PortalCapture {
        amount: Option<i64>,
    }
    let req: PortalCapture = if body.iter().all(u8::is_ascii_whitespace) {
        PortalCapture::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return sim_error(StatusCode::BAD_REQUEST, &format!("expected {{\"amount\": øre}}: {e}")),
        }
    };
    let now = sim.clock.now();
    let mut db = sim.lock();
    let msn = match find_msn(&db, &reference, q.msn.as_deref()) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let Db { epayment, hooks, .. } = &mut *db;
    let Some(p) = epayment.get_mut(&msn, &reference) else {
        return sim_error(StatusCode::NOT_FOUND, "no such payment");
    };
    if p.state != PaymentState::Authorized {
        return sim_error(StatusCode::CONFLICT, &format!("the payment is {}, not AUTHORIZED", p.state.as_str()));
    }
    let remaining = p.authorized - p.cancelled - p.captured;
    let x = req.amount.unwrap_or(remaining);
    if x <= 0 || x > remaining {
        return sim_error(StatusCode::BAD_REQUEST, &format!("amount must be 1 to {remaining}"));
    }
    p.captured += x;
    p.last_capture_at = Some(now);
    let psp = push_event(hooks, "CAPTURED", x, p, None, now);
    let reply = Reply::json(StatusCode::OK, &payment_json(p));
    let movement = payment_movement(MovementKind::Capture, x, p, psp, now);
    db.record_movement(&msn, movement);
    reply
}

/// The ledger's record of money moved on a payment (a capture or a refund of `amount`).
fn payment_movement(
    kind: MovementKind,
    amount: i64,
    p: &Payment,
    psp_reference: String,
    at: DateTime<Utc>,
) -> MoneyMovement {
    MoneyMovement {
        kind,
        amount,
        currency: p.currency.to_owned(),
        psp_reference,
        reference: p.reference.clone(),
        agreement_id: None,
        external_id: None,
        at,
    }
}

/// `POST /epayment/v1/payments/{reference}/refund` `{modificationAmount}` → `200 ModificationResponse`.
pub(crate) async fn refund(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path(reference): Path<String>,
    body: Bytes,
) -> Reply {
    let instance = uri.path();
    let limit = Limit { op: "epayment.refund", resource: &reference, per_minute: 5 };
    modify(&sim, &headers, instance, &body, "4150", limit, |db, msn, key, now| {
        let req: ModificationRequest = match parse(&body, instance) {
            Ok(r) => r,
            Err(r) => return r,
        };
        let Db { epayment, hooks, .. } = &mut *db;
        let Some(p) = epayment.get_mut(msn, &reference) else {
            return not_found(&reference, instance);
        };
        let bad =
            |code: &str, title: &str, detail: &str| ep_error(StatusCode::BAD_REQUEST, code, title, detail, instance);
        let x = req.modification_amount.value;
        if req.modification_amount.currency != Currency::Nok || x <= 0 {
            return bad(
                "4040",
                "Invalid amount",
                "modificationAmount must be a positive amount in the payment's currency",
            );
        }
        if p.captured == 0 {
            return bad("6020", "Cannot refund before capture", "Nothing has been captured on this payment");
        }
        if p.last_capture_at.is_some_and(|c| now > c + chrono::Duration::days(365)) {
            return bad("6220", "Refund period expired", "Refunds are possible for 365 days after capture");
        }
        if p.refunded == p.captured {
            return bad("6180", "Already refunded", "The captured amount is fully refunded");
        }
        if x > p.captured - p.refunded {
            return bad(
                "6150",
                "Not enough refundable",
                &format!("At most {} can be refunded", p.captured - p.refunded),
            );
        }
        p.refunded += x;
        let psp = push_event(hooks, "REFUNDED", x, p, Some(key.to_owned()), now);
        let reply = Reply::json(StatusCode::OK, &modification_json(p, &psp));
        let movement = payment_movement(MovementKind::Refund, x, p, psp, now);
        db.record_movement(msn, movement);
        reply
    })
}

/// `POST /epayment/v1/payments/{reference}/cancel` `{cancelTransactionOnly?}` → `200 ModificationResponse`.
pub(crate) async fn cancel(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path(reference): Path<String>,
    body: Bytes,
) -> Reply {
    let instance = uri.path();
    let limit = Limit { op: "epayment.cancel", resource: &reference, per_minute: 5 };
    modify(&sim, &headers, instance, &body, "4020", limit, |db, msn, key, now| {
        let req: CancelRequest = if body.iter().all(u8::is_ascii_whitespace) {
            CancelRequest::default()
        } else {
            match parse(&body, instance) {
                Ok(r) => r,
                Err(r) => return r,
            }
        };
        let Db { epayment, hooks, .. } = &mut *db;
        let Some(p) = epayment.get_mut(msn, &reference) else {
            return not_found(&reference, instance);
        };
        let bad =
            |code: &str, title: &str, detail: &str| ep_error(StatusCode::BAD_REQUEST, code, title, detail, instance);
        match p.state {
            PaymentState::Created => {
                p.state = PaymentState::Terminated;
                p.cancelled = p.amount;
                let psp = push_event(hooks, "TERMINATED", p.amount, p, Some(key.to_owned()), now);
                Reply::json(StatusCode::OK, &modification_json(p, &psp))
            }
            PaymentState::Authorized => {
                if req.cancel_transaction_only == Some(true) {
                    return bad(
                        "6060",
                        "Cannot cancel authorized payment",
                        "cancelTransactionOnly: the payment is already authorized",
                    );
                }
                if p.authorized_at.is_some_and(|a| now > a + chrono::Duration::days(180)) {
                    return bad(
                        "6030",
                        "Cancel period expired",
                        "Cancels are possible for 180 days after authorization",
                    );
                }
                if p.captured >= p.authorized {
                    return bad("6040", "Cannot cancel captured payment", "The payment is fully captured");
                }
                let remaining = p.authorized - p.captured - p.cancelled;
                if remaining == 0 {
                    return bad("6190", "Cannot be cancelled", "The remaining amount is already cancelled");
                }
                p.cancelled += remaining;
                let psp = push_event(hooks, "CANCELLED", remaining, p, None, now);
                Reply::json(StatusCode::OK, &modification_json(p, &psp))
            }
            _ => bad("6050", "Cannot cancel non-reserved payment", &format!("The payment is {}", p.state.as_str())),
        }
    })
}
