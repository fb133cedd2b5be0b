"""Every route of the node says who may call it: a role guard (`security.roles`), or an explicit marking as
public (`opt={"access": PUBLIC}`) or as node-to-node (`opt={"access": FEDERATION}`, checked by the
federation JWT). A route that forgets fails this test with its path."""

from __future__ import annotations

import re
import uuid
from typing import Any

from litestar import Litestar, get
from litestar.handlers import BaseRouteHandler

from medplat.security import PUBLIC, Role, roles
from medsync.api import FEDERATION

EXPLICIT = {PUBLIC, FEDERATION}

# Litestar adds an OPTIONS handler to every path; it answers only the Allow header.
_AUTO_OPTIONS = "create_options_handler.<locals>.options_handler"


def handlers(app: Litestar) -> list[tuple[str, str, BaseRouteHandler]]:
    found = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", None) or [route.route_handler]:  # type: ignore[attr-defined]
            if handler.fn.__qualname__.endswith(_AUTO_OPTIONS):
                continue
            methods = ",".join(sorted(getattr(handler, "http_methods", None) or ["WS"]))
            found.append((methods, route.path, handler))
    return found


def access_of(handler: BaseRouteHandler) -> str | None:
    """`role,role` for a guarded handler, `public` or `federation` for an explicitly marked one, else None."""
    allowed: set[str] = set()
    for guard in handler.resolve_guards():
        allowed |= {str(r) for r in getattr(guard, "allowed_roles", ())}
    if allowed:
        return ",".join(sorted(allowed))
    access = handler.opt.get("access")
    return str(access) if access in EXPLICIT else None


def unguarded(app: Litestar) -> list[str]:
    return [f"{methods} {path}" for methods, path, handler in handlers(app) if access_of(handler) is None]


def test_every_route_of_the_node_is_guarded_or_explicitly_public(client: Any) -> None:
    missing = unguarded(client.app)
    assert missing == [], f"routes without a role guard or an explicit public marking: {missing}"


def test_the_accounts_routes_admit_exactly_these_roles(client: Any) -> None:
    table = {f"{m} {p}": access_of(h) for m, p, h in handlers(client.app) if p.startswith(("/api/v1/", "/health", "/ready"))}
    expected = {
        "GET /health": PUBLIC,
        "GET /ready": PUBLIC,
        "POST /api/v1/doctors": PUBLIC,
        "POST /api/v1/auth/code": PUBLIC,
        "POST /api/v1/auth/token": PUBLIC,
        "POST /api/v1/auth/refresh": PUBLIC,
        "POST /api/v1/auth/sign-out": "doctor",
        "GET /api/v1/me": "doctor",
        "PUT /api/v1/me/diploma": "doctor",
        "POST /api/v1/me/profile-changes": "doctor",
        "GET /api/v1/me/export": "doctor",
        "POST /api/v1/me/erasure": "doctor",
        "GET /api/v1/moderation/doctors": "moderator",
        "GET /api/v1/moderation/doctors/{doctor_id:uuid}/diploma": "moderator",
        "POST /api/v1/moderation/doctors/{doctor_id:uuid}/verification": "moderator",
        "POST /api/v1/moderation/doctors/{doctor_id:uuid}/changes": "moderator",
        "GET /api/v1/moderation/changes": "moderator",
        "POST /api/v1/moderation/changes/{change_id:uuid}/decision": "moderator",
        "GET /api/v1/compliance/data-subject-requests": "compliance",
        "GET /api/v1/feed": "doctor",
        "POST /api/v1/cases": "doctor",
        "GET /api/v1/cases": "doctor",
        "GET /api/v1/cases/{case_id:uuid}": "doctor",
        "PUT /api/v1/cases/{case_id:uuid}/photos/{stage:str}": "doctor",
        "GET /api/v1/cases/{case_id:uuid}/photos/{stage:str}": "doctor",
        "GET /api/v1/moderation/cases": "moderator",
        "GET /api/v1/moderation/cases/{case_id:uuid}/photos/{stage:str}": "moderator",
        "POST /api/v1/moderation/cases/{case_id:uuid}/decision": "moderator",
        "PUT /api/v1/events/{event_id:uuid}/registration": "doctor",
        "DELETE /api/v1/events/{event_id:uuid}/registration": "doctor",
        "GET /api/v1/me/events": "doctor",
        "GET /api/v1/moderation/events/{event_id:uuid}/registrations": "moderator",
        "POST /api/v1/moderation/events/{event_id:uuid}/attendance": "moderator",
        "GET /api/v1/director/stats": "director",
        "GET /api/v1/compliance/datamap": "compliance",
        "GET /api/v1/compliance/report": "compliance",
        "GET /api/v1/compliance/scan": "compliance",
        "GET /api/v1/compliance/summary": "compliance",
        "GET /api/v1/compliance/transfers": "compliance",
        "POST /api/v1/compliance/federation/summary": "hq",
    }
    assert {k: v for k, v in table.items() if not k.split(" ")[1].startswith("/api/v1/content")} == expected
    assert {v for k, v in table.items() if "/api/v1/content" in k} == {"editor"}


async def test_every_guarded_route_refuses_a_call_without_a_token(client: Any) -> None:
    """The guards are not labels: each guarded route answers 401 to an anonymous caller, before its body is read."""
    checked = 0
    for methods, path, handler in handlers(client.app):
        access = access_of(handler)
        if access in EXPLICIT or methods == "WS":
            continue
        url = re.sub(r"\{[^}:]+:str\}", "before", re.sub(r"\{[^}:]+:uuid\}", str(uuid.uuid4()), path))
        for method in methods.split(","):
            if method in ("HEAD", "OPTIONS"):
                continue
            response = await client.request(method, url)
            assert response.status_code == 401, f"{method} {path} answered {response.status_code} without a token"
            assert response.json()["detail"] == "a bearer token is required"
            checked += 1
    assert checked >= 20


def test_the_check_names_a_route_that_forgot() -> None:
    @get("/api/v1/forgotten", sync_to_thread=False)
    def forgotten() -> str:
        return "x"

    @get("/api/v1/guarded", guards=[roles(Role.OPS)], sync_to_thread=False)
    def guarded() -> str:
        return "x"

    @get("/api/v1/open", opt={"access": PUBLIC}, sync_to_thread=False)
    def open_() -> str:
        return "x"

    @get("/api/v1/typo", opt={"access": "publik"}, sync_to_thread=False)
    def typo() -> str:
        return "x"

    assert sorted(unguarded(Litestar([forgotten, guarded, open_, typo], openapi_config=None))) == [
        "GET /api/v1/forgotten",
        "GET /api/v1/typo",
    ]
    # Litestar's own schema routes count too: the node marks them public in app.py.
    assert "GET /schema/openapi.json" in unguarded(Litestar([guarded]))


async def test_the_openapi_document_lists_the_accounts_routes_and_is_public(client: Any) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    paths = response.json()["paths"]
    for path in ("/api/v1/doctors", "/api/v1/auth/code", "/api/v1/auth/token", "/api/v1/me/diploma", "/api/v1/moderation/changes"):
        assert path in paths, path
    assert "(moderator)" in paths["/api/v1/moderation/changes"]["get"]["summary"]
