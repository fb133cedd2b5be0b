"""DSSE envelopes: a payload, its type and Ed25519 signatures over exactly those bytes.

Protocol: https://github.com/secure-systems-lab/dsse (the envelope JSON and the PAE signing input). The
verifier works out key ids itself from the keys it trusts, uses the envelope's `keyid` only as a hint of
which key to try first, and checks signatures over the received bytes, never over a re-encoding.

Refusal codes:
- `envelope.too_large` (EnvelopeError): more bytes than the caller allows; checked before parsing.
- `envelope.malformed` (EnvelopeError): not our DSSE JSON (unknown or duplicate field, bad base64...).
- `signature.missing` (SignatureError): the envelope carries no signature at all.
- `signature.payload_type` (SignatureError): the payload type is not the one the caller expects.
- `signature.untrusted` (SignatureError): no signature verifies under any trusted key.
- `signature.threshold` (SignatureError): some trusted keys signed, but fewer distinct keys than required.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medsync.errors import SignatureError, SyncError

TOO_LARGE = "envelope.too_large"
MALFORMED = "envelope.malformed"
MISSING = "signature.missing"
PAYLOAD_TYPE = "signature.payload_type"
UNTRUSTED = "signature.untrusted"
THRESHOLD = "signature.threshold"

# More than any threshold we will ever need; bounds the work an envelope can ask of a verifier.
MAX_SIGNATURES = 32
_SIGNATURE_BYTES = 64

TrustedKeys = Mapping[str, Ed25519PublicKey] | Sequence[Ed25519PublicKey]


class EnvelopeError(SyncError):
    """Bytes that are not an envelope we accept."""

    code = MALFORMED


class Signature(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    keyid: Annotated[str, msgspec.Meta(max_length=128)]
    sig: str


class Envelope(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A DSSE envelope; field names are the protocol's own JSON names."""

    payloadType: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]  # the DSSE wire name
    payload: str
    signatures: Annotated[tuple[Signature, ...], msgspec.Meta(max_length=MAX_SIGNATURES)]

    def encode(self) -> bytes:
        return msgspec.json.encode(self)

    @classmethod
    def decode(cls, data: bytes, *, max_bytes: int) -> Envelope:
        """Parse an envelope a peer sent: size first, then strict JSON and strict base64."""
        if len(data) > max_bytes:
            raise EnvelopeError(f"{len(data)} bytes, more than the limit of {max_bytes}", code=TOO_LARGE)
        try:
            raw = json.loads(data.decode("utf-8"), object_pairs_hook=_refuse_duplicates)
            envelope = msgspec.convert(raw, type=cls, strict=True)
        except (UnicodeDecodeError, json.JSONDecodeError, msgspec.ValidationError, RecursionError) as exc:
            raise EnvelopeError(f"not a DSSE envelope: {exc}") from None
        envelope.payload_bytes()
        for index, signature in enumerate(envelope.signatures):
            if len(_b64decode(signature.sig, f"signatures[{index}].sig")) != _SIGNATURE_BYTES:
                raise EnvelopeError(f"signatures[{index}].sig is not a {_SIGNATURE_BYTES}-byte Ed25519 signature")
        return envelope

    def payload_bytes(self) -> bytes:
        """The payload as sent. Not authenticated: only `verify` says whether to believe it."""
        return _b64decode(self.payload, "payload")


def key_id(public_key: Ed25519PublicKey) -> str:
    """Hex sha256 of the raw 32-byte public key: the one name a key has everywhere."""
    return hashlib.sha256(public_key.public_bytes_raw()).hexdigest()


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: what is actually signed."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def sign(payload_type: str, payload: bytes, keys: Sequence[Ed25519PrivateKey]) -> Envelope:
    unsigned = Envelope(payloadType=payload_type, payload=base64.b64encode(payload).decode("ascii"), signatures=())
    return add_signatures(unsigned, keys)


def add_signatures(envelope: Envelope, keys: Iterable[Ed25519PrivateKey]) -> Envelope:
    """The envelope with one more signature per key, over its exact payload; a key that already signed is skipped."""
    message = pae(envelope.payloadType, envelope.payload_bytes())
    signatures = list(envelope.signatures)
    for key in keys:
        # Ed25519 is deterministic: signing again yields the same signature, so equality spots a repeat.
        signature = Signature(keyid=key_id(key.public_key()), sig=base64.b64encode(key.sign(message)).decode("ascii"))
        if signature not in signatures:
            signatures.append(signature)
    return msgspec.structs.replace(envelope, signatures=tuple(signatures))


def verify(envelope: Envelope, *, payload_type: str, trusted: TrustedKeys, threshold: int = 1) -> bytes:
    """The exact payload bytes, once at least `threshold` distinct trusted keys signed them as `payload_type`."""
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    if not envelope.signatures:
        raise SignatureError("the envelope carries no signatures", code=MISSING)
    if envelope.payloadType != payload_type:
        raise SignatureError(f"payload type {envelope.payloadType[:100]!a}, expected {payload_type!r}", code=PAYLOAD_TYPE)
    payload = envelope.payload_bytes()
    signers = _valid_signers(envelope.signatures, pae(payload_type, payload), _by_key_id(trusted))
    if not signers:
        raise SignatureError("no valid signature by a trusted key", code=UNTRUSTED)
    if len(signers) < threshold:
        raise SignatureError(f"signed by {len(signers)} distinct trusted keys, {threshold} required", code=THRESHOLD)
    return payload


def _valid_signers(signatures: Iterable[Signature], message: bytes, keys: Mapping[str, Ed25519PublicKey]) -> set[str]:
    """Ids of the distinct trusted keys with a valid signature; a key counts once however often it appears."""
    signers: set[str] = set()
    for signature in signatures:
        sig = _try_b64decode(signature.sig)
        if sig is None:
            continue
        # The claimed keyid only orders the attempts: a false one costs time, never trust.
        for candidate in sorted(keys.keys() - signers, key=lambda kid: kid != signature.keyid):
            if _signed_by(keys[candidate], sig, message):
                signers.add(candidate)
                break
    return signers


def _signed_by(key: Ed25519PublicKey, sig: bytes, message: bytes) -> bool:
    try:
        key.verify(sig, message)
    except InvalidSignature:
        return False
    return True


def _by_key_id(trusted: TrustedKeys) -> dict[str, Ed25519PublicKey]:
    # Whatever ids a caller's mapping uses, we name each key by its own hash.
    keys = trusted.values() if isinstance(trusted, Mapping) else trusted
    return {key_id(key): key for key in keys}


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers that keep different copies of a duplicated field would see two different envelopes.
    result = dict(pairs)
    if len(result) != len(pairs):
        raise EnvelopeError("a field appears twice")
    return result


def _b64decode(text: str, what: str) -> bytes:
    raw = _try_b64decode(text)
    if raw is None:
        raise EnvelopeError(f"{what} is not canonical standard base64")
    return raw


def _try_b64decode(text: str) -> bytes | None:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    # Only one text per byte string: unused padding bits set would be a second spelling of the same bytes.
    return raw if base64.b64encode(raw).decode("ascii") == text else None
