"""Channel repair that needs both ends: re-signing manifests that expired unsent, and re-basing a channel.

Re-signing. A manifest is valid for seven days (`manifest.LIFETIME`). When the oldest manifest a target
has not taken is about to expire (the target was down), the origin first asks the target where the
channel stands (`GET /federation/v1/channel`): what the target already took is marked delivered (its
response had been lost), provided the target's hash of its last manifest is ours; everything after it is
signed again with a fresh validity window, same sequences, same items, chained from there.

Re-basing (a reset). After an equivocation (the origin lost its state and restarted the channel with other
content), or after a stolen key got manifests into the channel, the two ends no longer agree and no
manifest can pass. Ops of both countries then act:

1. on the target, `medfed sync reset allow --origin X [--revert-from N]` records a permit (24 hours) and,
   for a compromise, the first sequence whose applied items must be undone;
2. on the origin, `medfed sync reset --target Y` asks the target where the channel stands, picks the
   next sequence above anything either end has used, signs a reset statement naming it and keeps it
   until the target confirms; it abandons the manifests the target has not applied and puts their items
   back into the outbox;
3. the origin posts the statement before any manifest (`POST /federation/v1/reset`); the target, holding
   a permit, drops the manifests it had received but not applied, removes every item touched by an
   applied manifest from the revert sequence on, and continues the chain from the statement's hash.

Sequences only grow, so no manifest of before the reset can ever enter the channel again; anti-entropy
then sends again whatever the target lacks (including the items a revert removed).
"""

from __future__ import annotations

import datetime
import json
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

import httpx
import msgspec
import structlog
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from medplat.audit import log as audit
from medplat.audit.log import AuditKind
from medplat.domain.content.models import ContentItem, ContentMedia
from medsync import manifest
from medsync.canonical import canonical_bytes, parse_canonical, sha256_hex
from medsync.context import SyncContext
from medsync.envelope import Envelope, sign, verify
from medsync.errors import SyncError
from medsync.inbound import discard
from medsync.items import RegionCode
from medsync.models import ChannelIn, ChannelOut, ManifestIn, ManifestOut, OutboxRow
from medsync.transport import mint_token, problem_code

_log = structlog.stdlib.get_logger("medsync.reset")

SPEC: Final = "medfed-reset/1"
PAYLOAD_TYPE = "application/vnd.medfed.reset+json"
MAX_RESET_BYTES = 8 * 1024
PERMIT_LIFETIME = datetime.timedelta(hours=24)
STATEMENT_LIFETIME = datetime.timedelta(days=7)
RESIGN_MARGIN = datetime.timedelta(hours=1)
"""A manifest with less validity than this left is signed again before it is sent."""

Reason = Literal["equivocation", "compromise", "restore"]


class ResetError(SyncError):
    code = "reset.refused"


class ResetStatement(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """What the origin signs: the channel continues at `next_sequence`, chained from this statement's hash."""

    spec: Literal["medfed-reset/1"]
    origin: RegionCode
    target: RegionCode
    channel: Annotated[str, msgspec.Meta(pattern=r"^[a-z]{2}>[a-z]{2}$")]
    next_sequence: Annotated[int, msgspec.Meta(ge=1, le=2**53 - 1)]
    reason: Reason
    issued_at: manifest.Timestamp
    expires_at: manifest.Timestamp


@dataclass(frozen=True)
class PeerChannel:
    """The target's end of a channel as it reports it."""

    received_sequence: int
    received_hash: str
    applied_sequence: int
    reset_allowed: bool


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


# -- the target's side ------------------------------------------------------------------------------------


def channel_view(ctx: SyncContext, origin: str, *, now: datetime.datetime | None = None) -> dict[str, Any]:
    """This node's end of the channel from `origin`, for the origin (GET /federation/v1/channel)."""
    with Session(ctx.engine) as session:
        channel = session.get(ChannelIn, origin)
        if channel is None:
            return {"origin": origin, "received_sequence": 0, "received_hash": "", "applied_sequence": 0, "reset_allowed": False}
        return {
            "origin": origin,
            "received_sequence": channel.received_sequence,
            "received_hash": channel.received_hash,
            "applied_sequence": channel.applied_sequence,
            "reset_allowed": channel.reset_allowed_until is not None and channel.reset_allowed_until > (now or _now()),
        }


def allow(ctx: SyncContext, origin: str, *, revert_from: int | None = None, now: datetime.datetime | None = None) -> datetime.datetime:
    """Ops' permit for `origin` to re-base its channel to this node; returns when the permit ends."""
    if origin == ctx.region or origin not in ctx.trust(now).nodes:
        raise ResetError(f"{origin!r} is not another node of the federation", code="reset.unknown_origin")
    if revert_from is not None and revert_from < 1:
        raise ResetError("--revert-from must be a sequence, 1 or more", code="reset.invalid")
    until = (now or _now()) + PERMIT_LIFETIME
    with Session(ctx.engine) as session, session.begin():
        channel = session.get(ChannelIn, origin, with_for_update=True)
        if channel is None:
            channel = ChannelIn(origin=origin, received_sequence=0, received_hash="", applied_sequence=0)
            session.add(channel)
        channel.reset_allowed_until, channel.reset_revert_from = until, revert_from
        audit.append(session, AuditKind.CHANNEL_RESET, {"origin": origin, "target": ctx.region, "permit": True, "revert_from": revert_from})
    _log.warning("reset.allowed", origin=origin, revert_from=revert_from)
    return until


def _statement(data: bytes, ctx: SyncContext, origin: str, now: datetime.datetime) -> tuple[ResetStatement, str]:
    envelope = Envelope.decode(data, max_bytes=MAX_RESET_BYTES)
    payload = verify(envelope, payload_type=PAYLOAD_TYPE, trusted=ctx.keys_of(origin, now))
    try:
        statement = msgspec.convert(parse_canonical(payload, max_bytes=MAX_RESET_BYTES), type=ResetStatement, strict=True)
    except msgspec.ValidationError as exc:
        raise ResetError(f"reset statement does not match the schema: {exc}", code="reset.malformed") from None
    return statement, sha256_hex(payload)


def accept(ctx: SyncContext, origin: str, data: bytes, *, now: datetime.datetime | None = None) -> dict[str, Any]:
    """Take a reset statement from `origin` (already authenticated by its token); raises ResetError."""
    now = now or _now()
    statement, digest = _statement(data, ctx, origin, now)
    if statement.origin != origin:
        raise ResetError(f"statement says origin {statement.origin} but was sent by {origin}", code="reset.origin_mismatch")
    if statement.target != ctx.region or statement.channel != f"{origin}>{ctx.region}":
        raise ResetError(f"statement is addressed to {statement.target}, not {ctx.region}", code="reset.wrong_target")
    if manifest.parse_timestamp(statement.expires_at) <= now:
        raise ResetError(f"statement expired at {statement.expires_at}", code="reset.expired")
    if manifest.parse_timestamp(statement.issued_at) > now + manifest.CLOCK_SKEW:
        raise ResetError(f"statement issued in the future ({statement.issued_at})", code="reset.expired")
    removed_keys: list[str] = []
    with Session(ctx.engine) as session, session.begin():
        channel = session.get(ChannelIn, origin, with_for_update=True)
        base = statement.next_sequence - 1
        if channel is not None and channel.received_hash == digest and channel.received_sequence == base:
            return {"status": "duplicate", "next_sequence": statement.next_sequence}
        if channel is None or channel.reset_allowed_until is None or channel.reset_allowed_until <= now:
            raise ResetError(f"{ctx.region}'s operators have not allowed a reset of this channel", code="reset.not_permitted")
        if base < channel.received_sequence:
            raise ResetError(
                f"a reset must continue past sequence {channel.received_sequence}, not at {statement.next_sequence}",
                code="reset.behind",
            )
        abandoned = len(
            session.scalars(
                update(ManifestIn)
                .where(ManifestIn.origin == origin, ManifestIn.in_chain, ManifestIn.status == "received")
                .values(status="abandoned", reasons=[{"code": "reset.abandoned", "message": "dropped by a channel reset"}], decided_at=now)
                .returning(ManifestIn.id)
            ).all()
        )
        reverted, removed_keys = (
            _revert(session, origin, channel.reset_revert_from, now) if channel.reset_revert_from is not None else (0, [])
        )
        session.add(
            ManifestIn(
                origin=origin, sequence=None, manifest_hash=digest, in_chain=False, envelope=data, status="reset",
                reasons=[{"code": f"reset.{statement.reason}", "message": f"channel continues at {statement.next_sequence}"}],
                bytes=len(data), decided_at=now,
            )
        )  # fmt: skip
        audit.append(
            session, AuditKind.CHANNEL_RESET,
            {"origin": origin, "target": ctx.region, "next_sequence": statement.next_sequence, "statement_hash": digest,
             "reason": statement.reason, "abandoned": abandoned, "reverted_items": reverted, "revert_from": channel.reset_revert_from},
        )  # fmt: skip
        channel.received_sequence = channel.applied_sequence = base
        channel.received_hash = digest
        channel.reset_allowed_until = channel.reset_revert_from = None
    discard(ctx, removed_keys)
    _log.warning("reset.accepted", origin=origin, next_sequence=statement.next_sequence, abandoned=abandoned, reverted=reverted)
    return {"status": "reset", "next_sequence": statement.next_sequence, "abandoned": abandoned, "reverted_items": reverted}


def _revert(session: Session, origin: str, first: int, now: datetime.datetime) -> tuple[int, list[str]]:
    """Remove every item an applied manifest of `origin` from sequence `first` on touched.

    The items go entirely (all their versions and media): the origin's anti-entropy sends again the state
    it really holds, and an item the origin never had stays gone.
    """
    rows = list(
        session.scalars(
            select(ManifestIn)
            .where(ManifestIn.origin == origin, ManifestIn.in_chain, ManifestIn.sequence >= first, ManifestIn.status == "applied")
            .with_for_update()
        )
    )
    touched: set[uuid.UUID] = set()
    for row in rows:
        assert row.envelope is not None
        # These bytes passed the signature check when they arrived; only the item ids are read again.
        payload = json.loads(Envelope.decode(row.envelope, max_bytes=manifest.MAX_MANIFEST_BYTES).payload_bytes())
        touched.update(uuid.UUID(item["id"]) for item in payload["items"])
        row.status = "reverted"
        row.reasons = [*row.reasons, {"code": "reset.reverted", "message": "its items were removed by a channel reset"}]
        row.decided_at = now
    if not touched:
        return 0, []
    keys = list(session.scalars(select(ContentMedia.key).where(ContentMedia.item_id.in_(touched))))
    removed = session.scalars(
        delete(ContentItem).where(ContentItem.id.in_(touched), ContentItem.origin_region == origin).returning(ContentItem.id)
    ).all()
    return len(removed), keys


# -- the origin's side ------------------------------------------------------------------------------------


def peer_channel(ctx: SyncContext, target: str, http: httpx.Client) -> PeerChannel:
    """Ask `target` where our channel to it stands."""
    token = mint_token(ctx.region, target, ctx.key)
    try:
        response = http.get(
            f"{ctx.url_of(target)}/federation/v1/channel", params={"origin": ctx.region}, headers={"Authorization": f"Bearer {token}"}
        )
    except httpx.HTTPError as exc:
        raise SyncError(f"{target} unreachable: {type(exc).__name__}", code="delivery.unreachable") from exc
    if response.status_code != 200:
        raise SyncError(f"{target} would not show the channel: {problem_code(response)}", code="delivery.refused")
    data = response.json()
    return PeerChannel(
        int(data["received_sequence"]), str(data["received_hash"]), int(data["applied_sequence"]), bool(data["reset_allowed"])
    )


def start(ctx: SyncContext, target: str, http: httpx.Client, *, reason: Reason, now: datetime.datetime | None = None) -> int:
    """Re-base the channel to `target`: sign a statement, abandon what the target has not applied, put its
    items back into the outbox. Returns the sequence the channel continues at. The statement is sent by
    `send_pending` (also at the start of every delivery) until the target confirms it."""
    now = now or _now()
    peer = peer_channel(ctx, target, http)
    if not peer.reset_allowed:
        # Asked first so that nothing changes here: the target would refuse the statement anyway.
        raise ResetError(f"{target}'s operators have not allowed a reset of this channel", code="reset.not_permitted")
    with Session(ctx.engine) as session, session.begin():
        channel = session.scalar(select(ChannelOut).where(ChannelOut.target == target).with_for_update())
        if channel is None:
            raise ResetError(f"this node has no channel to {target}", code="reset.no_channel")
        next_sequence = max(peer.received_sequence, channel.next_sequence - 1) + 1
        statement = ResetStatement(
            spec=SPEC, origin=ctx.region, target=target, channel=f"{ctx.region}>{target}", next_sequence=next_sequence,
            reason=reason, issued_at=manifest.timestamp(now), expires_at=manifest.timestamp(now + STATEMENT_LIFETIME),
        )  # fmt: skip
        payload = canonical_bytes(msgspec.to_builtins(statement))
        abandoned = list(
            session.scalars(
                update(ManifestOut)
                .where(ManifestOut.target == target, ManifestOut.status.in_(("built", "delivered")))
                .values(status="abandoned", answered_at=now)
                .returning(ManifestOut.sequence)
            )
        )
        if abandoned:
            session.execute(
                update(OutboxRow)
                .where(OutboxRow.target == target, OutboxRow.manifest_sequence.in_(abandoned), OutboxRow.status.in_(("sent", "delivered")))
                .values(status="pending", manifest_sequence=None)
            )
        channel.next_sequence = next_sequence
        channel.last_hash = sha256_hex(payload)
        channel.reset_envelope = sign(PAYLOAD_TYPE, payload, [ctx.key]).encode()
        audit.append(
            session, AuditKind.CHANNEL_RESET,
            {"origin": ctx.region, "target": target, "next_sequence": next_sequence, "statement_hash": channel.last_hash,
             "reason": reason, "abandoned": len(abandoned)},
        )  # fmt: skip
    _log.warning("reset.started", target=target, next_sequence=next_sequence, abandoned=len(abandoned), reason=reason)
    return next_sequence


def send_pending(ctx: SyncContext, target: str, http: httpx.Client) -> bool:
    """Post the channel's unconfirmed reset statement, if any; True when there was one and it landed."""
    with Session(ctx.engine) as session:
        envelope = session.scalar(select(ChannelOut.reset_envelope).where(ChannelOut.target == target))
    if envelope is None:
        return False
    token = mint_token(ctx.region, target, ctx.key)
    try:
        response = http.post(
            f"{ctx.url_of(target)}/federation/v1/reset",
            content=envelope,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
    except httpx.HTTPError as exc:
        raise SyncError(f"{target} unreachable: {type(exc).__name__}", code="delivery.unreachable") from exc
    if response.status_code != 200:
        code = problem_code(response)
        raise SyncError(f"{target} refused the channel reset: {code}", code="delivery.reset_refused")
    with Session(ctx.engine) as session, session.begin():
        session.execute(
            update(ChannelOut).where(ChannelOut.target == target, ChannelOut.reset_envelope == envelope).values(reset_envelope=None)
        )
    _log.warning("reset.confirmed", target=target)
    return True


class _Window(msgspec.Struct):
    """The one field of a manifest body `expiring` needs; the rest of the body is skipped, not built."""

    expires_at: str


def expiring(envelope: bytes, now: datetime.datetime) -> bool:
    """Has this manifest (one of ours, checked before every send) less than RESIGN_MARGIN of validity left?"""
    payload = msgspec.json.decode(envelope, type=Envelope).payload_bytes()
    return manifest.parse_timestamp(msgspec.json.decode(payload, type=_Window).expires_at) - now < RESIGN_MARGIN


def resign_unsent(ctx: SyncContext, target: str, http: httpx.Client, *, now: datetime.datetime | None = None) -> int:
    """Sign again every manifest the target has not taken; returns how many were re-signed."""
    now = now or _now()
    peer = peer_channel(ctx, target, http)
    with Session(ctx.engine) as session, session.begin():
        channel = session.scalar(select(ChannelOut).where(ChannelOut.target == target).with_for_update())
        assert channel is not None
        taken = session.scalar(select(ManifestOut).where(ManifestOut.target == target, ManifestOut.sequence == peer.received_sequence))
        if taken is not None and taken.manifest_hash != peer.received_hash:
            raise SyncError(
                f"{target} holds another manifest {peer.received_sequence} than this node sent: the channel needs a reset",
                code="delivery.diverged",
            )
        # What the target took while its answer was lost is delivered, not to be sent again.
        session.execute(
            update(ManifestOut)
            .where(ManifestOut.target == target, ManifestOut.status == "built", ManifestOut.sequence <= peer.received_sequence)
            .values(status="delivered")
        )
        session.execute(
            update(OutboxRow)
            .where(OutboxRow.target == target, OutboxRow.status == "sent", OutboxRow.manifest_sequence <= peer.received_sequence)
            .values(status="delivered")
        )
        unsent = list(
            session.scalars(
                select(ManifestOut)
                .where(ManifestOut.target == target, ManifestOut.status == "built", ManifestOut.sequence > peer.received_sequence)
                .order_by(ManifestOut.sequence)
            )
        )
        previous = peer.received_hash
        for expected, row in enumerate(unsent, start=peer.received_sequence + 1):
            if row.sequence != expected:
                raise SyncError(f"manifest {expected} to {target} is missing: the channel needs a reset", code="delivery.diverged")
            old = json.loads(Envelope.decode(row.envelope, max_bytes=manifest.MAX_MANIFEST_BYTES).payload_bytes())
            items = msgspec.convert(old["items"], type=tuple[manifest.ManifestItem, ...])
            envelope, _, digest = manifest.build(
                origin=ctx.region, target=target, sequence=row.sequence, previous=previous, items=items, keys=[ctx.key], now=now
            )
            row.envelope, row.manifest_hash = envelope.encode(), digest
            row.bytes = len(row.envelope)
            previous = digest
        if unsent and unsent[-1].sequence == channel.next_sequence - 1:
            channel.last_hash = previous
    _log.warning("manifest.resigned", target=target, count=len(unsent), from_sequence=peer.received_sequence + 1)
    return len(unsent)


__all__ = ["ResetError", "ResetStatement", "accept", "allow", "channel_view", "expiring", "resign_unsent", "send_pending", "start"]
