//! Property tests: what Simpul renders on the wire parses back to the same value, and the lenient request parser
//! reads every key casing and scalar form to the same request.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Value};
use simpul_core::element::Element;
use simpul_core::record::Value as RecordValue;
use simpul_core::similarity::{name_similarity, normalise_name};
use simpul_core::verify::{verdict, Verdict};
use simpul_core::wire::code::{Dialect, ResponseCode};
use simpul_core::wire::envelope::{self, Envelope, Outcome};
use simpul_core::wire::method::Method;
use simpul_core::wire::request::{parse_request, Request};
use simpul_core::wire::route::{parse_path, Route};

fn json_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ]
}

fn content_object() -> impl Strategy<Value = Map<String, Value>> {
    proptest::collection::vec(("[A-Za-z_]{1,12}", json_scalar()), 0..8)
        .prop_map(|pairs| pairs.into_iter().collect::<Map<String, Value>>())
}

fn recase(s: &str, mask: &[bool]) -> String {
    s.chars()
        .zip(mask.iter().cycle())
        .map(|(c, upper)| if *upper { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
        .collect()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'_' { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// A field value as the parser returns it (trimmed, not blank), and whether a client could send it as a number.
fn field_value() -> impl Strategy<Value = (String, bool)> {
    prop_oneof![
        "[1-9][0-9]{0,15}".prop_map(|s| (s, true)),
        "0[0-9]{1,3}".prop_map(|s| (s, false)),
        "[A-Za-z0-9][A-Za-z0-9 .,'/-]{0,24}[A-Za-z0-9]".prop_map(|s| (s, false)),
    ]
}

#[derive(Debug, Clone)]
struct WireKey {
    name: String,
    as_number: bool,
    padded: bool,
}

fn wire_key(names: &'static [&'static str]) -> impl Strategy<Value = WireKey> {
    (select(names), proptest::collection::vec(any::<bool>(), 1..8), any::<bool>(), any::<bool>())
        .prop_map(|(name, mask, as_number, padded)| WireKey { name: recase(name, &mask), as_number, padded })
}

#[derive(Debug, Clone)]
struct Case {
    want: Request,
    /// Key as sent, value as the parser must return it, whether it may go as a JSON number, padding.
    pairs: Vec<(WireKey, String, bool)>,
}

fn request_case() -> impl Strategy<Value = Case> {
    let fields = proptest::collection::btree_map(
        select(Element::ALL),
        (field_value(), proptest::collection::vec(any::<bool>(), 1..8), any::<bool>(), any::<bool>(), any::<bool>()),
        0..8,
    );
    (
        proptest::option::of(("[A-Za-z0-9_]{1,12}", wire_key(&["user_id", "userid"]))),
        proptest::option::of(("[ -~]{0,6}[!-~][ -~]{0,6}", wire_key(&["password"]))),
        proptest::option::of(("[0-9]{1,3}(\\.[0-9]{1,3}){3}", wire_key(&["ip_user", "ip_address", "ip_users"]))),
        proptest::option::of((0u8..=100, wire_key(&["treshold", "threshold"]))),
        fields,
    )
        .prop_map(|(user, password, ip, threshold, fields)| {
            let mut want = Request::default();
            let mut pairs = Vec::new();
            if let Some((v, key)) = user {
                want.user_id = Some(v.clone());
                pairs.push((key, v, false));
            }
            if let Some((v, key)) = password {
                want.password = Some(v.clone());
                // A password keeps its spaces, so it is never padded.
                pairs.push((WireKey { padded: false, ..key }, v, false));
            }
            if let Some((v, key)) = ip {
                want.ip_claim = Some(v.clone());
                pairs.push((key, v, false));
            }
            if let Some((t, key)) = threshold {
                want.threshold = Some(t);
                pairs.push((key, t.to_string(), true));
            }
            for (element, ((value, numeric), mask, as_number, padded, alias)) in fields {
                want.fields.insert(element, value.clone());
                let name = if element == Element::NoProp && alias { "NOMOR_PROP" } else { element.wire_name() };
                let key = WireKey { name: recase(name, &mask), as_number, padded };
                pairs.push((key, value, numeric));
            }
            Case { want, pairs }
        })
}

fn body_of(pairs: &[(WireKey, String, bool)]) -> Vec<u8> {
    let mut body = Map::new();
    body.insert("transactionId".into(), Value::from("trx-1"));
    for (key, value, numeric) in pairs {
        let json = match value.parse::<u64>() {
            Ok(n) if *numeric && key.as_number => Value::from(n),
            _ if key.padded => Value::from(format!("  {value} ")),
            _ => Value::from(value.as_str()),
        };
        body.insert(key.name.clone(), json);
    }
    Value::Object(body).to_string().into_bytes()
}

fn route() -> impl Strategy<Value = Route> {
    let segment = "[ -~]{1,20}".prop_filter("not only slashes", |s| s.chars().any(|c| c != '/'));
    prop_oneof![
        (segment.clone(), segment.clone()).prop_map(|(consumer_id, method)| Route::Central { consumer_id, method }),
        ("[0-9]{2}(-[0-9]{2})?", segment.clone(), segment).prop_map(|(region, userset, method)| Route::Regional {
            region,
            userset,
            method
        }),
    ]
}

fn verdict_value() -> impl Strategy<Value = Verdict> {
    (any::<bool>(), proptest::option::of(0u8..=100)).prop_map(|(m, score)| {
        if m {
            Verdict::Match { score }
        } else {
            Verdict::Mismatch { score }
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn envelopes_parse_back(content in proptest::collection::vec(content_object(), 0..4), quota in any::<u64>()) {
        let bytes = envelope::render(&content, quota);
        let text = String::from_utf8(bytes.clone()).unwrap();
        let n = content.len();
        let tail = format!(
            r#","lastPage":true,"numberOfElements":{n},"sort":null,"totalElements":{n},"firstPage":true,"number":0,"size":{n},"quotaLimiter":{quota}}}"#
        );
        prop_assert!(text.starts_with(r#"{"content":["#), "{}", text);
        prop_assert!(text.ends_with(&tail), "{}", text);
        let back = envelope::parse(&bytes).unwrap();
        prop_assert_eq!(&back, &Envelope { content: content.clone(), quota_remaining: quota });
        // Key order inside each object survives too.
        for (got, sent) in back.content.iter().zip(&content) {
            prop_assert!(got.keys().eq(sent.keys()));
        }
        if content.first().is_none_or(|m| !m.contains_key("RESPON") && !m.contains_key("RESPONSE_CODE")) {
            prop_assert_eq!(back.outcome(), Outcome::Data);
        }
    }

    #[test]
    fn code_bodies_parse_back_in_both_dialects(code in select(ResponseCode::ALL), quota in any::<u64>()) {
        let coded = envelope::parse(&envelope::render_code(Dialect::Coded, code, quota)).unwrap();
        prop_assert_eq!(coded.quota_remaining, quota);
        prop_assert_eq!(coded.outcome(), Outcome::Code(code));
        let legacy = envelope::parse(&envelope::render_code(Dialect::Legacy, code, quota)).unwrap();
        prop_assert_eq!(legacy.quota_remaining, quota);
        match legacy.outcome() {
            // Some codes share a legacy text; the text is what a legacy client sees.
            Outcome::Code(back) => prop_assert_eq!(back.legacy_text(), code.legacy_text()),
            other => prop_assert!(false, "{:?} came back as {:?}", code, other),
        }
    }

    #[test]
    fn transport_error_bodies_carry_their_message(
        status in 400u16..600,
        message in "[A-Za-z][A-Za-z ,]{0,40}",
        quota in any::<u64>(),
        legacy in any::<bool>(),
    ) {
        prop_assume!(ResponseCode::ALL.iter().all(|c| {
            !c.legacy_text().eq_ignore_ascii_case(message.trim()) && !c.description().eq_ignore_ascii_case(message.trim())
        }));
        let dialect = if legacy { Dialect::Legacy } else { Dialect::Coded };
        let back = envelope::parse(&envelope::render_transport_error(dialect, status, &message, quota)).unwrap();
        prop_assert_eq!(back.quota_remaining, quota);
        prop_assert_eq!(back.outcome(), Outcome::Text(message.clone()));
        if !legacy {
            prop_assert_eq!(&back.content[0]["RESPONSE_CODE"], &Value::from(status.to_string()));
        }
    }

    #[test]
    fn verdicts_parse_back(v in verdict_value()) {
        prop_assert_eq!(v.to_string().parse::<Verdict>(), Ok(v));
    }

    #[test]
    fn method_names_parse_back_in_any_case(m in select(Method::ALL), mask in proptest::collection::vec(any::<bool>(), 1..8)) {
        prop_assert_eq!(Method::parse(&recase(m.wire_name(), &mask)), Some(m));
        let json = serde_json::to_string(&m).unwrap();
        prop_assert_eq!(serde_json::from_str::<Method>(&json).unwrap(), m);
    }

    #[test]
    fn routes_parse_back(r in route()) {
        prop_assert_eq!(parse_path(&r.path()), Ok(r.clone()));
        prop_assert_eq!(parse_path(&format!("{}/", r.path())), Ok(r));
    }

    #[test]
    fn requests_in_any_casing_and_scalar_form_parse_to_the_same_fields(case in request_case()) {
        let got = parse_request(&body_of(&case.pairs), None).unwrap();
        prop_assert_eq!(&got, &case.want);
        prop_assert_eq!(parse_request(&got.to_body(), None).unwrap(), case.want);
    }

    #[test]
    fn requests_split_between_query_and_body_parse_the_same(case in request_case(), split in any::<u64>()) {
        let (mut query, mut body) = (Vec::new(), Vec::new());
        for (i, pair) in case.pairs.iter().enumerate() {
            if split >> (i % 64) & 1 == 1 {
                query.push(format!("{}={}", percent_encode(&pair.0.name), percent_encode(&pair.1)));
                // The body's value wins over a stale one in the query.
                body.push(pair.clone());
            } else if split >> ((i + 32) % 64) & 1 == 1 {
                query.push(format!("{}={}", percent_encode(&pair.0.name), percent_encode(&pair.1)));
            } else {
                body.push(pair.clone());
            }
        }
        let query = query.join("&");
        let body = if body.is_empty() && split % 2 == 0 { Vec::new() } else { body_of(&body) };
        prop_assert_eq!(parse_request(&body, Some(&query)).unwrap(), case.want);
    }

    #[test]
    fn body_values_win_over_query_values(nik in "[1-9][0-9]{15}", stale in "[1-9][0-9]{15}") {
        let body = format!(r#"{{"NIK":{nik}}}"#);
        let got = parse_request(body.as_bytes(), Some(&format!("nik={stale}&USER_ID=u"))).unwrap();
        prop_assert_eq!(got.nik(), Some(nik.as_str()));
        prop_assert_eq!(got.user_id.as_deref(), Some("u"));
    }

    #[test]
    fn similarity_is_symmetric_bounded_and_reflexive(a in "[A-Za-z .,']{0,30}", b in "[A-Za-z .,']{0,30}") {
        let s = name_similarity(&a, &b);
        prop_assert!(s <= 100);
        prop_assert_eq!(s, name_similarity(&b, &a));
        prop_assert_eq!(name_similarity(&a, &a), 100);
        if normalise_name(&a) == normalise_name(&b) {
            prop_assert_eq!(s, 100);
        }
    }

    #[test]
    fn titles_spacing_and_word_order_do_not_change_a_name(words in proptest::collection::vec("[A-Z]{2,9}", 1..4)) {
        let name = words.join(" ");
        // Titles and abbreviations are what normalisation removes or rewrites; keep the words to real names.
        prop_assume!(words.iter().all(|w| {
            normalise_name(&format!("{w} X")) == format!("{w} X") && normalise_name(&format!("X {w}")) == format!("X {w}")
        }));
        prop_assume!(normalise_name(&words.concat()) == words.concat());
        let titled = format!("Drs. H. {}, S.H., M.M.", name.to_lowercase());
        prop_assert_eq!(name_similarity(&titled, &name), 100);
        prop_assert_eq!(name_similarity(&words.concat(), &name), 100);
        let mut reversed = words.clone();
        reversed.reverse();
        prop_assert_eq!(name_similarity(&reversed.join(" "), &name), 100);
    }

    #[test]
    fn numbers_match_with_any_zero_padding(n in any::<u64>(), zeros in 0usize..4) {
        let claimed = format!("{}{n}", "0".repeat(zeros));
        prop_assert_eq!(verdict(Element::NoKel, &RecordValue::Number(n), &claimed, 80), Verdict::Match { score: None });
        let other = format!("{}", n.wrapping_add(1));
        prop_assert_eq!(verdict(Element::NoKel, &RecordValue::Number(n), &other, 80), Verdict::Mismatch { score: None });
    }

    #[test]
    fn dates_match_in_both_wire_forms(days in 0i64..60_000) {
        let date = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap() + chrono::Duration::days(days);
        let recorded = RecordValue::Date(date);
        for claimed in [date.format("%Y-%m-%d").to_string(), date.format("%d-%m-%Y").to_string()] {
            prop_assert_eq!(verdict(Element::TglLhr, &recorded, &claimed, 80), Verdict::Match { score: None });
        }
        let next = (date + chrono::Duration::days(1)).format("%d-%m-%Y").to_string();
        prop_assert_eq!(verdict(Element::TglLhr, &recorded, &next, 80), Verdict::Mismatch { score: None });
    }
}

#[test]
fn verification_example_of_the_wire_spec_renders_byte_for_byte() {
    let verdicts = [
        (Element::Nik, Verdict::Match { score: None }),
        (Element::NamaLgkp, Verdict::Match { score: Some(100) }),
        (Element::TmptLhr, Verdict::Mismatch { score: Some(59) }),
        (Element::TglLhr, Verdict::Match { score: None }),
        (Element::KabName, Verdict::Mismatch { score: None }),
    ];
    let body = envelope::render(&[simpul_core::verify::render_verdicts(&verdicts)], 56616);
    assert_eq!(
        String::from_utf8(body).unwrap(),
        concat!(
            r#"{"content":[{"NIK":"Sesuai","NAMA_LGKP":"Sesuai (100)","TMPT_LHR":"Tidak Sesuai (59)","TGL_LHR":"Sesuai","KAB_NAME":"Tidak Sesuai"}],"#,
            r#""lastPage":true,"numberOfElements":1,"sort":null,"totalElements":1,"firstPage":true,"number":0,"size":1,"quotaLimiter":56616}"#
        )
    );
}

#[test]
fn a_verification_request_flows_from_body_to_answer() {
    let body = br#"{"user_id":"bpjs01","password":"rahasia","ip_user":"10.7.0.2","NIK":3372041003870006,
        "NAMA_LGKP":"Hj. Siti Nur Haliza","TGL_LHR":"10-03-1987","NO_KEC":"004","NO_RT":" ","transactionId":"x1"}"#;
    let request = parse_request(body, None).unwrap();
    let record = simpul_core::record::Record::default()
        .with(Element::Nik, RecordValue::Number(3372041003870006))
        .with(Element::NamaLgkp, RecordValue::Text("SITI NURHALIZA".into()))
        .with(Element::TglLhr, RecordValue::Date(NaiveDate::from_ymd_opt(1987, 3, 10).unwrap()))
        .with(Element::NoKec, RecordValue::Number(4));
    let threshold = request.threshold.unwrap_or(simpul_core::verify::DEFAULT_THRESHOLD);
    let verdicts = simpul_core::verify::verify(&record, &request.fields, threshold);
    let rendered: BTreeMap<String, Value> = simpul_core::verify::render_verdicts(&verdicts).into_iter().collect();
    let want: BTreeMap<String, Value> =
        [("NIK", "Sesuai"), ("NAMA_LGKP", "Sesuai (100)"), ("TGL_LHR", "Sesuai"), ("NO_KEC", "Sesuai")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::from(v)))
            .collect();
    assert_eq!(rendered, want);
}
