//! What the benchmark programs share: settings from the environment, the process's CPU time, driving N
//! clients for a while, and the latencies they saw.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A memory figure of this process in MiB (`VmHWM`, the peak, or `VmRSS`), from `/proc/self/status`; zero where
/// that file does not exist. The benchmarks print the peak to show memory stays flat as the data grows.
pub fn memory_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resets the peak-memory mark (`VmHWM`) of this process, so a phase's own peak can be read.
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// CPU time this process has used so far (all its threads: payhub, and the simulator and load generator where
/// they run in it), from `/proc/self/stat`; zero where that file does not exist.
pub fn cpu_used() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; USER_HZ is 100 on Linux.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Every request's latency (sorted) and how many failed.
pub struct Outcome {
    latencies: Vec<Duration>,
    errors: usize,
}

impl Outcome {
    pub fn of(results: impl IntoIterator<Item = (Duration, bool)>) -> Outcome {
        let mut outcome = Outcome { latencies: Vec::new(), errors: 0 };
        for (latency, ok) in results {
            outcome.latencies.push(latency);
            outcome.errors += usize::from(!ok);
        }
        outcome.latencies.sort();
        outcome
    }

    pub fn acknowledged(&self) -> usize {
        self.latencies.len() - self.errors
    }

    pub fn count(&self) -> usize {
        self.latencies.len()
    }

    /// The latency at `p` (0–1), in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        let Some(last) = self.latencies.len().checked_sub(1) else { return 0.0 };
        let index = ((last as f64 * p).round() as usize).min(last);
        self.latencies[index].as_secs_f64() * 1000.0
    }

    /// "p50 … ms, p99 … ms, errors …".
    pub fn summary(&self) -> String {
        format!(
            "p50 {:.1} ms, p99 {:.1} ms, errors {}",
            self.percentile_ms(0.50),
            self.percentile_ms(0.99),
            self.errors
        )
    }
}

/// Closed loop: `concurrency` clients, each sending its next request when its last is answered.
pub async fn drive<F, Fut>(concurrency: usize, seconds: u64, request: F) -> Outcome
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let stop = stop.clone();
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let ok = request(worker * 1_000_000 + results.len()).await;
                results.push((started.elapsed(), ok));
            }
            results
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    Outcome::of(all)
}

/// The database a benchmark runs on: a fresh PostgreSQL database on the server `PAYHUB_BENCH_DATABASE_URL`
/// names, else an SQLite file in `dir`.
pub async fn database_url(dir: &std::path::Path) -> anyhow::Result<String> {
    Ok(match std::env::var("PAYHUB_BENCH_DATABASE_URL") {
        Ok(server) => {
            let name = format!("payhub_bench_{}", std::process::id());
            let admin = sqlx::PgPool::connect(&server).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name}")).execute(&admin).await?;
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await?;
            let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(&server);
            format!("{base}/{name}")
        }
        Err(_) => format!("sqlite://{}?mode=rwc", dir.join("bench.db").display()),
    })
}
