//! vipps-sim: an in-memory simulator of the Vipps MobilePay merchant APIs (access token,
//! ePayment v1, Recurring v3, Webhooks v1, Report API), built from
//! `shared/reference/vipps-apis.md` and the official OpenAPI files, for payhub's tests and demos.
//!
//! # Module map
//!
//! | Module | What it holds |
//! | --- | --- |
//! | [`config`] | [`Merchant`], [`SimConfig`] |
//! | `state` | `Sim` (shared handle: config, clock, `Mutex<Db>`), `Db` (all data), `Timer` (due work), `MoneyMovement` (ledger source) |
//! | `routes` | **the one router list**: add your routes there |
//! | `server` | accept loop (fault injection can drop connections), clock ticker |
//! | `clock` | virtual clock: real time + offset, only moves forward |
//! | `reply` | `Reply` (cacheable response) and error bodies per API family |
//! | `auth` | `POST /accesstoken/get`, `authorize()` gateway checks for every API call |
//! | `idempotency` | `IdemStore` (per API + MSN + key; replay / 409) and key rules |
//! | `epayment` | ePayment v1: model and views (`mod.rs`), `request` (bodies, validation), `handlers`, `approval` (payer, expiry, `/_sim/payments/...`) |
//! | `recurring` | Recurring v3: model, views, plumbing (`mod.rs`), `agreements`, `charges`, `processing` (due dates, retries), `controls` (`/_sim/agreements/...`) |
//! | `webhooks` | `mod.rs` hub and event fan-out, `registration`, `delivery` (ordered, retried), `sign` (§4.3) |
//! | `faults` | `/_sim/faults`: 500 / 502 / 423 / 429 / delay / drop for a path prefix |
//! | `ratelimit` | opt-in documented per-minute limits (`SimConfig::rate_limits`) |
//! | `controls` | `/_sim/clock`, `/_sim/merchants` |
//! | `handle` | payer/test controls as `Simulator` methods (`approve_payment`, `accept_agreement`, …) |
//! | `report` | Report API: `book` (one sales unit's funds/fees rows, fees, daily close and payout, built lazily from `Db::movements`), handlers, cursors, `/_sim/vipps-number-payments` |
//! | `payer` | the payer's phone: `GET`/`POST /landing` (HTML, no JavaScript) |
//!
//! # For the Report API / payer page (second helper)
//!
//! * Money movements: `Db::movements: HashMap<msn, Vec<MoneyMovement>>`, append-only, in time
//!   order per MSN, written by captures, refunds, recurring charge captures and charge refunds.
//!   Ledger dates and payouts can be derived lazily from `Sim::clock.now()`.
//! * Landing pages: `redirectUrl` / `vippsConfirmationUrl` are `{base_url}/landing?token=T`;
//!   `Db::landing[T]` is a `LandingTarget` (payment or agreement). Acting as the payer:
//!   `epayment::payer_approve / payer_reject` and `recurring::payer_accept / payer_reject`.
//! * Locking: take `sim.lock()` once per request, never across an `.await`.

pub mod config;

mod auth;
mod clock;
mod controls;
mod epayment;
mod faults;
mod handle;
mod idempotency;
mod payer;
mod ratelimit;
mod recurring;
mod reply;
mod report;
mod routes;
mod server;
mod state;
mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{Merchant, SimConfig};

use state::{SharedSim, Sim};

/// A running simulator. Dropping it without [`Simulator::shutdown`] leaves the server running
/// until the Tokio runtime ends.
pub struct Simulator {
    sim: SharedSim,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Simulator {
    /// Binds `listen` (port 0 picks a free port) and starts serving all APIs and controls.
    ///
    /// Fails if the address cannot be bound or two merchants share an MSN or subscription key.
    pub async fn start(config: SimConfig, listen: SocketAddr) -> anyhow::Result<Simulator> {
        let mut msns = std::collections::HashSet::new();
        let mut keys = std::collections::HashSet::new();
        for m in &config.merchants {
            if !auth::valid_msn(&m.msn) {
                anyhow::bail!("MSN must be 4 to 10 digits: {:?}", m.msn);
            }
            if !msns.insert(m.msn.clone()) || !keys.insert(m.subscription_key.clone()) {
                anyhow::bail!("duplicate MSN or subscription key for merchant {}", m.msn);
            }
        }
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let host = if addr.ip().is_unspecified() { "127.0.0.1".to_owned() } else { addr.ip().to_string() };
        let base_url = match addr {
            SocketAddr::V4(_) => format!("http://{host}:{}", addr.port()),
            SocketAddr::V6(_) => format!("http://[{host}]:{}", addr.port()),
        };
        let sim: SharedSim = Arc::new(Sim::new(config, base_url));
        let (tx, rx) = watch::channel(false);
        let router = routes::router(sim.clone());
        let tasks = vec![
            tokio::spawn(server::serve(listener, router, sim.clone(), rx)),
            tokio::spawn(server::ticker(sim.clone())),
            tokio::spawn(webhooks::delivery_loop(sim.clone())),
        ];
        Ok(Simulator { sim, shutdown: tx, tasks })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.sim.base_url.clone()
    }

    /// The merchants (and their credentials) the simulator accepts.
    pub fn merchants(&self) -> &[Merchant] {
        &self.sim.config.merchants
    }

    /// Current time on the virtual clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.sim.clock.now()
    }

    /// A function that reads the virtual clock, for a host that follows it (payhub's sandbox mode).
    pub fn clock_fn(&self) -> impl Fn() -> DateTime<Utc> + Send + Sync + 'static {
        let sim = self.sim.clone();
        move || sim.clock.now()
    }

    /// Moves the virtual clock forward and processes every expiry and charge that became due,
    /// like `POST /_sim/clock/advance`. The clock stops at 9000-01-01 (a larger step is ignored).
    pub async fn advance(&self, seconds: i64) {
        controls::advance(&self.sim, seconds);
    }

    /// Stops serving, aborts open connections and background tasks.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
    }
}
