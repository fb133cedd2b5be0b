"""DSSE envelopes: signing and strict decoding, and the signature attacks of the design brief (section 7)."""

from __future__ import annotations

import base64
import hashlib
import json

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medsync.envelope import (
    MAX_SIGNATURES,
    Envelope,
    EnvelopeError,
    Signature,
    add_signatures,
    key_id,
    pae,
    sign,
    verify,
)
from medsync.errors import SignatureError

TYPE = "application/vnd.medfed.manifest+json"
PAYLOAD = b'{"origin":"kz","sequence":7,"target":"uz"}'
LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def ru() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def kz() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def stranger() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def refused(envelope: Envelope, trusted: list[Ed25519PublicKey], *, payload_type: str = TYPE, threshold: int = 1) -> str:
    with pytest.raises(SignatureError) as caught:
        verify(envelope, payload_type=payload_type, trusted=trusted, threshold=threshold)
    return caught.value.code


def flip(text: str, index: int) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def decode_refusal(data: bytes, max_bytes: int = LIMIT) -> str:
    with pytest.raises(EnvelopeError) as caught:
        Envelope.decode(data, max_bytes=max_bytes)
    return caught.value.code


def as_json(envelope: Envelope) -> dict[str, object]:
    return json.loads(envelope.encode())  # type: ignore[no-any-return]


# --- the basics -----------------------------------------------------------------------------------------


def test_key_id_is_sha256_of_the_raw_public_key(kz: Ed25519PrivateKey) -> None:
    assert key_id(kz.public_key()) == hashlib.sha256(kz.public_key().public_bytes_raw()).hexdigest()


def test_pae_matches_the_dsse_specification() -> None:
    assert pae("http://example.com/HelloWorld", b"hello world") == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    assert pae("t\u00e9", b"") == "DSSEv1 3 t\u00e9 0 ".encode()


def test_sign_encode_decode_verify_returns_the_exact_bytes(kz: Ed25519PrivateKey) -> None:
    # Not canonical JSON on purpose: the envelope signs bytes, whatever they are.
    payload = b'{ "b": 1, "a": 2 }\n'
    envelope = Envelope.decode(sign(TYPE, payload, [kz]).encode(), max_bytes=LIMIT)
    assert envelope.signatures[0].keyid == key_id(kz.public_key())
    assert verify(envelope, payload_type=TYPE, trusted=[kz.public_key()]) == payload


def test_wire_format_uses_the_dsse_field_names(kz: Ed25519PrivateKey) -> None:
    wire = as_json(sign(TYPE, PAYLOAD, [kz]))
    assert set(wire) == {"payloadType", "payload", "signatures"}
    assert base64.b64decode(str(wire["payload"])) == PAYLOAD


def test_two_distinct_keys_meet_a_threshold_of_two(ru: Ed25519PrivateKey, kz: Ed25519PrivateKey) -> None:
    envelope = sign(TYPE, PAYLOAD, [ru, kz])
    assert verify(envelope, payload_type=TYPE, trusted=[ru.public_key(), kz.public_key()], threshold=2) == PAYLOAD


def test_key_ids_of_a_trusted_mapping_are_recomputed(kz: Ed25519PrivateKey) -> None:
    envelope = sign(TYPE, PAYLOAD, [kz])
    assert verify(envelope, payload_type=TYPE, trusted={"whatever-the-caller-called-it": kz.public_key()}) == PAYLOAD


def test_the_envelope_keyid_is_only_a_hint(ru: Ed25519PrivateKey, kz: Ed25519PrivateKey) -> None:
    envelope = sign(TYPE, PAYLOAD, [kz])
    wrong_hint = msgspec.structs.replace(envelope.signatures[0], keyid=key_id(ru.public_key()))
    hinted = msgspec.structs.replace(envelope, signatures=(wrong_hint,))
    assert verify(hinted, payload_type=TYPE, trusted=[ru.public_key(), kz.public_key()]) == PAYLOAD


def test_add_signatures_skips_a_key_that_already_signed(ru: Ed25519PrivateKey, kz: Ed25519PrivateKey) -> None:
    envelope = add_signatures(add_signatures(sign(TYPE, PAYLOAD, [ru]), [ru, kz]), [kz])
    assert [s.keyid for s in envelope.signatures] == [key_id(ru.public_key()), key_id(kz.public_key())]


def test_threshold_below_one_is_a_programming_error(kz: Ed25519PrivateKey) -> None:
    with pytest.raises(ValueError, match="threshold"):
        verify(sign(TYPE, PAYLOAD, [kz]), payload_type=TYPE, trusted=[kz.public_key()], threshold=0)


# --- attacks on signatures, each with its exact code ----------------------------------------------------------


def test_signatures_stripped(kz: Ed25519PrivateKey) -> None:
    stripped = msgspec.structs.replace(sign(TYPE, PAYLOAD, [kz]), signatures=())
    assert refused(stripped, [kz.public_key()]) == "signature.missing"
    on_the_wire = Envelope.decode(stripped.encode(), max_bytes=LIMIT)
    assert refused(on_the_wire, [kz.public_key()]) == "signature.missing"


def test_signed_by_an_unknown_key(kz: Ed25519PrivateKey, stranger: Ed25519PrivateKey) -> None:
    assert refused(sign(TYPE, PAYLOAD, [stranger]), [kz.public_key()]) == "signature.untrusted"


def test_unknown_key_claiming_a_trusted_keyid(kz: Ed25519PrivateKey, stranger: Ed25519PrivateKey) -> None:
    forged = sign(TYPE, PAYLOAD, [stranger])
    lying = msgspec.structs.replace(forged.signatures[0], keyid=key_id(kz.public_key()))
    assert refused(msgspec.structs.replace(forged, signatures=(lying,)), [kz.public_key()]) == "signature.untrusted"


def test_no_trusted_keys_at_all(kz: Ed25519PrivateKey) -> None:
    assert refused(sign(TYPE, PAYLOAD, [kz]), []) == "signature.untrusted"


def test_any_byte_flipped_in_the_payload(kz: Ed25519PrivateKey) -> None:
    envelope = sign(TYPE, PAYLOAD, [kz])
    for index in range(len(PAYLOAD)):
        tampered = msgspec.structs.replace(envelope, payload=flip(envelope.payload, index))
        assert refused(tampered, [kz.public_key()]) == "signature.untrusted", index


def test_any_byte_flipped_in_the_signature(kz: Ed25519PrivateKey) -> None:
    envelope = sign(TYPE, PAYLOAD, [kz])
    original = envelope.signatures[0]
    for index in range(64):
        tampered = msgspec.structs.replace(envelope, signatures=(msgspec.structs.replace(original, sig=flip(original.sig, index)),))
        assert refused(tampered, [kz.public_key()]) == "signature.untrusted", index


def test_valid_signature_over_another_payload_type(kz: Ed25519PrivateKey) -> None:
    other = sign("application/vnd.medfed.receipt+json", PAYLOAD, [kz])
    assert refused(other, [kz.public_key()]) == "signature.payload_type"
    # Relabelled to the expected type, the signature no longer covers what it claims to.
    relabelled = msgspec.structs.replace(other, payloadType=TYPE)
    assert refused(relabelled, [kz.public_key()]) == "signature.untrusted"


def test_threshold_met_by_one_key_twice(ru: Ed25519PrivateKey, kz: Ed25519PrivateKey) -> None:
    once = sign(TYPE, PAYLOAD, [kz])
    twice = msgspec.structs.replace(once, signatures=once.signatures * 2)
    assert refused(twice, [ru.public_key(), kz.public_key()], threshold=2) == "signature.threshold"


def test_threshold_met_by_one_key_under_two_ids(ru: Ed25519PrivateKey, kz: Ed25519PrivateKey) -> None:
    once = sign(TYPE, PAYLOAD, [kz])
    real = once.signatures[0]
    aliases = (real, msgspec.structs.replace(real, keyid=key_id(ru.public_key())), Signature(keyid="kz-2", sig=real.sig))
    envelope = msgspec.structs.replace(once, signatures=aliases)
    assert refused(envelope, [ru.public_key(), kz.public_key()], threshold=2) == "signature.threshold"


def test_threshold_met_by_one_key_trusted_twice(kz: Ed25519PrivateKey) -> None:
    envelope = sign(TYPE, PAYLOAD, [kz])
    assert refused(envelope, [kz.public_key(), kz.public_key()], threshold=2) == "signature.threshold"
    same_key_two_names = {"kz-old": kz.public_key(), "kz-new": kz.public_key()}
    with pytest.raises(SignatureError) as caught:
        verify(envelope, payload_type=TYPE, trusted=same_key_two_names, threshold=2)
    assert caught.value.code == "signature.threshold"


def test_threshold_not_met_by_a_trusted_and_an_unknown_key(kz: Ed25519PrivateKey, stranger: Ed25519PrivateKey) -> None:
    envelope = sign(TYPE, PAYLOAD, [kz, stranger])
    assert refused(envelope, [kz.public_key()], threshold=2) == "signature.threshold"


# --- strict decoding ------------------------------------------------------------------------------------


def test_over_the_size_limit_is_refused_before_parsing(kz: Ed25519PrivateKey) -> None:
    data = sign(TYPE, PAYLOAD, [kz]).encode()
    assert decode_refusal(data, max_bytes=len(data) - 1) == "envelope.too_large"
    # Not even JSON, and still "too large": the parser never saw it.
    assert decode_refusal(b"\xff" * 100, max_bytes=99) == "envelope.too_large"
    assert Envelope.decode(data, max_bytes=len(data)).payload_bytes() == PAYLOAD


def test_unknown_field_refused(kz: Ed25519PrivateKey) -> None:
    wire = as_json(sign(TYPE, PAYLOAD, [kz]))
    assert decode_refusal(json.dumps({**wire, "extra": 1}).encode()) == "envelope.malformed"
    signatures = wire["signatures"]
    assert isinstance(signatures, list)
    wire["signatures"] = [{**signatures[0], "cert": "x"}]
    assert decode_refusal(json.dumps(wire).encode()) == "envelope.malformed"


def test_duplicate_field_refused(kz: Ed25519PrivateKey) -> None:
    envelope = sign(TYPE, PAYLOAD, [kz])
    other = base64.b64encode(b"{}").decode()
    data = envelope.encode()[:-1] + f',"payload":"{other}"}}'.encode()
    assert decode_refusal(data) == "envelope.malformed"


@pytest.mark.parametrize(
    "payload",
    ["not base64!", "e30", "e31=", "e3 0=", "e30=\n", "-_-_", "\u00e9\u00e9\u00e9\u00e9"],
)
def test_bad_base64_payload_refused(kz: Ed25519PrivateKey, payload: str) -> None:
    wire = {**as_json(sign(TYPE, PAYLOAD, [kz])), "payload": payload}
    assert decode_refusal(json.dumps(wire).encode()) == "envelope.malformed"


@pytest.mark.parametrize("sig", ["AAAA", "not base64", base64.b64encode(b"\x00" * 65).decode()])
def test_bad_signature_encoding_refused(kz: Ed25519PrivateKey, sig: str) -> None:
    wire = as_json(sign(TYPE, PAYLOAD, [kz]))
    wire["signatures"] = [{"keyid": key_id(kz.public_key()), "sig": sig}]
    assert decode_refusal(json.dumps(wire).encode()) == "envelope.malformed"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        b'{"payloadType":"t","payload":"e30="}',
        b'{"payloadType":1,"payload":"e30=","signatures":[]}',
        b'{"payloadType":"","payload":"e30=","signatures":[]}',
        b'{"payloadType":"t","payload":"e30=","signatures":{}}',
        b'{"payloadType":"t\xff","payload":"e30=","signatures":[]}',
    ],
)
def test_not_an_envelope(data: bytes) -> None:
    assert decode_refusal(data) == "envelope.malformed"


def test_too_many_signatures_refused(kz: Ed25519PrivateKey) -> None:
    envelope = sign(TYPE, PAYLOAD, [kz])
    crowded = msgspec.structs.replace(envelope, signatures=envelope.signatures * (MAX_SIGNATURES + 1))
    assert decode_refusal(crowded.encode(), max_bytes=1 << 20) == "envelope.malformed"
