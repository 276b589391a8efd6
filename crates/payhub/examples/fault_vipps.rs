//! Fault suite, Vipps faults: while clients make, approve, refund and collect one-time and recurring payments,
//! 30 % of payhub's calls to Vipps (the simulator, another process) fail: 500, 429, an answer held back past
//! payhub's timeout after Vipps acted, or a dropped connection. Then the faults stop and every payment must
//! reach its final state with the invariants holding (see `faults/check.rs`). Exits 1 when one fails.
//!
//! ```sh
//! cargo build --release -p payhub --bin payhub --example fault_vipps
//! target/release/examples/fault_vipps                       # SQLite, 60 s, 30 %, 4 clients
//! target/release/examples/fault_vipps --percent 50 --seconds 30
//! PAYHUB_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres target/release/examples/fault_vipps
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
mod faults;

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    faults::simulator_role().await?;
    let data_dir = tempfile::tempdir()?;
    let database_url = common::database_url(data_dir.path()).await?;
    faults::example_main(faults::Fault::Vipps { percent: 30 }, data_dir.path(), database_url).await
}
