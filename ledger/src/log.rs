//! The audit log's storage: records and the RFC 9162 Merkle tree over them, in sled, so that roots and proofs for any
//! size cost O(log n) reads.
//!
//! The tree is kept as its perfect, aligned subtrees (see [`simpul_core::audit::merkle`]'s module docs): they never
//! change once complete, so each is written once, in the same transaction as the record that completes it, and the
//! tree of every older size is derived from the same nodes. Leaves (level 0) are not stored: a leaf hash is the hash
//! of its record, so it is computed from the record whenever a root, proof or check needs it, which saves one insert
//! per record. Logs written before that kept level-0 rows; they are ignored when read and removed when the log is
//! next opened for appending.

use std::cell::{Cell, RefCell};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use simpul_core::audit::checkpoint::{self, Verifier};
use simpul_core::audit::merkle::{self, Hash, NodeSource, ProofError};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::flush::Flusher;
use crate::tip::{Tip, TipError, TipState};

const RECORDS: &str = "audit_records";
const NODES: &str = "audit_nodes";
/// `commitment (32) || seq (u64 BE)` → empty: which records name a subject, so a person's trail is a prefix scan.
const SUBJECT_INDEX: &str = "audit_subject_index";
/// Personal data, apart from the records: lookup key (32) → `salt (32) || last use (i32 BE days from CE)`.
const PERSONAL: &str = "audit_personal";
/// Signed checkpoints: tree size (u64 BE) → signed note.
const CHECKPOINTS: &str = "audit_checkpoints";
/// Small counters: [`ADMIN_MIRRORED`], [`TIP_BEGAN`].
const STATE: &str = "audit_state";
/// The last admin event (the owner's outbox sequence number) copied into the log.
const ADMIN_MIRRORED: &str = "admin_mirrored";
/// The most records one append takes: at each open the tip's leaf hashes of this many newest records are written
/// again, which covers the one append a crash can have left half-written there.
pub const MAX_APPEND: usize = 8192;
/// Set when the log's tip file was made: from then on a missing tip is damage, not a log from before tips.
const TIP_BEGAN: &str = "tip_began";

/// What one append writes besides the records: all of it lands in the same transaction as the records.
#[derive(Debug, Default)]
pub struct Batch {
    /// Canonical record bytes; the first gets the sequence number `append_with` passed to the builder.
    pub records: Vec<Vec<u8>>,
    /// `(commitment, seq)` pairs for the subject index.
    pub subjects: Vec<([u8; 32], u64)>,
    /// Personal-data entries written (salts created or their last use moved on).
    pub personal: Vec<([u8; 32], Vec<u8>)>,
    /// Set when the batch holds admin events up to this store sequence number.
    pub admin_mirrored: Option<u64>,
    /// The owner's writes to its own trees that must be durable exactly when these records are (see
    /// [`crate::writer::BatchWrites`]).
    pub writes: Vec<Write>,
}

/// One write of the owner's, into one of its trees in the same database: `value` is inserted under `key`, or the key
/// removed when it is `None`.
#[derive(Debug, Clone)]
pub struct Write {
    pub tree: sled::Tree,
    pub key: sled::IVec,
    pub value: Option<sled::IVec>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditLogError {
    #[error("database: {0}")]
    Sled(#[from] sled::Error),
    #[error("audit tip: {0}")]
    Tip(#[from] TipError),
    #[error(
        "the audit log's tip file {0} is missing, although this log has kept one: the log cannot be checked against \
         what it acknowledged. Restore the file (or the whole state directory) from a backup"
    )]
    TipMissing(std::path::PathBuf),
    #[error("the audit log was opened to be read only")]
    ReadOnly,
    #[error("an append of {0} records is more than the {MAX_APPEND} one append may hold")]
    TooLarge(usize),
    #[error("audit log: {0}")]
    Proof(#[from] ProofError),
    #[error("audit log has {size} records; size {requested} is not there yet")]
    BeyondSize { requested: u64, size: u64 },
    #[error("audit log is damaged: {0}")]
    Damaged(Damage),
    /// After a failed flush the records of that append may or may not reach the disk, so appending on top of them
    /// could acknowledge a tree a crash would fork; only a reopen tells which prefix is durable.
    #[error("audit log: an earlier append could not be flushed; reopen the database")]
    Poisoned,
}

/// What [`AuditLog::verify`] (or reading) found wrong, the first such thing in leaf-then-level order. Every kind
/// names the records it concerns, never a position in the database's files.
#[derive(Debug, thiserror::Error)]
pub enum Damage {
    #[error("database: {0}")]
    Storage(sled::Error),
    #[error("record {seq} is missing")]
    MissingRecord { seq: u64 },
    #[error("records {first}..={last} cannot be read: the database holds corrupted data there")]
    Unreadable { first: u64, last: u64 },
    #[error(
        "tree node (level {level}, index {index}), over records {first}..={last}, cannot be read: the database holds \
         corrupted data there"
    )]
    UnreadableNode { level: u8, index: u64, first: u64, last: u64 },
    #[error(
        "the log holds {holds} records but acknowledged {acknowledged} (audit.tip): records {holds}..={last} are \
         missing, the first of them probably damaged on disk",
        last = acknowledged - 1
    )]
    Shorter { holds: u64, acknowledged: u64 },
    #[error(
        "the first {size} records no longer hash to the root acknowledged for them (audit.tip): the log was rewritten"
    )]
    Rewritten { size: u64 },
    #[error("the checkpoint kept in audit.tip: {0}")]
    TipCheckpoint(String),
    #[error(
        "the checkpoint at size {size}, the newest signed (audit.tip), is missing from the database or differs there: \
         the database lost data written after it"
    )]
    CheckpointMissing { size: u64 },
    #[error("record {seq} does not hash to the leaf the tree commits to")]
    Record { seq: u64 },
    /// Records `first` and `first + 1` together do not hash to the node over them, and nothing kept tells which of
    /// the two changed (the tip's leaf hashes would).
    #[error(
        "records {first} and {second} do not hash to the tree node over them (level 1, index {index}): one of them \
         changed",
        second = first + 1,
        index = first / 2
    )]
    Pair { first: u64 },
    #[error("tree node (level {level}, index {index}) is missing")]
    MissingNode { level: u8, index: u64 },
    #[error("tree node (level {level}, index {index}) does not match what it covers")]
    Node { level: u8, index: u64 },
    #[error("tree node (level {level}, index {index}) exists past the end of the log")]
    ExtraNode { level: u8, index: u64 },
    #[error("a {tree} entry has a malformed key or value")]
    Malformed { tree: &'static str },
}

impl From<sled::Error> for Damage {
    fn from(e: sled::Error) -> Self {
        Damage::Storage(e)
    }
}

impl Damage {
    /// The first record the damage concerns, where there is one.
    pub fn first_record(&self) -> Option<u64> {
        match self {
            Damage::Record { seq } | Damage::MissingRecord { seq } => Some(*seq),
            Damage::Unreadable { first, .. } | Damage::Pair { first } => Some(*first),
            Damage::Shorter { holds, .. } => Some(*holds),
            _ => None,
        }
    }
}

fn is_corruption(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Corruption { .. })
}

impl From<Damage> for AuditLogError {
    fn from(damage: Damage) -> Self {
        match damage {
            Damage::Storage(e) => AuditLogError::Sled(e),
            other => AuditLogError::Damaged(other),
        }
    }
}

fn node_key(level: u8, index: u64) -> [u8; 9] {
    let mut key = [0; 9];
    key[0] = level;
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

fn subject_key(commitment: &[u8; 32], seq: u64) -> [u8; 40] {
    let mut key = [0; 40];
    key[..32].copy_from_slice(commitment);
    key[32..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn checkpoint_entry((key, value): (sled::IVec, sled::IVec)) -> Result<(u64, String), AuditLogError> {
    let size = key.as_ref().try_into().map(u64::from_be_bytes);
    let size = size.map_err(|_| AuditLogError::Damaged(Damage::Malformed { tree: CHECKPOINTS }))?;
    Ok((size, String::from_utf8_lossy(&value).into_owned()))
}

fn read_node(nodes: &sled::Tree, level: u8, index: u64) -> Result<Option<Hash>, Damage> {
    let value = nodes.get(node_key(level, index)).map_err(|e| {
        if !is_corruption(&e) {
            return Damage::Storage(e);
        }
        let first = index << level;
        Damage::UnreadableNode { level, index, first, last: first + (1u64 << level) - 1 }
    })?;
    match value {
        None => Ok(None),
        Some(v) => v.as_ref().try_into().map(Some).map_err(|_| Damage::Malformed { tree: NODES }),
    }
}

fn must_read_node(nodes: &sled::Tree, level: u8, index: u64) -> Result<Hash, Damage> {
    read_node(nodes, level, index)?.ok_or(Damage::MissingNode { level, index })
}

/// The key range of the level-0 rows logs from before derived leaves kept.
fn stored_leaves() -> std::ops::Range<[u8; 9]> {
    node_key(0, 0)..node_key(1, 0)
}

/// The `merkle` functions over the nodes tree. [`NodeSource::subtree`] cannot fail, so the first failure is kept
/// here and every later lookup answers zeros; callers must call [`NodeView::finish`], which turns the result into an
/// error if any lookup failed (the zeros never leave this module).
pub(crate) struct NodeView<'a> {
    log: &'a AuditLog,
    error: RefCell<Option<Damage>>,
    /// Lookups made, so tests can hold the O(log n) promise to account.
    pub(crate) reads: Cell<u64>,
}

impl std::fmt::Debug for NodeView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeView").field("reads", &self.reads.get()).finish_non_exhaustive()
    }
}

impl<'a> NodeView<'a> {
    pub(crate) fn new(log: &'a AuditLog) -> Self {
        NodeView { log, error: RefCell::new(None), reads: Cell::new(0) }
    }

    pub(crate) fn finish<T>(self, value: T) -> Result<T, AuditLogError> {
        match self.error.into_inner() {
            Some(damage) => Err(damage.into()),
            None => Ok(value),
        }
    }
}

impl NodeSource for NodeView<'_> {
    fn subtree(&self, start: u64, size: u64) -> Hash {
        if self.error.borrow().is_some() {
            return [0; 32];
        }
        self.reads.set(self.reads.get() + 1);
        let level = size.trailing_zeros() as u8;
        match self.log.node(level, start >> level) {
            Ok(hash) => hash,
            Err(damage) => {
                *self.error.borrow_mut() = Some(damage);
                [0; 32]
            }
        }
    }
}

/// The append-only log: `audit_records` maps a sequence number (u64 BE) to a record's canonical bytes, and
/// `audit_nodes` maps `(level u8, index u64 BE)`, for levels 1 and up, to the hash of the perfect subtree of
/// `2^level` leaves starting at `index << level`.
#[derive(Debug)]
pub struct AuditLog {
    records: sled::Tree,
    nodes: sled::Tree,
    subject_index: sled::Tree,
    personal: sled::Tree,
    checkpoints: sled::Tree,
    state: sled::Tree,
    flusher: Arc<Flusher>,
    /// `None` when opened read-only (for verification), and then nothing is appended.
    tip: Option<Tip>,
    /// A read-only log's tip file and the size it acknowledged, when one was read beside the database (a stopped
    /// owner's): only its leaf hashes are read, to name damage (see [`AuditLog::witness`]).
    read_tip: Option<(PathBuf, u64)>,
    /// Records acknowledged (durable); readers never look past it, so they only see nodes already written.
    size: AtomicU64,
    /// Held for a whole append, since the nodes a record completes depend on the size it lands at. `true` once a
    /// flush failed (see [`AuditLogError::Poisoned`]).
    appending: Mutex<bool>,
}

impl AuditLog {
    /// Opens the log for appending: recovers the size from the records tree, checks that the nodes that size needs
    /// are there (and none past it), then checks the log against its tip at `tip` (made on first open): it must
    /// hold at least the acknowledged records, reproduce their root, and the root of the tip's checkpoint (signed by
    /// `verifier`'s key, when given). A log that fails is refused, never extended.
    pub fn open(
        db: &sled::Db,
        flusher: Arc<Flusher>,
        tip: &Path,
        verifier: Option<&Verifier>,
    ) -> Result<Self, AuditLogError> {
        let mut log = Self::open_read_only(db, flusher)?;
        let current = || -> Result<TipState, AuditLogError> {
            let size = log.size();
            let checkpoint = log.latest_checkpoint()?.map(|(_, note)| note);
            Ok(TipState { size, root: log.root(size)?, checkpoint })
        };
        let began = log.tip_began()?;
        let restore_from = if Tip::exists(tip) {
            // (A tip beside a database that never made one means the database was replaced: checked all the same.)
            let (opened, found) = Tip::open(tip, &TipState::empty())?;
            log.check_tip(&found.unwrap_or_else(TipState::empty), verifier)?;
            log.tip = Some(opened);
            log.size().saturating_sub(MAX_APPEND as u64)
        } else if began {
            return Err(AuditLogError::TipMissing(tip.to_owned()));
        } else {
            let initial = current()?;
            if initial.size > 0 {
                tracing::info!(records = initial.size, "audit log: making its tip file (a log from before tips)");
            }
            log.tip = Some(Tip::open(tip, &initial)?.0);
            0
        };
        log.restore_leaves(restore_from)?;
        let removed = log.remove_stored_leaves()?;
        if !began {
            log.state.insert(TIP_BEGAN, &[1])?;
        }
        if !began || removed > 0 {
            log.flusher.flush()?;
        }
        Ok(log)
    }

    /// Removes the level-0 rows a log from before derived leaves kept (nothing reads them); how many went.
    fn remove_stored_leaves(&self) -> Result<u64, AuditLogError> {
        let mut removed = 0;
        loop {
            let mut batch = sled::Batch::default();
            let mut count = 0;
            for key in self.nodes.range(stored_leaves()).keys().take(65_536) {
                batch.remove(key?);
                count += 1;
            }
            if count == 0 {
                break;
            }
            self.nodes.apply_batch(batch)?;
            removed += count;
        }
        if removed > 0 {
            tracing::info!(removed, "audit log: removed the stored leaf hashes of an older version (now derived)");
        }
        Ok(removed)
    }

    /// Whether this log has kept a tip file (from then on a missing one is damage).
    pub fn tip_began(&self) -> Result<bool, AuditLogError> {
        Ok(self.state.get(TIP_BEGAN)?.is_some())
    }

    /// Writes the tip's leaf hashes of records `from..size` again, each the hash of its record, every pair of them
    /// checked against the stored node over it (a difference is damage, refused): a crash can leave a tip's slot
    /// durable before the leaves written beside it, and no append is larger than [`MAX_APPEND`].
    fn restore_leaves(&self, from: u64) -> Result<(), AuditLogError> {
        let Some(tip) = &self.tip else { return Ok(()) };
        let size = self.size();
        // From a left leaf, so that every pair is checked whole.
        let mut start = from & !1;
        while start < size {
            let end = (start + 65_536).min(size);
            let leaves = (start..end).map(|seq| self.leaf(seq)).collect::<Result<Vec<Hash>, Damage>>()?;
            self.check_pairs(start, &leaves)?;
            tip.write_leaves(start, &leaves)?;
            start = end;
        }
        tip.write(|_| {})?;
        Ok(())
    }

    /// Checks every complete pair in `leaves` (the leaf hashes of records `first..`, `first` even) against the node
    /// over it.
    fn check_pairs(&self, first: u64, leaves: &[Hash]) -> Result<(), Damage> {
        for (pair, hashes) in leaves.chunks_exact(2).enumerate() {
            let index = first / 2 + pair as u64;
            let stored = must_read_node(&self.nodes, 1, index)?;
            if merkle::node_hash(&hashes[0], &hashes[1]) != stored {
                return Err(self.blame_pair(index, hashes)?);
            }
        }
        Ok(())
    }

    /// The leaf hash of record `seq`: the hash of the record as stored.
    fn leaf(&self, seq: u64) -> Result<Hash, Damage> {
        let record = self.read_record(seq)?.ok_or(Damage::MissingRecord { seq })?;
        Ok(merkle::leaf_hash(&record))
    }

    /// The node at (`level`, `index`): a leaf from its record, a higher node as stored.
    fn node(&self, level: u8, index: u64) -> Result<Hash, Damage> {
        match level {
            0 => self.leaf(index),
            _ => must_read_node(&self.nodes, level, index),
        }
    }

    /// Opens the log for reading only (verification, a stopped owner's database): no tip is made or written, and
    /// appends are refused.
    pub fn open_read_only(db: &sled::Db, flusher: Arc<Flusher>) -> Result<Self, AuditLogError> {
        let records = db.open_tree(RECORDS)?;
        let nodes = db.open_tree(NODES)?;
        let (subject_index, personal) = (db.open_tree(SUBJECT_INDEX)?, db.open_tree(PERSONAL)?);
        let (checkpoints, state) = (db.open_tree(CHECKPOINTS)?, db.open_tree(STATE)?);
        let last = records.last().map_err(|e| match is_corruption(&e) {
            // The last page of records is damaged; which records it held is not known, only that it is the end.
            true => AuditLogError::Damaged(Damage::Malformed { tree: RECORDS }),
            false => AuditLogError::Sled(e),
        })?;
        let size = match last {
            None => 0,
            Some((key, _)) => {
                let seq = key.as_ref().try_into().map(u64::from_be_bytes);
                seq.map_err(|_| AuditLogError::Damaged(Damage::Malformed { tree: RECORDS }))? + 1
            }
        };
        // Level 0 is derived from the records (and older logs' level-0 rows are ignored), so the stored tree starts at
        // level 1.
        for level in 1..64u8 {
            let complete = size >> level;
            if complete > 0 {
                must_read_node(&nodes, level, complete - 1)?;
            }
            if read_node(&nodes, level, complete)?.is_some() {
                return Err(Damage::ExtraNode { level, index: complete }.into());
            }
            if complete == 0 {
                break;
            }
        }
        Ok(AuditLog {
            records,
            nodes,
            subject_index,
            personal,
            checkpoints,
            state,
            flusher,
            tip: None,
            read_tip: None,
            size: AtomicU64::new(size),
            appending: Mutex::new(false),
        })
    }

    /// Opens the log for reading only, with the tip file at `tip` that said `state`: nothing is written to either,
    /// and the tip's leaf hashes name which record of a pair changed, and whether the last record of an odd-sized log
    /// (no node covers it alone) did.
    pub fn open_read_only_with_tip(
        db: &sled::Db,
        flusher: Arc<Flusher>,
        tip: &Path,
        state: &TipState,
    ) -> Result<Self, AuditLogError> {
        let mut log = Self::open_read_only(db, flusher)?;
        log.read_tip = Some((tip.to_owned(), state.size));
        Ok(log)
    }

    /// Checks the log against what a tip says it acknowledged (and signed): see [`AuditLog::open`].
    pub fn check_tip(&self, tip: &TipState, verifier: Option<&Verifier>) -> Result<(), Damage> {
        let holds = self.size();
        if holds < tip.size {
            return Err(Damage::Shorter { holds, acknowledged: tip.size });
        }
        let root = |size| self.root(size).map_err(|e| Damage::TipCheckpoint(e.to_string()));
        if root(tip.size)? != tip.root {
            return Err(Damage::Rewritten { size: tip.size });
        }
        if let (Some(note), Some(verifier)) = (&tip.checkpoint, verifier) {
            let (signed, _) = checkpoint::open(note, verifier).map_err(|e| Damage::TipCheckpoint(e.to_string()))?;
            if holds < signed.size {
                return Err(Damage::Shorter { holds, acknowledged: signed.size });
            }
            if root(signed.size)? != signed.root {
                return Err(Damage::Rewritten { size: signed.size });
            }
            // Stored before the tip keeps it, so the database must have it too.
            let stored = self.checkpoints.get(signed.size.to_be_bytes()).map_err(Damage::Storage)?;
            if stored.as_deref() != Some(note.as_bytes()) {
                return Err(Damage::CheckpointMissing { size: signed.size });
            }
        }
        Ok(())
    }

    /// What the tip says now (`None` for a read-only log).
    pub fn tip(&self) -> Option<TipState> {
        self.tip.as_ref().map(Tip::state)
    }

    /// Appends records (their canonical bytes) in order; see [`AuditLog::append_with`].
    pub fn append(&self, records: &[Vec<u8>]) -> Result<Range<u64>, AuditLogError> {
        self.append_with(|_| Ok::<_, AuditLogError>(Batch { records: records.to_vec(), ..Batch::default() }))
    }

    /// Appends what `build` makes, given the sequence number its first record will get (records carry their own
    /// number, so they can only be encoded once it is known), with every perfect-subtree node the records complete,
    /// in one sled transaction, then flushes through the flusher; returns the sequence numbers (0-based leaf
    /// indexes). Nothing is acknowledged (or visible to readers) before the flush. `build` runs while appends are
    /// held off, so it may read personal data ([`AuditLog::personal`]) without another append changing it.
    pub fn append_with<E: From<AuditLogError>>(
        &self,
        build: impl FnOnce(u64) -> Result<Batch, E>,
    ) -> Result<Range<u64>, E> {
        let Some(tip) = &self.tip else {
            return Err(AuditLogError::ReadOnly.into());
        };
        let mut poisoned = self.appending.lock().unwrap_or_else(|e| e.into_inner());
        if *poisoned {
            return Err(AuditLogError::Poisoned.into());
        }
        let first = self.size.load(Ordering::Acquire);
        let batch = build(first)?;
        let records = &batch.records;
        if records.len() > MAX_APPEND {
            return Err(AuditLogError::TooLarge(records.len()).into());
        }
        if records.is_empty() && batch.admin_mirrored.is_none() && batch.writes.is_empty() {
            return Ok(first..first);
        }
        let end = first + records.len() as u64;
        let leaves: Vec<Hash> = records.iter().map(|record| merkle::leaf_hash(record)).collect();
        let new_nodes = self.completed_nodes(first, &leaves)?;
        // The log's trees first, then each other tree the owner writes to, once.
        let mut trees = vec![&self.records, &self.nodes, &self.subject_index, &self.personal, &self.state];
        let mut owner = Vec::with_capacity(batch.writes.len());
        for write in &batch.writes {
            let position = match trees.iter().position(|tree| tree.name() == write.tree.name()) {
                Some(position) => position,
                None => {
                    trees.push(&write.tree);
                    trees.len() - 1
                }
            };
            owner.push(position);
        }
        trees
            .as_slice()
            .transaction(|tx| {
                let [tx_records, tx_nodes, tx_index, tx_personal, tx_state, ..] = tx.as_slice() else {
                    unreachable!("the log's five trees come first")
                };
                for (seq, record) in (first..end).zip(records) {
                    tx_records.insert(&seq.to_be_bytes(), record.as_slice())?;
                }
                for (key, hash) in &new_nodes {
                    tx_nodes.insert(key, hash)?;
                }
                for (commitment, seq) in &batch.subjects {
                    tx_index.insert(subject_key(commitment, *seq).as_slice(), &[])?;
                }
                for (key, value) in &batch.personal {
                    tx_personal.insert(key, value.as_slice())?;
                }
                if let Some(admin) = batch.admin_mirrored {
                    tx_state.insert(ADMIN_MIRRORED, &admin.to_be_bytes())?;
                }
                for (write, &position) in batch.writes.iter().zip(&owner) {
                    match &write.value {
                        Some(value) => tx[position].insert(&write.key, value.clone())?,
                        None => tx[position].remove(&write.key)?,
                    };
                }
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                TransactionError::Storage(e) => AuditLogError::Sled(e),
                TransactionError::Abort(()) => unreachable!("the transaction never aborts"),
            })?;
        if let Err(e) = self.flusher.flush() {
            *poisoned = true;
            return Err(AuditLogError::from(e).into());
        }
        if end > first {
            // The records are durable; counting them in the tip is what makes them acknowledged.
            let counted = self.root_unchecked(end).and_then(|root| {
                tip.append(first, &leaves, |state| {
                    state.size = end;
                    state.root = root;
                })
                .map_err(AuditLogError::from)
            });
            if let Err(e) = counted {
                *poisoned = true;
                return Err(e.into());
            }
        }
        self.size.store(end, Ordering::Release);
        Ok(first..end)
    }

    /// The nodes (levels 1 and up, as `(key, hash)`) that the leaves of records `first..` complete. A node at level
    /// `l` is complete once its last leaf is there, so the new ones at `l` are indexes `first >> l .. end >> l`; all
    /// but the first have both children among the new nodes one level down, and the first's left child may be older
    /// (then read).
    fn completed_nodes(&self, first: u64, leaves: &[Hash]) -> Result<Vec<([u8; 9], Hash)>, AuditLogError> {
        let end = first + leaves.len() as u64;
        let mut written = Vec::with_capacity(leaves.len());
        let mut below: Vec<Hash> = leaves.to_vec();
        for level in 1..64u8 {
            let (from, to) = (first >> level, end >> level);
            if from == to {
                break;
            }
            // `below` holds the nodes of level - 1 from index `first >> (level - 1)` on.
            let below_from = first >> (level - 1);
            let child = |i: u64| -> Result<Hash, AuditLogError> {
                match i.checked_sub(below_from) {
                    Some(offset) => Ok(below[offset as usize]),
                    None => Ok(self.node(level - 1, i)?),
                }
            };
            let mut current = Vec::with_capacity((to - from) as usize);
            for index in from..to {
                let hash = merkle::node_hash(&child(2 * index)?, &child(2 * index + 1)?);
                written.push((node_key(level, index), hash));
                current.push(hash);
            }
            below = current;
        }
        Ok(written)
    }

    /// One personal-data entry (see [`Batch::personal`]).
    pub fn personal(&self, key: &[u8; 32]) -> Result<Option<Vec<u8>>, AuditLogError> {
        Ok(self.personal.get(key)?.map(|v| v.to_vec()))
    }

    /// Destroys the personal-data entries `expired` picks, durably, while appends are held off (so none is read and
    /// written back in between); returns how many went.
    pub fn destroy_personal(&self, expired: impl Fn(&[u8]) -> bool) -> Result<u64, AuditLogError> {
        let poisoned = self.appending.lock().unwrap_or_else(|e| e.into_inner());
        if *poisoned {
            return Err(AuditLogError::Poisoned);
        }
        let mut destroyed = 0;
        for entry in self.personal.iter() {
            let (key, value) = entry?;
            if expired(&value) {
                self.personal.remove(key)?;
                destroyed += 1;
            }
        }
        self.flusher.flush()?;
        Ok(destroyed)
    }

    /// The acknowledged records that name `commitment`, in order.
    pub fn records_naming(&self, commitment: &[u8; 32]) -> Result<Vec<u64>, AuditLogError> {
        let size = self.size();
        let mut seqs = Vec::new();
        for entry in self.subject_index.scan_prefix(commitment) {
            let (key, _) = entry?;
            let seq = key[32..].try_into().map(u64::from_be_bytes);
            let seq = seq.map_err(|_| AuditLogError::Damaged(Damage::Malformed { tree: SUBJECT_INDEX }))?;
            if seq < size {
                seqs.push(seq);
            }
        }
        Ok(seqs)
    }

    /// The last admin event already in the log (0 for none).
    pub fn admin_mirrored(&self) -> Result<u64, AuditLogError> {
        let value = self.state.get(ADMIN_MIRRORED)?;
        Ok(value.and_then(|v| v.as_ref().try_into().ok()).map(u64::from_be_bytes).unwrap_or(0))
    }

    /// Stores a signed checkpoint for tree size `size`, durably, and keeps it in the tip.
    pub fn store_checkpoint(&self, size: u64, note: &str) -> Result<(), AuditLogError> {
        let tip = self.tip.as_ref().ok_or(AuditLogError::ReadOnly)?;
        self.checkpoints.insert(size.to_be_bytes(), note.as_bytes())?;
        self.flusher.flush()?;
        tip.write(|state| state.checkpoint = Some(note.to_owned()))?;
        Ok(())
    }

    /// Every stored checkpoint, oldest first, as (size, note).
    pub fn checkpoints(&self) -> impl Iterator<Item = Result<(u64, String), AuditLogError>> + '_ {
        self.checkpoints.iter().map(|entry| checkpoint_entry(entry?))
    }

    /// The newest stored checkpoint.
    pub fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, AuditLogError> {
        self.checkpoints.last()?.map(checkpoint_entry).transpose()
    }

    /// Records acknowledged so far.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    pub fn record(&self, seq: u64) -> Result<Option<Vec<u8>>, AuditLogError> {
        if seq >= self.size() {
            return Ok(None);
        }
        match self.read_record(seq)? {
            Some(v) => Ok(Some(v.to_vec())),
            None => Err(AuditLogError::Damaged(Damage::MissingRecord { seq })),
        }
    }

    /// Record `seq` as stored; a damaged page is named by the records it makes unreadable (found by reading on
    /// until one reads again), not by where it sits in sled's files.
    fn read_record(&self, seq: u64) -> Result<Option<sled::IVec>, Damage> {
        match self.records.get(seq.to_be_bytes()) {
            Ok(value) => Ok(value),
            Err(e) if is_corruption(&e) => {
                let mut last = seq;
                let end = self.size().max(seq + 1);
                while last + 1 < end
                    && matches!(self.records.get((last + 1).to_be_bytes()), Err(ref e) if is_corruption(e))
                {
                    last += 1;
                }
                Err(Damage::Unreadable { first: seq, last })
            }
            Err(e) => Err(Damage::Storage(e)),
        }
    }

    fn check_size(&self, requested: u64) -> Result<(), AuditLogError> {
        let size = self.size();
        if requested > size {
            return Err(AuditLogError::BeyondSize { requested, size });
        }
        Ok(())
    }

    /// The root of the first `size` records, for any `size` up to the current one.
    pub fn root(&self, size: u64) -> Result<Hash, AuditLogError> {
        self.check_size(size)?;
        self.root_unchecked(size)
    }

    /// The root over the nodes written so far, acknowledged or not (an append about to be counted).
    fn root_unchecked(&self, size: u64) -> Result<Hash, AuditLogError> {
        let view = NodeView::new(self);
        let root = merkle::root_from(&view, size);
        view.finish(root)
    }

    pub fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Vec<Hash>, AuditLogError> {
        self.check_size(size)?;
        let view = NodeView::new(self);
        let proof = merkle::inclusion_proof_from(&view, seq, size)?;
        view.finish(proof)
    }

    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, AuditLogError> {
        self.check_size(new)?;
        let view = NodeView::new(self);
        let proof = merkle::consistency_proof_from(&view, old, new)?;
        view.finish(proof)
    }

    /// Recomputes every leaf hash from the stored records and every stored node from its children, bottom up, and
    /// names the first bad record or node (for `audit verify`). Bottom up, a node that disagrees with children that
    /// were themselves checked is the damaged one.
    pub fn verify(&self) -> Result<(), Damage> {
        let size = self.size();
        let mut start = 0;
        while start < size {
            let end = (start + 65_536).min(size);
            let leaves = (start..end).map(|seq| self.leaf(seq)).collect::<Result<Vec<Hash>, Damage>>()?;
            self.check_pairs(start, &leaves)?;
            start = end;
        }
        // The last leaf of an odd-sized log has no node of its own; the tip's copy of its hash is all there is.
        if size % 2 == 1 {
            let seq = size - 1;
            let leaf = self.leaf(seq)?;
            if self.witness(seq, 1).is_some_and(|kept| kept[0] != leaf) {
                return Err(Damage::Record { seq });
            }
        }
        for level in 2..64u8 {
            let count = size >> level;
            if count == 0 {
                break;
            }
            for index in 0..count {
                let left = must_read_node(&self.nodes, level - 1, 2 * index)?;
                let right = must_read_node(&self.nodes, level - 1, 2 * index + 1)?;
                if must_read_node(&self.nodes, level, index)? != merkle::node_hash(&left, &right) {
                    return Err(Damage::Node { level, index });
                }
            }
        }
        Ok(())
    }

    /// The leaf hashes the tip kept for records `first..first + count`, when this log keeps or was given a tip that
    /// holds them all: a witness of what was acknowledged, used only to name damage.
    fn witness(&self, first: u64, count: u64) -> Option<Vec<Hash>> {
        let (path, acknowledged) = match (&self.tip, &self.read_tip) {
            (Some(tip), _) => (tip.path(), tip.state().size),
            (None, Some((path, size))) => (path.as_path(), *size),
            (None, None) => return None,
        };
        if first + count > acknowledged {
            return None;
        }
        let kept = Tip::read_leaves_from(path, first, count).ok()?;
        (kept.len() as u64 == count).then_some(kept)
    }

    /// Records `2 * index` and `2 * index + 1` (whose leaf hashes are `leaves`) and the stored node over them
    /// disagree; which changed? If the records' pair hashes, with its sibling, to the stored node above, the records
    /// are right and the node changed. Otherwise the tip's copy of the leaf hashes names the record that differs from
    /// what was acknowledged; without it the pair is named.
    fn blame_pair(&self, index: u64, leaves: &[Hash]) -> Result<Damage, Damage> {
        let computed = merkle::node_hash(&leaves[0], &leaves[1]);
        let (sibling, size) = (index ^ 1, self.size());
        if sibling < size >> 1 {
            let sibling_hash = must_read_node(&self.nodes, 1, sibling)?;
            let above = must_read_node(&self.nodes, 2, index >> 1)?;
            let pair = match index & 1 {
                0 => merkle::node_hash(&computed, &sibling_hash),
                _ => merkle::node_hash(&sibling_hash, &computed),
            };
            if pair == above {
                return Ok(Damage::Node { level: 1, index });
            }
        }
        let first = 2 * index;
        match self.witness(first, 2) {
            Some(kept) if kept[0] != leaves[0] => Ok(Damage::Record { seq: first }),
            Some(kept) if kept[1] != leaves[1] => Ok(Damage::Record { seq: first + 1 }),
            Some(_) => Ok(Damage::Node { level: 1, index }),
            None => Ok(Damage::Pair { first }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: u64) -> Vec<u8> {
        format!("{{\"event\":{i}}}").into_bytes()
    }

    fn open(path: &Path) -> (sled::Db, AuditLog) {
        let db = crate::database::open(path).unwrap();
        let log = AuditLog::open(&db, Flusher::new(&db), &path.with_extension("tip"), None).unwrap();
        (db, log)
    }

    fn ceil_log2(n: u64) -> u64 {
        u64::from(64 - (n - 1).leading_zeros())
    }

    /// Compares everything the log answers for a tree of `n` records with the in-memory reference.
    fn check_against_memory(log: &AuditLog, leaves: &[Hash], sizes: &[u64]) {
        for &size in sizes {
            let tree = &leaves[..size as usize];
            let root = merkle::root(tree);
            assert_eq!(log.root(size).unwrap(), root, "root of {size}");
            let step = (size / 7).max(1);
            for seq in (0..size).step_by(step as usize).chain([size.saturating_sub(1)]) {
                if size == 0 {
                    break;
                }
                let proof = log.inclusion_proof(seq, size).unwrap();
                assert_eq!(proof, merkle::inclusion_proof(tree, seq).unwrap(), "inclusion {seq} in {size}");
                merkle::verify_inclusion(&leaves[seq as usize], seq, size, &proof, &root).unwrap();
            }
            for old in (1..=size).step_by(step as usize).chain([size]) {
                if size == 0 {
                    break;
                }
                let proof = log.consistency_proof(old, size).unwrap();
                assert_eq!(proof, merkle::consistency_proof(tree, old).unwrap(), "consistency {old}..{size}");
                let old_root = merkle::root(&leaves[..old as usize]);
                merkle::verify_consistency(old, size, &old_root, &root, &proof).unwrap();
            }
        }
    }

    #[test]
    fn one_by_one_and_batches_match_the_in_memory_tree_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let n = 300u64;
        let leaves: Vec<Hash> = (0..n).map(|i| merkle::leaf_hash(&record(i))).collect();
        let sizes: Vec<u64> = (0..=n).filter(|s| *s < 70 || s % 13 == 0 || s.is_power_of_two() || *s == n).collect();
        let mut roots = Vec::new();
        {
            let (_db, log) = open(&dir.path().join("single"));
            assert_eq!(log.root(0).unwrap(), merkle::empty_root());
            for i in 0..n {
                assert_eq!(log.append(&[record(i)]).unwrap(), i..i + 1);
                assert_eq!(log.root(i + 1).unwrap(), merkle::root(&leaves[..=i as usize]));
            }
            check_against_memory(&log, &leaves, &sizes);
            roots.extend(sizes.iter().map(|&s| log.root(s).unwrap()));
            log.verify().unwrap();
        }
        {
            let (_db, log) = open(&dir.path().join("single"));
            assert_eq!(log.size(), n);
            assert_eq!(sizes.iter().map(|&s| log.root(s).unwrap()).collect::<Vec<_>>(), roots);
            assert_eq!(log.record(17).unwrap(), Some(record(17)));
            assert_eq!(log.record(n).unwrap(), None);
            log.verify().unwrap();
        }
        {
            let (_db, log) = open(&dir.path().join("batches"));
            let mut next = 0u64;
            for batch in [1u64, 2, 5, 1, 8, 13, 31, 64, 3, 0, 17, 100, 55].iter().cycle() {
                let batch = (*batch).min(n - next);
                let records: Vec<Vec<u8>> = (next..next + batch).map(record).collect();
                assert_eq!(log.append(&records).unwrap(), next..next + batch);
                next += batch;
                if next == n {
                    break;
                }
            }
            check_against_memory(&log, &leaves, &sizes);
        }
        let (_db, log) = open(&dir.path().join("batches"));
        assert_eq!(log.size(), n);
        assert_eq!(sizes.iter().map(|&s| log.root(s).unwrap()).collect::<Vec<_>>(), roots);
        log.verify().unwrap();
        assert!(matches!(log.root(n + 1), Err(AuditLogError::BeyondSize { requested: 301, size: 300 })));
        assert!(matches!(log.inclusion_proof(n, n), Err(AuditLogError::Proof(_))));
        assert!(matches!(log.consistency_proof(0, n), Err(AuditLogError::Proof(ProofError::EmptyTree))));
    }

    #[test]
    fn proofs_read_logarithmically_many_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, log) = open(&dir.path().join("db"));
        log.append(&(0..300).map(record).collect::<Vec<_>>()).unwrap();
        for size in [2u64, 3, 5, 64, 100, 255, 256, 257, 299, 300] {
            let bound = 2 * ceil_log2(size);
            for seq in 0..size {
                let view = NodeView::new(&log);
                merkle::inclusion_proof_from(&view, seq, size).unwrap();
                let reads = view.reads.get();
                view.finish(()).unwrap();
                assert!(reads <= bound, "inclusion {seq} in {size}: {reads} reads > {bound}");
            }
            for old in 1..size {
                let view = NodeView::new(&log);
                merkle::consistency_proof_from(&view, old, size).unwrap();
                let reads = view.reads.get();
                assert!(reads <= bound + 1, "consistency {old}..{size}: {reads} reads > {}", bound + 1);
            }
            let view = NodeView::new(&log);
            merkle::root_from(&view, size);
            assert!(view.reads.get() <= ceil_log2(size) + 1);
        }
    }

    #[test]
    fn verify_names_the_damaged_record_or_node() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let (db, log) = open(&path);
        log.append(&(0..100).map(record).collect::<Vec<_>>()).unwrap();
        log.verify().unwrap();
        let records = db.open_tree(RECORDS).unwrap();
        let nodes = db.open_tree(NODES).unwrap();

        let flip = |tree: &sled::Tree, key: &[u8], byte: usize| {
            let mut value = tree.get(key).unwrap().unwrap().to_vec();
            value[byte] ^= 0x01;
            tree.insert(key, value).unwrap()
        };
        let original = flip(&records, &41u64.to_be_bytes(), 3).unwrap();
        flip(&records, &77u64.to_be_bytes(), 0);
        assert!(matches!(log.verify(), Err(Damage::Record { seq: 41 })), "{:?}", log.verify());
        records.insert(41u64.to_be_bytes(), original).unwrap();
        assert!(matches!(log.verify(), Err(Damage::Record { seq: 77 })), "{:?}", log.verify());
        records.insert(77u64.to_be_bytes(), record(77)).unwrap();
        log.verify().unwrap();

        let original = flip(&nodes, &node_key(3, 5), 31).unwrap();
        assert!(matches!(log.verify(), Err(Damage::Node { level: 3, index: 5 })), "{:?}", log.verify());
        // Proofs use the node as stored (leaves 40..48 are the sibling of 32..40), so a verifier holding a good
        // root rejects them rather than the log silently serving a different tree.
        let leaves: Vec<Hash> = (0..100).map(|i| merkle::leaf_hash(&record(i))).collect();
        let proof = log.inclusion_proof(32, 100).unwrap();
        assert_ne!(proof, merkle::inclusion_proof(&leaves, 32).unwrap());
        assert!(merkle::verify_inclusion(&leaves[32], 32, 100, &proof, &merkle::root(&leaves)).is_err());
        nodes.insert(node_key(3, 5), original).unwrap();

        // A node over two records: the one above it (with its sibling) tells that the records are right.
        let original = flip(&nodes, &node_key(1, 10), 0).unwrap();
        assert!(matches!(log.verify(), Err(Damage::Node { level: 1, index: 10 })), "{:?}", log.verify());
        nodes.insert(node_key(1, 10), original).unwrap();
        // A changed record: the node above its pair disagrees too, and the tip's leaf hashes name the record; a log
        // read without its tip can only name the pair.
        let original = flip(&records, &99u64.to_be_bytes(), 2).unwrap();
        assert!(matches!(log.verify(), Err(Damage::Record { seq: 99 })), "{:?}", log.verify());
        let untipped = AuditLog::open_read_only(&db, Flusher::new(&db)).unwrap();
        let damage = untipped.verify().unwrap_err();
        assert!(matches!(damage, Damage::Pair { first: 98 }), "{damage:?}");
        assert_eq!(damage.first_record(), Some(98));
        drop(untipped);
        records.insert(99u64.to_be_bytes(), original).unwrap();
        let original = flip(&nodes, &node_key(1, 49), 0).unwrap();
        assert!(matches!(log.verify(), Err(Damage::Node { level: 1, index: 49 })), "{:?}", log.verify());
        nodes.insert(node_key(1, 49), original).unwrap();
        log.verify().unwrap();

        nodes.remove(node_key(2, 24)).unwrap();
        assert!(matches!(log.verify(), Err(Damage::MissingNode { level: 2, index: 24 })), "{:?}", log.verify());
        assert!(matches!(
            log.inclusion_proof(0, 100),
            Err(AuditLogError::Damaged(Damage::MissingNode { level: 2, index: 24 }))
        ));
        // sled keeps the directory locked while any handle (a tree included) is alive.
        drop((log, records, nodes, db));
        // The last node at level 2 for 100 records is (2, 24): a reopen notices it is gone.
        let db = crate::database::open(&path).unwrap();
        let err = AuditLog::open(&db, Flusher::new(&db), &path.with_extension("tip"), None).unwrap_err();
        assert!(matches!(err, AuditLogError::Damaged(Damage::MissingNode { level: 2, index: 24 })), "{err:?}");
    }

    #[test]
    fn a_log_with_the_stored_leaves_of_the_previous_version_opens_verifies_and_loses_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let leaves: Vec<Hash> = (0..77).map(|i| merkle::leaf_hash(&record(i))).collect();
        {
            let (db, log) = open(&path);
            log.append(&(0..77).map(record).collect::<Vec<_>>()).unwrap();
            // What the previous version also wrote: every leaf hash under level 0.
            let nodes = db.open_tree(NODES).unwrap();
            for (seq, leaf) in leaves.iter().enumerate() {
                nodes.insert(node_key(0, seq as u64), leaf).unwrap();
            }
            db.flush().unwrap();
        }
        let db = crate::database::open(&path).unwrap();
        let nodes = db.open_tree(NODES).unwrap();
        {
            // The stored leaves are not read: a changed one changes neither verification nor the root.
            let mut changed = leaves[40];
            changed[0] ^= 1;
            nodes.insert(node_key(0, 40), &changed).unwrap();
            let read_only = AuditLog::open_read_only(&db, Flusher::new(&db)).unwrap();
            read_only.verify().unwrap();
            assert_eq!(read_only.root(77).unwrap(), merkle::root(&leaves));
            // Record 41's proof starts with the leaf of record 40.
            assert_eq!(read_only.inclusion_proof(41, 77).unwrap(), merkle::inclusion_proof(&leaves, 41).unwrap());
            assert_eq!(nodes.range(stored_leaves()).count(), 77, "reading changes nothing");
        }
        let log = AuditLog::open(&db, Flusher::new(&db), &path.with_extension("tip"), None).unwrap();
        assert_eq!(nodes.range(stored_leaves()).count(), 0);
        assert_eq!(nodes.len(), 77 - 77usize.count_ones() as usize, "levels 1 and up: n - popcount(n) nodes");
        log.verify().unwrap();
        check_against_memory(&log, &leaves, &[1, 2, 63, 64, 77]);
        log.append(&[record(77)]).unwrap();
        log.verify().unwrap();
        assert_eq!(nodes.range(stored_leaves()).count(), 0, "appends write no leaves");
    }

    #[test]
    fn concurrent_appenders_produce_one_consistent_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let (threads, per_thread) = (8u64, 40u64);
        {
            let (_db, log) = open(&path);
            std::thread::scope(|scope| {
                for t in 0..threads {
                    let log = &log;
                    scope.spawn(move || {
                        let mut i = 0;
                        while i < per_thread {
                            let batch = (1 + (t + i) % 3).min(per_thread - i);
                            let records: Vec<Vec<u8>> =
                                (i..i + batch).map(|i| format!("{t}/{i}").into_bytes()).collect();
                            let range = log.append(&records).unwrap();
                            assert_eq!(range.end - range.start, batch);
                            i += batch;
                        }
                    });
                }
            });
            assert_eq!(log.size(), threads * per_thread);
            log.verify().unwrap();
        }
        let (_db, log) = open(&path);
        let total = threads * per_thread;
        assert_eq!(log.size(), total);
        log.verify().unwrap();
        let mut seen: Vec<Vec<u8>> = (0..total).map(|seq| log.record(seq).unwrap().unwrap()).collect();
        let leaves: Vec<Hash> = seen.iter().map(|r| merkle::leaf_hash(r)).collect();
        check_against_memory(&log, &leaves, &[1, 100, 255, 256, total]);
        seen.sort();
        let mut expected: Vec<Vec<u8>> =
            (0..threads).flat_map(|t| (0..per_thread).map(move |i| format!("{t}/{i}").into_bytes())).collect();
        expected.sort();
        assert_eq!(seen, expected);
    }
}
