"""Alembic environment: runs the node's migrations on the URL given by medplat.db.migrate."""

from __future__ import annotations

from alembic import context

from medplat.db.engine import sync_engine
from medplat.db.models import Base
from medplat.residency import ALL_SCHEMAS

config = context.config


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    if type_ == "schema":
        return name in ALL_SCHEMAS
    return True


def run_migrations_online() -> None:
    engine = sync_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            include_schemas=True,
            include_name=include_name,
            version_table_schema="node",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported: run `medfed db upgrade` against the database")
run_migrations_online()
