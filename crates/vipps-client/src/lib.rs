//! A typed, async client for the Vipps MobilePay merchant APIs.
//!
//! One [`Client`] holds one merchant account (sales unit): its credentials, its cached access
//! token and its HTTP connection pool. It is cheap to clone (an `Arc` inside) and can be shared
//! across tasks.
//!
//! * [`Client::epayment`]: one-time payments (ePayment API v1).
//! * [`Client::recurring`]: agreements and charges (Recurring API v3).
//! * [`Client::webhooks`]: webhook registrations; [`webhooks::Verifier`] checks incoming deliveries.
//! * [`Client::report`]: ledgers, funds and fees (Report API v2), including a resumable feed stream.
//!
//! Every state-changing call takes an idempotency key chosen by the caller
//! ([`IdempotencyKey`], [`RecurringIdempotencyKey`]); retries (network errors, timeouts, 5xx,
//! 429, 423) reuse that key, so an operation is performed at most once.
//!
//! All failures are one [`Error`]; [`Error::kind`] gives an [`ErrorKind`] to branch on.

mod client;
mod config;
pub mod epayment;
mod error;
mod idempotency;
pub mod recurring;
pub mod report;
#[cfg(test)]
mod schema_tests;
mod secret;
mod token;
mod transport;
pub mod webhooks;
mod wire;

pub use client::{CallOptions, Client};
pub use config::{ClientConfig, Credentials, Environment, Msn, RetryPolicy, SystemInfo};
pub use error::{EpaymentErrorCode, Error, ErrorKind, ExtraDetail, Problem, RecurringProblem};
pub use idempotency::{IdempotencyKey, RecurringIdempotencyKey};
pub use secret::Secret;
pub use wire::{Amount, Currency};
