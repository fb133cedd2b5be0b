"""Attack tests: ru is the (honest) origin, kz the target under attack; uz exists only as a key in the trust file."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medsync import manifest
from medsync.envelope import Envelope
from medsync.items import Blob, SharedDocument, Text
from medsync.transport import mint_token
from tests.conftest import Engines
from tests.sync_harness import Node, start_nodes


@pytest.fixture(scope="package")
def nodes(engines: Engines, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Node]]:
    import os

    os.environ["MEDFED_BODY_DEADLINE"] = "2"
    try:
        yield from start_nodes(engines, tmp_path_factory.mktemp("attacks"), ["ru", "kz", "uz"], serve=["ru", "kz"], tag="attacks")
    finally:
        os.environ.pop("MEDFED_BODY_DEADLINE", None)


@pytest.fixture(autouse=True)
def empty(nodes: dict[str, Node]) -> Iterator[None]:
    yield
    for node in nodes.values():
        node.empty()


def document(title: str = "Зимний уход за кожей", *, blobs: tuple[Blob, ...] = ()) -> SharedDocument:
    return SharedDocument(
        kind="product_note",
        category="product_note",
        specializations=("dermatology",),
        languages=("ru",),
        texts=(Text("ru", title, "Рекомендации по уходу."),),
        blobs=blobs,
    )


def item(number: int = 1, *, version: int = 1, doc: SharedDocument | None = None) -> manifest.ManifestItem:
    return manifest.upsert_item(f"01a20000-0000-7000-8000-{number:012d}", version, doc or document())


def signed(
    origin: Node,
    *,
    target: str = "kz",
    sequence: int = 1,
    previous: str = "",
    items: tuple[manifest.ManifestItem, ...] | None = None,
    keys: list[Ed25519PrivateKey] | None = None,
    now: datetime.datetime | None = None,
) -> tuple[bytes, str]:
    envelope, _, digest = manifest.build(
        origin=origin.code, target=target, sequence=sequence, previous=previous, items=items or (item(),),
        keys=keys or [origin.key], now=now,
    )  # fmt: skip
    return envelope.encode(), digest


def post(target: Node, data: bytes, token: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(f"{target.url}/federation/v1/inbox", content=data, headers=headers, timeout=30)


def token_from(origin: Node, audience: str = "kz", key: Ed25519PrivateKey | None = None) -> str:
    return mint_token(origin.code, audience, key or origin.key)


def envelope_of(data: bytes) -> Envelope:
    return Envelope.decode(data, max_bytes=manifest.MAX_MANIFEST_BYTES)
