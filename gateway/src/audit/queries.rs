//! Reading the audit log: verification, proofs, search and a person's trail. Everything here takes the log (and the
//! notary for its key) and nothing of the running gateway, so the CLI can run it on a stopped gateway's database too.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use simpul_core::audit::checkpoint::{self, Checkpoint, Verifier};
use simpul_core::audit::merkle::{self, Hash};
use simpul_core::audit::proof::ProofBundle;
use simpul_core::audit::record::{AuditRecord, Entry};

use super::log::{AuditLog, AuditLogError, Damage};
use super::notary::{self, Notary, NotaryError};
use super::personal::{Identifier, PersonalData};
use crate::state_dir::{self, AUDIT_KEY, DATABASE};
use crate::store::Store;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Stopped(String),
    #[error(transparent)]
    Log(#[from] AuditLogError),
    #[error(transparent)]
    Notary(#[from] NotaryError),
    #[error("record {seq} is not in the log (it holds {size})")]
    NoRecord { seq: u64, size: u64 },
    #[error("the audit log is empty")]
    Empty,
}

/// What `audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub records: u64,
    pub checkpoints: u64,
    /// The exported checkpoint's size, when one was given and it checked.
    pub consistent_with: Option<u64>,
    /// The first problem, in words; `None` when everything checked.
    pub problem: Option<String>,
    /// The first bad record, when the problem is one.
    pub bad_record: Option<u64>,
}

fn root_of(log: &AuditLog, size: u64) -> Result<Hash, String> {
    log.root(size).map_err(|e| format!("the tree of size {size} cannot be read: {e}"))
}

/// `from` → `to` (both checked roots): the consistency proof the log gives must verify.
fn check_consistent(log: &AuditLog, from: &Checkpoint, to: u64, to_root: &Hash) -> Result<(), String> {
    if from.size == 0 || from.size == to {
        return if from.size == to && from.root != *to_root {
            Err(format!("the log's root at size {to} differs from the checkpoint's: history was rewritten"))
        } else {
            Ok(())
        };
    }
    let proof = log.consistency_proof(from.size, to).map_err(|e| e.to_string())?;
    merkle::verify_consistency(from.size, to, &from.root, to_root, &proof).map_err(|_| {
        format!(
            "the log of {to} records is not an extension of the checkpoint at size {}: history was rewritten",
            from.size
        )
    })
}

/// Recomputes every leaf and node, checks every record's encoding and number, every stored checkpoint's signature
/// and that each extends the one before, and (with `exported`, a checkpoint note kept outside the gateway) that the
/// log still extends what was exported. Stops at the first problem.
pub fn verify(log: &AuditLog, verifier: &Verifier, exported: Option<&str>) -> Verification {
    let mut result =
        Verification { records: log.size(), checkpoints: 0, consistent_with: None, problem: None, bad_record: None };
    if let Err(damage) = log.verify() {
        result.bad_record = match damage {
            Damage::Record { seq } | Damage::MissingRecord { seq } => Some(seq),
            Damage::Node { level: 0, index } | Damage::MissingNode { level: 0, index } => Some(index),
            _ => None,
        };
        result.problem = Some(damage.to_string());
        return result;
    }
    for seq in 0..log.size() {
        let problem = match log.record(seq) {
            Ok(Some(bytes)) => match AuditRecord::from_canonical(&bytes) {
                Ok(record) if record.seq == seq => None,
                Ok(record) => Some(format!("record {seq} carries sequence number {}", record.seq)),
                Err(e) => Some(format!("record {seq} is not a canonical record: {e}")),
            },
            Ok(None) => Some(format!("record {seq} is missing")),
            Err(e) => Some(e.to_string()),
        };
        if problem.is_some() {
            result.problem = problem;
            result.bad_record = Some(seq);
            return result;
        }
    }
    let mut previous: Option<Checkpoint> = None;
    for entry in log.checkpoints() {
        let checked = entry.map_err(|e| e.to_string()).and_then(|(size, note)| {
            let (checkpoint, _) =
                checkpoint::open(&note, verifier).map_err(|e| format!("checkpoint at size {size}: {e}"))?;
            if checkpoint.size != size {
                return Err(format!("checkpoint stored under size {size} says size {}", checkpoint.size));
            }
            if size > log.size() {
                return Err(format!(
                    "checkpoint at size {size} was signed but the log holds {} records: records were removed",
                    log.size()
                ));
            }
            let root = root_of(log, size)?;
            if let Some(previous) = &previous {
                check_consistent(log, previous, size, &root)?;
            }
            check_consistent(log, &checkpoint, size, &root)?;
            Ok(checkpoint)
        });
        match checked {
            Ok(checkpoint) => {
                result.checkpoints += 1;
                previous = Some(checkpoint);
            }
            Err(problem) => {
                result.problem = Some(problem);
                return result;
            }
        }
    }
    if let Some(note) = exported {
        let checked = checkpoint::open(note, verifier).map_err(|e| format!("the exported checkpoint: {e}")).and_then(
            |(checkpoint, _)| {
                if checkpoint.size > log.size() {
                    return Err(format!(
                        "the exported checkpoint covers {} records but the log holds {}: records were removed",
                        checkpoint.size,
                        log.size()
                    ));
                }
                check_consistent(log, &checkpoint, log.size(), &root_of(log, log.size())?)?;
                Ok(checkpoint.size)
            },
        );
        match checked {
            Ok(size) => result.consistent_with = Some(size),
            Err(problem) => result.problem = Some(problem),
        }
    }
    result
}

/// [`verify`] on the database of a gateway that is not running (one that refused to start over its log, say),
/// read from its state directory; nothing is created or changed there.
pub fn verify_stopped(state: &Path, origin: Option<&str>, exported: Option<&str>) -> Result<Verification, QueryError> {
    let stopped = |what: String| QueryError::Stopped(what);
    let seed = state_dir::read_secret(state, AUDIT_KEY).map_err(|e| stopped(e.to_string()))?;
    let seed = seed.ok_or_else(|| stopped(format!("{} has no {AUDIT_KEY}: no audit log here", state.display())))?;
    let verifier = notary::signer(seed, origin).map_err(|e| stopped(e.to_string()))?.verifier();
    let path = state.join(DATABASE);
    if !path.exists() {
        return Err(stopped(format!("no database at {}", path.display())));
    }
    let store = Store::open(&path).map_err(|e| stopped(format!("{e} (is the gateway running?)")))?;
    match AuditLog::open(store.db(), store.flusher()) {
        Ok(log) => Ok(verify(&log, &verifier, exported)),
        Err(AuditLogError::Damaged(damage)) => Ok(Verification {
            records: 0,
            checkpoints: 0,
            consistent_with: None,
            problem: Some(format!("the log cannot be opened: {damage}")),
            bad_record: None,
        }),
        Err(e) => Err(e.into()),
    }
}

/// Proofs of records against one signed checkpoint that covers all of them (signed now if the newest does not).
pub fn prove(notary: &Notary, seqs: &[u64]) -> Result<Vec<ProofBundle>, QueryError> {
    let log = notary.log();
    let size = log.size();
    if let Some(&seq) = seqs.iter().find(|&&seq| seq >= size) {
        return Err(QueryError::NoRecord { seq, size });
    }
    let (signed, note) = notary.sign_now()?.ok_or(QueryError::Empty)?;
    let verifier = notary.verifier();
    seqs.iter()
        .map(|&seq| {
            let record = log.record(seq)?.ok_or(QueryError::NoRecord { seq, size })?;
            let proof = log.inclusion_proof(seq, signed)?;
            Ok(ProofBundle::new(seq, &record, &proof, note.clone(), &verifier))
        })
        .collect()
}

/// Which records `audit search` and `audit export` want.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Filter {
    pub user: Option<String>,
    pub institution: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl Filter {
    fn matches(&self, record: &AuditRecord) -> bool {
        if self.since.is_some_and(|since| record.at < since) || self.until.is_some_and(|until| record.at >= until) {
            return false;
        }
        if self.user.is_none() && self.institution.is_none() {
            return true;
        }
        let (user, institution) = match &record.entry {
            Entry::Request(r) => (r.user.as_deref(), r.institution.as_deref()),
            // An admin change concerns its target, which is a user, institution or device name.
            Entry::Admin(a) => (Some(a.target.as_str()), Some(a.target.as_str())),
        };
        self.user.as_deref().is_none_or(|u| user == Some(u))
            && self.institution.as_deref().is_none_or(|i| institution == Some(i))
    }
}

/// One page of matching records (canonical text), from sequence number `from` on, at most `limit` of them and
/// at most `scan` looked at; `next` is where the following page starts (`None` at the end).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    pub records: Vec<String>,
    pub next: Option<u64>,
    pub size: u64,
}

pub fn page(log: &AuditLog, filter: &Filter, from: u64, limit: usize, scan: u64) -> Result<Page, QueryError> {
    let size = log.size();
    let mut records = Vec::new();
    let mut seq = from;
    while seq < size && records.len() < limit && seq - from < scan {
        let bytes = log.record(seq)?.ok_or(QueryError::NoRecord { seq, size })?;
        let record = AuditRecord::from_canonical(&bytes).map_err(|_| AuditLogError::Damaged(Damage::Record { seq }))?;
        if filter.matches(&record) {
            records.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        seq += 1;
    }
    Ok(Page { records, next: (seq < size).then_some(seq), size })
}

/// Every access to one person's data that the log can still tie to them (their personal data not yet destroyed),
/// found through the subject index, each with its proof.
pub fn subject(notary: &Notary, personal: &PersonalData, id: &Identifier) -> Result<Vec<ProofBundle>, QueryError> {
    let log = notary.log();
    let seqs = match personal.commitment(log, id)? {
        Some(commitment) => log.records_naming(&commitment.0)?,
        None => Vec::new(),
    };
    if seqs.is_empty() {
        return Ok(Vec::new());
    }
    prove(notary, &seqs)
}
