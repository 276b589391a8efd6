//! What one batch writes: the rows of its answers and new intents, as a few multi-row statements
//! ([`Steps`]), and the outbound events its [`Announce`] composes from what it wrote and read (not read back row
//! by row). It reads first (the endpoints, which payers and profiles exist, how the answered installments stand),
//! then writes. The same code writes a batch of one, alone in its own transaction.

use super::statements::{self, BatchConn, Steps};
use super::{Announce, AnswerWritten, CreatedAtVipps, IntentWritten, PendingIntent, Recorded};
use crate::domain::ids::new_id;
use crate::domain::intent::PayerInput;
use crate::domain::status::{InstallmentStatus, IntentStatus};
use crate::domain::trail::{Channel, Outcome, ReportType};
use crate::store::intents::NewOneTime;
use crate::store::outbox::{self, Endpoint, Listeners, Outgoing};
use crate::store::trail::{NewMessage, NewReport};
use crate::store::{StoreError, StoreResult};

/// The answers, then the new intents, of a batch in the caller's transaction, with the events `announce`
/// composes. Returns what each intent was recorded as, in order.
pub(super) async fn together<C: BatchConn>(
    conn: &mut C,
    announce: &dyn Announce,
    answers: &[&CreatedAtVipps],
    records: &[&PendingIntent],
) -> StoreResult<Vec<Recorded>> {
    // The endpoints, read once: every new intent needs them (to know who listens), and so does an answer that
    // someone may hear.
    let endpoints = if !records.is_empty() || answers.iter().any(|a| a.listeners.as_ref().is_none_or(Listeners::anyone))
    {
        outbox::endpoints(&mut *conn).await?
    } else {
        Vec::new()
    };
    let mut out = Out { steps: Steps::default(), outgoing: Outgoing::default(), endpoints: &endpoints, announce };
    created_together(&mut *conn, &mut out, answers).await?;
    let recorded = record_together(&mut *conn, &mut out, records).await?;
    let Out { mut steps, outgoing, .. } = out;
    steps.insert_deliveries(outgoing);
    conn.write(steps).await?;
    Ok(recorded)
}

/// What a batch will write: its statements, and the deliveries of its events to the installation's `endpoints`
/// (and intents' own URLs), composed by `announce`.
struct Out<'e> {
    steps: Steps,
    outgoing: Outgoing,
    endpoints: &'e [Endpoint],
    announce: &'e dyn Announce,
}

/// The key under which the database keeps a payer unique (lower-cased email, else phone); `None` for a payer
/// with neither, who is always new.
fn payer_key(payer: &PayerInput) -> Option<(bool, String)> {
    match (&payer.email, &payer.phone) {
        (Some(email), _) => Some((true, email.to_lowercase())),
        (None, Some(phone)) => Some((false, phone.as_str().to_owned())),
        (None, None) => None,
    }
}

/// The payers of the batch's intents, in order: found, or created (one per key, in the order of their keys, so
/// that the batches of two payhub instances on one PostgreSQL never wait for each other's rows in opposite
/// orders). A payer created meanwhile by someone else is read back.
async fn payers_of<C: BatchConn>(conn: &mut C, items: &[&PendingIntent]) -> StoreResult<Vec<String>> {
    let payers: Vec<&PayerInput> = items.iter().map(|i| &i.payer).collect();
    let mut found = statements::find_payers(&mut *conn, &payers).await?;
    let mut missing: Vec<usize> = (0..items.len()).filter(|&i| found[i].is_none()).collect();
    if !missing.is_empty() {
        missing.sort_by_key(|&i| payer_key(&items[i].payer));
        let mut new: Vec<(String, usize)> = Vec::new();
        let mut previous = None;
        for &i in &missing {
            let key = payer_key(&items[i].payer);
            if key.is_none() {
                let id = new_id("pay");
                found[i] = Some(id.clone());
                new.push((id, i));
            } else if key != previous {
                new.push((new_id("pay"), i));
            }
            previous = key;
        }
        let rows: Vec<_> = new.iter().map(|(id, i)| (id.as_str(), &items[*i].payer, items[*i].now)).collect();
        let mut steps = Steps::default();
        steps.insert_payers(&rows);
        conn.write(steps).await?;
        let keyed: Vec<usize> = missing.into_iter().filter(|&i| found[i].is_none()).collect();
        let payers: Vec<&PayerInput> = keyed.iter().map(|&i| &items[i].payer).collect();
        for (i, id) in keyed.iter().zip(statements::find_payers(&mut *conn, &payers).await?) {
            found[*i] = Some(id.ok_or_else(|| StoreError::Conflict("payers".into()))?);
        }
    }
    Ok(found.into_iter().map(Option::unwrap_or_default).collect())
}

/// The Vipps wallet profiles of the batch's intents (by payer and phone), in order: found, or created as
/// [`payers_of`] creates payers.
async fn profiles_of<C: BatchConn>(
    conn: &mut C,
    items: &[&PendingIntent],
    payer_ids: &[String],
) -> StoreResult<Vec<String>> {
    let wanted: Vec<(&str, Option<&str>)> =
        items.iter().zip(payer_ids).map(|(i, payer)| (payer.as_str(), i.profile_phone.as_deref())).collect();
    let mut found = statements::find_profiles(&mut *conn, &wanted).await?;
    let mut missing: Vec<usize> = (0..items.len()).filter(|&i| found[i].is_none()).collect();
    if !missing.is_empty() {
        missing.sort_by_key(|&i| wanted[i]);
        missing.dedup_by_key(|i| wanted[*i]);
        let ids: Vec<String> = missing.iter().map(|_| new_id("pp")).collect();
        let rows: Vec<_> =
            missing.iter().zip(&ids).map(|(&i, id)| (id.as_str(), wanted[i].0, wanted[i].1, items[i].now)).collect();
        let mut steps = Steps::default();
        steps.insert_profiles(&rows);
        conn.write(steps).await?;
        let again: Vec<usize> = (0..items.len()).filter(|&i| found[i].is_none()).collect();
        let pairs: Vec<(&str, Option<&str>)> = again.iter().map(|&i| wanted[i]).collect();
        for (i, id) in again.iter().zip(statements::find_profiles(&mut *conn, &pairs).await?) {
            found[*i] = Some(id.ok_or_else(|| StoreError::Conflict("payment_profiles".into()))?);
        }
    }
    Ok(found.into_iter().map(Option::unwrap_or_default).collect())
}

/// Adds the rows of every new intent of the batch to `steps` (its payers and profiles are found or created at
/// once), with the events that announce them.
async fn record_together<C: BatchConn>(
    conn: &mut C,
    out: &mut Out<'_>,
    items: &[&PendingIntent],
) -> StoreResult<Vec<Recorded>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let payer_ids = payers_of(&mut *conn, items).await?;
    let profile_ids = profiles_of(&mut *conn, items, &payer_ids).await?;
    let messages: Vec<_> = items.iter().map(|i| (i.message(), i.now)).collect();
    let message_ids = out.steps.insert_messages(&messages);
    let reports: Vec<_> = items.iter().zip(&message_ids).map(|(i, m)| (i.report(m), i.now)).collect();
    let report_ids = out.steps.insert_reports(&reports);
    let intents: Vec<_> = items
        .iter()
        .zip(&report_ids)
        .zip(payer_ids.iter().zip(&profile_ids))
        .map(|((i, report), (payer, profile))| i.one_time(&i.reference, report, payer, profile))
        .collect();
    let (mut one_times, mut recurring) = (Vec::new(), Vec::new());
    for (item, intent) in items.iter().zip(&intents) {
        match &item.recurring {
            None => one_times.push((intent.clone(), item.now)),
            Some(parts) => recurring.push((intent.clone(), parts, item.now)),
        }
    }
    if !one_times.is_empty() {
        out.steps.insert_one_times(&one_times);
    }
    if !recurring.is_empty() {
        out.steps.insert_recurring_intents(&recurring);
    }
    let mut recorded = Vec::with_capacity(items.len());
    for ((item, payer_id), intent) in items.iter().zip(&payer_ids).zip(&intents) {
        let listeners = Listeners::known(item.webhook_url.clone(), !out.endpoints.is_empty());
        if listeners.anyone() {
            let installment = match &item.recurring {
                None => Some(intent.installment_row(item.now)),
                Some(parts) => parts.initial.then(|| intent.installment_row(item.now).under_mandate(&parts.mandate_id)),
            };
            let written = IntentWritten {
                intent_id: &item.intent_id,
                status: IntentStatus::Processing,
                payer_id,
                installment: installment.as_ref(),
                listeners: &listeners,
                at: item.now,
            };
            out.announce.recorded(out.endpoints, &written, &mut out.outgoing);
        }
        recorded.push(Recorded { reference: item.reference.clone(), listeners });
    }
    Ok(recorded)
}

impl PendingIntent {
    fn message(&self) -> NewMessage<'_> {
        NewMessage::processed(Channel::Api, Some(&self.intent_id), &self.raw_body)
    }

    /// The intent's Inbound Report: a one-time intent names its payment (amount and reference), a recurring one
    /// its price and the recurring payment it made, and its initial payment's installment if any.
    fn report<'a>(&'a self, message_id: &'a str) -> NewReport<'a> {
        let (amount_ore, reference, installment_id, detail) = match &self.recurring {
            None => (self.amount_ore, Some(self.reference.as_str()), Some(self.installment_id.as_str()), None),
            Some(parts) => (
                parts.price_ore,
                None,
                parts.initial.then_some(self.installment_id.as_str()),
                Some(parts.detail.as_str()),
            ),
        };
        NewReport {
            message_id,
            report_type: ReportType::PaymentIntent,
            sub_type: "Default",
            amount_ore: Some(amount_ore),
            reference,
            status: Outcome::Matched,
            installment_id,
            intent_id: Some(&self.intent_id),
            detail,
        }
    }

    fn one_time<'a>(
        &'a self,
        reference: &'a str,
        report_id: &'a str,
        payer_id: &'a str,
        profile_id: &'a str,
    ) -> NewOneTime<'a> {
        NewOneTime {
            intent_id: &self.intent_id,
            installment_id: &self.installment_id,
            payment_reference: reference,
            report_id,
            account_id: &self.account_id,
            payer_id,
            profile_id,
            amount_ore: self.amount_ore,
            bank_statement_description: self.description.as_deref(),
            product: self.product.as_deref(),
            success_url: &self.success_url,
            failure_url: &self.failure_url,
            webhook_url: self.webhook_url.as_deref(),
            customer_phone: self.customer_phone.as_deref(),
            origin: self.origin.as_deref(),
            campaign_id: self.campaign_id.as_deref(),
        }
    }
}

impl CreatedAtVipps {
    fn message(&self) -> NewMessage<'_> {
        NewMessage::processed(Channel::VippsCall, Some(&self.reference), &self.body)
    }

    fn report<'a>(&'a self, message_id: &'a str) -> NewReport<'a> {
        NewReport {
            message_id,
            report_type: ReportType::Vipps,
            sub_type: "payment.created",
            amount_ore: Some(self.amount_ore),
            reference: Some(&self.reference),
            status: Outcome::Matched,
            installment_id: Some(&self.installment_id),
            intent_id: Some(&self.intent_id),
            detail: None,
        }
    }
}

/// Adds every answer of the batch to `steps`: the payments become `CREATED`, their installments `Pending` and
/// their intents `Matched`, each traced by a message and a report, with the events of those moves.
async fn created_together<C: BatchConn>(conn: &mut C, out: &mut Out<'_>, items: &[&CreatedAtVipps]) -> StoreResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    // How the installments that someone may hear about stand before the moves.
    let heard: Vec<&&CreatedAtVipps> =
        items.iter().filter(|i| i.listeners.as_ref().is_none_or(Listeners::anyone)).collect();
    let ids: Vec<&str> = heard.iter().map(|i| i.installment_id.as_str()).collect();
    let mut standing =
        if ids.is_empty() { Default::default() } else { statements::installments_for_events(&mut *conn, &ids).await? };
    let messages: Vec<_> = items.iter().map(|i| (i.message(), i.now)).collect();
    let message_ids = out.steps.insert_messages(&messages);
    let reports: Vec<_> = items.iter().zip(&message_ids).map(|(i, m)| (i.report(m), i.now)).collect();
    out.steps.insert_reports(&reports);
    let created: Vec<_> = items.iter().map(|i| (i.reference.as_str(), i.redirect_url.as_deref(), i.now)).collect();
    out.steps.mark_created(&created);
    let moves: Vec<_> = items.iter().map(|i| (i.installment_id.as_str(), i.now)).collect();
    out.steps.advance_installments(&moves, InstallmentStatus::Pending);
    let intents: Vec<_> = items.iter().map(|i| (i.intent_id.as_str(), i.now)).collect();
    out.steps.set_intents_status(&intents, IntentStatus::Matched);
    for item in heard {
        let Some(events) = standing.get_mut(&item.installment_id) else { continue };
        let listeners = match &item.listeners {
            Some(listeners) => listeners.clone(),
            None => Listeners::known(events.webhook_url.clone(), !out.endpoints.is_empty()),
        };
        if !listeners.anyone() {
            continue;
        }
        // The installment as the batch's move leaves it.
        let installment = &mut events.installment;
        let moved = installment.status.can_become(InstallmentStatus::Pending);
        if moved {
            installment.status = InstallmentStatus::Pending;
        }
        let written = AnswerWritten {
            intent_id: &item.intent_id,
            status: IntentStatus::Matched,
            payer_id: &events.intent_payer_id,
            installment,
            moved,
            payments: &events.payments,
            listeners: &listeners,
            at: item.now,
        };
        out.announce.created(out.endpoints, &written, &mut out.outgoing);
    }
    Ok(())
}
