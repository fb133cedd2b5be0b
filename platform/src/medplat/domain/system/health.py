"""Dependency checks behind /health and /ready: database, object store, broker, workers.

Each check reports the identity of what it reached (PostgreSQL's system identifier, the object-store
endpoint and buckets, the broker URL without its password), so anyone can see from /health alone that the
three nodes use three separate stores.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import anyio
import msgspec
from kombu.connection import Connection
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from medplat import __version__
from medplat.config import Settings
from medplat.db.engine import SYSTEM_IDENTIFIER_SQL
from medplat.domain.system.models import WorkerHeartbeat
from medplat.storage import ObjectStore
from medplat.urls import without_password

CHECK_TIMEOUT = 3.0
WORKER_STALE_AFTER = datetime.timedelta(seconds=60)


class DependencyStatus(msgspec.Struct, omit_defaults=True):
    status: str
    identity: dict[str, Any]
    error: str | None = None


class Health(msgspec.Struct):
    region: str
    country: str
    version: str
    status: str
    dependencies: dict[str, DependencyStatus]


def _error(exc: BaseException) -> str:
    # The class name and a short message; connection errors can carry hosts but never passwords.
    return without_password(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")[:200]


async def check_database(engine: AsyncEngine, url: str, expected_revision: str | None) -> DependencyStatus:
    identity: dict[str, Any] = {"url": without_password(url)}
    try:
        async with asyncio.timeout(CHECK_TIMEOUT), engine.connect() as conn:
            identity["system_identifier"] = (await conn.execute(SYSTEM_IDENTIFIER_SQL)).scalar_one()
            identity["server_version"] = (await conn.execute(text("SHOW server_version"))).scalar_one()
            identity["database"] = (await conn.execute(text("SELECT current_database()"))).scalar_one()
            revision = (await conn.execute(text("SELECT version_num FROM node.alembic_version"))).scalar_one_or_none()
            identity["schema_revision"] = revision
    except Exception as exc:  # noqa: BLE001 - any failure is the check's answer
        return DependencyStatus("error", identity, _error(exc))
    if expected_revision is not None and revision != expected_revision:
        return DependencyStatus(
            "error",
            identity,
            f"schema at revision {revision}, code expects {expected_revision}: run `medfed db upgrade`",
        )
    return DependencyStatus("ok", identity)


async def check_object_store(store: ObjectStore, buckets: dict[str, str]) -> DependencyStatus:
    identity: dict[str, Any] = {"endpoint": store.endpoint, "buckets": buckets}
    try:
        with anyio.fail_after(CHECK_TIMEOUT):
            present = {
                kind: await anyio.to_thread.run_sync(store.bucket_exists, name, abandon_on_cancel=True) for kind, name in buckets.items()
            }
    except Exception as exc:  # noqa: BLE001
        return DependencyStatus("error", identity, _error(exc))
    missing = [buckets[k] for k, ok in present.items() if not ok]
    if missing:
        return DependencyStatus("error", identity, f"missing bucket(s): {', '.join(missing)}")
    return DependencyStatus("ok", identity)


def _broker_ping(url: str) -> str:
    with Connection(  # type: ignore[no-untyped-call]
        url,
        connect_timeout=CHECK_TIMEOUT,
        transport_options={"socket_timeout": CHECK_TIMEOUT},
    ) as conn:
        conn.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT)
        conn.default_channel  # noqa: B018 - opening a channel proves the broker answers, not just the socket
        return str(conn.transport_cls)


async def check_broker(url: str) -> DependencyStatus:
    identity: dict[str, Any] = {"url": without_password(url)}
    try:
        with anyio.fail_after(CHECK_TIMEOUT + 1):
            identity["transport"] = await anyio.to_thread.run_sync(_broker_ping, url, abandon_on_cancel=True)
    except Exception as exc:  # noqa: BLE001
        return DependencyStatus("error", identity, _error(exc))
    return DependencyStatus("ok", identity)


async def check_workers(engine: AsyncEngine) -> DependencyStatus:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT), engine.connect() as conn:
            last = (await conn.execute(select(func.max(WorkerHeartbeat.seen_at)))).scalar_one_or_none()
    except Exception as exc:  # noqa: BLE001
        return DependencyStatus("error", {}, _error(exc))
    if last is None:
        return DependencyStatus("unknown", {"last_heartbeat": None}, "no worker has reported yet")
    age = datetime.datetime.now(datetime.UTC) - last
    identity = {
        "last_heartbeat": last.isoformat(),
        "age_seconds": round(age.total_seconds(), 1),
    }
    return DependencyStatus("ok" if age < WORKER_STALE_AFTER else "stale", identity)


async def node_health(
    settings: Settings,
    engine: AsyncEngine,
    store: ObjectStore,
    expected_revision: str | None,
) -> Health:
    buckets = {"personal": settings.personal_bucket, "shared": settings.shared_bucket}
    database, objects, broker, workers = await asyncio.gather(
        check_database(engine, settings.database_url, expected_revision),
        check_object_store(store, buckets),
        check_broker(settings.broker_url),
        check_workers(engine),
    )
    deps = {
        "database": database,
        "object_store": objects,
        "broker": broker,
        "workers": workers,
    }
    required_ok = all(d.status == "ok" for d in (database, objects, broker))
    return Health(
        region=settings.region.code,
        country=settings.region.country,
        version=__version__,
        status="ok" if required_ok else "degraded",
        dependencies=deps,
    )
