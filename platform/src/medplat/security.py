"""Staff tokens and role guards.

Tokens are EdDSA JWTs (PyJWT) signed with the node's own key; issuer and audience are the node, so a
token issued by one node is refused by every other. Every route declares its roles with `roles(...)` or
is public; tests/integration/test_routes_guarded.py checks that no route forgets.

Two kinds of token: access tokens (`typ` "access", short-lived, what guards accept) and the refresh tokens of
doctors' sign-in sessions (`typ` "refresh", accepted only by the refresh endpoint). A doctor's tokens carry
the session id (`sid`); guards refuse them once that session is signed out or revoked.
"""

from __future__ import annotations

import datetime
import enum
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
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
    HQ = "hq"
    """The HQ compliance officer: the federation summary built from the nodes' signed reports, nothing of one node."""
    OPS = "ops"


def roles_conflict(roles: Iterable[str]) -> str | None:
    """Why `roles` cannot share one token, or None. HQ sees the federation summary only, so an hq token carries
    no role of a node: with one it would also open that node's routes."""
    names = {str(r) for r in roles}
    others = sorted(names - {Role.HQ})
    if Role.HQ in names and others:
        return f"the hq role cannot share a token with {', '.join(others)}: HQ sees the federation summary only; issue it its own token"
    return None


def node_identity(settings: Settings) -> str:
    """The issuer and audience of this node's staff and doctor tokens.

    Distinct from the identity nodes use between themselves (`medfed:<code>`), so a token of this
    node's API can never pass as a federation call, and the other way round.
    """
    return f"medfed:{settings.region.code}:api"


ACCESS = "access"
REFRESH = "refresh"


def issue_token(
    settings: Settings,
    subject: str,
    roles: list[Role],
    ttl: datetime.timedelta = datetime.timedelta(hours=1),
    *,
    kind: str = ACCESS,
    session_id: str | None = None,
    jti: str | None = None,
    issued_at: datetime.datetime | None = None,
) -> str:
    if (conflict := roles_conflict(roles)) is not None:
        raise ValueError(conflict)
    now = issued_at or datetime.datetime.now(datetime.UTC)
    claims: dict[str, Any] = {
        "iss": node_identity(settings),
        "aud": node_identity(settings),
        "sub": subject,
        "typ": kind,
        "roles": sorted(str(r) for r in roles),
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": jti or uuid.uuid4().hex,
    }
    if session_id is not None:
        claims["sid"] = session_id
    return jwt.encode(claims, settings.signing_key, algorithm=ALGORITHM)


class VerifiedTokens:
    """Claims of tokens this process has verified, keyed by the exact token string, each until its `exp`.

    A doctor's client sends the same access token with every request until it expires; checking its Ed25519
    signature and claims again each time was an eighth of a worker's time under the feed's load. A token is
    only ever added after a full verification, and leaves at `exp` (PyJWT's leeway is not extended to it), so
    the cache answers exactly what verification would. Revocation is not a property of the token: the guard
    still asks whether the session stands, for every request. Bounded: the least recently used token goes.
    """

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._claims: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def get(self, token: str) -> dict[str, Any] | None:
        claims = self._claims.get(token)
        if claims is None:
            return None
        if time.time() >= claims["exp"]:
            del self._claims[token]
            return None
        self._claims.move_to_end(token)
        return claims

    def put(self, token: str, claims: dict[str, Any]) -> None:
        if not isinstance(claims.get("exp"), int | float) or time.time() >= claims["exp"]:
            return
        self._claims[token] = claims
        if len(self._claims) > self.size:
            self._claims.popitem(last=False)

    def __len__(self) -> int:
        return len(self._claims)


def verify_token(settings: Settings, token: str, kind: str = ACCESS, cache: VerifiedTokens | None = None) -> dict[str, Any]:
    """Claims of a valid token of this node and of this kind; NotAuthorizedException otherwise (the reason,
    never the token). With `cache`, a token verified before (and not expired since) is not verified again."""
    claims = cache.get(token) if cache is not None else None
    if claims is None:
        claims = _decode(settings, token)
        if cache is not None:
            cache.put(token, claims)
    if claims.get("typ") != kind:
        raise NotAuthorizedException(f"not an {kind} token" if kind == ACCESS else f"not a {kind} token")
    return dict(claims)  # the cached claims stay as verified, whatever a caller does with its copy


def _decode(settings: Settings, token: str) -> dict[str, Any]:
    try:
        return jwt.decode(
            token,
            settings.signing_key.public_key(),
            algorithms=[ALGORITHM],
            audience=node_identity(settings),
            issuer=node_identity(settings),
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
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
    """A guard admitting access tokens of this node that carry one of `allowed`; marks the route as guarded."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        state = connection.app.state
        claims = verify_token(state.settings, _bearer(connection), cache=state.get("verified_tokens"))
        if "sid" in claims:
            from medplat.domain.accounts.sessions import session_stands

            if not await session_stands(connection, str(claims["sid"]), str(claims["sub"])):
                raise NotAuthorizedException("this sign-in has ended; sign in again", headers={"WWW-Authenticate": "Bearer"})
        if not set(claims.get("roles", [])) & {str(r) for r in allowed}:
            raise PermissionDeniedException(f"requires one of the roles: {', '.join(sorted(allowed))}")
        connection.state.claims = claims

    guard.allowed_roles = frozenset(allowed)  # type: ignore[attr-defined]
    return guard


PUBLIC = "public"
"""Put `opt={"access": PUBLIC}` on a route that needs no token (health, registration, sign-in)."""
