"""The shape of one shared content item as it travels between nodes: the allow-list.

Nothing reaches a manifest unless it is a field of `SharedDocument` (built only by the serializers of
SHARED models). Personal data has no field here except the byline, which policy strips unless the
author's consent to cross-border transfer is on record.
"""

from __future__ import annotations

import functools
from typing import Annotated, Literal

import msgspec

from medsync.canonical import canonical_bytes

RegionCode = Annotated[str, msgspec.Meta(pattern=r"^[a-z]{2}$")]
Language = Literal["ru", "kk", "uz", "en"]
Kind = Literal["article", "course", "event", "product_note"]
Slug = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
Sha256Hex = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
ItemId = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
BlobKey = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._-]{0,127}){0,7}$")]
SafeInt = Annotated[int, msgspec.Meta(ge=0, le=2**53 - 1)]


class Text(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A text in one language."""

    language: Language
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    body: Annotated[str, msgspec.Meta(max_length=1_000_000)]


class Lesson(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    position: SafeInt
    texts: tuple[Text, ...]


class EventInfo(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    starts_at: str
    ends_at: str
    city: Annotated[str, msgspec.Meta(max_length=100)]
    venue: Annotated[str, msgspec.Meta(max_length=200)]


class Byline(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The author's name as shown with the content: personal data, crosses only with recorded consent."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    cross_border_consent: bool


class Blob(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    key: BlobKey
    sha256: Sha256Hex
    length: SafeInt
    media_type: Annotated[str, msgspec.Meta(pattern=r"^[a-z]+/[a-z0-9.+-]+$")]


class SharedDocument(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One version of one shared item, exactly as it may leave its origin."""

    kind: Kind
    category: Slug
    specializations: tuple[Slug, ...]
    languages: tuple[Language, ...]
    texts: tuple[Text, ...]
    origin_only: bool = False
    byline: Byline | None = None
    lessons: tuple[Lesson, ...] = ()
    event: EventInfo | None = None
    blobs: tuple[Blob, ...] = ()


def to_builtins(document: SharedDocument) -> dict[str, object]:
    """Plain JSON-ready data (for canonical serialisation and hashing)."""
    return msgspec.to_builtins(document)  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=128)
def canonical_document(document: SharedDocument) -> bytes:
    """The RFC 8785 bytes of a document. Every item is asked for them several times (its size for the
    policy, its hash for the manifest, again on apply), and documents are frozen, so the latest are kept."""
    return canonical_bytes(to_builtins(document))


def from_builtins(data: object) -> SharedDocument:
    return msgspec.convert(data, type=SharedDocument, strict=True)
