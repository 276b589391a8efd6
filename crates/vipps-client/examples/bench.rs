//! Throughput of authenticated `GET payment` calls through the client versus a bare reqwest loop
//! sending the same requests to the same in-process simulator.
//!
//! ```text
//! cargo run --release -p vipps-client --example bench -- [CALLS] [CONCURRENCY]
//! ```
//!
//! Prints both rates and their ratio (client / bare).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use vipps_client::epayment::{CreatePaymentRequest, Reference};
use vipps_client::{Amount, Client, ClientConfig, Credentials, Environment, IdempotencyKey, Msn, Secret, SystemInfo};
use vipps_sim::{SimConfig, Simulator};

const ROUNDS: usize = 20;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let calls: usize = args.next().map_or(Ok(4000), |a| a.parse())?;
    let concurrency: usize = args.next().map_or(Ok(1), |a| a.parse())?;

    let sim = Simulator::start(SimConfig::default(), "127.0.0.1:0".parse()?).await?;
    let merchant = sim.merchants()[0].clone();
    let system = SystemInfo {
        name: "payhub".into(),
        version: "0.1.0".into(),
        plugin_name: "bench".into(),
        plugin_version: "0.1.0".into(),
    };
    let credentials = Credentials {
        client_id: merchant.client_id.clone(),
        client_secret: Secret::new(merchant.client_secret.clone()),
        subscription_key: Secret::new(merchant.subscription_key.clone()),
        msn: Msn::parse(&merchant.msn)?,
    };
    let config = ClientConfig::new(Environment::Custom(sim.base_url().parse()?), credentials, system.clone());
    let client = Client::new(config)?;

    let reference = Reference::parse("bench-payment-0001")?;
    let request = CreatePaymentRequest::web_redirect(Amount::nok(1000), reference.clone(), "https://example.com/r");
    client.epayment().create(&request, &IdempotencyKey::random()).await?;

    // The bare loop: one token fetched by hand, then the same GET with the same headers.
    let bare = reqwest::Client::new();
    let token: serde_json::Value = bare
        .post(format!("{}/accesstoken/get", sim.base_url()))
        .header("client_id", &merchant.client_id)
        .header("client_secret", &merchant.client_secret)
        .header("Ocp-Apim-Subscription-Key", &merchant.subscription_key)
        .header("Merchant-Serial-Number", &merchant.msn)
        .send()
        .await?
        .json()
        .await?;
    let bearer = format!("Bearer {}", token["access_token"].as_str().expect("access_token"));
    let url = format!("{}/epayment/v1/payments/{reference}", sim.base_url());
    let bare = Arc::new(BareLoop { http: bare, url, bearer, merchant, system });

    // Warm up both paths (connections, token cache, allocator).
    run_client(&client, &reference, 200, concurrency).await;
    run_bare(&bare, 200, concurrency).await;

    // Many short rounds, alternating which side goes first, so that load from other processes
    // on a shared machine hits both sides alike; the medians of the per-round rates are compared.
    let per_round = calls.div_ceil(ROUNDS).max(1);
    let (mut client_rates, mut bare_rates) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let rate = |d: Duration| per_round as f64 / d.as_secs_f64();
        if round % 2 == 0 {
            bare_rates.push(rate(run_bare(&bare, per_round, concurrency).await));
            client_rates.push(rate(run_client(&client, &reference, per_round, concurrency).await));
        } else {
            client_rates.push(rate(run_client(&client, &reference, per_round, concurrency).await));
            bare_rates.push(rate(run_bare(&bare, per_round, concurrency).await));
        }
    }
    let client_rate = median(&mut client_rates);
    let bare_rate = median(&mut bare_rates);
    println!("calls per side: {}, concurrency: {concurrency}, rounds: {ROUNDS}", per_round * ROUNDS);
    println!("bare reqwest loop: {bare_rate:>9.0} req/s (median of rounds)");
    println!("vipps-client:      {client_rate:>9.0} req/s (median of rounds)");
    println!("ratio client/bare: {:.3} (target >= 0.9)", client_rate / bare_rate);
    sim.shutdown().await;
    Ok(())
}

struct BareLoop {
    http: reqwest::Client,
    url: String,
    bearer: String,
    merchant: vipps_sim::Merchant,
    system: SystemInfo,
}

impl BareLoop {
    async fn get(&self) {
        let response = self
            .http
            .get(&self.url)
            .header("Authorization", &self.bearer)
            .header("Ocp-Apim-Subscription-Key", &self.merchant.subscription_key)
            .header("Merchant-Serial-Number", &self.merchant.msn)
            .header("Vipps-System-Name", &self.system.name)
            .header("Vipps-System-Version", &self.system.version)
            .header("Vipps-System-Plugin-Name", &self.system.plugin_name)
            .header("Vipps-System-Plugin-Version", &self.system.plugin_version)
            .send()
            .await
            .expect("bare request");
        assert!(response.status().is_success());
        let body = response.bytes().await.expect("bare body");
        assert!(!body.is_empty());
    }
}

async fn run_client(client: &Client, reference: &Reference, calls: usize, concurrency: usize) -> Duration {
    let started = Instant::now();
    let tasks: Vec<_> = split(calls, concurrency)
        .map(|n| {
            let client = client.clone();
            let reference = reference.clone();
            tokio::spawn(async move {
                for _ in 0..n {
                    let payment = client.epayment().get(&reference).await.expect("client get");
                    assert_eq!(payment.reference, reference.as_str());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("client task");
    }
    started.elapsed()
}

async fn run_bare(bare: &Arc<BareLoop>, calls: usize, concurrency: usize) -> Duration {
    let started = Instant::now();
    let tasks: Vec<_> = split(calls, concurrency)
        .map(|n| {
            let bare = bare.clone();
            tokio::spawn(async move {
                for _ in 0..n {
                    bare.get().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("bare task");
    }
    started.elapsed()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn split(calls: usize, workers: usize) -> impl Iterator<Item = usize> {
    let workers = workers.max(1);
    (0..workers).map(move |i| calls / workers + usize::from(i < calls % workers))
}
