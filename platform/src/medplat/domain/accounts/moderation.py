"""The node's moderators (medical representatives): diploma verification and profile changes.

A moderator approves or rejects a doctor's diploma (a rejection carries a reason the doctor sees). Changes to
a profile asked for by a medical representative, or by the doctor, wait for a moderator too; the person who
asked for a change cannot approve it. Log lines name a moderator as the audit log does (`staff_ref`): a subject may
be an e-mail address.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator

import structlog
from sqlalchemy import select

from medplat.api.problems import Problem
from medplat.compliance.hooks import personal_access_async, staff_ref
from medplat.domain.accounts.models import Diploma, Doctor, ProfileChange
from medplat.domain.accounts.schemas import Decision, ReviewItem
from medplat.domain.accounts.services import AccountService, diploma_read, invalid

_log = structlog.stdlib.get_logger("medplat.moderation")

REVIEW_STATUSES = ("unverified", "pending", "verified", "rejected")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _reason_for(decision: Decision) -> str | None:
    if decision.decision == "reject" and not decision.reason:
        raise invalid("reason", "a rejection needs a reason the doctor will see")
    return decision.reason


class ModerationService(AccountService):
    async def reviews(self, status: str, staff: str) -> list[ReviewItem]:
        if status not in REVIEW_STATUSES:
            raise invalid("status", f"must be one of {', '.join(REVIEW_STATUSES)}", status=400)
        rows = await self.session.execute(
            select(Doctor, Diploma).outerjoin(Diploma, Diploma.doctor_id == Doctor.id).where(Doctor.verification_status == status)
            .order_by(Doctor.updated_at)
        )  # fmt: skip
        items = [
            ReviewItem(
                d.id, d.full_name, list(d.specializations), d.academic_degree, d.years_of_practice, d.verification_status, diploma_read(s)
            )
            for d, s in rows.tuples()
        ]
        await personal_access_async(self.session, self.settings.data_key, staff, "doctor_review_list", status=status, doctors=len(items))
        return items

    async def diploma_scan(self, doctor_id: uuid.UUID, moderator: str) -> tuple[Diploma, Iterator[bytes]]:
        diploma = await self.diploma_of((await self.doctor(doctor_id)).id)
        if diploma is None:
            raise Problem("this doctor has not uploaded a diploma", status=404, slug="not-found", title="Not found")
        _log.info("staff.personal_access", staff=staff_ref(moderator, self.settings.data_key), doctor_id=str(doctor_id), what="diploma")
        await personal_access_async(self.session, self.settings.data_key, moderator, "diploma_scan", doctor_id=doctor_id)
        # A generator: the bytes are fetched while the response streams (Litestar iterates it in a thread).
        return diploma, self.store.stream(self.settings.personal_bucket, diploma.key)

    async def decide_verification(self, doctor_id: uuid.UUID, decision: Decision, moderator: str) -> Doctor:
        doctor = await self.doctor(doctor_id)
        reason = _reason_for(decision)
        if doctor.verification_status != "pending":
            raise Problem(
                f"only a pending diploma can be decided; this doctor's status is {doctor.verification_status}",
                status=409, slug="not-pending", title="Nothing to decide",
            )  # fmt: skip
        doctor.verification_status = "verified" if decision.decision == "approve" else "rejected"
        doctor.verification_reason = reason
        doctor.verified_by, doctor.verified_at = moderator, _now()
        await self.session.flush()
        await personal_access_async(
            self.session,
            self.settings.data_key,
            moderator,
            "verification_decision",
            doctor_id=doctor.id,
            decision=doctor.verification_status,
        )
        _log.info(
            "doctor.verification_decided",
            doctor_id=str(doctor.id),
            status=doctor.verification_status,
            staff=staff_ref(moderator, self.settings.data_key),
        )
        return doctor

    async def changes(self, status: str, staff: str) -> list[ProfileChange]:
        if status not in ("pending", "approved", "rejected"):
            raise invalid("status", "must be one of pending, approved, rejected", status=400)
        found = list(
            await self.session.scalars(select(ProfileChange).where(ProfileChange.status == status).order_by(ProfileChange.created_at))
        )
        await personal_access_async(self.session, self.settings.data_key, staff, "profile_change_list", status=status, changes=len(found))
        return found

    async def decide_change(self, change_id: uuid.UUID, decision: Decision, moderator: str) -> ProfileChange:
        change = await self.session.scalar(select(ProfileChange).where(ProfileChange.id == change_id).with_for_update())
        if change is None:
            raise Problem("no such profile change", status=404, slug="not-found", title="Not found")
        reason = _reason_for(decision)
        if change.status != "pending":
            raise Problem(f"this change is already {change.status}", status=409, slug="not-pending", title="Nothing to decide")
        if change.requested_by == moderator:
            raise Problem(
                "a change cannot be approved or rejected by the person who asked for it",
                status=403, slug="four-eyes", title="Needs another moderator",
            )  # fmt: skip
        if decision.decision == "approve":
            doctor = await self.doctor(change.doctor_id)
            for field, value in change.changes.items():
                setattr(doctor, field, value)
        change.status = "approved" if decision.decision == "approve" else "rejected"
        change.reason, change.reviewed_by, change.reviewed_at = reason, moderator, _now()
        await self.session.flush()
        await personal_access_async(
            self.session,
            self.settings.data_key,
            moderator,
            "profile_change_decision",
            change_id=change.id,
            doctor_id=change.doctor_id,
            decision=change.status,
        )
        rectification = await self.rectification_of(change)
        if rectification is not None:
            await self._complete(rectification, "completed" if change.status == "approved" else "rejected")
        _log.info(
            "doctor.change_decided", change_id=str(change.id), status=change.status, staff=staff_ref(moderator, self.settings.data_key)
        )
        return change
