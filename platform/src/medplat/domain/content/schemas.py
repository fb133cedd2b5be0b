"""Input and output shapes of the editor API. Unknown fields are refused."""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated

import msgspec

from medsync.items import EventInfo, Kind, Lesson, RegionCode, Slug, Text


class BylineInput(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    cross_border_consent: bool = False


class DraftCreate(msgspec.Struct, forbid_unknown_fields=True):
    kind: Kind
    category: Slug
    texts: Annotated[tuple[Text, ...], msgspec.Meta(min_length=1, max_length=4)]
    specializations: tuple[Slug, ...] = ()
    origin_only: bool = False
    byline: BylineInput | None = None
    lessons: tuple[Lesson, ...] = ()
    event: EventInfo | None = None
    targets: tuple[RegionCode, ...] = ()


class DraftUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    category: Slug | None = None
    texts: Annotated[tuple[Text, ...], msgspec.Meta(min_length=1, max_length=4)] | None = None
    specializations: tuple[Slug, ...] | None = None
    origin_only: bool | None = None
    byline: BylineInput | None = None
    lessons: tuple[Lesson, ...] | None = None
    event: EventInfo | None = None
    targets: tuple[RegionCode, ...] | None = None


class Targets(msgspec.Struct, forbid_unknown_fields=True):
    targets: Annotated[tuple[RegionCode, ...], msgspec.Meta(min_length=1)]


class MediaRead(msgspec.Struct):
    key: str
    sha256: str
    length: int
    media_type: str


class ItemRead(msgspec.Struct):
    id: uuid.UUID
    origin_region: str
    kind: str
    category: str
    title: str
    languages: list[str]
    specializations: list[str]
    status: str
    version: int
    origin_only: bool
    targets: list[str]
    media: list[MediaRead]
    updated_at: datetime.datetime
    texts: list[Text] = []


class ReasonRead(msgspec.Struct):
    code: str
    message: str


class VerdictRead(msgspec.Struct):
    target: str
    accepted: bool
    reasons: list[ReasonRead]


class DeliveryRead(msgspec.Struct):
    """Where one item stands in one region: pending, delivered, applied or rejected (with reasons)."""

    target: str
    version: int
    op: str
    status: str
    reasons: list[ReasonRead]
    updated_at: datetime.datetime


class PublishResult(msgspec.Struct):
    id: uuid.UUID
    version: int
    verdicts: list[VerdictRead]
