//! The lenient request parser: every body shape that field applications send (see `design/WIRE.md`, "Request body").
//!
//! - Keys are matched ignoring case. Credentials: `USER_ID` / `USERID`, `PASSWORD`; the client's IP claim: `IP_USER`,
//!   `IP_ADDRESS` or `IP_USERS`; the threshold: `TRESHOLD` (as every client spells it; `THRESHOLD` is accepted too);
//!   elements by wire name, with `NOMOR_PROP` for `NO_PROP`. Other keys (`transactionId`, ...) are ignored.
//! - Values may be strings or numbers. A number is carried in its decimal form without a detour through floating
//!   point, so a 16-digit NIK sent as a number arrives digit for digit; a float holding a whole number (`80.0`) is
//!   that number (`80`). `null`, an empty string and spaces mean absent.
//! - `NIK` and `NO_KK` are stricter about numbers: only a whole non-negative JSON number (`3374041003870006`,
//!   [`Number::is_u64`]) is carried as its digits. Any other (`-3374041003870006`, `3374041003870006.0`,
//!   `3.374041003870006e15`, one above 64 bits) is never rounded, never normalised and never refused here as
//!   imprecise (07): it is carried as serde_json writes it (`-3374041003870006`, `3374041003870006.0`) and marked
//!   ([`Request::not_whole`]), so that [`crate::policy::prepare`] refuses it as not in Dukcapil's format (15). The
//!   mark matters: a fraction can write as a form the NIK parse accepts (`3374041003.870006`, dots between digits).
//!   As strings, a NIK and a KK number are read by [`crate::nik::Nik::parse`] and [`crate::kk::KkNumber::parse`],
//!   which accept only digits in groups separated by single spaces, dots or dashes.
//! - The query string may carry the same keys (one client sends `USER_ID`, `PASSWORD` and `NIK` there with an empty
//!   body). When a key is in both, the body wins: the body is what the application composed for this call, while a
//!   query string is often a fixed part of a configured URL.
//! - When a key appears twice in different case (`"nik"` and `"NIK"`), the later one wins, as JSON parsers do for
//!   repeated keys; a blank value never overrides a present one, since blank means absent.

use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDate;
use serde_json::{Map, Number, Value};

use crate::element::{Element, ElementSet};
use crate::wire::code::ResponseCode;

/// A parsed request body: who is asking and the elements they sent.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Trimmed.
    pub user_id: Option<String>,
    /// Exactly as sent: spaces may be part of a secret, so they are not trimmed away.
    pub password: Option<String>,
    /// The address the client says it calls from (`ip_user` and its variants), trimmed.
    pub ip_claim: Option<String>,
    /// Every element present, its value trimmed (zero padding and date forms kept as sent).
    pub fields: BTreeMap<Element, String>,
    /// `TRESHOLD`, the verification threshold 0-100.
    pub threshold: Option<u8>,
    /// The NIK and KK numbers that arrived as JSON numbers other than whole non-negative ones that fit 64 bits
    /// (`-3374…`, `3374….0`, `3.374…e15`): their text in `fields` is the number as serde_json writes it. Such a
    /// value is refused (15) whatever its text, since a fraction may write as a dotted NIK (`3374041003.870006`).
    pub not_whole: ElementSet,
}

impl Request {
    /// Whether both a user ID and a password were sent.
    pub fn has_credentials(&self) -> bool {
        self.user_id.is_some() && self.password.is_some()
    }

    pub fn nik(&self) -> Option<&str> {
        self.fields.get(&Element::Nik).map(String::as_str)
    }

    pub fn kk(&self) -> Option<&str> {
        self.fields.get(&Element::NoKk).map(String::as_str)
    }

    /// The request as a canonical JSON body (upper-case keys, values as strings), for forwarding upstream.
    /// [`parse_request`] reads it back to an equal request.
    pub fn to_body(&self) -> Vec<u8> {
        let mut body = Map::new();
        let credentials = [("USER_ID", &self.user_id), ("PASSWORD", &self.password), ("IP_USER", &self.ip_claim)];
        for (key, value) in credentials {
            if let Some(v) = value {
                body.insert(key.to_owned(), Value::from(v.as_str()));
            }
        }
        for (element, value) in &self.fields {
            body.insert(element.wire_name().to_owned(), Value::from(value.as_str()));
        }
        if let Some(t) = self.threshold {
            body.insert("TRESHOLD".to_owned(), Value::from(t));
        }
        Value::Object(body).to_string().into_bytes()
    }
}

// Passwords must not reach logs, and requests are logged.
impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("user_id", &self.user_id)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("ip_claim", &self.ip_claim)
            .field("fields", &self.fields)
            .field("threshold", &self.threshold)
            .field("not_whole", &self.not_whole)
            .finish()
    }
}

/// Why a request could not be read. Every variant answers `07` (invalid parameters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request body is not valid JSON: {0}")]
    NotJson(String),
    #[error("request body must be a JSON object, not {0}")]
    NotAnObject(&'static str),
    #[error("{key} must be a string or a number, not {kind}")]
    NotAScalar { key: String, kind: &'static str },
    #[error("{key} is a number too large to carry exactly; send it as a string")]
    ImpreciseNumber { key: String },
    #[error("TRESHOLD must be a whole number from 0 to 100, not {0:?}")]
    InvalidThreshold(String),
    #[error("query string parameter {0:?} is not UTF-8 after percent-decoding")]
    QueryNotUtf8(String),
}

impl RequestError {
    pub fn response_code(&self) -> ResponseCode {
        ResponseCode::InvalidParameters
    }
}

/// A key that the parser understands, after case folding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    UserId,
    Password,
    IpClaim,
    Threshold,
    Element(Element),
}

impl Key {
    fn of(name: &str) -> Option<Key> {
        let folded = name.trim().to_ascii_lowercase();
        match folded.as_str() {
            "user_id" | "userid" => Some(Key::UserId),
            "password" => Some(Key::Password),
            "ip_user" | "ip_address" | "ip_users" => Some(Key::IpClaim),
            "treshold" | "threshold" => Some(Key::Threshold),
            _ => Element::from_wire_name(&folded).map(Key::Element),
        }
    }
}

/// Reads a request from its body and, for the clients that use it, the URL's query string (without the `?`).
pub fn parse_request(body: &[u8], query: Option<&str>) -> Result<Request, RequestError> {
    // Query first, then body, so that the body's values override; blank values never override.
    let mut raw: BTreeMap<Key, String> = BTreeMap::new();
    let mut put = |key: Key, value: String| {
        if !value.trim().is_empty() {
            raw.insert(key, value);
        }
    };
    for (name, value) in parse_query(query.unwrap_or(""))? {
        if let Some(key) = Key::of(&name) {
            put(key, value);
        }
    }
    let mut not_whole = ElementSet::empty();
    for (name, value) in body_object(body)? {
        let Some(key) = Key::of(&name) else { continue };
        // Whatever digits it holds, a number with a sign, fraction or exponent is not a NIK's or KK's form: carried
        // as written (never rounded to a whole number, never 07) and marked.
        let odd = matches!(&value, Value::Number(n) if carries_sixteen_digits(key) && !n.is_u64());
        let text = match &value {
            Value::Number(n) if odd => Some(n.to_string()),
            _ => scalar_text(&name, &value)?,
        };
        if let (Key::Element(e), Some(text)) = (key, &text) {
            // As in `put`: only a value that is not blank replaces the one before.
            if !text.trim().is_empty() {
                if odd {
                    not_whole.insert(e);
                } else {
                    not_whole.remove(e);
                }
            }
        }
        if let Some(text) = text {
            put(key, text);
        }
    }

    let mut request = Request { not_whole, ..Request::default() };
    for (key, value) in raw {
        let trimmed = value.trim().to_owned();
        match key {
            Key::UserId => request.user_id = Some(trimmed),
            Key::Password => request.password = Some(value),
            Key::IpClaim => request.ip_claim = Some(trimmed),
            Key::Threshold => request.threshold = Some(parse_threshold(&trimmed)?),
            Key::Element(e) => {
                request.fields.insert(e, trimmed);
            }
        }
    }
    Ok(request)
}

/// Whether the key names an element that is a NIK or a KK number, whose JSON numbers are read strictly.
fn carries_sixteen_digits(key: Key) -> bool {
    matches!(key, Key::Element(Element::Nik | Element::NoKk))
}

fn body_object(body: &[u8]) -> Result<Map<String, Value>, RequestError> {
    // Some Windows HTTP stacks start the body with a UTF-8 byte order mark, which JSON parsers refuse.
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(RequestError::NotAnObject(json_kind(&other))),
        Err(e) => Err(RequestError::NotJson(e.to_string())),
    }
}

/// A JSON value's type as error messages name it.
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The text of a scalar value; `None` for `null`.
fn scalar_text(key: &str, value: &Value) -> Result<Option<String>, RequestError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => number_text(key, n).map(Some),
        other => Err(RequestError::NotAScalar { key: key.to_owned(), kind: json_kind(other) }),
    }
}

/// Integers keep their digits; a float holding a whole number (`80.0`) is written as that whole number, as long as
/// it is small enough for `f64` to have held it exactly. Not for a NIK or KK number (see `parse_request`).
fn number_text(key: &str, n: &Number) -> Result<String, RequestError> {
    if n.is_u64() || n.is_i64() {
        return Ok(n.to_string());
    }
    const EXACT_LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53
    let f = n.as_f64().unwrap_or(f64::NAN);
    if f.is_nan() || f.abs() >= EXACT_LIMIT {
        return Err(RequestError::ImpreciseNumber { key: key.to_owned() });
    }
    if f.fract() == 0.0 {
        // Exact: |f| < 2^53 fits i64 with no rounding.
        Ok((f as i64).to_string())
    } else {
        Ok(n.to_string())
    }
}

fn parse_threshold(s: &str) -> Result<u8, RequestError> {
    s.parse::<u8>().ok().filter(|t| *t <= 100).ok_or_else(|| RequestError::InvalidThreshold(s.to_owned()))
}

/// `a=1&b=2` pairs, percent-decoded with `+` as space; pairs without `=` have an empty value.
fn parse_query(query: &str) -> Result<Vec<(String, String)>, RequestError> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| percent_decode(s, true).ok_or_else(|| RequestError::QueryNotUtf8(s.to_owned()));
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

/// Percent-decodes URL text. A `%` not followed by two hex digits is kept as it is, as browsers do;
/// `None` when the decoded bytes are not UTF-8.
pub(crate) fn percent_decode(s: &str, plus_as_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                // Two hex digits make one byte value below 256.
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
            (b'+', ..) if plus_as_space => out.push(b' '),
            (b, ..) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Strips the zero padding of a numeric code (`"040"` -> `"40"`, `"000"` -> `"0"`); other text comes back trimmed.
pub fn normalise_code(s: &str) -> String {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return s.to_owned();
    }
    let stripped = s.trim_start_matches('0');
    if stripped.is_empty() {
        "0".to_owned()
    } else {
        stripped.to_owned()
    }
}

/// Reads a date as clients send it: `dd-mm-yyyy` or `yyyy-mm-dd`, with `-` or `/` between the parts, and a time of
/// day after a space or `T` ignored (database-backed applications send `1987-03-10 00:00:00`).
/// The four-digit part says which end the year is at, so `mm-dd-yyyy` is never guessed.
pub fn parse_wire_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    let date = s.split([' ', 'T']).next()?;
    let parts: Vec<&str> = date.split(['-', '/']).collect();
    let [a, b, c] = parts.as_slice() else { return None };
    if !parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let (year, month, day) = match (a.len(), c.len()) {
        (4, 1..=2) if (1..=2).contains(&b.len()) => (a, b, c),
        (1..=2, 4) if (1..=2).contains(&b.len()) => (c, b, a),
        _ => return None,
    };
    NaiveDate::from_ymd_opt(year.parse().ok()?, month.parse().ok()?, day.parse().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(user: Option<&str>, password: Option<&str>, ip: Option<&str>, fields: &[(Element, &str)]) -> Request {
        Request {
            user_id: user.map(str::to_owned),
            password: password.map(str::to_owned),
            ip_claim: ip.map(str::to_owned),
            fields: fields.iter().map(|(e, v)| (*e, (*v).to_owned())).collect(),
            threshold: None,
            ..Request::default()
        }
    }

    fn with_threshold(mut r: Request, t: u8) -> Request {
        r.threshold = Some(t);
        r
    }

    const NIK: &str = "3372041003870006";

    #[test]
    fn every_lenient_form_of_the_request_body_parses() {
        use Element::*;
        let table: Vec<(&str, &str, Option<&str>, Request)> = vec![
            (
                "upper-case credentials",
                r#"{"USER_ID":"rsud01","PASSWORD":"rahasia","IP_USER":"10.1.2.3","NIK":"3372041003870006"}"#,
                None,
                request(Some("rsud01"), Some("rahasia"), Some("10.1.2.3"), &[(Nik, NIK)]),
            ),
            (
                "lower-case credentials",
                r#"{"user_id":"rsud01","password":"rahasia","ip_user":"10.1.2.3","nik":"3372041003870006"}"#,
                None,
                request(Some("rsud01"), Some("rahasia"), Some("10.1.2.3"), &[(Nik, NIK)]),
            ),
            (
                "userid without underscore, mixed case keys",
                r#"{"userid":"rsud01","Password":"rahasia","Nik":"3372041003870006"}"#,
                None,
                request(Some("rsud01"), Some("rahasia"), None, &[(Nik, NIK)]),
            ),
            (
                "USERID upper case",
                r#"{"USERID":"rsud01","PASSWORD":"rahasia"}"#,
                None,
                request(Some("rsud01"), Some("rahasia"), None, &[]),
            ),
            ("ip_address", r#"{"ip_address":"10.1.2.3"}"#, None, request(None, None, Some("10.1.2.3"), &[])),
            ("ip_users", r#"{"ip_users":" 10.1.2.3 "}"#, None, request(None, None, Some("10.1.2.3"), &[])),
            ("IP_USER", r#"{"IP_USER":"10.1.2.3"}"#, None, request(None, None, Some("10.1.2.3"), &[])),
            ("IP claim absent", r#"{"NIK":"3372041003870006"}"#, None, request(None, None, None, &[(Nik, NIK)])),
            (
                "NIK as a JSON number keeps every digit",
                r#"{"NIK":3372041003870006}"#,
                None,
                request(None, None, None, &[(Nik, NIK)]),
            ),
            (
                "KK as a JSON number above 2^53 keeps every digit",
                r#"{"NO_KK":9999999999999999}"#,
                None,
                request(None, None, None, &[(NoKk, "9999999999999999")]),
            ),
            (
                "whole-number float",
                r#"{"NO_RT":5.0,"TRESHOLD":80.0}"#,
                None,
                with_threshold(request(None, None, None, &[(NoRt, "5")]), 80),
            ),
            ("TRESHOLD as a string", r#"{"TRESHOLD":"80"}"#, None, with_threshold(Request::default(), 80)),
            ("TRESHOLD as a number", r#"{"TRESHOLD":95}"#, None, with_threshold(Request::default(), 95)),
            ("treshold lower case, bounds", r#"{"treshold":" 0 "}"#, None, with_threshold(Request::default(), 0)),
            ("THRESHOLD spelled right", r#"{"THRESHOLD":100}"#, None, with_threshold(Request::default(), 100)),
            ("blank TRESHOLD is absent", r#"{"TRESHOLD":" "}"#, None, Request::default()),
            (
                "empty and space-only values are absent, null too",
                r#"{"NO_RT":" ","NO_RW":"","NAMA_LGKP":null,"USER_ID":"  ","PASSWORD":"","NIK":"3372041003870006"}"#,
                None,
                request(None, None, None, &[(Nik, NIK)]),
            ),
            (
                "unknown keys of any type are ignored",
                r#"{"transactionId":"abc-1","extra":[1,2],"flag":true,"obj":{"a":1},"NIK":"3372041003870006"}"#,
                None,
                request(None, None, None, &[(Nik, NIK)]),
            ),
            (
                "NOMOR_PROP is NO_PROP; codes keep their padding; values are trimmed",
                r#"{"NOMOR_PROP":"33","NO_KAB":72,"NO_KEC":"040","NO_KEL":"23","NAMA_LGKP":"  SITI AMINAH "}"#,
                None,
                request(
                    None,
                    None,
                    None,
                    &[(NoProp, "33"), (NoKab, "72"), (NoKec, "040"), (NoKel, "23"), (NamaLgkp, "SITI AMINAH")],
                ),
            ),
            (
                "dates in both forms are kept as sent",
                r#"{"TGL_LHR":"10-03-1987","TGL_KWN":"2010-06-01"}"#,
                None,
                request(None, None, None, &[(TglLhr, "10-03-1987"), (TglKwn, "2010-06-01")]),
            ),
            (
                "password keeps its spaces, user id is trimmed",
                r#"{"USER_ID":" rsud01 ","PASSWORD":" pass word "}"#,
                None,
                request(Some("rsud01"), Some(" pass word "), None, &[]),
            ),
            (
                "numeric credentials",
                r#"{"USER_ID":330101,"PASSWORD":123456}"#,
                None,
                request(Some("330101"), Some("123456"), None, &[]),
            ),
            (
                "the later of two differently cased keys wins",
                r#"{"nik":"1111111111111111","NIK":"3372041003870006"}"#,
                None,
                request(None, None, None, &[(Nik, NIK)]),
            ),
            (
                "a blank later key does not erase an earlier one",
                r#"{"NIK":"3372041003870006","nik":" "}"#,
                None,
                request(None, None, None, &[(Nik, NIK)]),
            ),
            (
                "UTF-8 byte order mark before the JSON",
                "\u{FEFF}{\"NIK\":\"3372041003870006\"}",
                None,
                request(None, None, None, &[(Nik, NIK)]),
            ),
            ("empty body", "", None, Request::default()),
            ("whitespace body", " \r\n", None, Request::default()),
            ("empty object", "{}", None, Request::default()),
            (
                "credentials in the query string with an empty body",
                "",
                Some("USER_ID=rsud01&PASSWORD=rah%40sia&NIK=3372041003870006"),
                request(Some("rsud01"), Some("rah@sia"), None, &[(Nik, NIK)]),
            ),
            (
                "query keys are case-insensitive, + is a space, percent-decoding",
                "",
                Some("user_id=rsud%5F01&password=a+b&nama_lgkp=SITI+AMINAH&ip_user=&x=1&flag"),
                request(Some("rsud_01"), Some("a b"), None, &[(NamaLgkp, "SITI AMINAH")]),
            ),
            (
                "body values win over query values; blank body values do not",
                r#"{"NIK":"3372041003870006","USER_ID":" "}"#,
                Some("NIK=1111111111111111&USER_ID=rsud01"),
                request(Some("rsud01"), None, None, &[(Nik, NIK)]),
            ),
            (
                "a bad query TRESHOLD overridden by the body is no error",
                r#"{"TRESHOLD":70}"#,
                Some("TRESHOLD=abc"),
                with_threshold(Request::default(), 70),
            ),
            (
                "a stray percent sign is kept",
                "",
                Some("PASSWORD=100%&USER_ID=%zz"),
                request(Some("%zz"), Some("100%"), None, &[]),
            ),
        ];
        for (name, body, query, want) in table {
            let got = parse_request(body.as_bytes(), query);
            assert_eq!(got, Ok(want), "{name}");
        }
    }

    #[test]
    fn nik_and_kk_numbers_that_are_not_whole_are_kept_as_sent_and_marked() {
        let table = [
            (r#"{"NIK":3372041003870006}"#, "3372041003870006", false),
            (r#"{"NIK":-3372041003870006}"#, "-3372041003870006", true),
            (r#"{"NIK":3372041003870006.0}"#, "3372041003870006.0", true),
            (r#"{"NIK":33720410038700061234}"#, "3.3720410038700065e+19", true),
            (r#"{"NIK":3.372041003870006e15}"#, "3372041003870006.0", true),
            (r#"{"NIK":3372041003870006e0}"#, "3372041003870006.0", true),
            (r#"{"NIK":3372041003.870006}"#, "3372041003.870006", true),
            (r#"{"NIK":-0}"#, "-0.0", true),
            (r#"{"NO_KK":18446744073709551615}"#, "18446744073709551615", false),
            (r#"{"NO_KK":-1}"#, "-1", true),
            (r#"{"NIK":-1,"nik":"3372041003870006"}"#, "3372041003870006", false),
            (r#"{"NIK":-1,"nik":" "}"#, "-1", true),
        ];
        for (body, text, odd) in table {
            let r = parse_request(body.as_bytes(), None).unwrap();
            let (element, value) = r.fields.iter().next().unwrap();
            assert_eq!(value, text, "{body}");
            assert_eq!(r.not_whole.contains(*element), odd, "{body}");
        }
        // Other numbers are read as before: a whole float is its whole number.
        let r = parse_request(br#"{"NO_KEL":1001.0,"TRESHOLD":80.0}"#, None).unwrap();
        assert_eq!(
            (r.fields[&Element::NoKel].as_str(), r.threshold, r.not_whole),
            ("1001", Some(80), ElementSet::empty())
        );
    }

    /// From the raw body through [`crate::policy::prepare`]: a NIK or KK number in any form but digits (as a string,
    /// in groups with single separators, or as a whole non-negative JSON number) answers 15, never 07, and never
    /// reaches a lookup.
    #[test]
    fn a_nik_or_kk_number_in_another_form_answers_15_after_prepare() {
        use crate::policy::{prepare, FamilyKey, Query};
        use crate::wire::method::Method::{self, *};

        const VALID_NIK: &str = "3374041003870006";
        const VALID_KK: &str = "3374042005150003";
        let today = NaiveDate::from_ymd_opt(2026, 7, 6).unwrap();
        let outcome = |method: Method, body: &str, query: Option<&str>| -> Result<Query, &'static str> {
            let request = parse_request(body.as_bytes(), query).map_err(|e| e.response_code().code())?;
            prepare(method, &request, ElementSet::all(), today, 7).map_err(|r| r.code.code())
        };
        let nik = crate::nik::Nik::parse(VALID_NIK, today).unwrap();
        let kk = crate::kk::KkNumber::parse(VALID_KK, today).unwrap();

        let same: &[(Method, &str, Option<&str>, Query)] = &[
            (CallNik, r#"{"NIK": 3374041003870006}"#, None, Query::ByNik(nik)),
            (CallNik, r#"{"NIK": "3374041003870006"}"#, None, Query::ByNik(nik)),
            (CallNik, r#"{"nik": " 3374 0410 0387 0006 "}"#, None, Query::ByNik(nik)),
            (CallNik, r#"{"NIK": "3374.041003.870006"}"#, None, Query::ByNik(nik)),
            (CallNik, r#"{"NIK": "3374-0410-0387-0006"}"#, None, Query::ByNik(nik)),
            (CallNik, "", Some("NIK=3374041003870006"), Query::ByNik(nik)),
            (CallNikGetKk, r#"{"NO_KK": 3374042005150003}"#, None, Query::Family(FamilyKey::Kk(kk))),
            (CallNikGetKk, r#"{"NO_KK": "3374042005150003"}"#, None, Query::Family(FamilyKey::Kk(kk))),
            (CallNikGetKk, r#"{"NIK": 3374041003870006}"#, None, Query::Family(FamilyKey::Nik(nik))),
        ];
        for (method, body, query, want) in same {
            assert_eq!(outcome(*method, body, *query), Ok(want.clone()), "{body} {query:?}");
        }

        let refused: &[(Method, &str, Option<&str>)] = &[
            // JSON numbers other than whole non-negative ones.
            (CallNik, r#"{"NIK": -3374041003870006}"#, None),
            (CallNik, r#"{"NIK": 3374041003870006.0}"#, None),
            (CallNik, r#"{"NIK": 3.374041003870006e15}"#, None),
            (CallNik, r#"{"NIK": 3374041003870006e0}"#, None),
            (CallNik, r#"{"NIK": 33740410038700060E-1}"#, None),
            (CallNik, r#"{"NIK": 3374041003.870006}"#, None),
            (CallNik, r#"{"NIK": 337404100387.0006}"#, None),
            (CallNik, r#"{"NIK": 33740410038700061234}"#, None),
            (CallNik, r#"{"NIK": -0}"#, None),
            (CallNik, r#"{"NIK": 0}"#, None),
            // Strings not in the form.
            (CallNik, r#"{"NIK": "-3374041003870006"}"#, None),
            (CallNik, r#"{"NIK": "+3374041003870006"}"#, None),
            (CallNik, r#"{"NIK": " -3374041003870006"}"#, None),
            (CallNik, r#"{"NIK": "3374041003870006.0"}"#, None),
            (CallNik, r#"{"NIK": "3.374041003870006e15"}"#, None),
            (CallNik, r#"{"NIK": "-3374-0410-0387-0006"}"#, None),
            (CallNik, r#"{"NIK": "3374--0410-0387-0006"}"#, None),
            (CallNik, r#"{"NIK": "3374-0410-0387-0006-"}"#, None),
            (CallNik, r#"{"NIK": "3374\t0410\t0387\t0006"}"#, None),
            (CallNik, r#"{"NIK": "3374\u00a00410\u00a00387\u00a00006"}"#, None),
            (CallNik, r#"{"NIK": "３３７４０４１００３８７０００６"}"#, None),
            (CallNik, r#"{"NIK": "337404100387000"}"#, None),
            (CallNik, r#"{"NIK": "33740410038700061"}"#, None),
            (CallNik, "", Some("NIK=-3374041003870006")),
            (CallNik, "", Some("NIK=%2B3374041003870006")),
            // KK numbers, and a NIK for the family or as the key of a verification.
            (CallNikGetKk, r#"{"NO_KK": -3374042005150003}"#, None),
            (CallNikGetKk, r#"{"NO_KK": 3374042005150003.0}"#, None),
            (CallNikGetKk, r#"{"NO_KK": 3.374042005150003e15}"#, None),
            (CallNikGetKk, r#"{"NO_KK": 3374042005.150003}"#, None),
            (CallNikGetKk, r#"{"NO_KK": "-3374042005150003"}"#, None),
            (CallNikGetKk, r#"{"NO_KK": "3374--0420-0515-0003"}"#, None),
            (CallNikGetKk, r#"{"NIK": -3374041003870006}"#, None),
            (CallVerifyByElemen, r#"{"NIK": -3374041003870006, "NAMA_LGKP": "BUDI"}"#, None),
            (CallVerifyByElemen, r#"{"NIK": "3374041003870006.0", "NAMA_LGKP": "BUDI"}"#, None),
        ];
        for (method, body, query) in refused {
            assert_eq!(outcome(*method, body, *query), Err("15"), "{body} {query:?}");
        }
    }

    #[test]
    fn malformed_requests_say_what_is_wrong_and_answer_07() {
        let key = |k: &str| k.to_owned();
        let table: Vec<(&str, Option<&str>, RequestError)> = vec![
            ("{", None, RequestError::NotJson(String::new())),
            ("NIK=3372041003870006", None, RequestError::NotJson(String::new())),
            (r#"[{"NIK":"3372041003870006"}]"#, None, RequestError::NotAnObject("an array")),
            (r#""3372041003870006""#, None, RequestError::NotAnObject("a string")),
            ("null", None, RequestError::NotAnObject("null")),
            ("42", None, RequestError::NotAnObject("a number")),
            (r#"{"NIK":["3372041003870006"]}"#, None, RequestError::NotAScalar { key: key("NIK"), kind: "an array" }),
            (r#"{"nama_lgkp":{"a":1}}"#, None, RequestError::NotAScalar { key: key("nama_lgkp"), kind: "an object" }),
            (r#"{"NO_RT":true}"#, None, RequestError::NotAScalar { key: key("NO_RT"), kind: "a boolean" }),
            (r#"{"PASSWORD":false}"#, None, RequestError::NotAScalar { key: key("PASSWORD"), kind: "a boolean" }),
            (r#"{"NO_KEL":33720410038700061234}"#, None, RequestError::ImpreciseNumber { key: key("NO_KEL") }),
            (r#"{"NO_KEL":3.3e30}"#, None, RequestError::ImpreciseNumber { key: key("NO_KEL") }),
            (r#"{"TRESHOLD":101}"#, None, RequestError::InvalidThreshold("101".into())),
            (r#"{"TRESHOLD":"-1"}"#, None, RequestError::InvalidThreshold("-1".into())),
            (r#"{"TRESHOLD":-1}"#, None, RequestError::InvalidThreshold("-1".into())),
            (r#"{"TRESHOLD":"delapan puluh"}"#, None, RequestError::InvalidThreshold("delapan puluh".into())),
            (r#"{"TRESHOLD":80.5}"#, None, RequestError::InvalidThreshold("80.5".into())),
            (r#"{"TRESHOLD":"300"}"#, None, RequestError::InvalidThreshold("300".into())),
            ("", Some("TRESHOLD=101"), RequestError::InvalidThreshold("101".into())),
            ("", Some("NIK=%FF%FE"), RequestError::QueryNotUtf8("%FF%FE".into())),
        ];
        for (body, query, want) in table {
            let got = parse_request(body.as_bytes(), query).unwrap_err();
            match (&got, &want) {
                // serde_json's own message varies; the variant is what matters.
                (RequestError::NotJson(msg), RequestError::NotJson(_)) => assert!(!msg.is_empty()),
                _ => assert_eq!(got, want, "{body}"),
            }
            assert_eq!(got.response_code(), ResponseCode::InvalidParameters);
            assert!(!got.to_string().is_empty());
        }
    }

    #[test]
    fn error_messages_name_the_problem() {
        let err = parse_request(br#"{"NO_RT":true}"#, None).unwrap_err();
        assert_eq!(err.to_string(), "NO_RT must be a string or a number, not a boolean");
        let err = parse_request(br#"{"TRESHOLD":101}"#, None).unwrap_err();
        assert_eq!(err.to_string(), "TRESHOLD must be a whole number from 0 to 100, not \"101\"");
        let err = parse_request(b"[]", None).unwrap_err();
        assert_eq!(err.to_string(), "request body must be a JSON object, not an array");
    }

    #[test]
    fn accessors_and_credentials() {
        let r = parse_request(br#"{"USER_ID":"u","NIK":"3372041003870006","NO_KK":"3372040101090001"}"#, None).unwrap();
        assert!(!r.has_credentials());
        assert_eq!(r.nik(), Some(NIK));
        assert_eq!(r.kk(), Some("3372040101090001"));
        let r = parse_request(br#"{"USER_ID":"u","PASSWORD":"p"}"#, None).unwrap();
        assert!(r.has_credentials());
        assert_eq!((r.nik(), r.kk()), (None, None));
        assert!(!parse_request(br#"{"PASSWORD":"p"}"#, None).unwrap().has_credentials());
    }

    #[test]
    fn debug_output_hides_the_password() {
        let r = parse_request(br#"{"USER_ID":"rsud01","PASSWORD":"rahasia-sekali"}"#, None).unwrap();
        let shown = format!("{r:?}");
        assert!(!shown.contains("rahasia-sekali"), "{shown}");
        assert!(shown.contains("***") && shown.contains("rsud01"), "{shown}");
    }

    #[test]
    fn canonical_body_parses_back_to_the_same_request() {
        let r = parse_request(
            br#"{"userid":" u ","password":" p ","ip_users":"10.0.0.9","nik":3372041003870006,"NO_KEC":"040","TRESHOLD":"75"}"#,
            None,
        )
        .unwrap();
        let body = r.to_body();
        assert_eq!(
            String::from_utf8(body.clone()).unwrap(),
            r#"{"USER_ID":"u","PASSWORD":" p ","IP_USER":"10.0.0.9","NIK":"3372041003870006","NO_KEC":"040","TRESHOLD":75}"#
        );
        assert_eq!(parse_request(&body, None), Ok(r));
    }

    #[test]
    fn codes_lose_their_zero_padding() {
        let table = [
            ("040", "40"),
            ("40", "40"),
            (" 0023 ", "23"),
            ("000", "0"),
            ("0", "0"),
            ("", ""),
            ("32-76", "32-76"),
            ("0A", "0A"),
        ];
        for (input, want) in table {
            assert_eq!(normalise_code(input), want, "{input:?}");
        }
    }

    #[test]
    fn dates_parse_in_both_wire_forms() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day);
        let table = [
            ("10-03-1987", d(1987, 3, 10)),
            ("1987-03-10", d(1987, 3, 10)),
            (" 1987-3-1 ", d(1987, 3, 1)),
            ("1-3-1987", d(1987, 3, 1)),
            ("10/03/1987", d(1987, 3, 10)),
            ("1987/03/10", d(1987, 3, 10)),
            ("1987-03-10 00:00:00", d(1987, 3, 10)),
            ("1987-03-10T00:00:00Z", d(1987, 3, 10)),
            ("29-02-2000", d(2000, 2, 29)),
            ("29-02-1999", None),
            ("1987-13-10", None),
            ("31-04-1987", None),
            ("03-10-87", None),
            ("19870310", None),
            ("1987-03", None),
            ("1987-03-10-01", None),
            ("10-1987-03", None),
            ("1987-003-10", None),
            ("a-b-c", None),
            ("+1987-03-10", None),
            ("", None),
        ];
        for (input, want) in table {
            assert_eq!(parse_wire_date(input), want, "{input:?}");
        }
    }

    #[test]
    fn percent_decoding() {
        let table = [
            ("a%20b", false, Some("a b")),
            ("a+b", false, Some("a+b")),
            ("a+b", true, Some("a b")),
            ("%41%6a", true, Some("Aj")),
            ("100%", true, Some("100%")),
            ("%4", true, Some("%4")),
            ("%g1", true, Some("%g1")),
            ("%C3%A9", true, Some("é")),
            ("%C3", true, None),
        ];
        for (input, plus, want) in table {
            assert_eq!(percent_decode(input, plus).as_deref(), want, "{input:?}");
        }
    }
}
