"""The node's side of cosigning over the federation endpoints: sign the head, ask every peer to cosign it.

Runs with the sync role (SELECT and INSERT on `audit`) in the sync context, with the same JWTs as every other
node-to-node call (medsync.transport).
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import structlog
from sqlalchemy.orm import Session

from medplat.audit import log
from medplat.audit.cosign import STALE_PROOF, last_cosigned_by, record_cosignature
from medplat.audit.log import AuditError
from medplat.audit.models import AuditCheckpoint
from medsync.context import SyncContext
from medsync.errors import SyncError, TrustError
from medsync.transport import mint_token, problem_code

COSIGN_PATH = "/federation/v1/audit/cosign"

logger = structlog.get_logger(__name__)


def cosign_request(session: Session, checkpoint: AuditCheckpoint, from_size: int) -> dict[str, Any]:
    """The body of a cosign call: our checkpoint and a proof from the size the peer last cosigned."""
    proof = log.consistency_proof(session, from_size, checkpoint.size) if 0 < from_size < checkpoint.size else []
    return {"checkpoint": checkpoint.note, "from": from_size, "proof": [base64.b64encode(p).decode("ascii") for p in proof]}


def request_cosignature(ctx: SyncContext, peer: str, http: httpx.Client) -> int | None:
    """Ask `peer` to cosign our latest checkpoint; the size it cosigned, or None when there was nothing to ask."""
    with Session(ctx.engine, expire_on_commit=False) as session:
        checkpoint = log.latest_checkpoint(session)
        if checkpoint is None:
            return None
        from_size = last_cosigned_by(session, peer)
        if from_size >= checkpoint.size:
            return None
        url = ctx.url_of(peer) + COSIGN_PATH
        for _ in range(2):
            body = cosign_request(session, checkpoint, from_size)
            session.rollback()  # no transaction stays open while the peer answers
            token = mint_token(ctx.region, peer, ctx.key)
            response = http.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
            answer = response.json() if response.headers.get("content-type", "").endswith("json") else {}
            if response.status_code == 409 and answer.get("code") == STALE_PROOF and isinstance(answer.get("expected_from"), int):
                from_size = answer["expected_from"]  # the peer says which head it holds: prove from there
                continue
            if response.status_code != 200 or not isinstance(answer.get("cosignature"), str):
                raise AuditError(f"{peer} refused to cosign size {checkpoint.size}: {problem_code(response)}", code="audit.refused")
            record_cosignature(
                session, checkpoint=checkpoint, cosigner=peer, cosigner_keys=ctx.keys_of(peer).values(), line=answer["cosignature"]
            )
            session.commit()
            return checkpoint.size
    raise AuditError(f"{peer} asked twice for a proof from another size", code=STALE_PROOF)


def checkpoint_and_collect(ctx: SyncContext, http: httpx.Client) -> dict[str, object]:
    """Sign the head if the log grew, then collect every peer's cosignature; a peer that fails delays only itself."""
    try:
        trust = ctx.trust()
    except TrustError as exc:
        # The head is still signed; the trust version is logged once the file verifies again.
        logger.warning("audit.trust_unavailable", code=exc.code, error=str(exc)[:300])
        trust = None
    with Session(ctx.engine) as session, session.begin():
        row = log.checkpoint(session, ctx.region, ctx.key, trust)
        signed = row.size if row is not None else None
    cosigned: dict[str, int | str | None] = {}
    for peer in ctx.peers_in_trust():
        try:
            cosigned[peer] = request_cosignature(ctx, peer, http)
        except (SyncError, httpx.HTTPError) as exc:
            logger.warning("audit.cosign_failed", peer=peer, error=str(exc)[:300])
            cosigned[peer] = getattr(exc, "code", type(exc).__name__)
    return {"signed": signed, "cosigned": cosigned}
