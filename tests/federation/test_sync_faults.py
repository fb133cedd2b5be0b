"""Faults the sync must survive (section 7 of the design): nothing lost, nothing applied twice, order kept.

- the target down while the origin keeps publishing;
- the object store unavailable for a while;
- the apply worker killed with SIGKILL at random points (never a partial manifest visible);
- the broker restarted mid-stream, with real Celery workers on both nodes;
- a peer URL in plain http:// off loopback (a configuration mistake): refused before anything is sent,
  shown as the channel's last error, and no verdict on the manifest.

The long versions (1,000 items, 20 kills) are marked slow and run in `make test-full`; `make test` runs the
same tests at a smaller size.
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from medplat.devfed.processes import Child, wait_until
from medsync import inbound, manifest, outbound
from medsync.errors import SyncError
from tests.attacks.conftest import document, post, signed, token_from
from tests.conftest import Engines
from tests.sync_harness import Node, deliver, draft, editor_headers, plant_blob, start_nodes


@pytest.fixture(scope="module")
def nodes(engines: Engines, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Node]]:
    yield from start_nodes(engines, tmp_path_factory.mktemp("faults"), ["ru", "kz"], serve=["ru", "kz"], tag="faults")


@pytest.fixture(autouse=True)
def empty(nodes: dict[str, Node]) -> Iterator[None]:
    yield
    for node in nodes.values():
        node.empty()


def publish_many(ru: Node, count: int) -> list[str]:
    ids = []
    with httpx.Client(base_url=ru.url, headers=editor_headers(ru), timeout=30) as http:
        for number in range(count):
            created = http.post("/api/v1/content", json=draft(f"Заметка {number}", targets=["kz"]))
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
            assert http.post(f"/api/v1/content/{ids[-1]}/publish").status_code == 200
    return ids


def applied_in_order(kz: Node, ids: list[str]) -> None:
    """Every item exactly once, and the manifests of the channel decided in sequence with none skipped."""
    with kz.ctx.engine.connect() as conn:
        versions = conn.execute(text("SELECT item_id::text, count(*) FROM shared.content_version GROUP BY 1")).all()
        sequences = conn.execute(text("SELECT sequence, status FROM federation.manifest_in WHERE in_chain ORDER BY sequence")).all()
        order = conn.execute(text("SELECT id::text FROM shared.content_item ORDER BY created_at, id")).scalars().all()
    assert sorted(i for i, _ in versions) == sorted(ids)
    assert {n for _, n in versions} == {1}, "an item was applied twice"
    assert [s for s, _ in sequences] == list(range(1, len(sequences) + 1))
    assert {status for _, status in sequences} == {"applied"}
    assert order == ids, "items became visible in the order they were published"


@pytest.mark.parametrize("count", [pytest.param(150, id="150"), pytest.param(1000, id="1000", marks=pytest.mark.slow)])
def test_target_down_while_the_origin_keeps_publishing(nodes: dict[str, Node], count: int) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    kz.stop_server()
    try:
        ids = publish_many(ru, count)
        with httpx.Client(timeout=10) as http:
            outbound.build_manifests(ru.ctx, "kz")
            with pytest.raises(SyncError) as caught:
                outbound.send_manifests(ru.ctx, "kz", http)
        assert caught.value.code == "delivery.unreachable"
        assert ru.count("SELECT count(*) FROM federation.outbox WHERE status = 'sent'") == count
    finally:
        kz.start_server()
    assert kz.state()["items"] == []
    deliver(ru, kz)
    applied_in_order(kz, ids)
    assert ru.count("SELECT count(*) FROM federation.outbox WHERE status <> 'applied'") == 0
    assert ru.count("SELECT count(*) FROM federation.manifest_out WHERE status <> 'applied'") == 0


def test_object_store_down_for_a_while_is_retried_then_delivered(nodes: dict[str, Node], engines: Engines) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    item_id = "01a20000-0000-7000-8000-000000000001"
    blob = plant_blob(ru, "kz", item_id, os.urandom(100_000))
    data, _ = signed(ru, items=(manifest.upsert_item(item_id, 1, document(blobs=(blob,))),))
    assert post(kz, data, token_from(ru)).status_code == 202
    before = kz.state()
    store = next(c for c in engines.children if c.name == "seaweedfs")
    store.stop()
    try:
        with httpx.Client(timeout=30) as http, pytest.raises(SyncError) as caught:
            inbound.apply_pending(kz.ctx, "ru", http)
        assert caught.value.code == "store.unavailable"
    finally:
        engines.children[engines.children.index(store)] = engines.seaweed.child().start()
        engines.seaweed.wait_ready()
    assert kz.decisions()[-1][2] == "received", "a store outage is no verdict on the manifest"
    assert {k: v for k, v in kz.state().items() if k != "blobs"} == {k: v for k, v in before.items() if k != "blobs"}
    with httpx.Client(timeout=30) as http:
        assert inbound.apply_pending(kz.ctx, "ru", http) == 1
    assert [(str(i), s) for i, _, s in kz.state()["items"]] == [(item_id, "published")]
    assert kz.state()["blobs"] == [f"received/ru/{blob.sha256}"]


def test_an_insecure_peer_url_sends_nothing_and_decides_nothing(nodes: dict[str, Node]) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    item_id = "01a20000-0000-7000-8000-000000000002"
    blob = plant_blob(ru, "kz", item_id, os.urandom(10_000))
    data, _ = signed(ru, items=(manifest.upsert_item(item_id, 1, document(blobs=(blob,))),))
    assert post(kz, data, token_from(ru)).status_code == 202
    before = kz.state()
    sent: list[httpx.Request] = []
    with httpx.Client(event_hooks={"request": [sent.append]}, timeout=10) as http:
        misconfigured = dataclasses.replace(kz.ctx, peers={"ru": "http://ru.example:8000"})
        with pytest.raises(SyncError) as applying:
            inbound.apply_pending(misconfigured, "ru", http)
        publish_many(ru, 1)
        outbound.build_manifests(ru.ctx, "kz")
        with pytest.raises(SyncError) as delivering:
            outbound.send_manifests(dataclasses.replace(ru.ctx, peers={"kz": "http://kz.example:8000"}), "kz", http)
    assert (applying.value.code, delivering.value.code) == ("transport.insecure_peer", "transport.insecure_peer")
    assert sent == []
    assert kz.decisions()[-1][2] == "received", "this node's configuration is no verdict on the manifest"
    assert kz.state() == before
    with ru.ctx.engine.connect() as conn:
        last_error = conn.execute(text("SELECT last_error FROM federation.channel_out WHERE target = 'kz'")).scalar_one()
    assert last_error.startswith("transport.insecure_peer: the kz node's URL is not https:// (scheme 'http', host 'kz.example')")
    with httpx.Client(timeout=30) as http:
        assert inbound.apply_pending(kz.ctx, "ru", http) == 1


APPLIER = """
import sys, httpx
from medplat.config import settings_from_env
from medsync.context import context_for
from medsync.inbound import apply_pending
with httpx.Client(timeout=30) as http:
    apply_pending(context_for(settings_from_env()), "ru", http)
"""


def _manifest_with_blobs(ru: Node, run: int, sequence: int, previous: str) -> tuple[bytes, str, list[str]]:
    items = []
    for number in range(10):
        item_id = f"01a20000-0000-7000-8000-{run:06d}{number:06d}"
        blobs = (plant_blob(ru, "kz", item_id, os.urandom(400_000)),) if number < 3 else ()
        items.append(manifest.upsert_item(item_id, 1, document(f"Run {run} item {number}", blobs=blobs)))
    data, digest = signed(ru, sequence=sequence, previous=previous, items=tuple(items))
    return data, digest, [i.id for i in items]


@pytest.mark.parametrize("runs", [pytest.param(5, id="5"), pytest.param(20, id="20", marks=pytest.mark.slow)])
def test_sigkill_at_random_points_of_apply_never_shows_a_partial_manifest(nodes: dict[str, Node], tmp_path: Path, runs: int) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    rng = random.Random(20261121)
    previous = ""
    killed_midway = 0
    for run in range(1, runs + 1):
        data, previous, ids = _manifest_with_blobs(ru, run, run, previous)
        assert post(kz, data, token_from(ru)).status_code == 202
        applier = Child("applier", [sys.executable, "-c", APPLIER], tmp_path / f"applier-{run}.log", env={**os.environ, **kz.env}).start()
        time.sleep(rng.uniform(0.3, 2.0))
        applier.signal_group(signal.SIGKILL)
        applier.stop()
        visible = kz.count(f"SELECT count(*) FROM shared.content_item WHERE id::text IN ({','.join(repr(i) for i in ids)})")
        status = kz.decisions()[-1][2]
        assert (visible, status) in ((0, "received"), (len(ids), "applied")), f"run {run}: {visible} items visible, manifest {status}"
        killed_midway += visible == 0
        with httpx.Client(timeout=30) as http:
            inbound.apply_pending(kz.ctx, "ru", http)
        assert kz.count(f"SELECT count(*) FROM shared.content_item WHERE id::text IN ({','.join(repr(i) for i in ids)})") == len(ids)
    assert killed_midway >= 1, "no kill landed before the commit; the test proved nothing"
    state = kz.state()
    with kz.ctx.engine.connect() as conn:
        referenced = sorted(conn.execute(text("SELECT DISTINCT key FROM shared.content_media")).scalars())
    assert state["blobs"] == referenced, "no orphan blob is left once every manifest is applied"
    assert kz.count("SELECT count(*) FROM shared.content_version") == runs * 10


def _worker(node: Node, tmp_path: Path, queues: str) -> Child:
    env = {**os.environ, **node.env, "MEDFED_SWEEP_SECONDS": "2"}
    argv = [sys.executable, "-m", "medplat.cli", "worker", "--concurrency", "1", "--queues", queues, "--beat"]
    return Child(f"{node.code} worker", argv, tmp_path / f"{node.code}-worker.log", env=env, cwd=tmp_path, stop_timeout=20).start()


def test_broker_restarted_mid_stream_loses_nothing(nodes: dict[str, Node], engines: Engines, tmp_path: Path) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    (tmp_path / "ru").mkdir()
    (tmp_path / "kz").mkdir()
    # Published while no worker runs: the wake-ups wait in the broker, which then restarts without them.
    ids = publish_many(ru, 20)
    broker = next(c for c in engines.children if c.name == "redis")
    broker.stop()  # a broker without persistence: every queued message is gone
    engines.children[engines.children.index(broker)] = engines.redis.child().start()
    engines.redis.wait_ready()
    workers = [_worker(ru, tmp_path / "ru", "node,sync.kz"), _worker(kz, tmp_path / "kz", "node,inbox")]
    try:

        def applied(count: int) -> bool:
            assert all(w.alive() for w in workers), [w.log_tail() for w in workers]
            return ru.count("SELECT count(*) FROM federation.outbox WHERE status = 'applied'") == count

        # Only the beat sweep, reading the outbox, can bring these back.
        wait_until(lambda: applied(len(ids)), timeout=180, interval=1, what="the items whose wake-ups the broker lost")
        ids += publish_many(ru, 20)
        wait_until(lambda: applied(len(ids)), timeout=180, interval=1, what="every item applied on kz and acknowledged to ru")
    finally:
        for worker in workers:
            worker.stop()
    applied_in_order(kz, ids)
