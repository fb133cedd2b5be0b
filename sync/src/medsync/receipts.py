"""Receipts: the target's signed answer to one manifest (applied or rejected, with reasons per item)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medsync.canonical import canonical_bytes, parse_canonical
from medsync.envelope import Envelope, sign, verify
from medsync.errors import SyncError

PAYLOAD_TYPE = "application/vnd.medfed.receipt+json"
SPEC = "medfed-receipt/1"
MAX_RECEIPT_BYTES = 4 * 1024 * 1024


class ReceiptReason(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    code: str
    message: str


class ReceiptItem(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    id: str
    version: int
    status: Literal["applied", "skipped", "refused"]
    """skipped: already superseded or tombstoned on the target."""
    reasons: tuple[ReceiptReason, ...] = ()


class Receipt(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    spec: str
    origin: str
    target: str
    sequence: int
    manifest_hash: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
    status: Literal["applied", "rejected"]
    decided_at: str
    items: tuple[ReceiptItem, ...] = ()
    reasons: tuple[ReceiptReason, ...] = ()


def sign_receipt(receipt: Receipt, key: Ed25519PrivateKey) -> Envelope:
    return sign(PAYLOAD_TYPE, canonical_bytes(msgspec.to_builtins(receipt)), [key])


def verify_receipt(data: bytes, trusted: Mapping[str, Ed25519PublicKey]) -> Receipt:
    envelope = Envelope.decode(data, max_bytes=MAX_RECEIPT_BYTES)
    payload = verify(envelope, payload_type=PAYLOAD_TYPE, trusted=trusted)
    try:
        return msgspec.convert(parse_canonical(payload, max_bytes=MAX_RECEIPT_BYTES), type=Receipt, strict=True)
    except msgspec.ValidationError as exc:
        raise SyncError(f"receipt does not match the schema: {exc}", code="receipt.malformed") from None
