"""Fixed-window counters for sign-in limits, kept in PostgreSQL.

PostgreSQL rather than the broker: every node has it (production brokers may be RabbitMQ, which keeps no
counters), one upsert is atomic under concurrent requests, and a lock-out survives a restart. A counter's
key is a keyed hash of the phone, e-mail or IP address, never the value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from medplat.fields import lookup_hash

_HIT = text(
    """
    INSERT INTO personal.sign_in_limit AS l (key, window_start, hits) VALUES (:key, now(), 1)
    ON CONFLICT (key) DO UPDATE SET
        hits = CASE WHEN l.window_start <= now() - make_interval(secs => :window) THEN 1 ELSE l.hits + 1 END,
        window_start = CASE WHEN l.window_start <= now() - make_interval(secs => :window) THEN now() ELSE l.window_start END
    RETURNING l.hits, EXTRACT(EPOCH FROM l.window_start + make_interval(secs => :window) - now())
    """
)
_PEEK = text(
    """
    SELECT hits, EXTRACT(EPOCH FROM window_start + make_interval(secs => :window) - now())
    FROM personal.sign_in_limit WHERE key = :key AND window_start > now() - make_interval(secs => :window)
    """
)


def limit_key(kind: str, value: str) -> str:
    """`kind:` and the keyed hash of `value` (an E.164 phone, a lower-case e-mail or an IP address)."""
    return f"{kind}:{lookup_hash(f'{kind}|{value}')}"


@dataclass(frozen=True, slots=True)
class Count:
    hits: int
    retry_after: int
    """Whole seconds until the window ends."""


async def hit(session: AsyncSession, key: str, window_seconds: int) -> Count:
    """Count one more event against `key` and return the count in the current window."""
    hits, remaining = (await session.execute(_HIT, {"key": key, "window": window_seconds})).one()
    return Count(int(hits), max(1, math.ceil(float(remaining))))


async def peek(session: AsyncSession, key: str, window_seconds: int) -> Count:
    """The count in the current window without adding to it."""
    row = (await session.execute(_PEEK, {"key": key, "window": window_seconds})).first()
    return Count(0, 0) if row is None else Count(int(row[0]), max(1, math.ceil(float(row[1]))))
