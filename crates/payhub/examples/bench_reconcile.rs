//! Benchmark: a settlement ledger of N captures against N collected installments. The simulator (a child
//! process, so this process's memory is payhub's alone) books N captures on one ledger date; payhub holds N
//! Collected installments with their Payments; then one reconciliation run fetches the funds and fees of that
//! date over HTTP (2N + 3 rows, 1,000 a page), stores every row with its Message and Inbound Report, checks the
//! date, and matches every capture and fee. Prints the time spent fetching (the pages on the wire), parsing
//! (decoding them into rows), writing pages, and checking + matching, rows per second, and the peak memory
//! (`VmHWM`).
//!
//! ```sh
//! cargo run --release -p payhub --example bench_reconcile -- --rows 100000                 # SQLite
//! PAYHUB_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo run --release -p payhub --example bench_reconcile -- --rows 100000               # PostgreSQL
//! ```
//! `--rows N` (default 1,000,000).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

/// The allocator the `payhub` binary uses (see its `main.rs`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::Arc;
use std::time::Instant;

use payhub::app::Application;
use payhub::auth::Actor;
use payhub::config::Config;
use payhub::domain::account::AccountInput;
use payhub::secrets::Secret;
use payhub::store::payouts::RunTrigger;

mod common;

const MSN: &str = "212121";
const CLIENT_ID: &str = "bench-client";
const CLIENT_SECRET: &str = "bench-secret";
const SUBSCRIPTION_KEY: &str = "bench-subscription";

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
    let args: Vec<String> = std::env::args().collect();
    let n = args
        .iter()
        .position(|a| a == "--rows")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1_000_000);
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
    let booked: serde_json::Value = http
        .post(format!("{sim_url}/_sim/report/bulk"))
        .json(&serde_json::json!({"count": n, "amountOre": 10_000}))
        .send()
        .await?
        .json()
        .await?;
    let date = booked["date"].as_str().expect("date").to_owned();
    let day = date.replace('-', "");
    let day = &day[2..];

    let data_dir = tempfile::tempdir()?;
    let database_url = common::database_url(data_dir.path()).await?;
    let backend = if database_url.starts_with("sqlite") { "SQLite" } else { "PostgreSQL" };
    let mut env = HashMap::new();
    env.insert("PAYHUB_DATA_DIR".to_owned(), data_dir.path().display().to_string());
    env.insert("PAYHUB_DATABASE_URL".to_owned(), database_url);
    env.insert("PAYHUB_MASTER_KEY".to_owned(), "ab".repeat(32));
    let state = Application::build_state(Config::from_sources(None, &env)?, Arc::new(chrono::Utc::now)).await?;
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
                reconciliation_enabled: Some(true),
                initial_ledger_date: Some(date.clone()),
                ..AccountInput::default()
            },
            &Actor::cli(),
        )
        .await?;

    // N Collected installments of 100 kr, each with its capture Payment under the pspReference the ledger shows.
    let started = Instant::now();
    let at = payhub::store::timestamp(chrono::Utc::now());
    let pool = state.store.pool_for_tests();
    sqlx::query("INSERT INTO payers (id, email, fields, created_at, updated_at) VALUES ('pay_bench', 'bench@example.org', '{}', $1, $1)")
        .bind(&at)
        .execute(pool)
        .await?;
    const CHUNK: usize = 500;
    for c in 0..n.div_ceil(CHUNK) {
        let ids: Vec<usize> = (c * CHUNK..((c + 1) * CHUNK).min(n)).collect();
        let mut tx = pool.begin().await?;
        let sql = format!(
            "INSERT INTO installments (id, payer_id, account_id, amount_ore, amount_open_ore, due_date, status, \
             payment_reference, created_at, updated_at) VALUES {}",
            (0..ids.len())
                .map(|r| format!(
                    "(${}, 'pay_bench', ${}, 10000, 0, ${}, 'Collected', ${}, ${}, ${})",
                    r * 5 + 1,
                    r * 5 + 2,
                    r * 5 + 3,
                    r * 5 + 4,
                    r * 5 + 5,
                    r * 5 + 5
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut query = sqlx::query(&sql);
        for i in &ids {
            query =
                query.bind(format!("ins_bench{i}")).bind(&account.id).bind(&date).bind(format!("bulk-{i}")).bind(&at);
        }
        query.execute(&mut *tx).await?;
        let sql = format!(
            "INSERT INTO payments (id, installment_id, amount_ore, collection_date, psp_reference, kind, created_at) VALUES {}",
            (0..ids.len())
                .map(|r| format!("(${}, ${}, 10000, ${}, ${}, 'capture', ${})", r * 5 + 1, r * 5 + 2, r * 5 + 3, r * 5 + 4, r * 5 + 5))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut query = sqlx::query(&sql);
        for i in &ids {
            query = query
                .bind(format!("pmt_bench{i}"))
                .bind(format!("ins_bench{i}"))
                .bind(&date)
                .bind(format!("8{day}{i:08}"))
                .bind(&at);
        }
        query.execute(&mut *tx).await?;
        tx.commit().await?;
    }
    if backend == "PostgreSQL" {
        sqlx::query("ANALYZE").execute(pool).await?;
    }
    println!(
        "prepared {n} captures at Vipps and {n} collected installments in payhub ({backend}) in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    common::reset_peak();
    let rss_before = common::memory_mib("VmRSS");
    let cpu_before = common::cpu_used();
    let started = Instant::now();
    let (run, phases) = state.reconciler.run_account_timed(&account, RunTrigger::Command, Some("bench")).await?;
    let total = started.elapsed();
    let cpu = common::cpu_used() - cpu_before;
    assert_eq!(run.outcome, "succeeded", "{run:?}");
    let rows = run.counts.rows_new;
    println!(
        "{rows} ledger rows ({} pages) imported and matched in {:.1} s ({:.0} rows/s; CPU {:.1} s): fetch {:.1} s, \
         parse {:.1} s, write {:.1} s, check + match {:.1} s; {} booked, {} queued, {} payouts, {} unbalanced dates",
        run.counts.pages,
        total.as_secs_f64(),
        rows as f64 / total.as_secs_f64(),
        cpu.as_secs_f64(),
        phases.fetch.as_secs_f64(),
        phases.parse.as_secs_f64(),
        phases.write.as_secs_f64(),
        phases.matching.as_secs_f64(),
        run.counts.rows_booked,
        run.counts.rows_queued,
        run.payouts,
        run.counts.dates_unbalanced,
    );
    println!(
        "memory: VmHWM {:.0} MiB during the run (VmRSS {:.0} MiB before it)",
        common::memory_mib("VmHWM"),
        rss_before
    );
    let paid: i64 = sqlx::Row::try_get(
        &sqlx::query("SELECT COUNT(*) FROM installments WHERE status = 'Paid'").fetch_one(pool).await?,
        0,
    )?;
    assert_eq!(paid as usize, n, "every installment Paid");
    state.store.close().await;
    Ok(())
}
