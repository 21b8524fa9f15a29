//! The rows of a `CALL_AGREGAT` answer, one per sex and age band of the region asked for:
//! `{"NO_PROP":33,"NO_KAB":74,"JENIS_KLMIN":"Laki-Laki","KELOMPOK_UMUR":"20-24","JUMLAH":1234}`, with `NO_KAB` and
//! `NO_KEC` present only when the request named them. Region codes and counts are JSON numbers, as in records.

use serde_json::{Map, Value};

use crate::element::Element;
use crate::nik::Sex;
use crate::wire::request::json_kind;

const PROVINCE: &str = Element::NoProp.wire_name();
const REGENCY: &str = Element::NoKab.wire_name();
const DISTRICT: &str = Element::NoKec.wire_name();
const SEX: &str = Element::JenisKlmin.wire_name();
const AGE_BAND: &str = "KELOMPOK_UMUR";
const COUNT: &str = "JUMLAH";

/// One row: the number of living residents of a region of one sex in one age band.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub province: u8,
    pub regency: Option<u8>,
    pub district: Option<u8>,
    pub sex: Sex,
    /// As the warehouse labels it: `0-4`, `5-9`, ..., `75+`.
    pub age_band: String,
    pub count: u64,
}

/// Why a JSON object is not an aggregate row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AggregateError {
    #[error("aggregate row has no {0}")]
    Missing(&'static str),
    #[error("aggregate row {key} is not {expected}: {value}")]
    Invalid { key: &'static str, expected: &'static str, value: String },
}

/// Renders a row, keys in the order NO_PROP, NO_KAB, NO_KEC, JENIS_KLMIN, KELOMPOK_UMUR, JUMLAH.
pub fn render_row(
    province: u8,
    regency: Option<u8>,
    district: Option<u8>,
    sex: Sex,
    age_band: &str,
    count: u64,
) -> Map<String, Value> {
    let mut row = Map::new();
    for (key, code) in [(PROVINCE, Some(province)), (REGENCY, regency), (DISTRICT, district)] {
        if let Some(code) = code {
            row.insert(key.to_owned(), Value::from(code));
        }
    }
    row.insert(SEX.to_owned(), Value::from(sex.wire_label()));
    row.insert(AGE_BAND.to_owned(), Value::from(age_band));
    row.insert(COUNT.to_owned(), Value::from(count));
    row
}

/// Reads a row back. Keys are matched exactly and values must have the types [`render_row`] writes: `CALL_AGREGAT`
/// is Simpul's own method, so there are no field variants to tolerate. Other keys are ignored. `JENIS_KLMIN` is
/// read in any case, as in records.
pub fn parse_row(row: &Map<String, Value>) -> Result<Row, AggregateError> {
    let code = |key: &'static str| match row.get(key) {
        None => Ok(None),
        Some(value) => value
            .as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| invalid(key, "a region code from 0 to 255", value)),
    };
    let province = code(PROVINCE)?.ok_or(AggregateError::Missing(PROVINCE))?;
    let regency = code(REGENCY)?;
    let district = code(DISTRICT)?;
    let required = |key: &'static str| row.get(key).ok_or(AggregateError::Missing(key));
    let sex = required(SEX)?;
    let sex = sex.as_str().and_then(Sex::from_wire_label).ok_or_else(|| invalid(SEX, "a sex label", sex))?;
    let age_band = required(AGE_BAND)?;
    let age_band = age_band.as_str().ok_or_else(|| invalid(AGE_BAND, "a string", age_band))?.to_owned();
    let count = required(COUNT)?;
    let count = count.as_u64().ok_or_else(|| invalid(COUNT, "a whole number", count))?;
    Ok(Row { province, regency, district, sex, age_band, count })
}

fn invalid(key: &'static str, expected: &'static str, value: &Value) -> AggregateError {
    let value = match value {
        Value::String(_) | Value::Number(_) => value.to_string(),
        other => json_kind(other).to_owned(),
    };
    AggregateError::Invalid { key, expected, value }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn keys(row: &Map<String, Value>) -> Vec<&str> {
        row.keys().map(String::as_str).collect()
    }

    #[test]
    fn renders_the_keys_in_wire_order_with_numbers_as_numbers() {
        let row = render_row(33, Some(74), None, Sex::Male, "20-24", 1234);
        assert_eq!(
            Value::Object(row).to_string(),
            r#"{"NO_PROP":33,"NO_KAB":74,"JENIS_KLMIN":"Laki-Laki","KELOMPOK_UMUR":"20-24","JUMLAH":1234}"#
        );
        let province = render_row(33, None, None, Sex::Female, "75+", 0);
        assert_eq!(keys(&province), ["NO_PROP", "JENIS_KLMIN", "KELOMPOK_UMUR", "JUMLAH"]);
        assert_eq!(province["JENIS_KLMIN"], "Perempuan");
        let district = render_row(33, Some(74), Some(4), Sex::Male, "0-4", 7);
        assert_eq!(keys(&district), ["NO_PROP", "NO_KAB", "NO_KEC", "JENIS_KLMIN", "KELOMPOK_UMUR", "JUMLAH"]);
    }

    #[test]
    fn malformed_rows_say_which_key_is_wrong() {
        let invalid = |key, expected, value: &str| AggregateError::Invalid { key, expected, value: value.to_owned() };
        let code = "a region code from 0 to 255";
        let table: &[(&str, AggregateError)] = &[
            (r#"{"JENIS_KLMIN":"Laki-Laki","KELOMPOK_UMUR":"0-4","JUMLAH":1}"#, AggregateError::Missing("NO_PROP")),
            (r#"{"NO_PROP":33,"KELOMPOK_UMUR":"0-4","JUMLAH":1}"#, AggregateError::Missing("JENIS_KLMIN")),
            (r#"{"NO_PROP":33,"JENIS_KLMIN":"Laki-Laki","JUMLAH":1}"#, AggregateError::Missing("KELOMPOK_UMUR")),
            (r#"{"NO_PROP":33,"JENIS_KLMIN":"Laki-Laki","KELOMPOK_UMUR":"0-4"}"#, AggregateError::Missing("JUMLAH")),
            (r#"{"NO_PROP":256}"#, invalid("NO_PROP", code, "256")),
            (r#"{"NO_PROP":"33"}"#, invalid("NO_PROP", code, r#""33""#)),
            (r#"{"NO_PROP":33,"NO_KAB":-1}"#, invalid("NO_KAB", code, "-1")),
            (r#"{"NO_PROP":33,"NO_KEC":[4]}"#, invalid("NO_KEC", code, "an array")),
            (r#"{"NO_PROP":33,"JENIS_KLMIN":"L"}"#, invalid("JENIS_KLMIN", "a sex label", r#""L""#)),
            (
                r#"{"NO_PROP":33,"JENIS_KLMIN":"Perempuan","KELOMPOK_UMUR":null}"#,
                invalid("KELOMPOK_UMUR", "a string", "null"),
            ),
            (
                r#"{"NO_PROP":33,"JENIS_KLMIN":"Perempuan","KELOMPOK_UMUR":"0-4","JUMLAH":1.5}"#,
                invalid("JUMLAH", "a whole number", "1.5"),
            ),
        ];
        for (json, want) in table {
            let row: Map<String, Value> = serde_json::from_str(json).unwrap();
            assert_eq!(parse_row(&row).as_ref(), Err(want), "{json}");
        }
        let row = serde_json::from_str(r#"{"NO_PROP":"33"}"#).unwrap();
        assert_eq!(
            parse_row(&row).unwrap_err().to_string(),
            r#"aggregate row NO_PROP is not a region code from 0 to 255: "33""#
        );
    }

    #[test]
    fn other_keys_are_ignored_and_the_sex_label_is_read_in_any_case() {
        let row = serde_json::from_str(
            r#"{"NO_PROP":33,"JENIS_KLMIN":"PEREMPUAN","KELOMPOK_UMUR":"75+","JUMLAH":12,"CATATAN":"x"}"#,
        )
        .unwrap();
        let want =
            Row { province: 33, regency: None, district: None, sex: Sex::Female, age_band: "75+".into(), count: 12 };
        assert_eq!(parse_row(&row), Ok(want));
    }

    proptest! {
        #[test]
        fn rendered_rows_parse_back(
            province: u8,
            regency: Option<u8>,
            district: Option<u8>,
            female: bool,
            age_band: String,
            count: u64,
        ) {
            let sex = if female { Sex::Female } else { Sex::Male };
            let row = render_row(province, regency, district, sex, &age_band, count);
            prop_assert_eq!(parse_row(&row), Ok(Row { province, regency, district, sex, age_band, count }));
        }
    }
}
