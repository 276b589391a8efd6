//! Shared simulator state: one mutex around plain in-memory data, never held across an await.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::auth::TokenInfo;
use crate::clock::Clock;
use crate::config::{Merchant, SimConfig};
use crate::faults::Faults;
use crate::idempotency::IdemStore;

/// Handle to the simulator shared by handlers and background tasks.
pub(crate) type SharedSim = Arc<Sim>;

/// Everything the simulator knows.
pub(crate) struct Sim {
    pub(crate) config: SimConfig,
    pub(crate) clock: Clock,
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub(crate) base_url: String,
    pub(crate) db: Mutex<Db>,
    pub(crate) faults: Faults,
    /// Woken whenever a webhook delivery may have become ready.
    pub(crate) webhook_wake: Arc<Notify>,
}

/// Work that becomes due at a virtual time.
#[derive(Clone, Debug)]
pub(crate) enum Timer {
    /// A `CREATED` payment expires unless the payer acted.
    PaymentExpiry { msn: String, reference: String },
    /// A `PENDING` agreement expires unless the payer acted.
    AgreementExpiry { agreement_id: String },
    /// A recurring charge is attempted (on its due date, then daily while retry days remain).
    ChargeAttempt { agreement_id: String, charge_id: String },
    /// A charge accepted in an async batch answer was dropped: `recurring.charge-creation-failed.v1` is sent.
    ChargeCreationFailed { msn: String, dropped: crate::recurring::DroppedCharge },
}

/// What a landing-page token (in `redirectUrl` / `vippsConfirmationUrl`) points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LandingTarget {
    Payment { msn: String, reference: String },
    Agreement { agreement_id: String },
}

/// Kind of a [`MoneyMovement`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MovementKind {
    /// ePayment capture (money in).
    Capture,
    /// ePayment refund (money out).
    Refund,
    /// Recurring charge captured (DIRECT_CAPTURE charged, or RESERVE_CAPTURE captured).
    ChargeCapture,
    /// Recurring charge refund (money out).
    ChargeRefund,
}

/// One movement of money on an API sales unit, appended when it happens; never changed.
/// The Report API ledger is built from this list (its fields are read there).
#[derive(Clone, Debug)]
pub(crate) struct MoneyMovement {
    pub(crate) kind: MovementKind,
    /// Always positive, in minor units (øre); the sign follows from `kind`.
    pub(crate) amount: i64,
    pub(crate) currency: String,
    /// pspReference of this operation (ePayment event / recurring charge transaction).
    pub(crate) psp_reference: String,
    /// ePayment `reference`, or the recurring `chargeId` (= `orderId` when given).
    pub(crate) reference: String,
    /// Recurring agreement of the charge; `None` for ePayment. Kept for ledger consumers that
    /// group by agreement (the Report API itself does not show it).
    #[allow(dead_code)]
    pub(crate) agreement_id: Option<String>,
    /// Recurring charge `externalId`, used by Vipps in reports instead of the orderId when set.
    pub(crate) external_id: Option<String>,
    /// Virtual time of the movement.
    pub(crate) at: DateTime<Utc>,
}

/// All mutable data.
pub(crate) struct Db {
    pub(crate) merchants: HashMap<String, Merchant>,
    pub(crate) by_sub_key: HashMap<String, String>,
    pub(crate) tokens: HashMap<String, TokenInfo>,
    pub(crate) idem: IdemStore,
    pub(crate) timers: BTreeMap<(DateTime<Utc>, u64), Timer>,
    timer_seq: u64,
    pub(crate) landing: HashMap<String, LandingTarget>,
    /// Append-only money movements per MSN.
    pub(crate) movements: HashMap<String, Vec<MoneyMovement>>,
    pub(crate) epayment: crate::epayment::Store,
    pub(crate) recurring: crate::recurring::Store,
    pub(crate) hooks: crate::webhooks::Hub,
    /// Report API books and Vipps-number ledgers (owned by `report`).
    pub(crate) report: crate::report::Store,
}

impl Db {
    pub(crate) fn new(merchants: &[Merchant], wake: Arc<Notify>) -> Db {
        Db {
            merchants: merchants.iter().map(|m| (m.msn.clone(), m.clone())).collect(),
            by_sub_key: merchants.iter().map(|m| (m.subscription_key.clone(), m.msn.clone())).collect(),
            tokens: HashMap::new(),
            idem: IdemStore::default(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            landing: HashMap::new(),
            movements: HashMap::new(),
            epayment: crate::epayment::Store::default(),
            recurring: crate::recurring::Store::default(),
            hooks: crate::webhooks::Hub::new(wake),
            report: crate::report::Store::default(),
        }
    }

    /// Schedules `timer` at virtual time `at`.
    pub(crate) fn schedule(&mut self, at: DateTime<Utc>, timer: Timer) {
        self.timer_seq += 1;
        self.timers.insert((at, self.timer_seq), timer);
    }

    /// Appends a money movement to the ledger source of `msn`.
    pub(crate) fn record_movement(&mut self, msn: &str, m: MoneyMovement) {
        self.movements.entry(msn.to_owned()).or_default().push(m);
    }

    /// A fresh landing token for `target`.
    pub(crate) fn new_landing(&mut self, target: LandingTarget) -> String {
        let token = uuid::Uuid::new_v4().simple().to_string();
        self.landing.insert(token.clone(), target);
        token
    }
}

impl Sim {
    pub(crate) fn new(config: SimConfig, base_url: String) -> Sim {
        let wake = Arc::new(Notify::new());
        Sim {
            clock: Clock::new(config.clock_start, config.clock_runs),
            db: Mutex::new(Db::new(&config.merchants, wake.clone())),
            config,
            base_url,
            faults: Faults::default(),
            webhook_wake: wake,
        }
    }

    /// Locks the data; a poisoned lock is taken over (handlers never panic by design).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs every timer due at or before the current virtual time, in time order.
    pub(crate) fn process_due(&self) {
        let now = self.clock.now();
        let mut db = self.lock();
        while let Some(entry) = db.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((at, _), timer) = entry.remove_entry();
            match timer {
                Timer::PaymentExpiry { msn, reference } => crate::epayment::expire(&mut db, &msn, &reference, at),
                Timer::AgreementExpiry { agreement_id } => {
                    crate::recurring::expire_agreement(&mut db, &agreement_id, at)
                }
                Timer::ChargeAttempt { agreement_id, charge_id } => {
                    crate::recurring::attempt_charge(&mut db, &agreement_id, &charge_id, at);
                }
                Timer::ChargeCreationFailed { msn, dropped } => {
                    crate::recurring::emit_creation_failed(&mut db.hooks, &msn, &dropped, at);
                }
            }
        }
    }
}
