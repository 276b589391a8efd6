//! Access token cache: one shared refresh, refreshed before expiry.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use http::HeaderValue;
use serde::Deserialize;

use crate::client::Inner;
use crate::error::Error;
use crate::wire::opt_int_or_string;

/// Lifetime assumed when the token response states none (the test environment's 1 hour).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// Longest lifetime believed (production tokens live 24 hours); guards against absurd values.
const MAX_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Default)]
pub(crate) struct TokenCache {
    current: RwLock<Option<Arc<CachedToken>>>,
    refresh: tokio::sync::Mutex<()>,
}

struct CachedToken {
    /// `Bearer <token>`, marked sensitive.
    header: HeaderValue,
    refresh_at: Instant,
    expires_at: Instant,
}

/// `POST /accesstoken/get` response; numeric fields arrive as strings or numbers.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default, deserialize_with = "opt_int_or_string")]
    expires_in: Option<i64>,
    #[serde(default, deserialize_with = "opt_int_or_string")]
    expires_on: Option<i64>,
}

impl TokenCache {
    fn cached(&self) -> Option<Arc<CachedToken>> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn fresh(&self, now: Instant) -> Option<HeaderValue> {
        self.cached().filter(|t| now < t.refresh_at).map(|t| t.header.clone())
    }

    pub(crate) fn clear(&self) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Drops the cached token if it is still `header` (a 401 proved it bad); a token another
    /// task already replaced is kept.
    pub(crate) fn invalidate(&self, header: &HeaderValue) {
        let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
        if guard.as_ref().is_some_and(|t| t.header == *header) {
            *guard = None;
        }
    }
}

impl Inner {
    /// The `Authorization` header value to use now, fetching a token if needed.
    pub(crate) async fn bearer(&self) -> Result<HeaderValue, Error> {
        if let Some(header) = self.token.fresh(Instant::now()) {
            return Ok(header);
        }
        let _guard = self.token.refresh.lock().await;
        // Another task may have refreshed while this one waited.
        let now = Instant::now();
        if let Some(header) = self.token.fresh(now) {
            return Ok(header);
        }
        match self.fetch_token().await {
            Ok(token) => {
                let header = token.header.clone();
                *self.token.current.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(token));
                Ok(header)
            }
            Err(err) => {
                // Refreshing early failed, but the old token is still valid: keep using it.
                match self.token.cached().filter(|t| now < t.expires_at) {
                    Some(old) => {
                        tracing::warn!(error = %err, "access token refresh failed; using the still-valid token");
                        Ok(old.header.clone())
                    }
                    None => Err(err),
                }
            }
        }
    }

    async fn fetch_token(&self) -> Result<CachedToken, Error> {
        let url = self.url(&["accesstoken", "get"], &[])?;
        let creds = &self.config.credentials;
        let started = Instant::now();
        let response = self
            .execute(&crate::client::CallOptions::default(), false, || {
                let mut secret = HeaderValue::from_str(creds.client_secret.expose())
                    .map_err(|_| Error::InvalidInput("invalid client_secret".into()))?;
                secret.set_sensitive(true);
                self.http
                    .post(url.clone())
                    .headers(self.common_headers.clone())
                    .header("client_id", creds.client_id.as_str())
                    .header("client_secret", secret)
                    .header(http::header::CONTENT_LENGTH, "0")
                    .build()
                    .map_err(|e| Error::InvalidInput(format!("cannot build token request: {e}")))
            })
            .await?;
        let parsed: TokenResponse = response.json()?;
        if parsed.access_token.is_empty() {
            return Err(response.unexpected("access_token is empty"));
        }
        if let Some(kind) = parsed.token_type.as_deref() {
            if !kind.eq_ignore_ascii_case("bearer") {
                return Err(response.unexpected("token_type is not Bearer"));
            }
        }
        let lifetime = token_lifetime(&parsed);
        let margin = self.config.token_refresh_margin.min(lifetime / 2);
        let mut header = HeaderValue::from_str(&format!("Bearer {}", parsed.access_token))
            .map_err(|_| response.unexpected("access_token is not a valid header value"))?;
        header.set_sensitive(true);
        Ok(CachedToken {
            header,
            refresh_at: started + lifetime.saturating_sub(margin),
            expires_at: started + lifetime,
        })
    }
}

fn token_lifetime(parsed: &TokenResponse) -> Duration {
    let seconds = parsed.expires_in.filter(|s| *s > 0).or_else(|| {
        let now = chrono::Utc::now().timestamp();
        parsed.expires_on.map(|on| on - now).filter(|s| *s > 0)
    });
    match seconds {
        Some(s) => Duration::from_secs(u64::try_from(s).unwrap_or(0)).min(MAX_LIFETIME),
        None => {
            tracing::warn!("token response has no usable lifetime; assuming one hour");
            DEFAULT_LIFETIME
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn token_responses_with_string_or_number_fields_give_the_same_lifetime() {
        let strings: TokenResponse = serde_json::from_str(
            r#"{"token_type":"Bearer","expires_in":"86398","ext_expires_in":"0","expires_on":"1495271273","not_before":"1495184574","resource":"00000002-0000-0000-c000-000000000000","access_token":"eyJ0eXAi"}"#,
        )
        .unwrap();
        let numbers: TokenResponse = serde_json::from_str(
            r#"{"token_type":"Bearer","expires_in":86398,"expires_on":1495271273,"access_token":"eyJ0eXAi"}"#,
        )
        .unwrap();
        assert_eq!(token_lifetime(&strings), Duration::from_secs(86398));
        assert_eq!(token_lifetime(&numbers), Duration::from_secs(86398));
    }

    #[test]
    fn a_token_without_expires_in_uses_expires_on() {
        let on = chrono::Utc::now().timestamp() + 900;
        let parsed: TokenResponse =
            serde_json::from_str(&format!(r#"{{"access_token":"x","expires_on":"{on}"}}"#)).unwrap();
        let lifetime = token_lifetime(&parsed).as_secs();
        assert!((895..=900).contains(&lifetime), "{lifetime}");
        let bare: TokenResponse = serde_json::from_str(r#"{"access_token":"x"}"#).unwrap();
        assert_eq!(token_lifetime(&bare), DEFAULT_LIFETIME);
    }

    #[test]
    fn absurd_lifetimes_are_capped_so_instants_cannot_overflow() {
        let parsed: TokenResponse =
            serde_json::from_str(r#"{"access_token":"x","expires_in":9223372036854775807}"#).unwrap();
        assert_eq!(token_lifetime(&parsed), MAX_LIFETIME);
        let negative: TokenResponse = serde_json::from_str(r#"{"access_token":"x","expires_in":"-5"}"#).unwrap();
        assert_eq!(token_lifetime(&negative), DEFAULT_LIFETIME);
    }
}
