"""Publish once to chosen regions: real nodes, each with its own database and buckets, real HTTP between them."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Engines
from tests.sync_harness import Node, deliver, draft, editor_headers, start_nodes

PICTURE = os.urandom(300_000)


@pytest.fixture(scope="module")
def nodes(engines: Engines, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Node]]:
    yield from start_nodes(engines, tmp_path_factory.mktemp("flow"), ["ru", "kz", "uz"], serve=["ru", "kz", "uz"], tag="flow")


@pytest.fixture(autouse=True)
def empty(nodes: dict[str, Node]) -> Iterator[None]:
    yield
    for node in nodes.values():
        node.empty()


def publish(ru: Node, targets: list[str], **extra: object) -> str:
    headers = editor_headers(ru)
    created = httpx.post(f"{ru.url}/api/v1/content", json=draft(targets=targets, **extra), headers=headers)
    assert created.status_code == 201, created.text
    item_id = created.json()["id"]
    media = httpx.put(f"{ru.url}/api/v1/content/{item_id}/media", content=PICTURE, headers={**headers, "Content-Type": "image/png"})
    assert media.status_code == 201, media.text
    assert media.json()["sha256"] == hashlib.sha256(PICTURE).hexdigest()
    published = httpx.post(f"{ru.url}/api/v1/content/{item_id}/publish", headers=headers)
    assert published.status_code == 200, published.text
    return str(item_id)


def test_published_content_reaches_only_its_targets_with_its_media(nodes: dict[str, Node]) -> None:
    ru, kz, uz = nodes["ru"], nodes["kz"], nodes["uz"]
    item_id = publish(ru, ["kz"])
    deliver(ru, kz)
    state = kz.state()
    assert [(str(i), v, s) for i, v, s in state["items"]] == [(item_id, 1, "published")], kz.decisions()
    sha = hashlib.sha256(PICTURE).hexdigest()
    assert state["blobs"] == [f"received/ru/{sha}"]
    assert kz.ctx.store.get(kz.settings.shared_bucket, f"received/ru/{sha}") == PICTURE
    assert uz.state()["items"] == []
    deliveries = httpx.get(f"{ru.url}/api/v1/content/{item_id}/deliveries", headers=editor_headers(ru)).json()
    assert [(d["target"], d["status"], d["version"]) for d in deliveries] == [("kz", "applied", 1)]


def test_retract_from_one_region_removes_the_item_and_its_blobs_there_only(nodes: dict[str, Node]) -> None:
    ru, kz, uz = nodes["ru"], nodes["kz"], nodes["uz"]
    item_id = publish(ru, ["kz", "uz"])
    deliver(ru, kz)
    deliver(ru, uz)
    retracted = httpx.post(f"{ru.url}/api/v1/content/{item_id}/retract", json={"regions": ["kz"]}, headers=editor_headers(ru))
    assert retracted.json() == ["kz"]
    deliver(ru, kz)
    assert [(str(i), s) for i, _, s in kz.state()["items"]] == [(item_id, "retracted")]
    assert kz.state()["media"] == [] and kz.state()["blobs"] == []
    assert [(str(i), s) for i, _, s in uz.state()["items"]] == [(item_id, "published")]
    assert len(uz.state()["blobs"]) == 1
    deliveries = httpx.get(f"{ru.url}/api/v1/content/{item_id}/deliveries", headers=editor_headers(ru)).json()
    assert [(d["target"], d["op"], d["status"]) for d in deliveries] == [("kz", "tombstone", "applied"), ("uz", "upsert", "applied")]


def test_preview_shows_each_targets_verdict_and_publish_records_them(nodes: dict[str, Node]) -> None:
    ru = nodes["ru"]
    headers = editor_headers(ru)
    created = httpx.post(
        f"{ru.url}/api/v1/content", json=draft(category="clinical_research", kind="article", targets=["kz", "uz"]), headers=headers
    )
    item_id = created.json()["id"]
    preview = httpx.post(f"{ru.url}/api/v1/content/{item_id}/preview", headers=headers).json()
    verdicts = {v["target"]: (v["accepted"], [r["code"] for r in v["reasons"]]) for v in preview}
    assert verdicts["kz"][0] is False
    published = httpx.post(f"{ru.url}/api/v1/content/{item_id}/publish", headers=headers).json()
    refused = [v["target"] for v in published["verdicts"] if not v["accepted"]]
    deliveries = httpx.get(f"{ru.url}/api/v1/content/{item_id}/deliveries", headers=headers).json()
    assert {d["target"] for d in deliveries if d["status"] == "refused"} == set(refused)
    assert refused, "ru's clinical research must be refused by at least one target's policy"


def test_a_second_delivery_round_changes_nothing(nodes: dict[str, Node]) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    publish(ru, ["kz"])
    deliver(ru, kz)
    before = kz.state()
    deliver(ru, kz)
    assert kz.state() == before


def test_the_editor_api_requires_an_editor_token_of_this_node(nodes: dict[str, Node]) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    assert httpx.post(f"{ru.url}/api/v1/content", json=draft()).status_code == 401
    foreign = httpx.post(f"{ru.url}/api/v1/content", json=draft(), headers=editor_headers(kz))
    assert foreign.status_code == 401
    assert foreign.json()["title"] == "invalid token"  # signed by another node's key
    assert ru.count("SELECT count(*) FROM shared.content_item") == 0


def test_anti_entropy_is_a_no_op_in_sync_and_repairs_a_divergence(nodes: dict[str, Node]) -> None:
    from sqlalchemy import text

    from medsync.reconcile import reconcile

    ru, kz = nodes["ru"], nodes["kz"]
    first = publish(ru, ["kz"])
    second = publish(ru, ["kz"])
    deliver(ru, kz)
    with httpx.Client(timeout=30) as http:
        assert reconcile(ru.ctx, "kz", http).in_sync
        # kz loses one item (say, a restore from an older backup); the channel itself looks healthy.
        with kz.ctx.engine.begin() as conn:
            conn.execute(text("DELETE FROM shared.content_item WHERE id = :id"), {"id": second})
        result = reconcile(ru.ctx, "kz", http)
    assert (result.in_sync, result.compared, result.requeued) == (False, 2, 1)
    deliver(ru, kz)
    assert sorted(str(i) for i, _, _ in kz.state()["items"]) == sorted([first, second])
    with httpx.Client(timeout=30) as http:
        assert reconcile(ru.ctx, "kz", http).in_sync


def test_only_the_origin_of_a_channel_may_read_its_digest(nodes: dict[str, Node]) -> None:
    from medsync.transport import mint_token

    ru, kz, uz = nodes["ru"], nodes["kz"], nodes["uz"]
    token = mint_token("uz", "kz", uz.key)
    answer = httpx.get(f"{kz.url}/federation/v1/digest", params={"origin": "ru"}, headers={"Authorization": f"Bearer {token}"})
    assert (answer.status_code, answer.json()["code"]) == (403, "reconcile.not_your_channel")
    del ru


def test_a_target_that_lost_its_channel_is_sent_everything_again_from_where_it_stands(nodes: dict[str, Node]) -> None:
    from sqlalchemy import text

    ru, kz = nodes["ru"], nodes["kz"]
    ids = [publish(ru, ["kz"]) for _ in range(2)]
    deliver(ru, kz)
    # kz is restored from a backup taken before anything arrived: its channel starts again at 1.
    kz.empty()
    ids.append(publish(ru, ["kz"]))
    deliver(ru, kz)  # the first two went in manifest 1; ru offers 2, kz answers "expected 1", ru resends 1 and 2
    assert sorted(str(i) for i, _, _ in kz.state()["items"]) == sorted(ids)
    with kz.ctx.engine.connect() as conn:
        sequences = conn.execute(text("SELECT sequence, status FROM federation.manifest_in WHERE in_chain ORDER BY sequence")).all()
    assert [tuple(row) for row in sequences] == [(1, "applied"), (2, "applied")], kz.decisions()
    assert kz.refusals() == [("ru", "sequence.gap")]


def test_every_manifest_leaves_a_verifiable_audit_trail_on_both_sides(nodes: dict[str, Node]) -> None:
    import json

    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from medplat.audit import log
    from medplat.audit.verify import verify_log

    ru, kz = nodes["ru"], nodes["kz"]
    item_id = publish(ru, ["kz"])
    deliver(ru, kz)

    def trail(node: Node) -> list[tuple[str, dict[str, object]]]:
        with node.ctx.engine.connect() as conn:
            rows = conn.execute(text("SELECT kind, entry FROM audit.leaf ORDER BY idx")).all()
        return [(kind, json.loads(entry)["payload"]) for kind, entry in rows]

    with ru.ctx.engine.connect() as conn:
        digest = conn.execute(text("SELECT manifest_hash FROM federation.manifest_out")).scalar_one()
    [(published_kind, published), (checked_kind, checked), (kind, sent)] = trail(ru)
    assert (published_kind, published) == ("policy_verdict", {
        "stage": "publish", "item_id": item_id, "version": 1, "verdicts": [{"target": "kz", "accepted": True, "codes": []}],
    })  # fmt: skip
    assert (checked_kind, checked) == ("policy_verdict", {
        "stage": "send", "target": "kz", "sequence": 1, "manifest_hash": digest,
        "verdicts": [{"item_id": item_id, "version": 1, "accepted": True, "codes": []}],
    })  # fmt: skip
    assert kind == "manifest_sent"
    assert sent == {"target": "kz", "sequence": 1, "manifest_hash": digest, "items": 1, "bytes": sent["bytes"],
                    "categories": ["product_note"], "refused_at_send": 0}  # fmt: skip
    [(received_kind, received), (verdict_kind, verdict)] = trail(kz)
    assert (received_kind, received["manifest_hash"], received["status"]) == ("manifest_received", digest, "received")
    applied = (verdict_kind, verdict["stage"], verdict["manifest_hash"], verdict["status"], verdict["applied"])
    assert applied == ("policy_verdict", "apply", digest, "applied", 1)
    for node in (ru, kz):
        with Session(node.ctx.engine) as session, session.begin():
            assert log.checkpoint(session, node.code, node.key) is not None
        with Session(node.ctx.engine) as session:
            report = verify_log(session, node.code, lambda region, n=node: [n.key.public_key()] if region == n.code else [])
        assert report.ok and report.leaves == len(trail(node)), report.failures
