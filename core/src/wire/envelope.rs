//! The response envelope, byte for byte as Dukcapil writes it, and the bodies of both error dialects.
//!
//! Clients parse the envelope with hand-written code that sometimes depends on key order, so the keys are written
//! in Dukcapil's order by hand rather than by a serializer: `content`, `lastPage`, `numberOfElements`, `sort`,
//! `totalElements`, `firstPage`, `number`, `size`, `quotaLimiter`.

use serde_json::{Map, Value};

use crate::wire::code::{Dialect, ResponseCode};

const RESPON: &str = "RESPON";
const RESPONSE_CODE: &str = "RESPONSE_CODE";
const RESPONSE_DESC: &str = "RESPONSE_DESC";
const RESPONSE: &str = "RESPONSE";

/// The envelope around `content`, whose element objects keep their own key order.
pub fn render(content: &[Map<String, Value>], quota_remaining: u64) -> Vec<u8> {
    let n = content.len();
    let mut out = br#"{"content":"#.to_vec();
    serde_json::to_writer(&mut out, content).expect("maps of JSON values always serialise");
    let tail = format!(
        r#","lastPage":true,"numberOfElements":{n},"sort":null,"totalElements":{n},"firstPage":true,"number":0,"size":{n},"quotaLimiter":{quota_remaining}}}"#
    );
    out.extend_from_slice(tail.as_bytes());
    out
}

/// A business outcome in the caller's dialect.
pub fn render_code(dialect: Dialect, code: ResponseCode, quota_remaining: u64) -> Vec<u8> {
    match dialect {
        Dialect::Legacy => render_legacy_text(code.legacy_text(), quota_remaining),
        Dialect::Coded => render_coded(code.code(), code.description(), quota_remaining),
    }
}

/// A legacy `RESPON` with a text of the caller's choosing, for the texts that have no code
/// (such as [`crate::wire::code::LEGACY_CLIENT_NOT_REGISTERED`]).
pub fn render_legacy_text(text: &str, quota_remaining: u64) -> Vec<u8> {
    render(&[one(RESPON, text)], quota_remaining)
}

/// The body of an HTTP-level failure (405, 413, 429, 502, 503, 504), so that clients that only read JSON still learn
/// what happened. The coded dialect has no codes for these, so the HTTP status stands in as the code.
pub fn render_transport_error(dialect: Dialect, status: u16, message: &str, quota_remaining: u64) -> Vec<u8> {
    match dialect {
        Dialect::Legacy => render_legacy_text(message, quota_remaining),
        Dialect::Coded => render_coded(&status.to_string(), message, quota_remaining),
    }
}

fn render_coded(code: &str, text: &str, quota_remaining: u64) -> Vec<u8> {
    let mut m = one(RESPONSE_CODE, code);
    m.insert(RESPONSE_DESC.to_owned(), Value::from(text));
    m.insert(RESPONSE.to_owned(), Value::from(text));
    render(&[m], quota_remaining)
}

fn one(key: &str, text: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(key.to_owned(), Value::from(text));
    m
}

/// A parsed envelope. Only `content` and `quotaLimiter` carry information; the paging keys are constants.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub content: Vec<Map<String, Value>>,
    pub quota_remaining: u64,
}

/// What an answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Records, family members, verdicts or counts.
    Data,
    /// A business outcome, from a coded answer or a recognised legacy text.
    Code(ResponseCode),
    /// A message without a known code: an unrecognised `RESPON` (such as the unregistered-client text) or a
    /// transport error's body.
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("answer is not valid JSON: {0}")]
    NotJson(String),
    #[error("answer is not a response envelope: {0}")]
    NotAnEnvelope(&'static str),
}

/// Reads an envelope as written by [`render`] or by an upstream service; keys other than `content` and
/// `quotaLimiter` are not checked.
pub fn parse(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
    let Value::Object(mut top) = value else {
        return Err(EnvelopeError::NotAnEnvelope("not a JSON object"));
    };
    let Some(Value::Array(items)) = top.remove("content") else {
        return Err(EnvelopeError::NotAnEnvelope("content is missing or not an array"));
    };
    let content = items
        .into_iter()
        .map(|item| match item {
            Value::Object(m) => Ok(m),
            _ => Err(EnvelopeError::NotAnEnvelope("an element of content is not an object")),
        })
        .collect::<Result<_, _>>()?;
    let quota_remaining = top
        .get("quotaLimiter")
        .and_then(Value::as_u64)
        .ok_or(EnvelopeError::NotAnEnvelope("quotaLimiter is missing or not a whole number"))?;
    Ok(Envelope { content, quota_remaining })
}

impl Envelope {
    /// Classifies the answer by its first element: `RESPONSE_CODE` makes it coded, `RESPON` legacy, anything else data.
    /// Legacy texts are recognised ignoring case and runs of spaces; where two codes share a legacy text, the first
    /// in [`ResponseCode::ALL`] is chosen (`Login Gagal` is 03, `Data Tidak Ditemukan` is 13).
    pub fn outcome(&self) -> Outcome {
        let Some(first) = self.content.first() else { return Outcome::Data };
        if let Some(code) = first.get(RESPONSE_CODE) {
            let code = scalar_text(code);
            if let Some(c) = ResponseCode::from_code(&code) {
                return Outcome::Code(c);
            }
            let text = [RESPONSE, RESPONSE_DESC].iter().find_map(|k| first.get(*k)).map(scalar_text);
            return Outcome::Text(text.unwrap_or(code));
        }
        if let Some(text) = first.get(RESPON) {
            let text = scalar_text(text);
            let key = fold(&text);
            let known = ResponseCode::ALL
                .iter()
                .find(|c| fold(c.legacy_text()) == key)
                .or_else(|| ResponseCode::ALL.iter().find(|c| fold(c.description()) == key));
            return known.map_or(Outcome::Text(text), |c| Outcome::Code(*c));
        }
        Outcome::Data
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn fold(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::code::LEGACY_CLIENT_NOT_REGISTERED;

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    fn object(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn envelope_bytes_are_exactly_dukcapils() {
        let record = object(r#"{"NIK":3372041003870006,"NAMA_LGKP":"SITI AMINAH","NO_KEC":9,"TGL_KWN":null}"#);
        assert_eq!(
            text(render(std::slice::from_ref(&record), 56616)),
            r#"{"content":[{"NIK":3372041003870006,"NAMA_LGKP":"SITI AMINAH","NO_KEC":9,"TGL_KWN":null}],"lastPage":true,"numberOfElements":1,"sort":null,"totalElements":1,"firstPage":true,"number":0,"size":1,"quotaLimiter":56616}"#
        );
        assert_eq!(
            text(render(&[record.clone(), record], 0)),
            concat!(
                r#"{"content":[{"NIK":3372041003870006,"NAMA_LGKP":"SITI AMINAH","NO_KEC":9,"TGL_KWN":null},"#,
                r#"{"NIK":3372041003870006,"NAMA_LGKP":"SITI AMINAH","NO_KEC":9,"TGL_KWN":null}],"#,
                r#""lastPage":true,"numberOfElements":2,"sort":null,"totalElements":2,"firstPage":true,"number":0,"size":2,"quotaLimiter":0}"#
            )
        );
        assert_eq!(
            text(render(&[], 7)),
            r#"{"content":[],"lastPage":true,"numberOfElements":0,"sort":null,"totalElements":0,"firstPage":true,"number":0,"size":0,"quotaLimiter":7}"#
        );
    }

    #[test]
    fn error_bodies_in_both_dialects() {
        let tail = r#","lastPage":true,"numberOfElements":1,"sort":null,"totalElements":1,"firstPage":true,"number":0,"size":1,"quotaLimiter":0}"#;
        let table = [
            (
                render_code(Dialect::Legacy, ResponseCode::QuotaExhausted, 0),
                r#"{"content":[{"RESPON":"Kuota Akses Hari ini telah Habis"}]"#,
            ),
            (
                render_code(Dialect::Legacy, ResponseCode::NotFound, 0),
                r#"{"content":[{"RESPON":"Data Tidak Ditemukan"}]"#,
            ),
            (render_code(Dialect::Legacy, ResponseCode::LoginFailed, 0), r#"{"content":[{"RESPON":"Login Gagal"}]"#),
            (
                render_code(Dialect::Legacy, ResponseCode::DeviceMismatch, 0),
                r#"{"content":[{"RESPON":"IP Address Tidak Sesuai"}]"#,
            ),
            (
                render_legacy_text(LEGACY_CLIENT_NOT_REGISTERED, 0),
                r#"{"content":[{"RESPON":"IP Client  Tidak terdaftar"}]"#,
            ),
            (
                render_code(Dialect::Coded, ResponseCode::QuotaExhausted, 0),
                r#"{"content":[{"RESPONSE_CODE":"05","RESPONSE_DESC":"Kuota Akses Hari Ini Telah Habis","RESPONSE":"Kuota Akses Hari Ini Telah Habis"}]"#,
            ),
            (
                render_code(Dialect::Coded, ResponseCode::InvalidParameters, 0),
                r#"{"content":[{"RESPONSE_CODE":"07","RESPONSE_DESC":"Parameter Tidak Lengkap / Tidak Valid","RESPONSE":"Parameter Tidak Lengkap / Tidak Valid"}]"#,
            ),
            (
                render_transport_error(Dialect::Coded, 429, "Terlalu banyak permintaan, coba lagi nanti", 0),
                r#"{"content":[{"RESPONSE_CODE":"429","RESPONSE_DESC":"Terlalu banyak permintaan, coba lagi nanti","RESPONSE":"Terlalu banyak permintaan, coba lagi nanti"}]"#,
            ),
            (
                render_transport_error(Dialect::Legacy, 503, "Layanan sedang tidak tersedia", 0),
                r#"{"content":[{"RESPON":"Layanan sedang tidak tersedia"}]"#,
            ),
        ];
        for (got, head) in table {
            assert_eq!(text(got), format!("{head}{tail}"));
        }
    }

    #[test]
    fn parse_reads_back_what_render_wrote() {
        let record = object(r#"{"NIK":3372041003870006,"NAMA_LGKP":"SITI AMINAH","TGL_KWN":null}"#);
        let env = parse(&render(std::slice::from_ref(&record), 56616)).unwrap();
        assert_eq!(env, Envelope { content: vec![record], quota_remaining: 56616 });
        assert_eq!(env.outcome(), Outcome::Data);
        for c in ResponseCode::ALL {
            let coded = parse(&render_code(Dialect::Coded, *c, 3)).unwrap();
            assert_eq!((coded.outcome(), coded.quota_remaining), (Outcome::Code(*c), 3));
            let legacy = parse(&render_code(Dialect::Legacy, *c, 3)).unwrap().outcome();
            let Outcome::Code(back) = legacy else { panic!("{c:?} legacy gave {legacy:?}") };
            assert_eq!(back.legacy_text(), c.legacy_text(), "{c:?}");
        }
    }

    #[test]
    fn outcomes_of_upstream_answers() {
        let env = |content: &str| parse(format!(r#"{{"content":{content},"quotaLimiter":1}}"#).as_bytes()).unwrap();
        let table = [
            (r#"[]"#, Outcome::Data),
            (r#"[{"NIK":3372041003870006}]"#, Outcome::Data),
            (r#"[{"NIK":"Sesuai","NAMA_LGKP":"Sesuai (100)"}]"#, Outcome::Data),
            (r#"[{"RESPON":"Data Tidak Ditemukan"}]"#, Outcome::Code(ResponseCode::NotFound)),
            (r#"[{"RESPON":"Login Gagal"}]"#, Outcome::Code(ResponseCode::LoginFailed)),
            (r#"[{"RESPON":"KUOTA AKSES HARI INI TELAH  HABIS"}]"#, Outcome::Code(ResponseCode::QuotaExhausted)),
            (r#"[{"RESPON":"IP Address Tidak Sesuai"}]"#, Outcome::Code(ResponseCode::DeviceMismatch)),
            (r#"[{"RESPON":"Diluar Jam Akses"}]"#, Outcome::Code(ResponseCode::OutsideAccessHours)),
            (r#"[{"RESPON":"IP Tidak Sesuai"}]"#, Outcome::Code(ResponseCode::DeviceMismatch)),
            (r#"[{"RESPON":"IP Client  Tidak terdaftar"}]"#, Outcome::Text(LEGACY_CLIENT_NOT_REGISTERED.into())),
            (r#"[{"RESPON":"Server sibuk"}]"#, Outcome::Text("Server sibuk".into())),
            (r#"[{"RESPONSE_CODE":"13","RESPONSE_DESC":"x","RESPONSE":"x"}]"#, Outcome::Code(ResponseCode::NotFound)),
            (r#"[{"RESPONSE_CODE":5}]"#, Outcome::Code(ResponseCode::QuotaExhausted)),
            (r#"[{"RESPONSE_CODE":"503","RESPONSE_DESC":"d","RESPONSE":"r"}]"#, Outcome::Text("r".into())),
            (r#"[{"RESPONSE_CODE":"99","RESPONSE_DESC":"d"}]"#, Outcome::Text("d".into())),
            (r#"[{"RESPONSE_CODE":"98"}]"#, Outcome::Text("98".into())),
        ];
        for (content, want) in table {
            assert_eq!(env(content).outcome(), want, "{content}");
        }
    }

    #[test]
    fn malformed_answers_are_errors() {
        let table = [
            ("", "NotJson"),
            ("{", "NotJson"),
            ("[]", "NotAnEnvelope"),
            (r#"{"quotaLimiter":1}"#, "NotAnEnvelope"),
            (r#"{"content":{},"quotaLimiter":1}"#, "NotAnEnvelope"),
            (r#"{"content":["Sesuai"],"quotaLimiter":1}"#, "NotAnEnvelope"),
            (r#"{"content":[]}"#, "NotAnEnvelope"),
            (r#"{"content":[],"quotaLimiter":-1}"#, "NotAnEnvelope"),
            (r#"{"content":[],"quotaLimiter":"5"}"#, "NotAnEnvelope"),
        ];
        for (body, want) in table {
            let err = parse(body.as_bytes()).unwrap_err();
            assert!(format!("{err:?}").starts_with(want), "{body}: {err:?}");
        }
    }
}
