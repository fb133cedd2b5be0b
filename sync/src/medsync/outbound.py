"""The origin's side of a channel: turn outbox rows into signed manifests, send them in order, read receipts.

The outbox is the source of truth. `build_manifests` takes pending rows in order, checks every item once
more against the rules of both sides (they may have changed since publishing), signs the next manifest of
the channel and marks the rows as sent, all in one transaction, with the verdicts in one audit leaf.
`send_manifests` posts every manifest the target has not taken yet, oldest first; a target that answers
with the sequence it expects makes the origin resend from there. Nothing is ever dropped: a failure leaves the rows where they were.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import msgspec
import structlog
from sqlalchemy import insert, select, tuple_, update
from sqlalchemy.orm import Session

from medplat.audit import log as audit
from medplat.audit.log import AuditKind
from medplat.domain.content.models import ContentItem, ContentVersion
from medsync import manifest, reset
from medsync.context import SyncContext
from medsync.errors import SyncError
from medsync.items import from_builtins
from medsync.models import ChannelOut, ManifestOut, OutboxRow, Verdict, table_of
from medsync.policy import preview
from medsync.receipts import Receipt
from medsync.transport import mint_token, problem_code

_log = structlog.stdlib.get_logger("medsync.outbound")

MAX_ITEMS_PER_MANIFEST = 100


class DeliveryError(SyncError):
    """Delivery must be retried later (the target is down, or refuses for a reason ops must fix)."""

    code = "delivery.failed"


@dataclass(frozen=True)
class SendResult:
    sent: int
    resent_from: int | None = None


def _channel(session: Session, target: str) -> ChannelOut:
    channel = session.scalar(select(ChannelOut).where(ChannelOut.target == target).with_for_update())
    if channel is None:
        session.add(ChannelOut(target=target, next_sequence=1, last_hash="", acked_sequence=0))
        session.flush()
        channel = session.scalar(select(ChannelOut).where(ChannelOut.target == target).with_for_update())
    assert channel is not None
    return channel


@dataclass(frozen=True)
class _Sources:
    """What the rows of one manifest are built from, read in two queries instead of two per row, as plain
    rows of the few columns a manifest needs (no ORM objects: a manifest has a hundred of each)."""

    items: dict[uuid.UUID, tuple[str, str]]
    """Item id -> (origin region, category)."""
    documents: dict[tuple[uuid.UUID, int], dict[str, Any] | None]
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    """The send-stage verdicts, written in one statement."""
    logged: list[dict[str, Any]] = field(default_factory=list)
    """The same verdicts as the manifest's one `policy_verdict` leaf lists them: ids, versions, outcomes, codes."""

    @classmethod
    def load(cls, session: Session, rows: list[OutboxRow]) -> _Sources:
        ids = {row.item_id for row in rows}
        query = select(ContentItem.id, ContentItem.origin_region, ContentItem.category).where(ContentItem.id.in_(ids))
        items = {item_id: (origin, category) for item_id, origin, category in session.execute(query)}
        wanted = {(row.item_id, row.version) for row in rows if row.op != "tombstone"}
        documents: dict[tuple[uuid.UUID, int], dict[str, Any] | None] = {}
        if wanted:
            versions = select(ContentVersion.item_id, ContentVersion.version, ContentVersion.document).where(
                tuple_(ContentVersion.item_id, ContentVersion.version).in_(list(wanted))
            )
            documents = {(item_id, version): document for item_id, version, document in session.execute(versions)}
        return cls(items, documents)


def _item_for(
    session: Session, ctx: SyncContext, row: OutboxRow, sources: _Sources
) -> tuple[manifest.ManifestItem | None, list[dict[str, str]]]:
    """The manifest item for an outbox row, or the reasons it may not leave (any more)."""
    item = sources.items.get(row.item_id)
    if item is None or item[0] != ctx.region:
        return None, [{"code": "outbox.not_origin", "message": "only the origin sends an item"}]
    if row.op == "tombstone":
        return manifest.tombstone_item(str(row.item_id), row.version, item[1]), []
    document = sources.documents.get((row.item_id, row.version))
    if document is None:
        return None, [{"code": "outbox.version_missing", "message": f"version {row.version} has no document"}]
    verdict = preview(from_builtins(document), origin=ctx.region, targets=[row.target])[row.target]
    reasons = [{"code": r.code, "message": r.message} for r in verdict.reasons]
    sources.verdicts.append(
        {
            "item_id": row.item_id,
            "version": row.version,
            "origin": ctx.region,
            "target": row.target,
            "stage": "send",
            "accepted": verdict.accepted,
            "reasons": reasons,
            "created_at": datetime.datetime.now(datetime.UTC),
        }
    )
    sources.logged.append({"item_id": str(row.item_id), "version": row.version, "accepted": verdict.accepted, "codes": verdict.codes()})
    if not verdict.accepted or verdict.document is None:
        return None, reasons
    return manifest.upsert_item(str(row.item_id), row.version, verdict.document), reasons


def _verdicts_leaf(target: str, sequence: int | None, digest: str | None, sources: _Sources) -> dict[str, Any]:
    """The send-stage verdicts of one build as one leaf; `sequence` and `manifest_hash` are null when every row was refused."""
    return {"stage": "send", "target": target, "sequence": sequence, "manifest_hash": digest, "verdicts": sources.logged}


def build_manifests(ctx: SyncContext, target: str, *, now: datetime.datetime | None = None, limit: int | None = None) -> int:
    """Sign manifests for the pending outbox rows of `target` (at most `limit`); returns how many were built."""
    built = 0
    while limit is None or built < limit:
        with Session(ctx.engine) as session, session.begin():
            channel = _channel(session, target)
            rows = list(
                session.scalars(
                    select(OutboxRow)
                    .where(OutboxRow.target == target, OutboxRow.manifest_sequence.is_(None), OutboxRow.status == "pending")
                    .order_by(OutboxRow.id)
                    .limit(MAX_ITEMS_PER_MANIFEST)
                    .with_for_update(skip_locked=True)
                )
            )
            if not rows:
                return built
            items: list[manifest.ManifestItem] = []
            carried: list[OutboxRow] = []
            sources = _Sources.load(session, rows)
            for row in rows:
                item, reasons = _item_for(session, ctx, row, sources)
                if item is None:
                    row.status, row.reasons = "rejected", reasons
                    continue
                items.append(item)
                carried.append(row)
            if sources.verdicts:
                session.execute(insert(table_of(Verdict)), sources.verdicts)
            if not items:
                if sources.logged:  # every row refused: no manifest, but the verdicts are logged all the same
                    audit.append(session, AuditKind.POLICY_VERDICT, _verdicts_leaf(target, None, None, sources))
                continue
            envelope, body, digest = manifest.build(
                origin=ctx.region, target=target, sequence=channel.next_sequence, previous=channel.last_hash,
                items=items, keys=[ctx.key], now=now,
            )  # fmt: skip
            data = envelope.encode()
            session.add(
                ManifestOut(
                    target=target,
                    sequence=body.sequence,
                    manifest_hash=digest,
                    envelope=data,
                    items=len(items),
                    bytes=len(data),
                    status="built",
                )
            )
            session.execute(
                update(OutboxRow)
                .where(OutboxRow.id.in_([row.id for row in carried]))
                .values(manifest_sequence=body.sequence, status="sent")
                .execution_options(synchronize_session=False)
            )
            channel.next_sequence = body.sequence + 1
            channel.last_hash = digest
            refused = sum(1 for v in sources.verdicts if not v["accepted"])
            sent = {
                "target": target, "sequence": body.sequence, "manifest_hash": digest, "items": len(items), "bytes": len(data),
                "categories": sorted({i.category for i in items}), "refused_at_send": refused,
            }  # fmt: skip
            # One append (one turn of the log's lock) for the manifest: its items' verdicts in one leaf, then the manifest.
            events: list[tuple[AuditKind, dict[str, Any]]] = [(AuditKind.MANIFEST_SENT, sent)]
            if sources.logged:
                events.insert(0, (AuditKind.POLICY_VERDICT, _verdicts_leaf(target, body.sequence, digest, sources)))
            audit.append_many(session, events)
            built += 1
            _log.info("manifest.built", target=target, sequence=body.sequence, items=len(items), bytes=len(data))
    return built


def send_manifests(ctx: SyncContext, target: str, http: httpx.Client) -> SendResult:
    """Post every manifest the target has not taken, in order. Raises DeliveryError to be retried."""
    url = f"{_guarded(ctx, target, lambda: ctx.url_of(target))}/federation/v1/inbox"  # an insecure URL shows in last_error
    sent = 0
    resent_from: int | None = None
    resigned = False
    _guarded(ctx, target, lambda: reset.send_pending(ctx, target, http))  # a reset goes before any manifest
    while True:
        with Session(ctx.engine) as session:
            pending = session.scalar(
                select(ManifestOut)
                .where(ManifestOut.target == target, ManifestOut.status == "built")
                .order_by(ManifestOut.sequence)
                .limit(1)
            )
            if pending is None:
                return SendResult(sent, resent_from)
            sequence, envelope = pending.sequence, pending.envelope
        if reset.expiring(envelope, datetime.datetime.now(datetime.UTC)):
            # The target was away for most of a manifest's lifetime: sign what it lacks again, once per call.
            if resigned:
                raise DeliveryError(f"manifest {sequence} to {target} expires as soon as it is signed", code="delivery.expired")
            _guarded(ctx, target, lambda: reset.resign_unsent(ctx, target, http))
            resigned = True
            continue
        token = mint_token(ctx.region, target, ctx.key)
        try:
            response = http.post(url, content=envelope, headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            _record_error(ctx, target, f"{type(exc).__name__} posting to {target}")
            raise DeliveryError(f"{target} unreachable: {type(exc).__name__}", code="delivery.unreachable") from exc
        if response.status_code in (200, 202):
            _mark(ctx, target, sequence, "delivered")
            sent += 1
            continue
        code = problem_code(response)
        if response.status_code == 409 and code == "sequence.gap":
            expected = int(response.json().get("expected", 0))
            if resent_from is not None and expected <= resent_from:
                raise DeliveryError(f"{target} keeps asking for sequence {expected}", code="delivery.gap_loop")
            resent_from = _rewind(ctx, target, expected, sequence)
            continue
        _record_error(ctx, target, f"{target} refused manifest {sequence}: {code}")
        raise DeliveryError(f"{target} refused manifest {sequence}: {code}", code="delivery.refused")


_T = TypeVar("_T")


def _guarded(ctx: SyncContext, target: str, step: Callable[[], _T]) -> _T:
    """Run a step that talks to the target; its failure is the channel's last error and a DeliveryError."""
    try:
        return step()
    except SyncError as exc:
        _record_error(ctx, target, f"{exc.code}: {exc.message}")
        raise DeliveryError(exc.message, code=exc.code) from exc


def _mark(ctx: SyncContext, target: str, sequence: int, status: str) -> None:
    with Session(ctx.engine) as session, session.begin():
        session.execute(
            update(ManifestOut)
            .where(ManifestOut.target == target, ManifestOut.sequence == sequence, ManifestOut.status == "built")
            .values(status=status)
        )
        session.execute(
            update(OutboxRow)
            .where(OutboxRow.target == target, OutboxRow.manifest_sequence == sequence, OutboxRow.status == "sent")
            .values(status=status)
        )
        # Only when there is an error to clear: the row is locked by the build of the next manifest meanwhile
        # (a sender thread posts while the task builds), and a row the condition skips is not waited for.
        session.execute(update(ChannelOut).where(ChannelOut.target == target, ChannelOut.last_error.is_not(None)).values(last_error=None))


def _rewind(ctx: SyncContext, target: str, expected: int, offered: int) -> int:
    """The target expects an earlier sequence than we offered: send everything from there again."""
    with Session(ctx.engine) as session, session.begin():
        highest = session.scalar(select(ChannelOut.next_sequence).where(ChannelOut.target == target)) or 1
        if expected < 1 or expected >= highest:
            raise DeliveryError(
                f"{target} expects sequence {expected}, but this node has sent only up to {highest - 1}", code="delivery.target_ahead"
            )
        if expected >= offered:
            raise DeliveryError(f"{target} expects sequence {expected} after refusing {offered}", code="delivery.gap_loop")
        session.execute(
            update(ManifestOut)
            .where(ManifestOut.target == target, ManifestOut.sequence >= expected, ManifestOut.status != "built")
            .values(status="built", receipt=None, answered_at=None)
        )
    _log.warning("manifest.resend", target=target, from_sequence=expected)
    return expected


def _record_error(ctx: SyncContext, target: str, message: str) -> None:
    with Session(ctx.engine) as session, session.begin():
        _channel(session, target).last_error = message[:500]


def record_receipt(ctx: SyncContext, target: str, receipt: Receipt) -> None:
    """Apply a verified receipt to the outbox: applied rows are done; refused items are rejected with their
    reasons; the other items of a rejected manifest go back to pending, to travel in the next manifest."""
    with Session(ctx.engine) as session, session.begin():
        sent = session.scalar(
            select(ManifestOut).where(ManifestOut.target == target, ManifestOut.sequence == receipt.sequence).with_for_update()
        )
        if sent is None or sent.manifest_hash != receipt.manifest_hash:
            raise SyncError(f"receipt for {target} #{receipt.sequence} matches no manifest this node sent", code="receipt.unknown_manifest")
        if sent.status in ("applied", "rejected", "abandoned"):
            return
        sent.status = receipt.status
        sent.receipt = msgspec.to_builtins(receipt)
        sent.answered_at = datetime.datetime.now(datetime.UTC)
        of_manifest = (OutboxRow.target == target, OutboxRow.manifest_sequence == receipt.sequence)
        if receipt.status == "applied":
            # The common case, in one statement: every row of the manifest is done.
            session.execute(update(OutboxRow).where(*of_manifest).values(status="applied").execution_options(synchronize_session=False))
        else:
            refused = {(r.id, r.version): r.reasons for r in receipt.items if r.status == "refused"}
            for row in session.scalars(select(OutboxRow).where(*of_manifest)):
                reasons = refused.get((str(row.item_id), row.version))
                if reasons is not None:
                    row.status, row.reasons = "rejected", [msgspec.to_builtins(r) for r in reasons]
                else:
                    row.status, row.manifest_sequence = "pending", None
        channel = _channel(session, target)
        channel.acked_sequence = max(channel.acked_sequence, receipt.sequence)
    _log.info("receipt.recorded", target=target, sequence=receipt.sequence, status=receipt.status)


def pending_targets(ctx: SyncContext) -> list[str]:
    """Targets with outbox rows to build or manifests to send (what the beat sweep wakes up)."""
    with Session(ctx.engine) as session:
        waiting = set(session.scalars(select(OutboxRow.target).where(OutboxRow.status == "pending").distinct()))
        waiting |= set(session.scalars(select(ManifestOut.target).where(ManifestOut.status == "built").distinct()))
    return sorted(waiting)
