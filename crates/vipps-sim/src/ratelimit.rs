//! Optional rate limits (reference §3.8, §5.8), counted per minute on the virtual clock.
//! Off unless `SimConfig::rate_limits` is set; exceeding a limit answers 429 with `Retry-After`.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Duration, Utc};
use http::StatusCode;

use crate::reply::{azure_error, Reply};

/// One limited operation: what is counted and how many calls a minute are allowed.
pub(crate) struct Limit<'a> {
    /// Operation name, e.g. `epayment.capture`.
    pub(crate) op: &'static str,
    /// The counted resource (reference, agreement id, …); combined with the MSN.
    pub(crate) resource: &'a str,
    pub(crate) per_minute: usize,
}

/// Call times per counted key.
#[derive(Default)]
pub(crate) struct Windows {
    calls: HashMap<String, VecDeque<DateTime<Utc>>>,
}

impl Windows {
    /// Counts a call; `Err(429)` if the key already had `per_minute` calls in the last minute.
    pub(crate) fn hit(&mut self, msn: &str, limit: &Limit<'_>, now: DateTime<Utc>) -> Result<(), Reply> {
        let key = format!("{}:{msn}:{}", limit.op, limit.resource);
        let window = self.calls.entry(key).or_default();
        let start = now - Duration::minutes(1);
        while window.front().is_some_and(|t| *t <= start) {
            window.pop_front();
        }
        if window.len() >= limit.per_minute {
            // Rounded up, so that waiting `Retry-After` seconds is always enough.
            let wait =
                window.front().map_or(60, |t| ((*t + Duration::minutes(1) - now).num_milliseconds() + 999) / 1000);
            let wait = wait.max(1);
            let mut r = azure_error(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("Rate limit is exceeded. Try again in {wait} seconds."),
            );
            r.retry_after = u64::try_from(wait).ok();
            return Err(r);
        }
        window.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_refuses_the_call_over_the_limit_until_a_minute_passed() {
        let mut w = Windows::default();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let limit = Limit { op: "x", resource: "r", per_minute: 2 };
        assert!(w.hit("1234", &limit, t0).is_ok());
        assert!(w.hit("1234", &limit, t0 + Duration::seconds(10)).is_ok());
        let refused = w.hit("1234", &limit, t0 + Duration::seconds(20));
        assert!(matches!(&refused, Err(r) if r.status == StatusCode::TOO_MANY_REQUESTS && r.retry_after == Some(40)));
        assert!(w.hit("9999", &limit, t0 + Duration::seconds(20)).is_ok(), "other merchants are counted apart");
        assert!(w.hit("1234", &limit, t0 + Duration::seconds(61)).is_ok());
    }
}
