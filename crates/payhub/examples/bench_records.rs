//! Benchmark: the finance records lists at scale. Fills the database with N installments (default 1,000,000)
//! for 10,000 payers over two years, signs in as a finance user over real HTTP, and times `GET /installments`:
//! the first page and filtered pages (status, amount range, account and status, due-date ranges of a week and of a
//! quarter, a payer's name, a phone, a reference, a deep page by cursor), 40 requests each, p50/p99. Then downloads the whole list as CSV
//! (`/installments.csv`) and prints rows per second and this process's peak memory before and during the export
//! (the server runs in this process), to show the export streams.
//!
//! ```sh
//! cargo run --release -p payhub --example bench_records                    # SQLite, N = 1000000
//! BENCH_INSTALLMENTS=100000 cargo run --release -p payhub --example bench_records
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

/// The allocator the `payhub` binary uses (see its `main.rs`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate, Utc};
use payhub::app::Application;
use payhub::auth::{self, Actor};
use payhub::config::Config;
use payhub::domain::role::Role;

const STATUSES: [&str; 6] = ["Collected", "Collected", "Collected", "Pending", "Failed", "Refunded"];

async fn fill(pool: &sqlx::AnyPool, account: &str, n: u64) -> anyhow::Result<()> {
    let payers = 10_000u64;
    let now = Utc::now();
    let mut tx = pool.begin().await?;
    for p in 0..payers {
        sqlx::query("INSERT INTO payers (id, first_name, last_name, email, phone, fields, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, '{}', $6, $6)")
            .bind(format!("pay_bench{p:06}"))
            .bind(format!("Giver{p}"))
            .bind(format!("Nordmann{p}"))
            .bind(format!("giver{p}@example.org"))
            .bind(format!("479{p:07}"))
            .bind(now.to_rfc3339())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    let start = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
    let rows_per_statement = 500u64;
    let mut done = 0u64;
    while done < n {
        let mut tx = pool.begin().await?;
        for _ in 0..20 {
            let batch = rows_per_statement.min(n - done);
            if batch == 0 {
                break;
            }
            let cells: Vec<String> = (0..batch)
                .map(|r| {
                    let b = r * 9;
                    format!(
                        "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, NULL, NULL, NULL, NULL, ${})",
                        b + 1,
                        b + 2,
                        b + 3,
                        b + 4,
                        b + 5,
                        b + 6,
                        b + 7,
                        b + 8,
                        b + 9,
                        b + 9
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO installments (id, payer_id, account_id, amount_ore, amount_open_ore, due_date, status, payment_reference, created_at, intent_id, payment_profile_id, bank_statement_description, product, updated_at) VALUES {}",
                cells.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for k in done..done + batch {
                let day = start + Days::new(k * 730 / n);
                let created = format!("{day}T{:02}:{:02}:{:02}.{:06}Z", k % 24, k % 60, (k / 60) % 60, k % 1_000_000);
                let status = STATUSES[(k % 6) as usize];
                let amount = 5_000 + (k % 200) as i64 * 500;
                query = query
                    .bind(format!("ins_bench{k:09}"))
                    .bind(format!("pay_bench{:06}", k % payers))
                    .bind(account.to_owned())
                    .bind(amount)
                    .bind(if status == "Pending" { amount } else { 0 })
                    .bind(day.to_string())
                    .bind(status)
                    .bind(format!("pi-bench{k:09}"))
                    .bind(created);
            }
            query.execute(&mut *tx).await?;
            done += batch;
        }
        tx.commit().await?;
    }
    Ok(())
}

fn percentile(times: &mut [Duration], p: f64) -> f64 {
    times.sort();
    let index = ((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1;
    times[index].as_secs_f64() * 1000.0
}

const HELP: &str = "bench_records: fills N installments (SQLite in a temporary folder, or PAYHUB_BENCH_DATABASE_URL's
PostgreSQL when set), then times GET /installments as a finance user over HTTP (first page and filtered pages,
40 requests each, p50/p99 in ms) and the whole /installments.csv export (rows/s, peak memory).

Usage: cargo run --release -p payhub --example bench_records
Settings (environment):
  BENCH_INSTALLMENTS   how many installments to write (default 1000000)
Options:
  -h, --help           this text";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().skip(1).any(|a| a == "-h" || a == "--help") {
        println!("{HELP}");
        return Ok(());
    }
    if let Some(unknown) = std::env::args().nth(1) {
        anyhow::bail!("unknown argument {unknown}; see --help");
    }
    let n = common::env_or("BENCH_INSTALLMENTS", 1_000_000);
    let data_dir = tempfile::tempdir()?;
    let database_url = common::database_url(data_dir.path()).await?;
    let backend = if database_url.starts_with("sqlite") { "SQLite" } else { "PostgreSQL" };
    let mut env = HashMap::new();
    env.insert("PAYHUB_LISTEN".to_owned(), "127.0.0.1:0".to_owned());
    env.insert("PAYHUB_DATA_DIR".to_owned(), data_dir.path().display().to_string());
    env.insert("PAYHUB_DATABASE_URL".to_owned(), database_url);
    env.insert("PAYHUB_MASTER_KEY".to_owned(), "ab".repeat(32));
    let app = Application::build(Config::from_sources(None, &env)?).await?;
    let base = format!("http://{}", app.address());
    let state = app.state().clone();
    let account = state
        .accounts
        .create(
            &payhub::domain::account::AccountInput {
                name: Some("Bench".into()),
                merchant_serial_number: Some("654321".into()),
                client_key: Some("bench-client".into()),
                client_secret: Some(payhub::secrets::Secret::new("bench-secret")),
                subscription_key: Some(payhub::secrets::Secret::new("bench-subscription")),
                is_test: Some(true),
                product_name: Some("Gift".into()),
                merchant_agreement_url: Some("https://example.org/agreements".into()),
                ..Default::default()
            },
            &Actor::cli(),
        )
        .await?;
    let started = Instant::now();
    fill(state.store.pool_for_tests(), &account.id, n).await?;
    sqlx::query(if backend == "SQLite" { "ANALYZE" } else { "ANALYZE installments" })
        .execute(state.store.pool_for_tests())
        .await?;
    println!("{backend}: {n} installments written in {:.1} s", started.elapsed().as_secs_f64());
    tokio::spawn(app.run_until(std::future::pending()));

    auth::create_user(&state.store, "fin@example.org", "a long password 123", Role::Finance, &Actor::cli()).await?;
    let http = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build()?;
    let login = http.get(format!("{base}/login")).send().await?.text().await?;
    let marker = "name=\"form_token\" value=\"";
    let token = login.split(marker).nth(1).and_then(|r| r.split('"').next()).unwrap_or_default().to_owned();
    let signed_in = http
        .post(format!("{base}/login"))
        .form(&[
            ("email", "fin@example.org"),
            ("password", "a long password 123"),
            ("form_token", &token),
            ("next", "/"),
        ])
        .send()
        .await?;
    assert_eq!(signed_in.status(), 303, "signed in");

    let deep = format!(
        "after={}",
        url::form_urlencoded::byte_serialize(format!("2025-07-01T00:00:00.000000Z~ins_bench{:09}", n / 4).as_bytes())
            .collect::<String>()
    );
    let views = [
        ("first page", String::new()),
        ("status=Failed", "status=Failed".into()),
        ("amount 100-150 NOK", "min=100&max=150".into()),
        ("account + status=Refunded", format!("account={}&status=Refunded", account.id)),
        ("due in one week", "date=due&from=2025-06-01&to=2025-06-07".into()),
        ("due in one quarter", "date=due&from=2025-04-01&to=2025-06-30".into()),
        ("search: a payer's name", "q=Giver4242+Nordmann4242".into()),
        ("search: a phone", "q=%2B47+900+04+242".into()),
        ("search: a reference", format!("q=pi-bench{:09}", n / 2)),
        ("a deep page by cursor", deep),
    ];
    println!(
        "{:<28} {:>8} {:>8}   (ms, 40 sequential requests each, 50 lines a page)",
        "GET /installments", "p50", "p99"
    );
    for (label, query) in &views {
        let mut times = Vec::new();
        for _ in 0..40 {
            let t = Instant::now();
            let response = http.get(format!("{base}/installments?{query}")).send().await?;
            assert_eq!(response.status(), 200, "{label}");
            let _ = response.text().await?;
            times.push(t.elapsed());
        }
        println!("{label:<28} {:>8.1} {:>8.1}", percentile(&mut times, 0.5), percentile(&mut times, 0.99));
    }

    let before = common::memory_mib("VmHWM");
    common::reset_peak();
    let t = Instant::now();
    let mut response = http.get(format!("{base}/installments.csv")).send().await?;
    let (mut lines, mut bytes) = (0u64, 0u64);
    while let Some(chunk) = response.chunk().await? {
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        bytes += chunk.len() as u64;
    }
    let seconds = t.elapsed().as_secs_f64();
    let rows = lines.saturating_sub(1);
    println!(
        "GET /installments.csv: {rows} rows ({:.0} MiB) in {seconds:.1} s = {:.0} rows/s; peak memory {before:.0} MiB before, {:.0} MiB during the export",
        bytes as f64 / 1_048_576.0,
        rows as f64 / seconds,
        common::memory_mib("VmHWM")
    );
    assert_eq!(rows, n, "the export holds every installment");
    Ok(())
}
