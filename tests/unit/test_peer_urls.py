"""Peer URLs a node may call: https://, or plain http:// only on loopback; anything else is refused before a
request leaves (`transport.insecure_peer`), whether the URL came from MEDFED_PEERS or the trust file.

What delivery and apply make of the refusal (the channel's last error; no verdict on a manifest) is in
tests/federation/test_sync_faults.py, on real nodes."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medsync import reconcile, trust
from medsync.context import SyncContext
from medsync.transport import TransportError

INSECURE = ["http://kz.example", "http://10.0.0.5:8000", "http://127.0.0.1.nip.io:8000", "http://localhost.kz.example", "ftp://kz.example"]
ALLOWED = [
    "http://127.0.0.1:8000",
    "http://127.9.9.9:18100",
    "http://[::1]:8000",
    "http://localhost:8000",
    "https://kz.example",
    "https://10.0.0.5",
]


def context(tmp_path: Path, peers: dict[str, str]) -> SyncContext:
    """ru's sync context; no database or store: every call below must stop before it would use one."""
    return SyncContext(
        region="ru", key=Ed25519PrivateKey.generate(), trust_dir=tmp_path / "trust", peers=peers,
        store=cast(Any, None), shared_bucket="medfed-ru-shared", engine=cast(Any, None),
    )  # fmt: skip


def with_trusted_url(tmp_path: Path, url: str) -> SyncContext:
    """ru's context with no MEDFED_PEERS: kz's URL comes from a signed trust file."""
    now = datetime.datetime.now(datetime.UTC)
    keys = {"ru": Ed25519PrivateKey.generate(), "kz": Ed25519PrivateKey.generate()}
    window = {"not_before": now - datetime.timedelta(days=1), "not_after": now + datetime.timedelta(days=30)}
    nodes = {c: trust.TrustNode(keys=(trust.trust_key(k.public_key(), **window),), url=url if c == "kz" else None) for c, k in keys.items()}
    document = trust.new_document(version=1, threshold=2, nodes=nodes, issued_at=now, expires_at=now + datetime.timedelta(days=30))
    trust.write_version(tmp_path / "trust", trust.sign_document(document, keys.values()))
    return context(tmp_path, {})


def recording() -> tuple[httpx.Client, list[httpx.Request]]:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(500)

    return httpx.Client(transport=httpx.MockTransport(answer)), sent


@pytest.mark.parametrize("url", INSECURE)
def test_an_insecure_peer_url_is_refused_and_nothing_is_sent(tmp_path: Path, url: str) -> None:
    contexts = [context(tmp_path / "peers", {"kz": url})]
    if url.startswith("http://"):  # the trust file's own schema takes nothing but http(s)
        contexts.append(with_trusted_url(tmp_path / "trusted", url))
    for ctx in contexts:
        http, sent = recording()
        with pytest.raises(TransportError) as peer:
            ctx.url_of("kz")
        with pytest.raises(TransportError) as digest:
            reconcile.reconcile(ctx, "kz", http)
        assert (peer.value.code, digest.value.code) == ("transport.insecure_peer", "transport.insecure_peer")
        assert sent == []


def test_the_refusal_says_what_to_check_and_names_no_credential(tmp_path: Path) -> None:
    ctx = context(tmp_path, {"kz": "http://ops:secret@kz.example:8000/"})
    with pytest.raises(TransportError) as refused:
        ctx.url_of("kz")
    assert str(refused.value) == (
        "transport.insecure_peer: the kz node's URL is not https:// (scheme 'http', host 'kz.example'); plain http:// is allowed only "
        "on loopback (127.0.0.0/8, ::1, localhost). Check MEDFED_PEERS and the node URLs in the trust file"
    )


@pytest.mark.parametrize("url", ALLOWED)
def test_https_anywhere_and_plain_http_on_loopback_are_allowed(tmp_path: Path, url: str) -> None:
    assert context(tmp_path / "peers", {"kz": url}).url_of("kz") == url
    assert with_trusted_url(tmp_path / "trusted", url).url_of("kz") == url
