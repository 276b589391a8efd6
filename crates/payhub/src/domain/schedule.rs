//! Recurring schedule arithmetic: which dates the installments of a recurring payment fall due on, from its
//! Start Date, Frequency, optional Collection Day and End Date. Pure: no clock, no I/O.
//!
//! Rules: the first due date is the first date on or after the start that fits the schedule; a Collection Day of
//! 29–31 falls back to the month's last day in shorter months (and each month is computed from the first, so a
//! payment on the 31st returns to the 31st after February); no date after the End Date.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, Days, Months, NaiveDate};

/// The date in Norway at `at`: due dates, collection dates and "today" follow Vipps' (Norwegian) calendar.
pub fn oslo_date(at: chrono::DateTime<chrono::Utc>) -> NaiveDate {
    at.with_timezone(&chrono_tz::Europe::Oslo).date_naive()
}

/// How often a recurring payment is collected (FinDock's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Frequency {
    /// Every week.
    Weekly,
    /// Every month.
    Monthly,
    /// Every three months.
    Quarterly,
    /// Every six months.
    HalfYearly,
    /// Every year.
    Yearly,
}

named_values!(
    Frequency,
    "How often a recurring payment is collected (FinDock's names).",
    [Frequency::Weekly, Frequency::Monthly, Frequency::Quarterly, Frequency::HalfYearly, Frequency::Yearly]
);

impl Frequency {
    /// Every frequency, shortest first.
    pub const ALL: [Frequency; 5] =
        [Frequency::Weekly, Frequency::Monthly, Frequency::Quarterly, Frequency::HalfYearly, Frequency::Yearly];

    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Weekly => "Weekly",
            Self::Monthly => "Monthly",
            Self::Quarterly => "Quarterly",
            Self::HalfYearly => "Half-yearly",
            Self::Yearly => "Yearly",
        }
    }

    /// Months between two due dates, or `None` for weekly payments.
    fn months(self) -> Option<u32> {
        match self {
            Self::Weekly => None,
            Self::Monthly => Some(1),
            Self::Quarterly => Some(3),
            Self::HalfYearly => Some(6),
            Self::Yearly => Some(12),
        }
    }

    /// The Vipps agreement interval: (`WEEK` | `MONTH` | `YEAR`, count).
    pub fn vipps_interval(self) -> (&'static str, u32) {
        match self {
            Self::Weekly => ("WEEK", 1),
            Self::Monthly => ("MONTH", 1),
            Self::Quarterly => ("MONTH", 3),
            Self::HalfYearly => ("MONTH", 6),
            Self::Yearly => ("YEAR", 1),
        }
    }
}

/// A Vipps agreement interval in words, as a reader says it: `per month`, `every 3 months`, `per week`. An
/// interval unit payhub does not know is shown as Vipps named it.
pub fn interval_text(unit: &str, count: i64) -> String {
    let word = match unit {
        "DAY" => "day",
        "WEEK" => "week",
        "MONTH" => "month",
        "YEAR" => "year",
        other => return format!("every {count} {other}"),
    };
    if count == 1 {
        format!("per {word}")
    } else {
        format!("every {count} {word}s")
    }
}

impl fmt::Display for Frequency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Frequency {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Weekly" => Ok(Self::Weekly),
            "Monthly" => Ok(Self::Monthly),
            "Quarterly" => Ok(Self::Quarterly),
            "Half-yearly" | "Half-Yearly" | "Semi-annually" => Ok(Self::HalfYearly),
            "Yearly" | "Annually" => Ok(Self::Yearly),
            other => Err(format!("Frequency {other} is not one of Weekly, Monthly, Quarterly, Half-yearly, Yearly")),
        }
    }
}

/// Why a schedule is not valid; the text is safe to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The End Date is before the Start Date.
    #[error("EndDate must not be before StartDate")]
    EndBeforeStart,
    /// The Collection Day is not 1–31.
    #[error("CollectionDay must be a day of the month from 1 to 31")]
    BadCollectionDay,
}

/// When a recurring payment's installments fall due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    start: NaiveDate,
    end: Option<NaiveDate>,
    frequency: Frequency,
    collection_day: Option<u32>,
}

fn last_day_of_month(year: i32, month: u32) -> u32 {
    let first_of_next =
        if month == 12 { NaiveDate::from_ymd_opt(year + 1, 1, 1) } else { NaiveDate::from_ymd_opt(year, month + 1, 1) };
    first_of_next.and_then(|d| d.pred_opt()).map_or(28, |d| d.day())
}

/// The date in `year`/`month` on `day`, or the month's last day when it is shorter.
fn clamped(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, month, day.min(last_day_of_month(year, month)))
}

impl Schedule {
    /// A schedule; the Collection Day (for monthly and longer frequencies) defaults to the Start Date's day.
    pub fn new(
        start: NaiveDate,
        end: Option<NaiveDate>,
        frequency: Frequency,
        collection_day: Option<u32>,
    ) -> Result<Schedule, ScheduleError> {
        if end.is_some_and(|end| end < start) {
            return Err(ScheduleError::EndBeforeStart);
        }
        if collection_day.is_some_and(|d| !(1..=31).contains(&d)) {
            return Err(ScheduleError::BadCollectionDay);
        }
        Ok(Schedule { start, end, frequency, collection_day })
    }

    /// The frequency.
    pub fn frequency(&self) -> Frequency {
        self.frequency
    }

    /// The Collection Day (monthly and longer frequencies), if one was set.
    pub fn collection_day(&self) -> Option<u32> {
        self.collection_day
    }

    /// The date period `p` falls on, before the Start / End Date are applied: the start plus `p` weeks for
    /// weekly payments, else the Collection Day (default: the start's day) in the start's month plus `p`
    /// steps. Periods are anchored on the start's month, so a changed Collection Day moves a period's date
    /// within its month and never makes two installments of one period.
    fn period_date(&self, p: u32) -> Option<NaiveDate> {
        match self.frequency.months() {
            None => self.start.checked_add_days(Days::new(7 * u64::from(p))),
            Some(step) => {
                let day = self.collection_day.unwrap_or(self.start.day());
                let month_start = self.start.with_day(1)?.checked_add_months(Months::new(step.checked_mul(p)?))?;
                clamped(month_start.year(), month_start.month(), day)
            }
        }
    }

    /// The due date of period `p`, or `None` when that period has no installment: it falls before the Start
    /// Date (period 0 when the Collection Day is earlier in the month than the start) or after the End Date.
    pub fn due_date(&self, p: u32) -> Option<NaiveDate> {
        let date = self.period_date(p)?;
        if date < self.start || self.end.is_some_and(|end| date > end) {
            return None;
        }
        Some(date)
    }

    /// The date period `p` falls on (see [`Self::due_date`] for whether it has an installment).
    pub fn period_date_of(&self, p: u32) -> Option<NaiveDate> {
        self.period_date(p)
    }

    /// The first period from `p` on that has an installment, with its due date; `None` past the End Date.
    pub fn period_on_or_after(&self, p: u32) -> Option<(u32, NaiveDate)> {
        for q in p..=p.saturating_add(1) {
            let date = self.period_date(q)?;
            if self.end.is_some_and(|end| date > end) {
                return None;
            }
            if date >= self.start {
                return Some((q, date));
            }
        }
        None
    }

    /// The first period with an installment on or after `date`, with its due date; `None` when the schedule
    /// has ended by then.
    pub fn next_on_or_after(&self, date: NaiveDate) -> Option<(u32, NaiveDate)> {
        let from = date.max(self.start);
        // Start a little before the period `from` falls in, then step forward.
        let guess = match self.frequency.months() {
            None => u32::try_from((from - self.start).num_days() / 7).ok()?,
            Some(step) => {
                let months = (from.year() - self.start.year()) * 12 + from.month() as i32 - self.start.month() as i32;
                u32::try_from(months.max(0)).ok()? / step
            }
        };
        for p in guess.saturating_sub(1)..guess.saturating_add(3) {
            let date = self.period_date(p)?;
            if self.end.is_some_and(|end| date > end) {
                return None;
            }
            if date >= from {
                return Some((p, date));
            }
        }
        None
    }
}

/// Periods that fell due more than this many days ago and were never generated are skipped rather than
/// charged late (after downtime or a pause).
pub const LATE_GRACE_DAYS: u64 = 7;

/// Where installment generation of one recurring payment goes on a given day (see [`Schedule::walk`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walk {
    /// The periods whose installments are to be generated now, with their due dates, in order.
    pub due: Vec<(i64, NaiveDate)>,
    /// The next period to generate after these.
    pub next_period: i64,
    /// The due date of the next installment to collect (`None`: the schedule has ended).
    pub next_date: Option<NaiveDate>,
    /// Whether no period is left on or after the day: the recurring payment has ended.
    pub ended: bool,
}

impl Schedule {
    /// The periods from `from` on whose installments are due to exist on `today`, keeping `horizon` upcoming
    /// ones (at least one): periods that fell due more than [`LATE_GRACE_DAYS`] ago, or while a pause lasts
    /// (`paused_until`, exclusive), are stepped over; a paused period still ahead stops the walk, so it is
    /// decided when it falls due and a payment resumed before then collects it. The schedule's first period is
    /// the exception to the late rule while no later period has fallen due: a mandate that became Active (or
    /// was seen Active) after the start date still owes the first installment the payer agreed to, collected
    /// late, and at most one past period is ever collected at once.
    pub fn walk(&self, from: i64, paused_until: Option<NaiveDate>, today: NaiveDate, horizon: u32) -> Walk {
        let horizon = i64::from(horizon.max(1));
        let oldest = today.checked_sub_days(Days::new(LATE_GRACE_DAYS)).unwrap_or(today);
        let first_upcoming = self.next_on_or_after(today).map(|(p, _)| i64::from(p));
        let at = |p: i64| self.period_on_or_after(u32::try_from(p).unwrap_or(u32::MAX));
        let first = at(0).map(|(p, _)| i64::from(p));
        let owed_first = |p: i64| Some(p) == first && at(p + 1).is_none_or(|(_, later)| later > today);
        let mut due = Vec::new();
        let mut period = from;
        let mut next = at(period);
        while let Some((p, date)) = next {
            let p = i64::from(p);
            let paused = paused_until.is_some_and(|until| date < until);
            if paused && date >= today {
                break;
            }
            if date < oldest && !owed_first(p) || paused {
                period = p + 1;
                next = at(p + 1);
                continue;
            }
            if first_upcoming.is_some_and(|f| p - f >= horizon) {
                break;
            }
            due.push((p, date));
            period = p + 1;
            next = at(p + 1);
        }
        let next_date = match (paused_until, next) {
            (Some(until), Some((_, date))) if date < until => self.next_on_or_after(until).map(|(_, d)| d),
            _ => next.map(|(_, d)| d),
        };
        Walk { due, next_period: period, next_date, ended: next.is_none() && first_upcoming.is_none() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_frequency_reads_as_words() {
        let texts: Vec<String> =
            [Frequency::Weekly, Frequency::Monthly, Frequency::Quarterly, Frequency::HalfYearly, Frequency::Yearly]
                .iter()
                .map(|f| {
                    let (unit, count) = f.vipps_interval();
                    interval_text(unit, i64::from(count))
                })
                .collect();
        assert_eq!(texts, ["per week", "per month", "every 3 months", "every 6 months", "per year"]);
        assert_eq!(interval_text("FORTNIGHT", 1), "every 1 FORTNIGHT");
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap_or_default()
    }

    fn dates(schedule: &Schedule, n: usize) -> Vec<NaiveDate> {
        (0..1000).filter_map(|i| schedule.due_date(i)).take(n).collect()
    }

    #[test]
    fn monthly_on_the_31st_falls_back_to_the_last_day_and_returns() {
        let s = Schedule::new(d(2026, 1, 10), None, Frequency::Monthly, Some(31)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dates(&s, 4), [d(2026, 1, 31), d(2026, 2, 28), d(2026, 3, 31), d(2026, 4, 30)]);
        let leap = Schedule::new(d(2028, 1, 31), None, Frequency::Monthly, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dates(&leap, 2), [d(2028, 1, 31), d(2028, 2, 29)]);
    }

    #[test]
    fn a_collection_day_already_past_starts_next_month() {
        let s = Schedule::new(d(2026, 3, 20), None, Frequency::Monthly, Some(5)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dates(&s, 2), [d(2026, 4, 5), d(2026, 5, 5)]);
    }

    #[test]
    fn weekly_quarterly_half_yearly_and_yearly_step_as_named() {
        let weekly = Schedule::new(d(2026, 12, 28), None, Frequency::Weekly, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dates(&weekly, 2), [d(2026, 12, 28), d(2027, 1, 4)]);
        let quarterly =
            Schedule::new(d(2026, 11, 30), None, Frequency::Quarterly, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dates(&quarterly, 2), [d(2026, 11, 30), d(2027, 2, 28)]);
        let half = Schedule::new(d(2026, 1, 15), None, Frequency::HalfYearly, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dates(&half, 2), [d(2026, 1, 15), d(2026, 7, 15)]);
        let yearly = Schedule::new(d(2028, 2, 29), None, Frequency::Yearly, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dates(&yearly, 2), [d(2028, 2, 29), d(2029, 2, 28)]);
    }

    #[test]
    fn nothing_falls_after_the_end_date() {
        let s = Schedule::new(d(2026, 1, 1), Some(d(2026, 3, 1)), Frequency::Monthly, None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dates(&s, 10), [d(2026, 1, 1), d(2026, 2, 1), d(2026, 3, 1)]);
        assert_eq!(s.next_on_or_after(d(2026, 1, 2)), Some((1, d(2026, 2, 1))));
        assert_eq!(s.next_on_or_after(d(2026, 3, 2)), None);
    }

    #[test]
    fn periods_stay_in_their_month_when_the_collection_day_changes() {
        let on_20th =
            Schedule::new(d(2026, 3, 20), None, Frequency::Monthly, Some(20)).unwrap_or_else(|e| panic!("{e}"));
        let on_5th = Schedule::new(d(2026, 3, 20), None, Frequency::Monthly, Some(5)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(on_20th.due_date(0), Some(d(2026, 3, 20)));
        assert_eq!(on_5th.due_date(0), None, "the 5th of March is before the start");
        assert_eq!((on_20th.due_date(2), on_5th.due_date(2)), (Some(d(2026, 5, 20)), Some(d(2026, 5, 5))));
        assert_eq!(on_5th.next_on_or_after(d(2026, 3, 21)), Some((1, d(2026, 4, 5))));
        assert_eq!(on_20th.next_on_or_after(d(2027, 3, 21)), Some((13, d(2027, 4, 20))));
        let weekly = Schedule::new(d(2026, 1, 1), None, Frequency::Weekly, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(weekly.next_on_or_after(d(2026, 1, 9)), Some((2, d(2026, 1, 15))));
    }

    #[test]
    fn bad_schedules_and_frequencies_are_refused() {
        assert_eq!(
            Schedule::new(d(2026, 2, 1), Some(d(2026, 1, 1)), Frequency::Monthly, None),
            Err(ScheduleError::EndBeforeStart)
        );
        assert_eq!(
            Schedule::new(d(2026, 2, 1), None, Frequency::Monthly, Some(32)),
            Err(ScheduleError::BadCollectionDay)
        );
        assert_eq!(
            Schedule::new(d(2026, 2, 1), None, Frequency::Monthly, Some(0)),
            Err(ScheduleError::BadCollectionDay)
        );
        assert_eq!("Half-yearly".parse(), Ok(Frequency::HalfYearly));
        assert!("Fortnightly".parse::<Frequency>().is_err());
        assert_eq!(Frequency::Quarterly.vipps_interval(), ("MONTH", 3));
    }

    #[test]
    fn a_walk_skips_late_periods_and_keeps_the_horizon() {
        let s = Schedule::new(d(2026, 1, 10), None, Frequency::Monthly, None).unwrap_or_else(|e| panic!("{e}"));
        let walk = s.walk(0, None, d(2026, 3, 12), 1);
        assert_eq!(walk.due, vec![(2, d(2026, 3, 10)), (3, d(2026, 4, 10))]);
        assert_eq!((walk.next_period, walk.next_date, walk.ended), (4, Some(d(2026, 5, 10)), false));
    }

    #[test]
    fn a_first_period_seen_late_is_kept_until_a_later_one_falls_due() {
        let s = Schedule::new(d(2026, 1, 10), None, Frequency::Monthly, None).unwrap_or_else(|e| panic!("{e}"));
        let walk = s.walk(0, None, d(2026, 1, 25), 1);
        assert_eq!(walk.due, vec![(0, d(2026, 1, 10)), (1, d(2026, 2, 10))]);
        // Once February fell due, January is arrears and goes by the late rule like any other period.
        let walk = s.walk(0, None, d(2026, 2, 20), 1);
        assert_eq!(walk.due, vec![(2, d(2026, 3, 10))]);
        // A later period that was skipped is not the first: the late rule holds for it.
        let walk = s.walk(1, None, d(2026, 2, 20), 1);
        assert_eq!(walk.due, vec![(2, d(2026, 3, 10))]);
    }

    #[test]
    fn a_walk_steps_over_a_pause_and_stops_at_a_paused_period_ahead() {
        let s = Schedule::new(d(2026, 1, 10), None, Frequency::Monthly, None).unwrap_or_else(|e| panic!("{e}"));
        let walk = s.walk(2, Some(d(2026, 4, 15)), d(2026, 3, 12), 1);
        assert_eq!(walk.due, vec![]);
        assert_eq!((walk.next_period, walk.next_date, walk.ended), (3, Some(d(2026, 5, 10)), false));
    }

    #[test]
    fn a_walk_past_the_end_date_ends() {
        let s = Schedule::new(d(2026, 1, 10), Some(d(2026, 2, 10)), Frequency::Monthly, None)
            .unwrap_or_else(|e| panic!("{e}"));
        let walk = s.walk(2, None, d(2026, 3, 12), 1);
        assert_eq!((walk.due.len(), walk.next_period, walk.next_date, walk.ended), (0, 2, None, true));
    }
}
