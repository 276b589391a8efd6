//! Charges: create (single and async batch), get, list, cancel, capture, refund, and the rules a
//! new charge must meet.

use super::*;

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub(super) struct ChargeIn {
    amount: i64,
    transaction_type: TransactionType,
    description: String,
    due: Option<String>,
    retry_days: Option<i64>,
    order_id: Option<String>,
    external_id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    processing_mode: Option<String>,
}

/// Checks a charge request against its agreement; returns the due date. Problems name the rule.
pub(super) fn validate_charge(
    db: &Db,
    msn: &str,
    a: &Agreement,
    c: &ChargeIn,
    now: DateTime<Utc>,
    instance: &str,
) -> Result<NaiveDate, Reply> {
    let v = |f: &str, r: &str| Err(validation(instance, f, r));
    if a.status != AgreementStatus::Active {
        return Err(rec_problem(
            StatusCode::BAD_REQUEST,
            "charge-creation-failed",
            &format!("The agreement is {}; charges need an ACTIVE agreement", a.status.as_str()),
            instance,
            &[],
        ));
    }
    match c.kind.as_deref() {
        None | Some("RECURRING") => {}
        Some("UNSCHEDULED") => {
            return Err(rec_problem(
                StatusCode::BAD_REQUEST,
                "unsupported-feature",
                "Cannot create a charge with type 'UNSCHEDULED'",
                instance,
                &[],
            ))
        }
        Some(_) => return v("type", "must be RECURRING or UNSCHEDULED"),
    }
    if !(100..=i64::from(i32::MAX)).contains(&c.amount) {
        return v("amount", "must be at least 100");
    }
    let n = c.description.chars().count();
    if n == 0 || n > 45 {
        return v("description", "must be 1 to 45 characters");
    }
    let Some(retry) = c.retry_days else { return v("retryDays", "required") };
    if !(0..=14).contains(&retry) {
        return v("retryDays", "must be 0 to 14");
    }
    match c.processing_mode.as_deref() {
        None | Some("MULTIPLE_ATTEMPTS") => {}
        Some("SINGLE_ATTEMPT") if retry == 0 => {}
        Some("SINGLE_ATTEMPT") => return v("processingMode", "SINGLE_ATTEMPT requires retryDays 0"),
        Some(_) => return v("processingMode", "must be MULTIPLE_ATTEMPTS or SINGLE_ATTEMPT"),
    }
    let Some(due_raw) = &c.due else { return v("due", "required") };
    let Ok(due) = NaiveDate::parse_from_str(due_raw, "%Y-%m-%d") else {
        return v("due", "must be a date YYYY-MM-DD");
    };
    let today = oslo_today(now);
    if due <= today {
        return Err(rec_problem(
            StatusCode::BAD_REQUEST,
            "charge-due-too-soon",
            "The due date must be at least 1 day in the future",
            instance,
            &[],
        ));
    }
    let max = today.checked_add_months(chrono::Months::new(24)).unwrap_or(today);
    if due > max {
        return Err(rec_problem(
            StatusCode::BAD_REQUEST,
            "charge-due-in-too-long",
            "The due date must be at most 2 years in the future",
            instance,
            &[],
        ));
    }
    if let Some(o) = &c.order_id {
        if !valid_order_id(o) {
            return v("orderId", "must match ^[a-zA-Z0-9-]{1,64}$");
        }
        if db.recurring.charge_index.contains_key(&(msn.to_owned(), o.clone())) {
            return Err(rec_problem(
                StatusCode::CONFLICT,
                "conflict",
                &format!("orderId {o} is already used"),
                instance,
                &[],
            ));
        }
    }
    if c.external_id.as_ref().is_some_and(|e| !valid_external_id(e)) {
        return v("externalId", "must be 1 to 64 characters");
    }
    let too_high = |limit: i64| {
        Err(rec_problem(
            StatusCode::BAD_REQUEST,
            "charge-amount-too-high",
            &format!("The amount exceeds the agreement's limit of {limit}"),
            instance,
            &[],
        ))
    };
    match a.pricing.kind {
        PricingType::Legacy => {
            let limit = a.pricing.amount.unwrap_or(0).saturating_mul(5);
            let bucket = interval_bucket(a, due);
            let used: i64 = a
                .charges
                .iter()
                .filter(|x| !x.initial && !matches!(x.status, ChargeStatus::Cancelled | ChargeStatus::Failed))
                .filter(|x| interval_bucket(a, x.due) == bucket)
                .map(|x| x.amount)
                .sum();
            if used + c.amount > limit {
                return too_high(limit);
            }
        }
        PricingType::Variable => {
            let limit = a.pricing.suggested_max.unwrap_or(0).max(a.pricing.max_amount.unwrap_or(0));
            if c.amount > limit {
                return too_high(limit);
            }
        }
        PricingType::Flexible => {}
    }
    Ok(due)
}

/// Index of the agreement interval that contains `d`, counted from the agreement's start.
pub(super) fn interval_bucket(a: &Agreement, d: NaiveDate) -> i64 {
    let start = a.start.unwrap_or(a.created).with_timezone(&Oslo).date_naive();
    match &a.interval {
        None => (d - start).num_days(), // no interval: each day its own bucket
        Some(i) => {
            let count = i.count.max(1);
            match i.unit {
                Unit::Day => (d - start).num_days().div_euclid(count),
                Unit::Week => (d - start).num_days().div_euclid(7 * count),
                Unit::Month => months_between(start, d).div_euclid(count),
                Unit::Year => months_between(start, d).div_euclid(12 * count),
            }
        }
    }
}

pub(super) fn months_between(a: NaiveDate, b: NaiveDate) -> i64 {
    let m = (i64::from(b.year()) * 12 + i64::from(b.month0())) - (i64::from(a.year()) * 12 + i64::from(a.month0()));
    if b.day() < a.day() {
        m - 1
    } else {
        m
    }
}

/// Creates a validated charge and schedules its processing; returns its id.
pub(super) fn insert_charge(
    db: &mut Db,
    msn: &str,
    agreement_id: &str,
    c: ChargeIn,
    due: NaiveDate,
    key: &str,
    now: DateTime<Utc>,
) -> String {
    let id = c.order_id.clone().unwrap_or_else(|| fresh_charge_id(&db.recurring, msn));
    db.recurring.charge_index.insert((msn.to_owned(), id.clone()), agreement_id.to_owned());
    let far = due > oslo_today(now) + chrono::Duration::days(30);
    let charge = Charge {
        id: id.clone(),
        agreement_id: agreement_id.to_owned(),
        external_id: c.external_id,
        amount: c.amount,
        description: c.description,
        due,
        retry_days: c.retry_days.unwrap_or(0),
        status: if far { ChargeStatus::Pending } else { ChargeStatus::Due },
        initial: false,
        transaction_type: c.transaction_type,
        transaction_id: None,
        failure_reason: None,
        captured: 0,
        refunded: 0,
        cancelled: 0,
        history: vec![HistoryEvent {
            occurred: now,
            event: "CREATE",
            amount: c.amount,
            idempotency_key: Some(key.to_owned()),
            success: true,
        }],
        attempts: 0,
        forced_failures: None,
    };
    if let Some(a) = db.recurring.agreements.get_mut(agreement_id) {
        a.charges.push(charge);
    }
    let first = if far { attempt_time(due - chrono::Duration::days(30)) } else { attempt_time(due) };
    db.schedule(first, Timer::ChargeAttempt { agreement_id: agreement_id.to_owned(), charge_id: id.clone() });
    id
}

/// `POST /recurring/v3/agreements/{agreementId}/charges` → `201 {"chargeId"}`.
pub(crate) async fn create_charge(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path(agreement_id): Path<String>,
    body: Bytes,
) -> Reply {
    let instance = uri.path();
    let counted = format!("{agreement_id}:{}", crate::auth::header(&headers, "Idempotency-Key").unwrap_or(""));
    modify(
        &sim,
        &headers,
        &Method::POST,
        instance,
        &body,
        lim("recurring.create-charge", &counted, 2),
        |db, msn, key, now| {
            let c: ChargeIn = match parse(&body, instance) {
                Ok(c) => c,
                Err(r) => return r,
            };
            let Some(a) = get_own(db, msn, &agreement_id) else { return not_found("Agreement", instance) };
            let due = match validate_charge(db, msn, a, &c, now, instance) {
                Ok(d) => d,
                Err(r) => return r,
            };
            let id = insert_charge(db, msn, &agreement_id, c, due, key, now);
            Reply::json(StatusCode::CREATED, &json!({"chargeId": id}))
        },
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BatchItemIn {
    agreement_id: String,
    order_id: Option<String>,
    #[serde(flatten)]
    charge: Value,
}

/// `POST /recurring/v3/agreements/charges` (async batch, ≤ 2000 items) →
/// `202 {"validCharges": [chargeId], "invalidCharges": [{"chargeBatchItemDto", "errors"}]}`.
pub(crate) async fn create_charges_async(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Reply {
    let instance = uri.path();
    modify(&sim, &headers, &Method::POST, instance, &body, None, |db, msn, key, now| {
        let items: Vec<Value> = match parse(&body, instance) {
            Ok(v) => v,
            Err(r) => return r,
        };
        if items.is_empty() || items.len() > 2000 {
            return validation(instance, "body", "between 1 and 2000 charges per batch");
        }
        let mut valid = Vec::new();
        let mut invalid = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let item_key = format!("{key}-{i}");
            let outcome = (|| {
                let b: BatchItemIn = serde_json::from_value(item.clone()).map_err(|e| e.to_string())?;
                let c: ChargeIn = serde_json::from_value(item.clone()).map_err(|e| e.to_string())?;
                if b.order_id.is_none() {
                    return Err("orderId is required in a batch".to_owned());
                }
                let _ = &b.charge;
                let Some(a) = get_own(db, msn, &b.agreement_id) else {
                    return Err(format!("agreement {} not found", b.agreement_id));
                };
                let due = validate_charge(db, msn, a, &c, now, instance).map_err(|r| {
                    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                    let id =
                        v["type"].as_str().and_then(|t| t.split('#').nth(1)).unwrap_or("validation-error").to_owned();
                    let detail =
                        v["extraDetails"][0]["reason"].as_str().or(v["detail"].as_str()).unwrap_or("").to_owned();
                    format!("{id}: {detail}")
                })?;
                if let Some(dropped) = take_drop(db, &b.agreement_id, &c) {
                    let order_id = dropped.charge_id.clone();
                    db.schedule(now, Timer::ChargeCreationFailed { msn: msn.to_owned(), dropped });
                    return Ok(order_id);
                }
                Ok(insert_charge(db, msn, &b.agreement_id, c, due, &item_key, now))
            })();
            match outcome {
                Ok(id) => valid.push(id),
                Err(e) => invalid.push(json!({"chargeBatchItemDto": item, "errors": [e]})),
            }
        }
        Reply::json(StatusCode::ACCEPTED, &json!({"validCharges": valid, "invalidCharges": invalid}))
    })
}

/// A batch charge Vipps listed in `validCharges` and then never created (the `drop-next-batch-charge`
/// control): what its `recurring.charge-creation-failed.v1` event says.
#[derive(Clone, Debug)]
pub(crate) struct DroppedCharge {
    agreement_id: String,
    charge_id: String,
    external_id: Option<String>,
    amount: i64,
    reason: String,
}

/// Takes one armed drop for `agreement_id`, if any: the charge is answered as valid but not created.
fn take_drop(db: &mut Db, agreement_id: &str, c: &ChargeIn) -> Option<DroppedCharge> {
    let (left, reason) = db.recurring.drop_next_batch.get_mut(agreement_id)?;
    *left = left.saturating_sub(1);
    let reason = reason.clone();
    if *left == 0 {
        db.recurring.drop_next_batch.remove(agreement_id);
    }
    Some(DroppedCharge {
        agreement_id: agreement_id.to_owned(),
        charge_id: c.order_id.clone().unwrap_or_default(),
        external_id: c.external_id.clone(),
        amount: c.amount,
        reason,
    })
}

/// Sends `recurring.charge-creation-failed.v1` for a dropped batch charge: the charge payload of §4.5 with the
/// orderId as `chargeId` (there is no charge) and the reason as `failureReason`.
pub(crate) fn emit_creation_failed(hooks: &mut crate::webhooks::Hub, msn: &str, d: &DroppedCharge, at: DateTime<Utc>) {
    let event_type = "recurring.charge-creation-failed.v1";
    hooks.emit(msn, event_type, &format!("agreement:{}", d.agreement_id), ts(at), || {
        json!({
            "agreementId": d.agreement_id,
            "chargeId": d.charge_id,
            "chargeExternalId": d.external_id,
            "amount": d.amount,
            "currency": "NOK",
            "chargeType": "RECURRING",
            "eventType": event_type,
            "occurred": ts(at),
            "amountCaptured": 0,
            "amountCanceled": 0,
            "amountRefunded": 0,
            "transactionId": Value::Null,
            "failureReason": d.reason,
            "failureCode": Value::Null,
            "msn": msn,
        })
    });
}

pub(super) fn find_charge<'a>(
    db: &'a Db,
    msn: &str,
    agreement_id: &str,
    charge_id: &str,
) -> Option<(&'a Agreement, &'a Charge)> {
    let a = get_own(db, msn, agreement_id)?;
    let c = a.charges.iter().find(|c| c.id == charge_id)?;
    Some((a, c))
}

/// `GET /recurring/v3/agreements/{agreementId}/charges/{chargeId}` → `200 ChargeResponseV3`.
pub(crate) async fn get_charge(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path((agreement_id, charge_id)): Path<(String, String)>,
) -> Reply {
    let instance = uri.path();
    let counted = format!("{agreement_id}:{charge_id}");
    read(
        &sim,
        &headers,
        instance,
        Limit { op: "recurring.fetch-charge", resource: &counted, per_minute: 10 },
        |db, msn, _| match find_charge(db, msn, &agreement_id, &charge_id) {
            Some((a, c)) => Reply::json(StatusCode::OK, &charge_json(a, c)),
            None => not_found("Charge", instance),
        },
    )
}

/// `GET /recurring/v3/charges/{chargeId}` → `200 ChargeResponseV3`.
pub(crate) async fn get_charge_by_id(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path(charge_id): Path<String>,
) -> Reply {
    let instance = uri.path();
    read(
        &sim,
        &headers,
        instance,
        Limit { op: "recurring.charge-by-id", resource: &charge_id, per_minute: 100 },
        |db, msn, _| {
            let found = db
                .recurring
                .charge_index
                .get(&(msn.to_owned(), charge_id.clone()))
                .and_then(|agreement_id| find_charge(db, msn, agreement_id, &charge_id));
            match found {
                Some((a, c)) => Reply::json(StatusCode::OK, &charge_json(a, c)),
                None => not_found("Charge", instance),
            }
        },
    )
}

#[derive(Deserialize)]
pub(crate) struct ChargeListQuery {
    status: Option<String>,
}

/// `GET /recurring/v3/agreements/{agreementId}/charges[?status=]` → `200 [ChargeResponseV3]`,
/// paged with `Continuation-Token` like the agreement list.
pub(crate) async fn list_charges(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path(agreement_id): Path<String>,
    query: Result<Query<ChargeListQuery>, QueryRejection>,
) -> Response {
    let instance = uri.path();
    let page_size = sim.config.list_page_size.max(1);
    let now = sim.clock.now();
    let mut db = sim.lock();
    let msn = match authorize(&db, now, &headers, Api::Recurring, instance) {
        Ok(m) => m,
        Err(r) => return r.into_response(),
    };
    if sim.config.rate_limits {
        let limit = Limit { op: "recurring.list-charges", resource: &agreement_id, per_minute: 10 };
        if let Err(r) = db.recurring.rate.hit(&msn, &limit, now) {
            return r.into_response();
        }
    }
    let Ok(Query(q)) = query else {
        return validation(instance, "query", "invalid query parameters").into_response();
    };
    let (kind, offset) = match continuation(&db, &headers, &msn, now, instance) {
        Err(r) => return r.into_response(),
        Ok(Some((kind @ ListKind::Charges { .. }, offset))) => (kind, offset),
        Ok(Some(_)) => {
            return validation(instance, "Continuation-Token", "the token belongs to another list").into_response()
        }
        Ok(None) => {
            let status = match q.status {
                None => None,
                Some(s) => match serde_json::from_value::<ChargeStatus>(json!(s)) {
                    Ok(st) => Some(st),
                    Err(_) => return validation(instance, "status", "unknown charge status").into_response(),
                },
            };
            (ListKind::Charges { agreement_id: agreement_id.clone(), status }, 0)
        }
    };
    let ListKind::Charges { agreement_id: listed, status } = kind.clone() else {
        return validation(instance, "Continuation-Token", "the token belongs to another list").into_response();
    };
    if listed != agreement_id {
        return validation(instance, "Continuation-Token", "the token belongs to another agreement").into_response();
    }
    let Some(a) = get_own(&db, &msn, &agreement_id) else { return not_found("Agreement", instance).into_response() };
    let items: Vec<Value> = a
        .charges
        .iter()
        .filter(|c| status.is_none_or(|s| c.status == s))
        .skip(offset)
        .take(page_size.saturating_add(1))
        .map(|c| charge_json(a, c))
        .collect();
    paged(&mut db, &msn, kind, offset, items, page_size, now)
}

/// `DELETE /recurring/v3/agreements/{agreementId}/charges/{chargeId}` → `204`.
pub(crate) async fn cancel_charge(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path((agreement_id, charge_id)): Path<(String, String)>,
) -> Reply {
    let instance = uri.path();
    let counted = format!("{agreement_id}:{charge_id}");
    modify(&sim, &headers, &Method::DELETE, instance, &[], lim("recurring.cancel", &counted, 5), |db, msn, key, now| {
        let Db { recurring, hooks, .. } = db;
        let Some(a) = recurring.agreements.get_mut(&agreement_id).filter(|a| a.msn == msn) else {
            return not_found("Agreement", instance);
        };
        let Some(c) = a.charges.iter_mut().find(|c| c.id == charge_id) else { return not_found("Charge", instance) };
        match c.status {
            ChargeStatus::Pending | ChargeStatus::Due | ChargeStatus::Reserved => {
                c.cancelled = c.amount;
                c.status = ChargeStatus::Cancelled;
            }
            ChargeStatus::PartiallyCaptured => {
                c.cancelled = c.amount - c.captured;
                c.status = ChargeStatus::Charged;
            }
            s => {
                return rec_problem(
                    StatusCode::BAD_REQUEST,
                    "cancel-charge-failed",
                    &format!("A charge in status {} cannot be cancelled", s.as_str()),
                    instance,
                    &[],
                )
            }
        }
        c.history.push(HistoryEvent {
            occurred: now,
            event: "CANCEL",
            amount: c.cancelled,
            idempotency_key: Some(key.to_owned()),
            success: true,
        });
        emit_charge(hooks, msn, c, "recurring.charge-canceled.v1", now);
        Reply::empty(StatusCode::NO_CONTENT)
    })
}

#[derive(Deserialize)]
pub(super) struct AmountIn {
    amount: i64,
    description: Option<String>,
}

/// `POST .../charges/{chargeId}/capture` `{amount, description}` → `204`.
pub(crate) async fn capture_charge(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path((agreement_id, charge_id)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    let instance = uri.path();
    let counted = format!("{agreement_id}:{charge_id}");
    modify(
        &sim,
        &headers,
        &Method::POST,
        instance,
        &body,
        lim("recurring.capture", &counted, 5),
        |db, msn, key, now| {
            let req: AmountIn = match parse(&body, instance) {
                Ok(r) => r,
                Err(r) => return r,
            };
            let _ = &req.description;
            if req.amount < 100 {
                return validation(instance, "amount", "must be at least 100");
            }
            let Db { recurring, hooks, movements, .. } = db;
            let Some(a) = recurring.agreements.get_mut(&agreement_id).filter(|a| a.msn == msn) else {
                return not_found("Agreement", instance);
            };
            let external = a.external_id.clone();
            let Some(c) = a.charges.iter_mut().find(|c| c.id == charge_id) else {
                return not_found("Charge", instance);
            };
            let fail = |d: &str| rec_problem(StatusCode::BAD_REQUEST, "charge-capture-failed", d, instance, &[]);
            if !matches!(c.status, ChargeStatus::Reserved | ChargeStatus::PartiallyCaptured) {
                return fail(&format!("A charge in status {} cannot be captured", c.status.as_str()));
            }
            let remaining = c.amount - c.captured - c.cancelled;
            if req.amount <= 0 || req.amount > remaining {
                return fail(&format!("The amount must be between 1 and the remaining reservation {remaining}"));
            }
            c.captured += req.amount;
            c.status = if c.captured + c.cancelled >= c.amount {
                ChargeStatus::Charged
            } else {
                ChargeStatus::PartiallyCaptured
            };
            c.history.push(HistoryEvent {
                occurred: now,
                event: "CAPTURE",
                amount: req.amount,
                idempotency_key: Some(key.to_owned()),
                success: true,
            });
            emit_charge(hooks, msn, c, "recurring.charge-captured.v1", now);
            let _ = external;
            movements.entry(msn.to_owned()).or_default().push(MoneyMovement {
                kind: MovementKind::ChargeCapture,
                amount: req.amount,
                currency: "NOK".to_owned(),
                psp_reference: random_digits(10),
                reference: c.id.clone(),
                agreement_id: Some(c.agreement_id.clone()),
                external_id: c.external_id.clone(),
                at: now,
            });
            Reply::empty(StatusCode::NO_CONTENT)
        },
    )
}

/// `POST .../charges/{chargeId}/refund` `{amount, description}` → `204`.
pub(crate) async fn refund_charge(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path((agreement_id, charge_id)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    let instance = uri.path();
    let counted = format!("{agreement_id}:{charge_id}");
    modify(&sim, &headers, &Method::POST, instance, &body, lim("recurring.refund", &counted, 5), |db, msn, key, now| {
        let req: AmountIn = match parse(&body, instance) {
            Ok(r) => r,
            Err(r) => return r,
        };
        if req.description.as_deref().is_none_or(str::is_empty) {
            return validation(instance, "description", "required");
        }
        if req.amount < 100 {
            return validation(instance, "amount", "must be at least 100");
        }
        let Db { recurring, hooks, movements, .. } = db;
        let Some(a) = recurring.agreements.get_mut(&agreement_id).filter(|a| a.msn == msn) else {
            return not_found("Agreement", instance);
        };
        let Some(c) = a.charges.iter_mut().find(|c| c.id == charge_id) else { return not_found("Charge", instance) };
        let fail = |d: &str| rec_problem(StatusCode::BAD_REQUEST, "operation-failed", d, instance, &[]);
        if !matches!(
            c.status,
            ChargeStatus::Charged | ChargeStatus::PartiallyRefunded | ChargeStatus::PartiallyCaptured
        ) {
            return fail(&format!("A charge in status {} cannot be refunded", c.status.as_str()));
        }
        let refundable = c.captured - c.refunded;
        if req.amount <= 0 || req.amount > refundable {
            return fail(&format!("The amount must be between 1 and the refundable {refundable}"));
        }
        c.refunded += req.amount;
        c.status = if c.refunded >= c.captured { ChargeStatus::Refunded } else { ChargeStatus::PartiallyRefunded };
        c.history.push(HistoryEvent {
            occurred: now,
            event: "REFUND",
            amount: req.amount,
            idempotency_key: Some(key.to_owned()),
            success: true,
        });
        emit_charge(hooks, msn, c, "recurring.charge-refunded.v1", now);
        movements.entry(msn.to_owned()).or_default().push(MoneyMovement {
            kind: MovementKind::ChargeRefund,
            amount: req.amount,
            currency: "NOK".to_owned(),
            psp_reference: random_digits(10),
            reference: c.id.clone(),
            agreement_id: Some(c.agreement_id.clone()),
            external_id: c.external_id.clone(),
            at: now,
        });
        Reply::empty(StatusCode::NO_CONTENT)
    })
}
