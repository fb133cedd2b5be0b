"""Periodic node tasks."""

from __future__ import annotations

import datetime
import os
import socket

from sqlalchemy.dialects.postgresql import insert

from medplat.domain.system.models import WorkerHeartbeat
from medplat.node import sync_db
from medplat.worker import app


@app.task(name="node.heartbeat")  # type: ignore[untyped-decorator]
def heartbeat() -> None:
    """Record that a worker of this node is alive; /health reports the age of the newest heartbeat."""
    now = datetime.datetime.now(datetime.UTC)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    with sync_db().begin() as conn:
        stmt = insert(WorkerHeartbeat).values(worker=worker, seen_at=now)
        conn.execute(stmt.on_conflict_do_update(index_elements=["worker"], set_={"seen_at": now}))
