//! Fault suite, two instances: two `payhub serve` processes on one PostgreSQL database, each running every beat
//! and the job workers, the clients' requests spread over both, while payments are made, approved, refunded
//! and collected; then the invariants (see `faults/check.rs`). Exits 1 when one fails. Needs PostgreSQL (two
//! processes on one SQLite file are not a supported set-up).
//!
//! ```sh
//! cargo build --release -p payhub --bin payhub --example fault_two
//! PAYHUB_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres target/release/examples/fault_two --seconds 60
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
mod faults;

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    faults::simulator_role().await?;
    anyhow::ensure!(
        std::env::var("PAYHUB_BENCH_DATABASE_URL").is_ok(),
        "two instances share a PostgreSQL database: set PAYHUB_BENCH_DATABASE_URL"
    );
    let data_dir = tempfile::tempdir()?;
    let database_url = common::database_url(data_dir.path()).await?;
    faults::example_main(faults::Fault::TwoInstances, data_dir.path(), database_url).await
}
