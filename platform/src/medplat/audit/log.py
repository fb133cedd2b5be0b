"""Appending to the node's audit log and signing its head: the calls other code makes.

`append` runs inside the caller's transaction (sync Session; async code uses `await session.run_sync(append,
kind, payload)`), so an event is logged exactly when the change it describes commits. Appends are serialised
by a transaction-scoped advisory lock: the next index is read after the lock is taken, so indexes have no
gaps and no duplicates whatever the concurrency. The lock is held until the caller commits; append last.
"""

from __future__ import annotations

import datetime
import enum
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, insert, select, tuple_
from sqlalchemy.orm import Session

from medplat.audit import merkle
from medplat.audit.merkle import Coord
from medplat.audit.models import AuditCheckpoint, AuditCosignature, AuditLeaf, AuditNode
from medplat.audit.note import Checkpoint, cosign, format_note, origin_of, signer_of
from medsync.canonical import canonical_bytes
from medsync.errors import SyncError

if TYPE_CHECKING:
    from medsync.trust import TrustDocument


class AuditKind(enum.StrEnum):
    """What a leaf records."""

    MANIFEST_SENT = "manifest_sent"
    MANIFEST_RECEIVED = "manifest_received"
    POLICY_VERDICT = "policy_verdict"
    PERSONAL_DATA_ACCESS = "personal_data_access"
    ROLE_CHANGE = "role_change"
    KEY_CHANGE = "key_change"
    DSR_STEP = "dsr_step"
    CHANNEL_RESET = "channel_reset"


class AuditError(SyncError):
    code = "audit.error"


PAYLOAD = "audit.payload"

APPEND_LOCK = int.from_bytes(hashlib.sha256(b"medfed.audit.append").digest()[:8], "big", signed=True)
"""The advisory lock key every appender and checkpointer of the node's log takes for its transaction."""

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

# Ids, hashes, region codes, stable reason codes: lower-case tokens. No spaces (names), no '@' (e-mail
# addresses), no '+' (phone numbers), and never a bare run of digits (a phone number or national id).
_TOKEN = re.compile(r"[a-z0-9][a-z0-9_.:/-]{0,127}")
_DIGITS = re.compile(r"[0-9._:/-]*")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAX_PAYLOAD_BYTES = 65536
"""A bound, not a budget: the largest leaf is a manifest's send verdicts (100 items, each with every reason code, ~45 KB)."""


def check_payload(payload: Mapping[str, Any]) -> None:
    """Refuse anything that could carry personal data: only ids, hashes, codes, counts and flags are logged."""
    _check_value(dict(payload), "payload", 0)


def _check_value(value: object, path: str, depth: int) -> None:
    if depth > 4:
        raise AuditError(f"{path} is nested too deep", code=PAYLOAD)
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, str):
        if _UUID.fullmatch(value):
            return
        if value and (not _TOKEN.fullmatch(value) or (_DIGITS.fullmatch(value) and sum(c.isdigit() for c in value) > 6)):
            raise AuditError(f"{path} is not an id, hash or code (lower-case token, not a bare number)", code=PAYLOAD)
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_value(item, f"{path}[{index}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not _TOKEN.fullmatch(key):
                raise AuditError(f"a key of {path} is not a lower-case token", code=PAYLOAD)
            _check_value(item, f"{path}.{key}", depth + 1)
        return
    raise AuditError(f"{path} is a {type(value).__name__}; log ids, hashes, codes, counts and flags", code=PAYLOAD)


def entry_bytes(kind: AuditKind, logged_at: datetime.datetime, payload: Mapping[str, Any]) -> bytes:
    """The leaf's data: canonical JSON of its kind, time and payload (the leaf hash is SHA-256(0x00 || this))."""
    check_payload(payload)
    document = {"kind": str(kind), "time": logged_at.astimezone(datetime.UTC).strftime(TIME_FORMAT), "payload": dict(payload)}
    data = canonical_bytes(document)
    if len(data) > MAX_PAYLOAD_BYTES:
        raise AuditError(f"an audit entry is at most {MAX_PAYLOAD_BYTES} bytes", code=PAYLOAD)
    return data


class SqlNodes:
    """Subtree hashes from the database: leaf hashes at level 0, `audit.tree_node` above."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def hashes(self, coords: Iterable[Coord]) -> dict[Coord, bytes]:
        wanted = set(coords)
        leaves = [index for level, index in wanted if level == 0]
        nodes = [c for c in wanted if c[0] > 0]
        found: dict[Coord, bytes] = {}
        if leaves:
            rows = self.session.execute(select(AuditLeaf.idx, AuditLeaf.leaf_hash).where(AuditLeaf.idx.in_(leaves)))
            found.update(((0, idx), value) for idx, value in rows)
        if nodes:
            rows = self.session.execute(
                select(AuditNode.level, AuditNode.idx, AuditNode.hash).where(tuple_(AuditNode.level, AuditNode.idx).in_(nodes))
            )
            found.update(((level, idx), value) for level, idx, value in rows)
        return found


def _lock(session: Session) -> None:
    session.execute(select(func.pg_advisory_xact_lock(APPEND_LOCK)))


def size(session: Session) -> int:
    """Leaves committed (or appended in this transaction); read after the lock for an exact answer."""
    return int(session.scalar(select(func.coalesce(func.max(AuditLeaf.idx) + 1, 0))) or 0)


def append(session: Session, kind: AuditKind, payload: Mapping[str, Any]) -> int:
    """Log one event in the caller's transaction; returns its leaf index."""
    return append_many(session, [(kind, payload)])[0]


def append_many(session: Session, events: Sequence[tuple[AuditKind, Mapping[str, Any]]]) -> list[int]:
    """Log several events in order in the caller's transaction; their leaf indexes."""
    _lock(session)
    start = size(session)
    # The database's clock, read under the lock: one clock for every appender of the node.
    logged_at = session.scalar(select(func.clock_timestamp()))
    assert isinstance(logged_at, datetime.datetime)
    # Every left sibling a new leaf needs is a perfect block of the tree as it stands, or made here.
    known = SqlNodes(session).hashes(merkle.blocks(0, start))
    leaves: list[dict[str, Any]] = []
    nodes: list[dict[str, Any]] = []
    for offset, (kind, payload) in enumerate(events):
        index = start + offset
        entry = entry_bytes(AuditKind(kind), logged_at, payload)
        leaf = merkle.leaf_hash(entry)
        known[0, index] = leaf
        leaves.append({"idx": index, "kind": str(kind), "logged_at": logged_at, "entry": entry, "leaf_hash": leaf})
        for (level, node_index), value in merkle.completed_by(index, leaf, known):
            known[level, node_index] = value
            nodes.append({"level": level, "idx": node_index, "hash": value})
    if leaves:
        session.execute(insert(AuditLeaf), leaves)
    if nodes:
        session.execute(insert(AuditNode), nodes)
    return [row["idx"] for row in leaves]


def root(session: Session, tree_size: int) -> bytes:
    return merkle.root(SqlNodes(session), tree_size)


def inclusion_proof(session: Session, index: int, tree_size: int) -> list[bytes]:
    _within(session, tree_size)
    return merkle.inclusion_proof(SqlNodes(session), index, tree_size)


def consistency_proof(session: Session, size1: int, size2: int) -> list[bytes]:
    _within(session, size2)
    return merkle.consistency_proof(SqlNodes(session), size1, size2)


def _within(session: Session, tree_size: int) -> None:
    have = size(session)
    if tree_size > have:
        raise AuditError(f"the log has {have} leaves, not {tree_size}", code="audit.size")


def checkpoint(session: Session, region: str, key: Ed25519PrivateKey, trust: TrustDocument | None = None) -> AuditCheckpoint | None:
    """Sign the current head, if the log grew since the last checkpoint; the new checkpoint or None.

    First, under the lock, the log is told of a new signing key or trust version (`medplat.audit.keystate`),
    so the head that `key` signs always includes the leaf announcing `key`.
    """
    from medplat.audit import keystate

    _lock(session)
    keystate.record(session, key.public_key(), trust)
    tree_size = size(session)
    last = latest_checkpoint(session)
    if tree_size == 0 or (last is not None and last.size == tree_size):
        return None
    now = session.scalar(select(func.clock_timestamp()))
    assert isinstance(now, datetime.datetime)
    head = Checkpoint(origin_of(region), tree_size, root(session, tree_size))
    signature = cosign(head, signer_of(region), key, int(now.timestamp()))
    row = AuditCheckpoint(
        size=tree_size,
        root_hash=head.root,
        signed_at=datetime.datetime.fromtimestamp(signature.timestamp, datetime.UTC),
        note=format_note(head, [signature]),
    )
    session.add(row)
    session.flush()
    return row


def latest_checkpoint(session: Session) -> AuditCheckpoint | None:
    return session.scalar(select(AuditCheckpoint).order_by(AuditCheckpoint.size.desc()).limit(1))


def cosigned_note(session: Session, checkpoint_row: AuditCheckpoint) -> str:
    """The checkpoint's note with every cosignature other nodes gave it appended."""
    lines = session.scalars(
        select(AuditCosignature.signature).where(AuditCosignature.size == checkpoint_row.size).order_by(AuditCosignature.cosigner)
    )
    return checkpoint_row.note + "".join(lines)
