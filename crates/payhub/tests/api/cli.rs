//! The `payhub` binary: help, configuration errors, and the accounts, users and keys commands.

use crate::helpers::cli::{payhub, run};
use crate::helpers::{Backend, TestApp};

#[test]
fn help_lists_the_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = payhub(dir.path(), "sqlite://unused.db");
    command.arg("--help");
    let (code, out, _) = run(command, "");
    assert_eq!(code, 0);
    for sub in ["serve", "migrate", "accounts", "users", "keys"] {
        assert!(out.contains(sub), "{sub} in {out}");
    }
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = payhub(dir.path(), "mysql://localhost/payhub");
    command.arg("migrate");
    let (code, _, err) = run(command, "");
    assert_eq!(code, 2);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("PAYHUB_DATABASE_URL"), "{err}");
    let mut command = payhub(dir.path(), "sqlite://x.db");
    command.env("PAYHUB_LISTEN", "localhost").arg("serve");
    let (code, _, err) = run(command, "");
    assert_eq!(code, 2);
    assert!(err.contains("PAYHUB_LISTEN"), "{err}");
}

#[test]
fn a_missing_sqlite_file_without_create_intent_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("absent.db").display());
    let mut command = payhub(dir.path(), &url);
    command.arg("migrate");
    let (code, _, err) = run(command, "");
    assert_ne!(code, 0, "{err}");
    assert!(!dir.path().join("absent.db").exists());
}

async fn accounts_lifecycle(app: TestApp) {
    let dir = app.data_dir.path().to_owned();
    let url = app.database_url.clone();
    let key = format!("{:0>64}", "ab");
    let cmd = |args: &[&str]| {
        let mut command = payhub(&dir, &url);
        command.env("PAYHUB_MASTER_KEY", &key).args(args);
        command
    };
    let (code, out, err) = run(
        cmd(&[
            "accounts",
            "add",
            "--name",
            "Cli One",
            "--msn",
            "654321",
            "--client-key",
            "cid-1",
            "--agreement-url",
            "https://example.org/a",
        ]),
        "cli-secret-1\ncli-subkey-1\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("added account Cli One") && out.contains("the default"), "{out}");
    let (code, _, err) =
        run(cmd(&["accounts", "add", "--name", "Cli Two", "--msn", "12", "--client-key", "cid-2"]), "s\nk\n");
    assert_eq!(code, 2);
    assert!(err.contains("merchant_serial_number"), "{err}");
    let (code, _, err) =
        run(cmd(&["accounts", "add", "--name", "cli one", "--msn", "1234", "--client-key", "cid-2"]), "s\nk\n");
    assert_eq!(code, 2);
    assert!(err.contains("already exists"), "{err}");
    let (code, out, _) = run(cmd(&["accounts", "list"]), "");
    assert_eq!(code, 0);
    assert!(out.contains("Cli One") && out.contains("654321"), "{out}");
    let (code, out, _) =
        run(cmd(&["accounts", "update", "Cli One", "--retry-days", "9", "--new-client-secret"]), "cli-secret-2\n");
    assert_eq!(code, 0);
    assert!(out.contains("updated"));
    let (code, out, _) = run(cmd(&["accounts", "show", "Cli One"]), "");
    assert_eq!(code, 0);
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["retry_days"], 9);
    assert_eq!(shown["client_secret_set"], true);
    assert!(!out.contains("cli-secret"), "secrets are never printed");
    let (code, _, _) = run(cmd(&["accounts", "remove", "Cli One"]), "");
    assert_eq!(code, 0);
    let (_, out, _) = run(cmd(&["accounts", "list", "--json"]), "");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap(), serde_json::json!([]));

    let (code, out, err) = run(cmd(&["users", "create-admin", "--email", "root@example.org"]), "a long password!\n");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("created admin user root@example.org"));
    let (code, out, _) = run(cmd(&["keys", "create", "--name", "form", "--role", "integrator"]), "");
    assert_eq!(code, 0);
    assert!(out.trim().starts_with("phk_"));
    let (code, _, err) = run(cmd(&["keys", "create", "--name", "form", "--role", "root"]), "");
    assert_eq!(code, 2, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_users_and_keys_are_managed_from_the_command_line_on_sqlite() {
    accounts_lifecycle(TestApp::spawn(Backend::Sqlite).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_users_and_keys_are_managed_from_the_command_line_on_postgres() {
    match TestApp::spawn(Backend::Postgres).await {
        Some(app) => accounts_lifecycle(app).await,
        None => eprintln!("skipped: PAYHUB_TEST_DATABASE_URL is not set"),
    }
}
