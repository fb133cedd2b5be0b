"""Federation endpoints of the audit log: the latest checkpoint, consistency proofs, and cosigning a peer's head.

For nodes only: every call carries the calling node's short-lived JWT, checked by medsync.transport against
the trust file exactly as the sync endpoints do. Only sizes, hashes and signatures leave the node.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

import anyio
import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromQuery
from sqlalchemy.orm import Session

from medplat.audit import log
from medplat.audit.cosign import StaleProof, cosign_peer
from medplat.audit.merkle import ProofError
from medplat.audit.note import MAX_NOTE_BYTES
from medsync.api import FEDERATION
from medsync.context import SyncContext
from medsync.errors import SyncError
from medsync.transport import caller_of, verify_token

MAX_PROOF = 64
MAX_COSIGN_BODY = 2 * MAX_NOTE_BYTES + MAX_PROOF * 48


class CosignRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    checkpoint: Annotated[str, msgspec.Meta(max_length=MAX_NOTE_BYTES)]
    from_size: Annotated[int, msgspec.Meta(ge=0)] = msgspec.field(name="from")
    proof: Annotated[tuple[str, ...], msgspec.Meta(max_length=MAX_PROOF)] = ()


def _problem(status: int, code: str, detail: str, **extra: Any) -> Response[dict[str, Any]]:
    body = {"type": f"https://medfed.dev/problems/{code}", "title": "Refused", "status": status, "code": code, "detail": detail, **extra}
    return Response(body, status_code=status, media_type="application/problem+json")


def _refusal(exc: SyncError) -> Response[dict[str, Any]]:
    if isinstance(exc, StaleProof):
        return _problem(409, exc.code, exc.message, expected_from=exc.expected_from)
    return _problem(401 if exc.code.startswith("jwt.") else 400, exc.code, exc.message)


def _caller(ctx: SyncContext, request: Request[Any, Any, Any]) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise SyncError("a bearer token is required", code="jwt.missing")
    return verify_token(token.strip(), me=ctx.region, keys=ctx.keys_of(caller_of(token.strip())))


class AuditController(Controller):
    path = "/federation/v1/audit"
    tags = ["federation"]
    opt = {"access": FEDERATION}

    @get("/checkpoint", summary="This node's latest signed checkpoint with the cosignatures it collected")
    async def checkpoint(self, request: Request[Any, Any, Any], state: State) -> Response[Any]:
        ctx: SyncContext = state.sync
        try:
            await anyio.to_thread.run_sync(_caller, ctx, request)
        except SyncError as exc:
            return _refusal(exc)
        note = await anyio.to_thread.run_sync(_latest_note, ctx)
        if note is None:
            return _problem(404, "audit.no_checkpoint", "this node has not signed a checkpoint yet")
        return Response(note, media_type="text/plain; charset=utf-8")

    @get("/consistency", summary="An RFC 9162 consistency proof between two sizes of this node's log")
    async def consistency(
        self, request: Request[Any, Any, Any], state: State, first: FromQuery[int], second: FromQuery[int]
    ) -> Response[dict[str, Any]]:
        ctx: SyncContext = state.sync
        try:
            await anyio.to_thread.run_sync(_caller, ctx, request)
            proof = await anyio.to_thread.run_sync(_consistency, ctx, first, second)
        except SyncError as exc:
            return _refusal(exc)
        except ProofError as exc:
            return _problem(400, "audit.sizes", str(exc))
        return Response({"first": first, "second": second, "proof": [base64.b64encode(p).decode("ascii") for p in proof]})

    @post(
        "/cosign",
        summary="Cosign the caller's checkpoint after checking it extends the last one cosigned",
        request_max_body_size=MAX_COSIGN_BODY,
        status_code=200,
    )
    async def cosign(self, request: Request[Any, Any, Any], state: State) -> Response[dict[str, Any]]:
        ctx: SyncContext = state.sync
        try:
            origin = await anyio.to_thread.run_sync(_caller, ctx, request)
            body = _parse(await request.body())
            line = await anyio.to_thread.run_sync(_cosign, ctx, origin, body)
        except SyncError as exc:
            return _refusal(exc)
        return Response({"cosignature": line})


def _parse(data: bytes) -> tuple[CosignRequest, list[bytes]]:
    try:
        body = msgspec.json.decode(data, type=CosignRequest)
        proof = [base64.b64decode(p, validate=True) for p in body.proof]
    except (msgspec.ValidationError, msgspec.DecodeError, binascii.Error, ValueError) as exc:
        raise SyncError(f"not a cosign request: {exc}", code="audit.malformed") from None
    return body, proof


def _latest_note(ctx: SyncContext) -> str | None:
    with Session(ctx.engine) as session:
        row = log.latest_checkpoint(session)
        return log.cosigned_note(session, row) if row is not None else None


def _consistency(ctx: SyncContext, first: int, second: int) -> list[bytes]:
    with Session(ctx.engine) as session:
        return log.consistency_proof(session, first, second)


def _cosign(ctx: SyncContext, origin: str, request: tuple[CosignRequest, list[bytes]]) -> str:
    body, proof = request
    with Session(ctx.engine) as session, session.begin():
        return cosign_peer(
            session,
            me=ctx.region,
            key=ctx.key,
            origin=origin,
            origin_keys=ctx.keys_of(origin).values(),
            note=body.checkpoint,
            from_size=body.from_size,
            proof=proof,
        )


__all__ = ["AuditController"]
