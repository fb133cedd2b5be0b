"""Whether a doctor's sign-in session still stands: what the role guards ask for every token that names one."""

from __future__ import annotations

import uuid
from typing import Any

from litestar.connection import ASGIConnection
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from medplat.domain.accounts.models import SignInSession
from medplat.domain.feed.live import Live, request_is_fresh


async def session_is_active(engine: AsyncEngine, session_id: str, subject: str) -> bool:
    """True while the session exists, belongs to `subject` and is neither signed out nor revoked.

    One primary-key lookup: the price of sign-out (and reuse detection) taking effect at once rather than when
    the short-lived access token expires. The guard asks this only when the per-process cache cannot answer.
    """
    try:
        sid = uuid.UUID(session_id)
    except ValueError:
        return False
    table = SignInSession.__table__
    async with engine.connect() as conn:
        row = (await conn.execute(select(table.c.doctor_id, table.c.revoked_at).where(table.c.id == sid))).first()
    return row is not None and row.revoked_at is None and str(row.doctor_id) == subject


async def session_stands(connection: ASGIConnection[Any, Any, Any, Any], session_id: str, subject: str) -> bool:
    """`session_is_active`, answered from the process's caches when they are current (medplat.domain.feed.live:
    every sign-out, revocation or erasure committed before this request began is in them), from the database
    otherwise."""
    state = connection.app.state
    engine: AsyncEngine = state.get("read_engine") or state.db_engine
    live: Live | None = state.get("live")
    if live is None or not await request_is_fresh(connection):
        return await session_is_active(engine, session_id, subject)
    found = await live.session(engine, session_id)
    return not found.revoked and found.doctor_id == subject
