//! The invariants, read from both sides once the polls have settled: payhub's records (its database, read
//! only) against what the simulator says Vipps did.
//!
//! - every intent and refund payhub answered 200 exists (and the refund did not fail);
//! - per payment reference and per charge, what Vipps captured and refunded equals the Payments payhub
//!   recorded, and no installment holds two captures or a charge payhub does not know;
//! - nothing is left in a state short of what Vipps decided: an authorized payment is captured and
//!   Collected (or Refunded as far as Vipps refunded it), an aborted or expired one Failed, a charge's
//!   installment as final as the charge, an agreement's mandate as the agreement, no refund is left
//!   Pending, and no installment of an active agreement due two days ago is left uncharged.

use std::collections::{HashMap, HashSet};

use futures::stream::{self, StreamExt};
use serde_json::Value;
use sqlx::Row;

use super::{CLIENT_ID, CLIENT_SECRET, MSN, SUBSCRIPTION_KEY};

/// What was found: the figures, and every invariant that does not hold.
#[derive(Default, Debug)]
pub struct Findings {
    pub one_time: usize,
    pub collected: usize,
    pub captured_ore: i64,
    pub refunded_ore: i64,
    pub charges: usize,
    pub charged: usize,
    pub mandates_active: usize,
    /// Installments of active agreements due days ago and still not charged nor failed.
    pub overdue: usize,
    pub violations: Vec<String>,
}

/// The simulator as a merchant sees it (an access token, then plain reads).
struct Vipps {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Vipps {
    async fn connect(http: &reqwest::Client, base: &str) -> anyhow::Result<Vipps> {
        let token: Value = http
            .post(format!("{base}/accesstoken/get"))
            .header("client_id", CLIENT_ID)
            .header("client_secret", CLIENT_SECRET)
            .header("Ocp-Apim-Subscription-Key", SUBSCRIPTION_KEY)
            .header("Merchant-Serial-Number", MSN)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let token = token["access_token"].as_str().unwrap_or_default().to_owned();
        Ok(Vipps { http: http.clone(), base: base.to_owned(), token })
    }

    /// The resource at `path`, or `None` when Vipps has none (404).
    async fn read(&self, path: &str) -> anyhow::Result<Option<Value>> {
        let answer = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("Ocp-Apim-Subscription-Key", SUBSCRIPTION_KEY)
            .header("Merchant-Serial-Number", MSN)
            .send()
            .await?;
        if answer.status() == 404 {
            return Ok(None);
        }
        Ok(Some(answer.error_for_status()?.json().await?))
    }
}

fn text(row: &sqlx::any::AnyRow, column: &str) -> String {
    row.try_get::<Option<String>, _>(column).ok().flatten().unwrap_or_default()
}

fn number(row: &sqlx::any::AnyRow, column: &str) -> i64 {
    row.try_get::<i64, _>(column).unwrap_or(0)
}

/// Captured and refunded øre and the number of captures payhub recorded, per installment.
type Recorded = HashMap<String, (i64, i64, usize)>;

/// The status an installment must have once Vipps captured `captured` and refunded `refunded` of it.
fn collected_status(captured: i64, refunded: i64) -> &'static str {
    if refunded == 0 {
        "Collected"
    } else if refunded < captured {
        "Partially refunded"
    } else {
        "Refunded"
    }
}

/// Checks every invariant; `intents` and `refunds` are what payhub answered 200.
pub async fn check(
    database_url: &str,
    http: &reqwest::Client,
    sim_url: &str,
    intents: &[String],
    refunds: &[String],
) -> anyhow::Result<Findings> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new().max_connections(2).connect(database_url).await?;
    let vipps = Vipps::connect(http, sim_url).await?;
    let mut found = Findings::default();
    let mut violations = Vec::new();

    let known: HashSet<String> =
        sqlx::query("SELECT id FROM payment_intents").fetch_all(&pool).await?.iter().map(|r| text(r, "id")).collect();
    for id in intents.iter().filter(|id| !known.contains(*id)) {
        violations.push(format!("intent {id} was answered 200 but does not exist"));
    }
    let refund_rows: HashMap<String, (String, String)> = sqlx::query("SELECT id, status, installment_id FROM refunds")
        .fetch_all(&pool)
        .await?
        .iter()
        .map(|r| (text(r, "id"), (text(r, "status"), text(r, "installment_id"))))
        .collect();
    for id in refunds {
        match refund_rows.get(id) {
            None => violations.push(format!("refund {id} was answered 200 but does not exist")),
            Some((status, _)) if status == "Failed" => {
                violations.push(format!("refund {id} was answered 200 but is Failed"))
            }
            _ => {}
        }
    }
    for (id, (status, installment)) in &refund_rows {
        if status != "Succeeded" && status != "Failed" {
            violations.push(format!("refund {id} of {installment} is left {status}"));
        }
    }

    let mut recorded: Recorded = HashMap::new();
    for row in sqlx::query("SELECT installment_id, amount_ore, kind FROM payments").fetch_all(&pool).await? {
        let entry = recorded.entry(text(&row, "installment_id")).or_default();
        let amount = number(&row, "amount_ore");
        if text(&row, "kind") == "capture" {
            entry.0 += amount;
            entry.2 += 1;
        } else {
            entry.1 += amount.abs();
        }
    }
    for (installment, (_, _, captures)) in &recorded {
        if *captures > 1 {
            violations.push(format!("installment {installment} holds {captures} captures"));
        }
    }

    // One-time payments, per reference.
    let one_time: Vec<(String, String, String)> = sqlx::query(
        "SELECT i.id, i.status, v.reference FROM installments i JOIN vipps_payments v ON v.installment_id = i.id",
    )
    .fetch_all(&pool)
    .await?
    .iter()
    .map(|r| (text(r, "id"), text(r, "status"), text(r, "reference")))
    .collect();
    found.one_time = one_time.len();
    let read: Vec<anyhow::Result<Option<Value>>> =
        stream::iter(&one_time).map(|(_, _, reference)| vipps.read_payment(reference)).buffered(16).collect().await;
    for ((installment, status, reference), at_vipps) in one_time.iter().zip(read) {
        let at_vipps = at_vipps?;
        let (ours_captured, ours_refunded, _) = recorded.get(installment).copied().unwrap_or_default();
        let state = at_vipps.as_ref().and_then(|p| p["state"].as_str()).unwrap_or("NONE").to_owned();
        let amount = |name: &str| at_vipps.as_ref().and_then(|p| p["aggregate"][name]["value"].as_i64()).unwrap_or(0);
        let (authorized, captured, refunded) =
            (amount("authorizedAmount"), amount("capturedAmount"), amount("refundedAmount"));
        found.captured_ore += captured;
        found.refunded_ore += refunded;
        if captured != ours_captured || refunded != ours_refunded {
            violations.push(format!(
                "{reference} ({installment}, {status}): Vipps captured {captured} and refunded {refunded} øre, \
                 payhub recorded {ours_captured} and {ours_refunded}"
            ));
        }
        let settled = match state.as_str() {
            "AUTHORIZED" if captured < authorized => Err(format!("authorized {authorized}, captured {captured}")),
            "AUTHORIZED" => {
                let want = collected_status(captured, refunded);
                if status == want || status == "Paid" {
                    found.collected += 1;
                    Ok(())
                } else {
                    Err(format!("should be {want}"))
                }
            }
            "ABORTED" | "EXPIRED" | "TERMINATED" if status != "Failed" && status != "Cancelled" => {
                Err("should be Failed".to_owned())
            }
            _ => Ok(()),
        };
        if let Err(why) = settled {
            violations.push(format!("{reference} ({installment}) is {status} in payhub, {state} at Vipps: {why}"));
        }
    }

    // Recurring: each agreement's charges at Vipps against payhub's charges and installments.
    let mandates: Vec<(String, String)> =
        sqlx::query("SELECT agreement_id, status FROM mandates WHERE agreement_id IS NOT NULL")
            .fetch_all(&pool)
            .await?
            .iter()
            .map(|r| (text(r, "agreement_id"), text(r, "status")))
            .collect();
    let charges: HashMap<String, (String, String)> = sqlx::query(
        "SELECT c.charge_id, c.installment_id, i.status FROM vipps_charges c JOIN installments i ON i.id = c.installment_id",
    )
    .fetch_all(&pool)
    .await?
    .iter()
    .map(|r| (text(r, "charge_id"), (text(r, "installment_id"), text(r, "status"))))
    .collect();
    let vipps = &vipps;
    let read: Vec<anyhow::Result<(Option<Value>, Option<Value>)>> = stream::iter(&mandates)
        .map(|(agreement, _)| async move {
            let path = format!("/recurring/v3/agreements/{agreement}");
            Ok((vipps.read(&path).await?, vipps.read(&format!("{path}/charges")).await?))
        })
        .buffered(16)
        .collect()
        .await;
    for ((agreement, mandate_status), at_vipps) in mandates.iter().zip(read) {
        let (agreement_at_vipps, charges_at_vipps) = at_vipps?;
        let vipps_status = agreement_at_vipps.as_ref().and_then(|a| a["status"].as_str()).unwrap_or("NONE");
        let want: &[&str] = match vipps_status {
            "ACTIVE" => &["Active"],
            "STOPPED" => &["Stopped", "Cancelled"],
            "EXPIRED" => &["Expired", "Stopped", "Cancelled"],
            _ => &["Pending", "Expired", "Stopped", "Cancelled"],
        };
        if !want.contains(&mandate_status.as_str()) {
            violations.push(format!("agreement {agreement} is {vipps_status} at Vipps, its mandate {mandate_status}"));
        }
        if vipps_status == "ACTIVE" {
            found.mandates_active += 1;
        }
        let mut live_per_installment: HashMap<&str, usize> = HashMap::new();
        for charge in charges_at_vipps.as_ref().and_then(Value::as_array).into_iter().flatten() {
            found.charges += 1;
            let id = charge["id"].as_str().unwrap_or_default();
            let status = charge["status"].as_str().unwrap_or_default();
            let captured = charge["summary"]["captured"].as_i64().unwrap_or(0);
            let refunded = charge["summary"]["refunded"].as_i64().unwrap_or(0);
            let Some((installment, installment_status)) = charges.get(id) else {
                violations.push(format!("charge {id} ({status}) of {agreement} at Vipps is unknown to payhub"));
                continue;
            };
            if !matches!(status, "FAILED" | "CANCELLED") {
                *live_per_installment.entry(installment).or_default() += 1;
            }
            let (ours_captured, ours_refunded, _) = recorded.get(installment).copied().unwrap_or_default();
            found.captured_ore += captured;
            found.refunded_ore += refunded;
            if captured != ours_captured || refunded != ours_refunded {
                violations.push(format!(
                    "charge {id} ({installment}, {installment_status}): Vipps captured {captured} and refunded \
                     {refunded} øre, payhub recorded {ours_captured} and {ours_refunded}"
                ));
            }
            let want: &[&str] = match status {
                "CHARGED" | "PARTIALLY_REFUNDED" | "REFUNDED" => &[collected_status(captured, refunded), "Paid"],
                "FAILED" => &["Failed"],
                "CANCELLED" => &["Cancelled", "Failed"],
                _ => &[],
            };
            if matches!(status, "CHARGED" | "PARTIALLY_REFUNDED" | "REFUNDED") {
                found.charged += 1;
            }
            if !want.is_empty() && !want.contains(&installment_status.as_str()) {
                violations.push(format!(
                    "charge {id} is {status} at Vipps, its installment {installment} {installment_status}"
                ));
            }
        }
        for (installment, live) in live_per_installment {
            if live > 1 {
                violations.push(format!("installment {installment} has {live} live charges at Vipps"));
            }
        }
    }
    // Every installment of an active agreement that fell due days ago has been charged or has failed.
    let clock: Value = http.get(format!("{sim_url}/_sim/clock")).send().await?.json().await?;
    let today = clock["now"].as_str().and_then(|n| n.get(..10)).unwrap_or_default().to_owned();
    let today = chrono::NaiveDate::parse_from_str(&today, "%Y-%m-%d")?;
    let overdue = today.checked_sub_days(chrono::Days::new(2)).unwrap_or(today).to_string();
    for row in sqlx::query(
        "SELECT i.id, i.status, i.due_date FROM installments i JOIN mandates m ON m.id = i.mandate_id \
         WHERE m.status = 'Active' AND i.status IN ('Outstanding', 'Pending') AND i.due_date < $1",
    )
    .bind(&overdue)
    .fetch_all(&pool)
    .await?
    {
        violations.push(format!(
            "installment {} of an active agreement, due {}, is still {}",
            text(&row, "id"),
            text(&row, "due_date"),
            text(&row, "status")
        ));
        found.overdue += 1;
    }
    pool.close().await;
    found.violations = violations;
    Ok(found)
}

impl Vipps {
    async fn read_payment(&self, reference: &str) -> anyhow::Result<Option<Value>> {
        self.read(&format!("/epayment/v1/payments/{reference}")).await
    }
}
