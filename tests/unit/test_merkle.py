"""RFC 9162 Merkle hashing and proofs: the public vectors case by case, and properties over random trees."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medplat.audit import merkle
from medplat.audit.merkle import MemoryTree, ProofError
from tests.conftest import SHARED_VECTORS

VECTORS = SHARED_VECTORS / "rfc9162-merkle" / "testdata"
needs_vectors = pytest.mark.skipif(not VECTORS.is_dir(), reason=f"the public RFC 9162 vectors are not at {VECTORS}")

# The eight leaves every RFC 6962 test tree is built from (the vectors' trees are prefixes of this one).
RFC6962_LEAVES = [
    bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")
]


def _cases(kind: str) -> list[Any]:
    if not VECTORS.is_dir():
        return []
    files = sorted((VECTORS / kind).rglob("*.json"))
    return [pytest.param(json.loads(f.read_text()), id=str(f.relative_to(VECTORS / kind))) for f in files]


def _b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _proof(case: dict[str, Any]) -> list[bytes]:
    # Go's encoding/json writes an empty or missing proof as null.
    return [_b64(p) for p in case["proof"] or []]


@needs_vectors
def test_the_vectors_are_all_there() -> None:
    assert len(_cases("inclusion")) == 98
    assert len(_cases("consistency")) == 98


@needs_vectors
@pytest.mark.parametrize("case", _cases("inclusion"))
def test_inclusion_vector(case: dict[str, Any]) -> None:
    def verify() -> None:
        merkle.verify_inclusion(case["leafIdx"], case["treeSize"], _b64(case["leafHash"]), _proof(case), _b64(case["root"]))

    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify()
    else:
        verify()


@needs_vectors
@pytest.mark.parametrize("case", _cases("consistency"))
def test_consistency_vector(case: dict[str, Any]) -> None:
    def verify() -> None:
        merkle.verify_consistency(case["size1"], case["size2"], _proof(case), _b64(case["root1"]), _b64(case["root2"]))

    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify()
    else:
        verify()


def _rfc6962_tree() -> MemoryTree:
    tree = MemoryTree()
    for data in RFC6962_LEAVES:
        tree.append(merkle.leaf_hash(data))
    return tree


def test_the_rfc6962_test_tree_has_its_published_head() -> None:
    assert _rfc6962_tree().root().hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    assert merkle.EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@needs_vectors
@pytest.mark.parametrize("kind", ["inclusion", "consistency"])
def test_our_proofs_are_byte_for_byte_the_vectors_happy_paths(kind: str) -> None:
    tree = _rfc6962_tree()
    checked = 0
    for path in sorted((VECTORS / kind).glob("*/happy-path.json")):
        case = json.loads(path.read_text())
        if kind == "inclusion":
            assert tree.levels[0][case["leafIdx"]] == _b64(case["leafHash"])
            assert merkle.inclusion_proof(tree, case["leafIdx"], case["treeSize"]) == _proof(case), path
            assert tree.root(case["treeSize"]) == _b64(case["root"])
        elif case["size1"] < case["size2"]:
            assert merkle.consistency_proof(tree, case["size1"], case["size2"]) == _proof(case), path
            assert (tree.root(case["size1"]), tree.root(case["size2"])) == (_b64(case["root1"]), _b64(case["root2"]))
        else:
            continue
        checked += 1
    assert checked == (5 if kind == "inclusion" else 4)


def test_hashing_uses_the_rfc_prefixes() -> None:
    assert merkle.leaf_hash(b"a") == hashlib.sha256(b"\x00a").digest()
    left, right = b"L" * 32, b"R" * 32
    assert merkle.node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()


def _tree(leaves: list[bytes]) -> MemoryTree:
    tree = MemoryTree()
    for leaf in leaves:
        tree.append(leaf)
    return tree


# Distinct leaves: with two equal leaves, moving a proof to the other one's index is no tamper at all.
leaf_lists = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=300, unique=True)


@settings(max_examples=60, deadline=None)
@given(leaves=leaf_lists, data=st.data())
def test_heads_match_the_recursive_definition_at_every_size(leaves: list[bytes], data: st.DataObject) -> None:
    tree = _tree(leaves)
    size = data.draw(st.integers(0, len(leaves)))
    assert tree.root(size) == merkle.reference_root(leaves[:size])


@settings(max_examples=150, deadline=None)
@given(leaves=leaf_lists, data=st.data())
def test_inclusion_proofs_verify_and_any_single_tamper_fails(leaves: list[bytes], data: st.DataObject) -> None:
    tree = _tree(leaves)
    size = data.draw(st.integers(1, len(leaves)), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = merkle.inclusion_proof(tree, index, size)
    root = tree.root(size)
    merkle.verify_inclusion(index, size, leaves[index], proof, root)

    tamper = data.draw(st.sampled_from(["proof", "leaf", "root", "index", "size", "drop", "extra"]), label="tamper")
    bit = data.draw(st.integers(0, 255), label="bit")
    args: dict[str, Any] = {"index": index, "size": size, "leaf": leaves[index], "proof": list(proof), "root": root}
    if tamper == "proof":
        if not proof:
            return
        at = data.draw(st.integers(0, len(proof) - 1), label="at")
        args["proof"][at] = _flip(proof[at], bit)
    elif tamper == "leaf":
        args["leaf"] = _flip(leaves[index], bit)
    elif tamper == "root":
        args["root"] = _flip(root, bit)
    elif tamper == "index":
        other = data.draw(st.integers(0, size), label="other")
        if other == index:
            return
        args["index"] = other
    elif tamper == "size":
        other = data.draw(st.integers(1, 2 * size + 1), label="other")
        if other == size or (index < other and _shape(index, other) == _shape(index, size)):
            return  # the proof only fixes the path's shape; a size with the same shape is not a tamper
        args["size"] = other
    elif tamper == "drop":
        if not proof:
            return
        del args["proof"][data.draw(st.integers(0, len(proof) - 1), label="at")]
    else:
        args["proof"].insert(data.draw(st.integers(0, len(proof)), label="at"), root)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(args["index"], args["size"], args["leaf"], args["proof"], args["root"])


@settings(max_examples=150, deadline=None)
@given(leaves=leaf_lists, data=st.data())
def test_consistency_proofs_verify_and_any_single_tamper_fails(leaves: list[bytes], data: st.DataObject) -> None:
    tree = _tree(leaves)
    size2 = data.draw(st.integers(2, max(2, len(leaves))), label="size2") if len(leaves) >= 2 else 1
    size1 = data.draw(st.integers(1, size2), label="size1")
    proof = merkle.consistency_proof(tree, size1, size2)
    root1, root2 = tree.root(size1), tree.root(size2)
    merkle.verify_consistency(size1, size2, proof, root1, root2)

    tamper = data.draw(st.sampled_from(["proof", "root1", "root2", "size1", "drop", "extra"]), label="tamper")
    bit = data.draw(st.integers(0, 255), label="bit")
    args: dict[str, Any] = {"size1": size1, "size2": size2, "proof": list(proof), "root1": root1, "root2": root2}
    if tamper == "proof":
        if not proof:
            return
        at = data.draw(st.integers(0, len(proof) - 1), label="at")
        args["proof"][at] = _flip(proof[at], bit)
    elif tamper == "root1":
        args["root1"] = _flip(root1, bit)
    elif tamper == "root2":
        args["root2"] = _flip(root2, bit)
    elif tamper == "size1":
        other = data.draw(st.integers(0, size2), label="other")
        if other == size1:
            return
        args["size1"] = other
    elif tamper == "drop":
        if not proof:
            return
        del args["proof"][data.draw(st.integers(0, len(proof) - 1), label="at")]
    else:
        args["proof"].insert(data.draw(st.integers(0, len(proof)), label="at"), root1)
    with pytest.raises(ProofError):
        merkle.verify_consistency(args["size1"], args["size2"], args["proof"], args["root1"], args["root2"])


def _shape(index: int, size: int) -> list[bool]:
    """Left or right, for each sibling on the way up: all an inclusion proof says about the size."""
    return [end <= index for _, end in merkle.inclusion_ranges(index, size)]


def _flip(value: bytes, bit: int) -> bytes:
    changed = bytearray(value)
    changed[bit // 8 % len(changed)] ^= 1 << (bit % 8)
    return bytes(changed)


def test_a_missing_subtree_is_reported_not_guessed() -> None:
    tree = _tree([b"x" * 32] * 5)
    del tree.levels[2][0]
    with pytest.raises(LookupError, match="level 2, index 0 is not stored"):
        merkle.inclusion_proof(tree, 4, 5)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: merkle.verify_inclusion(3, 3, b"x" * 32, [], b"r" * 32), "leaf index 3 is outside a tree of 3 leaves"),
        (lambda: merkle.verify_inclusion(0, 1, b"x", [], b"x"), "the leaf hash has 1 bytes, not 32"),
        (
            lambda: merkle.verify_consistency(0, 5, [b"x" * 32], merkle.EMPTY_ROOT, b"r" * 32),
            "consistency with the empty tree proves nothing",
        ),
        (lambda: merkle.verify_consistency(3, 2, [], b"r" * 32, b"r" * 32), r"the first tree \(3 leaves\) is larger than the second \(2\)"),
        (lambda: merkle.verify_consistency(2, 2, [], b"a" * 32, b"b" * 32), "two different root hashes for the same size 2"),
    ],
)
def test_refusals_say_why(call: Any, message: str) -> None:
    with pytest.raises(ProofError, match=message):
        call()


def test_the_empty_tree_is_consistent_only_with_its_own_head() -> None:
    merkle.verify_consistency(0, 0, [], merkle.EMPTY_ROOT, merkle.EMPTY_ROOT)
    with pytest.raises(ProofError, match="the root of the empty tree is not SHA-256 of nothing"):
        merkle.verify_consistency(0, 0, [], b"r" * 32, b"r" * 32)


def test_vectors_folder_is_read_in_place() -> None:
    # The vectors belong to shared/; the project must not carry a copy of them.
    repo = Path(__file__).resolve().parents[2]
    assert not list(repo.rglob("happy-path.json"))
