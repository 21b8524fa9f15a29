//! A population record: one value per element, rendered to the wire with only the elements a caller may see.

use chrono::NaiveDate;
use serde_json::{Map, Value as Json};

use crate::element::{Element, ElementKind, ElementSet};

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
}
