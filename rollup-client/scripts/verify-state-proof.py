#!/usr/bin/env python3
"""An independent verifier of seqnet state proofs, written from
docs/state-proofs.md alone (standard library only).

Reads a JSON list of cases from stdin, each
  {"app_hash": hex, "space": name, "key": hex, "value": hex or null, "proof": hex}
and prints a JSON list: true where the proof shows that the record has that
value (or, for null, that there is no record) under the app hash.
"""
import hashlib
import json
import sys

PLACEHOLDER = b"SPARSE_MERKLE_PLACEHOLDER_HASH__"
MAX_PROOF_BYTES = 16768


def sha256(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def leaf_hash(key_hash, value_hash):
    return sha256(b"JMT::LeafNode", key_hash, value_hash)


def internal_hash(left, right):
    return sha256(b"JMT::IntrnalNode", left, right)


def bit(key, i):
    return (key[i // 8] >> (7 - i % 8)) & 1


def decode(proof):
    """(leaf or None, [sibling hash]) or raises ValueError."""
    if len(proof) > MAX_PROOF_BYTES:
        raise ValueError("too large")
    pos = 0

    def take(n):
        nonlocal pos
        if pos + n > len(proof):
            raise ValueError("short")
        out = proof[pos:pos + n]
        pos += n
        return out

    tag = take(1)[0]
    if tag == 0:
        leaf = None
    elif tag == 1:
        leaf = (take(32), take(32))
    else:
        raise ValueError("bad option tag")
    count = int.from_bytes(take(4), "little")
    if count > 256:
        raise ValueError("too many siblings")
    siblings = []
    for _ in range(count):
        kind = take(1)[0]
        if kind == 0:
            siblings.append(PLACEHOLDER)
        elif kind == 1:
            siblings.append(internal_hash(take(32), take(32)))
        elif kind == 2:
            siblings.append(leaf_hash(take(32), take(32)))
        else:
            raise ValueError("bad node tag")
    if pos != len(proof):
        raise ValueError("trailing bytes")
    return leaf, siblings


def verify(app_hash, space, key, value, proof):
    try:
        leaf, siblings = decode(proof)
    except ValueError:
        return False
    k = sha256(space.encode(), b"/", key)
    n = len(siblings)
    if value is not None:
        if leaf is None or leaf[0] != k or leaf[1] != sha256(value):
            return False
        h = leaf_hash(*leaf)
    elif leaf is not None:
        if leaf[0] == k:
            return False
        common = 0
        while common < 256 and bit(k, common) == bit(leaf[0], common):
            common += 1
        if common < n:
            return False
        h = leaf_hash(*leaf)
    else:
        h = PLACEHOLDER
    for i, s in enumerate(siblings):
        h = internal_hash(s, h) if bit(k, n - 1 - i) else internal_hash(h, s)
    return h == app_hash


def main():
    cases = json.load(sys.stdin)
    out = []
    for c in cases:
        value = None if c["value"] is None else bytes.fromhex(c["value"])
        out.append(verify(bytes.fromhex(c["app_hash"]), c["space"],
                          bytes.fromhex(c["key"]), value,
                          bytes.fromhex(c["proof"])))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
