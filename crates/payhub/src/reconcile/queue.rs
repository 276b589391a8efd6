//! Guided Matching: a person works the lines the rules could not book. **Next** leases the oldest free item to
//! one person (so two people never work the same one); per item the raw line and up to five ranked suggestions
//! with why; then **match** (one installment, or several with the sum checked and the difference booked as the
//! account's remainder handling says), **create** (payer and installment, then match), **ignore** (with a
//! remark), **undo** (a manual match), and **retry** (the rules again on every open item).
//!
//! Every decision is one transaction: the bookings, the queue item, its ledger row, the line's Inbound Report
//! (outcome and why), and an audit entry (who, when, what, with the amounts per installment). A booked Payment
//! names the line's Inbound Report, whose Message is the row as received (and names the file's Message), so
//! money booked by a person is traced like money booked by the rules.
//!
//! Undo is the one place an installment's status moves back: a person's own match was wrong, so what it booked
//! (its Payments, found by the audit entry) is reversed, not deleted: each Payment stays, marked reversed by the
//! undo's own Message and Inbound Report (who undid what), and the installments get back the status and open
//! amount they had, recorded in a second audit entry. It is refused once anything else has moved the
//! installment. A later match of the same line books new Payments beside the reversed ones.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::json;

use crate::domain::account::RemainderHandling;
use crate::domain::guided::{self, Facts, Line, Split, Suggestion, DATE_WINDOW_DAYS};
use crate::domain::intent::PayerInput;
use crate::domain::status::InstallmentStatus;
use crate::domain::trail::{Channel, Outcome, ReportType};
use crate::domain::FieldError;
use crate::error::{ServiceError, ServiceResult};
use crate::store::audit::{self, AuditEntry};
use crate::store::guided::{self as rows, CandidateSearch, ListFilter, NewManualInstallment, SettledPayment};
use crate::store::match_queue::QueueItem;
use crate::store::{accounts, trail, Store};

/// How long Next keeps an item for the person who took it.
pub const LEASE_MINUTES: i64 = 10;

/// Who decides, for the queue's columns and the audit log.
#[derive(Debug, Clone)]
pub struct Who<'a> {
    /// `user:<id> <email>`, `key:<id> <name>`, `cli:<os user>`.
    pub label: &'a str,
    /// The client's address, or `cli`.
    pub source: &'a str,
}

/// An item as a person works it: the line, the raw row as received, and the suggestions.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ItemDetail {
    /// The item and its ledger row.
    pub item: QueueItem,
    /// The row as received (the body of its Message: every column of the file, or the Report API row).
    pub raw: serde_json::Value,
    /// Why the rules stopped, in words.
    pub reason_text: &'static str,
    /// Up to five ranked installments, best first.
    pub suggestions: Vec<SuggestionView>,
}

/// A suggestion with the installment it names.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SuggestionView {
    /// The ranking and why.
    #[serde(flatten)]
    pub suggestion: Suggestion,
    /// Its payment reference.
    pub payment_reference: String,
    /// Open amount, øre.
    pub amount_open_ore: i64,
    /// Due date.
    pub due_date: chrono::NaiveDate,
    /// The payer's name.
    pub payer_name: String,
}

/// What a match booked.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Booked {
    /// The item.
    pub item_id: String,
    /// Per installment: its id, the øre booked, the Payment, and its status after.
    pub installments: Vec<BookedOn>,
    /// Øre left on the report.
    pub remainder_ore: i64,
    /// How the account books a remainder.
    pub remainder_handling: RemainderHandling,
}

/// One installment a match booked on.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct BookedOn {
    /// `ins_…`
    pub installment_id: String,
    /// Øre booked.
    pub amount_ore: i64,
    /// The Payment.
    pub payment_id: String,
    /// Its status before.
    pub status_before: String,
    /// Its open amount before.
    pub open_before_ore: i64,
    /// Its status after.
    pub status_after: String,
}

/// A page of the queue.
pub async fn list(store: &Store, filter: &ListFilter<'_>) -> ServiceResult<Vec<QueueItem>> {
    let mut conn = store.pool().acquire().await?;
    Ok(rows::list(&mut conn, filter).await?)
}

/// One item with its raw line and ranked suggestions (one candidate query, ranked in memory).
pub async fn detail(store: &Store, id: &str) -> ServiceResult<ItemDetail> {
    let mut conn = store.pool().acquire().await?;
    let item = crate::store::match_queue::item(&mut conn, id).await?.ok_or(ServiceError::NotFound("queue item"))?;
    let raw = rows::report_body(&mut conn, &item.entry.inbound_report_id).await?;
    let raw = raw.and_then(|b| serde_json::from_str(&b).ok()).unwrap_or(serde_json::Value::Null);
    let e = &item.entry;
    let words = guided::reference_words(e.reference.as_deref(), e.payer_message.as_deref());
    let tail = guided::phone_tail(e.masked_phone.as_deref());
    let search = CandidateSearch {
        account_id: &item.account_id,
        references: &words,
        amount_ore: e.amount_ore,
        from: e.ledger_date - Duration::days(DATE_WINDOW_DAYS),
        to: e.ledger_date + Duration::days(DATE_WINDOW_DAYS),
        phone_tail: tail.as_deref(),
        name: e.payer_name.as_deref(),
        limit: 200,
    };
    let found = rows::candidates(&mut conn, &search).await?;
    let facts: Vec<Facts<'_>> = found
        .iter()
        .map(|c| Facts {
            installment_id: &c.installment_id,
            payment_reference: &c.payment_reference,
            amount_open_ore: c.amount_open_ore,
            due_date: c.due_date,
            payer_name: &c.payer_name,
            payer_phone: c.payer_phone.as_deref(),
        })
        .collect();
    let line = Line {
        amount_ore: e.amount_ore,
        ledger_date: e.ledger_date,
        words: &words,
        name: e.payer_name.as_deref(),
        phone_tail: tail.as_deref(),
    };
    let suggestions = guided::rank(&line, &facts)
        .into_iter()
        .filter_map(|s| {
            let c = found.iter().find(|c| c.installment_id == s.installment_id)?;
            Some(SuggestionView {
                payment_reference: c.payment_reference.clone(),
                amount_open_ore: c.amount_open_ore,
                due_date: c.due_date,
                payer_name: c.payer_name.clone(),
                suggestion: s,
            })
        })
        .collect();
    let reason_text = item.reason.parse::<crate::domain::ledger::QueueReason>().map_or("", |r| r.describe());
    Ok(ItemDetail { item, raw, reason_text, suggestions })
}

/// **Next**: leases the oldest item nobody is working on to `who` (optionally of one account); `None` when every
/// open item is taken or there is none.
pub async fn next(
    store: &Store,
    who: &Who<'_>,
    account_id: Option<&str>,
    now: DateTime<Utc>,
) -> ServiceResult<Option<String>> {
    let mut tx = store.begin_write().await?;
    let taken =
        rows::take_next(&mut tx, store.backend(), who.label, account_id, now, now + Duration::minutes(LEASE_MINUTES))
            .await?;
    tx.commit().await?;
    Ok(taken)
}

/// The open item `id`, locked, unless someone else holds a live lease on it.
async fn open_item(
    conn: &mut sqlx::AnyConnection,
    store: &Store,
    id: &str,
    who: &Who<'_>,
    now: DateTime<Utc>,
) -> ServiceResult<QueueItem> {
    let item = rows::lock_item(conn, store.backend(), id).await?.ok_or(ServiceError::NotFound("queue item"))?;
    if item.status != "open" {
        return Err(conflict(format!(
            "This item is already {} (by {}).",
            item.status,
            item.decided_by.as_deref().unwrap_or("?")
        )));
    }
    if let (Some(by), Some(until)) = (&item.worked_by, item.lease_until) {
        if by != who.label && until > now {
            return Err(conflict(format!("{by} is working on this item until {}.", until.format("%H:%M UTC"))));
        }
    }
    Ok(item)
}

fn conflict(message: String) -> ServiceError {
    ServiceError::Conflict(vec![FieldError::invalid("id", message)])
}

/// **Match**: books the line on `installment_ids` (one or several, in the order given, each open and of the
/// line's account). When the amount differs from what they have open, the account's remainder handling decides
/// (see [`guided::split`]).
pub async fn match_item(
    store: &Store,
    id: &str,
    installment_ids: &[String],
    who: &Who<'_>,
    now: DateTime<Utc>,
) -> ServiceResult<Booked> {
    if installment_ids.is_empty() {
        return Err(ServiceError::Invalid(vec![FieldError::missing(
            "installment_ids",
            "Choose at least one installment.",
        )]));
    }
    let mut unique = installment_ids.to_vec();
    unique.dedup();
    if unique.len() != installment_ids.len() || installment_ids.len() > 20 {
        return Err(ServiceError::Invalid(vec![FieldError::invalid(
            "installment_ids",
            "Name each installment once, at most 20.",
        )]));
    }
    let mut tx = store.begin_write().await?;
    let item = open_item(&mut tx, store, id, who, now).await?;
    let booked = book(&mut tx, store, &item, installment_ids, who, "reconciliation.match", now).await?;
    tx.commit().await?;
    Ok(booked)
}

/// The bookings of a match, in the caller's transaction.
async fn book(
    conn: &mut sqlx::AnyConnection,
    store: &Store,
    item: &QueueItem,
    installment_ids: &[String],
    who: &Who<'_>,
    action: &str,
    now: DateTime<Utc>,
) -> ServiceResult<Booked> {
    let e = &item.entry;
    if e.amount_ore <= 0 {
        return Err(ServiceError::Invalid(vec![FieldError::invalid(
            "id",
            "Only money in (a positive line) can be matched to installments; ignore this line with a remark.",
        )]));
    }
    let account = accounts::get(conn, &item.account_id).await?.ok_or(ServiceError::NotFound("account"))?;
    let handling = account.settings.remainder_handling;
    let mut chosen = Vec::new();
    for (n, found) in rows::lock_installments(conn, store.backend(), installment_ids).await?.into_iter().enumerate() {
        let field_error =
            |message: String| ServiceError::Invalid(vec![FieldError::invalid("installment_ids", message)]);
        let ins = found.ok_or_else(|| field_error(format!("No installment {}.", installment_ids[n])))?;
        if ins.account_id != item.account_id {
            return Err(field_error(format!("{} belongs to another account.", ins.id)));
        }
        if !matches!(ins.status, InstallmentStatus::Outstanding | InstallmentStatus::Pending)
            || ins.amount_open_ore <= 0
        {
            return Err(field_error(format!("{} is {} and has nothing open.", ins.id, ins.status)));
        }
        chosen.push(ins);
    }
    // Book on next may go on to the payer's following open installments, oldest due first.
    let mut all = chosen.clone();
    if handling == RemainderHandling::BookOnNext {
        let open: i64 = chosen.iter().map(|i| i.amount_open_ore).sum();
        if e.amount_ore > open {
            let ids: Vec<String> = chosen.iter().map(|i| i.id.clone()).collect();
            for next in rows::payer_open_installments(conn, &chosen[0].payer_id, &item.account_id, &ids, 10).await? {
                all.push(next);
            }
        }
    }
    let opens: Vec<i64> = all.iter().map(|i| i.amount_open_ore).collect();
    let Split { booked_ore, remainder_ore } = guided::split(e.amount_ore, &opens, chosen.len(), handling);
    let mut booked = Vec::new();
    // Payments of an earlier match of this line that was undone keep their references.
    let earlier = usize::try_from(rows::payments_of_entry(conn, &e.id).await?).unwrap_or(0);
    for (ins, amount) in all.iter().zip(booked_ore) {
        if amount == 0 {
            continue;
        }
        // One Payment per installment: the first carries Vipps' psp reference, the others a suffix of it, as
        // payments are unique on their psp reference.
        let psp = match earlier + booked.len() {
            0 => e.psp_reference.clone(),
            n => format!("{}-{}", e.psp_reference, n + 1),
        };
        let payment = SettledPayment {
            installment_id: &ins.id,
            amount_ore: amount,
            psp_reference: &psp,
            inbound_report_id: &e.inbound_report_id,
            ledger_entry_id: &e.id,
            ledger_date: e.ledger_date,
        };
        let payment_id = rows::insert_settled_payment(conn, &payment, now).await?;
        let open_after = (ins.amount_open_ore - amount).max(0);
        let status_after = if open_after == 0 { InstallmentStatus::Paid } else { ins.status };
        rows::set_installment(conn, &ins.id, ins.status.as_str(), status_after.as_str(), open_after, now).await?;
        booked.push(BookedOn {
            installment_id: ins.id.clone(),
            amount_ore: amount,
            payment_id,
            status_before: ins.status.as_str().to_owned(),
            open_before_ore: ins.amount_open_ore,
            status_after: status_after.as_str().to_owned(),
        });
    }
    let first = booked.first().map(|b| (b.installment_id.as_str(), b.payment_id.as_str()));
    rows::decide(conn, &item.id, "matched", who.label, None, first, now).await?;
    let detail = format!(
        "matched by {} to {}{}",
        who.label,
        booked.iter().map(|b| format!("{} ({} øre)", b.installment_id, b.amount_ore)).collect::<Vec<_>>().join(", "),
        if remainder_ore > 0 { format!("; {remainder_ore} øre left on the report") } else { String::new() }
    );
    trail::set_report_outcome(conn, &e.inbound_report_id, Outcome::Matched, Some(&detail)).await?;
    let result = Booked { item_id: item.id.clone(), installments: booked, remainder_ore, remainder_handling: handling };
    record(conn, who, action, &item.id, json!({"entry_id": e.id, "amount_ore": e.amount_ore, "booked": result}), now)
        .await?;
    Ok(result)
}

async fn record(
    conn: &mut sqlx::AnyConnection,
    who: &Who<'_>,
    action: &str,
    item_id: &str,
    details: serde_json::Value,
    now: DateTime<Utc>,
) -> ServiceResult<()> {
    let entry = AuditEntry {
        at: now,
        actor: who.label.to_owned(),
        action: action.to_owned(),
        object_type: "queue_item".to_owned(),
        object_id: item_id.to_owned(),
        source: who.source.to_owned(),
        details,
    };
    audit::record(conn, &entry).await?;
    Ok(())
}

/// What a person gives to create a payer and an installment for a line.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInput {
    /// The payer's first name (default: the line's name, first word).
    pub first_name: Option<String>,
    /// The payer's last name (default: the rest of the line's name).
    pub last_name: Option<String>,
    /// The payer's email, when known.
    pub email: Option<String>,
    /// What the money was for (the installment's product).
    pub product: Option<String>,
}

/// **Create**: a payer (or the one with the same email) and an installment of the line's amount due on its
/// ledger date, then the match, in one transaction.
pub async fn create_and_match(
    store: &Store,
    id: &str,
    input: &CreateInput,
    who: &Who<'_>,
    now: DateTime<Utc>,
) -> ServiceResult<Booked> {
    let mut errors = Vec::new();
    let clean = |v: &Option<String>| v.as_ref().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    for (field, value) in
        [("first_name", &input.first_name), ("last_name", &input.last_name), ("product", &input.product)]
    {
        if value.as_ref().is_some_and(|v| v.chars().count() > 80 || v.chars().any(char::is_control)) {
            errors.push(FieldError::invalid(field, "At most 80 characters, on one line."));
        }
    }
    let email = clean(&input.email);
    if email.as_ref().is_some_and(|e| !e.contains('@') || e.len() > 254 || e.chars().any(char::is_whitespace)) {
        errors.push(FieldError::invalid("email", "Email must look like name@example.org."));
    }
    if !errors.is_empty() {
        return Err(ServiceError::Invalid(errors));
    }
    let mut tx = store.begin_write().await?;
    let item = open_item(&mut tx, store, id, who, now).await?;
    let e = &item.entry;
    if e.amount_ore <= 0 {
        return Err(ServiceError::Invalid(vec![FieldError::invalid("id", "Only money in can get an installment.")]));
    }
    let line_name = e.payer_name.clone().unwrap_or_default();
    let (line_first, line_last) = match line_name.trim().split_once(' ') {
        Some((f, l)) => (Some(f.to_owned()), Some(l.trim().to_owned())),
        None if !line_name.trim().is_empty() => (None, Some(line_name.trim().to_owned())),
        None => (None, None),
    };
    let payer = PayerInput {
        first_name: clean(&input.first_name).or(line_first),
        last_name: clean(&input.last_name).or(line_last),
        email,
        phone: None,
        fields: Default::default(),
    };
    let payer_id = match crate::store::payers::find_payer(&mut tx, &payer).await? {
        Some(found) if payer.email.is_some() => found,
        _ => crate::store::payers::create_payer(&mut tx, &payer, now).await?,
    };
    let reference = format!("vn-{}", e.psp_reference);
    let product = clean(&input.product);
    let installment_id = rows::insert_manual_installment(
        &mut tx,
        &NewManualInstallment {
            payer_id: &payer_id,
            account_id: &item.account_id,
            amount_ore: e.amount_ore,
            due_date: e.ledger_date,
            payment_reference: &reference,
            product: product.as_deref().or(Some("Vipps-number payment")),
        },
        now,
    )
    .await?;
    record(
        &mut tx,
        who,
        "reconciliation.create",
        &item.id,
        json!({"payer_id": payer_id, "installment_id": installment_id}),
        now,
    )
    .await?;
    let booked =
        book(&mut tx, store, &item, std::slice::from_ref(&installment_id), who, "reconciliation.match", now).await?;
    tx.commit().await?;
    Ok(booked)
}

/// **Ignore**: the line stays unbooked, with the person's remark (required).
pub async fn ignore(store: &Store, id: &str, remark: &str, who: &Who<'_>, now: DateTime<Utc>) -> ServiceResult<()> {
    let remark = remark.trim();
    if remark.is_empty() || remark.chars().count() > 500 {
        return Err(ServiceError::Invalid(vec![FieldError::missing("remark", "Say why (at most 500 characters).")]));
    }
    let mut tx = store.begin_write().await?;
    let item = open_item(&mut tx, store, id, who, now).await?;
    rows::decide(&mut tx, &item.id, "ignored", who.label, Some(remark), None, now).await?;
    let detail = format!("ignored by {}: {remark}", who.label);
    trail::set_report_outcome(&mut tx, &item.entry.inbound_report_id, Outcome::Ignored, Some(&detail)).await?;
    record(&mut tx, who, "reconciliation.ignore", &item.id, json!({"entry_id": item.entry.id, "remark": remark}), now)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// **Undo** a person's match, as a reversal: its Payments stay, each marked reversed by the undo's own Inbound
/// Report (whose Message says who undid what, and when), so every change of money stays traced to what caused
/// it; each installment gets back the status and open amount it had, and the item waits again. Refused when the
/// match was the rules', or when an installment has moved since.
pub async fn undo(store: &Store, id: &str, who: &Who<'_>, now: DateTime<Utc>) -> ServiceResult<()> {
    let mut tx = store.begin_write().await?;
    let item = rows::lock_item(&mut tx, store.backend(), id).await?.ok_or(ServiceError::NotFound("queue item"))?;
    if item.status != "matched" {
        return Err(conflict(format!("Only a matched item can be undone; this one is {}.", item.status)));
    }
    let last = audit::recent(&mut tx, Some(&item.id), 20).await?;
    let matched = last.iter().find(|a| a.action == "reconciliation.match");
    let booked: Vec<BookedOn> = matched
        .and_then(|a| serde_json::from_value(a.details["booked"]["installments"].clone()).ok())
        .ok_or_else(|| {
            conflict("This item was matched by the rules, not by a person: there is no manual match to undo.".into())
        })?;
    for b in &booked {
        let ins = crate::store::installments::lock_installment(&mut tx, store.backend(), &b.installment_id)
            .await?
            .ok_or(ServiceError::NotFound("installment"))?;
        let open_now = ins.amount_open_ore;
        let open_after_match = (b.open_before_ore - b.amount_ore).max(0);
        if ins.status.as_str() != b.status_after || open_now != open_after_match {
            return Err(conflict(format!(
                "{} has changed since the match ({}); undo it there first.",
                ins.id, ins.status
            )));
        }
        rows::set_installment(&mut tx, &ins.id, &b.status_after, &b.status_before, b.open_before_ore, now).await?;
    }
    let e = &item.entry;
    let reversed: i64 = booked.iter().map(|b| b.amount_ore).sum();
    let detail = format!(
        "match undone by {}: reversed {}",
        who.label,
        booked
            .iter()
            .map(|b| format!("{} ({} øre on {})", b.payment_id, b.amount_ore, b.installment_id))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let body = json!({
        "action": "undo",
        "item_id": item.id,
        "entry_id": e.id,
        "by": who.label,
        "source": who.source,
        "reversed": booked,
    })
    .to_string();
    let message_id = trail::insert_message(
        &mut tx,
        &trail::NewMessage::processed(Channel::GuidedMatching, Some(&item.id), &body),
        now,
    )
    .await?;
    let report_id = trail::insert_report(
        &mut tx,
        &trail::NewReport {
            message_id: &message_id,
            report_type: ReportType::GuidedMatching,
            sub_type: "undo",
            amount_ore: Some(-reversed),
            reference: Some(&e.psp_reference),
            status: Outcome::Matched,
            installment_id: booked.first().map(|b| b.installment_id.as_str()),
            intent_id: None,
            detail: Some(&detail),
        },
        now,
    )
    .await?;
    let payment_ids: Vec<String> = booked.iter().map(|b| b.payment_id.clone()).collect();
    if rows::reverse_settled_payments(&mut tx, &payment_ids, &report_id).await? != payment_ids.len() as u64 {
        return Err(conflict("A Payment of this match was reversed already.".into()));
    }
    rows::reopen(&mut tx, &item.id, now).await?;
    trail::set_report_outcome(&mut tx, &e.inbound_report_id, Outcome::New, Some(&detail)).await?;
    record(
        &mut tx,
        who,
        "reconciliation.undo",
        &item.id,
        json!({"entry_id": e.id, "undone": booked, "inbound_report_id": report_id}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What **Retry unmatched** did.
#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct Retried {
    /// Open items the rules looked at.
    pub tried: u64,
    /// Items they could now book.
    pub matched: u64,
}

/// **Retry unmatched**: the rules again on every open item (after new installments exist, say). Lines of an API
/// sales unit go through the account's matching rules, the same entry point as the ledger import
/// ([`super::matching::run_rules`]). A Vipps-number payment carries no reference of payhub's, so its rule reads
/// the payer's message too: an item whose reference or message names exactly one open installment's payment
/// reference, with exactly the line's amount open, is booked on it. Everything else stays for a person.
pub async fn retry(store: &Store, who: &Who<'_>, now: DateTime<Utc>) -> ServiceResult<Retried> {
    let open = {
        let filter = ListFilter { status: Some("open"), reason: None, account_id: None, after: None, limit: 10_000 };
        let mut conn = store.pool().acquire().await?;
        rows::list(&mut conn, &filter).await?
    };
    let mut retried = Retried { tried: open.len() as u64, matched: 0 };
    let (vipps_number, api): (Vec<QueueItem>, Vec<QueueItem>) =
        open.into_iter().partition(|i| i.entry.recipient_handle.as_deref().is_some_and(|h| h.starts_with("NO:")));
    let mut accounts: Vec<&str> = api.iter().map(|i| i.account_id.as_str()).collect();
    accounts.sort_unstable();
    accounts.dedup();
    for account in accounts {
        let entries: Vec<crate::store::ledger::EntryRow> =
            api.iter().filter(|i| i.account_id == account).map(|i| i.entry.clone()).collect();
        retried.matched += super::matching::run_rules(store, account, &entries, now).await?.booked;
    }
    for id in vipps_number.into_iter().map(|i| i.id) {
        let detail = detail(store, &id).await?;
        let sure: Vec<&SuggestionView> = detail
            .suggestions
            .iter()
            .filter(|s| s.suggestion.reference && s.suggestion.amount_difference_ore == 0)
            .collect();
        let [only] = sure.as_slice() else { continue };
        let rules = Who { label: "rules (retry unmatched)", source: who.source };
        let mut tx = store.begin_write().await?;
        // An item someone took meanwhile is theirs to decide.
        let Ok(item) = open_item(&mut tx, store, &id, who, now).await else { continue };
        let installment = only.suggestion.installment_id.clone();
        let booked = book(&mut tx, store, &item, &[installment], &rules, "reconciliation.rules_match", now).await?;
        record(&mut tx, who, "reconciliation.retry", &id, json!({"booked": booked}), now).await?;
        tx.commit().await?;
        retried.matched += 1;
    }
    Ok(retried)
}
