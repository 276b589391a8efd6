//! Random tokens (session cookies, API keys, CSRF, setup links) and how they are stored: only a SHA-256 hash.
//! The tokens carry 256 bits of randomness, so a fast hash is enough; passwords use argon2 instead.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A new random token: 32 bytes, base64url without padding, after `prefix`.
pub fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of a token: hex SHA-256.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two tokens in constant time.
pub fn tokens_match(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashes_are_stable() {
        let a = new_token("phk_");
        assert!(a.starts_with("phk_") && a.len() == 4 + 43);
        assert_ne!(a, new_token("phk_"));
        assert_eq!(hash_token(&a), hash_token(&a));
        assert!(tokens_match(&a, &a.clone()) && !tokens_match(&a, "phk_x"));
    }
}
