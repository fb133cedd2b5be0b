"""GET /api/v1/feed: the verified doctor's feed, paginated by cursor, with ETag and conditional GET."""

from __future__ import annotations

import re
from typing import Any

from litestar import Controller, Request, get
from litestar.types import ASGIApp

from medplat.api.problems import Problem
from medplat.config import Settings
from medplat.domain.accounts.controllers import claims_of, me
from medplat.domain.feed.live import Live, Lru, request_is_fresh
from medplat.domain.feed.service import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    FeedQuery,
    PageCache,
    etag_matches,
    live_viewer,
    render_page,
    require_verified,
    viewer,
)
from medplat.security import Role, roles

LANGUAGES = ("ru", "kk", "uz", "en")
_SLUG = re.compile(r"^[a-z][a-z0-9_-]{1,63}$")
QUERY_FIELDS = frozenset({"language", "specializations", "cursor", "limit"})


def bad_query(field: str, reason: str) -> Problem:
    return Problem(
        f"{field}: {reason}", status=400, slug="invalid-field", title="Invalid field",
        errors=[{"field": field, "source": "query", "reason": reason}],
    )  # fmt: skip


def feed_query(request: Request[Any, Any, Any], settings: Settings, own_specializations: tuple[str, ...]) -> FeedQuery:
    """The validated query; a valid one is remembered by its raw query string (a polling client sends the same one)."""
    known: Lru[tuple[bytes, tuple[str, ...]], FeedQuery] = request.app.state.feed_cache.queries
    key = (request.scope["query_string"], own_specializations)
    query = known.get(key)
    if query is None:
        query = _parse_query(request, settings, own_specializations)
        known.put(key, query)
    return query


def _parse_query(request: Request[Any, Any, Any], settings: Settings, own_specializations: tuple[str, ...]) -> FeedQuery:
    params = request.query_params
    unknown = sorted(set(params) - QUERY_FIELDS)
    if unknown:
        raise bad_query(unknown[0], "unknown field")
    language = params.get("language") or settings.region.default_language
    if language not in LANGUAGES:
        raise bad_query("language", f"must be one of {', '.join(LANGUAGES)}")
    specializations = own_specializations
    if "specializations" in params:
        chosen = tuple(sorted({s.strip() for s in params["specializations"].split(",") if s.strip()}))
        if not chosen or len(chosen) > 10 or not all(_SLUG.match(s) for s in chosen):
            raise bad_query("specializations", "1 to 10 comma-separated specialization codes, e.g. dermatology,cosmetology")
        specializations = chosen
    raw_limit = params.get("limit", str(DEFAULT_LIMIT))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise bad_query("limit", f"an integer from 1 to {MAX_LIMIT}")
    cursor = params.get("cursor") or None
    if cursor is not None and len(cursor) > 200:
        raise bad_query("cursor", "not a cursor this node gave out")
    return FeedQuery(language, tuple(sorted(specializations)), cursor, int(raw_limit))


class FeedController(Controller):
    path = "/api/v1/feed"
    tags = ["feed"]
    guards = [roles(Role.DOCTOR)]

    @get(
        "/",
        summary="Shared content for my specializations and language, newest first; ETag / If-None-Match (verified doctor)",
        responses={},
    )
    async def feed(self, request: Request[Any, Any, Any]) -> ASGIApp:
        """Query: `language` (default: the node's), `specializations` (comma-separated; default: mine), `cursor`
        (from `next_cursor`), `limit` (1–50, 20). Items without specializations are for every doctor."""
        state = request.app.state
        live: Live | None = state.get("live")
        who = None
        if live is not None and await request_is_fresh(request):
            who = await live_viewer(state.read_engine, live, str(claims_of(request)["sub"]))
        if who is None:  # the caches cannot answer, or no such doctor: the database says which (and why)
            who = await viewer(state.read_engine, me(request))
        require_verified(who)
        query = feed_query(request, state.settings, who.specializations)
        cache: PageCache = state.feed_cache
        page = cache.get(query, who.feed_version)
        if page is None:
            page = await render_page(state.read_engine, query)
            cache.put(query, who.feed_version, page)
        if etag_matches(request.headers.get("if-none-match"), page.etag):
            return page.not_modified
        return page.full
