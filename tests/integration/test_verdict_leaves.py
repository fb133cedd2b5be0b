"""Policy verdicts on the origin are audit leaves: one per publish call (all its targets) and one per manifest build
(all its items), in the transaction that records the verdict rows; a preview records rows but no leaf."""

from __future__ import annotations

import datetime
import json
import shutil
import uuid
from pathlib import Path
from typing import Any, get_args

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from medplat.audit.log import AuditKind, entry_bytes
from medplat.audit.models import AuditLeaf
from medplat.config import Settings, regions_dir
from medplat.node import sync_db
from medplat.security import Role
from medsync.context import context_for
from medsync.models import ManifestOut, Verdict
from medsync.outbound import MAX_ITEMS_PER_MANIFEST, build_manifests
from medsync.policy import ReasonCode
from tests.integration.test_accounts import staff


def _leaves(settings: Settings) -> list[tuple[str, dict[str, Any]]]:
    with Session(sync_db(settings)) as session:
        rows = session.execute(select(AuditLeaf.kind, AuditLeaf.entry).order_by(AuditLeaf.idx)).all()
    return [(kind, json.loads(entry)["payload"]) for kind, entry in rows]


def _verdict_rows(settings: Settings) -> list[tuple[str, str, str, bool]]:
    with Session(sync_db(settings)) as session:
        rows = session.execute(select(Verdict.stage, Verdict.target, Verdict.item_id, Verdict.accepted).order_by(Verdict.id)).all()
    return [(stage, target, str(item_id), accepted) for stage, target, item_id, accepted in rows]


async def _draft(client: Any, settings: Settings, targets: list[str], **fields: Any) -> str:
    body = {"kind": "article", "category": "education", "texts": [{"language": "uz", "title": "Dermatoskopiya", "body": "Matn."}],
            "targets": targets, **fields}  # fmt: skip
    created = await client.post("/api/v1/content", json=body, headers=staff(settings, Role.EDITOR, "editor-1"))
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def _publish(client: Any, settings: Settings, item_id: str) -> None:
    published = await client.post(f"/api/v1/content/{item_id}/publish", headers=staff(settings, Role.EDITOR, "editor-1"))
    assert published.status_code == 200, published.text


async def test_a_publish_to_two_targets_is_one_leaf_with_both_verdicts_and_a_preview_none(client: Any, settings: Settings) -> None:
    item = await _draft(client, settings, ["ru", "uz"])
    preview = await client.post(f"/api/v1/content/{item}/preview", headers=staff(settings, Role.EDITOR, "editor-1"))
    assert preview.status_code == 200, preview.text
    assert _leaves(settings) == []
    await _publish(client, settings, item)
    # ru needs a Russian text, uz takes an Uzbek one.
    assert _leaves(settings) == [
        ("policy_verdict", {"stage": "publish", "item_id": item, "version": 1, "verdicts": [
            {"target": "ru", "accepted": False, "codes": ["policy.language_required"]},
            {"target": "uz", "accepted": True, "codes": []},
        ]}),
    ]  # fmt: skip
    assert _verdict_rows(settings) == [
        ("preview", "ru", item, False), ("preview", "uz", item, True), ("publish", "ru", item, False), ("publish", "uz", item, True),
    ]  # fmt: skip


def _narrow(policies: Path, region: str, categories: list[str]) -> None:
    """`region` now takes only `categories` from kz: its rules changed after kz published."""
    path = policies / region / "policy.toml"
    text = path.read_text()
    assert text.count("[inbound.origins.kz]\n") == 1
    path.write_text(text.replace("[inbound.origins.kz]\n", f"[inbound.origins.kz]\ncategories = {json.dumps(categories)}\n"))


async def test_a_manifest_build_is_one_leaf_with_its_items_verdicts(
    client: Any, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policies = tmp_path / "regions"
    shutil.copytree(regions_dir(), policies)
    monkeypatch.setenv("MEDFED_REGIONS_DIR", str(policies))
    article = await _draft(client, settings, ["uz"])
    note = await _draft(
        client, settings, ["ru", "uz"], kind="product_note", category="product_note",
        texts=[{"language": "ru", "title": "Новая упаковка", "body": "Текст."}],
    )  # fmt: skip
    for item in (article, note):
        await _publish(client, settings, item)
    _narrow(policies, "uz", ["product_note"])
    _narrow(policies, "ru", ["event"])
    published = len(_leaves(settings))

    ctx = context_for(settings)
    assert build_manifests(ctx, "uz") == 1
    assert build_manifests(ctx, "ru") == 0  # its only item is refused now: no manifest, the verdict is logged all the same
    with Session(sync_db(settings)) as session:
        digest = session.scalars(select(ManifestOut.manifest_hash).where(ManifestOut.target == "uz")).one()
    built = _leaves(settings)[published:]
    assert [kind for kind, _ in built] == ["policy_verdict", "manifest_sent", "policy_verdict"]
    assert built[0][1] == {
        "stage": "send", "target": "uz", "sequence": 1, "manifest_hash": digest, "verdicts": [
            {"item_id": article, "version": 1, "accepted": False, "codes": ["policy.category_not_accepted"]},
            {"item_id": note, "version": 1, "accepted": True, "codes": []},
        ],
    }  # fmt: skip
    assert (built[1][1]["manifest_hash"], built[1][1]["items"], built[1][1]["refused_at_send"]) == (digest, 1, 1)
    assert built[2][1] == {
        "stage": "send", "target": "ru", "sequence": None, "manifest_hash": None,
        "verdicts": [{"item_id": note, "version": 1, "accepted": False, "codes": ["policy.category_not_accepted"]}],
    }  # fmt: skip
    sent = [row for row in _verdict_rows(settings) if row[0] == "send"]
    assert sent == [("send", "uz", article, False), ("send", "uz", note, True), ("send", "ru", note, False)]


def test_the_largest_send_leaf_fits_an_audit_entry() -> None:
    """A full manifest whose every item has every reason code: building it must never fail on the leaf's size."""
    verdicts = [
        {"item_id": str(uuid.uuid4()), "version": 2**53 - 1, "accepted": False, "codes": sorted(get_args(ReasonCode))}
        for _ in range(MAX_ITEMS_PER_MANIFEST)
    ]
    payload = {"stage": "send", "target": "uz", "sequence": 2**53 - 1, "manifest_hash": "ab" * 32, "verdicts": verdicts}
    entry = entry_bytes(AuditKind.POLICY_VERDICT, datetime.datetime.now(datetime.UTC), payload)
    assert json.loads(entry)["payload"]["verdicts"] == verdicts
