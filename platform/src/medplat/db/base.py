"""The declarative base every model of the node derives from, and the mixins it offers.

Models import `Base`, set `__residency__`, `__data_category__` and a schema of their residency class
(see medplat.residency); tests/unit/test_residency.py walks every mapper and fails the build otherwise.
"""

from __future__ import annotations

from advanced_alchemy.base import create_registry
from advanced_alchemy.mixins import AuditColumns, UUIDv7PrimaryKey
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import registry as Registry

orm_registry: Registry = create_registry()


class Base(DeclarativeBase):
    """Base of every mapped class of the node; one metadata for Alembic and the residency checks."""

    registry = orm_registry
    metadata = orm_registry.metadata
    __abstract__ = True


class Entity(UUIDv7PrimaryKey, AuditColumns, Base):
    """A row with a time-ordered UUID key and created/updated timestamps."""

    __abstract__ = True


__all__ = ["Base", "Entity", "orm_registry"]
