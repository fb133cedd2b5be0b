"""Check a node's whole audit log from its rows alone: entries, leaf hashes, stored subtrees, checkpoints.

Nothing the node computed is believed: every leaf hash is recomputed from its entry, the tree from those
hashes, and each checkpoint must carry a valid signature by a key the caller trusts, match the tree at its
size, and be consistent (RFC 9162 proof, built from the recomputed tree) with the checkpoint before it.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from medplat.audit import merkle
from medplat.audit.keystate import SIGNING_KEY
from medplat.audit.log import TIME_FORMAT, AuditKind
from medplat.audit.merkle import MemoryTree, ProofError
from medplat.audit.models import AuditCheckpoint, AuditCosignature, AuditLeaf, AuditNode
from medplat.audit.note import Checkpoint, Cosignature, NoteError, origin_of, parse_note, signer_of
from medplat.audit.note import verify as verify_signature
from medsync.canonical import parse_canonical
from medsync.envelope import key_id
from medsync.errors import CanonicalError

BATCH = 10_000

KeysOf = Callable[[str], list[Ed25519PublicKey]]
"""The public keys trusted for a region's signatures."""


@dataclass
class Report:
    leaves: int = 0
    checkpoints: int = 0
    cosignatures: int = 0
    failures: list[str] = field(default_factory=list)
    announced: dict[str, int] = field(default_factory=dict)
    """Signing key id -> the first leaf that announces it (`key_change`, change `signing_key`)."""

    @property
    def ok(self) -> bool:
        return not self.failures


def verify_log(session: Session, region: str, keys_of: KeysOf) -> Report:
    report = Report()
    tree = _rebuild(session, report)
    _check_subtrees(session, tree, report)
    _check_checkpoints(session, region, tree, keys_of, report)
    return report


def _rebuild(session: Session, report: Report) -> MemoryTree:
    tree = MemoryTree()
    for row in _leaves(session):
        if row.idx != tree.size:
            if row.idx > tree.size:
                missing = f"leaves {tree.size} to {row.idx - 1} are" if row.idx - tree.size > 1 else f"leaf {tree.size} is"
                report.failures.append(f"{missing} missing (the next stored leaf is {row.idx})")
            # What follows a gap cannot be placed in the tree: stop here, checkpoints beyond it will fail.
            break
        computed = merkle.leaf_hash(row.entry)
        if computed != row.leaf_hash:
            report.failures.append(f"leaf {row.idx}: its entry does not hash to its stored leaf hash")
        problem, payload = _entry_problem(row)
        if problem:
            report.failures.append(f"leaf {row.idx}: {problem}")
        elif row.kind == AuditKind.KEY_CHANGE and payload.get("change") == SIGNING_KEY:
            report.announced.setdefault(str(payload.get("key_id")), row.idx)
        tree.append(computed)
    report.leaves = tree.size
    return tree


def _leaves(session: Session) -> Iterator[Row[Any]]:
    columns = (AuditLeaf.idx, AuditLeaf.kind, AuditLeaf.logged_at, AuditLeaf.entry, AuditLeaf.leaf_hash)
    after = -1
    while True:
        batch = session.execute(select(*columns).where(AuditLeaf.idx > after).order_by(AuditLeaf.idx).limit(BATCH)).all()
        if not batch:
            return
        yield from batch
        after = batch[-1].idx


def _entry_problem(row: Row[Any]) -> tuple[str | None, dict[str, Any]]:
    """What is wrong with a leaf's entry (None if nothing), and its payload."""
    try:
        document = parse_canonical(row.entry, max_bytes=len(row.entry))
    except CanonicalError:
        return "its entry is not canonical JSON", {}
    if not isinstance(document, dict) or set(document) != {"kind", "time", "payload"} or not isinstance(document["payload"], dict):
        return "its entry is not an audit entry (kind, time, payload)", {}
    if document["kind"] not in set(AuditKind) or document["kind"] != row.kind:
        return f"the kind column says {json.dumps(row.kind)} but the hashed entry says {json.dumps(document['kind'])}", {}
    try:
        logged = datetime.datetime.strptime(document["time"], TIME_FORMAT).replace(tzinfo=datetime.UTC)
    except (TypeError, ValueError):
        return "its entry's time is not a UTC timestamp", {}
    if logged != row.logged_at:
        return "the time column differs from the hashed entry's time", {}
    return None, document["payload"]


def _check_subtrees(session: Session, tree: MemoryTree, report: Report) -> None:
    """The stored subtree hashes serve proofs to other nodes; a wrong one would make honest proofs fail."""
    rows = session.execute(select(AuditNode.level, AuditNode.idx, AuditNode.hash).order_by(AuditNode.level, AuditNode.idx))
    seen = 0
    for level, index, value in rows:
        expected = tree.hashes([(level, index)]).get((level, index))
        if expected is None:
            report.failures.append(f"subtree (level {level}, index {index}) is stored but the leaves do not reach it")
        elif expected != value:
            report.failures.append(f"subtree (level {level}, index {index}): stored hash differs from the one the leaves give")
        else:
            seen += 1
    complete = sum(len(level) for level in tree.levels[1:])
    if seen < complete and not report.failures:
        report.failures.append(f"{complete - seen} complete subtree hashes are missing from audit.tree_node")


def _check_checkpoints(session: Session, region: str, tree: MemoryTree, keys_of: KeysOf, report: Report) -> None:
    previous: Checkpoint | None = None
    previous_matches = False
    own_keys = keys_of(region)
    cosignatures: dict[int, list[AuditCosignature]] = {}
    for cosignature in session.scalars(select(AuditCosignature)):
        cosignatures.setdefault(cosignature.size, []).append(cosignature)
    for row in session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.size)):
        report.checkpoints += 1
        signed = _signed_head(row, region, own_keys, report)
        if signed is None:
            continue
        head, signers = signed
        matches = head.size <= tree.size and tree.root(head.size) == head.root
        if head.size > tree.size:
            report.failures.append(f"checkpoint {head.size}: signs {head.size} leaves, the log holds {tree.size} in sequence")
        elif not matches:
            report.failures.append(f"checkpoint {head.size}: its root hash is not the head of the log's first {head.size} leaves")
        if head.size <= tree.size:  # beyond the log, what announced its key may be lost with the rest
            _check_announced(head, signers, report)
        if previous is not None and previous_matches and head.size <= tree.size:
            # The earlier head is the log's own, so the log can prove any honest later head consistent with it.
            _check_consistency(previous, head, tree, report)
        for cosignature in cosignatures.get(head.size, []):
            report.cosignatures += 1
            _check_cosignature(head, cosignature, keys_of, report)
        previous, previous_matches = head, matches


def _signed_head(row: AuditCheckpoint, region: str, keys: list[Ed25519PublicKey], report: Report) -> tuple[Checkpoint, set[str]] | None:
    """The head, and the ids of the region's keys whose signature on it verifies."""
    try:
        head, signatures = parse_note(row.note)
    except NoteError as exc:
        report.failures.append(f"checkpoint {row.size}: not a signed note ({exc.message})")
        return None
    if head.origin != origin_of(region):
        report.failures.append(f"checkpoint {row.size}: origin {head.origin!a} is not this log's")
        return None
    if (head.size, head.root) != (row.size, row.root_hash):
        report.failures.append(f"checkpoint {row.size}: the size or root columns differ from the signed note")
    signer = signer_of(region)
    ours = [s for s in signatures if s.name == signer]
    verified = [key for key in keys if any(_verifies(head, s, signer, [key]) for s in ours)]
    if not verified:
        report.failures.append(f"checkpoint {head.size}: no valid signature by {region}'s key")
        return None
    return head, {key_id(key) for key in verified}


def _check_announced(head: Checkpoint, signers: set[str], report: Report) -> None:
    """The log must announce a key (a `key_change` leaf) before the first head that key signs."""
    if not any(report.announced.get(kid, head.size) < head.size for kid in signers):
        kid = min(signers)
        report.failures.append(f"checkpoint {head.size}: signed by key {kid[:16]}, which no key_change leaf before it announces")


def _verifies(head: Checkpoint, signature: Cosignature, name: str, keys: list[Ed25519PublicKey]) -> bool:
    try:
        verify_signature(head, signature, name, keys)
    except NoteError:
        return False
    return True


def _check_consistency(first: Checkpoint, second: Checkpoint, tree: MemoryTree, report: Report) -> None:
    try:
        proof = merkle.consistency_proof(tree, first.size, second.size)
        merkle.verify_consistency(first.size, second.size, proof, first.root, second.root)
    except ProofError as exc:
        report.failures.append(f"checkpoints {first.size} and {second.size} are inconsistent: {exc}")


def _check_cosignature(head: Checkpoint, row: AuditCosignature, keys_of: KeysOf, report: Report) -> None:
    keys = keys_of(row.cosigner)
    if not keys:
        report.failures.append(f"checkpoint {head.size}: cosigned by {row.cosigner}, whose keys are not known here")
        return
    try:
        _, signatures = parse_note(head.body().decode() + "\n" + row.signature)
        verify_signature(head, signatures[0], signer_of(row.cosigner), keys)
    except NoteError as exc:
        report.failures.append(f"checkpoint {head.size}: the cosignature of {row.cosigner} does not verify ({exc.message})")
