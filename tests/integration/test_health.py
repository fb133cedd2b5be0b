"""/health names the node's own stores; /ready answers load balancers."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import psycopg

from medplat.config import Settings
from tests.conftest import Engines


async def test_health_reports_region_version_and_the_identity_of_each_store(client: Any, settings: Settings, engines: Engines) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert (body["region"], body["country"], body["status"]) == ("kz", "KZ", "ok")
    with psycopg.connect(settings.database_url) as conn:
        (system_identifier,) = conn.execute("SELECT system_identifier::text FROM pg_control_system()").fetchone()  # type: ignore[misc]
    database = body["dependencies"]["database"]
    assert database["status"] == "ok"
    assert database["identity"]["system_identifier"] == system_identifier
    assert database["identity"]["schema_revision"] is not None
    assert settings.database_url.split("@")[1] in database["identity"]["url"]
    assert engines.postgres.password not in response.text
    objects = body["dependencies"]["object_store"]
    assert objects == {
        "status": "ok",
        "identity": {"endpoint": engines.seaweed.endpoint, "buckets": {"personal": "medfed-kz-personal", "shared": "medfed-kz-shared"}},
    }
    broker = body["dependencies"]["broker"]
    assert broker["status"] == "ok"
    assert broker["identity"]["url"] == f"redis://127.0.0.1:{engines.redis.port}/0"
    assert engines.redis.password not in response.text
    assert body["dependencies"]["workers"]["status"] == "unknown"


async def test_ready_is_200_when_every_store_answers(client: Any) -> None:
    response = await client.get("/ready")
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


async def test_ready_is_503_and_health_degraded_when_the_broker_is_gone(settings: Settings, clean_db: None) -> None:
    from litestar.testing import AsyncTestClient

    from medplat.app import create_app
    from medplat.devfed.processes import free_ports

    gone = free_ports(1)[0]
    broken = settings.__class__(
        **{f: getattr(settings, f) for f in settings.__struct_fields__} | {"broker_url": f"redis://:x@127.0.0.1:{gone}/0"}
    )
    async with AsyncTestClient(app=create_app(broken)) as test_client:
        ready = await test_client.get("/ready")
        health = await test_client.get("/health")
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"
    assert set(ready.json()) == {"status", "broker"}
    assert health.status_code == 200
    assert health.json()["status"] == "degraded"
    assert health.json()["dependencies"]["broker"]["status"] == "error"
    assert health.json()["dependencies"]["database"]["status"] == "ok"


async def test_ready_is_503_when_a_bucket_is_missing(settings: Settings, clean_db: None) -> None:
    from litestar.testing import AsyncTestClient

    from medplat.app import create_app
    from medplat.config import RegionConfig, StorageConfig

    region = settings.region
    other = RegionConfig(
        **{f: getattr(region, f) for f in region.__struct_fields__} | {"storage": StorageConfig("medfed-kz-personal", "no-such-bucket")}
    )
    broken = settings.__class__(**{f: getattr(settings, f) for f in settings.__struct_fields__} | {"region": other})
    async with AsyncTestClient(app=create_app(broken)) as test_client:
        ready = await test_client.get("/ready")
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "object_store": "missing bucket(s): no-such-bucket"}


async def test_openapi_is_served_with_scalar(client: Any) -> None:
    page = await client.get("/schema/")
    assert page.status_code == 200
    assert "scalar" in page.text.lower()
    spec = (await client.get("/schema/openapi.json")).json()
    assert {"/health", "/ready", "/api/v1/doctors"} <= set(spec["paths"])


def test_the_served_app_freezes_its_startup_heap_and_the_test_app_does_not(settings: Settings) -> None:
    """`medfed serve` builds `create_server_app`: once started, the startup heap is out of the cyclic collector's
    reach (docs/benchmarks.md, the feed's p99). Checked in a child process: freezing is for good."""
    script = (
        "import gc\n"
        "from litestar.testing import TestClient\n"
        "from medplat.app import create_app, create_server_app\n"
        "with TestClient(create_app()) as client:\n"
        "    assert client.get('/ready').status_code == 200\n"
        "    plain = gc.get_freeze_count()\n"
        "with TestClient(create_server_app()) as client:\n"
        "    assert client.get('/ready').status_code == 200\n"
        "    print(plain, gc.get_freeze_count())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=os.environ.copy(), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    plain, frozen = (int(n) for n in done.stdout.split())
    assert plain == 0
    assert frozen > 10_000
