"""The sync protocol's state on a node: outbox, channels, manifests sent and received, verdicts.

All NODE_LOCAL, in the `federation` schema: this is the node's own bookkeeping of what crossed (or tried
to cross) its border, and the source of truth for delivery (the broker only carries wake-ups).
"""

from __future__ import annotations

import datetime
import uuid
from typing import cast

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Boolean, Index, Integer, LargeBinary, String, Table, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from medplat.db.base import Base
from medplat.residency import DataCategory, Residency


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class OutboxRow(Base):
    """One item version to deliver to one target, written in the same transaction as the version."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_pending", "target", "id", postgresql_where=text("manifest_sequence IS NULL")),
        {"schema": "federation"},
    )
    __residency__ = Residency.NODE_LOCAL
    __data_category__ = DataCategory.FEDERATION

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(2))
    item_id: Mapped[uuid.UUID] = mapped_column(index=True)
    version: Mapped[int] = mapped_column(Integer)
    op: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    """pending (not yet in a manifest), sent (in a signed manifest), delivered (the target took it into its inbox),
    applied, rejected."""
    manifest_sequence: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reasons: Mapped[list[dict[str, str]]] = mapped_column(JSONB, default=list)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True), default=_now)
    updated_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True), default=_now, onupdate=_now)


class ChannelOut(Base):
    """The origin's end of one channel (this node > target): the next sequence and the last manifest hash."""

    __tablename__ = "channel_out"
    __table_args__ = {"schema": "federation"}
    __residency__ = Residency.NODE_LOCAL
    __data_category__ = DataCategory.FEDERATION

    target: Mapped[str] = mapped_column(String(2), primary_key=True)
    next_sequence: Mapped[int] = mapped_column(BigInteger, default=1)
    last_hash: Mapped[str] = mapped_column(String(64), default="")
    acked_sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    """The highest sequence the target has answered with a receipt (applied or rejected)."""
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    reset_envelope: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    """A signed reset statement the target has not confirmed yet: posted before any manifest (medsync.reset)."""
    updated_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True), default=_now, onupdate=_now)


class ManifestOut(Base):
    """A signed manifest this node built for a target, kept so it can be resent byte for byte."""

    __tablename__ = "manifest_out"
    __table_args__ = (UniqueConstraint("target", "sequence"), {"schema": "federation"})
    __residency__ = Residency.NODE_LOCAL
    __data_category__ = DataCategory.FEDERATION

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(2))
    sequence: Mapped[int] = mapped_column(BigInteger)
    manifest_hash: Mapped[str] = mapped_column(String(64))
    envelope: Mapped[bytes] = mapped_column(LargeBinary)
    items: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="built")
    """built, delivered (the target took it into its inbox), applied, rejected; abandoned (by a channel reset,
    its items went back to the outbox)."""
    receipt: Mapped[dict[str, object] | None] = mapped_column(JSONB, nullable=True)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True), default=_now)
    answered_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)


class ChannelIn(Base):
    """The target's end of one channel (origin > this node)."""

    __tablename__ = "channel_in"
    __table_args__ = {"schema": "federation"}
    __residency__ = Residency.NODE_LOCAL
    __data_category__ = DataCategory.FEDERATION

    origin: Mapped[str] = mapped_column(String(2), primary_key=True)
    received_sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    """The highest sequence taken into the inbox (in order, hash-chained)."""
    received_hash: Mapped[str] = mapped_column(String(64), default="")
    applied_sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    """The highest sequence decided (applied or rejected) by the apply worker."""
    reset_allowed_until: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    """Set by this node's ops (`medfed sync reset allow`): until then the origin may re-base the channel."""
    reset_revert_from: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    """With the permit: items applied from this sequence on are removed when the reset lands."""
    updated_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True), default=_now, onupdate=_now)


class ManifestIn(Base):
    """Every manifest that reached this node's inbox, accepted or refused, with the verdict and reasons."""

    __tablename__ = "manifest_in"
    __table_args__ = (
        Index("uq_manifest_in_chain", "origin", "sequence", unique=True, postgresql_where=text("in_chain")),
        {"schema": "federation"},
    )
    __residency__ = Residency.NODE_LOCAL
    __data_category__ = DataCategory.FEDERATION

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    origin: Mapped[str] = mapped_column(String(2))
    sequence: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    manifest_hash: Mapped[str] = mapped_column(String(64))
    in_chain: Mapped[bool] = mapped_column(Boolean, default=False)
    """True when this manifest took its place in the channel (authentic, in order)."""
    envelope: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    """refused (at the door), received (waiting to apply), applied, rejected (authentic but refused); abandoned
    (received, then dropped by a channel reset), reverted (applied, then undone by a channel reset); reset (the
    row of an accepted reset statement, kept as evidence)."""
    reasons: Mapped[list[dict[str, str]]] = mapped_column(JSONB, default=list)
    items: Mapped[int] = mapped_column(Integer, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    receipt: Mapped[dict[str, object] | None] = mapped_column(JSONB, nullable=True)
    received_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True), default=_now)
    decided_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)


class Verdict(Base):
    """A policy verdict on one item version for one channel, on either side, with its reasons."""

    __tablename__ = "verdict"
    __table_args__ = {"schema": "federation"}
    __residency__ = Residency.NODE_LOCAL
    __data_category__ = DataCategory.FEDERATION

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    item_id: Mapped[uuid.UUID] = mapped_column(index=True)
    version: Mapped[int] = mapped_column(Integer)
    origin: Mapped[str] = mapped_column(String(2))
    target: Mapped[str] = mapped_column(String(2))
    stage: Mapped[str] = mapped_column(String(16))
    """preview and publish (evaluated on the origin), apply (on the target, authoritative)."""
    accepted: Mapped[bool] = mapped_column(Boolean)
    reasons: Mapped[list[dict[str, str]]] = mapped_column(JSONB, default=list)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True), default=_now)


def table_of(model: type[Base]) -> Table:
    """A mapped class's table, for Core statements where the ORM's per-row work is not wanted: a manifest
    writes a hundred verdicts and versions at once, and the ORM's bulk insert handles each row in Python."""
    return cast(Table, model.__table__)
