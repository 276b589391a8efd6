//! Who is calling over HTTP: the caller of a JSON API by its bearer key, the caller of a page by its session
//! cookie. The guard that enforces access with these is in `app`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderMap};
use chrono::{DateTime, Utc};

use super::Principal;
use crate::store::Store;

/// Name of the browser session cookie.
pub const SESSION_COOKIE: &str = "payhub_session";

/// A cookie's value from the request headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The client's address, for the audit log.
pub fn client_source(request: &Request) -> String {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The caller of a JSON API, from its `Authorization: Bearer <key>` header (`None`: no valid key).
/// `at` is payhub's time of the request ([`Principal::at`]).
pub async fn from_bearer(
    store: &Store,
    headers: &HeaderMap,
    source: &str,
    at: DateTime<Utc>,
) -> anyhow::Result<Option<Principal>> {
    let Some(key) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 200)
    else {
        return Ok(None);
    };
    let record = super::authenticate_key(store, key).await?;
    Ok(record.map(|k| Principal {
        label: format!("key:{} {}", k.id, k.name),
        id: k.id,
        role: k.role,
        csrf_token: None,
        source: source.to_owned(),
        at,
    }))
}

/// The caller of a page, from its session cookie (`None`: not signed in).
/// `at` is payhub's time of the request ([`Principal::at`]).
pub async fn from_session(
    store: &Store,
    headers: &HeaderMap,
    source: &str,
    at: DateTime<Utc>,
) -> anyhow::Result<Option<Principal>> {
    let Some(cookie) = cookie(headers, SESSION_COOKIE).filter(|c| !c.is_empty() && c.len() <= 200) else {
        return Ok(None);
    };
    let session = super::session(store, cookie).await?;
    Ok(session.map(|s| Principal {
        label: format!("user:{} {}", s.user.id, s.user.email),
        id: s.user.id,
        role: s.user.role,
        csrf_token: Some(s.csrf_token),
        source: source.to_owned(),
        at,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; payhub_session=abc; payhub_session_x=zzz".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "missing"), None);
    }
}
