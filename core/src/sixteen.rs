//! What NIK and KK numbers share: `PP KK CC DDMMYY SSSS`, the issuing region, a date written with a two-digit year,
//! and a serial. [`crate::nik`] and [`crate::kk`] add only how they read the day digits and how they name things.

use std::fmt;

use chrono::{Datelike, NaiveDate};

use crate::region::{self, RegionCodeError};

/// What is wrong with the form of a 16-digit number (NIK or KK), before its parts are read. The one form accepted
/// (see [`crate::nik::Nik::parse`]): ASCII digits in groups separated by single spaces, dots or dashes, 16 in all,
/// with ASCII whitespace around the whole trimmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DigitsError {
    /// A character that is neither an ASCII digit nor a separator (space, dot, dash): a letter, a tab or newline
    /// inside the number, a fullwidth or other non-ASCII digit, a non-breaking space, an `e`, a `+` after the start.
    #[error("{0:?} is not a digit or a separator")]
    NotDigit(char),
    /// The number of digits, when the form is right but they are not 16 (0 when nothing is left after the trim).
    #[error("{0} digits, not 16")]
    Length(usize),
    /// A `-` or `+` first: a number's form allows no sign.
    #[error("a sign ({0:?}) is not part of the number")]
    Sign(char),
    /// A dot or dash at the start or the end, after the outer whitespace is trimmed (so never a space; a `-` at the
    /// start is a [`DigitsError::Sign`]).
    #[error("a separator ({0:?}) at the start or the end")]
    SeparatorAtEdge(char),
    /// A separator (the second) right after another (the first): separators stand between digits, one at a time.
    #[error("separators two in a row ({0:?} then {1:?})")]
    SeparatorAfterSeparator(char, char),
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
    /// Parses strictly about the form: after leading and trailing ASCII whitespace (space, tab, line feed, form feed,
    /// carriage return) is trimmed, groups of ASCII digits separated by exactly one space, dot or dash
    /// (`3374041003870006`, `3374 0410 0387 0006`, `3374.041003.870006`, `3374-0410-0387-0006`, mixed too), with 16
    /// digits in all. A sign, a separator at the start or the end or next to another, and any other character
    /// (`+`, `e`, a tab or newline inside, a non-breaking space, fullwidth or other non-ASCII digits) are
    /// [`Fault::Format`], whatever digits the text holds. This is stricter than lokal-id, which drops JavaScript
    /// whitespace, dots and dashes anywhere: a number is refused rather than guessed at.
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

/// The characters that may stand between two groups of digits.
fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '.' | '-')
}

/// The 16 digits of a number in the form [`Sixteen::parse`] describes, as values 0–9. The first fault from the left
/// is reported; a wrong count of digits only once the form is right.
fn sixteen_digits(input: &str) -> Result<[u8; 16], DigitsError> {
    let form = input.trim_matches(|c: char| c.is_ascii_whitespace());
    if let Some(sign @ ('-' | '+')) = form.chars().next() {
        return Err(DigitsError::Sign(sign));
    }
    let mut digits = [0; 16];
    let mut count = 0;
    let mut previous = None;
    for c in form.chars() {
        if c.is_ascii_digit() {
            if let Some(slot) = digits.get_mut(count) {
                *slot = c as u8 - b'0';
            }
            count += 1;
        } else if is_separator(c) {
            match previous {
                None => return Err(DigitsError::SeparatorAtEdge(c)),
                Some(before) if is_separator(before) => return Err(DigitsError::SeparatorAfterSeparator(before, c)),
                Some(_) => {}
            }
        } else {
            return Err(DigitsError::NotDigit(c));
        }
        previous = Some(c);
    }
    match previous {
        Some(last) if is_separator(last) => Err(DigitsError::SeparatorAtEdge(last)),
        _ if count == 16 => Ok(digits),
        _ => Err(DigitsError::Length(count)),
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
    ($number:ident) => {
        impl $number {
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::test_support::reference;
    use super::*;

    const NUMBER: u64 = 3374041003870006;

    /// The form check and the parse behind it, with the day read as a KK reads it (the day digits here are 10).
    fn parse(input: &str) -> Result<u64, DigitsError> {
        match Sixteen::parse(input, reference(), |day| (1..=31).contains(&day).then_some(day)) {
            Ok((number, _)) => Ok(number.as_u64()),
            Err(Fault::Format(e)) => Err(e),
            Err(other) => panic!("{input:?}: not a format fault: {other:?}"),
        }
    }

    #[test]
    fn digits_in_groups_with_single_separators_are_accepted() {
        let table = [
            "3374041003870006",
            "3374 0410 0387 0006",
            "3374.041003.870006",
            "3374-0410-0387-0006",
            "33.74.04-100387-0006",
            "3 3 7 4 0 4 1 0 0 3 8 7 0 0 0 6",
            " 3374041003870006 ",
            "\t\r\n3374 0410 0387 0006\n",
            "\u{c}3374-0410-0387-0006 \t",
        ];
        for input in table {
            assert_eq!(parse(input), Ok(NUMBER), "{input:?}");
        }
    }

    #[test]
    fn every_other_form_is_a_format_fault() {
        use DigitsError::*;
        let table: &[(&str, DigitsError)] = &[
            ("-3374041003870006", Sign('-')),
            ("+3374041003870006", Sign('+')),
            (" -3374041003870006", Sign('-')),
            ("\t+3374041003870006", Sign('+')),
            ("-3374-0410-0387-0006", Sign('-')),
            ("--3374041003870006", Sign('-')),
            ("3374041003870006.0", Length(17)),
            ("3374041003870006.", SeparatorAtEdge('.')),
            ("3.374041003870006e15", NotDigit('e')),
            ("3.3740410038700065e+19", NotDigit('e')),
            ("3374041003870006e0", NotDigit('e')),
            ("3374--0410-0387-0006", SeparatorAfterSeparator('-', '-')),
            ("3374  0410 0387 0006", SeparatorAfterSeparator(' ', ' ')),
            ("3374 - 0410 0387 0006", SeparatorAfterSeparator(' ', '-')),
            ("3374.-0410-0387-0006", SeparatorAfterSeparator('.', '-')),
            ("3374-0410-0387-0006-", SeparatorAtEdge('-')),
            ("3374-0410-0387-0006- ", SeparatorAtEdge('-')),
            (".3374041003870006", SeparatorAtEdge('.')),
            ("3374\t0410\t0387\t0006", NotDigit('\t')),
            ("3374\n0410 0387 0006", NotDigit('\n')),
            ("3374+0410+0387+0006", NotDigit('+')),
            ("3374/0410/0387/0006", NotDigit('/')),
            ("3374_0410_0387_0006", NotDigit('_')),
            ("3374\u{a0}0410038 70006", NotDigit('\u{a0}')),
            ("3374041003870006\u{a0}", NotDigit('\u{a0}')),
            ("\u{feff}3374041003870006", NotDigit('\u{feff}')),
            ("\u{3000}3374041003870006", NotDigit('\u{3000}')),
            ("\u{b}3374041003870006", NotDigit('\u{b}')),
            ("３３７４０４１００３８７０００６", NotDigit('３')),
            ("٣٣٧٤041003870006", NotDigit('٣')),
            ("33740410038700O6", NotDigit('O')),
            ("337404100387000", Length(15)),
            ("33740410038700061", Length(17)),
            ("3374 0410 0387 000", Length(15)),
            ("", Length(0)),
            (" \t\r\n", Length(0)),
        ];
        for &(input, want) in table {
            assert_eq!(parse(input), Err(want), "{input:?}");
        }
    }

    #[test]
    fn format_faults_say_what_is_wrong() {
        use DigitsError::*;
        let table = [
            (Sign('-'), "a sign ('-') is not part of the number"),
            (SeparatorAtEdge('.'), "a separator ('.') at the start or the end"),
            (SeparatorAfterSeparator(' ', '-'), "separators two in a row (' ' then '-')"),
            (NotDigit('\t'), "'\\t' is not a digit or a separator"),
            (NotDigit('３'), "'３' is not a digit or a separator"),
            (Length(15), "15 digits, not 16"),
        ];
        for (error, want) in table {
            assert_eq!(error.to_string(), want);
        }
    }

    /// The form said another way: split at the separators, every group is one or more ASCII digits.
    fn in_form(input: &str) -> bool {
        let form = input.trim_matches(|c: char| c.is_ascii_whitespace());
        let groups: Vec<&str> = form.split([' ', '.', '-']).collect();
        groups.iter().all(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()))
            && groups.iter().map(|g| g.len()).sum::<usize>() == 16
    }

    proptest! {
        #[test]
        fn accepted_exactly_when_in_form(input in "[ \t.+-]{0,2}([0-9]{1,6}[ \t.+e-]{0,2}){1,6}[ \t.+-]{0,2}") {
            let digits = sixteen_digits(&input);
            prop_assert_eq!(digits.is_ok(), in_form(&input), "{:?}: {:?}", input, digits);
            if let Ok(digits) = digits {
                let ascii: Vec<u8> = input.bytes().filter(u8::is_ascii_digit).map(|b| b - b'0').collect();
                prop_assert_eq!(digits.as_slice(), ascii.as_slice());
            }
        }

        #[test]
        fn any_grouping_with_single_separators_is_accepted(
            digits in "[0-9]{16}",
            cuts in proptest::collection::btree_map(1usize..16, proptest::sample::select(vec![' ', '.', '-']), 0..15),
            (before, after) in ("[ \t\r\n]{0,3}", "[ \t\r\n]{0,3}"),
        ) {
            let mut input = before;
            for (i, digit) in digits.chars().enumerate() {
                if let Some(separator) = cuts.get(&i) {
                    input.push(*separator);
                }
                input.push(digit);
            }
            input.push_str(&after);
            let got = sixteen_digits(&input).map(|d| d.iter().map(|d| char::from(b'0' + d)).collect::<String>());
            prop_assert_eq!(got, Ok(digits), "{:?}", input);
        }
    }
}
