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
}

impl VippsClients {
    /// A registry whose clients give each attempt of a call `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self { cache: Arc::default(), timeout }
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
        let credentials = accounts.credentials(account_id).await?;
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
        let client = Client::new(config).map_err(|e| ServiceError::Internal(e.into()))?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(account_id.to_owned(), (view.updated_at.clone(), client.clone()));
        }
        Ok(client)
    }
}
