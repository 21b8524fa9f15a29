//! The period an agreement (PKS) is in force: local days, the first and the last both included. The gateway's
//! institutions and the warehouse stand-in's consumers are let in, shown and refused by this one rule.

use chrono::NaiveDate;

/// From `from` through `until`, both days included; an open end is `NaiveDate::MIN` or `NaiveDate::MAX`
/// ([`Period::open`]). One that ends before it starts holds no day, and [`Period::check`] refuses it where records
/// are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: NaiveDate,
    pub until: NaiveDate,
}

/// Where a day falls against a [`Period`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before the first day: not yet in force.
    Before,
    /// From the first day through the last.
    Within,
    /// After the last day: ended.
    After,
}

/// A period whose last day is before its first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ends ({until}) before it starts ({from})")]
pub struct Inverted {
    pub from: NaiveDate,
    pub until: NaiveDate,
}

impl Period {
    /// A period that may be open at either end: no first day is "since ever", no last day "for good".
    pub fn open(from: Option<NaiveDate>, until: Option<NaiveDate>) -> Self {
        Period { from: from.unwrap_or(NaiveDate::MIN), until: until.unwrap_or(NaiveDate::MAX) }
    }

    /// The period itself, unless it ends before it starts.
    pub fn check(self) -> Result<Self, Inverted> {
        if self.until < self.from {
            return Err(Inverted { from: self.from, until: self.until });
        }
        Ok(self)
    }

    pub fn phase(&self, today: NaiveDate) -> Phase {
        if today < self.from {
            Phase::Before
        } else if today > self.until {
            Phase::After
        } else {
            Phase::Within
        }
    }

    pub fn contains(&self, today: NaiveDate) -> bool {
        self.phase(today) == Phase::Within
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn a_period_holds_its_first_and_last_day_and_nothing_around_them() {
        let period = |from: &str, until: &str| Period { from: date(from), until: date(until) }.check().unwrap();
        let year = period("2026-01-01", "2026-12-31");
        let one_day = period("2026-07-01", "2026-07-01");
        let from_july = Period::open(Some(date("2026-07-01")), None).check().unwrap();
        let until_june = Period::open(None, Some(date("2026-06-30"))).check().unwrap();
        let always = Period::open(None, None).check().unwrap();
        let table = [
            (year, "2025-12-31", Phase::Before),
            (year, "2026-01-01", Phase::Within),
            (year, "2026-12-31", Phase::Within),
            (year, "2027-01-01", Phase::After),
            (one_day, "2026-06-30", Phase::Before),
            (one_day, "2026-07-01", Phase::Within),
            (one_day, "2026-07-02", Phase::After),
            (from_july, "2026-06-30", Phase::Before),
            (from_july, "2026-07-01", Phase::Within),
            (from_july, "9999-12-31", Phase::Within),
            (until_june, "0001-01-01", Phase::Within),
            (until_june, "2026-06-30", Phase::Within),
            (until_june, "2026-07-01", Phase::After),
            (always, "0001-01-01", Phase::Within),
        ];
        for (period, day, want) in table {
            assert_eq!(period.phase(date(day)), want, "{period:?} on {day}");
            assert_eq!(period.contains(date(day)), want == Phase::Within, "{period:?} on {day}");
        }
        assert_eq!((always.from, always.until), (NaiveDate::MIN, NaiveDate::MAX));
    }

    #[test]
    fn a_period_may_not_end_before_it_starts_and_one_that_does_holds_no_day() {
        let (from, until) = (date("2026-07-01"), date("2026-06-30"));
        let inverted = Period { from, until };
        assert_eq!(inverted.check(), Err(Inverted { from, until }));
        assert_eq!(Period::open(Some(from), Some(until)).check(), Err(Inverted { from, until }));
        assert_eq!(Inverted { from, until }.to_string(), "ends (2026-06-30) before it starts (2026-07-01)");
        for day in ["2026-06-29", "2026-06-30", "2026-07-01", "2026-07-02"] {
            assert!(!inverted.contains(date(day)), "{day}");
        }
        assert!(Period { from, until: from }.check().is_ok(), "one day");
    }
}
