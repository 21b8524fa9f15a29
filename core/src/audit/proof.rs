//! The proofs an auditor is handed, as text files that need nothing but the gateway's public key to check, anywhere,
//! offline, without trusting the machine that made them.
//!
//! # Inclusion: C2SP `tlog-proof@v1`
//!
//! `audit prove` and `audit subject` write the C2SP format (c2sp.org/tlog-proof), so other transparency-log tools
//! can check them too:
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64 of the record's canonical bytes>
//! index 1234
//! <base64 sibling hash, from the leaf up, one per line>
//!
//! <the signed checkpoint note, verbatim>
//! ```
//!
//! The spec leaves the leaf hash to the application: here it is `SHA-256(0x00 || record)` of the bytes in `extra`,
//! which a checker must decode and re-hash (the spec's "not authenticated" extra data is authenticated by exactly
//! that). Hashes are standard base64, 45 bytes a line with its newline: a proof in a log of ten million records has
//! at most 24 of them.
//!
//! # Consistency
//!
//! `audit consistency` writes an old checkpoint the auditor kept, then the body of a C2SP `tlog-witness`
//! `add-checkpoint` request (the form a witness checks a new checkpoint in), so the same text can be passed on to
//! a witness as it stands:
//!
//! ```text
//! simpul.audit/consistency@v1
//! old-checkpoint <base64 of the old signed note>
//! old 131
//! <base64 consistency proof hash, RFC 9162 §2.1.4.1 order, one per line>
//!
//! <the new signed checkpoint note, verbatim>
//! ```
//!
//! Both notes must be signed by the pinned key; without one, only the Merkle arithmetic is checked, and
//! [`Checked::key_pinned`] says so.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::checkpoint::{self, Checkpoint, CheckpointError, Verifier};
use super::merkle::{self, Hash, ProofError};
use super::record::{AuditRecord, RecordError};

/// The first line of an inclusion proof.
pub const TLOG_PROOF: &str = "c2sp.org/tlog-proof@v1";
/// The first line of a consistency proof.
pub const CONSISTENCY: &str = "simpul.audit/consistency@v1";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofCheckError {
    #[error("not a proof of this kind: the first line is not `{0}`")]
    Format(&'static str),
    #[error("line {line}: {what}")]
    Syntax { line: usize, what: &'static str },
    #[error("the record is not a canonical audit record: {0}")]
    Record(#[from] RecordError),
    #[error("the record says sequence number {inside}, the proof {outside}")]
    Seq { inside: u64, outside: u64 },
    #[error("the checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("the record is not in the signed tree: {0}")]
    Inclusion(ProofError),
    #[error("the new checkpoint is not an extension of the old one: {0}")]
    Consistency(ProofError),
    #[error("the two checkpoints are of different logs ({old} and {new})")]
    Origin { old: String, new: String },
    #[error("the old checkpoint is of size {inside}, the proof says {outside}")]
    OldSize { inside: u64, outside: u64 },
}

/// An inclusion proof: record `index`, its canonical bytes, the path to the root of a signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    pub index: u64,
    pub record: Vec<u8>,
    pub hashes: Vec<Hash>,
    /// The signed note of a checkpoint whose tree contains the record.
    pub checkpoint: String,
}

/// A consistency proof from a checkpoint an auditor kept to a newer one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProof {
    pub old_checkpoint: String,
    pub old_size: u64,
    pub hashes: Vec<Hash>,
    pub new_checkpoint: String,
}

/// What a valid inclusion proof establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub record: AuditRecord,
    pub checkpoint: Checkpoint,
    /// True when the checkpoint's signature was checked against a key the caller supplied; false when no key was
    /// given, and so only the Merkle arithmetic was checked.
    pub key_pinned: bool,
}

/// What a valid consistency proof establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedConsistency {
    pub old: Checkpoint,
    pub new: Checkpoint,
    pub key_pinned: bool,
}

fn hash_lines(out: &mut String, hashes: &[Hash]) {
    for hash in hashes {
        out.push_str(&BASE64.encode(hash));
        out.push('\n');
    }
}

/// Lines of a proof file with their 1-based numbers, for messages.
struct Lines<'a> {
    rest: &'a str,
    number: usize,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Lines { rest: text, number: 0 }
    }

    fn syntax(&self, what: &'static str) -> ProofCheckError {
        ProofCheckError::Syntax { line: self.number, what }
    }

    fn next(&mut self, what: &'static str) -> Result<&'a str, ProofCheckError> {
        self.number += 1;
        let (line, rest) = self.rest.split_once('\n').ok_or_else(|| self.syntax(what))?;
        self.rest = rest;
        Ok(line)
    }

    fn field(&mut self, key: &'static str, what: &'static str) -> Result<&'a str, ProofCheckError> {
        let line = self.next(what)?;
        line.strip_prefix(key).and_then(|v| v.strip_prefix(' ')).ok_or_else(|| self.syntax(what))
    }

    fn number_field(&mut self, key: &'static str, what: &'static str) -> Result<u64, ProofCheckError> {
        let text = self.field(key, what)?;
        // ASCII decimal without leading zeroes, as the C2SP specs ask.
        let canonical =
            !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
        canonical.then(|| text.parse().ok()).flatten().ok_or_else(|| self.syntax(what))
    }

    fn base64_field(&mut self, key: &'static str, what: &'static str) -> Result<Vec<u8>, ProofCheckError> {
        let text = self.field(key, what)?;
        let bytes = BASE64.decode(text).map_err(|_| self.syntax(what))?;
        Ok(bytes)
    }

    /// Hash lines up to the empty line that ends them, then the rest: the checkpoint note.
    fn hashes_then_note(mut self) -> Result<(Vec<Hash>, &'a str), ProofCheckError> {
        let mut hashes = Vec::new();
        loop {
            let line = self.next("a hash line or the empty line before the checkpoint")?;
            if line.is_empty() {
                return Ok((hashes, self.rest));
            }
            let bytes = BASE64.decode(line).map_err(|_| self.syntax("a hash must be 32 bytes in standard base64"))?;
            let hash = bytes.try_into().map_err(|_| self.syntax("a hash must be 32 bytes in standard base64"))?;
            // One spelling per hash: base64 with stray bits would be another text for the same proof.
            if BASE64.encode(hash) != line {
                return Err(self.syntax("a hash must be 32 bytes in standard base64"));
            }
            hashes.push(hash);
        }
    }
}

/// The checkpoint in `note`, its signature checked by `pinned` when given.
fn open_note(note: &str, pinned: Option<&Verifier>) -> Result<Checkpoint, ProofCheckError> {
    match pinned {
        Some(verifier) => Ok(checkpoint::open(note, verifier)?.0),
        None => {
            let split = note.rfind("\n\n").ok_or(CheckpointError::MissingBlankLine)?;
            Ok(Checkpoint::parse_body(&note[..split + 1])?)
        }
    }
}

impl InclusionProof {
    pub fn to_text(&self) -> String {
        let mut out = format!("{TLOG_PROOF}\nextra {}\nindex {}\n", BASE64.encode(&self.record), self.index);
        hash_lines(&mut out, &self.hashes);
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    pub fn parse(text: &str) -> Result<Self, ProofCheckError> {
        let mut lines = Lines::new(text);
        if lines.next("the format line")? != TLOG_PROOF {
            return Err(ProofCheckError::Format(TLOG_PROOF));
        }
        let record = lines.base64_field("extra", "`extra` and the record in base64")?;
        let index = lines.number_field("index", "`index` and a decimal number")?;
        let (hashes, note) = lines.hashes_then_note()?;
        Ok(InclusionProof { index, record, hashes, checkpoint: note.to_owned() })
    }

    /// Checks the record's encoding and number, the checkpoint's signature (when `pinned` is given) and the
    /// inclusion of the record's leaf under the checkpoint's root.
    pub fn check(&self, pinned: Option<&Verifier>) -> Result<Checked, ProofCheckError> {
        let record = AuditRecord::from_canonical(&self.record)?;
        if record.seq != self.index {
            return Err(ProofCheckError::Seq { inside: record.seq, outside: self.index });
        }
        let checkpoint = open_note(&self.checkpoint, pinned)?;
        let leaf = merkle::leaf_hash(&self.record);
        merkle::verify_inclusion(&leaf, self.index, checkpoint.size, &self.hashes, &checkpoint.root)
            .map_err(ProofCheckError::Inclusion)?;
        Ok(Checked { record, checkpoint, key_pinned: pinned.is_some() })
    }
}

impl ConsistencyProof {
    pub fn to_text(&self) -> String {
        let mut out =
            format!("{CONSISTENCY}\nold-checkpoint {}\nold {}\n", BASE64.encode(&self.old_checkpoint), self.old_size);
        hash_lines(&mut out, &self.hashes);
        out.push('\n');
        out.push_str(&self.new_checkpoint);
        out
    }

    /// The part a C2SP witness reads (`add-checkpoint`'s body): from the `old` line on.
    pub fn witness_body(&self) -> String {
        let text = self.to_text();
        let start = text.find("\nold ").map_or(0, |i| i + 1);
        text[start..].to_owned()
    }

    pub fn parse(text: &str) -> Result<Self, ProofCheckError> {
        let mut lines = Lines::new(text);
        if lines.next("the format line")? != CONSISTENCY {
            return Err(ProofCheckError::Format(CONSISTENCY));
        }
        let old = lines.base64_field("old-checkpoint", "`old-checkpoint` and a note in base64")?;
        let old_checkpoint = String::from_utf8(old).map_err(|_| lines.syntax("the old checkpoint is not UTF-8"))?;
        let old_size = lines.number_field("old", "`old` and a decimal number")?;
        let (hashes, note) = lines.hashes_then_note()?;
        Ok(ConsistencyProof { old_checkpoint, old_size, hashes, new_checkpoint: note.to_owned() })
    }

    /// Checks both checkpoints' signatures (when `pinned` is given), that they are of one log, and that the new tree
    /// extends the old one.
    pub fn check(&self, pinned: Option<&Verifier>) -> Result<CheckedConsistency, ProofCheckError> {
        let old = open_note(&self.old_checkpoint, pinned)?;
        let new = open_note(&self.new_checkpoint, pinned)?;
        if old.origin != new.origin {
            return Err(ProofCheckError::Origin { old: old.origin, new: new.origin });
        }
        if old.size != self.old_size {
            return Err(ProofCheckError::OldSize { inside: old.size, outside: self.old_size });
        }
        if old.size == 0 {
            // tlog-witness: from the empty tree the proof is empty, and every tree extends it; but a checkpoint of
            // size 0 with another root than the empty tree's was never a tree.
            if old.root != merkle::empty_root() {
                return Err(ProofCheckError::Consistency(ProofError::RootMismatch));
            }
            if !self.hashes.is_empty() {
                return Err(ProofCheckError::Consistency(ProofError::WrongProofLength {
                    expected: 0,
                    actual: self.hashes.len(),
                }));
            }
        } else {
            merkle::verify_consistency(old.size, new.size, &old.root, &new.root, &self.hashes)
                .map_err(ProofCheckError::Consistency)?;
        }
        Ok(CheckedConsistency { old, new, key_pinned: pinned.is_some() })
    }
}

/// The length of an inclusion proof's text for leaf `index` of `size`, with a checkpoint note of `note_len` bytes
/// and a record of `record_len`: what `audit prove` writes, computed rather than stored (for the proof-size table).
pub fn inclusion_text_len(index: u64, size: u64, record_len: usize, note_len: usize) -> usize {
    let hashes = merkle::inclusion_proof_len(index, size);
    TLOG_PROOF.len()
        + 1
        + "extra ".len()
        + BASE64.encode(vec![0u8; record_len]).len()
        + 1
        + format!("index {index}\n").len()
        + hashes * 45
        + 1
        + note_len
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use serde_json::json;

    use super::*;
    use crate::audit::checkpoint::Signer;
    use crate::audit::record::{Actor, AdminRecord, Entry};

    fn records(n: u64) -> Vec<Vec<u8>> {
        (0..n)
            .map(|seq| {
                let actor = Actor::System { task: "test".into() };
                let admin = AdminRecord::new(actor, "device.add".into(), format!("laptop-{seq}"), json!({})).unwrap();
                let at = DateTime::from_timestamp(1_800_000_000 + seq as i64, 0).unwrap();
                AuditRecord::new(seq, at, Entry::Admin(admin)).canonical()
            })
            .collect()
    }

    fn note(signer: &Signer, leaves: &[Hash]) -> String {
        let checkpoint = Checkpoint {
            origin: signer.name().to_owned(),
            size: leaves.len() as u64,
            root: merkle::root(leaves),
            extensions: vec![],
        };
        signer.sign(&checkpoint).unwrap()
    }

    fn inclusion(signer: &Signer, records: &[Vec<u8>], seq: u64) -> InclusionProof {
        let leaves: Vec<Hash> = records.iter().map(|r| merkle::leaf_hash(r)).collect();
        let hashes = merkle::inclusion_proof(&leaves, seq).unwrap();
        InclusionProof { index: seq, record: records[seq as usize].clone(), hashes, checkpoint: note(signer, &leaves) }
    }

    #[test]
    fn a_genuine_inclusion_proof_checks_and_every_tampering_is_caught() {
        let signer = Signer::new("simpul.gateway/test", [7; 32]).unwrap();
        let other = Signer::new("simpul.gateway/test", [8; 32]).unwrap();
        let records = records(13);
        let good = inclusion(&signer, &records, 5);
        let checked = good.check(Some(&signer.verifier())).unwrap();
        assert_eq!((checked.record.seq, checked.checkpoint.size, checked.key_pinned), (5, 13, true));
        assert!(!good.check(None).unwrap().key_pinned);

        let text = good.to_text();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra ") && text.contains("\nindex 5\n"), "{text}");
        assert_eq!(InclusionProof::parse(&text).unwrap(), good);

        let mut edited = good.clone();
        edited.record = String::from_utf8(edited.record).unwrap().replace("laptop-5", "laptop-6").into_bytes();
        assert!(matches!(edited.check(Some(&signer.verifier())), Err(ProofCheckError::Inclusion(_))));

        let mut renumbered = good.clone();
        renumbered.index = 6;
        assert!(matches!(renumbered.check(Some(&signer.verifier())), Err(ProofCheckError::Seq { .. })));

        let mut flipped = good.clone();
        flipped.hashes[1][0] ^= 1;
        assert!(matches!(flipped.check(Some(&signer.verifier())), Err(ProofCheckError::Inclusion(_))));
        assert!(matches!(flipped.check(None), Err(ProofCheckError::Inclusion(_))));

        // A checkpoint signed by another key is rejected against the pinned one.
        let forged = inclusion(&other, &records, 5);
        forged.check(None).unwrap();
        assert!(matches!(forged.check(Some(&signer.verifier())), Err(ProofCheckError::Checkpoint(_))));
    }

    #[test]
    fn malformed_proof_texts_are_named() {
        let signer = Signer::new("simpul.gateway/test", [7; 32]).unwrap();
        let text = inclusion(&signer, &records(9), 4).to_text();
        let hash_line = text.lines().nth(3).unwrap().to_owned();
        let cases = [
            (text.replacen("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2", 1), "first line"),
            (text.replacen("\nindex 4\n", "\nindex 04\n", 1), "line 3"),
            (text.replacen("\nindex 4\n", "\nindex -4\n", 1), "line 3"),
            (text.replacen("\nextra ", "\nextra? ", 1), "line 2"),
            (text.replacen(&hash_line, &hash_line[..40], 1), "line 4"),
            (text.replacen(&hash_line, &format!("{}B=", &hash_line[..42]), 1), "line 4"),
            ("c2sp.org/tlog-proof@v1\nextra AA==\n".to_owned(), "line 3"),
        ];
        for (bad, what) in cases {
            let error = InclusionProof::parse(&bad).map(|p| p.check(None)).unwrap_or_else(Err).unwrap_err();
            assert!(error.to_string().contains(what), "{what}: {error}");
        }
    }

    #[test]
    fn consistency_proofs_check_between_many_sizes_and_catch_forks() {
        let signer = Signer::new("simpul.gateway/test", [7; 32]).unwrap();
        let records = records(40);
        let leaves: Vec<Hash> = records.iter().map(|r| merkle::leaf_hash(r)).collect();
        let pinned = signer.verifier();
        for new in 1..=40usize {
            for old in (0..=new).step_by(3).chain([new]) {
                let hashes =
                    if old == 0 { vec![] } else { merkle::consistency_proof(&leaves[..new], old as u64).unwrap() };
                let proof = ConsistencyProof {
                    old_checkpoint: note(&signer, &leaves[..old]),
                    old_size: old as u64,
                    hashes,
                    new_checkpoint: note(&signer, &leaves[..new]),
                };
                let parsed = ConsistencyProof::parse(&proof.to_text()).unwrap();
                assert_eq!(parsed, proof);
                let checked = parsed.check(Some(&pinned)).unwrap();
                assert_eq!((checked.old.size, checked.new.size), (old as u64, new as u64));
                assert!(proof.witness_body().starts_with(&format!("old {old}\n")));
            }
        }
        // A fork: the same size, one record different; the new checkpoint does not extend the old.
        let mut forked = leaves.clone();
        forked[3] = merkle::leaf_hash(b"another history");
        let proof = ConsistencyProof {
            old_checkpoint: note(&signer, &forked[..10]),
            old_size: 10,
            hashes: merkle::consistency_proof(&leaves[..30], 10).unwrap(),
            new_checkpoint: note(&signer, &leaves[..30]),
        };
        assert!(matches!(proof.check(Some(&pinned)), Err(ProofCheckError::Consistency(_))));
        // A checkpoint of a smaller log than the old one, a lie about the old size, another log.
        let shrunk = ConsistencyProof {
            old_checkpoint: note(&signer, &leaves[..30]),
            old_size: 30,
            hashes: vec![],
            new_checkpoint: note(&signer, &leaves[..20]),
        };
        assert!(shrunk.check(Some(&pinned)).is_err());
        let mut lying = proof.clone();
        lying.old_checkpoint = note(&signer, &leaves[..10]);
        lying.old_size = 11;
        assert!(matches!(lying.check(Some(&pinned)), Err(ProofCheckError::OldSize { .. })));
        let stranger = Signer::new("simpul.gateway/other", [7; 32]).unwrap();
        let mut mixed = proof.clone();
        mixed.old_checkpoint = note(&stranger, &leaves[..10]);
        assert!(matches!(mixed.check(None), Err(ProofCheckError::Origin { .. })));
        // A signed checkpoint of size 0 whose root is not the empty tree's extends nothing.
        let bogus = Checkpoint { origin: signer.name().to_owned(), size: 0, root: leaves[0], extensions: vec![] };
        let from_nothing = ConsistencyProof {
            old_checkpoint: signer.sign(&bogus).unwrap(),
            old_size: 0,
            hashes: vec![],
            new_checkpoint: note(&signer, &leaves[..5]),
        };
        let refused = from_nothing.check(Some(&pinned));
        assert!(matches!(refused, Err(ProofCheckError::Consistency(ProofError::RootMismatch))), "{refused:?}");
    }

    #[test]
    fn the_computed_text_length_is_the_written_one() {
        let signer = Signer::new("simpul.gateway/test", [7; 32]).unwrap();
        let records = records(37);
        for seq in [0u64, 5, 31, 32, 36] {
            let proof = inclusion(&signer, &records, seq);
            let len = inclusion_text_len(seq, 37, proof.record.len(), proof.checkpoint.len());
            assert_eq!(len, proof.to_text().len(), "seq {seq}");
        }
    }
}
