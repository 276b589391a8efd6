//! No silent new database: only `serve` and `migrate` create a data directory, a database or a master key, and
//! they say so naming the path; every other command run where there is no database refuses, names the path it
//! looked at and how to point it elsewhere, and creates nothing.

use std::path::Path;
use std::process::Command;

use crate::helpers::cli::run;

/// The `payhub` binary as a new user runs it: an empty environment but `PATH` (so the default data directory,
/// `./payhub-data`, is relative to `cwd`).
fn payhub_in(cwd: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_payhub"));
    command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).env("RUST_LOG", "warn");
    command.current_dir(cwd);
    command
}

#[test]
fn a_command_run_where_there_is_no_database_refuses_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["accounts", "list"][..],
        &["users", "list"],
        &["keys", "list"],
        &["heartbeat", "list"],
        &["recurring", "show", "rp_x"],
        &["check"],
    ] {
        let mut command = payhub_in(dir.path());
        command.args(args);
        let (code, out, err) = run(command, "");
        assert_ne!(code, 0, "{args:?} must fail: {out}{err}");
        assert!(out.is_empty(), "{args:?} prints no (empty) list: {out}");
        let looked_at = dir.path().join("payhub-data").join("payhub.db");
        assert!(err.contains(&looked_at.display().to_string()), "{args:?} names the path it looked at: {err}");
        assert!(err.contains("--data-dir") && err.contains("PAYHUB_DATA_DIR"), "{args:?} says how to point it: {err}");
        assert!(
            err.contains("payhub serve") || err.contains("payhub migrate"),
            "{args:?} says what creates one: {err}"
        );
        assert!(!dir.path().join("payhub-data").exists(), "{args:?} created the data directory");
    }
}

#[test]
fn a_data_dir_given_by_flag_or_environment_is_where_commands_look() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = dir.path().join("elsewhere");
    let mut command = payhub_in(dir.path());
    command.args(["--data-dir", &elsewhere.display().to_string(), "users", "list"]);
    let (code, _, err) = run(command, "");
    assert_ne!(code, 0);
    assert!(err.contains(&elsewhere.join("payhub.db").display().to_string()), "{err}");
    assert!(!elsewhere.exists());

    let mut command = payhub_in(dir.path());
    command.env("PAYHUB_DATA_DIR", &elsewhere).args(["keys", "list"]);
    let (code, _, err) = run(command, "");
    assert_ne!(code, 0);
    assert!(err.contains(&elsewhere.join("payhub.db").display().to_string()), "{err}");
    assert!(err.contains("PAYHUB_DATA_DIR"), "{err}");
    assert!(!elsewhere.exists());
}

#[test]
fn migrate_creates_the_data_directory_saying_so_in_one_line_and_then_commands_work() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("payhub-data");
    let mut command = payhub_in(dir.path());
    command.arg("migrate");
    let (code, out, err) = run(command, "");
    assert_eq!(code, 0, "{err}");
    let said: Vec<&str> = err.lines().chain(out.lines()).filter(|l| l.contains("creating")).collect();
    assert_eq!(said.len(), 1, "one line says what is created: {out}{err}");
    assert!(said[0].contains(&data.join("payhub.db").display().to_string()), "{}", said[0]);
    assert!(data.join("payhub.db").exists() && data.join("master.key").exists());

    // Now the same command from the same directory finds it, and a second migrate creates nothing.
    let mut command = payhub_in(dir.path());
    command.args(["users", "list"]);
    let (code, out, err) = run(command, "");
    assert_eq!(code, 0, "{out}{err}");
    let mut command = payhub_in(dir.path());
    command.arg("migrate");
    let (code, out, err) = run(command, "");
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("creating") && !out.contains("creating"), "{out}{err}");
}

#[test]
fn a_database_without_its_master_key_is_refused_rather_than_given_a_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = payhub_in(dir.path());
    command.arg("migrate");
    assert_eq!(run(command, "").0, 0);
    let key = dir.path().join("payhub-data").join("master.key");
    std::fs::remove_file(&key).unwrap();
    let mut command = payhub_in(dir.path());
    command.args(["accounts", "list"]);
    let (code, _, err) = run(command, "");
    assert_ne!(code, 0);
    assert!(err.contains(&key.display().to_string()) && err.contains("PAYHUB_MASTER_KEY"), "{err}");
    assert!(!key.exists(), "no new key was made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_postgresql_database_gets_a_clear_message() {
    let Ok(server) = std::env::var("PAYHUB_TEST_DATABASE_URL") else {
        eprintln!("skipped: PAYHUB_TEST_DATABASE_URL is not set");
        return;
    };
    let name = format!("payhub_absent_{}", uuid::Uuid::new_v4().simple());
    let base = server.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap();
    let url = format!("{base}/{name}");
    let dir = tempfile::tempdir().unwrap();
    for args in [&["accounts", "list"][..], &["migrate"]] {
        let mut command = payhub_in(dir.path());
        command.env("PAYHUB_DATABASE_URL", &url).env("PAYHUB_MASTER_KEY", "ab".repeat(32)).args(args);
        let (code, _, err) = tokio::task::spawn_blocking(move || run(command, "")).await.unwrap();
        assert_ne!(code, 0, "{args:?}");
        assert!(err.contains(&name) && err.contains("does not exist"), "{args:?}: {err}");
        assert!(err.contains("CREATE DATABASE") || err.contains("createdb"), "{args:?} says how to make it: {err}");
    }
    assert!(!dir.path().join("payhub-data").exists());
}
