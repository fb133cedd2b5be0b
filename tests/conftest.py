"""Real engines for the whole test session: PostgreSQL, SeaweedFS (S3) and Redis, from the same pip wheels
as the local federation, on free ports, stopped at the end of the session.

Tests that need a node get `settings` (a kz node whose stores are these engines) and a migrated database
that is emptied after each test.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from sqlalchemy import text

from medplat.config import Settings, get_settings, settings_from_env
from medplat.devfed.engines import Postgres, Redis, Seaweed, SeaweedPorts
from medplat.devfed.processes import Child, free_ports

REPO = Path(__file__).resolve().parents[1]
SHARED_VECTORS = REPO.parent / "shared" / "vectors"


@dataclass
class Engines:
    postgres: Postgres
    seaweed: Seaweed
    redis: Redis
    children: list[Child]


def create_sync_role(pg: Postgres) -> None:
    """The cluster-wide role of the sync workers (provisioned by ops in production, by `medfed up` locally)."""
    import psycopg

    from medplat.db.migrate import SYNC_ROLE

    with psycopg.connect(pg.url(), autocommit=True) as conn:
        create = psycopg.sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}")
        conn.execute(create.format(psycopg.sql.Identifier(SYNC_ROLE), psycopg.sql.Literal(SYNC_PASSWORD)))


@pytest.fixture(scope="session")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    root = tmp_path_factory.mktemp("engines")
    ports = free_ports(10)
    pg = Postgres(root / "pg", ports[0], secrets.token_urlsafe(12), root / "postgres.log", durable=False)
    sw = Seaweed(root / "s3", SeaweedPorts(*ports[1:9]), "testkey", secrets.token_urlsafe(16), root / "seaweedfs.log")
    rd = Redis(root / "redis", ports[9], secrets.token_urlsafe(12), root / "redis.log", durable=False)
    init = pg.initdb_child().start()
    assert init.popen is not None and init.popen.wait(60) == 0, init.log_tail()
    pg.finish_initdb()
    children = [pg.child().start(), sw.child().start(), rd.child().start()]
    try:
        pg.wait_ready()
        create_sync_role(pg)
        rd.wait_ready()
        sw.wait_ready()
        yield Engines(pg, sw, rd, children)
    finally:
        for child in reversed(children):
            child.stop()


SYNC_PASSWORD = secrets.token_urlsafe(12)


def node_env(engines: Engines, database_url: str, key_dir: Path, region: str = "kz") -> dict[str, str]:
    key = key_dir / f"{region}-signing.pem"
    if not key.exists():
        key.write_bytes(Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return {
        "MEDFED_REGION": region,
        "MEDFED_DATABASE_URL": database_url,
        "MEDFED_SYNC_DATABASE_URL": sync_url(engines, database_url),
        "MEDFED_S3_ENDPOINT": engines.seaweed.endpoint,
        "MEDFED_S3_ACCESS_KEY": engines.seaweed.access_key,
        "MEDFED_S3_SECRET_KEY": engines.seaweed.secret_key,
        "MEDFED_BROKER_URL": engines.redis.url,
        "MEDFED_SIGNING_KEY_FILE": str(key),
        "MEDFED_DATA_KEY": base64.b64encode(b"k" * 32).decode(),
        "MEDFED_PEERS": "ru=http://ru.node.test,uz=http://uz.node.test",
        "MEDFED_DEPLOYMENT": "local",
    }


def sync_url(engines: Engines, database_url: str) -> str:
    from medplat.db.migrate import SYNC_ROLE

    return engines.postgres.url(database_url.rsplit("/", 1)[1], user=SYNC_ROLE, password=SYNC_PASSWORD)


@pytest.fixture(scope="session")
def database_url(engines: Engines) -> str:
    from medplat.db.migrate import upgrade

    url = engines.postgres.create_database("medfed_test")
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def settings(engines: Engines, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The kz test node's settings, also put into os.environ (the Celery worker and CLI read them there)."""
    env = node_env(engines, database_url, tmp_path_factory.mktemp("keys"))
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    settings = settings_from_env(env)
    from medplat.node import object_store

    for bucket in (settings.personal_bucket, settings.shared_bucket):
        object_store(settings).ensure_bucket(bucket)
    yield settings
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    get_settings.cache_clear()


@pytest.fixture
def clean_db(settings: Settings) -> Iterator[None]:
    """Empty every table of the node after the test."""
    yield
    from medplat.db.models import Base
    from medplat.node import sync_db

    tables = ", ".join(f'"{t.schema}"."{t.name}"' for t in Base.metadata.sorted_tables)
    with sync_db(settings).begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} CASCADE"))


@pytest.fixture
async def client(settings: Settings, clean_db: None) -> AsyncIterator[object]:
    from litestar.testing import AsyncTestClient

    from medplat.app import create_app

    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client
