//! `simpul-gateway audit …`: verifying the log, proofs for auditors, search, a person's trail, export and the
//! semester report. Everything but `check-proof` asks the running gateway over the management socket;
//! `check-proof` needs nothing but the file (and, to mean something, the gateway's public key).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Subcommand, ValueEnum};
use serde_json::{json, Value};
use simpul_core::audit::checkpoint::Verifier;
use simpul_core::audit::export;
use simpul_core::audit::proof::ProofBundle;
use simpul_core::audit::record::AuditRecord;
use simpul_core::audit::report::{Report, Semester};
use simpul_gateway::audit::queries::{self, Filter, Page, Verification};
use simpul_gateway::cli::{self, exit};
use simpul_gateway::config::GatewayConfig;
use simpul_gateway::control::{Client, Request};

use crate::{call, fail, out, print_json};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The log's origin and the public key that signs its checkpoints (what auditors pin).
    Key {
        #[arg(long)]
        json: bool,
    },
    /// The newest signed checkpoint, for an auditor to keep and later check the log against.
    Checkpoint {
        /// Write the note here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Recompute the whole tree, check every checkpoint's signature and that each extends the one before; exit 6
    /// naming the first problem.
    Verify {
        /// A checkpoint note kept outside the gateway (`audit checkpoint`): the log must still extend it.
        #[arg(long)]
        from_checkpoint: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Write record SEQ with its inclusion proof and a signed checkpoint to a file an auditor checks offline.
    Prove {
        seq: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a proof file offline: the record, its inclusion, the checkpoint's signature; exit 6 if it fails.
    CheckProof {
        file: PathBuf,
        /// The gateway's public key (`audit key`), pinned; without it the file's own key is used and the check only
        /// shows that the file is self-consistent.
        #[arg(long)]
        key: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Records by user, institution and time.
    Search {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        institution: Option<String>,
        /// RFC 3339 time, or a date (from its local midnight).
        #[arg(long)]
        since: Option<String>,
        /// RFC 3339 time, or a date (up to its local midnight: the date is not included).
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Every access to one person's data, with proofs (UU PDP art. 32), found through the subject index.
    Subject {
        #[arg(long)]
        nik: String,
        /// Write one proof file per record and a summary here.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Stream records as JSON lines (each exactly the bytes its leaf hashes) or CSV.
    Export {
        #[arg(long, value_enum)]
        format: ExportFormat,
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The semester monitoring (monev) report: CSV files and one HTML page per run.
    Report {
        /// `2026-1` (January–June) or `2026-2` (July–December).
        #[arg(long)]
        semester: Semester,
        #[arg(long)]
        institution: Option<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Destroy personal data past `[audit] personal_data_days` now (the gateway also does it every hour).
    Retain {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
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

/// A proof file as `check-proof` reads it: the bundle as indented JSON.
fn write_proof(path: &Path, proof: &ProofBundle) -> Result<(), u8> {
    write_file(path, format!("{}\n", serde_json::to_string_pretty(proof).expect("a bundle serializes")).as_bytes())
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
        let request = Request::AuditRecords { from, limit: 5_000, filter: filter.clone() };
        let page: Page = serde_json::from_value(call(client, &request).await?).map_err(|e| fail(exit::INTERNAL, e))?;
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

pub async fn audit(client: Option<&mut Client>, config: &GatewayConfig, command: AuditCommand) -> Result<u8, u8> {
    let zone = config.timezone.0;
    let (command, client) = match (command, client) {
        // Commands that need no running gateway.
        (AuditCommand::CheckProof { file, key, json }, _) => return check_proof(&file, key.as_deref(), json),
        (AuditCommand::Verify { from_checkpoint, json }, client) => {
            return verify(client, config, from_checkpoint, json).await;
        }
        (command, Some(client)) => (command, client),
        (_, None) => unreachable!("the caller connects for every other command"),
    };
    match command {
        AuditCommand::CheckProof { .. } | AuditCommand::Verify { .. } => unreachable!("handled above"),
        AuditCommand::Key { json } => {
            let key = call(client, &Request::AuditKey).await?;
            if json {
                print_json(&key);
            } else {
                out(cli::record_lines(&key));
            }
        }
        AuditCommand::Checkpoint { out: path } => {
            let signed = call(client, &Request::AuditCheckpoint).await?;
            let note = signed["checkpoint"].as_str().unwrap_or_default();
            match path {
                Some(path) => {
                    write_file(&path, note.as_bytes())?;
                    eprintln!("wrote the checkpoint of {} records to {}", signed["size"], path.display());
                }
                None => out(note),
            }
        }
        AuditCommand::Prove { seq, out: path } => {
            let bundle = call(client, &Request::AuditProve { seq }).await?;
            write_proof(&path, &serde_json::from_value(bundle).map_err(|e| fail(exit::INTERNAL, e))?)?;
            eprintln!("wrote the proof of record {seq} to {}", path.display());
        }
        AuditCommand::Search { user, institution, since, until, limit, json } => {
            let mut filter = filter(zone, since.as_deref(), until.as_deref())?;
            (filter.user, filter.institution) = (user, institution);
            let mut rows = Vec::new();
            each_record(client, &filter, "searching", |text| {
                if rows.len() < limit {
                    rows.push(serde_json::from_str::<Value>(text).map_err(|e| fail(exit::INTERNAL, e))?);
                }
                Ok(())
            })
            .await?;
            if json {
                print_json(&Value::Array(rows));
            } else {
                out(cli::audit_lines(&rows));
            }
        }
        AuditCommand::Subject { nik, out: dir, json } => {
            let answer = call(client, &Request::AuditSubject { nik: nik.clone() }).await?;
            let proofs: Vec<ProofBundle> =
                serde_json::from_value(answer["proofs"].clone()).map_err(|e| fail(exit::INTERNAL, e))?;
            let trail = cli::audit_lines(
                &proofs.iter().filter_map(|p| serde_json::from_str::<Value>(&p.record).ok()).collect::<Vec<_>>(),
            );
            if let Some(dir) = &dir {
                std::fs::create_dir_all(dir).map_err(|e| fail(exit::INTERNAL, format!("{}: {e}", dir.display())))?;
                for proof in &proofs {
                    write_proof(&dir.join(format!("record-{}.proof.json", proof.seq)), proof)?;
                }
                write_file(&dir.join("trail.txt"), trail.as_bytes())?;
                eprintln!("wrote {} proofs and trail.txt to {}", proofs.len(), dir.display());
            }
            if json {
                print_json(&answer);
            } else {
                out(trail);
            }
            if proofs.is_empty() {
                eprintln!("simpul-gateway: no record in the log leads to this NIK (never seen, or past retention)");
                return Ok(exit::NOT_FOUND);
            }
        }
        AuditCommand::Export { format, since, until, out: path } => {
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
            }
        }
        AuditCommand::Report { semester, institution, out: dir } => {
            let quotas = call(client, &Request::InstitutionList).await?;
            let quotas = quotas
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(|i| Some((i["id"].as_str()?.to_owned(), i["agreement"]["daily_quota"].as_u64()?)))
                .collect();
            let since = instant(&semester.first_day().to_string(), zone)?;
            let until = instant(&(semester.last_day() + chrono::Duration::days(1)).to_string(), zone)?;
            let filter = Filter { since: Some(since), until: Some(until), ..Filter::default() };
            let mut records = Vec::new();
            each_record(client, &filter, "reading the semester", |text| {
                records.push(AuditRecord::from_canonical(text.as_bytes()).map_err(|e| fail(exit::INTERNAL, e))?);
                Ok(())
            })
            .await?;
            let report = Report::build(semester, zone, &quotas, institution.as_deref(), records);
            std::fs::create_dir_all(&dir).map_err(|e| fail(exit::INTERNAL, format!("{}: {e}", dir.display())))?;
            for (name, text) in report.csv_files() {
                write_file(&dir.join(name), text.as_bytes())?;
            }
            write_file(&dir.join("report.html"), report.html().as_bytes())?;
            eprintln!("wrote the {semester} report to {}", dir.display());
        }
        AuditCommand::Retain { json } => {
            let done = call(client, &Request::AuditRetain).await?;
            if json {
                print_json(&done);
            } else {
                out(format!(
                    "destroyed the personal data of {} people last seen before {}\n",
                    done["destroyed"],
                    done["last_used_before"].as_str().unwrap_or("-")
                ));
            }
        }
    }
    Ok(exit::OK)
}

/// `audit verify`, by the running gateway or, when none answers, on its database directly.
async fn verify(
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
        Some(client) => {
            let value = call(client, &Request::AuditVerify { checkpoint }).await?;
            serde_json::from_value::<Verification>(value).map_err(|e| fail(exit::INTERNAL, e))?
        }
        None => {
            let state = config.state_dir();
            eprintln!("simpul-gateway: the gateway does not answer; verifying its database in {}", state.display());
            queries::verify_stopped(&state, config.audit.origin.as_deref(), checkpoint.as_deref())
                .map_err(|e| fail(exit::UNREACHABLE, e))?
        }
    };
    if json {
        print_json(&serde_json::to_value(&verification).expect("JSON"));
    } else {
        match &verification.problem {
            None => {
                out(format!(
                    "ok: {} records, {} signed checkpoints, each extending the one before\n",
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

fn check_proof(file: &Path, key: Option<&str>, json: bool) -> Result<u8, u8> {
    let text = std::fs::read_to_string(file).map_err(|e| fail(exit::INVALID, format!("{}: {e}", file.display())))?;
    let bundle: ProofBundle = serde_json::from_str(&text)
        .map_err(|e| fail(exit::INVALID, format!("{}: not a proof file: {e}", file.display())))?;
    let pinned = key.map(Verifier::from_vkey).transpose().map_err(|e| fail(exit::INVALID, format!("--key: {e}")))?;
    let result = bundle.check(pinned.as_ref());
    let value = match &result {
        Ok(checked) => json!({
            "valid": true,
            "seq": checked.record.seq,
            "tree_size": checked.checkpoint.size,
            "origin": checked.checkpoint.origin,
            "key_pinned": checked.key_pinned,
        }),
        Err(e) => json!({ "valid": false, "error": e.to_string() }),
    };
    if json {
        print_json(&value);
    } else {
        match &result {
            Ok(checked) => {
                out(format!(
                    "ok: record {} is in the log {} of {} records, signed by {}\n",
                    checked.record.seq, checked.checkpoint.origin, checked.checkpoint.size, bundle.vkey
                ));
                if !checked.key_pinned {
                    eprintln!(
                        "simpul-gateway: checked against the key inside the file only; pass --key with the gateway's \
                         key (`simpul-gateway audit key`) to know the gateway signed it"
                    );
                }
            }
            Err(e) => eprintln!("simpul-gateway: the proof FAILED: {e}"),
        }
    }
    Ok(if result.is_ok() { exit::OK } else { exit::BAD })
}
