"""How nodes talk: short-lived EdDSA JWTs between nodes, HTTP calls, and blob fetches that verify as they read.

A node-to-node call carries `Authorization: Bearer <jwt>` with iss = the calling node, aud = the called
node, a lifetime of at most five minutes, and algorithm EdDSA only (PyJWT with the algorithm list pinned,
so `alg: none` and HS256-keyed-with-a-public-key are refused by construction).
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import tempfile
import time
import uuid
from collections.abc import Mapping
from typing import IO, Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medsync.envelope import key_id
from medsync.errors import SyncError

ALGORITHMS = ["EdDSA"]
TOKEN_TTL = datetime.timedelta(seconds=60)
MAX_TOKEN_LIFETIME = datetime.timedelta(minutes=5)
CLOCK_LEEWAY = 300
"""Seconds of disagreement between two nodes' clocks that tokens tolerate (the design asks for minutes)."""
HTTP_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=5.0)
MIN_BLOB_RATE = 64 * 1024
"""Bytes per second a blob must at least arrive at; a slower (trickling) sender is cut off."""


class TransportError(SyncError):
    code = "transport.error"


def identity(region: str) -> str:
    return f"medfed:{region}"


def mint_token(origin: str, audience: str, key: Ed25519PrivateKey, *, now: datetime.datetime | None = None) -> str:
    now = now or datetime.datetime.now(datetime.UTC)
    claims = {"iss": identity(origin), "aud": identity(audience), "iat": now, "nbf": now, "exp": now + TOKEN_TTL, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": key_id(key.public_key())})


def caller_of(token: str) -> str:
    """The region a token claims to come from (unverified: only to pick whose keys to verify with)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise TransportError("token is not a JWT", code="jwt.malformed") from None
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer.startswith("medfed:") or len(issuer) != len("medfed:xx"):
        raise TransportError("token has no medfed issuer", code="jwt.issuer")
    return issuer.removeprefix("medfed:")


def verify_token(token: str, *, me: str, keys: Mapping[str, Ed25519PublicKey], now: datetime.datetime | None = None) -> str:
    """The verified calling region; `keys` are the caller's currently valid keys from the trust file."""
    caller = caller_of(token)
    if caller == me:
        raise TransportError("a node does not call itself; a token of this node is not a federation token", code="jwt.issuer")
    if not keys:
        raise TransportError(f"no valid key is trusted for {caller}", code="jwt.untrusted")
    last: Exception | None = None
    for key in keys.values():
        try:
            claims = jwt.decode(
                token, key, algorithms=ALGORITHMS, audience=identity(me), issuer=identity(caller), leeway=CLOCK_LEEWAY,
                options={"require": ["iss", "aud", "iat", "exp", "jti"]},
            )  # fmt: skip
        except jwt.InvalidSignatureError as exc:
            last = exc
            continue
        except jwt.ExpiredSignatureError:
            raise TransportError("token expired", code="jwt.expired") from None
        except jwt.InvalidAudienceError:
            raise TransportError("token is for another node", code="jwt.audience") from None
        except jwt.InvalidAlgorithmError:
            raise TransportError("token algorithm is not EdDSA", code="jwt.algorithm") from None
        except jwt.PyJWTError as exc:
            raise TransportError(f"token refused: {type(exc).__name__}", code="jwt.invalid") from None
        if claims["exp"] - claims["iat"] > MAX_TOKEN_LIFETIME.total_seconds():
            raise TransportError("token lives longer than five minutes", code="jwt.lifetime")
        return caller
    raise TransportError(f"token not signed by a key trusted for {caller} ({type(last).__name__})", code="jwt.untrusted")


def algorithm_of(token: str) -> str:
    try:
        return str(jwt.get_unverified_header(token).get("alg"))
    except jwt.PyJWTError:
        return ""


def client() -> httpx.Client:
    return httpx.Client(timeout=HTTP_TIMEOUT, follow_redirects=False, headers={"User-Agent": "medfed-sync/1"})


@functools.cache
def shared_client() -> httpx.Client:
    """One client per process, so its connections and TLS context are reused across tasks (~20 ms each)."""
    return client()


def fetch_blob(http: httpx.Client, url: str, token: str, *, sha256: str, length: int, into: IO[bytes]) -> None:
    """Stream a blob into `into`, stopping at the declared length, then check the length and the hash.

    Never reads more than `length` + 1 bytes, whatever the sender offers, and gives up on a sender slower
    than MIN_BLOB_RATE (plus thirty seconds of grace).
    """
    digest = hashlib.sha256()
    received = 0
    deadline = time.monotonic() + 30 + length / MIN_BLOB_RATE
    with http.stream("GET", url, headers={"Authorization": f"Bearer {token}"}) as response:
        if response.status_code != 200:
            raise TransportError(f"blob fetch answered {response.status_code}", code="blob.unavailable")
        for raw in response.iter_raw(64 * 1024):
            if time.monotonic() > deadline:
                raise TransportError("blob arrived too slowly", code="blob.timeout")
            chunk = raw[: length + 1 - received]
            received += len(chunk)
            if received > length:
                raise TransportError(f"blob is longer than the declared {length} bytes", code="blob.too_long")
            digest.update(chunk)
            into.write(chunk)
    if received < length:
        raise TransportError(f"blob has {received} of the declared {length} bytes", code="blob.too_short")
    if digest.hexdigest() != sha256:
        raise TransportError("blob does not match its declared sha256", code="blob.hash_mismatch")


def spool() -> tempfile.SpooledTemporaryFile[bytes]:
    """Where a blob waits between fetch and upload: memory up to 8 MiB, then a temporary file."""
    return tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)


def problem_code(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        return f"http.{response.status_code}"
    return str(body.get("code") or f"http.{response.status_code}") if isinstance(body, dict) else f"http.{response.status_code}"
