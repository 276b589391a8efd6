//! `vipps-sim` binary: parses the command line and runs the simulator until Ctrl-C.

use std::net::SocketAddr;

use clap::Parser;
use vipps_sim::{Merchant, SimConfig, Simulator};

/// A Vipps MobilePay API simulator (ePayment, Recurring, Webhooks, Report, access token).
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// A merchant as MSN,CLIENT_ID,CLIENT_SECRET,SUBSCRIPTION_KEY (repeatable). Without any,
    /// one test merchant with random credentials is created and printed.
    #[arg(long = "merchant", value_parser = Merchant::parse_cli)]
    merchants: Vec<Merchant>,
    /// Virtual time to start at (RFC 3339), e.g. 2026-01-01T08:00:00Z.
    #[arg(long)]
    clock_start: Option<chrono::DateTime<chrono::Utc>>,
    /// Keep the virtual clock still between explicit advances.
    #[arg(long)]
    frozen_clock: bool,
    /// Enforce the documented per-minute rate limits (429 with Retry-After).
    #[arg(long)]
    rate_limits: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let mut config = SimConfig::default();
    let print_creds = cli.merchants.is_empty();
    if !print_creds {
        config.merchants = cli.merchants;
    }
    config.clock_start = cli.clock_start;
    config.clock_runs = !cli.frozen_clock;
    config.rate_limits = cli.rate_limits;
    let sim = Simulator::start(config, cli.listen).await?;
    println!("vipps-sim listening on {}", sim.base_url());
    if print_creds {
        for m in sim.merchants() {
            println!(
                "test merchant: msn={} client_id={} client_secret={} subscription_key={}",
                m.msn, m.client_id, m.client_secret, m.subscription_key
            );
        }
    }
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
