//! The client handle and its construction.

use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use url::Url;

use crate::config::{ClientConfig, Msn, RetryPolicy};
use crate::epayment::Epayment;
use crate::error::Error;
use crate::recurring::Recurring;
use crate::report::Report;
use crate::token::TokenCache;
use crate::webhooks::Webhooks;

/// A client for one merchant account (sales unit).
///
/// Cheap to clone; clones share the connection pool and the cached access token, so one
/// client per account can be shared by all tasks. The token is fetched on first use, cached and
/// refreshed before it expires; concurrent callers wait for one shared refresh.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) base: Url,
    pub(crate) config: ClientConfig,
    /// Subscription key, MSN and `Vipps-System-*`: sent on every call.
    pub(crate) common_headers: HeaderMap,
    pub(crate) token: TokenCache,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.inner.base.as_str())
            .field("msn", &self.inner.config.credentials.msn)
            .finish_non_exhaustive()
    }
}

/// Per-call overrides of the client's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallOptions {
    /// Time limit of each attempt of this call.
    pub timeout: Option<Duration>,
    /// Retry policy of this call.
    pub retry: Option<RetryPolicy>,
}

impl CallOptions {
    /// Options with a per-attempt time limit.
    pub fn timeout(timeout: Duration) -> Self {
        Self { timeout: Some(timeout), retry: None }
    }

    /// Sets the retry policy of this call.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = Some(retry);
        self
    }
}

impl Client {
    /// Builds a client with its own connection pool (rustls, HTTP/1.1 and HTTP/2).
    ///
    /// Fails with [`Error::InvalidInput`] if a header value in the configuration is invalid.
    /// No request is sent until the first call.
    pub fn new(config: ClientConfig) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("vipps-client-rust/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::InvalidInput(format!("cannot build HTTP client: {e}")))?;
        Self::with_http_client(config, http)
    }

    /// Builds a client on an existing `reqwest::Client` (to share a pool between accounts).
    /// The per-attempt timeout of the configuration still applies.
    pub fn with_http_client(config: ClientConfig, http: reqwest::Client) -> Result<Self, Error> {
        config.system.validate()?;
        let base = config.environment.base_url();
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(Error::InvalidInput(format!("base URL must be http(s): {base}")));
        }
        let mut common_headers = HeaderMap::new();
        let mut put = |name: &'static str, value: &str, sensitive: bool| -> Result<(), Error> {
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| Error::InvalidInput(format!("invalid value for header {name}")))?;
            value.set_sensitive(sensitive);
            common_headers.insert(HeaderName::from_static(name), value);
            Ok(())
        };
        put("ocp-apim-subscription-key", config.credentials.subscription_key.expose(), true)?;
        put("merchant-serial-number", config.credentials.msn.as_str(), false)?;
        for (name, value) in config.system.headers() {
            put(name, value, false)?;
        }
        // Validate the token headers now so the first call cannot fail on them.
        HeaderValue::from_str(&config.credentials.client_id)
            .map_err(|_| Error::InvalidInput("invalid client_id".into()))?;
        HeaderValue::from_str(config.credentials.client_secret.expose())
            .map_err(|_| Error::InvalidInput("invalid client_secret".into()))?;
        Ok(Self { inner: Arc::new(Inner { http, base, config, common_headers, token: TokenCache::default() }) })
    }

    /// The Merchant Serial Number this client acts for.
    pub fn msn(&self) -> &Msn {
        &self.inner.config.credentials.msn
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// Fetches an access token now unless a fresh one is cached (e.g. at start-up, to fail fast
    /// on bad credentials).
    pub async fn authenticate(&self) -> Result<(), Error> {
        self.inner.bearer().await.map(|_| ())
    }

    /// Forgets the cached access token; the next call fetches a new one.
    pub fn clear_token(&self) {
        self.inner.token.clear();
    }

    /// ePayment API v1 with the client's default options.
    pub fn epayment(&self) -> Epayment<'_> {
        Epayment::new(self, CallOptions::default())
    }

    /// Recurring API v3 with the client's default options.
    pub fn recurring(&self) -> Recurring<'_> {
        Recurring::new(self, CallOptions::default())
    }

    /// Webhooks API v1 (registrations) with the client's default options.
    pub fn webhooks(&self) -> Webhooks<'_> {
        Webhooks::new(self, CallOptions::default())
    }

    /// Report API v2 (ledgers, funds, fees) with the client's default options.
    pub fn report(&self) -> Report<'_> {
        Report::new(self, CallOptions::default())
    }
}
