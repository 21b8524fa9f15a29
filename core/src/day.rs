//! The quota day: which calendar day an instant counts against, and when that day's quotas come back.
//!
//! Quotas reset at local midnight in the appliance's zone (Asia/Jakarta by default), because that is the day the
//! access agreements and the institutions' staff count in; a UTC day would reset at 07:00 in Jakarta, mid-morning in
//! Jayapura. Callers pass the instant in: nothing here reads a clock.
//!
//! Zones with daylight saving are handled as the calendar has them: a day may last 23 or 25 hours, and where a
//! transition skips local midnight the day begins at the first local instant that exists. In the rare zones whose
//! clocks fall back across midnight, the repeated hour reads as the earlier date again, exactly as a wall clock there
//! would; Indonesia's three zones have no daylight saving, so the appliance never meets this.

use chrono::{DateTime, Days, LocalResult, NaiveDate, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

/// The local date in `zone` at `now`: the day whose quota a request at `now` spends.
pub fn quota_day(now: DateTime<Utc>, zone: Tz) -> NaiveDate {
    now.with_timezone(&zone).date_naive()
}

/// The first instant after `now` that belongs to a later quota day: when the quota spent today comes back, for a
/// client told it has none left.
pub fn next_reset(now: DateTime<Utc>, zone: Tz) -> DateTime<Utc> {
    let tomorrow =
        quota_day(now, zone).checked_add_days(Days::new(1)).expect("a date before the end of chrono's calendar");
    start_of(tomorrow, zone)
}

/// The first instant whose local date in `zone` is `date` or later: local midnight, or where midnight did not happen
/// the transition that skipped it.
pub fn start_of(date: NaiveDate, zone: Tz) -> DateTime<Utc> {
    let midnight = date.and_time(chrono::NaiveTime::MIN);
    match zone.from_local_datetime(&midnight) {
        LocalResult::Single(start) => start.with_timezone(&Utc),
        // Midnight happens twice when the clocks fall back onto it; the date changed the first time.
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        // Midnight was skipped (a spring-forward at 00:00, or a whole skipped day as in Samoa in 2011); the day
        // starts with the transition itself, found by searching for the first second whose date is `date` or later.
        LocalResult::None => first_instant_of(midnight.and_utc(), date, zone),
    }
}

/// The earliest whole second whose local date is `date` or later, searched around `midnight` read as UTC: no zone is
/// more than a day from UTC and none has skipped more than a day, so two days either side bound the search, and time
/// zone transitions happen on whole seconds.
fn first_instant_of(midnight: DateTime<Utc>, date: NaiveDate, zone: Tz) -> DateTime<Utc> {
    let at = |second: i64| DateTime::from_timestamp(second, 0).expect("within chrono's range");
    let mut before = (midnight - TimeDelta::days(2)).timestamp(); // an earlier date
    let mut after = (midnight + TimeDelta::days(2)).timestamp(); // `date` or later
    while after - before > 1 {
        let middle = before + (after - before) / 2;
        if quota_day(at(middle), zone) >= date {
            after = middle;
        } else {
            before = middle;
        }
    }
    at(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn quota_day_turns_at_local_midnight() {
        use chrono_tz::{Asia, Europe};
        let table: &[(&str, Tz, &str)] = &[
            // Jakarta, UTC+7: local midnight is 17:00Z.
            ("2026-11-25T16:59:59Z", Asia::Jakarta, "2026-11-25"),
            ("2026-11-25T17:00:00Z", Asia::Jakarta, "2026-11-26"),
            ("2026-11-25T00:00:00Z", Asia::Jakarta, "2026-11-25"),
            ("2026-12-31T16:59:59.999Z", Asia::Jakarta, "2026-12-31"),
            ("2026-12-31T17:00:00Z", Asia::Jakarta, "2027-01-01"),
            // Jayapura, UTC+9: the same instants already count against the next day two hours earlier.
            ("2026-11-25T14:59:59Z", Asia::Jayapura, "2026-11-25"),
            ("2026-11-25T15:00:00Z", Asia::Jayapura, "2026-11-26"),
            ("2026-11-25T16:59:59Z", Asia::Jayapura, "2026-11-26"),
            // Makassar, UTC+8.
            ("2026-11-25T15:59:59Z", Asia::Makassar, "2026-11-25"),
            ("2026-11-25T16:00:00Z", Asia::Makassar, "2026-11-26"),
            // Berlin in winter (UTC+1) and in summer (UTC+2).
            ("2026-01-10T22:59:59Z", Europe::Berlin, "2026-01-10"),
            ("2026-01-10T23:00:00Z", Europe::Berlin, "2026-01-11"),
            ("2026-07-10T21:59:59Z", Europe::Berlin, "2026-07-10"),
            ("2026-07-10T22:00:00Z", Europe::Berlin, "2026-07-11"),
            ("2026-07-10T22:00:00Z", Tz::UTC, "2026-07-10"),
        ];
        for (now, zone, want) in table {
            assert_eq!(quota_day(utc(now), *zone), date(want), "{now} in {zone}");
        }
    }

    #[test]
    fn next_reset_is_the_next_local_midnight() {
        use chrono_tz::{Asia, Europe};
        let table: &[(&str, Tz, &str)] = &[
            ("2026-11-25T16:59:59Z", Asia::Jakarta, "2026-11-25T17:00:00Z"),
            // Exactly at midnight the new day has begun; its reset is a whole day away.
            ("2026-11-25T17:00:00Z", Asia::Jakarta, "2026-11-26T17:00:00Z"),
            ("2026-11-25T03:12:45.5Z", Asia::Jakarta, "2026-11-25T17:00:00Z"),
            ("2026-11-25T14:59:59Z", Asia::Jayapura, "2026-11-25T15:00:00Z"),
            ("2026-11-25T15:00:00Z", Asia::Jayapura, "2026-11-26T15:00:00Z"),
            // Berlin, spring forward on 2026-03-29 at 02:00 CET: that day lasts 23 hours.
            ("2026-03-28T11:00:00Z", Europe::Berlin, "2026-03-28T23:00:00Z"),
            ("2026-03-28T23:00:00Z", Europe::Berlin, "2026-03-29T22:00:00Z"),
            // Berlin, fall back on 2026-10-25 at 03:00 CEST: that day lasts 25 hours.
            ("2026-10-24T21:59:59Z", Europe::Berlin, "2026-10-24T22:00:00Z"),
            ("2026-10-24T22:00:00Z", Europe::Berlin, "2026-10-25T23:00:00Z"),
        ];
        for (now, zone, want) in table {
            let reset = next_reset(utc(now), *zone);
            assert_eq!(reset, utc(want), "{now} in {zone}");
            assert!(reset > utc(now));
            assert!(quota_day(reset, *zone) > quota_day(utc(now), *zone));
            assert_eq!(quota_day(reset - TimeDelta::seconds(1), *zone), quota_day(utc(now), *zone));
        }
    }

    #[test]
    fn berlin_days_around_the_transitions_last_23_and_25_hours() {
        let zone = chrono_tz::Europe::Berlin;
        let day_length = |start: &str| {
            let start = utc(start);
            next_reset(start, zone) - start
        };
        assert_eq!(day_length("2026-03-28T23:00:00Z"), TimeDelta::hours(23));
        assert_eq!(day_length("2026-10-24T22:00:00Z"), TimeDelta::hours(25));
        assert_eq!(day_length("2026-06-01T22:00:00Z"), TimeDelta::hours(24));
    }

    #[test]
    fn a_skipped_midnight_resets_at_the_transition() {
        // Havana springs forward at 00:00 local (UTC-5 → UTC-4): on 2026-03-08 the clocks go from 23:59:59 on the
        // 7th straight to 01:00 on the 8th, at 05:00Z.
        let havana = chrono_tz::America::Havana;
        assert_eq!(next_reset(utc("2026-03-07T17:00:00Z"), havana), utc("2026-03-08T05:00:00Z"));
        assert_eq!(quota_day(utc("2026-03-08T04:59:59Z"), havana), date("2026-03-07"));
        assert_eq!(quota_day(utc("2026-03-08T05:00:00Z"), havana), date("2026-03-08"));
        // Samoa skipped 2011-12-30 entirely: the 29th (UTC-10) ended at 10:00Z and the 31st (UTC+14) began.
        let apia = chrono_tz::Pacific::Apia;
        let reset = next_reset(utc("2011-12-29T22:00:00.25Z"), apia);
        assert_eq!(reset, utc("2011-12-30T10:00:00Z"));
        assert_eq!(quota_day(reset, apia), date("2011-12-31"));
    }
}
