//! Charge processing on the virtual clock: PENDING → DUE near the due date, attempts on the due
//! date and daily retries, then CHARGED / RESERVED or FAILED.

use super::*;

pub(super) fn succeed_charge(
    hooks: &mut crate::webhooks::Hub,
    movements: &mut HashMap<String, Vec<MoneyMovement>>,
    msn: &str,
    agreement_id: &str,
    c: &mut Charge,
    at: DateTime<Utc>,
) {
    let tx = random_digits(10);
    c.transaction_id = Some(tx.clone());
    c.failure_reason = None;
    let key = Some(format!("{}-{agreement_id}-ProcessPayment", c.id));
    match c.transaction_type {
        TransactionType::DirectCapture => {
            c.status = ChargeStatus::Charged;
            c.captured = c.amount;
            c.history.push(HistoryEvent {
                occurred: at,
                event: "RESERVE",
                amount: c.amount,
                idempotency_key: key.clone(),
                success: true,
            });
            c.history.push(HistoryEvent {
                occurred: at,
                event: "CAPTURE",
                amount: c.amount,
                idempotency_key: key,
                success: true,
            });
            emit_charge(hooks, msn, c, "recurring.charge-captured.v1", at);
            movements.entry(msn.to_owned()).or_default().push(MoneyMovement {
                kind: MovementKind::ChargeCapture,
                amount: c.amount,
                currency: "NOK".to_owned(),
                psp_reference: tx,
                reference: c.id.clone(),
                agreement_id: Some(agreement_id.to_owned()),
                external_id: c.external_id.clone(),
                at,
            });
        }
        TransactionType::ReserveCapture => {
            c.status = ChargeStatus::Reserved;
            c.history.push(HistoryEvent {
                occurred: at,
                event: "RESERVE",
                amount: c.amount,
                idempotency_key: key,
                success: true,
            });
            emit_charge(hooks, msn, c, "recurring.charge-reserved.v1", at);
        }
    }
}

/// Timer: moves a `PENDING` charge to `DUE` when its due date is near, and attempts a `DUE`
/// charge on its due date (then daily while retry days remain; afterwards `FAILED`).
pub(crate) fn attempt_charge(db: &mut Db, agreement_id: &str, charge_id: &str, at: DateTime<Utc>) {
    let mut reschedule = None;
    {
        let Db { recurring, hooks, movements, .. } = &mut *db;
        let Store { agreements, fail_next, .. } = recurring;
        let Some(a) = agreements.get_mut(agreement_id) else { return };
        let msn = a.msn.clone();
        let max_amount = (a.pricing.kind == PricingType::Variable)
            .then(|| a.pricing.max_amount.or(a.pricing.suggested_max).unwrap_or(0));
        let Some(c) = a.charges.iter_mut().find(|c| c.id == charge_id) else { return };
        let due_at = attempt_time(c.due);
        if c.status == ChargeStatus::Pending {
            c.status = ChargeStatus::Due;
            if at < due_at {
                reschedule = Some(due_at);
            }
        }
        // A charge held in PROCESSING (the `/_sim/` control) finishes at its attempt time like a DUE one.
        if c.status == ChargeStatus::Processing && at < due_at {
            reschedule = Some(due_at);
        }
        if reschedule.is_none() && matches!(c.status, ChargeStatus::Due | ChargeStatus::Processing) {
            if c.attempts == 0 {
                if let Some(f) = fail_next.remove(agreement_id) {
                    c.forced_failures = Some(f);
                }
            }
            c.attempts += 1;
            let mut failure = None;
            if let Some((left, reason)) = &mut c.forced_failures {
                if *left > 0 {
                    *left -= 1;
                    failure = Some(reason.clone());
                }
            }
            if failure.is_none() && max_amount.is_some_and(|m| c.amount > m) {
                failure = Some("charge_amount_too_high".to_owned());
            }
            match failure {
                None => succeed_charge(hooks, movements, &msn, agreement_id, c, at),
                Some(reason) if c.attempts > c.retry_days => {
                    c.status = ChargeStatus::Failed;
                    c.failure_reason = Some(reason);
                    c.history.push(HistoryEvent {
                        occurred: at,
                        event: "FAIL",
                        amount: c.amount,
                        idempotency_key: None,
                        success: false,
                    });
                    emit_charge(hooks, &msn, c, "recurring.charge-failed.v1", at);
                }
                Some(reason) => {
                    c.failure_reason = Some(reason);
                    reschedule = Some(attempt_time(c.due + chrono::Duration::days(c.attempts)));
                }
            }
        }
    }
    if let Some(t) = reschedule {
        db.schedule(t, Timer::ChargeAttempt { agreement_id: agreement_id.to_owned(), charge_id: charge_id.to_owned() });
    }
}
