"""The target's side of a channel: the inbox door, the apply worker and the receipts it sends back.

The door (`receive`) runs in the web process: it checks, in this order, the caller's token, the envelope's
signature by a currently valid key of the origin, that the manifest is addressed to this node, its place
in the channel (sequence and previous hash) and its validity window, then takes it into the inbox in
sequence order. Anything refused there is recorded with its reason and changes nothing else.

The apply worker (`apply_pending`) then decides each manifest in order: it fetches and verifies every
blob, runs this node's inbound policy on every item, and applies the whole manifest in one transaction or
nothing of it; either way it records the verdicts and signs a receipt for the origin.
"""

from __future__ import annotations

import datetime
import uuid
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import IO, Any, Literal, cast

import httpx
import msgspec
import structlog
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from medplat.audit import log as audit
from medplat.audit.log import AuditKind
from medplat.domain.content.models import ContentItem, ContentMedia, ContentVersion
from medsync import manifest
from medsync.canonical import sha256_hex
from medsync.context import SyncContext
from medsync.errors import SyncError
from medsync.items import Blob, SharedDocument, canonical_document, to_builtins
from medsync.models import ChannelIn, ManifestIn, Verdict, table_of
from medsync.policy import evaluate_inbound, load_policy
from medsync.receipts import SPEC as RECEIPT_SPEC
from medsync.receipts import Receipt, ReceiptItem, ReceiptReason, sign_receipt
from medsync.transport import Minted, caller_of, fetch_blob, mint_token, verify_token

_log = structlog.stdlib.get_logger("medsync.inbound")
UNKNOWN_ORIGIN = "??"
TRANSIENT = frozenset({"blob.unavailable", "blob.timeout", "store.unavailable", "transport.insecure_peer"})
"""Failures that say nothing about the manifest (the origin or a store is down, the origin's URL here is not
https://): retried, never decided."""


@dataclass(frozen=True)
class DoorAnswer:
    """What the inbox answers: an HTTP status and a JSON body (a problem for refusals)."""

    status: int
    body: dict[str, Any]
    sequence: int | None = None
    origin: str | None = None


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def refuse(
    ctx: SyncContext, data: bytes, exc: SyncError, *, origin: str, sequence: int | None, status: int, authenticated: bool = True
) -> DoorAnswer:
    """Record a refusal at the door and answer with a problem.

    The bytes are kept as evidence only when the caller proved to be a node of the federation: an
    anonymous sender must not be able to fill this node's database.
    """
    with Session(ctx.engine) as session, session.begin():
        session.add(
            ManifestIn(
                origin=origin, sequence=sequence, manifest_hash=sha256_hex(data), in_chain=False, envelope=data if authenticated else None,
                status="refused", reasons=[{"code": exc.code, "message": exc.message}], bytes=len(data), decided_at=_now(),
            )
        )  # fmt: skip
        if authenticated:
            # What a node of the federation tried to get across is evidence; an anonymous flood is only counted.
            audit.append(
                session, AuditKind.MANIFEST_RECEIVED,
                {"origin": origin, "sequence": sequence, "manifest_hash": sha256_hex(data), "bytes": len(data), "status": "refused",
                 "code": exc.code},
            )  # fmt: skip
    _log.warning("manifest.refused", origin=origin, sequence=sequence, code=exc.code)
    return DoorAnswer(
        status,
        {
            "type": f"https://medfed.dev/problems/{exc.code}",
            "title": "Manifest refused",
            "status": status,
            "code": exc.code,
            "detail": exc.message,
        },
    )


def receive(ctx: SyncContext, data: bytes, token: str | None, *, now: datetime.datetime | None = None) -> DoorAnswer:
    now = now or _now()
    origin = UNKNOWN_ORIGIN
    sequence: int | None = None
    authenticated = False
    try:
        if not token:
            raise SyncError("a bearer token is required", code="jwt.missing")
        claimed = caller_of(token)
        origin = claimed if claimed in ctx.trust(now).nodes else UNKNOWN_ORIGIN
        origin = verify_token(token, me=ctx.region, keys=ctx.keys_of(claimed, now), now=now)
        authenticated = True
        envelope = manifest.open_envelope(data)
        body, digest = manifest.verified_body(envelope, ctx.keys_of(origin, now))
        sequence = body.sequence
        if body.origin != origin:
            raise SyncError(f"manifest says origin {body.origin} but was signed and sent by {origin}", code="manifest.origin_mismatch")
        if body.target != ctx.region or body.channel != f"{origin}>{ctx.region}":
            raise SyncError(f"manifest is addressed to {body.target}, not {ctx.region}", code="manifest.wrong_target")
    except SyncError as exc:
        status = 401 if exc.code.startswith("jwt.") else 400 if exc.code.startswith(("body.", "envelope.", "manifest.")) else 403
        return refuse(ctx, data, exc, origin=origin, sequence=sequence, status=status, authenticated=authenticated)
    return _take_in_order(ctx, data, body, digest, now)


def _channel_in(session: Session, origin: str) -> ChannelIn:
    """The channel's row, created on first contact, locked for the rest of the transaction."""
    session.execute(
        insert(ChannelIn).values(origin=origin, received_sequence=0, received_hash="", applied_sequence=0).on_conflict_do_nothing()
    )
    channel = session.scalar(select(ChannelIn).where(ChannelIn.origin == origin).with_for_update())
    assert channel is not None
    return channel


def _take_in_order(ctx: SyncContext, data: bytes, body: manifest.ManifestBody, digest: str, now: datetime.datetime) -> DoorAnswer:
    origin = body.origin
    with Session(ctx.engine) as session, session.begin():
        channel = _channel_in(session, origin)
        expected = channel.received_sequence + 1
        if body.sequence < expected:
            seen = session.scalar(
                select(ManifestIn).where(ManifestIn.origin == origin, ManifestIn.sequence == body.sequence, ManifestIn.in_chain)
            )
            if seen is not None and seen.manifest_hash == digest:
                return DoorAnswer(200, {"status": "duplicate", "sequence": body.sequence, "state": seen.status}, body.sequence)
            error = SyncError(f"sequence {body.sequence} was already taken with different content", code="sequence.equivocation")
        elif body.sequence > expected:
            error = SyncError(f"expected sequence {expected}, got {body.sequence}", code="sequence.gap")
        elif body.previous != channel.received_hash:
            error = SyncError(
                f"previous hash does not match manifest {channel.received_sequence} of this channel", code="sequence.chain_broken"
            )
        elif manifest.parse_timestamp(body.expires_at) <= now:
            error = SyncError(f"manifest expired at {body.expires_at}", code="manifest.expired")
        elif manifest.parse_timestamp(body.issued_at) > now + manifest.CLOCK_SKEW:
            error = SyncError(f"manifest issued in the future ({body.issued_at})", code="manifest.not_yet_valid")
        else:
            session.add(
                ManifestIn(
                    origin=origin, sequence=body.sequence, manifest_hash=digest, in_chain=True, envelope=data,
                    status="received", items=len(body.items), bytes=len(data),
                )
            )  # fmt: skip
            channel.received_sequence = body.sequence
            channel.received_hash = digest
            audit.append(
                session, AuditKind.MANIFEST_RECEIVED,
                {"origin": origin, "sequence": body.sequence, "manifest_hash": digest, "items": len(body.items), "bytes": len(data),
                 "status": "received"},
            )  # fmt: skip
            _log.info("manifest.received", origin=origin, sequence=body.sequence, items=len(body.items))
            return DoorAnswer(202, {"status": "received", "sequence": body.sequence}, body.sequence, origin)
        # Refused: not even the channel's first-contact row may remain.
        session.rollback()
    answer = refuse(ctx, data, error, origin=origin, sequence=body.sequence, status=409)
    if error.code == "sequence.gap":
        answer.body["expected"] = expected
    return answer


# -- apply ---------------------------------------------------------------------------------------------


@dataclass
class Decision:
    status: Literal["applied", "rejected"]
    items: list[ReceiptItem] = field(default_factory=list)
    documents: dict[tuple[str, int], SharedDocument] = field(default_factory=dict)
    """The document to store per item id: what this node's policy made of it (e.g. without the byline)."""
    reasons: list[ReceiptReason] = field(default_factory=list)


CRASH_POINTS: dict[str, object] = {}
"""Test hook: a point name mapped to a callable run there (e.g. one that kills the process)."""


def _checkpoint(name: str) -> None:
    hook = CRASH_POINTS.get(name)
    if callable(hook):
        hook()


def apply_pending(ctx: SyncContext, origin: str, http: httpx.Client, *, now: datetime.datetime | None = None) -> int:
    """Decide every received manifest of `origin`, in order; returns how many were decided.

    One worker at a time per channel: a PostgreSQL advisory lock, held for the loop, keeps two workers from
    fetching the same blobs twice (the transaction would refuse the second anyway).
    """
    with ctx.engine.connect() as lock:
        if not lock.execute(text("SELECT pg_try_advisory_lock(hashtext(:k))"), {"k": f"medfed-apply-{origin}"}).scalar():
            return 0
        try:
            return _apply_loop(ctx, origin, http, now=now)
        finally:
            lock.execute(text("SELECT pg_advisory_unlock(hashtext(:k))"), {"k": f"medfed-apply-{origin}"})
            lock.commit()


def _apply_loop(ctx: SyncContext, origin: str, http: httpx.Client, *, now: datetime.datetime | None) -> int:
    decided = 0
    # The next manifest's blobs are fetched while this one commits (one look-ahead, in its own thread).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="blob-ahead") as pool:
        ahead = _LookAhead(ctx, http, pool)
        try:
            while True:
                manifest_id = _received(ctx, origin)
                if manifest_id is None:
                    return decided
                _apply_one(ctx, manifest_id, http, ahead, now=now or _now())
                decided += 1
        finally:
            ahead.drop()


def _received(ctx: SyncContext, origin: str, sequence: int | None = None) -> int | None:
    """The id of the received manifest at `sequence` of the channel (by default the next one to apply)."""
    with Session(ctx.engine) as session:
        channel = session.get(ChannelIn, origin)
        if channel is None:
            return None
        return session.scalar(
            select(ManifestIn.id).where(
                ManifestIn.origin == origin,
                ManifestIn.in_chain,
                ManifestIn.sequence == (sequence if sequence is not None else channel.applied_sequence + 1),
                ManifestIn.status == "received",
            )
        )


@dataclass
class _Checked:
    """A received manifest, its signature checked again and this node's inbound policy run on every item."""

    body: manifest.ManifestBody
    digest: str
    decision: Decision
    refused: bool


def _check(ctx: SyncContext, manifest_id: int, *, now: datetime.datetime) -> _Checked:
    with Session(ctx.engine) as session:
        row = session.get(ManifestIn, manifest_id)
        assert row is not None and row.envelope is not None
        origin, data = row.origin, row.envelope
    body, digest = manifest.verified_body(manifest.open_envelope(data), ctx.keys_of(origin, now))
    policy = load_policy(ctx.region)
    decision = Decision("applied")
    refused = False
    for item in body.items:
        reasons: list[ReceiptReason] = []
        if item.document is not None:
            size = len(canonical_document(item.document))
            verdict = evaluate_inbound(policy, item.document, origin=origin, target=ctx.region, document_bytes=size)
            reasons = [ReceiptReason(r.code, r.message) for r in verdict.reasons]
            if verdict.document is not None:
                decision.documents[(item.id, item.version)] = verdict.document
            if not verdict.accepted:
                refused = True
                decision.items.append(ReceiptItem(item.id, item.version, "refused", tuple(reasons)))
                continue
        decision.items.append(ReceiptItem(item.id, item.version, "applied", tuple(reasons)))
    if refused:
        withheld = ReceiptReason("manifest.rejected", "another item of this manifest was refused; nothing was applied")
        decision.items = [
            i if i.status == "refused" else ReceiptItem(i.id, i.version, "skipped", (*i.reasons, withheld)) for i in decision.items
        ]
        decision.status = "rejected"
        decision.reasons.append(ReceiptReason("policy.refused", "an item was refused by this node's inbound policy; nothing was applied"))
    return _Checked(body, digest, decision, refused)


@dataclass
class _LookAhead:
    """At most one manifest checked ahead of the one being applied, with its blobs on their way.

    The blobs are stored by content and only a committed row makes them count, so fetching them early
    changes nothing visible: if that manifest is then not applied by this loop (the worker dies, the
    current manifest fails), what was fetched is discarded like any apply's leftovers.
    """

    ctx: SyncContext
    http: httpx.Client
    pool: ThreadPoolExecutor
    manifest_id: int | None = None
    checked: _Checked | None = None
    blobs: Future[list[str]] | None = None

    def start(self, origin: str, sequence: int, *, now: datetime.datetime) -> None:
        """Check the manifest at `sequence` if it has arrived, and start fetching its blobs if it is accepted.

        Nothing that goes wrong here is a verdict on the current manifest: the next one is then checked
        again, and decided, in its own turn.
        """
        try:
            manifest_id = _received(self.ctx, origin, sequence)
            checked = _check(self.ctx, manifest_id, now=now) if manifest_id is not None else None
        except Exception:  # noqa: BLE001 - see the docstring
            _log.warning("manifest.look_ahead_failed", origin=origin, sequence=sequence)
            return
        if checked is None:
            return
        self.manifest_id, self.checked = manifest_id, checked
        if not checked.refused:
            self.blobs = self.pool.submit(_fetch_blobs, self.ctx, checked.body, self.http)

    def take(self, manifest_id: int) -> tuple[_Checked, Future[list[str]] | None] | None:
        """What was prepared for `manifest_id`, handed over to its apply (anything else is discarded)."""
        if self.manifest_id != manifest_id or self.checked is None:
            self.drop()
            return None
        taken = (self.checked, self.blobs)
        self.manifest_id, self.checked, self.blobs = None, None, None
        return taken

    def drop(self) -> None:
        blobs, self.manifest_id, self.checked, self.blobs = self.blobs, None, None, None
        if blobs is None:
            return
        try:
            written = blobs.result()
        except BaseException:  # noqa: BLE001 - a failed fetch has already deleted what it wrote
            return
        discard(self.ctx, written)


def _apply_one(ctx: SyncContext, manifest_id: int, http: httpx.Client, ahead: _LookAhead, *, now: datetime.datetime) -> None:
    prepared = ahead.take(manifest_id)
    checked, blobs = prepared if prepared is not None else (_check(ctx, manifest_id, now=now), None)
    body, digest, decision = checked.body, checked.digest, checked.decision
    written: list[str] = []
    try:
        if not checked.refused:
            written = blobs.result() if blobs is not None else _fetch_blobs(ctx, body, http)
            _checkpoint("after_blobs")
        ahead.start(body.origin, body.sequence + 1, now=now)
        retracted = _commit(ctx, manifest_id, body, digest, decision, now=now)
    except SyncError as exc:
        discard(ctx, written)
        if exc.code in TRANSIENT:
            raise  # not a verdict on the manifest: the worker retries later, the manifest stays received
        decision = Decision(
            "rejected", [ReceiptItem(i.id, i.version, "refused", (ReceiptReason(exc.code, exc.message),)) for i in body.items]
        )
        decision.reasons.append(ReceiptReason(exc.code, exc.message))
        retracted = _commit(ctx, manifest_id, body, digest, decision, now=now)
    except BaseException:
        discard(ctx, written)
        raise
    if retracted:
        # The next manifest may bring back a blob this one retracted: its early copy must not race the
        # deletion, so it is dropped and fetched again in its turn.
        ahead.drop()
        discard(ctx, retracted)
    _log.info("manifest.decided", origin=body.origin, sequence=body.sequence, status=decision.status, items=len(body.items))


def _blob_key(origin: str, sha256: str) -> str:
    """Received blobs are stored by content under the origin's prefix: a sender cannot choose our keys."""
    return f"received/{origin}/{sha256}"


BLOB_FETCHES = 4
"""Blobs of one manifest fetched at once: the origin streams from its store and we write into ours, so a
few in flight hide each side's latency without starving the other nodes' traffic."""


def _fetch_blobs(ctx: SyncContext, body: manifest.ManifestBody, http: httpx.Client) -> list[str]:
    """Fetch, verify and store every blob of the manifest; returns the keys this call created.

    All or nothing: on the first failure the fetches not started are cancelled, the running ones finish,
    and every object this call wrote is deleted again.
    """
    wanted: dict[str, tuple[str, Blob]] = {}
    for item in body.items:
        for blob in item.blobs:
            wanted.setdefault(blob.sha256, (item.id, blob))
    created: list[str] = []
    base = ctx.url_of(body.origin)
    known = _referenced(ctx, [_blob_key(body.origin, sha) for sha in wanted])

    token = Minted(ctx.region, body.origin, ctx.key)

    def fetch(item_id: str, blob: Blob) -> None:
        key = _blob_key(body.origin, blob.sha256)
        if key in known and ctx.store.stat(ctx.shared_bucket, key) is not None:
            return
        url = f"{base}/federation/v1/blobs/{item_id}/{blob.sha256}"
        with fetch_blob(http, url, token.current(), sha256=blob.sha256, length=blob.length) as arriving:
            # Streamed from the origin's answer into our store as it is checked: no spool, one copy.
            ctx.store.put(ctx.shared_bucket, key, cast(IO[bytes], arriving), blob.length, blob.media_type)
            created.append(key)
            if not arriving.checked:
                raise RuntimeError("the object store took a blob without reading all of it")

    if not wanted:
        return created
    try:
        # One look at our own store before pulling anything from the origin (there is no HEAD per blob any
        # more): a store that is down is this node's transient failure, not a reason to fetch blobs.
        ctx.store.bucket_exists(ctx.shared_bucket)
    except Exception as exc:
        raise SyncError(f"this node's object store failed: {type(exc).__name__}", code="store.unavailable") from exc
    pool = ThreadPoolExecutor(max_workers=min(BLOB_FETCHES, len(wanted)), thread_name_prefix="blob-fetch")
    try:
        futures = [pool.submit(fetch, item_id, blob) for item_id, blob in wanted.values()]
        for future in as_completed(futures):
            future.result()
    except SyncError:
        pool.shutdown(wait=True, cancel_futures=True)
        discard(ctx, created)
        raise
    except Exception as exc:
        # This node's own object store failed (down, full, timing out): retried later, not a verdict.
        pool.shutdown(wait=True, cancel_futures=True)
        discard(ctx, created)
        raise SyncError(f"this node's object store failed: {type(exc).__name__}", code="store.unavailable") from exc
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        discard(ctx, created)
        raise
    pool.shutdown(wait=True)
    return created


def _referenced(ctx: SyncContext, keys: list[str]) -> set[str]:
    """The keys a committed row already refers to. Only those can be in the store already (blobs are stored
    by content, and an apply's own leftovers are deleted or, after a crash, fetched again and overwritten
    with the same bytes), so only those are looked up in the store before fetching: no HEAD per new blob."""
    if not keys:
        return set()
    with Session(ctx.engine) as session:
        return set(session.scalars(select(ContentMedia.key).where(ContentMedia.key.in_(keys)).distinct()))


def discard(ctx: SyncContext, keys: list[str]) -> None:
    """Delete blobs this apply wrote, unless a committed row refers to them (another worker won the race)."""
    if not keys:
        return
    with Session(ctx.engine) as session:
        kept = set(session.scalars(select(ContentMedia.key).where(ContentMedia.key.in_(keys))))
    for key in keys:
        if key in kept:
            continue
        try:
            ctx.store.delete(ctx.shared_bucket, key)
        except Exception:  # noqa: BLE001 - an orphan is harmless (nothing refers to it) and swept later
            _log.warning("blob.discard_failed", key=key)


def _commit(
    ctx: SyncContext, manifest_id: int, body: manifest.ManifestBody, digest: str, decision: Decision, *, now: datetime.datetime
) -> list[str]:
    """Everything the manifest changes, in one transaction, or nothing, with its signed receipt; returns the
    object keys that no row refers to any more, for the caller to delete."""
    retracted: list[str] = []
    with Session(ctx.engine) as session, session.begin():
        channel = _channel_in(session, body.origin)
        row = session.get(ManifestIn, manifest_id, with_for_update=True)
        assert row is not None
        if row.status != "received" or channel.applied_sequence + 1 != body.sequence:
            return []  # decided already by another worker
        if decision.status == "applied":
            state = _Touched.load(session, body)
            for index, item in enumerate(body.items):
                outcome = _apply_item(session, body.origin, item, decision.documents.get((item.id, item.version)), state)
                if outcome is not None:
                    decision.items[index] = ReceiptItem(item.id, item.version, "skipped", (outcome,))
                _checkpoint("mid_apply")
            session.flush()  # the items first: versions and media refer to them
            if state.versions:
                session.execute(insert(table_of(ContentVersion)), state.versions)  # one statement for the manifest
            session.add_all(state.new_media)
            retracted.extend(state.retracted)
        verdicts = [
            {
                "item_id": uuid.UUID(receipt_item.id), "version": receipt_item.version, "origin": body.origin, "target": ctx.region,
                "stage": "apply", "accepted": receipt_item.status != "refused",
                "reasons": [msgspec.to_builtins(r) for r in receipt_item.reasons], "created_at": now,
            }
            for receipt_item in decision.items
        ]  # fmt: skip
        session.execute(insert(table_of(Verdict)), verdicts)
        receipt = Receipt(
            spec=RECEIPT_SPEC, origin=body.origin, target=ctx.region, sequence=body.sequence, manifest_hash=digest,
            status=decision.status, decided_at=manifest.timestamp(now), items=tuple(decision.items), reasons=tuple(decision.reasons),
        )  # fmt: skip
        row.status = decision.status
        row.reasons = [msgspec.to_builtins(r) for r in decision.reasons]
        row.receipt = {"envelope": sign_receipt(receipt, ctx.key).encode().decode(), "sent": False}
        row.decided_at = now
        channel.applied_sequence = body.sequence
        outcomes = [i.status for i in decision.items]
        audit.append(
            session, AuditKind.POLICY_VERDICT,
            {"stage": "apply", "origin": body.origin, "sequence": body.sequence, "manifest_hash": digest, "status": decision.status,
             "applied": outcomes.count("applied"), "refused": outcomes.count("refused"), "skipped": outcomes.count("skipped"),
             "codes": sorted({r.code for i in decision.items for r in i.reasons} | {r.code for r in decision.reasons})},
        )  # fmt: skip
        _checkpoint("before_commit")
    return retracted


@dataclass
class _Touched:
    """The rows a manifest's items touch: locked and read in two queries, then kept current as the items of
    the manifest are applied one after the other (an item may come twice, in two versions)."""

    items: dict[uuid.UUID, ContentItem]
    media: dict[uuid.UUID, list[ContentMedia]]
    versions: list[dict[str, Any]] = field(default_factory=list)
    new_media: list[ContentMedia] = field(default_factory=list)
    """Versions and media to insert once the items they refer to are flushed."""
    retracted: list[str] = field(default_factory=list)
    """Object keys no row refers to any more, deleted from the store after the commit."""

    @classmethod
    def load(cls, session: Session, body: manifest.ManifestBody) -> _Touched:
        ids = sorted({uuid.UUID(item.id) for item in body.items})
        locked = select(ContentItem).where(ContentItem.id.in_(ids)).order_by(ContentItem.id).with_for_update()
        media: dict[uuid.UUID, list[ContentMedia]] = {item_id: [] for item_id in ids}
        for row in session.scalars(select(ContentMedia).where(ContentMedia.item_id.in_(ids))):
            media[row.item_id].append(row)
        return cls({item.id: item for item in session.scalars(locked)}, media)

    def drop_media(self, session: Session, item_id: uuid.UUID, keep: set[str]) -> None:
        """Remove the item's media whose sha256 is not in `keep`; their objects go unless shared."""
        kept: list[ContentMedia] = []
        for media in self.media[item_id]:
            if media.sha256 in keep:
                kept.append(media)
                continue
            if media in self.new_media:
                self.new_media.remove(media)
                continue
            if not _referenced_elsewhere(session, media):
                self.retracted.append(media.key)
            session.delete(media)
        self.media[item_id] = kept


def _referenced_elsewhere(session: Session, media: ContentMedia) -> bool:
    """Blobs are stored by content, so another item may share the object."""
    query = select(func.count()).select_from(ContentMedia).where(ContentMedia.key == media.key, ContentMedia.item_id != media.item_id)
    return bool(session.scalar(query))


def _apply_item(
    session: Session, origin: str, item: manifest.ManifestItem, document: SharedDocument | None, state: _Touched
) -> ReceiptReason | None:
    """Apply one item; returns a reason when it was skipped (an older version, or a tombstoned item)."""
    item_id = uuid.UUID(item.id)
    current = state.items.get(item_id)
    if current is not None and current.origin_region != origin:
        return ReceiptReason("item.foreign", f"item {item.id} originates on {current.origin_region}, not {origin}")
    if current is not None and current.status == "retracted" and item.version <= current.version:
        # A tombstone stays: nothing at or below its version can bring the item back.
        return ReceiptReason("item.tombstoned", f"item {item.id} was retracted at version {current.version}")
    if current is not None and item.op == "upsert" and item.version <= current.version:
        return ReceiptReason("item.superseded", f"version {item.version} is not newer than {current.version}")
    if current is not None and item.op == "tombstone" and item.version < current.version:
        return ReceiptReason("item.superseded", f"tombstone of version {item.version} is older than version {current.version}")
    if current is None:
        current = ContentItem(id=item_id, origin_region=origin, kind="article", title="", category=item.category)
        session.add(current)
        state.items[item_id] = current
    if item.op == "tombstone":
        current.status, current.version, current.draft = "retracted", item.version, None
        state.drop_media(session, item_id, keep=set())
        state.versions.append(
            {
                "item_id": item_id,
                "version": item.version,
                "op": "tombstone",
                "document": None,
                "content_hash": item.content_hash,
                "created_at": _now(),
            }
        )
        return None
    assert document is not None
    current.kind, current.category, current.title = document.kind, document.category, document.texts[0].title
    current.specializations, current.languages = list(document.specializations), list(document.languages)
    current.origin_only, current.status, current.version, current.draft, current.targets = False, "published", item.version, None, []
    state.versions.append(
        {
            "item_id": item_id,
            "version": item.version,
            "op": "upsert",
            "document": to_builtins(document),
            "content_hash": manifest.document_hash(document),
            "created_at": _now(),
        }
    )
    wanted = {b.sha256: b for b in document.blobs}
    state.drop_media(session, item_id, keep=set(wanted))
    have = {media.sha256 for media in state.media[item_id]}
    for sha, blob in wanted.items():
        if sha not in have:
            media = ContentMedia(item_id=item_id, key=_blob_key(origin, sha), sha256=sha, length=blob.length, media_type=blob.media_type)
            state.media[item_id].append(media)
            state.new_media.append(media)
    return None


# -- receipts back to the origin -----------------------------------------------------------------------


def unsent_receipts(ctx: SyncContext) -> list[int]:
    with Session(ctx.engine) as session:
        rows = session.scalars(
            select(ManifestIn.id).where(
                ManifestIn.in_chain, ManifestIn.status.in_(("applied", "rejected")), ManifestIn.receipt["sent"].astext == "false"
            )
        )
        return list(rows)


def send_receipt(ctx: SyncContext, manifest_id: int, http: httpx.Client) -> None:
    with Session(ctx.engine) as session:
        row = session.get(ManifestIn, manifest_id)
        assert row is not None and row.receipt is not None
        origin, envelope = row.origin, str(row.receipt["envelope"])
    url = f"{ctx.url_of(origin)}/federation/v1/receipts"
    token = mint_token(ctx.region, origin, ctx.key)
    response = http.post(url, content=envelope.encode(), headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    if response.status_code not in (200, 202):
        raise SyncError(f"{origin} refused the receipt: {response.status_code}", code="receipt.refused")
    with Session(ctx.engine) as session, session.begin():
        row = session.get(ManifestIn, manifest_id, with_for_update=True)
        assert row is not None and row.receipt is not None
        row.receipt = {**row.receipt, "sent": True}


def channels_with_work(ctx: SyncContext) -> list[str]:
    with Session(ctx.engine) as session:
        return sorted(
            set(session.scalars(select(ManifestIn.origin).where(ManifestIn.in_chain, ManifestIn.status == "received").distinct()))
        )
