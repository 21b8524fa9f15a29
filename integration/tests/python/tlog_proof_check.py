#!/usr/bin/env python3
"""Checks Simpul's proof files from their specifications alone, with the standard library only: an independent
oracle for `audit prove` (C2SP tlog-proof@v1) and `audit consistency` (an old checkpoint, then the body of a C2SP
tlog-witness add-checkpoint request).

usage: tlog_proof_check.py FILE...
stdout: one JSON object per file: {"file", "valid": bool, "kind", "index"|"old_size", "size", "error"}

What is checked: the file's grammar (c2sp.org/tlog-proof, c2sp.org/tlog-witness), the checkpoint bodies
(c2sp.org/tlog-checkpoint: origin, decimal size, base64 root), and the Merkle arithmetic of RFC 9162 section 2.1.3.2
(inclusion, the leaf being SHA-256(0x00 || the record in `extra`)) and section 2.1.4.2 (consistency). What is not:
the Ed25519 signatures (no Ed25519 in Python's standard library); the Rust tests check those with the pinned key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import sys


class Invalid(Exception):
    pass


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def node(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def b64(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as e:
        raise Invalid(f"{what}: not base64 ({e})") from None
    if base64.b64encode(raw).decode() != text:
        raise Invalid(f"{what}: not in canonical base64")
    return raw


def decimal(text: str, what: str) -> int:
    if not text.isdigit() or (text != "0" and text.startswith("0")) or not text.isascii():
        raise Invalid(f"{what}: not a decimal without leading zeroes: {text!r}")
    return int(text)


def checkpoint(note: str) -> tuple[str, int, bytes]:
    """The (origin, size, root) of a signed note's checkpoint body (the text before the last blank line)."""
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise Invalid("the checkpoint is not a signed note")
    lines = note[: split + 1].split("\n")[:-1]
    if len(lines) < 3 or not lines[0]:
        raise Invalid("the checkpoint body needs an origin, a size and a root")
    root = b64(lines[2], "checkpoint root")
    if len(root) != 32:
        raise Invalid("the checkpoint root is not 32 bytes")
    signatures = note[split + 2 :].split("\n")[:-1]
    if not signatures or not all(s.startswith("\u2014 ") for s in signatures):
        raise Invalid("the checkpoint has no signature lines")
    return lines[0], decimal(lines[1], "checkpoint size"), root


def hashes_then_note(lines: list[str], start: int) -> tuple[list[bytes], str]:
    hashes = []
    i = start
    while True:
        if i >= len(lines):
            raise Invalid("no empty line before the checkpoint")
        if lines[i] == "":
            return hashes, "\n".join(lines[i + 1 :])
        h = b64(lines[i], f"hash line {i + 1}")
        if len(h) != 32:
            raise Invalid(f"hash line {i + 1} is not 32 bytes")
        hashes.append(h)
        i += 1


def verify_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> None:
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        raise Invalid("index beyond the tree")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise Invalid("inclusion proof too long")
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        raise Invalid("the inclusion proof does not rebuild the checkpoint's root")


def verify_consistency(m: int, n: int, old_root: bytes, new_root: bytes, proof: list[bytes]) -> None:
    """RFC 9162 section 2.1.4.2 (with the tlog-witness rules for old size 0 and equal sizes)."""
    if m > n:
        raise Invalid("the old tree is larger than the new one")
    if m == 0:
        if proof:
            raise Invalid("a proof from the empty tree must be empty")
        return
    if m == n:
        if proof or old_root != new_root:
            raise Invalid("equal sizes need equal roots and no proof")
        return
    if not proof:
        raise Invalid("empty consistency proof")
    path = list(proof)
    if m & (m - 1) == 0:
        path.insert(0, old_root)
    if not path:
        raise Invalid("empty consistency proof")
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise Invalid("consistency proof too long")
        if fn & 1 or fn == sn:
            fr = node(c, fr)
            sr = node(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != old_root or sr != new_root:
        raise Invalid("the consistency proof does not join the two roots")


def check(text: str) -> dict:
    lines = text.split("\n")
    if lines[0] == "c2sp.org/tlog-proof@v1":
        if not lines[1].startswith("extra ") or not lines[2].startswith("index "):
            raise Invalid("expected `extra` and `index` lines")
        record = b64(lines[1][len("extra ") :], "extra")
        index = decimal(lines[2][len("index ") :], "index")
        proof, note = hashes_then_note(lines, 3)
        _, size, root = checkpoint(note)
        verify_inclusion(sha256(b"\x00" + record), index, size, proof, root)
        seq = json.loads(record)["seq"]
        if seq != index:
            raise Invalid(f"the record says seq {seq}, the proof index {index}")
        return {"kind": "inclusion", "index": index, "size": size}
    if lines[0] == "simpul.audit/consistency@v1":
        if not lines[1].startswith("old-checkpoint ") or not lines[2].startswith("old "):
            raise Invalid("expected `old-checkpoint` and `old` lines")
        old_origin, old_size, old_root = checkpoint(b64(lines[1][len("old-checkpoint ") :], "old checkpoint").decode())
        if decimal(lines[2][len("old ") :], "old") != old_size:
            raise Invalid("the `old` line and the old checkpoint disagree")
        proof, note = hashes_then_note(lines, 3)
        origin, size, root = checkpoint(note)
        if origin != old_origin:
            raise Invalid("the checkpoints are of different logs")
        verify_consistency(old_size, size, old_root, root, proof)
        return {"kind": "consistency", "old_size": old_size, "size": size}
    raise Invalid(f"unknown proof format {lines[0]!r}")


def main() -> int:
    for name in sys.argv[1:]:
        with open(name, encoding="utf-8") as f:
            text = f.read()
        try:
            result = {"file": name, "valid": True, **check(text)}
        except (Invalid, ValueError, KeyError, IndexError, UnicodeDecodeError) as e:
            result = {"file": name, "valid": False, "error": str(e)}
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
