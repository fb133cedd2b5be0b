"""The manifest: one signed delivery of item versions from an origin to a target on one channel.

Body: RFC 8785 canonical JSON (`ManifestBody`), signed as a DSSE envelope with the origin's Ed25519
key(s). The manifest hash is the sha256 of the exact payload bytes; each manifest names the hash of the
one before it in its channel, so a channel is a hash chain.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Annotated, Final, Literal

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medsync.canonical import canonical_bytes, parse_canonical, sha256_hex
from medsync.envelope import Envelope, sign, verify
from medsync.errors import SyncError
from medsync.items import Blob, ItemId, RegionCode, Sha256Hex, SharedDocument, Slug, canonical_document

SPEC: Final = "medfed-manifest/1"
PAYLOAD_TYPE = "application/vnd.medfed.manifest+json"
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
"""Refused before parsing: an envelope bigger than this never reaches the JSON parser."""
LIFETIME = datetime.timedelta(days=7)
CLOCK_SKEW = datetime.timedelta(minutes=5)
"""How far in the future an issued-at may be, for clocks that disagree by minutes."""

Timestamp = Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")]


class ManifestError(SyncError):
    code = "manifest.malformed"


class ManifestItem(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    id: ItemId
    version: Annotated[int, msgspec.Meta(ge=1, le=2**53 - 1)]
    op: Literal["upsert", "tombstone"]
    category: Slug
    content_hash: Sha256Hex
    blobs: tuple[Blob, ...] = ()
    document: SharedDocument | None = None


class ManifestBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    spec: Literal["medfed-manifest/1"]
    origin: RegionCode
    target: RegionCode
    channel: Annotated[str, msgspec.Meta(pattern=r"^[a-z]{2}>[a-z]{2}$")]
    sequence: Annotated[int, msgspec.Meta(ge=1, le=2**53 - 1)]
    previous: Annotated[str, msgspec.Meta(pattern=r"^([0-9a-f]{64})?$")]
    issued_at: Timestamp
    expires_at: Timestamp
    items: tuple[ManifestItem, ...]


def timestamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(value: str) -> datetime.datetime:
    return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)


def document_hash(document: SharedDocument) -> str:
    return sha256_hex(canonical_document(document))


def upsert_item(item_id: str, version: int, document: SharedDocument) -> ManifestItem:
    return ManifestItem(
        id=item_id, version=version, op="upsert", category=document.category,
        content_hash=document_hash(document), blobs=document.blobs, document=document,
    )  # fmt: skip


def tombstone_item(item_id: str, version: int, category: str) -> ManifestItem:
    content_hash = sha256_hex(canonical_bytes({"id": item_id, "op": "tombstone", "version": version}))
    return ManifestItem(id=item_id, version=version, op="tombstone", category=category, content_hash=content_hash)


def build(
    *,
    origin: str,
    target: str,
    sequence: int,
    previous: str,
    items: Sequence[ManifestItem],
    keys: Sequence[Ed25519PrivateKey],
    now: datetime.datetime | None = None,
) -> tuple[Envelope, ManifestBody, str]:
    """Sign a manifest; returns the envelope, the body and the manifest hash."""
    now = now or datetime.datetime.now(datetime.UTC)
    body = ManifestBody(
        spec=SPEC, origin=origin, target=target, channel=f"{origin}>{target}", sequence=sequence, previous=previous,
        issued_at=timestamp(now), expires_at=timestamp(now + LIFETIME), items=tuple(items),
    )  # fmt: skip
    payload = canonical_bytes(msgspec.to_builtins(body))
    return sign(PAYLOAD_TYPE, payload, keys), body, sha256_hex(payload)


def open_envelope(data: bytes) -> Envelope:
    """The envelope of a received manifest; the size limit is checked before any parsing."""
    return Envelope.decode(data, max_bytes=MAX_MANIFEST_BYTES)


def verified_body(envelope: Envelope, trusted: Mapping[str, Ed25519PublicKey]) -> tuple[ManifestBody, str]:
    """Signature by a trusted key, then strict canonical parsing of exactly the signed bytes."""
    payload = verify(envelope, payload_type=PAYLOAD_TYPE, trusted=trusted)
    data = parse_canonical(payload, max_bytes=MAX_MANIFEST_BYTES)
    try:
        body = msgspec.convert(data, type=ManifestBody, strict=True)
    except msgspec.ValidationError as exc:
        raise ManifestError(f"manifest body does not match the schema: {exc}") from None
    try:
        if parse_timestamp(body.expires_at) <= parse_timestamp(body.issued_at):
            raise ManifestError("manifest expires before it was issued")
    except ValueError:
        raise ManifestError("issued_at or expires_at is not a real date") from None
    for item in body.items:
        check_item(item)
    return body, sha256_hex(payload)


def check_item(item: ManifestItem) -> None:
    """An item's declared hash and blobs are those of its document; tombstones carry no document."""
    if item.op == "tombstone":
        if item.document is not None or item.blobs:
            raise ManifestError(f"tombstone {item.id} carries a document or blobs", code="manifest.item_mismatch")
        return
    if item.document is None:
        raise ManifestError(f"upsert {item.id} carries no document", code="manifest.item_mismatch")
    if document_hash(item.document) != item.content_hash:
        raise ManifestError(f"item {item.id}: content hash does not match its document", code="manifest.content_hash")
    if item.blobs != item.document.blobs or item.category != item.document.category:
        raise ManifestError(f"item {item.id}: blobs or category differ from its document", code="manifest.item_mismatch")
    if len({b.key for b in item.blobs}) != len(item.blobs):
        raise ManifestError(f"item {item.id}: two blobs share a key", code="manifest.item_mismatch")
