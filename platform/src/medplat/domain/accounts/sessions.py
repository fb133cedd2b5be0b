"""Whether a doctor's sign-in session still stands: what the role guards ask for every token that names one."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from medplat.domain.accounts.models import SignInSession


async def session_is_active(engine: AsyncEngine, session_id: str, subject: str) -> bool:
    """True while the session exists, belongs to `subject` and is neither signed out nor revoked.

    One primary-key lookup per request: the price of sign-out (and reuse detection) taking effect at once
    rather than when the short-lived access token expires.
    """
    try:
        sid = uuid.UUID(session_id)
    except ValueError:
        return False
    table = SignInSession.__table__
    async with engine.connect() as conn:
        row = (await conn.execute(select(table.c.doctor_id, table.c.revoked_at).where(table.c.id == sid))).first()
    return row is not None and row.revoked_at is None and str(row.doctor_id) == subject
