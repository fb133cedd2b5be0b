"""Cosigning between nodes: kz cosigns ru's checkpoints only after a consistency proof from the last one it cosigned.

Two nodes on the session's PostgreSQL, each with its own database and the same trust file; the HTTP round trip
runs ru's client code against kz's application in-process.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Iterator

import pytest
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from medplat.app import create_app
from medplat.audit import log, merkle
from medplat.audit.cosign import StaleProof, cosign_peer
from medplat.audit.exchange import request_cosignature
from medplat.audit.log import AuditError, AuditKind
from medplat.audit.merkle import MemoryTree
from medplat.audit.models import AuditCosignature, PeerCheckpoint
from medplat.audit.note import Checkpoint, cosign, format_note, origin_of, parse_note, signer_of, verify
from medplat.audit.verify import verify_log
from medplat.node import sync_db
from medsync.transport import mint_token
from tests.conftest import Engines
from tests.sync_harness import Node, start_nodes

NOW = datetime.datetime(2026, 11, 22, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture(scope="module")
def nodes(engines: Engines, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Node]]:
    yield from start_nodes(engines, tmp_path_factory.mktemp("audit"), ["kz", "ru"], serve=[], tag="audit")


@pytest.fixture(autouse=True)
def empty(nodes: dict[str, Node]) -> Iterator[None]:
    yield
    for node in nodes.values():
        node.empty()


class PeerLog:
    """ru's log as kz sees it from outside: leaf hashes, heads and notes signed with ru's key."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.tree = MemoryTree()

    def grow(self, count: int, tag: bytes = b"") -> None:
        for _ in range(count):
            self.tree.append(merkle.leaf_hash(tag + self.tree.size.to_bytes(8, "big")))

    def note(self, size: int | None = None, *, at: datetime.datetime = NOW, key: object = None) -> str:
        size = self.tree.size if size is None else size
        head = Checkpoint(origin_of("ru"), size, self.tree.root(size))
        return format_note(head, [cosign(head, signer_of("ru"), key or self.node.key, int(at.timestamp()))])  # type: ignore[arg-type]


def _cosign(kz: Node, ru: Node, note: str, from_size: int, proof: list[bytes], at: datetime.datetime = NOW) -> str:
    with Session(sync_db(kz.settings)) as session, session.begin():
        return cosign_peer(
            session,
            me="kz",
            key=kz.key,
            origin="ru",
            origin_keys=[ru.key.public_key()],
            note=note,
            from_size=from_size,
            proof=proof,
            now=at,
        )


def _cosigned(kz: Node) -> list[tuple[str, int]]:
    with Session(sync_db(kz.settings)) as session:
        return [(r.origin, r.size) for r in session.scalars(select(PeerCheckpoint).order_by(PeerCheckpoint.size))]


def test_kz_cosigns_the_first_head_then_only_consistent_extensions(nodes: dict[str, Node]) -> None:
    kz, ru = nodes["kz"], nodes["ru"]
    peer = PeerLog(ru)
    peer.grow(7)
    line = _cosign(kz, ru, peer.note(), 0, [])
    head, signatures = parse_note(peer.note().split("\n\n")[0] + "\n\n" + line)
    assert verify(head, signatures[0], signer_of("kz"), [kz.key.public_key()]) == kz.key.public_key()
    assert signatures[0].timestamp == int(NOW.timestamp())

    peer.grow(6)
    _cosign(kz, ru, peer.note(), 7, merkle.consistency_proof(peer.tree, 7, 13))
    assert _cosigned(kz) == [("ru", 7), ("ru", 13)]
    assert _cosign(kz, ru, peer.note(), 13, []) == _cosign(kz, ru, peer.note(), 0, [])  # the same head again: the same answer


def _refused(kz: Node, ru: Node, note: str, from_size: int, proof: list[bytes], code: str, message: str, **kw: datetime.datetime) -> None:
    before = _cosigned(kz)
    with pytest.raises(AuditError) as caught:
        _cosign(kz, ru, note, from_size, proof, **kw)
    assert (caught.value.code, caught.value.message) == (code, message)
    assert _cosigned(kz) == before


def test_every_bad_head_is_refused_and_nothing_is_stored(nodes: dict[str, Node]) -> None:
    kz, ru, uz_like = nodes["kz"], nodes["ru"], nodes["kz"]
    peer = PeerLog(ru)
    peer.grow(8)
    _cosign(kz, ru, peer.note(), 0, [])
    peer.grow(4)
    good_proof = merkle.consistency_proof(peer.tree, 8, 12)

    with pytest.raises(StaleProof) as stale:
        _cosign(kz, ru, peer.note(), 5, good_proof)
    assert (stale.value.expected_from, stale.value.message) == (8, "prove consistency from size 8, not 5")

    fork = PeerLog(ru)
    fork.grow(3)
    fork.grow(9, tag=b"rewritten")  # leaves 3.. differ from what kz cosigned at 8
    _refused(kz, ru, fork.note(12), 8, merkle.consistency_proof(fork.tree, 8, 12), "audit.inconsistent",
             "not consistent with size 8: the consistency proof does not lead to the root hash of size 12")  # fmt: skip
    _refused(kz, ru, fork.note(8), 8, [], "audit.fork", "size 8 was cosigned with another root hash")
    _refused(kz, ru, peer.note(5), 8, [], "audit.rollback", "size 5 is smaller than size 8, already cosigned")
    _refused(
        kz,
        ru,
        peer.note(key=uz_like.key),
        8,
        good_proof,
        "audit.signature",
        "the checkpoint carries no valid signature by a trusted key of ru",
    )
    _refused(
        kz, ru, peer.note(at=NOW + datetime.timedelta(hours=1)), 8, good_proof, "audit.future", "the checkpoint is signed in the future"
    )
    kz_log = peer.note().replace(origin_of("ru"), origin_of("kz"))
    _refused(kz, ru, kz_log, 8, good_proof, "audit.origin", "the checkpoint is of log 'medfed.dev/audit/kz', not medfed.dev/audit/ru")
    tampered = peer.note().replace("\n12\n", "\n13\n")
    _refused(kz, ru, tampered, 8, good_proof, "audit.signature", "the checkpoint carries no valid signature by a trusted key of ru")
    assert _cosigned(kz) == [("ru", 8)]


def _kz_app(kz: Node) -> TestClient:  # type: ignore[type-arg]
    return TestClient(create_app(kz.settings))


def test_ru_collects_kz_cosignatures_over_the_federation_endpoint(nodes: dict[str, Node]) -> None:
    kz, ru = nodes["kz"], nodes["ru"]
    with Session(sync_db(ru.settings)) as session, session.begin():
        for n in range(8):
            log.append(session, AuditKind.MANIFEST_SENT, {"target": "kz", "sequence": n + 1})
        assert log.checkpoint(session, "ru", ru.key) is not None  # size 9: the 9th leaf announces ru's key
    with _kz_app(kz) as client:
        assert request_cosignature(ru.ctx, "kz", client) == 9
        assert request_cosignature(ru.ctx, "kz", client) is None  # nothing new to ask for
        with Session(sync_db(ru.settings)) as session, session.begin():
            log.append_many(session, [(AuditKind.MANIFEST_SENT, {"target": "kz", "sequence": n}) for n in range(10, 31)])
            log.checkpoint(session, "ru", ru.key)
        assert request_cosignature(ru.ctx, "kz", client) == 30  # with a consistency proof from 9

        token = mint_token("ru", "kz", ru.key)
        anonymous = client.get("/federation/v1/audit/checkpoint")
        assert (anonymous.status_code, anonymous.json()["code"]) == (401, "jwt.missing")
        missing = client.get("/federation/v1/audit/checkpoint", headers={"Authorization": f"Bearer {token}"})
        assert (missing.status_code, missing.json()["code"]) == (404, "audit.no_checkpoint")

    with Session(sync_db(ru.settings)) as session:
        cosignatures = session.scalars(select(AuditCosignature).order_by(AuditCosignature.size)).all()
        assert [(c.size, c.cosigner) for c in cosignatures] == [(9, "kz"), (30, "kz")]
        assert [(r.origin, r.size) for r in session.scalars(select(PeerCheckpoint))] == []
        trusted = {"kz": [kz.key.public_key()], "ru": [ru.key.public_key()]}
        report = verify_log(session, "ru", lambda region: trusted.get(region, []))
        assert (report.failures, report.leaves, report.checkpoints, report.cosignatures) == ([], 30, 2, 2)
    assert _cosigned(kz) == [("ru", 9), ("ru", 30)]


def test_kz_serves_its_head_and_proofs_to_peers_only(nodes: dict[str, Node]) -> None:
    kz, ru = nodes["kz"], nodes["ru"]
    with Session(sync_db(kz.settings)) as session, session.begin():
        log.append_many(session, [(AuditKind.POLICY_VERDICT, {"stage": "apply", "accepted": True})] * 5)
        log.checkpoint(session, "kz", kz.key)  # size 6 with the leaf announcing kz's key
    headers = {"Authorization": f"Bearer {mint_token('ru', 'kz', ru.key)}"}
    with _kz_app(kz) as client:
        note = client.get("/federation/v1/audit/checkpoint", headers=headers)
        assert note.status_code == 200
        head, _ = parse_note(note.text)
        proof = client.get("/federation/v1/audit/consistency", params={"first": 4, "second": 6}, headers=headers).json()["proof"]
        with Session(sync_db(kz.settings)) as session:
            merkle.verify_consistency(4, 6, [base64.b64decode(p) for p in proof], log.root(session, 4), head.root)
        too_far = client.get("/federation/v1/audit/consistency", params={"first": 4, "second": 7}, headers=headers)
        assert (too_far.status_code, too_far.json()["code"], too_far.json()["detail"]) == (400, "audit.size", "the log has 6 leaves, not 7")
        forged = client.get("/federation/v1/audit/checkpoint", headers={"Authorization": f"Bearer {mint_token('ru', 'kz', kz.key)}"})
        assert (forged.status_code, forged.json()["code"]) == (401, "jwt.untrusted")
