//! Importing a settlement file from the Vipps portal: read whole ([`super::settlement_file`]), then written in
//! **one transaction** — the file as one Message, each new row as its own Message and Inbound Report (`Vipps`,
//! `ledger.<entryType>`) with its ledger row, the run that did it — so a file is imported whole or not at all.
//!
//! Rows are the same ledger rows the Report API import writes, under the same identity (ledger, topic,
//! pspReference, entry type): a row the API or an earlier file already brought is counted as "already
//! imported", never written twice, so re-importing a file is a no-op that says so. Rows of the account's own
//! sales unit land on its API ledger (which the Report API import must have discovered first, so both ways meet
//! one ledger); rows of a Vipps number land on that number's ledger (`NO:<number>`), which the Report API never
//! shows, and each of its payments goes to the Guided Matching queue as a Vipps-number payment. Everything else
//! waits for the matching rules like an API row.

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Europe::Oslo;
use serde::Serialize;

use super::settlement_file::{self, FileError, FileFormat, SettlementFile, SettlementRow, Unbalanced};
use crate::domain::ledger::{EntrySource, Topic};
use crate::domain::trail::Channel;
use crate::store::accounts::AccountRecord;
use crate::store::ledger::{self, LedgerRow, NewEntry, NewLedger};
use crate::store::payouts::{self, RunCounts, RunTrigger};
use crate::store::trail::NewMessage;
use crate::store::{guided, Store, StoreError};

/// Rows written per statement batch; the progress callback is told after each.
const CHUNK: usize = 500;

/// What an import did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FileImported {
    /// The run recorded for it (`rr_…`).
    pub run_id: String,
    /// The file's Message (`msg_…`).
    pub message_id: String,
    /// Which export the file was.
    pub format: FileFormat,
    /// Rows in the file.
    pub rows: u64,
    /// Rows stored for the first time.
    pub new: u64,
    /// Rows the Report API or an earlier file had brought already.
    pub already_imported: u64,
    /// New rows put in the Guided Matching queue (Vipps-number payments).
    pub queued: u64,
    /// New rows left for the matching rules.
    pub for_rules: u64,
    /// Ledger dates of the file whose balances do not add up.
    pub unbalanced: Vec<Unbalanced>,
}

impl FileImported {
    /// The summary a person reads: "n new, m already imported".
    pub fn summary(&self) -> String {
        format!("{} new, {} already imported", self.new, self.already_imported)
    }
}

/// Why a file was not imported (nothing was written).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file is malformed: where and why.
    #[error("{0}")]
    Refused(#[from] FileError),
    /// The file names an MSN of this account whose ledger the Report API import has not discovered yet.
    #[error(
        "the settlement ledger of api:{0} is not known yet: run the ledger import first (payhub reconcile run), \
         so that file rows and Report API rows meet on one ledger"
    )]
    LedgerNotDiscovered(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reads `bytes` and imports it for `account`, as `actor`. `progress(done, total)` is called as rows are written.
pub async fn import_file(
    store: &Store,
    account: &AccountRecord,
    bytes: &[u8],
    actor: &str,
    now: DateTime<Utc>,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<FileImported, ImportError> {
    let file = settlement_file::parse(bytes)?;
    let text = String::from_utf8_lossy(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes));
    let mut tx = store.begin_write().await?;
    let run_id = payouts::start_run(&mut tx, &account.id, RunTrigger::File, Some(actor), now).await?;
    let message_id = crate::store::trail::insert_message(
        &mut tx,
        &NewMessage::processed(Channel::SettlementFile, Some(&account.settings.name), &text),
        now,
    )
    .await?;
    let own_msn = account.settings.merchant_serial_number.as_str();
    let total = file.rows.len() as u64;
    let mut counts = RunCounts::default();
    let mut queued = 0;
    let mut done = 0;
    // Rows go to their ledger in file order, one ledger at a time (a file usually holds one).
    for (msn, rows) in by_msn(&file, own_msn) {
        let ledger = ledger_for(&mut tx, account, msn, now).await?;
        let mut position = ledger::lock_position(&mut tx, store.backend(), &ledger.id, Topic::Funds, now).await?;
        let vipps_number = msn != own_msn;
        for chunk in rows.chunks(CHUNK) {
            let bodies: Vec<String> = chunk
                .iter()
                .map(|r| {
                    let mut body = r.to_report_json(file.format);
                    body["fileMessageId"] = serde_json::Value::from(message_id.as_str());
                    body.to_string()
                })
                .collect();
            let handle = handle(msn, vipps_number);
            // A row without Vipps' reference is known by a digest of its content instead.
            let psps: Vec<String> = chunk.iter().map(|r| r.dedup_reference()).collect();
            let entries: Vec<NewEntry<'_>> =
                chunk.iter().zip(&bodies).zip(&psps).map(|((r, body), psp)| new_entry(r, psp, &handle, body)).collect();
            let first_seq = position.next_seq;
            let written =
                ledger::insert_entries(&mut tx, &ledger, EntrySource::File, &entries, &mut position, now).await?;
            counts.rows_new += written.new;
            counts.rows_already += written.already;
            if vipps_number && written.new > 0 {
                queued += guided::queue_vipps_number_payments(&mut tx, &ledger.id, first_seq, now).await?;
            }
            done += chunk.len() as u64;
            progress(done, total);
        }
        ledger::set_position(&mut tx, &ledger.id, Topic::Funds, &position, now).await?;
    }
    counts.pages = 1;
    counts.rows_queued = queued;
    counts.dates_unbalanced = file.unbalanced.len() as u64;
    let outcome = if counts.rows_new == 0 { "no_new_data" } else { "succeeded" };
    payouts::finish_run(&mut tx, &run_id, &counts, outcome, None, now).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(FileImported {
        run_id,
        message_id,
        format: file.format,
        rows: total,
        new: counts.rows_new,
        already_imported: counts.rows_already,
        queued,
        for_rules: counts.rows_new - queued,
        unbalanced: file.unbalanced,
    })
}

/// The file's rows grouped by MSN in order of first appearance; a row without an MSN is the account's own.
fn by_msn<'f>(file: &'f SettlementFile, own_msn: &'f str) -> Vec<(&'f str, Vec<&'f SettlementRow>)> {
    let mut groups: Vec<(&str, Vec<&SettlementRow>)> = Vec::new();
    for row in &file.rows {
        let msn = row.msn.as_deref().unwrap_or(own_msn);
        match groups.iter_mut().find(|(m, _)| *m == msn) {
            Some((_, rows)) => rows.push(row),
            None => groups.push((msn, vec![row])),
        }
    }
    groups
}

fn handle(msn: &str, vipps_number: bool) -> String {
    if vipps_number {
        format!("NO:{msn}")
    } else {
        format!("api:{msn}")
    }
}

/// The ledger rows of `msn` go to: the account's API ledger for its own MSN (it must be known: the Report API
/// names its id), or the Vipps number's own ledger, made on first use.
async fn ledger_for(
    conn: &mut sqlx::AnyConnection,
    account: &AccountRecord,
    msn: &str,
    now: DateTime<Utc>,
) -> Result<LedgerRow, ImportError> {
    let own = msn == account.settings.merchant_serial_number;
    let handle = handle(msn, !own);
    let known = ledger::ledgers_of(conn, &account.id).await?.into_iter().find(|l| l.recipient_handle == handle);
    match known {
        Some(ledger) => Ok(ledger),
        None if own => Err(ImportError::LedgerNotDiscovered(msn.to_owned())),
        None => {
            let new = NewLedger {
                vipps_ledger_id: &handle,
                recipient_handle: &handle,
                currency: "NOK",
                payout_account: None,
                payout_scheme: None,
            };
            Ok(ledger::upsert_ledger(conn, &account.id, &new, now).await?)
        }
    }
}

fn new_entry<'a>(row: &'a SettlementRow, psp_reference: &'a str, handle: &'a str, body: &'a str) -> NewEntry<'a> {
    // A row without a time happened on its ledger date; its start in Oslo stands in for the moment.
    let time = row.time.unwrap_or_else(|| {
        Oslo.from_local_datetime(&row.ledger_date.and_time(NaiveTime::MIN))
            .earliest()
            .map_or_else(|| Utc.from_utc_datetime(&row.ledger_date.and_time(NaiveTime::MIN)), |t| t.with_timezone(&Utc))
    });
    NewEntry {
        topic: Topic::Funds,
        psp_reference,
        entry_type: &row.entry_type,
        amount_ore: row.amount_ore,
        balance_before_ore: row.balance_after_ore.map(|after| after - row.amount_ore),
        balance_after_ore: row.balance_after_ore,
        currency: &row.currency,
        ledger_date: row.ledger_date,
        time,
        reference: row.reference.as_deref(),
        recipient_handle: Some(handle),
        payer_name: row.name.as_deref(),
        payer_message: row.message.as_deref(),
        masked_phone: row.masked_phone.as_deref(),
        body,
    }
}
