//! Cross-checks the semester report and the CSV export against integration/tests/python/report_check.py, an oracle
//! written separately from the report's specification: every figure of every CSV is recomputed in Python from the
//! JSONL export alone. The oracle must also reject altered files, or its agreement would prove nothing.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use simpul_core::audit::export::{csv_header, csv_row};
use simpul_core::audit::record::{
    commit, Actor, AdminRecord, AuditRecord, Commitment, Entry, Outcome, RequestRecord, Source,
};
use simpul_core::audit::report::{Report, Semester};
use simpul_core::element::{Element, ElementSet};
use simpul_core::wire::code::ResponseCode;
use simpul_core::wire::method::Method;

const ZONE: &str = "Asia/Jakarta";
const SEMESTER: &str = "2026-2";

/// Institutions with names that exercise quoting, the formula guard and non-ASCII sorting.
const INSTITUTIONS: [&str; 6] =
    ["DINKES-3171", "BPJS, Cabang \"Timur\"", "=HYPERLINK(\"x\")", "-mundur", "DISDUK\r\nBaru", "Lembaga Ünïcödé"];
const USERS: [&str; 14] = [
    "budi",
    "ani",
    "citra",
    "dewi",
    "eko",
    "fajar",
    "gita",
    "hadi",
    "indah",
    "joko",
    "kartika",
    "+62812",
    "@admin",
    "o'neil, \"x\"",
];

/// A small deterministic generator (xorshift64*), so failures reproduce without a random-number crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

fn time(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// Instants spread over the semester, with many close to Jakarta's midnight (17:00 UTC) and to both boundaries.
fn instant(rng: &mut Rng) -> DateTime<Utc> {
    let start = time("2026-06-28T00:00:00Z");
    match rng.below(5) {
        0 => time("2026-06-30T17:00:00Z") + Duration::seconds(rng.below(7200) as i64 - 3600),
        1 => time("2026-12-31T17:00:00Z") + Duration::seconds(rng.below(7 * 3600) as i64 - 3600),
        2 => {
            start
                + Duration::days(rng.below(190) as i64)
                + Duration::hours(17)
                + Duration::seconds(rng.below(120) as i64 - 60)
        }
        _ => {
            start
                + Duration::seconds(rng.below(190 * 86_400) as i64)
                + Duration::nanoseconds(rng.below(1_000_000_000) as i64)
        }
    }
}

fn records() -> Vec<AuditRecord> {
    let mut rng = Rng(0x5eed_cafe_f00d_1234);
    let persons: Vec<Commitment> = (0..40).map(|i| commit(&[i as u8; 32], &format!("31710123456789{i:02}"))).collect();
    let outcomes: Vec<Outcome> = [Outcome::Data; 8]
        .into_iter()
        .chain(ResponseCode::ALL.iter().map(|c| Outcome::Code(*c)))
        .chain([401, 429, 502, 99].map(Outcome::Http))
        .collect();
    let mut records: Vec<AuditRecord> = (0..700u64)
        .map(|seq| {
            let at = instant(&mut rng);
            if rng.below(25) == 0 {
                let detail = json!({"daily": rng.below(100), "note": "=1+1\n", "by": [seq, "a,b"]});
                let actor = match rng.below(5) {
                    0 => Actor::Cli { uid: 1000, pid: None },
                    1 => Actor::Cli { uid: 0, pid: Some(4242) },
                    2 => Actor::Console { admin: "=ratna".into() },
                    3 => Actor::Device { device: "laptop-1".into() },
                    _ => Actor::System { task: "retention".into() },
                };
                let mut admin =
                    AdminRecord::new(actor, "quota.set".into(), rng.pick(&INSTITUTIONS).into(), detail).unwrap();
                admin.subjects = (0..rng.below(3)).map(|_| rng.pick(&persons)).collect();
                return AuditRecord::new(seq, at, Entry::Admin(admin));
            }
            let elements: ElementSet = (0..rng.below(4)).map(|_| rng.pick(Element::ALL)).collect();
            let subjects = (0..rng.below(4)).map(|_| rng.pick(&persons)).collect();
            let request = RequestRecord {
                request_id: format!("r-{seq:05}"),
                institution: (rng.below(15) != 0).then(|| rng.pick(&INSTITUTIONS).to_owned()),
                user: (rng.below(8) != 0).then(|| rng.pick(&USERS).to_owned()),
                device: format!("dev-{}", rng.below(5)),
                tunnel_source: format!("10.8.0.{}", rng.below(250)),
                ip_claim: (rng.below(3) != 0).then(|| format!("192.168.1.{}", rng.below(250))),
                route: "/dukcapil/get_json/X/CALL_NIK".into(),
                method: (rng.below(6) != 0).then(|| rng.pick(Method::ALL)),
                elements_requested: elements,
                elements_returned: elements.intersection((0..3).map(|_| rng.pick(Element::ALL)).collect()),
                outcome: rng.pick(&outcomes),
                source: rng.pick(&[Source::Gateway, Source::Cache, Source::Upstream]),
                quota_charged: rng.below(3) != 0,
                latency_us: rng.next() % 2_000_000,
                bytes_in: rng.next() % 5_000,
                bytes_out: rng.next() % 50_000,
                subjects,
            };
            AuditRecord::new(seq, at, Entry::Request(request))
        })
        .collect();
    // One busy user, so top users is a real ranking and truncation to ten matters.
    for seq in 700..760 {
        let mut busy = records[1].clone();
        busy.seq = seq;
        if let Entry::Request(r) = &mut busy.entry {
            r.institution = Some(INSTITUTIONS[0].into());
            r.user = Some("zaki".into());
        }
        records.push(busy);
    }
    records
}

/// Three with quotas, one of which never appears in the log; the others are unknown.
fn quotas() -> BTreeMap<String, u64> {
    [(INSTITUTIONS[0], 12), (INSTITUTIONS[2], 3), ("DISDIK-IDLE", 50)].into_iter().map(|(k, v)| (k.into(), v)).collect()
}

fn python() -> Option<PathBuf> {
    let root = simpul_integration::workspace_root();
    let candidates = [
        std::env::var_os("SIMPUL_PYTHON").map(PathBuf::from),
        Some(root.join("target/venv/bin/python")).filter(|p| p.exists()),
        Some(PathBuf::from("python3")),
    ];
    // zoneinfo needs the system's or PyPI's tz database; without it the oracle cannot run either.
    candidates.into_iter().flatten().find(|python| {
        Command::new(python)
            .args(["-c", "import zoneinfo; zoneinfo.ZoneInfo('Asia/Jakarta')"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

struct Oracle {
    python: PathBuf,
    jsonl: PathBuf,
    quotas: String,
}

impl Oracle {
    fn run(&self, csv_dir: &Path, only: Option<&str>, export: Option<&Path>) -> Output {
        let script = simpul_integration::workspace_root().join("integration/tests/python/report_check.py");
        let mut command = Command::new(&self.python);
        command.arg(script).arg(&self.jsonl).arg(csv_dir).args([SEMESTER, ZONE, &self.quotas]);
        if let Some(only) = only {
            command.args(["--only", only]);
        }
        if let Some(export) = export {
            command.arg("--export").arg(export);
        }
        command.output().expect("run report_check.py")
    }
}

fn write_report(dir: &Path, report: &Report) {
    fs::create_dir_all(dir).unwrap();
    for (name, text) in report.csv_files() {
        fs::write(dir.join(name), text).unwrap();
    }
}

/// Changes the last digit of the file's last row, which every file has somewhere in a figure.
fn alter_last_digit(text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    let at = bytes.iter().rposition(u8::is_ascii_digit).expect("a digit");
    bytes[at] = if bytes[at] == b'9' { b'8' } else { bytes[at] + 1 };
    String::from_utf8(bytes).unwrap()
}

#[test]
fn python_oracle_agrees_with_the_report_and_the_export() {
    let Some(python) = python() else {
        simpul_integration::skip(
            "audit_report_python cross-check against report_check.py",
            "needs python3 with zoneinfo",
        );
        return;
    };
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("audit_report_python-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();

    let records = records();
    let zone: chrono_tz::Tz = ZONE.parse().unwrap();
    let semester: Semester = SEMESTER.parse().unwrap();
    let quotas = quotas();

    let mut jsonl = Vec::new();
    let mut export = csv_header();
    for record in &records {
        jsonl.extend(record.canonical());
        jsonl.push(b'\n');
        export.push_str(&csv_row(record));
    }
    let oracle = Oracle { python, jsonl: dir.join("audit.jsonl"), quotas: serde_json::to_string(&quotas).unwrap() };
    fs::write(&oracle.jsonl, &jsonl).unwrap();
    let export_path = dir.join("export.csv");
    fs::write(&export_path, &export).unwrap();

    let report = Report::build(semester, zone, &quotas, None, records.clone());
    let full = dir.join("full");
    write_report(&full, &report);
    let output = oracle.run(&full, None, Some(&export_path));
    assert!(output.status.success(), "report_check.py disagrees: {}", String::from_utf8_lossy(&output.stderr));

    // The data must be varied enough for the comparison to mean something.
    let files: BTreeMap<_, _> = report.csv_files().into_iter().collect();
    assert!(files["summary.csv"].lines().count() >= 8, "{}", files["summary.csv"]);
    assert!(files["requests_by_day_method.csv"].lines().count() > 300);
    assert!(files["refusals_by_code.csv"].lines().count() > 40);
    assert!(files["top_users.csv"].contains(",1,zaki,"));
    assert!(files["quota_by_day.csv"].contains(",2026-07-01,") && files["quota_by_day.csv"].contains(",2026-12-31,"));
    assert!(!files["quota_by_day.csv"].contains(",2026-06-30,") && !files["quota_by_day.csv"].contains(",2027-01-01,"));

    for only in [INSTITUTIONS[1], "DISDIK-IDLE", "NOBODY"] {
        let filtered = dir.join(format!("only-{}", only.len()));
        write_report(&filtered, &Report::build(semester, zone, &quotas, Some(only), records.clone()));
        let output = oracle.run(&filtered, Some(only), None);
        assert!(output.status.success(), "--only {only:?}: {}", String::from_utf8_lossy(&output.stderr));
    }

    // Every file, altered, must be caught.
    for (name, text) in files.iter().map(|(n, t)| (*n, t.clone())).chain([("export.csv", export.clone())]) {
        let altered = dir.join(format!("altered-{name}"));
        write_report(&altered, &report);
        let path = if name == "export.csv" { altered.join("export.csv") } else { altered.join(name) };
        fs::write(&path, alter_last_digit(&text)).unwrap();
        let output = oracle.run(&altered, None, (name == "export.csv").then_some(path.as_path()));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "report_check.py accepted an altered {name}");
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
    let dropped = dir.join("dropped");
    write_report(&dropped, &report);
    let summary = &files["summary.csv"];
    let without_last = &summary[..summary[..summary.len() - 2].rfind("\r\n").unwrap() + 2];
    fs::write(dropped.join("summary.csv"), without_last).unwrap();
    assert!(!oracle.run(&dropped, None, None).status.success(), "report_check.py accepted a missing row");

    fs::remove_dir_all(&dir).unwrap();
}
