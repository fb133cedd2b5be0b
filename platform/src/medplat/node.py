"""Composition root: the node's connections to its own stores, built once per process from its settings."""

from __future__ import annotations

import functools

from sqlalchemy import Engine

from medplat.config import Settings, get_settings
from medplat.db.engine import sync_engine
from medplat.storage import MinioObjectStore, ObjectStore


@functools.cache
def _sync_db(database_url: str) -> Engine:
    return sync_engine(database_url, pool_size=5, max_overflow=5)


def sync_db(settings: Settings | None = None) -> Engine:
    """The synchronous engine, for the CLI and Celery tasks (the web app uses its own async engine)."""
    return _sync_db((settings or get_settings()).database_url)


def object_store(settings: Settings | None = None) -> ObjectStore:
    settings = settings or get_settings()
    return _object_store(
        settings.s3_endpoint,
        settings.s3_access_key,
        settings.s3_secret_key,
        settings.s3_region,
    )


@functools.cache
def _object_store(endpoint: str, access_key: str, secret_key: str, region: str) -> MinioObjectStore:
    return MinioObjectStore(endpoint, access_key, secret_key, region)
