//! Benchmark: a Giving Page under campaign traffic. Concurrent clients `GET /give/{slug}` (the page as a link in
//! a newsletter or a TV appeal opens it: no cookie yet, so every answer also makes a CSRF token and sets its
//! cookie), then submit gifts (each a Message and an intent through the intake, a Vipps payment created at the
//! simulator, and a `303` to its landing page), then, for comparison in the same run, the same intents through
//! the Payment API. All on loopback in this one process.
//!
//! ```sh
//! cargo run --release -p payhub --example bench_pages                  # SQLite
//! PAYHUB_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo run --release -p payhub --example bench_pages                # PostgreSQL (a fresh database)
//! ```
//! Options (environment): `BENCH_SECONDS` (default 10), `BENCH_CONCURRENCY` (default 32).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

/// The allocator the `payhub` binary uses (see its `main.rs`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;

use payhub::app::Application;
use payhub::auth::{self, Actor};
use payhub::config::Config;
use payhub::domain::account::AccountInput;
use payhub::domain::role::Role;
use payhub::secrets::Secret;
use serde_json::json;

mod common;
use common::{cpu_used, drive, env_or, Outcome};

fn report(what: &str, unit: &str, seconds: u64, outcome: &Outcome, cpu: std::time::Duration) {
    println!("{what}: {:.0} {unit}/s over {seconds} s, {}", outcome.count() as f64 / seconds as f64, outcome.summary());
    println!(
        "  CPU (payhub, simulator and load generator together): {:.3} ms per request, {:.2} cores busy",
        cpu.as_secs_f64() * 1000.0 / outcome.count().max(1) as f64,
        cpu.as_secs_f64() / seconds as f64,
    );
}

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
    // Every client here comes from 127.0.0.1: the per-address limit would measure itself.
    env.insert("PAYHUB_GIVE_SUBMISSIONS_PER_MINUTE".to_owned(), "1000000".to_owned());
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
    state
        .pages
        .create(
            &json!({"slug": "spring", "title": {"nb": "Vårinnsamling", "en": "Spring appeal"},
                "intro": {"nb": "Hver gave gir en familie rent vann.", "en": "Every gift gives a family clean water."},
                "amounts": [100, 250, 500], "frequencies": ["OneTime", "Monthly"], "account": "Bench"}),
            &actor,
        )
        .await?;
    let (_, key) = auth::create_api_key(&state.store, "bench", Role::Integrator, &actor).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;

    // 1. The page, as campaign traffic first meets it.
    let page = {
        let (http, url) = (http.clone(), format!("{base}/give/spring"));
        move |_: usize| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                match http.get(&url).send().await {
                    Ok(r) if r.status().is_success() && r.headers().contains_key("set-cookie") => {
                        r.bytes().await.is_ok_and(|b| b.len() > 1000)
                    }
                    _ => false,
                }
            }
        }
    };
    drive(concurrency, 1, page.clone()).await;
    let cpu_before = cpu_used();
    let pages = drive(concurrency, seconds, page).await;
    report(&format!("GET /give/spring ({backend})"), "pages", seconds, &pages, cpu_used().saturating_sub(cpu_before));

    // 2. Gifts submitted through the page: the form's token matches its cookie, as a browser sends them.
    let gift = {
        let (http, url) = (http.clone(), format!("{base}/give/spring"));
        move |n: usize| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let token = format!("gv_bench{n:038}");
                let email = format!("payer{}@example.org", n % 5000);
                let form = [
                    ("csrf_token", token.as_str()),
                    ("frequency", "OneTime"),
                    ("amount", "36"),
                    ("firstName", "Bench"),
                    ("lastName", "Mark"),
                    ("email", email.as_str()),
                    ("mobileNumber", "912 34 567"),
                ];
                let sent = http.post(&url).header("cookie", format!("payhub_give={token}")).form(&form).send().await;
                matches!(sent, Ok(r) if r.status() == reqwest::StatusCode::SEE_OTHER)
            }
        }
    };
    drive(concurrency, 1, gift.clone()).await;
    let cpu_before = cpu_used();
    let gifts = drive(concurrency, seconds, gift).await;
    report(&format!("POST /give/spring ({backend})"), "gifts", seconds, &gifts, cpu_used().saturating_sub(cpu_before));

    // 3. The intake's own rate in the same run: the same intents through the Payment API.
    let intent = {
        let (http, url, key) = (http.clone(), format!("{base}/v2/PaymentIntent"), key.clone());
        move |n: usize| {
            let (http, url, key) = (http.clone(), url.clone(), key.clone());
            async move {
                let body = json!({"SuccessURL": "https://example.org/thanks", "FailureURL": "https://example.org/sorry",
                    "Payer": {"Contact": {"SalesforceFields": {"FirstName": "Bench", "LastName": "Mark", "Email": format!("payer{}@example.org", n % 5000)}}},
                    "OneTime": {"Amount": "36"},
                    "PaymentMethod": {"Name": "Vipps", "Processor": "PayHub-Vipps", "Parameters": {"mobileNumber": "+47 912 34 567"}}});
                matches!(http.post(&url).bearer_auth(&key).json(&body).send().await, Ok(r) if r.status().is_success())
            }
        }
    };
    let cpu_before = cpu_used();
    let intents = drive(concurrency, seconds, intent).await;
    report(
        &format!("POST /v2/PaymentIntent ({backend})"),
        "intents",
        seconds,
        &intents,
        cpu_used().saturating_sub(cpu_before),
    );
    Ok(())
}
