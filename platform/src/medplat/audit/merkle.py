"""RFC 9162 Merkle trees: leaf and node hashing, tree heads, inclusion and consistency proofs, and their verification.

Written here rather than taken from PyPI: the one maintained candidate (pymerkle) uses its own proof format
and verification, not RFC 9162's, so it cannot check the public vectors (docs/audit.md).

Proofs are generated over a `NodeSource`, anything that can hand out the hashes of perfect subtrees (an
aligned block of 2**level leaves, named (level, index)); the database keeps those hashes as it appends, so a
proof at any size costs O(log n) lookups in one query, never a walk over the leaves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}) = SHA-256 of nothing: the head of the empty tree."""

Coord = tuple[int, int]
"""A perfect subtree: (level, index) covers leaves [index * 2**level, (index + 1) * 2**level)."""


class ProofError(ValueError):
    """A proof that does not verify, or arguments no proof can exist for; the message says which."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """k, the largest power of two smaller than n (n >= 2): where RFC 9162 splits a tree of n leaves."""
    return 1 << ((n - 1).bit_length() - 1)


# --- verification, exactly RFC 9162 sections 2.1.3.2 and 2.1.4.2 -----------------------------------------


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Raise ProofError unless `proof` proves the leaf with hash `leaf` at `index` in the tree of `size` with `root`."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of {size} leaves")
    if len(leaf) != HASH_SIZE:
        raise ProofError(f"the leaf hash has {len(leaf)} bytes, not {HASH_SIZE}")
    _check_hashes(proof)
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise ProofError("the inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the inclusion proof is shorter than the path to the root")
    if r != root:
        raise ProofError("the inclusion proof leads to another root hash")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Raise ProofError unless `proof` shows the tree (size2, root2) extends the tree (size1, root1).

    RFC 9162 defines proofs for 0 < size1 < size2. Equal sizes are consistent exactly when the proof is
    empty and the roots are equal (for size 0: both the empty tree's hash). From size 0 nothing is proven,
    so that is refused rather than waved through.
    """
    if size1 > size2:
        raise ProofError(f"the first tree ({size1} leaves) is larger than the second ({size2})")
    if size1 == size2:
        if proof:
            raise ProofError("trees of equal size need an empty proof")
        if root1 != root2:
            raise ProofError(f"two different root hashes for the same size {size1}")
        if size1 == 0 and root1 != EMPTY_ROOT:
            raise ProofError("the root of the empty tree is not SHA-256 of nothing")
        return
    if size1 == 0:
        raise ProofError("consistency with the empty tree proves nothing")
    if not proof:
        raise ProofError("the consistency proof is empty")
    _check_hashes(proof)
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the consistency proof is shorter than the path to the root")
    if fr != root1:
        raise ProofError(f"the consistency proof does not lead to the root hash of size {size1}")
    if sr != root2:
        raise ProofError(f"the consistency proof does not lead to the root hash of size {size2}")


def _check_hashes(proof: Sequence[bytes]) -> None:
    for position, element in enumerate(proof):
        if len(element) != HASH_SIZE:
            raise ProofError(f"proof element {position} has {len(element)} bytes, not {HASH_SIZE}")


# --- which subtrees a head or a proof is made of ----------------------------------------------------------

Range = tuple[int, int]
"""Leaves [start, end) of a subtree in RFC 9162's recursive split."""


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The subtrees whose hashes make up PATH(index, D[0:size]), from the leaf up (RFC 9162 2.1.3.1)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of {size} leaves")
    path: list[Range] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append((start + k, end))
            end = start + k
        else:
            path.append((start, start + k))
            start += k
    path.reverse()
    return path


def consistency_ranges(size1: int, size2: int) -> list[Range]:
    """The subtrees whose hashes make up PROOF(size1, D[0:size2]) (RFC 9162 2.1.4.1), for 0 < size1 <= size2."""
    if not 0 < size1 <= size2:
        raise ProofError(f"no consistency proof from {size1} to {size2} leaves")
    proof: list[Range] = []
    start, end, m, whole = 0, size2, size1, True
    while end - start != m:
        k = _split(end - start)
        if m <= k:
            proof.append((start + k, end))
            end = start + k
        else:
            proof.append((start, start + k))
            start, m, whole = start + k, m - k, False
    if not whole:
        proof.append((start, end))
    proof.reverse()
    return proof


def blocks(start: int, end: int) -> list[Coord]:
    """The perfect subtrees, left to right, whose right fold is MTH(D[start:end]).

    Holds for every subtree of RFC 9162's split (start is a multiple of the largest power of two below the
    size), which is all this module ever asks for.
    """
    out: list[Coord] = []
    while start < end:
        level = (end - start).bit_length() - 1
        while start & ((1 << level) - 1):
            level -= 1
        out.append((level, start >> level))
        start += 1 << level
    return out


def fold(hashes: Sequence[bytes]) -> bytes:
    """H(a, H(b, H(c, ...))): the head of a subtree from its perfect blocks, left to right."""
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


# --- proofs over stored subtree hashes --------------------------------------------------------------------


class NodeSource(Protocol):
    """Hands out the hashes of perfect subtrees; level 0 are the leaf hashes."""

    def hashes(self, coords: Iterable[Coord]) -> Mapping[Coord, bytes]: ...


def _resolve(source: NodeSource, ranges: Sequence[Range]) -> list[bytes]:
    plans = [blocks(start, end) for start, end in ranges]
    found = source.hashes({c for plan in plans for c in plan})
    missing = [c for plan in plans for c in plan if c not in found]
    if missing:
        level, index = missing[0]
        raise LookupError(f"the subtree at level {level}, index {index} is not stored")
    return [fold([found[c] for c in plan]) for plan in plans]


def root(source: NodeSource, size: int) -> bytes:
    if size == 0:
        return EMPTY_ROOT
    return _resolve(source, [(0, size)])[0]


def inclusion_proof(source: NodeSource, index: int, size: int) -> list[bytes]:
    return _resolve(source, inclusion_ranges(index, size))


def consistency_proof(source: NodeSource, size1: int, size2: int) -> list[bytes]:
    return _resolve(source, consistency_ranges(size1, size2))


def completed_by(index: int, leaf: bytes, left_siblings: Mapping[Coord, bytes]) -> list[tuple[Coord, bytes]]:
    """The perfect subtrees (level >= 1) that appending leaf `index` completes, with their hashes.

    `left_siblings` must hold `siblings_needed(index)`; amortised, one new subtree per leaf.
    """
    out: list[tuple[Coord, bytes]] = []
    current = leaf
    for level, sibling in enumerate(siblings_needed(index), start=1):
        current = node_hash(left_siblings[sibling], current)
        out.append(((level, (index + 1 >> level) - 1), current))
    return out


def siblings_needed(index: int) -> list[Coord]:
    """The left siblings, bottom up, that leaf `index` completes subtrees with."""
    out: list[Coord] = []
    level = 0
    while (index + 1) % (2 << level) == 0:
        out.append((level, ((index + 1) >> level) - 2))
        level += 1
    return out


class MemoryTree:
    """Every perfect subtree hash of a log, in memory: for offline verification, benchmarks and tests."""

    def __init__(self) -> None:
        self.levels: list[list[bytes]] = [[]]

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append(self, leaf: bytes) -> None:
        index = self.size
        nodes = completed_by(index, leaf, self.hashes(siblings_needed(index)))
        self.levels[0].append(leaf)
        for (level, _), value in nodes:
            if level == len(self.levels):
                self.levels.append([])
            self.levels[level].append(value)

    def hashes(self, coords: Iterable[Coord]) -> dict[Coord, bytes]:
        found: dict[Coord, bytes] = {}
        for level, index in coords:
            if level < len(self.levels) and 0 <= index < len(self.levels[level]):
                found[level, index] = self.levels[level][index]
        return found

    def root(self, size: int | None = None) -> bytes:
        return root(self, self.size if size is None else size)


def reference_root(leaves: Sequence[bytes]) -> bytes:
    """MTH straight from RFC 9162's recursive definition (slow; tests compare the fast paths with it)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(reference_root(leaves[:k]), reference_root(leaves[k:]))
