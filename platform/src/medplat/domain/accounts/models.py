"""A doctor's account on their home node."""

from __future__ import annotations

import datetime
import uuid

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from medplat.db.base import Entity
from medplat.fields import encrypted
from medplat.residency import DataCategory, Residency


class Doctor(Entity):
    """A doctor registered on this node. Home region follows citizenship; phone and e-mail are encrypted."""

    __tablename__ = "doctor"
    __table_args__ = {"schema": "personal"}
    __residency__ = Residency.PERSONAL
    __data_category__ = DataCategory.IDENTITY

    home_region: Mapped[str] = mapped_column(String(2))
    citizenship: Mapped[str] = mapped_column(String(2))
    full_name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(encrypted(32))
    phone_lookup: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(encrypted(254))
    email_lookup: Mapped[str] = mapped_column(String(64), unique=True)
    specializations: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list)
    verification_status: Mapped[str] = mapped_column(String(16), default="unverified")


class ContentAuthor(Entity):
    """The author shown as an item's byline, with their consent to cross-border transfer of it."""

    __tablename__ = "content_author"
    __table_args__ = {"schema": "personal"}
    __residency__ = Residency.PERSONAL
    __data_category__ = DataCategory.CONSENT

    item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("shared.content_item.id", ondelete="CASCADE"), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    cross_border_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_recorded_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
