//! The fault suite's short versions, as CI runs them: the same run as the example programs `fault_crash`,
//! `fault_vipps` and `fault_two` (`examples/faults`), with fewer kills and seconds. Each starts the `payhub`
//! binary as processes of its own against a simulator in this process, and fails when an invariant does.

#[path = "../../examples/faults/mod.rs"]
mod faults;

use faults::{Fault, Settings};

/// A fresh database on `postgres` (`PAYHUB_TEST_DATABASE_URL`'s server) or an SQLite file in `dir`; `None`
/// when PostgreSQL is asked for and not configured.
async fn database(postgres: bool, dir: &std::path::Path) -> Option<String> {
    if !postgres {
        return Some(format!("sqlite://{}?mode=rwc", dir.join("payhub.db").display()));
    }
    let server = std::env::var("PAYHUB_TEST_DATABASE_URL").ok()?;
    let name = format!("payhub_faults_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&server).await.expect("connect to PAYHUB_TEST_DATABASE_URL");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.expect("create the database");
    admin.close().await;
    Some(crate::helpers::replace_database(&server, &name))
}

/// Drops the database of a PostgreSQL run.
async fn drop_database(database_url: &str) {
    let (Ok(server), Some((_, name))) = (std::env::var("PAYHUB_TEST_DATABASE_URL"), database_url.rsplit_once('/'))
    else {
        return;
    };
    let name = name.split('?').next().unwrap_or(name);
    if let Ok(admin) = sqlx::PgPool::connect(&server).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&admin).await;
        admin.close().await;
    }
}

/// Runs `fault` briefly and asserts that every invariant holds and that the run did what it should.
async fn short_run(fault: Fault, postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let Some(database_url) = database(postgres, dir.path()).await else {
        eprintln!("skipped: PAYHUB_TEST_DATABASE_URL is not set");
        return;
    };
    let sim = vipps_sim::Simulator::start(faults::simulator_config(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let settings = Settings {
        fault,
        payhub_bin: env!("CARGO_BIN_EXE_payhub").into(),
        sim_url: sim.base_url().trim_end_matches('/').to_owned(),
        database_url: database_url.clone(),
        data_dir: dir.path().to_owned(),
        clients: 3,
        between_kills_ms: (300, 900),
        // Under Vipps faults each call may take seconds (retries, held answers), so that run drives longer to reach
        // charges and refunds on a loaded machine.
        drive_seconds: if matches!(fault, Fault::Vipps { .. }) { 30 } else { 12 },
        settle_seconds: 60,
        seed: 14,
    };
    let report = faults::run(&settings).await.unwrap();
    report.print();
    let f = &report.findings;
    assert!(f.violations.is_empty(), "invariants failed: {:#?}", f.violations);
    // The invariants above are the test; this checks that the run reached every kind of money movement at all
    // (on a loaded machine a short run under Vipps faults may reach charges or refunds but not both).
    assert!(f.collected > 0 && (f.charged > 0 || f.refunded_ore > 0), "the run did too little: {f:?}");
    if let Fault::Crash { kills } = fault {
        assert_eq!(report.restarts.len(), kills);
    }
    sim.shutdown().await;
    if postgres {
        drop_database(&database_url).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_sqlite() {
    short_run(Fault::Crash { kills: 10 }, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_postgres() {
    short_run(Fault::Crash { kills: 10 }, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vipps_faults_sqlite() {
    short_run(Fault::Vipps { percent: 30 }, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vipps_faults_postgres() {
    short_run(Fault::Vipps { percent: 30 }, true).await;
}

/// Two instances share a database only on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_postgres() {
    short_run(Fault::TwoInstances, true).await;
}
