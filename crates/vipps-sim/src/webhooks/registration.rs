//! `/webhooks/v1/webhooks`: register (limits, URL rules), list, delete.

use super::*;

pub(super) fn problem_for_key(e: KeyError, instance: &str) -> Reply {
    let reason = match e {
        KeyError::Missing => "Idempotency-Key must not be empty",
        KeyError::Invalid(r) => r,
    };
    wh_problem(StatusCode::BAD_REQUEST, reason, instance, &[("Idempotency-Key", reason)])
}

#[derive(Deserialize)]
pub(super) struct RegisterRequest {
    url: String,
    events: Vec<String>,
}

pub(super) fn acceptable_url(raw: &str) -> Result<url::Url, &'static str> {
    let url = url::Url::parse(raw).map_err(|_| "url must be an absolute URI")?;
    let local = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match url.scheme() {
        "https" => {}
        "http" if local => {}
        _ => return Err("url must use https (the simulator also accepts http to 127.0.0.1/localhost)"),
    }
    if url.host_str().is_none() || raw.len() > 2048 {
        return Err("url must have a host and be at most 2048 characters");
    }
    Ok(url)
}

/// `POST /webhooks/v1/webhooks` `{url, events}` → `201 {id, secret}`.
pub(crate) async fn register(State(sim): State<SharedSim>, headers: HeaderMap, uri: Uri, body: Bytes) -> Reply {
    let instance = uri.path();
    let now = sim.clock.now();
    let mut db = sim.lock();
    let msn = match authorize(&db, now, &headers, Api::Webhooks, instance) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let key = if idempotency::has_key(&headers) {
        match idempotency::read_key(&headers, Api::Webhooks) {
            Ok(k) => Some(k),
            Err(e) => return problem_for_key(e, instance),
        }
    } else {
        None
    };
    let mut fresh = None;
    if let Some(k) = &key {
        match db.idem.check(Api::Webhooks, &msn, k, &Method::POST, instance, &body) {
            Lookup::Replay(r) => return r,
            Lookup::Conflict => {
                return wh_problem(
                    StatusCode::CONFLICT,
                    "Idempotency-Key reused for a different request",
                    instance,
                    &[],
                )
            }
            Lookup::Fresh(fp) => fresh = Some(fp),
        }
    }
    let reply = register_inner(&mut db.hooks, &msn, &body, instance);
    if let (Some(k), Some(fp)) = (key, fresh) {
        db.idem.store(Api::Webhooks, &msn, &k, fp, &reply);
    }
    reply
}

pub(super) fn register_inner(hub: &mut Hub, msn: &str, body: &[u8], instance: &str) -> Reply {
    let req: RegisterRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return wh_problem(StatusCode::BAD_REQUEST, "Invalid request body", instance, &[("body", &e.to_string())])
        }
    };
    let url = match acceptable_url(&req.url) {
        Ok(u) => u,
        Err(reason) => return wh_problem(StatusCode::BAD_REQUEST, reason, instance, &[("url", reason)]),
    };
    if req.events.is_empty() {
        return wh_problem(StatusCode::BAD_REQUEST, "events must not be empty", instance, &[("events", "required")]);
    }
    for e in &req.events {
        if !EVENT_TYPES.contains(&e.as_str()) {
            return wh_problem(
                StatusCode::BAD_REQUEST,
                &format!("Unknown event type {e}"),
                instance,
                &[("events", "unknown event type")],
            );
        }
        let limit = if e == "user.checked-in.v1" { 1 } else { MAX_PER_EVENT };
        let count = hub.regs.iter().filter(|r| r.msn == msn && r.events.contains(e)).count();
        if count >= limit {
            return wh_problem(
                StatusCode::BAD_REQUEST,
                &format!("Maximum number of webhooks ({limit}) for event {e} reached"),
                instance,
                &[("events", "limit reached")],
            );
        }
    }
    let mut events = req.events;
    events.dedup();
    let id = uuid::Uuid::new_v4().to_string();
    let secret = {
        use base64::Engine;
        let bytes: Vec<u8> = (0..48).map(|_| rand::random::<u8>()).collect();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    hub.regs.push(Registration {
        id: id.clone(),
        msn: msn.to_owned(),
        url,
        events,
        secret: Arc::from(secret.as_str()),
    });
    Reply::json(StatusCode::CREATED, &json!({"id": id, "secret": secret}))
}

/// `GET /webhooks/v1/webhooks` → `{"webhooks": [{id, url, events}]}` for the caller's MSN.
pub(crate) async fn list(State(sim): State<SharedSim>, headers: HeaderMap, uri: Uri) -> Reply {
    let now = sim.clock.now();
    let db = sim.lock();
    let msn = match authorize(&db, now, &headers, Api::Webhooks, uri.path()) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let hooks: Vec<Value> = db
        .hooks
        .regs
        .iter()
        .filter(|r| r.msn == msn)
        .map(|r| json!({"id": r.id, "url": r.url.as_str(), "events": r.events}))
        .collect();
    Reply::json(StatusCode::OK, &json!({"webhooks": hooks}))
}

/// `DELETE /webhooks/v1/webhooks/{id}` → `204`; unknown id (or another merchant's) → 404.
/// Pending deliveries of a deleted registration are marked failed.
pub(crate) async fn delete(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Reply {
    let now = sim.clock.now();
    let mut db = sim.lock();
    let msn = match authorize(&db, now, &headers, Api::Webhooks, uri.path()) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let hub = &mut db.hooks;
    let Some(pos) = hub.regs.iter().position(|r| r.id == id && r.msn == msn) else {
        return wh_problem(StatusCode::NOT_FOUND, "Webhook not found", uri.path(), &[]);
    };
    hub.regs.remove(pos);
    let Hub { queues, deliveries, .. } = hub;
    queues.retain(|(hook, _), q| {
        if *hook == id {
            for &i in q.iter() {
                if let Some(d) = deliveries.get_mut(i) {
                    if d.status == Status::Pending {
                        d.status = Status::Failed;
                        d.last_error = Some("webhook deleted".to_owned());
                    }
                }
            }
            false
        } else {
            true
        }
    });
    Reply::empty(StatusCode::NO_CONTENT)
}
