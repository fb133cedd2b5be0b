"""The data map and the residency scanner on real PostgreSQL and the real object store: a clean node passes, and each
planted violation is caught with its exact finding, naming the object and never the personal value."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from medplat.cli import main
from medplat.compliance.scan import tunnelled_to
from medplat.config import Settings
from medplat.domain.content.models import ContentItem, ContentMedia
from medplat.node import object_store, sync_db
from medplat.storage import CONTENT_MEDIA, DIPLOMA_SCANS
from tests.integration.test_accounts import KZ_DOCTOR, PDF, bearer, register, sign_in


@pytest.fixture
def node(settings: Settings, clean_db: None) -> Iterator[Settings]:
    """A kz node whose buckets are emptied after the test (clean_db empties the tables)."""
    yield settings
    store = object_store(settings)
    for bucket in (settings.personal_bucket, settings.shared_bucket):
        for info in list(store.list(bucket)):
            store.delete(bucket, info.key)


def _cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def _content(settings: Settings, title: str = "Dermatoscopy basics") -> uuid.UUID:
    """A shared article with one media file in the shared bucket, as the content service leaves them."""
    body = b"\x89PNG\r\n\x1a\n" + bytes(64)
    sha = hashlib.sha256(body).hexdigest()
    with Session(sync_db(settings)) as session, session.begin():
        item = ContentItem(
            origin_region="kz", kind="article", title=title, category="dermatology", specializations=[], languages=["ru"], targets=[]
        )
        session.add(item)
        session.flush()
        key = CONTENT_MEDIA.key(str(item.id), sha)
        object_store(settings).put(settings.shared_bucket, key, body, len(body), "image/png")
        session.add(ContentMedia(item_id=item.id, key=key, sha256=sha, length=len(body), media_type="image/png"))
        return item.id


async def _clean_node(client: Any, settings: Settings) -> dict[str, Any]:
    doctor_id = await register(client)
    tokens = await sign_in(client, settings)
    response = await client.put(
        "/api/v1/me/diploma", content=PDF, headers={**bearer(tokens["access_token"]), "content-type": "application/pdf"}
    )
    assert response.status_code == 201, response.text
    return {"id": doctor_id, "item": _content(settings)}


async def test_a_clean_node_passes_the_scan(client: Any, node: Settings) -> None:
    await _clean_node(client, node)
    result = _cli("compliance", "scan", "--region", "kz")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [result.stdout.splitlines()[-1]]
    assert result.stdout.startswith("kz residency scan passed: 0 critical, 0 violation, 0 warning (8 checks, ")
    report = json.loads(_cli("compliance", "scan", "--region", "kz", "--json").stdout)
    assert (report["ok"], report["findings"], report["by_check"]) == (True, [], {})


def test_the_periodic_scan_records_its_run(node: Settings) -> None:
    from medplat.compliance import tasks
    from medplat.compliance.models import ComplianceRun

    _content(node, title="Questions? Call +7 701 555 98 76 after 18:00")
    summary = tasks.scan()  # the task's body, as a worker runs it
    assert (summary["ok"], summary["by_check"], summary["by_severity"]) == (False, {"personal_data_in_shared": 1},
                                                                           {"critical": 1, "violation": 0, "warning": 0})  # fmt: skip
    with Session(sync_db(node)) as session:
        runs = [(r.kind, r.ok, r.counts) for r in session.scalars(select(ComplianceRun))]
    assert runs == [("scan", False, summary)]


def _dba(settings: Settings, *statements: str) -> None:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.fixture
def unclassified(node: Settings) -> Iterator[Settings]:
    """A column and a table added by hand behind the code's back; removed again after the test."""
    _dba(node, "ALTER TABLE shared.content_item ADD COLUMN author_phone text", "CREATE TABLE public.notes (id int, body text)")
    yield node
    _dba(node, "ALTER TABLE shared.content_item DROP COLUMN author_phone", "DROP TABLE public.notes")


async def test_each_planted_violation_is_caught_with_its_exact_finding(client: Any, unclassified: Settings) -> None:
    settings = unclassified
    clean = await _clean_node(client, settings)
    # 1. A personal row of another country: a doctor whose home region is ru sits on the kz node.
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("UPDATE personal.doctor SET home_region = 'ru', citizenship = 'RU' WHERE id = %s", (clean["id"],))
    # 2. A phone number inside a shared article.
    leaky = _content(settings, title="Questions? Call +7 701 555 98 76 after 18:00")
    # 3. An unclassified column and table: the fixture. 4. A personal file in the shared bucket.
    stray = DIPLOMA_SCANS.key(str(uuid.uuid4()), hashlib.sha256(PDF).hexdigest())
    object_store(settings).put(settings.shared_bucket, stray, PDF, len(PDF), "application/pdf")

    result = _cli("compliance", "scan", "--region", "kz")
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    move = "move the person's data to their home node through a data-subject request there, then erase it here"
    assert lines == [
        f"kz CRITICAL  home_region: personal.doctor#{clean['id']}: a personal row whose home region is not kz (fix: {move})",
        f"kz CRITICAL  home_region: personal.doctor#{clean['id']}: a personal row whose citizenship is not served by kz (KZ) (fix: {move})",
        f"kz CRITICAL  objects: s3://{settings.shared_bucket}/{stray} (diploma_scans): "
        "a file under a personal prefix sits in the shared bucket "
        "(fix: delete it from this bucket (a personal file must stay in the personal bucket only) and find which code path wrote it)",
        f"kz CRITICAL  personal_data_in_shared: shared.content_item#{leaky} at title (phone): personal data inside shared content "
        "(fix: edit the content to remove it and publish a new version (or retract it); the border check blocks it from leaving)",
        "kz VIOLATION schema: public.notes: a table the code does not declare "
        "(fix: map it with a model declaring residency, category, legal basis and retention, or drop it)",
        "kz VIOLATION schema: shared.content_item.author_phone: a column the code does not declare "
        "(fix: add it to its model (and a migration), or drop it)",
        "kz residency scan FAILED: 4 critical, 2 violation, 0 warning (8 checks, " + lines[-1].split("(8 checks, ")[1],
    ]
    assert "555 98 76" not in result.output and "5559876" not in result.output
    assert KZ_DOCTOR["full_name"] not in result.output
    report = json.loads(_cli("compliance", "scan", "--region", "kz", "--json").stdout)
    assert report["by_check"] == {
        "home_region.citizenship": 1, "home_region.home_region": 1, "objects.personal_file_in_shared_bucket": 1,
        "personal_data_in_shared": 1, "schema.unclassified_column": 1, "schema.unclassified_table": 1,
    }  # fmt: skip
    assert report["ok"] is False and report["by_severity"] == {"critical": 4, "violation": 2, "warning": 0}


async def test_orphans_and_undeclared_prefixes_in_the_buckets(client: Any, node: Settings) -> None:
    settings = node
    store = object_store(settings)
    # An object outside every declared prefix, a shared object nobody references, a personal file left behind.
    store.put(settings.personal_bucket, "exports/dump.csv", b"x", 1, "text/csv")
    orphan_media = CONTENT_MEDIA.key(str(uuid.uuid4()), "a" * 64)
    store.put(settings.shared_bucket, orphan_media, b"y", 1, "image/png")
    orphan_scan = DIPLOMA_SCANS.key(str(uuid.uuid4()), "b" * 64)
    store.put(settings.personal_bucket, orphan_scan, PDF, len(PDF), "application/pdf")
    report = json.loads(_cli("compliance", "scan", "--region", "kz", "--json").stdout)
    found = {(f["severity"], f["object"]) for f in report["findings"]}
    assert found == {
        ("violation", f"s3://{settings.personal_bucket}/exports/dump.csv"),
        ("violation", f"s3://{settings.shared_bucket}/{orphan_media}"),
        ("warning", f"s3://{settings.personal_bucket}/{orphan_scan}"),
    }


async def test_keys_of_the_folder_per_owner_layout_are_checked_like_current_ones(client: Any, node: Settings) -> None:
    """Objects written before the flat layout (a folder per doctor or item) pass when referenced, and are still found
    when orphaned, missing or in the wrong bucket; a file at the top of a bucket is outside every prefix."""
    settings = node
    store = object_store(settings)
    await _clean_node(client, settings)
    item, kept, lost = uuid.uuid4(), hashlib.sha256(b"kept").hexdigest(), hashlib.sha256(b"lost").hexdigest()
    with Session(sync_db(settings)) as session, session.begin():
        session.add(ContentItem(id=item, origin_region="kz", kind="article", title="Old layout", category="dermatology",
                                specializations=[], languages=["ru"], targets=[]))  # fmt: skip
        session.flush()
        for sha in (kept, lost):
            session.add(ContentMedia(item_id=item, key=f"media/{item}/{sha}", sha256=sha, length=4, media_type="image/png"))
    store.put(settings.shared_bucket, f"media/{item}/{kept}", b"kept", 4, "image/png")
    orphan = f"diplomas/{uuid.uuid4()}/{'c' * 64}"
    store.put(settings.personal_bucket, orphan, PDF, len(PDF), "application/pdf")
    misplaced = f"cases/{uuid.uuid4()}/{uuid.uuid4()}/before-{'d' * 64}"
    store.put(settings.shared_bucket, misplaced, b"\x89PNG", 4, "image/png")
    store.put(settings.personal_bucket, "notes.txt", b"x", 1, "text/plain")

    report = json.loads(_cli("compliance", "scan", "--region", "kz", "--json").stdout)
    assert report["by_check"] == {
        "objects.missing_content_media": 1, "objects.personal_file_in_shared_bucket": 1,
        "objects.undeclared_prefix_personal": 1, "objects.unreferenced_diploma_scans": 1,
    }  # fmt: skip
    assert {(f["severity"], f["object"]) for f in report["findings"]} == {
        ("warning", f"s3://{settings.shared_bucket}/media/{item}/{lost}"),
        ("critical", f"s3://{settings.shared_bucket}/{misplaced} (case_photos)"),
        ("violation", f"s3://{settings.personal_bucket}/notes.txt"),
        ("warning", f"s3://{settings.personal_bucket}/{orphan}"),
    }


async def test_the_data_map_comes_from_the_declarations_and_names_the_real_stores(client: Any, node: Settings) -> None:
    settings = node
    result = _cli("compliance", "datamap", "--region", "kz")
    assert result.exit_code == 0, result.output
    datamap = json.loads(result.stdout)
    with sync_db(settings).connect() as conn:
        cluster, database = conn.execute(text("SELECT system_identifier::text, current_database() FROM pg_control_system()")).one()
    assert datamap["location"]["cluster_id"] == cluster and datamap["location"]["database"] == database
    assert datamap["location"]["s3_endpoint"] == settings.s3_endpoint.rstrip("/")
    tables = {t["table"]: t for t in datamap["tables"]}
    doctor = tables["personal.doctor"]
    assert (doctor["residency"], doctor["category"], doctor["legal_basis"]) == ("personal", "identity", "contract")
    columns = {c["name"]: c for c in doctor["columns"]}
    assert columns["phone"]["encrypted"] and not columns["home_region"]["encrypted"]
    assert tables["shared.content_item"]["legal_basis"] == "not_personal"
    assert tables["node.alembic_version"]["residency"] == "node_local"
    with sync_db(settings).connect() as conn:
        live = set(
            conn.execute(
                text(
                    "SELECT schemaname || '.' || tablename FROM pg_tables "
                    "WHERE schemaname IN ('personal','shared','federation','audit','node')"
                )
            ).scalars()
        )
    assert live == set(tables), "every live table is in the map and every mapped table is live"
    prefixes = {(p["bucket"], p["prefix"]): p for p in datamap["prefixes"]}
    assert prefixes[(settings.personal_bucket, "diplomas/")]["referenced_by"] == "personal.diploma.key"
    legacy = {name: p["legacy_pattern"] for name, p in prefixes.items()}
    assert re.fullmatch(legacy[(settings.personal_bucket, "diplomas/")], f"diplomas/{uuid.uuid4()}/{'a' * 64}")
    assert legacy[(settings.shared_bucket, "received/")] is None
    assert {p["residency"] for b, p in prefixes.items() if b[0] == settings.shared_bucket} == {"shared"}
    rows = list(csv.DictReader(io.StringIO(_cli("compliance", "datamap", "--region", "kz", "--format", "csv").stdout)))
    phone = next(r for r in rows if r["table"] == "personal.doctor" and r["column"] == "phone")
    assert (phone["cluster_id"], phone["schema"], phone["encrypted"], phone["legal_basis"]) == (cluster, "personal", "True", "contract")
    assert any(r["kind"] == "prefix" and r["bucket"] == settings.shared_bucket and r["prefix"] == "received/" for r in rows)


OUTSIDE = (
    "a store the node is configured to use is outside Kazakhstan: the host is not under yandexcloud.kz, ps.kz, medfed.kz "
    "(regions/kz/infra.json) (fix: move the store into Kazakhstan and point the variable at its host there; "
    "if the host is in Kazakhstan, add its domain to host_suffixes in regions/kz/infra.json)"
)


async def test_a_database_and_an_object_store_configured_outside_the_country_are_caught(
    client: Any, node: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both really answer (the same engines) under names outside Kazakhstan: libpq's hostaddr sends the connection to
    the test cluster while the URL names the foreign host; the S3 name resolves to the test store (a DNS answer
    faked at the boundary, in this process only)."""
    await _clean_node(client, node)
    url = make_url(node.database_url)
    monkeypatch.setenv(
        "MEDFED_DATABASE_URL",
        url.set(host="pg.eu-west-1.example.com", query={"hostaddr": str(url.host)}).render_as_string(hide_password=False),
    )
    resolve = socket.getaddrinfo
    foreign = "s3.eu-central-1.example.com"
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: resolve("127.0.0.1" if host == foreign else host, *a, **k))
    monkeypatch.setenv("MEDFED_S3_ENDPOINT", node.s3_endpoint.replace("127.0.0.1", foreign))
    result = _cli("compliance", "scan", "--region", "kz")
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines == [
        f"kz CRITICAL  stores: MEDFED_DATABASE_URL host pg.eu-west-1.example.com: {OUTSIDE}",
        f"kz CRITICAL  stores: MEDFED_S3_ENDPOINT host {foreign}: {OUTSIDE}",
        "kz residency scan FAILED: 2 critical, 0 violation, 0 warning (8 checks, " + lines[-1].split("(8 checks, ")[1],
    ]
    assert json.loads(_cli("compliance", "scan", "--region", "kz", "--json").stdout)["by_check"] == {"stores.outside_country": 2}


async def test_loopback_stores_pass_only_in_a_local_deployment(client: Any, node: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    await _clean_node(client, node)
    assert _cli("compliance", "scan", "--region", "kz").exit_code == 0  # the test node says MEDFED_DEPLOYMENT=local
    monkeypatch.setenv("MEDFED_DEPLOYMENT", "production")
    result = _cli("compliance", "scan", "--region", "kz")
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    abroad = (
        "the object store says the bucket is in a region outside Kazakhstan (kz1, kz-ala) (fix: move the bucket to a region of "
        "Kazakhstan; if the region is in Kazakhstan, add it to regions in regions/kz/infra.json)"
    )
    loopback = (
        "a loopback host in a production deployment: it names this machine, not a place in the country (fix: point the variable "
        "at the store's host name under yandexcloud.kz, ps.kz, medfed.kz; on a local or development node set MEDFED_DEPLOYMENT=local)"
    )
    assert lines == [
        f"kz CRITICAL  stores: s3://{node.personal_bucket} (region us-east-1): {abroad}",
        f"kz CRITICAL  stores: s3://{node.shared_bucket} (region us-east-1): {abroad}",
        f"kz VIOLATION stores: MEDFED_DATABASE_URL host 127.0.0.1: {loopback}",
        f"kz VIOLATION stores: MEDFED_S3_ENDPOINT host 127.0.0.1: {loopback}",
        f"kz VIOLATION stores: MEDFED_SYNC_DATABASE_URL host 127.0.0.1: {loopback}",
        "kz residency scan FAILED: 2 critical, 3 violation, 0 warning (8 checks, " + lines[-1].split("(8 checks, ")[1],
    ]


async def test_the_sync_role_must_reach_the_data_maps_database(client: Any, node: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both URLs on loopback in the country's sense, but the sync workers' URL names another database of the cluster,
    then a port nothing answers on: the live identity, not the configuration's host, tells."""
    await _clean_node(client, node)
    with sync_db(node).connect() as conn:
        cluster, database = conn.execute(text("SELECT system_identifier::text, current_database() FROM pg_control_system()")).one()
    sync = make_url(node.sync_database_url)
    monkeypatch.setenv("MEDFED_SYNC_DATABASE_URL", sync.set(database="postgres").render_as_string(hide_password=False))
    report = json.loads(_cli("compliance", "scan", "--region", "kz", "--json").stdout)
    assert [(f["severity"], f["object"], f["problem"]) for f in report["findings"]] == [
        ("violation", f"MEDFED_SYNC_DATABASE_URL cluster {cluster} database postgres",
         f"the database answering is not the data map's (cluster {cluster}, database {database})"),
    ]  # fmt: skip
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("MEDFED_SYNC_DATABASE_URL", sync.set(port=closed).render_as_string(hide_password=False))
    report = json.loads(_cli("compliance", "scan", "--region", "kz", "--json").stdout)
    assert [(f["severity"], f["object"], f["problem"]) for f in report["findings"]] == [
        ("violation", "MEDFED_SYNC_DATABASE_URL", "the configured database does not answer"),
    ]
    assert report["ok"] is False


def test_a_loopback_connection_answered_from_another_machine_is_a_tunnel() -> None:
    """The rule behind stores.tunnelled (the test engines listen on loopback only, so no server here answers otherwise)."""
    assert tunnelled_to([("host", "127.0.0.1")], "203.0.113.7") is True
    assert tunnelled_to([("host", "localhost")], "10.20.1.31") is True
    assert tunnelled_to([("host", "")], "192.0.2.1") is True  # the local socket, answered over TCP by another host
    assert tunnelled_to([("host", "127.0.0.1")], "127.0.0.1") is False
    assert tunnelled_to([("host", "::1")], "::1") is False
    assert tunnelled_to([("host", "db.kz.prod.medfed.kz")], "10.20.1.31") is False  # not loopback: the host check judges it
    # libpq connects to hostaddr, not to the host it names.
    assert tunnelled_to([("host", "pg.example.com"), ("hostaddr", "127.0.0.1")], "203.0.113.7") is True
    assert tunnelled_to([("host", "localhost"), ("hostaddr", "10.20.1.31")], "10.20.1.31") is False
