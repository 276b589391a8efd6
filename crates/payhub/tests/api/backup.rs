//! `payhub backup FILE`: a consistent copy of the live SQLite database while writes go on, restored as the
//! README says (the copy becomes `payhub.db` of a data directory, with the master key kept apart); on
//! PostgreSQL the command points at pg_dump.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use payhub::domain::role::Role;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::cli::{payhub, payhub_of, run_beside};
use crate::helpers::{Backend, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_writes_go_on_restores_with_its_data_and_passes_the_integrity_check() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    // Enough rows that the copy takes several steps of the backup API (checked below from the pages copied).
    for i in 0..300 {
        app.key(if i % 2 == 0 { Role::Integrator } else { Role::Finance }).await;
    }
    let before = app.admin(Method::GET, "/admin/api/keys").send().await.unwrap().json::<serde_json::Value>().await;
    let keys_before = before.unwrap()["keys"].as_array().unwrap().len();

    // Writes through the API for as long as the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, written) = (stop.clone(), written.clone());
        let request = app.admin(Method::POST, "/admin/api/keys");
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let response = request
                    .try_clone()
                    .unwrap()
                    .json(&json!({"name": "during the backup", "role": "integrator"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::CREATED);
                written.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    while written.load(Ordering::Relaxed) < 5 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let copies = tempfile::tempdir().unwrap();
    let file = copies.path().join("payhub-backup.db");
    let at_start = written.load(Ordering::Relaxed);
    let (code, out, err) = run_beside(payhub_of(&app, &["backup", &file.display().to_string()])).await;
    let at_end = written.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("integrity ok") && out.contains("master key is not in the backup"), "{out}");
    assert!(at_end > at_start, "writes went on while the backup ran ({at_start} → {at_end})");
    let pages: u64 = out.split(" pages").next().and_then(|t| t.rsplit('(').next()).unwrap().parse().unwrap();
    assert!(pages > payhub::store::backup::PAGES_PER_STEP, "{pages} pages: more than one step");
    assert!(!copies.path().join("payhub-backup.db.partial").exists());

    // A second backup to the same file is refused rather than overwriting it.
    let (code, _, err) = run_beside(payhub_of(&app, &["backup", &file.display().to_string()])).await;
    assert_ne!(code, 0);
    assert!(err.contains("exists already"), "{err}");

    // Restore as the README says: the copy becomes payhub.db of a data directory; the key comes from apart.
    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(&file, restored.path().join("payhub.db")).unwrap();
    assert_eq!(payhub::store::backup::integrity_check(&restored.path().join("payhub.db")).unwrap(), "ok");
    let url = format!("sqlite://{}", restored.path().join("payhub.db").display());
    let mut list = payhub(restored.path(), &url);
    list.env("PAYHUB_MASTER_KEY", &app.master_key).args(["keys", "list"]);
    let (code, out, err) = run_beside(list).await;
    assert_eq!(code, 0, "{err}");
    let restored_keys = out.lines().count();
    // Every key made before the backup began is there, with some of those made during it (one snapshot).
    assert!(restored_keys >= keys_before + at_start, "{restored_keys} < {keys_before} + {at_start}");
    // (+1: a key committed whose answer had not yet been counted when the backup ended.)
    assert!(restored_keys <= keys_before + at_end + 1, "{restored_keys} > {keys_before} + {at_end} + 1");
    let mut check = payhub(restored.path(), &url);
    check.env("PAYHUB_MASTER_KEY", &app.master_key).arg("check");
    let (code, out, err) = run_beside(check).await;
    assert_eq!(code, 0, "the restored database opens with the same key: {out}{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_on_postgresql_says_to_use_pg_dump() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        eprintln!("skipped: PAYHUB_TEST_DATABASE_URL is not set");
        return;
    };
    let file = app.data_dir.path().join("backup.db");
    let (code, _, err) = run_beside(payhub_of(&app, &["backup", &file.display().to_string()])).await;
    assert_ne!(code, 0);
    assert!(err.contains("pg_dump") && err.contains("PostgreSQL"), "{err}");
    assert!(!file.exists());
}
