//! Benchmark: concurrent clients deliver correctly signed Vipps payment events to payhub's intake
//! (`POST /webhooks/vipps/{account}`), all on loopback in this one process. Prints deliveries acknowledged per
//! second, p50/p99 latency and errors, then counts the stored Messages to show that every acknowledged delivery
//! was written durably.
//!
//! ```sh
//! cargo run --release -p payhub --example bench_webhooks                  # SQLite
//! PAYHUB_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo run --release -p payhub --example bench_webhooks                # PostgreSQL (a fresh database)
//! ```
//! Options (environment): `BENCH_SECONDS` (default 10), `BENCH_CONCURRENCY` (default 32).
//!
//! Only the intake is measured: as in `bench_intents`, the benchmark starts payhub's HTTP server and none of its
//! background work (no job workers, no heartbeat), so each delivery is verified (HMAC over the raw body), stored
//! as a Message and its sync job queued, and nothing processes the jobs while the clock runs. Each delivery is a distinct event (its own `pspReference`) for one of 1,000
//! payment references, so jobs of the same payment share an ordering key as Vipps' events would.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

/// The allocator the `payhub` binary uses (see its `main.rs`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use payhub::app::Application;
use payhub::auth::Actor;
use payhub::config::Config;
use payhub::domain::account::AccountInput;
use payhub::secrets::Secret;
use serde_json::json;
use sqlx::Row;

mod common;
use common::{cpu_used, drive, env_or};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds = env_or("BENCH_SECONDS", 10);
    let concurrency = env_or("BENCH_CONCURRENCY", 32) as usize;
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
    // The server only (no `spawn_background`): the queued sync jobs wait, so the figure is the intake's alone.
    tokio::spawn(app.run_until(std::future::pending()));
    let account = state
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
            &Actor::cli(),
        )
        .await?;
    // The registration flow (as the registration job runs it): payhub registers its intake URL at the simulator
    // and keeps the signing secret sealed; the benchmark opens it as the tests do, to sign as Vipps signs.
    state.registrar().ensure_registered(&account.id).await?;
    let row =
        sqlx::query("SELECT url, secret_sealed FROM vipps_webhooks").fetch_one(state.store.pool_for_tests()).await?;
    let url: String = row.try_get(0)?;
    let sealed: String = row.try_get(1)?;
    let secret = state.accounts.open(&sealed, &format!("vipps_webhook:{}", account.id))?.expose().to_owned();
    let parsed = url::Url::parse(&url)?;
    let host = format!("{}:{}", parsed.host_str().unwrap_or_default(), parsed.port().unwrap_or(80));
    let path = parsed.path().to_owned();

    let http = reqwest::Client::builder().pool_max_idle_per_host(usize::MAX).build()?;
    let sequence = Arc::new(AtomicUsize::new(0));
    let deliver = {
        let secret = vipps_client::Secret::new(secret);
        let msn = merchant.msn.clone();
        move |_client_request: usize| {
            let (http, url, host, path, secret, msn) =
                (http.clone(), url.clone(), host.clone(), path.clone(), secret.clone(), msn.clone());
            let n = sequence.fetch_add(1, Ordering::Relaxed);
            async move {
                let now = chrono::Utc::now();
                let body = json!({"msn": msn, "reference": format!("bench-wh-{}", n % 1000),
                    "pspReference": format!("psp-{n}"), "name": "AUTHORIZED",
                    "amount": {"currency": "NOK", "value": 3600}, "timestamp": now.to_rfc3339(), "success": true})
                .to_string();
                let date = vipps_client::webhooks::format_date(now);
                let signed = vipps_client::webhooks::sign(&secret, &path, &host, &date, body.as_bytes());
                let sent = http
                    .post(&url)
                    .header("x-ms-date", signed.date)
                    .header("x-ms-content-sha256", signed.content_sha256)
                    .header("authorization", signed.authorization)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                matches!(sent, Ok(r) if r.status().is_success())
            }
        }
    };
    // Warm up (connections, SQLite cache); its deliveries count in the durability check below.
    let warm_up = drive(concurrency, 1, deliver.clone()).await;
    let cpu_before = cpu_used();
    let wall = Instant::now();
    let outcome = drive(concurrency, seconds, deliver).await;
    let elapsed = wall.elapsed().as_secs_f64();
    let cpu = cpu_used().saturating_sub(cpu_before);
    println!(
        "payhub ({backend}), Vipps webhook intake: {:.0} deliveries/s acknowledged over {seconds} s with {concurrency} \
         clients, {}",
        outcome.acknowledged() as f64 / seconds as f64,
        outcome.summary()
    );
    println!(
        "CPU (payhub and load generator, which signs each delivery, together): {:.3} ms per delivery, {:.2} cores busy",
        cpu.as_secs_f64() * 1000.0 / outcome.count().max(1) as f64,
        cpu.as_secs_f64() / elapsed,
    );

    // Durability: every acknowledged delivery is a stored Message with its job queued (read back through a
    // fresh connection after the load stopped).
    let acknowledged = (warm_up.acknowledged() + outcome.acknowledged()) as i64;
    let pool = state.store.pool_for_tests();
    let count = |sql: &'static str| async move {
        sqlx::query(sql).fetch_one(pool).await.and_then(|row| row.try_get::<i64, _>(0))
    };
    let messages = count("SELECT COUNT(*) FROM messages WHERE channel = 'vipps_webhook'").await?;
    let jobs = count("SELECT COUNT(*) FROM jobs WHERE kind = 'vipps.payment.sync'").await?;
    let verdict = if messages == acknowledged && jobs == acknowledged { "every one stored" } else { "MISMATCH" };
    println!(
        "durability: {acknowledged} deliveries acknowledged (warm-up included), {messages} Messages and {jobs} sync \
         jobs stored: {verdict}"
    );
    if let Ok(wal) = std::fs::metadata(data_dir.path().join("bench.db-wal")) {
        println!("SQLite write-ahead log at its longest: {:.1} MiB", wal.len() as f64 / (1024.0 * 1024.0));
    }
    if verdict != "every one stored" {
        anyhow::bail!("acknowledged deliveries missing from storage");
    }
    Ok(())
}
