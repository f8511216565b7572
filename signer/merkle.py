"""Merkle tree hashes, inclusion and consistency proofs of RFC 9162 §2.1 (Certificate
Transparency v2), with SM3 instead of SHA-256.

Leaves are hashed ``H(0x00 || entry)`` and inner nodes ``H(0x01 || left || right)``, so
a leaf can never pass for a node (second-preimage protection). The tree over n leaves
splits at the largest power of two below n; `Frontier` keeps only the roots of the
perfect subtrees (one per set bit of n), so appending is O(log n) and the log never has
to re-read its history to extend the tree. The hash is a parameter (`TreeHasher`) so
the algorithms are checked against the published SHA-256 vectors of RFC 6962.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from keys.sm3 import sm3

__all__ = [
    "TreeHasher", "SM3_HASHER", "SHA256_HASHER", "Frontier", "tree_root", "inclusion_proof",
    "verify_inclusion", "consistency_proof", "verify_consistency", "MerkleError",
]


class MerkleError(ValueError):
    """A proof request outside the tree (index or size out of range, malformed frontier)."""


@dataclass(frozen=True)
class TreeHasher:
    hash_fn: Callable[[bytes], bytes]
    size: int = 32

    def empty(self) -> bytes:
        return self.hash_fn(b"")

    def leaf(self, entry: bytes) -> bytes:
        return self.hash_fn(b"\x00" + entry)

    def node(self, left: bytes, right: bytes) -> bytes:
        return self.hash_fn(b"\x01" + left + right)


SM3_HASHER = TreeHasher(lambda b: sm3(b))
SHA256_HASHER = TreeHasher(lambda b: hashlib.sha256(b).digest())


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


@dataclass
class Frontier:
    """The perfect-subtree roots of a tree of ``size`` leaves, largest (leftmost) first."""

    size: int = 0
    roots: list[bytes] = field(default_factory=list)
    hasher: TreeHasher = SM3_HASHER

    def append(self, leaf_hash: bytes) -> None:
        self.roots.append(leaf_hash)
        self.size += 1
        n = self.size
        while n % 2 == 0:  # a carry: two equal subtrees merge into one
            right = self.roots.pop()
            self.roots[-1] = self.hasher.node(self.roots[-1], right)
            n //= 2

    def root(self) -> bytes:
        if not self.roots:
            return self.hasher.empty()
        h = self.roots[-1]
        for left in reversed(self.roots[:-1]):
            h = self.hasher.node(left, h)
        return h

    def to_bytes(self) -> bytes:
        return b"".join(self.roots)

    @classmethod
    def from_bytes(cls, size: int, blob: bytes, hasher: TreeHasher = SM3_HASHER) -> Frontier:
        w = hasher.size
        if size < 0 or len(blob) != w * bin(size).count("1"):
            raise MerkleError(f"frontier of {len(blob)} bytes does not fit a tree of {size} leaves")
        return cls(size, [blob[i:i + w] for i in range(0, len(blob), w)], hasher)


def tree_root(leaf_hashes: Sequence[bytes], hasher: TreeHasher = SM3_HASHER) -> bytes:
    """MTH over the given leaf hashes."""
    f = Frontier(hasher=hasher)
    for h in leaf_hashes:
        f.append(h)
    return f.root()


def _mth(leaves: Sequence[bytes], hasher: TreeHasher) -> bytes:
    return tree_root(leaves, hasher)


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes], hasher: TreeHasher = SM3_HASHER) -> list[bytes]:
    """PATH(index, D[n]) of RFC 9162 §2.1.3.1: the audit path of leaf ``index`` (0-based)."""
    n = len(leaf_hashes)
    if not 0 <= index < n:
        raise MerkleError(f"leaf index {index} is outside a tree of {n} leaves")
    path: list[bytes] = []
    lo, hi, m = 0, n, index
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            path.append(_mth(leaf_hashes[lo + k:hi], hasher))
            hi = lo + k
        else:
            path.append(_mth(leaf_hashes[lo:lo + k], hasher))
            lo, m = lo + k, m - k
    return path[::-1]


def verify_inclusion(leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes,
                     hasher: TreeHasher = SM3_HASHER) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` show leaf ``index`` of a ``tree_size`` tree is in ``root``?"""
    if not 0 <= index < tree_size:
        return False
    fn, sn, r = index, tree_size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = hasher.node(p, r)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            r = hasher.node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def consistency_proof(old_size: int, leaf_hashes: Sequence[bytes], hasher: TreeHasher = SM3_HASHER) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1: the tree of ``old_size`` leaves is a prefix of this one."""
    n = len(leaf_hashes)
    if not 0 < old_size <= n:
        raise MerkleError(f"old size {old_size} is not within 1..{n}")
    out: list[bytes] = []
    lo, hi, m, complete = 0, n, old_size, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            out.append(_mth(leaf_hashes[lo + k:hi], hasher))
            hi = lo + k
        else:
            out.append(_mth(leaf_hashes[lo:lo + k], hasher))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        out.append(_mth(leaf_hashes[lo:hi], hasher))
    return out[::-1]


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes],
                       hasher: TreeHasher = SM3_HASHER) -> bool:
    """RFC 9162 §2.1.4.2: is the ``old_size`` tree with ``old_root`` a prefix of the ``new_root`` tree?"""
    if not 0 < old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    proof = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is itself a node of the path
        proof = [old_root] + proof
    if not proof:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = hasher.node(c, fr)
            sr = hasher.node(c, sr)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            sr = hasher.node(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
