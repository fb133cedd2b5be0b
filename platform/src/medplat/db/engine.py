"""Engines for the node's PostgreSQL: async for the web app, sync for the CLI, migrations and Celery."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def sqlalchemy_url(url: str) -> str:
    """Our settings hold plain postgresql:// URLs; SQLAlchemy is told to use psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def sync_engine(url: str, **kwargs: object) -> Engine:
    return create_engine(sqlalchemy_url(url), pool_pre_ping=True, **kwargs)


def async_engine(url: str, **kwargs: object) -> AsyncEngine:
    return create_async_engine(sqlalchemy_url(url), pool_pre_ping=True, **kwargs)


def read_engine(url: str, **kwargs: object) -> AsyncEngine:
    """The engine of the hot read paths (the guard's session lookup, the feed): one round trip per query.

    Autocommit, so psycopg sends no BEGIN before the query and SQLAlchemy no ROLLBACK when the connection goes
    back to the pool; no pre-ping either. A connection PostgreSQL dropped fails the one request that meets it,
    and SQLAlchemy then discards the pool's stale connections. Only for single SELECT statements.
    """
    return create_async_engine(sqlalchemy_url(url), isolation_level="AUTOCOMMIT", pool_pre_ping=False, **kwargs)


SYSTEM_IDENTIFIER_SQL = text("SELECT system_identifier::text FROM pg_control_system()")
"""The cluster's unique identifier, fixed at initdb: tells two PostgreSQL clusters apart."""
