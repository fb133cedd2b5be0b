"""Registrations for events (shared items of kind "event" published on this node) and attendance."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import msgspec
import structlog
from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from medplat.api.problems import Problem
from medplat.compliance.hooks import staff_ref
from medplat.config import Settings
from medplat.domain.accounts.models import Doctor
from medplat.domain.content.models import ContentItem, ContentVersion
from medplat.domain.events.models import EventRegistration

_log = structlog.stdlib.get_logger("medplat.events")


class RegistrationRead(msgspec.Struct):
    event_id: uuid.UUID
    title: str
    event: dict[str, Any] | None
    """starts_at, ends_at, city, venue, as the event's shared document says."""
    status: str
    registered_at: datetime.datetime
    cancelled_at: datetime.datetime | None
    attended_at: datetime.datetime | None


class AttendeeRead(msgspec.Struct):
    """A registered doctor, as the moderator at the door needs to see them: name and status, no contact data."""

    doctor_id: uuid.UUID
    full_name: str
    status: str
    registered_at: datetime.datetime
    attended_at: datetime.datetime | None
    marked_by: str | None


class Attendance(msgspec.Struct, forbid_unknown_fields=True):
    doctor_id: uuid.UUID
    attended: bool = True


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def conflict(slug: str, detail: str) -> Problem:
    return Problem(detail, status=409, slug=slug, title="Conflict")


class EventService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings

    async def event(self, item_id: uuid.UUID) -> ContentItem:
        item = await self.session.get(ContentItem, item_id)
        if item is None or item.kind != "event" or item.status != "published":
            raise Problem("no published event with this id on this node", status=404, slug="not-found", title="Not found")
        return item

    async def registration(self, doctor_id: uuid.UUID, item_id: uuid.UUID, *, lock: bool = False) -> EventRegistration | None:
        query = select(EventRegistration).where(EventRegistration.doctor_id == doctor_id, EventRegistration.item_id == item_id)
        row: EventRegistration | None = await self.session.scalar(query.with_for_update() if lock else query)
        return row

    async def register(self, doctor_id: uuid.UUID, item_id: uuid.UUID) -> RegistrationRead:
        if await self.session.get(Doctor, doctor_id) is None:
            raise Problem("no such doctor on this node", status=404, slug="not-found", title="Not found")
        await self.event(item_id)
        row = await self.registration(doctor_id, item_id, lock=True)
        if row is not None and row.status == "registered":
            raise conflict("already-registered", "you are already registered for this event")
        if row is None:
            row = EventRegistration(doctor_id=doctor_id, item_id=item_id, status="registered", registered_at=_now())
            self.session.add(row)
        else:
            row.status, row.registered_at, row.cancelled_at = "registered", _now(), None
        await self.session.flush()
        _log.info("event.registered", doctor_id=str(doctor_id), event_id=str(item_id))
        return (await self.mine(doctor_id, item_id))[0]

    async def cancel(self, doctor_id: uuid.UUID, item_id: uuid.UUID) -> RegistrationRead:
        row = await self.registration(doctor_id, item_id, lock=True)
        if row is None or row.status != "registered":
            raise Problem("you are not registered for this event", status=404, slug="not-registered", title="Not registered")
        if row.attended_at is not None:
            raise conflict("already-attended", "your attendance is already recorded; a past registration cannot be cancelled")
        row.status, row.cancelled_at = "cancelled", _now()
        await self.session.flush()
        _log.info("event.cancelled", doctor_id=str(doctor_id), event_id=str(item_id))
        return (await self.mine(doctor_id, item_id))[0]

    async def mine(self, doctor_id: uuid.UUID, item_id: uuid.UUID | None = None) -> list[RegistrationRead]:
        """The doctor's registrations with each event's title and dates (from the version this node shows)."""
        query = (
            select(EventRegistration, ContentItem.title, ContentVersion.document)
            .join(ContentItem, ContentItem.id == EventRegistration.item_id)
            .outerjoin(
                ContentVersion,
                and_(
                    ContentVersion.item_id == ContentItem.id, ContentVersion.version == ContentItem.version, ContentVersion.op == "upsert"
                ),
            )
            .where(EventRegistration.doctor_id == doctor_id)
            .order_by(EventRegistration.registered_at)
        )
        if item_id is not None:
            query = query.where(EventRegistration.item_id == item_id)
        rows = (await self.session.execute(query)).all()
        return [
            RegistrationRead(r.item_id, title, (document or {}).get("event"), r.status, r.registered_at, r.cancelled_at, r.attended_at)
            for r, title, document in rows
        ]

    async def attendees(self, item_id: uuid.UUID) -> list[AttendeeRead]:
        await self.event(item_id)
        query = (
            select(EventRegistration, Doctor.full_name)
            .join(Doctor, Doctor.id == EventRegistration.doctor_id)
            .where(EventRegistration.item_id == item_id)
            .order_by(Doctor.full_name)
        )
        return [
            AttendeeRead(r.doctor_id, name, r.status, r.registered_at, r.attended_at, r.marked_by)
            for r, name in (await self.session.execute(query)).all()
        ]

    async def mark(self, item_id: uuid.UUID, data: Attendance, staff: str) -> AttendeeRead:
        await self.event(item_id)
        row = await self.registration(data.doctor_id, item_id, lock=True)
        if row is None or row.status != "registered":
            raise Problem(
                "doctor_id: this doctor is not registered for this event", status=409, slug="not-registered", title="Not registered",
                errors=[{"field": "doctor_id", "reason": "not registered for this event"}],
            )  # fmt: skip
        row.attended_at, row.marked_by = (_now(), staff) if data.attended else (None, None)
        await self.session.flush()
        _log.info(
            "event.attendance_marked",
            event_id=str(item_id),
            doctor_id=str(data.doctor_id),
            attended=data.attended,
            staff=staff_ref(staff, self.settings.data_key),
        )
        name = await self.session.scalar(select(Doctor.full_name).where(Doctor.id == data.doctor_id))
        return AttendeeRead(row.doctor_id, name or "", row.status, row.registered_at, row.attended_at, row.marked_by)

    async def export(self, doctor_id: uuid.UUID) -> list[dict[str, Any]]:
        return [msgspec.to_builtins(r) for r in await self.mine(doctor_id)]
