//! Throughput benchmark of the simulator (issue 3, "Speed"): ePayment creates per second from
//! concurrent keep-alive clients, and Report API funds-feed entries served per second.
//!
//! Server and clients run in this one process on 127.0.0.1, sharing the machine's cores, as in
//! payhub's own benchmarks. Run in release: `cargo run --release -p vipps-sim --bin sim-bench`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use serde::Deserialize;
use serde_json::{json, Value};
use vipps_sim::{Merchant, SimConfig, Simulator};

/// Command line.
#[derive(Parser)]
#[command(about = "Measures vipps-sim throughput (ePayment creates/s, Report feed entries/s)")]
struct Args {
    /// Concurrent client connections for the create phase.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Concurrent feed readers.
    #[arg(long, default_value_t = 4)]
    readers: usize,
    /// Seconds per measured run.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Measured runs per phase (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Captures booked before the feed phase (each becomes a funds row).
    #[arg(long, default_value_t = 20_000)]
    captures: usize,
    /// Client for the create phase: `hyper` (a bare HTTP/1.1 connection per worker, so that most
    /// CPU goes to the server) or `reqwest` (what payhub uses).
    #[arg(long, default_value = "hyper")]
    client: String,
    /// Run only one phase: `creates` or `feed`.
    #[arg(long)]
    only: Option<String>,
}

/// Resident memory of this process in bytes, from `/proc/self/status` (Linux; 0 elsewhere).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    kb * 1024
}

/// CPU time (user + system) this process has used so far, from `/proc/self/stat` (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the `(comm)`: state is field 3, utime 14 and stime 15 (1-based).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return 0.0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Target of the issue for both figures.
const TARGET: f64 = 10_000.0;

/// An authenticated client for one merchant.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
    merchant: Merchant,
    token: String,
}

impl Client {
    fn post(&self, path: &str, key: &str, body: &Value) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("Ocp-Apim-Subscription-Key", &self.merchant.subscription_key)
            .header("Merchant-Serial-Number", &self.merchant.msn)
            .header("Idempotency-Key", key)
            .json(body)
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("Ocp-Apim-Subscription-Key", &self.merchant.subscription_key)
    }
}

async fn token(http: &reqwest::Client, base: &str, m: &Merchant) -> anyhow::Result<String> {
    let v: Value = http
        .post(format!("{base}/accesstoken/get"))
        .header("client_id", &m.client_id)
        .header("client_secret", &m.client_secret)
        .header("Ocp-Apim-Subscription-Key", &m.subscription_key)
        .send()
        .await?
        .json()
        .await?;
    v["access_token"].as_str().map(str::to_owned).context("no access_token in the token response")
}

fn payment(reference: &str, value: i64) -> Value {
    json!({
        "amount": {"currency": "NOK", "value": value},
        "paymentMethod": {"type": "WALLET"},
        "customer": {"phoneNumber": "4791234567"},
        "reference": reference,
        "returnUrl": "https://example.com/return",
        "userFlow": "WEB_REDIRECT",
        "paymentDescription": "Benchmark"
    })
}

/// Runs `workers` copies of `work` until `seconds` pass; returns the count they report per second.
async fn measure<F, Fut>(workers: usize, seconds: f64, work: F) -> anyhow::Result<(f64, f64, u64)>
where
    F: Fn(usize, Arc<AtomicBool>, Arc<AtomicU64>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let cpu_start = cpu_seconds();
    let tasks: Vec<_> = (0..workers).map(|w| tokio::spawn(work(w, stop.clone(), count.clone()))).collect();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let counted = count.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    for t in tasks {
        t.await??;
    }
    let per_op_us = if counted > 0 { cpu * 1e6 / counted as f64 } else { 0.0 };
    Ok((counted as f64 / elapsed, per_op_us, counted))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Prints the median rate of `runs` (rate, CPU µs per item) and the rate the CPU cost allows on
/// all cores of this machine when nothing else runs (the machine is shared while measuring).
fn report(name: &str, runs: &[(f64, f64)], cores: usize) {
    let list: Vec<String> = runs.iter().map(|r| format!("{:.0}", r.0)).collect();
    let m = median(runs.iter().map(|r| r.0).collect());
    let cpu = median(runs.iter().map(|r| r.1).collect());
    let capacity = if cpu > 0.0 { cores as f64 * 1e6 / cpu } else { 0.0 };
    let verdict = if m >= TARGET { "ok" } else { "BELOW TARGET" };
    println!("{name}: median {m:.0}/s (runs: {}) — target ≥ {TARGET:.0}/s: {verdict}", list.join(", "));
    println!(
        "  CPU per item (server + client, median): {cpu:.1} µs → ≈ {capacity:.0}/s on {cores} otherwise idle cores"
    );
}

/// One create per loop iteration, each with a fresh reference and idempotency key.
async fn creates(
    c: Client,
    worker: usize,
    run: usize,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let reference = format!("bench-{run}-{worker}-{i:010}");
        let r = c.post("/epayment/v1/payments", &reference, &payment(&reference, 1_000)).send().await?;
        let status = r.status();
        let _ = r.bytes().await?;
        if status != 201 {
            bail!("create answered {status}");
        }
        count.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Like [`creates`], over one bare hyper HTTP/1.1 keep-alive connection per worker.
async fn creates_hyper(
    c: Client,
    worker: usize,
    run: usize,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    use http_body_util::{BodyExt, Full};
    let addr = c.base.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let auth = format!("Bearer {}", c.token);
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let reference = format!("bench-{run}-{worker}-{i:010}");
        let body = serde_json::to_vec(&payment(&reference, 1_000))?;
        let req = http::Request::post("/epayment/v1/payments")
            .header("host", &addr)
            .header("authorization", &auth)
            .header("ocp-apim-subscription-key", &c.merchant.subscription_key)
            .header("merchant-serial-number", &c.merchant.msn)
            .header("idempotency-key", &reference)
            .header("content-type", "application/json")
            .body(Full::new(bytes::Bytes::from(body)))?;
        sender.ready().await?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let _ = resp.into_body().collect().await?;
        if status != 201 {
            bail!("create answered {status}");
        }
        count.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

#[derive(Deserialize)]
struct FeedPage {
    items: Vec<serde::de::IgnoredAny>,
    cursor: String,
    #[serde(rename = "tryLater")]
    try_later: bool,
}

/// Reads the whole funds feed from the start, again and again, counting the entries received.
async fn feed_reader(c: Client, path: String, stop: Arc<AtomicBool>, count: Arc<AtomicU64>) -> anyhow::Result<()> {
    let mut cursor: Option<String> = None;
    while !stop.load(Ordering::Relaxed) {
        let url = match &cursor {
            Some(cur) => format!("{path}?cursor={cur}"),
            None => path.clone(),
        };
        let r = c.get(&url).send().await?;
        if r.status() != 200 {
            bail!("feed answered {}", r.status());
        }
        let page: FeedPage = serde_json::from_slice(&r.bytes().await?)?;
        count.fetch_add(page.items.len() as u64, Ordering::Relaxed);
        cursor = if page.try_later { None } else { Some(page.cursor) };
    }
    Ok(())
}

/// Books `captures` captures (partial captures of several payments) for the feed phase.
async fn book_captures(c: &Client, captures: usize, connections: usize) -> anyhow::Result<()> {
    let per_payment = 50usize;
    let payments = captures.div_ceil(per_payment);
    let sim_base = c.base.clone();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections.min(payments.max(1)) {
        let (c, next, sim_base) = (c.clone(), next.clone(), sim_base.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let p = next.fetch_add(1, Ordering::Relaxed) as usize;
                if p >= payments {
                    return anyhow::Ok(());
                }
                let reference = format!("feed-{p:08}");
                let value = i64::try_from(per_payment * 1_000).unwrap_or(i64::MAX);
                let r = c.post("/epayment/v1/payments", &reference, &payment(&reference, value)).send().await?;
                if r.status() != 201 {
                    bail!("create answered {}", r.status());
                }
                let r = c.http.post(format!("{sim_base}/_sim/payments/{reference}/approve")).send().await?;
                if r.status() != 200 {
                    bail!("approve answered {}", r.status());
                }
                let n = per_payment.min(captures - p * per_payment);
                for k in 0..n {
                    let body = json!({"modificationAmount": {"currency": "NOK", "value": 1_000}});
                    let key = format!("{reference}-c{k}");
                    let r = c.post(&format!("/epayment/v1/payments/{reference}/capture"), &key, &body).send().await?;
                    if r.status() != 200 {
                        bail!("capture answered {}", r.status());
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = SimConfig { clock_start: None, ..SimConfig::default() };
    let sim = Simulator::start(config, "127.0.0.1:0".parse()?).await?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(args.connections.max(args.readers)).build()?;
    let base = sim.base_url();
    let merchant = sim.merchants()[0].clone();
    let token = token(&http, &base, &merchant).await?;
    let client = Client { http, base, merchant: merchant.clone(), token };
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "vipps-sim benchmark: server and clients in one process on 127.0.0.1, {cores} cores, {} runs of {} s",
        args.runs, args.seconds
    );

    let creates_on = args.only.as_deref() != Some("feed");
    let feed_on = args.only.as_deref() != Some("creates");
    let mut create_runs = Vec::new();
    let rss_before = rss_bytes();
    let mut created = 0u64;
    for run in (0..args.runs).filter(|_| creates_on) {
        let c = client.clone();
        let hyper = args.client != "reqwest";
        let rate = measure(args.connections, args.seconds, |w, stop, count| {
            let c = c.clone();
            async move {
                if hyper {
                    creates_hyper(c, w, run, stop, count).await
                } else {
                    creates(c, w, run, stop, count).await
                }
            }
        })
        .await?;
        created += rate.2;
        create_runs.push((rate.0, rate.1));
    }
    if creates_on {
        report(
            &format!("ePayment creates ({} connections, {} client)", args.connections, args.client),
            &create_runs,
            cores,
        );
        let n = created;
        let grown = rss_bytes().saturating_sub(rss_before);
        println!(
            "  memory: {n} payments held, resident set grew {:.1} MB (≈ {} bytes per payment incl. idempotency record)",
            grown as f64 / 1e6,
            grown.checked_div(n).unwrap_or(0)
        );
    }
    if !feed_on {
        sim.shutdown().await;
        return Ok(());
    }

    let started = Instant::now();
    book_captures(&client, args.captures, args.connections).await?;
    let setup = started.elapsed().as_secs_f64();
    println!(
        "booked {} captures in {setup:.1} s ({:.0} captures/s incl. create and approve)",
        args.captures,
        args.captures as f64 / setup
    );
    let ledgers: Value = client.get("/settlement/v1/ledgers").send().await?.json().await?;
    let ledger = ledgers["items"][0]["ledgerId"].as_str().context("no ledger")?.to_owned();
    let path = format!("/report/v2/ledgers/{ledger}/funds/feed");
    let mut feed_runs = Vec::new();
    for _ in 0..args.runs {
        let c = client.clone();
        let p = path.clone();
        let rate = measure(args.readers, args.seconds, |_, stop, count| feed_reader(c.clone(), p.clone(), stop, count))
            .await?;
        feed_runs.push((rate.0, rate.1));
    }
    report(&format!("Report funds feed entries ({} readers, pages of 1000)", args.readers), &feed_runs, cores);
    sim.shutdown().await;
    Ok(())
}
