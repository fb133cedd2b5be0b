"""Input and output shapes of clinical cases. Unknown fields are refused."""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated, Literal

import msgspec

Sex = Literal["female", "male"]
AgeBand = Literal["0-11", "12-17", "18-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80+"]
Stage = Literal["before", "after"]
FREE_TEXT_FIELDS = ("condition", "recommendations", "product", "outcome")


class CaseInput(msgspec.Struct, forbid_unknown_fields=True):
    """An anonymised case: no names, contacts or identifiers anywhere in the text (they are refused)."""

    sex: Sex
    age_band: AgeBand
    condition: Annotated[str, msgspec.Meta(min_length=2, max_length=200, description="the skin condition, e.g. acne vulgaris")]
    recommendations: Annotated[str, msgspec.Meta(min_length=2, max_length=5000)]
    product: Annotated[str, msgspec.Meta(min_length=2, max_length=200, description="the product used")]
    outcome: Annotated[str, msgspec.Meta(min_length=2, max_length=5000)]


class PhotoRead(msgspec.Struct):
    stage: str
    media_type: str
    length: int
    sha256: str
    uploaded_at: datetime.datetime


class CaseRead(msgspec.Struct):
    id: uuid.UUID
    sex: str
    age_band: str
    condition: str
    recommendations: str
    product: str
    outcome: str
    status: str
    reason: str | None
    mine: bool
    photos: list[PhotoRead]
    created_at: datetime.datetime
    reviewed_at: datetime.datetime | None


class CaseReview(msgspec.Struct):
    """What a moderator sees: the case and who submitted it (to reach them about a rejection)."""

    id: uuid.UUID
    doctor_id: uuid.UUID
    sex: str
    age_band: str
    condition: str
    recommendations: str
    product: str
    outcome: str
    status: str
    reason: str | None
    photos: list[PhotoRead]
    created_at: datetime.datetime
    reviewed_by: str | None
    reviewed_at: datetime.datetime | None
