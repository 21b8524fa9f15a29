//! A population record: one value per element, rendered to the wire with only the elements a caller may see, and
//! read back from such a rendering.

use chrono::NaiveDate;
use serde_json::{Map, Value as Json};

use crate::element::{Element, ElementKind, ElementSet};
use crate::wire::request::{json_kind, parse_wire_date};

/// One element's value. Empty dates and deed numbers are `Null` and render as JSON `null`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Value {
    #[default]
    Null,
    Number(u64),
    Text(String),
    Date(NaiveDate),
}

impl Value {
    /// The JSON form used in `CALL_NIK` answers: numbers as numbers, dates as `yyyy-mm-dd`.
    pub fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Number(n) => Json::from(*n),
            Value::Text(s) => Json::from(s.as_str()),
            Value::Date(d) => Json::from(d.format("%Y-%m-%d").to_string()),
        }
    }

    /// The value as text, for comparisons in verification; `None` when empty.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Null => None,
            Value::Number(n) => Some(n.to_string()),
            Value::Text(s) => Some(s.clone()),
            Value::Date(d) => Some(d.format("%Y-%m-%d").to_string()),
        }
    }
}

/// A full record as the warehouse holds it; callers cut it down with [`Record::to_json`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    values: Vec<Value>,
}

impl Default for Record {
    fn default() -> Self {
        Record { values: vec![Value::Null; Element::COUNT] }
    }
}

impl Record {
    pub fn get(&self, e: Element) -> &Value {
        &self.values[e.index()]
    }

    /// Sets an element; a value of the wrong kind for the element is a programming error and panics in debug builds.
    pub fn set(&mut self, e: Element, v: Value) {
        debug_assert!(
            matches!(
                (e.kind(), &v),
                (_, Value::Null)
                    | (ElementKind::Number, Value::Number(_))
                    | (ElementKind::Text | ElementKind::Label, Value::Text(_))
                    | (ElementKind::Date, Value::Date(_))
            ),
            "{e} cannot hold {v:?}"
        );
        self.values[e.index()] = v;
    }

    /// Builder form of [`Record::set`].
    pub fn with(mut self, e: Element, v: Value) -> Self {
        self.set(e, v);
        self
    }

    /// The record as a JSON object holding only `granted` elements, in wire order.
    pub fn to_json(&self, granted: ElementSet) -> Map<String, Json> {
        granted.iter().map(|e| (e.wire_name().to_owned(), self.get(e).to_json())).collect()
    }

    /// Reads a `CALL_NIK` content object back: the inverse of [`Record::to_json`], with elements absent from the
    /// object left `Null`.
    ///
    /// Keys are element names in any case (`NOMOR_PROP` for `NO_PROP`; of two keys naming one element, the later
    /// wins). Keys that name no element are ignored, because the upstream may add keys at any time and a gateway that
    /// refused them would stop answering; a known element with a value of the wrong type is an error, because passing
    /// it on would hand callers a wrong value.
    ///
    /// Number elements take JSON whole numbers (read as `u64`, never through floating point, so a 16-digit NIK keeps
    /// every digit) or digit strings, zero padding allowed. Date elements take `yyyy-mm-dd` (or `dd-mm-yyyy`, as the
    /// request parser does). Text and label elements take strings, kept exactly. A blank string in a number or date
    /// element means empty, as `null` does: neither kind can hold text, and an upstream that leaves a field blank
    /// rather than `null` still means "no value".
    pub fn from_json(object: &Map<String, Json>) -> Result<Record, RecordError> {
        let mut record = Record::default();
        for (key, json) in object {
            if let Some(e) = Element::from_wire_name(key) {
                record.values[e.index()] = element_value(e, json)?;
            }
        }
        Ok(record)
    }
}

/// Why a JSON object is not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("{element} must be {expected}, not {found}")]
    WrongType { element: Element, expected: &'static str, found: &'static str },
    #[error("{element} must be a whole number from 0 to 18446744073709551615, not {value}")]
    InvalidNumber { element: Element, value: String },
    #[error("{element} must be a date as yyyy-mm-dd, not {value:?}")]
    InvalidDate { element: Element, value: String },
}

fn element_value(element: Element, json: &Json) -> Result<Value, RecordError> {
    let kind = element.kind();
    let invalid_number = |value: String| RecordError::InvalidNumber { element, value };
    match (kind, json) {
        (_, Json::Null) => Ok(Value::Null),
        (ElementKind::Text | ElementKind::Label, Json::String(s)) => Ok(Value::Text(s.clone())),
        (ElementKind::Number | ElementKind::Date, Json::String(s)) if s.trim().is_empty() => Ok(Value::Null),
        (ElementKind::Number, Json::Number(n)) => {
            n.as_u64().map(Value::Number).ok_or_else(|| invalid_number(n.to_string()))
        }
        (ElementKind::Number, Json::String(s)) => {
            // `str::parse` alone would also take a leading `+`.
            let digits = s.trim();
            let number = if digits.bytes().all(|b| b.is_ascii_digit()) { digits.parse().ok() } else { None };
            number.map(Value::Number).ok_or_else(|| invalid_number(format!("{s:?}")))
        }
        (ElementKind::Date, Json::String(s)) => {
            parse_wire_date(s).map(Value::Date).ok_or_else(|| RecordError::InvalidDate { element, value: s.clone() })
        }
        _ => Err(RecordError::WrongType {
            element,
            expected: match kind {
                ElementKind::Number => "a number, a string of digits or null",
                ElementKind::Date => "a date string or null",
                ElementKind::Text | ElementKind::Label => "a string or null",
            },
            found: json_kind(json),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_only_granted_elements_in_wire_order_with_numbers_as_numbers() {
        let r = Record::default()
            .with(Element::Nik, Value::Number(3372041003870006))
            .with(Element::NamaLgkp, Value::Text("SITI AMINAH".into()))
            .with(Element::NoKec, Value::Number(9))
            .with(Element::TglLhr, Value::Date(NaiveDate::from_ymd_opt(1987, 3, 10).unwrap()));
        let granted: ElementSet =
            [Element::NoKec, Element::Nik, Element::TglLhr, Element::TglKwn].into_iter().collect();
        let json = serde_json::to_string(&r.to_json(granted)).unwrap();
        assert_eq!(json, r#"{"NIK":3372041003870006,"TGL_LHR":"1987-03-10","TGL_KWN":null,"NO_KEC":9}"#);
    }

    fn object(json: &str) -> Map<String, Json> {
        serde_json::from_str(json).unwrap()
    }

    fn date(y: i32, m: u32, d: u32) -> Value {
        Value::Date(NaiveDate::from_ymd_opt(y, m, d).unwrap())
    }

    #[test]
    fn reads_every_accepted_form_of_each_kind() {
        let table: &[(&str, Element, Value)] = &[
            (r#"{"NIK":3372041003870006}"#, Element::Nik, Value::Number(3372041003870006)),
            (r#"{"NO_KK":18446744073709551615}"#, Element::NoKk, Value::Number(u64::MAX)),
            (r#"{"NIK":"3372041003870006"}"#, Element::Nik, Value::Number(3372041003870006)),
            (r#"{"NO_KEC":" 040 "}"#, Element::NoKec, Value::Number(40)),
            (r#"{"NO_RT":0}"#, Element::NoRt, Value::Number(0)),
            (r#"{"NO_RT":""}"#, Element::NoRt, Value::Null),
            (r#"{"NO_RT":" "}"#, Element::NoRt, Value::Null),
            (r#"{"NO_RT":null}"#, Element::NoRt, Value::Null),
            (r#"{"TGL_LHR":"1987-03-10"}"#, Element::TglLhr, date(1987, 3, 10)),
            (r#"{"TGL_LHR":"10-03-1987"}"#, Element::TglLhr, date(1987, 3, 10)),
            (r#"{"TGL_KWN":null}"#, Element::TglKwn, Value::Null),
            (r#"{"TGL_KWN":""}"#, Element::TglKwn, Value::Null),
            (r#"{"NAMA_LGKP":" SITI  AMINAH "}"#, Element::NamaLgkp, Value::Text(" SITI  AMINAH ".into())),
            (r#"{"NO_AKTA_LHR":""}"#, Element::NoAktaLhr, Value::Text(String::new())),
            (r#"{"NO_AKTA_LHR":null}"#, Element::NoAktaLhr, Value::Null),
            (r#"{"AGAMA":"ISLAM"}"#, Element::Agama, Value::Text("ISLAM".into())),
            (r#"{"nama_lgkp":"SITI"}"#, Element::NamaLgkp, Value::Text("SITI".into())),
            (r#"{"NOMOR_PROP":33}"#, Element::NoProp, Value::Number(33)),
        ];
        for (json, element, want) in table {
            let record = Record::from_json(&object(json)).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(record.get(*element), want, "{json}");
            assert_eq!(record, Record::default().with(*element, want.clone()), "{json}: only {element} is set");
        }
    }

    #[test]
    fn keys_that_name_no_element_are_ignored() {
        let record =
            Record::from_json(&object(r#"{"NIK":1,"RESPON":"x","NEW_FIELD":[1,{"a":true}],"nik_x":null}"#)).unwrap();
        assert_eq!(record, Record::default().with(Element::Nik, Value::Number(1)));
    }

    #[test]
    fn wrong_types_and_values_name_the_element() {
        use RecordError::*;
        let wrong = |element, expected, found| WrongType { element, expected, found };
        let number = |element, value: &str| InvalidNumber { element, value: value.into() };
        let table: &[(&str, RecordError)] = &[
            (r#"{"NIK":true}"#, wrong(Element::Nik, "a number, a string of digits or null", "a boolean")),
            (r#"{"NO_RT":[1]}"#, wrong(Element::NoRt, "a number, a string of digits or null", "an array")),
            (r#"{"TGL_LHR":19870310}"#, wrong(Element::TglLhr, "a date string or null", "a number")),
            (r#"{"NAMA_LGKP":42}"#, wrong(Element::NamaLgkp, "a string or null", "a number")),
            (r#"{"agama":{"x":1}}"#, wrong(Element::Agama, "a string or null", "an object")),
            (r#"{"NIK":-1}"#, number(Element::Nik, "-1")),
            (r#"{"NO_RT":5.0}"#, number(Element::NoRt, "5.0")),
            (r#"{"NIK":18446744073709551616}"#, number(Element::Nik, "1.8446744073709552e+19")),
            (r#"{"NIK":"18446744073709551616"}"#, number(Element::Nik, r#""18446744073709551616""#)),
            (r#"{"NO_KEC":"+4"}"#, number(Element::NoKec, r#""+4""#)),
            (r#"{"NO_KEC":"4a"}"#, number(Element::NoKec, r#""4a""#)),
            (r#"{"TGL_LHR":"1987-02-30"}"#, InvalidDate { element: Element::TglLhr, value: "1987-02-30".into() }),
        ];
        for (json, want) in table {
            assert_eq!(Record::from_json(&object(json)).as_ref(), Err(want), "{json}");
        }
        assert_eq!(
            Record::from_json(&object(r#"{"NIK":true}"#)).unwrap_err().to_string(),
            "NIK must be a number, a string of digits or null, not a boolean"
        );
        assert_eq!(
            Record::from_json(&object(r#"{"NO_KEC":"4a"}"#)).unwrap_err().to_string(),
            r#"NO_KEC must be a whole number from 0 to 18446744073709551615, not "4a""#
        );
    }
}
