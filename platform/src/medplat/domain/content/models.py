"""Shared content items. SHARED rows may be replicated to other nodes, so they never point at a person."""

from __future__ import annotations

from sqlalchemy import Integer, String
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from medplat.db.base import Entity
from medplat.residency import DataCategory, Residency


class ContentItem(Entity):
    """One piece of shared content, as published by its origin node."""

    __tablename__ = "content_item"
    __table_args__ = {"schema": "shared"}
    __residency__ = Residency.SHARED
    __data_category__ = DataCategory.CONTENT

    origin_region: Mapped[str] = mapped_column(String(2))
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(300))
    category: Mapped[str] = mapped_column(String(64))
    specializations: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list)
    languages: Mapped[list[str]] = mapped_column(ARRAY(String(2)), default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
