"""Cosigning: a node vouches for another node's checkpoint only after a consistency proof from the last one it cosigned.

Only sizes, root hashes, signatures and proof hashes cross the border. A node that rewrote its history can no
longer show a consistency proof to the heads its peers cosigned, so it cannot collect new cosignatures, and
the old cosigned checkpoints stay as evidence on both sides. The first checkpoint a node sees of a peer is
taken on trust (there is nothing earlier to be consistent with).

Refusal codes (AuditError):
- `audit.note`: the checkpoint or a signature line is malformed.
- `audit.origin`: the checkpoint is not the caller's log.
- `audit.signature`: not signed by a currently trusted key of the caller.
- `audit.future`: signed more than CLOCK_LEEWAY seconds in the future.
- `audit.stale_proof`: the proof starts from another size than the one this node last cosigned (the
  answer names the size to prove from).
- `audit.rollback`: smaller than a checkpoint already cosigned.
- `audit.fork`: same size as a cosigned checkpoint, different root.
- `audit.inconsistent`: the consistency proof does not verify.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterable, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from medplat.audit import merkle
from medplat.audit.log import AuditError
from medplat.audit.models import AuditCheckpoint, AuditCosignature, PeerCheckpoint
from medplat.audit.note import NoteError, cosign, origin_of, parse_note, signer_of, verify

CLOCK_LEEWAY = 300
STALE_PROOF = "audit.stale_proof"


class StaleProof(AuditError):
    """The proof is from another size; `expected_from` is the size this node last cosigned (0: none yet)."""

    code = STALE_PROOF

    def __init__(self, expected_from: int, got: int) -> None:
        super().__init__(f"prove consistency from size {expected_from}, not {got}")
        self.expected_from = expected_from


def _lock(session: Session, origin: str) -> None:
    key = int.from_bytes(hashlib.sha256(f"medfed.audit.cosign.{origin}".encode()).digest()[:8], "big", signed=True)
    session.execute(select(func.pg_advisory_xact_lock(key)))


def last_cosigned(session: Session, origin: str) -> PeerCheckpoint | None:
    return session.scalar(select(PeerCheckpoint).where(PeerCheckpoint.origin == origin).order_by(PeerCheckpoint.size.desc()).limit(1))


def cosign_peer(
    session: Session,
    *,
    me: str,
    key: Ed25519PrivateKey,
    origin: str,
    origin_keys: Iterable[Ed25519PublicKey],
    note: str,
    from_size: int,
    proof: Sequence[bytes],
    now: datetime.datetime | None = None,
) -> str:
    """Verify `origin`'s checkpoint against the last one this node cosigned, store it, and return our signature line."""
    now = now or datetime.datetime.now(datetime.UTC)
    try:
        head, signatures = parse_note(note)
    except NoteError as exc:
        raise AuditError(exc.message, code="audit.note") from None
    if head.origin != origin_of(origin):
        raise AuditError(f"the checkpoint is of log {head.origin!a}, not {origin_of(origin)}", code="audit.origin")
    keys = list(origin_keys)
    theirs = [s for s in signatures if s.name == signer_of(origin)]
    signed = None
    for signature in theirs:
        try:
            verify(head, signature, signer_of(origin), keys)
        except NoteError:
            continue
        signed = signature
        break
    if signed is None:
        raise AuditError(f"the checkpoint carries no valid signature by a trusted key of {origin}", code="audit.signature")
    if signed.timestamp > now.timestamp() + CLOCK_LEEWAY:
        raise AuditError("the checkpoint is signed in the future", code="audit.future")
    _lock(session, origin)
    last = last_cosigned(session, origin)
    last_size = last.size if last is not None else 0
    if last is not None and head.size < last.size:
        raise AuditError(f"size {head.size} is smaller than size {last.size}, already cosigned", code="audit.rollback")
    if last is not None and head.size == last.size:
        if head.root != last.root_hash:
            raise AuditError(f"size {head.size} was cosigned with another root hash", code="audit.fork")
        return last.cosignature
    if from_size != last_size:
        raise StaleProof(last_size, from_size)
    if last is not None:
        try:
            merkle.verify_consistency(last.size, head.size, proof, last.root_hash, head.root)
        except merkle.ProofError as exc:
            raise AuditError(f"not consistent with size {last.size}: {exc}", code="audit.inconsistent") from None
    ours = cosign(head, signer_of(me), key, int(now.timestamp()))
    line = ours.line()
    session.add(PeerCheckpoint(origin=origin, size=head.size, root_hash=head.root, note=note, cosignature=line, cosigned_at=now))
    session.flush()
    return line


def last_cosigned_by(session: Session, cosigner: str) -> int:
    """The largest of our checkpoints `cosigner` has cosigned (0: none): where its next proof starts."""
    return int(session.scalar(select(func.coalesce(func.max(AuditCosignature.size), 0)).where(AuditCosignature.cosigner == cosigner)) or 0)


def record_cosignature(
    session: Session, *, checkpoint: AuditCheckpoint, cosigner: str, cosigner_keys: Iterable[Ed25519PublicKey], line: str
) -> None:
    """Keep a peer's cosignature of our checkpoint, once it verifies."""
    try:
        head, signatures = parse_note(checkpoint.note.split("\n\n", 1)[0] + "\n\n" + line)
        verify(head, signatures[0], signer_of(cosigner), list(cosigner_keys))
    except (NoteError, IndexError) as exc:
        raise AuditError(f"the cosignature of {cosigner} does not verify: {exc}", code="audit.signature") from None
    if len(signatures) != 1:
        raise AuditError("one cosignature line expected", code="audit.note")
    exists = session.get(AuditCosignature, (checkpoint.size, cosigner))
    if exists is None:
        session.add(
            AuditCosignature(size=checkpoint.size, cosigner=cosigner, signature=line, received_at=datetime.datetime.now(datetime.UTC))
        )
        session.flush()
