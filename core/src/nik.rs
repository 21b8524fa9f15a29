//! NIK (Nomor Induk Kependudukan), the 16-digit population number: `PP KK CC DDMMYY SSSS`.
//!
//! Province, regency and district where it was issued; birth date with 40 added to the day for women; a serial.
//! The century of the birth year is not written down: it is inferred from a reference date the caller passes in.

use chrono::NaiveDate;

pub use crate::sixteen::DigitsError;
use crate::sixteen::{number_error, shared_methods, Sixteen};

/// A structurally valid NIK, with the sex and birth date it encodes.
///
/// Ordered by its number first. Two values with the same digits differ only if they were parsed against reference
/// dates that put the birth in different centuries.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Nik {
    digits: Sixteen,
    birth_date: NaiveDate,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Sex {
    Male,
    Female,
}

impl Sex {
    /// `JENIS_KLMIN` as the warehouse writes it.
    pub const fn wire_label(self) -> &'static str {
        match self {
            Sex::Male => "Laki-Laki",
            Sex::Female => "Perempuan",
        }
    }

    /// Reads `JENIS_KLMIN` in any case (`Laki-Laki`, `LAKI-LAKI`, `Perempuan`, `PEREMPUAN` are all seen).
    pub fn from_wire_label(label: &str) -> Option<Sex> {
        [Sex::Male, Sex::Female].into_iter().find(|sex| sex.wire_label().eq_ignore_ascii_case(label.trim()))
    }
}

/// Women's birth days are written with this added.
const FEMALE_DAY_OFFSET: u8 = 40;

number_error! {
    /// Which part of a NIK is wrong. Every variant is Dukcapil's response code 15.
    NikError { number: "NIK", short: "NIK", date: "birth", days: "neither 01–31 (men) nor 41–71 (women)" }
}

impl Nik {
    /// Parses a NIK, strictly about its form: 16 ASCII digits, possibly in groups separated by single spaces, dots or
    /// dashes (`3374 0410 0387 0006`, `3374.041003.870006`, `3374-0410-0387-0006`), with ASCII whitespace around
    /// the whole trimmed. Anything else (a sign, a separator at an end or next to another, any other character) is
    /// [`NikError::Format`], code 15 like every other fault.
    ///
    /// The birth year is 20yy unless that date would be after `reference`, else 19yy, so a birth is never in the
    /// future. A regency or district code missing from the catalogue is not an error: see [`Nik::region_warning`].
    pub fn parse(input: &str, reference: NaiveDate) -> Result<Nik, NikError> {
        let (digits, birth_date) = Sixteen::parse(input, reference, |day| match day {
            1..=31 => Some(day),
            41..=71 => Some(day - FEMALE_DAY_OFFSET),
            _ => None,
        })?;
        Ok(Nik { digits, birth_date })
    }

    /// Builds a NIK from its parts, checked by the same rules as [`Nik::parse`] except the reference date: the
    /// caller chose the birth date, which only has to be writable (1900–2099).
    pub fn compose(
        province: u8,
        regency: u8,
        district: u8,
        birth_date: NaiveDate,
        sex: Sex,
        serial: u16,
    ) -> Result<Nik, NikError> {
        let day_offset = match sex {
            Sex::Male => 0,
            Sex::Female => FEMALE_DAY_OFFSET,
        };
        let digits = Sixteen::compose(province, regency, district, birth_date, day_offset, serial)?;
        Ok(Nik { digits, birth_date })
    }

    pub fn birth_date(&self) -> NaiveDate {
        self.birth_date
    }

    pub fn sex(&self) -> Sex {
        if self.digits.group(3) > FEMALE_DAY_OFFSET {
            Sex::Female
        } else {
            Sex::Male
        }
    }
}

shared_methods!(Nik);

#[cfg(test)]
mod tests {
    use chrono::Datelike;
    use proptest::prelude::*;

    use super::*;
    use crate::region::{RegionCodeError, RegionWarning};
    use crate::sixteen::test_support::{date, reference, Region};
    use crate::wire::code::ResponseCode;

    /// What `compose` takes: region, birth date, sex, serial.
    type Parts = (u8, u8, u8, NaiveDate, Sex, u16);

    #[test]
    fn parses_parts_sex_and_birth_date() {
        let table: &[(&str, Region, NaiveDate, Sex, u16)] = &[
            ("3374041003870006", (33, 74, 4), date(1987, 3, 10), Sex::Male, 6),
            ("3374045003870006", (33, 74, 4), date(1987, 3, 10), Sex::Female, 6),
            ("3273010101000001", (32, 73, 1), date(2000, 1, 1), Sex::Male, 1),
            ("1101017112999999", (11, 1, 1), date(1999, 12, 31), Sex::Female, 9999),
            ("9601014102250001", (96, 1, 1), date(2025, 2, 1), Sex::Female, 1),
            (" 3374 0410 0387 0006\n", (33, 74, 4), date(1987, 3, 10), Sex::Male, 6),
            ("33.74.04-100387-0006", (33, 74, 4), date(1987, 3, 10), Sex::Male, 6),
        ];
        for &(input, (p, r, d), birth, sex, serial) in table {
            let nik = Nik::parse(input, reference()).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!((nik.province(), nik.regency(), nik.district()), (p, r, d), "{input:?}");
            assert_eq!((nik.birth_date(), nik.sex(), nik.serial()), (birth, sex, serial), "{input:?}");
            let compact: String = input.chars().filter(char::is_ascii_digit).collect();
            assert_eq!(nik.to_string(), compact);
            assert_eq!(nik.as_u64(), compact.parse::<u64>().unwrap());
        }
    }

    #[test]
    fn each_wrong_part_has_its_error() {
        use NikError::*;
        let table: &[(&str, NikError)] = &[
            ("", Format(DigitsError::Length(0))),
            ("337404100387000", Format(DigitsError::Length(15))),
            ("33740410038700061", Format(DigitsError::Length(17))),
            ("33740410038700O6", Format(DigitsError::NotDigit('O'))),
            ("3374041003870006/", Format(DigitsError::NotDigit('/'))),
            ("\u{85}3374041003870006", Format(DigitsError::NotDigit('\u{85}'))),
            ("３３74041003870006", Format(DigitsError::NotDigit('３'))),
            ("3374041003870006\u{a0}\u{feff}", Format(DigitsError::NotDigit('\u{a0}'))),
            ("0074041003870006", Region(RegionCodeError::UnknownProvince(0))),
            ("9974041003870006", Region(RegionCodeError::UnknownProvince(99))),
            ("2074041003870006", Region(RegionCodeError::UnknownProvince(20))),
            ("3300041003870006", Region(RegionCodeError::Regency(0))),
            ("3370041003870006", Region(RegionCodeError::Regency(70))),
            ("3374001003870006", Region(RegionCodeError::District(0))),
            ("3374040003870006", Day(0)),
            ("3374043203870006", Day(32)),
            ("3374044003870006", Day(40)),
            ("3374047203870006", Day(72)),
            ("3374049903870006", Day(99)),
            ("3374041000870006", Month(0)),
            ("3374041013870006", Month(13)),
            ("3374043104870006", NoSuchDate { day: 31, month: 4, year: 1987 }),
            ("3374047104870006", NoSuchDate { day: 31, month: 4, year: 1987 }),
            ("3374043002000006", NoSuchDate { day: 30, month: 2, year: 2000 }),
            ("3374042902230006", NoSuchDate { day: 29, month: 2, year: 2023 }),
            ("3374046902990006", NoSuchDate { day: 29, month: 2, year: 1999 }),
            ("3374041003870000", Serial(0)),
        ];
        for (input, want) in table {
            let got = Nik::parse(input, reference());
            assert_eq!(got, Err(*want), "{input:?}");
            assert_eq!(want.response_code(), ResponseCode::MalformedNik);
            assert_eq!(want.response_code().code(), "15");
        }
    }

    #[test]
    fn only_digits_in_groups_with_single_separators_are_a_nik() {
        let nik = Nik::parse("3374041003870006", reference()).unwrap();
        let accepted = [
            "3374041003870006",
            "3374 0410 0387 0006",
            "3374.041003.870006",
            "3374-0410-0387-0006",
            "33.74.04-100387-0006",
            "  3374041003870006\r\n",
            "\t3374 0410 0387 0006 ",
        ];
        for input in accepted {
            assert_eq!(Nik::parse(input, reference()), Ok(nik), "{input:?}");
        }
        use DigitsError::*;
        let refused: &[(&str, DigitsError)] = &[
            ("-3374041003870006", Sign('-')),
            ("+3374041003870006", Sign('+')),
            (" -3374041003870006", Sign('-')),
            ("-3374-0410-0387-0006", Sign('-')),
            ("3374041003870006.0", Length(17)),
            ("3.374041003870006e15", NotDigit('e')),
            ("3374--0410-0387-0006", SeparatorAfterSeparator('-', '-')),
            ("3374 -0410 0387 0006", SeparatorAfterSeparator(' ', '-')),
            ("3374-0410-0387-0006-", SeparatorAtEdge('-')),
            (".3374041003870006", SeparatorAtEdge('.')),
            ("3374\t0410\t0387\t0006", NotDigit('\t')),
            ("3374\u{a0}0410\u{a0}0387\u{a0}0006", NotDigit('\u{a0}')),
            ("３３７４０４１００３８７０００６", NotDigit('３')),
            ("337404100387000", Length(15)),
            ("33740410038700061", Length(17)),
            ("", Length(0)),
            (" \n ", Length(0)),
        ];
        for &(input, want) in refused {
            let got = Nik::parse(input, reference());
            assert_eq!(got, Err(NikError::Format(want)), "{input:?}");
            assert_eq!(got.unwrap_err().response_code().code(), "15", "{input:?}");
        }
    }

    #[test]
    fn leap_days() {
        let table: &[(&str, NaiveDate, Result<NaiveDate, NikError>)] = &[
            ("3374042902000001", reference(), Ok(date(2000, 2, 29))),
            ("3374046902000001", reference(), Ok(date(2000, 2, 29))),
            ("3374042902960001", reference(), Ok(date(1996, 2, 29))),
            ("3374042902240001", reference(), Ok(date(2024, 2, 29))),
            ("3374042902280001", reference(), Ok(date(1928, 2, 29))),
            // 2000-02-29 is still ahead on these days, so the birth is in 1900, which was not a leap year.
            ("3374042902000001", date(2000, 2, 28), Err(NikError::NoSuchDate { day: 29, month: 2, year: 1900 })),
            ("3374042902000001", date(2000, 2, 29), Ok(date(2000, 2, 29))),
            ("3374042802000001", date(2000, 2, 28), Ok(date(2000, 2, 28))),
            ("3374040103000001", date(2000, 2, 28), Ok(date(1900, 3, 1))),
        ];
        for &(input, reference, want) in table {
            assert_eq!(Nik::parse(input, reference).map(|n| n.birth_date()), want, "{input} on {reference}");
        }
    }

    #[test]
    fn century_never_puts_a_birth_in_the_future() {
        let table: &[(&str, NaiveDate)] = &[
            ("3374041506250001", date(2025, 6, 15)),
            ("3374045506250001", date(2025, 6, 15)),
            ("3374041606250001", date(1925, 6, 16)),
            ("3374040101260001", date(1926, 1, 1)),
            ("3374043112240001", date(2024, 12, 31)),
            ("3374040101000001", date(2000, 1, 1)),
            ("3374043112990001", date(1999, 12, 31)),
        ];
        for &(input, want) in table {
            assert_eq!(Nik::parse(input, reference()).map(|n| n.birth_date()), Ok(want), "{input}");
        }
        // A reference date before 2000 can leave even the 1900s ahead: that is a birth in the future.
        assert_eq!(Nik::parse("3374040101990001", date(1998, 5, 1)), Err(NikError::InFuture(date(1999, 1, 1))));
    }

    #[test]
    fn compose_checks_like_parse() {
        let birth = date(1987, 3, 10);
        let table: &[(Parts, Result<&str, NikError>)] = &[
            ((33, 74, 4, birth, Sex::Male, 6), Ok("3374041003870006")),
            ((33, 74, 4, birth, Sex::Female, 6), Ok("3374045003870006")),
            ((11, 1, 1, date(2099, 12, 31), Sex::Female, 9999), Ok("1101017112999999")),
            ((11, 1, 1, date(1900, 1, 1), Sex::Male, 1), Ok("1101010101000001")),
            ((0, 74, 4, birth, Sex::Male, 6), Err(NikError::Region(RegionCodeError::UnknownProvince(0)))),
            ((133, 74, 4, birth, Sex::Male, 6), Err(NikError::Region(RegionCodeError::UnknownProvince(133)))),
            ((33, 70, 4, birth, Sex::Male, 6), Err(NikError::Region(RegionCodeError::Regency(70)))),
            ((33, 174, 4, birth, Sex::Male, 6), Err(NikError::Region(RegionCodeError::Regency(174)))),
            ((33, 74, 0, birth, Sex::Male, 6), Err(NikError::Region(RegionCodeError::District(0)))),
            ((33, 74, 100, birth, Sex::Male, 6), Err(NikError::Region(RegionCodeError::District(100)))),
            ((33, 74, 4, date(1899, 12, 31), Sex::Male, 6), Err(NikError::Year(1899))),
            ((33, 74, 4, date(2100, 1, 1), Sex::Male, 6), Err(NikError::Year(2100))),
            ((33, 74, 4, birth, Sex::Male, 0), Err(NikError::Serial(0))),
            ((33, 74, 4, birth, Sex::Male, 10_000), Err(NikError::Serial(10_000))),
        ];
        for &((p, r, d, b, s, n), want) in table {
            let got = Nik::compose(p, r, d, b, s, n).map(|nik| nik.to_string());
            assert_eq!(got.as_deref().map_err(|e| *e), want, "{p}.{r}.{d} {b} {s:?} {n}");
        }
    }

    #[test]
    fn sex_labels_read_back_in_any_case() {
        let table = [
            ("Laki-Laki", Some(Sex::Male)),
            ("LAKI-LAKI", Some(Sex::Male)),
            (" laki-laki ", Some(Sex::Male)),
            ("Perempuan", Some(Sex::Female)),
            ("PEREMPUAN", Some(Sex::Female)),
            ("L", None),
            ("Laki Laki", None),
            ("", None),
        ];
        for (label, want) in table {
            assert_eq!(Sex::from_wire_label(label), want, "{label:?}");
        }
        for sex in [Sex::Male, Sex::Female] {
            assert_eq!(Sex::from_wire_label(sex.wire_label()), Some(sex));
        }
    }

    #[test]
    fn region_warning_for_codes_gone_from_the_catalogue() {
        let current = Nik::parse("3374041003870006", reference()).unwrap();
        assert_eq!(current.region_warning(), None);
        let old_regency = Nik::parse("3369041003870006", reference()).unwrap();
        assert_eq!(old_regency.region_warning(), Some(RegionWarning::UnknownRegency { province: 33, regency: 69 }));
        let old_district = Nik::parse("3374981003870006", reference()).unwrap();
        assert_eq!(
            old_district.region_warning(),
            Some(RegionWarning::UnknownDistrict { province: 33, regency: 74, district: 98 })
        );
    }

    #[test]
    fn errors_say_which_part_is_wrong() {
        let table: &[(&str, &str)] = &[
            ("33740410038700", "not a NIK: 14 digits, not 16"),
            ("-3374041003870006", "not a NIK: a sign ('-') is not part of the number"),
            ("3374-0410-0387-0006-", "not a NIK: a separator ('-') at the start or the end"),
            ("3374--0410-0387-0006", "not a NIK: separators two in a row ('-' then '-')"),
            ("3.374041003870006e15", "not a NIK: 'e' is not a digit or a separator"),
            ("3370041003870006", "NIK regency code 70 is neither a kabupaten (01–69) nor a kota (71–99)"),
            ("3374047203870006", "NIK birth day 72 is neither 01–31 (men) nor 41–71 (women)"),
            ("3374043104870006", "NIK birth date 31-04-1987 does not exist"),
            ("3374041003870000", "NIK serial 0000 is not 0001–9999"),
        ];
        for (input, want) in table {
            assert_eq!(Nik::parse(input, reference()).unwrap_err().to_string(), *want);
        }
    }

    fn valid_parts() -> impl Strategy<Value = (u8, u8, u8, NaiveDate, Sex, u16, NaiveDate)> {
        let province =
            proptest::sample::select(crate::region::catalogue().provinces().iter().map(|p| p.code).collect::<Vec<_>>());
        let regency = prop_oneof![1u8..=69, 71u8..=99];
        let sex = prop_oneof![Just(Sex::Male), Just(Sex::Female)];
        // A reference date, and a birth within the century that ends on it: the window the century rule can name.
        let dates = (0i64..36_500, 1i64..36_525).prop_map(|(reference, age)| {
            let reference = date(2000, 1, 1) + chrono::Days::new(reference as u64);
            let birth = reference - chrono::Days::new(age as u64);
            (reference, birth)
        });
        (province, regency, 1u8..=99, dates, sex, 1u16..=9999)
            .prop_filter("birth within 100 years", |(_, _, _, (reference, birth), _, _)| {
                birth.with_year(birth.year() + 100).is_none_or(|later| later > *reference)
            })
            .prop_map(|(p, r, d, (reference, birth), s, n)| (p, r, d, birth, s, n, reference))
    }

    proptest! {
        #[test]
        fn compose_display_parse_round_trips((p, r, d, birth, sex, serial, reference) in valid_parts()) {
            let nik = Nik::compose(p, r, d, birth, sex, serial).unwrap();
            prop_assert_eq!(
                (nik.province(), nik.regency(), nik.district(), nik.birth_date(), nik.sex(), nik.serial()),
                (p, r, d, birth, sex, serial)
            );
            let parsed = Nik::parse(&nik.to_string(), reference).unwrap();
            prop_assert_eq!(parsed, nik);
        }

        #[test]
        fn parse_never_panics_and_display_echoes_the_digits(input in "[0-9 .-]{0,20}|[0-9]{16}", reference in 0i64..73_000) {
            let reference = date(1900, 1, 1) + chrono::Days::new(reference as u64);
            if let Ok(nik) = Nik::parse(&input, reference) {
                let digits: String = input.chars().filter(char::is_ascii_digit).collect();
                prop_assert_eq!(nik.to_string(), digits);
                prop_assert!(nik.birth_date() <= reference);
            }
        }
    }
}
