"""Real nodes for the sync tests: each with its own database, buckets and HTTP server, on the session's engines.

The servers are real `medfed serve` processes; the tests drive the origin's delivery and the target's
apply worker by calling the sync code in-process with each node's context (that is what the Celery tasks
run), so every step can be observed and attacked.
"""

from __future__ import annotations

import hashlib
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from sqlalchemy import text

from medplat.config import Settings, settings_from_env
from medplat.db.migrate import upgrade
from medplat.db.models import Base
from medplat.devfed.processes import Child, free_ports, wait_until
from medplat.node import object_store, sync_db
from medsync import trust
from medsync.context import SyncContext, context_for
from medsync.items import Blob
from tests.conftest import Engines, node_env

TABLES_TO_EMPTY = ", ".join(f'"{t.schema}"."{t.name}"' for t in Base.metadata.sorted_tables)


@dataclass
class Node:
    code: str
    env: dict[str, str]
    settings: Settings
    url: str
    server: Child | None
    last_ready: str = ""

    @property
    def ctx(self) -> SyncContext:
        return context_for(self.settings)

    @property
    def key(self) -> Ed25519PrivateKey:
        key = load_pem_private_key(Path(self.env["MEDFED_SIGNING_KEY_FILE"]).read_bytes(), password=None)
        assert isinstance(key, Ed25519PrivateKey)
        return key

    def empty(self) -> None:
        with sync_db(self.settings).begin() as conn:
            conn.execute(text(f"TRUNCATE {TABLES_TO_EMPTY} CASCADE"))
        store = object_store(self.settings)
        for bucket in (self.settings.shared_bucket, self.settings.personal_bucket):
            for obj in list(store.list(bucket)):
                store.delete(bucket, obj.key)

    def count(self, sql: str) -> int:
        with sync_db(self.settings).connect() as conn:
            return int(conn.execute(text(sql)).scalar_one())

    def state(self) -> dict[str, object]:
        """Everything a refused manifest must leave untouched on this node."""
        with sync_db(self.settings).connect() as conn:
            return {
                "items": conn.execute(text("SELECT id, version, status FROM shared.content_item ORDER BY id")).all(),
                "versions": conn.execute(text("SELECT item_id, version, op FROM shared.content_version ORDER BY 1, 2")).all(),
                "media": conn.execute(text("SELECT item_id, sha256 FROM shared.content_media ORDER BY 1, 2")).all(),
                "channels": conn.execute(
                    text("SELECT origin, received_sequence, received_hash, applied_sequence FROM federation.channel_in")
                ).all(),
                "in_chain": conn.execute(
                    text("SELECT origin, sequence, status FROM federation.manifest_in WHERE in_chain ORDER BY 1, 2")
                ).all(),
                "blobs": sorted(o.key for o in object_store(self.settings).list(self.settings.shared_bucket)),
            }

    def stop_server(self) -> None:
        assert self.server is not None
        self.server.stop()

    def start_server(self) -> None:
        """Start (again) the node's HTTP server on its port and wait for /ready."""
        assert self.server is not None
        self.server = Child(self.server.name, self.server.argv, self.server.log_path, env=self.server.env).start()
        server = self.server

        def ready() -> bool:
            assert server.alive(), server.log_tail()
            return httpx.get(f"{self.url}/ready", timeout=5).status_code == 200

        wait_until(ready, timeout=60, what=f"{self.code} node")

    def decisions(self) -> list[tuple[str, int | None, str, object]]:
        """Every manifest that reached this node: origin, sequence, status, reasons (for failure messages)."""
        with sync_db(self.settings).connect() as conn:
            return [
                tuple(r) for r in conn.execute(text("SELECT origin, sequence, status, reasons FROM federation.manifest_in ORDER BY id"))
            ]

    def refusals(self) -> list[tuple[str, str]]:
        """(origin, reason code) of every refusal recorded at the inbox door, oldest first."""
        with sync_db(self.settings).connect() as conn:
            rows = conn.execute(text("SELECT origin, reasons FROM federation.manifest_in WHERE status = 'refused' ORDER BY id")).all()
        return [(origin, reasons[0]["code"]) for origin, reasons in rows]


def start_nodes(engines: Engines, root: Path, codes: list[str], *, serve: list[str], tag: str) -> Iterator[dict[str, Node]]:
    """Nodes `codes` (each its own database and buckets), HTTP servers for those in `serve`, one trust file."""
    keys_dir = root / "keys"
    keys_dir.mkdir(parents=True, exist_ok=True)
    ports = dict(zip(codes, free_ports(len(codes)), strict=True))
    urls = {code: f"http://127.0.0.1:{port}" for code, port in ports.items()}
    trust_dir = root / "trust"
    nodes: dict[str, Node] = {}
    for number, code in enumerate(codes):
        url = engines.postgres.create_database(f"medfed_{tag}_{code}")
        upgrade(url)
        env = {
            **node_env(engines, url, keys_dir, region=code),
            "MEDFED_TRUST_DIR": str(trust_dir),
            "MEDFED_PEERS": ",".join(f"{c}={u}" for c, u in urls.items() if c != code),
            "MEDFED_PUBLIC_URL": urls[code],
        }
        env["MEDFED_BROKER_URL"] = env["MEDFED_BROKER_URL"].rsplit("/", 1)[0] + f"/{number + 1}"
        settings = settings_from_env(env)
        store = object_store(settings)
        for bucket in (settings.personal_bucket, settings.shared_bucket):
            store.ensure_bucket(bucket)
        nodes[code] = Node(code, env, settings, urls[code], None)
        nodes[code].empty()  # the buckets are the session's object store's: start from nothing
    write_trust(trust_dir, nodes)
    try:
        for code in serve:
            node = nodes[code]
            argv = [sys.executable, "-m", "medplat.cli", "serve", "--port", str(ports[code])]
            node.server = Child(f"{code} node", argv, root / f"{code}.log", env={**os.environ, **node.env}).start()
        for code in serve:
            server = nodes[code].server
            assert server is not None

            def ready(node: Node = nodes[code], child: Child = server) -> bool:
                assert child.alive(), child.log_tail()
                response = httpx.get(f"{node.url}/ready", timeout=5)
                node.last_ready = response.text
                return response.status_code == 200

            try:
                wait_until(ready, timeout=60, what=f"{code} node")
            except TimeoutError as exc:
                raise TimeoutError(f"{exc}; last /ready: {nodes[code].last_ready}") from None
        yield nodes
    finally:
        for node in nodes.values():
            if node.server is not None:
                node.server.stop()
            # Close this node's pooled connections: the session's cluster serves every module's nodes.
            sync_db(node.settings).dispose()
            context_for(node.settings).engine.dispose()


def write_trust(directory: Path, nodes: dict[str, Node], *, threshold: int = 2) -> None:
    import datetime

    now = datetime.datetime.now(datetime.UTC)
    window = {"not_before": now - datetime.timedelta(days=1), "not_after": now + datetime.timedelta(days=30)}
    document = trust.new_document(
        version=1,
        threshold=threshold,
        nodes={c: trust.TrustNode(keys=(trust.trust_key(n.key.public_key(), **window),), url=n.url) for c, n in nodes.items()},
        issued_at=now,
        expires_at=now + datetime.timedelta(days=30),
    )
    trust.write_version(directory, trust.sign_document(document, [n.key for n in nodes.values()]))


def deliver(origin: Node, target: Node) -> None:
    """One full round, as the workers would run it: build and send, apply, send the receipt back."""
    from medsync import inbound, outbound

    with httpx.Client(timeout=30) as http:
        outbound.build_manifests(origin.ctx, target.code)
        outbound.send_manifests(origin.ctx, target.code, http)
        inbound.apply_pending(target.ctx, origin.code, http)
        for manifest_id in inbound.unsent_receipts(target.ctx):
            inbound.send_receipt(target.ctx, manifest_id, http)


def editor_headers(node: Node) -> dict[str, str]:
    from medplat.security import Role, issue_token

    return {"Authorization": f"Bearer {issue_token(node.settings, 'editor-1', [Role.EDITOR])}"}


def draft(
    title: str = "Уход за кожей зимой", *, category: str = "product_note", kind: str = "product_note", **extra: object
) -> dict[str, object]:
    return {
        "kind": kind,
        "category": category,
        "texts": [{"language": "ru", "title": title, "body": "Рекомендации по уходу за кожей в холодное время года."}],
        "specializations": ["dermatology"],
        **extra,
    }


def plant_blob(origin: Node, target: str, item_id: str, data: bytes, *, sha256: str | None = None) -> Blob:
    """An item version on the origin with a blob the target may fetch; `sha256` may lie about `data`."""
    sha = sha256 or hashlib.sha256(data).hexdigest()
    key = f"media/{item_id}_{sha}"
    origin.ctx.store.put(origin.settings.shared_bucket, key, data, len(data), "image/png")
    with origin.ctx.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO shared.content_item (id, origin_region, kind, title, category, specializations, languages, origin_only,"
                " status, version, targets, created_at, updated_at) VALUES (:id, :o, 'product_note', 't', 'product_note', '{}', '{ru}',"
                " false, 'published', 1, '{}', now(), now()) ON CONFLICT DO NOTHING"
            ),
            {"id": item_id, "o": origin.code},
        )
        conn.execute(
            text(
                "INSERT INTO shared.content_media (id, item_id, key, sha256, length, media_type, created_at, updated_at)"
                " VALUES (:mid, :id, :key, :sha, :len, 'image/png', now(), now())"
            ),
            {"mid": str(uuid.uuid4()), "id": item_id, "key": key, "sha": sha, "len": len(data)},
        )
        conn.execute(
            text("INSERT INTO federation.outbox (target, item_id, version, op, status, reasons, created_at, updated_at)"
                 " VALUES (:t, :id, 1, 'upsert', 'sent', '[]', now(), now())"),
            {"t": target, "id": item_id},
        )  # fmt: skip
    return Blob(key=key, sha256=sha, length=len(data), media_type="image/png")
