//! Automatic matching: the account's ordered rules (data, per report sub type) applied to a batch of ledger
//! rows at once. Candidates are read with one statement per kind for the whole batch, decisions are made in
//! memory in the rows' order (so the same rows and records always give the same result), and the bookings,
//! payouts and queue items are written set-based in one transaction.
//!
//! A capture settles the Payment recorded under its pspReference (ledger date, net amount, payout; the
//! installment moves Collected → Paid), else the installment its reference names (a capture payhub never
//! recorded, booked from the ledger with its own Inbound Report saying so). An amount that differs, an
//! installment already paid, several candidates or none go to the queue with the reason. Capture fees attach
//! to the capture's Payment; a payout row makes a Payout covering every row up to its date.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::domain::ids::new_id;
use crate::domain::ledger::{payout_number, EntryKind, MatchRule, QueueReason, Topic};
use crate::store::ledger::{self, EntryRow};
use crate::store::match_queue::{self, NewItem};
use crate::store::payouts::{self, NewPayout};
use crate::store::settlement::{self, Bookings, Fee, FromLedger, InstallmentCandidate, PaymentCandidate, Settle};
use crate::store::{Store, StoreResult};

/// Rows read and decided per transaction.
pub const BATCH: i64 = 5_000;

/// What matching did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Matched {
    /// Rows booked (captures, refunds, fees, and the fees-retained and payout rows of payouts).
    pub booked: u64,
    /// Rows put (or kept) in the queue.
    pub queued: u64,
    /// Payouts recorded.
    pub payouts: u64,
}

impl std::ops::AddAssign for Matched {
    fn add_assign(&mut self, o: Matched) {
        self.booked += o.booked;
        self.queued += o.queued;
        self.payouts += o.payouts;
    }
}

/// Matches every row of `account_id` waiting on a checked, balanced date, in batches of [`BATCH`]: funds first
/// (captures make the Payments their fees attach to; payouts), then fees. Each batch is read inside the
/// transaction that writes what the rules decide (under the account's lock), so it is read once.
pub async fn match_new(store: &Store, account_id: &str, now: DateTime<Utc>) -> StoreResult<Matched> {
    let mut total = Matched::default();
    for topic in Topic::ALL {
        let mut after: Option<EntryRow> = None;
        loop {
            let mut tx = store.begin_write().await?;
            settlement::lock_account(&mut tx, store.backend(), account_id).await?;
            let batch = ledger::entries_to_match(&mut tx, account_id, topic, after.as_ref(), BATCH).await?;
            let Some(last) = batch.last().cloned() else {
                tx.commit().await?;
                break;
            };
            total += apply_rules(&mut tx, account_id, &batch, now).await?;
            tx.commit().await?;
            after = Some(last);
        }
    }
    Ok(total)
}

/// Runs the account's rules on `entries` (rows of `account_id`, status `new` or `queued`, in ledger order) and
/// writes what they decide in one transaction: bookings, payouts, queue items (a queued row the rules now book
/// has its item closed as matched by `rules`). "Retry unmatched" calls this with the open items' rows.
pub async fn run_rules(
    store: &Store,
    account_id: &str,
    entries: &[EntryRow],
    now: DateTime<Utc>,
) -> StoreResult<Matched> {
    let mut tx = store.begin_write().await?;
    settlement::lock_account(&mut tx, store.backend(), account_id).await?;
    // The rows as they stand now: another instance may have matched some since they were read.
    let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
    let entries: Vec<EntryRow> = ledger::entries_by_id(&mut tx, &ids)
        .await?
        .into_iter()
        .filter(|e| (e.status == "new" || e.status == "queued") && e.account_id == account_id)
        .collect();
    let matched = apply_rules(&mut tx, account_id, &entries, now).await?;
    tx.commit().await?;
    Ok(matched)
}

/// The rules on rows read under the account's lock, written in the caller's transaction.
async fn apply_rules(
    tx: &mut sqlx::AnyConnection,
    account_id: &str,
    entries: &[EntryRow],
    now: DateTime<Utc>,
) -> StoreResult<Matched> {
    let rules = rules_of(&mut *tx, account_id).await?;
    let psps: Vec<&str> = entries
        .iter()
        .filter(|e| matches!(kind(e), EntryKind::Capture | EntryKind::Refund | EntryKind::CaptureFee))
        .map(|e| e.psp_reference.as_str())
        .collect();
    let payments = settlement::payments_by_psp(&mut *tx, &psps).await?;
    // Installments by reference only for the captures that rule can still decide: all of them when it comes
    // before the pspReference rule, else those whose pspReference names no Payment.
    let capture_rules = rules.get("ledger.capture").map(Vec::as_slice).unwrap_or_default();
    let rank = |r: MatchRule| capture_rules.iter().position(|x| *x == r);
    let reference_first = match (rank(MatchRule::InstallmentByReference), rank(MatchRule::PaymentByPspReference)) {
        (Some(a), Some(b)) => a < b,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let recorded: HashSet<&str> =
        payments.iter().filter(|p| p.kind == "capture").map(|p| p.psp_reference.as_str()).collect();
    let refs: Vec<&str> = entries
        .iter()
        .filter(|e| kind(e) == EntryKind::Capture)
        .filter(|e| reference_first || !recorded.contains(e.psp_reference.as_str()))
        .filter_map(|e| e.reference.as_deref().filter(|r| !r.is_empty()))
        .collect();
    let installments = if rank(MatchRule::InstallmentByReference).is_some() {
        settlement::installments_by_reference(&mut *tx, &refs).await?
    } else {
        Vec::new()
    };
    let decided = decide(account_id, entries, &rules, &payments, &installments);
    let bookings = decided.bookings(entries, &payments, &installments);
    settlement::book(&mut *tx, &bookings, now).await?;
    let mut matched = Matched { booked: bookings.len() as u64, queued: decided.queue.len() as u64, payouts: 0 };
    for e in &decided.payouts {
        let bank_text = e.reference.as_deref().filter(|r| !r.is_empty());
        let (_, rows) = payouts::record_payout(
            &mut *tx,
            &NewPayout {
                account_id,
                ledger_id: &e.ledger_id,
                entry_id: &e.id,
                psp_reference: &e.psp_reference,
                bank_text,
                payout_number: bank_text.and_then(payout_number),
                amount_ore: -e.amount_ore,
                currency: &e.currency,
                ledger_date: e.ledger_date,
                inbound_report_id: &e.inbound_report_id,
            },
            now,
        )
        .await?;
        matched.payouts += 1;
        matched.booked += rows;
    }
    let booked_ids: Vec<String> = bookings
        .settle
        .iter()
        .map(|s| s.entry_id)
        .chain(bookings.from_ledger.iter().map(|f| f.entry_id))
        .chain(bookings.fees.iter().map(|f| f.entry_id))
        .map(str::to_owned)
        .collect();
    payouts::link_late_payments(&mut *tx, &booked_ids).await?;
    match_queue::close_booked(&mut *tx, &booked_ids, "rules", now).await?;
    let items: Vec<NewItem<'_>> = decided
        .queue
        .iter()
        .map(|(i, reason, detail)| NewItem {
            entry_id: &entries[*i].id,
            account_id,
            reason: *reason,
            detail: Some(detail.clone()),
        })
        .collect();
    match_queue::enqueue(&mut *tx, &items, now).await?;
    let notes: Vec<(&str, String)> = decided
        .queue
        .iter()
        .map(|(i, reason, detail)| (entries[*i].inbound_report_id.as_str(), format!("{}: {detail}", reason.describe())))
        .collect();
    settlement::note_queued(&mut *tx, &notes, now).await?;
    Ok(matched)
}

fn kind(e: &EntryRow) -> EntryKind {
    e.kind.parse().unwrap_or_else(|_| EntryKind::classify(&e.entry_type, e.amount_ore))
}

async fn rules_of(conn: &mut sqlx::AnyConnection, account_id: &str) -> StoreResult<HashMap<String, Vec<MatchRule>>> {
    let mut out: HashMap<String, Vec<MatchRule>> = HashMap::new();
    for (sub_type, rule) in settlement::rules(conn, account_id).await? {
        // A rule word this version does not know is skipped (its row waits in the queue instead).
        if let Ok(rule) = rule.parse() {
            out.entry(sub_type).or_default().push(rule);
        }
    }
    Ok(out)
}

/// What the rules decided for one row.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    /// Settles the Payment at this index of the candidates (a capture also pays its installment).
    Settle { payment: usize, pays: bool, why: &'static str },
    /// A capture payhub never recorded, booked on the installment at this index as a new Payment.
    FromLedger { installment: usize, payment_id: String },
    /// The fee of this Payment (of this installment).
    Fee { payment_id: String, installment_id: String },
    /// A payout row: makes a Payout.
    Payout,
    /// Part of a payout to come (fees retained): booked by the payout that covers its date.
    AwaitPayout,
    /// For a person, with why.
    Queue(QueueReason, String),
}

/// The decisions of a batch, by row index.
#[derive(Debug, Default)]
struct Decided {
    rows: Vec<Decision>,
    payouts: Vec<EntryRow>,
    queue: Vec<(usize, QueueReason, String)>,
}

impl Decided {
    fn bookings<'a>(
        &'a self,
        entries: &'a [EntryRow],
        payments: &'a [PaymentCandidate],
        installments: &'a [InstallmentCandidate],
    ) -> Bookings<'a> {
        let mut out = Bookings::default();
        for (e, d) in entries.iter().zip(&self.rows) {
            match d {
                Decision::Settle { payment, pays, why } => {
                    let p = &payments[*payment];
                    out.settle.push(Settle {
                        entry_id: &e.id,
                        report_id: &e.inbound_report_id,
                        payment_id: &p.id,
                        installment_id: &p.installment_id,
                        ledger_date: e.ledger_date,
                        amount_ore: e.amount_ore,
                        detail: (*why).to_owned(),
                        pays: *pays,
                    });
                }
                Decision::FromLedger { installment, payment_id } => {
                    let i = &installments[*installment];
                    out.from_ledger.push(FromLedger {
                        payment_id: payment_id.clone(),
                        entry_id: &e.id,
                        report_id: &e.inbound_report_id,
                        installment_id: &i.id,
                        amount_ore: e.amount_ore,
                        psp_reference: &e.psp_reference,
                        ledger_date: e.ledger_date,
                        detail: format!(
                            "booked from the ledger: payhub had not recorded this capture (installment was {})",
                            i.status
                        ),
                    });
                }
                Decision::Fee { payment_id, installment_id } => out.fees.push(Fee {
                    entry_id: &e.id,
                    report_id: &e.inbound_report_id,
                    payment_id,
                    installment_id,
                    fee_ore: -e.amount_ore,
                }),
                Decision::Payout | Decision::AwaitPayout | Decision::Queue(..) => {}
            }
        }
        out
    }
}

fn kroner(ore: i64) -> String {
    let sign = if ore < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", ore.unsigned_abs() / 100, ore.unsigned_abs() % 100)
}

/// Applies the rules to every row, in order. Pure: the same rows and candidates give the same decisions.
fn decide(
    account_id: &str,
    entries: &[EntryRow],
    rules: &HashMap<String, Vec<MatchRule>>,
    payments: &[PaymentCandidate],
    installments: &[InstallmentCandidate],
) -> Decided {
    let by_psp: HashMap<(&str, &str), usize> =
        payments.iter().enumerate().map(|(i, p)| ((p.psp_reference.as_str(), p.kind.as_str()), i)).collect();
    let mut by_ref: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, c) in installments.iter().enumerate() {
        let ids = by_ref.entry(c.reference.as_str()).or_default();
        if !ids.iter().any(|&j| installments[j].id == c.id) {
            ids.push(i);
        }
    }
    // What this batch settles, so a second row naming the same Payment or installment is seen as a repeat.
    let mut settled_payments: HashSet<&str> = HashSet::new();
    let mut paid_installments: HashSet<&str> = HashSet::new();
    // Captures booked from the ledger in this batch, by pspReference: their fee rows follow on the fees topic.
    let mut new_payments: HashMap<&str, (String, &str)> = HashMap::new();
    let mut out = Decided::default();
    for (index, e) in entries.iter().enumerate() {
        let sub_type = format!("ledger.{}", e.entry_type);
        let kind = kind(e);
        let mut decision = None;
        for rule in rules.get(&sub_type).map(Vec::as_slice).unwrap_or_default() {
            decision = match rule {
                MatchRule::PaymentByPspReference if kind == EntryKind::Capture => {
                    by_psp.get(&(e.psp_reference.as_str(), "capture")).map(|&i| {
                        let p = &payments[i];
                        if p.amount_ore != e.amount_ore {
                            Decision::Queue(
                                QueueReason::AmountDiffers,
                                format!(
                                    "ledger {} NOK, payment {} recorded {} NOK",
                                    kroner(e.amount_ore),
                                    p.psp_reference,
                                    kroner(p.amount_ore)
                                ),
                            )
                        } else if p.ledger_entry_id.as_deref().is_some_and(|id| id != e.id)
                            || !settled_payments.insert(p.id.as_str())
                        {
                            Decision::Queue(
                                QueueReason::AlreadyPaid,
                                format!("payment {} was settled by another ledger line", p.psp_reference),
                            )
                        } else {
                            paid_installments.insert(p.installment_id.as_str());
                            Decision::Settle { payment: i, pays: true, why: "capture matched by pspReference" }
                        }
                    })
                }
                MatchRule::InstallmentByReference if kind == EntryKind::Capture => {
                    let found = e.reference.as_deref().and_then(|r| by_ref.get(r)).map(|ids| {
                        ids.iter().copied().filter(|&i| installments[i].account_id == account_id).collect::<Vec<_>>()
                    });
                    match found.as_deref() {
                        None | Some([]) => None,
                        Some([i]) => Some(capture_on_installment(
                            e,
                            *i,
                            &installments[*i],
                            &mut paid_installments,
                            &mut new_payments,
                        )),
                        Some(many) => Some(Decision::Queue(
                            QueueReason::SeveralCandidates,
                            format!(
                                "{} installments carry reference {}",
                                many.len(),
                                e.reference.as_deref().unwrap_or("")
                            ),
                        )),
                    }
                }
                MatchRule::RefundByPspReference if kind == EntryKind::Refund => {
                    by_psp.get(&(e.psp_reference.as_str(), "refund")).map(|&i| {
                        let p = &payments[i];
                        if p.amount_ore != e.amount_ore {
                            Decision::Queue(
                                QueueReason::AmountDiffers,
                                format!(
                                    "ledger {} NOK, refund recorded {} NOK",
                                    kroner(e.amount_ore),
                                    kroner(p.amount_ore)
                                ),
                            )
                        } else if p.ledger_entry_id.as_deref().is_some_and(|id| id != e.id)
                            || !settled_payments.insert(p.id.as_str())
                        {
                            Decision::Queue(
                                QueueReason::AlreadyPaid,
                                "the refund was settled by another ledger line".into(),
                            )
                        } else {
                            Decision::Settle { payment: i, pays: false, why: "refund matched by pspReference" }
                        }
                    })
                }
                MatchRule::FeeOfCapture if kind == EntryKind::CaptureFee => {
                    let recorded = by_psp.get(&(e.psp_reference.as_str(), "capture")).map(|&i| {
                        let p = &payments[i];
                        (p.id.clone(), p.installment_id.clone())
                    });
                    let booked_now =
                        new_payments.get(e.psp_reference.as_str()).map(|(id, ins)| (id.clone(), (*ins).to_owned()));
                    recorded
                        .or(booked_now)
                        .map(|(payment_id, installment_id)| Decision::Fee { payment_id, installment_id })
                }
                MatchRule::Payout if kind == EntryKind::Payout => Some(Decision::Payout),
                MatchRule::Payout if kind == EntryKind::FeesRetained => Some(Decision::AwaitPayout),
                _ => None,
            };
            if decision.is_some() {
                break;
            }
        }
        let decision = decision.unwrap_or_else(|| unmatched(e, kind, rules.contains_key(&sub_type)));
        match &decision {
            Decision::Payout => {
                out.payouts.push(e.clone());
            }
            Decision::Queue(reason, detail) => out.queue.push((index, *reason, detail.clone())),
            _ => {}
        }
        out.rows.push(decision);
    }
    out
}

/// A capture whose reference names one installment and whose pspReference payhub never recorded.
fn capture_on_installment<'a>(
    e: &'a EntryRow,
    index: usize,
    c: &'a InstallmentCandidate,
    paid: &mut HashSet<&'a str>,
    new_payments: &mut HashMap<&'a str, (String, &'a str)>,
) -> Decision {
    if c.amount_ore != e.amount_ore {
        return Decision::Queue(
            QueueReason::AmountDiffers,
            format!("ledger {} NOK, installment expects {} NOK", kroner(e.amount_ore), kroner(c.amount_ore)),
        );
    }
    if c.status == "Paid" || c.captured_psp.is_some() || paid.contains(c.id.as_str()) {
        return Decision::Queue(
            QueueReason::AlreadyPaid,
            format!(
                "installment {} is already {}{}",
                c.id,
                if c.status == "Paid" { "paid" } else { "collected" },
                c.captured_psp.as_deref().map(|p| format!(" (capture {p})")).unwrap_or_default()
            ),
        );
    }
    if !matches!(c.status.as_str(), "Outstanding" | "Pending" | "Collected") {
        return Decision::Queue(QueueReason::NoCandidate, format!("installment {} is {}", c.id, c.status));
    }
    paid.insert(c.id.as_str());
    let payment_id = new_id("pmt");
    new_payments.insert(e.psp_reference.as_str(), (payment_id.clone(), c.id.as_str()));
    Decision::FromLedger { installment: index, payment_id }
}

/// Why a row no rule booked waits for a person.
fn unmatched(e: &EntryRow, kind: EntryKind, has_rules: bool) -> Decision {
    let vipps_number =
        e.recipient_handle.as_deref().is_some_and(|h| ["NO:", "DK:", "FI:"].iter().any(|p| h.starts_with(p)));
    match kind {
        EntryKind::Dispute => Decision::Queue(QueueReason::Dispute, format!("{} of {}", e.entry_type, e.psp_reference)),
        EntryKind::Correction => Decision::Queue(QueueReason::Correction, format!("correction {}", e.psp_reference)),
        EntryKind::Capture if vipps_number => Decision::Queue(
            QueueReason::VippsNumberPayment,
            format!("{} NOK to {}", kroner(e.amount_ore), e.recipient_handle.as_deref().unwrap_or("")),
        ),
        EntryKind::Capture | EntryKind::Refund => Decision::Queue(
            QueueReason::NoCandidate,
            format!(
                "no payment {} and no installment with reference {}",
                e.psp_reference,
                e.reference.as_deref().unwrap_or("(none)")
            ),
        ),
        EntryKind::CaptureFee => Decision::Queue(
            QueueReason::NoCandidate,
            format!("the capture {} of this fee is not booked", e.psp_reference),
        ),
        _ if !has_rules => Decision::Queue(
            QueueReason::UnknownType,
            format!("entry type {} ({}) has no matching rule", e.entry_type, kind.as_str()),
        ),
        _ => Decision::Queue(QueueReason::UnknownType, format!("entry type {}", e.entry_type)),
    }
}
