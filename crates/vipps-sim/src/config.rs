//! Merchants and simulator settings.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::distributions::Alphanumeric;
use rand::Rng;

/// One sales unit known to the simulator, with the credentials a client must present.
///
/// All merchants are Norwegian sales units: they accept `NOK` only (see README, Decisions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merchant {
    /// Merchant serial number (4 to 10 digits).
    pub msn: String,
    /// `client_id` header value accepted by `POST /accesstoken/get`.
    pub client_id: String,
    /// `client_secret` header value accepted by `POST /accesstoken/get`.
    pub client_secret: String,
    /// `Ocp-Apim-Subscription-Key` accepted for this merchant on every call.
    pub subscription_key: String,
}

impl Merchant {
    /// A merchant with the given MSN and freshly generated random credentials.
    pub fn random(msn: impl Into<String>) -> Merchant {
        Merchant {
            msn: msn.into(),
            client_id: uuid::Uuid::new_v4().to_string(),
            client_secret: random_string(24),
            subscription_key: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    /// Parses `MSN,CLIENT_ID,CLIENT_SECRET,SUBSCRIPTION_KEY` (the `--merchant` CLI syntax).
    ///
    /// Fails unless there are exactly four non-empty parts and the MSN is 4 to 10 digits.
    pub fn parse_cli(s: &str) -> anyhow::Result<Merchant> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let [msn, client_id, client_secret, subscription_key] = parts.as_slice() else {
            anyhow::bail!("expected MSN,CLIENT_ID,CLIENT_SECRET,SUBSCRIPTION_KEY, got {s:?}");
        };
        if !crate::auth::valid_msn(msn) {
            anyhow::bail!("MSN must be 4 to 10 digits, got {msn:?}");
        }
        if client_id.is_empty() || client_secret.is_empty() || subscription_key.is_empty() {
            anyhow::bail!("credentials must not be empty in {s:?}");
        }
        Ok(Merchant {
            msn: (*msn).to_owned(),
            client_id: (*client_id).to_owned(),
            client_secret: (*client_secret).to_owned(),
            subscription_key: (*subscription_key).to_owned(),
        })
    }
}

/// Everything the simulator needs to start. `SimConfig::default()` has one test merchant
/// (MSN `123456`) with random credentials and the documented timings.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Sales units accepted by the simulator; MSNs must be unique.
    pub merchants: Vec<Merchant>,
    /// Virtual time at start; `None` starts at the real current time.
    pub clock_start: Option<DateTime<Utc>>,
    /// `true` (default): the virtual clock runs with real time. `false`: it stands still at
    /// `clock_start` and moves only by `advance` / `PUT /_sim/clock` (deterministic timestamps).
    pub clock_runs: bool,
    /// Lifetime of access tokens on the virtual clock (test environment: 1 hour).
    pub token_lifetime: chrono::Duration,
    /// How long a `CREATED` payment / `PENDING` agreement waits for the payer (documented: 10 minutes).
    pub payer_timeout: chrono::Duration,
    /// Real-time delay before the first webhook retry; later retries follow the documented
    /// schedule scaled by this value (2 s at Vipps). Tests set it to a few milliseconds.
    pub webhook_retry_base: Duration,
    /// Real-time limit for a webhook receiver to answer (documented: 10 seconds).
    pub webhook_timeout: Duration,
    /// Enforce the documented per-minute rate limits (§3.8, §5.8) → 429 with `Retry-After`.
    /// Off by default so benchmarks and bulk tests are not throttled.
    pub rate_limits: bool,
    /// Items per page of the Recurring list endpoints before a `Continuation-Token` is returned.
    pub list_page_size: usize,
    /// Real-time interval of the background task that processes due work while the clock runs.
    pub tick_interval: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            merchants: vec![Merchant::random("123456")],
            clock_start: None,
            clock_runs: true,
            token_lifetime: chrono::Duration::hours(1),
            payer_timeout: chrono::Duration::minutes(10),
            webhook_retry_base: Duration::from_secs(2),
            webhook_timeout: Duration::from_secs(10),
            rate_limits: false,
            list_page_size: 1000,
            tick_interval: Duration::from_millis(500),
        }
    }
}

pub(crate) fn random_string(len: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

pub(crate) fn random_digits(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|i| {
            let d = if i == 0 { rng.gen_range(1..10) } else { rng.gen_range(0..10) };
            char::from(b'0' + d)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_cli_merchant_needs_four_parts_and_a_numeric_msn() {
        let m = Merchant::parse_cli("123456,id,secret,key").unwrap();
        assert_eq!(m.msn, "123456");
        assert_eq!(m.subscription_key, "key");
        assert!(Merchant::parse_cli("123456,id,secret").is_err());
        assert!(Merchant::parse_cli("12a456,id,secret,key").is_err());
        assert!(Merchant::parse_cli("123456,,secret,key").is_err());
    }

    #[test]
    fn random_digits_have_the_requested_length_and_no_leading_zero() {
        for _ in 0..100 {
            let d = random_digits(10);
            assert_eq!(d.len(), 10);
            assert!(!d.starts_with('0'));
            assert!(d.bytes().all(|b| b.is_ascii_digit()));
        }
    }
}
