"""Clinical cases and their photos: PERSONAL, health data. They live in schema `personal` (the sync role has
no privilege on it) and no field of `medsync.items.SharedDocument` can carry them."""

from __future__ import annotations

import datetime
import uuid

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from medplat.db.base import Entity
from medplat.domain.accounts.models import UNTIL_ERASURE
from medplat.residency import DataCategory, LegalBasis, Residency


class ClinicalCase(Entity):
    """An anonymised case a doctor submitted; visible to the node's verified doctors once a moderator approves it."""

    __tablename__ = "clinical_case"
    __table_args__ = (Index("ix_personal_clinical_case_status_created", "status", "created_at"), {"schema": "personal"})
    __residency__ = Residency.PERSONAL
    __legal_basis__ = LegalBasis.CONSENT
    __retention__ = UNTIL_ERASURE
    __data_category__ = DataCategory.HEALTH

    doctor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("personal.doctor.id", ondelete="CASCADE"), index=True)
    sex: Mapped[str] = mapped_column(String(8))
    """female or male."""
    age_band: Mapped[str] = mapped_column(String(8))
    """A ten-year band (18-29 … 80+), never an age or a date of birth."""
    condition: Mapped[str] = mapped_column(String(200))
    recommendations: Mapped[str] = mapped_column(Text)
    product: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    """pending, approved or rejected."""
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    reviewed_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)


class CasePhoto(Entity):
    """A before or after photo of a case, in the node's personal bucket as `cases/<doctor id>_<case id>_<stage>-<sha256>`."""

    __tablename__ = "case_photo"
    __table_args__ = (UniqueConstraint("case_id", "stage"), {"schema": "personal"})
    __residency__ = Residency.PERSONAL
    __legal_basis__ = LegalBasis.CONSENT
    __retention__ = UNTIL_ERASURE
    __data_category__ = DataCategory.HEALTH

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("personal.clinical_case.id", ondelete="CASCADE"))
    doctor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("personal.doctor.id", ondelete="CASCADE"), index=True)
    stage: Mapped[str] = mapped_column(String(8))
    """before or after."""
    key: Mapped[str] = mapped_column(String(300))
    media_type: Mapped[str] = mapped_column(String(100))
    length: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
