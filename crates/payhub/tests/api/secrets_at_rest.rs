//! The database never holds a secret in plain text: the SQLite files (with the WAL) and a `pg_dump`.

use crate::helpers::{account_body, Backend, TestApp};
use crate::on_both_backends;

const SECRETS: [&str; 2] = ["client-secret-Vault-Y8Kteew6GE2Zme", "subkey-Vault-0f14ebcab0ec4b29ae0cb9"];

async fn database_bytes(app: &TestApp) -> Option<Vec<u8>> {
    match app.backend {
        Backend::Sqlite => {
            let mut bytes = Vec::new();
            for entry in std::fs::read_dir(app.data_dir.path()).unwrap() {
                let path = entry.unwrap().path();
                if path.file_name().unwrap().to_string_lossy().starts_with("payhub.db") {
                    bytes.extend(std::fs::read(&path).unwrap());
                }
            }
            Some(bytes)
        }
        Backend::Postgres => {
            let output = std::process::Command::new("pg_dump").arg("--data-only").arg(&app.database_url).output();
            match output {
                Ok(output) if output.status.success() => Some(output.stdout),
                _ => {
                    eprintln!("skipped the pg_dump check: pg_dump is not available");
                    None
                }
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

on_both_backends! {
    async fn the_database_never_contains_a_secret_in_plain_text(app) {
        let created = app.create_account(account_body("Vault")).await;
        assert_eq!(app.state.accounts.credentials(created["id"].as_str().unwrap()).await.unwrap().client_secret.expose(), SECRETS[0]);
        if let Some(bytes) = database_bytes(&app).await {
            assert!(contains(&bytes, "Vault"), "the dump holds the account (so the check can see data)");
            assert!(contains(&bytes, "fb492b5e-7907-4d83-ba20-c7fb60ca35de"), "the client key is not a secret");
            for secret in SECRETS {
                assert!(!contains(&bytes, secret), "{secret} found in plain text");
            }
        }
    }
}
