"""The data map and the residency scanner on real PostgreSQL and the real object store: a clean node passes, and each
planted violation is caught with its exact finding, naming the object and never the personal value."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from medplat.cli import main
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
    assert result.stdout.startswith("kz residency scan passed: 0 critical, 0 violation, 0 warning (7 checks, ")
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
        "kz residency scan FAILED: 4 critical, 2 violation, 0 warning (7 checks, " + lines[-1].split("(7 checks, ")[1],
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
