//! Idempotency keys, validated for each API's rules.

use std::fmt;

use crate::error::Error;

/// An `Idempotency-Key` for ePayment (and Webhooks) calls: 1–50 visible ASCII characters.
///
/// Derive it from your own stable operation id (e.g. `capture-<order>-<n>`), so that a retry
/// after a crash reuses it. The client reuses it on every retry and never invents one.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Accepts 1–50 visible ASCII characters (no spaces or control characters, which are not
    /// valid in an HTTP header value anyway).
    pub fn parse(value: &str) -> Result<Self, Error> {
        if (1..=50).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self(value.to_owned()))
        } else {
            Err(Error::InvalidInput(format!(
                "ePayment idempotency key must be 1-50 visible ASCII characters, got {value:?}"
            )))
        }
    }

    /// A fresh random key (a UUID v4). Store it before sending if you may need to retry later.
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An `Idempotency-Key` for Recurring calls: 1–40 visible ASCII characters, none of `# ? / \`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RecurringIdempotencyKey(String);

impl RecurringIdempotencyKey {
    /// Accepts 1–40 visible ASCII characters, none of `#`, `?`, `/`, `\`.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let ok = (1..=40).contains(&value.len())
            && value.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'#' | b'?' | b'/' | b'\\'));
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(Error::InvalidInput(format!(
                "Recurring idempotency key must be 1-40 visible ASCII characters without # ? / \\, got {value:?}"
            )))
        }
    }

    /// A fresh random key (a UUID v4, 36 characters).
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({})", self.0)
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RecurringIdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecurringIdempotencyKey({})", self.0)
    }
}

impl fmt::Display for RecurringIdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epayment_keys_allow_up_to_fifty_visible_characters() {
        assert!(IdempotencyKey::parse("a").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(50)).is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(51)).is_err());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse("line\nbreak").is_err());
        assert!(IdempotencyKey::parse("æøå").is_err());
        assert!(IdempotencyKey::parse("capture/order-1#2").is_ok());
        assert_eq!(IdempotencyKey::random().as_str().len(), 36);
    }

    #[test]
    fn recurring_keys_allow_up_to_forty_characters_without_hash_question_or_slashes() {
        assert!(RecurringIdempotencyKey::parse(&"k".repeat(40)).is_ok());
        assert!(RecurringIdempotencyKey::parse(&"k".repeat(41)).is_err());
        assert!(RecurringIdempotencyKey::parse("").is_err());
        for bad in ["a#b", "a?b", "a/b", "a\\b", "a b"] {
            assert!(RecurringIdempotencyKey::parse(bad).is_err(), "{bad}");
        }
        assert!(RecurringIdempotencyKey::parse("charge-agr_123-2026-10").is_ok());
        assert!(RecurringIdempotencyKey::parse(RecurringIdempotencyKey::random().as_str()).is_ok());
    }
}
