"""The federation endpoints every node serves to the other nodes (and to nobody else).

All of them authenticate the calling node by its short-lived JWT against the trust file, run the sync code
with the sync database role in a worker thread, and answer refusals as problem details with a stable
`code`.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery
from litestar.response import Stream
from sqlalchemy import bindparam, exists, select

from medplat.domain.content.models import ContentMedia
from medplat.storage import OpenedObject
from medsync import reset
from medsync.context import SyncContext
from medsync.errors import SyncError
from medsync.inbound import UNKNOWN_ORIGIN, receive, refuse
from medsync.manifest import MAX_MANIFEST_BYTES
from medsync.models import OutboxRow
from medsync.outbound import record_receipt
from medsync.receipts import MAX_RECEIPT_BYTES, verify_receipt
from medsync.reconcile import target_view
from medsync.reset import MAX_RESET_BYTES
from medsync.transport import caller_of, verify_token

BODY_DEADLINE = float(os.environ.get("MEDFED_BODY_DEADLINE", "30"))
"""Seconds a sender may take to deliver a request body; a trickling sender is cut off after this."""

FEDERATION = "federation"
"""Routes marked `opt={"access": FEDERATION}` are for nodes only: they check the caller's JWT themselves."""


_FORBIDDEN_RESETS = frozenset({"reset.not_permitted", "signature.untrusted", "signature.missing", "signature.threshold"})


def _reset_status(code: str) -> int:
    if code.startswith("jwt."):
        return 401
    if code in _FORBIDDEN_RESETS:
        return 403
    return 409 if code == "reset.behind" else 400


def _problem(status: int, code: str, detail: str) -> Response[dict[str, Any]]:
    body = {"type": f"https://medfed.dev/problems/{code}", "title": "Refused", "status": status, "code": code, "detail": detail}
    return Response(body, status_code=status, media_type="application/problem+json")


def _token(request: Request[Any, Any, Any]) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def _read_body(request: Request[Any, Any, Any], limit: int) -> bytes:
    """The body, refused past `limit` bytes before it is all read, and cut off after BODY_DEADLINE seconds."""
    chunks: list[bytes] = []
    size = 0
    with anyio.fail_after(BODY_DEADLINE):
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise SyncError(f"body exceeds {limit} bytes", code="body.too_large")
            chunks.append(chunk)
    return b"".join(chunks)


def _caller(ctx: SyncContext, token: str | None) -> str:
    if not token:
        raise SyncError("a bearer token is required", code="jwt.missing")
    return ctx.callers.caller(token, ctx.trust(), lambda: verify_token(token, me=ctx.region, keys=ctx.keys_of(caller_of(token))))


class FederationController(Controller):
    path = "/federation/v1"
    tags = ["federation"]
    opt = {"access": FEDERATION}

    @post("/inbox", summary="Take a signed manifest into this node's inbox", request_max_body_size=MAX_MANIFEST_BYTES)
    async def inbox(self, request: Request[Any, Any, Any], state: State) -> Response[dict[str, Any]]:
        ctx: SyncContext = state.sync
        token = _token(request)
        try:
            # Who is calling is settled before the body is read: an anonymous sender gets nothing stored.
            await anyio.to_thread.run_sync(_caller, ctx, token)
        except SyncError as exc:
            record = functools.partial(refuse, ctx, b"", exc, origin=UNKNOWN_ORIGIN, sequence=None, status=401, authenticated=False)
            answer = await anyio.to_thread.run_sync(record)
            return Response(answer.body, status_code=answer.status, media_type="application/problem+json")
        try:
            data = await _read_body(request, MAX_MANIFEST_BYTES)
        except TimeoutError:
            return _problem(408, "transport.timeout", f"the manifest did not arrive within {BODY_DEADLINE:.0f} s")
        except SyncError as exc:
            return _problem(413, exc.code, exc.message)
        answer = await anyio.to_thread.run_sync(receive, ctx, data, token)
        if answer.status == 202 and answer.origin is not None:
            await state.wake_apply(answer.origin)
        media = "application/json" if answer.status < 400 else "application/problem+json"
        return Response(answer.body, status_code=answer.status, media_type=media)

    @post("/receipts", summary="A target's signed receipt for a manifest this node sent")
    async def receipts(self, request: Request[Any, Any, Any], state: State) -> Response[dict[str, Any]]:
        ctx: SyncContext = state.sync
        try:
            data = await _read_body(request, MAX_RECEIPT_BYTES)
            target = await anyio.to_thread.run_sync(_caller, ctx, _token(request))
            receipt = await anyio.to_thread.run_sync(verify_receipt, data, ctx.keys_of(target))
            if receipt.target != target or receipt.origin != ctx.region:
                raise SyncError("receipt is not for a manifest from this node to the caller", code="receipt.mismatch")
            await anyio.to_thread.run_sync(record_receipt, ctx, target, receipt)
        except TimeoutError:
            return _problem(408, "transport.timeout", "the receipt did not arrive in time")
        except SyncError as exc:
            return _problem(401 if exc.code.startswith("jwt.") else 400, exc.code, exc.message)
        return Response({"status": "recorded"}, status_code=200)

    @get("/digest", summary="This node's view of a channel from the caller, for anti-entropy")
    async def digest(
        self,
        request: Request[Any, Any, Any],
        state: State,
        origin: FromQuery[str],
        detail: FromQuery[str | None] = None,
        buckets: FromQuery[str | None] = None,
    ) -> Response[Any]:
        ctx: SyncContext = state.sync
        try:
            caller = await anyio.to_thread.run_sync(_caller, ctx, _token(request))
        except SyncError as exc:
            return _problem(401, exc.code, exc.message)
        if caller != origin:
            return _problem(403, "reconcile.not_your_channel", "a node may only compare its own channel")
        wanted = [b for b in (buckets or "").split(",") if len(b) == 2 and all(c in "0123456789abcdef" for c in b)]
        view = await anyio.to_thread.run_sync(lambda: target_view(ctx, origin, buckets=wanted or None, detail=detail == "buckets"))
        return Response(view, status_code=200)

    @get("/channel", summary="This node's end of the caller's channel: what it took and applied, for re-signing and resets")
    async def channel(self, request: Request[Any, Any, Any], state: State, origin: FromQuery[str]) -> Response[Any]:
        ctx: SyncContext = state.sync
        try:
            caller = await anyio.to_thread.run_sync(_caller, ctx, _token(request))
        except SyncError as exc:
            return _problem(401, exc.code, exc.message)
        if caller != origin:
            return _problem(403, "reconcile.not_your_channel", "a node may only see its own channel")
        return Response(await anyio.to_thread.run_sync(reset.channel_view, ctx, origin), status_code=200)

    @post("/reset", summary="A signed reset statement: the caller re-bases its channel to this node", request_max_body_size=MAX_RESET_BYTES)
    async def reset_channel(self, request: Request[Any, Any, Any], state: State) -> Response[Any]:
        ctx: SyncContext = state.sync
        try:
            origin = await anyio.to_thread.run_sync(_caller, ctx, _token(request))
            data = await _read_body(request, MAX_RESET_BYTES)
            answer = await anyio.to_thread.run_sync(lambda: reset.accept(ctx, origin, data))
        except TimeoutError:
            return _problem(408, "transport.timeout", "the statement did not arrive in time")
        except SyncError as exc:
            return _problem(_reset_status(exc.code), exc.code, exc.message)
        return Response(answer, status_code=200)

    @get("/blobs/{item_id:uuid}/{sha256:str}", summary="A blob of an item this node sent to the caller")
    async def blob(
        self, item_id: FromPath[uuid.UUID], sha256: FromPath[str], request: Request[Any, Any, Any], state: State
    ) -> Response[Any]:
        ctx: SyncContext = state.sync
        try:
            target = await anyio.to_thread.run_sync(_caller, ctx, _token(request))
            key, media_type = await anyio.to_thread.run_sync(_blob_for, ctx, target, item_id, sha256)
        except SyncError as exc:
            return _problem(401 if exc.code.startswith("jwt.") else 404, exc.code, exc.message)
        # One GET, no HEAD first: the store's answer gives the length of what is stored (not of what was
        # declared: the target checks the declaration) and the bytes, handed on as they come.
        opened = await anyio.to_thread.run_sync(ctx.store.open, ctx.shared_bucket, key, BLOB_CHUNK)
        if opened is None:
            return _problem(404, "blob.not_found", "the blob is not in this node's store")
        return Stream(_iterate(opened), media_type=media_type, headers={"Content-Length": str(opened.size)})


_BLOB_FOR = (
    select(ContentMedia.key, ContentMedia.media_type)
    .where(
        ContentMedia.item_id == bindparam("item_id"),
        ContentMedia.sha256 == bindparam("sha256"),
        exists().where(OutboxRow.item_id == bindparam("item_id"), OutboxRow.target == bindparam("target"), OutboxRow.op == "upsert"),
    )
    .limit(1)
)


def _blob_for(ctx: SyncContext, target: str, item_id: uuid.UUID, sha256: str) -> tuple[str, str]:
    """The object key and media type of a blob, served only if this node sent (or is sending) its item to the
    caller. One prepared query: this runs for every blob every target fetches."""
    with ctx.engine.connect() as conn:
        row = conn.execute(_BLOB_FOR, {"item_id": item_id, "sha256": sha256, "target": target}).first()
    if row is None:
        raise SyncError("no such blob for this caller", code="blob.not_found")
    return row.key, row.media_type


BLOB_CHUNK = 1024 * 1024
"""Bytes handed from the store's answer to the caller's at a time. Each chunk costs a hop to a worker thread
and back, so a blob goes through in few large pieces (1 MiB blobs in one) instead of many 64 KiB ones."""


async def _iterate(opened: OpenedObject) -> AsyncIterator[bytes]:
    try:
        while True:
            chunk = await anyio.to_thread.run_sync(next, opened.chunks, None)
            if chunk is None:
                return
            yield chunk
    finally:
        # A caller that went away mid-blob: the store's connection goes back to the pool, not to the collector.
        opened.close()


__all__ = ["FEDERATION", "FederationController"]
