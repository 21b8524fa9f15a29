//! The audit log's tamper-evidence promises, on a real sled database on disk: records written through the real
//! [`Auditor`] (concurrent requests forming batches, NIK subjects, mirrored admin changes), checkpoints signed by the
//! real [`Notary`], then the raw sled trees altered the way someone with the disk would alter them, and the damage
//! found by `audit verify`, by the notary at start, by an exported checkpoint or by an offline proof check.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use simpul_core::audit::checkpoint::{Checkpoint, Signer, Verifier};
use simpul_core::audit::merkle;
use simpul_core::audit::proof::{InclusionProof, ProofCheckError};
use simpul_core::audit::record::{Actor, AuditRecord, Entry};
use simpul_ledger::log::{AuditLog, AuditLogError, Damage};
use simpul_ledger::notary::{self, Notary, NotaryError};
use simpul_ledger::personal::PersonalData;
use simpul_ledger::queries::{self, Trail, Verification};
use simpul_ledger::{AdminEvent, Auditor, Flusher, Identifier};
use tokio::task::JoinSet;

mod common;
use common::{at, request, Outbox};

const SEED: [u8; 32] = [0x5e; 32];
const SUBJECT_SECRET: [u8; 32] = [0x42; 32];
const ORIGIN: &str = "simpul.gateway/TEST-3374";
const ZONE: chrono_tz::Tz = chrono_tz::Asia::Jakarta;

const RECORDS: &str = "audit_records";
const NODES: &str = "audit_nodes";
const CHECKPOINTS: &str = "audit_checkpoints";
const PERSONAL: &str = "audit_personal";

/// The log [`build_log`] makes: 200 requests and 2 admin changes.
const SIZE: u64 = 202;

fn node_key(level: u8, index: u64) -> [u8; 9] {
    let mut key = [0; 9];
    key[0] = level;
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

/// The key the gateway signs with, derived independently of the notary (what an auditor pins).
fn pinned() -> Verifier {
    Signer::new(ORIGIN, SEED).unwrap().verifier()
}

fn signer() -> Signer {
    notary::signer(SEED, Some(ORIGIN)).unwrap()
}

/// An owner's audit side: database, log, notary and writer thread, opened as `run` opens them.
struct Gateway {
    db: sled::Db,
    outbox: Outbox,
    log: Arc<AuditLog>,
    notary: Notary,
    auditor: Arc<Auditor>,
}

impl Gateway {
    fn open(path: &Path) -> Gateway {
        let (db, log) = open_log(path);
        let notary = Notary::open(signer(), log.clone()).unwrap();
        let days = path.with_file_name(format!("{}-days", path.file_name().unwrap().to_str().unwrap()));
        let personal = Arc::new(PersonalData::open(SUBJECT_SECRET, days).unwrap());
        let outbox = Outbox::default();
        let auditor = Auditor::start(log.clone(), outbox.clone(), personal, ZONE).unwrap();
        Gateway { db, outbox, log, notary, auditor }
    }

    fn verify(&self, exported: Option<&str>) -> Verification {
        queries::verify(&self.log, &pinned(), exported)
    }

    fn tree(&self, name: &str) -> sled::Tree {
        self.db.open_tree(name).unwrap()
    }

    fn sign(&self) -> (u64, String) {
        self.notary.sign_now().unwrap().unwrap()
    }

    /// Stops the writer and drops every handle, so the directory can be opened again.
    fn close(self) {
        self.auditor.close();
    }
}

/// The tip file of the log at `path`.
fn tip(path: &Path) -> std::path::PathBuf {
    path.with_extension("tip")
}

fn open_log(path: &Path) -> (sled::Db, Arc<AuditLog>) {
    let db = simpul_ledger::database::open(path).unwrap();
    let log = Arc::new(AuditLog::open(&db, Flusher::new(&db), &tip(path), Some(&pinned())).unwrap());
    (db, log)
}

/// The log in `db` (at `path`) without its tip, as the defences inside the database alone see it.
fn open_without_tip(db: &sled::Db) -> Arc<AuditLog> {
    Arc::new(AuditLog::open_read_only(db, Flusher::new(db)).unwrap())
}

/// [`AuditLog::open`]'s refusal of the log in `db` (at `path`). One handle for a whole test: sled releases its
/// directory lock only when its background threads let go of a dropped handle, so reopening at once may find it held.
fn refusal(db: &sled::Db, path: &Path) -> AuditLogError {
    AuditLog::open(db, Flusher::new(db), &tip(path), Some(&pinned())).unwrap_err()
}

fn clean(records: u64, checkpoints: u64) -> Verification {
    Verification {
        records,
        acknowledged: Some(records),
        checkpoints,
        consistent_with: None,
        problem: None,
        bad_record: None,
    }
}

/// A clean verification of a log opened without its tip.
fn untipped(records: u64, checkpoints: u64) -> Verification {
    Verification { acknowledged: None, ..clean(records, checkpoints) }
}

fn problem(v: &Verification) -> &str {
    v.problem.as_deref().unwrap_or_else(|| panic!("no problem found: {v:?}"))
}

fn nik(person: u64) -> String {
    format!("3374{:012}", 100_200 + person)
}

/// A few requests look people up, some people more than once.
fn subjects(i: u64) -> Vec<Identifier> {
    match i % 13 {
        0 => vec![Identifier::Nik(nik(i % 4))],
        6 => vec![Identifier::Nik(nik(i % 3)), Identifier::Kk(format!("3374{:012}", 900 + i % 2))],
        _ => Vec::new(),
    }
}

/// Records requests `range` concurrently (so the writer batches them); returns (request index, seq) pairs.
async fn record_all(auditor: &Arc<Auditor>, range: Range<u64>) -> Vec<(u64, u64)> {
    let mut calls = JoinSet::new();
    for i in range {
        let auditor = auditor.clone();
        calls.spawn(async move { (i, auditor.record(at(i), request(i), subjects(i)).await.unwrap()) });
    }
    let mut done = Vec::new();
    while let Some(call) = calls.join_next().await {
        done.push(call.unwrap());
    }
    done
}

/// An admin change committed to the outbox, then copied into the log; returns the log size after it.
async fn admin_change(gateway: &Gateway, n: u64) -> u64 {
    let event = AdminEvent {
        at: at(10_000 + n),
        actor: Actor::Cli { uid: 0, pid: Some(4_000 + n as i32) },
        action: "institution.suspend".into(),
        target: format!("DINKES-{n}"),
        detail: serde_json::json!({ "reason": "agreement ended", "n": n, "nested": { "z": [1, -2], "a": null } }),
        subjects: vec![],
    };
    gateway.outbox.commit(event);
    gateway.auditor.mirror_admin().await.unwrap()
}

/// What [`build_log`] signed along the way.
struct Built {
    /// Every checkpoint signed, oldest first.
    checkpoints: Vec<(u64, String)>,
    /// The checkpoint an auditor took away, covering [`EXPORTED`] records.
    exported: String,
}

const EXPORTED: u64 = 131;

/// A log of [`SIZE`] records with checkpoints at 61, 131 (exported), 172 and 202.
async fn build_log(path: &Path) -> (Gateway, Built) {
    let gateway = Gateway::open(path);
    let mut checkpoints = Vec::new();
    assert_eq!(record_all(&gateway.auditor, 0..60).await.len(), 60);
    assert_eq!(admin_change(&gateway, 1).await, 61);
    checkpoints.push(gateway.sign());
    record_all(&gateway.auditor, 60..130).await;
    checkpoints.push(gateway.sign());
    let exported = checkpoints[1].1.clone();
    assert_eq!(admin_change(&gateway, 2).await, 132);
    record_all(&gateway.auditor, 130..170).await;
    checkpoints.push(gateway.sign());
    record_all(&gateway.auditor, 170..200).await;
    checkpoints.push(gateway.sign());
    let sizes: Vec<u64> = checkpoints.iter().map(|(size, _)| *size).collect();
    assert_eq!(sizes, [61, EXPORTED, 172, SIZE]);
    assert_eq!(gateway.log.size(), SIZE);
    assert_eq!(gateway.verify(None), clean(SIZE, 4));
    let with_export = gateway.verify(Some(&exported));
    assert_eq!(with_export, Verification { consistent_with: Some(EXPORTED), ..clean(SIZE, 4) });
    (gateway, Built { checkpoints, exported })
}

/// The same record with different content (and still canonical, still numbered `seq`).
fn altered(canonical: &[u8]) -> Vec<u8> {
    let mut record = AuditRecord::from_canonical(canonical).unwrap();
    match &mut record.entry {
        Entry::Request(r) => r.latency_us += 1,
        Entry::Admin(a) => a.target.push('x'),
    }
    let bytes = record.canonical();
    assert_ne!(bytes, canonical);
    bytes
}

/// Byte positions to flip in a value of `len` bytes: the first, the last, the middle and two random ones.
fn positions(len: usize, rng: &mut StdRng) -> BTreeSet<usize> {
    [0, len - 1, len / 2, rng.gen_range(0..len), rng.gen_range(0..len)].into_iter().collect()
}

fn flipped(value: &[u8], pos: usize) -> Vec<u8> {
    let mut bad = value.to_vec();
    bad[pos] ^= 1 << (pos % 8);
    bad
}

#[tokio::test(flavor = "multi_thread")]
async fn every_flipped_byte_of_a_record_or_node_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, _) = build_log(&dir.path().join("db")).await;
    gateway.auditor.close();
    let verifier = pinned();
    // The log reads through these same trees (same db handle), so a change here is what it sees.
    let (records, nodes) = (gateway.tree(RECORDS), gateway.tree(NODES));
    let mut rng = StdRng::seed_from_u64(9162);

    // Every byte of one record (the first admin record, seq 60), then samples of many.
    let admin = records.get(60u64.to_be_bytes()).unwrap().unwrap();
    assert!(String::from_utf8_lossy(&admin).contains("\"admin\""));
    for pos in 0..admin.len() {
        records.insert(60u64.to_be_bytes(), flipped(&admin, pos)).unwrap();
        let v = gateway.verify(None);
        assert_eq!(v.bad_record, Some(60), "admin record byte {pos}: {v:?}");
    }
    records.insert(60u64.to_be_bytes(), admin).unwrap();
    assert_eq!(gateway.verify(None), clean(SIZE, 4));

    let mut seqs: BTreeSet<u64> = [0, 1, 5, SIZE / 2, EXPORTED - 1, EXPORTED, SIZE - 2, SIZE - 1].into();
    while seqs.len() < 14 {
        seqs.insert(rng.gen_range(0..SIZE));
    }
    let mut checks = 0;
    for &seq in &seqs {
        let key = seq.to_be_bytes();
        let original = records.get(key).unwrap().unwrap();
        for pos in positions(original.len(), &mut rng) {
            records.insert(key, flipped(&original, pos)).unwrap();
            let v = gateway.verify(None);
            assert_eq!(v.bad_record, Some(seq), "record {seq} byte {pos}: {v:?}");
            assert!(problem(&v).starts_with(&format!("record {seq} ")), "record {seq} byte {pos}: {v:?}");
            records.insert(key, original.clone()).unwrap();
            checks += 1;
        }
        assert_eq!(gateway.verify(None), clean(SIZE, 4), "after restoring record {seq}");
    }
    assert!(checks >= 3 * seqs.len());

    // Nodes at every level the tree stores (1 up to 7: 2^7 = 128 <= 202 < 256; leaves are the records' hashes):
    // first, middle and last of each.
    for level in 1..=7u8 {
        let count = SIZE >> level;
        assert!(count > 0);
        for index in BTreeSet::from([0, count / 2, count - 1]) {
            let key = node_key(level, index);
            let original = nodes.get(key).unwrap().unwrap();
            assert_eq!(original.len(), 32);
            for (n, pos) in positions(32, &mut rng).into_iter().enumerate() {
                nodes.insert(key, flipped(&original, pos)).unwrap();
                let v = gateway.verify(None);
                let at = format!("(level {level}, index {index})");
                assert!(problem(&v).contains(&at), "node {at} byte {pos}: {v:?}");
                assert_eq!(v.bad_record, None, "node {at} byte {pos}");
                // A proof that passes through the damaged node no longer checks against the signed root.
                let sibling = index ^ 1;
                if n == 0 && sibling < count {
                    let bundle = queries::prove(&gateway.notary, &[sibling << level]).unwrap().remove(0);
                    let err = bundle.check(Some(&verifier)).unwrap_err();
                    assert!(matches!(err, ProofCheckError::Inclusion(_)), "node {at}: {err:?}");
                }
                nodes.insert(key, original.clone()).unwrap();
            }
            assert_eq!(gateway.verify(None), clean(SIZE, 4), "after restoring node ({level}, {index})");
        }
    }
    gateway.close();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_record_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    build_log(&path).await.0.close();

    for seq in [0u64, 77, SIZE - 2] {
        let db = simpul_ledger::database::open(&path).unwrap();
        let saved = db.open_tree(RECORDS).unwrap().remove(seq.to_be_bytes()).unwrap().unwrap();
        // Refused at open: every record the tip's leaf hashes are rewritten from must be there.
        let err = refusal(&db, &path);
        assert!(matches!(err, AuditLogError::Damaged(Damage::MissingRecord { seq: s }) if s == seq), "{err:?}");
        let log = open_without_tip(&db);
        assert_eq!(log.size(), SIZE, "a record in the middle is gone; the last one still says how many there are");
        let v = queries::verify(&log, &pinned(), None);
        assert_eq!(v.bad_record, Some(seq), "{v:?}");
        assert_eq!(problem(&v), format!("record {seq} is missing"));
        assert!(matches!(log.record(seq), Err(AuditLogError::Damaged(Damage::MissingRecord { seq: s })) if s == seq));
        db.open_tree(RECORDS).unwrap().insert(seq.to_be_bytes(), saved).unwrap();
        assert_eq!(queries::verify(&log, &pinned(), None), untipped(SIZE, 4), "after putting record {seq} back");
        AuditLog::open(&db, Flusher::new(&db), &tip(&path), Some(&pinned())).unwrap();
        db.flush().unwrap();
    }

    // In a log of even size, deleting the newest record alone leaves the node over it and its left neighbour
    // behind: the log refuses to open, even without its tip.
    assert_eq!(SIZE % 2, 0);
    let saved = {
        let db = simpul_ledger::database::open(&path).unwrap();
        let saved = db.open_tree(RECORDS).unwrap().remove((SIZE - 1).to_be_bytes()).unwrap().unwrap();
        db.flush().unwrap();
        saved
    };
    let db = simpul_ledger::database::open(&path).unwrap();
    let err = refusal(&db, &path);
    assert!(
        matches!(err, AuditLogError::Damaged(Damage::ExtraNode { level: 1, index }) if index == (SIZE - 1) / 2),
        "{err:?}"
    );
    let err = AuditLog::open_read_only(&db, Flusher::new(&db)).unwrap_err();
    assert!(matches!(err, AuditLogError::Damaged(Damage::ExtraNode { level: 1, .. })), "{err:?}");
    db.open_tree(RECORDS).unwrap().insert((SIZE - 1).to_be_bytes(), saved).unwrap();
    db.flush().unwrap();
    drop(db);

    // In a log of odd size, the newest record has no node of its own, and the nodes of one record fewer are the same:
    // only the tip shows that it is gone.
    let gateway = Gateway::open(&path);
    record_all(&gateway.auditor, 200..201).await;
    gateway.close();
    let db = simpul_ledger::database::open(&path).unwrap();
    db.open_tree(RECORDS).unwrap().remove(SIZE.to_be_bytes()).unwrap().unwrap();
    let err = refusal(&db, &path);
    assert!(
        matches!(err, AuditLogError::Damaged(Damage::Shorter { holds, acknowledged }) if holds == SIZE && acknowledged == SIZE + 1),
        "{err:?}"
    );
    let log = open_without_tip(&db);
    assert_eq!(queries::verify(&log, &pinned(), None), untipped(SIZE, 4), "the database alone shows nothing");
    let state = simpul_ledger::tip::Tip::read(&tip(&path)).unwrap().unwrap();
    let v = queries::verify_against(&log, &pinned(), Some(&state), None);
    assert_eq!((v.bad_record, v.acknowledged), (Some(SIZE), Some(SIZE + 1)), "{v:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn truncating_the_newest_records_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (gateway, built) = build_log(&path).await;
    let latest = built.checkpoints.last().unwrap().1.clone();
    let early_root = gateway.log.root(61).unwrap();
    gateway.close();

    // A careful attacker removes the newest records and every node that only a larger tree has, so the log opens.
    let kept = 100u64;
    assert!(kept < EXPORTED && kept > 61);
    {
        let db = simpul_ledger::database::open(&path).unwrap();
        let (records, nodes) = (db.open_tree(RECORDS).unwrap(), db.open_tree(NODES).unwrap());
        for seq in kept..SIZE {
            records.remove(seq.to_be_bytes()).unwrap().unwrap();
        }
        let mut removed = 0;
        for level in 1..64u8 {
            let (from, to) = (kept >> level, SIZE >> level);
            if to == 0 {
                break;
            }
            for index in from..to {
                nodes.remove(node_key(level, index)).unwrap().unwrap();
                removed += 1;
            }
        }
        // A tree of n leaves stores n - popcount(n) nodes above them.
        let stored = |n: u64| n - u64::from(n.count_ones());
        assert_eq!(removed, stored(SIZE) - stored(kept));
        db.flush().unwrap();
    }

    // The tip kept outside the database says how many were acknowledged: the log is refused at open, naming the
    // first missing record, and so is a log whose tip file was deleted too.
    let db = simpul_ledger::database::open(&path).unwrap();
    let err = refusal(&db, &path);
    assert!(
        matches!(err, AuditLogError::Damaged(Damage::Shorter { holds, acknowledged }) if holds == kept && acknowledged == SIZE),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(&format!("records {kept}..={}", SIZE - 1)), "{message}");
    let saved = path.with_extension("saved");
    std::fs::rename(tip(&path), &saved).unwrap();
    assert!(matches!(refusal(&db, &path), AuditLogError::TipMissing(_)));
    std::fs::rename(&saved, tip(&path)).unwrap();

    // Without the tip (an attacker who also replaced it), the defences inside the database still hold.
    let log = open_without_tip(&db);
    assert_eq!(log.size(), kept);
    assert_eq!(log.root(61).unwrap(), early_root, "the prefix is untouched");
    // The notary refuses to start: its newest checkpoint covers records that are gone.
    let err = Notary::open(signer(), log.clone()).unwrap_err();
    assert!(matches!(err, NotaryError::Shrunk { size, signed } if size == kept && signed == SIZE), "{err:?}");
    let v = queries::verify(&log, &pinned(), None);
    assert!(problem(&v).contains(&format!("checkpoint at size {EXPORTED} was signed but the log holds {kept}")));

    // The attacker also deletes the checkpoints past the new end: the log is self-consistent again...
    let checkpoints = db.open_tree(CHECKPOINTS).unwrap();
    for (size, _) in &built.checkpoints {
        if *size > kept {
            checkpoints.remove(size.to_be_bytes()).unwrap().unwrap();
        }
    }
    let notary = Notary::open(signer(), log.clone()).unwrap();
    assert_eq!(notary.log().latest_checkpoint().unwrap().unwrap().0, 61);
    assert_eq!(queries::verify(&log, &pinned(), None), untipped(kept, 1));
    // ...but not with a checkpoint an auditor took away earlier.
    for exported in [&built.exported, &latest] {
        let v = queries::verify(&log, &pinned(), Some(exported));
        assert_eq!(v.consistent_with, None);
        assert!(problem(&v).contains(&format!("but the log holds {kept}: records were removed")), "{v:?}");
    }
    // An exported checkpoint the truncated log still covers checks, so the one above failed for the truncation.
    let v = queries::verify(&log, &pinned(), Some(&built.checkpoints[0].1));
    assert_eq!(v, Verification { consistent_with: Some(61), ..untipped(kept, 1) });
    // With the tip, verification names the first missing record.
    let state = simpul_ledger::tip::Tip::read(&tip(&path)).unwrap().unwrap();
    let v = queries::verify_against(&log, &pinned(), Some(&state), None);
    assert_eq!((v.bad_record, v.acknowledged), (Some(kept), Some(SIZE)), "{v:?}");
}

/// `audit verify` on a stopped gateway (its database copied, opened read-only) names exactly the record that
/// changed, by the leaf hashes in the tip beside it: the odd record of a pair, and the last record of an odd-sized log,
/// which no node covers alone; and a changed last node at level 1 (no sibling to check it by) is named a node.
#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_gateways_verify_names_the_changed_record() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    // The tip of a database at `audit` is `audit.tip`, where [`Files`] keeps it.
    let path = dir.path().join("audit");
    let files = simpul_ledger::Files::new(dir.path());
    assert_eq!(files.tip(), tip(&path));
    let (gateway, _) = build_log(&path).await;
    record_all(&gateway.auditor, 200..201).await;
    gateway.close();
    let size = SIZE + 1;
    let seed = base64::engine::general_purpose::STANDARD.encode(SEED);
    simpul_files::create_private(&files.audit_key(), seed.as_bytes()).unwrap();
    let stopped = || queries::verify_stopped(&files, &path, Some(ORIGIN), None).unwrap();
    assert_eq!(stopped(), clean(size, 4));
    // Changes `key` in `tree` to what `change` makes of it, with the database closed again; returns what was there.
    let change = |tree: &str, key: &[u8], change: &dyn Fn(&[u8]) -> Vec<u8>| {
        let db = simpul_ledger::database::open(&path).unwrap();
        let tree = db.open_tree(tree).unwrap();
        let original = tree.get(key).unwrap().unwrap();
        tree.insert(key, change(&original)).unwrap();
        db.flush().unwrap();
        original.to_vec()
    };

    assert_eq!(size % 2, 1);
    for seq in [1, 61, EXPORTED, size - 2, size - 1] {
        let key = seq.to_be_bytes();
        let original = change(RECORDS, &key, &altered);
        let v = stopped();
        assert_eq!(v.bad_record, Some(seq), "record {seq}: {v:?}");
        assert!(problem(&v).starts_with(&format!("record {seq} ")), "record {seq}: {v:?}");
        change(RECORDS, &key, &|_| original.clone());
        assert_eq!(stopped(), clean(size, 4), "after restoring record {seq}");
    }

    let last = node_key(1, size / 2 - 1);
    let original = change(NODES, &last, &|node| flipped(node, 7));
    let v = stopped();
    assert!(problem(&v).contains(&format!("(level 1, index {})", size / 2 - 1)), "{v:?}");
    assert_eq!(v.bad_record, None, "{v:?}");
    change(NODES, &last, &|_| original.clone());
    assert_eq!(stopped(), clean(size, 4));
}

/// A crash after an append's flush and before its tip was synced leaves the database ahead of the tip: that is no
/// damage, and the log opens, verifies and goes on.
#[tokio::test(flavor = "multi_thread")]
async fn a_database_ahead_of_its_tip_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let gateway = Gateway::open(&path);
    record_all(&gateway.auditor, 0..40).await;
    let behind = std::fs::read(tip(&path)).unwrap();
    record_all(&gateway.auditor, 40..90).await;
    gateway.close();
    let mut file = std::fs::OpenOptions::new().write(true).open(tip(&path)).unwrap();
    std::io::Write::write_all(&mut file, &behind).unwrap();
    file.set_len(behind.len() as u64).unwrap();
    drop(file);
    assert_eq!(simpul_ledger::tip::Tip::read(&tip(&path)).unwrap().unwrap().size, 40);
    let gateway = Gateway::open(&path);
    assert_eq!(gateway.log.size(), 90);
    record_all(&gateway.auditor, 90..91).await;
    assert_eq!(gateway.verify(None), clean(91, 0));
    gateway.close();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rewritten_history_resigned_with_the_same_key_is_caught_by_an_exported_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, built) = build_log(&dir.path().join("db")).await;
    let originals: Vec<Vec<u8>> = (0..SIZE).map(|seq| gateway.log.record(seq).unwrap().unwrap()).collect();
    let latest = built.checkpoints.last().unwrap().1.clone();
    gateway.close();

    // Rewritten in place, with every node above it recomputed so the log is internally consistent: the notary's
    // check at start (newest checkpoint's root) refuses it, and so does `verify` through the stored checkpoints.
    {
        let db = simpul_ledger::database::open(dir.path().join("db")).unwrap();
        let (records, nodes) = (db.open_tree(RECORDS).unwrap(), db.open_tree(NODES).unwrap());
        records.insert(5u64.to_be_bytes(), altered(&originals[5])).unwrap();
        let mut hash = merkle::leaf_hash(&altered(&originals[5]));
        for level in 1..64u8 {
            let index = 5u64 >> level;
            if index >= SIZE >> level {
                break;
            }
            let sibling: [u8; 32] = match level {
                // Leaves are not stored: record 5's sibling leaf is record 4's hash.
                1 => merkle::leaf_hash(&originals[4]),
                _ => nodes
                    .get(node_key(level - 1, (5 >> (level - 1)) ^ 1))
                    .unwrap()
                    .unwrap()
                    .as_ref()
                    .try_into()
                    .unwrap(),
            };
            hash = if (5u64 >> (level - 1)) & 1 == 0 {
                merkle::node_hash(&hash, &sibling)
            } else {
                merkle::node_hash(&sibling, &hash)
            };
            nodes.insert(node_key(level, index), &hash).unwrap();
        }
        db.flush().unwrap();
    }
    {
        let db = simpul_ledger::database::open(dir.path().join("db")).unwrap();
        let err = refusal(&db, &dir.path().join("db"));
        assert!(matches!(err, AuditLogError::Damaged(Damage::Rewritten { size: SIZE })), "{err:?}");
        let log = open_without_tip(&db);
        log.verify().unwrap();
        let err = Notary::open(signer(), log.clone()).unwrap_err();
        assert!(matches!(err, NotaryError::Rewritten { size: SIZE }), "{err:?}");
        let v = queries::verify(&log, &pinned(), None);
        assert!(problem(&v).contains("root at size 61 differs from the checkpoint's: history was rewritten"), "{v:?}");
    }

    // Someone holding the signing key rebuilds the log with record 5 changed and signs it again, at several sizes.
    let mut forged = originals.clone();
    forged[5] = altered(&originals[5]);
    let (_db, log) = open_log(&dir.path().join("rewritten"));
    let notary = Notary::open(signer(), log.clone()).unwrap();
    assert_eq!(notary.verifier(), pinned());
    assert_eq!(log.append(&forged[..100]).unwrap(), 0..100);
    notary.sign_now().unwrap().unwrap();
    assert_eq!(log.append(&forged[100..]).unwrap(), 100..SIZE);
    notary.sign_now().unwrap().unwrap();

    // On its own the rewritten log is flawless.
    assert_eq!(queries::verify(&log, &pinned(), None), clean(SIZE, 2));
    // The checkpoint exported before the rewrite (131 records) is not a prefix of it.
    let v = queries::verify(&log, &pinned(), Some(&built.exported));
    assert_eq!(v.consistent_with, None);
    let text = problem(&v);
    assert!(
        text.contains(&format!("checkpoint at size {EXPORTED}")) && text.contains("history was rewritten"),
        "{v:?}"
    );
    // An exported checkpoint of the same size: the roots differ.
    let v = queries::verify(&log, &pinned(), Some(&latest));
    assert!(problem(&v).contains(&format!("root at size {SIZE} differs")), "{v:?}");
    assert!(problem(&v).contains("history was rewritten"), "{v:?}");

    // Growing the rewritten log past the export does not help.
    let mut next = AuditRecord::from_canonical(&originals[SIZE as usize - 1]).unwrap();
    next.seq = SIZE;
    assert_eq!(log.append(&[next.canonical()]).unwrap(), SIZE..SIZE + 1);
    notary.sign_now().unwrap().unwrap();
    assert_eq!(queries::verify(&log, &pinned(), None), clean(SIZE + 1, 3));
    let v = queries::verify(&log, &pinned(), Some(&latest));
    assert!(problem(&v).contains(&format!("not an extension of the checkpoint at size {SIZE}")), "{v:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_checkpoint_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, _) = build_log(&dir.path().join("db")).await;
    let verifier = pinned();
    let forger = Signer::new(ORIGIN, [0x66; 32]).unwrap();
    assert_eq!(forger.verifier().name(), verifier.name());
    assert_ne!(forger.verifier(), verifier);
    let forge = |size: u64| {
        let root = gateway.log.root(size).unwrap();
        forger.sign(&Checkpoint { origin: ORIGIN.to_owned(), size, root, extensions: vec![] }).unwrap()
    };

    // The real size and root, signed by another key, in place of the real newest checkpoint.
    let forged = forge(SIZE);
    let checkpoints = gateway.tree(CHECKPOINTS);
    let real = checkpoints.insert(SIZE.to_be_bytes(), forged.as_bytes()).unwrap().unwrap();
    // The tip kept the genuine note, so it is the stored one that is named as differing.
    let v = gateway.verify(None);
    assert!(problem(&v).contains(&format!("checkpoint at size {SIZE}, the newest signed")), "{v:?}");
    assert_eq!(v.bad_record, None);
    // Without the tip, the stored note's signature is what fails.
    let v = queries::verify_against(&gateway.log, &verifier, None, None);
    assert!(problem(&v).starts_with(&format!("checkpoint at size {SIZE}: ")), "{v:?}");
    checkpoints.insert(SIZE.to_be_bytes(), real).unwrap();
    assert_eq!(gateway.verify(None), clean(SIZE, 4));

    // Added at a size the gateway never signed.
    checkpoints.insert(150u64.to_be_bytes(), forge(150).as_bytes()).unwrap();
    let v = gateway.verify(None);
    assert!(problem(&v).starts_with("checkpoint at size 150: "), "{v:?}");
    checkpoints.remove(150u64.to_be_bytes()).unwrap().unwrap();
    assert_eq!(gateway.verify(None), clean(SIZE, 4));

    // Handed over as the exported checkpoint.
    let v = gateway.verify(Some(&forged));
    assert!(problem(&v).starts_with("the exported checkpoint: "), "{v:?}");
    assert_eq!(v.consistent_with, None);

    // In a proof: only a check that does not pin the key is fooled, and it says so.
    let mut proof = queries::prove(&gateway.notary, &[42]).unwrap().remove(0);
    proof.check(Some(&verifier)).unwrap();
    proof.checkpoint = forged;
    assert!(matches!(proof.check(Some(&verifier)), Err(ProofCheckError::Checkpoint(_))));
    assert!(!proof.check(None).unwrap().key_pinned);

    // Signed with the log's own key, size 0 with a root that is not the empty tree's: never a tree, so not a prefix.
    let empty =
        Checkpoint { origin: ORIGIN.to_owned(), size: 0, root: gateway.log.root(1).unwrap(), extensions: vec![] };
    let v = gateway.verify(Some(&signer().sign(&empty).unwrap()));
    assert!(problem(&v).contains("size 0 whose root is not the empty tree's"), "{v:?}");
    gateway.close();
}

#[tokio::test(flavor = "multi_thread")]
async fn proofs_check_offline_with_the_pinned_key() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, _) = build_log(&dir.path().join("db")).await;
    let seqs = [0u64, 1, 5, 60, 101, EXPORTED, SIZE - 2, SIZE - 1];
    let proofs = queries::prove(&gateway.notary, &seqs).unwrap();
    assert_eq!(proofs.len(), seqs.len());
    let mut files = Vec::new();
    for (proof, &seq) in proofs.iter().zip(&seqs) {
        assert_eq!(proof.index, seq);
        assert_eq!(proof.record, gateway.log.record(seq).unwrap().unwrap());
        files.push(proof.to_text());
    }
    // Nothing from the gateway is needed any more: not the database, not the notary, only the key's text.
    gateway.close();
    dir.close().unwrap();
    let verifier = Verifier::from_vkey(&pinned().vkey()).unwrap();

    for (file, &seq) in files.iter().zip(&seqs) {
        let proof = InclusionProof::parse(file).unwrap();
        let checked = proof.check(Some(&verifier)).unwrap();
        assert!(checked.key_pinned);
        assert_eq!(checked.record.seq, seq);
        assert_eq!(checked.checkpoint.size, SIZE);
        // Compact: 45 bytes a hash, at most ceil(log2(202)) = 8 of them.
        assert!(proof.hashes.len() <= 8, "{}", proof.hashes.len());

        let mut changed = proof.clone();
        changed.record = altered(&proof.record);
        let err = changed.check(Some(&verifier)).unwrap_err();
        assert!(matches!(err, ProofCheckError::Inclusion(_)), "record {seq}: {err:?}");

        let mut changed = proof.clone();
        changed.record =
            String::from_utf8(changed.record).unwrap().replacen("\"at\":\"2026-", "\"at\":\"2025-", 1).into_bytes();
        assert_ne!(changed.record, proof.record);
        assert!(changed.check(Some(&verifier)).is_err(), "record {seq} with another date");

        let mut changed = proof.clone();
        changed.hashes[0][0] ^= 1;
        assert!(matches!(changed.check(Some(&verifier)), Err(ProofCheckError::Inclusion(_))));

        let mut changed = proof.clone();
        changed.index ^= 1;
        assert!(changed.check(Some(&verifier)).is_err());

        // Any one byte of the file flipped: the file no longer checks (or no longer parses).
        for at in (0..file.len()).step_by(7) {
            let mut bytes = file.clone().into_bytes();
            bytes[at] ^= 0x01;
            let Ok(text) = String::from_utf8(bytes) else { continue };
            let verdict = InclusionProof::parse(&text).and_then(|p| p.check(Some(&verifier)));
            assert!(verdict.is_err(), "record {seq}: byte {at} flipped and still valid");
        }
    }
}

fn jakarta(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    ZONE.with_ymd_and_hms(y, m, d, h, min, 0).unwrap().to_utc()
}

async fn record_one(gateway: &Gateway, at: DateTime<Utc>, id: &str, subjects: Vec<Identifier>) -> u64 {
    let mut record = request(7);
    record.request_id = id.to_owned();
    gateway.auditor.record(at, record, subjects).await.unwrap()
}

fn seqs_of(trail: &Trail, verifier: &Verifier) -> Vec<u64> {
    trail.entries.iter().map(|(_, proof)| proof.check(Some(verifier)).unwrap().record.seq).collect()
}

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut files = 0;
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            files += 1;
            let bytes = std::fs::read(&path).unwrap();
            if bytes.windows(needle.len()).any(|w| w == needle) {
                found.push(path.display().to_string());
            }
        }
    }
    assert!(files > 0, "no files under {}", dir.display());
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_destroys_the_link_but_the_log_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let gateway = Gateway::open(&path);
    let verifier = pinned();
    let keys = gateway.auditor.personal().clone();
    let (old_nik, old_kk, new_nik) = ("3374015501900001", "3374010101100002", "3374026607950003");
    let id = |n: &str| Identifier::Nik(n.to_owned());

    record_all(&gateway.auditor, 0..10).await;
    // The old person on 1 March (local time), in concurrent calls; once with their family card too.
    let mut calls = JoinSet::new();
    for i in 0..5u32 {
        let auditor = gateway.auditor.clone();
        let mut ids = vec![id(old_nik)];
        if i == 2 {
            ids.push(Identifier::Kk(old_kk.to_owned()));
        }
        calls.spawn(async move {
            let mut record = request(u64::from(i));
            record.request_id = format!("old-{i}");
            auditor.record(jakarta(2026, 3, 1, 9 + i, 30), record, ids).await.unwrap()
        });
    }
    let mut old_seqs = Vec::new();
    while let Some(seq) = calls.join_next().await {
        old_seqs.push(seq.unwrap());
    }
    old_seqs.sort();
    record_all(&gateway.auditor, 10..20).await;
    // The new person just after local midnight of 5 March: still 4 March in UTC.
    let mut new_seqs = Vec::new();
    for (i, minute) in [5u32, 20, 40].into_iter().enumerate() {
        let at = jakarta(2026, 3, 5, 0, minute);
        assert_eq!(at.date_naive(), NaiveDate::from_ymd_opt(2026, 3, 4).unwrap());
        new_seqs.push(record_one(&gateway, at, &format!("new-{i}"), vec![id(new_nik)]).await);
    }
    record_all(&gateway.auditor, 20..30).await;
    gateway.sign();

    let personal = gateway.tree(PERSONAL);
    assert_eq!(personal.len(), 3 + 5, "old NIK, old KK, new NIK, plus the 3 NIKs and 2 KKs of `subjects`");
    let old_bundles = queries::subject(&gateway.notary, &keys, &id(old_nik)).unwrap();
    assert_eq!(seqs_of(&old_bundles, &verifier), old_seqs);
    let kk = queries::subject(&gateway.notary, &keys, &Identifier::Kk(old_kk.to_owned())).unwrap();
    assert_eq!(kk.entries.len(), 1);
    let (kk_record, _) = &kk.entries[0];
    assert!(old_seqs.contains(&kk_record.seq));
    assert!(matches!(&kk_record.entry, Entry::Request(r) if r.request_id == "old-2"));
    let new_bundles = queries::subject(&gateway.notary, &keys, &id(new_nik)).unwrap();
    assert_eq!(seqs_of(&new_bundles, &verifier), new_seqs);
    let records_before: Vec<Vec<u8>> =
        (0..gateway.log.size()).map(|s| gateway.log.record(s).unwrap().unwrap()).collect();

    // What sled may keep of the entries in its files after they are removed: every value as it is now.
    let stale: Vec<(sled::IVec, sled::IVec)> = personal.iter().map(Result::unwrap).collect();
    let days_dir = dir.path().join("db-days");
    let day_keys = || -> BTreeSet<String> {
        std::fs::read_dir(&days_dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect()
    };
    assert!(day_keys().contains("2026-03-01.key") && day_keys().contains("2026-03-05.key"), "{:?}", day_keys());

    // Everyone last seen before 5 March (local) goes: the old NIK and KK, and the `subjects` people (2 March).
    let destroyed = gateway.auditor.destroy_personal_data(NaiveDate::from_ymd_opt(2026, 3, 5).unwrap()).await.unwrap();
    assert_eq!(destroyed, 2 + 5);
    assert_eq!(personal.len(), 1);
    // The keys of the destroyed days are gone, so old copies of their salts are noise: put every stale entry back,
    // as someone reading sled's files would find them, and the old person still cannot be found.
    assert!(day_keys().iter().all(|name| name.as_str() >= "2026-03-05"), "{:?}", day_keys());
    assert!(!day_keys().is_empty(), "the newer person's day key stays");
    for (key, value) in &stale {
        personal.insert(key, value).unwrap();
    }
    assert!(
        queries::subject(&gateway.notary, &keys, &id(old_nik)).unwrap().entries.is_empty(),
        "a stale copy decrypted"
    );
    assert!(queries::subject(&gateway.notary, &keys, &Identifier::Kk(old_kk.to_owned())).unwrap().entries.is_empty());
    // The stale entries are past retention themselves: the next round removes them again.
    gateway.auditor.destroy_personal_data(NaiveDate::from_ymd_opt(2026, 3, 5).unwrap()).await.unwrap();
    assert_eq!(personal.len(), 1);
    assert!(queries::subject(&gateway.notary, &keys, &id(old_nik)).unwrap().entries.is_empty());
    assert!(queries::subject(&gateway.notary, &keys, &Identifier::Kk(old_kk.to_owned())).unwrap().entries.is_empty());
    let still = queries::subject(&gateway.notary, &keys, &id(new_nik)).unwrap();
    assert_eq!(seqs_of(&still, &verifier), new_seqs);

    // The records, and so every proof, are as they were.
    let records_after: Vec<Vec<u8>> =
        (0..gateway.log.size()).map(|s| gateway.log.record(s).unwrap().unwrap()).collect();
    assert_eq!(records_after, records_before);
    let size = gateway.log.size();
    assert_eq!(gateway.verify(None), clean(size, 1));
    for (_, proof) in &old_bundles.entries {
        proof.check(Some(&verifier)).unwrap();
    }

    // Seen again, the old person gets a new salt: only the new record leads to them.
    let again = record_one(&gateway, jakarta(2026, 3, 12, 10, 0), "old-again", vec![id(old_nik)]).await;
    let found = queries::subject(&gateway.notary, &keys, &id(old_nik)).unwrap();
    assert_eq!(seqs_of(&found, &verifier), [again]);
    let commitment =
        |seq: u64| match AuditRecord::from_canonical(&gateway.log.record(seq).unwrap().unwrap()).unwrap().entry {
            Entry::Request(r) => r.subjects,
            Entry::Admin(_) => panic!("record {seq} is an admin record"),
        };
    assert_eq!(commitment(again).len(), 1);
    assert!(!commitment(old_seqs[0]).contains(&commitment(again)[0]));
    assert_eq!(gateway.verify(None), clean(size + 1, 2));
    drop(personal);
    gateway.close();

    // No identifier was ever written in clear; the scan does find what was written (a request id).
    assert!(!files_containing(&path, b"\"request_id\":\"old-again\"").is_empty());
    for number in [old_nik, old_kk, new_nik] {
        assert_eq!(files_containing(&path, number.as_bytes()), Vec::<String>::new(), "{number} stored in clear");
    }
    for person in 0..4 {
        assert_eq!(files_containing(&path, nik(person).as_bytes()), Vec::<String>::new());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_record_per_call_and_sequence_numbers_are_dense() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::open(&dir.path().join("db"));
    let mut calls = JoinSet::new();
    for i in 0..500u64 {
        let auditor = gateway.auditor.clone();
        calls.spawn(async move {
            let mut record = request(i);
            record.request_id = format!("dense-{i}");
            (i, auditor.record(at(i), record, subjects(i)).await.unwrap())
        });
    }
    let mut by_seq = BTreeMap::new();
    while let Some(call) = calls.join_next().await {
        let (i, seq) = call.unwrap();
        assert_eq!(by_seq.insert(seq, i), None, "seq {seq} given twice");
    }
    assert_eq!(by_seq.keys().copied().collect::<Vec<u64>>(), (0..500).collect::<Vec<u64>>());
    assert_eq!(gateway.log.size(), 500);

    let records = gateway.tree(RECORDS);
    assert_eq!(records.len(), 500);
    for entry in records.iter() {
        let (key, value) = entry.unwrap();
        let key = u64::from_be_bytes(key.as_ref().try_into().unwrap());
        let record = AuditRecord::from_canonical(&value).unwrap();
        assert_eq!(record.seq, key);
        let Entry::Request(request) = record.entry else { panic!("record {key} is not a request") };
        assert_eq!(request.request_id, format!("dense-{}", by_seq[&key]), "record {key} is another call's");
        assert_eq!(record.at, at(by_seq[&key]));
    }
    gateway.sign();
    assert_eq!(gateway.verify(None), clean(500, 1));
    drop(records);
    gateway.close();
}

/// A record that arrives after a later one (a long request finishing after a short one begun after it) does not move
/// its person's last use back: retention counts from the latest use, whatever the order of writing.
#[tokio::test(flavor = "multi_thread")]
async fn last_use_only_moves_forward() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::open(&dir.path().join("db"));
    let keys = gateway.auditor.personal().clone();
    let person = Identifier::Nik("3374015501900001".to_owned());
    record_one(&gateway, jakarta(2026, 3, 5, 0, 1), "later", vec![person.clone()]).await;
    record_one(&gateway, jakarta(2026, 3, 4, 23, 59), "earlier", vec![person.clone()]).await;
    let destroyed = gateway.auditor.destroy_personal_data(NaiveDate::from_ymd_opt(2026, 3, 5).unwrap()).await.unwrap();
    assert_eq!(destroyed, 0, "last used on 5 March, so kept");
    assert_eq!(queries::subject(&gateway.notary, &keys, &person).unwrap().entries.len(), 2);
    let destroyed = gateway.auditor.destroy_personal_data(NaiveDate::from_ymd_opt(2026, 3, 6).unwrap()).await.unwrap();
    assert_eq!(destroyed, 1);
    assert!(queries::subject(&gateway.notary, &keys, &person).unwrap().entries.is_empty());
    gateway.auditor.close();
}
