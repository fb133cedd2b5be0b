"""GET /api/v1/director/stats: counts for the regional director, aggregated in SQL; no personal record leaves it."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import msgspec
from litestar import Controller, Request, get
from sqlalchemy import text

from medplat.security import Role, roles

_BY_STATUS = text("SELECT verification_status AS k, count(*) AS n FROM personal.doctor GROUP BY 1 ORDER BY 1")
_BY_SPECIALIZATION = text("SELECT s AS k, count(*) AS n FROM personal.doctor, unnest(specializations) s GROUP BY 1 ORDER BY 1")
_CASES = text("SELECT status AS k, count(*) AS n FROM personal.clinical_case GROUP BY 1 ORDER BY 1")
_EVENTS = text(
    """
    SELECT i.id, i.title, i.status,
           count(r.id) FILTER (WHERE r.status = 'registered') AS registered,
           count(r.id) FILTER (WHERE r.status = 'cancelled') AS cancelled,
           count(r.id) FILTER (WHERE r.status = 'registered' AND r.attended_at IS NOT NULL) AS attended
    FROM shared.content_item i LEFT JOIN personal.event_registration r ON r.item_id = i.id
    WHERE i.kind = 'event' AND (i.status = 'published' OR r.id IS NOT NULL)
    GROUP BY i.id, i.title, i.status
    ORDER BY i.title, i.id
    """
)


class EventStats(msgspec.Struct):
    event_id: uuid.UUID
    title: str
    status: str
    registered: int
    cancelled: int
    attended: int


class Stats(msgspec.Struct):
    node: str
    generated_at: datetime.datetime
    doctors_total: int
    doctors_by_verification_status: dict[str, int]
    doctors_by_specialization: dict[str, int]
    """A doctor with several specializations counts once under each."""
    cases_by_status: dict[str, int]
    events: list[EventStats]


class DirectorController(Controller):
    path = "/api/v1/director"
    tags = ["director"]
    guards = [roles(Role.DIRECTOR)]

    @get("/stats", summary="Counts per specialization, verification status and event attendance on this node (director)")
    async def stats(self, request: Request[Any, Any, Any]) -> Stats:
        state = request.app.state
        async with state.db_engine.connect() as conn:
            by_status = {r.k: r.n for r in await conn.execute(_BY_STATUS)}
            by_specialization = {r.k: r.n for r in await conn.execute(_BY_SPECIALIZATION)}
            cases = {r.k: r.n for r in await conn.execute(_CASES)}
            events = [EventStats(r.id, r.title, r.status, r.registered, r.cancelled, r.attended) for r in await conn.execute(_EVENTS)]
        return Stats(
            state.settings.region.code,
            datetime.datetime.now(datetime.UTC),
            sum(by_status.values()),
            by_status,
            by_specialization,
            cases,
            events,
        )
