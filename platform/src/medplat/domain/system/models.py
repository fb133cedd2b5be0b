"""Node-local operational state."""

from __future__ import annotations

import datetime

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from medplat.db.base import Base
from medplat.residency import DataCategory, Residency


class WorkerHeartbeat(Base):
    """The last time each Celery worker of this node reported in; /health shows it."""

    __tablename__ = "worker_heartbeat"
    __table_args__ = {"schema": "node"}
    __residency__ = Residency.NODE_LOCAL
    __data_category__ = DataCategory.OPERATIONAL

    worker: Mapped[str] = mapped_column(String(200), primary_key=True)
    seen_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
