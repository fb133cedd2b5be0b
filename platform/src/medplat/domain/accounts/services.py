"""Registering doctors on their home node.

The home node follows citizenship. A registration that reaches another node is answered with a redirect
to the right one before anything is stored or logged about the person.
"""

from __future__ import annotations

import phonenumbers
import structlog
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from medplat.api.problems import Problem
from medplat.config import Settings, region_for_citizenship
from medplat.domain.accounts.models import Doctor
from medplat.domain.accounts.schemas import DoctorRegistration
from medplat.fields import lookup_hash

_log = structlog.stdlib.get_logger("medplat.accounts")


class WrongNode(Problem):
    status = 307
    slug = "wrong-node"
    title = "Registration belongs to another node"


def normalise_phone(raw: str, default_region: str) -> str:
    """E.164 form of a phone number, or a Problem naming the field (never echoing the number)."""
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise Problem(
            "phone: not a valid phone number",
            status=422,
            slug="invalid-field",
            title="Invalid field",
            errors=[{"field": "phone", "reason": "not a valid phone number"}],
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str) -> str:
    local, _, domain = raw.strip().rpartition("@")
    return f"{local}@{domain.lower()}"


class AccountService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings

    def home_region_of(self, citizenship: str) -> str:
        home = region_for_citizenship(citizenship)
        if home is None:
            raise Problem(
                "citizenship: no node of the federation is home to this citizenship",
                status=422, slug="no-home-node", title="No home node",
                errors=[{"field": "citizenship", "reason": "no node of the federation serves this citizenship"}],
            )  # fmt: skip
        return home

    def redirect_if_elsewhere(self, citizenship: str, path: str) -> None:
        home = self.home_region_of(citizenship)
        if home == self.settings.region.code:
            return
        base = self.settings.peers.get(home)
        headers = {"Location": f"{base}{path}"} if base else {}
        _log.info("registration.redirected", to_region=home)
        raise WrongNode(
            f"doctors with this citizenship register on the {home} node; nothing was stored here",
            headers=headers, region=home, location=headers.get("Location"),
        )  # fmt: skip

    async def register(self, data: DoctorRegistration, path: str) -> Doctor:
        self.redirect_if_elsewhere(data.citizenship, path)
        phone = normalise_phone(data.phone, self.settings.region.country)
        email = normalise_email(data.email)
        phone_key, email_key = lookup_hash(phone), lookup_hash(email.lower())
        taken = await self.session.scalar(
            select(Doctor.id).where(or_(Doctor.phone_lookup == phone_key, Doctor.email_lookup == email_key)).limit(1)
        )
        if taken is not None:
            raise Problem(
                "an account with this phone or e-mail already exists on this node",
                status=409,
                slug="already-registered",
                title="Already registered",
            )
        doctor = Doctor(
            home_region=self.settings.region.code,
            citizenship=data.citizenship,
            full_name=data.full_name.strip(),
            phone=phone,
            phone_lookup=phone_key,
            email=email,
            email_lookup=email_key,
            specializations=sorted(set(data.specializations)),
        )
        self.session.add(doctor)
        await self.session.flush()
        _log.info(
            "doctor.registered",
            doctor_id=str(doctor.id),
            specializations=len(doctor.specializations),
        )
        return doctor
