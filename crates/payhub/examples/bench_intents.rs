//! Benchmark: concurrent clients create one-time payment intents against payhub backed by vipps-sim, all on
//! loopback in this one process (as they would share this machine anyway). Prints intents per second, p50/p99
//! latency, and in the same run the simulator's own create rate.
//!
//! ```sh
//! cargo run --release -p payhub --example bench_intents                  # SQLite
//! PAYHUB_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo run --release -p payhub --example bench_intents                # PostgreSQL (a fresh database)
//! ```
//! Options (environment): `BENCH_SECONDS` (default 10), `BENCH_CONCURRENCY` (default 32), `BENCH_RATE`: instead
//! of a fixed number of clients each waiting for its answer (closed loop), start this many intents per second
//! (open loop) and count each latency from when its request was due.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

/// The allocator the `payhub` binary uses (see its `main.rs`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;

use std::sync::Arc;
use std::time::{Duration, Instant};

use payhub::app::Application;
use payhub::auth::{self, Actor};
use payhub::config::Config;
use payhub::domain::account::AccountInput;
use payhub::domain::role::Role;
use payhub::secrets::Secret;
use serde_json::json;

mod common;
use common::{cpu_used, drive, env_or, Outcome};

/// Open loop: requests start at `rate` per second whatever the answers do (at most 4,096 in flight), and each
/// latency counts from the moment its request was due, so a stall is not hidden by requests that were never sent.
async fn drive_at_rate<F, Fut>(rate: u64, seconds: u64, request: F) -> Outcome
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let in_flight = Arc::new(tokio::sync::Semaphore::new(4096));
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for n in 0..(rate * seconds) as usize {
        let due = started + Duration::from_secs_f64(n as f64 / rate as f64);
        tokio::time::sleep_until(due).await;
        let permit = in_flight.clone().acquire_owned().await.unwrap();
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let ok = request(n).await;
            drop(permit);
            (due.elapsed(), ok)
        }));
    }
    let mut all = Vec::with_capacity(tasks.len());
    for task in tasks {
        all.push(task.await.unwrap());
    }
    Outcome::of(all)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds = env_or("BENCH_SECONDS", 10);
    let concurrency = env_or("BENCH_CONCURRENCY", 32) as usize;
    let rate = env_or("BENCH_RATE", 0);
    let data_dir = tempfile::tempdir()?;
    let database_url = common::database_url(data_dir.path()).await?;
    let backend = if database_url.starts_with("sqlite") { "SQLite" } else { "PostgreSQL" };

    let sim = vipps_sim::Simulator::start(vipps_sim::SimConfig::default(), "127.0.0.1:0".parse()?).await?;
    let merchant = sim.merchants()[0].clone();
    let mut env = HashMap::new();
    env.insert("PAYHUB_LISTEN".to_owned(), "127.0.0.1:0".to_owned());
    env.insert("PAYHUB_DATA_DIR".to_owned(), data_dir.path().display().to_string());
    env.insert("PAYHUB_DATABASE_URL".to_owned(), database_url);
    env.insert("PAYHUB_MASTER_KEY".to_owned(), "ab".repeat(32));
    let app = Application::build(Config::from_sources(None, &env)?).await?;
    let state = app.state().clone();
    let base = format!("http://{}", app.address());
    tokio::spawn(app.run_until(std::future::pending()));
    let actor = Actor::cli();
    state
        .accounts
        .create(
            &AccountInput {
                name: Some("Bench".into()),
                merchant_serial_number: Some(merchant.msn.clone()),
                client_key: Some(merchant.client_id.clone()),
                client_secret: Some(Secret::new(merchant.client_secret.clone())),
                subscription_key: Some(Secret::new(merchant.subscription_key.clone())),
                is_test: Some(true),
                api_base_url: Some(sim.base_url()),
                ..AccountInput::default()
            },
            &actor,
        )
        .await?;
    let (_, key) = auth::create_api_key(&state.store, "bench", Role::Integrator, &actor).await?;
    // Keep every connection the load opens (the open loop may have many requests in flight at once): a new
    // connection per request would measure TCP set-up, not payhub.
    let http = reqwest::Client::builder().pool_max_idle_per_host(usize::MAX).build()?;

    let intent = {
        let http = http.clone();
        let url = format!("{base}/v2/PaymentIntent");
        let key = key.clone();
        move |n: usize| {
            let http = http.clone();
            let url = url.clone();
            let key = key.clone();
            async move {
                let body = json!({"SuccessURL": "https://example.org/thanks", "FailureURL": "https://example.org/sorry",
                    "Payer": {"Contact": {"SalesforceFields": {"FirstName": "Bench", "LastName": "Mark", "Email": format!("payer{}@example.org", n % 5000)}}},
                    "OneTime": {"Amount": "36"},
                    "PaymentMethod": {"Name": "Vipps", "Processor": "PayHub-Vipps", "Parameters": {"mobileNumber": "+47 912 34 567"}}});
                matches!(http.post(&url).bearer_auth(&key).json(&body).send().await, Ok(r) if r.status().is_success())
            }
        }
    };
    // Warm up (connections, token, SQLite cache).
    drive(concurrency, 1, intent.clone()).await;
    let cpu_before = cpu_used();
    let wall = Instant::now();
    let outcome =
        if rate > 0 { drive_at_rate(rate, seconds, intent).await } else { drive(concurrency, seconds, intent).await };
    let elapsed = wall.elapsed().as_secs_f64();
    let cpu = cpu_used().saturating_sub(cpu_before);
    let (how, over) = if rate > 0 {
        // Over the time until the last answer came, so a backlog shows as a lower rate.
        (format!("{rate} intents/s offered for {seconds} s (open loop)"), elapsed)
    } else {
        (format!("over {seconds} s with {concurrency} clients"), seconds as f64)
    };
    println!("payhub ({backend}): {:.0} intents/s {how}, {}", outcome.count() as f64 / over, outcome.summary());
    println!(
        "CPU (payhub, simulator and load generator together): {:.3} ms per intent, {:.2} cores busy",
        cpu.as_secs_f64() * 1000.0 / outcome.count().max(1) as f64,
        cpu.as_secs_f64() / elapsed,
    );
    if let Ok(wal) = std::fs::metadata(data_dir.path().join("bench.db-wal")) {
        // The file keeps the size of the longest the log was; checkpoints let the log start again from its
        // beginning, so under steady load this stays flat.
        println!("SQLite write-ahead log at its longest: {:.1} MiB", wal.len() as f64 / (1024.0 * 1024.0));
    }

    // The simulator alone, through the same kind of client, in the same run.
    let token: serde_json::Value = http
        .post(format!("{}/accesstoken/get", sim.base_url()))
        .header("client_id", &merchant.client_id)
        .header("client_secret", &merchant.client_secret)
        .header("Ocp-Apim-Subscription-Key", &merchant.subscription_key)
        .send()
        .await?
        .json()
        .await?;
    let token = token["access_token"].as_str().unwrap_or_default().to_owned();
    let create = {
        let http = http.clone();
        let url = format!("{}/epayment/v1/payments", sim.base_url());
        move |n: usize| {
            let (http, url, token, merchant) = (http.clone(), url.clone(), token.clone(), merchant.clone());
            async move {
                let body = json!({"amount": {"currency": "NOK", "value": 3600}, "paymentMethod": {"type": "WALLET"},
                    "reference": format!("bench-sim-{n}-{}", std::process::id()), "userFlow": "WEB_REDIRECT",
                    "returnUrl": "https://example.org/back"});
                matches!(http.post(&url).bearer_auth(&token)
                    .header("Ocp-Apim-Subscription-Key", &merchant.subscription_key)
                    .header("Merchant-Serial-Number", &merchant.msn)
                    .header("Idempotency-Key", format!("bench-{n}-{}", std::process::id()))
                    .json(&body).send().await, Ok(r) if r.status().is_success())
            }
        }
    };
    let sim_seconds = seconds.min(5);
    let sim = drive(concurrency, sim_seconds, create).await;
    println!("vipps-sim alone: {:.0} creates/s, {}", sim.count() as f64 / sim_seconds as f64, sim.summary());
    Ok(())
}
