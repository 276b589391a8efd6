//! The recurring pipeline: a recurring intent becomes a Pending mandate, a recurring payment and a Vipps
//! agreement; Vipps' answers (webhooks, polls, the payer's return) move the mandate; the beats generate
//! installments (one per schedule period) and collect each with a Vipps charge created ahead of its due date.
//!
//! Keys, all derived from our own records and stored before the call: the mandate id drafts the agreement;
//! a charge's id is its installment's payment reference, which is also its `orderId` at Vipps (unique per
//! merchant, so a repeated create can never make a second charge); a batch of charges is keyed by a digest
//! of its charge ids; a change (amount, stop) is keyed by its `recurring_changes` row.

use std::collections::BTreeMap;

use chrono::{DateTime, Days, NaiveDate, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};
use vipps_client::recurring::{
    Agreement, AgreementStatus, AgreementUpdate, BatchCharge, Charge, ChargeStatus, CreateCharge, DraftAgreement,
    FailureReason, InitialCharge, IntervalUnit, PricingRequest, PricingUpdate, TimePeriod, TransactionType,
};
use vipps_client::{Currency, ErrorKind, RecurringIdempotencyKey, RecurringProblem};

use super::vipps_payment::{describe, is_transient};
use super::{outbox, with_defaults, IntentError, Payments};
use crate::auth::Actor;
use crate::domain::ids::new_id;
use crate::domain::money::Money;
use crate::domain::recurring::{
    MandateStatus, RecurringIntent, RecurringStatus, MAX_CHARGE_DESCRIPTION, MAX_RECURRING_ORE, MIN_RECURRING_ORE,
};
use crate::domain::status::{InstallmentStatus, IntentStatus};
use crate::domain::FieldError;
use crate::error::ErrorItem;
use crate::error::{ServiceError, ServiceResult};
use crate::store::audit::{self, AuditEntry};
use crate::store::records::{self, NewMessage, NewReport};
use crate::store::recurring::{self as rec, ChargeRow, MandateRow, NewCharge, NewPeriodInstallment, RecurringRow};
use crate::store::StoreError;

/// Settings of the recurring beats.
#[derive(Debug, Clone, Copy)]
pub struct RecurringSettings {
    /// How many upcoming installments (due today or later) each recurring payment keeps generated.
    pub horizon: u32,
    /// Charges are created this many days before the due date (at least 1: Vipps' rule).
    pub lead_days: u32,
    /// Charges per call of the batch endpoint (at most 2000).
    pub batch_size: usize,
    /// Below this many charges for one account, charges are created one by one.
    pub batch_threshold: usize,
}

impl Default for RecurringSettings {
    fn default() -> Self {
        Self { horizon: 1, lead_days: 3, batch_size: 2000, batch_threshold: 5 }
    }
}

/// Periods that fell due more than this many days ago and were never generated are skipped rather than
/// charged late (after downtime or a pause).
const LATE_GRACE_DAYS: u64 = 7;

pub use crate::domain::schedule::oslo_date;

fn key(text: &str) -> ServiceResult<RecurringIdempotencyKey> {
    RecurringIdempotencyKey::parse(text).map_err(|e| ServiceError::Internal(e.into()))
}

fn invalid(field: &'static str, message: impl Into<String>) -> ServiceError {
    ServiceError::Invalid(vec![FieldError::invalid(field, message)])
}

/// Cuts a description to Vipps' 45 characters at a word boundary where there is one.
fn charge_description(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= MAX_CHARGE_DESCRIPTION {
        return text.to_owned();
    }
    let cut: String = text.chars().take(MAX_CHARGE_DESCRIPTION).collect();
    match cut.rfind(' ') {
        Some(i) if i > 10 => cut[..i].trim_end().to_owned(),
        _ => cut,
    }
}

/// Whether Vipps' message says a charge's order id is taken (not that an Idempotency-Key was reused).
fn order_id_taken(message: &str) -> bool {
    message.contains("orderId") && message.contains("already used")
}

/// What a Vipps agreement status means for the mandate. Exhaustive: a status Vipps adds is handled here.
fn mandate_outcome(status: &AgreementStatus) -> Option<MandateStatus> {
    match status {
        AgreementStatus::Pending => None,
        AgreementStatus::Active => Some(MandateStatus::Active),
        AgreementStatus::Stopped => Some(MandateStatus::Stopped),
        AgreementStatus::Expired => Some(MandateStatus::Expired),
        AgreementStatus::Unknown(_) => None,
    }
}

fn failure_text(reason: Option<&FailureReason>, description: Option<&str>) -> String {
    let reason = match reason {
        Some(FailureReason::UserActionRequired) => "user action required (funds, or a blocked or expired card)",
        Some(FailureReason::ChargeAmountTooHigh) => "the amount is above the payer's maximum",
        Some(FailureReason::NonTechnicalError) => "non-technical error (e.g. the payer's profile is gone)",
        Some(FailureReason::TechnicalError) => "technical error at Vipps",
        Some(FailureReason::Unknown(other)) => other.as_str(),
        None => "no reason given",
    };
    match description {
        Some(d) if !d.is_empty() => format!("Charge failed at Vipps: {reason} ({d})"),
        _ => format!("Charge failed at Vipps: {reason}"),
    }
}

/// What a Vipps charge status means for the installment. Exhaustive: a status Vipps adds is handled here.
fn charge_outcome(charge: &Charge) -> Option<(InstallmentStatus, Option<String>)> {
    match &charge.status {
        ChargeStatus::Pending | ChargeStatus::Due | ChargeStatus::Processing | ChargeStatus::Reserved => {
            Some((InstallmentStatus::Pending, None))
        }
        ChargeStatus::Charged
        | ChargeStatus::PartiallyCaptured
        | ChargeStatus::PartiallyRefunded
        | ChargeStatus::Refunded => Some((InstallmentStatus::Collected, None)),
        ChargeStatus::Failed => Some((
            InstallmentStatus::Failed,
            Some(failure_text(charge.failure_reason.as_ref(), charge.failure_description.as_deref())),
        )),
        ChargeStatus::Cancelled => Some((InstallmentStatus::Cancelled, Some("Charge cancelled at Vipps".into()))),
        ChargeStatus::Unknown(_) => None,
    }
}

/// A recorded recurring intent whose agreement was drafted at Vipps.
#[derive(Debug, Clone)]
pub struct RecurringCreated {
    /// `pi_…`
    pub intent_id: String,
    /// `rp_…`
    pub recurring_id: String,
    /// `mdt_…`
    pub mandate_id: String,
    /// The initial payment's installment, if any.
    pub initial_installment_id: Option<String>,
    /// Where the payer confirms the agreement.
    pub redirect_url: Option<String>,
    /// The merchant account's name.
    pub target: String,
}

/// The answer of the Cancel Vipps Agreement action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelOutcome {
    /// Whether the agreement is now stopped at Vipps by this request.
    pub is_success: bool,
    /// Vipps' message, or payhub's.
    pub message: String,
}

/// What a beat did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BeatCounts {
    /// Records looked at.
    pub looked_at: usize,
    /// Records created or changed.
    pub changed: usize,
}

impl Payments {
    /// payhub's time (the simulator's virtual clock in sandbox mode).
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// Today in Norway, by payhub's clock.
    pub fn today(&self) -> NaiveDate {
        oslo_date(self.now())
    }

    /// Records a recurring intent (payer, profile, Pending mandate, recurring payment, the initial payment's
    /// installment) and drafts its agreement at Vipps.
    pub async fn create_recurring(
        &self,
        intent: &RecurringIntent,
        raw_body: &str,
    ) -> Result<RecurringCreated, IntentError> {
        let base = &intent.base;
        let account = self.account_for(base.target.as_deref()).await?;
        let parameters = with_defaults(base, &account.parameter_defaults).map_err(IntentError::Invalid)?;
        let field_error = |code: &'static str, field: &str, message: String| {
            IntentError::Invalid(vec![ErrorItem {
                error_code: code,
                error_message: message,
                field: Some(field.into()),
            }])
        };
        if parameters.transaction_text.as_ref().is_some_and(|t| t.chars().count() > MAX_CHARGE_DESCRIPTION) {
            return Err(field_error(
                "200",
                "PaymentMethod.Parameters.TransactionText",
                format!("TransactionText must be at most {MAX_CHARGE_DESCRIPTION} characters for a recurring payment (the Vipps charge description limit)"),
            ));
        }
        let Some(product_name) = parameters.product_name.clone().or_else(|| account.product_name.clone()) else {
            return Err(field_error(
                "011",
                "PaymentMethod.Parameters.ProductName",
                format!("ProductName is required: send it, or set a Product Name on the account {}", account.name),
            ));
        };
        let Some(agreement_url) =
            parameters.merchant_agreement_url.clone().or_else(|| account.merchant_agreement_url.clone())
        else {
            return Err(field_error(
                "011",
                "PaymentMethod.Parameters.MerchantAgreementUrl",
                format!(
                    "MerchantAgreementUrl is required: send it, or set a Merchant Agreement Url on the account {}",
                    account.name
                ),
            ));
        };
        let url_ok = url::Url::parse(&agreement_url).is_ok_and(|u| {
            u.scheme() == "https" && u.host_str().is_some()
                || u.scheme() == "http" && matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))
        });
        if !url_ok {
            return Err(field_error(
                "200",
                "PaymentMethod.Parameters.MerchantAgreementUrl",
                "MerchantAgreementUrl must be an absolute https URL (a Vipps rule; http only to localhost)".into(),
            ));
        }
        let schedule = intent
            .terms
            .schedule()
            .ok_or_else(|| field_error("200", "Recurring", "The schedule is not valid".into()))?;
        let now = self.now();
        let intent_id = new_id("pi");
        let mandate_id = new_id("mdt");
        let recurring_id = new_id("rp");
        let initial_id = intent.initial.map(|_| new_id("ins"));
        let phone = parameters.mobile_number.as_ref().map(|p| p.as_str().to_owned());
        let (unit, count) = intent.terms.frequency.vipps_interval();

        let profile_phone = phone.clone().or_else(|| base.payer.phone.as_ref().map(|p| p.as_str().to_owned()));
        let (known_payer, known_profile, listeners) = {
            let mut conn = self.store.pool().acquire().await?;
            let payer = records::find_payer(&mut conn, &base.payer).await?;
            let profile = match &payer {
                Some(id) => records::find_profile(&mut conn, id, profile_phone.as_deref()).await?,
                None => None,
            };
            let listeners =
                outbox::Listeners::with_url(&mut conn, base.webhook_url.as_ref().map(|u| u.to_string())).await?;
            (payer, profile, listeners)
        };

        let mut attempt = 0;
        loop {
            attempt += 1;
            let initial_reference = initial_id.as_ref().map(|_| super::new_payment_reference());
            let mut tx = self.store.begin_write().await?;
            let message_id = records::insert_message(
                &mut tx,
                &NewMessage {
                    direction: "inbound",
                    channel: "api",
                    subject: Some(&intent_id),
                    body: raw_body,
                    status: "Processed",
                },
                now,
            )
            .await?;
            let report_id = records::insert_report(
                &mut tx,
                &NewReport {
                    message_id: &message_id,
                    report_type: "PaymentIntent",
                    sub_type: "Default",
                    amount_ore: Some(intent.terms.amount.ore()),
                    reference: None,
                    status: "Matched",
                    installment_id: initial_id.as_deref(),
                    intent_id: Some(&intent_id),
                    detail: Some(&format!("recurring payment {recurring_id}")),
                },
                now,
            )
            .await?;
            let payer_id = match &known_payer {
                Some(id) => id.clone(),
                None => records::create_payer(&mut tx, &base.payer, now).await?,
            };
            let profile_id = match (&known_profile, &known_payer) {
                (Some(id), Some(_)) => id.clone(),
                _ => records::create_profile(&mut tx, &payer_id, profile_phone.as_deref(), now).await?,
            };
            records::insert_intent(
                &mut tx,
                &records::NewIntentRow {
                    id: &intent_id,
                    report_id: &report_id,
                    account_id: &account.id,
                    payer_id: &payer_id,
                    installment_id: initial_id.as_deref(),
                    success_url: base.success_url.as_str(),
                    failure_url: base.failure_url.as_str(),
                    webhook_url: base.webhook_url.as_ref().map(url::Url::as_str),
                    origin: base.origin.as_deref(),
                    campaign_id: base.campaign_id.as_deref(),
                },
                now,
            )
            .await?;
            if let (Some(id), Some(reference), Some(amount)) = (&initial_id, &initial_reference, intent.initial) {
                let inserted = rec::insert_mandate_installment(
                    &mut tx,
                    &rec::NewMandateInstallment {
                        id,
                        intent_id: &intent_id,
                        payer_id: &payer_id,
                        profile_id: &profile_id,
                        account_id: &account.id,
                        mandate_id: &mandate_id,
                        amount_ore: amount.ore(),
                        due_date: oslo_date(now),
                        payment_reference: reference,
                        bank_statement_description: parameters.transaction_text.as_deref(),
                        product: parameters.description.as_deref(),
                    },
                    now,
                )
                .await;
                match inserted {
                    Err(StoreError::Conflict(_)) if attempt < 3 => continue,
                    other => other?,
                }
            }
            rec::insert_mandate(
                &mut tx,
                &rec::NewMandate {
                    id: &mandate_id,
                    account_id: &account.id,
                    payer_id: &payer_id,
                    profile_id: &profile_id,
                    intent_id: &intent_id,
                    product_name: &product_name,
                    merchant_agreement_url: &agreement_url,
                    redirect_url: &self.return_url(&intent_id),
                    customer_phone: phone.as_deref(),
                    price_ore: intent.terms.amount.ore(),
                    interval_unit: unit,
                    interval_count: i64::from(count),
                    initial_installment_id: initial_id.as_deref(),
                },
                now,
            )
            .await?;
            rec::insert_recurring(
                &mut tx,
                &rec::NewRecurring {
                    id: &recurring_id,
                    intent_id: &intent_id,
                    mandate_id: &mandate_id,
                    account_id: &account.id,
                    payer_id: &payer_id,
                    profile_id: &profile_id,
                    amount_ore: intent.terms.amount.ore(),
                    schedule,
                    start_date: intent.terms.start_date,
                    end_date: intent.terms.end_date,
                    bank_statement_description: parameters.transaction_text.as_deref(),
                    product: parameters.description.as_deref(),
                },
                now,
            )
            .await?;
            outbox::intent(&mut tx, &listeners, "paymentIntent.created", &intent_id, now).await?;
            if let Some(id) = &initial_id {
                outbox::installment(&mut tx, &listeners, "installment.created", id, now).await?;
            }
            tx.commit().await?;
            break;
        }
        match self.draft_agreement(&mandate_id).await {
            Ok(mandate) => Ok(RecurringCreated {
                intent_id,
                recurring_id,
                mandate_id,
                initial_installment_id: initial_id,
                redirect_url: mandate.confirmation_url,
                target: account.name,
            }),
            Err(message) => Err(IntentError::Provider { intent_id, message }),
        }
    }

    /// Drafts the mandate's agreement at Vipps with the mandate-derived key (safe to repeat) and records the
    /// answer. A definite refusal fails the intent; no answer leaves the draft for the polling beat.
    pub(crate) async fn draft_agreement(&self, mandate_id: &str) -> Result<MandateRow, String> {
        let internal = |e: &dyn std::fmt::Display| format!("payhub could not reach its records: {e}");
        let (mandate, initial) = {
            let mut conn = self.store.pool().acquire().await.map_err(|e| internal(&e))?;
            let mandate =
                rec::mandate(&mut conn, mandate_id).await.map_err(|e| internal(&e))?.ok_or("unknown mandate")?;
            let initial = match &mandate.initial_installment_id {
                Some(id) => records::installment(&mut conn, id).await.map_err(|e| internal(&e))?,
                None => None,
            };
            (mandate, initial)
        };
        if mandate.vipps_status != "CREATING" {
            return Ok(mandate);
        }
        let client = self.clients.get(&self.accounts, &mandate.account_id).await.map_err(|e| internal(&e))?;
        let unit = match mandate.interval_unit.as_str() {
            "WEEK" => IntervalUnit::Week,
            "YEAR" => IntervalUnit::Year,
            "DAY" => IntervalUnit::Day,
            _ => IntervalUnit::Month,
        };
        let mut draft = DraftAgreement::new(
            PricingRequest::legacy(Currency::Nok, mandate.price_ore),
            Some(TimePeriod::new(unit, u32::try_from(mandate.interval_count).unwrap_or(1))),
            mandate.product_name.clone(),
            mandate.merchant_agreement_url.clone(),
            mandate.redirect_url.clone(),
        );
        draft.phone_number = mandate.customer_phone.clone();
        if let Some(initial) = &initial {
            let description =
                initial.bank_statement_description.clone().unwrap_or_else(|| mandate.product_name.clone());
            let mut charge = InitialCharge::new(
                initial.amount_ore,
                charge_description(&description),
                TransactionType::DirectCapture,
            );
            charge.order_id = Some(initial.payment_reference.clone());
            draft.initial_charge = Some(charge);
        }
        let draft_key = key(&mandate.idempotency_key).map_err(|e| e.to_string())?;
        let now = self.now();
        let intent_id = mandate.intent_id.clone().unwrap_or_default();
        match client.recurring().create_agreement(&draft, &draft_key).await {
            Ok(created) => {
                let result: ServiceResult<MandateRow> = async {
                    let mut tx = self.store.begin_write().await?;
                    let listeners = outbox::Listeners::of_intent(&mut tx, mandate.intent_id.as_deref()).await?;
                    let body = json!({"agreementId": created.agreement_id, "vippsConfirmationUrl": created.vipps_confirmation_url, "chargeId": created.charge_id}).to_string();
                    let message_id = records::insert_message(
                        &mut tx,
                        &NewMessage { direction: "inbound", channel: "vipps_call", subject: Some(&created.agreement_id), body: &body, status: "Processed" },
                        now,
                    )
                    .await?;
                    records::insert_report(
                        &mut tx,
                        &NewReport {
                            message_id: &message_id,
                            report_type: "Vipps",
                            sub_type: "agreement.created",
                            amount_ore: Some(mandate.price_ore),
                            reference: Some(&created.agreement_id),
                            status: "Matched",
                            installment_id: mandate.initial_installment_id.as_deref(),
                            intent_id: mandate.intent_id.as_deref(),
                            detail: None,
                        },
                        now,
                    )
                    .await?;
                    rec::set_mandate_drafted(&mut tx, &mandate.id, &created.agreement_id, created.vipps_confirmation_url.as_deref(), now).await?;
                    if let Some(initial) = &initial {
                        rec::insert_charges(
                            &mut tx,
                            &[NewCharge {
                                charge_id: created.charge_id.clone().unwrap_or_else(|| initial.payment_reference.clone()),
                                installment_id: initial.id.clone(),
                                mandate_id: mandate.id.clone(),
                                agreement_id: created.agreement_id.clone(),
                                account_id: mandate.account_id.clone(),
                                kind: "INITIAL",
                                amount_ore: initial.amount_ore,
                                due_date: initial.due_date,
                                retry_days: 0,
                                description: charge_description(initial.bank_statement_description.as_deref().unwrap_or(&mandate.product_name)),
                                state: "PENDING",
                            }],
                            now,
                        )
                        .await?;
                        outbox::move_installment(&mut tx, &listeners, &initial.id, InstallmentStatus::Pending, None, None, now).await?;
                    }
                    records::set_intent_status(&mut tx, &intent_id, IntentStatus::Matched, now).await?;
                    outbox::intent(&mut tx, &listeners, "paymentIntent.processed", &intent_id, now).await?;
                    tx.commit().await?;
                    let mut conn = self.store.pool().acquire().await?;
                    rec::mandate(&mut conn, &mandate.id).await?.ok_or(ServiceError::NotFound("mandate"))
                }
                .await;
                result.map_err(|e| internal(&e))
            }
            Err(error) if is_transient(error.kind()) => {
                let message = describe(&error);
                tracing::warn!(mandate = %mandate.id, error = %message, "Vipps did not answer the agreement draft; the poll retries with the same key");
                let mut conn = self.store.pool().acquire().await.map_err(|e| internal(&e))?;
                rec::set_mandate_error(&mut conn, &mandate.id, &message, false, now).await.map_err(|e| internal(&e))?;
                Err(format!("{message}. payhub keeps trying; read GET /v2/PaymentIntent/{intent_id} for the outcome."))
            }
            Err(error) => {
                let message = describe(&error);
                tracing::warn!(mandate = %mandate.id, error = %message, "Vipps refused the agreement");
                let result: ServiceResult<()> = async {
                    let mut tx = self.store.begin_write().await?;
                    let listeners = outbox::Listeners::of_intent(&mut tx, mandate.intent_id.as_deref()).await?;
                    rec::set_mandate_error(&mut tx, &mandate.id, &message, true, now).await?;
                    rec::move_mandate(&mut tx, &mandate.id, MandateStatus::Expired, "REFUSED", now).await?;
                    for recurring in rec::recurring_of_mandate(&mut tx, &mandate.id).await? {
                        rec::set_recurring_status(
                            &mut tx,
                            &recurring.id,
                            RecurringStatus::Ended,
                            Some(&message),
                            None,
                            now,
                        )
                        .await?;
                    }
                    if let Some(initial) = &initial {
                        outbox::move_installment(
                            &mut tx,
                            &listeners,
                            &initial.id,
                            InstallmentStatus::Failed,
                            Some(&message),
                            None,
                            now,
                        )
                        .await?;
                    }
                    records::set_intent_status(&mut tx, &intent_id, IntentStatus::Failed, now).await?;
                    outbox::intent(&mut tx, &listeners, "paymentIntent.failed", &intent_id, now).await?;
                    tx.commit().await?;
                    Ok(())
                }
                .await;
                result.map_err(|e| internal(&e))?;
                Err(message)
            }
        }
    }

    /// Brings a mandate up to date with its Vipps agreement: re-sends an unconfirmed draft, reads the
    /// agreement, and records a change of status (Active, or ended at Vipps: the recurring payment ends and
    /// its open installments are cancelled). `cause` names the message that prompted it.
    pub async fn sync_agreement(&self, mandate_ref: &str, cause: Option<&str>) -> ServiceResult<()> {
        let mandate = {
            let mut conn = self.store.pool().acquire().await?;
            rec::mandate(&mut conn, mandate_ref).await?.ok_or(ServiceError::NotFound("mandate"))?
        };
        if mandate.vipps_status == "CREATING" {
            if let Err(message) = self.draft_agreement(&mandate.id).await {
                tracing::info!(mandate = %mandate.id, %message, "agreement draft still not confirmed");
            }
            return Ok(());
        }
        let Some(agreement_id) = mandate.agreement_id.clone() else { return Ok(()) };
        let lock = self.locks.get(&agreement_id);
        let _guard = lock.lock().await;
        let client = self.clients.get(&self.accounts, &mandate.account_id).await?;
        let agreement = match client.recurring().get_agreement(&agreement_id).await {
            Ok(agreement) => agreement,
            Err(error) if is_transient(error.kind()) => {
                tracing::info!(%agreement_id, error = %describe(&error), "Vipps did not answer; next beat retries");
                return Ok(());
            }
            Err(error) => return Err(ServiceError::Internal(anyhow::anyhow!(describe(&error)))),
        };
        {
            let mut conn = self.store.pool().acquire().await?;
            rec::mark_checked(&mut conn, &mandate.id, self.now()).await?;
        }
        if agreement.status.to_string() != mandate.vipps_status {
            // What Vipps did with the charges before the agreement changed (an initial charge is charged or fails
            // at acceptance) is recorded first: their own outcome, not the agreement's, decides their installments.
            let open = {
                let mut conn = self.store.pool().acquire().await?;
                rec::open_charges_of_mandate(&mut conn, &mandate.id).await?
            };
            for charge in open.iter().filter(|c| c.state != "CREATING") {
                if let Err(error) = self.read_charge(&charge.charge_id, cause, false).await {
                    tracing::warn!(charge = %charge.charge_id, %error, "charge sync failed");
                }
            }
        }
        let changed = self.apply_agreement(&mandate, &agreement, cause).await?;
        // What follows may sync this agreement again (a charge Vipps refuses): it must not wait for this lock.
        drop(_guard);
        if changed {
            // The initial charge (processed at acceptance) and any charges Vipps cancelled on a stop.
            let open = {
                let mut conn = self.store.pool().acquire().await?;
                rec::open_charges_of_mandate(&mut conn, &mandate.id).await?
            };
            for charge in open {
                if let Err(error) = self.sync_charge(&charge.charge_id, None).await {
                    tracing::warn!(charge = %charge.charge_id, %error, "charge sync failed");
                }
            }
            if agreement.status == AgreementStatus::Active {
                self.generate_for(Some(&mandate.id)).await?;
            }
        }
        Ok(())
    }

    async fn apply_agreement(
        &self,
        mandate: &MandateRow,
        agreement: &Agreement,
        cause: Option<&str>,
    ) -> ServiceResult<bool> {
        let vipps_status = agreement.status.to_string();
        if vipps_status == mandate.vipps_status {
            return Ok(false);
        }
        let now = self.now();
        let mut tx = self.store.begin_write().await?;
        // Another sync may have recorded this very status meanwhile.
        let current = rec::lock_mandate(&mut tx, self.store.backend(), &mandate.id).await?;
        if current.is_some_and(|m| m.vipps_status == vipps_status) {
            return Ok(false);
        }
        let listeners = outbox::Listeners::of_intent(&mut tx, mandate.intent_id.as_deref()).await?;
        let body = json!({"id": agreement.id, "status": vipps_status, "start": agreement.start, "stop": agreement.stop, "pricing": {"amount": agreement.pricing.amount}}).to_string();
        let message_id = records::insert_message(
            &mut tx,
            &NewMessage {
                direction: "inbound",
                channel: "vipps_poll",
                subject: Some(&agreement.id),
                body: &body,
                status: "Processed",
            },
            now,
        )
        .await?;
        let mut status = "Matched";
        let mut detail = cause.map(|c| format!("prompted by message {c}"));
        match mandate_outcome(&agreement.status) {
            Some(next) => {
                let moved = rec::move_mandate(&mut tx, &mandate.id, next, &vipps_status, now).await?;
                if moved {
                    outbox::mandate(&mut tx, &listeners, &mandate.id, now).await?;
                    if matches!(next, MandateStatus::Stopped | MandateStatus::Expired) {
                        let reason = format!("Agreement {} at Vipps", vipps_status.to_lowercase());
                        self.end_under_mandate(&mut tx, &listeners, mandate, RecurringStatus::Ended, &reason, now)
                            .await?;
                    }
                } else {
                    status = "Ignored";
                    detail = Some(format!("mandate is {}; agreement {vipps_status} does not move it", mandate.status));
                }
            }
            None => {
                rec::move_mandate(&mut tx, &mandate.id, MandateStatus::Pending, &vipps_status, now).await?;
                if let AgreementStatus::Unknown(name) = &agreement.status {
                    tracing::warn!(agreement = %agreement.id, status = %name, "Vipps reported an agreement status payhub does not know");
                    status = "Ignored";
                }
            }
        }
        records::insert_report(
            &mut tx,
            &NewReport {
                message_id: &message_id,
                report_type: "Vipps",
                sub_type: &format!("agreement.{}", vipps_status.to_lowercase()),
                amount_ore: agreement.pricing.amount,
                reference: Some(&agreement.id),
                status,
                installment_id: None,
                intent_id: mandate.intent_id.as_deref(),
                detail: detail.as_deref(),
            },
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Ends (or cancels) every open recurring payment of a mandate and cancels its open installments.
    async fn end_under_mandate(
        &self,
        tx: &mut sqlx::AnyConnection,
        listeners: &outbox::Listeners,
        mandate: &MandateRow,
        status: RecurringStatus,
        reason: &str,
        now: DateTime<Utc>,
    ) -> ServiceResult<()> {
        for recurring in rec::recurring_of_mandate(&mut *tx, &mandate.id).await? {
            rec::set_recurring_status(&mut *tx, &recurring.id, status, Some(reason), None, now).await?;
        }
        for installment in rec::open_installments(&mut *tx, &mandate.id, None).await? {
            outbox::move_installment(
                &mut *tx,
                listeners,
                &installment,
                InstallmentStatus::Cancelled,
                Some(reason),
                None,
                now,
            )
            .await?;
        }
        Ok(())
    }

    /// Brings an installment's charge up to date with Vipps: reads it (creating it again, same order id, if
    /// Vipps never confirmed it and does not know it) and records what changed: Collected with a Payment,
    /// Failed with Vipps' reason, Cancelled.
    ///
    /// A charge Vipps cancelled itself (as it does when the agreement stops or expires) also brings the
    /// agreement up to date, so a lost agreement webhook is made up for before the next charge falls due.
    pub async fn sync_charge(&self, charge_id: &str, cause: Option<&str>) -> ServiceResult<()> {
        let Some(row) = self.read_charge(charge_id, cause, true).await? else { return Ok(()) };
        let mandate_active = {
            let mut conn = self.store.pool().acquire().await?;
            rec::mandate(&mut conn, &row.mandate_id).await?.is_some_and(|m| m.status == MandateStatus::Active)
        };
        if mandate_active {
            Box::pin(self.sync_agreement(&row.mandate_id, cause)).await?;
        }
        Ok(())
    }

    /// Reads a charge and records what changed; a cancellation only when `with_cancelled`. Returns the charge's
    /// row when Vipps newly reported it cancelled.
    async fn read_charge(
        &self,
        charge_id: &str,
        cause: Option<&str>,
        with_cancelled: bool,
    ) -> ServiceResult<Option<ChargeRow>> {
        let row = {
            let mut conn = self.store.pool().acquire().await?;
            rec::charge(&mut conn, charge_id).await?.ok_or(ServiceError::NotFound("charge"))?
        };
        if row.state == "REFUSED" {
            return Ok(None);
        }
        let lock = self.locks.get(charge_id);
        let _guard = lock.lock().await;
        let client = self.clients.get(&self.accounts, &row.account_id).await?;
        let charge = match client.recurring().get_charge(&row.agreement_id, charge_id).await {
            Ok(charge) => charge,
            Err(error) if error.kind() == ErrorKind::NotFound && row.state == "CREATING" => {
                // Never reached Vipps: create it now, one by one, with the same order id.
                drop(_guard);
                self.send_charges(&row.account_id, std::slice::from_ref(&row)).await?;
                return Ok(None);
            }
            Err(error) if is_transient(error.kind()) => {
                tracing::info!(%charge_id, error = %describe(&error), "Vipps did not answer; next beat retries");
                return Ok(None);
            }
            Err(error) => return Err(ServiceError::Internal(anyhow::anyhow!(describe(&error)))),
        };
        let cancelled = charge.status == ChargeStatus::Cancelled;
        if cancelled && !with_cancelled {
            return Ok(None);
        }
        self.apply_charge(&row, &charge, cause).await?;
        Ok((cancelled && row.state != "CANCELLED").then_some(row))
    }

    async fn apply_charge(&self, row: &ChargeRow, charge: &Charge, cause: Option<&str>) -> ServiceResult<()> {
        let state = charge.status.to_string();
        let captured = charge.summary.captured;
        if state == row.state && captured == row.captured_ore {
            return Ok(());
        }
        let now = self.now();
        let mut tx = self.store.begin_write().await?;
        // Another sync (a webhook job, the poll, another instance) may have recorded this very answer meanwhile.
        let current = rec::lock_charge(&mut tx, self.store.backend(), &row.charge_id).await?;
        if current.is_some_and(|c| c.state == state && c.captured_ore == captured) {
            return Ok(());
        }
        let installment =
            records::installment(&mut tx, &row.installment_id).await?.ok_or(ServiceError::NotFound("installment"))?;
        let listeners = outbox::Listeners::of_intent(&mut tx, installment.intent_id.as_deref()).await?;
        let body = json!({
            "id": charge.id, "agreementId": charge.agreement_id, "status": state, "amount": charge.amount,
            "due": charge.due, "transactionId": charge.transaction_id, "failureReason": charge.failure_reason.as_ref().map(ToString::to_string),
            "failureDescription": charge.failure_description, "summary": {"captured": charge.summary.captured, "refunded": charge.summary.refunded, "cancelled": charge.summary.cancelled},
        })
        .to_string();
        let message_id = records::insert_message(
            &mut tx,
            &NewMessage {
                direction: "inbound",
                channel: "vipps_poll",
                subject: Some(&charge.id),
                body: &body,
                status: "Processed",
            },
            now,
        )
        .await?;
        let sub_type = format!("charge.{}", state.to_lowercase());
        let mut status = "Matched";
        let mut detail = cause.map(|c| format!("prompted by message {c}"));
        let collected = captured > 0 && matches!(charge_outcome(charge), Some((InstallmentStatus::Collected, _)));
        let report_id = records::insert_report(
            &mut tx,
            &NewReport {
                message_id: &message_id,
                report_type: "Vipps",
                sub_type: &sub_type,
                amount_ore: Some(if collected { captured } else { charge.amount }),
                reference: Some(&charge.id),
                status,
                installment_id: Some(&row.installment_id),
                intent_id: installment.intent_id.as_deref(),
                detail: detail.as_deref(),
            },
            now,
        )
        .await?;
        match charge_outcome(charge) {
            Some((InstallmentStatus::Collected, _)) if captured > 0 => {
                let psp = charge
                    .transaction_id
                    .clone()
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| format!("{}-capture", charge.id));
                records::insert_payment(&mut tx, &row.installment_id, captured, &psp, "capture", Some(&report_id), now)
                    .await?;
                let moved = outbox::move_installment(
                    &mut tx,
                    &listeners,
                    &row.installment_id,
                    InstallmentStatus::Collected,
                    None,
                    Some(installment.amount_ore - captured),
                    now,
                )
                .await?;
                if !moved && !installment.status.is_collected() {
                    status = "Ignored";
                    detail = Some(format!("installment is {}; {sub_type} does not move it", installment.status));
                }
            }
            Some((next, reason)) => {
                let moved = outbox::move_installment(
                    &mut tx,
                    &listeners,
                    &row.installment_id,
                    next,
                    reason.as_deref(),
                    None,
                    now,
                )
                .await?;
                if !moved && next != installment.status && next != InstallmentStatus::Pending {
                    status = "Ignored";
                    detail = Some(format!("installment is {}; {sub_type} does not move it back", installment.status));
                }
            }
            None => {
                tracing::warn!(charge = %charge.id, %state, "Vipps reported a charge status payhub does not know");
                status = "Ignored";
            }
        }
        if status != "Matched" {
            rec::set_report_outcome(&mut tx, &report_id, status, detail.as_deref()).await?;
        }
        rec::update_charge(
            &mut tx,
            &row.charge_id,
            &state,
            charge.failure_reason.as_ref().map(ToString::to_string).as_deref(),
            charge.transaction_id.as_deref().filter(|t| !t.is_empty()),
            Some([charge.summary.captured, charge.summary.refunded, charge.summary.cancelled]),
            None,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    // -----------------------------------------------------------------------------------------------------
    // The beats

    /// GenerateInstallments: for every open recurring payment with an Active mandate, creates the installments
    /// of the coming periods up to the horizon (exactly one per period, whatever runs twice), skipping periods
    /// while paused, and resumes payments whose pause is over.
    pub async fn generate_installments(&self) -> ServiceResult<BeatCounts> {
        let counts = self.generate_for(None).await?;
        if counts.changed >= 10_000 && self.store.backend() == crate::store::Backend::Postgres {
            // Many new installments at once: refresh PostgreSQL's statistics now rather than at autovacuum's next
            // round, so CollectRecurring's queries are planned for the table as it is.
            let mut conn = self.store.pool().acquire().await?;
            sqlx::query("ANALYZE installments").execute(&mut *conn).await.map_err(crate::store::StoreError::from)?;
        }
        Ok(counts)
    }

    async fn generate_for(&self, mandate_id: Option<&str>) -> ServiceResult<BeatCounts> {
        let today = self.today();
        let now = self.now();
        let horizon = i64::from(self.recurring.horizon.max(1));
        let oldest = today.checked_sub_days(Days::new(LATE_GRACE_DAYS)).unwrap_or(today);
        let mut counts = BeatCounts::default();
        let mut after = Some(String::new());
        while let Some(cursor) = after.take() {
            let page: Vec<RecurringRow> = {
                let mut conn = self.store.pool().acquire().await?;
                match mandate_id {
                    Some(id) => rec::recurring_of_mandate(&mut conn, id)
                        .await?
                        .into_iter()
                        .filter(|r| r.status.is_open())
                        .collect(),
                    None => {
                        let (page, next) = rec::generation_page(&mut conn, &cursor, 1000).await?;
                        after = next;
                        page
                    }
                }
            };
            counts.looked_at += page.len();
            let mut items = Vec::new();
            let mut moves: Vec<(String, i64, Option<NaiveDate>)> = Vec::new();
            let mut resumed = Vec::new();
            let mut ended = Vec::new();
            for recurring in &page {
                let schedule = recurring.schedule()?;
                // A pause skips the periods that fell due while it lasted; a period still ahead is decided
                // when it falls due, so a payment resumed before then collects it.
                let pause = recurring.paused_until.filter(|_| recurring.status == RecurringStatus::Paused);
                if recurring.status == RecurringStatus::Paused && pause.is_none_or(|until| until <= today) {
                    resumed.push(recurring.id.clone());
                }
                let first_upcoming = schedule.next_on_or_after(today).map(|(p, _)| i64::from(p));
                let mut period = recurring.next_period;
                let mut next = schedule.period_on_or_after(u32::try_from(period).unwrap_or(u32::MAX));
                while let Some((p, due)) = next {
                    let p = i64::from(p);
                    let paused = pause.is_some_and(|until| due < until);
                    if paused && due >= today {
                        break;
                    }
                    if due < oldest || paused {
                        period = p + 1;
                        next = schedule.period_on_or_after(u32::try_from(p + 1).unwrap_or(u32::MAX));
                        continue;
                    }
                    if first_upcoming.is_some_and(|f| p - f >= horizon) {
                        break;
                    }
                    items.push(NewPeriodInstallment {
                        id: new_id("ins"),
                        recurring: recurring.clone(),
                        period: p,
                        due_date: due,
                        payment_reference: super::new_payment_reference(),
                    });
                    period = p + 1;
                    next = schedule.period_on_or_after(u32::try_from(p + 1).unwrap_or(u32::MAX));
                }
                let next_date = match (pause, next) {
                    (Some(until), Some((_, due))) if due < until => schedule.next_on_or_after(until).map(|(_, d)| d),
                    _ => next.map(|(_, d)| d),
                };
                if period != recurring.next_period || next_date != recurring.next_collection_date {
                    moves.push((recurring.id.clone(), period, next_date));
                }
                if next.is_none() && first_upcoming.is_none() {
                    ended.push(recurring.id.clone());
                }
            }
            if items.is_empty() && moves.is_empty() && resumed.is_empty() && ended.is_empty() {
                continue;
            }
            let mut tx = self.store.begin_write().await?;
            let inserted = rec::insert_period_installments(&mut tx, &items, now).await?;
            counts.changed += inserted.len();
            rec::set_next_periods(&mut tx, &moves, now).await?;
            for id in &resumed {
                rec::set_recurring_status(&mut tx, id, RecurringStatus::Active, None, None, now).await?;
            }
            for id in &ended {
                rec::set_recurring_status(
                    &mut tx,
                    id,
                    RecurringStatus::Ended,
                    Some("The schedule passed its End Date"),
                    None,
                    now,
                )
                .await?;
            }
            let anyone = outbox::Listeners::with_url(&mut tx, None).await?;
            let inserted: std::collections::HashSet<&String> = inserted.iter().collect();
            for item in items.iter().filter(|i| inserted.contains(&i.id)) {
                let listeners = match &item.recurring.webhook_url {
                    Some(url) => outbox::Listeners::with_url(&mut tx, Some(url.clone())).await?,
                    None => anyone.clone(),
                };
                outbox::installment(&mut tx, &listeners, "installment.created", &item.id, now).await?;
            }
            tx.commit().await?;
        }
        Ok(counts)
    }

    /// CollectRecurring: every Outstanding installment due within the lead window becomes one Vipps charge
    /// (recorded first, then sent; in batches when there are many), and charges left unconfirmed by a crash or
    /// a lost answer are sent again with the same order ids.
    pub async fn collect_recurring(&self) -> ServiceResult<BeatCounts> {
        let today = self.today();
        let until = today.checked_add_days(Days::new(u64::from(self.recurring.lead_days.max(1)))).unwrap_or(today);
        let tomorrow = today.checked_add_days(Days::new(1)).unwrap_or(today);
        let mut counts = BeatCounts::default();
        // Unconfirmed charges first (stale: a minute without an answer).
        let stale = {
            let mut conn = self.store.pool().acquire().await?;
            rec::creating_charges(&mut conn, self.now() - chrono::Duration::seconds(60), 100_000).await?
        };
        let mut by_account: BTreeMap<String, Vec<ChargeRow>> = BTreeMap::new();
        for charge in stale {
            by_account.entry(charge.account_id.clone()).or_default().push(charge);
        }
        for (account_id, charges) in by_account {
            counts.looked_at += charges.len();
            counts.changed += self.send_charges(&account_id, &charges).await?;
        }
        let mut retry_days: BTreeMap<String, i64> = BTreeMap::new();
        let mut after = Some(String::new());
        while let Some(cursor) = after.take() {
            let page = {
                let mut conn = self.store.pool().acquire().await?;
                let (page, next) = rec::chargeable_page(
                    &mut conn,
                    until,
                    &cursor,
                    self.recurring.batch_size.clamp(1, 2000) as i64 * 4,
                )
                .await?;
                after = next;
                page
            };
            counts.looked_at += page.len();
            let mut new = Vec::with_capacity(page.len());
            for item in &page {
                let retry = match retry_days.get(&item.account_id) {
                    Some(days) => *days,
                    None => {
                        let days = self.accounts.get(&item.account_id).await.map(|a| a.retry_days).unwrap_or(3);
                        retry_days.insert(item.account_id.clone(), days);
                        days
                    }
                };
                new.push(NewCharge {
                    charge_id: item.payment_reference.clone(),
                    installment_id: item.installment_id.clone(),
                    mandate_id: item.mandate_id.clone(),
                    agreement_id: item.agreement_id.clone(),
                    account_id: item.account_id.clone(),
                    kind: "RECURRING",
                    amount_ore: item.amount_ore,
                    due_date: item.due_date.max(tomorrow),
                    retry_days: retry,
                    description: charge_description(item.description.as_deref().unwrap_or(&item.product_name)),
                    state: "CREATING",
                });
            }
            let inserted = {
                let mut tx = self.store.begin_write().await?;
                let inserted = rec::insert_charges(&mut tx, &new, self.now()).await?;
                tx.commit().await?;
                inserted
            };
            // Only what this call recorded is sent: a racing instance sends its own.
            let inserted: std::collections::HashSet<String> = inserted.into_iter().collect();
            let mut by_account: BTreeMap<String, Vec<ChargeRow>> = BTreeMap::new();
            for charge in new.into_iter().filter(|c| inserted.contains(&c.charge_id)) {
                by_account.entry(charge.account_id.clone()).or_default().push(ChargeRow::from_new(charge));
            }
            for (account_id, charges) in by_account {
                counts.changed += self.send_charges(&account_id, &charges).await?;
            }
        }
        Ok(counts)
    }

    /// Sends recorded charges to Vipps: one by one when few, else in batches. Charges Vipps accepts (or already
    /// has, by their order id) become Pending; refused ones fail their installment with Vipps' reason; when
    /// Vipps does not answer they stay `CREATING` for the next run. Returns how many were confirmed.
    async fn send_charges(&self, account_id: &str, charges: &[ChargeRow]) -> ServiceResult<usize> {
        let client = self.clients.get(&self.accounts, account_id).await?;
        let mut confirmed = Vec::new();
        let mut refused: Vec<(ChargeRow, String)> = Vec::new();
        let mut agreements_to_sync = Vec::new();
        // A charge sent again after its recorded due date (Vipps or payhub was away) is due tomorrow instead:
        // Vipps refuses a due date that is not ahead. Its key then names the new date (a key may not be used
        // again for another body); the order id still keeps it one charge.
        let tomorrow = self.today().checked_add_days(Days::new(1)).unwrap_or(self.today());
        let due = |c: &ChargeRow| c.due_date.max(tomorrow);
        let moved = |c: &ChargeRow| (due(c) != c.due_date).then(|| due(c).format("%Y%m%d").to_string());
        let request = |c: &ChargeRow| {
            let mut create = CreateCharge::recurring(
                c.amount_ore,
                c.description.clone(),
                due(c),
                u8::try_from(c.retry_days).unwrap_or(0),
                TransactionType::DirectCapture,
            );
            create.order_id = Some(c.charge_id.clone());
            create
        };
        if charges.len() < self.recurring.batch_threshold.max(1) {
            for c in charges {
                let charge_key = match moved(c) {
                    Some(day) => format!("chg-{}-{day}", c.charge_id),
                    None => format!("chg-{}", c.charge_id),
                };
                let answer = client.recurring().create_charge(&c.agreement_id, &request(c), &key(&charge_key)?).await;
                match answer {
                    Ok(_) => confirmed.push(c.charge_id.clone()),
                    // Vipps already has a charge with this order id (ours: the answer of an earlier create was lost).
                    Err(error) if error.kind() == ErrorKind::Conflict || order_id_taken(&describe(&error)) => {
                        confirmed.push(c.charge_id.clone())
                    }
                    Err(error) if is_transient(error.kind()) => {
                        self.note_charge_error(&c.charge_id, &describe(&error)).await?;
                    }
                    Err(error) => {
                        if error.problem().and_then(|p| p.recurring_problem())
                            == Some(RecurringProblem::ChargeCreationFailed)
                        {
                            agreements_to_sync.push(c.mandate_id.clone());
                        }
                        refused.push((c.clone(), describe(&error)));
                    }
                }
            }
        } else {
            for chunk in charges.chunks(self.recurring.batch_size.clamp(1, 2000)) {
                let items: Vec<BatchCharge> =
                    chunk.iter().map(|c| BatchCharge::new(&c.agreement_id, &c.charge_id, &request(c))).collect();
                let mut digest = Sha256::new();
                for c in chunk {
                    digest.update(c.charge_id.as_bytes());
                    if let Some(day) = moved(c) {
                        digest.update(format!("@{day}").as_bytes());
                    }
                    digest.update(b",");
                }
                let batch_key = key(&format!("cb-{}", &hex::encode(digest.finalize())[..32]))?;
                match client.recurring().create_charges_batch(&items, &batch_key).await {
                    Ok(answer) => {
                        confirmed.extend(answer.valid_charges);
                        for invalid in answer.invalid_charges {
                            let order_id =
                                invalid.charge_batch_item_dto["orderId"].as_str().unwrap_or_default().to_owned();
                            let Some(c) = chunk.iter().find(|c| c.charge_id == order_id) else { continue };
                            let text = invalid.errors.join("; ");
                            if order_id_taken(&text) || text.starts_with("conflict") {
                                confirmed.push(c.charge_id.clone());
                            } else {
                                if text.starts_with("charge-creation-failed") {
                                    agreements_to_sync.push(c.mandate_id.clone());
                                }
                                refused.push((c.clone(), format!("Vipps: {text}")));
                            }
                        }
                    }
                    Err(error) if is_transient(error.kind()) => {
                        tracing::warn!(%account_id, error = %describe(&error), charges = chunk.len(), "charge batch not confirmed; the next run re-sends it");
                        for c in chunk {
                            self.note_charge_error(&c.charge_id, &describe(&error)).await?;
                        }
                    }
                    Err(error) => {
                        for c in chunk {
                            refused.push((c.clone(), describe(&error)));
                        }
                    }
                }
            }
        }
        let now = self.now();
        let count = confirmed.len();
        if !confirmed.is_empty() || !refused.is_empty() {
            let mut tx = self.store.begin_write().await?;
            rec::confirm_charges(&mut tx, &confirmed, "PENDING", now).await?;
            let by_id: BTreeMap<&str, &ChargeRow> = charges.iter().map(|c| (c.charge_id.as_str(), c)).collect();
            let installments: Vec<String> =
                confirmed.iter().filter_map(|id| by_id.get(id.as_str()).map(|c| c.installment_id.clone())).collect();
            let anyone = outbox::Listeners::with_url(&mut tx, None).await?;
            let listened = rec::installments_with_webhook(&mut tx, &installments).await?;
            if !anyone.anyone() && listened.is_empty() {
                rec::installments_pending(&mut tx, &installments, now).await?;
            } else {
                for id in &installments {
                    let listeners = match listened.get(id) {
                        Some(url) => outbox::Listeners::with_url(&mut tx, Some(url.clone())).await?,
                        None => anyone.clone(),
                    };
                    outbox::move_installment(&mut tx, &listeners, id, InstallmentStatus::Pending, None, None, now)
                        .await?;
                }
            }
            for (c, message) in &refused {
                rec::update_charge(&mut tx, &c.charge_id, "REFUSED", None, None, None, Some(message), now).await?;
                let listeners = outbox::Listeners::with_url(&mut tx, listened.get(&c.installment_id).cloned()).await?;
                outbox::move_installment(
                    &mut tx,
                    &listeners,
                    &c.installment_id,
                    InstallmentStatus::Failed,
                    Some(message),
                    None,
                    now,
                )
                .await?;
            }
            tx.commit().await?;
        }
        for mandate in agreements_to_sync {
            // Boxed: an agreement sync may sync charges, which may send them again.
            if let Err(error) = Box::pin(self.sync_agreement(&mandate, None)).await {
                tracing::warn!(%mandate, %error, "agreement sync after a refused charge failed");
            }
        }
        Ok(count)
    }

    async fn note_charge_error(&self, charge_id: &str, message: &str) -> ServiceResult<()> {
        let mut conn = self.store.pool().acquire().await?;
        rec::note_charge_error(&mut conn, charge_id, message, self.now()).await?;
        Ok(())
    }

    /// The recurring polling beat: drafts not confirmed or agreements waiting for the payer, and charges whose
    /// outcome may have changed by today.
    pub async fn sync_recurring(&self, limit: i64) -> ServiceResult<BeatCounts> {
        let (mandates, charges) = {
            let mut conn = self.store.pool().acquire().await?;
            let mut mandates = rec::pending_mandates(&mut conn, limit).await?;
            // Active agreements are re-read once a day, a few per poll: a payer's stop whose webhook was lost
            // is found before the next charge is created.
            let a_day_ago = self.now() - chrono::Duration::days(1);
            mandates.extend(rec::unchecked_active_mandates(&mut conn, a_day_ago, (limit / 10).max(1)).await?);
            let charges =
                rec::charges_to_poll(&mut conn, self.today(), self.now() - chrono::Duration::seconds(60), limit)
                    .await?;
            (mandates, charges)
        };
        let mut counts = BeatCounts { looked_at: mandates.len() + charges.len(), changed: 0 };
        for mandate in &mandates {
            if let Err(error) = self.sync_agreement(mandate, None).await {
                tracing::warn!(%mandate, %error, "agreement sync failed");
            } else {
                counts.changed += 1;
            }
        }
        // Reads overlap (Vipps answers in parallel); the writes queue for the database as usual.
        use futures::stream::{self, StreamExt};
        stream::iter(&charges)
            .for_each_concurrent(8, |charge| async move {
                if let Err(error) = self.sync_charge(&charge.charge_id, None).await {
                    tracing::warn!(charge = %charge.charge_id, %error, "charge sync failed");
                }
            })
            .await;
        Ok(counts)
    }

    // -----------------------------------------------------------------------------------------------------
    // Changes by the organisation

    async fn open_recurring(&self, id: &str) -> ServiceResult<(RecurringRow, MandateRow)> {
        let mut conn = self.store.pool().acquire().await?;
        let recurring = rec::recurring(&mut conn, id).await?.ok_or(ServiceError::NotFound("recurring payment"))?;
        let mandate = rec::mandate(&mut conn, &recurring.mandate_id).await?.ok_or(ServiceError::NotFound("mandate"))?;
        if !recurring.status.is_open() {
            return Err(invalid("Id", format!("The recurring payment is {}; it cannot change", recurring.status)));
        }
        Ok((recurring, mandate))
    }

    async fn audit(
        &self,
        conn: &mut sqlx::AnyConnection,
        actor: &Actor,
        action: &str,
        object_type: &str,
        id: &str,
        details: serde_json::Value,
    ) -> ServiceResult<()> {
        audit::record(
            conn,
            &AuditEntry {
                at: Utc::now(),
                actor: actor.label.clone(),
                action: action.into(),
                object_type: object_type.into(),
                object_id: id.into(),
                source: actor.source.clone(),
                details,
            },
        )
        .await?;
        Ok(())
    }

    /// Changes the amount: the agreement's price at Vipps first (key: the change's id), then the recurring
    /// payment and its installments not yet charged. Only while the mandate is Active: a Pending agreement
    /// cannot change at Vipps, and the payer confirms the price it shows.
    pub async fn change_amount(&self, recurring_id: &str, amount: Money, actor: &Actor) -> ServiceResult<()> {
        if !(MIN_RECURRING_ORE..=MAX_RECURRING_ORE).contains(&amount.ore()) {
            return Err(invalid(
                "Amount",
                format!(
                    "Amount must be from {} to {} NOK (Vipps' limits for an agreement)",
                    Money::from_ore(MIN_RECURRING_ORE).kroner_string(),
                    Money::from_ore(MAX_RECURRING_ORE).kroner_string()
                ),
            ));
        }
        let (recurring, mandate) = self.open_recurring(recurring_id).await?;
        let details = json!({"from_ore": recurring.amount_ore, "to_ore": amount.ore()});
        let change_id = {
            let mut conn = self.store.pool().acquire().await?;
            rec::insert_change(
                &mut conn,
                Some(&mandate.id),
                Some(&recurring.id),
                "amount",
                &details,
                &actor.label,
                self.now(),
            )
            .await?
        };
        if let Some(agreement_id) = mandate.agreement_id.as_deref().filter(|_| mandate.status == MandateStatus::Active)
        {
            let client = self.clients.get(&self.accounts, &mandate.account_id).await?;
            let mut update = AgreementUpdate::default();
            update.pricing = Some(PricingUpdate::amount(amount.ore()));
            if let Err(error) = client.recurring().update_agreement(agreement_id, &update, &key(&change_id)?).await {
                let message = describe(&error);
                let mut conn = self.store.pool().acquire().await?;
                rec::finish_change(&mut conn, &change_id, false, Some(&message), self.now()).await?;
                return Err(invalid("Amount", format!("Vipps did not accept the new price: {message}")));
            }
        } else {
            let message = match mandate.status {
                MandateStatus::Pending => "The agreement waits for the payer, who confirms the price it shows; \
                                           change the amount once the mandate is Active"
                    .to_owned(),
                other => format!("The mandate is {other}; its agreement cannot change"),
            };
            let mut conn = self.store.pool().acquire().await?;
            rec::finish_change(&mut conn, &change_id, false, Some(&message), self.now()).await?;
            return Err(invalid("Id", message));
        }
        let now = self.now();
        let mut tx = self.store.begin_write().await?;
        rec::set_recurring_terms(&mut tx, &recurring.id, Some(amount.ore()), None, now).await?;
        rec::set_mandate_price(&mut tx, &mandate.id, amount.ore(), now).await?;
        for installment in rec::open_installments(&mut tx, &mandate.id, Some(&recurring.id)).await? {
            rec::reshape_outstanding(&mut tx, &installment, Some(amount.ore()), None, now).await?;
        }
        rec::finish_change(&mut tx, &change_id, true, None, now).await?;
        self.audit(&mut tx, actor, "recurring.change_amount", "recurring_payment", &recurring.id, details).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Changes the Collection Day: installments not yet charged move to the new day of their month (never
    /// before the Start Date or after the End Date); those already charged keep theirs.
    pub async fn change_collection_day(&self, recurring_id: &str, day: u32, actor: &Actor) -> ServiceResult<()> {
        if !(1..=31).contains(&day) {
            return Err(invalid("CollectionDay", "CollectionDay must be a day of the month from 1 to 31"));
        }
        let (recurring, mandate) = self.open_recurring(recurring_id).await?;
        let details = json!({"from": recurring.collection_day, "to": day});
        let mut changed = recurring.clone();
        changed.collection_day = Some(day);
        let schedule = changed.schedule()?;
        let now = self.now();
        let tomorrow = self.today().checked_add_days(Days::new(1)).unwrap_or(self.today());
        let mut tx = self.store.begin_write().await?;
        let change_id = rec::insert_change(
            &mut tx,
            Some(&mandate.id),
            Some(&recurring.id),
            "collection_day",
            &details,
            &actor.label,
            now,
        )
        .await?;
        rec::set_recurring_terms(&mut tx, &recurring.id, None, Some(day), now).await?;
        for installment in rec::open_installments(&mut tx, &mandate.id, Some(&recurring.id)).await? {
            if let Some(period) = rec::installment_period(&mut tx, &installment).await? {
                let due = schedule.period_date_of(u32::try_from(period).unwrap_or(0)).map(|d| {
                    let d = d.max(recurring.start_date);
                    recurring.end_date.map_or(d, |end| d.min(end)).max(tomorrow)
                });
                rec::reshape_outstanding(&mut tx, &installment, None, due, now).await?;
            }
        }
        let next = schedule.period_on_or_after(u32::try_from(recurring.next_period).unwrap_or(u32::MAX));
        rec::set_next_period(&mut tx, &recurring.id, recurring.next_period, next.map(|(_, d)| d), now).await?;
        rec::finish_change(&mut tx, &change_id, true, None, now).await?;
        self.audit(&mut tx, actor, "recurring.change_collection_day", "recurring_payment", &recurring.id, details)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Pauses collection until `until` (exclusive): installments already generated and due before it are
    /// cancelled (with their charges at Vipps), and periods that fall due while the pause lasts get none.
    pub async fn pause(&self, recurring_id: &str, until: NaiveDate, actor: &Actor) -> ServiceResult<()> {
        let today = self.today();
        if until <= today {
            return Err(invalid("Until", format!("Until must be after today ({today})")));
        }
        let (recurring, mandate) = self.open_recurring(recurring_id).await?;
        let details = json!({"until": until.to_string()});
        let reason = format!("Paused until {until}");
        self.cancel_open(&mandate, Some(&recurring.id), &reason, Some(until)).await?;
        let now = self.now();
        let mut tx = self.store.begin_write().await?;
        let change_id =
            rec::insert_change(&mut tx, Some(&mandate.id), Some(&recurring.id), "pause", &details, &actor.label, now)
                .await?;
        rec::set_recurring_status(&mut tx, &recurring.id, RecurringStatus::Paused, None, Some(until), now).await?;
        rec::finish_change(&mut tx, &change_id, true, None, now).await?;
        self.audit(&mut tx, actor, "recurring.pause", "recurring_payment", &recurring.id, details).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Resumes a paused recurring payment: the periods still ahead are collected as usual (the next one is
    /// generated now, also when it falls before the pause's Until); installments the pause cancelled stay so.
    pub async fn resume(&self, recurring_id: &str, actor: &Actor) -> ServiceResult<()> {
        let (recurring, mandate) = self.open_recurring(recurring_id).await?;
        if recurring.status != RecurringStatus::Paused {
            return Err(invalid("Id", "The recurring payment is not paused"));
        }
        let now = self.now();
        let mut tx = self.store.begin_write().await?;
        let change_id = rec::insert_change(
            &mut tx,
            Some(&mandate.id),
            Some(&recurring.id),
            "resume",
            &json!({}),
            &actor.label,
            now,
        )
        .await?;
        rec::set_recurring_status(&mut tx, &recurring.id, RecurringStatus::Active, None, None, now).await?;
        rec::finish_change(&mut tx, &change_id, true, None, now).await?;
        self.audit(&mut tx, actor, "recurring.resume", "recurring_payment", &recurring.id, json!({})).await?;
        tx.commit().await?;
        self.generate_for(Some(&mandate.id)).await?;
        Ok(())
    }

    /// Cancels a recurring payment: its open installments are cancelled (with their charges at Vipps), and
    /// when the account says so, the Vipps agreement is stopped too.
    pub async fn cancel_recurring(
        &self,
        recurring_id: &str,
        reason: Option<&str>,
        actor: &Actor,
    ) -> ServiceResult<Option<CancelOutcome>> {
        let (recurring, mandate) = self.open_recurring(recurring_id).await?;
        let reason = reason.map_or_else(|| "Cancelled by the organisation".to_owned(), str::to_owned);
        let details = json!({"reason": reason});
        let now = self.now();
        {
            let mut tx = self.store.begin_write().await?;
            let change_id = rec::insert_change(
                &mut tx,
                Some(&mandate.id),
                Some(&recurring.id),
                "cancel",
                &details,
                &actor.label,
                now,
            )
            .await?;
            rec::set_recurring_status(&mut tx, &recurring.id, RecurringStatus::Cancelled, Some(&reason), None, now)
                .await?;
            rec::finish_change(&mut tx, &change_id, true, None, now).await?;
            self.audit(&mut tx, actor, "recurring.cancel", "recurring_payment", &recurring.id, details).await?;
            tx.commit().await?;
        }
        self.cancel_open(&mandate, Some(&recurring.id), &reason, None).await?;
        let account = self.accounts.get(&mandate.account_id).await?;
        if account.cancel_agreement_on_cancel && mandate.status.is_active() {
            return Ok(Some(self.cancel_agreement(&mandate.id, actor).await?));
        }
        Ok(None)
    }

    /// Cancels the open installments of a mandate (or one recurring payment), due before `before` when given:
    /// their charges are cancelled at Vipps first (key derived from the charge), then the installments.
    async fn cancel_open(
        &self,
        mandate: &MandateRow,
        recurring_id: Option<&str>,
        reason: &str,
        before: Option<NaiveDate>,
    ) -> ServiceResult<()> {
        let installments = {
            let mut conn = self.store.pool().acquire().await?;
            let mut open = Vec::new();
            for id in rec::open_installments(&mut conn, &mandate.id, recurring_id).await? {
                let Some(row) = records::installment(&mut conn, &id).await? else { continue };
                if before.is_some_and(|b| row.due_date >= b) {
                    continue;
                }
                open.push((row, rec::charge_of_installment(&mut conn, &id).await?));
            }
            open
        };
        let client = self.clients.get(&self.accounts, &mandate.account_id).await?;
        let now = self.now();
        for (installment, charge) in installments {
            if let Some(charge) = charge.filter(|c| matches!(c.state.as_str(), "PENDING" | "DUE" | "CREATING")) {
                match client
                    .recurring()
                    .cancel_charge(&charge.agreement_id, &charge.charge_id, &key(&format!("cc-{}", charge.charge_id))?)
                    .await
                {
                    Ok(_) => {}
                    Err(error) if error.kind() == ErrorKind::NotFound && charge.state == "CREATING" => {}
                    Err(error) => {
                        // Already processed or cancelled at Vipps: read what it is.
                        tracing::info!(charge = %charge.charge_id, error = %describe(&error), "charge not cancelled at Vipps");
                        self.sync_charge(&charge.charge_id, None).await?;
                        continue;
                    }
                }
                let mut conn = self.store.pool().acquire().await?;
                rec::update_charge(&mut conn, &charge.charge_id, "CANCELLED", None, None, None, None, now).await?;
            }
            let mut tx = self.store.begin_write().await?;
            let listeners = outbox::Listeners::of_intent(&mut tx, installment.intent_id.as_deref()).await?;
            outbox::move_installment(
                &mut tx,
                &listeners,
                &installment.id,
                InstallmentStatus::Cancelled,
                Some(reason),
                None,
                now,
            )
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Cancel Vipps Agreement: stops the agreement at Vipps (key: a new change record, so a second request is
    /// asked of Vipps again and gets Vipps' own answer); on success the mandate is Cancelled, its recurring
    /// payments cancelled, its open installments and pending charges cancelled. `mandate_ref` is a mandate id
    /// (`mdt_…`) or an agreement id (`agr_…`).
    pub async fn cancel_agreement(&self, mandate_ref: &str, actor: &Actor) -> ServiceResult<CancelOutcome> {
        let mandate = {
            let mut conn = self.store.pool().acquire().await?;
            rec::mandate(&mut conn, mandate_ref).await?.ok_or(ServiceError::NotFound("mandate"))?
        };
        let Some(agreement_id) = mandate.agreement_id.clone() else {
            return Ok(CancelOutcome {
                is_success: false,
                message: "The agreement was never created at Vipps; there is nothing to stop".into(),
            });
        };
        let change_id = {
            let mut conn = self.store.pool().acquire().await?;
            rec::insert_change(
                &mut conn,
                Some(&mandate.id),
                None,
                "cancel_agreement",
                &json!({"agreement_id": agreement_id}),
                &actor.label,
                self.now(),
            )
            .await?
        };
        let client = self.clients.get(&self.accounts, &mandate.account_id).await?;
        let answer = client.recurring().stop_agreement(&agreement_id, &key(&change_id)?).await;
        let now = self.now();
        let mut tx = self.store.begin_write().await?;
        let outcome = match answer {
            Ok(_) => {
                let listeners = outbox::Listeners::of_intent(&mut tx, mandate.intent_id.as_deref()).await?;
                let message = format!("Agreement {agreement_id} stopped at Vipps");
                if rec::move_mandate(&mut tx, &mandate.id, MandateStatus::Cancelled, "STOPPED", now).await? {
                    outbox::mandate(&mut tx, &listeners, &mandate.id, now).await?;
                }
                for recurring in rec::recurring_of_mandate(&mut tx, &mandate.id).await? {
                    rec::set_recurring_status(
                        &mut tx,
                        &recurring.id,
                        RecurringStatus::Cancelled,
                        Some("Vipps agreement cancelled"),
                        None,
                        now,
                    )
                    .await?;
                }
                rec::finish_change(&mut tx, &change_id, true, Some(&message), now).await?;
                CancelOutcome { is_success: true, message }
            }
            Err(error) => {
                let message = match error.problem() {
                    Some(problem) => {
                        problem.detail.clone().or_else(|| problem.title.clone()).unwrap_or_else(|| describe(&error))
                    }
                    None => describe(&error),
                };
                rec::finish_change(&mut tx, &change_id, false, Some(&message), now).await?;
                CancelOutcome { is_success: false, message }
            }
        };
        self.audit(
            &mut tx,
            actor,
            "mandate.cancel_vipps_agreement",
            "mandate",
            &mandate.id,
            json!({"agreement_id": agreement_id, "is_success": outcome.is_success, "message": outcome.message}),
        )
        .await?;
        tx.commit().await?;
        if outcome.is_success {
            self.cancel_open(&mandate, None, "Vipps agreement cancelled", None).await?;
            // Vipps cancels the agreement's pending charges itself; record what it says of them.
            let open = {
                let mut conn = self.store.pool().acquire().await?;
                rec::open_charges_of_mandate(&mut conn, &mandate.id).await?
            };
            for charge in open {
                if let Err(error) = self.sync_charge(&charge.charge_id, None).await {
                    tracing::warn!(charge = %charge.charge_id, %error, "charge sync after the stop failed");
                }
            }
        }
        Ok(outcome)
    }
}

impl ChargeRow {
    fn from_new(c: NewCharge) -> ChargeRow {
        ChargeRow {
            charge_id: c.charge_id,
            installment_id: c.installment_id,
            mandate_id: c.mandate_id,
            agreement_id: c.agreement_id,
            account_id: c.account_id,
            kind: c.kind.to_owned(),
            amount_ore: c.amount_ore,
            due_date: c.due_date,
            retry_days: c.retry_days,
            description: c.description,
            state: c.state.to_owned(),
            failure_reason: None,
            transaction_id: None,
            captured_ore: 0,
            refunded_ore: 0,
            last_error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_cut_at_a_word_boundary() {
        assert_eq!(charge_description("Monthly gift"), "Monthly gift");
        let long = "Monthly gift to the Norwegian Society for the Protection of Birds";
        let cut = charge_description(long);
        assert!(
            cut.chars().count() <= MAX_CHARGE_DESCRIPTION && long.starts_with(&cut) && !cut.ends_with(' '),
            "{cut}"
        );
        assert_eq!(cut, "Monthly gift to the Norwegian Society for");
    }

    #[test]
    fn oslo_dates_turn_at_norwegian_midnight() {
        let late =
            DateTime::parse_from_rfc3339("2026-06-30T22:30:00Z").map(|d| d.with_timezone(&Utc)).unwrap_or_default();
        assert_eq!(oslo_date(late).to_string(), "2026-07-01");
    }
}
