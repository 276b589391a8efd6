//! The polls when more rows are open than one poll reads: every open payment and charge is read within
//! ceil(open / limit) polls, however many of the oldest stay open at Vipps; and a beat's runs never overlap.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::recurring::active_many;
use crate::helpers::vipps::{clear_faults, fault};
use crate::helpers::{seed_intent, storage, TestApp};
use crate::jobs::ManualClock;
use crate::on_both_backends;

const LIMIT: i64 = 5;
const OPEN: usize = 12;
/// The oldest rows, which Vipps has not finished (or cannot answer for): they must not hold back the rest.
const STUCK: usize = 5;
/// ceil(OPEN / LIMIT)
const POLLS: usize = OPEN.div_ceil(LIMIT as usize);

async fn collected(app: &TestApp) -> i64 {
    storage::count(app, "SELECT COUNT(*) FROM installments WHERE status = 'Collected'", &[]).await
}

on_both_backends! {
    async fn every_open_payment_is_read_within_open_over_limit_polls(app) {
        let vipps = app.with_vipps().await;
        let mut references = Vec::new();
        for _ in 0..OPEN {
            let (status, created) = app.intent(&vipps, &seed_intent()).await;
            assert_eq!(status, StatusCode::OK, "{created}");
            references.push(created["OneTime"]["PaymentReference"].as_str().unwrap().to_owned());
            vipps.sim.advance(1).await;
        }
        // The payers of the newest seven approved; the oldest five have not acted yet.
        for reference in &references[STUCK..] {
            assert_eq!(vipps.control(&format!("/_sim/payments/{reference}/approve"), json!({})).await, StatusCode::OK);
        }
        for _ in 0..POLLS {
            app.state.payments.sync_open(LIMIT).await.unwrap();
        }
        assert_eq!(collected(&app).await, (OPEN - STUCK) as i64, "every approved payment was read and captured");
    }

    async fn every_open_charge_is_read_within_open_over_limit_polls(app) {
        let vipps = app.with_vipps().await;
        let mut agreements = Vec::new();
        for _ in 0..OPEN {
            agreements.extend(active_many(&app, &vipps, 1).await.into_iter().map(|(_, agreement)| agreement));
            app.state.payments.collect_recurring().await.unwrap();
            vipps.sim.advance(1).await;
        }
        // Vipps charges all twelve, but cannot answer for the oldest five's charges.
        for agreement in &agreements[..STUCK] {
            fault(&vipps, &format!("/recurring/v3/agreements/{agreement}/charges"), json!({"kind": "500", "times": 1000}))
                .await;
        }
        vipps.sim.advance(2 * 86_400).await;
        for _ in 0..POLLS {
            app.state.payments.sync_recurring(LIMIT).await.unwrap();
        }
        assert_eq!(collected(&app).await, (OPEN - STUCK) as i64, "every charge Vipps could answer for was read");
        clear_faults(&vipps).await;
        for _ in 0..POLLS {
            app.state.payments.sync_recurring(LIMIT).await.unwrap();
        }
        assert_eq!(collected(&app).await, OPEN as i64, "and the rest once Vipps answers");
    }

    async fn a_beat_run_still_going_when_the_next_period_starts_is_not_run_twice_at_once(app) {
        let clock = ManualClock::at("2026-11-23T10:15:30Z");
        let instances = [app.state.jobs.fork_with_clock(clock.clock()), app.state.jobs.fork_with_clock(clock.clock())];
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(tokio::sync::Notify::new());
        for instance in &instances {
            let (running, most, release) = (running.clone(), most.clone(), release.clone());
            instance.heartbeat.register("slow", Duration::from_secs(60), move |_context| {
                let (running, most, release) = (running.clone(), most.clone(), release.clone());
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    release.notified().await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                }
            });
        }
        let first = instances[0].heartbeat.schedule("slow", "*").await.unwrap().unwrap();
        let worker = tokio::spawn({
            let instance = instances[0].clone();
            async move { instance.run_until_idle().await }
        });
        for _ in 0..200 {
            if running.load(Ordering::SeqCst) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(running.load(Ordering::SeqCst), 1, "the first run is going");

        // The next period starts while it is still going; the other instance's worker takes its run.
        clock.advance(Duration::from_secs(60));
        let second = instances[1].heartbeat.schedule("slow", "*").await.unwrap().unwrap();
        tokio::time::timeout(Duration::from_secs(10), instances[1].run_until_idle()).await.expect("not waiting").unwrap();
        assert_eq!(most.load(Ordering::SeqCst), 1, "never two runs of the beat at once");
        let skipped = instances[1].heartbeat.run(&second).await.unwrap().unwrap();
        assert_eq!(skipped.status, "skipped", "{skipped:?}");
        assert!(skipped.error.as_deref().unwrap_or_default().contains("still"), "{skipped:?}");

        release.notify_waiters();
        worker.await.unwrap().unwrap();
        assert_eq!(instances[0].heartbeat.run(&first).await.unwrap().unwrap().status, "succeeded");
        // The period after that runs normally.
        clock.advance(Duration::from_secs(60));
        instances[1].heartbeat.schedule("slow", "*").await.unwrap().unwrap();
        let released = tokio::spawn({
            let release = release.clone();
            async move {
                loop {
                    release.notify_waiters();
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        });
        instances[1].run_until_idle().await.unwrap();
        released.abort();
        let runs = instances[1].heartbeat.runs(Some("slow"), 10).await.unwrap();
        assert_eq!(runs.iter().map(|r| r.status.as_str()).collect::<Vec<_>>(), ["succeeded", "skipped", "succeeded"]);
    }
}
