//! Simpul's audit-log proofs checked by an implementation we did not write: Cloudflare's `signed_note` (C2SP
//! signed-note, a port of Go's `golang.org/x/mod/sumdb/note`) and `tlog_tiles` (RFC 6962/9162 Merkle proofs and
//! C2SP tlog-checkpoint, a port of Go's `golang.org/x/mod/sumdb/tlog`).
//!
//! Our own Rust checker and the Python script in `integration/tests/python` were written by the same people who
//! wrote the prover, so a misreading of a specification could sit on both sides and cancel out. Here the oracle sees
//! only what an auditor gets: the verifier key text that `audit key` shows, and the proof files that `audit prove`
//! and `audit consistency` write (parsed below from the C2SP text formats, not by our parser; every hash, size,
//! root and signature is decoded and checked by the oracle's code).
//!
//! On a real log (sled on disk in a temporary directory, opened through [`Ledger::open`] with its key file,
//! records appended by the real [`Auditor`] writer thread, checkpoints signed by the real `Notary`), at twenty
//! tree sizes from 1 to 300 (powers of two and their neighbours among them):
//!
//! 1. every signed checkpoint note verifies with `signed_note` given only our `vkey` text, re-encodes byte for byte,
//!    and its body parses as a `tlog_tiles::Checkpoint` whose origin, size and root are ours; the root is also the
//!    one `tlog_tiles` computes itself from the records; and `signed_note`, given the seed, signs each body into
//!    our note byte for byte, accepting the key ID our `vkey` states for that seed;
//! 2. every record's inclusion proof at every checkpoint size checks with `tlog_tiles::check_record`, its leaf hash
//!    computed by `tlog_tiles::record_hash` from the record bytes the proof file carries in `extra` (and the proof
//!    hashes are the ones `tlog_tiles::prove_record` makes);
//! 3. the consistency proof between every pair of checkpoint sizes checks with `tlog_tiles::check_tree` (and is the
//!    one `tlog_tiles::prove_tree` makes); from the empty tree, which `check_tree` refuses, the file is checked
//!    against what tlog-witness asks instead (no proof lines, the empty tree's root);
//! 4. tampering is rejected by the oracle (so it is really checking, not rubber-stamping): a flipped byte in a
//!    record, a wrong index, a flipped, missing or extra proof hash, another tree's size or root, a forked history, a
//!    checkpoint signed by another key (under our name, and with our key ID spliced onto its signature), a
//!    checkpoint whose text was edited after signing. Text-level tampering of a proof file is also fed to our own
//!    checker, which must reject it too (the two must not disagree).

use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use signed_note::{Note, NoteError, StandardVerifier, VerifierList};
use simpul_core::audit::checkpoint::{self as ours, Signer, Verifier};
use simpul_core::audit::proof::{ConsistencyProof, InclusionProof, CONSISTENCY, TLOG_PROOF};
use simpul_core::audit::record::Actor;
use simpul_ledger::{queries, AdminEvent, Auditor, Files, Flusher, Identifier, Ledger};
use tlog_tiles::{Checkpoint, Hash, HashReader};
use tokio::task::JoinSet;

mod common;
use common::{at, request, Outbox};

/// The gateway's checkpoint key, written to its key file before the first start so the run is reproducible.
const SEED: [u8; 32] = [0x3c; 32];
/// Someone else's key.
const OTHER_SEED: [u8; 32] = [0xa7; 32];
const ZONE: chrono_tz::Tz = chrono_tz::Asia::Jakarta;

/// The tree sizes checkpoints are signed at: the smallest trees, powers of two and their neighbours (where the
/// proof shapes change), and a few in between. At every fourth size the last record is an admin change.
const SIZES: [u64; 20] = [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 64, 100, 127, 128, 129, 200, 255, 256, 300];

// ---------------------------------------------------------------------------------------------------------------
// The oracle: signed_note and tlog_tiles, given only the verifier key text.

/// Why the oracle refused something; the payloads are read through `Debug`, in failure messages.
#[derive(Debug)]
#[allow(dead_code)]
enum Rejected {
    Note(NoteError),
    Checkpoint(String),
    Proof(tlog_tiles::Error),
    Syntax(String),
}

struct Oracle {
    verifiers: VerifierList,
    origin: String,
}

impl Oracle {
    fn new(vkey: &str) -> Oracle {
        let verifier =
            StandardVerifier::new(vkey).unwrap_or_else(|e| panic!("signed_note refuses our vkey {vkey}: {e}"));
        let origin = signed_note::Verifier::name(&verifier).to_owned();
        let verifier: Box<dyn signed_note::Verifier> = Box::new(verifier);
        Oracle { verifiers: VerifierList::new(vec![verifier]), origin }
    }

    /// The checkpoint of a signed note, its signature by the pinned key checked.
    fn open(&self, note: &str) -> Result<Checkpoint, Rejected> {
        let parsed = Note::from_bytes(note.as_bytes()).map_err(Rejected::Note)?;
        let (verified, _others) = parsed.verify(&self.verifiers).map_err(Rejected::Note)?;
        assert_eq!(verified.len(), 1, "only our key is known");
        assert_eq!(verified[0].name(), self.origin);
        // The oracle's encoding of what it read is our text, byte for byte: one note, one spelling.
        assert_eq!(parsed.to_bytes(), note.as_bytes(), "signed_note re-encodes our note differently");
        // (`MalformedCheckpointError` is Display but not std::error::Error.)
        let checkpoint = Checkpoint::from_bytes(parsed.text()).map_err(|e| Rejected::Checkpoint(e.to_string()))?;
        assert_eq!(checkpoint.to_bytes(), parsed.text(), "tlog_tiles re-encodes our checkpoint body differently");
        Ok(checkpoint)
    }

    /// An inclusion proof file: the signature on its checkpoint, then the record's inclusion under its root.
    fn check_inclusion(&self, text: &str) -> Result<(TlogProof, Checkpoint), Rejected> {
        let proof = TlogProof::parse(text)?;
        let checkpoint = self.open(&proof.checkpoint)?;
        let record = proof.extra.as_deref().ok_or_else(|| Rejected::Syntax("no record in `extra`".into()))?;
        tlog_tiles::check_record(
            &proof.hashes,
            checkpoint.size(),
            *checkpoint.hash(),
            proof.index,
            tlog_tiles::record_hash(record),
        )
        .map_err(Rejected::Proof)?;
        Ok((proof, checkpoint))
    }

    /// A consistency proof file: both checkpoints' signatures, one origin, the old size as stated, and the new tree
    /// extending the old one.
    fn check_consistency(&self, text: &str) -> Result<(Checkpoint, Checkpoint), Rejected> {
        let proof = WitnessProof::parse(text)?;
        let old = self.open(&proof.old_checkpoint)?;
        let new = self.open(&proof.new_checkpoint)?;
        if old.origin() != new.origin() || old.size() != proof.old_size {
            return Err(Rejected::Syntax("the old checkpoint is not the one the proof is from".into()));
        }
        tlog_tiles::check_tree(&proof.hashes, new.size(), *new.hash(), old.size(), *old.hash())
            .map_err(Rejected::Proof)?;
        Ok((old, new))
    }
}

/// Our checker's verdict on the same text, for the differential half of the tamper checks.
fn ours_accepts_inclusion(text: &str, pinned: &Verifier) -> bool {
    InclusionProof::parse(text).is_ok_and(|p| p.check(Some(pinned)).is_ok())
}

// ---------------------------------------------------------------------------------------------------------------
// The proof files, read from their specifications (c2sp.org/tlog-proof, c2sp.org/tlog-witness), not by our parser.

/// A `c2sp.org/tlog-proof@v1` file.
#[derive(Debug, Clone, PartialEq)]
struct TlogProof {
    extra: Option<Vec<u8>>,
    index: u64,
    hashes: Vec<Hash>,
    checkpoint: String,
}

fn syntax(what: impl Into<String>) -> Rejected {
    Rejected::Syntax(what.into())
}

/// ASCII decimal without leading zeroes (unless it is `0`), as the C2SP formats ask.
fn decimal(text: &str) -> Result<u64, Rejected> {
    let canonical =
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten().ok_or_else(|| syntax(format!("not a canonical decimal: {text:?}")))
}

/// The header lines before the first empty line, and everything after it (a checkpoint note, verbatim).
fn head_and_note(text: &str) -> Result<(Vec<&str>, &str), Rejected> {
    let (head, note) = text.split_once("\n\n").ok_or_else(|| syntax("no empty line before the checkpoint"))?;
    Ok((head.split('\n').collect(), note))
}

/// Hash lines, each decoded by the oracle.
fn hashes(lines: &[&str]) -> Result<Vec<Hash>, Rejected> {
    lines.iter().map(|line| Hash::parse_hash(line).map_err(Rejected::Proof)).collect()
}

impl TlogProof {
    fn parse(text: &str) -> Result<Self, Rejected> {
        let (head, note) = head_and_note(text)?;
        let mut lines = head.as_slice();
        if lines.first() != Some(&"c2sp.org/tlog-proof@v1") {
            return Err(syntax("first line"));
        }
        lines = &lines[1..];
        let mut extra = None;
        if let Some(encoded) = lines.first().and_then(|l| l.strip_prefix("extra ")) {
            extra = Some(BASE64.decode(encoded).map_err(|e| syntax(format!("extra: {e}")))?);
            lines = &lines[1..];
        }
        let index = lines.first().and_then(|l| l.strip_prefix("index ")).ok_or_else(|| syntax("no index line"))?;
        let index = decimal(index)?;
        Ok(TlogProof { extra, index, hashes: hashes(&lines[1..])?, checkpoint: note.to_owned() })
    }

    fn to_text(&self) -> String {
        let mut out = "c2sp.org/tlog-proof@v1\n".to_owned();
        if let Some(extra) = &self.extra {
            out.push_str(&format!("extra {}\n", BASE64.encode(extra)));
        }
        out.push_str(&format!("index {}\n", self.index));
        for hash in &self.hashes {
            out.push_str(&format!("{hash}\n"));
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }
}

/// A `simpul.audit/consistency@v1` file: the old signed note in base64, then a C2SP tlog-witness `add-checkpoint`
/// request body (`old <size>`, proof lines, an empty line, the new signed note).
#[derive(Debug, Clone, PartialEq)]
struct WitnessProof {
    old_checkpoint: String,
    old_size: u64,
    hashes: Vec<Hash>,
    new_checkpoint: String,
}

impl WitnessProof {
    fn parse(text: &str) -> Result<Self, Rejected> {
        let (head, note) = head_and_note(text)?;
        let [format, old_checkpoint, old, proof @ ..] = head.as_slice() else {
            return Err(syntax("fewer than three header lines"));
        };
        if *format != "simpul.audit/consistency@v1" {
            return Err(syntax("first line"));
        }
        let old_checkpoint = old_checkpoint.strip_prefix("old-checkpoint ").ok_or_else(|| syntax("old-checkpoint"))?;
        let old_checkpoint = BASE64.decode(old_checkpoint).map_err(|e| syntax(format!("old-checkpoint: {e}")))?;
        let old_checkpoint = String::from_utf8(old_checkpoint).map_err(|_| syntax("old-checkpoint is not UTF-8"))?;
        let old_size = decimal(old.strip_prefix("old ").ok_or_else(|| syntax("no old line"))?)?;
        // tlog-witness: "The client MUST NOT send more than 63 consistency proof lines."
        if proof.len() > 63 {
            return Err(syntax("more than 63 proof lines"));
        }
        Ok(WitnessProof { old_checkpoint, old_size, hashes: hashes(proof)?, new_checkpoint: note.to_owned() })
    }

    fn to_text(&self) -> String {
        let mut out = format!("simpul.audit/consistency@v1\nold-checkpoint {}\n", BASE64.encode(&self.old_checkpoint));
        out.push_str(&format!("old {}\n", self.old_size));
        for hash in &self.hashes {
            out.push_str(&format!("{hash}\n"));
        }
        out.push('\n');
        out.push_str(&self.new_checkpoint);
        out
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The oracle's own tree over the records: tlog_tiles' stored hashes, computed from the record bytes.

#[derive(Debug, Default)]
struct OracleTree(Vec<Hash>);

impl HashReader for OracleTree {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes.iter().map(|&i| self.0.get(i as usize).copied().ok_or(tlog_tiles::Error::IndexesNotInTree)).collect()
    }
}

impl OracleTree {
    fn of(records: &[Vec<u8>]) -> Self {
        let mut tree = OracleTree::default();
        for (n, record) in records.iter().enumerate() {
            let stored = tlog_tiles::stored_hashes(n as u64, record, &tree).unwrap();
            tree.0.extend(stored);
        }
        tree
    }

    fn root(&self, size: u64) -> Hash {
        tlog_tiles::tree_hash(size, self).unwrap()
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The log, written through the ledger's real API.

fn subjects(i: u64) -> Vec<Identifier> {
    match i % 13 {
        0 => vec![Identifier::Nik(format!("3374{:012}", 100_200 + i % 4))],
        6 => vec![Identifier::Kk(format!("3374{:012}", 900 + i % 2))],
        _ => Vec::new(),
    }
}

struct Gateway {
    _db: sled::Db,
    ledger: Ledger,
    auditor: Arc<Auditor>,
    outbox: Outbox,
    /// Requests recorded so far (numbering them).
    requests: u64,
}

impl Gateway {
    /// Opens the ledger as an owner does at start, on a key file holding [`SEED`] and the default origin.
    fn open(dir: &Path) -> Gateway {
        let files = Files::new(dir);
        simpul_files::create_private(&files.audit_key(), format!("{}\n", BASE64.encode(SEED)).as_bytes()).unwrap();
        let db = simpul_ledger::database::open(dir.join("db")).unwrap();
        let ledger = Ledger::open(&db, Flusher::new(&db), &files, None).unwrap();
        let outbox = Outbox::default();
        let auditor = Auditor::start(ledger.log.clone(), outbox.clone(), ledger.personal.clone(), ZONE).unwrap();
        Gateway { _db: db, ledger, auditor, outbox, requests: 0 }
    }

    fn size(&self) -> u64 {
        self.ledger.log.size()
    }

    /// Records requests concurrently (so the writer batches them) until the log holds `size` records, the last of
    /// them an admin change when `admin`.
    async fn grow_to(&mut self, size: u64, admin: bool) {
        let requests = size - self.size() - u64::from(admin);
        let mut calls = JoinSet::new();
        for i in self.requests..self.requests + requests {
            let auditor = self.auditor.clone();
            calls.spawn(async move { auditor.record(at(i), request(i), subjects(i)).await.unwrap() });
        }
        while let Some(call) = calls.join_next().await {
            call.unwrap();
        }
        self.requests += requests;
        if admin {
            let n = self.outbox.len();
            self.outbox.commit(AdminEvent {
                at: at(10_000 + n),
                actor: Actor::Cli { uid: 0, pid: Some(4_000 + n as i32) },
                action: "institution.suspend".into(),
                target: format!("DINKES-{n}"),
                detail: serde_json::json!({ "reason": "agreement ended", "n": n, "nested": { "z": [1, -2] } }),
                subjects: vec![],
            });
            assert_eq!(self.auditor.mirror_admin().await.unwrap(), size);
        }
        assert_eq!(self.size(), size);
    }
}

/// What the gateway handed out at one checkpoint size.
struct Stage {
    size: u64,
    note: String,
    /// `audit prove` of every record in the log, against `note`.
    inclusion: Vec<String>,
    /// `audit consistency` from each earlier stage's note (and this one's own) to `note`, by old size.
    consistency: Vec<(u64, String)>,
}

// ---------------------------------------------------------------------------------------------------------------
// Tampering helpers.

fn flip_bit(bytes: &mut [u8], pos: usize) {
    bytes[pos] ^= 1 << (pos % 8);
}

fn flip_hash(hash: &Hash, pos: usize) -> Hash {
    let mut bytes = hash.0;
    flip_bit(&mut bytes, pos % 32);
    Hash(bytes)
}

/// `note` with its body (the signed text) replaced, the signature lines kept.
fn with_body(note: &str, body: &str) -> String {
    let split = note.rfind("\n\n").unwrap();
    format!("{body}{}", &note[split + 1..])
}

fn body(note: &str) -> &str {
    &note[..note.rfind("\n\n").unwrap() + 1]
}

/// `note` signed again by `signer`, whose key hash is replaced by `key_hash` (our key's): the oracle then finds our
/// key for the line and must check the signature itself rather than skip an unknown key.
fn spliced(note: &str, signer: &Signer, key_hash: [u8; 4]) -> String {
    let checkpoint = ours::Checkpoint::parse_body(body(note)).unwrap();
    let forged = signer.sign(&checkpoint).unwrap();
    let (head, line) = forged.rsplit_once("\n\u{2014} ").unwrap();
    let (name, encoded) = line.trim_end().split_once(' ').unwrap();
    let mut bytes = BASE64.decode(encoded).unwrap();
    bytes[..4].copy_from_slice(&key_hash);
    format!("{head}\n\u{2014} {name} {}\n", BASE64.encode(bytes))
}

fn rejected<T: std::fmt::Debug>(what: &str, result: Result<T, Rejected>) -> Rejected {
    match result {
        Ok(accepted) => panic!("the oracle accepted {what}: {accepted:?}"),
        Err(why) => why,
    }
}

// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn an_independent_implementation_accepts_our_proofs_and_rejects_tampered_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut gateway = Gateway::open(dir.path());
    let notary = gateway.ledger.notary.clone();
    // All the oracle is given: the text `audit key` shows.
    let vkey = notary.verifier().vkey();
    let oracle = Oracle::new(&vkey);
    assert_eq!(oracle.origin, notary.origin());
    assert!(oracle.origin.starts_with("simpul.gateway/"), "{}", oracle.origin);

    // Grow the log through the writer, and at each size hand out what an auditor would get.
    let mut stages: Vec<Stage> = Vec::new();
    for (n, &size) in SIZES.iter().enumerate() {
        gateway.grow_to(size, n % 4 == 3).await;
        let seqs: Vec<u64> = (0..size).collect();
        let proofs = queries::prove(&notary, &seqs).unwrap();
        let note = proofs[0].checkpoint.clone();
        let inclusion: Vec<String> = proofs.iter().map(InclusionProof::to_text).collect();
        let mut consistency = Vec::new();
        for old in stages.iter().map(|s| s.note.as_str()).chain([note.as_str()]) {
            let (proof, proved) = queries::consistency(&notary, old).unwrap();
            assert_eq!(proved, size);
            consistency.push((proof.old_size, proof.to_text()));
        }
        stages.push(Stage { size, note, inclusion, consistency });
    }
    gateway.auditor.close();
    let log = &gateway.ledger.log;
    let records: Vec<Vec<u8>> = (0..log.size()).map(|seq| log.record(seq).unwrap().unwrap()).collect();
    assert_eq!(records.len() as u64, SIZES[SIZES.len() - 1]);
    // The oracle's own tree, from the record bytes alone.
    let tree = OracleTree::of(&records);
    let pinned = notary.verifier();

    // 1. Every stored checkpoint note: signature, body, and root as the oracle computes it from the records.
    let stored: Vec<(u64, String)> = log.checkpoints().map(Result::unwrap).collect();
    assert_eq!(stored.iter().map(|(size, _)| *size).collect::<Vec<_>>(), SIZES);
    for ((size, note), stage) in stored.iter().zip(&stages) {
        assert_eq!(*note, stage.note, "the stored checkpoint is the one proofs were made against");
        let checkpoint = oracle.open(note).unwrap_or_else(|e| panic!("checkpoint {size} rejected: {e:?}\n{note}"));
        let (mine, _) = ours::open(note, &pinned).unwrap();
        assert_eq!(checkpoint.origin(), mine.origin);
        assert_eq!(checkpoint.size(), mine.size);
        assert_eq!(checkpoint.size(), *size);
        assert_eq!(checkpoint.hash().0, mine.root);
        assert_eq!(checkpoint.extension(), "");
        assert_eq!(*checkpoint.hash(), tree.root(*size), "the signed root of size {size} is not the oracle's");
        assert_eq!(checkpoint.hash().0, log.root(*size).unwrap());
    }

    // The oracle, given the seed, signs the same bodies into the same notes, byte for byte (Ed25519 is
    // deterministic); and `StandardSigner::new` checks the key ID our vkey states against the key it derives itself.
    let (name, rest) = vkey.split_once('+').unwrap();
    let (id, _) = rest.split_once('+').unwrap();
    let skey = format!("PRIVATE+KEY+{name}+{id}+{}", BASE64.encode([&[1u8][..], &SEED].concat()));
    let oracle_signer = signed_note::StandardSigner::new(&skey).unwrap();
    for (_, note) in &stored {
        let mut remade = Note::new(body(note).as_bytes(), &[]).unwrap();
        remade.add_sigs(&[&oracle_signer]).unwrap();
        assert_eq!(String::from_utf8(remade.to_bytes()).unwrap(), *note);
    }

    // 2. Every record's inclusion proof at every checkpoint size.
    let mut checked = 0;
    for stage in &stages {
        for (seq, text) in stage.inclusion.iter().enumerate() {
            let (proof, checkpoint) =
                oracle.check_inclusion(text).unwrap_or_else(|e| panic!("record {seq} at size {}: {e:?}", stage.size));
            assert_eq!(proof.to_text(), *text, "our file is not the spec's layout");
            assert_eq!((proof.index, checkpoint.size()), (seq as u64, stage.size));
            assert_eq!(proof.extra.as_deref(), Some(records[seq].as_slice()), "the record the file carries");
            assert_eq!(proof.checkpoint, stage.note);
            let expected = tlog_tiles::prove_record(stage.size, seq as u64, &tree).unwrap();
            assert_eq!(proof.hashes, expected, "record {seq} at size {}: not the oracle's proof", stage.size);
            checked += 1;
        }
    }
    assert_eq!(checked, SIZES.iter().sum::<u64>());

    // 3. Consistency between every pair of checkpoint sizes (and each size with itself).
    let mut pairs = 0;
    for stage in &stages {
        for (old_size, text) in &stage.consistency {
            let (old, new) = oracle
                .check_consistency(text)
                .unwrap_or_else(|e| panic!("{old_size} -> {}: {e:?}\n{text}", stage.size));
            assert_eq!((old.size(), new.size()), (*old_size, stage.size));
            let proof = WitnessProof::parse(text).unwrap();
            assert_eq!(proof.to_text(), *text);
            let expected = tlog_tiles::prove_tree(stage.size, *old_size, &tree).unwrap();
            assert_eq!(proof.hashes, expected, "{old_size} -> {}: not the oracle's proof", stage.size);
            // Our witness body is what a C2SP witness reads: from the `old` line on.
            assert!(ConsistencyProof::parse(text).unwrap().witness_body().starts_with(&format!("old {old_size}\n")));
            pairs += 1;
        }
    }
    assert_eq!(pairs, SIZES.len() * (SIZES.len() + 1) / 2);

    // From the empty tree: tlog-witness writes `old 0` with no proof lines. `tlog_tiles::check_tree` refuses an old
    // size of 0, so the oracle checks what the spec asks instead: both signatures, no proof lines, and (RFC 9162
    // section 2.1.1) the empty tree's root in the old checkpoint. The notary never signs an empty log; this note is
    // signed with the same key and origin.
    let empty = ours::Checkpoint {
        origin: notary.origin().to_owned(),
        size: 0,
        root: tlog_tiles::EMPTY_HASH.0,
        extensions: vec![],
    };
    let empty = Signer::new(notary.origin(), SEED).unwrap().sign(&empty).unwrap();
    let (proof, size) = queries::consistency(&notary, &empty).unwrap();
    let from_empty = WitnessProof::parse(&proof.to_text()).unwrap();
    assert_eq!((from_empty.old_size, from_empty.hashes.len(), size), (0, 0, log.size()));
    let old = oracle.open(&from_empty.old_checkpoint).unwrap();
    assert_eq!((old.size(), *old.hash()), (0, tlog_tiles::EMPTY_HASH));
    let new = oracle.open(&from_empty.new_checkpoint).unwrap();
    let refused = tlog_tiles::check_tree(&from_empty.hashes, new.size(), *new.hash(), 0, *old.hash());
    assert!(matches!(refused, Err(tlog_tiles::Error::InvalidInput(_))), "{refused:?}");

    // 4. Tampering, each rejected by the oracle.
    tamper_with_inclusion(&oracle, &pinned, &stages, &records);
    tamper_with_consistency(&oracle, &stages, &records);
    tamper_with_checkpoints(&oracle, &pinned, &stages);
}

/// Sizes and records to tamper with: small and large trees, first, last, middle and boundary records.
fn samples(stages: &[Stage]) -> impl Iterator<Item = (&Stage, usize)> {
    stages.iter().filter(|s| [1, 2, 3, 8, 17, 128, 129, 300].contains(&s.size)).flat_map(|stage| {
        let n = stage.size as usize;
        let mut seqs = vec![0, n - 1, n / 2, n.saturating_sub(2), (n * 2) / 3];
        seqs.sort_unstable();
        seqs.dedup();
        seqs.into_iter().map(move |seq| (stage, seq))
    })
}

fn tamper_with_inclusion(oracle: &Oracle, pinned: &Verifier, stages: &[Stage], records: &[Vec<u8>]) {
    let mut cases = 0;
    let mut reject = |what: String, text: String| {
        let why = rejected(&what, oracle.check_inclusion(&text));
        assert!(!ours_accepts_inclusion(&text, pinned), "ours accepted what the oracle rejected ({why:?}): {what}");
        cases += 1;
        why
    };
    for (stage, seq) in samples(stages) {
        let text = &stage.inclusion[seq];
        let good = TlogProof::parse(text).unwrap();
        assert!(ours_accepts_inclusion(text, pinned));
        let at = format!("record {seq} at size {}", stage.size);

        // A flipped byte in the record: first, last, middle, and inside the sequence number's digits.
        let record = good.extra.clone().unwrap();
        let seq_digits = String::from_utf8_lossy(&record).find("\"seq\":").map_or(1, |i| i + 6);
        for pos in [0, record.len() - 1, record.len() / 2, seq_digits] {
            let mut bad = good.clone();
            flip_bit(bad.extra.as_mut().unwrap(), pos);
            let why = reject(format!("{at} with record byte {pos} flipped"), bad.to_text());
            assert!(matches!(why, Rejected::Proof(tlog_tiles::Error::InvalidProof)), "{why:?}");
        }
        // Another record's bytes under this index.
        let mut bad = good.clone();
        bad.extra = Some(records[(seq + 1) % records.len()].clone());
        reject(format!("{at} carrying another record"), bad.to_text());
        // Wrong indices: the neighbours, the sibling, one past the tree, far beyond it.
        let n = stage.size;
        for index in [seq as u64 + 1, (seq as u64).wrapping_sub(1), seq as u64 ^ 1, n, n + 1, u64::MAX] {
            if index == seq as u64 {
                continue;
            }
            let mut bad = good.clone();
            bad.index = index;
            // Checked on the parsed proof too: our checker also compares the index with the record's own number,
            // so the text-level case alone would not show that the Merkle check rejects a moved index.
            let why = rejected(
                &format!("{at} moved to index {index}"),
                tlog_tiles::check_record(
                    &bad.hashes,
                    n,
                    *oracle.open(&good.checkpoint).unwrap().hash(),
                    index,
                    tlog_tiles::record_hash(&record),
                )
                .map_err(Rejected::Proof),
            );
            assert!(matches!(why, Rejected::Proof(_)));
            reject(format!("{at} moved to index {index}"), bad.to_text());
        }
        // Each proof hash flipped; one dropped; one added; the order reversed.
        for i in 0..good.hashes.len() {
            let mut bad = good.clone();
            bad.hashes[i] = flip_hash(&bad.hashes[i], seq + i);
            reject(format!("{at} with proof hash {i} flipped"), bad.to_text());
        }
        if let Some(last) = good.hashes.last() {
            let mut bad = good.clone();
            bad.hashes.pop();
            reject(format!("{at} without its last proof hash"), bad.to_text());
            let mut bad = good.clone();
            bad.hashes.push(*last);
            reject(format!("{at} with an extra proof hash"), bad.to_text());
        } else {
            let mut bad = good.clone();
            bad.hashes.push(tlog_tiles::record_hash(b"padding"));
            reject(format!("{at} with a proof hash where none belongs"), bad.to_text());
        }
        if good.hashes.len() > 1 && good.hashes.first() != good.hashes.last() {
            let mut bad = good.clone();
            bad.hashes.reverse();
            reject(format!("{at} with its proof hashes reversed"), bad.to_text());
        }
        // The same proof against another tree: a larger checkpoint whose root it does not reach.
        if let Some(later) = stages.iter().find(|s| s.size > stage.size) {
            let mut bad = good.clone();
            bad.checkpoint = later.note.clone();
            reject(format!("{at} against the checkpoint of size {}", later.size), bad.to_text());
        }
    }

    // A forgery the Merkle arithmetic cannot catch: a different record, proved in a tree built around it, under a
    // checkpoint signed by another key (with our name). Only the signature check stands in the way.
    let stage = stages.last().unwrap();
    let seq = 77;
    let mut forged_records = records[..stage.size as usize].to_vec();
    flip_bit(&mut forged_records[seq], 40);
    let forged_tree = OracleTree::of(&forged_records);
    let root = forged_tree.root(stage.size);
    let impostor = Signer::new(oracle.origin.clone(), OTHER_SEED).unwrap();
    let checkpoint =
        ours::Checkpoint { origin: oracle.origin.clone(), size: stage.size, root: root.0, extensions: vec![] };
    let forged = TlogProof {
        extra: Some(forged_records[seq].clone()),
        index: seq as u64,
        hashes: tlog_tiles::prove_record(stage.size, seq as u64, &forged_tree).unwrap(),
        checkpoint: impostor.sign(&checkpoint).unwrap(),
    };
    tlog_tiles::check_record(
        &forged.hashes,
        stage.size,
        root,
        seq as u64,
        tlog_tiles::record_hash(&forged_records[seq]),
    )
    .unwrap();
    let why = reject("a forged tree signed by another key".into(), forged.to_text());
    assert!(matches!(why, Rejected::Note(NoteError::UnverifiedNote)), "{why:?}");
    let mut spliced_proof = forged.clone();
    spliced_proof.checkpoint = spliced(&forged.checkpoint, &impostor, pinned.key_hash());
    let why = reject("a forged tree signed by another key under our key ID".into(), spliced_proof.to_text());
    assert!(matches!(why, Rejected::Note(NoteError::InvalidSignature { .. })), "{why:?}");
    // And the forged checkpoint's body under our genuine signature line: the signature does not cover it.
    let mut reused = forged.clone();
    reused.checkpoint = with_body(&stage.note, body(&forged.checkpoint));
    let why = reject("a forged tree under our signature of another".into(), reused.to_text());
    assert!(matches!(why, Rejected::Note(NoteError::InvalidSignature { .. })), "{why:?}");
    assert!(cases > 300, "{cases}");
}

fn tamper_with_consistency(oracle: &Oracle, stages: &[Stage], records: &[Vec<u8>]) {
    let mut cases = 0;
    let mut reject = |what: String, text: String| {
        let why = rejected(&what, oracle.check_consistency(&text));
        cases += 1;
        why
    };
    let picked = |size: u64| stages.iter().find(|s| s.size == size).unwrap();
    for (old_size, new_size) in [(1, 2), (3, 4), (4, 300), (7, 8), (17, 31), (100, 129), (128, 300), (129, 256)] {
        let (old, new) = (picked(old_size), picked(new_size));
        let text = &new.consistency.iter().find(|(size, _)| *size == old_size).unwrap().1;
        oracle.check_consistency(text).unwrap();
        let good = WitnessProof::parse(text).unwrap();
        let at = format!("{old_size} -> {new_size}");
        for i in 0..good.hashes.len() {
            let mut bad = good.clone();
            bad.hashes[i] = flip_hash(&bad.hashes[i], i * 7 + 3);
            reject(format!("{at} with proof hash {i} flipped"), bad.to_text());
        }
        let mut bad = good.clone();
        bad.hashes.pop();
        reject(format!("{at} without its last proof hash"), bad.to_text());
        // Stated old size: one off either way (both the stated size and the arithmetic are checked).
        for wrong in [old_size - 1, old_size + 1] {
            let mut bad = good.clone();
            bad.old_size = wrong;
            reject(format!("{at} stating old size {wrong}"), bad.to_text());
            if wrong > 0 {
                let old_root = *oracle.open(&old.note).unwrap().hash();
                let new_root = *oracle.open(&new.note).unwrap().hash();
                let why = rejected(
                    &format!("{at} checked as from size {wrong}"),
                    tlog_tiles::check_tree(&good.hashes, new_size, new_root, wrong, old_root).map_err(Rejected::Proof),
                );
                assert!(matches!(why, Rejected::Proof(_)));
            }
        }
        // Old and new swapped: a tree does not extend a larger one.
        let mut bad = good.clone();
        std::mem::swap(&mut bad.old_checkpoint, &mut bad.new_checkpoint);
        bad.old_size = new_size;
        reject(format!("{at} backwards"), bad.to_text());
        // A fork: an old checkpoint of the same size over a different history, honestly signed by another key, and
        // its root checked directly (as a witness holding it would).
        let mut forked = records[..old_size as usize].to_vec();
        flip_bit(&mut forked[old_size as usize / 2], 17);
        let forked_root = OracleTree::of(&forked).root(old_size);
        let new_root = *oracle.open(&new.note).unwrap().hash();
        let why = rejected(
            &format!("{at} from a forked history"),
            tlog_tiles::check_tree(&good.hashes, new_size, new_root, old_size, forked_root).map_err(Rejected::Proof),
        );
        assert!(matches!(why, Rejected::Proof(tlog_tiles::Error::InvalidProof)), "{why:?}");
        let impostor = Signer::new(oracle.origin.clone(), OTHER_SEED).unwrap();
        let checkpoint =
            ours::Checkpoint { origin: oracle.origin.clone(), size: old_size, root: forked_root.0, extensions: vec![] };
        let mut bad = good.clone();
        bad.old_checkpoint = impostor.sign(&checkpoint).unwrap();
        let why = reject(format!("{at} from a forked checkpoint signed by another key"), bad.to_text());
        assert!(matches!(why, Rejected::Note(NoteError::UnverifiedNote)), "{why:?}");
        // The new checkpoint's root edited under its signature.
        let mut bad = good.clone();
        let new_body = body(&new.note).replace(&new_root.to_string(), &flip_hash(&new_root, 0).to_string());
        bad.new_checkpoint = with_body(&new.note, &new_body);
        reject(format!("{at} with the new root edited"), bad.to_text());
    }
    assert!(cases > 50, "{cases}");
}

fn tamper_with_checkpoints(oracle: &Oracle, pinned: &Verifier, stages: &[Stage]) {
    let other = Signer::new(oracle.origin.clone(), OTHER_SEED).unwrap();
    let stranger = Signer::new("simpul.gateway/stranger", OTHER_SEED).unwrap();
    for stage in stages.iter().filter(|s| [1, 9, 128, 300].contains(&s.size)) {
        let note = &stage.note;
        let genuine = oracle.open(note).unwrap();
        let checkpoint = ours::Checkpoint::parse_body(body(note)).unwrap();
        let at = format!("the checkpoint of size {}", stage.size);

        // Signed by another key under our name; by another log's key; with our key ID spliced onto it.
        let why = rejected(&format!("{at} signed by another key"), oracle.open(&other.sign(&checkpoint).unwrap()));
        assert!(matches!(why, Rejected::Note(NoteError::UnverifiedNote)), "{why:?}");
        let foreign = ours::Checkpoint { origin: stranger.name().to_owned(), ..checkpoint.clone() };
        let why = rejected(&format!("{at} signed by another log"), oracle.open(&stranger.sign(&foreign).unwrap()));
        assert!(matches!(why, Rejected::Note(NoteError::UnverifiedNote)), "{why:?}");
        let why = rejected(
            &format!("{at} signed by another key under our key ID"),
            oracle.open(&spliced(note, &other, pinned.key_hash())),
        );
        assert!(matches!(why, Rejected::Note(NoteError::InvalidSignature { .. })), "{why:?}");

        // The text edited under the signature: size, root, origin, an added extension line.
        let root = genuine.hash().to_string();
        let edits = [
            body(note).replacen(&format!("\n{}\n", stage.size), &format!("\n{}\n", stage.size + 1), 1),
            body(note).replacen(&root, &flip_hash(genuine.hash(), 31).to_string(), 1),
            body(note).replacen(&oracle.origin, &format!("{}x", oracle.origin), 1),
            format!("{}extension\n", body(note)),
        ];
        for edited in edits {
            assert_ne!(edited, body(note));
            let why = rejected(&format!("{at} edited to {edited:?}"), oracle.open(&with_body(note, &edited)));
            assert!(matches!(why, Rejected::Note(NoteError::InvalidSignature { .. })), "{why:?}");
        }
        // Every bit of the signature itself (the bytes after the key ID), one at a time for a few.
        let (head, line) = note.rsplit_once("\n\u{2014} ").unwrap();
        let (name, encoded) = line.trim_end().split_once(' ').unwrap();
        let bytes = BASE64.decode(encoded).unwrap();
        for pos in [4, 5, 36, bytes.len() - 1] {
            let mut bad = bytes.clone();
            flip_bit(&mut bad, pos);
            let text = format!("{head}\n\u{2014} {name} {}\n", BASE64.encode(&bad));
            let why = rejected(&format!("{at} with signature byte {pos} flipped"), oracle.open(&text));
            assert!(matches!(why, Rejected::Note(NoteError::InvalidSignature { .. })), "{why:?}");
        }
        // The signature line dropped, and the blank line with it: no longer a signed note.
        rejected(&format!("{at} unsigned"), oracle.open(body(note)));
    }
    // The format constants the files start with are the ones parsed above.
    assert_eq!((TLOG_PROOF, CONSISTENCY), ("c2sp.org/tlog-proof@v1", "simpul.audit/consistency@v1"));
}
