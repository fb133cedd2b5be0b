"""Doctors' accounts on their home node: registration, the profile, the diploma scan and data-subject rights.

The home node follows citizenship. A registration that reaches another node is answered with a redirect
to the right one before anything is stored or logged about the person.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import msgspec
import phonenumbers
import structlog
from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from medplat.api.problems import Problem
from medplat.compliance.deadlines import due_on
from medplat.compliance.hooks import dsr_step_async
from medplat.config import Settings, region_for_citizenship
from medplat.domain.accounts.models import (
    DSR_STATUSES,
    Consent,
    DataSubjectRequest,
    Diploma,
    Doctor,
    OtpChallenge,
    ProfileChange,
    SignInSession,
)
from medplat.domain.accounts.schemas import (
    ChangeRead,
    ConsentRead,
    DiplomaRead,
    DoctorRegistration,
    DsrRead,
    ProfileChanges,
    ProfileRead,
    ReceptionHours,
    Workplace,
)
from medplat.domain.cases.models import CasePhoto, ClinicalCase
from medplat.domain.cases.service import CaseService
from medplat.domain.events.models import EventRegistration
from medplat.domain.events.service import EventService
from medplat.fields import lookup_hash
from medplat.storage import CASE_PHOTOS, DIPLOMA_SCANS, ObjectStore
from medplat.uploads import SIGNATURES, refuse_type, spool_checked
from medsync.border import NationalIdKind, national_id_valid

_log = structlog.stdlib.get_logger("medplat.accounts")

MAX_DIPLOMA_BYTES = 10 * 1024 * 1024
REQUIRED_CONSENT = "personal_data"


class WrongNode(Problem):
    status = 307
    slug = "wrong-node"
    title = "Registration belongs to another node"


def invalid(field: str, reason: str, status: int = 422) -> Problem:
    """A problem naming one field and why it is refused (never echoing the value)."""
    return Problem(
        f"{field}: {reason}", status=status, slug="invalid-field", title="Invalid field", errors=[{"field": field, "reason": reason}]
    )


def normalise_phone(raw: str, default_region: str) -> str:
    """E.164 form of a phone number, or a Problem naming the field (never echoing the number)."""
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise invalid("phone", "not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str) -> str:
    local, _, domain = raw.strip().rpartition("@")
    return f"{local}@{domain.lower()}"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def check_schedule(schedule: list[ReceptionHours], workplaces: list[Workplace], prefix: str = "reception_schedule") -> list[dict[str, Any]]:
    for i, hours in enumerate(schedule):
        if hours.end <= hours.start:
            raise invalid(f"{prefix}[{i}].end", "must be later than start")
        if hours.workplace >= max(1, len(workplaces)):
            raise invalid(f"{prefix}[{i}].workplace", "no workplace with this index")
    return [{"weekday": h.weekday, "start": h.start, "end": h.end, "workplace": h.workplace} for h in schedule]


def check_birth_date(born: datetime.date) -> str:
    today = datetime.datetime.now(datetime.UTC).date()
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    if not 18 <= age <= 100:
        raise invalid("date_of_birth", "a doctor's age must be between 18 and 100 years")
    return born.isoformat()


NATIONAL_IDS: dict[str, tuple[NationalIdKind, str]] = {
    "RU": ("ru_snils", "a SNILS of 11 digits with a valid check number"),
    "KZ": ("kz_iin", "an IIN of 12 digits with a valid date and check digit"),
    "UZ": ("uz_pinfl", "a PINFL of 14 digits with a valid date and check digit"),
}
"""Which personal number a doctor of each citizenship gives, and how the refusal describes it."""


def check_national_id(citizenship: str, raw: str | None) -> str | None:
    """The national id as digits, checked for the citizenship; the refusal never repeats the value."""
    if raw is None:
        return None
    known = NATIONAL_IDS.get(citizenship)
    if known is None:
        raise invalid("national_id", "this node takes no national id for this citizenship; leave it out")
    kind, expected = known
    digits = raw.replace(" ", "").replace("-", "")
    if not national_id_valid(kind, digits):
        raise invalid("national_id", f"not a valid national id: expected {expected}")
    return digits


def diploma_read(diploma: Diploma | None) -> DiplomaRead | None:
    if diploma is None:
        return None
    return DiplomaRead(diploma.media_type, diploma.length, diploma.sha256, diploma.updated_at)


def change_read(change: ProfileChange) -> ChangeRead:
    return ChangeRead(
        change.id,
        change.doctor_id,
        change.changes,
        change.requested_by,
        change.status,
        change.reason,
        change.created_at,
        change.reviewed_at,
    )


def dsr_read(row: DataSubjectRequest) -> DsrRead:
    return DsrRead(row.id, row.doctor_id, row.kind, row.status, row.requested_at, row.due_on, row.completed_at, row.extended_due_on)


def changes_document(changes: ProfileChanges, current_workplaces: list[dict[str, Any]]) -> dict[str, Any]:
    """The proposed changes as stored (JSON), checked like a registration."""
    document: dict[str, Any] = msgspec.to_builtins(changes)
    if not document:
        raise invalid("changes", "propose at least one change", status=400)
    if changes.specializations is not None:
        document["specializations"] = sorted(set(changes.specializations))
    if changes.reception_schedule is not None:
        workplaces = changes.workplaces if changes.workplaces is not None else msgspec.convert(current_workplaces, list[Workplace])
        document["reception_schedule"] = check_schedule(changes.reception_schedule, workplaces, "changes.reception_schedule")
    return document


class AccountService:
    def __init__(self, session: AsyncSession, settings: Settings, store: ObjectStore | None = None) -> None:
        self.session = session
        self.settings = settings
        self._store = store

    @property
    def store(self) -> ObjectStore:
        if self._store is None:
            raise RuntimeError("this operation needs the object store")
        return self._store

    # -- registration -----------------------------------------------------------------------------------

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
        born = check_birth_date(data.date_of_birth)
        national_id = check_national_id(data.citizenship, data.national_id)
        schedule = check_schedule(data.reception_schedule, data.workplaces)
        purposes = [c.purpose for c in data.consents]
        if len(set(purposes)) != len(purposes):
            raise invalid("consents", "each purpose may appear once", status=400)
        if not any(c.purpose == REQUIRED_CONSENT and c.granted for c in data.consents):
            raise invalid("consents", f"the consent {REQUIRED_CONSENT!r} is required to hold an account")
        phone_key, email_key = lookup_hash(phone), lookup_hash(email.lower())
        id_key = None if national_id is None else lookup_hash(f"{data.citizenship}:{national_id}")
        same = [Doctor.phone_lookup == phone_key, Doctor.email_lookup == email_key]
        if id_key is not None:
            same.append(Doctor.national_id_lookup == id_key)
        taken = await self.session.scalar(select(Doctor.id).where(or_(*same)).limit(1))
        if taken is not None:
            raise Problem(
                "an account with this phone, e-mail or national id already exists on this node",
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
            date_of_birth=born,
            national_id=national_id,
            national_id_lookup=id_key,
            specializations=sorted(set(data.specializations)),
            academic_degree=data.academic_degree,
            years_of_practice=data.years_of_practice,
            position=data.position,
            workplaces=msgspec.to_builtins(data.workplaces),
            reception_schedule=schedule,
        )
        self.session.add(doctor)
        await self.session.flush()
        now = _now()
        for consent in data.consents:
            self.session.add(
                Consent(
                    doctor_id=doctor.id,
                    purpose=consent.purpose,
                    granted=consent.granted,
                    cross_border=consent.cross_border,
                    recorded_at=now,
                )
            )
        await self.session.flush()
        _log.info("doctor.registered", doctor_id=str(doctor.id), specializations=len(doctor.specializations), consents=len(data.consents))
        return doctor

    # -- the doctor's own account -----------------------------------------------------------------------

    async def doctor(self, doctor_id: uuid.UUID) -> Doctor:
        doctor = await self.session.get(Doctor, doctor_id)
        if doctor is None:
            raise Problem("no such doctor on this node", status=404, slug="not-found", title="Not found")
        return doctor

    async def diploma_of(self, doctor_id: uuid.UUID) -> Diploma | None:
        diploma: Diploma | None = await self.session.scalar(select(Diploma).where(Diploma.doctor_id == doctor_id))
        return diploma

    async def profile(self, doctor_id: uuid.UUID) -> ProfileRead:
        doctor = await self.doctor(doctor_id)
        consents = await self.session.scalars(select(Consent).where(Consent.doctor_id == doctor_id).order_by(Consent.purpose))
        pending = await self.session.scalars(
            select(ProfileChange)
            .where(ProfileChange.doctor_id == doctor_id, ProfileChange.status == "pending")
            .order_by(ProfileChange.created_at)
        )
        return ProfileRead(
            id=doctor.id, home_region=doctor.home_region, citizenship=doctor.citizenship, full_name=doctor.full_name,
            phone=doctor.phone, email=doctor.email, date_of_birth=doctor.date_of_birth, national_id=doctor.national_id,
            specializations=list(doctor.specializations),
            academic_degree=doctor.academic_degree, years_of_practice=doctor.years_of_practice, position=doctor.position,
            workplaces=list(doctor.workplaces), reception_schedule=list(doctor.reception_schedule),
            verification_status=doctor.verification_status, verification_reason=doctor.verification_reason,
            diploma=diploma_read(await self.diploma_of(doctor_id)),
            consents=[ConsentRead(c.purpose, c.granted, c.cross_border, c.recorded_at) for c in consents],
            pending_changes=[change_read(c) for c in pending], created_at=doctor.created_at,
        )  # fmt: skip

    async def upload_diploma(self, doctor_id: uuid.UUID, media_type: str, chunks: AsyncIterator[bytes]) -> Diploma:
        """Check the type (declared and by its first bytes) and the size while reading, then store the scan.

        Nothing reaches the bucket before the whole upload has passed both checks.
        """
        doctor = await self.doctor(doctor_id)
        if media_type not in SIGNATURES:
            raise refuse_type(media_type, SIGNATURES, "a diploma scan")
        if doctor.verification_status == "verified":
            raise Problem("the diploma is already verified", status=409, slug="already-verified", title="Already verified")
        spool, length, sha = await spool_checked(chunks, media_type, SIGNATURES, MAX_DIPLOMA_BYTES, "a diploma scan")
        key = DIPLOMA_SCANS.key(str(doctor.id), sha)
        with spool:
            await anyio.to_thread.run_sync(self.store.put, self.settings.personal_bucket, key, spool, length, media_type)
        previous = await self.diploma_of(doctor.id)
        if previous is not None and previous.key != key:
            await anyio.to_thread.run_sync(self.store.delete, self.settings.personal_bucket, previous.key)
        if previous is None:
            previous = Diploma(doctor_id=doctor.id, key=key, media_type=media_type, length=length, sha256=sha)
            self.session.add(previous)
        else:
            previous.key, previous.media_type, previous.length, previous.sha256 = key, media_type, length, sha
        doctor.verification_status, doctor.verification_reason = "pending", None
        await self.session.flush()
        await self.session.refresh(previous)
        _log.info("doctor.diploma_uploaded", doctor_id=str(doctor.id), bytes=length, media_type=media_type)
        return previous

    async def propose_change(self, doctor_id: uuid.UUID, changes: ProfileChanges, requested_by: str) -> ProfileChange:
        doctor = await self.doctor(doctor_id)
        change = ProfileChange(doctor_id=doctor.id, changes=changes_document(changes, doctor.workplaces), requested_by=requested_by)
        self.session.add(change)
        await self.session.flush()
        if requested_by == str(doctor.id):
            # The doctor asking to correct their own data is a rectification request, with the country's deadline.
            await self._record(doctor.id, "rectification", change_id=change.id)
        await self.session.refresh(change)
        _log.info("doctor.change_proposed", doctor_id=str(doctor.id), change_id=str(change.id), fields=sorted(change.changes))
        return change

    # -- data-subject rights ----------------------------------------------------------------------------

    async def _record(self, doctor_id: uuid.UUID, kind: str, change_id: uuid.UUID | None = None) -> DataSubjectRequest:
        """The request, due on the country's deadline, and its first audit leaf, in the caller's transaction."""
        now = _now()
        region = self.settings.region
        row = DataSubjectRequest(
            doctor_id=doctor_id, kind=kind, status="received", requested_at=now,
            due_on=due_on(region.country, kind, now, region.timezone), change_id=change_id,
        )  # fmt: skip
        self.session.add(row)
        await self.session.flush()
        await dsr_step_async(self.session, row.id, kind, "received")
        return row

    async def _complete(self, row: DataSubjectRequest, status: str = "completed", **extra: Any) -> None:
        row.status, row.completed_at = status, _now()
        await self.session.flush()
        await dsr_step_async(self.session, row.id, row.kind, status, **extra)

    async def export(self, doctor_id: uuid.UUID) -> dict[str, Any]:
        """Everything this node holds about the doctor, as JSON-ready data; the request itself is recorded."""
        profile = await self.profile(doctor_id)
        row = await self._record(doctor_id, "access")
        changes = await self.session.scalars(
            select(ProfileChange).where(ProfileChange.doctor_id == doctor_id).order_by(ProfileChange.created_at)
        )
        sessions = await self.session.scalars(
            select(SignInSession).where(SignInSession.doctor_id == doctor_id).order_by(SignInSession.created_at)
        )
        requests = await self.session.scalars(
            select(DataSubjectRequest).where(DataSubjectRequest.doctor_id == doctor_id).order_by(DataSubjectRequest.requested_at)
        )
        await self._complete(row)
        _log.info("dsr.access", doctor_id=str(doctor_id), dsr_id=str(row.id))
        document: dict[str, Any] = msgspec.to_builtins(profile)
        del document["pending_changes"]
        return {
            "node": self.settings.region.code,
            "exported_at": _now().isoformat(),
            "profile": document,
            "profile_changes": [msgspec.to_builtins(change_read(c)) for c in changes],
            "sign_in_sessions": [
                {
                    "id": str(s.id),
                    "created_at": s.created_at.isoformat(),
                    "refreshed_at": s.refreshed_at and s.refreshed_at.isoformat(),
                    "revoked_at": s.revoked_at and s.revoked_at.isoformat(),
                    "revoked_reason": s.revoked_reason,
                }
                for s in sessions
            ],
            "data_subject_requests": [msgspec.to_builtins(dsr_read(r)) for r in requests],
            "clinical_cases": await CaseService(self.session, self.settings, self.store).export(doctor_id),
            "event_registrations": await EventService(self.session, self.settings).export(doctor_id),
        }

    async def erase(self, doctor_id: uuid.UUID) -> DataSubjectRequest:
        """Delete the doctor's account and everything hanging off it, and the diploma scan in the bucket.

        What stays is the request's own record (kind, dates, the former id, which no longer resolves to anyone).
        """
        doctor = await self.doctor(doctor_id)
        row = await self._record(doctor.id, "erasure")
        diploma = await self.diploma_of(doctor.id)
        keys: set[str] = set()
        for prefix in (*DIPLOMA_SCANS.owned_by(str(doctor.id)), *CASE_PHOTOS.owned_by(str(doctor.id))):
            listed = await anyio.to_thread.run_sync(lambda p: list(self.store.list(self.settings.personal_bucket, p)), prefix)
            keys |= {o.key for o in listed}
        if diploma is not None:
            keys.add(diploma.key)
        keys |= set(await self.session.scalars(select(CasePhoto.key).where(CasePhoto.doctor_id == doctor.id)))
        for key in sorted(keys):
            await anyio.to_thread.run_sync(self.store.delete, self.settings.personal_bucket, key)
        # What was destroyed, by table, goes into the audit leaf: the destruction act (RU) is built from it.
        rows: dict[str, int] = {}
        for model in (CasePhoto, ClinicalCase, EventRegistration, OtpChallenge, SignInSession, ProfileChange, Consent, Diploma):
            result = await self.session.execute(delete(model).where(model.doctor_id == doctor.id))
            rows[f"personal.{model.__tablename__}"] = result.rowcount  # type: ignore[attr-defined]
        await self.session.delete(doctor)
        rows[f"personal.{Doctor.__tablename__}"] = 1
        # Open requests of the person (a rectification waiting for a moderator) have nothing left to act on.
        for open_row in await self.session.scalars(
            select(DataSubjectRequest).where(
                DataSubjectRequest.doctor_id == doctor.id, DataSubjectRequest.status == "received", DataSubjectRequest.id != row.id
            )
        ):
            await self._complete(open_row, superseded_by=str(row.id))
        await self._complete(row, objects=len(keys), bucket=self.settings.personal_bucket, rows=rows)
        _log.info("dsr.erasure", dsr_id=str(row.id), objects=len(keys))
        return row

    async def rectification_of(self, change: ProfileChange) -> DataSubjectRequest | None:
        row: DataSubjectRequest | None = await self.session.scalar(
            select(DataSubjectRequest).where(DataSubjectRequest.change_id == change.id, DataSubjectRequest.status == "received")
        )
        return row

    async def requests(self, status: str | None = None) -> list[DataSubjectRequest]:
        if status is not None and status not in DSR_STATUSES:
            # Refused before anything is read or logged (the value would not pass as an audit payload either).
            raise invalid("status", f"must be one of {', '.join(DSR_STATUSES)}", status=400)
        query = select(DataSubjectRequest).order_by(DataSubjectRequest.requested_at)
        if status:
            query = query.where(DataSubjectRequest.status == status)
        return list(await self.session.scalars(query))
