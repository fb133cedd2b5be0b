"""Migrations build the residency schemas, and the models never drift from them."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from medplat.config import Settings
from medplat.db.engine import sync_engine
from medplat.db.migrate import current, head_revision, upgrade
from medplat.db.models import Base
from medplat.residency import ALL_SCHEMAS
from tests.conftest import Engines


def test_upgrade_creates_the_residency_schemas_on_an_empty_database(engines: Engines) -> None:
    url = engines.postgres.create_database("medfed_migrations")
    try:
        assert current(url) is None
        upgrade(url)
        upgrade(url)  # a second run is a no-op
        assert current(url) == head_revision()
        engine = sync_engine(url)
        with engine.connect() as conn:
            schemas = set(conn.execute(text("SELECT nspname FROM pg_namespace")).scalars())
            tables = set(conn.execute(text("SELECT schemaname || '.' || tablename FROM pg_tables")).scalars())
        engine.dispose()
        assert set(ALL_SCHEMAS) <= schemas
        assert {"personal.doctor", "shared.content_item", "node.worker_heartbeat", "node.alembic_version"} <= tables
    finally:
        engines.postgres.drop_database("medfed_migrations")


def test_the_models_match_the_migrated_database(settings: Settings) -> None:
    engine = sync_engine(settings.database_url)

    def include_name(name: str | None, type_: str, _: object) -> bool:
        return name in ALL_SCHEMAS if type_ == "schema" else name != "alembic_version"

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_schemas": True, "include_name": include_name, "compare_type": False})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations differ; write a migration: {diff}"
