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
import json
import os
import sys

# The RFC 9162 verification algorithms, as merkle_verify.py (the Merkle oracle) writes them.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from merkle_verify import sha256, verify_consistency, verify_inclusion  # noqa: E402


class Invalid(Exception):
    pass


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


def check(text: str) -> dict:
    lines = text.split("\n")
    if lines[0] == "c2sp.org/tlog-proof@v1":
        if not lines[1].startswith("extra ") or not lines[2].startswith("index "):
            raise Invalid("expected `extra` and `index` lines")
        record = b64(lines[1][len("extra ") :], "extra")
        index = decimal(lines[2][len("index ") :], "index")
        proof, note = hashes_then_note(lines, 3)
        _, size, root = checkpoint(note)
        if index >= size or not verify_inclusion(sha256(b"\x00" + record), index, size, proof, root):
            raise Invalid("the inclusion proof does not rebuild the checkpoint's root")
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
        # tlog-witness: from the empty tree the proof is empty; otherwise RFC 9162 section 2.1.4.2.
        extends = not proof if old_size == 0 else verify_consistency(old_size, size, old_root, root, proof)
        if not extends:
            raise Invalid("the consistency proof does not join the two roots")
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
