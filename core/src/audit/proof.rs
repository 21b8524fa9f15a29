//! The proof file an auditor is handed (`audit prove`, `audit subject`): one record, its inclusion proof, and a
//! checkpoint the gateway signed. [`ProofBundle::check`] needs nothing but the file and the gateway's public key, so
//! the record's presence in the log can be confirmed anywhere, offline, without trusting the machine that made it.
//!
//! The bundle names the key it claims to be signed with (`vkey`), for convenience only: a proof checked against the
//! key inside the file shows that the file is self-consistent, not that the gateway made it. [`Checked::key_pinned`]
//! tells the two apart, and the CLI says so.

use serde::{Deserialize, Serialize};

use super::checkpoint::{self, Checkpoint, CheckpointError, Verifier};
use super::merkle::{self, Hash, ProofError};
use super::record::{AuditRecord, RecordError};

/// The `format` value of the bundles this code writes and reads.
pub const FORMAT: &str = "simpul-audit-proof/1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofBundle {
    pub format: String,
    pub seq: u64,
    /// The record's canonical bytes (they are UTF-8 JSON), exactly what the leaf hashes.
    pub record: String,
    /// Sibling hashes from the leaf up, lower-case hex.
    pub inclusion: Vec<String>,
    /// The signed note of a checkpoint whose tree contains the record.
    pub checkpoint: String,
    /// The signing key the gateway claims, in signed-note verifier form.
    pub vkey: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofCheckError {
    #[error("not a proof file of format {FORMAT}")]
    Format,
    #[error("the record is not a canonical audit record: {0}")]
    Record(#[from] RecordError),
    #[error("the record says sequence number {inside}, the proof {outside}")]
    Seq { inside: u64, outside: u64 },
    #[error("the checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("an inclusion proof hash is not 32 bytes of lower-case hex")]
    Hex,
    #[error("the record is not in the signed tree: {0}")]
    Inclusion(#[from] ProofError),
}

/// What a valid bundle establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub record: AuditRecord,
    pub checkpoint: Checkpoint,
    /// True when checked against a key the caller supplied; false when against the key inside the file.
    pub key_pinned: bool,
}

impl ProofBundle {
    pub fn new(seq: u64, record: &[u8], inclusion: &[Hash], checkpoint: String, verifier: &Verifier) -> Self {
        ProofBundle {
            format: FORMAT.to_owned(),
            seq,
            record: String::from_utf8_lossy(record).into_owned(),
            inclusion: inclusion.iter().map(|h| h.iter().map(|b| format!("{b:02x}")).collect()).collect(),
            checkpoint,
            vkey: verifier.vkey(),
        }
    }

    /// Checks the record's encoding, the checkpoint's signature (by `pinned`, else by the file's own `vkey`) and
    /// the inclusion of the record's leaf under the checkpoint's root.
    pub fn check(&self, pinned: Option<&Verifier>) -> Result<Checked, ProofCheckError> {
        if self.format != FORMAT {
            return Err(ProofCheckError::Format);
        }
        let record = AuditRecord::from_canonical(self.record.as_bytes())?;
        if record.seq != self.seq {
            return Err(ProofCheckError::Seq { inside: record.seq, outside: self.seq });
        }
        let claimed;
        let verifier = match pinned {
            Some(v) => v,
            None => {
                claimed = Verifier::from_vkey(&self.vkey)?;
                &claimed
            }
        };
        let (checkpoint, _) = checkpoint::open(&self.checkpoint, verifier)?;
        let proof =
            self.inclusion.iter().map(|h| parse_hash(h)).collect::<Option<Vec<Hash>>>().ok_or(ProofCheckError::Hex)?;
        let leaf = merkle::leaf_hash(self.record.as_bytes());
        merkle::verify_inclusion(&leaf, self.seq, checkpoint.size, &proof, &checkpoint.root)?;
        Ok(Checked { record, checkpoint, key_pinned: pinned.is_some() })
    }
}

fn parse_hash(text: &str) -> Option<Hash> {
    if text.len() != 64 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use serde_json::json;

    use super::*;
    use crate::audit::checkpoint::Signer;
    use crate::audit::record::{AdminRecord, Entry};

    fn records(n: u64) -> Vec<Vec<u8>> {
        (0..n)
            .map(|seq| {
                let admin = AdminRecord::new(0, "device.add".into(), format!("laptop-{seq}"), json!({})).unwrap();
                let at = DateTime::from_timestamp(1_800_000_000 + seq as i64, 0).unwrap();
                AuditRecord { seq, at, entry: Entry::Admin(admin) }.canonical()
            })
            .collect()
    }

    fn bundle(signer: &Signer, records: &[Vec<u8>], seq: u64) -> ProofBundle {
        let leaves: Vec<Hash> = records.iter().map(|r| merkle::leaf_hash(r)).collect();
        let checkpoint = Checkpoint {
            origin: signer.name().to_owned(),
            size: leaves.len() as u64,
            root: merkle::root(&leaves),
            extensions: vec![],
        };
        let note = signer.sign(&checkpoint).unwrap();
        let proof = merkle::inclusion_proof(&leaves, seq).unwrap();
        ProofBundle::new(seq, &records[seq as usize], &proof, note, &signer.verifier())
    }

    #[test]
    fn a_genuine_bundle_checks_and_every_tampering_is_caught() {
        let signer = Signer::new("simpul.gateway/test", [7; 32]).unwrap();
        let other = Signer::new("simpul.gateway/test", [8; 32]).unwrap();
        let records = records(13);
        let good = bundle(&signer, &records, 5);
        let checked = good.check(Some(&signer.verifier())).unwrap();
        assert_eq!((checked.record.seq, checked.checkpoint.size, checked.key_pinned), (5, 13, true));
        assert!(!good.check(None).unwrap().key_pinned);

        // Survives a round trip through its JSON file form.
        let text = serde_json::to_string_pretty(&good).unwrap();
        assert_eq!(serde_json::from_str::<ProofBundle>(&text).unwrap(), good);

        let mut edited = good.clone();
        edited.record = edited.record.replace("laptop-5", "laptop-6");
        assert!(matches!(edited.check(Some(&signer.verifier())), Err(ProofCheckError::Inclusion(_))));

        let mut renumbered = good.clone();
        renumbered.seq = 6;
        assert!(matches!(renumbered.check(Some(&signer.verifier())), Err(ProofCheckError::Seq { .. })));

        let mut flipped = good.clone();
        let first = if flipped.inclusion[1].starts_with('0') { "1" } else { "0" };
        flipped.inclusion[1].replace_range(0..1, first);
        assert!(matches!(flipped.check(Some(&signer.verifier())), Err(ProofCheckError::Inclusion(_))));

        // A checkpoint signed by another key: rejected against the pinned key even though the file's own vkey
        // (swapped in by the forger) would accept it.
        let mut forged = bundle(&other, &records, 5);
        forged.check(None).unwrap();
        assert!(matches!(forged.check(Some(&signer.verifier())), Err(ProofCheckError::Checkpoint(_))));
        forged.vkey = signer.verifier().vkey();
        assert!(matches!(forged.check(None), Err(ProofCheckError::Checkpoint(_))));

        let mut unknown = good.clone();
        unknown.format = "simpul-audit-proof/0".into();
        assert_eq!(unknown.check(None).unwrap_err(), ProofCheckError::Format);
    }
}
