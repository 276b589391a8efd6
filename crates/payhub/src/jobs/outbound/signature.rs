//! Standard Webhooks signing of outbound deliveries: `whsec_` secrets, the `v1,` HMAC-SHA256 signature a
//! delivery carries, and the check a receiver makes (timestamp tolerance, constant-time compare).

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

const SECRET_PREFIX: &str = "whsec_";

/// A new random signing secret: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", BASE64.encode(bytes))
}

/// A secret that is not `whsec_` + base64 (or decodes to nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a webhook secret is `whsec_` followed by base64")]
pub struct InvalidSecret;

fn secret_bytes(secret: &str) -> Result<Vec<u8>, InvalidSecret> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    match BASE64.decode(encoded) {
        Ok(bytes) if !bytes.is_empty() => Ok(bytes),
        _ => Err(InvalidSecret),
    }
}

fn signature_bytes(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return Vec::new(),
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// The `webhook-signature` value for `body` sent with `id` at `timestamp` (Unix seconds):
/// `v1,` + base64 of HMAC-SHA256 over `"{id}.{timestamp}.{body}"` keyed with the decoded secret.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, InvalidSecret> {
    let key = secret_bytes(secret)?;
    Ok(format!("v1,{}", BASE64.encode(signature_bytes(&key, id, timestamp, body))))
}

/// Checks a delivery as a receiver would: the timestamp within `tolerance` of `now`, and one of the
/// space-separated `v1,` signatures matching (compared in constant time).
pub fn verify(
    secret: &str,
    id: &str,
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> bool {
    let Ok(key) = secret_bytes(secret) else { return false };
    let Ok(timestamp) = timestamp_header.trim().parse::<i64>() else { return false };
    let skew = now.timestamp().abs_diff(timestamp);
    if skew > tolerance.as_secs() {
        return false;
    }
    let expected = signature_bytes(&key, id, timestamp, body);
    signature_header.split(' ').filter_map(|part| part.strip_prefix("v1,")).any(|candidate| {
        BASE64.decode(candidate).is_ok_and(|given| {
            use subtle::ConstantTimeEq;
            given.len() == expected.len() && bool::from(given.ct_eq(&expected))
        })
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // The test vector published with the Standard Webhooks specification.
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TIMESTAMP: i64 = 1_614_265_330;
    const VECTOR_BODY: &str = r#"{"test": 2432232314}"#;
    const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    #[test]
    fn signing_reproduces_the_standard_webhooks_test_vector() {
        assert_eq!(sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY.as_bytes()).unwrap(), VECTOR_SIGNATURE);
    }

    #[test]
    fn verification_accepts_the_vector_and_rejects_any_change() {
        let tolerance = Duration::from_secs(300);
        let now = at(VECTOR_TIMESTAMP + 10);
        let ts = VECTOR_TIMESTAMP.to_string();
        assert!(verify(VECTOR_SECRET, VECTOR_ID, &ts, VECTOR_SIGNATURE, VECTOR_BODY.as_bytes(), now, tolerance));
        let rotated = format!("v1,bm90IGl0 {VECTOR_SIGNATURE}");
        assert!(verify(VECTOR_SECRET, VECTOR_ID, &ts, &rotated, VECTOR_BODY.as_bytes(), now, tolerance));
        assert!(!verify(VECTOR_SECRET, VECTOR_ID, &ts, VECTOR_SIGNATURE, br#"{"test": 2432232315}"#, now, tolerance));
        assert!(!verify(VECTOR_SECRET, "msg_other", &ts, VECTOR_SIGNATURE, VECTOR_BODY.as_bytes(), now, tolerance));
        assert!(!verify(&new_secret(), VECTOR_ID, &ts, VECTOR_SIGNATURE, VECTOR_BODY.as_bytes(), now, tolerance));
        let late = at(VECTOR_TIMESTAMP + 301);
        assert!(!verify(VECTOR_SECRET, VECTOR_ID, &ts, VECTOR_SIGNATURE, VECTOR_BODY.as_bytes(), late, tolerance));
        for bad in ["", "v1,", "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "v1,***"] {
            assert!(!verify(VECTOR_SECRET, VECTOR_ID, &ts, bad, VECTOR_BODY.as_bytes(), now, tolerance), "{bad}");
        }
        assert!(!verify(VECTOR_SECRET, VECTOR_ID, "soon", VECTOR_SIGNATURE, VECTOR_BODY.as_bytes(), now, tolerance));
        assert!(!verify("whsec_!!", VECTOR_ID, &ts, VECTOR_SIGNATURE, VECTOR_BODY.as_bytes(), now, tolerance));
    }

    #[test]
    fn new_secrets_are_prefixed_random_and_32_bytes() {
        let a = new_secret();
        assert!(a.starts_with("whsec_"));
        assert_eq!(secret_bytes(&a).unwrap().len(), 32);
        assert_ne!(a, new_secret());
        assert_eq!(secret_bytes("whsec_"), Err(InvalidSecret));
    }
}
