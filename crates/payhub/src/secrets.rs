//! Secrets in memory and at rest.
//!
//! [`Secret`] wraps a value that must never be printed; [`MasterKey`] seals secrets with AES-256-GCM before they
//! are stored. A sealed value is bound to the record and field it belongs to (the associated data), so a sealed
//! client secret cannot be copied onto another account or field and still open.

use std::fmt;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;

/// A string that prints as `[redacted]` in `Debug` and `Display`; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret's text, for the one place that needs it (a Vipps call, a seal).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The 256-bit key that seals every stored secret.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

/// Sealed data that cannot be opened: wrong key, wrong record, or tampered.
#[derive(Debug, thiserror::Error)]
#[error("a sealed secret could not be opened (wrong master key or damaged data)")]
pub struct UnsealError;

const SEAL_PREFIX: &str = "v1:";

impl MasterKey {
    /// Parses 32 bytes written as 64 hex digits or as base64.
    pub fn parse(text: &str) -> Result<MasterKey, String> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|e| e.to_string())?
        } else {
            B64.decode(text).map_err(|_| "must be 32 bytes as 64 hex digits or base64".to_string())?
        };
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "must be exactly 32 bytes (64 hex digits or 44 base64 characters)".to_string())?;
        Ok(MasterKey(key))
    }

    /// A fresh random key.
    pub fn generate() -> MasterKey {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        MasterKey(key)
    }

    /// Reads the key file in `dir`, creating it (mode 0600) with a new random key when it does not exist.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<MasterKey> {
        let path = dir.join("master.key");
        match std::fs::read_to_string(&path) {
            Ok(text) => MasterKey::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir)?;
                let key = MasterKey::generate();
                write_private(&path, &hex::encode(key.0))?;
                tracing::info!(path = %path.display(), "created a new master key file; back it up with the database");
                Ok(key)
            }
            Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        }
    }

    /// Seals `plain` for the record/field named by `context`; the result is printable ASCII.
    pub fn seal(&self, plain: &str, context: &str) -> String {
        let cipher = Aes256Gcm::new((&self.0).into());
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        // Encryption with a valid key and a 12-byte nonce cannot fail for inputs below GCM's ~64 GiB limit.
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain.as_bytes(), aad: context.as_bytes() })
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{SEAL_PREFIX}{}", B64.encode(out))
    }

    /// Opens a value made by [`MasterKey::seal`] with the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Secret, UnsealError> {
        let raw = sealed.strip_prefix(SEAL_PREFIX).ok_or(UnsealError)?;
        let bytes = B64.decode(raw).map_err(|_| UnsealError)?;
        if bytes.len() < 12 + 16 {
            return Err(UnsealError);
        }
        let (nonce, body) = bytes.split_at(12);
        let cipher = Aes256Gcm::new((&self.0).into());
        let plain = cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad: context.as_bytes() })
            .map_err(|_| UnsealError)?;
        String::from_utf8(plain).map(Secret).map_err(|_| UnsealError)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_context() {
        let key = MasterKey::generate();
        let sealed = key.seal("hunter2-very-secret", "account:acc_1:client_secret");
        assert!(!sealed.contains("hunter2"));
        assert_eq!(key.open(&sealed, "account:acc_1:client_secret").unwrap().expose(), "hunter2-very-secret");
        assert!(key.open(&sealed, "account:acc_2:client_secret").is_err());
        assert!(MasterKey::generate().open(&sealed, "account:acc_1:client_secret").is_err());
        assert!(key.open("v1:AAAA", "x").is_err());
        assert!(key.open("garbage", "x").is_err());
    }

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("p4ss");
        assert_eq!(format!("{secret:?} {secret}"), "[redacted] [redacted]");
        assert_eq!(format!("{:?}", MasterKey::generate()), "MasterKey([redacted])");
    }

    #[test]
    fn the_key_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = MasterKey::load_or_create(dir.path()).unwrap();
        let second = MasterKey::load_or_create(dir.path()).unwrap();
        assert_eq!(first.0, second.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("master.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn master_keys_parse_from_hex_or_base64() {
        assert!(MasterKey::parse(&"ab".repeat(32)).is_ok());
        assert!(MasterKey::parse(&B64.encode([7u8; 32])).is_ok());
        assert!(MasterKey::parse("abc").is_err());
        assert!(MasterKey::parse(&B64.encode([7u8; 31])).is_err());
    }
}
