//! Report API (reference §6): ledgers, funds and fees by ledger date, and the feeds, built from the
//! money movements of each API sales unit; plus the Vipps-number payment control.
//!
//! Each sales unit `api:<MSN>` has one NOK ledger. Captures (ePayment and Recurring) are `capture`
//! rows, refunds `refund` rows (signed), each capture costs a `capture-fee` on the fees ledger;
//! when a Norwegian ledger date ends on the virtual clock, the day's fees are retained from the
//! funds (`fees-retained` on both ledgers) and a positive balance is paid out (`payout-scheduled`).
//! Rows are built lazily (on each Report API call) and never change once built.

mod book;
mod bulk;
mod settlement_csv;

pub(crate) use bulk::sim_bulk_ledger;
pub(crate) use settlement_csv::export as sim_vipps_number_settlement_csv;

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, State};
use base64::Engine;
use bytes::Bytes;
use chrono::NaiveDate;
use http::{HeaderMap, StatusCode, Uri};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{authorize, Api};
use crate::reply::{sim_error, Reply, JSON, PROBLEM};
use crate::state::{Db, SharedSim};

use book::{ledger_id, oslo_date, Book, EntryJson, Topic};

/// Most rows in one response (reference §6.5).
const PAGE: usize = 1000;

/// Report state: the books of the API sales units and the Vipps-number ledgers.
#[derive(Default)]
pub(crate) struct Store {
    books: HashMap<String, Book>,
    vipps_numbers: BTreeMap<String, VippsNumberLedger>,
    vm_seq: u64,
}

/// A Vipps number's own ledger (`NO:<number>`): its payments never reach an API sales unit.
#[derive(Default)]
struct VippsNumberLedger {
    balance: i64,
    rows: Vec<Value>,
}

/// Report `Problem` body (`type`, `title`, `status`, `detail`, `instance`).
fn problem(status: StatusCode, detail: &str, instance: &str) -> Reply {
    let body = json!({
        "type": format!("https://httpstatuses.io/{}", status.as_u16()),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
        "instance": instance,
    });
    Reply {
        status,
        content_type: Some(PROBLEM),
        body: Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
        retry_after: None,
    }
}

/// Query parameters as decoded pairs; the Report API ignores parameters it does not know.
fn query(uri: &Uri) -> HashMap<String, String> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect()
}

fn ledger_json(msn: &str) -> Value {
    // Stable, made-up organisation and bank account numbers derived from the MSN.
    let digits: String = format!("{msn:0>9}").chars().rev().take(9).collect();
    json!({
        "ledgerId": ledger_id(msn),
        "currency": "NOK",
        "payoutBankAccount": {"scheme": "BBAN:NO", "id": format!("15{digits}")},
        "owner": {"scheme": "business:NO:ORG", "id": digits},
        "settlesForRecipientHandles": [format!("api:{msn}")],
        "salesUnits": [{"name": format!("Sales unit {msn}"), "recipientHandle": format!("api:{msn}")}],
    })
}

/// `GET /settlement/v1/ledgers[?settlesForRecipientHandles=api:MSN]` → `{"items": [Ledger], "cursor": ""}`:
/// the caller's one ledger (none if the filter names another handle). All ledgers fit in one
/// page, so a `cursor` is never issued and any given one is refused.
pub(crate) async fn ledgers(State(sim): State<SharedSim>, headers: HeaderMap, uri: Uri) -> Reply {
    let instance = uri.path();
    let now = sim.clock.now();
    let msn = {
        let db = sim.lock();
        match authorize(&db, now, &headers, Api::Report, instance) {
            Ok(m) => m,
            Err(r) => return r,
        }
    };
    let q = query(&uri);
    if q.get("cursor").is_some_and(|c| !c.is_empty()) {
        return problem(StatusCode::BAD_REQUEST, "Invalid cursor", instance);
    }
    let handle = format!("api:{msn}");
    let items = match q.get("settlesForRecipientHandles") {
        Some(f) if !f.split(',').any(|h| h.trim() == handle) => vec![],
        _ => vec![ledger_json(&msn)],
    };
    Reply::json(StatusCode::OK, &json!({"items": items, "cursor": ""}))
}

/// The parameters shared by the by-date and feed endpoints, checked.
struct ReportRequest {
    msn: String,
    ledger_id: String,
    topic: Topic,
    cursor: Option<String>,
}

fn check_request(
    db: &Db,
    sim: &SharedSim,
    headers: &HeaderMap,
    uri: &Uri,
    ledger: &str,
    topic: &str,
) -> Result<ReportRequest, Reply> {
    let instance = uri.path();
    let msn = authorize(db, sim.clock.now(), headers, Api::Report, instance)?;
    if ledger != ledger_id(&msn) {
        return Err(problem(StatusCode::NOT_FOUND, "No such ledgerId", instance));
    }
    let Some(topic) = Topic::parse(topic) else {
        return Err(problem(StatusCode::BAD_REQUEST, "topic must be funds or fees", instance));
    };
    let q = query(uri);
    match q.get("includeGDPRSensitiveData").map(String::as_str) {
        None | Some("true" | "false") => {}
        Some(_) => {
            return Err(problem(StatusCode::BAD_REQUEST, "includeGDPRSensitiveData must be true or false", instance));
        }
    }
    Ok(ReportRequest { msn, ledger_id: ledger.to_owned(), topic, cursor: q.get("cursor").cloned() })
}

/// Encodes a cursor: opaque to clients, deterministic for the same position.
fn encode_cursor(parts: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(parts)
}

/// Decodes a cursor made by [`encode_cursor`] into its `|`-separated parts.
fn decode_cursor(c: &str) -> Option<Vec<String>> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c.trim_end_matches('=')).ok()?;
    let s = String::from_utf8(raw).ok()?;
    Some(s.split('|').map(str::to_owned).collect())
}

/// Builds `{"items": [...], ...rest}` from pre-serialised rows without re-encoding them.
fn page_body(rows: &[book::Row], rest: &str) -> Reply {
    let len: usize = rows.iter().map(|r| r.json.len() + 1).sum();
    let mut out = String::with_capacity(len + rest.len() + 16);
    out.push_str("{\"items\":[");
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&r.json);
    }
    out.push(']');
    out.push_str(rest);
    out.push('}');
    Reply { status: StatusCode::OK, content_type: Some(JSON), body: Bytes::from(out), retry_after: None }
}

/// Runs due work first (so expiries and charges due by now are booked), then syncs the book of
/// `msn` with its movements and hands it to `f`.
fn with_book<T>(db: &mut Db, msn: &str, now: chrono::DateTime<chrono::Utc>, f: impl FnOnce(&Book) -> T) -> T {
    let Db { report, movements, .. } = db;
    let book = report.books.entry(msn.to_owned()).or_insert_with(|| Book::new(msn));
    book.sync(movements.get(msn).map(Vec::as_slice).unwrap_or_default(), now);
    f(book)
}

/// `GET /report/v2/ledgers/{ledgerId}/{topic}/dates/{ledgerDate}[?cursor=]`: the complete rows
/// of a closed Norwegian date in pages of ≤ 1000 (`hasMore`, `cursor`); an open or future date
/// answers `{"items": [], "hasMore": false, "tryLater": true}` (current behaviour, not the 2023 404).
pub(crate) async fn by_date(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path((ledger, topic, date)): Path<(String, String, String)>,
) -> Reply {
    let instance = uri.path();
    sim.process_due();
    let now = sim.clock.now();
    let mut db = sim.lock();
    let req = match check_request(&db, &sim, &headers, &uri, &ledger, &topic) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let Ok(date) = NaiveDate::parse_from_str(&date, "%Y-%m-%d") else {
        return problem(StatusCode::BAD_REQUEST, "ledgerDate must be a date in YYYY-MM-DD format", instance);
    };
    let offset = match &req.cursor {
        None => 0,
        Some(c) => {
            let parsed = decode_cursor(c).and_then(|p| match p.as_slice() {
                [v, l, t, d, o]
                    if v == "d1" && *l == req.ledger_id && t == req.topic.as_str() && *d == date.to_string() =>
                {
                    o.parse::<usize>().ok()
                }
                _ => None,
            });
            match parsed {
                Some(o) => o,
                None => return problem(StatusCode::BAD_REQUEST, "Invalid cursor", instance),
            }
        }
    };
    with_book(&mut db, &req.msn, now, |book| {
        if !book.is_closed(date) {
            return page_body(&[], ",\"hasMore\":false,\"tryLater\":true");
        }
        let rows = book.rows(req.topic);
        let lo = rows.partition_point(|r| r.date < date);
        let hi = rows.partition_point(|r| r.date <= date);
        let day = rows.get(lo..hi).unwrap_or_default();
        let Some(rest) = day.get(offset..) else {
            return problem(StatusCode::BAD_REQUEST, "Invalid cursor", instance);
        };
        let n = rest.len().min(PAGE);
        let next = offset + n;
        if next < day.len() {
            let cursor = encode_cursor(&format!("d1|{}|{}|{date}|{next}", req.ledger_id, req.topic.as_str()));
            page_body(&rest[..n], &format!(",\"cursor\":\"{cursor}\",\"hasMore\":true,\"tryLater\":false"))
        } else {
            page_body(&rest[..n], ",\"hasMore\":false,\"tryLater\":false")
        }
    })
}

/// `GET /report/v2/ledgers/{ledgerId}/{topic}/feed[?cursor=]`: every row in booking order, ≤ 1000 per
/// response; `cursor` is always present (the position after the last row returned); at the end
/// of the rows booked so far `tryLater` is true and the same cursor comes back.
pub(crate) async fn feed(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path((ledger, topic)): Path<(String, String)>,
) -> Reply {
    let instance = uri.path();
    sim.process_due();
    let now = sim.clock.now();
    let mut db = sim.lock();
    let req = match check_request(&db, &sim, &headers, &uri, &ledger, &topic) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let pos = match &req.cursor {
        None => 0,
        Some(c) => {
            let parsed = decode_cursor(c).and_then(|p| match p.as_slice() {
                [v, l, t, o] if v == "f1" && *l == req.ledger_id && t == req.topic.as_str() => o.parse::<usize>().ok(),
                _ => None,
            });
            match parsed {
                Some(o) => o,
                None => return problem(StatusCode::BAD_REQUEST, "Invalid cursor", instance),
            }
        }
    };
    with_book(&mut db, &req.msn, now, |book| {
        let rows = book.rows(req.topic);
        let Some(rest) = rows.get(pos..) else {
            return problem(StatusCode::BAD_REQUEST, "Invalid cursor", instance);
        };
        let n = rest.len().min(PAGE);
        let next = pos + n;
        let cursor = encode_cursor(&format!("f1|{}|{}|{next}", req.ledger_id, req.topic.as_str()));
        let try_later = next == rows.len();
        page_body(&rest[..n], &format!(",\"cursor\":\"{cursor}\",\"tryLater\":{try_later}"))
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct VippsNumberPayment {
    vipps_number: String,
    amount: i64,
    #[serde(default)]
    reference: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    phone_number: Option<String>,
}

/// `POST /_sim/vipps-number-payments` `{"vippsNumber": "57860", "amount": 10000, "reference"?,
/// "name"?, "message"?, "phoneNumber"?}`: a payer pays straight to a Vipps number. It is booked
/// on that number's own ledger (`NO:<number>`), never on an API sales unit's ledger, so no
/// merchant key sees it in the Report API (reference §6.7). → `201` with the booked row.
pub(crate) async fn sim_vipps_number_payment(State(sim): State<SharedSim>, body: Bytes) -> Reply {
    let req: VippsNumberPayment = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return sim_error(
                StatusCode::BAD_REQUEST,
                &format!("expected {{\"vippsNumber\": \"57860\", \"amount\": N}}: {e}"),
            );
        }
    };
    let number_ok = (4..=10).contains(&req.vipps_number.len()) && req.vipps_number.bytes().all(|b| b.is_ascii_digit());
    if !number_ok {
        return sim_error(StatusCode::BAD_REQUEST, "vippsNumber must be 4 to 10 digits");
    }
    if !(100..=65_000_000).contains(&req.amount) {
        return sim_error(StatusCode::BAD_REQUEST, "amount must be 100 to 65000000 øre");
    }
    if req
        .phone_number
        .as_deref()
        .is_some_and(|p| !(10..=15).contains(&p.len()) || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return sim_error(StatusCode::BAD_REQUEST, "phoneNumber must be 10 to 15 digits");
    }
    let now = sim.clock.now();
    let mut db = sim.lock();
    let store = &mut db.report;
    store.vm_seq += 1;
    let psp = format!("{}", 7_000_000_000u64 + store.vm_seq);
    let ledger = store.vipps_numbers.entry(req.vipps_number.clone()).or_default();
    let before = ledger.balance;
    ledger.balance += req.amount;
    let handle = format!("NO:{}", req.vipps_number);
    let masked = req.phone_number.as_deref().map(|p| format!("xxxx {}", &p[p.len().saturating_sub(4)..]));
    let reference = req.reference.clone().unwrap_or_else(|| psp.clone());
    let row = EntryJson {
        psp_reference: &psp,
        time: now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        ledger_date: oslo_date(now).to_string(),
        entry_type: "capture",
        reference: &reference,
        currency: "NOK",
        amount: req.amount,
        balance_before: before,
        balance_after: ledger.balance,
        recipient_handle: Some(&handle),
        message: req.message.as_deref(),
        name: req.name.as_deref(),
        masked_phone_no: masked.as_deref(),
    };
    let row = serde_json::to_value(&row).unwrap_or(Value::Null);
    ledger.rows.push(row.clone());
    Reply::json(
        StatusCode::CREATED,
        &json!({"ledgerId": format!("40{}", req.vipps_number), "recipientHandle": handle, "entry": row}),
    )
}

/// `GET /_sim/vipps-number-payments` → `{"ledgers": [{"recipientHandle", "ledgerId", "balance", "items"}]}`:
/// the Vipps-number ledgers, which the Report API never shows to an API sales unit.
pub(crate) async fn sim_vipps_number_ledgers(State(sim): State<SharedSim>) -> Reply {
    let db = sim.lock();
    let ledgers: Vec<Value> = db
        .report
        .vipps_numbers
        .iter()
        .map(|(n, l)| {
            json!({"recipientHandle": format!("NO:{n}"), "ledgerId": format!("40{n}"), "balance": l.balance, "items": l.rows})
        })
        .collect();
    Reply::json(StatusCode::OK, &json!({"ledgers": ledgers}))
}
