"""Signed residency reports and summaries (verify offline; every changed byte is refused), CSV and PDF renderings, the
federation view from signed summaries only, the transfer register, and the role guards of the compliance API."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from medplat.app import create_app
from medplat.cli import main
from medplat.compliance import report as reports
from medplat.config import Settings
from medplat.node import object_store, sync_db
from medplat.security import Role, issue_token
from medsync import manifest, trust
from medsync.canonical import canonical_bytes
from medsync.envelope import Envelope, key_id, pae
from medsync.items import SharedDocument, Text
from medsync.models import ManifestIn, ManifestOut, Verdict
from medsync.receipts import SPEC as RECEIPT_SPEC
from medsync.receipts import Receipt, ReceiptItem, ReceiptReason, sign_receipt
from tests.integration.test_accounts import bearer
from tests.integration.test_compliance_scan import node  # noqa: F401 - the fixture


def _cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def _key_file(settings: Settings, tmp_path: Path) -> Path:
    path = tmp_path / "kz.pem"
    path.write_bytes(settings.signing_key_pem)
    return path


def test_report_verifies_offline_and_any_changed_byte_is_refused(node: Settings, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "r.json"
    made = _cli("compliance", "report", "--region", "kz", "--out", str(out))
    assert made.exit_code == 0, made.output
    assert made.stdout.startswith(f"kz: signed residency report written to {out} (scan ok, audit size ")
    key = _key_file(node, tmp_path)
    checked = _cli("compliance", "verify", str(out), "--key", str(key))
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.startswith("valid: medfed-residency-report/1 of kz generated ")
    data = out.read_bytes()
    document = json.loads(base64.b64decode(json.loads(data)["payload"]))
    assert document["region"] == "kz" and document["scan"]["ok"] is True
    assert set(document) == {
        "spec",
        "region",
        "country",
        "law",
        "generated_at",
        "period",
        "node",
        "cluster",
        "object_store",
        "datamap",
        "scan",
        "transfers",
        "dsr",
        "audit",
    }
    public = node.signing_key.public_key()
    # Every single byte changed (each position, flipped by one bit) makes the file invalid.
    for position in range(len(data)):
        tampered = bytearray(data)
        tampered[position] ^= 0x01
        with pytest.raises(reports.ReportError):
            reports.verify(bytes(tampered), lambda _r: [public])
    changed = tmp_path / "changed.json"
    changed.write_bytes(data.replace(b'"payloadType":"application', b'"payloadType":"applicatioN', 1))
    refused = _cli("compliance", "verify", str(changed), "--key", str(key))
    assert refused.exit_code == 1
    assert (
        refused.stderr == f"invalid: {changed}: payload type 'applicatioN/vnd.medfed.residency-report+json' "
        "is not a residency report, residency summary or destruction act\n"
    )
    other = tmp_path / "other.pem"
    other.write_bytes(_pem(Ed25519PrivateKey.generate()))
    wrong_key = _cli("compliance", "verify", str(out), "--key", str(other))
    assert (wrong_key.exit_code, wrong_key.stderr) == (1, f"invalid: {out}: signature: no valid signature by a trusted key\n")


def _pem(key: Ed25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def test_csv_and_pdf_renderings_name_the_signed_json(node: Settings, tmp_path: Path) -> None:  # noqa: F811
    pdf = tmp_path / "r.pdf"
    assert _cli("compliance", "report", "--region", "kz", "--out", str(pdf), "--format", "pdf").exit_code == 0
    assert pdf.read_bytes().startswith(b"%PDF-") and (tmp_path / "r.json").is_file()
    table = tmp_path / "r.csv"
    assert _cli("compliance", "report", "--region", "kz", "--out", str(table), "--format", "csv").exit_code == 0
    rows = {(r["section"], r["name"]): r["value"] for r in csv.DictReader(io.StringIO(table.read_text()))}
    assert rows[("scan", "ok")] == "true" and rows[("node", "region")] == "kz"
    assert rows[("datamap", "tables_by_residency.personal")] == str(sum(1 for _ in _personal_tables()))


def _personal_tables() -> list[str]:
    from medplat.db.models import all_mappers
    from medplat.residency import Residency, declared_residency

    return [m.local_table.fullname for m in all_mappers() if declared_residency(m.class_) is Residency.PERSONAL]


def _signed_copy(document: dict[str, Any], region: str, key: Ed25519PrivateKey, cluster: str) -> bytes:
    """The same summary as another node would sign it (its region, cluster and key; no checkpoint of its own here)."""
    copy = json.loads(json.dumps(document))
    copy["region"], copy["cluster"]["system_identifier"] = region, cluster
    copy["audit"] |= {"checkpoint": None, "checkpoint_size": None, "checkpoint_root": None}
    return reports.sign(copy, key, reports.SUMMARY_PAYLOAD_TYPE)


def _trust_dir(tmp_path: Path, keys: dict[str, Ed25519PrivateKey]) -> Path:
    import datetime

    now = datetime.datetime.now(datetime.UTC)
    window = {"not_before": now - datetime.timedelta(days=1), "not_after": now + datetime.timedelta(days=30)}
    nodes = {code: trust.TrustNode(keys=(trust.trust_key(k.public_key(), **window),)) for code, k in keys.items()}
    document = trust.new_document(version=1, threshold=1, nodes=nodes, issued_at=now, expires_at=now + datetime.timedelta(days=30))
    directory = tmp_path / "trust"
    directory.mkdir()
    trust.write_version(directory, trust.sign_document(document, keys.values()))
    return directory


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])", re.IGNORECASE)


def _strings(value: object) -> list[str]:
    """Every string in a JSON document, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _leaks(document: object, hashes: frozenset[str] = frozenset()) -> list[str]:
    """Strings that name a person, a row or an object: a uuid, an address of the scan (`#`, `s3://`), a declared key
    prefix, or anything the border check takes for a phone, e-mail or national id. `hashes` are hex digests the caller
    checks exactly (their digit runs can look like a phone number to the border check)."""
    from medplat.storage import PREFIXES
    from medsync.border import scan_text

    prefixes = [p.prefix for p in PREFIXES.values()]
    return [
        s for s in _strings(document)
        if s not in hashes and (UUID.search(s) or "#" in s or "s3://" in s or any(p in s for p in prefixes) or scan_text(s))
    ]  # fmt: skip


def _payload(data: bytes) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(base64.b64decode(json.loads(data)["payload"]))
    return document


async def test_the_signed_summary_holds_counts_and_verdicts_only_and_any_changed_byte_is_refused(
    client: Any,
    node: Settings,  # noqa: F811
    tmp_path: Path,
) -> None:
    from medplat.audit.note import parse_note
    from medplat.storage import DIPLOMA_SCANS
    from tests.integration.test_accounts import KZ_DOCTOR, PDF, register, sign_in
    from tests.integration.test_compliance_scan import _content

    # A node with everything a report names by id: a doctor of another country, a personal file in the shared
    # bucket, transfers of identified items, a data-subject request, a signed audit head.
    doctor = await register(client)
    tokens = await sign_in(client, node)
    assert (await client.get("/api/v1/me/export", headers=bearer(tokens["access_token"]))).status_code == 200
    _content(node)
    with Session(sync_db(node)) as session, session.begin():
        session.execute(text("UPDATE personal.doctor SET home_region = 'ru', citizenship = 'RU' WHERE id = :id"), {"id": doctor})
    stray = DIPLOMA_SCANS.key(str(uuid.uuid4()), "e" * 64)
    object_store(node).put(node.shared_bucket, stray, PDF, len(PDF), "application/pdf")
    item = uuid.uuid4()
    _record_transfers(node, item)
    assert _cli("audit", "checkpoint", "--region", "kz").exit_code == 0

    report, out = tmp_path / "r.json", tmp_path / "s.json"
    assert _cli("compliance", "report", "--region", "kz", "--out", str(report)).exit_code == 0
    made = _cli("compliance", "summary", "--region", "kz", "--out", str(out))
    assert made.exit_code == 0, made.output
    assert made.stdout.startswith(f"kz: signed residency summary written to {out} (scan FAILED, audit size ")
    # The report names them (the walk finds them there) ...
    leaked = _leaks(_payload(report.read_bytes()))
    assert f"personal.doctor#{doctor}" in leaked and any(stray in s for s in leaked)
    # ... the summary names none, and holds nothing of the person in any form.
    data = out.read_bytes()
    summary = _payload(data)
    assert _leaks(summary) == []
    text_of = json.dumps(summary, ensure_ascii=False)
    for value in (doctor, str(item), KZ_DOCTOR["full_name"], KZ_DOCTOR["email"], "555 12 34", "5551234", stray):
        assert value not in text_of
    assert set(summary) == {
        "spec",
        "region",
        "country",
        "law",
        "generated_at",
        "period",
        "cluster",
        "datamap",
        "scan",
        "transfers",
        "dsr",
        "audit",
    }
    assert summary["spec"] == "medfed-residency-summary/1" and summary["region"] == "kz"
    assert summary["cluster"] == {"system_identifier": _payload(report.read_bytes())["cluster"]["system_identifier"]}
    assert summary["scan"]["ok"] is False and summary["scan"]["by_severity"] == {"critical": 3, "violation": 0, "warning": 0}
    assert summary["scan"]["checks"]["home_region"] == {"passed": False, "critical": 2, "violation": 0, "warning": 0}
    assert summary["scan"]["checks"]["objects"] == {"passed": False, "critical": 1, "violation": 0, "warning": 0}
    assert summary["scan"]["checks"]["stores"] == {"passed": True, "critical": 0, "violation": 0, "warning": 0}
    assert sorted(summary["scan"]["checks"]) == sorted(json.loads(_cli("compliance", "scan", "--region", "kz", "--json").stdout)["checks"])
    out_bytes, in_bytes = (r["bytes"] for r in _payload(report.read_bytes())["transfers"]["by_peer"])
    assert summary["transfers"] == [
        {"direction": "in", "peer": "uz", "manifests": 1, "items": 1, "bytes": in_bytes,
         "by_status": {"rejected": {"manifests": 1, "items": 1, "bytes": in_bytes}}, "verdicts": {"rejected": 1}},
        {"direction": "out", "peer": "ru", "manifests": 1, "items": 1, "bytes": out_bytes,
         "by_status": {"applied": {"manifests": 1, "items": 1, "bytes": out_bytes}}, "verdicts": {"accepted": 1}},
    ]  # fmt: skip
    assert summary["dsr"] == {
        "open": {"on_time": 0, "due_soon": 0, "overdue": 0}, "answered": {"on_time": 1, "late": 0},
        "by_kind_and_status": {"access.completed": 1},
    }  # fmt: skip
    head = parse_note(summary["audit"]["checkpoint"])[0]
    assert (summary["audit"]["checkpoint_size"], summary["audit"]["checkpoint_root"]) == (head.size, base64.b64encode(head.root).decode())
    assert summary["datamap"] == _payload(report.read_bytes())["datamap"]

    key = _key_file(node, tmp_path)
    checked = _cli("compliance", "verify", str(out), "--key", str(key))
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.startswith("valid: medfed-residency-summary/1 of kz generated ")
    public = node.signing_key.public_key()
    for position in range(len(data)):
        tampered = bytearray(data)
        tampered[position] ^= 0x01
        with pytest.raises(reports.ReportError):
            reports.verify(bytes(tampered), lambda _r: [public])
    # A count lowered inside the signed payload, the signature kept: refused, and the file on disk is what was signed.
    envelope = json.loads(data)
    lowered = canonical_bytes(summary | {"scan": summary["scan"] | {"by_severity": {"critical": 0, "violation": 0, "warning": 0}}})
    changed = tmp_path / "changed.json"
    changed.write_bytes(data.replace(envelope["payload"].encode(), base64.b64encode(lowered)))
    refused = _cli("compliance", "verify", str(changed), "--key", str(key))
    assert (refused.exit_code, refused.stdout, refused.stderr) == (
        1,
        "",
        f"invalid: {changed}: signature: no valid signature by a trusted key\n",
    )
    assert out.read_bytes() == data


async def test_the_federation_view_comes_from_three_signed_summaries_and_refuses_anything_else(
    client: Any,
    node: Settings,  # noqa: F811
    tmp_path: Path,
) -> None:
    kz_file, report_file = tmp_path / "kz.json", tmp_path / "report-kz.json"
    assert _cli("compliance", "summary", "--region", "kz", "--out", str(kz_file)).exit_code == 0
    assert _cli("compliance", "report", "--region", "kz", "--out", str(report_file)).exit_code == 0
    kz = kz_file.read_bytes()
    document = reports.verify(kz, lambda _r: [node.signing_key.public_key()], expect=reports.SUMMARY_PAYLOAD_TYPE).document
    keys = {"kz": node.signing_key, "ru": Ed25519PrivateKey.generate(), "uz": Ed25519PrivateKey.generate()}
    files = {"kz": kz, "ru": _signed_copy(document, "ru", keys["ru"], "1"), "uz": _signed_copy(document, "uz", keys["uz"], "2")}
    for code, data in files.items():
        (tmp_path / f"{code}.json").write_bytes(data)
    directory = _trust_dir(tmp_path, keys)
    three = [str(tmp_path / f"{c}.json") for c in ("ru", "kz", "uz")]
    shown = _cli("compliance", "federation", *three, "--trust-dir", str(directory))
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[-1] == (
        f"federation (3 nodes, keys from federation trust file version 1 in {directory}): "
        "all ok; 0 manifests out, 0 in; separate clusters: yes"
    )
    view = json.loads(_cli("compliance", "federation", *three, "--trust-dir", str(directory), "--json").stdout)
    assert sorted(view["nodes"]) == ["kz", "ru", "uz"] and view["all_ok"] is True and view["separate_clusters"] is True
    assert view["totals"] == dict.fromkeys(
        ("manifests_out", "manifests_in", "items_out", "items_in", "bytes_out", "bytes_in", "critical", "violation", "warning",
         "dsr_open_overdue", "dsr_answered_late"), 0,
    )  # fmt: skip
    digests = {c: (hashlib.sha256(files[c]).hexdigest(), key_id(keys[c].public_key())) for c in files}
    assert {c: (n["summary_sha256"], n["signing_key_id"]) for c, n in view["nodes"].items()} == digests
    hashes = frozenset(h for pair in digests.values() for h in pair)
    assert view["nodes"]["kz"]["failed_checks"] == [] and _leaks(view, hashes) == []

    forged = tmp_path / "forged.json"
    forged.write_bytes(_signed_copy(document, "uz", keys["ru"], "3"))  # ru's key signing as uz
    again = tmp_path / "kz-again.json"
    again.write_bytes(_signed_copy(document, "kz", keys["kz"], document["cluster"]["system_identifier"]))
    flipped = bytearray(files["uz"])
    flipped[len(flipped) // 2] ^= 0x01
    (tmp_path / "flipped.json").write_bytes(bytes(flipped))
    report_refusal = (
        "a residency report, not a residency summary: the federation view is built from each node's signed summary "
        "(`medfed compliance summary`) only"
    )
    for given, line in (
        (report_file, f"invalid: {report_file}: {report_refusal}"),
        (forged, f"invalid: {forged}: signature: no valid signature by a trusted key"),
        (again, f"invalid: {again}: a second summary of kz (the first is {tmp_path / 'kz.json'}): give one summary per node"),
    ):
        refused = _cli("compliance", "federation", str(tmp_path / "kz.json"), str(given), "--trust-dir", str(directory))
        assert (refused.exit_code, refused.stdout, refused.stderr) == (1, "", line + "\n")
    refused = _cli("compliance", "federation", str(tmp_path / "flipped.json"), "--trust-dir", str(directory))
    assert (refused.exit_code, refused.stdout) == (1, "") and refused.stderr.startswith(f"invalid: {tmp_path / 'flipped.json'}: ")
    assert refused.stderr.count("\n") == 1

    app_settings = msgspec.structs.replace(node, trust_dir=str(directory))
    from litestar.testing import AsyncTestClient

    async with AsyncTestClient(app=create_app(app_settings)) as hq_client:
        hq = bearer(issue_token(node, "hq-officer", [Role.HQ]))
        officer = bearer(issue_token(node, "officer-1", [Role.COMPLIANCE]))
        served = await hq_client.get("/api/v1/compliance/summary", headers=officer)
        assert served.status_code == 200 and served.headers["content-disposition"] == 'attachment; filename="summary-kz.json"'
        assert reports.verify(served.content, lambda _r: [node.signing_key.public_key()], expect=reports.SUMMARY_PAYLOAD_TYPE)
        body = {"summaries": [files[c].decode() for c in ("kz", "ru", "uz")]}
        answer = await hq_client.post("/api/v1/compliance/federation/summary", json=body, headers=hq)
        assert answer.status_code == 200, answer.text
        assert answer.json() == view  # the same view as the CLI's, from the same three files
        assert '"findings"' not in answer.text and '"object"' not in answer.text and _leaks(answer.json(), hashes) == []
        assert (await hq_client.post("/api/v1/compliance/federation/summary", json=body, headers=officer)).status_code == 403
        for path in (
            "/api/v1/compliance/transfers",
            "/api/v1/compliance/datamap",
            "/api/v1/compliance/report",
            "/api/v1/compliance/summary",
            "/api/v1/compliance/data-subject-requests",
        ):
            assert (await hq_client.get(path, headers=hq)).status_code == 403, path
        for given, detail in (
            (report_file.read_bytes(), f"summaries[1]: {report_refusal}"),
            (forged.read_bytes(), "summaries[1]: signature: no valid signature by a trusted key"),
            (again.read_bytes(), "two summaries of kz: give one summary per node"),
        ):
            bad = await hq_client.post(
                "/api/v1/compliance/federation/summary", json={"summaries": [kz.decode(), given.decode()]}, headers=hq
            )
            assert (bad.status_code, bad.headers["content-type"], bad.json()["detail"]) == (422, "application/problem+json", detail)
            assert "nodes" not in bad.json()
        old = await hq_client.post("/api/v1/compliance/federation/summary", json={"reports": [kz.decode()]}, headers=hq)
        assert old.status_code == 400  # the body of the report era is refused, not half-read
    # The test node's own app has no trust file: nothing can be verified, so nothing is summed.
    untrusted = await client.post("/api/v1/compliance/federation/summary", json=body, headers=hq)
    assert (untrusted.status_code, untrusted.json()["detail"]) == (503, f"no 1.trust.json in {node.trust_dir}")
    # Another node's compliance officer: a token of ru is refused by kz (own node only).
    ru_settings = msgspec.structs.replace(node, region=msgspec.structs.replace(node.region, code="ru"))
    ru_officer = bearer(issue_token(ru_settings, "officer-ru", [Role.COMPLIANCE]))
    denied = await client.get("/api/v1/compliance/transfers", headers=ru_officer)
    assert (denied.status_code, denied.json()["detail"]) == (401, "token was not issued by this node")


DOC = SharedDocument(
    kind="article", category="dermatology", specializations=(), languages=("ru",), texts=(Text(language="ru", title="T", body="B"),)
)


def _receipt(origin: str, target: str, sequence: int, digest: str, *items: tuple[uuid.UUID, int, str, str]) -> Receipt:
    """A receipt as the target signs it: each item (id, version, status, reason code or '')."""
    entries = tuple(ReceiptItem(str(i), v, status, (ReceiptReason(code, code),) if code else ()) for i, v, status, code in items)
    refused = any(status == "refused" for _, _, status, _ in items)
    return Receipt(spec=RECEIPT_SPEC, origin=origin, target=target, sequence=sequence, manifest_hash=digest,
                   status="rejected" if refused else "applied", decided_at="2026-03-02T12:00:00Z", items=entries)  # fmt: skip


def _record_transfers(settings: Settings, item: uuid.UUID) -> None:
    """One manifest out to ru (applied) and one in from uz (rejected), as the sync service records them."""
    import datetime

    doc = DOC
    out_env, _, out_hash = manifest.build(
        origin="kz", target="ru", sequence=1, previous="", items=[manifest.upsert_item(str(item), 1, doc)], keys=[settings.signing_key]
    )
    peer = Ed25519PrivateKey.generate()
    other = uuid.uuid4()
    in_env, _, in_hash = manifest.build(
        origin="uz", target="kz", sequence=1, previous="", items=[manifest.upsert_item(str(other), 1, doc)], keys=[peer]
    )
    day = datetime.datetime(2026, 3, 2, 12, tzinfo=datetime.UTC)
    with Session(sync_db(settings)) as session, session.begin():
        session.add(
            ManifestOut(
                target="ru",
                sequence=1,
                manifest_hash=out_hash,
                envelope=out_env.encode(),
                items=1,
                bytes=len(out_env.encode()),
                status="applied",
                created_at=day,
                receipt=msgspec.to_builtins(_receipt("kz", "ru", 1, out_hash, (item, 1, "applied", ""))),
            )
        )
        ours = sign_receipt(_receipt("uz", "kz", 1, in_hash, (other, 1, "refused", "policy.language")), settings.signing_key)
        received = ManifestIn(
            origin="uz", sequence=1, manifest_hash=in_hash, in_chain=True, envelope=in_env.encode(), status="rejected", items=1,
            bytes=len(in_env.encode()), received_at=day + datetime.timedelta(days=10), reasons=[{"code": "policy.language"}],
            receipt={"envelope": ours.encode().decode(), "sent": True},
        )  # fmt: skip
        session.add(received)
        session.add(Verdict(item_id=item, version=1, origin="kz", target="ru", stage="apply", accepted=True, reasons=[]))
        session.add(
            Verdict(
                item_id=other, version=1, origin="uz", target="kz", stage="apply", accepted=False, reasons=[{"code": "policy.language"}]
            )
        )


async def test_the_transfer_register_by_period_region_and_item(client: Any, node: Settings) -> None:  # noqa: F811
    item = uuid.uuid4()
    _record_transfers(node, item)
    officer = bearer(issue_token(node, "officer-1", [Role.COMPLIANCE]))
    everything = (await client.get("/api/v1/compliance/transfers", headers=officer)).json()
    assert [(t["direction"], t["peer"], t["status"], t["categories"], t["verdicts"]) for t in everything["transfers"]] == [
        ("out", "ru", "applied", ["dermatology"], {str(item): "accepted"}),
        ("in", "uz", "rejected", ["dermatology"], {everything["transfers"][1]["item_ids"][0]: "rejected"}),
    ]
    with Session(sync_db(node)) as session:
        sent = Envelope.decode(session.scalars(select(ManifestOut.envelope)).one(), max_bytes=1 << 20)
    assert everything["transfers"][0]["signatures"] == [{"keyid": key_id(node.signing_key.public_key()), "sig": sent.signatures[0].sig}]
    assert everything["transfers"][0]["verdicts_from"] == everything["transfers"][1]["verdicts_from"] == "receipt"
    assert everything["transfers"][1]["reasons"] == ["policy.language"]
    march = (await client.get("/api/v1/compliance/transfers?from=2026-03-01&to=2026-03-05", headers=officer)).json()["transfers"]
    assert [t["peer"] for t in march] == ["ru"]
    assert [t["peer"] for t in (await client.get("/api/v1/compliance/transfers?region=uz", headers=officer)).json()["transfers"]] == ["uz"]
    by_item = (await client.get(f"/api/v1/compliance/transfers?item={item}", headers=officer)).json()
    assert [t["peer"] for t in by_item["transfers"]] == ["ru"] and by_item["totals"]["out:ru"]["verdicts"] == {"accepted": 1}
    as_csv = await client.get("/api/v1/compliance/transfers?format=csv", headers=officer)
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert (rows[0]["direction"], rows[0]["peer"], rows[0]["verdicts"]) == ("out", "ru", f"{item}=accepted")
    bad = await client.get("/api/v1/compliance/transfers?from=2026-03-05&to=2026-03-01", headers=officer)
    assert (bad.status_code, bad.headers["content-type"]) == (400, "application/problem+json")
    cli = _cli("compliance", "transfers", "--region", "kz", "--peer", "ru", "--csv")
    assert cli.exit_code == 0 and cli.stdout.splitlines()[1].startswith("out,ru,1,")
    assert (await client.get("/api/v1/compliance/transfers", headers=bearer(issue_token(node, "m", [Role.MODERATOR])))).status_code == 403


async def test_each_register_row_carries_its_own_manifest_signatures_and_verdicts(client: Any, node: Settings) -> None:  # noqa: F811
    """An item sent in three manifests: #1 rejected (the item skipped because another was refused), #2 applied, #3 not
    answered yet. Each row shows that manifest's verdicts, not the item's latest, and the envelope's own signatures."""
    import datetime

    item, other = uuid.uuid4(), uuid.uuid4()
    day = datetime.datetime(2026, 3, 2, 12, tzinfo=datetime.UTC)
    key = node.signing_key
    first, _, first_hash = manifest.build(
        origin="kz", target="ru", sequence=1, previous="", keys=[key],
        items=[manifest.upsert_item(str(item), 1, DOC), manifest.upsert_item(str(other), 1, DOC)],
    )  # fmt: skip
    second, _, second_hash = manifest.build(
        origin="kz", target="ru", sequence=2, previous=first_hash, items=[manifest.upsert_item(str(item), 1, DOC)], keys=[key]
    )
    third, _, third_hash = manifest.build(
        origin="kz", target="ru", sequence=3, previous=second_hash, items=[manifest.upsert_item(str(item), 2, DOC)], keys=[key]
    )
    rejected = _receipt("kz", "ru", 1, first_hash, (item, 1, "skipped", "manifest.rejected"), (other, 1, "refused", "policy.language"))
    applied = _receipt("kz", "ru", 2, second_hash, (item, 1, "applied", ""))
    with Session(sync_db(node)) as session, session.begin():
        for sequence, (env, digest, status, receipt) in enumerate(
            [(first, first_hash, "rejected", rejected), (second, second_hash, "applied", applied), (third, third_hash, "delivered", None)],
            start=1,
        ):
            at = day + datetime.timedelta(hours=sequence)
            # The send-stage verdicts the outbound worker writes in the manifest's own transaction, just before it.
            for sent_id, version in manifest_items(env):
                session.add(Verdict(item_id=sent_id, version=version, origin="kz", target="ru", stage="send", accepted=True, reasons=[],
                                    created_at=at - datetime.timedelta(seconds=1)))  # fmt: skip
            session.add(
                ManifestOut(target="ru", sequence=sequence, manifest_hash=digest, envelope=env.encode(), items=len(manifest_items(env)),
                            bytes=len(env.encode()), status=status, created_at=at,
                            receipt=msgspec.to_builtins(receipt) if receipt else None)
            )  # fmt: skip
    officer = bearer(issue_token(node, "officer-1", [Role.COMPLIANCE]))
    rows = (await client.get(f"/api/v1/compliance/transfers?item={item}", headers=officer)).json()["transfers"]
    assert [(r["sequence"], r["status"], r["versions"], r["verdicts"], r["verdicts_from"]) for r in rows] == [
        (1, "rejected", {str(item): 1, str(other): 1}, {str(item): "skipped", str(other): "rejected"}, "receipt"),
        (2, "applied", {str(item): 1}, {str(item): "accepted"}, "receipt"),
        (3, "delivered", {str(item): 2}, {str(item): "accepted"}, "send"),
    ]
    public = key.public_key()
    for row, env in zip(rows, (first, second, third), strict=True):
        assert row["signatures"] == [{"keyid": key_id(public), "sig": env.signatures[0].sig}]
        # The value is the manifest's real signature: it verifies over the stored payload.
        public.verify(base64.b64decode(row["signatures"][0]["sig"]), pae(env.payloadType, env.payload_bytes()))
    table = list(csv.DictReader(io.StringIO((await client.get("/api/v1/compliance/transfers?format=csv", headers=officer)).text)))
    first_verdicts = " ".join(f"{k}={v}" for k, v in sorted({str(item): "skipped", str(other): "rejected"}.items()))
    assert [(r["sequence"], r["verdicts"], r["verdicts_from"], r["signatures"]) for r in table] == [
        ("1", first_verdicts, "receipt", f"{key_id(public)}:{first.signatures[0].sig}"),
        ("2", f"{item}=accepted", "receipt", f"{key_id(public)}:{second.signatures[0].sig}"),
        ("3", f"{item}=accepted", "send", f"{key_id(public)}:{third.signatures[0].sig}"),
    ]
    assert table[0]["versions"] == f"{item}=1 {other}=1"


def manifest_items(envelope: Envelope) -> list[tuple[uuid.UUID, int]]:
    body = msgspec.json.decode(envelope.payload_bytes(), type=manifest.ManifestBody)
    return [(uuid.UUID(i.id), i.version) for i in body.items]
