//! The durable job queue and the heartbeat, on the application's own database, with a clock driven by hand.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use payhub::jobs::{self, Clock, Handlers, Job, NewJob, Queue, QueueSettings, Worker};
use serde_json::json;

use crate::helpers::TestApp;
use crate::on_both_backends;

/// A clock that moves only when told.
#[derive(Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn new() -> Self {
        Self(Arc::new(Mutex::new(Utc::now())))
    }

    /// A clock at `rfc3339`, for tests that depend on where period boundaries fall.
    pub fn at(rfc3339: &str) -> Self {
        Self(Arc::new(Mutex::new(DateTime::parse_from_rfc3339(rfc3339).unwrap().with_timezone(&Utc))))
    }

    pub fn clock(&self) -> Clock {
        let now = self.0.clone();
        Arc::new(move || *now.lock().unwrap())
    }

    pub fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap();
        *now += TimeDelta::from_std(by).unwrap();
    }
}

fn settings() -> QueueSettings {
    QueueSettings {
        lease: Duration::from_secs(30),
        backoff_base: Duration::from_secs(10),
        backoff_max: Duration::from_secs(60),
        poll_interval: Duration::from_millis(10),
    }
}

fn queue(app: &TestApp, clock: &ManualClock) -> Queue {
    Queue::new(app.state.store.clone()).with_clock(clock.clock()).with_settings(settings())
}

/// A handler that records each job's payload `name` and fails while `fail` says so for that name.
fn recorder(log: Arc<Mutex<Vec<String>>>, failures: Arc<Mutex<HashMap<String, usize>>>) -> impl jobs::Handler {
    move |job: Job| {
        let log = log.clone();
        let failures = failures.clone();
        async move {
            let name = job.payload["name"].as_str().unwrap_or_default().to_owned();
            log.lock().unwrap().push(name.clone());
            let mut failures = failures.lock().unwrap();
            if let Some(left) = failures.get_mut(&name).filter(|left| **left > 0) {
                *left -= 1;
                anyhow::bail!("{name} failed on attempt {}", job.attempt);
            }
            Ok(())
        }
    }
}

on_both_backends! {
    async fn a_job_enqueued_in_a_transaction_exists_only_if_the_transaction_commits(app) {
        let clock = ManualClock::new();
        let queue = queue(&app, &clock);
        let log = Arc::new(Mutex::new(Vec::new()));
        let handlers = Handlers::default();
        handlers.register("test.record", recorder(log.clone(), Arc::default()));
        let worker = Worker::new(queue.clone(), handlers);

        let mut conn = queue.begin().await.unwrap();
        queue.enqueue(&mut conn, NewJob::new("test.record", json!({"name": "rolled back"}))).await.unwrap();
        conn.rollback().await.unwrap();
        let mut conn = queue.begin().await.unwrap();
        let id = jobs::enqueue(&mut conn, NewJob::new("test.record", json!({"name": "committed"}))).await.unwrap();
        conn.commit().await.unwrap();
        // `jobs::enqueue` stamps the wall clock, which has moved past the hand-driven one.
        clock.advance(Duration::from_secs(1));

        assert_eq!(worker.run_until_idle().await.unwrap(), 1);
        assert_eq!(*log.lock().unwrap(), vec!["committed".to_owned()]);
        let record = queue.get(id.unwrap()).await.unwrap().unwrap();
        assert_eq!((record.status.as_str(), record.attempts), ("done", 1));
        assert_eq!(worker.run_until_idle().await.unwrap(), 0, "a done job never runs again");
        let counts = queue.counts().await.unwrap();
        assert_eq!((counts.done, counts.queued, counts.running, counts.failed), (1, 0, 0, 0));
    }

    async fn a_failing_job_is_retried_with_growing_backoff_then_failed_with_its_last_error(app) {
        let clock = ManualClock::new();
        let queue = queue(&app, &clock);
        let log = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(Mutex::new(HashMap::from([("flaky".to_owned(), 99)])));
        let handlers = Handlers::default();
        handlers.register("test.record", recorder(log.clone(), failures));
        let worker = Worker::new(queue.clone(), handlers);
        let id = queue
            .enqueue_now(NewJob::new("test.record", json!({"name": "flaky"})).max_attempts(3))
            .await
            .unwrap()
            .unwrap();

        assert_eq!(worker.run_until_idle().await.unwrap(), 1);
        let record = queue.get(id).await.unwrap().unwrap();
        assert_eq!((record.status.as_str(), record.attempts), ("queued", 1));
        let wait = record.run_at - clock.now();
        assert!(wait >= TimeDelta::seconds(5) && wait <= TimeDelta::seconds(10), "first backoff {wait}");
        assert_eq!(record.last_error.as_deref(), Some("flaky failed on attempt 1"));
        assert_eq!(worker.run_until_idle().await.unwrap(), 0, "not due before its backoff ends");

        clock.advance(Duration::from_secs(10));
        assert_eq!(worker.run_until_idle().await.unwrap(), 1);
        let record = queue.get(id).await.unwrap().unwrap();
        let wait = record.run_at - clock.now();
        assert!(wait >= TimeDelta::seconds(10) && wait <= TimeDelta::seconds(20), "second backoff {wait}");

        clock.advance(Duration::from_secs(20));
        assert_eq!(worker.run_until_idle().await.unwrap(), 1);
        let record = queue.get(id).await.unwrap().unwrap();
        assert_eq!((record.status.as_str(), record.attempts), ("failed", 3));
        assert_eq!(record.last_error.as_deref(), Some("flaky failed on attempt 3"));
        clock.advance(Duration::from_secs(3600));
        assert_eq!(worker.run_until_idle().await.unwrap(), 0, "a failed job stays failed");
        assert_eq!(log.lock().unwrap().len(), 3);
    }

    async fn a_job_whose_lease_ran_out_is_claimed_again_and_the_old_claim_is_void(app) {
        let clock = ManualClock::new();
        let queue = queue(&app, &clock);
        let kinds = vec!["test.lease".to_owned()];
        let id = queue.enqueue_now(NewJob::new("test.lease", json!({})).max_attempts(2)).await.unwrap().unwrap();

        let dead = queue.claim(&kinds).await.unwrap().expect("claimed");
        assert_eq!((dead.id, dead.attempt), (id, 1));
        assert!(queue.claim(&kinds).await.unwrap().is_none(), "leased jobs are not claimed twice");
        clock.advance(Duration::from_secs(29));
        assert!(queue.claim(&kinds).await.unwrap().is_none(), "still within the lease");

        clock.advance(Duration::from_secs(2));
        let again = queue.claim(&kinds).await.unwrap().expect("claimed again after the lease");
        assert_eq!((again.id, again.attempt), (id, 2));
        assert!(!queue.complete(&dead).await.unwrap(), "the dead worker's claim is void");
        assert!(!queue.fail(&dead, "late").await.unwrap());
        assert!(queue.complete(&again).await.unwrap());
        assert_eq!(queue.get(id).await.unwrap().unwrap().status, "done");

        // A lease that runs out on the last attempt ends the job.
        let id = queue.enqueue_now(NewJob::new("test.lease", json!({})).max_attempts(1)).await.unwrap().unwrap();
        queue.claim(&kinds).await.unwrap().expect("claimed");
        clock.advance(Duration::from_secs(31));
        assert!(queue.claim(&kinds).await.unwrap().is_none());
        let record = queue.get(id).await.unwrap().unwrap();
        assert_eq!(record.status, "failed");
        assert!(record.last_error.unwrap().contains("lease ran out"));
    }

    async fn a_dedupe_key_makes_enqueueing_insert_or_nothing(app) {
        let clock = ManualClock::new();
        let queue = queue(&app, &clock);
        let job = || NewJob::new("test.record", json!({"name": "once"})).dedupe_key("payment:42:created");
        let first = queue.enqueue_now(job()).await.unwrap();
        assert!(first.is_some());
        assert_eq!(queue.enqueue_now(job()).await.unwrap(), None);
        let handlers = Handlers::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        handlers.register("test.record", recorder(log.clone(), Arc::default()));
        assert_eq!(Worker::new(queue.clone(), handlers).run_until_idle().await.unwrap(), 1);
        assert_eq!(queue.enqueue_now(job()).await.unwrap(), None, "the key stays taken after the job ran");
        let other = queue.enqueue_now(NewJob::new("test.record", json!({"name": "x"})).dedupe_key("other")).await;
        assert!(other.unwrap().is_some());
        assert_eq!(queue.recent(None, 10).await.unwrap().len(), 2);
        assert_eq!(*log.lock().unwrap(), vec!["once".to_owned()]);
    }

    async fn a_failing_earlier_job_holds_back_later_jobs_with_its_ordering_key_until_it_succeeds(app) {
        let clock = ManualClock::new();
        let queue = queue(&app, &clock);
        let log = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(Mutex::new(HashMap::from([("p1-first".to_owned(), 2)])));
        let handlers = Handlers::default();
        handlers.register("test.record", recorder(log.clone(), failures));
        let worker = Worker::new(queue.clone(), handlers);
        for (name, key) in [("p1-first", "payment:1"), ("p1-second", "payment:1"), ("p2-first", "payment:2")] {
            queue.enqueue_now(NewJob::new("test.record", json!({"name": name})).ordering_key(key)).await.unwrap();
        }
        queue.enqueue_now(NewJob::new("test.record", json!({"name": "unordered"}))).await.unwrap();

        assert_eq!(worker.run_until_idle().await.unwrap(), 3);
        assert_eq!(*log.lock().unwrap(), ["p1-first", "p2-first", "unordered"]);
        clock.advance(Duration::from_secs(10));
        assert_eq!(worker.run_until_idle().await.unwrap(), 1, "p1-second still waits");
        clock.advance(Duration::from_secs(20));
        assert_eq!(worker.run_until_idle().await.unwrap(), 2);
        assert_eq!(*log.lock().unwrap(), ["p1-first", "p2-first", "unordered", "p1-first", "p1-first", "p1-second"]);
    }

    async fn workers_racing_in_two_instances_never_run_one_job_twice(app) {
        let clock = ManualClock::new();
        let queue = queue(&app, &clock);
        let runs: Arc<Mutex<HashMap<i64, usize>>> = Arc::default();
        let handlers = Handlers::default();
        let seen = runs.clone();
        handlers.register("test.race", move |job: Job| {
            let seen = seen.clone();
            async move {
                *seen.lock().unwrap().entry(job.id).or_default() += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
                Ok(())
            }
        });
        let total = 60;
        for i in 0..total {
            let job = NewJob::new("test.race", json!({"i": i}));
            let job = if i % 3 == 0 { job.ordering_key(format!("k{}", i % 2)) } else { job };
            queue.enqueue_now(job).await.unwrap();
        }
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        // Two workers in this instance, and two more in a second "instance" with a connection pool of its own.
        let mut handles = jobs::spawn_workers(&Worker::new(queue.clone(), handlers.clone()), 2, &shutdown);
        let other = payhub::store::Store::connect(&app.database_url).await.unwrap();
        let other = Queue::new(other).with_clock(clock.clock()).with_settings(settings());
        handles.extend(jobs::spawn_workers(&Worker::new(other, handlers), 2, &shutdown));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while queue.counts().await.unwrap().done < total {
            assert!(std::time::Instant::now() < deadline, "workers did not finish: {:?}", queue.counts().await);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.send(true).unwrap();
        for handle in handles {
            tokio::time::timeout(Duration::from_secs(5), handle).await.expect("workers stop").unwrap();
        }
        let runs = runs.lock().unwrap();
        assert_eq!(runs.len() as i64, total);
        assert!(runs.values().all(|n| *n == 1), "every job ran exactly once: {runs:?}");
    }

    async fn a_periodic_beat_runs_once_per_period_however_many_instances_tick(app) {
        let clock = ManualClock::at("2026-11-23T10:15:30Z");
        let instances = [app.state.jobs.fork_with_clock(clock.clock()), app.state.jobs.fork_with_clock(clock.clock())];
        let count = Arc::new(Mutex::new(0));
        for instance in &instances {
            let count = count.clone();
            instance.heartbeat.register("poll", Duration::from_secs(60), move |_context| {
                let count = count.clone();
                async move {
                    *count.lock().unwrap() += 1;
                    Ok(())
                }
            });
            instance.heartbeat.register("broken", Duration::from_secs(3600), |_context| async {
                anyhow::bail!("the beat found nothing to do and says so")
            });
        }
        let (a, b) = (instances[0].heartbeat.clone(), instances[1].heartbeat.clone());
        let (x, y) = tokio::join!(a.tick(), b.tick());
        assert_eq!(x.unwrap() + y.unwrap(), 3, "one run per beat for the period (with the built-in prune)");
        assert_eq!(a.tick().await.unwrap() + b.tick().await.unwrap(), 0);
        instances[0].run_until_idle().await.unwrap();
        instances[1].run_until_idle().await.unwrap();
        assert_eq!(*count.lock().unwrap(), 1);

        clock.advance(Duration::from_secs(60));
        let (x, y) = tokio::join!(a.tick(), b.tick());
        assert_eq!(x.unwrap() + y.unwrap(), 1, "a new minute, not yet a new hour");
        instances[1].run_until_idle().await.unwrap();
        assert_eq!(*count.lock().unwrap(), 2);

        let manual = a.run_now("poll").await.unwrap();
        instances[0].run_until_idle().await.unwrap();
        assert_eq!(*count.lock().unwrap(), 3);
        assert!(a.run_now("no such beat").await.is_err());

        let runs = a.runs(Some("poll"), 10).await.unwrap();
        assert_eq!(runs.len(), 3);
        assert_eq!((runs[0].id.as_str(), runs[0].trigger.as_str()), (manual.as_str(), "manual"));
        assert!(runs.iter().all(|r| r.status == "succeeded" && r.started_at.is_some() && r.duration_ms.is_some()));
        assert!(runs[1].period_start > runs[2].period_start);
        let broken = a.runs(Some("broken"), 10).await.unwrap();
        assert_eq!(broken.len(), 1);
        assert_eq!(broken[0].status, "failed");
        assert_eq!(broken[0].error.as_deref(), Some("the beat found nothing to do and says so"));
    }

    async fn a_beat_run_whose_worker_died_is_marked_failed_not_left_running(app) {
        let clock = ManualClock::at("2026-11-23T10:15:30Z");
        let instance = app.state.jobs.fork_with_clock(clock.clock());
        instance.heartbeat.register("stuck", Duration::from_secs(3600), |_context| std::future::pending());
        let run_id = instance.heartbeat.run_now("stuck").await.unwrap();
        let worker = tokio::spawn({
            let instance = instance.clone();
            async move { instance.run_until_idle().await }
        });
        for _ in 0..100 {
            if instance.heartbeat.run(&run_id).await.unwrap().unwrap().status == "running" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        worker.abort(); // the process running the beat dies
        let _ = worker.await;
        clock.advance(Duration::from_secs(3600));
        instance.heartbeat.prune().await.unwrap();
        let run = instance.heartbeat.run(&run_id).await.unwrap().unwrap();
        assert_eq!(run.status, "failed", "{run:?}");
        assert!(run.error.as_deref().unwrap_or_default().contains("stopped"), "{run:?}");
    }

    async fn the_admin_api_shows_the_queue_and_runs_a_beat_on_request(app) {
        let ran = Arc::new(Mutex::new(0));
        let seen = ran.clone();
        app.state.jobs.heartbeat.register("reconcile", Duration::from_secs(300), move |context| {
            let seen = seen.clone();
            async move {
                assert!(context.manual && context.scope == "*");
                *seen.lock().unwrap() += 1;
                Ok(())
            }
        });
        let response = app.admin(reqwest::Method::POST, "/admin/api/beats/reconcile/run").send().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
        let run_id = response.json::<serde_json::Value>().await.unwrap()["run_id"].as_str().unwrap().to_owned();
        let missing = app.admin(reqwest::Method::POST, "/admin/api/beats/nothing/run").send().await.unwrap();
        assert_eq!(missing.status(), reqwest::StatusCode::NOT_FOUND);

        let jobs: serde_json::Value =
            app.admin(reqwest::Method::GET, "/admin/api/jobs?status=queued").send().await.unwrap().json().await.unwrap();
        assert_eq!(jobs["counts"]["queued"], 1, "{jobs}");
        assert_eq!(jobs["jobs"][0]["kind"], "heartbeat.run");
        assert_eq!(app.state.jobs.run_until_idle().await.unwrap(), 1);
        assert_eq!(*ran.lock().unwrap(), 1);

        let beats: serde_json::Value =
            app.admin(reqwest::Method::GET, "/admin/api/beats").send().await.unwrap().json().await.unwrap();
        let listed = beats["beats"].as_array().unwrap();
        assert!(listed.contains(&json!({"name": "reconcile", "period_seconds": 300})), "{beats}");
        assert_eq!(beats["runs"][0]["id"], run_id.as_str());
        assert_eq!(beats["runs"][0]["status"], "succeeded");
        let jobs: serde_json::Value =
            app.admin(reqwest::Method::GET, "/admin/api/jobs").send().await.unwrap().json().await.unwrap();
        assert_eq!((jobs["counts"]["done"].as_i64(), jobs["counts"]["queued"].as_i64()), (Some(1), Some(0)));
        let bad = app.admin(reqwest::Method::GET, "/admin/api/jobs?status=asleep").send().await.unwrap();
        assert_eq!(bad.status(), reqwest::StatusCode::BAD_REQUEST);
    }

    async fn a_worker_keeps_renewing_the_lease_of_a_slow_job_so_no_one_else_claims_it(app) {
        let clock = ManualClock::new();
        let queue = Queue::new(app.state.store.clone())
            .with_clock(clock.clock())
            .with_settings(QueueSettings { lease: Duration::from_millis(300), ..settings() });
        let (started, mut started_rx) = tokio::sync::mpsc::channel::<()>(1);
        let release = Arc::new(tokio::sync::Notify::new());
        let handlers = Handlers::default();
        let gate = release.clone();
        handlers.register("test.slow", move |_job: Job| {
            let (started, gate) = (started.clone(), gate.clone());
            async move {
                started.send(()).await.unwrap();
                gate.notified().await;
                Ok(())
            }
        });
        let id = queue.enqueue_now(NewJob::new("test.slow", json!({}))).await.unwrap().unwrap();
        let worker = Worker::new(queue.clone(), handlers);
        let running = tokio::spawn(async move { worker.run_one().await });
        started_rx.recv().await.unwrap();

        let kinds = vec!["test.slow".to_owned()];
        for _ in 0..4 {
            // 200 ms of job time pass; the worker renews every 100 ms of real time.
            clock.advance(Duration::from_millis(200));
            tokio::time::sleep(Duration::from_millis(250)).await;
            assert!(queue.claim(&kinds).await.unwrap().is_none(), "the lease was renewed");
        }
        assert!(clock.now() - queue.get(id).await.unwrap().unwrap().run_at > TimeDelta::milliseconds(300));
        release.notify_one();
        assert!(running.await.unwrap().unwrap());
        let record = queue.get(id).await.unwrap().unwrap();
        assert_eq!((record.status.as_str(), record.attempts), ("done", 1));
    }

    async fn pruning_deletes_old_finished_jobs_but_keeps_dedupe_keys_taken(app) {
        let clock = ManualClock::new();
        let jobs = app.state.jobs.fork_with_clock(clock.clock());
        let log = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(Mutex::new(HashMap::from([("broken".to_owned(), 1)])));
        jobs.handlers.register("test.record", recorder(log.clone(), failures));
        let queue = &jobs.queue;
        let plain = queue.enqueue_now(NewJob::new("test.record", json!({"name": "plain"}))).await.unwrap().unwrap();
        let keyed = NewJob::new("test.record", json!({"name": "keyed"})).dedupe_key("event:1");
        let keyed = queue.enqueue_now(keyed).await.unwrap().unwrap();
        let broken = NewJob::new("test.record", json!({"name": "broken"})).max_attempts(1);
        let broken = queue.enqueue_now(broken).await.unwrap().unwrap();
        assert_eq!(jobs.run_until_idle().await.unwrap(), 3);
        clock.advance(Duration::from_secs(6 * 24 * 3600));
        let waiting = queue.enqueue_now(NewJob::new("test.record", json!({})).run_at(clock.now() + TimeDelta::days(30)));
        let waiting = waiting.await.unwrap().unwrap();
        assert_eq!(jobs.heartbeat.prune().await.unwrap(), 0, "nothing is old enough yet");

        clock.advance(Duration::from_secs(2 * 24 * 3600));
        assert_eq!(jobs.heartbeat.prune().await.unwrap(), 2);
        assert!(queue.get(plain).await.unwrap().is_none());
        assert!(queue.get(broken).await.unwrap().is_none());
        assert_eq!(queue.get(keyed).await.unwrap().unwrap().status, "done");
        assert_eq!(queue.get(waiting).await.unwrap().unwrap().status, "queued");
        let again = queue.enqueue_now(NewJob::new("test.record", json!({})).dedupe_key("event:1")).await.unwrap();
        assert_eq!(again, None, "a pruned queue still refuses a taken dedupe key");
    }

    async fn a_handler_holding_a_write_transaction_is_not_stalled_by_its_lease_renewal(app) {
        let clock = ManualClock::new();
        let queue = Queue::new(app.state.store.clone())
            .with_clock(clock.clock())
            .with_settings(QueueSettings { lease: Duration::from_millis(60), ..settings() });
        let handlers = Handlers::default();
        let inner = queue.clone();
        handlers.register("test.writer", move |_job: Job| {
            let queue = inner.clone();
            async move {
                let mut tx = queue.begin().await?;
                // Renewals come due while this transaction (SQLite's only writer) is open.
                tokio::time::sleep(Duration::from_millis(150)).await;
                queue.enqueue(&mut tx, NewJob::new("test.follow-up", json!({}))).await?;
                tx.commit().await?;
                Ok(())
            }
        });
        let id = queue.enqueue_now(NewJob::new("test.writer", json!({}))).await.unwrap().unwrap();
        let worker = Worker::new(queue.clone(), handlers);
        let ran = tokio::time::timeout(Duration::from_secs(10), worker.run_one()).await;
        assert!(ran.expect("the handler finished").unwrap());
        assert_eq!(queue.get(id).await.unwrap().unwrap().status, "done");
        assert_eq!(queue.recent(Some("queued"), 10).await.unwrap().len(), 1, "the follow-up was enqueued");
    }
}
