"""Clinical cases: submission by a verified doctor with a personal-data check, photos into the personal
bucket, moderation, and what the node's verified doctors may read."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import msgspec
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from medplat.api.problems import Problem
from medplat.compliance.hooks import personal_access_async, staff_ref
from medplat.config import Settings
from medplat.domain.accounts.models import Doctor
from medplat.domain.accounts.schemas import Decision
from medplat.domain.cases.models import CasePhoto, ClinicalCase
from medplat.domain.cases.pii import findings
from medplat.domain.cases.schemas import FREE_TEXT_FIELDS, CaseInput, CaseRead, CaseReview, PhotoRead
from medplat.domain.feed.service import NotVerified
from medplat.storage import CASE_PHOTOS, ObjectStore
from medplat.uploads import PHOTO_SIGNATURES, spool_checked

_log = structlog.stdlib.get_logger("medplat.cases")

MAX_PHOTO_BYTES = 10 * 1024 * 1024
CASE_LIST_LIMIT = 100


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def not_found() -> Problem:
    return Problem("no such case visible to you on this node", status=404, slug="not-found", title="Not found")


def check_anonymised(data: CaseInput) -> None:
    """Refuse a case whose free text holds personal data, naming every field and kind found (never the value)."""
    errors = [error for field in FREE_TEXT_FIELDS for error in findings(field, getattr(data, field))]
    if errors:
        raise Problem(
            "; ".join(f"{e['field']}: {e['reason']}" for e in errors),
            status=422, slug="personal-data", title="The case is not anonymised", errors=errors,
        )  # fmt: skip


def photo_read(photo: CasePhoto) -> PhotoRead:
    return PhotoRead(photo.stage, photo.media_type, photo.length, photo.sha256, photo.updated_at)


class CaseService:
    def __init__(self, session: AsyncSession, settings: Settings, store: ObjectStore) -> None:
        self.session = session
        self.settings = settings
        self.store = store

    async def verified_doctor(self, doctor_id: uuid.UUID) -> Doctor:
        doctor = await self.session.get(Doctor, doctor_id)
        if doctor is None:
            raise Problem("no such doctor on this node", status=404, slug="not-found", title="Not found")
        if doctor.verification_status != "verified":
            raise NotVerified(
                f"clinical cases are for verified doctors; your verification status is {doctor.verification_status}",
                verification_status=doctor.verification_status,
            )
        return doctor

    async def photos_of(self, case_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[CasePhoto]]:
        found: dict[uuid.UUID, list[CasePhoto]] = {i: [] for i in case_ids}
        if case_ids:
            for photo in await self.session.scalars(
                select(CasePhoto).where(CasePhoto.case_id.in_(case_ids)).order_by(CasePhoto.stage.desc())
            ):
                found[photo.case_id].append(photo)
        return found

    def read(self, case: ClinicalCase, photos: list[CasePhoto], viewer: uuid.UUID) -> CaseRead:
        return CaseRead(
            case.id, case.sex, case.age_band, case.condition, case.recommendations, case.product, case.outcome, case.status,
            case.reason, case.doctor_id == viewer, [photo_read(p) for p in photos], case.created_at, case.reviewed_at,
        )  # fmt: skip

    def review(self, case: ClinicalCase, photos: list[CasePhoto]) -> CaseReview:
        return CaseReview(
            case.id, case.doctor_id, case.sex, case.age_band, case.condition, case.recommendations, case.product, case.outcome,
            case.status, case.reason, [photo_read(p) for p in photos], case.created_at, case.reviewed_by, case.reviewed_at,
        )  # fmt: skip

    # -- the doctor's side ------------------------------------------------------------------------------

    async def submit(self, doctor_id: uuid.UUID, data: CaseInput) -> CaseRead:
        doctor = await self.verified_doctor(doctor_id)
        check_anonymised(data)
        case = ClinicalCase(
            doctor_id=doctor.id, sex=data.sex, age_band=data.age_band, condition=data.condition.strip(),
            recommendations=data.recommendations.strip(), product=data.product.strip(), outcome=data.outcome.strip(),
        )  # fmt: skip
        self.session.add(case)
        await self.session.flush()
        await self.session.refresh(case)
        _log.info("case.submitted", case_id=str(case.id), doctor_id=str(doctor.id))
        return self.read(case, [], doctor.id)

    async def visible(self, doctor_id: uuid.UUID, case_id: uuid.UUID) -> ClinicalCase:
        case = await self.session.get(ClinicalCase, case_id)
        if case is None or (case.status != "approved" and case.doctor_id != doctor_id):
            raise not_found()
        return case

    async def get(self, doctor_id: uuid.UUID, case_id: uuid.UUID) -> CaseRead:
        await self.verified_doctor(doctor_id)
        case = await self.visible(doctor_id, case_id)
        return self.read(case, (await self.photos_of([case.id]))[case.id], doctor_id)

    async def listing(self, doctor_id: uuid.UUID, mine: bool) -> list[CaseRead]:
        """Approved cases of the node, newest first; or, with `mine`, the doctor's own cases in any status."""
        await self.verified_doctor(doctor_id)
        query = select(ClinicalCase).order_by(ClinicalCase.created_at.desc()).limit(CASE_LIST_LIMIT)
        query = query.where(ClinicalCase.doctor_id == doctor_id) if mine else query.where(ClinicalCase.status == "approved")
        cases = list(await self.session.scalars(query))
        photos = await self.photos_of([c.id for c in cases])
        return [self.read(c, photos[c.id], doctor_id) for c in cases]

    async def put_photo(
        self, doctor_id: uuid.UUID, case_id: uuid.UUID, stage: str, media_type: str, chunks: AsyncIterator[bytes]
    ) -> PhotoRead:
        """A before or after photo; checked completely (type, first bytes, size) before it reaches the bucket."""
        await self.verified_doctor(doctor_id)
        case = await self.session.get(ClinicalCase, case_id)
        if case is None or case.doctor_id != doctor_id:
            raise not_found()
        if case.status != "pending":
            raise Problem(f"the case is already {case.status}; photos can change only while it awaits a moderator",
                          status=409, slug="case-decided", title="Case already decided")  # fmt: skip
        spool, length, sha = await spool_checked(chunks, media_type, PHOTO_SIGNATURES, MAX_PHOTO_BYTES, "a case photo")
        key = CASE_PHOTOS.key(str(doctor_id), str(case.id), f"{stage}-{sha}")
        with spool:
            await anyio.to_thread.run_sync(self.store.put, self.settings.personal_bucket, key, spool, length, media_type)
        photo = await self.session.scalar(select(CasePhoto).where(CasePhoto.case_id == case.id, CasePhoto.stage == stage))
        if photo is not None and photo.key != key:
            await anyio.to_thread.run_sync(self.store.delete, self.settings.personal_bucket, photo.key)
        if photo is None:
            photo = CasePhoto(case_id=case.id, doctor_id=doctor_id, stage=stage, key=key, media_type=media_type, length=length, sha256=sha)
            self.session.add(photo)
        else:
            photo.key, photo.media_type, photo.length, photo.sha256 = key, media_type, length, sha
        await self.session.flush()
        await self.session.refresh(photo)
        _log.info("case.photo_uploaded", case_id=str(case.id), stage=stage, bytes=length)
        return photo_read(photo)

    async def photo(
        self, case_id: uuid.UUID, stage: str, doctor_id: uuid.UUID | None, staff: str | None = None
    ) -> tuple[CasePhoto, Iterator[bytes]]:
        """A photo's bytes: for a verified doctor who may see the case, or (doctor_id None) a moderator."""
        if doctor_id is not None:
            await self.verified_doctor(doctor_id)
            await self.visible(doctor_id, case_id)
        photo = await self.session.scalar(select(CasePhoto).where(CasePhoto.case_id == case_id, CasePhoto.stage == stage))
        if photo is None:
            raise Problem(f"this case has no {stage} photo", status=404, slug="not-found", title="Not found")
        if doctor_id is None:
            _log.info(
                "staff.personal_access",
                staff=staff_ref(staff, self.settings.data_key) if staff else None,
                case_id=str(case_id),
                what=f"case photo {stage}",
            )
            await personal_access_async(
                self.session, self.settings.data_key, staff or "unknown", "case_photo", case_id=case_id, stage=stage
            )
        return photo, self.store.stream(self.settings.personal_bucket, photo.key)

    # -- moderation -------------------------------------------------------------------------------------

    async def reviews(self, status: str) -> list[CaseReview]:
        if status not in ("pending", "approved", "rejected"):
            raise Problem("status: must be pending, approved or rejected", status=400, slug="invalid-field", title="Invalid field",
                          errors=[{"field": "status", "source": "query", "reason": "must be pending, approved or rejected"}])  # fmt: skip
        query = select(ClinicalCase).where(ClinicalCase.status == status).order_by(ClinicalCase.created_at).limit(CASE_LIST_LIMIT)
        cases = list(await self.session.scalars(query))
        photos = await self.photos_of([c.id for c in cases])
        return [self.review(c, photos[c.id]) for c in cases]

    async def decide(self, case_id: uuid.UUID, decision: Decision, moderator: str) -> CaseReview:
        case = await self.session.get(ClinicalCase, case_id, with_for_update=True)
        if case is None:
            raise Problem("no such case on this node", status=404, slug="not-found", title="Not found")
        if case.status != "pending":
            raise Problem(f"the case is already {case.status}", status=409, slug="case-decided", title="Case already decided")
        if decision.decision == "reject" and not decision.reason:
            raise Problem("reason: a rejection needs a reason the doctor will see", status=422, slug="invalid-field", title="Invalid field",
                          errors=[{"field": "reason", "reason": "required to reject"}])  # fmt: skip
        case.status = "approved" if decision.decision == "approve" else "rejected"
        case.reason, case.reviewed_by, case.reviewed_at = decision.reason, moderator, _now()
        await self.session.flush()
        _log.info("case.decided", case_id=str(case.id), status=case.status)
        return self.review(case, (await self.photos_of([case.id]))[case.id])

    # -- data-subject rights ----------------------------------------------------------------------------

    async def export(self, doctor_id: uuid.UUID) -> list[dict[str, Any]]:
        cases = list(
            await self.session.scalars(select(ClinicalCase).where(ClinicalCase.doctor_id == doctor_id).order_by(ClinicalCase.created_at))
        )
        photos = await self.photos_of([c.id for c in cases])
        return [msgspec.to_builtins(self.review(c, photos[c.id])) for c in cases]
