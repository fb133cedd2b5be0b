"""What the periodic compliance tasks leave behind: one row per run, with counts only (no person, no row id)."""

from __future__ import annotations

import datetime
from typing import Any

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Boolean, Float, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from medplat.db.base import Base
from medplat.residency import DataCategory, Residency


class ComplianceRun(Base):
    """One run of the residency scanner or of the deadline reminders, for /health-style monitoring and the report."""

    __tablename__ = "compliance_run"
    __table_args__ = {"schema": "node"}
    __residency__ = Residency.NODE_LOCAL
    __data_category__ = DataCategory.OPERATIONAL

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    """scan or reminders."""
    started_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    seconds: Mapped[float] = mapped_column(Float)
    ok: Mapped[bool] = mapped_column(Boolean)
    counts: Mapped[dict[str, Any]] = mapped_column(JSONB)
