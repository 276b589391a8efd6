//! One `vipps_client::Client` per merchant account, built from the account's opened credentials and kept
//! while the account is unchanged (so its access token is reused across calls).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use url::Url;
use vipps_client::{Client, ClientConfig, Credentials as ClientCredentials, Environment, Msn, SystemInfo};

use super::accounts::{AccountView, Accounts};
use crate::error::{ServiceError, ServiceResult};

/// The registry of Vipps clients, keyed by account id and the account's last change.
#[derive(Clone)]
pub struct VippsClients {
    cache: Arc<Mutex<HashMap<String, (String, Client)>>>,
    timeout: Duration,
    /// The last connection check of each account: when, for which version of the account, and what Vipps said.
    checked: Arc<Mutex<HashMap<String, Checked>>>,
}

/// A connection check as it stands: when it was made, for which version of the account (its `updated_at`),
/// and what Vipps said.
type Checked = (std::time::Instant, String, CredentialCheck);

/// How long a dashboard's connection check stands before Vipps is asked again.
const CONNECTION_CHECK_STANDS: Duration = Duration::from_secs(60);

/// The longest a dashboard waits for Vipps' token endpoint.
const CONNECTION_CHECK_WAIT: Duration = Duration::from_secs(3);

impl VippsClients {
    /// A registry whose clients give each attempt of a call `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self { cache: Arc::default(), timeout, checked: Arc::default() }
    }

    /// The client for `account_id`, built on first use and rebuilt after the account changed.
    pub async fn get(&self, accounts: &Accounts, account_id: &str) -> ServiceResult<Client> {
        let view = accounts.get(account_id).await?;
        self.for_account(accounts, &view).await
    }

    /// The client for an account the caller has just read (no second read of the account).
    pub async fn for_account(&self, accounts: &Accounts, view: &AccountView) -> ServiceResult<Client> {
        let account_id = view.id.as_str();
        if let Ok(cache) = self.cache.lock() {
            if let Some((version, client)) = cache.get(account_id) {
                if *version == view.updated_at {
                    return Ok(client.clone());
                }
            }
        }
        let client = self.build(accounts, view, None).await?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(account_id.to_owned(), (view.updated_at.clone(), client.clone()));
        }
        Ok(client)
    }

    /// A client for `view` outside the cache, with `retry` instead of the usual retries when given.
    async fn build(
        &self,
        accounts: &Accounts,
        view: &AccountView,
        retry: Option<vipps_client::RetryPolicy>,
    ) -> ServiceResult<Client> {
        let credentials = accounts.credentials(&view.id).await?;
        let environment = match (view.api_base_url.as_deref(), view.is_test) {
            (Some(url), _) => Environment::Custom(
                Url::parse(&format!("{}/", url.trim_end_matches('/'))).map_err(|e| ServiceError::Internal(e.into()))?,
            ),
            (None, true) => Environment::Test,
            (None, false) => Environment::Production,
        };
        let config = ClientConfig::new(
            environment,
            ClientCredentials {
                client_id: credentials.client_id,
                client_secret: vipps_client::Secret::new(credentials.client_secret.expose()),
                subscription_key: vipps_client::Secret::new(credentials.subscription_key.expose()),
                msn: Msn::parse(&credentials.merchant_serial_number).map_err(|e| ServiceError::Internal(e.into()))?,
            },
            SystemInfo {
                name: "payhub".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                plugin_name: "payhub-vipps".into(),
                plugin_version: env!("CARGO_PKG_VERSION").into(),
            },
        );
        let mut config = config;
        config.timeout = self.timeout;
        if let Some(retry) = retry {
            config.retry = retry;
        }
        config.observer = Some(vipps_client::CallObserver(std::sync::Arc::new(|call: &vipps_client::CallRecord| {
            let business = crate::ops::business();
            let status = call.status.map_or_else(|| "none".to_owned(), |s| s.to_string());
            business.count("payhub_vipps_calls_total", &[("api", call.api), ("status", &status)]);
            business.observe("payhub_vipps_call_duration_seconds", &[("api", call.api)], call.elapsed.as_secs_f64());
        })));
        Client::new(config).map_err(|e| ServiceError::Internal(e.into()))
    }

    /// Asks Vipps' token endpoint whether `view`'s stored credentials are accepted, with a client of its own
    /// (a cached token would answer for credentials Vipps no longer takes) and without retries (an operator
    /// waits for the answer; a retry would only delay "unreachable").
    pub async fn check_credentials(&self, accounts: &Accounts, view: &AccountView) -> CredentialCheck {
        let client = match self.build(accounts, view, Some(vipps_client::RetryPolicy::none())).await {
            Ok(client) => client,
            Err(error) => {
                return CredentialCheck::Refused(format!("payhub cannot use the stored credentials: {error}"))
            }
        };
        match client.authenticate().await {
            Ok(()) => CredentialCheck::Ok,
            Err(error) => {
                use vipps_client::ErrorKind as K;
                match error.kind() {
                    K::Transport | K::Timeout | K::ServerError | K::RateLimited | K::UnexpectedBody => {
                        CredentialCheck::Unreachable(error.to_string())
                    }
                    // Authentication, Forbidden, MerchantConfiguration, InvalidInput and any answer that is not
                    // a token: Vipps (or the client, before sending) did not take these credentials.
                    _ => CredentialCheck::Refused(error.to_string()),
                }
            }
        }
    }
}

impl VippsClients {
    /// Whether `view` connects to Vipps now, for a person looking at the dashboard: the token endpoint is asked
    /// (as `payhub check` asks it) at most once a minute per account, again at once after the account changed,
    /// and waited for at most 3 s; with how many seconds ago it was asked.
    pub async fn connection(&self, accounts: &Accounts, view: &AccountView) -> (CredentialCheck, u64) {
        let cached = self.checked.lock().unwrap_or_else(|p| p.into_inner()).get(&view.id).cloned();
        if let Some((at, version, check)) = cached {
            if version == view.updated_at && at.elapsed() < CONNECTION_CHECK_STANDS {
                return (check, at.elapsed().as_secs());
            }
        }
        let check = tokio::time::timeout(CONNECTION_CHECK_WAIT, self.check_credentials(accounts, view))
            .await
            .unwrap_or_else(|_| CredentialCheck::Unreachable("no answer within 3 s".into()));
        self.checked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(view.id.clone(), (std::time::Instant::now(), view.updated_at.clone(), check.clone()));
        (check, 0)
    }
}

/// What Vipps' token endpoint said to an account's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialCheck {
    /// Vipps issued an access token.
    Ok,
    /// Vipps refused the client id, client secret or subscription key (or payhub could not use them); why.
    Refused(String),
    /// Vipps could not be reached or answered with a failure of its own (5xx, 429, timeout); what happened.
    Unreachable(String),
}

impl CredentialCheck {
    /// The outcome in the words `payhub check` prints: `credentials ok`, `refused`, `unreachable`.
    pub fn label(&self) -> &'static str {
        match self {
            CredentialCheck::Ok => "credentials ok",
            CredentialCheck::Refused(_) => "refused",
            CredentialCheck::Unreachable(_) => "unreachable",
        }
    }

    /// Why, for a refusal or an unreachable Vipps.
    pub fn detail(&self) -> Option<&str> {
        match self {
            CredentialCheck::Ok => None,
            CredentialCheck::Refused(why) | CredentialCheck::Unreachable(why) => Some(why),
        }
    }
}
