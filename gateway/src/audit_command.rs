//! `simpul-gateway audit …`: verifying the log, proofs for auditors, search, a person's trail, export and the
//! semester report. The work is the ledger's (`simpul_ledger::queries`), done by the running gateway and asked for
//! over the management socket; `verify` also runs on a stopped gateway's database, and `check-proof` and
//! `check-consistency` need nothing but the file (and, to mean something, the gateway's public key).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Subcommand, ValueEnum};
use serde_json::{json, Value};
use simpul_core::audit::checkpoint::Verifier;
use simpul_core::audit::export;
use simpul_core::audit::proof::{ConsistencyProof, InclusionProof, ProofCheckError};
use simpul_core::audit::record::AuditRecord;
use simpul_core::audit::report::Semester;
use simpul_gateway::admin::audit::{
    AuditCheckpoint, AuditConsistency, AuditKey, AuditProve, AuditRecords, AuditReport, AuditRetain, AuditSubject,
    AuditVerify,
};
use simpul_gateway::cli::{self, exit};
use simpul_gateway::config::GatewayConfig;
use simpul_gateway::control::Client;
use simpul_gateway::state_dir::DATABASE;
use simpul_ledger::queries::{self, Filter};
use simpul_ledger::Files;

use crate::{call, fail, out, print_json};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    #[command(flatten)]
    Gateway(GatewayAudit),
    /// Recompute the whole tree, check every checkpoint's signature and that each extends the one before; exit 6
    /// naming the first problem.
    Verify {
        /// A checkpoint note kept outside the gateway (`audit checkpoint`): the log must still extend it.
        #[arg(long)]
        from_checkpoint: Option<PathBuf>,
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
    /// Check a proof file offline: the record, its inclusion, the checkpoint's signature; exit 6 if it fails.
    CheckProof {
        /// The proof file (`audit prove`, or one of `audit subject --out`).
        file: PathBuf,
        /// The gateway's public key (`audit key`), pinned; without it the checkpoint's signature is not checked and
        /// the check only shows that the file is self-consistent.
        #[arg(long)]
        key: Option<String>,
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
    /// Check a consistency proof file offline: both checkpoints' signatures, and that the newer log extends the
    /// older; exit 6 if it does not.
    CheckConsistency {
        /// The consistency proof file (`audit consistency`).
        file: PathBuf,
        /// The gateway's public key (`audit key`), pinned; without it the signatures are not checked.
        #[arg(long)]
        key: Option<String>,
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
}

/// The audit commands the running gateway answers.
#[derive(Debug, Subcommand)]
pub enum GatewayAudit {
    /// The log's origin and the public key that signs its checkpoints (what auditors pin).
    Key {
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
    /// The newest signed checkpoint, for an auditor to keep and later check the log against.
    Checkpoint {
        /// Write the note here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print JSON: `{"size", "checkpoint"}` (the note), also when it goes to --out.
        #[arg(long)]
        json: bool,
    },
    /// Write record SEQ with its inclusion proof and a signed checkpoint (C2SP tlog-proof) to a file an auditor
    /// checks offline.
    Prove {
        /// The record's sequence number (`audit search` shows it).
        seq: u64,
        /// The proof file to write.
        #[arg(long)]
        out: PathBuf,
        /// Print JSON: `{"seq", "out"}` once the file is written.
        #[arg(long)]
        json: bool,
    },
    /// Prove that the log now extends a checkpoint kept earlier (`audit checkpoint`): a file with both checkpoints
    /// and the consistency proof between them, which `check-consistency` checks offline.
    Consistency {
        /// The checkpoint note kept earlier.
        #[arg(long)]
        from_checkpoint: PathBuf,
        /// Write the proof here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print JSON: `{"old_size", "new_size", "proof"}`.
        #[arg(long)]
        json: bool,
    },
    /// Records by user, institution and time: requests, and the admin changes done to them (an institution's own
    /// changes, and its users' and devices').
    Search {
        /// Only this user's requests and the changes to the user and the user's devices.
        #[arg(long)]
        user: Option<String>,
        /// Only this institution's requests and the changes to it, its users and their devices.
        #[arg(long)]
        institution: Option<String>,
        /// RFC 3339 time, or a date (from its local midnight).
        #[arg(long)]
        since: Option<String>,
        /// RFC 3339 time, or a date (up to its local midnight: the date is not included).
        #[arg(long)]
        until: Option<String>,
        /// At most this many records (the oldest first).
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
    /// Every access to one person's data, with proofs (UU PDP art. 32), found through the subject index.
    Subject {
        /// The person's NIK (16 digits; dots and spaces allowed).
        #[arg(long)]
        nik: String,
        /// Write one proof file per record and a summary here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
    /// Stream records as JSON lines (each exactly the bytes its leaf hashes) or CSV.
    Export {
        /// JSON lines or CSV.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// RFC 3339 time, or a date (from its local midnight).
        #[arg(long)]
        since: Option<String>,
        /// RFC 3339 time, or a date (up to its local midnight: the date is not included).
        #[arg(long)]
        until: Option<String>,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// With --out, print JSON `{"records", "out"}` when done (without --out the export itself is standard
        /// output; --format jsonl is JSON).
        #[arg(long)]
        json: bool,
    },
    /// The semester monitoring (monev) report: CSV files and one HTML page per run.
    Report {
        /// `2026-1` (January–June) or `2026-2` (July–December).
        #[arg(long)]
        semester: Semester,
        /// Only this institution.
        #[arg(long)]
        institution: Option<String>,
        /// The directory to write the files into.
        #[arg(long)]
        out: PathBuf,
        /// Print JSON: `{"semester", "out", "files"}` (the names written).
        #[arg(long)]
        json: bool,
    },
    /// Destroy personal data past `[audit] personal_data_days` now (the gateway also does it every hour).
    Retain {
        /// Print JSON instead of text (errors too: see the end of `--help`).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// One record a line, exactly the bytes its leaf hashes.
    Jsonl,
    /// One record a row, for spreadsheets.
    Csv,
}

/// `--since`/`--until`: an instant, or a date meaning its midnight in the gateway's zone.
fn instant(text: &str, zone: chrono_tz::Tz) -> Result<DateTime<Utc>, u8> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.to_utc());
    }
    let date: NaiveDate =
        text.parse().map_err(|_| fail(exit::INVALID, format!("{text:?} is neither a time nor a date")))?;
    let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    let local =
        midnight.and_local_timezone(zone).earliest().ok_or_else(|| fail(exit::INVALID, "no such local time"))?;
    Ok(local.to_utc())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), u8> {
    std::fs::write(path, bytes).map_err(|e| fail(exit::INTERNAL, format!("{}: {e}", path.display())))
}

/// Progress on standard error, only when a person watches it.
struct Progress {
    shown: bool,
}

impl Progress {
    fn new() -> Self {
        Progress { shown: std::io::stderr().is_terminal() }
    }

    fn show(&self, done: u64, total: u64, what: &str) {
        if self.shown {
            let percent = (done * 100).checked_div(total).unwrap_or(100);
            eprint!("\r{what}: {done} / {total} records looked at ({percent}%)");
        }
    }

    fn finish(&self) {
        if self.shown {
            eprintln!();
        }
    }
}

/// Every record `filter` selects, page by page, handed to `each` as canonical text.
async fn each_record(
    client: &mut Client,
    filter: &Filter,
    what: &str,
    mut each: impl FnMut(&str) -> Result<(), u8>,
) -> Result<u64, u8> {
    let progress = Progress::new();
    let (mut from, mut count) = (0, 0);
    loop {
        let page = call(client, AuditRecords { from, limit: 5_000, filter: filter.clone() }).await?;
        for record in &page.records {
            each(record)?;
            count += 1;
        }
        progress.show(page.next.unwrap_or(page.size), page.size, what);
        match page.next {
            Some(next) => from = next,
            None => break,
        }
    }
    progress.finish();
    Ok(count)
}

fn filter(zone: chrono_tz::Tz, since: Option<&str>, until: Option<&str>) -> Result<Filter, u8> {
    Ok(Filter {
        since: since.map(|t| instant(t, zone)).transpose()?,
        until: until.map(|t| instant(t, zone)).transpose()?,
        ..Filter::default()
    })
}

/// The audit commands that need the running gateway.
pub async fn audit(client: &mut Client, config: &GatewayConfig, command: GatewayAudit) -> Result<u8, u8> {
    let zone = config.timezone.0;
    match command {
        GatewayAudit::Key { json } => {
            let key = call(client, AuditKey {}).await?;
            if json {
                print_json(&key);
            } else {
                out(cli::record_lines(&serde_json::to_value(&key).expect("JSON")));
            }
        }
        GatewayAudit::Checkpoint { out: path, json } => {
            let signed = call(client, AuditCheckpoint {}).await?;
            if let Some(path) = &path {
                write_file(path, signed.checkpoint.as_bytes())?;
                eprintln!("wrote the checkpoint of {} records to {}", signed.size, path.display());
            }
            if json {
                print_json(&signed);
            } else if path.is_none() {
                out(&signed.checkpoint);
            }
        }
        GatewayAudit::Prove { seq, out: path, json } => {
            let answer = call(client, AuditProve { seq }).await?;
            write_file(&path, answer.proof.as_bytes())?;
            eprintln!("wrote the proof of record {seq} to {}", path.display());
            if json {
                print_json(&json!({ "seq": seq, "out": path }));
            }
        }
        GatewayAudit::Consistency { from_checkpoint, out: path, json } => {
            let old = std::fs::read_to_string(&from_checkpoint)
                .map_err(|e| fail(exit::INVALID, format!("{}: {e}", from_checkpoint.display())))?;
            let answer = call(client, AuditConsistency { checkpoint: old }).await?;
            if let Some(path) = &path {
                write_file(path, answer.proof.as_bytes())?;
                eprintln!(
                    "wrote the proof that the log of {} records extends the one of {} to {}",
                    answer.new_size,
                    answer.old_size,
                    path.display()
                );
            }
            if json {
                print_json(&answer);
            } else if path.is_none() {
                out(&answer.proof);
            }
        }
        GatewayAudit::Search { user, institution, since, until, limit, json } => {
            let mut filter = filter(zone, since.as_deref(), until.as_deref())?;
            (filter.user, filter.institution) = (user, institution);
            let mut rows = Vec::new();
            each_record(client, &filter, "searching", |text| {
                if rows.len() < limit {
                    rows.push(AuditRecord::from_canonical(text.as_bytes()).map_err(|e| fail(exit::INTERNAL, e))?);
                }
                Ok(())
            })
            .await?;
            if json {
                print_json(&Value::Array(rows.iter().map(record_json).collect()));
            } else {
                out(cli::audit_lines(&rows));
            }
        }
        GatewayAudit::Subject { nik, out: dir, json } => {
            let texts = call(client, AuditSubject { nik: nik.clone() }).await?.proofs;
            let proofs = texts
                .iter()
                .map(|text| InclusionProof::parse(text).map(|p| (p, text)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| fail(exit::INTERNAL, e))?;
            let records = proofs
                .iter()
                .map(|(p, _)| AuditRecord::from_canonical(&p.record))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| fail(exit::INTERNAL, e))?;
            let trail = cli::audit_lines(&records);
            if let Some(dir) = &dir {
                std::fs::create_dir_all(dir).map_err(|e| fail(exit::INTERNAL, format!("{}: {e}", dir.display())))?;
                for (proof, text) in &proofs {
                    write_file(&dir.join(format!("record-{}.tlog-proof", proof.index)), text.as_bytes())?;
                }
                write_file(&dir.join("trail.txt"), trail.as_bytes())?;
                eprintln!("wrote {} proofs and trail.txt to {}", proofs.len(), dir.display());
            }
            if proofs.is_empty() {
                return Err(fail(
                    exit::NOT_FOUND,
                    "no record in the log leads to this NIK (never seen, or past retention)",
                ));
            }
            if json {
                let records: Vec<Value> = records.iter().map(record_json).collect();
                print_json(&json!({ "records": records, "proofs": texts }));
            } else {
                out(trail);
            }
        }
        GatewayAudit::Export { format, since, until, out: path, json } => {
            let filter = filter(zone, since.as_deref(), until.as_deref())?;
            let mut sink: Box<dyn Write> = match &path {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .map_err(|e| fail(exit::INTERNAL, format!("{}: {e}", path.display())))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let write = |sink: &mut Box<dyn Write>, text: &str| {
                sink.write_all(text.as_bytes()).map_err(|e| fail(exit::INTERNAL, format!("writing the export: {e}")))
            };
            if format == ExportFormat::Csv {
                write(&mut sink, &export::csv_header())?;
            }
            let count = each_record(client, &filter, "exporting", |text| match format {
                ExportFormat::Jsonl => write(&mut sink, &format!("{text}\n")),
                ExportFormat::Csv => {
                    let record = AuditRecord::from_canonical(text.as_bytes()).map_err(|e| fail(exit::INTERNAL, e))?;
                    write(&mut sink, &export::csv_row(&record))
                }
            })
            .await?;
            sink.flush().map_err(|e| fail(exit::INTERNAL, format!("writing the export: {e}")))?;
            if let Some(path) = path {
                eprintln!("exported {count} records to {}", path.display());
                if json {
                    print_json(&json!({ "records": count, "out": path }));
                }
            }
        }
        GatewayAudit::Report { semester, institution, out: dir, json } => {
            let answer = call(client, AuditReport { semester: semester.to_string(), institution }).await?;
            std::fs::create_dir_all(&dir).map_err(|e| fail(exit::INTERNAL, format!("{}: {e}", dir.display())))?;
            for (name, text) in &answer.files {
                write_file(&dir.join(name), text.as_bytes())?;
            }
            eprintln!("wrote the {semester} report to {}", dir.display());
            if json {
                let files: Vec<&String> = answer.files.keys().collect();
                print_json(&json!({ "semester": answer.semester, "out": dir, "files": files }));
            }
        }
        GatewayAudit::Retain { json } => {
            let done = call(client, AuditRetain {}).await?;
            if json {
                print_json(&done);
            } else {
                out(format!(
                    "destroyed the personal data of {} people last seen before {}\n",
                    done.destroyed, done.last_used_before
                ));
            }
        }
    }
    Ok(exit::OK)
}

/// `audit verify`, by the running gateway or, when none answers, on its database directly.
pub async fn verify(
    client: Option<&mut Client>,
    config: &GatewayConfig,
    exported: Option<PathBuf>,
    json: bool,
) -> Result<u8, u8> {
    let checkpoint = match &exported {
        Some(path) => {
            Some(std::fs::read_to_string(path).map_err(|e| fail(exit::INVALID, format!("{}: {e}", path.display())))?)
        }
        None => None,
    };
    let verification = match client {
        Some(client) => call(client, AuditVerify { checkpoint }).await?,
        None => {
            let state = config.state_dir();
            eprintln!("simpul-gateway: the gateway does not answer; verifying its database in {}", state.display());
            let files = Files::new(&state);
            queries::verify_stopped(
                &files,
                &state.join(DATABASE),
                config.audit.origin.as_deref(),
                checkpoint.as_deref(),
            )
            .map_err(|e| fail(exit::UNREACHABLE, e))?
        }
    };
    if json {
        // A failed verification is an answer and an error at once: the findings, and `error` and `exit` as every
        // JSON error has them.
        let failed = verification.problem.as_ref().map(|problem| json!({ "error": problem, "exit": exit::BAD }));
        let mut value = serde_json::to_value(&verification).expect("JSON");
        if let (Some(Value::Object(failed)), Some(fields)) = (failed, value.as_object_mut()) {
            fields.extend(failed);
        }
        print_json(&value);
    } else {
        match &verification.problem {
            None => {
                let acknowledged = match verification.acknowledged {
                    Some(n) => format!(" (at least the {n} acknowledged)"),
                    None => String::new(),
                };
                out(format!(
                    "ok: {} records{acknowledged}, {} signed checkpoints, each extending the one before\n",
                    verification.records, verification.checkpoints
                ));
                if let Some(size) = verification.consistent_with {
                    out(format!("ok: the log extends the exported checkpoint of {size} records\n"));
                }
            }
            Some(problem) => eprintln!("simpul-gateway: audit log FAILED verification: {problem}"),
        }
    }
    Ok(if verification.problem.is_some() { exit::BAD } else { exit::OK })
}

/// A record as JSON for `--json` output: its canonical text parsed, so the fields are the log's own.
fn record_json(record: &AuditRecord) -> Value {
    serde_json::from_slice(&record.canonical()).expect("canonical records are JSON")
}

pub fn check_proof(file: &Path, key: Option<&str>, json: bool) -> Result<u8, u8> {
    check_file(file, key, json, "proof", |text, pinned| {
        let checked = InclusionProof::parse(text)?.check(pinned)?;
        let value = json!({
            "seq": checked.record.seq,
            "tree_size": checked.checkpoint.size,
            "origin": checked.checkpoint.origin,
        });
        let said = format!(
            "ok: record {} is in the log {} of {} records\n",
            checked.record.seq, checked.checkpoint.origin, checked.checkpoint.size
        );
        Ok((value, said))
    })
}

pub fn check_consistency(file: &Path, key: Option<&str>, json: bool) -> Result<u8, u8> {
    check_file(file, key, json, "consistency proof", |text, pinned| {
        let checked = ConsistencyProof::parse(text)?.check(pinned)?;
        let value = json!({ "old_size": checked.old.size, "new_size": checked.new.size, "origin": checked.new.origin });
        let said = format!(
            "ok: the log {} of {} records extends its checkpoint of {} records\n",
            checked.new.origin, checked.new.size, checked.old.size
        );
        Ok((value, said))
    })
}

/// Checks a proof file offline with `check`, which gives what the check established (for `--json` and in words);
/// exit 6 when it fails.
fn check_file(
    file: &Path,
    key: Option<&str>,
    json: bool,
    what: &str,
    check: impl FnOnce(&str, Option<&Verifier>) -> Result<(Value, String), ProofCheckError>,
) -> Result<u8, u8> {
    let text = std::fs::read_to_string(file).map_err(|e| fail(exit::INVALID, format!("{}: {e}", file.display())))?;
    let pinned = key.map(Verifier::from_vkey).transpose().map_err(|e| fail(exit::INVALID, format!("--key: {e}")))?;
    let result = check(&text, pinned.as_ref());
    match (&result, json) {
        (Ok((value, _)), true) => {
            let mut value = value.clone();
            value["valid"] = true.into();
            value["key_pinned"] = pinned.is_some().into();
            print_json(&value);
        }
        (Err(e), true) => print_json(&json!({ "valid": false, "error": e.to_string(), "exit": exit::BAD })),
        (Ok((_, said)), false) => out(said.clone()),
        (Err(e), false) => eprintln!("simpul-gateway: the {what} FAILED: {e}"),
    }
    if result.is_ok() && pinned.is_none() {
        eprintln!(
            "simpul-gateway: no --key: the Merkle proof checks, but no signature was checked; pass --key with the \
             gateway's key (`simpul-gateway audit key`) to know the gateway signed it"
        );
    }
    Ok(if result.is_ok() { exit::OK } else { exit::BAD })
}
