//! Configuration of one merchant account.

use std::fmt;
use std::time::Duration;

use url::Url;

use crate::error::Error;
use crate::secret::Secret;

/// Which Vipps MobilePay environment to talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Environment {
    /// The merchant test environment, `https://apitest.vipps.no` (tokens live 1 hour).
    Test,
    /// Production, `https://api.vipps.no` (tokens live 24 hours).
    Production,
    /// Any other base URL, e.g. a simulator on `http://127.0.0.1:PORT`.
    Custom(Url),
}

impl Environment {
    /// The base URL every API path is appended to.
    pub fn base_url(&self) -> Url {
        match self {
            Self::Test => Url::parse("https://apitest.vipps.no/").expect("static URL is valid"),
            Self::Production => Url::parse("https://api.vipps.no/").expect("static URL is valid"),
            Self::Custom(url) => url.clone(),
        }
    }
}

/// A Merchant Serial Number: 4 to 10 ASCII digits (the 2023 specs said 4–6; current schemas allow up to 10).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Msn(String);

impl Msn {
    /// Accepts 4 to 10 ASCII digits.
    pub fn parse(value: &str) -> Result<Self, Error> {
        if (4..=10).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(value.to_owned()))
        } else {
            Err(Error::InvalidInput(format!("merchant serial number must be 4-10 digits, got {value:?}")))
        }
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Msn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Msn({})", self.0)
    }
}

impl fmt::Display for Msn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// API keys of one sales unit. `Debug` never prints the secrets.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// `client_id` from the business portal.
    pub client_id: String,
    /// `client_secret` from the business portal.
    pub client_secret: Secret,
    /// `Ocp-Apim-Subscription-Key` (primary or secondary).
    pub subscription_key: Secret,
    /// The sales unit's Merchant Serial Number, sent as `Merchant-Serial-Number` on every call.
    pub msn: Msn,
}

/// Identifies the calling system in the `Vipps-System-*` headers, sent on every call.
/// Each value must be 1–30 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemInfo {
    /// `Vipps-System-Name`, e.g. `acme`.
    pub name: String,
    /// `Vipps-System-Version`, e.g. `3.1.2`.
    pub version: String,
    /// `Vipps-System-Plugin-Name`, e.g. `acme-webshop`.
    pub plugin_name: String,
    /// `Vipps-System-Plugin-Version`, e.g. `4.5.6`.
    pub plugin_version: String,
}

impl SystemInfo {
    pub(crate) fn validate(&self) -> Result<(), Error> {
        for (header, value) in self.headers() {
            let ok = (1..=30).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                return Err(Error::InvalidInput(format!(
                    "{header} must be 1-30 visible ASCII characters, got {value:?}"
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn headers(&self) -> [(&'static str, &str); 4] {
        [
            ("vipps-system-name", &self.name),
            ("vipps-system-version", &self.version),
            ("vipps-system-plugin-name", &self.plugin_name),
            ("vipps-system-plugin-version", &self.plugin_version),
        ]
    }
}

/// How failed attempts are retried. Retries always reuse the caller's idempotency key.
///
/// Retried: connection errors, timeouts, HTTP 5xx, 429 and 423. Not retried: any other 4xx
/// (Vipps caches a 4xx per idempotency key, so a retry would only replay it).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retrying).
    pub max_retries: u32,
    /// Backoff before the first retry; doubles per retry, with jitter.
    pub initial_backoff: Duration,
    /// Upper bound of one backoff.
    pub max_backoff: Duration,
    /// The longest `Retry-After` the client waits for; a longer one returns the error instead.
    pub max_retry_after: Duration,
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self { max_retries: 0, ..Self::default() }
    }

    /// `max_retries` retries with the given initial and maximum backoff.
    pub fn new(max_retries: u32, initial_backoff: Duration, max_backoff: Duration) -> Self {
        Self { max_retries, initial_backoff, max_backoff, ..Self::default() }
    }
}

impl Default for RetryPolicy {
    /// Three retries, 300 ms initial backoff, at most 5 s per backoff, `Retry-After` up to 60 s.
    fn default() -> Self {
        Self {
            max_retries: 3,
            initial_backoff: Duration::from_millis(300),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// Everything a [`crate::Client`] needs for one merchant account.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Where to send requests.
    pub environment: Environment,
    /// The sales unit's keys.
    pub credentials: Credentials,
    /// Values of the `Vipps-System-*` headers.
    pub system: SystemInfo,
    /// Time limit of one attempt (connect, send, read the whole body); default 30 s.
    /// Override per call with [`crate::CallOptions`].
    pub timeout: Duration,
    /// Time limit for establishing a connection; default 5 s.
    pub connect_timeout: Duration,
    /// Retry behaviour.
    pub retry: RetryPolicy,
    /// Refresh the access token this long before it expires (capped at half its lifetime); default 5 min.
    pub token_refresh_margin: Duration,
    /// Told of every attempt of every call (for metrics); default none.
    pub observer: Option<CallObserver>,
}

/// One attempt of a call to Vipps, as a [`CallObserver`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallRecord {
    /// Which API: `accesstoken`, `epayment`, `recurring`, `webhooks`, `report`, or `other`.
    pub api: &'static str,
    /// The HTTP status, or `None` when no response came (connection failure, timeout).
    pub status: Option<u16>,
    /// From sending the request to the end of the response body (or the failure).
    pub elapsed: Duration,
}

/// A function called after each attempt of each call, e.g. to count calls by API and status. It runs on the
/// caller's task: keep it quick.
#[derive(Clone)]
pub struct CallObserver(pub std::sync::Arc<dyn Fn(&CallRecord) + Send + Sync>);

impl std::fmt::Debug for CallObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallObserver")
    }
}

impl ClientConfig {
    /// A configuration with default timeouts and retry policy.
    pub fn new(environment: Environment, credentials: Credentials, system: SystemInfo) -> Self {
        Self {
            environment,
            credentials,
            system,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            token_refresh_margin: Duration::from_secs(300),
            observer: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msn_accepts_four_to_ten_digits_only() {
        assert!(Msn::parse("1234").is_ok());
        assert!(Msn::parse("1234567890").is_ok());
        assert!(Msn::parse("123").is_err());
        assert!(Msn::parse("12345678901").is_err());
        assert!(Msn::parse("12a456").is_err());
        assert!(Msn::parse("").is_err());
    }

    #[test]
    fn system_info_values_longer_than_thirty_characters_are_rejected() {
        let mut info = SystemInfo {
            name: "acme".into(),
            version: "3.1.2".into(),
            plugin_name: "acme-webshop".into(),
            plugin_version: "4.5.6".into(),
        };
        assert!(info.validate().is_ok());
        info.plugin_name = "x".repeat(31);
        assert!(info.validate().is_err());
        info.plugin_name = "has space".into();
        assert!(info.validate().is_err());
    }

    #[test]
    fn environments_point_at_the_documented_hosts() {
        assert_eq!(Environment::Test.base_url().as_str(), "https://apitest.vipps.no/");
        assert_eq!(Environment::Production.base_url().as_str(), "https://api.vipps.no/");
    }
}
