# SPDX-License-Identifier: Apache-2.0
"""RFC 9162 Merkle tree hashing and consistency proofs (no I/O).

leaf hash  = SHA-256(0x00 || leaf)
node hash  = SHA-256(0x01 || left || right)
empty tree = SHA-256("")

verify_consistency() follows RFC 9162 section 2.1.4.2 step by step;
tree_hash() and consistency_proof() (section 2.1.1 and 2.1.4.1) exist so that
tests can build trees and proofs independently of the device's C code.
"""

import hashlib

HASH_SIZE = 32
MAX_PROOF_HASHES = 64


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def tree_hash_from_leaf_hashes(hashes) -> bytes:
    """MTH over a list of already computed leaf hashes (RFC 9162 2.1.1)."""
    n = len(hashes)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashes[0]
    k = _split(n)
    return node_hash(tree_hash_from_leaf_hashes(hashes[:k]),
                     tree_hash_from_leaf_hashes(hashes[k:]))


def tree_hash(leaves) -> bytes:
    return tree_hash_from_leaf_hashes([leaf_hash(x) for x in leaves])


def _subproof(m: int, hashes, complete: bool):
    n = len(hashes)
    if m == n:
        return [] if complete else [tree_hash_from_leaf_hashes(hashes)]
    k = _split(n)
    if m <= k:
        return _subproof(m, hashes[:k], complete) + [tree_hash_from_leaf_hashes(hashes[k:])]
    return _subproof(m - k, hashes[k:], False) + [tree_hash_from_leaf_hashes(hashes[:k])]


def consistency_proof(m: int, leaves) -> list:
    """PROOF(m, D[n]) of RFC 9162 2.1.4.1, for 0 < m <= n."""
    hashes = [leaf_hash(x) for x in leaves]
    if not 0 < m <= len(hashes):
        raise ValueError("consistency proof needs 0 < m <= n")
    return _subproof(m, hashes, True)


def verify_consistency(first: int, second: int, first_hash: bytes,
                       second_hash: bytes, proof) -> bool:
    """True iff `proof` shows the tree (second, second_hash) extends (first, first_hash).

    Edge cases outside 2.1.4.2's 0 < first < second: an empty first tree is
    extended by anything (with an empty proof); equal sizes need an empty proof
    and equal roots; a shrinking tree is never consistent.
    """
    proof = list(proof)
    if len(proof) > MAX_PROOF_HASHES or any(len(h) != HASH_SIZE for h in proof):
        return False
    if len(first_hash) != HASH_SIZE or len(second_hash) != HASH_SIZE:
        return False
    if first > second:
        return False
    if first == 0:
        return not proof
    if first == second:
        return not proof and first_hash == second_hash

    # 1. An empty proof fails.
    if not proof:
        return False
    # 2. If first is an exact power of two, prepend first_hash.
    if first & (first - 1) == 0:
        proof = [first_hash] + proof
    # 3.
    fn, sn = first - 1, second - 1
    # 4. Right-shift both while LSB(fn) is set.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5.
    fr = sr = proof[0]
    # 6.
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # 7.
    return fr == first_hash and sr == second_hash and sn == 0
