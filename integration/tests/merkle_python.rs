//! Cross-checks the Merkle module against integration/tests/python/merkle_verify.py, an oracle written separately
//! from RFC 9162: roots, the proofs themselves, and verdicts on genuine and tampered proofs must all agree.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use simpul_core::audit::merkle::{
    consistency_proof, inclusion_proof, leaf_hash, root, verify_consistency, verify_inclusion, Hash,
};

const MAX_SIZE: usize = 40;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hexes(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(|h| hex(h)).collect()
}

/// Records of varied length, starting with the empty one, so the oracle's own leaf hashing is exercised.
fn records() -> Vec<Vec<u8>> {
    (0..MAX_SIZE).map(|i| (0..i % 9).map(|j| (i * 31 + j) as u8).collect()).collect()
}

fn flip(proof: &[Hash], at: usize) -> Vec<Hash> {
    let mut bad = proof.to_vec();
    bad[at % proof.len()][at % 32] ^= 1 << (at % 8);
    bad
}

struct Case {
    request: Value,
    /// Whether Rust accepted it; Python must agree.
    expected: bool,
    /// Tampering that must be rejected whatever the verifier; `false` for genuine proofs and for a wrong tree size,
    /// which a proof of the same shape cannot detect.
    must_reject: bool,
    label: String,
}

fn inclusion_cases(leaves: &[Hash]) -> Vec<Case> {
    let mut cases = Vec::new();
    for size in 1..=leaves.len() {
        let tree = &leaves[..size];
        let tree_root = root(tree);
        for index in 0..size {
            let proof = inclusion_proof(tree, index as u64).unwrap();
            let mut push = |index: usize, size: usize, proof: Vec<Hash>, claimed_root: Hash, must_reject, what| {
                let leaf = leaves.get(index).copied().unwrap_or([0; 32]);
                let expected = verify_inclusion(&leaf, index as u64, size as u64, &proof, &claimed_root).is_ok();
                cases.push(Case {
                    request: json!({"index": index, "size": size, "proof": hexes(&proof), "root": hex(&claimed_root)}),
                    expected,
                    must_reject,
                    label: format!("inclusion {what} index={index} size={size}"),
                });
            };
            push(index, size, proof.clone(), tree_root, false, "genuine");
            if !proof.is_empty() {
                push(index, size, flip(&proof, index + size), tree_root, true, "flipped");
                push(index, size, proof[..proof.len() - 1].to_vec(), tree_root, true, "truncated");
            }
            let mut longer = proof.clone();
            longer.push(tree_root);
            push(index, size, longer, tree_root, true, "extended");
            if size > 1 {
                push((index + 1) % size, size, proof.clone(), tree_root, true, "wrong index");
                push(index, size, proof.clone(), root(&tree[..size - 1]), true, "older root");
            }
            if size < leaves.len() {
                push(index, size + 1, proof.clone(), tree_root, false, "wrong size");
            }
        }
    }
    cases
}

fn consistency_cases(leaves: &[Hash]) -> Vec<Case> {
    let mut cases = Vec::new();
    for n in 1..=leaves.len() {
        let new_root = root(&leaves[..n]);
        for m in 1..=n {
            let old_root = root(&leaves[..m]);
            let proof = consistency_proof(&leaves[..n], m as u64).unwrap();
            let mut push = |m: usize, n: usize, proof: Vec<Hash>, old: Hash, new: Hash, must_reject, what| {
                let expected = verify_consistency(m as u64, n as u64, &old, &new, &proof).is_ok();
                cases.push(Case {
                    request: json!({"m": m, "n": n, "proof": hexes(&proof), "old_root": hex(&old), "new_root": hex(&new)}),
                    expected,
                    must_reject,
                    label: format!("consistency {what} m={m} n={n}"),
                });
            };
            push(m, n, proof.clone(), old_root, new_root, false, "genuine");
            if !proof.is_empty() {
                push(m, n, flip(&proof, m * 7 + n), old_root, new_root, true, "flipped");
                push(m, n, proof[..proof.len() - 1].to_vec(), old_root, new_root, true, "truncated");
            }
            let mut longer = proof.clone();
            longer.push(old_root);
            push(m, n, longer, old_root, new_root, true, "extended");
            if m < n {
                push(m, n, proof.clone(), new_root, old_root, true, "swapped roots");
                push(n, m, proof.clone(), old_root, new_root, true, "swapped sizes");
                push(m + 1, n, proof.clone(), old_root, new_root, true, "wrong old size");
            }
            if n < leaves.len() {
                push(m, n + 1, proof.clone(), old_root, new_root, false, "wrong new size");
            }
        }
    }
    cases
}

#[test]
fn python_oracle_agrees() {
    if !simpul_integration::python3_available() {
        simpul_integration::skip("merkle_python cross-check against merkle_verify.py", "needs python3");
        return;
    }
    let records = records();
    let leaves: Vec<Hash> = records.iter().map(|r| leaf_hash(r)).collect();
    let inclusion = inclusion_cases(&leaves);
    let consistency = consistency_cases(&leaves);
    for case in inclusion.iter().chain(&consistency) {
        assert!(!(case.must_reject && case.expected), "Rust accepted {}", case.label);
        if case.label.contains("genuine") {
            assert!(case.expected, "Rust rejected {}", case.label);
        }
    }
    let request = json!({
        "leaves": records.iter().map(|r| hex(r)).collect::<Vec<_>>(),
        "inclusion": inclusion.iter().map(|c| &c.request).collect::<Vec<_>>(),
        "consistency": consistency.iter().map(|c| &c.request).collect::<Vec<_>>(),
    });

    let script = simpul_integration::workspace_root().join("integration/tests/python/merkle_verify.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start python3");
    // Written on a thread: the reply can fill the stdout pipe before the request is fully read.
    let mut stdin = child.stdin.take().unwrap();
    let body = serde_json::to_vec(&request).unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let output = child.wait_with_output().expect("run merkle_verify.py");
    writer.join().unwrap().expect("write request");
    assert!(output.status.success(), "merkle_verify.py failed: {}", output.status);
    let reply: Value = serde_json::from_slice(&output.stdout).expect("merkle_verify.py prints JSON");

    let roots = reply["roots"].as_array().unwrap();
    assert_eq!(roots.len(), MAX_SIZE + 1);
    for (size, python_root) in roots.iter().enumerate() {
        assert_eq!(python_root.as_str().unwrap(), hex(&root(&leaves[..size])), "root of size {size}");
    }

    let python_inclusion = reply["inclusion"].as_array().unwrap();
    assert_eq!(python_inclusion.len(), inclusion.len());
    for (case, answer) in inclusion.iter().zip(python_inclusion) {
        assert_eq!(answer["verified"].as_bool(), Some(case.expected), "{}", case.label);
        if case.label.contains("genuine") {
            assert_eq!(answer["path"], case.request["proof"], "PATH for {}", case.label);
        }
    }
    let python_consistency = reply["consistency"].as_array().unwrap();
    assert_eq!(python_consistency.len(), consistency.len());
    for (case, answer) in consistency.iter().zip(python_consistency) {
        assert_eq!(answer["verified"].as_bool(), Some(case.expected), "{}", case.label);
        if case.label.contains("genuine") {
            assert_eq!(answer["proof"], case.request["proof"], "PROOF for {}", case.label);
        }
    }
    let genuine = inclusion.iter().chain(&consistency).filter(|c| c.label.contains("genuine")).count();
    let rejected = inclusion.iter().chain(&consistency).filter(|c| !c.expected).count();
    assert!(genuine >= 2 * 820 && rejected > 2 * 820, "genuine {genuine}, rejected {rejected}");
}
