"""The compliance calls the CLI, the API and the Celery tasks share: one data map, one scan, one report, one summary."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from medplat.compliance import report as reports
from medplat.compliance.datamap import DataMap, build, live_location
from medplat.compliance.models import ComplianceRun
from medplat.compliance.scan import ScanResult, scan
from medplat.config import Settings
from medplat.db.models import all_mappers
from medplat.storage import ObjectStore


@contextmanager
def snapshot(engine: Engine) -> Iterator[Session]:
    """One consistent view of the node for a whole scan or report; whatever the scan writes (a temporary table) is
    rolled back."""
    with Session(engine) as session:
        session.connection().exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        try:
            yield session
        finally:
            session.rollback()


def datamap(session: Session, settings: Settings) -> DataMap:
    return build(settings, all_mappers(), live_location(session, settings))


def run_scan(session: Session, settings: Settings, store: ObjectStore) -> tuple[DataMap, ScanResult]:
    current = datamap(session, settings)
    return current, scan(session, settings, store, current, all_mappers())


def signed_report(
    session: Session, settings: Settings, store: ObjectStore, since: datetime.datetime | None = None, until: datetime.datetime | None = None
) -> tuple[dict[str, Any], bytes]:
    current, result = run_scan(session, settings, store)
    document = reports.build(session, settings, current, result, since=since, until=until)
    return document, reports.sign(document, settings.signing_key)


def record_run(engine: Engine, kind: str, *, started: datetime.datetime, seconds: float, ok: bool, counts: dict[str, Any]) -> None:
    with Session(engine) as session, session.begin():
        session.add(ComplianceRun(kind=kind, started_at=started, seconds=seconds, ok=ok, counts=counts))


def signed_summary(
    session: Session, settings: Settings, store: ObjectStore, since: datetime.datetime | None = None, until: datetime.datetime | None = None
) -> tuple[dict[str, Any], bytes]:
    """The node's summary for the HQ officer, signed like the report (the same key, its own payload type)."""
    current, result = run_scan(session, settings, store)
    document = reports.build_summary(session, settings, current, result, since=since, until=until)
    return document, reports.sign(document, settings.signing_key, reports.SUMMARY_PAYLOAD_TYPE)
