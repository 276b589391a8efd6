//! Webhooks API v1 (reference §4): registrations, event fan-out and ordered, signed delivery.
//!
//! Events are queued per registration and resource (a payment or an agreement with its
//! charges); only the head of a queue is attempted, so a later event waits while an earlier
//! one is retried. Delivery runs on real time in a background task; the virtual clock only
//! stamps event times.

mod delivery;
mod registration;
mod sign;

pub(crate) use delivery::*;
pub(crate) use registration::*;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::auth::{authorize, Api};
use crate::idempotency::{self, KeyError, Lookup};
use crate::reply::{wh_problem, Reply};
use crate::state::SharedSim;

/// Every event type a registration may subscribe to (reference §4.2).
pub(crate) const EVENT_TYPES: &[&str] = &[
    "epayments.payment.created.v1",
    "epayments.payment.aborted.v1",
    "epayments.payment.expired.v1",
    "epayments.payment.cancelled.v1",
    "epayments.payment.captured.v1",
    "epayments.payment.refunded.v1",
    "epayments.payment.authorized.v1",
    "epayments.payment.terminated.v1",
    "recurring.agreement-activated.v1",
    "recurring.agreement-rejected.v1",
    "recurring.agreement-stopped.v1",
    "recurring.agreement-expired.v1",
    "recurring.charge-reserved.v1",
    "recurring.charge-captured.v1",
    "recurring.charge-canceled.v1",
    "recurring.charge-refunded.v1",
    "recurring.charge-failed.v1",
    "recurring.charge-creation-failed.v1",
    "user.checked-in.v1",
];

/// Registrations allowed per event type and MSN (`user.checked-in.v1`: 1).
const MAX_PER_EVENT: usize = 25;
/// Attempts before an event is dropped (≈ 7 days on the documented schedule).
const MAX_ATTEMPTS: u32 = 35;

struct Registration {
    id: String,
    msn: String,
    url: url::Url,
    events: Vec<String>,
    secret: Arc<str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Pending,
    Delivered,
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Delivered => "delivered",
            Status::Failed => "failed",
        }
    }
}

struct Delivery {
    hook_id: String,
    url: url::Url,
    secret: Arc<str>,
    event_type: &'static str,
    resource: String,
    body: Bytes,
    status: Status,
    attempts: u32,
    in_flight: bool,
    next_attempt: Instant,
    last_status: Option<u16>,
    last_error: Option<String>,
    occurred: String,
}

/// Registrations and the delivery queues.
pub(crate) struct Hub {
    regs: Vec<Registration>,
    deliveries: Vec<Delivery>,
    queues: HashMap<(String, String), VecDeque<usize>>,
    paused: bool,
    wake: Arc<Notify>,
}

impl Hub {
    pub(crate) fn new(wake: Arc<Notify>) -> Hub {
        Hub { regs: Vec::new(), deliveries: Vec::new(), queues: HashMap::new(), paused: false, wake }
    }

    /// Queues `event_type` for every registration of `msn` that subscribes to it. `resource`
    /// orders deliveries (e.g. `payment:MSN:REF`, `agreement:ID`); `body` is only built when
    /// someone listens.
    pub(crate) fn emit(
        &mut self,
        msn: &str,
        event_type: &'static str,
        resource: &str,
        occurred: String,
        body: impl FnOnce() -> Value,
    ) {
        let targets: Vec<usize> = self
            .regs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.msn == msn && r.events.iter().any(|e| e == event_type))
            .map(|(i, _)| i)
            .collect();
        if targets.is_empty() {
            return;
        }
        let body = Bytes::from(serde_json::to_vec(&body()).unwrap_or_default());
        let now = Instant::now();
        for i in targets {
            let reg = &self.regs[i];
            let idx = self.deliveries.len();
            self.deliveries.push(Delivery {
                hook_id: reg.id.clone(),
                url: reg.url.clone(),
                secret: reg.secret.clone(),
                event_type,
                resource: resource.to_owned(),
                body: body.clone(),
                status: Status::Pending,
                attempts: 0,
                in_flight: false,
                next_attempt: now,
                last_status: None,
                last_error: None,
                occurred: occurred.clone(),
            });
            self.queues.entry((reg.id.clone(), resource.to_owned())).or_default().push_back(idx);
        }
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_local_http_urls_are_accepted() {
        assert!(acceptable_url("https://example.com/hook").is_ok());
        assert!(acceptable_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(acceptable_url("http://localhost/hook").is_ok());
        assert!(acceptable_url("http://example.com/hook").is_err());
        assert!(acceptable_url("ftp://example.com/hook").is_err());
        assert!(acceptable_url("/relative").is_err());
    }

    #[test]
    fn backoff_follows_the_documented_shape() {
        let b = Duration::from_secs(2);
        assert_eq!(backoff(b, 1), Duration::from_secs(2));
        assert_eq!(backoff(b, 5), Duration::from_secs(60));
        assert_eq!(backoff(b, 6), Duration::from_secs(120));
        assert_eq!(backoff(b, 10), Duration::from_secs(3600));
        assert_eq!(backoff(b, 30), Duration::from_secs(86_400));
    }
}
