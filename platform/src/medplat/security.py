"""Staff tokens and role guards.

Tokens are EdDSA JWTs (PyJWT) signed with the node's own key; issuer and audience are the node, so a
token issued by one node is refused by every other. Every route declares its roles with `roles(...)` or
is public; tests/integration/test_guards.py checks that no route forgets.
"""

from __future__ import annotations

import datetime
import enum
import uuid
from typing import Any

import jwt
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from medplat.config import Settings

ALGORITHM = "EdDSA"


class Role(enum.StrEnum):
    DOCTOR = "doctor"
    EDITOR = "editor"
    MODERATOR = "moderator"
    DIRECTOR = "director"
    COMPLIANCE = "compliance"
    OPS = "ops"


def node_identity(settings: Settings) -> str:
    """The issuer and audience of this node's staff and doctor tokens.

    Distinct from the identity nodes use between themselves (`medfed:<code>`), so a token of this
    node's API can never pass as a federation call, and the other way round.
    """
    return f"medfed:{settings.region.code}:api"


def issue_token(settings: Settings, subject: str, roles: list[Role], ttl: datetime.timedelta = datetime.timedelta(hours=1)) -> str:
    now = datetime.datetime.now(datetime.UTC)
    claims = {
        "iss": node_identity(settings),
        "aud": node_identity(settings),
        "sub": subject,
        "roles": sorted(str(r) for r in roles),
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.signing_key, algorithm=ALGORITHM)


def verify_token(settings: Settings, token: str) -> dict[str, Any]:
    """Claims of a valid token of this node; NotAuthorizedException otherwise (the reason, never the token)."""
    try:
        return jwt.decode(
            token,
            settings.signing_key.public_key(),
            algorithms=[ALGORITHM],
            audience=node_identity(settings),
            issuer=node_identity(settings),
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            leeway=30,
        )
    except jwt.ExpiredSignatureError:
        raise NotAuthorizedException("token expired") from None
    except jwt.InvalidAudienceError:
        raise NotAuthorizedException("token was not issued for this node") from None
    except jwt.InvalidIssuerError:
        raise NotAuthorizedException("token was not issued by this node") from None
    except jwt.PyJWTError:
        raise NotAuthorizedException("invalid token") from None


def _bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise NotAuthorizedException("a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


def roles(*allowed: Role) -> Any:
    """A guard admitting tokens of this node that carry one of `allowed`; marks the route as guarded."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        settings: Settings = connection.app.state.settings
        claims = verify_token(settings, _bearer(connection))
        if not set(claims.get("roles", [])) & {str(r) for r in allowed}:
            raise PermissionDeniedException(f"requires one of the roles: {', '.join(sorted(allowed))}")
        connection.state.claims = claims

    guard.allowed_roles = frozenset(allowed)  # type: ignore[attr-defined]
    return guard


PUBLIC = "public"
"""Put `opt={"access": PUBLIC}` on a route that needs no token (health, registration, sign-in)."""
