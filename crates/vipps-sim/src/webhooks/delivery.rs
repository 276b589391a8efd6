//! Delivery: the background loop sending the head of each queue, signing, retries with backoff,
//! and the `/_sim/webhooks/...` controls.

use super::*;

/// Real-time delay before attempt `attempts + 1`, following the documented schedule
/// (≈ 2 s for the first 4 retries, then 60 s, 120 s, hourly, daily) scaled by `base` / 2 s.
pub(super) fn backoff(base: Duration, attempts: u32) -> Duration {
    let units: u32 = match attempts {
        0..=4 => 1,
        5 => 30,
        6 => 60,
        7..=29 => 1800,
        _ => 43_200,
    };
    base.saturating_mul(units)
}

pub(super) struct Job {
    idx: usize,
    url: url::Url,
    secret: Arc<str>,
    body: Bytes,
}

/// Background task: sends the head of every ready queue, concurrently across queues.
pub(crate) async fn delivery_loop(sim: SharedSim) {
    let client = match reqwest::Client::builder()
        .timeout(sim.config.webhook_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("webhook delivery disabled: cannot build HTTP client: {e}");
            return;
        }
    };
    loop {
        let (jobs, next) = collect_ready(&sim);
        for job in jobs {
            let sim = sim.clone();
            let client = client.clone();
            tokio::spawn(async move {
                let outcome = send(&client, &job).await;
                finish(&sim, job.idx, outcome);
            });
        }
        let wait = next.map_or(Duration::from_secs(1), |n| n.saturating_duration_since(Instant::now()));
        tokio::select! {
            _ = sim.webhook_wake.notified() => {}
            _ = tokio::time::sleep(wait.min(Duration::from_secs(1))) => {}
        }
    }
}

pub(super) fn collect_ready(sim: &SharedSim) -> (Vec<Job>, Option<Instant>) {
    let now = Instant::now();
    let mut db = sim.lock();
    let hub = &mut db.hooks;
    let mut jobs = Vec::new();
    let mut next: Option<Instant> = None;
    if hub.paused {
        return (jobs, None);
    }
    let Hub { queues, deliveries, .. } = hub;
    for q in queues.values() {
        let Some(&idx) = q.front() else { continue };
        let Some(d) = deliveries.get_mut(idx) else {
            continue;
        };
        if d.in_flight {
            continue;
        }
        if d.next_attempt <= now {
            d.in_flight = true;
            jobs.push(Job { idx, url: d.url.clone(), secret: d.secret.clone(), body: d.body.clone() });
        } else {
            next = Some(next.map_or(d.next_attempt, |n| n.min(d.next_attempt)));
        }
    }
    (jobs, next)
}

pub(super) async fn send(client: &reqwest::Client, job: &Job) -> Result<u16, (Option<u16>, String)> {
    let (host, pq) = sign::url_parts(&job.url);
    let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let sig = sign::sign(&job.secret, &pq, &host, &date, &job.body);
    let resp = client
        .post(job.url.clone())
        .header("Content-Type", "application/json")
        .header("x-ms-date", date)
        .header("x-ms-content-sha256", sig.content_sha256)
        .header("Authorization", sig.authorization)
        .body(job.body.clone())
        .send()
        .await;
    match resp {
        Ok(r) if r.status().is_success() => Ok(r.status().as_u16()),
        Ok(r) => Err((Some(r.status().as_u16()), format!("receiver answered {}", r.status()))),
        Err(e) => Err((None, e.to_string())),
    }
}

pub(super) fn finish(sim: &SharedSim, idx: usize, outcome: Result<u16, (Option<u16>, String)>) {
    let base = sim.config.webhook_retry_base;
    let mut db = sim.lock();
    let hub = &mut db.hooks;
    let Some(d) = hub.deliveries.get_mut(idx) else {
        return;
    };
    d.in_flight = false;
    d.attempts += 1;
    let done = match outcome {
        Ok(code) => {
            d.last_status = Some(code);
            d.last_error = None;
            if d.status == Status::Pending {
                d.status = Status::Delivered;
            }
            true
        }
        Err((code, err)) => {
            d.last_status = code;
            d.last_error = Some(err);
            if d.status != Status::Pending {
                true // registration deleted meanwhile
            } else if d.attempts >= MAX_ATTEMPTS {
                d.status = Status::Failed;
                true
            } else {
                d.next_attempt = Instant::now() + backoff(base, d.attempts);
                false
            }
        }
    };
    if done {
        let key = (d.hook_id.clone(), d.resource.clone());
        if let Some(q) = hub.queues.get_mut(&key) {
            if q.front() == Some(&idx) {
                q.pop_front();
            }
            if q.is_empty() {
                hub.queues.remove(&key);
            }
        }
    }
    hub.wake.notify_one();
}

#[derive(Deserialize)]
pub(crate) struct DeliveriesQuery {
    status: Option<String>,
}

/// `GET /_sim/webhooks/deliveries[?status=pending|delivered|failed]` →
/// `{"paused": bool, "deliveries": [{id, webhookId, url, eventType, resource, status, attempts,
/// lastStatus, lastError, occurred, body}]}` in emission order.
pub(crate) async fn sim_deliveries(State(sim): State<SharedSim>, Query(q): Query<DeliveriesQuery>) -> Reply {
    let db = sim.lock();
    let hub = &db.hooks;
    let list: Vec<Value> = hub
        .deliveries
        .iter()
        .enumerate()
        .filter(|(_, d)| q.status.as_deref().is_none_or(|s| s == d.status.as_str()))
        .map(|(i, d)| {
            json!({
                "id": i,
                "webhookId": d.hook_id,
                "url": d.url.as_str(),
                "eventType": d.event_type,
                "resource": d.resource,
                "status": d.status.as_str(),
                "attempts": d.attempts,
                "lastStatus": d.last_status,
                "lastError": d.last_error,
                "occurred": d.occurred,
                "body": serde_json::from_slice::<Value>(&d.body).unwrap_or(Value::Null),
            })
        })
        .collect();
    Reply::json(StatusCode::OK, &json!({"paused": hub.paused, "deliveries": list}))
}

/// `POST /_sim/webhooks/pause`: stop sending (events keep queueing) → `204`.
pub(crate) async fn sim_pause(State(sim): State<SharedSim>) -> Reply {
    sim.lock().hooks.paused = true;
    Reply::empty(StatusCode::NO_CONTENT)
}

/// `POST /_sim/webhooks/resume`: send queued events again → `204`.
pub(crate) async fn sim_resume(State(sim): State<SharedSim>) -> Reply {
    let mut db = sim.lock();
    db.hooks.paused = false;
    db.hooks.wake.notify_one();
    Reply::empty(StatusCode::NO_CONTENT)
}
