"""Shared content: items, their published versions and their media.

These tables are SHARED: their rows are what travels (as allow-listed documents) to other nodes, and a
node holds here both the content it originates and the content it received. They never point at a
person; the author of an item is kept in `personal.content_author` on the origin node.
"""

from __future__ import annotations

import datetime
import uuid

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from medplat.db.base import Base, Entity
from medplat.residency import DataCategory, Residency


class ContentItem(Entity):
    """One piece of shared content. On its origin it carries the editable draft; everywhere it carries the
    state of the newest applied version (or its tombstone)."""

    __tablename__ = "content_item"
    __table_args__ = (
        # The doctors' feed (medplat.domain.feed): published items newest first, read from the index alone.
        Index(
            "ix_shared_content_item_feed",
            "updated_at",
            "id",
            postgresql_include=["version", "kind", "category", "title", "languages", "specializations"],
            postgresql_where=text("status = 'published'"),
        ),
        {"schema": "shared"},
    )
    __residency__ = Residency.SHARED
    __data_category__ = DataCategory.CONTENT

    origin_region: Mapped[str] = mapped_column(String(2))
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(300))
    category: Mapped[str] = mapped_column(String(64))
    specializations: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list)
    languages: Mapped[list[str]] = mapped_column(ARRAY(String(2)), default=list)
    origin_only: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    """draft (origin only, never published), published, or retracted (a tombstone that is kept)."""
    version: Mapped[int] = mapped_column(Integer, default=0)
    """The newest published (or, for a tombstone, retracted) version; 0 while a draft."""
    draft: Mapped[dict[str, object] | None] = mapped_column(JSONB, nullable=True)
    """The editor's working copy on the origin (a SharedDocument without byline); null on other nodes."""
    targets: Mapped[list[str]] = mapped_column(ARRAY(String(2)), default=list)
    """On the origin: the regions the editor chose."""


class ContentVersion(Base):
    """A published version exactly as it was (or may be) sent: the allow-listed document and its hash."""

    __tablename__ = "content_version"
    __table_args__ = (UniqueConstraint("item_id", "version", "op"), {"schema": "shared"})
    __residency__ = Residency.SHARED
    __data_category__ = DataCategory.CONTENT

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("shared.content_item.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    op: Mapped[str] = mapped_column(String(16))
    """upsert or tombstone."""
    document: Mapped[dict[str, object] | None] = mapped_column(JSONB, nullable=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))


class ContentMedia(Entity):
    """A file in the node's shared bucket that belongs to an item (content-addressed by its sha256)."""

    __tablename__ = "content_media"
    __table_args__ = (UniqueConstraint("item_id", "sha256"), {"schema": "shared"})
    __residency__ = Residency.SHARED
    __data_category__ = DataCategory.MEDIA

    item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("shared.content_item.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str] = mapped_column(String(64))
    length: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(100))
