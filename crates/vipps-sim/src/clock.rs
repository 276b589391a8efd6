//! The virtual clock: real time plus an adjustable offset, or (when frozen) a fixed start plus
//! the offset.
//!
//! By default the clock keeps running with real time (so a stand-alone simulator behaves
//! naturally); a frozen clock only moves when told, for deterministic tests. `advance` and `set`
//! move it forward instantly. It never goes backwards.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};

/// Virtual time source shared by all handlers.
pub(crate) struct Clock {
    offset_us: AtomicI64,
    /// `Some(base)`: frozen; virtual time is `base + offset`.
    frozen_base: Option<DateTime<Utc>>,
}

impl Clock {
    pub(crate) fn new(start: Option<DateTime<Utc>>, runs: bool) -> Clock {
        if runs {
            let offset = start.map_or(0, |s| (s - Utc::now()).num_microseconds().unwrap_or(i64::MAX / 4));
            Clock { offset_us: AtomicI64::new(offset), frozen_base: None }
        } else {
            let base = start.unwrap_or_else(Utc::now).min(latest());
            Clock { offset_us: AtomicI64::new(0), frozen_base: Some(base) }
        }
    }

    /// Current virtual time.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        let offset = chrono::Duration::microseconds(self.offset_us.load(Ordering::Relaxed));
        self.frozen_base.unwrap_or_else(Utc::now).checked_add_signed(offset).unwrap_or_else(latest)
    }

    /// Moves the clock forward by `seconds` (negative values are ignored). Refuses (returns
    /// false) to go past [`latest`], so date arithmetic elsewhere can never overflow.
    pub(crate) fn advance(&self, seconds: i64) -> bool {
        if seconds <= 0 {
            return true;
        }
        match self.now().checked_add_signed(chrono::Duration::seconds(seconds.min(i64::MAX / 2_000_000))) {
            Some(t) if t <= latest() => {
                self.offset_us.fetch_add(seconds.saturating_mul(1_000_000), Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    /// Sets the clock to `to` if that is later than now (and not past [`latest`]); returns
    /// whether it moved.
    pub(crate) fn set(&self, to: DateTime<Utc>) -> bool {
        if to > latest() {
            return false;
        }
        let delta = (to - self.now()).num_microseconds().unwrap_or(i64::MAX / 4);
        if delta > 0 {
            // A running clock's reading has nanoseconds, cut from the difference: one microsecond more, so it
            // never reads a moment before `to` afterwards. A frozen clock lands on `to` exactly.
            let rounding = i64::from(self.frozen_base.is_none());
            self.offset_us.fetch_add(delta + rounding, Ordering::Relaxed);
            true
        } else {
            false
        }
    }
}

/// The virtual clock stops short of chrono's range: 9000-01-01T00:00:00Z.
pub(crate) fn latest() -> DateTime<Utc> {
    DateTime::from_timestamp(221_845_392_000, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_the_clock_forward_and_never_back() {
        let start =
            DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").map(|d| d.with_timezone(&Utc)).unwrap_or_default();
        let c = Clock::new(Some(start), true);
        assert!((c.now() - start).num_seconds().abs() < 2);
        c.advance(3600);
        assert!((c.now() - start).num_seconds() >= 3600);
        c.advance(-7200);
        assert!((c.now() - start).num_seconds() >= 3600);
        assert!(!c.set(start));
        assert!(c.set(start + chrono::Duration::days(2)));
        assert!((c.now() - start).num_seconds() >= 2 * 86400 - 1);
        assert!(!c.advance(i64::MAX));
        assert!(!c.set(latest() + chrono::Duration::days(1)));
        assert_eq!(latest().to_rfc3339(), "9000-01-01T00:00:00+00:00");
    }

    #[test]
    fn a_frozen_clock_moves_only_when_told() {
        let start =
            DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z").map(|d| d.with_timezone(&Utc)).unwrap_or_default();
        let c = Clock::new(Some(start), false);
        assert_eq!(c.now(), start);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(c.now(), start);
        assert!(c.advance(90));
        assert_eq!(c.now(), start + chrono::Duration::seconds(90));
        assert!(c.set(start + chrono::Duration::days(1)));
        assert_eq!(c.now(), start + chrono::Duration::days(1));
    }
}
