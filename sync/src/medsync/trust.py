"""The federation trust file: which keys each node signs with, versioned and rotated by the TUF root rule.

Version 1 is the pinned starting point. Version N+1 counts only when a threshold of version N's keys AND a
threshold of its own keys signed it, so no minority of keys can rewrite who is trusted; a key left out of
a version is revoked from then on. Versions live as `<dir>/<N>.trust.json`, each a DSSE envelope.

Refusal codes (every refusal is a `TrustError`):
- `trust.missing`: the directory has no `1.trust.json`.
- `trust.malformed`: not a valid trust document or envelope (wrong payload type, bad JSON, a key listed
  twice, a threshold higher than the number of keys, a version 1 file holding another version...).
- `trust.version_jump`: a version that is not exactly the previous one plus one (a gap among the files,
  a replayed or skipped version).
- `trust.old_threshold`: not signed by a threshold of the previous version's keys.
- `trust.new_threshold`: not signed by a threshold of its own keys (also version 1, and a raised
  threshold that is not met).
- `trust.expired`: the latest version's `expires_at` has passed.
- `trust.conflict`: `write_version` would replace a version file with a different document.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medsync import envelope as dsse
from medsync.canonical import MAX_SAFE_INTEGER, canonical_bytes, parse_canonical
from medsync.envelope import Envelope, EnvelopeError, key_id
from medsync.errors import CanonicalError, SignatureError, TrustError
from medsync.items import RegionCode

PAYLOAD_TYPE = "application/vnd.medfed.trust+json"
MAX_DOCUMENT_BYTES = 1 << 20
# The envelope carries the document base64-encoded (4/3 larger) plus its signatures.
MAX_FILE_BYTES = 2 * MAX_DOCUMENT_BYTES

MISSING = "trust.missing"
MALFORMED = "trust.malformed"
VERSION_JUMP = "trust.version_jump"
OLD_THRESHOLD = "trust.old_threshold"
NEW_THRESHOLD = "trust.new_threshold"
EXPIRED = "trust.expired"
CONFLICT = "trust.conflict"

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_VERSION_FILE = re.compile(r"([1-9][0-9]{0,15})\.trust\.json")

Timestamp = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$")]
PublicKeyText = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$")]
Url = Annotated[str, msgspec.Meta(pattern=r"^https?://[^\s]+$", max_length=300)]
Count = Annotated[int, msgspec.Meta(ge=1, le=MAX_SAFE_INTEGER)]


class TrustKey(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One signing key of a node and the window in which its signatures count."""

    public_key: PublicKeyText
    not_before: Timestamp
    not_after: Timestamp

    def public(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(self.public_key, validate=True))

    def valid_at(self, at: datetime) -> bool:
        return parse_time(self.not_before) <= _aware(at) < parse_time(self.not_after)


class TrustNode(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    keys: tuple[TrustKey, ...]
    url: Url | None = None


class TrustDocument(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One version of the trust file. Its root keys (which sign the next version) are all keys it lists."""

    version: Count
    issued_at: Timestamp
    expires_at: Timestamp
    threshold: Count
    nodes: dict[RegionCode, TrustNode]

    def encode(self) -> bytes:
        return canonical_bytes(msgspec.to_builtins(self))

    @classmethod
    def decode(cls, payload: bytes) -> TrustDocument:
        try:
            document = msgspec.convert(parse_canonical(payload, max_bytes=MAX_DOCUMENT_BYTES), type=cls, strict=True)
        except (CanonicalError, msgspec.ValidationError) as exc:
            raise TrustError(f"not a trust document: {exc}", code=MALFORMED) from None
        _validate(document)
        return document

    def root_keys(self) -> dict[str, Ed25519PublicKey]:
        """Every key listed, whatever its window: a trust version must stay verifiable after keys expire."""
        return {key_id(public): public for public in (key.public() for node in self.nodes.values() for key in node.keys)}

    def keys_for(self, region: str, at: datetime) -> dict[str, Ed25519PublicKey]:
        """The keys (by key id) whose signatures count for `region` at instant `at`."""
        node = self.nodes.get(region)
        if node is None:
            return {}
        return {key_id(public): public for public in (key.public() for key in node.keys if key.valid_at(at))}


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


def format_time(at: datetime) -> str:
    return _aware(at).astimezone(UTC).strftime(_TIME_FORMAT)


def trust_key(public_key: Ed25519PublicKey, *, not_before: datetime, not_after: datetime) -> TrustKey:
    text = base64.b64encode(public_key.public_bytes_raw()).decode("ascii")
    return TrustKey(public_key=text, not_before=format_time(not_before), not_after=format_time(not_after))


def new_document(
    *, version: int, threshold: int, nodes: Mapping[str, TrustNode], issued_at: datetime, expires_at: datetime
) -> TrustDocument:
    """A checked trust document (not yet signed)."""
    raw = {
        "version": version,
        "threshold": threshold,
        "issued_at": format_time(issued_at),
        "expires_at": format_time(expires_at),
        "nodes": {region: msgspec.to_builtins(node) for region, node in nodes.items()},
    }
    return TrustDocument.decode(canonical_bytes(raw))


def sign_document(document: TrustDocument, keys: Iterable[Ed25519PrivateKey]) -> Envelope:
    return dsse.sign(PAYLOAD_TYPE, document.encode(), list(keys))


def add_signatures(envelope: Envelope, keys: Iterable[Ed25519PrivateKey]) -> Envelope:
    """The same version with more signatures, so operators of several nodes can sign it one after another."""
    _require_trust_type(envelope)
    return dsse.add_signatures(envelope, keys)


def verify_initial(envelope: Envelope) -> TrustDocument:
    """Version 1, the pinned starting point: signed by a threshold of its own keys."""
    document = _unverified_document(envelope)
    if document.version != 1:
        raise TrustError(f"the first trust file holds version {document.version}, not 1", code=MALFORMED)
    _verify_own(envelope, document)
    return document


def verify_rotation(current: TrustDocument, envelope: Envelope) -> TrustDocument:
    """The next version, once a threshold of the current keys and a threshold of its own keys signed it."""
    _require_trust_type(envelope)
    try:
        payload = dsse.verify(envelope, payload_type=PAYLOAD_TYPE, trusted=current.root_keys(), threshold=current.threshold)
    except SignatureError as exc:
        raise TrustError(f"not signed by {current.threshold} keys of version {current.version} ({exc.code})", code=OLD_THRESHOLD) from None
    except EnvelopeError as exc:
        raise TrustError(f"unreadable envelope: {exc}", code=MALFORMED) from None
    document = TrustDocument.decode(payload)
    if document.version != current.version + 1:
        raise TrustError(f"version {document.version} cannot follow version {current.version}", code=VERSION_JUMP)
    _verify_own(envelope, document)
    return document


def load_chain(directory: Path, *, now: datetime) -> TrustDocument:
    """The latest trust version, reached from version 1 one verified rotation at a time."""
    paths = _version_paths(directory)
    if 1 not in paths:
        raise TrustError(f"no 1.trust.json in {directory}", code=MISSING)
    for expected, version in enumerate(sorted(paths), start=1):
        if version != expected:
            raise TrustError(f"{version}.trust.json is present without {expected}.trust.json", code=VERSION_JUMP)
    document = verify_initial(read_version(paths[1]))
    for version in range(2, len(paths) + 1):
        document = verify_rotation(document, read_version(paths[version]))
    if _aware(now) >= parse_time(document.expires_at):
        raise TrustError(f"trust version {document.version} expired at {document.expires_at}", code=EXPIRED)
    return document


def version_path(directory: Path, version: int) -> Path:
    return directory / f"{version}.trust.json"


def read_version(path: Path) -> Envelope:
    with path.open("rb") as file:
        data = file.read(MAX_FILE_BYTES + 1)
    try:
        return Envelope.decode(data, max_bytes=MAX_FILE_BYTES)
    except EnvelopeError as exc:
        raise TrustError(f"{path.name}: {exc}", code=MALFORMED) from None


def write_version(directory: Path, envelope: Envelope) -> Path:
    """Write a version's file; over an existing file of the same document, signatures are merged."""
    document = _unverified_document(envelope)  # read only to name the file
    path = version_path(directory, document.version)
    if path.exists():
        existing = read_version(path)
        if existing.payload != envelope.payload:
            raise TrustError(f"{path.name} already holds a different document", code=CONFLICT)
        envelope = _merge_signatures(existing, envelope)
    directory.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as file:
        file.write(envelope.encode())
        file.flush()
        os.fsync(file.fileno())
    # A reader sees the old file or the new one, never half of one.
    temporary.replace(path)
    return path


def _version_paths(directory: Path) -> dict[int, Path]:
    if not directory.is_dir():
        raise TrustError(f"{directory} is not a directory", code=MISSING)
    matches = ((_VERSION_FILE.fullmatch(path.name), path) for path in directory.iterdir())
    return {int(match.group(1)): path for match, path in matches if match}


def _require_trust_type(envelope: Envelope) -> None:
    if envelope.payloadType != PAYLOAD_TYPE:
        raise TrustError(f"payload type {envelope.payloadType[:100]!a} is not {PAYLOAD_TYPE}", code=MALFORMED)


def _unverified_document(envelope: Envelope) -> TrustDocument:
    _require_trust_type(envelope)
    try:
        payload = envelope.payload_bytes()
    except EnvelopeError as exc:
        raise TrustError(f"unreadable envelope: {exc}", code=MALFORMED) from None
    return TrustDocument.decode(payload)


def _verify_own(envelope: Envelope, document: TrustDocument) -> None:
    try:
        dsse.verify(envelope, payload_type=PAYLOAD_TYPE, trusted=document.root_keys(), threshold=document.threshold)
    except SignatureError as exc:
        raise TrustError(
            f"version {document.version} is not signed by {document.threshold} of its own keys ({exc.code})", code=NEW_THRESHOLD
        ) from None


def _validate(document: TrustDocument) -> None:
    """What the schema cannot say: real instants, windows that open before they close, one owner per key."""
    _require_before(document.issued_at, document.expires_at, "expires_at is not after issued_at")
    seen: set[str] = set()
    for region, node in document.nodes.items():
        for key in node.keys:
            _require_before(key.not_before, key.not_after, f"a key of {region} has not_after before not_before")
            try:
                key.public()
            except ValueError:
                raise TrustError(f"a key of {region} is not an Ed25519 public key", code=MALFORMED) from None
            # One key under two regions would let one node sign as another.
            if key.public_key in seen:
                raise TrustError(f"key {key_id(key.public())} is listed twice", code=MALFORMED)
            seen.add(key.public_key)
    if document.threshold > len(seen):
        raise TrustError(f"threshold {document.threshold} is more than the {len(seen)} keys listed", code=MALFORMED)


def _require_before(start: str, end: str, message: str) -> None:
    try:
        ordered = parse_time(start) < parse_time(end)
    except ValueError as exc:
        raise TrustError(f"invalid date: {exc}", code=MALFORMED) from None
    if not ordered:
        raise TrustError(message, code=MALFORMED)


def _merge_signatures(existing: Envelope, incoming: Envelope) -> Envelope:
    added = tuple(signature for signature in incoming.signatures if signature not in existing.signatures)
    return msgspec.structs.replace(existing, signatures=existing.signatures + added)


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("a naive datetime; pass an aware one (UTC)")
    return at
