//! The semester monitoring and evaluation (monev) report: per institution, what it asked for over a half year, what
//! it got, and how its use compared with its daily quota, computed from the audit log alone.
//!
//! # What counts
//!
//! Request records that name an institution and whose time falls, in the appliance's zone, on a day of the
//! semester; admin records and requests refused before the institution was known are left out. Days are local
//! calendar days ([`quota_day`]), the days quotas are counted in, so a request at 23:30 UTC on 31 December belongs to
//! 1 January in Jakarta and to the next semester.
//!
//! The institutions reported are those in the quota table plus those seen in counted records (or only the one asked
//! for), so an institution that had access but never used it shows up with zeros: that is itself a finding.
//!
//! # Figures
//!
//! - requests: counted records; data answers: those whose outcome is data; refusals: all others, grouped by outcome
//!   spelled as in the export (`05`, `http 502`).
//! - requests by local day and method (`-` when the request named no method).
//! - quota use: per local day with at least one request, how many records spent a unit of quota, set against the
//!   institution's current daily quota (empty when unknown; the quota may have changed during the semester, the log's
//!   admin records tell when).
//! - top users: up to ten by number of requests, ties broken by name; requests that named no user are not counted
//!   here.
//! - distinct persons: distinct subject commitments in the institution's records.
//!
//! Every table is sorted (institution, then day, then method or outcome), so the same log gives the same bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};
use chrono_tz::Tz;

use super::export::{csv_line, outcome_label};
use super::record::{AuditRecord, Entry, Outcome};
use crate::day::quota_day;
use crate::wire::code::ResponseCode;
use crate::wire::method::Method;

/// Half a calendar year: half 1 is January to June, half 2 July to December.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Semester {
    year: i32,
    half: u8,
}

/// Why text or numbers are not a semester.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SemesterError {
    #[error("semester {0:?}: expected YEAR-HALF with a four-digit year, such as 2026-2")]
    Format(String),
    #[error("semester half {0:?}: must be 1 (January to June) or 2 (July to December)")]
    Half(String),
    #[error("semester year {0}: must be between 1 and 9999")]
    Year(i32),
}

impl Semester {
    pub fn new(year: i32, half: u8) -> Result<Semester, SemesterError> {
        if !(1..=9999).contains(&year) {
            return Err(SemesterError::Year(year));
        }
        if !(1..=2).contains(&half) {
            return Err(SemesterError::Half(half.to_string()));
        }
        Ok(Semester { year, half })
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn half(self) -> u8 {
        self.half
    }

    pub fn first_day(self) -> NaiveDate {
        let month = if self.half == 1 { 1 } else { 7 };
        NaiveDate::from_ymd_opt(self.year, month, 1).expect("years 1 to 9999 are in chrono's range")
    }

    pub fn last_day(self) -> NaiveDate {
        let (month, day) = if self.half == 1 { (6, 30) } else { (12, 31) };
        NaiveDate::from_ymd_opt(self.year, month, day).expect("years 1 to 9999 are in chrono's range")
    }

    pub fn contains(self, day: NaiveDate) -> bool {
        (self.first_day()..=self.last_day()).contains(&day)
    }

    fn days(self) -> impl Iterator<Item = NaiveDate> {
        let last = self.last_day();
        self.first_day().iter_days().take_while(move |d| *d <= last)
    }

    fn months(self) -> std::ops::RangeInclusive<u32> {
        let first = self.first_day().month();
        first..=first + 5
    }
}

impl FromStr for Semester {
    type Err = SemesterError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let format = || SemesterError::Format(text.to_owned());
        let (year, half) = text.trim().split_once('-').ok_or_else(format)?;
        if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format());
        }
        let half = match half {
            "1" => 1,
            "2" => 2,
            other => return Err(SemesterError::Half(other.to_owned())),
        };
        Semester::new(year.parse().map_err(|_| format())?, half)
    }
}

impl fmt::Display for Semester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.year, self.half)
    }
}

/// An outcome other than data, ordered codes first (by code), then transport statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Code(ResponseCode),
    Http(u16),
}

impl Refusal {
    fn of(outcome: Outcome) -> Option<Refusal> {
        match outcome {
            Outcome::Data => None,
            Outcome::Code(code) => Some(Refusal::Code(code)),
            Outcome::Http(status) => Some(Refusal::Http(status)),
        }
    }

    fn sort_key(self) -> (&'static str, u16) {
        match self {
            // Two-digit codes sort before any other text, so codes come first.
            Refusal::Code(code) => (code.code(), 0),
            Refusal::Http(status) => ("http", status),
        }
    }

    fn label(self) -> String {
        outcome_label(match self {
            Refusal::Code(code) => Outcome::Code(code),
            Refusal::Http(status) => Outcome::Http(status),
        })
    }

    fn description(self) -> Option<&'static str> {
        match self {
            Refusal::Code(code) => Some(code.description()),
            Refusal::Http(_) => None,
        }
    }
}

impl Ord for Refusal {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

impl PartialOrd for Refusal {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// One institution's figures.
#[derive(Debug, Default)]
struct Usage {
    daily_quota: Option<u64>,
    requests: u64,
    data_answers: u64,
    quota_charged: u64,
    by_day_method: BTreeMap<(NaiveDate, &'static str), u64>,
    /// Every day with a request, charged or not.
    charged_by_day: BTreeMap<NaiveDate, u64>,
    refusals: BTreeMap<Refusal, u64>,
    users: BTreeMap<String, u64>,
    persons: BTreeSet<[u8; 32]>,
}

impl Usage {
    fn refusal_count(&self) -> u64 {
        self.requests - self.data_answers
    }

    /// Up to ten users, most requests first, ties by name.
    fn top_users(&self) -> Vec<(&str, u64)> {
        let mut users: Vec<_> = self.users.iter().map(|(name, n)| (name.as_str(), *n)).collect();
        users.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        users.truncate(10);
        users
    }

    fn requests_on(&self, day: NaiveDate) -> u64 {
        self.by_day_method.range((day, "")..).take_while(|((d, _), _)| *d == day).map(|(_, n)| n).sum()
    }

    fn days_at_quota(&self) -> Option<usize> {
        let quota = self.daily_quota?;
        Some(self.charged_by_day.values().filter(|n| **n > 0 && **n >= quota).count())
    }
}

/// The semester report, built once and rendered as CSV files or as one HTML page.
#[derive(Debug)]
pub struct Report {
    semester: Semester,
    zone: Tz,
    counted: u64,
    seq_range: Option<(u64, u64)>,
    institutions: BTreeMap<String, Usage>,
}

impl Report {
    /// `quotas` maps institution ids to their current daily quota; `only` restricts the report to one institution.
    pub fn build(
        semester: Semester,
        zone: Tz,
        quotas: &BTreeMap<String, u64>,
        only: Option<&str>,
        records: impl IntoIterator<Item = AuditRecord>,
    ) -> Report {
        let wanted = |id: &str| only.is_none_or(|o| o == id);
        let mut institutions: BTreeMap<String, Usage> = quotas
            .iter()
            .filter(|(id, _)| wanted(id))
            .map(|(id, quota)| (id.clone(), Usage { daily_quota: Some(*quota), ..Usage::default() }))
            .collect();
        if let Some(id) = only {
            institutions.entry(id.to_owned()).or_default();
        }
        let mut counted = 0;
        let mut seq_range: Option<(u64, u64)> = None;
        for record in records {
            let Entry::Request(r) = record.entry else { continue };
            let Some(id) = r.institution else { continue };
            let day = quota_day(record.at, zone);
            if !wanted(&id) || !semester.contains(day) {
                continue;
            }
            counted += 1;
            seq_range =
                Some(seq_range.map_or((record.seq, record.seq), |(lo, hi)| (lo.min(record.seq), hi.max(record.seq))));
            let usage = institutions.entry(id).or_default();
            usage.requests += 1;
            *usage.by_day_method.entry((day, r.method.map_or("-", Method::wire_name))).or_default() += 1;
            let charged = usage.charged_by_day.entry(day).or_default();
            if r.quota_charged {
                *charged += 1;
                usage.quota_charged += 1;
            }
            match Refusal::of(r.outcome) {
                None => usage.data_answers += 1,
                Some(refusal) => *usage.refusals.entry(refusal).or_default() += 1,
            }
            if let Some(user) = r.user {
                *usage.users.entry(user).or_default() += 1;
            }
            usage.persons.extend(r.subjects.iter().map(|s| s.0));
        }
        Report { semester, zone, counted, seq_range, institutions }
    }

    /// The report as CSV files (same quoting and formula guard as the export), named as they should be saved.
    pub fn csv_files(&self) -> Vec<(&'static str, String)> {
        let quota = |u: &Usage| u.daily_quota.map(|q| q.to_string()).unwrap_or_default();
        let mut summary = csv_line([
            "institution",
            "requests",
            "data_answers",
            "refusals",
            "quota_charged",
            "distinct_persons",
            "daily_quota",
        ]);
        let mut by_day_method = csv_line(["institution", "day", "method", "requests"]);
        let mut refusals = csv_line(["institution", "outcome", "count"]);
        let mut quota_by_day = csv_line(["institution", "day", "charged", "daily_quota"]);
        let mut top_users = csv_line(["institution", "rank", "user", "requests"]);
        for (id, u) in &self.institutions {
            summary.push_str(&csv_line([
                id.clone(),
                u.requests.to_string(),
                u.data_answers.to_string(),
                u.refusal_count().to_string(),
                u.quota_charged.to_string(),
                u.persons.len().to_string(),
                quota(u),
            ]));
            for ((day, method), n) in &u.by_day_method {
                by_day_method.push_str(&csv_line([id, &day.to_string(), *method, &n.to_string()]));
            }
            for (refusal, n) in &u.refusals {
                refusals.push_str(&csv_line([id.clone(), refusal.label(), n.to_string()]));
            }
            for (day, n) in &u.charged_by_day {
                quota_by_day.push_str(&csv_line([id.clone(), day.to_string(), n.to_string(), quota(u)]));
            }
            for (rank, (user, n)) in u.top_users().into_iter().enumerate() {
                top_users.push_str(&csv_line([id, &(rank + 1).to_string(), user, &n.to_string()]));
            }
        }
        vec![
            ("summary.csv", summary),
            ("requests_by_day_method.csv", by_day_method),
            ("refusals_by_code.csv", refusals),
            ("quota_by_day.csv", quota_by_day),
            ("top_users.csv", top_users),
        ]
    }

    /// One self-contained page (inline CSS and SVG, no scripts, no external resources) for the monev meeting.
    /// Labels are Indonesian with English in parentheses.
    pub fn html(&self) -> String {
        let mut page = String::new();
        let title = format!(
            "Laporan Monev Semester {} ({} – {})",
            self.semester,
            long_date(self.semester.first_day()),
            long_date(self.semester.last_day())
        );
        let _ = write!(
            page,
            "<!DOCTYPE html>\n<html lang=\"id\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n\
             </head>\n<body>\n<h1>{}</h1>\n",
            escape(&title),
            escape(&title)
        );
        let seqs = match self.seq_range {
            Some((lo, hi)) => format!(", seq {lo}–{hi}"),
            None => String::new(),
        };
        let _ = writeln!(
            page,
            "<p class=\"note\">Dibuat oleh Simpul dari log audit (generated by Simpul from the audit log). \
             Hari menurut waktu lokal (days in local time): {}. Catatan dihitung (records counted): {}{}.</p>",
            escape(self.zone.name()),
            self.counted,
            seqs
        );
        if self.institutions.is_empty() {
            page.push_str("<p>Tidak ada instansi (no institutions).</p>\n");
        }
        for (id, usage) in &self.institutions {
            self.institution_section(&mut page, id, usage);
        }
        page.push_str("</body>\n</html>\n");
        page
    }

    fn institution_section(&self, page: &mut String, id: &str, u: &Usage) {
        let _ = writeln!(page, "<section>\n<h2>Instansi (institution) {}</h2>", escape(id));
        let percent = |n: u64| {
            if u.requests == 0 {
                String::new()
            } else {
                format!(" ({:.1}%)", n as f64 * 100.0 / u.requests as f64)
            }
        };
        let unknown = "tidak diketahui (unknown)".to_owned();
        let figures = [
            ("Permintaan (requests)", u.requests.to_string()),
            ("Dijawab dengan data (data answers)", format!("{}{}", u.data_answers, percent(u.data_answers))),
            ("Ditolak (refusals)", format!("{}{}", u.refusal_count(), percent(u.refusal_count()))),
            ("Memakai kuota (quota charged)", u.quota_charged.to_string()),
            ("Kuota harian (daily quota)", u.daily_quota.map_or(unknown.clone(), |q| q.to_string())),
            ("Hari kuota habis (days quota reached)", u.days_at_quota().map_or(unknown, |n| n.to_string())),
            ("Hari aktif (active days)", u.charged_by_day.len().to_string()),
            ("Penduduk berbeda (distinct persons)", u.persons.len().to_string()),
        ];
        page.push_str("<table class=\"figures\">\n");
        for (label, value) in figures {
            let _ = writeln!(page, "<tr><th>{label}</th><td>{}</td></tr>", escape(&value));
        }
        page.push_str("</table>\n");

        page.push_str("<h3>Permintaan per hari (requests per day)</h3>\n");
        let requests: Vec<_> = self.semester.days().map(|d| (d, u.requests_on(d))).collect();
        day_chart(page, &requests, None);

        page.push_str("<h3>Pemakaian kuota per hari (quota use per day)</h3>\n");
        let charged: Vec<_> =
            self.semester.days().map(|d| (d, u.charged_by_day.get(&d).copied().unwrap_or(0))).collect();
        day_chart(page, &charged, u.daily_quota);

        page.push_str("<h3>Penolakan per kode (refusals by code)</h3>\n");
        refusal_chart(page, &u.refusals);

        page.push_str("<h3>Pengguna teratas (top users)</h3>\n");
        let top = u.top_users();
        if top.is_empty() {
            page.push_str("<p>Tidak ada (none).</p>\n");
        } else {
            page.push_str("<table>\n<tr><th>#</th><th>Pengguna (user)</th><th>Permintaan (requests)</th></tr>\n");
            for (rank, (user, n)) in top.into_iter().enumerate() {
                let _ =
                    writeln!(page, "<tr><td>{}</td><td>{}</td><td class=\"n\">{n}</td></tr>", rank + 1, escape(user));
            }
            page.push_str("</table>\n");
        }

        page.push_str("<h3>Permintaan per metode dan bulan (requests by method and month)</h3>\n");
        self.method_table(page, u);
        page.push_str("</section>\n");
    }

    fn method_table(&self, page: &mut String, u: &Usage) {
        let mut by_method: BTreeMap<&str, BTreeMap<u32, u64>> = BTreeMap::new();
        for ((day, method), n) in &u.by_day_method {
            *by_method.entry(method).or_default().entry(day.month()).or_default() += n;
        }
        if by_method.is_empty() {
            page.push_str("<p>Tidak ada (none).</p>\n");
            return;
        }
        page.push_str("<table>\n<tr><th>Metode (method)</th>");
        for month in self.semester.months() {
            let _ = write!(page, "<th>{}</th>", MONTHS[month as usize - 1]);
        }
        page.push_str("<th>Jumlah (total)</th></tr>\n");
        for (method, months) in by_method {
            let _ = write!(page, "<tr><td>{}</td>", escape(method));
            for month in self.semester.months() {
                let _ = write!(page, "<td class=\"n\">{}</td>", months.get(&month).copied().unwrap_or(0));
            }
            let _ = writeln!(page, "<td class=\"n\">{}</td></tr>", months.values().sum::<u64>());
        }
        page.push_str("</table>\n");
    }
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222;max-width:60em}\
h2{border-bottom:2px solid #2a6;padding-bottom:.2em;margin-top:2em}h3{margin-bottom:.3em}\
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.2em .6em;text-align:left}\
td.n,.figures td{text-align:right}.note{color:#555}svg{max-width:100%;height:auto}\
svg text{font-size:11px;fill:#333}.bar{fill:#2a6}.over{fill:#d80}.refusal{fill:#c44}\
.quota{stroke:#c00;stroke-dasharray:4 3;stroke-width:1.5}";

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "Mei", "Jun", "Jul", "Agu", "Sep", "Okt", "Nov", "Des"];

const LONG_MONTHS: [&str; 12] = [
    "Januari",
    "Februari",
    "Maret",
    "April",
    "Mei",
    "Juni",
    "Juli",
    "Agustus",
    "September",
    "Oktober",
    "November",
    "Desember",
];

fn long_date(day: NaiveDate) -> String {
    format!("{} {} {}", day.day(), LONG_MONTHS[day.month0() as usize], day.year())
}

/// Text for HTML content and attribute values: names come from admins and clients.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const BAR_WIDTH: usize = 4;
const PLOT_HEIGHT: f64 = 150.0;
const LEFT: usize = 40;

/// One bar per day of the semester; with a quota, a dashed line at the quota and bars that reach it in orange.
fn day_chart(page: &mut String, values: &[(NaiveDate, u64)], quota: Option<u64>) {
    let top = values.iter().map(|(_, n)| *n).chain(quota).max().unwrap_or(0).max(1);
    let y = |n: u64| 10.0 + PLOT_HEIGHT - n as f64 * PLOT_HEIGHT / top as f64;
    let width = LEFT + values.len() * BAR_WIDTH + 10;
    let _ = writeln!(
        page,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"190\" viewBox=\"0 0 {width} 190\" \
         role=\"img\">"
    );
    let _ = writeln!(
        page,
        "<text x=\"{}\" y=\"14\" text-anchor=\"end\">{top}</text><text x=\"{}\" y=\"164\" text-anchor=\"end\">0</text>\
         <line x1=\"{LEFT}\" y1=\"160.5\" x2=\"{}\" y2=\"160.5\" stroke=\"#999\"/>",
        LEFT - 4,
        LEFT - 4,
        width - 10
    );
    for (i, (day, n)) in values.iter().enumerate() {
        let x = LEFT + i * BAR_WIDTH;
        if day.day() == 1 {
            let _ = writeln!(
                page,
                "<line x1=\"{x}\" y1=\"160\" x2=\"{x}\" y2=\"166\" stroke=\"#999\"/><text x=\"{x}\" y=\"180\">{}</text>",
                MONTHS[day.month0() as usize]
            );
        }
        if *n > 0 {
            let class = if quota.is_some_and(|q| *n >= q) { "over" } else { "bar" };
            let _ = writeln!(
                page,
                "<rect class=\"{class}\" x=\"{x}\" y=\"{:.1}\" width=\"{}\" height=\"{:.1}\"><title>{day}: {n}</title></rect>",
                y(*n),
                BAR_WIDTH - 1,
                160.0 - y(*n)
            );
        }
    }
    if let Some(q) = quota {
        let _ = writeln!(
            page,
            "<line class=\"quota\" x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">kuota (quota) {q}</text>",
            y(q),
            width - 10,
            y(q),
            width - 10,
            y(q) - 3.0
        );
    }
    page.push_str("</svg>\n");
}

/// Horizontal bars, one per outcome, labelled with the code's description where it has one.
fn refusal_chart(page: &mut String, refusals: &BTreeMap<Refusal, u64>) {
    if refusals.is_empty() {
        page.push_str("<p>Tidak ada (none).</p>\n");
        return;
    }
    const LABEL: usize = 440;
    const BAR: f64 = 300.0;
    let top = refusals.values().copied().max().unwrap_or(1).max(1);
    let height = refusals.len() * 22 + 6;
    let width = LABEL + BAR as usize + 60;
    let _ = writeln!(
        page,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\">"
    );
    for (i, (refusal, n)) in refusals.iter().enumerate() {
        let y = 4 + i * 22;
        let label = match refusal.description() {
            Some(description) => format!("{} {description}", refusal.label()),
            None => refusal.label(),
        };
        let length = (*n as f64 * BAR / top as f64).max(1.0);
        let _ = writeln!(
            page,
            "<text x=\"0\" y=\"{}\">{}</text><rect class=\"refusal\" x=\"{LABEL}\" y=\"{y}\" width=\"{length:.1}\" \
             height=\"16\"><title>{}: {n}</title></rect><text x=\"{:.1}\" y=\"{}\">{n}</text>",
            y + 12,
            escape(&label),
            escape(&label),
            LABEL as f64 + length + 4.0,
            y + 12
        );
    }
    page.push_str("</svg>\n");
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use chrono_tz::Asia::Jakarta;

    use super::*;
    use crate::audit::record::{Actor, AdminRecord, Commitment, RequestRecord, Source};
    use crate::element::ElementSet;
    use serde_json::json;

    fn semester(text: &str) -> Semester {
        text.parse().unwrap()
    }

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn semesters_parse_strictly() {
        type Parsed = Result<(i32, u8), SemesterError>;
        let table: &[(&str, Parsed)] = &[
            ("2026-1", Ok((2026, 1))),
            ("2026-2", Ok((2026, 2))),
            (" 2027-1\n", Ok((2027, 1))),
            ("0001-2", Ok((1, 2))),
            ("2026-3", Err(SemesterError::Half("3".into()))),
            ("2026-0", Err(SemesterError::Half("0".into()))),
            ("2026-02", Err(SemesterError::Half("02".into()))),
            ("2026-", Err(SemesterError::Half("".into()))),
            ("2026-2-1", Err(SemesterError::Half("2-1".into()))),
            ("2026", Err(SemesterError::Format("2026".into()))),
            ("26-2", Err(SemesterError::Format("26-2".into()))),
            ("+026-2", Err(SemesterError::Format("+026-2".into()))),
            ("-2026-2", Err(SemesterError::Format("-2026-2".into()))),
            ("2026/2", Err(SemesterError::Format("2026/2".into()))),
            ("", Err(SemesterError::Format("".into()))),
            ("0000-1", Err(SemesterError::Year(0))),
        ];
        for (text, want) in table {
            let got = text.parse::<Semester>().map(|s| (s.year(), s.half()));
            assert_eq!(&got, want, "{text:?}");
        }
        assert_eq!(Semester::new(2026, 3), Err(SemesterError::Half("3".into())));
        assert_eq!(Semester::new(10_000, 1), Err(SemesterError::Year(10_000)));
        assert_eq!(semester("2026-2").to_string(), "2026-2");
        assert_eq!(semester("0987-1").to_string(), "987-1");
        assert_eq!(semester("0987-1"), Semester::new(987, 1).unwrap());
        let message = "2026-3".parse::<Semester>().unwrap_err().to_string();
        assert!(message.contains("January to June") && message.contains("July to December"), "{message}");
    }

    #[test]
    fn semester_bounds() {
        let table = [
            ("2026-1", "2026-01-01", "2026-06-30", 181),
            ("2026-2", "2026-07-01", "2026-12-31", 184),
            ("2028-1", "2028-01-01", "2028-06-30", 182),
        ];
        for (text, first, last, days) in table {
            let s = semester(text);
            assert_eq!((s.first_day(), s.last_day()), (date(first), date(last)), "{text}");
            assert_eq!(s.days().count(), days, "{text}");
            assert!(s.contains(date(first)) && s.contains(date(last)));
            assert!(!s.contains(date(first).pred_opt().unwrap()) && !s.contains(date(last).succ_opt().unwrap()));
        }
        assert_eq!(semester("2026-2").months().collect::<Vec<_>>(), [7, 8, 9, 10, 11, 12]);
    }

    fn request(at: &str, institution: &str, user: Option<&str>, method: Option<Method>) -> AuditRecord {
        AuditRecord::new(
            0,
            at.parse::<DateTime<Utc>>().unwrap(),
            Entry::Request(RequestRecord {
                request_id: "r".into(),
                institution: Some(institution.into()),
                user: user.map(Into::into),
                device: "d".into(),
                tunnel_source: "10.8.0.2".into(),
                ip_claim: None,
                route: "/".into(),
                method,
                elements_requested: ElementSet::empty(),
                elements_returned: ElementSet::empty(),
                outcome: Outcome::Data,
                source: Source::Upstream,
                quota_charged: true,
                latency_us: 1,
                bytes_in: 1,
                bytes_out: 1,
                subjects: Vec::new(),
            }),
        )
    }

    fn with(mut record: AuditRecord, change: impl FnOnce(&mut RequestRecord)) -> AuditRecord {
        if let Entry::Request(r) = &mut record.entry {
            change(r);
        }
        record
    }

    fn files(report: &Report) -> BTreeMap<&'static str, String> {
        report.csv_files().into_iter().collect()
    }

    #[test]
    fn the_semester_is_counted_in_local_days() {
        let records = [
            // 2026-06-30 23:59:59 in Jakarta: the first semester.
            request("2026-06-30T16:59:59Z", "A", None, None),
            // Midnight starting 2 July, midnight starting 1 July, and the last instant of 31 December in Jakarta.
            request("2026-07-01T17:00:00Z", "A", None, None),
            request("2026-06-30T17:00:00Z", "A", None, None),
            request("2026-12-31T16:59:59.999999999Z", "A", None, None),
            // 23:30 UTC on 31 December is 06:30 on 1 January in Jakarta: the next semester.
            request("2026-12-31T23:30:00Z", "A", None, None),
        ];
        let report = Report::build(semester("2026-2"), Jakarta, &BTreeMap::new(), None, records.clone());
        assert_eq!(
            files(&report)["quota_by_day.csv"],
            "institution,day,charged,daily_quota\r\nA,2026-07-01,1,\r\nA,2026-07-02,1,\r\nA,2026-12-31,1,\r\n"
        );
        let next = Report::build(semester("2027-1"), Jakarta, &BTreeMap::new(), None, records.clone());
        assert_eq!(files(&next)["quota_by_day.csv"], "institution,day,charged,daily_quota\r\nA,2027-01-01,1,\r\n");
        let first = Report::build(semester("2026-1"), Jakarta, &BTreeMap::new(), None, records.clone());
        assert_eq!(files(&first)["quota_by_day.csv"], "institution,day,charged,daily_quota\r\nA,2026-06-30,1,\r\n");
        // In UTC the 23:30 record is still 31 December.
        let utc = Report::build(semester("2026-2"), Tz::UTC, &BTreeMap::new(), None, records);
        assert!(files(&utc)["quota_by_day.csv"].ends_with("A,2026-12-31,2,\r\n"));
    }

    fn sample() -> Vec<AuditRecord> {
        let person = |n: u8| Commitment([n; 32]);
        vec![
            with(request("2026-07-01T01:00:00Z", "DINKES", Some("budi"), Some(Method::CallNik)), |r| {
                r.subjects = vec![person(1)];
            }),
            with(request("2026-07-01T02:00:00Z", "DINKES", Some("budi"), Some(Method::CallNik)), |r| {
                r.subjects = vec![person(1), person(2)];
            }),
            with(request("2026-07-01T03:00:00Z", "DINKES", Some("ani"), Some(Method::CallNikGetKk)), |r| {
                r.outcome = Outcome::Code(ResponseCode::NotFound);
                r.subjects = vec![person(3)];
            }),
            with(request("2026-07-01T04:00:00Z", "DINKES", Some("ani"), Some(Method::CallNik)), |r| {
                r.outcome = Outcome::Code(ResponseCode::QuotaExhausted);
                r.quota_charged = false;
                r.subjects = vec![person(4)];
            }),
            with(request("2026-07-02T04:00:00Z", "DINKES", None, None), |r| {
                r.outcome = Outcome::Http(401);
                r.quota_charged = false;
            }),
            with(request("2026-07-02T05:00:00Z", "DINKES", Some("citra"), Some(Method::CallAgregat)), |r| {
                r.outcome = Outcome::Http(502);
                r.source = Source::Gateway;
            }),
            with(request("2026-08-17T05:00:00Z", "BPJS", Some("dewi"), Some(Method::CallVerifyByElemen)), |r| {
                r.subjects = vec![person(1)];
            }),
            // Not counted: no institution, admin records, other semesters.
            with(request("2026-08-17T05:00:00Z", "BPJS", Some("dewi"), None), |r| r.institution = None),
            AuditRecord::new(
                9,
                "2026-08-17T05:00:00Z".parse().unwrap(),
                Entry::Admin(
                    AdminRecord::new(Actor::Cli { uid: 1, pid: None }, "quota.set".into(), "BPJS".into(), json!(5))
                        .unwrap(),
                ),
            ),
            request("2027-01-01T05:00:00Z", "BPJS", Some("dewi"), None),
        ]
    }

    fn quotas() -> BTreeMap<String, u64> {
        [("DINKES".to_owned(), 3), ("DISDIK".to_owned(), 50)].into_iter().collect()
    }

    #[test]
    fn figures_of_a_small_log() {
        let report = Report::build(semester("2026-2"), Jakarta, &quotas(), None, sample());
        let want: BTreeMap<&str, String> = [
            (
                "summary.csv",
                "institution,requests,data_answers,refusals,quota_charged,distinct_persons,daily_quota\r\n\
                 BPJS,1,1,0,1,1,\r\nDINKES,6,2,4,4,4,3\r\nDISDIK,0,0,0,0,0,50\r\n",
            ),
            (
                "requests_by_day_method.csv",
                "institution,day,method,requests\r\nBPJS,2026-08-17,CALL_VERIFY_BY_ELEMEN,1\r\n\
                 DINKES,2026-07-01,CALL_NIK,3\r\nDINKES,2026-07-01,CALL_NIK_GET_KK,1\r\n\
                 DINKES,2026-07-02,-,1\r\nDINKES,2026-07-02,CALL_AGREGAT,1\r\n",
            ),
            (
                "refusals_by_code.csv",
                "institution,outcome,count\r\nDINKES,05,1\r\nDINKES,13,1\r\nDINKES,http 401,1\r\nDINKES,http 502,1\r\n",
            ),
            (
                "quota_by_day.csv",
                "institution,day,charged,daily_quota\r\nBPJS,2026-08-17,1,\r\nDINKES,2026-07-01,3,3\r\n\
                 DINKES,2026-07-02,1,3\r\n",
            ),
            (
                "top_users.csv",
                "institution,rank,user,requests\r\nBPJS,1,dewi,1\r\nDINKES,1,ani,2\r\nDINKES,2,budi,2\r\n\
                 DINKES,3,citra,1\r\n",
            ),
        ]
        .into_iter()
        .map(|(name, text)| (name, text.to_owned()))
        .collect();
        assert_eq!(files(&report), want);
        assert_eq!(
            report.csv_files().iter().map(|(name, _)| *name).collect::<Vec<_>>(),
            ["summary.csv", "requests_by_day_method.csv", "refusals_by_code.csv", "quota_by_day.csv", "top_users.csv"]
        );

        let only = Report::build(semester("2026-2"), Jakarta, &quotas(), Some("BPJS"), sample());
        assert_eq!(files(&only)["summary.csv"].lines().skip(1).collect::<Vec<_>>(), ["BPJS,1,1,0,1,1,"]);
        let absent = Report::build(semester("2026-2"), Jakarta, &quotas(), Some("NONE"), sample());
        assert_eq!(files(&absent)["summary.csv"].lines().skip(1).collect::<Vec<_>>(), ["NONE,0,0,0,0,0,"]);

        let html = report.html();
        assert!(html.contains("05 Kuota Akses Hari Ini Telah Habis"), "{html}");
        assert!(html.contains(">http 502<"));
        assert!(html.contains("Laporan Monev Semester 2026-2 (1 Juli 2026 – 31 Desember 2026)"), "{html}");
        assert!(html.contains("Asia/Jakarta") && html.contains("records counted): 7, seq 0–0"));
    }

    #[test]
    fn top_users_are_ten_at_most_ties_by_name() {
        let mut records = Vec::new();
        for (i, name) in ["k", "j", "i", "h", "g", "f", "e", "d", "c", "b", "a", "z"].into_iter().enumerate() {
            let n = if name == "z" { 3 } else { 1 + i % 2 };
            for _ in 0..n {
                records.push(request("2026-07-01T01:00:00Z", "X", Some(name), None));
            }
        }
        let report = Report::build(semester("2026-2"), Jakarta, &BTreeMap::new(), None, records);
        let users: Vec<String> = files(&report)["top_users.csv"].lines().skip(1).map(str::to_owned).collect();
        assert_eq!(
            users,
            [
                "X,1,z,3", "X,2,b,2", "X,3,d,2", "X,4,f,2", "X,5,h,2", "X,6,j,2", "X,7,a,1", "X,8,c,1", "X,9,e,1",
                "X,10,g,1"
            ]
        );
    }

    #[test]
    fn hostile_names_are_escaped() {
        let evil = "<script>alert('x')</script> & \"quoted\"";
        let records = [request("2026-07-01T01:00:00Z", evil, Some("<img src=x onerror=alert(1)>"), None)];
        let quotas = [(evil.to_owned(), 1)].into_iter().collect();
        let html = Report::build(semester("2026-2"), Jakarta, &quotas, None, records).html();
        assert!(!html.contains("<script") && !html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quoted&quot;"), "{html}");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(!html.contains("<link") && !html.contains("<style>@import"));

        let csv = Report::build(
            semester("2026-2"),
            Jakarta,
            &BTreeMap::new(),
            None,
            [request("2026-07-01T01:00:00Z", "=1+1,x", None, None)],
        );
        assert!(files(&csv)["summary.csv"].ends_with("\"'=1+1,x\",1,1,0,1,0,\r\n"));
    }

    #[test]
    fn output_does_not_depend_on_record_order() {
        let forward = Report::build(semester("2026-2"), Jakarta, &quotas(), None, sample());
        let mut reversed_records = sample();
        reversed_records.reverse();
        let reversed = Report::build(semester("2026-2"), Jakarta, &quotas(), None, reversed_records);
        assert_eq!(forward.csv_files(), reversed.csv_files());
        assert_eq!(forward.html(), reversed.html());
        assert_eq!(forward.html(), forward.html());
    }

    #[test]
    fn an_empty_log_still_renders() {
        let report = Report::build(semester("2026-1"), Jakarta, &BTreeMap::new(), None, []);
        assert!(report.html().contains("no institutions"));
        assert!(report.csv_files().iter().all(|(_, text)| text.lines().count() == 1));
    }
}
