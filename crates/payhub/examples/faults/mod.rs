//! The fault suite's run, shared by the example programs (`fault_crash`, `fault_vipps`, `fault_two`) and the
//! short versions CI runs (`tests/api/fault_suite.rs`).
//!
//! A run sets payhub up through its command line (a merchant account pointed at the simulator, an integrator
//! key), starts `payhub serve` as processes of their own following the simulator's clock, lets clients make,
//! approve, reject and refund one-time payments and make recurring payments whose agreements the payer
//! accepts, while the fault of the run happens: payhub killed with SIGKILL and started again (crash), a share of
//! Vipps' answers failing (Vipps faults), or two instances on one database racing each other. The simulator's
//! clock jumps three days now and then, so charges fall due and are collected during the run. Then the faults
//! stop, lost requests are repeated with their keys, the clock moves on (charges due, payments expired,
//! CREATING rows old enough to be polled) and the invariants ([`check`]) are checked until they hold or the
//! settle time runs out.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod check;
pub mod driver;
pub mod processes;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::json;

use driver::{Ledger, Shared, Tally};
use processes::Instance;

pub const MSN: &str = "765432";
pub const CLIENT_ID: &str = "fault-client";
pub const CLIENT_SECRET: &str = "fault-secret";
pub const SUBSCRIPTION_KEY: &str = "fault-subscription";

/// The simulator a run talks to: one merchant with the credentials above, its clock running.
pub fn simulator_config() -> vipps_sim::SimConfig {
    vipps_sim::SimConfig {
        merchants: vec![vipps_sim::Merchant {
            msn: MSN.into(),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            subscription_key: SUBSCRIPTION_KEY.into(),
        }],
        ..vipps_sim::SimConfig::default()
    }
}

/// The fault of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// payhub killed with SIGKILL this many times, at random moments, and started again.
    Crash { kills: usize },
    /// This percentage of Vipps' answers fail (500, 429, a timeout after Vipps acted, a dropped connection).
    Vipps { percent: u32 },
    /// Two instances on one database, the clients spread over both.
    TwoInstances,
}

/// How a run goes.
pub struct Settings {
    pub fault: Fault,
    /// The `payhub` binary.
    pub payhub_bin: PathBuf,
    /// The simulator (another process, or the test's own), `http://…` without a trailing slash.
    pub sim_url: String,
    pub database_url: String,
    pub data_dir: PathBuf,
    pub clients: usize,
    /// Milliseconds between kills, drawn from this range.
    pub between_kills_ms: (u64, u64),
    /// How long clients run in the modes without kills.
    pub drive_seconds: u64,
    /// Most seconds the polls get to settle after the faults stop.
    pub settle_seconds: u64,
    pub seed: u64,
}

/// What a run did and found.
pub struct Report {
    pub backend: &'static str,
    pub fault: Fault,
    pub driven: Duration,
    pub restarts: Vec<Duration>,
    pub tally: Tally,
    pub ledger: Ledger,
    pub repeated: (usize, usize),
    pub settled_in: Duration,
    pub findings: check::Findings,
}

impl Report {
    /// The figures, as the README quotes them.
    pub fn print(&self) {
        let t = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let tally = &self.tally;
        println!("fault: {:?} on {}; driven for {:.1} s", self.fault, self.backend, self.driven.as_secs_f64());
        if !self.restarts.is_empty() {
            let mut restarts = self.restarts.clone();
            restarts.sort();
            println!(
                "restarts: {} (ready again in median {:.0} ms, longest {:.0} ms)",
                restarts.len(),
                restarts[restarts.len() / 2].as_secs_f64() * 1000.0,
                restarts[restarts.len() - 1].as_secs_f64() * 1000.0
            );
        }
        println!(
            "requests: {} sent, {} answered 200, {} refused, {} lost (repeated with their keys after: {} answered, \
             {} never)",
            t(&tally.requests),
            t(&tally.answered),
            t(&tally.refused),
            t(&tally.lost),
            self.repeated.0,
            self.repeated.1
        );
        println!(
            "payer: {} approved, {} rejected, {} agreements accepted; {} refunds answered 200; {} intents, {} \
             recurring payments answered 200",
            t(&tally.approved),
            t(&tally.rejected),
            t(&tally.accepted),
            self.ledger.refunds.len(),
            self.ledger.intents.len(),
            self.ledger.recurring.len()
        );
        let f = &self.findings;
        println!(
            "checked: {} one-time payments ({} collected), {} charges ({} charged), {} active agreements; Vipps \
             captured {:.2} NOK and refunded {:.2} NOK",
            f.one_time,
            f.collected,
            f.charges,
            f.charged,
            f.mandates_active,
            f.captured_ore as f64 / 100.0,
            f.refunded_ore as f64 / 100.0
        );
        println!(
            "invariants: {} violations after {:.1} s of settling",
            f.violations.len(),
            self.settled_in.as_secs_f64()
        );
        for violation in f.violations.iter().take(40) {
            println!("  {violation}");
        }
    }
}

/// Moves the simulator's clock (and so payhub's) forward.
async fn advance(http: &reqwest::Client, sim_url: &str, seconds: i64) -> anyhow::Result<()> {
    http.post(format!("{sim_url}/_sim/clock/advance"))
        .json(&json!({"seconds": seconds}))
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

/// The simulator's fault rules for a run with `percent` % of Vipps calls failing, spread over the kinds.
async fn vipps_faults(http: &reqwest::Client, sim_url: &str, percent: u32) -> anyhow::Result<()> {
    let share = (percent / 4).max(1);
    let kinds = [
        json!({"kind": "500"}),
        json!({"kind": "429", "retryAfterSeconds": 1}),
        json!({"kind": "delay", "delayMs": 2500}),
        json!({"kind": "drop"}),
    ];
    for (i, kind) in kinds.into_iter().enumerate() {
        // The last kind takes what the division left, so the shares add up to `percent`.
        let share = if i == 3 { percent - 3 * share } else { share };
        let mut rule = kind;
        rule["pathPrefix"] = json!("/");
        rule["times"] = json!(u32::MAX);
        rule["percent"] = json!(share);
        http.post(format!("{sim_url}/_sim/faults")).json(&rule).send().await?.error_for_status()?;
    }
    Ok(())
}

/// One run: set-up, the fault while the clients drive, settling, the invariants.
pub async fn run(settings: &Settings) -> anyhow::Result<Report> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build()?;
    let backend = if settings.database_url.starts_with("sqlite") { "SQLite" } else { "PostgreSQL" };
    let instances_wanted = if settings.fault == Fault::TwoInstances { 2 } else { 1 };
    let ports: Vec<u16> = (0..instances_wanted).map(|_| processes::free_port()).collect::<Result<_, _>>()?;
    let env: Vec<(String, String)> = [
        ("PAYHUB_DATA_DIR", settings.data_dir.display().to_string()),
        ("PAYHUB_DATABASE_URL", settings.database_url.clone()),
        ("PAYHUB_MASTER_KEY", "cd".repeat(32)),
        ("PAYHUB_PUBLIC_URL", format!("http://127.0.0.1:{}", ports[0])),
        ("PAYHUB_CLOCK_URL", settings.sim_url.clone()),
        ("PAYHUB_POLL_SECONDS", "1".into()),
        ("PAYHUB_RECURRING_BEAT_SECONDS", "2".into()),
        ("PAYHUB_VIPPS_TIMEOUT_MS", "2000".into()),
        ("PAYHUB_ALLOW_PRIVATE_WEBHOOK_TARGETS", "true".into()),
        ("RUST_LOG", "warn".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();

    // Set-up as an operator does it: `migrate` makes the database (only `serve` and `migrate` may), then the
    // account and the key.
    processes::cli(&settings.payhub_bin, &env, &["migrate"], "")?;
    let secrets = format!("{CLIENT_SECRET}\n{SUBSCRIPTION_KEY}\n");
    processes::cli(
        &settings.payhub_bin,
        &env,
        &[
            "accounts",
            "add",
            "--name",
            "Sim",
            "--msn",
            MSN,
            "--client-key",
            CLIENT_ID,
            "--test",
            "true",
            "--product-name",
            "Monthly gift",
            "--agreement-url",
            "https://example.org/agreements",
            "--api-base-url",
            &settings.sim_url,
            "--default",
            "true",
        ],
        &secrets,
    )?;
    let api_key = processes::cli(
        &settings.payhub_bin,
        &env,
        &["keys", "create", "--name", "fault-run", "--role", "integrator"],
        "",
    )?
    .trim()
    .to_owned();

    let mut instances: Vec<Instance> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            Instance::new(&settings.payhub_bin, env.clone(), *port, settings.data_dir.join(format!("payhub-{i}.log")))
        })
        .collect();
    for instance in &mut instances {
        instance.start(&http).await?;
    }
    if let Fault::Vipps { percent } = settings.fault {
        vipps_faults(&http, &settings.sim_url, percent).await?;
    }

    let shared = Arc::new(Shared {
        http: http.clone(),
        bases: instances.iter().map(|i| i.base.clone()).collect(),
        api_key,
        sim_url: settings.sim_url.clone(),
        ledger: Mutex::new(Ledger::default()),
        tally: Tally::default(),
        stop: AtomicBool::new(false),
    });
    let clients: Vec<_> = (0..settings.clients)
        .map(|c| tokio::spawn(driver::client(shared.clone(), settings.seed.wrapping_add(c as u64))))
        .collect();

    let mut rng = rand::rngs::StdRng::seed_from_u64(settings.seed);
    let mut restarts = Vec::new();
    let started = Instant::now();
    match settings.fault {
        Fault::Crash { kills } => {
            for kill in 0..kills {
                let (low, high) = settings.between_kills_ms;
                tokio::time::sleep(Duration::from_millis(rng.gen_range(low..=high.max(low)))).await;
                instances[0].kill();
                if kill % 5 == 4 {
                    // A few days pass (while payhub is down, as they may): charges fall due.
                    advance(&http, &settings.sim_url, 3 * 86_400).await?;
                }
                restarts.push(instances[0].start(&http).await?);
            }
        }
        Fault::Vipps { .. } | Fault::TwoInstances => {
            let until = Instant::now() + Duration::from_secs(settings.drive_seconds);
            let mut round = 0;
            while Instant::now() < until {
                tokio::time::sleep(Duration::from_secs(2)).await;
                round += 1;
                if round % 3 == 0 {
                    advance(&http, &settings.sim_url, 3 * 86_400).await?;
                }
            }
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await?;
    }
    let driven = started.elapsed();

    // The faults stop; what was lost is asked again; time passes; the polls settle.
    let settling = Instant::now();
    http.delete(format!("{}/_sim/faults", settings.sim_url)).send().await?.error_for_status()?;
    for instance in &mut instances {
        if !instance.running() {
            instance.start(&http).await?;
        }
    }
    // An hour: the claims of killed requests run out of their lease, so a repeat runs anew.
    advance(&http, &settings.sim_url, 3600).await?;
    let repeated = driver::repeat_lost(&shared, 40).await;
    advance(&http, &settings.sim_url, 4 * 86_400).await?;
    let (intents, refunds) = {
        let ledger = shared.ledger.lock().unwrap();
        (ledger.intents.clone(), ledger.refunds.clone())
    };
    let findings = loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let findings = check::check(&settings.database_url, &http, &settings.sim_url, &intents, &refunds).await?;
        if findings.violations.is_empty() || settling.elapsed() > Duration::from_secs(settings.settle_seconds) {
            break findings;
        }
        if findings.overdue > 0 {
            // A charge created late (sent again after a fault) is due tomorrow at the earliest: let a day pass.
            advance(&http, &settings.sim_url, 86_400).await?;
        }
    };
    let settled_in = settling.elapsed();
    drop(instances);
    let shared = Arc::try_unwrap(shared).ok().expect("the clients are done");
    Ok(Report {
        backend,
        fault: settings.fault,
        driven,
        restarts,
        tally: shared.tally,
        ledger: shared.ledger.into_inner().unwrap(),
        repeated,
        settled_in,
        findings,
    })
}

/// The `payhub` binary beside the example (`target/<profile>/payhub`), or `FAULT_PAYHUB_BIN`.
pub fn payhub_bin() -> anyhow::Result<PathBuf> {
    if let Ok(bin) = std::env::var("FAULT_PAYHUB_BIN") {
        return Ok(bin.into());
    }
    let exe = std::env::current_exe()?;
    let bin = exe.parent().and_then(|examples| examples.parent()).map(|profile| profile.join("payhub"));
    match bin {
        Some(bin) if bin.exists() => Ok(bin),
        _ => anyhow::bail!(
            "no payhub binary beside {}: build it first (cargo build -p payhub --bin payhub)",
            exe.display()
        ),
    }
}

/// When this process was started as a run's simulator (`FAULT_ROLE=sim`): serves, with its URL on standard
/// output, until killed; never returns. Otherwise returns at once.
pub async fn simulator_role() -> anyhow::Result<()> {
    if std::env::var("FAULT_ROLE").as_deref() == Ok("sim") {
        let sim = vipps_sim::Simulator::start(simulator_config(), "127.0.0.1:0".parse()?).await?;
        println!("{}", sim.base_url());
        std::future::pending::<()>().await;
    }
    Ok(())
}

/// The example programs' main, after [`simulator_role`]: starts this program again as the simulator, a process
/// of its own, and runs `fault` against it on `database_url` with settings from the command line
/// (`--clients N`, `--kills N`, `--percent N`, `--seconds N`, `--settle N`, `--seed N`). Exits 1 when an
/// invariant fails.
pub async fn example_main(
    fault: Fault,
    data_dir: &std::path::Path,
    database_url: String,
) -> anyhow::Result<std::process::ExitCode> {
    use std::io::BufRead;
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let fault = match fault {
        Fault::Crash { kills } => Fault::Crash { kills: arg("--kills", kills as u64) as usize },
        Fault::Vipps { percent } => Fault::Vipps { percent: arg("--percent", u64::from(percent)) as u32 },
        Fault::TwoInstances => Fault::TwoInstances,
    };
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .env("FAULT_ROLE", "sim")
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let sim_url = {
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line)?;
        line.trim().trim_end_matches('/').to_owned()
    };
    let settings = Settings {
        fault,
        payhub_bin: payhub_bin()?,
        sim_url,
        database_url,
        data_dir: data_dir.to_owned(),
        clients: arg("--clients", 4) as usize,
        between_kills_ms: (200, 1200),
        drive_seconds: arg("--seconds", 60),
        settle_seconds: arg("--settle", 120),
        seed: arg("--seed", u64::from(std::process::id())),
    };
    let report = run(&settings).await;
    let _ = child.kill();
    let _ = child.wait();
    let report = report?;
    report.print();
    Ok(if report.findings.violations.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}
