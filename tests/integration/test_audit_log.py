"""The audit log on real PostgreSQL: gapless concurrent appends, proofs from stored subtrees, signed checkpoints,
append-only tables, and `medfed audit verify` catching every kind of tampering with the exact line."""

from __future__ import annotations

import base64
import datetime
import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from medplat.audit import log, merkle
from medplat.audit.log import AuditError, AuditKind
from medplat.audit.models import AuditLeaf
from medplat.audit.note import Checkpoint, cosign, format_note, origin_of, parse_note, signer_of, verify
from medplat.audit.verify import verify_log
from medplat.cli import main
from medplat.cli_audit import audit
from medplat.config import Settings
from medplat.db.engine import sync_engine
from medplat.node import sync_db
from medsync.envelope import key_id
from medsync.trust import TrustDocument, TrustNode, new_document, trust_key

main.add_command(audit)  # what cli.py's registration does; a no-op once it is there


@pytest.fixture
def db(settings: Settings, clean_db: None) -> Iterator[Settings]:
    yield settings


def _event(n: int) -> dict[str, Any]:
    return {"item_id": str(uuid.UUID(int=n)), "version": n, "origin": "kz", "target": "ru", "accepted": True}


def _append(settings: Settings, count: int, start: int = 0) -> None:
    with Session(sync_db(settings)) as session, session.begin():
        for n in range(start, start + count):
            log.append(session, AuditKind.POLICY_VERDICT, _event(n))


def _checkpoint(settings: Settings) -> int:
    with Session(sync_db(settings)) as session, session.begin():
        row = log.checkpoint(session, "kz", settings.signing_key)
        assert row is not None
        return row.size


def _as_dba(settings: Settings, *statements: str) -> None:
    """What someone with the database superuser can do: switch the append-only triggers off and edit rows."""
    with psycopg.connect(settings.database_url) as conn:
        conn.execute("SET session_replication_role = replica")
        for statement in statements:
            conn.execute(statement)


def _verify() -> Result:
    return CliRunner().invoke(main, ["audit", "verify", "--region", "kz"])


def _leaf_rows(settings: Settings) -> list[tuple[int, bytes, bytes]]:
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute("SELECT idx, entry, leaf_hash FROM audit.leaf ORDER BY idx").fetchall()


def _failures(result: Result) -> list[str]:
    return [line.removeprefix("kz audit: ") for line in result.stdout.splitlines()]


@pytest.fixture
def logged(db: Settings) -> Settings:
    """15 leaves, with signed checkpoints at 10 and 15; leaf 9 announces the signing key (the first checkpoint adds it)."""
    _append(db, 9)
    assert _checkpoint(db) == 10
    _append(db, 5, start=10)
    assert _checkpoint(db) == 15
    result = _verify()
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("kz audit log valid: 15 leaves, 2 checkpoints, 0 cosignatures (")
    return db


def test_concurrent_appends_get_gapless_indexes_and_one_tree(db: Settings) -> None:
    errors: list[BaseException] = []

    def worker(number: int) -> None:
        try:
            for n in range(15):
                with Session(sync_db(db)) as session, session.begin():
                    log.append(session, AuditKind.MANIFEST_SENT, {"target": "ru", "sequence": number * 100 + n})
                    if n % 5 == 4:
                        session.rollback()  # an aborted transaction leaves no index behind
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    rows = _leaf_rows(db)
    assert [idx for idx, _, _ in rows] == list(range(4 * 12))
    hashes = [merkle.leaf_hash(entry) for _, entry, _ in rows]
    assert hashes == [stored for _, _, stored in rows]
    with Session(sync_db(db)) as session:
        assert log.root(session, len(hashes)) == merkle.reference_root(hashes)


def test_proofs_come_from_stored_subtrees_and_verify(db: Settings) -> None:
    _append(db, 77)
    hashes = [stored for _, _, stored in _leaf_rows(db)]
    with Session(sync_db(db)) as session:
        for size in (1, 2, 31, 64, 77):
            head = merkle.reference_root(hashes[:size])
            assert log.root(session, size) == head
            for index in {0, size // 2, size - 1}:
                merkle.verify_inclusion(index, size, hashes[index], log.inclusion_proof(session, index, size), head)
            for first in {1, size // 3 or 1, size}:
                proof = log.consistency_proof(session, first, size)
                merkle.verify_consistency(first, size, proof, merkle.reference_root(hashes[:first]), head)
        with pytest.raises(AuditError, match="the log has 77 leaves, not 78"):
            log.consistency_proof(session, 5, 78)


def test_an_entry_is_canonical_json_of_kind_time_and_payload(db: Settings) -> None:
    with Session(sync_db(db)) as session, session.begin():
        index = log.append(session, AuditKind.KEY_CHANGE, {"key_id": "ab" * 32, "change": "added"})
    with Session(sync_db(db)) as session:
        row = session.get(AuditLeaf, index)
        assert row is not None
        time = row.logged_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        expected = '{"kind":"key_change","payload":{"change":"added","key_id":"' + "ab" * 32 + '"},"time":"' + time + '"}'
        assert row.entry == expected.encode()
        assert row.leaf_hash == merkle.leaf_hash(row.entry)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"actor": "doctor@example.kz"}, "payload.actor is not an id, hash or code"),
        ({"phone": "+77011234567"}, "payload.phone is not an id, hash or code"),
        ({"phone": "87011234567"}, "payload.phone is not an id, hash or code"),
        ({"name": "Aigerim Nurlanovna"}, "payload.name is not an id, hash or code"),
        ({"iin": "900101-300123"}, "payload.iin is not an id, hash or code"),
        ({"nested": {"Name": "x"}}, "a key of payload.nested is not a lower-case token"),
        ({"score": 0.5}, "payload.score is a float"),
    ],
)
def test_payloads_that_could_carry_personal_data_are_refused(db: Settings, payload: dict[str, Any], message: str) -> None:
    with Session(sync_db(db)) as session, session.begin():
        with pytest.raises(AuditError, match=message) as caught:
            log.append(session, AuditKind.PERSONAL_DATA_ACCESS, payload)
        assert caught.value.code == "audit.payload"
        assert "example" not in str(caught.value) and "7011234567" not in str(caught.value)
    assert _leaf_rows(db) == []


def test_the_tables_are_append_only_for_everyone(logged: Settings) -> None:
    before = _leaf_rows(logged)
    for statement, operation in (
        ("UPDATE audit.leaf SET kind = 'role_change' WHERE idx = 3", "UPDATE"),
        ("DELETE FROM audit.checkpoint", "DELETE"),
    ):
        with psycopg.connect(logged.database_url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
            conn.execute(statement)
        table = statement.split("audit.")[1].split()[0]
        assert str(caught.value).splitlines()[0] == f"audit.{table} is append-only: {operation} refused"
    with psycopg.connect(logged.sync_database_url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
        conn.execute("UPDATE audit.leaf SET kind = 'x'")
    assert "permission denied for table leaf" in str(caught.value)
    assert _leaf_rows(logged) == before
    assert _verify().exit_code == 0


def test_the_sync_role_can_append_and_checkpoint(db: Settings) -> None:
    engine = sync_engine(db.sync_database_url)
    try:
        with Session(engine) as session, session.begin():
            assert log.append(session, AuditKind.MANIFEST_RECEIVED, {"origin": "ru", "sequence": 1, "status": "applied"}) == 0
            row = log.checkpoint(session, "kz", db.signing_key)
            assert row is not None and row.size == 2  # with the leaf announcing the key
    finally:
        engine.dispose()
    assert _verify().exit_code == 0


def test_a_checkpoint_is_a_signed_note_of_the_head(logged: Settings) -> None:
    with Session(sync_db(logged)) as session:
        row = log.latest_checkpoint(session)
        assert row is not None
        head, signatures = parse_note(row.note)
        assert head == Checkpoint(origin_of("kz"), 15, log.root(session, 15))
        assert row.note.startswith(f"medfed.dev/audit/kz\n15\n{base64.b64encode(head.root).decode()}\n\n\u2014 medfed.dev/node/kz ")
        assert verify(head, signatures[0], signer_of("kz"), [logged.signing_key.public_key()]) == logged.signing_key.public_key()
    with Session(sync_db(logged)) as session, session.begin():
        assert log.checkpoint(session, "kz", logged.signing_key) is None  # nothing new to sign


# --- tampering: each caught by `medfed audit verify` with the exact lines -------------------------------


def test_an_altered_payload_fails_verification(logged: Settings) -> None:
    _as_dba(
        logged,
        """UPDATE audit.leaf SET entry = convert_to(replace(convert_from(entry, 'UTF8'), '"accepted":true', '"accepted":false'), 'UTF8')
        WHERE idx = 3""",
    )
    result = _verify()
    assert result.exit_code == 1
    assert _failures(result) == [
        "leaf 3: its entry does not hash to its stored leaf hash",
        *REWRITTEN_LEAF_3,
    ]
    assert result.stderr.startswith("medfed: kz audit log FAILED verification: 6 problems; 15 leaves, 2 checkpoints, 0 cosignatures (")
    assert result.stderr.count("\n") == 1


REWRITTEN_LEAF_3 = [
    # Leaf 3 sits under the stored subtrees [2, 4), [0, 4) and [0, 8), and under both signed heads.
    "subtree (level 1, index 1): stored hash differs from the one the leaves give",
    "subtree (level 2, index 0): stored hash differs from the one the leaves give",
    "subtree (level 3, index 0): stored hash differs from the one the leaves give",
    "checkpoint 10: its root hash is not the head of the log's first 10 leaves",
    "checkpoint 15: its root hash is not the head of the log's first 15 leaves",
]


def test_a_rehashed_payload_still_fails_against_the_signed_heads(logged: Settings) -> None:
    rows = _leaf_rows(logged)
    entry = rows[3][1].replace(b'"accepted":true', b'"accepted":false')
    _as_dba(logged, f"UPDATE audit.leaf SET entry = '\\x{entry.hex()}', leaf_hash = '\\x{merkle.leaf_hash(entry).hex()}' WHERE idx = 3")
    assert _failures(_verify()) == REWRITTEN_LEAF_3


def test_a_deleted_row_fails_verification(logged: Settings) -> None:
    _as_dba(logged, "DELETE FROM audit.leaf WHERE idx = 4")
    result = _verify()
    assert result.exit_code == 1
    assert _failures(result) == [
        "leaf 4 is missing (the next stored leaf is 5)",
        *(
            f"subtree (level {level}, index {index}) is stored but the leaves do not reach it"
            for level, index in [(1, 2), (1, 3), (1, 4), (1, 5), (1, 6), (2, 1), (2, 2), (3, 0)]
        ),
        "checkpoint 10: signs 10 leaves, the log holds 4 in sequence",
        "checkpoint 15: signs 15 leaves, the log holds 4 in sequence",
    ]


def test_reordered_rows_fail_verification(logged: Settings) -> None:
    _as_dba(
        logged,
        "UPDATE audit.leaf SET idx = -1 WHERE idx = 2",
        "UPDATE audit.leaf SET idx = 2 WHERE idx = 3",
        "UPDATE audit.leaf SET idx = 3 WHERE idx = -1",
    )
    result = _verify()
    assert result.exit_code == 1
    assert _failures(result) == REWRITTEN_LEAF_3  # leaves 2 and 3 swapped: the same subtrees and heads break


def test_a_truncated_log_fails_verification(logged: Settings) -> None:
    _as_dba(logged, "DELETE FROM audit.leaf WHERE idx >= 12")
    result = _verify()
    assert result.exit_code == 1
    assert _failures(result) == [
        "subtree (level 1, index 6) is stored but the leaves do not reach it",
        "checkpoint 15: signs 15 leaves, the log holds 12 in sequence",
    ]


def test_two_inconsistent_checkpoints_fail_verification(logged: Settings) -> None:
    # The node itself signs a head at 20 over a history in which leaf 12 is different: a fork.
    hashes = [stored for _, _, stored in _leaf_rows(logged)]
    _append(logged, 5, start=15)
    forked = [*hashes[:12], merkle.leaf_hash(b"another leaf 12"), *hashes[13:], *(s for _, _, s in _leaf_rows(logged)[15:])]
    head = Checkpoint(origin_of("kz"), 20, merkle.reference_root(forked))
    note = format_note(head, [cosign(head, signer_of("kz"), logged.signing_key, 1_800_000_000)])
    with psycopg.connect(logged.database_url) as conn:
        conn.execute("INSERT INTO audit.checkpoint VALUES (20, %s, now(), %s)", (head.root, note))
    result = _verify()
    assert result.exit_code == 1
    assert _failures(result) == [
        "checkpoint 20: its root hash is not the head of the log's first 20 leaves",
        "checkpoints 15 and 20 are inconsistent: the consistency proof does not lead to the root hash of size 20",
    ]


def test_a_row_edited_by_hand_fails_verification(logged: Settings) -> None:
    _as_dba(logged, "UPDATE audit.leaf SET kind = 'role_change' WHERE idx = 3")
    assert _failures(_verify()) == ['leaf 3: the kind column says "role_change" but the hashed entry says "policy_verdict"']


def test_a_checkpoint_edited_by_hand_fails_verification(logged: Settings) -> None:
    with psycopg.connect(logged.database_url) as conn:
        row = conn.execute("SELECT note FROM audit.checkpoint WHERE size = 10").fetchone()
    assert row is not None
    edited = row[0].replace("\n10\n", "\n9\n", 1)
    with psycopg.connect(logged.database_url) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE audit.checkpoint SET note = %s WHERE size = 10", (edited,))
    assert _failures(_verify()) == [
        "checkpoint 10: the size or root columns differ from the signed note",
        "checkpoint 9: no valid signature by kz's key",
    ]


# --- key changes: announced in the log before the first head they sign ---------------------------------


def _trust(version: int, nodes: dict[str, list[Ed25519PrivateKey]]) -> TrustDocument:
    now = datetime.datetime.now(datetime.UTC)
    listed = {
        region: TrustNode(keys=tuple(trust_key(k.public_key(), not_before=now, not_after=now + datetime.timedelta(days=30)) for k in keys))
        for region, keys in nodes.items()
    }
    return new_document(version=version, threshold=1, nodes=listed, issued_at=now, expires_at=now + datetime.timedelta(days=30))


def _key_leaves(settings: Settings) -> list[dict[str, Any]]:
    return [json.loads(entry)["payload"] for idx, entry, _ in _leaf_rows(settings) if b'"kind":"key_change"' in entry]


def test_checkpoints_log_a_new_signing_key_and_trust_version_before_signing(db: Settings) -> None:
    old, ru = db.signing_key, Ed25519PrivateKey.generate()
    new = Ed25519PrivateKey.generate()
    first = _trust(1, {"kz": [old], "ru": [ru]})
    _append(db, 2)
    with Session(sync_db(db)) as session, session.begin():
        assert log.checkpoint(session, "kz", old, first) is not None
    kz_old, kz_new, ru_key = (f"{r}:{key_id(k.public_key())}" for r, k in (("kz", old), ("kz", new), ("ru", ru)))
    assert _key_leaves(db) == [
        {"change": "signing_key", "key_id": key_id(old.public_key()), "previous": None},
        {"change": "trust_version", "version": 1, "previous": None, "threshold": 1, "added": sorted([kz_old, ru_key]), "removed": []},
    ]
    # The same key and version: nothing more is logged, however often the head is signed.
    _append(db, 1, start=2)
    with Session(sync_db(db)) as session, session.begin():
        assert log.checkpoint(session, "kz", old, first) is not None
    assert len(_key_leaves(db)) == 2
    # Version 2 lists kz's new key and drops the old one; the node now signs with the new key.
    _append(db, 1, start=3)
    with Session(sync_db(db)) as session, session.begin():
        row = log.checkpoint(session, "kz", new, _trust(2, {"kz": [new], "ru": [ru]}))
        assert row is not None and row.size == 8
    assert _key_leaves(db)[2:] == [
        {"change": "signing_key", "key_id": key_id(new.public_key()), "previous": key_id(old.public_key())},
        {"change": "trust_version", "version": 2, "previous": 1, "threshold": 1, "added": [kz_new], "removed": [kz_old]},
    ]
    with Session(sync_db(db)) as session:
        report = verify_log(session, "kz", lambda region: [old.public_key(), new.public_key()] if region == "kz" else [])
    assert (report.failures, report.leaves, report.checkpoints) == ([], 8, 3)


def test_a_head_signed_by_a_key_the_log_never_announced_fails_verification(logged: Settings) -> None:
    # A second kz key that the verifier trusts (say, from the trust file) signs a head, but the log never
    # said the node took it up: a key swapped in behind the log's back.
    stranger = Ed25519PrivateKey.generate()
    _append(logged, 1, start=15)
    with Session(sync_db(logged)) as session:
        head = Checkpoint(origin_of("kz"), 16, log.root(session, 16))
    note = format_note(head, [cosign(head, signer_of("kz"), stranger, 1_800_000_000)])
    with psycopg.connect(logged.database_url) as conn:
        conn.execute("INSERT INTO audit.checkpoint VALUES (16, %s, now(), %s)", (head.root, note))
    before = _leaf_rows(logged)
    with Session(sync_db(logged)) as session:
        report = verify_log(session, "kz", lambda region: [logged.signing_key.public_key(), stranger.public_key()])
    kid = key_id(stranger.public_key())[:16]
    assert report.failures == [f"checkpoint 16: signed by key {kid}, which no key_change leaf before it announces"]
    assert _leaf_rows(logged) == before


def test_a_removed_key_announcement_fails_verification(logged: Settings) -> None:
    # Leaf 9 announces the key; rewriting it into another event (and its hashes) is caught twice: by the
    # heads, and because no leaf announces the key that signed them any more.
    entry = _leaf_rows(logged)[9][1]
    assert b'"change":"signing_key"' in entry
    forged = entry.replace(b'"change":"signing_key"', b'"change":"signing_kez"')
    _as_dba(logged, f"UPDATE audit.leaf SET entry = '\\x{forged.hex()}', leaf_hash = '\\x{merkle.leaf_hash(forged).hex()}' WHERE idx = 9")
    kid = key_id(logged.signing_key.public_key())[:16]
    assert _failures(_verify()) == [
        "subtree (level 1, index 4): stored hash differs from the one the leaves give",
        "subtree (level 2, index 2): stored hash differs from the one the leaves give",
        "checkpoint 10: its root hash is not the head of the log's first 10 leaves",
        f"checkpoint 10: signed by key {kid}, which no key_change leaf before it announces",
        "checkpoint 15: its root hash is not the head of the log's first 15 leaves",
        f"checkpoint 15: signed by key {kid}, which no key_change leaf before it announces",
    ]
