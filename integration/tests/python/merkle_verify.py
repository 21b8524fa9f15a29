#!/usr/bin/env python3
"""RFC 9162 Merkle oracle for core/tests/merkle_python.rs, written from the RFC text with the standard library only.

stdin: one JSON object
  {"leaves": [hex record, ...],
   "inclusion": [{"index", "size", "proof": [hex], "root": hex}, ...],
   "consistency": [{"m", "n", "proof": [hex], "old_root": hex, "new_root": hex}, ...]}
Inclusion entries prove leaves[index] (the record, hashed here) in the tree of the first `size` records.
stdout: one JSON object
  {"roots": [MTH of the first k records, for k = 0 .. len(leaves)],
   "inclusion": [{"verified": bool, "path": PATH(index, D[size]) as hex}, ...],
   "consistency": [{"verified": bool, "proof": PROOF(m, D[n]) as hex}, ...]}
"path" and "proof" are this script's own derivation from §2.1.3.1 / §2.1.4.1, so the caller can compare them with
the proofs it generated; "verified" is the §2.1.3.2 / §2.1.4.2 verdict on the proof the caller sent.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class Tree:
    """D[n] of §2.1.1: the list of records; MTH and the proof definitions are written as in the RFC."""

    def __init__(self, records: list[bytes]) -> None:
        self.records = records

    @functools.lru_cache(maxsize=None)
    def mth(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 0:
            return sha256(b'')
        if n == 1:
            return sha256(b'\x00' + self.records[lo])
        k = largest_power_of_two_below(n)
        return sha256(b'\x01' + self.mth(lo, lo + k) + self.mth(lo + k, hi))

    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = largest_power_of_two_below(n)
        if m < k:
            return self.path(m, lo, lo + k) + [self.mth(lo + k, hi)]
        return self.path(m - k, lo + k, hi) + [self.mth(lo, lo + k)]

    def subproof(self, m: int, lo: int, hi: int, b: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if b else [self.mth(lo, hi)]
        k = largest_power_of_two_below(n)
        if m <= k:
            return self.subproof(m, lo, lo + k, b) + [self.mth(lo + k, hi)]
        return self.subproof(m - k, lo + k, hi, False) + [self.mth(lo, lo + k)]


def largest_power_of_two_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def node(left: bytes, right: bytes) -> bytes:
    return sha256(b'\x01' + left + right)


def verify_inclusion(leaf_hash: bytes, leaf_index: int, tree_size: int, inclusion_path: list[bytes],
                     root_hash: bytes) -> bool:
    """§2.1.3.2, step by step."""
    if leaf_index >= tree_size:
        return False
    fn, sn = leaf_index, tree_size - 1
    r = leaf_hash
    for p in inclusion_path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while not (fn & 1) and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root_hash


def verify_consistency(first: int, second: int, first_hash: bytes, second_hash: bytes,
                       consistency_path: list[bytes]) -> bool:
    """§2.1.4.2, step by step; equal sizes (outside the RFC's 0 < first < second) need an empty proof and equal roots."""
    if first == 0 or first > second:
        return False
    if first == second:
        return not consistency_path and first_hash == second_hash
    if not consistency_path:
        return False
    path = list(consistency_path)
    if first & (first - 1) == 0:
        path.insert(0, first_hash)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node(c, fr)
            sr = node(c, sr)
            if not fn & 1:
                while not (fn & 1) and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0


def main() -> None:
    request = json.load(sys.stdin)
    records = [bytes.fromhex(h) for h in request['leaves']]
    tree = Tree(records)
    out: dict[str, list] = {'roots': [tree.mth(0, k).hex() for k in range(len(records) + 1)]}

    inclusion = []
    for item in request['inclusion']:
        index, size = item['index'], item['size']
        proof = [bytes.fromhex(h) for h in item['proof']]
        # An index past the records cannot name a leaf; hash nothing and let the verifier reject it.
        leaf = sha256(b'\x00' + records[index]) if index < len(records) else b''
        in_tree = 0 <= index < size <= len(records)
        inclusion.append({
            'verified': verify_inclusion(leaf, index, size, proof, bytes.fromhex(item['root'])),
            'path': [h.hex() for h in tree.path(index, 0, size)] if in_tree else None,
        })
    out['inclusion'] = inclusion

    consistency = []
    for item in request['consistency']:
        m, n = item['m'], item['n']
        proof = [bytes.fromhex(h) for h in item['proof']]
        ordered = 0 < m <= n <= len(records)
        consistency.append({
            'verified': verify_consistency(m, n, bytes.fromhex(item['old_root']), bytes.fromhex(item['new_root']),
                                           proof),
            'proof': [h.hex() for h in tree.subproof(m, 0, n, True)] if ordered else None,
        })
    out['consistency'] = consistency

    json.dump(out, sys.stdout)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
