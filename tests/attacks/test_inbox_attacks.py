"""Section 7 of the design, at the inbox door: every attack gets its exact error and changes nothing.

Each test takes kz's state before, sends the attack, checks the exact refusal code (in the answer and in
kz's record of refusals) and that kz's content, media, blobs and channel are exactly as they were.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from medsync import manifest
from medsync.canonical import canonical_bytes
from medsync.envelope import Envelope, Signature, key_id, sign
from tests.attacks.conftest import envelope_of, item, post, signed, token_from
from tests.sync_harness import Node


def refused(kz: Node, response_code: int, code: str, send: object) -> None:
    """Send the attack; assert the answer, the recorded refusal and that nothing else changed."""
    before = kz.state()
    response = send()  # type: ignore[operator]
    assert response.status_code == response_code, response.text
    assert response.json()["code"] == code
    assert kz.state() == before
    assert kz.refusals()[-1][1] == code


# -- signatures ----------------------------------------------------------------------------------------


def test_stripped_signatures(nodes: dict[str, Node]) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    data, _ = signed(ru)
    stripped = Envelope(payloadType=envelope_of(data).payloadType, payload=envelope_of(data).payload, signatures=()).encode()
    refused(kz, 403, "signature.missing", lambda: post(kz, stripped, token_from(ru)))


def test_signed_by_an_unknown_key(nodes: dict[str, Node]) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    data, _ = signed(ru, keys=[Ed25519PrivateKey.generate()])
    refused(kz, 403, "signature.untrusted", lambda: post(kz, data, token_from(ru)))


def test_signed_by_another_nodes_key_claiming_to_be_ru(nodes: dict[str, Node]) -> None:
    ru, kz, uz = nodes["ru"], nodes["kz"], nodes["uz"]
    data, _ = signed(ru, keys=[uz.key])
    refused(kz, 403, "signature.untrusted", lambda: post(kz, data, token_from(ru)))


@pytest.mark.parametrize("where", ["payload", "signature"])
def test_one_flipped_byte(nodes: dict[str, Node], where: str) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    data, _ = signed(ru)
    envelope = envelope_of(data)
    if where == "payload":
        payload = bytearray(base64.b64decode(envelope.payload))
        payload[payload.index(b'"sequence":1') + len('"sequence":')] = ord("2")
        tampered = Envelope(envelope.payloadType, base64.b64encode(bytes(payload)).decode(), envelope.signatures)
    else:
        sig = bytearray(base64.b64decode(envelope.signatures[0].sig))
        sig[10] ^= 0x01
        tampered = Envelope(
            envelope.payloadType, envelope.payload, (Signature(envelope.signatures[0].keyid, base64.b64encode(bytes(sig)).decode()),)
        )
    refused(kz, 403, "signature.untrusted", lambda: post(kz, tampered.encode(), token_from(ru)))


def test_a_valid_signature_over_another_payload_type(nodes: dict[str, Node]) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    data, _ = signed(ru)
    payload = base64.b64decode(envelope_of(data).payload)
    other = sign("application/vnd.medfed.receipt+json", payload, [ru.key]).encode()
    refused(kz, 403, "signature.payload_type", lambda: post(kz, other, token_from(ru)))


def test_origin_field_not_the_keys_owner(nodes: dict[str, Node]) -> None:
    ru, kz, uz = nodes["ru"], nodes["kz"], nodes["uz"]
    # ru signs (and authenticates) a manifest that claims to come from uz.
    envelope, _, _ = manifest.build(origin="uz", target="kz", sequence=1, previous="", items=(item(),), keys=[ru.key])
    refused(kz, 400, "manifest.origin_mismatch", lambda: post(kz, envelope.encode(), token_from(ru)))
    del uz


def test_manifest_for_another_region(nodes: dict[str, Node]) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    data, _ = signed(ru, target="uz")
    # Forwarded with the token made for uz: the token is refused first.
    refused(kz, 401, "jwt.audience", lambda: post(kz, data, token_from(ru, audience="uz")))
    # Sent with a token for kz: the manifest itself names uz.
    refused(kz, 400, "manifest.wrong_target", lambda: post(kz, data, token_from(ru)))


# -- the JWT ---------------------------------------------------------------------------------------------


def _claims(audience: str = "medfed:kz", lifetime: int = 60, issued: datetime.datetime | None = None) -> dict[str, object]:
    now = issued or datetime.datetime.now(datetime.UTC)
    return {"iss": "medfed:ru", "aud": audience, "iat": now, "exp": now + datetime.timedelta(seconds=lifetime), "jti": "x" * 16}


def test_jwt_missing(nodes: dict[str, Node]) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    data, _ = signed(ru)
    refused(kz, 401, "jwt.missing", lambda: post(kz, data, None))


def test_jwt_alg_none(nodes: dict[str, Node]) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    data, _ = signed(ru)
    token = jwt.encode(_claims(), None, algorithm="none")
    refused(kz, 401, "jwt.algorithm", lambda: post(kz, data, token))


def test_jwt_hs256_keyed_with_the_public_key(nodes: dict[str, Node]) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    data, _ = signed(ru)
    public = ru.key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps({**_claims(), "iat": 0, "exp": 2**31}, default=str).encode()).rstrip(b"=")
    import hashlib
    import hmac

    signature = base64.urlsafe_b64encode(hmac.new(public, header + b"." + body, hashlib.sha256).digest()).rstrip(b"=")
    token = (header + b"." + body + b"." + signature).decode()
    refused(kz, 401, "jwt.algorithm", lambda: post(kz, data, token))


def test_jwt_wrong_audience(nodes: dict[str, Node]) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    data, _ = signed(ru)
    token = jwt.encode(_claims(audience="medfed:uz"), ru.key, algorithm="EdDSA")
    refused(kz, 401, "jwt.audience", lambda: post(kz, data, token))


def test_jwt_expired(nodes: dict[str, Node]) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    data, _ = signed(ru)
    token = jwt.encode(_claims(issued=datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=10)), ru.key, algorithm="EdDSA")
    refused(kz, 401, "jwt.expired", lambda: post(kz, data, token))


def test_jwt_living_too_long(nodes: dict[str, Node]) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    data, _ = signed(ru)
    token = jwt.encode(_claims(lifetime=3600), ru.key, algorithm="EdDSA")
    refused(kz, 401, "jwt.lifetime", lambda: post(kz, data, token))


def test_jwt_signed_by_an_unknown_key(nodes: dict[str, Node]) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    data, _ = signed(ru)
    refused(kz, 401, "jwt.untrusted", lambda: post(kz, data, token_from(ru, key=Ed25519PrivateKey.generate())))


# -- the channel -----------------------------------------------------------------------------------------


def test_an_older_manifest_replayed_is_a_no_op(nodes: dict[str, Node]) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    first, digest = signed(ru)
    assert post(kz, first, token_from(ru)).status_code == 202
    second, _ = signed(ru, sequence=2, previous=digest, items=(item(2),))
    assert post(kz, second, token_from(ru)).status_code == 202
    before = kz.state()
    replay = post(kz, first, token_from(ru))
    assert (replay.status_code, replay.json()["status"]) == (200, "duplicate")
    assert kz.state() == before


def test_the_same_sequence_with_other_content_is_equivocation(nodes: dict[str, Node]) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    first, _ = signed(ru)
    assert post(kz, first, token_from(ru)).status_code == 202
    other, _ = signed(ru, items=(item(7),))
    refused(kz, 409, "sequence.equivocation", lambda: post(kz, other, token_from(ru)))
    with kz.ctx.engine.connect() as conn:
        from sqlalchemy import text

        evidence = conn.execute(
            text("SELECT count(*) FROM federation.manifest_in WHERE sequence = 1 AND envelope IS NOT NULL")
        ).scalar_one()
    assert evidence == 2, "both manifests of sequence 1 are kept as evidence"


def test_a_gap_is_answered_with_the_expected_sequence(nodes: dict[str, Node]) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    ahead, _ = signed(ru, sequence=1000)
    before = kz.state()
    response = post(kz, ahead, token_from(ru))
    assert (response.status_code, response.json()["code"], response.json()["expected"]) == (409, "sequence.gap", 1)
    assert kz.state() == before


def test_a_broken_previous_hash_chain(nodes: dict[str, Node]) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    first, _ = signed(ru)
    assert post(kz, first, token_from(ru)).status_code == 202
    second, _ = signed(ru, sequence=2, previous="0" * 64, items=(item(2),))
    refused(kz, 409, "sequence.chain_broken", lambda: post(kz, second, token_from(ru)))


def test_an_expired_manifest(nodes: dict[str, Node]) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    old, _ = signed(ru, now=datetime.datetime.now(datetime.UTC) - manifest.LIFETIME - datetime.timedelta(minutes=1))
    refused(kz, 409, "manifest.expired", lambda: post(kz, old, token_from(ru)))


def test_a_manifest_from_the_future_beyond_clock_skew(nodes: dict[str, Node]) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    future, _ = signed(ru, now=datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=30))
    refused(kz, 409, "manifest.not_yet_valid", lambda: post(kz, future, token_from(ru)))


def test_clocks_skewed_by_minutes_are_tolerated(nodes: dict[str, Node]) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    skewed, _ = signed(ru, now=datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=3))
    assert post(kz, skewed, token_from(ru)).status_code == 202


# -- the body --------------------------------------------------------------------------------------------


def _raw(ru: Node, payload: bytes) -> bytes:
    return sign(manifest.PAYLOAD_TYPE, payload, [ru.key]).encode()


def _body(**changes: object) -> dict[str, object]:
    now = datetime.datetime.now(datetime.UTC)
    one = json.loads(canonical_bytes({"x": 0}).decode())  # a canonical round trip, to show the shape is plain JSON
    del one
    import msgspec

    base = {
        "spec": manifest.SPEC, "origin": "ru", "target": "kz", "channel": "ru>kz", "sequence": 1, "previous": "",
        "issued_at": manifest.timestamp(now), "expires_at": manifest.timestamp(now + datetime.timedelta(days=1)),
        "items": [msgspec.to_builtins(item())],
    }  # fmt: skip
    base.update(changes)
    return base


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (lambda: canonical_bytes(_body())[:-1] + b',"sequence":1}', "body.duplicate_key"),
        (lambda: canonical_bytes(_body()).replace(b'"sequence":1', b'"sequence":1.0'), "body.float"),
        (lambda: canonical_bytes(_body()).replace(b'"sequence":1', b'"sequence":NaN'), "body.float"),
        (lambda: canonical_bytes(_body()).replace(b'"sequence":1', b'"sequence":9007199254740993'), "body.integer_range"),
        (lambda: canonical_bytes(_body()).replace(b'"channel":"ru>kz"', b'"channel":"ru>kz\\ud800"'), "body.lone_surrogate"),
        (lambda: json.dumps(_body(), indent=1).encode(), "body.not_canonical"),
    ],
    ids=["duplicate-key", "float", "nan", "integer-range", "lone-surrogate", "not-canonical"],
)
def test_bodies_that_could_be_read_two_ways(nodes: dict[str, Node], payload: object, code: str) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    data = _raw(ru, payload())  # type: ignore[operator]
    refused(kz, 400, code, lambda: post(kz, data, token_from(ru)))


@pytest.mark.parametrize("bad_id", ["../etc/passwd", "a/b", "x?y", "x#y", "x\x00y"])
def test_item_ids_that_could_escape(nodes: dict[str, Node], bad_id: str) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    import msgspec

    one = msgspec.to_builtins(item())
    one["id"] = bad_id
    data = _raw(ru, canonical_bytes(_body(items=[one])))
    refused(kz, 400, "manifest.malformed", lambda: post(kz, data, token_from(ru)))


@pytest.mark.parametrize("bad_key", ["../../etc/passwd", "/abs/path", "a?b", "a#b", "a\x00b"])
def test_blob_keys_that_could_escape(nodes: dict[str, Node], bad_key: str) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    import msgspec

    one = msgspec.to_builtins(item())
    blob = {"key": bad_key, "sha256": "a" * 64, "length": 1, "media_type": "image/png"}
    one["blobs"] = [blob]
    one["document"]["blobs"] = [blob]
    data = _raw(ru, canonical_bytes(_body(items=[one])))
    refused(kz, 400, "manifest.malformed", lambda: post(kz, data, token_from(ru)))


def test_a_manifest_over_the_size_limit_is_refused_before_parsing(nodes: dict[str, Node]) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    before = kz.state()
    response = post(kz, b"{" + b" " * (manifest.MAX_MANIFEST_BYTES + 10), token_from(ru))
    assert response.status_code == 413
    assert kz.state() == before


def test_a_trickling_sender_is_cut_off(nodes: dict[str, Node]) -> None:
    import socket
    import time
    from urllib.parse import urlsplit

    ru, kz = nodes["ru"], nodes["kz"]
    data, _ = signed(ru)
    before = kz.state()
    address = urlsplit(kz.url)
    with socket.create_connection((address.hostname, address.port), timeout=20) as sock:
        head = (
            f"POST /federation/v1/inbox HTTP/1.1\r\nHost: kz\r\nAuthorization: Bearer {token_from(ru)}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        sock.sendall(head.encode())
        answer = b""
        for position in range(len(data)):
            try:
                sock.sendall(data[position : position + 1])
            except OSError:
                break
            sock.settimeout(0.25)
            with contextlib.suppress(TimeoutError):
                answer += sock.recv(65536)
            if answer:
                break
            time.sleep(0.05)
        sock.settimeout(10)
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"transport.timeout" in answer or b"HTTP/1.1 408" in answer
    assert kz.state() == before


def test_key_ids_in_the_envelope_are_not_trusted(nodes: dict[str, Node]) -> None:
    ru, kz, uz = nodes["ru"], nodes["kz"], nodes["uz"]
    # uz's signature, labelled with ru's key id: the verifier works the key id out itself.
    data, _ = signed(ru, keys=[uz.key])
    envelope = envelope_of(data)
    relabelled = Envelope(envelope.payloadType, envelope.payload, (Signature(key_id(ru.key.public_key()), envelope.signatures[0].sig),))
    refused(kz, 403, "signature.untrusted", lambda: post(kz, relabelled.encode(), token_from(ru)))


def test_an_anonymous_sender_cannot_fill_the_database(nodes: dict[str, Node]) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    data, _ = signed(ru)
    refused(kz, 401, "jwt.missing", lambda: post(kz, data, None))
    with kz.ctx.engine.connect() as conn:
        from sqlalchemy import text

        kept = conn.execute(text("SELECT envelope FROM federation.manifest_in ORDER BY id DESC LIMIT 1")).scalar_one()
    assert kept is None, "without a valid token the bytes are not kept"


def test_a_staff_token_of_the_node_is_not_a_federation_token(nodes: dict[str, Node]) -> None:
    from medplat.security import Role, issue_token

    ru, kz = nodes["ru"], nodes["kz"]
    data, _ = signed(ru)
    refused(kz, 401, "jwt.issuer", lambda: post(kz, data, issue_token(kz.settings, "ops", [Role.OPS])))


def test_a_node_token_claiming_to_be_the_target_itself(nodes: dict[str, Node]) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    data, _ = signed(ru)
    refused(kz, 401, "jwt.issuer", lambda: post(kz, data, token_from(kz, audience="kz")))


def test_a_receipt_signed_by_another_node_is_refused_by_the_origin(nodes: dict[str, Node]) -> None:
    import httpx

    from medsync.receipts import SPEC, Receipt, sign_receipt

    ru, kz, uz = nodes["ru"], nodes["kz"], nodes["uz"]
    receipt = Receipt(
        spec=SPEC, origin="ru", target="kz", sequence=1, manifest_hash="a" * 64, status="applied", decided_at="2026-11-21T00:00:00Z"
    )
    forged = sign_receipt(receipt, uz.key).encode()
    answer = httpx.post(
        f"{ru.url}/federation/v1/receipts", content=forged, headers={"Authorization": f"Bearer {token_from(kz, audience='ru')}"}
    )
    assert (answer.status_code, answer.json()["code"]) == (400, "signature.untrusted")
    assert ru.count("SELECT count(*) FROM federation.manifest_out") == 0
