//! Dates in config files: TOML's own date literal (`valid_until = 2026-12-31`) or a quoted string, both a local day.
//! chrono alone only reads the string form, and an admin writing TOML will reach for the literal.

use chrono::NaiveDate;
use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Text(String),
    Literal(toml::value::Datetime),
}

fn parse<E: serde::de::Error>(raw: Raw) -> Result<NaiveDate, E> {
    let text = match raw {
        Raw::Text(s) => s,
        Raw::Literal(d) if d.time.is_none() && d.offset.is_none() => d.to_string(),
        Raw::Literal(d) => return Err(E::custom(format!("{d}: expected a date without a time, like 2026-12-31"))),
    };
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|e| E::custom(format!("{text:?} is not a date like 2026-12-31: {e}")))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
    parse(Raw::deserialize(d)?)
}

pub mod option {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
        Option::<Raw>::deserialize(d)?.map(parse).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    struct T {
        #[serde(default, with = "super::option")]
        day: Option<NaiveDate>,
    }

    #[test]
    fn literal_and_string_dates_read_alike_and_times_are_refused() {
        let want = NaiveDate::from_ymd_opt(2026, 12, 31);
        assert_eq!(toml::from_str::<T>("day = 2026-12-31").unwrap().day, want);
        assert_eq!(toml::from_str::<T>("day = \"2026-12-31\"").unwrap().day, want);
        assert_eq!(toml::from_str::<T>("").unwrap().day, None);
        for bad in ["day = 2026-12-31T10:00:00", "day = \"31-12-2026\"", "day = \"2026-02-30\"", "day = 5"] {
            assert!(toml::from_str::<T>(bad).is_err(), "{bad}");
        }
    }
}
