//! The virtual clock: real time plus an adjustable offset.
//!
//! The clock keeps running with real time (so a stand-alone simulator behaves naturally);
//! `advance` and `set` move it forward instantly. It never goes backwards.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};

/// Virtual time source shared by all handlers.
pub(crate) struct Clock {
    offset_us: AtomicI64,
}

impl Clock {
    pub(crate) fn new(start: Option<DateTime<Utc>>) -> Clock {
        let offset = start.map_or(0, |s| (s - Utc::now()).num_microseconds().unwrap_or(i64::MAX / 4));
        Clock { offset_us: AtomicI64::new(offset) }
    }

    /// Current virtual time.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::microseconds(self.offset_us.load(Ordering::Relaxed))
    }

    /// Moves the clock forward by `seconds` (negative values are ignored).
    pub(crate) fn advance(&self, seconds: i64) {
        if seconds > 0 {
            let us = seconds.saturating_mul(1_000_000);
            self.offset_us.fetch_add(us, Ordering::Relaxed);
        }
    }

    /// Sets the clock to `to` if that is later than now; returns whether it moved.
    pub(crate) fn set(&self, to: DateTime<Utc>) -> bool {
        let delta = (to - self.now()).num_microseconds().unwrap_or(i64::MAX / 4);
        if delta > 0 {
            self.offset_us.fetch_add(delta, Ordering::Relaxed);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_the_clock_forward_and_never_back() {
        let start =
            DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").map(|d| d.with_timezone(&Utc)).unwrap_or_default();
        let c = Clock::new(Some(start));
        assert!((c.now() - start).num_seconds().abs() < 2);
        c.advance(3600);
        assert!((c.now() - start).num_seconds() >= 3600);
        c.advance(-7200);
        assert!((c.now() - start).num_seconds() >= 3600);
        assert!(!c.set(start));
        assert!(c.set(start + chrono::Duration::days(2)));
        assert!((c.now() - start).num_seconds() >= 2 * 86400 - 1);
    }
}
