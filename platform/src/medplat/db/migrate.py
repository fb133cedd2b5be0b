"""`medfed db upgrade`: Alembic, configured in code so that no alembic.ini has to travel with the wheel."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from medplat.db.engine import sync_engine
from medplat.residency import ALL_SCHEMAS

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def ensure_schemas(database_url: str) -> None:
    """The residency schemas exist before Alembic writes its version table into `node`."""
    engine = sync_engine(database_url)
    with engine.begin() as conn:
        for schema in ALL_SCHEMAS:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    engine.dispose()


SYNC_ROLE = "medfed_sync"
"""The role of the sync workers and federation endpoints: shared, federation and audit; never personal."""


def grant_sync_role(database_url: str) -> bool:
    """Give the sync role exactly its privileges (idempotent; run after every upgrade).

    The role is created by whoever provisions the cluster (ansible, `medfed up`, the tests). Returns False
    when it does not exist yet.
    """
    engine = sync_engine(database_url)
    with engine.begin() as conn:
        if conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": SYNC_ROLE}).first() is None:
            engine.dispose()
            return False
        for statement in (
            "REVOKE ALL ON SCHEMA personal FROM {r}",
            "REVOKE ALL ON ALL TABLES IN SCHEMA personal FROM {r}",
            "GRANT USAGE ON SCHEMA shared, federation, audit, node TO {r}",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA shared, federation TO {r}",
            # The audit log is append-only, for the sync role as for everyone.
            "GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA audit TO {r}",
            "GRANT SELECT ON ALL TABLES IN SCHEMA node TO {r}",
            # ... except the one-time codes waiting in the local sender's outbox: secrets of people.
            "DO $$ BEGIN IF to_regclass('node.otp_outbox') IS NOT NULL THEN REVOKE ALL ON node.otp_outbox FROM {r}; END IF; END $$",
            "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA shared, federation, audit TO {r}",
        ):
            conn.execute(text(statement.format(r=SYNC_ROLE)))
    engine.dispose()
    return True


def upgrade(database_url: str, revision: str = "head") -> None:
    ensure_schemas(database_url)
    command.upgrade(alembic_config(database_url), revision)
    grant_sync_role(database_url)


def current(database_url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = sync_engine(database_url)
    with engine.connect() as conn:
        rev = MigrationContext.configure(conn, opts={"version_table_schema": "node"}).get_current_revision()
    engine.dispose()
    return rev


def revision(database_url: str, message: str) -> None:
    """Autogenerate a new revision from the models (developers only)."""
    command.revision(alembic_config(database_url), message=message, autogenerate=True)


def head_revision() -> str | None:
    """The newest revision the code ships (what /ready expects the database to be at)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("postgresql://unused")).get_current_head()
