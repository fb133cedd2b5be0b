"""How nodes talk: short-lived EdDSA JWTs between nodes, HTTP calls, and blob fetches that verify as they read.

A node-to-node call carries `Authorization: Bearer <jwt>` with iss = the calling node, aud = the called
node, a lifetime of at most five minutes, and algorithm EdDSA only (PyJWT with the algorithm list pinned,
so `alg: none` and HS256-keyed-with-a-public-key are refused by construction).

Calls go over HTTPS, verified against the federation's CA bundle (MEDFED_FEDERATION_CA_FILE) or else the
system trust store, never unverified; a peer URL in plain http:// is refused unless it is on loopback.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import functools
import hashlib
import ipaddress
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

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


class Minted:
    """One token for a run of requests to the same node (a manifest's blobs), minted again once half its
    lifetime is gone: signing a token per request cost the caller, and verifying it the node, more than
    the rest of a small blob's request. Thread-safe enough: two threads may both mint; either token is good."""

    def __init__(self, origin: str, audience: str, key: Ed25519PrivateKey) -> None:
        self._args = (origin, audience, key)
        self._token = ""
        self._renew_at = 0.0

    def current(self) -> str:
        now = time.monotonic()
        if now >= self._renew_at:
            self._token = mint_token(*self._args)
            self._renew_at = now + TOKEN_TTL.total_seconds() / 2
        return self._token


class VerifiedCallers:
    """Federation tokens this process has verified, each until its `exp` and only while the trust version that
    verified it is still the current one (a new version, e.g. one revoking a key, empties the cache in effect).

    A target sends one token with all of a manifest's blob requests (`Minted`); verifying its signature and
    claims again for each blob was a good part of the origin's cost per blob. Bounded: the oldest goes first.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._seen: collections.OrderedDict[str, tuple[str, float, object]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def caller(self, token: str, trust: object, verify: Callable[[], str]) -> str:
        with self._lock:
            hit = self._seen.get(token)
        if hit is not None and hit[2] is trust and time.time() < hit[1]:
            return hit[0]
        caller = verify()  # raises for anything not good; only a verified token is remembered
        expires = jwt.decode(token, options={"verify_signature": False})["exp"]
        with self._lock:
            self._seen[token] = (caller, float(expires), trust)
            if len(self._seen) > self.size:
                self._seen.popitem(last=False)
        return caller


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


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def checked_peer_url(region: str, url: str) -> str:
    """`url` if a node may call it: https://, or plain http:// only on a loopback host (a test stand, a
    node calling itself through its own proxy). Raises TransportError `transport.insecure_peer` otherwise."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname and _loopback(parts.hostname):
        return url
    raise TransportError(
        f"the {region} node's URL is not https:// (scheme {parts.scheme or 'none'!r}, host {parts.hostname or 'none'!r}); "
        "plain http:// is allowed only on loopback (127.0.0.0/8, ::1, localhost). Check MEDFED_PEERS and the node URLs in the trust file",
        code="transport.insecure_peer",
    )


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Verification of a peer's certificate and host name: against `ca_file` (a PEM bundle) alone when given,
    else against the system trust store."""
    return ssl.create_default_context(cafile=ca_file or None)


def client(ca_file: str | None) -> httpx.Client:
    """A client for calls to other nodes; `ca_file` is the federation's CA bundle (None: the system trust store)."""
    return httpx.Client(verify=tls_context(ca_file), timeout=HTTP_TIMEOUT, follow_redirects=False, headers={"User-Agent": "medfed-sync/1"})


@functools.cache
def shared_client(ca_file: str | None) -> httpx.Client:
    """One client per process (and CA bundle), so its connections and TLS sessions are reused across tasks (~20 ms each)."""
    return client(ca_file)


class BlobBody:
    """A blob as it arrives from the origin, read as a file by this node's object-store upload.

    It checks as it reads: never more than `length` + 1 bytes whatever the sender offers, no slower than
    MIN_BLOB_RATE (plus thirty seconds of grace), and before it hands over the last of the declared bytes
    it makes sure nothing follows them and that their SHA-256 is the declared one. The store reads a part
    whole before it sends it (a single PUT up to its part size, else a multipart upload completed after
    the last part), so a blob that fails a check is never written under its key: the refusal is raised
    from `read`, before the last part leaves. Bytes are copied once, into the part the store asks for.
    """

    def __init__(self, chunks: Iterator[bytes], *, sha256: str, length: int) -> None:
        self._chunks = chunks
        self._sha256 = sha256
        self._length = length
        self._digest = hashlib.sha256()
        self._received = 0
        self._handed = 0
        self._pending: collections.deque[bytes] = collections.deque()
        self._deadline = time.monotonic() + 30 + length / MIN_BLOB_RATE
        self.checked = False

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all that remain if negative); the last ones only once the whole blob checks out."""
        want = self._length - self._handed if size is None or size < 0 else min(size, self._length - self._handed)
        parts: list[bytes] = []
        got = 0
        while got < want:
            chunk = self._pending.popleft() if self._pending else self._arrive()
            if not chunk:
                raise TransportError(f"blob has {self._received} of the declared {self._length} bytes", code="blob.too_short")
            if len(chunk) > want - got:
                self._pending.appendleft(chunk[want - got :])
                chunk = chunk[: want - got]
            parts.append(chunk)
            got += len(chunk)
        self._handed += got
        if self._handed == self._length:
            self.finish()
        return b"".join(parts)

    def finish(self) -> None:
        """Receive whatever of the declared bytes has not arrived yet, then check that nothing follows them
        and that their SHA-256 is the declared one. Raises TransportError with the refusal's code."""
        if self.checked:
            return
        while self._received < self._length:
            chunk = self._arrive()
            if not chunk:
                raise TransportError(f"blob has {self._received} of the declared {self._length} bytes", code="blob.too_short")
            self._pending.append(chunk)
        self._arrive()  # the end of the answer, or one byte too many (which raises)
        if self._digest.hexdigest() != self._sha256:
            raise TransportError("blob does not match its declared sha256", code="blob.hash_mismatch")
        self.checked = True

    def _arrive(self) -> bytes:
        """The next bytes off the network (b"" at the end), counted and hashed; never more than one byte past
        the declared length, which raises."""
        try:
            raw = next(self._chunks, b"")
        except httpx.HTTPError as exc:
            raise TransportError(f"blob fetch failed: {type(exc).__name__}", code="blob.unavailable") from None
        if time.monotonic() > self._deadline:
            raise TransportError("blob arrived too slowly", code="blob.timeout")
        chunk = raw[: self._length + 1 - self._received]
        self._received += len(chunk)
        if self._received > self._length:
            raise TransportError(f"blob is longer than the declared {self._length} bytes", code="blob.too_long")
        self._digest.update(chunk)
        return chunk


@contextlib.contextmanager
def fetch_blob(http: httpx.Client, url: str, token: str, *, sha256: str, length: int) -> Iterator[BlobBody]:
    """Open a blob on the origin; the body checks itself as the caller reads it (see BlobBody)."""
    try:
        with http.stream("GET", url, headers={"Authorization": f"Bearer {token}"}) as response:
            if response.status_code != 200:
                raise TransportError(f"blob fetch answered {response.status_code}", code="blob.unavailable")
            body = BlobBody(response.iter_raw(), sha256=sha256, length=length)
            if length == 0:
                body.finish()  # the store reads nothing of an empty blob: check it before it is written
            yield body
    except httpx.HTTPError as exc:
        raise TransportError(f"blob fetch failed: {type(exc).__name__}", code="blob.unavailable") from None


def problem_code(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        return f"http.{response.status_code}"
    return str(body.get("code") or f"http.{response.status_code}") if isinstance(body, dict) else f"http.{response.status_code}"
