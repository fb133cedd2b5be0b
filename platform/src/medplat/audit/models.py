"""The node's tamper-evident audit log in PostgreSQL: leaves, stored subtree hashes, signed checkpoints, cosignatures.

All NODE_LOCAL in schema `audit`, and append-only: a trigger refuses UPDATE and DELETE for every role, and
the sync role is granted only SELECT and INSERT. What a database superuser could still change by hand, the
Merkle tree and the signed checkpoints make visible (`medfed audit verify`).
"""

from __future__ import annotations

import datetime

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, ForeignKey, LargeBinary, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from medplat.db.base import Base
from medplat.residency import DataCategory, Residency


class AuditLeaf(Base):
    """One event: `entry` is the canonical JSON that is hashed (kind, time, payload); no personal data in it."""

    __tablename__ = "leaf"
    __table_args__ = {"schema": "audit"}
    __residency__ = Residency.NODE_LOCAL
    __data_category__ = DataCategory.AUDIT

    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    """The leaf's position in the tree: 0, 1, 2, ... without gaps."""
    kind: Mapped[str] = mapped_column(String(32), index=True)
    logged_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary)


class AuditNode(Base):
    """The hash of a complete subtree of 2**level leaves (level >= 1), written when its last leaf is appended."""

    __tablename__ = "tree_node"
    __table_args__ = {"schema": "audit"}
    __residency__ = Residency.NODE_LOCAL
    __data_category__ = DataCategory.AUDIT

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary)


class AuditCheckpoint(Base):
    """A signed tree head of this node's log; `note` is the signed note as signed, the other columns index it."""

    __tablename__ = "checkpoint"
    __table_args__ = {"schema": "audit"}
    __residency__ = Residency.NODE_LOCAL
    __data_category__ = DataCategory.AUDIT

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary)
    signed_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    note: Mapped[str] = mapped_column(Text)


class AuditCosignature(Base):
    """Another node's cosignature of one of this node's checkpoints (one signature line of the note)."""

    __tablename__ = "cosignature"
    __table_args__ = {"schema": "audit"}
    __residency__ = Residency.NODE_LOCAL
    __data_category__ = DataCategory.AUDIT

    size: Mapped[int] = mapped_column(BigInteger, ForeignKey("audit.checkpoint.size"), primary_key=True)
    cosigner: Mapped[str] = mapped_column(String(2), primary_key=True)
    signature: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))


class PeerCheckpoint(Base):
    """A checkpoint of another node's log that this node verified (consistent with the last one) and cosigned."""

    __tablename__ = "peer_checkpoint"
    __table_args__ = {"schema": "audit"}
    __residency__ = Residency.NODE_LOCAL
    __data_category__ = DataCategory.AUDIT

    origin: Mapped[str] = mapped_column(String(2), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary)
    note: Mapped[str] = mapped_column(Text)
    """The peer's checkpoint with its own signature, as received."""
    cosignature: Mapped[str] = mapped_column(Text)
    """Our signature line on it."""
    cosigned_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
