"""Periodic compliance work of a node: the residency scan and the data-subject request reminders.

Both record a `node.compliance_run` row with counts only; the scan logs one line per failing check (check name and
count, never an object), the reminders one line per request id (medplat.compliance.dsr).
"""

from __future__ import annotations

import datetime
import time

import structlog
from sqlalchemy.orm import Session

from medplat.compliance import dsr
from medplat.compliance.service import record_run, run_scan, snapshot
from medplat.config import get_settings
from medplat.node import object_store, sync_db
from medplat.worker import app

_log = structlog.stdlib.get_logger("medplat.compliance")


@app.task(name="compliance.scan")  # type: ignore[untyped-decorator]
def scan() -> dict[str, object]:
    settings = get_settings()
    engine = sync_db(settings)
    started = datetime.datetime.now(datetime.UTC)
    with snapshot(engine) as session:
        _, result = run_scan(session, settings, object_store(settings))
    summary = result.summary()
    record_run(engine, "scan", started=started, seconds=result.seconds, ok=result.ok, counts=summary)
    for check, count in summary["by_check"].items():
        _log.warning("compliance.scan_finding", check=check, count=count, severity=result.severities[check])
    _log.info("compliance.scan", ok=result.ok, seconds=round(result.seconds, 3), **summary["by_severity"])
    return summary


@app.task(name="compliance.dsr_reminders")  # type: ignore[untyped-decorator]
def reminders() -> dict[str, int]:
    settings = get_settings()
    engine = sync_db(settings)
    started = datetime.datetime.now(datetime.UTC)
    clock = time.perf_counter()
    with Session(engine) as session, session.begin():
        counts = dsr.reminders(session, settings)
    record_run(engine, "reminders", started=started, seconds=time.perf_counter() - clock, ok=counts["overdue"] == 0, counts=dict(counts))
    return counts
