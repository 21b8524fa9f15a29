//! Audit records as lines for `audit export --format jsonl|csv`, one record at a time so the CLI can stream a log of
//! any length.
//!
//! # JSONL
//!
//! Each line is exactly a record's [`AuditRecord::canonical`] bytes followed by `\n`; nothing here builds it, since
//! the canonical form never contains a raw newline (control characters are escaped) and adding anything would break
//! the point of the format: an auditor re-hashes each line as it stands, `leaf = SHA-256(0x00 || line)`, and checks
//! it against an inclusion proof without trusting this code.
//!
//! # CSV
//!
//! For spreadsheets, following RFC 4180: comma separated, CRLF line ends, a field quoted when it holds a comma,
//! a quote, CR or LF, with quotes doubled. Absent values are empty fields. Unlike the JSONL lines, CSV rows cannot be
//! re-hashed: they are for reading, not for proofs.
//!
//! Field values come from clients and admins (user names, request ids, admin detail), and a spreadsheet runs a cell
//! that starts with `=`, `+`, `-` or `@` (and, in some programs, tab or CR) as a formula; a formula can fetch URLs or
//! run commands on the auditor's machine. Such a field is written with a leading `'`, which spreadsheets take as
//! "text follows" (OWASP's advice for CSV injection). The value is then one character longer than in the log;
//! the JSONL export is the exact one. A field of that one character alone is left as it is: it cannot hold a
//! formula, and the report writes `-` for "no method".

use chrono::SecondsFormat;

use super::record::{AuditRecord, Commitment, Entry, Outcome, RequestRecord};
use crate::element::ElementSet;

/// The columns of [`csv_row`], in order.
pub const CSV_COLUMNS: [&str; 24] = [
    "seq",
    "at",
    "kind",
    "request_id",
    "institution",
    "user",
    "device",
    "tunnel_source",
    "ip_claim",
    "route",
    "method",
    "elements_requested",
    "elements_returned",
    "outcome",
    "source",
    "quota_charged",
    "latency_us",
    "bytes_in",
    "bytes_out",
    "subjects",
    "admin_actor",
    "admin_action",
    "admin_target",
    "admin_detail",
];

/// The header line, CRLF included.
pub fn csv_header() -> String {
    csv_line(CSV_COLUMNS)
}

/// One record as a CSV line, CRLF included; see the module docs for the columns' rules.
pub fn csv_row(record: &AuditRecord) -> String {
    csv_line(csv_fields(record))
}

fn csv_fields(record: &AuditRecord) -> Vec<String> {
    let seq = record.seq.to_string();
    let at = record.at.to_rfc3339_opts(SecondsFormat::Nanos, true);
    match &record.entry {
        Entry::Request(r) => {
            let mut fields = vec![seq, at, "request".to_owned()];
            fields.extend(request_fields(r));
            fields.extend(std::iter::repeat_n(String::new(), 4));
            fields
        }
        Entry::Admin(a) => {
            let mut fields = vec![seq, at, "admin".to_owned()];
            fields.extend(std::iter::repeat_n(String::new(), 16));
            fields.push(commitments(&a.subjects));
            fields.extend([a.actor.to_string(), a.action.clone(), a.target.clone(), a.detail_canonical()]);
            fields
        }
    }
}

fn request_fields(r: &RequestRecord) -> [String; 17] {
    let opt = |s: &Option<String>| s.clone().unwrap_or_default();
    [
        r.request_id.clone(),
        opt(&r.institution),
        opt(&r.user),
        r.device.clone(),
        r.tunnel_source.clone(),
        opt(&r.ip_claim),
        r.route.clone(),
        r.method.map(|m| m.wire_name().to_owned()).unwrap_or_default(),
        element_names(r.elements_requested),
        element_names(r.elements_returned),
        outcome_label(r.outcome),
        r.source.name().to_owned(),
        r.quota_charged.to_string(),
        r.latency_us.to_string(),
        r.bytes_in.to_string(),
        r.bytes_out.to_string(),
        commitments(&r.subjects),
    ]
}

fn commitments(subjects: &[Commitment]) -> String {
    subjects.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
}

fn element_names(set: ElementSet) -> String {
    set.iter().map(|e| e.wire_name()).collect::<Vec<_>>().join(" ")
}

/// `data`, the two-digit code (`05`), or `http 502`: the same spelling in the export and in the semester report.
pub fn outcome_label(outcome: Outcome) -> String {
    match outcome {
        Outcome::Data => "data".to_owned(),
        Outcome::Code(code) => code.code().to_owned(),
        Outcome::Http(status) => format!("http {status}"),
    }
}

/// Fields joined into one CSV line with CRLF, each escaped by [`csv_field`].
pub fn csv_line<I>(fields: I) -> String
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let mut line = String::new();
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        csv_field(&mut line, field.as_ref());
    }
    line.push_str("\r\n");
    line
}

/// Appends one field: formula guard first, then RFC 4180 quoting (see the module docs).
pub fn csv_field(out: &mut String, value: &str) {
    let guarded = value.len() > 1 && value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quoted = value.contains([',', '"', '\r', '\n']);
    if quoted {
        out.push('"');
    }
    if guarded {
        out.push('\'');
    }
    for c in value.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quoted {
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};
    use serde_json::json;

    use super::*;
    use crate::audit::record::{commit, Actor, AdminRecord, Source};
    use crate::element::Element;
    use crate::wire::code::ResponseCode;
    use crate::wire::method::Method;

    fn cli(uid: u32) -> Actor {
        Actor::Cli { uid, pid: None }
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 7, 1, 2, 3, 4).unwrap() + chrono::Duration::nanoseconds(5)
    }

    fn field(value: &str) -> String {
        let mut out = String::new();
        csv_field(&mut out, value);
        out
    }

    #[test]
    fn fields_are_quoted_and_guarded() {
        let table = [
            ("", ""),
            ("plain", "plain"),
            ("a b", "a b"),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("\"", "\"\"\"\""),
            ("line\nbreak", "\"line\nbreak\""),
            ("cr\rhere", "\"cr\rhere\""),
            ("crlf\r\n", "\"crlf\r\n\""),
            ("=1+1", "'=1+1"),
            ("+62812", "'+62812"),
            ("-2", "'-2"),
            ("-", "-"),
            ("=", "="),
            ("\r", "\"\r\""),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "\"'\rx\""),
            ("=HYPERLINK(\"http://x\",\"y\")", "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""),
            ("a=b", "a=b"),
            ("'quoted already", "'quoted already"),
            ("é, ü", "\"é, ü\""),
        ];
        for (value, want) in table {
            assert_eq!(field(value), want, "{value:?}");
        }
    }

    #[test]
    fn header_lists_the_columns() {
        let header = csv_header();
        assert_eq!(
            header,
            "seq,at,kind,request_id,institution,user,device,tunnel_source,ip_claim,route,method,elements_requested,\
             elements_returned,outcome,source,quota_charged,latency_us,bytes_in,bytes_out,subjects,admin_actor,\
             admin_action,admin_target,admin_detail\r\n"
        );
    }

    fn request(outcome: Outcome) -> RequestRecord {
        RequestRecord {
            request_id: "r-1".into(),
            institution: Some("DINKES, 3171".into()),
            user: Some("=cmd|' /C calc'!A0".into()),
            device: "dev-7".into(),
            tunnel_source: "10.8.0.7".into(),
            ip_claim: None,
            route: "/dukcapil/get_json/DINKES/CALL_NIK".into(),
            method: Some(Method::CallNik),
            elements_requested: [Element::Nik, Element::NamaLgkp].into_iter().collect(),
            elements_returned: [Element::Nik].into_iter().collect(),
            outcome,
            source: Source::Upstream,
            quota_charged: true,
            latency_us: 1250,
            bytes_in: 210,
            bytes_out: 1024,
            subjects: vec![commit(&[7; 32], "3171012345678901"), commit(&[8; 32], "3171012345678902")],
        }
    }

    #[test]
    fn request_rows() {
        let subjects = "005fabb5a3f77bd88a3c53b4063e83f452cc74fc9733477040f61b17c02e78de";
        let record = AuditRecord::new(7, at(), Entry::Request(request(Outcome::Data)));
        let row = csv_row(&record);
        let second = match &record.entry {
            Entry::Request(r) => r.subjects[1].to_string(),
            Entry::Admin(_) => unreachable!(),
        };
        assert_eq!(
            row,
            format!(
                "7,2026-07-01T02:03:04.000000005Z,request,r-1,\"DINKES, 3171\",'=cmd|' /C calc'!A0,dev-7,10.8.0.7,,\
                 /dukcapil/get_json/DINKES/CALL_NIK,CALL_NIK,NIK NAMA_LGKP,NIK,data,upstream,true,1250,210,1024,\
                 {subjects} {second},,,,\r\n"
            )
        );

        let table = [
            (Outcome::Code(ResponseCode::QuotaExhausted), "05"),
            (Outcome::Code(ResponseCode::LoginFailed), "03"),
            (Outcome::Http(502), "http 502"),
        ];
        for (outcome, want) in table {
            let mut r = request(outcome);
            r.institution = None;
            r.user = None;
            r.method = None;
            r.elements_returned = ElementSet::empty();
            r.subjects.clear();
            r.source = Source::Gateway;
            r.quota_charged = false;
            let row = csv_row(&AuditRecord::new(8, at(), Entry::Request(r)));
            assert_eq!(
                row,
                format!(
                    "8,2026-07-01T02:03:04.000000005Z,request,r-1,,,dev-7,10.8.0.7,,/dukcapil/get_json/DINKES/CALL_NIK,\
                     ,NIK NAMA_LGKP,,{want},gateway,false,1250,210,1024,,,,,\r\n"
                )
            );
        }
    }

    #[test]
    fn every_source_is_spelled_as_in_the_canonical_form() {
        for source in [Source::Gateway, Source::Cache, Source::Upstream] {
            let mut r = request(Outcome::Data);
            r.source = source;
            let record = AuditRecord::new(1, at(), Entry::Request(r.clone()));
            let canonical = String::from_utf8(record.canonical()).unwrap();
            assert!(canonical.contains(&format!("\"source\":\"{}\"", r.source.name())), "{canonical}");
        }
    }

    #[test]
    fn admin_rows_carry_the_canonical_detail() {
        let detail = json!({"zeta": [1, -2, "é\n"], "alpha": {"b": null, "a": true}, "detail": "x"});
        let admin = AdminRecord::new(cli(1000), "quota.set ,\"detail\":".into(), "-DINKES".into(), detail).unwrap();
        let record = AuditRecord::new(9, at(), Entry::Admin(admin));
        assert_eq!(
            csv_row(&record),
            "9,2026-07-01T02:03:04.000000005Z,admin,,,,,,,,,,,,,,,,,,cli uid 1000,\"quota.set ,\"\"detail\"\":\",'-DINKES,\
             \"{\"\"alpha\"\":{\"\"a\"\":true,\"\"b\"\":null},\"\"detail\"\":\"\"x\"\",\
             \"\"zeta\"\":[1,-2,\"\"é\\u000a\"\"]}\"\r\n"
        );
        let empty = AdminRecord::new(cli(1), "user.disable".into(), "u1".into(), json!(null)).unwrap();
        let record = AuditRecord::new(10, at(), Entry::Admin(empty));
        assert!(csv_row(&record).ends_with(",cli uid 1,user.disable,u1,null\r\n"));
    }

    #[test]
    fn rows_have_as_many_fields_as_the_header() {
        let admin = AdminRecord::new(cli(1), "a".into(), "t".into(), json!({})).unwrap();
        for entry in [Entry::Request(request(Outcome::Data)), Entry::Admin(admin)] {
            assert_eq!(csv_fields(&AuditRecord::new(1, at(), entry)).len(), CSV_COLUMNS.len());
        }
    }
}
