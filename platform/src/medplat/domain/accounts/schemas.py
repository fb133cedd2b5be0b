"""Input and output shapes of the accounts API. Unknown fields are refused."""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated

import msgspec

Specialization = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[a-z][a-z0-9_-]{1,63}$",
        description="specialization code, e.g. dermatology",
    ),
]


class DoctorRegistration(msgspec.Struct, forbid_unknown_fields=True):
    full_name: Annotated[str, msgspec.Meta(min_length=2, max_length=200)]
    phone: Annotated[
        str,
        msgspec.Meta(
            min_length=5,
            max_length=32,
            description="in international format, e.g. +7 701 123 45 67",
        ),
    ]
    email: Annotated[str, msgspec.Meta(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
    citizenship: Annotated[
        str,
        msgspec.Meta(
            pattern=r"^[A-Z]{2}$",
            description="ISO 3166-1 alpha-2; decides the home node",
        ),
    ]
    specializations: Annotated[list[Specialization], msgspec.Meta(min_length=1, max_length=10)]


class DoctorRead(msgspec.Struct):
    id: uuid.UUID
    home_region: str
    citizenship: str
    specializations: list[str]
    verification_status: str
    created_at: datetime.datetime
