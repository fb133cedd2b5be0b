"""A stolen signing key fast-forwards the channel; the federation rotates the key out and carries on."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medsync import trust
from tests.attacks.conftest import item, post, signed, token_from
from tests.conftest import Engines
from tests.sync_harness import Node, start_nodes


@pytest.fixture(scope="module")
def own_nodes(engines: Engines, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Node]]:
    """Nodes of this module only: the test rotates their trust file."""
    yield from start_nodes(engines, tmp_path_factory.mktemp("compromise"), ["ru", "kz", "uz"], serve=["kz"], tag="compromise")


def test_fast_forward_with_a_stolen_key_is_refused_and_rotation_locks_the_key_out(own_nodes: dict[str, Node]) -> None:
    ru, kz, uz = own_nodes["ru"], own_nodes["kz"], own_nodes["uz"]
    stolen = ru.key
    first, digest = signed(ru)
    assert post(kz, first, token_from(ru)).status_code == 202

    # The thief skips ahead to park the channel far in the future: refused, nothing changes.
    before = kz.state()
    ahead, _ = signed(ru, sequence=10_000, previous=digest, items=(item(9),), keys=[stolen])
    answer = post(kz, ahead, token_from(ru, key=stolen))
    assert (answer.status_code, answer.json()["code"], answer.json()["expected"]) == (409, "sequence.gap", 2)
    assert kz.state() == before

    # Ops rotate ru's key: kz and uz sign with their keys of version 1, and the new version's keys sign too.
    replacement = Ed25519PrivateKey.generate()
    directory = kz.ctx.trust_dir
    now = datetime.datetime.now(datetime.UTC)
    current = trust.load_chain(directory, now=now)
    window = {"not_before": now - datetime.timedelta(minutes=1), "not_after": now + datetime.timedelta(days=30)}
    nodes = dict(current.nodes)
    nodes["ru"] = trust.TrustNode(keys=(trust.trust_key(replacement.public_key(), **window),), url=current.nodes["ru"].url)
    version2 = trust.new_document(version=2, threshold=2, nodes=nodes, issued_at=now, expires_at=now + datetime.timedelta(days=30))
    trust.write_version(directory, trust.sign_document(version2, [kz.key, uz.key, replacement]))

    # The stolen key is now worth nothing, for the token and for the signature.
    second, _ = signed(ru, sequence=2, previous=digest, items=(item(2),), keys=[stolen])
    before = kz.state()
    answer = post(kz, second, token_from(ru, key=stolen))
    assert (answer.status_code, answer.json()["code"]) == (401, "jwt.untrusted")
    answer = post(kz, second, token_from(ru, key=replacement))
    assert (answer.status_code, answer.json()["code"]) == (403, "signature.untrusted")
    assert kz.state() == before

    # The real ru, with its new key, continues the channel where it was.
    honest, _ = signed(ru, sequence=2, previous=digest, items=(item(2),), keys=[replacement])
    answer = post(kz, honest, token_from(ru, key=replacement))
    assert (answer.status_code, answer.json()["sequence"]) == (202, 2)


def test_a_rotation_signed_by_one_old_key_only_is_not_trusted(own_nodes: dict[str, Node]) -> None:
    kz = own_nodes["kz"]
    directory = kz.ctx.trust_dir
    now = datetime.datetime.now(datetime.UTC)
    current = trust.load_chain(directory, now=now)
    thief = Ed25519PrivateKey.generate()
    nodes = dict(current.nodes)
    window = {"not_before": now - datetime.timedelta(minutes=1), "not_after": now + datetime.timedelta(days=30)}
    nodes["uz"] = trust.TrustNode(keys=(trust.trust_key(thief.public_key(), **window),))
    forged = trust.new_document(
        version=current.version + 1, threshold=2, nodes=nodes, issued_at=now, expires_at=now + datetime.timedelta(days=30)
    )
    with pytest.raises(trust.TrustError) as caught:
        trust.verify_rotation(current, trust.sign_document(forged, [thief, kz.key]))
    assert caught.value.code == "trust.old_threshold"
