//! Property test: a record rendered for any grant reads back to the same values on the granted elements.

use chrono::NaiveDate;
use proptest::prelude::*;
use simpul_core::element::{Element, ElementKind, ElementSet};
use simpul_core::record::{Record, Value};

/// Any value an element of this kind can hold, or `Null`.
fn value(kind: ElementKind) -> BoxedStrategy<Value> {
    let held = match kind {
        ElementKind::Number => any::<u64>().prop_map(Value::Number).boxed(),
        ElementKind::Text | ElementKind::Label => any::<String>().prop_map(Value::Text).boxed(),
        // Every day of years 1 to 9999, the years that `yyyy-mm-dd` can write.
        ElementKind::Date => {
            (1i32..=3_652_059).prop_map(|days| Value::Date(NaiveDate::from_num_days_from_ce_opt(days).unwrap())).boxed()
        }
    };
    prop_oneof![1 => Just(Value::Null), 4 => held].boxed()
}

fn record() -> impl Strategy<Value = Record> {
    let values: Vec<_> = Element::ALL.iter().map(|e| value(e.kind())).collect();
    values
        .prop_map(|values| Element::ALL.iter().zip(values).fold(Record::default(), |record, (e, v)| record.with(*e, v)))
}

fn granted() -> impl Strategy<Value = ElementSet> {
    proptest::collection::vec(any::<bool>(), Element::COUNT)
        .prop_map(|grant| Element::ALL.iter().zip(grant).filter(|(_, granted)| *granted).map(|(e, _)| *e).collect())
}

proptest! {
    #[test]
    fn rendered_records_read_back_on_the_granted_elements(record in record(), granted in granted()) {
        let json = record.to_json(granted);
        let back = Record::from_json(&json).unwrap();
        for &e in Element::ALL {
            let want = if granted.contains(e) { record.get(e).clone() } else { Value::Null };
            prop_assert_eq!(back.get(e), &want, "{}", e);
        }
    }
}
