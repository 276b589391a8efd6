//! Benchmark: the recurring charge path at scale. Prepares N active agreements in vipps-sim (run as a child
//! process, so this process's memory is payhub's) and in payhub, moves the clock so N installments fall in the
//! charge window, then times GenerateInstallments, CollectRecurring (charges created per second, through the
//! batch endpoint) and the polling beat that brings the N installments to Collected once Vipps charged them.
//! Prints peak memory during the charge beat, to show it does not grow with N.
//!
//! ```sh
//! cargo run --release -p payhub --example bench_recurring                  # SQLite, N = 100000
//! BENCH_AGREEMENTS=10000 cargo run --release -p payhub --example bench_recurring
//! PAYHUB_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo run --release -p payhub --example bench_recurring                # PostgreSQL (a fresh database)
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

/// The allocator the `payhub` binary uses (see its `main.rs`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

mod common;

use chrono::{Days, Utc};
use futures::stream::{self, StreamExt};
use payhub::app::Application;
use payhub::auth::Actor;
use payhub::config::Config;
use payhub::domain::account::AccountInput;
use payhub::secrets::Secret;
use sqlx::Row;
use vipps_client::recurring::{DraftAgreement, PricingRequest, TimePeriod};
use vipps_client::{ClientConfig, Credentials, Currency, Environment, Msn, RecurringIdempotencyKey, SystemInfo};

const MSN: &str = "654321";
const CLIENT_ID: &str = "bench-client";
const CLIENT_SECRET: &str = "bench-secret";
const SUBSCRIPTION_KEY: &str = "bench-subscription";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The child process: a simulator with the bench merchant, its URL on stdout, running until killed.
async fn run_simulator() -> anyhow::Result<()> {
    let config = vipps_sim::SimConfig {
        merchants: vec![vipps_sim::Merchant {
            msn: MSN.into(),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            subscription_key: SUBSCRIPTION_KEY.into(),
        }],
        ..vipps_sim::SimConfig::default()
    };
    let sim = vipps_sim::Simulator::start(config, "127.0.0.1:0".parse()?).await?;
    println!("{}", sim.base_url());
    std::future::pending::<()>().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::var("BENCH_ROLE").as_deref() == Ok("sim") {
        return run_simulator().await;
    }
    let n = env_or("BENCH_AGREEMENTS", 100_000) as usize;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .env("BENCH_ROLE", "sim")
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let sim_url = {
        let stdout = child.stdout.take().expect("child stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        line.trim().to_owned()
    };
    let result = bench(n, &sim_url).await;
    let _ = child.kill();
    result
}

async fn bench(n: usize, sim_url: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    // payhub's clock follows the simulator's: real time plus the offset read after each advance.
    let offset = Arc::new(AtomicI64::new(0));
    let sync_clock = || {
        let http = http.clone();
        let offset = offset.clone();
        let url = format!("{sim_url}/_sim/clock");
        async move {
            let now: serde_json::Value = http.get(&url).send().await?.json().await?;
            let sim_now = chrono::DateTime::parse_from_rfc3339(now["now"].as_str().unwrap_or_default())?;
            offset.store((sim_now.with_timezone(&Utc) - Utc::now()).num_microseconds().unwrap_or(0), Ordering::Relaxed);
            anyhow::Ok(())
        }
    };
    sync_clock().await?;

    let data_dir = tempfile::tempdir()?;
    let database_url = match std::env::var("PAYHUB_BENCH_DATABASE_URL") {
        Ok(server) => {
            let name = format!("payhub_bench_{}", std::process::id());
            let admin = sqlx::PgPool::connect(&server).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name}")).execute(&admin).await?;
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await?;
            let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(&server);
            format!("{base}/{name}")
        }
        Err(_) => format!("sqlite://{}?mode=rwc", data_dir.path().join("bench.db").display()),
    };
    let backend = if database_url.starts_with("sqlite") { "SQLite" } else { "PostgreSQL" };
    let mut env = HashMap::new();
    env.insert("PAYHUB_DATA_DIR".to_owned(), data_dir.path().display().to_string());
    env.insert("PAYHUB_DATABASE_URL".to_owned(), database_url);
    env.insert("PAYHUB_MASTER_KEY".to_owned(), "ab".repeat(32));
    let clock_offset = offset.clone();
    let state = Application::build_state(
        Config::from_sources(None, &env)?,
        Arc::new(move || Utc::now() + chrono::Duration::microseconds(clock_offset.load(Ordering::Relaxed))),
    )
    .await?;
    let account = state
        .accounts
        .create(
            &AccountInput {
                name: Some("Bench".into()),
                merchant_serial_number: Some(MSN.into()),
                client_key: Some(CLIENT_ID.into()),
                client_secret: Some(Secret::new(CLIENT_SECRET)),
                subscription_key: Some(Secret::new(SUBSCRIPTION_KEY)),
                is_test: Some(true),
                api_base_url: Some(sim_url.to_owned()),
                product_name: Some("Monthly gift".into()),
                merchant_agreement_url: Some("https://example.org/agreements".into()),
                ..AccountInput::default()
            },
            &Actor::cli(),
        )
        .await?;

    // 1. N active agreements at Vipps (drafted through the API, accepted by the simulated payer).
    let started = Instant::now();
    let client = vipps_client::Client::new(ClientConfig::new(
        Environment::Custom(url::Url::parse(sim_url)?),
        Credentials {
            client_id: CLIENT_ID.into(),
            client_secret: vipps_client::Secret::new(CLIENT_SECRET),
            subscription_key: vipps_client::Secret::new(SUBSCRIPTION_KEY),
            msn: Msn::parse(MSN)?,
        },
        SystemInfo {
            name: "payhub-bench".into(),
            version: "1".into(),
            plugin_name: "bench".into(),
            plugin_version: "1".into(),
        },
    ))?;
    let agreements: Vec<String> = stream::iter(0..n)
        .map(|i| {
            let client = client.clone();
            let http = http.clone();
            async move {
                let draft = DraftAgreement::new(
                    PricingRequest::legacy(Currency::Nok, 10_000),
                    Some(TimePeriod::monthly()),
                    "Monthly gift",
                    "https://example.org/agreements",
                    "https://example.org/return",
                );
                let key = RecurringIdempotencyKey::parse(&format!("bench-{i}")).unwrap();
                let id = client.recurring().create_agreement(&draft, &key).await.expect("draft").agreement_id;
                let accepted =
                    http.post(format!("{sim_url}/_sim/agreements/{id}/accept")).send().await.expect("accept");
                assert!(accepted.status().is_success(), "accept {id}: {}", accepted.status());
                id
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let prepared_vipps = started.elapsed();

    // 2. The same N in payhub: payers, profiles, Active mandates and recurring payments starting in two days.
    let started = Instant::now();
    let start = state.payments.today().checked_add_days(Days::new(2)).unwrap();
    let at = payhub::store::timestamp(state.payments.now());
    for (c, chunk) in agreements.chunks(500).enumerate() {
        let mut tx = state.store.pool_for_tests().begin().await?;
        let ids: Vec<usize> = (0..chunk.len()).map(|i| c * 500 + i).collect();
        let sql = format!(
            "INSERT INTO payers (id, email, fields, created_at, updated_at) VALUES {}",
            (0..chunk.len())
                .map(|r| format!("(${}, ${}, '{{}}', ${}, ${})", r * 3 + 1, r * 3 + 2, r * 3 + 3, r * 3 + 3))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut query = sqlx::query(&sql);
        for i in &ids {
            query = query.bind(format!("pay_bench{i}")).bind(format!("donor{i}@example.org")).bind(&at);
        }
        query.execute(&mut *tx).await?;
        let sql = format!(
            "INSERT INTO mandates (id, account_id, payer_id, status, vipps_status, idempotency_key, agreement_id, product_name, \
             merchant_agreement_url, redirect_url, price_ore, interval_unit, interval_count, checked_at, created_at, updated_at) VALUES {}",
            (0..chunk.len())
                .map(|r| {
                    let b = r * 5;
                    format!("(${}, ${}, ${}, 'Active', 'ACTIVE', ${}, ${}, 'Monthly gift', 'https://example.org/agreements', \
                             'https://example.org/return', 10000, 'MONTH', 1, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 1, b + 4, b + 5, b + 5, b + 5)
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut query = sqlx::query(&sql);
        for (i, agreement) in ids.iter().zip(chunk) {
            query = query
                .bind(format!("mdt_bench{i}"))
                .bind(&account.id)
                .bind(format!("pay_bench{i}"))
                .bind(agreement)
                .bind(&at);
        }
        query.execute(&mut *tx).await?;
        let sql = recurring_insert(chunk.len());
        let mut query = sqlx::query(&sql);
        for i in &ids {
            query = query
                .bind(format!("rp_bench{i}"))
                .bind(format!("mdt_bench{i}"))
                .bind(&account.id)
                .bind(format!("pay_bench{i}"))
                .bind(start.to_string())
                .bind(&at);
        }
        query.execute(&mut *tx).await?;
        tx.commit().await?;
    }
    if backend == "PostgreSQL" {
        // Tables filled in bulk: refresh the planner's statistics, as autovacuum does for tables that grow
        // gradually in real use.
        sqlx::query("ANALYZE").execute(state.store.pool_for_tests()).await?;
    }
    let prepared_payhub = started.elapsed();
    println!(
        "prepared {n} active agreements: at Vipps in {:.1} s, in payhub ({backend}) in {:.1} s",
        prepared_vipps.as_secs_f64(),
        prepared_payhub.as_secs_f64()
    );

    // 3. The beats, timed.
    let started = Instant::now();
    let generated = state.payments.generate_installments().await?;
    let generate = started.elapsed();
    println!(
        "GenerateInstallments: {} installments in {:.2} s ({:.0}/s)",
        generated.changed,
        generate.as_secs_f64(),
        generated.changed as f64 / generate.as_secs_f64()
    );
    let rss_before = common::memory_mib("VmRSS:");
    common::reset_peak();
    let started = Instant::now();
    let collected = state.payments.collect_recurring().await?;
    let collect = started.elapsed();
    let peak = common::memory_mib("VmHWM:");
    println!(
        "CollectRecurring: {} charges created in {:.2} s = {:.0} charges/s (batch endpoint); memory {:.0} MiB before, peak {:.0} MiB during",
        collected.changed,
        collect.as_secs_f64(),
        collected.changed as f64 / collect.as_secs_f64(),
        rss_before,
        peak
    );

    // 4. Vipps charges them on the due date; payhub's poll brings them to Collected.
    let advanced = http
        .post(format!("{sim_url}/_sim/clock/advance"))
        .json(&serde_json::json!({"seconds": 3 * 86_400}))
        .send()
        .await?;
    assert!(advanced.status().is_success());
    sync_clock().await?;
    let started = Instant::now();
    loop {
        let counts = state.payments.sync_recurring(5000).await?;
        if counts.looked_at == 0 {
            break;
        }
    }
    let to_collected = started.elapsed();
    let mut conn = state.store.pool_for_tests().acquire().await?;
    let done: i64 = sqlx::query("SELECT COUNT(*) FROM installments WHERE status = 'Collected'")
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    println!(
        "to Collected: {done} of {n} installments in {:.2} s ({:.0}/s) by the polling beat",
        to_collected.as_secs_f64(),
        done as f64 / to_collected.as_secs_f64()
    );
    Ok(())
}

/// The recurring_payments insert for `rows` rows of 6 values: id, mandate, account, payer, start date (also the
/// next collection date) and the timestamp (created and updated).
fn recurring_insert(rows: usize) -> String {
    format!(
        "INSERT INTO recurring_payments (id, mandate_id, account_id, payer_id, amount_ore, frequency, start_date, status, \
         next_period, next_collection_date, bank_statement_description, created_at, updated_at) VALUES {}",
        (0..rows)
            .map(|r| {
                let b = r * 6;
                format!(
                    "(${}, ${}, ${}, ${}, 10000, 'Monthly', ${}, 'Active', 0, ${}, 'Monthly gift', ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 5,
                    b + 6,
                    b + 6
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    )
}
