"""A doctor's registration for an event and whether they attended: PERSONAL (it says where a person was)."""

from __future__ import annotations

import datetime
import uuid

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from medplat.db.base import Entity
from medplat.domain.accounts.models import UNTIL_ERASURE
from medplat.residency import DataCategory, LegalBasis, Residency


class EventRegistration(Entity):
    """One doctor on one event (a shared item of kind "event"); a personal row may point at a shared one."""

    __tablename__ = "event_registration"
    __table_args__ = (UniqueConstraint("doctor_id", "item_id"), {"schema": "personal"})
    __residency__ = Residency.PERSONAL
    __legal_basis__ = LegalBasis.CONTRACT
    __retention__ = UNTIL_ERASURE
    __data_category__ = DataCategory.PROFESSIONAL

    doctor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("personal.doctor.id", ondelete="CASCADE"))
    item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("shared.content_item.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="registered")
    """registered or cancelled."""
    registered_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    cancelled_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    attended_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    marked_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    """The moderator's token subject who marked the attendance."""
