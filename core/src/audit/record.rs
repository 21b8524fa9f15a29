//! The audit record and its canonical encoding, which is what a Merkle leaf hashes.
//!
//! # Encoding
//!
//! Compact JSON written by hand, not by `serde_json`'s serializer: a fixed key order per object, no whitespace, no
//! floats, strings escaped by the rule below. JSON rather than a binary format because auditors read these records
//! with ordinary tools; hand-written because the bytes are hashed into proofs that must stay valid for years, so
//! they must not change when a dependency changes its escaping, number formatting or map ordering.
//!
//! - Strings: `"` and `\` as `\"` and `\\`, every other character below U+0020 as `\u00xx` (lower-case hex),
//!   everything else as raw UTF-8.
//! - Integers in decimal. Absent optional values are `null`; every key is always present, so a record has one shape.
//! - `at` is `yyyy-mm-ddThh:mm:ss.nnnnnnnnnZ`, always nine fractional digits, so time ordering is text ordering.
//! - The admin `detail` object (free-form) has its keys sorted by UTF-8 bytes at every level, and may not hold
//!   floats, whose text form is the one thing JSON encoders disagree on.
//!
//! # Versions
//!
//! `"v":2` (written since the console and enrollment were planned) names who acted as a typed [`Actor`] and gives
//! admin records `subjects` like requests, so an operator's NIK and NIP are commitments too. `"v":1` records (actor
//! as a Unix uid, no admin subjects) are still read and re-encoded byte for byte, so logs written before stay
//! verifiable; nothing writes them any more ([`AuditRecord::new`] makes the current version, and only
//! [`AuditRecord::from_canonical`] makes an old one).
//!
//! [`AuditRecord::from_canonical`] parses, rebuilds the record and re-encodes it, accepting only input that is
//! byte-for-byte what [`AuditRecord::canonical`] would produce: two encodings of one record would otherwise be two
//! leaves claiming to be the same event.
//!
//! # Personal data
//!
//! A record names the people it looked up only through [`Commitment`]s, `SHA-256(salt || identifier)`. The
//! identifier and its salt live in a separate store; destroying them at the end of retention leaves every record,
//! and so every proof, intact while the commitment no longer leads back to anyone.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

use super::merkle;
use crate::element::{Element, ElementSet};
use crate::wire::code::ResponseCode;
use crate::wire::method::Method;

/// The encoding a record was written with. Bumped when the encoding changes, so old leaves stay readable under the
/// rules they were written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Format {
    /// Admin records name a Unix uid and no subjects.
    V1,
    /// Admin records name a typed [`Actor`] and carry subject commitments.
    V2,
}

impl Format {
    pub const CURRENT: Format = Format::V2;

    fn number(self) -> u64 {
        match self {
            Format::V1 => 1,
            Format::V2 => 2,
        }
    }
}

/// `SHA-256(salt || identifier)`: lets a record name a person without holding the NIK or KK.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Commitment(pub [u8; 32]);

/// The commitment to one NIK or KK number. The salt is per subject and kept beside the identifier, so that a
/// commitment cannot be reversed by hashing every possible NIK, and forgetting the salt forgets the link.
pub fn commit(salt: &[u8; 32], identifier: &str) -> Commitment {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(identifier.as_bytes());
    Commitment(hasher.finalize().into())
}

impl Commitment {
    fn to_hex(self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Lower-case hex only, so each commitment has a single spelling.
    fn from_hex(text: &str) -> Option<Commitment> {
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Commitment(out))
    }
}

impl fmt::Debug for Commitment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Commitment({})", self.to_hex())
    }
}

impl fmt::Display for Commitment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// What the client got back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Data,
    Code(ResponseCode),
    /// A transport-level answer (401, 429, 502, ...) that carries no Dukcapil code.
    Http(u16),
}

/// Who produced the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Decided at the gateway without asking anyone (refusals, quota, validation).
    Gateway,
    Cache,
    Upstream,
}

impl Source {
    const ALL: [Source; 3] = [Source::Gateway, Source::Cache, Source::Upstream];

    /// The name the canonical form (and the exports) use.
    pub const fn name(self) -> &'static str {
        match self {
            Source::Gateway => "gateway",
            Source::Cache => "cache",
            Source::Upstream => "upstream",
        }
    }
}

/// One request through the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub request_id: String,
    pub institution: Option<String>,
    pub user: Option<String>,
    pub device: String,
    /// The tunnel peer's address or public key: what the network vouches for.
    pub tunnel_source: String,
    /// The `ip_user` the client claimed, kept beside `tunnel_source` so mismatches can be found later.
    pub ip_claim: Option<String>,
    pub route: String,
    pub method: Option<Method>,
    pub elements_requested: ElementSet,
    pub elements_returned: ElementSet,
    pub outcome: Outcome,
    pub source: Source,
    /// Whether the request spent a unit of the daily quota (so the semester report can set use against quota).
    pub quota_charged: bool,
    pub latency_us: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// One commitment per NIK or KK looked up, in request order.
    pub subjects: Vec<Commitment>,
}

/// Who made an admin change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Actor {
    /// The local CLI, over the management socket: the peer's Unix uid and process (a v1 record knows only the uid).
    Cli { uid: u32, pid: Option<i32> },
    /// A named administrator of the web console.
    Console { admin: String },
    /// A device enrolling itself.
    Device { device: String },
    /// The appliance on its own account: retention, key rotation, housekeeping.
    System { task: String },
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Cli { uid, pid: Some(pid) } => write!(f, "cli uid {uid} pid {pid}"),
            Actor::Cli { uid, pid: None } => write!(f, "cli uid {uid}"),
            Actor::Console { admin } => write!(f, "console {admin}"),
            Actor::Device { device } => write!(f, "device {device}"),
            Actor::System { task } => write!(f, "system {task}"),
        }
    }
}

/// A change to institutions, users, devices or quotas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRecord {
    pub actor: Actor,
    pub action: String,
    pub target: String,
    /// Private so that [`AdminRecord::new`] can keep floats out (see the module docs).
    detail: Json,
    /// One commitment per personal identifier the change concerns (an operator's NIK and NIP), which the detail
    /// leaves out.
    pub subjects: Vec<Commitment>,
}

impl AdminRecord {
    /// `detail` must not contain secrets (passwords, keys) or personal identifiers (those go in `subjects` as
    /// commitments); that is the caller's duty, the type cannot see it.
    pub fn new(actor: Actor, action: String, target: String, detail: Json) -> Result<AdminRecord, RecordError> {
        if has_float(&detail) {
            return Err(RecordError::Float);
        }
        Ok(AdminRecord { actor, action, target, detail, subjects: Vec::new() })
    }

    pub fn detail(&self) -> &Json {
        &self.detail
    }

    /// The detail exactly as the canonical form writes it (sorted keys, fixed escaping).
    pub fn detail_canonical(&self) -> String {
        let mut out = String::new();
        write_json(&mut out, &self.detail);
        out
    }
}

fn has_float(value: &Json) -> bool {
    match value {
        Json::Number(n) => !(n.is_u64() || n.is_i64()),
        Json::Array(items) => items.iter().any(has_float),
        Json::Object(map) => map.values().any(has_float),
        Json::Null | Json::Bool(_) | Json::String(_) => false,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Request(RequestRecord),
    Admin(AdminRecord),
}

/// One leaf of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub entry: Entry,
    /// Private: records are made in the current format, and an older one only by reading it.
    format: Format,
}

/// Why bytes are not a canonical audit record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("field {0}: missing or of the wrong type")]
    Field(&'static str),
    #[error("unsupported record version")]
    Version,
    #[error("admin detail holds a float, which has no canonical form")]
    Float,
    #[error("valid record, but not in canonical form")]
    NotCanonical,
}

impl AuditRecord {
    /// A record in the current format.
    pub fn new(seq: u64, at: DateTime<Utc>, entry: Entry) -> AuditRecord {
        AuditRecord { seq, at, entry, format: Format::CURRENT }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The bytes a Merkle leaf hashes (see the module docs for the rules).
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = String::new();
        out.push_str("{\"v\":");
        out.push_str(&self.format.number().to_string());
        out.push_str(",\"seq\":");
        out.push_str(&self.seq.to_string());
        out.push_str(",\"at\":");
        write_str(&mut out, &format_time(&self.at));
        match &self.entry {
            Entry::Request(r) => {
                out.push_str(",\"request\":");
                write_request(&mut out, r);
            }
            Entry::Admin(a) => {
                out.push_str(",\"admin\":{");
                match (self.format, &a.actor) {
                    // Only read from old logs, where every actor is a uid (see `parse_record`).
                    (Format::V1, Actor::Cli { uid, .. }) => {
                        out.push_str("\"actor_uid\":");
                        out.push_str(&uid.to_string());
                    }
                    (_, actor) => {
                        out.push_str("\"actor\":");
                        write_actor(&mut out, actor);
                    }
                }
                out.push_str(",\"action\":");
                write_str(&mut out, &a.action);
                out.push_str(",\"target\":");
                write_str(&mut out, &a.target);
                out.push_str(",\"detail\":");
                write_json(&mut out, &a.detail);
                if self.format >= Format::V2 {
                    out.push_str(",\"subjects\":");
                    write_commitments(&mut out, &a.subjects);
                }
                out.push('}');
            }
        }
        out.push('}');
        out.into_bytes()
    }

    /// Strict inverse of [`AuditRecord::canonical`]: anything it would not have produced is refused.
    pub fn from_canonical(bytes: &[u8]) -> Result<AuditRecord, RecordError> {
        let json: Json = serde_json::from_slice(bytes).map_err(|e| RecordError::Json(e.to_string()))?;
        let record = parse_record(&json)?;
        if record.canonical() != bytes {
            return Err(RecordError::NotCanonical);
        }
        Ok(record)
    }

    pub fn leaf_hash(&self) -> merkle::Hash {
        merkle::leaf_hash(&self.canonical())
    }
}

fn format_time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_opt_str(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => write_str(out, s),
        None => out.push_str("null"),
    }
}

fn write_elements(out: &mut String, set: ElementSet) {
    out.push('[');
    for (i, e) in set.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, e.wire_name());
    }
    out.push(']');
}

fn write_request(out: &mut String, r: &RequestRecord) {
    out.push_str("{\"request_id\":");
    write_str(out, &r.request_id);
    out.push_str(",\"institution\":");
    write_opt_str(out, r.institution.as_deref());
    out.push_str(",\"user\":");
    write_opt_str(out, r.user.as_deref());
    out.push_str(",\"device\":");
    write_str(out, &r.device);
    out.push_str(",\"tunnel_source\":");
    write_str(out, &r.tunnel_source);
    out.push_str(",\"ip_claim\":");
    write_opt_str(out, r.ip_claim.as_deref());
    out.push_str(",\"route\":");
    write_str(out, &r.route);
    out.push_str(",\"method\":");
    write_opt_str(out, r.method.map(Method::wire_name));
    out.push_str(",\"elements_requested\":");
    write_elements(out, r.elements_requested);
    out.push_str(",\"elements_returned\":");
    write_elements(out, r.elements_returned);
    out.push_str(",\"outcome\":");
    match r.outcome {
        Outcome::Data => out.push_str("\"data\""),
        Outcome::Code(code) => {
            out.push_str("{\"code\":");
            write_str(out, code.code());
            out.push('}');
        }
        Outcome::Http(status) => {
            out.push_str("{\"http\":");
            out.push_str(&status.to_string());
            out.push('}');
        }
    }
    out.push_str(",\"source\":");
    write_str(out, r.source.name());
    out.push_str(",\"quota_charged\":");
    out.push_str(if r.quota_charged { "true" } else { "false" });
    for (key, value) in [("latency_us", r.latency_us), ("bytes_in", r.bytes_in), ("bytes_out", r.bytes_out)] {
        out.push_str(",\"");
        out.push_str(key);
        out.push_str("\":");
        out.push_str(&value.to_string());
    }
    out.push_str(",\"subjects\":");
    write_commitments(out, &r.subjects);
    out.push('}');
}

fn write_commitments(out: &mut String, commitments: &[Commitment]) {
    out.push('[');
    for (i, s) in commitments.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, &s.to_hex());
    }
    out.push(']');
}

/// `{"kind":…}` then the kind's own fields, in a fixed order.
fn write_actor(out: &mut String, actor: &Actor) {
    let (kind, field, value) = match actor {
        Actor::Cli { uid, pid } => {
            out.push_str("{\"kind\":\"cli\",\"uid\":");
            out.push_str(&uid.to_string());
            out.push_str(",\"pid\":");
            match pid {
                Some(pid) => out.push_str(&pid.to_string()),
                None => out.push_str("null"),
            }
            out.push('}');
            return;
        }
        Actor::Console { admin } => ("console", "admin", admin),
        Actor::Device { device } => ("device", "device", device),
        Actor::System { task } => ("system", "task", task),
    };
    out.push_str("{\"kind\":");
    write_str(out, kind);
    out.push_str(",\"");
    out.push_str(field);
    out.push_str("\":");
    write_str(out, value);
    out.push('}');
}

/// Writes free-form JSON with sorted keys; floats never reach here (see [`AdminRecord::new`]).
fn write_json(out: &mut String, value: &Json) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => out.push_str(&u.to_string()),
            (None, Some(i)) => out.push_str(&i.to_string()),
            // Unreachable through the constructor; written as text rather than panicking inside a hash.
            (None, None) => out.push_str(&n.to_string()),
        },
        Json::String(s) => write_str(out, s),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        Json::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(out, key);
                out.push(':');
                write_json(out, item);
            }
            out.push('}');
        }
    }
}

fn field<'a>(obj: &'a Map<String, Json>, name: &'static str) -> Result<&'a Json, RecordError> {
    obj.get(name).ok_or(RecordError::Field(name))
}

fn object<'a>(value: &'a Json, name: &'static str) -> Result<&'a Map<String, Json>, RecordError> {
    value.as_object().ok_or(RecordError::Field(name))
}

fn string(obj: &Map<String, Json>, name: &'static str) -> Result<String, RecordError> {
    field(obj, name)?.as_str().map(str::to_owned).ok_or(RecordError::Field(name))
}

fn opt_string(obj: &Map<String, Json>, name: &'static str) -> Result<Option<String>, RecordError> {
    match field(obj, name)? {
        Json::Null => Ok(None),
        Json::String(s) => Ok(Some(s.clone())),
        _ => Err(RecordError::Field(name)),
    }
}

fn unsigned(obj: &Map<String, Json>, name: &'static str) -> Result<u64, RecordError> {
    field(obj, name)?.as_u64().ok_or(RecordError::Field(name))
}

fn elements(obj: &Map<String, Json>, name: &'static str) -> Result<ElementSet, RecordError> {
    let items = field(obj, name)?.as_array().ok_or(RecordError::Field(name))?;
    items.iter().map(|item| item.as_str().and_then(Element::from_wire_name).ok_or(RecordError::Field(name))).collect()
}

fn parse_record(json: &Json) -> Result<AuditRecord, RecordError> {
    let top = object(json, "record")?;
    let format = match unsigned(top, "v")? {
        1 => Format::V1,
        2 => Format::V2,
        _ => return Err(RecordError::Version),
    };
    let seq = unsigned(top, "seq")?;
    let at = DateTime::parse_from_rfc3339(&string(top, "at")?).map_err(|_| RecordError::Field("at"))?.to_utc();
    let entry = match (top.get("request"), top.get("admin")) {
        (Some(request), None) => Entry::Request(parse_request(object(request, "request")?)?),
        (None, Some(admin)) => {
            let admin = object(admin, "admin")?;
            let actor = match format {
                Format::V1 => {
                    let uid = u32::try_from(unsigned(admin, "actor_uid")?);
                    Actor::Cli { uid: uid.map_err(|_| RecordError::Field("actor_uid"))?, pid: None }
                }
                Format::V2 => parse_actor(field(admin, "actor")?)?,
            };
            let detail = field(admin, "detail")?.clone();
            let mut record = AdminRecord::new(actor, string(admin, "action")?, string(admin, "target")?, detail)?;
            if format >= Format::V2 {
                record.subjects = commitments(admin, "subjects")?;
            }
            Entry::Admin(record)
        }
        _ => return Err(RecordError::Field("request or admin")),
    };
    Ok(AuditRecord { seq, at, entry, format })
}

fn parse_actor(value: &Json) -> Result<Actor, RecordError> {
    // serde's tagged form is the same shape; `from_canonical` re-encodes, so key order and extras are checked there.
    serde_json::from_value(value.clone()).map_err(|_| RecordError::Field("actor"))
}

fn commitments(obj: &Map<String, Json>, name: &'static str) -> Result<Vec<Commitment>, RecordError> {
    field(obj, name)?
        .as_array()
        .ok_or(RecordError::Field(name))?
        .iter()
        .map(|s| s.as_str().and_then(Commitment::from_hex).ok_or(RecordError::Field(name)))
        .collect()
}

fn parse_request(obj: &Map<String, Json>) -> Result<RequestRecord, RecordError> {
    let method =
        opt_string(obj, "method")?.map(|name| Method::parse(&name).ok_or(RecordError::Field("method"))).transpose()?;
    let outcome = match field(obj, "outcome")? {
        Json::String(s) if s == "data" => Outcome::Data,
        Json::Object(o) if o.len() == 1 && o.contains_key("code") => {
            Outcome::Code(ResponseCode::from_code(&string(o, "code")?).ok_or(RecordError::Field("outcome"))?)
        }
        Json::Object(o) if o.len() == 1 && o.contains_key("http") => {
            Outcome::Http(u16::try_from(unsigned(o, "http")?).map_err(|_| RecordError::Field("outcome"))?)
        }
        _ => return Err(RecordError::Field("outcome")),
    };
    let source_name = string(obj, "source")?;
    let source = Source::ALL.into_iter().find(|s| s.name() == source_name).ok_or(RecordError::Field("source"))?;
    let subjects = commitments(obj, "subjects")?;
    Ok(RequestRecord {
        request_id: string(obj, "request_id")?,
        institution: opt_string(obj, "institution")?,
        user: opt_string(obj, "user")?,
        device: string(obj, "device")?,
        tunnel_source: string(obj, "tunnel_source")?,
        ip_claim: opt_string(obj, "ip_claim")?,
        route: string(obj, "route")?,
        method,
        elements_requested: elements(obj, "elements_requested")?,
        elements_returned: elements(obj, "elements_returned")?,
        outcome,
        source,
        quota_charged: field(obj, "quota_charged")?.as_bool().ok_or(RecordError::Field("quota_charged"))?,
        latency_us: unsigned(obj, "latency_us")?,
        bytes_in: unsigned(obj, "bytes_in")?,
        bytes_out: unsigned(obj, "bytes_out")?,
        subjects,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;
    use serde_json::json;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 19, 30, 5).unwrap() + chrono::Duration::nanoseconds(123_456_789)
    }

    fn request(outcome: Outcome, source: Source) -> AuditRecord {
        AuditRecord::new(
            42,
            at(),
            Entry::Request(RequestRecord {
                request_id: "r-0001".into(),
                institution: Some("DINKES-3171".into()),
                user: Some("op\"1\\\n".into()),
                device: "dev-7".into(),
                tunnel_source: "10.8.0.7".into(),
                ip_claim: Some("192.168.1.5".into()),
                route: "/dukcapil/get_json/DINKES/CALL_NIK".into(),
                method: Some(Method::CallNik),
                elements_requested: [Element::Nik, Element::NamaLgkp, Element::Alamat].into_iter().collect(),
                elements_returned: [Element::Nik, Element::NamaLgkp].into_iter().collect(),
                outcome,
                source,
                quota_charged: source != Source::Gateway,
                latency_us: 1_250,
                bytes_in: 210,
                bytes_out: 1_024,
                subjects: vec![commit(&[7; 32], "3171012345678901")],
            }),
        )
    }

    fn admin_by(actor: Actor) -> AuditRecord {
        let detail = json!({"zeta": [1, -2, "é"], "alpha": {"b": null, "a": true}});
        let mut record = AdminRecord::new(actor, "quota.set".into(), "DINKES-3171".into(), detail).unwrap();
        record.subjects = vec![commit(&[9; 32], "3374041003870006"), commit(&[9; 32], "198703102010011002")];
        AuditRecord::new(43, at(), Entry::Admin(record))
    }

    fn actors() -> [Actor; 5] {
        [
            Actor::Cli { uid: 1000, pid: Some(4242) },
            Actor::Cli { uid: 0, pid: None },
            Actor::Console { admin: "ratna \"admin\"".into() },
            Actor::Device { device: "laptop-dinsos-1".into() },
            Actor::System { task: "retention".into() },
        ]
    }

    fn admin() -> AuditRecord {
        admin_by(Actor::Cli { uid: 1000, pid: Some(4242) })
    }

    fn every_kind() -> Vec<AuditRecord> {
        let outcomes = [Outcome::Data, Outcome::Code(ResponseCode::NotFound), Outcome::Http(502)];
        let mut all: Vec<_> =
            outcomes.into_iter().flat_map(|o| Source::ALL.into_iter().map(move |s| request(o, s))).collect();
        let mut bare = request(Outcome::Code(ResponseCode::LoginFailed), Source::Gateway);
        if let Entry::Request(r) = &mut bare.entry {
            r.institution = None;
            r.user = None;
            r.ip_claim = None;
            r.method = None;
            r.elements_requested = ElementSet::empty();
            r.elements_returned = ElementSet::empty();
            r.subjects.clear();
        }
        all.push(bare);
        all.extend(actors().into_iter().map(admin_by));
        let mut unnamed = admin();
        if let Entry::Admin(a) = &mut unnamed.entry {
            a.subjects.clear();
        }
        all.push(unnamed);
        all
    }

    #[test]
    fn every_outcome_and_source_round_trips() {
        for record in every_kind() {
            let bytes = record.canonical();
            assert_eq!(AuditRecord::from_canonical(&bytes), Ok(record.clone()), "{}", String::from_utf8_lossy(&bytes));
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn canonical_bytes_are_pinned() {
        let record = request(Outcome::Code(ResponseCode::QuotaExhausted), Source::Upstream);
        let want = concat!(
            r#"{"v":2,"seq":42,"at":"2026-11-25T19:30:05.123456789Z","request":{"request_id":"r-0001","#,
            r#""institution":"DINKES-3171","user":"op\"1\\\u000a","device":"dev-7","tunnel_source":"10.8.0.7","#,
            r#""ip_claim":"192.168.1.5","route":"/dukcapil/get_json/DINKES/CALL_NIK","method":"CALL_NIK","#,
            r#""elements_requested":["NIK","NAMA_LGKP","ALAMAT"],"elements_returned":["NIK","NAMA_LGKP"],"#,
            r#""outcome":{"code":"05"},"source":"upstream","quota_charged":true,"latency_us":1250,"bytes_in":210,"bytes_out":1024,"#,
            r#""subjects":["005fabb5a3f77bd88a3c53b4063e83f452cc74fc9733477040f61b17c02e78de"]}}"#,
        );
        assert_eq!(String::from_utf8(record.canonical()).unwrap(), want);

        let detail =
            r#""action":"quota.set","target":"DINKES-3171","detail":{"alpha":{"a":true,"b":null},"zeta":[1,-2,"é"]},"#;
        // The commitments themselves are pinned by `commitments_depend_on_salt_and_identifier_and_hide_the_nik`.
        let Entry::Admin(pinned) = &admin().entry else { unreachable!() };
        let subjects = format!(r#""subjects":["{}","{}"]}}}}"#, pinned.subjects[0], pinned.subjects[1]);
        for (actor, text) in actors().into_iter().zip([
            r#"{"kind":"cli","uid":1000,"pid":4242}"#,
            r#"{"kind":"cli","uid":0,"pid":null}"#,
            r#"{"kind":"console","admin":"ratna \"admin\""}"#,
            r#"{"kind":"device","device":"laptop-dinsos-1"}"#,
            r#"{"kind":"system","task":"retention"}"#,
        ]) {
            let want = format!(
                r#"{{"v":2,"seq":43,"at":"2026-11-25T19:30:05.123456789Z","admin":{{"actor":{text},{detail}{subjects}"#
            );
            assert_eq!(String::from_utf8(admin_by(actor).canonical()).unwrap(), want);
        }
    }

    /// Records written before the format had versions beyond 1 (a Unix uid, no admin subjects) read back as what
    /// they were and re-encode to the very bytes, and so the very leaf hashes, their logs committed to.
    #[test]
    fn version_1_records_keep_their_bytes_and_leaf_hashes() {
        // Requests did not change between the versions, only the number.
        let v2 = String::from_utf8(request(Outcome::Code(ResponseCode::QuotaExhausted), Source::Upstream).canonical());
        let request = v2.unwrap().replacen(r#"{"v":2,"#, r#"{"v":1,"#, 1);
        let admin = concat!(
            r#"{"v":1,"seq":43,"at":"2026-11-25T19:30:05.123456789Z","admin":{"actor_uid":1000,"#,
            r#""action":"quota.set","target":"DINKES-3171","#,
            r#""detail":{"alpha":{"a":true,"b":null},"zeta":[1,-2,"é"]}}}"#,
        );
        for (text, leaf) in [
            (request.as_str(), "2494ae2e0bfffecc3ee4a0ced5dd62ed9ed23bb408c0b1f0ec9e3e389e0e27af"),
            (admin, "4688f46be2c037e9ed6506f9aaf0cd87b710158b52affc47b8513e6771dec182"),
        ] {
            let record = AuditRecord::from_canonical(text.as_bytes()).unwrap();
            assert_eq!(record.format(), Format::V1);
            assert_eq!(String::from_utf8(record.canonical()).unwrap(), text);
            assert_eq!(hex(&record.leaf_hash()), leaf);
        }
        let Entry::Admin(a) = AuditRecord::from_canonical(admin.as_bytes()).unwrap().entry else { unreachable!() };
        assert_eq!((a.actor, a.subjects), (Actor::Cli { uid: 1000, pid: None }, vec![]));
        // A v1 record cannot borrow v2's fields, nor the other way round.
        for bad in [
            admin.replace(r#""actor_uid":1000"#, r#""actor":{"kind":"cli","uid":1000,"pid":null}"#),
            admin.replace(r#"]}}}"#, r#"]},"subjects":[]}}"#),
            admin.replace(r#"{"v":1"#, r#"{"v":2"#),
            admin.replace(r#"{"v":1"#, r#"{"v":3"#),
        ] {
            assert!(AuditRecord::from_canonical(bad.as_bytes()).is_err(), "accepted {bad}");
        }
    }

    #[test]
    fn non_canonical_encodings_are_rejected() {
        for record in every_kind() {
            let good = String::from_utf8(record.canonical()).unwrap();
            let mut variants = vec![
                good.replacen(",\"seq\"", ", \"seq\"", 1),
                format!("{good}\n"),
                format!("{good} "),
                good.replacen("{\"v\":2,\"seq\":", "{\"seq\":", 1).replacen("\"at\"", "\"v\":2,\"at\"", 1),
                good.replacen("{\"v\":2,", "{\"v\":2,\"extra\":0,", 1),
                good.replacen("\"seq\":4", "\"seq\":04", 1),
                good.replacen(".123456789Z", ".123456789+00:00", 1),
                good.replacen("{\"v\":2", "{\"v\":3", 1),
            ];
            if good.contains("\"request\"") {
                variants.push(good.replacen("\"route\"", "\"shoe\":1,\"route\"", 1));
                variants.push(good.replacen("\"latency_us\":1250", "\"latency_us\":1250.0", 1));
                if good.contains("\"NIK\"") {
                    variants.push(good.replacen("\"NIK\"", "\"nik\"", 1));
                }
                variants.push(good.replacen("\"dev-7\"", "\"dev\\u002d7\"", 1));
            } else {
                variants.push(good.replacen(
                    "{\"alpha\":{\"a\":true,\"b\":null}",
                    "{\"alpha\":{\"b\":null,\"a\":true}",
                    1,
                ));
                variants.push(good.replacen("\"zeta\":[1,", "\"zeta\":[1.5,", 1));
            }
            for bad in variants {
                assert_ne!(bad, good, "the mutation must change something");
                assert!(AuditRecord::from_canonical(bad.as_bytes()).is_err(), "accepted {bad}");
            }
        }
        assert!(matches!(AuditRecord::from_canonical(b"{\"v\":1"), Err(RecordError::Json(_))));
    }

    #[test]
    fn floats_are_refused_in_admin_detail() {
        let actor = Actor::System { task: "t".into() };
        assert_eq!(AdminRecord::new(actor, "a".into(), "t".into(), json!({"x": [0.5]})), Err(RecordError::Float));
    }

    #[test]
    fn commitments_depend_on_salt_and_identifier_and_hide_the_nik() {
        let nik = "3171012345678901";
        let base = commit(&[1; 32], nik);
        assert_ne!(base, commit(&[2; 32], nik));
        assert_ne!(base, commit(&[1; 32], "3171012345678902"));
        assert_eq!(base, commit(&[1; 32], nik));
        let mut preimage = [1u8; 32].to_vec();
        preimage.extend_from_slice(nik.as_bytes());
        assert_eq!(base.0, <[u8; 32]>::from(Sha256::digest(&preimage)));

        let mut record = request(Outcome::Data, Source::Upstream);
        if let Entry::Request(r) = &mut record.entry {
            r.subjects = vec![base];
        }
        let text = String::from_utf8(record.canonical()).unwrap();
        assert!(!text.contains(nik) && !text.contains(&hex(nik.as_bytes())), "{text}");
        assert!(text.contains(&base.to_string()));
    }

    fn arb_json() -> impl Strategy<Value = Json> {
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::from),
            any::<i64>().prop_map(Json::from),
            any::<u64>().prop_map(Json::from),
            any::<String>().prop_map(Json::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
                prop::collection::vec((any::<String>(), inner), 0..4)
                    .prop_map(|kv| Json::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn arb_set() -> impl Strategy<Value = ElementSet> {
        prop::collection::vec(prop::sample::select(Element::ALL), 0..6).prop_map(|v| v.into_iter().collect())
    }

    fn arb_request() -> impl Strategy<Value = RequestRecord> {
        let outcome = prop_oneof![
            Just(Outcome::Data),
            prop::sample::select(ResponseCode::ALL).prop_map(Outcome::Code),
            any::<u16>().prop_map(Outcome::Http),
        ];
        (
            (any::<String>(), any::<Option<String>>(), any::<Option<String>>(), any::<String>(), any::<String>()),
            (any::<Option<String>>(), any::<String>(), prop::option::of(prop::sample::select(Method::ALL))),
            (arb_set(), arb_set(), outcome, prop::sample::select(&Source::ALL[..]), any::<bool>()),
            (any::<u64>(), any::<u64>(), any::<u64>(), prop::collection::vec(any::<[u8; 32]>(), 0..3)),
        )
            .prop_map(
                |((request_id, institution, user, device, tunnel_source), (ip_claim, route, method), a, b)| {
                    let (elements_requested, elements_returned, outcome, source, quota_charged) = a;
                    let (latency_us, bytes_in, bytes_out, subjects) = b;
                    RequestRecord {
                        request_id,
                        institution,
                        user,
                        device,
                        tunnel_source,
                        ip_claim,
                        route,
                        method,
                        elements_requested,
                        elements_returned,
                        outcome,
                        source,
                        quota_charged,
                        latency_us,
                        bytes_in,
                        bytes_out,
                        subjects: subjects.into_iter().map(Commitment).collect(),
                    }
                },
            )
    }

    fn arb_actor() -> impl Strategy<Value = Actor> {
        prop_oneof![
            (any::<u32>(), any::<Option<i32>>()).prop_map(|(uid, pid)| Actor::Cli { uid, pid }),
            any::<String>().prop_map(|admin| Actor::Console { admin }),
            any::<String>().prop_map(|device| Actor::Device { device }),
            any::<String>().prop_map(|task| Actor::System { task }),
        ]
    }

    fn arb_record() -> impl Strategy<Value = AuditRecord> {
        let entry = prop_oneof![
            arb_request().prop_map(Entry::Request),
            (arb_actor(), any::<String>(), any::<String>(), arb_json(), prop::collection::vec(any::<[u8; 32]>(), 0..3))
                .prop_map(|(actor, action, target, detail, subjects)| {
                    let mut record = AdminRecord::new(actor, action, target, detail).unwrap();
                    record.subjects = subjects.into_iter().map(Commitment).collect();
                    Entry::Admin(record)
                }),
        ];
        // Years 1970..2200: the range an audit log can meet, and inside RFC 3339's four-digit years.
        (any::<u64>(), 0i64..7_258_118_400, 0u32..1_000_000_000, entry).prop_map(|(seq, secs, nanos, entry)| {
            AuditRecord::new(seq, DateTime::from_timestamp(secs, nanos).unwrap(), entry)
        })
    }

    proptest! {
        #[test]
        fn canonical_is_a_fixed_point(record in arb_record()) {
            let bytes = record.canonical();
            let back = AuditRecord::from_canonical(&bytes);
            prop_assert_eq!(back.as_ref(), Ok(&record));
            prop_assert_eq!(back.unwrap().canonical(), bytes);
        }
    }
}
