//! Reading the audit log: verification, proofs, search, a person's trail and the semester report. Everything here
//! takes the log (and the notary for its key) and nothing of the running owner, so a CLI can run it on a stopped
//! owner's database too ([`verify_stopped`]).

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use simpul_core::audit::checkpoint::{self, Checkpoint, Verifier};
use simpul_core::audit::merkle::{self, Hash};
use simpul_core::audit::proof::{ConsistencyProof, InclusionProof};
use simpul_core::audit::record::{AuditRecord, Entry};
use simpul_core::audit::report::{Report, Semester};

use crate::database::{self, DatabaseError};
use crate::flush::Flusher;
use crate::log::{AuditLog, AuditLogError, Damage};
use crate::notary::{self, Notary, NotaryError};
use crate::personal::{Identifier, PersonalData};
use crate::tip::{Tip, TipState};
use crate::Files;

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
    #[error("the old checkpoint: {0}")]
    OldCheckpoint(String),
}

/// What `audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// Records the database holds.
    pub records: u64,
    /// Records the log acknowledged (its tip), when it keeps one.
    pub acknowledged: Option<u64>,
    pub checkpoints: u64,
    /// The exported checkpoint's size, when one was given and it checked.
    pub consistent_with: Option<u64>,
    /// The first problem, in words; `None` when everything checked.
    pub problem: Option<String>,
    /// The first bad or missing record, when the problem concerns one.
    pub bad_record: Option<u64>,
}

impl Verification {
    fn failed(records: u64, acknowledged: Option<u64>, damage: &Damage) -> Self {
        Verification {
            records,
            acknowledged,
            checkpoints: 0,
            consistent_with: None,
            problem: Some(damage.to_string()),
            bad_record: damage.first_record(),
        }
    }
}

fn root_of(log: &AuditLog, size: u64) -> Result<Hash, String> {
    log.root(size).map_err(|e| format!("the tree of size {size} cannot be read: {e}"))
}

/// `from` → `to` (both checked roots): the consistency proof the log gives must verify.
fn check_consistent(log: &AuditLog, from: &Checkpoint, to: u64, to_root: &Hash) -> Result<(), String> {
    if from.size == 0 && from.root != merkle::empty_root() {
        return Err("a checkpoint of size 0 whose root is not the empty tree's".into());
    }
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

/// [`verify_against`] the log's own tip.
pub fn verify(log: &AuditLog, verifier: &Verifier, exported: Option<&str>) -> Verification {
    verify_against(log, verifier, log.tip().as_ref(), exported)
}

/// Checks that the log holds everything `tip` says it acknowledged (and signed), recomputes every leaf and node,
/// checks every record's encoding and number, every stored checkpoint's signature and that each extends the one
/// before, and (with `exported`, a checkpoint note kept outside the owner) that the log still extends what was
/// exported. Stops at the first problem.
pub fn verify_against(
    log: &AuditLog,
    verifier: &Verifier,
    tip: Option<&TipState>,
    exported: Option<&str>,
) -> Verification {
    let acknowledged = tip.map(|t| t.size);
    // What is there first, so that damage is named where it is; then what is missing or replaced as a whole.
    if let Err(damage) = log.verify() {
        return Verification::failed(log.size(), acknowledged, &damage);
    }
    if let Some(tip) = tip {
        if let Err(damage) = log.check_tip(tip, Some(verifier)) {
            return Verification::failed(log.size(), acknowledged, &damage);
        }
    }
    let mut result = Verification {
        records: log.size(),
        acknowledged,
        checkpoints: 0,
        consistent_with: None,
        problem: None,
        bad_record: None,
    };
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

/// [`verify_against`] the tip in `files`, on the database at `database` of an owner that is not running (one that
/// refused to start over its log, say). The database is copied first and the copy opened: opening damaged sled
/// files rewrites them (sled ends its log at the first damaged message), and verification must not destroy the
/// evidence it reports on. Nothing in `files` or at `database` is changed.
pub fn verify_stopped(
    files: &Files,
    database: &Path,
    origin: Option<&str>,
    exported: Option<&str>,
) -> Result<Verification, QueryError> {
    let stopped = |what: String| QueryError::Stopped(what);
    let key = files.audit_key();
    let seed = simpul_files::read_secret(&key).map_err(|e| stopped(e.to_string()))?;
    let seed = seed.ok_or_else(|| stopped(format!("no {}: no audit log here", key.display())))?;
    let verifier = notary::signer(seed, origin).map_err(|e| stopped(e.to_string()))?.verifier();
    if !database.exists() {
        return Err(stopped(format!("no database at {}", database.display())));
    }
    // The tip is read before anything else: a missing or unreadable one is itself a finding, not a failure to look.
    let tip = Tip::read(&files.tip());
    let tip_problem = match &tip {
        Err(e) => Some(format!("the tip file cannot be read ({e})")),
        Ok(_) => None,
    };
    let tip = tip.ok().flatten();
    let acknowledged = tip.as_ref().map(|t| t.size);
    // A gateway that does not answer may still be running and writing: copying its files then would give a torn
    // copy. sled holds an exclusive lock on its `db` file while open; hold it for the copy, or refuse.
    let lock = database::lock(database).map_err(|e| match e {
        DatabaseError::InUse(_) => {
            stopped(format!("{} is in use: the gateway is running (ask it, through its socket)", database.display()))
        }
        e => stopped(e.to_string()),
    })?;
    let lock = lock.ok_or_else(|| stopped(format!("no database at {}", database.display())))?;
    let copy = tempfile_dir(files.dir()).map_err(|e| stopped(format!("a scratch copy beside the database: {e}")))?;
    let _remove = RemoveOnDrop(copy.clone());
    copy_dir(database, &copy).map_err(|e| stopped(format!("copying {} to verify it: {e}", database.display())))?;
    drop(lock);
    let opened = database::open(&copy);
    let named = |mut verification: Verification| {
        // sled ends its log at damage it meets on opening (dropping whole records after it), or will not open it
        // at all: name the damaged record from the raw files, where the records still stand.
        if let Some(tip) = tip.as_ref().filter(|t| t.size > verification.records) {
            let (bad, said) = salvage(files, database, tip);
            verification.bad_record = bad.or(verification.bad_record);
            verification.problem = verification.problem.map(|p| format!("{p}; {said}"));
        }
        if let Some(problem) = &tip_problem {
            verification.problem = Some(verification.problem.map_or(problem.clone(), |p| format!("{problem}; {p}")));
        }
        verification
    };
    let db = match opened {
        Ok(db) => db,
        Err(DatabaseError::Damaged { .. }) => {
            let why = "the database cannot be opened (it holds corrupted data written before the owner's last \
                       start), so no record in it can be checked";
            let verification = Verification {
                records: 0,
                acknowledged,
                checkpoints: 0,
                consistent_with: None,
                problem: Some(why.into()),
                bad_record: None,
            };
            return Ok(named(verification));
        }
        Err(e) => return Err(stopped(e.to_string())),
    };
    // The tip's leaf hashes name which record changed, even the last of an odd-sized log that no node covers alone.
    let read_only = match &tip {
        Some(state) => AuditLog::open_read_only_with_tip(&db, Flusher::new(&db), &files.tip(), state),
        None => AuditLog::open_read_only(&db, Flusher::new(&db)),
    };
    match read_only {
        Ok(log) => {
            let mut verification = verify_against(&log, &verifier, tip.as_ref(), exported);
            if tip.is_none() && tip_problem.is_none() && log.tip_began()? {
                let missing = AuditLogError::TipMissing(files.tip());
                verification.problem =
                    Some(verification.problem.map_or(missing.to_string(), |p| format!("{missing}; {p}")));
            }
            Ok(named(verification))
        }
        Err(AuditLogError::Damaged(damage)) => Ok(named(Verification::failed(0, acknowledged, &damage))),
        Err(e) => Err(e.into()),
    }
}

/// When sled will not open the database: the first acknowledged record none of whose copies in the raw files hashes
/// to the leaf the tip kept for it (sled writes a record's bytes as they are, and again each time it rewrites the
/// page), and what that means in words.
fn salvage(files: &Files, database: &Path, tip: &TipState) -> (Option<u64>, String) {
    let leaves = match Tip::read_leaves(&files.tip(), tip.size) {
        Ok(leaves) if leaves.len() as u64 == tip.size && merkle::root(&leaves) == tip.root => leaves,
        _ => {
            return (
                None,
                "the tip's leaf hashes do not rebuild its root, so the damaged record cannot be named".into(),
            )
        }
    };
    let mut intact = std::collections::HashSet::new();
    let mut stack = vec![database.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).into_iter().flatten().flatten().map(|e| e.path()));
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else { continue };
        for (start, _) in bytes.windows(5).enumerate().filter(|(_, w)| *w == b"{\"v\":") {
            // One JSON value from here: a record's canonical text, if this copy of it is whole.
            let mut values = serde_json::Deserializer::from_slice(&bytes[start..]).into_iter::<serde::de::IgnoredAny>();
            if let Some(Ok(_)) = values.next() {
                intact.insert(merkle::leaf_hash(&bytes[start..start + values.byte_offset()]));
            }
        }
    }
    match leaves.iter().position(|leaf| !intact.contains(leaf)) {
        Some(seq) => (
            Some(seq as u64),
            format!("record {seq} is the first acknowledged record with no intact copy in its files"),
        ),
        None => (
            None,
            "every acknowledged record has an intact copy in its files: the damage is in sled's own structures".into(),
        ),
    }
}

struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A new private directory inside `parent` (the owner's 0700 state directory: the copy holds personal data).
fn tempfile_dir(parent: &Path) -> std::io::Result<std::path::PathBuf> {
    use rand::Rng;
    let name = format!(".verify-{:016x}", rand::thread_rng().gen::<u64>());
    let path = parent.join(name);
    std::fs::create_dir(&path)?;
    Ok(path)
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Proofs of records against one signed checkpoint that covers all of them (signed now if the newest does not).
pub fn prove(notary: &Notary, seqs: &[u64]) -> Result<Vec<InclusionProof>, QueryError> {
    let log = notary.log();
    let size = log.size();
    if let Some(&seq) = seqs.iter().find(|&&seq| seq >= size) {
        return Err(QueryError::NoRecord { seq, size });
    }
    let (signed, note) = notary.sign_now()?.ok_or(QueryError::Empty)?;
    seqs.iter()
        .map(|&seq| {
            let record = log.record(seq)?.ok_or(QueryError::NoRecord { seq, size })?;
            let hashes = log.inclusion_proof(seq, signed)?;
            Ok(InclusionProof { index: seq, record, hashes, checkpoint: note.clone() })
        })
        .collect()
}

/// A proof (and the size it proves) that the log now (a checkpoint signed now if it grew) extends `old`, a checkpoint note an auditor or a
/// witness kept; `old` must be signed by this log's key and no larger than the log.
pub fn consistency(notary: &Notary, old: &str) -> Result<(ConsistencyProof, u64), QueryError> {
    let (previous, _) =
        checkpoint::open(old, &notary.verifier()).map_err(|e| QueryError::OldCheckpoint(e.to_string()))?;
    let (size, note) = notary.sign_now()?.ok_or(QueryError::Empty)?;
    if previous.size > size {
        return Err(QueryError::OldCheckpoint(format!(
            "it covers {} records but the log holds {size}: records were removed",
            previous.size
        )));
    }
    let hashes = if previous.size == 0 { Vec::new() } else { notary.log().consistency_proof(previous.size, size)? };
    let proof =
        ConsistencyProof { old_checkpoint: old.to_owned(), old_size: previous.size, hashes, new_checkpoint: note };
    Ok((proof, size))
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
        match &record.entry {
            Entry::Request(r) => {
                self.user.as_deref().is_none_or(|u| r.user.as_deref() == Some(u))
                    && self.institution.as_deref().is_none_or(|i| r.institution.as_deref() == Some(i))
            }
            // An admin change is done to a user or an institution when it targets one (`user.*`, `institution.*`),
            // or when the change it mirrors names one (`detail.change`, see the writer): a device's change names the
            // device's user and institution, a user's change the user's institution.
            Entry::Admin(a) => {
                let concerns = |kind: &str, name: &str| {
                    let targets = a.action.split('.').next() == Some(kind) && a.target == name;
                    let named = a.detail().get("change").and_then(|change| change.get(kind));
                    targets || named.and_then(|v| v.as_str()) == Some(name)
                };
                self.user.as_deref().is_none_or(|u| concerns("user", u))
                    && self.institution.as_deref().is_none_or(|i| concerns("institution", i))
            }
        }
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
        let record = read_record(log, seq)?;
        if filter.matches(&record) {
            records.push(String::from_utf8(record.canonical()).expect("canonical records are UTF-8"));
        }
        seq += 1;
    }
    Ok(Page { records, next: (seq < size).then_some(seq), size })
}

/// Every record the log can still tie to one person (their personal data not yet destroyed), found through the
/// subject index, each with its proof: a person's trail (UU PDP art. 32).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trail {
    pub entries: Vec<(AuditRecord, InclusionProof)>,
}

pub fn subject(notary: &Notary, personal: &PersonalData, id: &Identifier) -> Result<Trail, QueryError> {
    let log = notary.log();
    let seqs = match personal.commitment(log, id)? {
        Some(commitment) => log.records_naming(&commitment.0)?,
        None => Vec::new(),
    };
    if seqs.is_empty() {
        return Ok(Trail { entries: Vec::new() });
    }
    let proofs = prove(notary, &seqs)?;
    let entries = proofs
        .into_iter()
        .map(|proof| {
            let record = AuditRecord::from_canonical(&proof.record)
                .map_err(|_| AuditLogError::Damaged(Damage::Record { seq: proof.index }))?;
            Ok((record, proof))
        })
        .collect::<Result<_, QueryError>>()?;
    Ok(Trail { entries })
}

/// The semester report from the records of `semester` (local days in `zone`), with each institution's daily quota
/// from `quotas`; only `institution`'s when given.
pub fn report(
    log: &AuditLog,
    semester: Semester,
    zone: Tz,
    quotas: &BTreeMap<String, u64>,
    institution: Option<&str>,
) -> Result<Report, QueryError> {
    let since = local_midnight(semester.first_day(), zone);
    let until = local_midnight(semester.last_day() + chrono::Duration::days(1), zone);
    let filter = Filter { since: Some(since), until: Some(until), ..Filter::default() };
    // Streamed: a semester may hold millions of records, and the report keeps only its tallies.
    let mut failure = None;
    let records = (0..log.size())
        .map_while(|seq| match read_record(log, seq) {
            Ok(record) => Some(record),
            Err(e) => {
                failure = Some(e);
                None
            }
        })
        .filter(|record| filter.matches(record));
    let report = Report::build(semester, zone, quotas, institution, records);
    match failure {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// The log's state as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogState {
    /// Records in the log.
    pub size: u64,
    /// Records the newest signed checkpoint covers; `None` before the first.
    pub checkpoint_size: Option<u64>,
    /// When the newest record that checkpoint covers was written: the notary signs within half a second of a
    /// record, so this dates the checkpoint, and an old one beside a larger `size` shows that signing stalled.
    pub checkpoint_covers_until: Option<DateTime<Utc>>,
}

pub fn state(log: &AuditLog) -> Result<LogState, QueryError> {
    let size = log.size();
    let checkpoint_size = log.latest_checkpoint()?.map(|(size, _)| size).filter(|&size| size > 0);
    let checkpoint_covers_until = checkpoint_size.map(|n| read_record(log, n - 1).map(|r| r.at)).transpose()?;
    Ok(LogState { size, checkpoint_size, checkpoint_covers_until })
}

fn read_record(log: &AuditLog, seq: u64) -> Result<AuditRecord, QueryError> {
    let size = log.size();
    let bytes = log.record(seq)?.ok_or(QueryError::NoRecord { seq, size })?;
    AuditRecord::from_canonical(&bytes).map_err(|_| AuditLogError::Damaged(Damage::Record { seq }).into())
}

/// The instant a local day begins in `zone` (the earliest, where a day begins twice).
pub fn local_midnight(day: chrono::NaiveDate, zone: Tz) -> DateTime<Utc> {
    let midnight = day.and_hms_opt(0, 0, 0).expect("midnight exists");
    midnight.and_local_timezone(zone).earliest().map_or_else(|| midnight.and_utc(), |local| local.to_utc())
}
