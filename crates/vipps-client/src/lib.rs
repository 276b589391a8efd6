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
//!
//! ```no_run
//! use vipps_client::epayment::{CreatePaymentRequest, Reference};
//! use vipps_client::{Amount, Client, ClientConfig, Credentials, Environment, ErrorKind, IdempotencyKey, Msn, Secret, SystemInfo};
//!
//! # async fn run() -> Result<(), vipps_client::Error> {
//! let credentials = Credentials {
//!     client_id: "fb492b5e-7907-4d83-ba20-c7fb60ca35de".into(),
//!     client_secret: Secret::new("Y8Kteew6GE2ZmeycEt6egg=="),
//!     subscription_key: Secret::new("0f14ebcab0ec4b29ae0cb90d91b4a84a"),
//!     msn: Msn::parse("123456")?,
//! };
//! let system = SystemInfo {
//!     name: "acme".into(),
//!     version: "3.1.2".into(),
//!     plugin_name: "acme-webshop".into(),
//!     plugin_version: "4.5.6".into(),
//! };
//! let client = Client::new(ClientConfig::new(Environment::Test, credentials, system))?;
//!
//! let reference = Reference::parse("acme-shop-123-order123abc")?;
//! let request = CreatePaymentRequest::web_redirect(Amount::nok(49900), reference, "https://example.com/return");
//! match client.epayment().create(&request, &IdempotencyKey::parse("order123abc-create")?).await {
//!     Ok(created) => println!("send the user to {:?}", created.redirect_url),
//!     Err(e) if e.kind() == ErrorKind::ReferenceAlreadyExists => println!("already created"),
//!     Err(e) => return Err(e),
//! }
//! # Ok(()) }
//! ```

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
pub use config::{CallObserver, CallRecord, ClientConfig, Credentials, Environment, Msn, RetryPolicy, SystemInfo};
pub use error::{EpaymentErrorCode, Error, ErrorKind, ExtraDetail, Problem, RecurringProblem};
pub use idempotency::{IdempotencyKey, RecurringIdempotencyKey};
pub use secret::Secret;
pub use wire::{Amount, Currency};

#[cfg(test)]
mod tests {
    /// The client is shared across tasks; errors cross task boundaries; the feed stream can be spawned.
    #[test]
    fn the_public_handles_are_send_sync_and_static() {
        fn shared<T: Clone + Send + Sync + 'static>() {}
        fn error<T: std::error::Error + Send + Sync + 'static>() {}
        fn spawnable<T: Send + 'static>(_: &T) {}
        shared::<crate::Client>();
        error::<crate::Error>();
        error::<crate::webhooks::VerifyError>();
        let client = crate::Client::new(crate::ClientConfig::new(
            crate::Environment::Test,
            crate::Credentials {
                client_id: "id".into(),
                client_secret: crate::Secret::new("secret"),
                subscription_key: crate::Secret::new("key"),
                msn: crate::Msn::parse("123456").unwrap_or_else(|e| panic!("{e}")),
            },
            crate::SystemInfo {
                name: "a".into(),
                version: "1".into(),
                plugin_name: "b".into(),
                plugin_version: "2".into(),
            },
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let stream = client.report().feed("1", crate::report::Topic::Funds, Default::default());
        spawnable(&stream);
        assert!(format!("{client:?}").contains("123456"));
        assert!(!format!("{client:?}").contains("secret"));
    }
}
