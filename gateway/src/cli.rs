//! The admin CLI's side of the management socket: exit codes that scripts can branch on, and the tables people read.

use std::collections::BTreeSet;
use std::io::BufRead;

use chrono::SecondsFormat;
use serde_json::Value;
use simpul_core::audit::export::outcome_label;
use simpul_core::audit::record::{AuditRecord, Entry};
use simpul_core::element::{Element, ElementSet};
use simpul_core::institution::Secret;
use simpul_core::wire::method::Method;

use crate::admin::cache::{CacheStatsView, CacheStatusView, HitRatio, OffReason};
use crate::admin::device::DeviceView;
use crate::admin::gateway::{AdminLogEntry, StatusView};
use crate::admin::FailureKind;
use crate::control::ClientError;

/// Exit codes of the admin commands (every Simpul binary's, `simpul_process::exit`); `--help` lists them.
pub mod exit {
    pub use simpul_process::exit::*;

    pub const HELP: &str =
        "Exit codes: 0 success; 1 conflict with existing state (name, key or address taken, network \
full, device revoked); \
2 invalid arguments, config or request; 3 not found (no such device, user, institution or record); 4 cannot reach the gateway (not running, or not root); \
5 the gateway (or the CLI) failed to carry it out (database, tunnel, firewall, a file); 6 the audit log or a \
proof failed its check; `run` exits 1 when it cannot start. Input errors come in a fixed order, the most basic first (a missing field, then each field's \
form, then the password, then what the gateway holds). \
With --json, every answer is JSON on standard output, and so is every error: {\"error\": \"…\", \"exit\": N} on \
standard output, N being the exit code. Without --config the CLI reads /etc/simpul/gateway.toml when it exists, \
and says on standard error which file it read, or that it found none.";
}

pub fn exit_code(error: &ClientError) -> u8 {
    match error {
        ClientError::Connect(..) => exit::UNREACHABLE,
        ClientError::Io(_) | ClientError::Protocol(_) => exit::INTERNAL,
        ClientError::Refused(failure) => match failure.kind {
            FailureKind::Invalid => exit::INVALID,
            FailureKind::NotFound => exit::NOT_FOUND,
            FailureKind::Conflict => exit::CONFLICT,
            FailureKind::Internal => exit::INTERNAL,
        },
    }
}

/// How long ago the last handshake was, as an admin reads it.
fn handshake(device: &DeviceView) -> String {
    match device.tunnel.as_ref().and_then(|t| t.last_handshake_seconds) {
        None => "never".into(),
        Some(s) if s < 120 => format!("{s}s ago"),
        Some(s) if s < 7200 => format!("{}m ago", s / 60),
        Some(s) => format!("{}h ago", s / 3600),
    }
}

fn endpoint(device: &DeviceView) -> String {
    device.tunnel.as_ref().and_then(|t| t.endpoint).map_or_else(|| "-".into(), |e| e.to_string())
}

/// Audit records as a table an admin reads: one line per record.
pub fn audit_lines(records: &[AuditRecord]) -> String {
    let opt = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
    let rows = records
        .iter()
        .map(|r| {
            let (what, who, detail) = match &r.entry {
                Entry::Request(request) => {
                    let who = format!("{}/{}@{}", opt(&request.institution), opt(&request.user), request.device);
                    let method = request.method.map_or("-", |m| m.wire_name()).to_owned();
                    (method, who, outcome_label(request.outcome))
                }
                Entry::Admin(admin) => (admin.action.clone(), admin.actor.to_string(), admin.target.clone()),
            };
            vec![r.seq.to_string(), r.at.to_rfc3339_opts(SecondsFormat::Nanos, true), what, who, detail]
        })
        .collect();
    render_table(&["SEQ", "AT (UTC)", "METHOD/ACTION", "WHO", "OUTCOME/TARGET"], rows)
}

/// Lines of left-aligned columns, two spaces apart.
fn render_table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().chain([&header]).map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in [&header].into_iter().chain(&rows) {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// A JSON value as a table cell: strings bare, null as `-`.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A table of records, one column per (header, JSON pointer).
pub fn table(records: &[Value], columns: &[(&str, &str)]) -> String {
    let header: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
    let rows = records
        .iter()
        .map(|r| {
            columns.iter().map(|(_, pointer)| r.pointer(pointer).map(cell).unwrap_or_else(|| "-".into())).collect()
        })
        .collect();
    render_table(&header, rows)
}

pub fn device_table(devices: &[DeviceView]) -> String {
    let rows = devices
        .iter()
        .map(|d| {
            vec![
                d.device.name.to_string(),
                d.device.user.to_string(),
                d.device.address.to_string(),
                d.device.status.to_string(),
                handshake(d),
                endpoint(d),
            ]
        })
        .collect();
    render_table(&["NAME", "USER", "ADDRESS", "STATUS", "HANDSHAKE", "ENDPOINT"], rows)
}

/// A record as `key  value` lines, nested objects flattened with dots (`agreement.valid_until`).
pub fn record_lines(record: &Value) -> String {
    fn walk(prefix: &str, value: &Value, rows: &mut Vec<Vec<String>>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    let key = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                    walk(&key, value, rows);
                }
            }
            Value::Array(items) => {
                rows.push(vec![prefix.to_string(), items.iter().map(cell).collect::<Vec<_>>().join(",")])
            }
            other => rows.push(vec![prefix.to_string(), cell(other)]),
        }
    }
    let mut rows = Vec::new();
    walk("", record, &mut rows);
    let text = render_table(&["", ""], rows);
    // The empty header line is not wanted here.
    text.lines().skip(1).map(|l| format!("{l}\n")).collect()
}

/// One line per admin event: sequence, time, actor, action, target.
pub fn admin_log_lines(events: &[AdminLogEntry]) -> String {
    let rows = events
        .iter()
        .map(|e| {
            let at = e.event.at.to_rfc3339_opts(SecondsFormat::AutoSi, true);
            vec![e.seq.to_string(), at, e.event.actor.to_string(), e.event.action.clone(), e.event.target.clone()]
        })
        .collect();
    render_table(&["SEQ", "AT", "ACTOR", "ACTION", "TARGET"], rows)
}

pub fn device_details(view: &DeviceView) -> String {
    let d = &view.device;
    let t = view.tunnel.as_ref();
    let mut out = String::new();
    for (label, value) in [
        ("name", d.name.to_string()),
        ("user", d.user.to_string()),
        ("address", d.address.to_string()),
        ("status", d.status.to_string()),
        ("public key", d.public_key.clone()),
        ("key pair", if d.generated_key { "generated by the gateway" } else { "the device's own" }.into()),
        ("created", d.created_at.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        ("changed", d.changed_at.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        ("handshake", handshake(view)),
        ("endpoint", endpoint(view)),
        ("received", format!("{} bytes", t.map_or(0, |t| t.rx_bytes))),
        ("sent", format!("{} bytes", t.map_or(0, |t| t.tx_bytes))),
        ("spoofed packets dropped", t.map_or(0, |t| t.spoofed).to_string()),
    ] {
        out.push_str(&format!("{label:<24}{value}\n"));
    }
    out
}

/// `status` for people: where the gateway listens, what it holds, whether the upstream answers, the audit log.
pub fn status_lines(status: &StatusView) -> String {
    let mut rows = vec![
        ("public_key", status.public_key.clone()),
        ("listen", status.listen.clone()),
        ("mode", status.mode.clone()),
        ("address", status.address.clone()),
        ("api", status.api.clone()),
        ("endpoint", status.endpoint.clone().unwrap_or_else(|| "-".into())),
    ];
    let d = &status.devices;
    rows.push(("devices", format!("{} active, {} suspended, {} revoked", d.active, d.suspended, d.revoked)));
    rows.push((
        "upstream",
        match &status.upstream {
            None => "none configured".into(),
            Some(u) if u.reachable => format!("{} reachable", u.url),
            Some(u) => format!("{} UNREACHABLE: {}", u.url, u.error.as_deref().unwrap_or("-")),
        },
    ));
    let a = &status.audit;
    let checkpoint = match (a.checkpoint_size, a.checkpoint_age_seconds) {
        (Some(size), Some(age)) => format!("newest checkpoint covers {size}, {age}s old"),
        _ => "no checkpoint yet".into(),
    };
    rows.push(("audit", format!("{} records, {checkpoint}", a.size)));
    rows.push(("cache", cache_line(&status.cache)));
    rows.into_iter().map(|(key, value)| format!("{key:<12}{value}\n")).collect()
}

/// A hit ratio as people read it: `75.0% (3 of 4)`, or `-` before any lookup.
fn ratio(tally: &HitRatio) -> String {
    match tally.ratio {
        Some(ratio) => format!("{:.1}% ({} of {})", ratio * 100.0, tally.hits, tally.hits + tally.misses),
        None => "-".into(),
    }
}

/// The cache in one line: on or off (and why), its size against its bound, today's hit ratio.
pub fn cache_line(cache: &CacheStatusView) -> String {
    let state = match (cache.on, cache.off_reason, &cache.open_error) {
        (true, _, _) => "on".to_owned(),
        (false, Some(OffReason::Error), Some(error)) => format!("OFF (could not be opened: {error})"),
        (false, Some(OffReason::Admin), _) => "off (cache off)".to_owned(),
        (false, _, _) => "off ([cache] enabled = false)".to_owned(),
    };
    format!(
        "{state}, {} entries, {} of {} bytes, hits today {}",
        cache.entries,
        cache.bytes,
        cache.max_bytes,
        ratio(&cache.today)
    )
}

/// `cache stats` for people: the state line, the ratios in all, then one line per institution.
pub fn cache_stats_lines(stats: &CacheStatsView) -> String {
    let mut out = format!(
        "cache       {}
since start {}
",
        cache_line(&stats.status),
        ratio(&stats.since_start)
    );
    let rows = stats
        .institutions
        .iter()
        .map(|(id, s)| {
            let hits = |t: &HitRatio| format!("{}/{}", t.hits, t.misses);
            vec![id.clone(), hits(&s.today), ratio(&s.today), hits(&s.since_start), ratio(&s.since_start)]
        })
        .collect();
    out.push_str(&render_table(
        &["INSTITUTION", "TODAY HIT/MISS", "TODAY", "SINCE START HIT/MISS", "SINCE START"],
        rows,
    ));
    out
}

/// `CALL_NIK,CALL_VERIFY_BY_ELEMEN` (aliases and any case accepted).
pub fn parse_methods(s: &str) -> Result<BTreeSet<Method>, String> {
    s.split(',').filter(|m| !m.trim().is_empty()).map(|m| m.parse::<Method>().map_err(|e| e.to_string())).collect()
}

/// `NIK,NAMA_LGKP,…`, or `all`.
pub fn parse_elements(s: &str) -> Result<ElementSet, String> {
    if s.trim().eq_ignore_ascii_case("all") {
        return Ok(ElementSet::all());
    }
    s.split(',')
        .filter(|e| !e.trim().is_empty())
        .map(|e| Element::from_wire_name(e).ok_or_else(|| format!("unknown data element {e:?}")))
        .collect()
}

/// A value, or `none` to remove a setting (`--access-hours none`, `--daily-quota none`). Not a plain `Option`, which
/// clap reads as "the flag's value is optional".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrNone<T>(pub Option<T>);

impl<T: std::str::FromStr> std::str::FromStr for OrNone<T>
where
    T::Err: std::fmt::Display,
{
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().eq_ignore_ascii_case("none") {
            return Ok(Self(None));
        }
        s.trim().parse().map(|v| Self(Some(v))).map_err(|e: T::Err| format!("{e} (or \"none\")"))
    }
}

/// Reads a secret from standard input (one line) or, on a terminal, asks for it twice without echo.
/// Never from the command line, where other users could see it in the process list.
pub fn read_secret(label: &str, from_stdin: bool) -> Result<Secret, String> {
    let failed = |e: std::io::Error| format!("reading the {label}: {e}");
    if from_stdin || !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Ok(Secret::new(stdin_line().map_err(failed)?.trim_end_matches(['\r', '\n'])));
    }
    let first = simpul_process::read_hidden_line(&format!("{label}: ")).map_err(failed)?;
    if simpul_process::read_hidden_line(&format!("{label} again: ")).map_err(failed)? != first {
        return Err(format!("the two {label}s differ"));
    }
    Ok(Secret::new(first))
}

/// `given`, or when it is `-` one line of standard input (on a terminal, asked for without echo): a person's number
/// read so is in neither the shell's history nor the process list.
pub fn read_value(label: &str, given: String) -> Result<String, String> {
    if given != "-" {
        return Ok(given);
    }
    let failed = |e: std::io::Error| format!("reading the {label}: {e}");
    let line = if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        simpul_process::read_hidden_line(&format!("{label}: ")).map_err(failed)?
    } else {
        stdin_line().map_err(failed)?
    };
    Ok(line.trim().to_owned())
}

fn stdin_line() -> std::io::Result<String> {
    let mut text = String::new();
    std::io::stdin().lock().read_line(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use simpul_core::institution::AccessHours;

    use super::*;
    use crate::admin::Failure;

    #[test]
    fn refusals_map_to_distinct_exit_codes() {
        let refused = |kind| ClientError::Refused(Failure::new(kind, "x"));
        assert_eq!(exit_code(&refused(FailureKind::Conflict)), exit::CONFLICT);
        assert_eq!(exit_code(&refused(FailureKind::Invalid)), exit::INVALID);
        assert_eq!(exit_code(&refused(FailureKind::NotFound)), exit::NOT_FOUND);
        assert_eq!(exit_code(&refused(FailureKind::Internal)), exit::INTERNAL);
        let unreachable = ClientError::Connect("/x".into(), std::io::ErrorKind::NotFound.into());
        assert_eq!(exit_code(&unreachable), exit::UNREACHABLE);
    }

    #[test]
    fn lists_and_nones_parse() {
        let methods = parse_methods("call_nik,CALL_VERIFY_BY_ELEMEN,bynik").unwrap();
        assert_eq!(methods.into_iter().collect::<Vec<_>>(), [Method::CallNik, Method::CallVerifyByElemen]);
        assert!(parse_methods("CALL_ALL").is_err());
        assert_eq!(parse_elements("all").unwrap(), ElementSet::all());
        let elements = parse_elements("NIK,nama_lgkp,NOMOR_PROP").unwrap();
        assert_eq!(elements.len(), 3);
        assert!(elements.contains(Element::NoProp));
        assert!(parse_elements("NIK,GAJI").unwrap_err().contains("GAJI"));
        assert_eq!("none".parse::<OrNone<AccessHours>>().unwrap(), OrNone(None));
        let hours: OrNone<AccessHours> = "07:00-16:00".parse().unwrap();
        assert_eq!(hours.0.unwrap().to_string(), "07:00-16:00");
        assert!("7-16".parse::<OrNone<AccessHours>>().is_err());
        assert_eq!("NONE".parse::<OrNone<u64>>(), Ok(OrNone(None)));
        assert_eq!("250".parse::<OrNone<u64>>(), Ok(OrNone(Some(250))));
        assert!("-1".parse::<OrNone<u64>>().unwrap_err().contains("none"));
    }

    #[test]
    fn the_table_lines_up() {
        let devices: Vec<DeviceView> = serde_json::from_value(json!([
            {"name": "laptop-1", "user": "budi", "address": "10.77.0.2", "status": "active", "public_key": "k",
             "created_at": "2026-01-01T00:00:00Z", "changed_at": "2026-01-01T00:00:00Z", "generated_key": true,
             "tunnel": {"last_handshake_seconds": 5, "endpoint": "192.0.2.7:40000", "rx_bytes": 0, "tx_bytes": 0,
                        "spoofed": 0, "handshakes": 1, "initiations_capped": 0}},
            {"name": "a", "user": "siti-rahayu", "address": "10.77.0.3", "status": "suspended", "public_key": "k",
             "created_at": "2026-01-01T00:00:00Z", "changed_at": "2026-01-01T00:00:00Z", "generated_key": false,
             "tunnel": null},
        ]))
        .unwrap();
        let table = device_table(&devices);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "NAME      USER         ADDRESS    STATUS     HANDSHAKE  ENDPOINT");
        assert_eq!(lines[1], "laptop-1  budi         10.77.0.2  active     5s ago     192.0.2.7:40000");
        assert_eq!(lines[2], "a         siti-rahayu  10.77.0.3  suspended  never      -");
    }

    #[test]
    fn records_flatten_for_people() {
        let record = json!({"id": "DINSOS", "agreement": {"number": "470/1", "methods": ["CALL_NIK", "CALL_VERIFY_BY_ELEMEN"]},
                            "access_hours": null});
        let text = record_lines(&record);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "id                 DINSOS",
                "agreement.number   470/1",
                "agreement.methods  CALL_NIK,CALL_VERIFY_BY_ELEMEN",
                "access_hours       -"
            ]
        );
        let rows = [json!({"id": "A", "q": {"n": 5}}), json!({"id": "BB"})];
        assert_eq!(table(&rows, &[("ID", "/id"), ("N", "/q/n")]), "ID  N\nA   5\nBB  -\n");
    }
}
