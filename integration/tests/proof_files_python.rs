//! The proof files `audit prove` and `audit consistency` write, checked by integration/tests/python/tlog_proof_check.py,
//! an oracle written from the C2SP and RFC 9162 texts: every genuine file between many pairs of sizes is valid there,
//! and every tampered one invalid. Also the proof sizes for logs of 10^3 to 10^7 records, computed (not stored).

use std::path::PathBuf;
use std::process::Command;

use chrono::DateTime;
use serde_json::{json, Value};
use simpul_core::audit::checkpoint::{Checkpoint, Signer};
use simpul_core::audit::merkle::{self, Hash};
use simpul_core::audit::proof::{inclusion_text_len, ConsistencyProof, InclusionProof};
use simpul_core::audit::record::{Actor, AdminRecord, AuditRecord, Entry};

fn records(n: u64) -> Vec<Vec<u8>> {
    (0..n)
        .map(|seq| {
            let actor = Actor::Cli { uid: 0, pid: Some(seq as i32) };
            let admin = AdminRecord::new(actor, "device.add".into(), format!("laptop-{seq}"), json!({"n": seq}));
            let at = DateTime::from_timestamp(1_800_000_000 + seq as i64, 0).unwrap();
            AuditRecord::new(seq, at, Entry::Admin(admin.unwrap())).canonical()
        })
        .collect()
}

fn note(signer: &Signer, leaves: &[Hash]) -> String {
    let size = leaves.len() as u64;
    signer
        .sign(&Checkpoint { origin: signer.name().into(), size, root: merkle::root(leaves), extensions: vec![] })
        .unwrap()
}

/// Writes each text to a file and returns what the oracle said of each, in order.
fn oracle(texts: &[String]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let path = dir.path().join(format!("{i}.proof"));
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect();
    let script = simpul_integration::workspace_root().join("integration/tests/python/tlog_proof_check.py");
    let output = Command::new("python3").arg(script).args(&files).output().expect("python3 runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let answers: Vec<Value> =
        String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(answers.len(), texts.len());
    answers
}

#[test]
fn the_python_oracle_accepts_every_genuine_proof_file_and_rejects_every_tampered_one() {
    if !simpul_integration::python3_available() {
        simpul_integration::skip("proof files against tlog_proof_check.py", "needs python3");
        return;
    }
    let signer = Signer::new("simpul.gateway/oracle", [5; 32]).unwrap();
    let records = records(33);
    let leaves: Vec<Hash> = records.iter().map(|r| merkle::leaf_hash(r)).collect();
    let (mut genuine, mut tampered) = (Vec::new(), Vec::new());
    for new in 1..=33usize {
        let new_note = note(&signer, &leaves[..new]);
        for old in 0..=new {
            let hashes = if old == 0 { vec![] } else { merkle::consistency_proof(&leaves[..new], old as u64).unwrap() };
            let proof = ConsistencyProof {
                old_checkpoint: note(&signer, &leaves[..old]),
                old_size: old as u64,
                hashes,
                new_checkpoint: new_note.clone(),
            };
            proof.check(Some(&signer.verifier())).unwrap();
            genuine.push(proof.to_text());
            if let Some(first) = proof.hashes.first() {
                let mut bad = proof.clone();
                bad.hashes[0] = merkle::node_hash(first, first);
                tampered.push(bad.to_text());
            }
        }
        for index in (0..new).step_by(4).chain([new - 1]) {
            let hashes = merkle::inclusion_proof(&leaves[..new], index as u64).unwrap();
            let proof = InclusionProof {
                index: index as u64,
                record: records[index].clone(),
                hashes,
                checkpoint: new_note.clone(),
            };
            proof.check(Some(&signer.verifier())).unwrap();
            genuine.push(proof.to_text());
            let mut bad = proof.clone();
            bad.record = records[(index + 1) % new.max(2)].clone();
            if bad.record != proof.record {
                tampered.push(bad.to_text());
            }
        }
    }
    // A fork: the same sizes, a different history.
    let mut forked = leaves.clone();
    forked[2] = merkle::leaf_hash(b"another record");
    tampered.push(
        ConsistencyProof {
            old_checkpoint: note(&signer, &forked[..5]),
            old_size: 5,
            hashes: merkle::consistency_proof(&leaves[..20], 5).unwrap(),
            new_checkpoint: note(&signer, &leaves[..20]),
        }
        .to_text(),
    );
    for (text, answer) in genuine.iter().zip(oracle(&genuine)) {
        assert_eq!(answer["valid"], true, "{answer}\n{text}");
    }
    for (text, answer) in tampered.iter().zip(oracle(&tampered)) {
        assert_eq!(answer["valid"], false, "{answer}\n{text}");
    }
    assert!(genuine.len() > 600 && tampered.len() > 500, "{} {}", genuine.len(), tampered.len());
}

/// The inclusion proof for the worst-placed record of a log of n records (the first), as `audit prove` writes it:
/// hash count, the hash lines' bytes, and the whole file with a typical record and checkpoint. Printed with
/// `cargo test -p simpul-core --test proof_files_python -- --nocapture`.
#[test]
fn proof_sizes_for_logs_of_a_thousand_to_ten_million_records() {
    let (record, note) = (900, 190);
    println!("{:>10}  {:>6}  {:>10}  {:>10}  {:>12}", "records", "hashes", "hash bytes", "hash text", "whole file");
    for n in [1_000u64, 10_000, 100_000, 1_000_000, 10_000_000] {
        let hashes = merkle::inclusion_proof_len(0, n);
        let ceil_log2 = 64 - (n - 1).leading_zeros() as usize;
        assert_eq!(hashes, ceil_log2, "the first record's path is the longest, ceil(log2 n)");
        let whole = inclusion_text_len(0, n, record, note);
        println!("{n:>10}  {hashes:>6}  {:>10}  {:>10}  {whole:>12}", hashes * 32, hashes * 45);
        assert_eq!(
            whole - inclusion_text_len(0, 1, record, note),
            hashes * 45,
            "45 bytes a hash line, nothing else grows"
        );
    }
}
