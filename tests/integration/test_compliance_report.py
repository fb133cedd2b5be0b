"""Signed residency reports (verify offline; every changed byte is refused), CSV and PDF renderings, the federation
summary from signed reports only, the transfer register, and the role guards of the compliance API."""

from __future__ import annotations

import base64
import csv
import io
import json
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from medplat.app import create_app
from medplat.cli import main
from medplat.compliance import report as reports
from medplat.config import Settings
from medplat.node import sync_db
from medplat.security import Role, issue_token
from medsync import manifest, trust
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
        "is neither a residency report nor a destruction act\n"
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
    """The same report as another node would sign it (its region, cluster and key)."""
    copy = json.loads(json.dumps(document))
    copy["region"], copy["cluster"]["system_identifier"] = region, cluster
    copy["node"]["signing_key_id"] = key_id(key.public_key())
    copy["audit"]["checkpoint"] = None
    return reports.sign(copy, key)


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


async def test_the_federation_summary_holds_counts_only_and_hq_sees_nothing_else(client: Any, node: Settings, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "kz.json"
    assert _cli("compliance", "report", "--region", "kz", "--out", str(out)).exit_code == 0
    kz = out.read_bytes()
    document = reports.verify(kz, lambda _r: [node.signing_key.public_key()]).document
    keys = {"kz": node.signing_key, "ru": Ed25519PrivateKey.generate(), "uz": Ed25519PrivateKey.generate()}
    files = {"kz": kz, "ru": _signed_copy(document, "ru", keys["ru"], "1"), "uz": _signed_copy(document, "uz", keys["uz"], "2")}
    for code, data in files.items():
        (tmp_path / f"{code}.json").write_bytes(data)
    directory = _trust_dir(tmp_path, keys)
    summary = _cli("compliance", "summary", *(str(tmp_path / f"{c}.json") for c in ("ru", "kz", "uz")), "--trust-dir", str(directory))
    assert summary.exit_code == 0, summary.output
    assert summary.stdout.splitlines()[-1] == (
        f"federation (3 nodes, keys from federation trust file version 1 in {directory}): "
        "all ok; 0 manifests out, 0 in; separate clusters: yes"
    )
    forged = _signed_copy(document, "uz", keys["ru"], "3")  # ru's key signing as uz
    (tmp_path / "forged.json").write_bytes(forged)
    refused = _cli("compliance", "summary", str(tmp_path / "kz.json"), str(tmp_path / "forged.json"), "--trust-dir", str(directory))
    assert (refused.exit_code, refused.stderr) == (
        1,
        f"invalid: {tmp_path / 'forged.json'}: signature: no valid signature by a trusted key\n",
    )

    app_settings = msgspec.structs.replace(node, trust_dir=str(directory))
    from litestar.testing import AsyncTestClient

    async with AsyncTestClient(app=create_app(app_settings)) as hq_client:
        hq = bearer(issue_token(node, "hq-officer", [Role.HQ]))
        officer = bearer(issue_token(node, "officer-1", [Role.COMPLIANCE]))
        body = {"reports": [files[c].decode() for c in ("kz", "ru", "uz")]}
        answer = await hq_client.post("/api/v1/compliance/federation/summary", json=body, headers=hq)
        assert answer.status_code == 200, answer.text
        assert set(answer.json()["nodes"]) == {"kz", "ru", "uz"} and answer.json()["all_ok"] is True
        assert "findings" not in answer.text and "object" not in answer.text
        assert (await hq_client.post("/api/v1/compliance/federation/summary", json=body, headers=officer)).status_code == 403
        for path in (
            "/api/v1/compliance/transfers",
            "/api/v1/compliance/datamap",
            "/api/v1/compliance/report",
            "/api/v1/compliance/data-subject-requests",
        ):
            assert (await hq_client.get(path, headers=hq)).status_code == 403, path
        bad = await hq_client.post(
            "/api/v1/compliance/federation/summary", json={"reports": [files["kz"].decode(), forged.decode()]}, headers=hq
        )
        assert bad.status_code == 422 and bad.json()["detail"] == "signature: no valid signature by a trusted key"
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
