"""GET /api/v1/director/stats: counts for the regional director, aggregated in SQL, small counts withheld; no personal
record leaves it."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import msgspec
from litestar import Controller, Request, get
from sqlalchemy import text

from medplat.domain.director.suppression import published, small, suppress
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
    registered: int | None
    cancelled: int | None
    attended: int | None
    """Of the registered; null also when the registered who did not attend are fewer than the threshold."""


class Stats(msgspec.Struct):
    """The node's counts; null is a count withheld by small-number suppression (medplat.domain.director.suppression)."""

    node: str
    generated_at: datetime.datetime
    suppression_threshold: int
    """Counts below this are withheld, and so are enough others that none can be recovered from a total."""
    doctors_total: int | None
    doctors_by_verification_status: dict[str, int | None]
    doctors_by_specialization: dict[str, int | None]
    """A doctor with several specializations counts once under each."""
    cases_by_status: dict[str, int | None]
    events: list[EventStats]


def event_stats(row: Any, threshold: int) -> EventStats:
    """An event's counts. The attended and the absent (registered minus attended, never shown) are one group
    whose total is `registered`, so a small number of absentees withholds the attended count too."""
    attendance = suppress({"attended": row.attended, "absent": row.registered - row.attended}, threshold)
    return EventStats(
        row.id,
        row.title,
        row.status,
        None if small(row.registered, threshold) or attendance.total else row.registered,
        None if small(row.cancelled, threshold) else row.cancelled,
        None if "attended" in attendance.cells else row.attended,
    )


def tabulate(
    node: str, threshold: int, *, by_status: dict[str, int], by_specialization: dict[str, int], cases: dict[str, int], events: list[Any]
) -> Stats:
    """Suppress the raw counts group by group. The specializations overlap (a doctor may have several), but
    when each doctor has one they add up to the doctors' total, so they count as a group of it too. When the
    total is withheld, so is every status count, since those add up to it. Cases have no total shown."""
    status = suppress(by_status, threshold)
    specialization = suppress(by_specialization, threshold)
    total = sum(by_status.values())
    total_withheld = small(total, threshold) or status.total or specialization.total
    return Stats(
        node,
        datetime.datetime.now(datetime.UTC),
        threshold,
        None if total_withheld else total,
        published(by_status, frozenset(by_status) if total_withheld else status.cells),
        published(by_specialization, specialization.cells),
        published(cases, suppress(cases, threshold).cells),
        [event_stats(row, threshold) for row in events],
    )


class DirectorController(Controller):
    path = "/api/v1/director"
    tags = ["director"]
    guards = [roles(Role.DIRECTOR)]

    @get(
        "/stats", summary="Counts per specialization, verification status and event attendance on this node; small ones withheld (director)"
    )
    async def stats(self, request: Request[Any, Any, Any]) -> Stats:
        state = request.app.state
        async with state.db_engine.connect() as conn:
            by_status = {r.k: r.n for r in await conn.execute(_BY_STATUS)}
            by_specialization = {r.k: r.n for r in await conn.execute(_BY_SPECIALIZATION)}
            cases = {r.k: r.n for r in await conn.execute(_CASES)}
            events = list(await conn.execute(_EVENTS))
        region = state.settings.region
        return tabulate(
            region.code,
            region.statistics.suppression_threshold,
            by_status=by_status,
            by_specialization=by_specialization,
            cases=cases,
            events=events,
        )
