//! The KK (Kartu Keluarga, family card) number: `PP KK CC DDMMYY SSSS`, the issuing region as in a NIK, the date the
//! record was made (no offset for anyone), and a serial.

use std::fmt;

use chrono::{Datelike, NaiveDate};

use crate::nik::{self, DateError, DigitsError};
use crate::region::{self, RegionCodeError, RegionWarning};
use crate::wire::code::ResponseCode;

/// A structurally valid KK number, with its record date.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct KkNumber {
    number: u64,
    record_date: NaiveDate,
}

/// Which part of a KK number is wrong. Every variant is Dukcapil's response code 15.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum KkError {
    #[error("not a KK number: {0}")]
    Format(#[from] DigitsError),
    #[error("KK number {0}")]
    Region(#[from] RegionCodeError),
    #[error("KK record day {0:02} is not 01–31")]
    Day(u8),
    #[error("KK record month {0:02} is not 01–12")]
    Month(u8),
    #[error("KK record date {day:02}-{month:02}-{year} does not exist")]
    NoSuchDate { day: u8, month: u8, year: i32 },
    #[error("KK record date {0} is after the reference date")]
    InFuture(NaiveDate),
    /// Only from [`KkNumber::compose`]: two digits can only name a year of 1900–2099.
    #[error("record year {0} cannot be written in a KK number (1900–2099)")]
    Year(i32),
    #[error("KK serial {0:04} is not 0001–9999")]
    Serial(u16),
}

impl KkError {
    pub fn response_code(&self) -> ResponseCode {
        ResponseCode::MalformedNik
    }
}

impl From<DateError> for KkError {
    fn from(e: DateError) -> KkError {
        match e {
            DateError::NoSuchDate { day, month, year } => KkError::NoSuchDate { day, month, year },
            DateError::InFuture(date) => KkError::InFuture(date),
        }
    }
}

impl KkNumber {
    /// Parses leniently like [`crate::nik::Nik::parse`] (whitespace, dots and dashes dropped). The record year is
    /// 20yy unless that date would be after `reference`, else 19yy; a record date after `reference` is rejected.
    pub fn parse(input: &str, reference: NaiveDate) -> Result<KkNumber, KkError> {
        let digits = nik::sixteen_digits(input)?;
        let [province, regency, district, day, month, yy] = nik::pairs(&digits);
        region::check_issuing_region(province, regency, district)?;
        if !(1..=31).contains(&day) {
            return Err(KkError::Day(day));
        }
        if !(1..=12).contains(&month) {
            return Err(KkError::Month(month));
        }
        let record_date = nik::infer_date(day, month, yy, reference)?;
        let serial = nik::serial(&digits);
        if serial == 0 {
            return Err(KkError::Serial(serial));
        }
        Ok(KkNumber { number: nik::number(&digits), record_date })
    }

    /// Builds a KK number from its parts, checked by the same rules as [`KkNumber::parse`] except the reference date.
    pub fn compose(
        province: u8,
        regency: u8,
        district: u8,
        record_date: NaiveDate,
        serial: u16,
    ) -> Result<KkNumber, KkError> {
        region::check_issuing_region(province, regency, district)?;
        let year = record_date.year();
        if !(1900..=2099).contains(&year) {
            return Err(KkError::Year(year));
        }
        if !(1..=9999).contains(&serial) {
            return Err(KkError::Serial(serial));
        }
        let date = u64::from(record_date.day()) * 10_000 + u64::from(record_date.month()) * 100 + (year % 100) as u64;
        let number =
            nik::region_number(province, regency, district) * 10_000_000_000 + date * 10_000 + u64::from(serial);
        Ok(KkNumber { number, record_date })
    }

    pub fn province(&self) -> u8 {
        nik::digits_at(self.number, 0)
    }

    pub fn regency(&self) -> u8 {
        nik::digits_at(self.number, 1)
    }

    pub fn district(&self) -> u8 {
        nik::digits_at(self.number, 2)
    }

    pub fn record_date(&self) -> NaiveDate {
        self.record_date
    }

    pub fn serial(&self) -> u16 {
        (self.number % 10_000) as u16
    }

    pub fn as_u64(&self) -> u64 {
        self.number
    }

    /// Some(..) when the regency or district is not in the current catalogue (an old code from before a region split).
    pub fn region_warning(&self) -> Option<RegionWarning> {
        region::region_warning(self.province(), self.regency(), self.district())
    }
}

impl fmt::Display for KkNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016}", self.number)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn reference() -> NaiveDate {
        date(2025, 6, 15)
    }

    /// Province, regency, district.
    type Region = (u8, u8, u8);
    /// What `compose` takes: region, record date, serial.
    type Parts = (u8, u8, u8, NaiveDate, u16);

    #[test]
    fn parses_parts_and_record_date() {
        let table: &[(&str, Region, NaiveDate, u16)] = &[
            ("3374042005150003", (33, 74, 4), date(2015, 5, 20), 3),
            ("3273011506250001", (32, 73, 1), date(2025, 6, 15), 1),
            ("3273011606259999", (32, 73, 1), date(1925, 6, 16), 9999),
            ("3273012902000001", (32, 73, 1), date(2000, 2, 29), 1),
            (" 3374-04-200515-0003 ", (33, 74, 4), date(2015, 5, 20), 3),
        ];
        for &(input, (p, r, d), record, serial) in table {
            let kk = KkNumber::parse(input, reference()).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!((kk.province(), kk.regency(), kk.district()), (p, r, d), "{input:?}");
            assert_eq!((kk.record_date(), kk.serial()), (record, serial), "{input:?}");
            let compact: String = input.chars().filter(char::is_ascii_digit).collect();
            assert_eq!(kk.to_string(), compact);
            assert_eq!(kk.as_u64(), compact.parse::<u64>().unwrap());
            assert_eq!(kk.region_warning(), None);
        }
    }

    #[test]
    fn each_wrong_part_has_its_error() {
        use KkError::*;
        let table: &[(&str, NaiveDate, KkError)] = &[
            ("337404200515000", reference(), Format(DigitsError::Length(15))),
            ("3374042005150003x", reference(), Format(DigitsError::NotDigit('x'))),
            ("9974042005150003", reference(), Region(RegionCodeError::UnknownProvince(99))),
            ("3300042005150003", reference(), Region(RegionCodeError::Regency(0))),
            ("3370042005150003", reference(), Region(RegionCodeError::Regency(70))),
            ("3374002005150003", reference(), Region(RegionCodeError::District(0))),
            ("3374040005150003", reference(), Day(0)),
            ("3374043205150003", reference(), Day(32)),
            // No +40 on a KK: that is a NIK rule for women.
            ("3374046005150003", reference(), Day(60)),
            ("3374042000150003", reference(), Month(0)),
            ("3374042013150003", reference(), Month(13)),
            ("3374043104150003", reference(), NoSuchDate { day: 31, month: 4, year: 2015 }),
            ("3374042902230003", reference(), NoSuchDate { day: 29, month: 2, year: 2023 }),
            ("3374042902000003", date(2000, 1, 1), NoSuchDate { day: 29, month: 2, year: 1900 }),
            ("3374040101990003", date(1998, 5, 1), InFuture(date(1999, 1, 1))),
            ("3374042005150000", reference(), Serial(0)),
        ];
        for &(input, reference, want) in table {
            assert_eq!(KkNumber::parse(input, reference), Err(want), "{input:?}");
            assert_eq!(want.response_code(), ResponseCode::MalformedNik);
        }
    }

    #[test]
    fn compose_checks_like_parse() {
        let recorded = date(2015, 5, 20);
        let table: &[(Parts, Result<&str, KkError>)] = &[
            ((33, 74, 4, recorded, 3), Ok("3374042005150003")),
            ((11, 1, 1, date(1900, 1, 1), 9999), Ok("1101010101009999")),
            ((20, 74, 4, recorded, 3), Err(KkError::Region(RegionCodeError::UnknownProvince(20)))),
            ((33, 70, 4, recorded, 3), Err(KkError::Region(RegionCodeError::Regency(70)))),
            ((33, 74, 0, recorded, 3), Err(KkError::Region(RegionCodeError::District(0)))),
            ((33, 74, 4, date(2100, 1, 1), 3), Err(KkError::Year(2100))),
            ((33, 74, 4, recorded, 0), Err(KkError::Serial(0))),
            ((33, 74, 4, recorded, 10_000), Err(KkError::Serial(10_000))),
        ];
        for &((p, r, d, when, n), want) in table {
            let got = KkNumber::compose(p, r, d, when, n).map(|kk| kk.to_string());
            assert_eq!(got.as_deref().map_err(|e| *e), want, "{p}.{r}.{d} {when} {n}");
        }
    }

    #[test]
    fn region_warning_for_codes_gone_from_the_catalogue() {
        let kk = KkNumber::parse("3374982005150003", reference()).unwrap();
        assert_eq!(
            kk.region_warning(),
            Some(RegionWarning::UnknownDistrict { province: 33, regency: 74, district: 98 })
        );
    }

    proptest! {
        #[test]
        fn compose_display_parse_round_trips(
            province in proptest::sample::select(crate::region::catalogue().provinces().iter().map(|p| p.code).collect::<Vec<_>>()),
            regency in prop_oneof![1u8..=69, 71u8..=99],
            district in 1u8..=99,
            (reference, age) in (0u64..36_500, 0u64..36_400),
            serial in 1u16..=9999,
        ) {
            let reference = date(2000, 1, 1) + chrono::Days::new(reference);
            let recorded = reference - chrono::Days::new(age);
            let kk = KkNumber::compose(province, regency, district, recorded, serial).unwrap();
            prop_assert_eq!(
                (kk.province(), kk.regency(), kk.district(), kk.record_date(), kk.serial()),
                (province, regency, district, recorded, serial)
            );
            prop_assert_eq!(KkNumber::parse(&kk.to_string(), reference), Ok(kk));
        }
    }
}
