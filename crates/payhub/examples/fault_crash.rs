//! Fault suite, crash: payhub (the `payhub serve` process) killed with SIGKILL at random moments while clients
//! make, approve, refund and collect one-time and recurring payments against it and a simulator in another
//! process; then the invariants (see `faults/check.rs`). Exits 1 when one fails.
//!
//! ```sh
//! cargo build --release -p payhub --bin payhub --example fault_crash
//! target/release/examples/fault_crash                       # SQLite, 100 kills, 4 clients
//! target/release/examples/fault_crash --kills 20 --clients 8
//! PAYHUB_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres target/release/examples/fault_crash
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
mod faults;

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    faults::simulator_role().await?;
    let data_dir = tempfile::tempdir()?;
    let database_url = common::database_url(data_dir.path()).await?;
    faults::example_main(faults::Fault::Crash { kills: 100 }, data_dir.path(), database_url).await
}
