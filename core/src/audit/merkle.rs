//! RFC 9162 (Certificate Transparency v2) Merkle tree hashing, inclusion and consistency proofs.
//!
//! Everything here is pure: callers pass leaf hashes (or a [`NodeSource`] that looks stored nodes up) and get hashes,
//! proofs and verdicts back.
//!
//! # Storing the tree (for the gateway)
//!
//! Every hash a root or proof needs is the hash of a *perfect, aligned* subtree: `size` leaves, `size` a power of
//! two, starting at a multiple of `size` (RFC 9162's split at the largest power of two smaller than `n` keeps every
//! left part aligned). Such a subtree never changes once its last leaf is appended, so the gateway can store it
//! write-once under the key `(level, start >> level)` where `size = 1 << level`: level 0 holds the leaf hashes, and
//! when leaf `i` is appended, every level `l` with `(i + 1) % (1 << l) == 0` gains the node
//! `node_hash(level l-1 at 2j, level l-1 at 2j+1)`. Implementing [`NodeSource::subtree`] as that key lookup makes
//! [`root_from`], [`inclusion_proof_from`] and [`consistency_proof_from`] cost O(log n) lookups. The tree for any
//! older size is derived from the same nodes, so no per-size state has to be kept.

use sha2::{Digest, Sha256};

/// A SHA-256 output: leaf hashes, node hashes and roots.
pub type Hash = [u8; 32];

/// Why a proof could not be built or did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// Proofs about an empty tree (or consistency from the empty tree) say nothing, so they are refused.
    #[error("the tree is empty")]
    EmptyTree,
    #[error("leaf index {index} is not in a tree of {size} leaves")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    SizesOutOfOrder { old_size: u64, new_size: u64 },
    #[error("proof has {actual} hashes, expected {expected}")]
    WrongProofLength { expected: usize, actual: usize },
    #[error("the proof does not rebuild the given root")]
    RootMismatch,
}

const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

/// `SHA-256(0x00 || record)`; the prefix keeps a leaf from being passed off as an interior node.
pub fn leaf_hash(record: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_PREFIX]);
    hasher.update(record);
    hasher.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([NODE_PREFIX]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1).
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Hashes of perfect, aligned subtrees, which is all that roots and proofs need (see the module docs).
pub trait NodeSource {
    /// The Merkle tree hash of leaves `start .. start + size`. Callers only ask for `size` a power of two and
    /// `start` a multiple of `size`, inside the tree size they passed to the `*_from` function.
    fn subtree(&self, start: u64, size: u64) -> Hash;
}

/// Leaf hashes held in memory; `subtree` recomputes, so proofs cost O(n). Fine for tests and small trees.
/// Asking the `*_from` functions about more leaves than the slice holds panics, as slice indexing does.
impl NodeSource for [Hash] {
    fn subtree(&self, start: u64, size: u64) -> Hash {
        slice_root(&self[to_usize(start)..to_usize(start + size)])
    }
}

fn to_usize(value: u64) -> usize {
    usize::try_from(value).expect("a leaf index that fits in memory fits in usize")
}

/// Largest power of two strictly smaller than `n` (`n >= 2`): RFC 9162's split point.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

fn slice_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = to_usize(split(n as u64));
            node_hash(&slice_root(&leaves[..k]), &slice_root(&leaves[k..]))
        }
    }
}

/// MTH over leaf hashes (RFC 9162 §2.1.1: split at the largest power of two < n).
pub fn root(leaves: &[Hash]) -> Hash {
    slice_root(leaves)
}

/// MTH of leaves `start .. start + n` (`n >= 1`), where `start` is aligned as the recursion from the root keeps it.
fn range_hash<S: NodeSource + ?Sized>(source: &S, start: u64, n: u64) -> Hash {
    if n.is_power_of_two() {
        return source.subtree(start, n);
    }
    let k = split(n);
    node_hash(&source.subtree(start, k), &range_hash(source, start + k, n - k))
}

/// The root of the first `size` leaves of `source`, in O(log size) subtree lookups.
pub fn root_from<S: NodeSource + ?Sized>(source: &S, size: u64) -> Hash {
    if size == 0 {
        return empty_root();
    }
    range_hash(source, 0, size)
}

/// Inclusion proof for leaf `index` in a tree of `size` leaves (§2.1.3.1 PATH), computed from the leaf hashes.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Result<Vec<Hash>, ProofError> {
    inclusion_proof_from(leaves, index, leaves.len() as u64)
}

/// [`inclusion_proof`] over the first `size` leaves of a [`NodeSource`].
pub fn inclusion_proof_from<S: NodeSource + ?Sized>(
    source: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError> {
    if size == 0 {
        return Err(ProofError::EmptyTree);
    }
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    // PATH is defined top-down but lists hashes bottom-up; walk down collecting, then reverse.
    let mut path = Vec::new();
    let (mut start, mut m, mut n) = (0, index, size);
    while n > 1 {
        let k = split(n);
        if m < k {
            path.push(range_hash(source, start + k, n - k));
            n = k;
        } else {
            path.push(source.subtree(start, k));
            start += k;
            m -= k;
            n -= k;
        }
    }
    path.reverse();
    Ok(path)
}

pub fn inclusion_proof_len(mut index: u64, mut size: u64) -> usize {
    let mut len = 0;
    while size > 1 {
        let k = split(size);
        if index < k {
            size = k;
        } else {
            index -= k;
            size -= k;
        }
        len += 1;
    }
    len
}

/// The walk both verifications of RFC 9162 share (§2.1.3.2 and §2.1.4.2): for each proof hash, tells `step`
/// whether it is the left sibling (the node climbs from the right) and moves the indexes `f_n`/`s_n` up. Returns the
/// final `s_n`, which must be 0 for a proof of the right length; `None` if the proof is longer than the tree is high.
fn climb(mut f_n: u64, mut s_n: u64, proof: &[Hash], mut step: impl FnMut(&Hash, bool)) -> Option<u64> {
    for p in proof {
        if s_n == 0 {
            return None;
        }
        if f_n & 1 == 1 || f_n == s_n {
            step(p, true);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            step(p, false);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    Some(s_n)
}

/// Verification per §2.1.3.2 (the iterative algorithm with fn/sn), returns Ok(()) only if the proof rebuilds `root`.
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    // The RFC loop would also fail on a wrong length, but saying so explicitly makes the error useful.
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength { expected, actual: proof.len() });
    }
    let mut r = *leaf;
    let s_n = climb(index, size - 1, proof, |p, sibling_left| {
        r = if sibling_left { node_hash(p, &r) } else { node_hash(&r, p) };
    })
    .ok_or(ProofError::WrongProofLength { expected, actual: proof.len() })?;
    if s_n == 0 && r == *root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// Consistency proof between sizes m <= n (§2.1.4.1 PROOF/SUBPROOF); `n` is `leaves.len()`, and `m == n` gives the
/// empty proof.
pub fn consistency_proof(leaves: &[Hash], old_size: u64) -> Result<Vec<Hash>, ProofError> {
    consistency_proof_from(leaves, old_size, leaves.len() as u64)
}

/// [`consistency_proof`] between the first `old_size` and the first `new_size` leaves of a [`NodeSource`].
pub fn consistency_proof_from<S: NodeSource + ?Sized>(
    source: &S,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, ProofError> {
    check_sizes(old_size, new_size)?;
    // SUBPROOF walks down from the root; the hashes it emits come out in reverse list order.
    let mut proof = Vec::new();
    let (mut start, mut m, mut n, mut whole_old_tree) = (0, old_size, new_size, true);
    while m < n {
        let k = split(n);
        if m <= k {
            proof.push(range_hash(source, start + k, n - k));
            n = k;
        } else {
            proof.push(source.subtree(start, k));
            start += k;
            m -= k;
            n -= k;
            whole_old_tree = false;
        }
    }
    // m == n: the verifier already holds this subtree's hash only when it is the whole old tree.
    if !whole_old_tree {
        proof.push(range_hash(source, start, n));
    }
    proof.reverse();
    Ok(proof)
}

fn check_sizes(old_size: u64, new_size: u64) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizesOutOfOrder { old_size, new_size });
    }
    if old_size == 0 {
        return Err(ProofError::EmptyTree);
    }
    Ok(())
}

fn consistency_proof_len(mut m: u64, mut n: u64) -> usize {
    let (mut len, mut whole_old_tree) = (0, true);
    while m < n {
        let k = split(n);
        if m <= k {
            n = k;
        } else {
            m -= k;
            n -= k;
            whole_old_tree = false;
        }
        len += 1;
    }
    len + usize::from(!whole_old_tree)
}

/// Verification per §2.1.4.2, given both roots.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    check_sizes(old_size, new_size)?;
    let expected = consistency_proof_len(old_size, new_size);
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength { expected, actual: proof.len() });
    }
    // §2.1.4.2 assumes first < second; for equal sizes the only consistent pair is equal roots.
    if old_size == new_size {
        return if old_root == new_root { Ok(()) } else { Err(ProofError::RootMismatch) };
    }
    // When the old tree is a perfect subtree the proof omits its root, since the verifier already has it.
    let mut path = proof.iter();
    let first = if old_size.is_power_of_two() {
        *old_root
    } else {
        *path.next().ok_or(ProofError::WrongProofLength { expected, actual: proof.len() })?
    };
    let (mut f_n, mut s_n) = (old_size - 1, new_size - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut f_r, mut s_r) = (first, first);
    let s_n = climb(f_n, s_n, path.as_slice(), |c, sibling_left| {
        if sibling_left {
            f_r = node_hash(c, &f_r);
            s_r = node_hash(c, &s_r);
        } else {
            s_r = node_hash(&s_r, c);
        }
    })
    .ok_or(ProofError::WrongProofLength { expected, actual: proof.len() })?;
    if s_n == 0 && f_r == *old_root && s_r == *new_root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(hash: &Hash) -> String {
        hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The 8-leaf test tree of certificate-transparency's merkle_test.
    fn ct_records() -> Vec<Vec<u8>> {
        vec![
            vec![],
            vec![0x00],
            vec![0x10],
            vec![0x20, 0x21],
            vec![0x30, 0x31],
            vec![0x40, 0x41, 0x42, 0x43],
            (0x50..=0x57).collect(),
            (0x60..=0x6f).collect(),
        ]
    }

    fn ct_leaves() -> Vec<Hash> {
        ct_records().iter().map(|r| leaf_hash(r)).collect()
    }

    /// Records distinct per index, so a proof for the wrong leaf cannot accidentally verify.
    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    const CT_ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(hex(&empty_root()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(root(&[]), empty_root());
        assert_eq!(root_from(&[] as &[Hash], 0), empty_root());
    }

    #[test]
    fn ct_test_vector_roots() {
        let leaves = ct_leaves();
        for (size, expected) in (1..=8).zip(CT_ROOTS) {
            assert_eq!(hex(&root(&leaves[..size])), expected, "root of size {size}");
            assert_eq!(hex(&root_from(&leaves[..], size as u64)), expected, "root_from of size {size}");
        }
    }

    fn parse(hex: &str) -> Hash {
        let mut out = [0; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    // Proof vectors from certificate-transparency's merkle_test.cc (RFC 6962 hashing is the same as RFC 9162's).
    #[test]
    fn ct_test_vector_proofs() {
        let leaves = ct_leaves();
        let path = |index: u64, size: usize| -> Vec<String> {
            inclusion_proof(&leaves[..size], index).unwrap().iter().map(hex).collect()
        };
        assert_eq!(path(0, 1), Vec::<String>::new());
        assert_eq!(
            path(0, 8),
            [
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ]
        );
        assert_eq!(
            path(5, 8),
            [
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ]
        );
        assert_eq!(path(2, 3), ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",]);
        assert_eq!(
            path(1, 5),
            [
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ]
        );
        let consistency =
            |m: u64, n: usize| -> Vec<String> { consistency_proof(&leaves[..n], m).unwrap().iter().map(hex).collect() };
        assert_eq!(consistency(1, 1), Vec::<String>::new());
        assert_eq!(
            consistency(1, 8),
            [
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ]
        );
        assert_eq!(
            consistency(6, 8),
            [
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ]
        );
        assert_eq!(
            consistency(2, 5),
            [
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ]
        );
        for (size, expected) in (1..=8).zip(CT_ROOTS) {
            assert_eq!(root(&leaves[..size]), parse(expected));
        }
    }

    /// Which side each PATH hash sits on. The hashes do not commit to the tree size, so a proof also verifies for
    /// another size whose path has the same shape; that is why the size must come from a signed checkpoint.
    fn path_shape(mut index: u64, mut size: u64) -> Vec<bool> {
        let mut shape = Vec::new();
        while size > 1 {
            let k = split(size);
            shape.push(index >= k);
            if index < k {
                size = k;
            } else {
                index -= k;
                size -= k;
            }
        }
        shape
    }

    /// The same for SUBPROOF, plus whether the old tree's own hash is left out.
    fn proof_shape(mut m: u64, mut n: u64) -> (Vec<bool>, bool) {
        let (mut shape, mut whole_old_tree) = (Vec::new(), true);
        while m < n {
            let k = split(n);
            shape.push(m > k);
            if m <= k {
                n = k;
            } else {
                m -= k;
                n -= k;
                whole_old_tree = false;
            }
        }
        (shape, whole_old_tree)
    }

    /// Every single-bit flip, truncation, extension and wrong parameter must be rejected.
    fn assert_inclusion_tamper_rejected(leaves: &[Hash], index: u64, proof: &[Hash], good_root: &Hash) {
        let size = leaves.len() as u64;
        let leaf = &leaves[to_usize(index)];
        for i in 0..proof.len() {
            for bit in [0, 7, 100, 255] {
                let mut bad = proof.to_vec();
                bad[i][bit / 8] ^= 1 << (bit % 8);
                assert!(verify_inclusion(leaf, index, size, &bad, good_root).is_err());
            }
        }
        let mut bad_leaf = *leaf;
        bad_leaf[31] ^= 1;
        assert!(verify_inclusion(&bad_leaf, index, size, proof, good_root).is_err());
        let mut bad_root = *good_root;
        bad_root[0] ^= 0x80;
        assert!(verify_inclusion(leaf, index, size, proof, &bad_root).is_err());
        if !proof.is_empty() {
            assert!(verify_inclusion(leaf, index, size, &proof[..proof.len() - 1], good_root).is_err());
        }
        let mut longer = proof.to_vec();
        longer.push(*leaf);
        assert!(verify_inclusion(leaf, index, size, &longer, good_root).is_err());
        for other in 0..size + 2 {
            if other != index {
                assert!(verify_inclusion(leaf, other, size, proof, good_root).is_err(), "index {other}");
            }
        }
        for other_size in 1..size + 3 {
            if other_size != size {
                let r = verify_inclusion(leaf, index, other_size, proof, good_root);
                assert!(r.is_err() || path_shape(index, other_size) == path_shape(index, size), "size {other_size}");
            }
        }
    }

    #[test]
    fn exhaustive_inclusion_up_to_64() {
        let all = leaves(64);
        for size in 1..=64u64 {
            let tree = &all[..to_usize(size)];
            let tree_root = root(tree);
            for index in 0..size {
                let proof = inclusion_proof(tree, index).unwrap();
                assert_eq!(proof, inclusion_proof_from(&all[..], index, size).unwrap());
                assert_eq!(verify_inclusion(&tree[to_usize(index)], index, size, &proof, &tree_root), Ok(()));
                assert_inclusion_tamper_rejected(tree, index, &proof, &tree_root);
            }
            assert_eq!(inclusion_proof(tree, size), Err(ProofError::IndexOutOfRange { index: size, size }));
        }
        assert_eq!(inclusion_proof(&[], 0), Err(ProofError::EmptyTree));
    }

    fn assert_consistency_tamper_rejected(all: &[Hash], m: u64, n: u64, proof: &[Hash]) {
        let old_root = root(&all[..to_usize(m)]);
        let new_root = root(&all[..to_usize(n)]);
        for i in 0..proof.len() {
            for bit in [0, 9, 255] {
                let mut bad = proof.to_vec();
                bad[i][bit / 8] ^= 1 << (bit % 8);
                assert!(verify_consistency(m, n, &old_root, &new_root, &bad).is_err(), "m={m} n={n} i={i}");
            }
        }
        if old_root != new_root {
            assert!(verify_consistency(m, n, &new_root, &old_root, proof).is_err(), "swapped m={m} n={n}");
        }
        let mut bad_old = old_root;
        bad_old[5] ^= 4;
        assert!(verify_consistency(m, n, &bad_old, &new_root, proof).is_err());
        let mut bad_new = new_root;
        bad_new[17] ^= 2;
        assert!(verify_consistency(m, n, &old_root, &bad_new, proof).is_err());
        if !proof.is_empty() {
            assert!(verify_consistency(m, n, &old_root, &new_root, &proof[..proof.len() - 1]).is_err());
        }
        let mut longer = proof.to_vec();
        longer.push(new_root);
        assert!(verify_consistency(m, n, &old_root, &new_root, &longer).is_err());
        for other_m in 1..=n + 1 {
            if other_m != m {
                let r = verify_consistency(other_m, n, &old_root, &new_root, proof);
                assert!(r.is_err(), "m={m} n={n} other_m={other_m}");
            }
        }
        for other_n in m..n + 3 {
            if other_n != n {
                let r = verify_consistency(m, other_n, &old_root, &new_root, proof);
                assert!(r.is_err() || proof_shape(m, other_n) == proof_shape(m, n), "m={m} n={n} other_n={other_n}");
            }
        }
    }

    #[test]
    fn exhaustive_consistency_up_to_64() {
        let all = leaves(64);
        for n in 1..=64u64 {
            let tree = &all[..to_usize(n)];
            for m in 1..=n {
                let proof = consistency_proof(tree, m).unwrap();
                assert_eq!(proof, consistency_proof_from(&all[..], m, n).unwrap());
                assert_eq!(proof.len(), consistency_proof_len(m, n));
                let old_root = root(&all[..to_usize(m)]);
                assert_eq!(verify_consistency(m, n, &old_root, &root(tree), &proof), Ok(()), "m={m} n={n}");
                assert_consistency_tamper_rejected(&all, m, n, &proof);
            }
            assert_eq!(
                consistency_proof(tree, n + 1),
                Err(ProofError::SizesOutOfOrder { old_size: n + 1, new_size: n })
            );
            assert_eq!(consistency_proof(tree, 0), Err(ProofError::EmptyTree));
        }
    }

    #[test]
    fn split_is_largest_power_of_two_below() {
        for n in 2..=1000u64 {
            let k = split(n);
            assert!(k.is_power_of_two() && k < n && 2 * k >= n, "n={n} k={k}");
        }
        assert_eq!(split(u64::MAX), 1 << 63);
    }

    /// A stand-in for the gateway's node table, counting lookups to check the O(log n) claim.
    struct Levels {
        levels: Vec<Vec<Hash>>,
        lookups: std::cell::Cell<u32>,
    }

    impl Levels {
        fn new(leaves: &[Hash]) -> Self {
            let mut levels = vec![leaves.to_vec()];
            while levels.last().unwrap().len() > 1 {
                let below = levels.last().unwrap();
                levels.push(below.chunks_exact(2).map(|pair| node_hash(&pair[0], &pair[1])).collect());
            }
            Levels { levels, lookups: std::cell::Cell::new(0) }
        }
    }

    impl NodeSource for Levels {
        fn subtree(&self, start: u64, size: u64) -> Hash {
            assert!(size.is_power_of_two() && start.is_multiple_of(size), "unaligned subtree {start}+{size}");
            self.lookups.set(self.lookups.get() + 1);
            let level = size.trailing_zeros() as usize;
            self.levels[level][to_usize(start >> level)]
        }
    }

    #[test]
    fn node_source_matches_leaves_with_logarithmic_lookups() {
        let all = leaves(300);
        let levels = Levels::new(&all);
        for n in [1u64, 2, 3, 7, 8, 100, 255, 256, 257, 300] {
            let tree = &all[..to_usize(n)];
            levels.lookups.set(0);
            assert_eq!(root_from(&levels, n), root(tree));
            assert!(levels.lookups.get() <= 9, "root lookups {}", levels.lookups.get());
            for index in [0, n / 2, n - 1] {
                levels.lookups.set(0);
                assert_eq!(inclusion_proof_from(&levels, index, n).unwrap(), inclusion_proof(tree, index).unwrap());
                assert!(levels.lookups.get() <= 2 * 9 * 9, "inclusion lookups {}", levels.lookups.get());
            }
            for m in [1, n / 3 + 1, n] {
                assert_eq!(consistency_proof_from(&levels, m, n).unwrap(), consistency_proof(tree, m).unwrap());
            }
        }
    }

    proptest! {
        #[test]
        fn random_sizes_prove_and_verify(n in 1u64..600, index_seed in any::<u64>(), m_seed in any::<u64>()) {
            let all = leaves(n);
            let tree_root = root(&all);
            let index = index_seed % n;
            let proof = inclusion_proof(&all, index).unwrap();
            prop_assert_eq!(verify_inclusion(&all[to_usize(index)], index, n, &proof, &tree_root), Ok(()));
            let other = (index + 1 + index_seed % 7) % n;
            if other != index {
                prop_assert!(verify_inclusion(&all[to_usize(other)], index, n, &proof, &tree_root).is_err());
                prop_assert!(verify_inclusion(&all[to_usize(index)], other, n, &proof, &tree_root).is_err());
            }
            let m = 1 + m_seed % n;
            let old_root = root(&all[..to_usize(m)]);
            let proof = consistency_proof(&all, m).unwrap();
            prop_assert_eq!(verify_consistency(m, n, &old_root, &tree_root, &proof), Ok(()));
            if m < n {
                let mut bad = proof.clone();
                let i = to_usize(m_seed % proof.len() as u64);
                bad[i][to_usize(index_seed % 32)] ^= 1;
                prop_assert!(verify_consistency(m, n, &old_root, &tree_root, &bad).is_err());
                prop_assert!(verify_consistency(m, n, &tree_root, &old_root, &proof).is_err());
            }
        }
    }
}
