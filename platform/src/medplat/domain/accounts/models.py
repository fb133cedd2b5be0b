"""A doctor's account on their home node."""

from __future__ import annotations

from sqlalchemy import String
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
