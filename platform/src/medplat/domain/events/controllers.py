"""Event registration (doctors) and attendance (moderators: the medical representatives at the event)."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, delete, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from medplat.config import Settings
from medplat.domain.accounts.controllers import claims_of, me
from medplat.domain.events.service import Attendance, AttendeeRead, EventService, RegistrationRead
from medplat.security import Role, roles


def provide_events(db_session: NamedDependency[AsyncSession], settings: NamedDependency[Settings]) -> EventService:
    return EventService(db_session, settings)


class EventController(Controller):
    path = "/api/v1/events"
    tags = ["events"]
    guards = [roles(Role.DOCTOR)]
    dependencies = {"events": Provide(provide_events, sync_to_thread=False)}

    @put("/{event_id:uuid}/registration", status_code=HTTP_201_CREATED, summary="Register for an event published on this node (doctor)")
    async def register(
        self, event_id: FromPath[uuid.UUID], events: NamedDependency[EventService], request: Request[Any, Any, Any]
    ) -> RegistrationRead:
        return await events.register(me(request), event_id)

    @delete("/{event_id:uuid}/registration", status_code=HTTP_200_OK, summary="Cancel my registration (doctor)")
    async def cancel(
        self, event_id: FromPath[uuid.UUID], events: NamedDependency[EventService], request: Request[Any, Any, Any]
    ) -> RegistrationRead:
        return await events.cancel(me(request), event_id)


class MyEventsController(Controller):
    path = "/api/v1/me/events"
    tags = ["events"]
    guards = [roles(Role.DOCTOR)]
    dependencies = {"events": Provide(provide_events, sync_to_thread=False)}

    @get("/", summary="My event registrations, with attendance (doctor)")
    async def mine(self, events: NamedDependency[EventService], request: Request[Any, Any, Any]) -> list[RegistrationRead]:
        return await events.mine(me(request))


class AttendanceController(Controller):
    path = "/api/v1/moderation/events"
    tags = ["moderation"]
    guards = [roles(Role.MODERATOR)]
    dependencies = {"events": Provide(provide_events, sync_to_thread=False)}

    @get("/{event_id:uuid}/registrations", summary="Who registered for an event, for marking attendance (moderator)")
    async def attendees(self, event_id: FromPath[uuid.UUID], events: NamedDependency[EventService]) -> list[AttendeeRead]:
        return await events.attendees(event_id)

    @post("/{event_id:uuid}/attendance", status_code=HTTP_200_OK, summary="Mark (or unmark) a registered doctor as attending (moderator)")
    async def mark(
        self,
        event_id: FromPath[uuid.UUID],
        data: JSONBody[Attendance],
        events: NamedDependency[EventService],
        request: Request[Any, Any, Any],
    ) -> AttendeeRead:
        return await events.mark(event_id, data, str(claims_of(request)["sub"]))
