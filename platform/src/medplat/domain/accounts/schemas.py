"""Input and output shapes of the accounts API. Unknown fields are refused."""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated, Any, Literal

import msgspec

Specialization = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[a-z][a-z0-9_-]{1,63}$",
        description="specialization code, e.g. dermatology",
    ),
]
Phone = Annotated[
    str,
    msgspec.Meta(
        min_length=5,
        max_length=32,
        description="in international format, e.g. +7 701 123 45 67",
    ),
]
Email = Annotated[str, msgspec.Meta(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
NationalId = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[0-9][0-9 -]{9,20}[0-9]$",
        description="the citizenship's personal number: RU SNILS (11 digits), KZ IIN (12), UZ PINFL (14); spaces and hyphens allowed",
    ),
]
Reason = Annotated[str, msgspec.Meta(min_length=3, max_length=500)]
Clock = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="local time, HH:MM")]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Purpose = Literal["personal_data", "notifications", "byline"]
"""What a consent is for: `personal_data` (processing for the account; required), `notifications` (news and
event mail), `byline` (showing the doctor's name on content they write)."""


class Workplace(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=2, max_length=200)]
    city: Annotated[str, msgspec.Meta(max_length=100)] = ""


class ReceptionHours(msgspec.Struct, forbid_unknown_fields=True):
    weekday: Weekday
    start: Clock
    end: Clock
    workplace: Annotated[int, msgspec.Meta(ge=0, le=9)] = 0
    """Index into `workplaces`."""


class ConsentInput(msgspec.Struct, forbid_unknown_fields=True):
    purpose: Purpose
    granted: bool
    cross_border: bool = False
    """Whether the consent covers transfer of this data abroad."""


class DoctorRegistration(msgspec.Struct, forbid_unknown_fields=True):
    full_name: Annotated[str, msgspec.Meta(min_length=2, max_length=200)]
    phone: Phone
    email: Email
    citizenship: Annotated[
        str,
        msgspec.Meta(
            pattern=r"^[A-Z]{2}$",
            description="ISO 3166-1 alpha-2; decides the home node",
        ),
    ]
    date_of_birth: datetime.date
    specializations: Annotated[list[Specialization], msgspec.Meta(min_length=1, max_length=10)]
    consents: Annotated[list[ConsentInput], msgspec.Meta(min_length=1, max_length=10)]
    years_of_practice: Annotated[int, msgspec.Meta(ge=0, le=70)]
    academic_degree: Annotated[str, msgspec.Meta(min_length=2, max_length=100)] | None = None
    position: Annotated[str, msgspec.Meta(min_length=2, max_length=200)] | None = None
    workplaces: Annotated[list[Workplace], msgspec.Meta(max_length=10)] = []
    reception_schedule: Annotated[list[ReceptionHours], msgspec.Meta(max_length=50)] = []
    national_id: NationalId | None = None
    """Optional; checked against the citizenship's format and check digit, stored encrypted."""


class ProfileChanges(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Proposed changes to the professional profile; contact data and citizenship are not changed this way."""

    full_name: Annotated[str, msgspec.Meta(min_length=2, max_length=200)] | None = None
    specializations: Annotated[list[Specialization], msgspec.Meta(min_length=1, max_length=10)] | None = None
    academic_degree: Annotated[str, msgspec.Meta(min_length=2, max_length=100)] | None = None
    years_of_practice: Annotated[int, msgspec.Meta(ge=0, le=70)] | None = None
    position: Annotated[str, msgspec.Meta(min_length=2, max_length=200)] | None = None
    workplaces: Annotated[list[Workplace], msgspec.Meta(max_length=10)] | None = None
    reception_schedule: Annotated[list[ReceptionHours], msgspec.Meta(max_length=50)] | None = None


class ChangeRequest(msgspec.Struct, forbid_unknown_fields=True):
    changes: ProfileChanges


class Decision(msgspec.Struct, forbid_unknown_fields=True):
    decision: Literal["approve", "reject"]
    reason: Reason | None = None
    """Required to reject; shown to the doctor."""


class ConsentRead(msgspec.Struct):
    purpose: str
    granted: bool
    cross_border: bool
    recorded_at: datetime.datetime


class DiplomaRead(msgspec.Struct):
    media_type: str
    length: int
    sha256: str
    uploaded_at: datetime.datetime


class ChangeRead(msgspec.Struct):
    id: uuid.UUID
    doctor_id: uuid.UUID
    changes: dict[str, Any]
    requested_by: str
    status: str
    reason: str | None
    created_at: datetime.datetime
    reviewed_at: datetime.datetime | None


class DoctorRead(msgspec.Struct):
    """What the doctor (and nobody else) sees of their own account right after registering."""

    id: uuid.UUID
    home_region: str
    citizenship: str
    specializations: list[str]
    verification_status: str
    created_at: datetime.datetime


class ProfileRead(msgspec.Struct):
    """The doctor's own profile, with the verification status and, when rejected, the moderator's reason."""

    id: uuid.UUID
    home_region: str
    citizenship: str
    full_name: str
    phone: str
    email: str
    date_of_birth: str | None
    national_id: str | None
    specializations: list[str]
    academic_degree: str | None
    years_of_practice: int | None
    position: str | None
    workplaces: list[dict[str, Any]]
    reception_schedule: list[dict[str, Any]]
    verification_status: str
    verification_reason: str | None
    diploma: DiplomaRead | None
    consents: list[ConsentRead]
    pending_changes: list[ChangeRead]
    created_at: datetime.datetime


class ReviewItem(msgspec.Struct):
    """A doctor awaiting a moderator: what the moderator needs to check the diploma, no contact data."""

    id: uuid.UUID
    full_name: str
    specializations: list[str]
    academic_degree: str | None
    years_of_practice: int | None
    verification_status: str
    diploma: DiplomaRead | None


class CodeRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Ask for a one-time code: give exactly one of `phone` (the code comes by SMS) or `email`."""

    phone: Phone | None = None
    email: Email | None = None


class CodeSent(msgspec.Struct):
    challenge_id: uuid.UUID
    channel: str
    expires_at: datetime.datetime


class CodeAnswer(msgspec.Struct, forbid_unknown_fields=True):
    challenge_id: uuid.UUID
    code: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$")]


class RefreshRequest(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: Annotated[str, msgspec.Meta(min_length=20, max_length=4096)]


class Tokens(msgspec.Struct):
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int
    token_type: str = "Bearer"  # noqa: S105 (the scheme, not a secret)


class DsrRead(msgspec.Struct):
    id: uuid.UUID
    doctor_id: uuid.UUID
    kind: str
    status: str
    requested_at: datetime.datetime
    due_on: datetime.date
    completed_at: datetime.datetime | None
    extended_due_on: datetime.date | None = None
