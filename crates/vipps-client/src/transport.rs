//! Sending requests: headers, time limits, retries with the caller's idempotency key.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::Method;
use rand::Rng;
use serde::de::DeserializeOwned;
use url::Url;

use crate::client::{CallOptions, Inner};
use crate::config::RetryPolicy;
use crate::error::{self, Error};

/// A complete response (status, headers and the whole body).
pub(crate) struct RawResponse {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl RawResponse {
    /// Decodes a success body; an unreadable body becomes [`Error::UnexpectedBody`].
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| self.unexpected(&format!("cannot decode response body: {e}")))
    }

    pub(crate) fn unexpected(&self, reason: &str) -> Error {
        Error::UnexpectedBody {
            status: self.status,
            content_type: self.header(CONTENT_TYPE.as_str()).map(str::to_owned),
            body: error::body_text(&self.body),
            reason: reason.to_owned(),
        }
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One API call as the operation modules describe it.
pub(crate) struct ApiCall<'a> {
    pub(crate) method: Method,
    /// Path segments; each is percent-encoded, so ids can never change the path.
    pub(crate) path: &'a [&'a str],
    pub(crate) query: &'a [(&'a str, &'a str)],
    pub(crate) headers: &'a [(&'static str, &'a str)],
    pub(crate) body: Option<Bytes>,
    pub(crate) idempotency_key: Option<&'a str>,
    /// For calls that Vipps does not make idempotent: retry only when the request surely did not
    /// reach Vipps (connection refused) or was refused unprocessed (429).
    pub(crate) unsafe_to_repeat: bool,
}

impl<'a> ApiCall<'a> {
    pub(crate) fn new(method: Method, path: &'a [&'a str]) -> Self {
        Self { method, path, query: &[], headers: &[], body: None, idempotency_key: None, unsafe_to_repeat: false }
    }

    pub(crate) fn json<T: serde::Serialize>(mut self, body: &T) -> Result<Self, Error> {
        let bytes =
            serde_json::to_vec(body).map_err(|e| Error::InvalidInput(format!("cannot encode request body: {e}")))?;
        self.body = Some(Bytes::from(bytes));
        Ok(self)
    }

    pub(crate) fn key(mut self, key: &'a str) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    pub(crate) fn query(mut self, query: &'a [(&'a str, &'a str)]) -> Self {
        self.query = query;
        self
    }
}

impl Inner {
    pub(crate) fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Url, Error> {
        let mut url = self.base.clone();
        {
            let mut path =
                url.path_segments_mut().map_err(|()| Error::InvalidInput("base URL cannot carry a path".into()))?;
            path.pop_if_empty();
            path.extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// Sends an authenticated API call. On a 401 the token is refreshed once and the call
    /// repeated (same idempotency key); transient failures are retried per the policy.
    pub(crate) async fn call(&self, call: ApiCall<'_>, options: &CallOptions) -> Result<RawResponse, Error> {
        if call.path.iter().any(|segment| segment.is_empty()) {
            return Err(Error::InvalidInput("an id in the request path is empty".into()));
        }
        let url = self.url(call.path, call.query)?;
        let idempotency_key = call
            .idempotency_key
            .map(HeaderValue::from_str)
            .transpose()
            .map_err(|_| Error::InvalidInput("idempotency key is not a valid header value".into()))?;
        let mut refreshed = false;
        loop {
            let bearer = self.bearer().await?;
            let result = self
                .execute(options, call.unsafe_to_repeat, || {
                    // Built directly (not through RequestBuilder): one header-map copy, no re-parsing.
                    let mut request = reqwest::Request::new(call.method.clone(), url.clone());
                    let headers = request.headers_mut();
                    headers.clone_from(&self.common_headers);
                    headers.insert(AUTHORIZATION, bearer.clone());
                    for (name, value) in call.headers {
                        let value = HeaderValue::from_str(value)
                            .map_err(|_| Error::InvalidInput(format!("invalid value for header {name}")))?;
                        headers.insert(*name, value);
                    }
                    if let Some(key) = &idempotency_key {
                        headers.insert(IDEMPOTENCY_KEY, key.clone());
                    }
                    if let Some(body) = &call.body {
                        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                        *request.body_mut() = Some(body.clone().into());
                    }
                    Ok(request)
                })
                .await;
            match result {
                Err(Error::Authentication(_)) if !refreshed => {
                    // The token may have been revoked or expired early: fetch a new one, once.
                    self.token.invalidate(&bearer);
                    refreshed = true;
                }
                other => return other,
            }
        }
    }

    /// Runs attempts of one request until success, a non-retryable failure or the retry budget
    /// is spent. `build` is called per attempt and must send the same idempotency key each time.
    pub(crate) async fn execute(
        &self,
        options: &CallOptions,
        unsafe_to_repeat: bool,
        build: impl Fn() -> Result<reqwest::Request, Error>,
    ) -> Result<RawResponse, Error> {
        let policy = options.retry.as_ref().unwrap_or(&self.config.retry);
        let timeout = options.timeout.unwrap_or(self.config.timeout);
        let mut attempt: u32 = 0;
        loop {
            // reqwest's per-request timeout covers connecting, sending and reading the whole body.
            let started = std::time::Instant::now();
            let mut api = "other";
            let outcome = async {
                let mut request = build()?;
                *request.timeout_mut() = Some(timeout);
                api = api_of(request.url());
                let mut response = self.http.execute(request).await.map_err(Fetch::Transport)?;
                let status = response.status().as_u16();
                let headers = std::mem::take(response.headers_mut());
                let body = response.bytes().await.map_err(Fetch::Transport)?;
                Ok::<_, Fetch>(RawResponse { status, headers, body })
            }
            .await;
            if let Some(observer) = &self.config.observer {
                let status = match &outcome {
                    Ok(response) => Some(response.status),
                    Err(_) => None,
                };
                if !matches!(outcome, Err(Fetch::Build(_))) {
                    (observer.0)(&crate::config::CallRecord { api, status, elapsed: started.elapsed() });
                }
            }

            let (err, retryable, retry_after) = match outcome {
                Ok(response) if (200..300).contains(&response.status) => return Ok(response),
                Ok(response) => {
                    let retry_after = response.header(RETRY_AFTER.as_str()).and_then(parse_retry_after);
                    let retryable = match response.status {
                        429 => true,
                        423 | 500..=599 => !unsafe_to_repeat,
                        _ => false,
                    };
                    let err = error::from_response(
                        response.status,
                        response.header(CONTENT_TYPE.as_str()),
                        retry_after,
                        &response.body,
                    );
                    (err, retryable, retry_after)
                }
                Err(Fetch::Build(err)) => return Err(err),
                Err(Fetch::Transport(e)) if e.is_timeout() => (Error::Timeout(timeout), !unsafe_to_repeat, None),
                Err(Fetch::Transport(e)) => {
                    let retryable = !unsafe_to_repeat || e.is_connect();
                    (Error::Transport(e), retryable, None)
                }
            };

            if !retryable || attempt >= policy.max_retries {
                return Err(err);
            }
            let delay = match retry_after {
                Some(wait) if wait > policy.max_retry_after => return Err(err),
                Some(wait) => wait,
                None => backoff(policy, attempt),
            };
            attempt += 1;
            tracing::debug!(attempt, ?delay, error = %err, "retrying Vipps request with the same idempotency key");
            tokio::time::sleep(delay).await;
        }
    }
}

/// The API a request URL belongs to, from a fixed list (so a metrics label stays bounded), wherever the base
/// URL puts it (a simulator may sit under a path prefix).
fn api_of(url: &url::Url) -> &'static str {
    const APIS: [&str; 5] = ["accesstoken", "epayment", "recurring", "webhooks", "report"];
    url.path_segments()
        .into_iter()
        .flatten()
        .find_map(|segment| APIS.iter().find(|api| **api == segment).copied())
        .unwrap_or("other")
}

/// Why an attempt produced no response.
enum Fetch {
    /// The request could not be built (nothing was sent).
    Build(Error),
    Transport(reqwest::Error),
}

impl From<Error> for Fetch {
    fn from(err: Error) -> Self {
        Fetch::Build(err)
    }
}

const IDEMPOTENCY_KEY: http::HeaderName = http::HeaderName::from_static("idempotency-key");

/// Exponential backoff with "equal jitter": half the step fixed, half random.
fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let step = policy.initial_backoff.saturating_mul(2u32.saturating_pow(attempt.min(16))).min(policy.max_backoff);
    let half = step / 2;
    let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    let jitter = if jitter_ms == 0 { 0 } else { rand::thread_rng().gen_range(0..=jitter_ms) };
    half + Duration::from_millis(jitter)
}

/// `Retry-After` as delta-seconds or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(30)).format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let wait = parse_retry_after(&soon).unwrap();
        assert!(wait <= Duration::from_secs(30) && wait >= Duration::from_secs(28), "{wait:?}");
        assert_eq!(parse_retry_after("Thu, 01 Jan 2015 00:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("later"), None);
    }

    #[test]
    fn backoff_grows_but_stays_within_the_cap() {
        let policy = RetryPolicy::new(10, Duration::from_millis(100), Duration::from_millis(800));
        for attempt in 0..20 {
            let d = backoff(&policy, attempt);
            let step = Duration::from_millis(100 * 2u64.pow(attempt.min(3))).min(Duration::from_millis(800));
            assert!(d >= step / 2 && d <= step, "attempt {attempt}: {d:?}");
        }
        let zero = RetryPolicy::new(1, Duration::ZERO, Duration::ZERO);
        assert_eq!(backoff(&zero, 5), Duration::ZERO);
    }
}
