//! The KK (Kartu Keluarga, family card) number: `PP KK CC DDMMYY SSSS`, the issuing region as in a NIK, the date the
//! record was made (no offset for anyone), and a serial.

use chrono::NaiveDate;

use crate::sixteen::{number_error, shared_methods, Sixteen};

/// A structurally valid KK number, with its record date.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct KkNumber {
    digits: Sixteen,
    record_date: NaiveDate,
}

number_error! {
    /// Which part of a KK number is wrong. Every variant is Dukcapil's response code 15.
    KkError { number: "KK number", short: "KK", date: "record", days: "not 01–31" }
}

impl KkNumber {
    /// Parses a KK number, as strictly about its form as [`crate::nik::Nik::parse`]: 16 ASCII digits, possibly in
    /// groups separated by single spaces, dots or dashes, with ASCII whitespace around the whole trimmed; anything
    /// else is [`KkError::Format`]. The record year is 20yy unless that date would be after `reference`, else 19yy;
    /// a record date after `reference` is rejected.
    pub fn parse(input: &str, reference: NaiveDate) -> Result<KkNumber, KkError> {
        let (digits, record_date) = Sixteen::parse(input, reference, |day| (1..=31).contains(&day).then_some(day))?;
        Ok(KkNumber { digits, record_date })
    }

    /// Builds a KK number from its parts, checked by the same rules as [`KkNumber::parse`] except the reference date.
    pub fn compose(
        province: u8,
        regency: u8,
        district: u8,
        record_date: NaiveDate,
        serial: u16,
    ) -> Result<KkNumber, KkError> {
        let digits = Sixteen::compose(province, regency, district, record_date, 0, serial)?;
        Ok(KkNumber { digits, record_date })
    }

    pub fn record_date(&self) -> NaiveDate {
        self.record_date
    }
}

shared_methods!(KkNumber);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::nik::DigitsError;
    use crate::region::{RegionCodeError, RegionWarning};
    use crate::sixteen::test_support::{date, reference, Region};
    use crate::wire::code::ResponseCode;

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
    fn only_digits_in_groups_with_single_separators_are_a_kk_number() {
        let kk = KkNumber::parse("3374042005150003", reference()).unwrap();
        let accepted = [
            "3374042005150003",
            "3374 0420 0515 0003",
            "3374.042005.150003",
            "3374-0420-0515-0003",
            "33.74.04-200515-0003",
            " 3374042005150003\n",
        ];
        for input in accepted {
            assert_eq!(KkNumber::parse(input, reference()), Ok(kk), "{input:?}");
        }
        use DigitsError::*;
        let refused: &[(&str, DigitsError)] = &[
            ("-3374042005150003", Sign('-')),
            ("+3374042005150003", Sign('+')),
            (" -3374042005150003", Sign('-')),
            ("-3374-0420-0515-0003", Sign('-')),
            ("3374042005150003.0", Length(17)),
            ("3.374042005150003e15", NotDigit('e')),
            ("3374--0420-0515-0003", SeparatorAfterSeparator('-', '-')),
            ("3374-0420-0515-0003-", SeparatorAtEdge('-')),
            ("3374\t0420\t0515\t0003", NotDigit('\t')),
            ("３３７４０４２００５１５０００３", NotDigit('３')),
            ("337404200515000", Length(15)),
            ("33740420051500031", Length(17)),
            ("", Length(0)),
        ];
        for &(input, want) in refused {
            let got = KkNumber::parse(input, reference());
            assert_eq!(got, Err(KkError::Format(want)), "{input:?}");
            assert_eq!(got.unwrap_err().response_code().code(), "15", "{input:?}");
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
    fn errors_name_the_kk_number_and_its_record_date() {
        let table: &[(KkError, &str)] = &[
            (KkError::Format(DigitsError::Length(15)), "not a KK number: 15 digits, not 16"),
            (KkError::Format(DigitsError::Sign('-')), "not a KK number: a sign ('-') is not part of the number"),
            (
                KkError::Region(RegionCodeError::Regency(70)),
                "KK number regency code 70 is neither a kabupaten (01–69) nor a kota (71–99)",
            ),
            (KkError::Day(60), "KK record day 60 is not 01–31"),
            (KkError::Month(0), "KK record month 00 is not 01–12"),
            (KkError::NoSuchDate { day: 31, month: 4, year: 2015 }, "KK record date 31-04-2015 does not exist"),
            (KkError::InFuture(date(1999, 1, 1)), "KK record date 1999-01-01 is after the reference date"),
            (KkError::Year(2100), "record year 2100 cannot be written in a KK number (1900–2099)"),
            (KkError::Serial(0), "KK serial 0000 is not 0001–9999"),
        ];
        for (error, want) in table {
            assert_eq!(error.to_string(), *want);
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
