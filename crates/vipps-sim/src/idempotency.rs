//! Generic idempotency store (reference §1.5): per API, MSN and key, the first reply is kept and
//! replayed for the same request; a different request under the same key is a conflict.
//!
//! A request is "the same" when method, path and body bytes are identical (see README, Decisions).
//! 5xx replies are not kept, so a retry after an internal error runs again.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use http::{HeaderMap, Method};

use crate::auth::{header, Api};
use crate::reply::Reply;

#[derive(Debug, PartialEq, Eq, Hash)]
struct Scope {
    api: Api,
    msn: String,
    key: String,
}

struct Entry {
    fingerprint: u64,
    reply: Reply,
}

/// Outcome of looking a key up.
pub(crate) enum Lookup {
    /// Not seen: run the operation, then `store` its reply with this fingerprint.
    Fresh(u64),
    /// Seen with the same request: send this reply again.
    Replay(Reply),
    /// Seen with a different request.
    Conflict,
}

/// All remembered keys.
#[derive(Default)]
pub(crate) struct IdemStore {
    map: HashMap<Scope, Entry>,
}

/// Why an `Idempotency-Key` header was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum KeyError {
    Missing,
    Invalid(&'static str),
}

/// Reads and checks `Idempotency-Key` under the rules of `api`: ePayment at most 50 characters;
/// Recurring 1 to 40 characters without `#`, `?`, `/` or `\`; others at most 50.
pub(crate) fn read_key(headers: &HeaderMap, api: Api) -> Result<String, KeyError> {
    let Some(raw) = headers.get("Idempotency-Key") else {
        return Err(KeyError::Missing);
    };
    let Ok(key) = raw.to_str() else {
        return Err(KeyError::Invalid("Idempotency-Key must be visible ASCII"));
    };
    if key.is_empty() {
        return Err(KeyError::Missing);
    }
    match api {
        Api::Recurring => {
            if key.chars().count() > 40 {
                return Err(KeyError::Invalid("Idempotency-Key must be 1 to 40 characters"));
            }
            if key.contains(['#', '?', '/', '\\']) {
                return Err(KeyError::Invalid("Idempotency-Key must not contain #, ?, / or \\"));
            }
        }
        Api::EPayment | Api::Webhooks | Api::Report => {
            if key.chars().count() > 50 {
                return Err(KeyError::Invalid("Idempotency-Key must be at most 50 characters"));
            }
        }
    }
    Ok(key.to_owned())
}

/// Whether the request carries an `Idempotency-Key` header at all.
pub(crate) fn has_key(headers: &HeaderMap) -> bool {
    header(headers, "Idempotency-Key").is_some()
}

fn fingerprint(method: &Method, path: &str, body: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    method.as_str().hash(&mut h);
    path.hash(&mut h);
    body.hash(&mut h);
    h.finish()
}

impl IdemStore {
    /// Looks up `key`; see [`Lookup`].
    pub(crate) fn check(&self, api: Api, msn: &str, key: &str, method: &Method, path: &str, body: &[u8]) -> Lookup {
        let fp = fingerprint(method, path, body);
        let scope = Scope { api, msn: msn.to_owned(), key: key.to_owned() };
        match self.map.get(&scope) {
            None => Lookup::Fresh(fp),
            Some(e) if e.fingerprint == fp => Lookup::Replay(e.reply.clone()),
            Some(_) => Lookup::Conflict,
        }
    }

    /// Forgets every remembered key, as Vipps does once its (undocumented) retention has passed: a request
    /// with a forgotten key runs again.
    pub(crate) fn clear(&mut self) {
        self.map.clear();
    }

    /// Remembers the reply of a fresh request (5xx replies are not remembered).
    pub(crate) fn store(&mut self, api: Api, msn: &str, key: &str, fingerprint: u64, reply: &Reply) {
        if reply.status.is_server_error() {
            return;
        }
        let scope = Scope { api, msn: msn.to_owned(), key: key.to_owned() };
        self.map.insert(scope, Entry { fingerprint, reply: reply.clone() });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http::{HeaderValue, StatusCode};

    fn headers(key: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("Idempotency-Key", HeaderValue::from_str(key).unwrap());
        h
    }

    #[test]
    fn recurring_keys_are_one_to_forty_chars_without_reserved_characters() {
        assert!(read_key(&headers("abc-123"), Api::Recurring).is_ok());
        assert!(read_key(&headers(&"a".repeat(40)), Api::Recurring).is_ok());
        assert!(matches!(read_key(&headers(&"a".repeat(41)), Api::Recurring), Err(KeyError::Invalid(_))));
        for bad in ["a#b", "a?b", "a/b", "a\\b"] {
            assert!(matches!(read_key(&headers(bad), Api::Recurring), Err(KeyError::Invalid(_))), "{bad}");
        }
        assert_eq!(read_key(&HeaderMap::new(), Api::Recurring), Err(KeyError::Missing));
    }

    #[test]
    fn epayment_keys_may_be_fifty_chars_but_not_more() {
        assert!(read_key(&headers(&"a".repeat(50)), Api::EPayment).is_ok());
        assert!(read_key(&headers("a/b#c"), Api::EPayment).is_ok());
        assert!(matches!(read_key(&headers(&"a".repeat(51)), Api::EPayment), Err(KeyError::Invalid(_))));
    }

    #[test]
    fn the_same_request_replays_and_a_different_one_conflicts() {
        let mut s = IdemStore::default();
        let Lookup::Fresh(fp) = s.check(Api::EPayment, "1234", "k", &Method::POST, "/p", b"{}") else {
            panic!("expected fresh")
        };
        s.store(Api::EPayment, "1234", "k", fp, &Reply::empty(StatusCode::BAD_REQUEST));
        assert!(matches!(
            s.check(Api::EPayment, "1234", "k", &Method::POST, "/p", b"{}"),
            Lookup::Replay(r) if r.status == StatusCode::BAD_REQUEST
        ));
        assert!(matches!(s.check(Api::EPayment, "1234", "k", &Method::POST, "/p", b"{ }"), Lookup::Conflict));
        assert!(matches!(s.check(Api::EPayment, "1234", "k", &Method::POST, "/q", b"{}"), Lookup::Conflict));
        assert!(matches!(s.check(Api::EPayment, "9999", "k", &Method::POST, "/p", b"{}"), Lookup::Fresh(_)));
        assert!(matches!(s.check(Api::Recurring, "1234", "k", &Method::POST, "/p", b"{}"), Lookup::Fresh(_)));
    }

    #[test]
    fn server_errors_are_not_remembered() {
        let mut s = IdemStore::default();
        s.store(Api::EPayment, "1234", "k", 1, &Reply::empty(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(matches!(s.check(Api::EPayment, "1234", "k", &Method::POST, "/p", b""), Lookup::Fresh(_)));
    }
}
