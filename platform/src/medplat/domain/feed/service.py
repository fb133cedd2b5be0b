"""The feed's data path, built for the congress peak: one small query per request while nothing changed.

Per request the handler asks PostgreSQL one question (after the guard's session lookup): the doctor's
verification status and specializations, and the *feed version* of the node, a cheap fingerprint of
`shared.content_item` (row count, sum of versions, newest `updated_at`). Every publish, apply, retraction or
deletion changes it. Pages are cached per process under (feed version, language, specializations, cursor,
limit), as the exact response bytes and their ETag, so doctors with the same filter share one entry and a
cache hit costs no page query and no serialisation. A page is read with one SQL statement (no ORM objects)
over the partial covering index `ix_shared_content_item_feed`, joined to the shown version's texts.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.types import Receive, Scope, Send
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from medplat.api.problems import Problem
from medplat.domain.feed.live import Live, Lru

DEFAULT_LIMIT = 20
MAX_LIMIT = 50
SUMMARY_CHARS = 280

# The doctor and the feed version in one round trip; no row when the doctor no longer exists.
_DOCTOR_AND_VERSION = text(
    """
    SELECT d.verification_status, d.specializations, v.n, v.versions, v.newest
    FROM personal.doctor d,
         (SELECT count(*) AS n, coalesce(sum(version), 0) AS versions, max(updated_at) AS newest FROM shared.content_item) v
    WHERE d.id = :doctor_id
    """
)

_PAGE = """
    SELECT i.id, i.kind, i.category, i.version, i.updated_at, i.specializations, i.languages,
           t.title, t.summary, v.document -> 'event' AS event
    FROM shared.content_item i
    JOIN shared.content_version v ON v.item_id = i.id AND v.version = i.version AND v.op = 'upsert'
    CROSS JOIN LATERAL (
        SELECT x ->> 'title' AS title, left(x ->> 'body', :summary) AS summary
        FROM jsonb_array_elements(v.document -> 'texts') x
        WHERE x ->> 'language' = :lang
        LIMIT 1
    ) t
    WHERE i.status = 'published'
      AND :lang = ANY(i.languages)
      AND (i.specializations && CAST(:specs AS varchar[]) OR cardinality(i.specializations) = 0)
      {after}
    ORDER BY i.updated_at DESC, i.id DESC
    LIMIT :limit
"""
_FIRST_PAGE = text(_PAGE.format(after=""))
_NEXT_PAGE = text(_PAGE.format(after="AND (i.updated_at, i.id) < (:after_ts, :after_id)"))


class NotVerified(Problem):
    status = 403
    slug = "not-verified"
    title = "Verified doctors only"


@dataclass(frozen=True)
class Viewer:
    verification_status: str
    specializations: tuple[str, ...]
    feed_version: str


CACHE_CONTROL = "private, no-cache"
"""Only the doctor's own client may keep a page, and it revalidates (cheaply, with If-None-Match) every time."""


class Page:
    """A rendered page and its two possible answers (200 with the bytes, 304 without), headers encoded once."""

    __slots__ = ("body", "etag", "full", "not_modified")

    def __init__(self, body: bytes, etag: str) -> None:
        self.body = body
        self.etag = etag
        common = [(b"etag", etag.encode()), (b"cache-control", CACHE_CONTROL.encode()), (b"vary", b"Authorization")]
        self.full = PageResponse(200, [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *common], body)
        self.not_modified = PageResponse(304, common, b"")


class PageResponse:
    """The ASGI answer of a cached page: two messages, nothing left to encode per request."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": list(self.headers)})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


class FeedQuery(msgspec.Struct, frozen=True):
    language: str
    specializations: tuple[str, ...]
    cursor: str | None
    limit: int


def encode_cursor(updated_at: datetime.datetime, item_id: uuid.UUID) -> str:
    raw = f"{updated_at.isoformat()}|{item_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime.datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, item = raw.partition("|")
        when = datetime.datetime.fromisoformat(stamp)
        if when.tzinfo is None:
            raise ValueError("naive")
        return when, uuid.UUID(item)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Problem(
            "cursor: not a cursor this node gave out", status=400, slug="invalid-field", title="Invalid field",
            errors=[{"field": "cursor", "source": "query", "reason": "not a cursor this node gave out"}],
        ) from None  # fmt: skip


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2: weak comparison over a list of entity tags, or `*`."""
    if not if_none_match:
        return False
    for raw in if_none_match.split(","):
        candidate = raw.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


class PageCache:
    """A small LRU of rendered pages, per process; an entry is valid only for the feed version it was built at."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._entries: OrderedDict[FeedQuery, tuple[str, Page]] = OrderedDict()
        self._lock = threading.Lock()
        self.queries: Lru[tuple[bytes, tuple[str, ...]], FeedQuery] = Lru(size * 4)
        """Parsed queries by (raw query string, the doctor's specializations): see controllers.feed_query."""
        self.hits = 0
        self.misses = 0

    def get(self, query: FeedQuery, feed_version: str) -> Page | None:
        with self._lock:
            entry = self._entries.get(query)
            if entry is None or entry[0] != feed_version:
                self.misses += 1
                return None
            self._entries.move_to_end(query)
            self.hits += 1
            return entry[1]

    def put(self, query: FeedQuery, feed_version: str, page: Page) -> None:
        with self._lock:
            self._entries[query] = (feed_version, page)
            self._entries.move_to_end(query)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


async def viewer(engine: AsyncEngine, doctor_id: uuid.UUID) -> Viewer:
    """The doctor's verification and specializations and the feed version, in one statement."""
    async with engine.connect() as conn:
        row = (await conn.execute(_DOCTOR_AND_VERSION, {"doctor_id": doctor_id})).first()
    if row is None:
        raise Problem("no such doctor on this node", status=404, slug="not-found", title="Not found")
    newest = row.newest.isoformat() if row.newest is not None else "-"
    return Viewer(row.verification_status, tuple(row.specializations), f"{row.n}.{row.versions}.{newest}")


async def live_viewer(engine: AsyncEngine, live: Live, subject: str) -> Viewer | None:
    """The same from the process's caches (call only once the request found them current); None: no such doctor."""
    profile = await live.doctor(engine, subject)
    if profile is None:
        return None
    return Viewer(profile.verification_status, profile.specializations, live.feed_version())


def require_verified(who: Viewer) -> None:
    if who.verification_status != "verified":
        raise NotVerified(
            f"the feed is for verified doctors; your verification status is {who.verification_status}"
            + (": upload your diploma scan (PUT /api/v1/me/diploma)" if who.verification_status in ("unverified", "rejected") else ""),
            verification_status=who.verification_status,
        )


async def render_page(engine: AsyncEngine, query: FeedQuery) -> Page:
    params: dict[str, Any] = {
        "lang": query.language,
        "specs": list(query.specializations),
        "limit": query.limit + 1,
        "summary": SUMMARY_CHARS,
    }
    statement = _FIRST_PAGE
    if query.cursor is not None:
        params["after_ts"], params["after_id"] = decode_cursor(query.cursor)
        statement = _NEXT_PAGE
    async with engine.connect() as conn:
        rows = (await conn.execute(statement, params)).all()
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    items = [
        {
            "id": str(r.id),
            "kind": r.kind,
            "category": r.category,
            "version": r.version,
            "updated_at": r.updated_at.isoformat(),
            "language": query.language,
            "title": r.title,
            "summary": r.summary,
            "specializations": list(r.specializations),
            "languages": list(r.languages),
            "event": r.event,
        }
        for r in rows
    ]
    document = {
        "language": query.language,
        "specializations": list(query.specializations),
        "items": items,
        "next_cursor": encode_cursor(rows[-1].updated_at, rows[-1].id) if more else None,
    }
    body = msgspec.json.encode(document)
    return Page(body, etag_of(body))
