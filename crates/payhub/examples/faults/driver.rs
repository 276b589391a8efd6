//! The callers: clients that make one-time intents, approve or reject them as the payer, refund part of what
//! was collected, and make recurring payments whose agreements the payer accepts, against whichever payhub
//! instance they pick, whatever happens to it. What payhub answered 200 is written down, to be checked after.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// What payhub answered 200, and the requests whose answer was lost (to be repeated with the same key).
#[derive(Default)]
pub struct Ledger {
    /// Intents answered 200.
    pub intents: Vec<String>,
    /// Refunds answered 200 (their ids).
    pub refunds: Vec<String>,
    /// Recurring payments answered 200.
    pub recurring: Vec<String>,
    /// Requests without an answer (connection cut, 503, "still being processed"): path, key, body.
    pub lost: Vec<(String, String, Value)>,
}

/// Counts of what the clients did.
#[derive(Default)]
pub struct Tally {
    pub requests: AtomicU64,
    pub answered: AtomicU64,
    pub lost: AtomicU64,
    pub refused: AtomicU64,
    pub approved: AtomicU64,
    pub rejected: AtomicU64,
    pub accepted: AtomicU64,
    pub refunds: AtomicU64,
}

fn add(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What the clients share.
pub struct Shared {
    pub http: reqwest::Client,
    /// The payhub instances (`http://127.0.0.1:PORT`); each request goes to one picked at random.
    pub bases: Vec<String>,
    pub api_key: String,
    pub sim_url: String,
    pub ledger: Mutex<Ledger>,
    pub tally: Tally,
    pub stop: AtomicBool,
}

/// A request's fate.
pub enum Sent {
    /// payhub answered, with this status and body.
    Answered(u16, Value),
    /// No answer that settles it: the connection was cut, or payhub said to repeat (503, 409 "still being
    /// processed").
    Lost,
}

impl Shared {
    fn base(&self, rng: &mut StdRng) -> &str {
        &self.bases[rng.gen_range(0..self.bases.len())]
    }

    /// `POST path` with an Idempotency-Key, to one instance.
    pub async fn post(&self, base: &str, path: &str, key: &str, body: &Value) -> Sent {
        add(&self.tally.requests);
        let sent = self
            .http
            .post(format!("{base}{path}"))
            .bearer_auth(&self.api_key)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await;
        let Ok(answer) = sent else { return Sent::Lost };
        let status = answer.status().as_u16();
        let Ok(value) = answer.json::<Value>().await else { return Sent::Lost };
        if status == 503 || (status == 409 && value.to_string().contains("still being processed")) {
            return Sent::Lost;
        }
        Sent::Answered(status, value)
    }

    async fn get(&self, base: &str, path: &str) -> Option<Value> {
        let answer = self.http.get(format!("{base}{path}")).bearer_auth(&self.api_key).send().await.ok()?;
        if !answer.status().is_success() {
            return None;
        }
        answer.json().await.ok()
    }

    /// Sends a new request; writes down a 200 (or the loss).
    async fn send(&self, rng: &mut StdRng, path: &str, body: Value) -> Option<Value> {
        let key = uuid::Uuid::new_v4().to_string();
        let base = self.base(rng).to_owned();
        match self.post(&base, path, &key, &body).await {
            Sent::Answered(200, value) => {
                add(&self.tally.answered);
                self.note(path, &value);
                Some(value)
            }
            Sent::Answered(_, _) => {
                add(&self.tally.refused);
                None
            }
            Sent::Lost => {
                add(&self.tally.lost);
                self.ledger.lock().unwrap().lost.push((path.to_owned(), key, body));
                // payhub is down or busy: a caller waits a little before its next request.
                tokio::time::sleep(Duration::from_millis(100)).await;
                None
            }
        }
    }

    /// Writes down what a 200 answer says was made.
    pub fn note(&self, path: &str, value: &Value) {
        let mut ledger = self.ledger.lock().unwrap();
        let id = value["Id"].as_str().unwrap_or_default().to_owned();
        if path == "/v2/Refund" {
            ledger.refunds.push(id);
        } else {
            ledger.intents.push(id);
            if let Some(recurring) = value["Recurring"]["Id"].as_str() {
                ledger.recurring.push(recurring.to_owned());
            }
        }
    }

    async fn payer(&self, what: &str, id: &str, action: &str) -> bool {
        let url = format!("{}/_sim/{what}/{id}/{action}", self.sim_url);
        matches!(self.http.post(url).json(&json!({})).send().await, Ok(a) if a.status().is_success())
    }

    /// A one-time payment: made, approved (or rejected, or left), and once collected sometimes refunded in part.
    async fn one_time(&self, rng: &mut StdRng) {
        let kroner: i64 = rng.gen_range(10..=500);
        let n: u64 = rng.gen();
        let body = json!({
            "SuccessURL": "https://example.org/thanks", "FailureURL": "https://example.org/sorry",
            "Payer": {"Contact": {"SalesforceFields": {"FirstName": "Kari", "LastName": "Nordmann",
                                                       "Email": format!("p{}@example.org", n % 5000)}}},
            "OneTime": {"Amount": kroner},
            "PaymentMethod": {"Name": "Vipps", "Processor": "PayHub-Vipps", "Target": "Sim",
                              "Parameters": {"mobileNumber": "91234567"}},
        });
        let Some(answer) = self.send(rng, "/v2/PaymentIntent", body).await else { return };
        let (Some(installment), Some(reference)) =
            (answer["OneTime"]["Id"].as_str(), answer["OneTime"]["PaymentReference"].as_str())
        else {
            return;
        };
        match rng.gen_range(0..100) {
            0..=79 => {
                if !self.payer("payments", reference, "approve").await {
                    return;
                }
                add(&self.tally.approved);
            }
            80..=89 => {
                if self.payer("payments", reference, "reject").await {
                    add(&self.tally.rejected);
                }
                return;
            }
            _ => return,
        }
        if rng.gen_range(0..100) < 50 {
            self.refund_when_collected(rng, installment, kroner / 2).await;
        }
    }

    /// Waits a little for the installment to be collected, then refunds up to `most` kroner of it.
    async fn refund_when_collected(&self, rng: &mut StdRng, installment: &str, most: i64) {
        for _ in 0..30 {
            let base = self.base(rng).to_owned();
            let status = self.get(&base, &format!("/v2/Installment/{installment}")).await;
            if status.as_ref().and_then(|s| s["Status"].as_str()) == Some("Collected") {
                let amount = rng.gen_range(1..=most.max(1));
                let body = json!({"InstallmentId": installment, "Amount": amount, "Reason": "fault run"});
                if self.send(rng, "/v2/Refund", body).await.is_some() {
                    add(&self.tally.refunds);
                }
                return;
            }
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A monthly recurring payment starting tomorrow (by the simulator's clock), its agreement accepted by the
    /// payer most of the time.
    async fn recurring(&self, rng: &mut StdRng) {
        let Ok(clock) = self.http.get(format!("{}/_sim/clock", self.sim_url)).send().await else { return };
        let Ok(clock) = clock.json::<Value>().await else { return };
        let Some(today) = clock["now"].as_str().and_then(|n| n.get(..10)) else { return };
        let Ok(today) = chrono::NaiveDate::parse_from_str(today, "%Y-%m-%d") else { return };
        let start = today.succ_opt().unwrap_or(today);
        let body = json!({
            "SuccessURL": "https://example.org/thanks", "FailureURL": "https://example.org/sorry",
            "Payer": {"Contact": {"SalesforceFields": {"FirstName": "Ola", "LastName": "Nordmann",
                                                       "Email": format!("r{}@example.org", rng.gen_range(0..5000))}}},
            "Recurring": {"Amount": rng.gen_range(50..=300), "Frequency": "Monthly", "StartDate": start.to_string()},
            "PaymentMethod": {"Name": "Vipps", "Processor": "PayHub-Vipps", "Target": "Sim",
                              "Parameters": {"mobileNumber": "91234567", "TransactionText": "Monthly gift"}},
        });
        let Some(answer) = self.send(rng, "/v2/PaymentIntent", body).await else { return };
        let Some(agreement) = answer["Recurring"]["Mandate"]["MandateId"].as_str() else { return };
        if rng.gen_range(0..100) < 90 && self.payer("agreements", agreement, "accept").await {
            add(&self.tally.accepted);
        }
    }

    /// Refunds part of a collected installment of a recurring payment made earlier, if there is one.
    async fn refund_recurring(&self, rng: &mut StdRng) -> bool {
        let recurring = {
            let ledger = self.ledger.lock().unwrap();
            if ledger.recurring.is_empty() {
                return false;
            }
            ledger.recurring[rng.gen_range(0..ledger.recurring.len())].clone()
        };
        let base = self.base(rng).to_owned();
        let Some(view) = self.get(&base, &format!("/v2/Recurring/{recurring}")).await else { return false };
        let collected: Vec<&Value> = view["Installments"]
            .as_array()
            .map(|all| all.iter().filter(|i| i["Status"] == "Collected").collect())
            .unwrap_or_default();
        let Some(installment) = collected.first() else { return false };
        let most = installment["Amount"].as_f64().unwrap_or(2.0) as i64 / 2;
        let body = json!({"InstallmentId": installment["Id"], "Amount": rng.gen_range(1..=most.max(1)),
                          "Reason": "fault run"});
        if self.send(rng, "/v2/Refund", body).await.is_some() {
            add(&self.tally.refunds);
        }
        true
    }
}

/// One client: stories one after the other until told to stop.
pub async fn client(shared: Arc<Shared>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    while !shared.stop.load(Ordering::Relaxed) {
        match rng.gen_range(0..100) {
            0..=11 => shared.recurring(&mut rng).await,
            12..=19 => {
                if !shared.refund_recurring(&mut rng).await {
                    shared.one_time(&mut rng).await;
                }
            }
            _ => shared.one_time(&mut rng).await,
        }
    }
}

/// Repeats every lost request with its key until it is answered (or `tries` run out); how many were answered
/// 200 and how many never were.
pub async fn repeat_lost(shared: &Shared, tries: usize) -> (usize, usize) {
    let lost = std::mem::take(&mut shared.ledger.lock().unwrap().lost);
    let (mut answered, mut unanswered) = (0, 0);
    for (path, key, body) in lost {
        let mut done = false;
        for attempt in 0..tries {
            let base = &shared.bases[attempt % shared.bases.len()];
            match shared.post(base, &path, &key, &body).await {
                Sent::Answered(status, value) => {
                    if status == 200 {
                        shared.note(&path, &value);
                        answered += 1;
                    }
                    done = true;
                    break;
                }
                Sent::Lost => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
        if !done {
            unanswered += 1;
        }
    }
    (answered, unanswered)
}
