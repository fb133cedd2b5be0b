"""A real Celery worker of the node consumes from the node's own broker and writes to the node's database."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from sqlalchemy import func, select

from medplat.config import Settings
from medplat.devfed.processes import Child, wait_until
from medplat.domain.system.models import WorkerHeartbeat
from medplat.node import sync_db


def test_a_worker_runs_the_heartbeat_task_sent_through_the_broker(settings: Settings, clean_db: None, tmp_path: Path) -> None:
    from medplat.worker import app

    worker = Child(
        "worker",
        [sys.executable, "-m", "medplat.cli", "worker", "--concurrency", "1", "--queues", "node"],
        tmp_path / "worker.log",
        env=dict(os.environ),
        cwd=tmp_path,
    ).start()
    try:
        app.send_task("node.heartbeat", queue="node")

        def heartbeats() -> int:
            with sync_db(settings).connect() as conn:
                return int(conn.execute(select(func.count()).select_from(WorkerHeartbeat)).scalar_one())

        wait_until(lambda: heartbeats() == 1, timeout=60, what="a heartbeat row")
        assert worker.alive(), worker.log_tail()
    finally:
        worker.stop()
    assert not worker.alive()
    log = (tmp_path / "worker.log").read_text()
    assert '"region":"kz"' in log
    assert "node.heartbeat" in log
