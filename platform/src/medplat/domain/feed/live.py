"""Per-process caches of what the hot read paths ask on every request, exact thanks to LISTEN/NOTIFY.

What is cached: a sign-in session's state (the role guard's question), a doctor's verification status and
specializations, and the feed's version (the feed's question). Triggers (migration 0008) notify
`medplat_live` in the same transaction as every change to them, so a notification arrives only once the
change has committed; the listener applies it to the caches (evicts the session or doctor, bumps the version).

A cache of that kind is normally stale for the time between the commit and the notification's delivery. To
keep sign-out and erasure immediate on every worker, a request trusts the caches only after a *barrier*: the
listener connection sends a notification to itself and waits until it comes back. PostgreSQL delivers
notifications in commit order, so once the echo is back every change committed before the request began has
been applied. One barrier (one tiny autocommit statement on the listener's connection) serves every request
that arrived while the previous one was in flight; with nothing to wait for, the listener sends one a
second, which also drains the notifications.

When the listener is not connected, or a barrier fails or takes longer than `barrier_timeout`, `fresh()`
answers False and the callers ask the database as they did before these caches existed: correctness never
depends on the listener. After a reconnection the caches start empty (notifications sent while it was away
are lost).

A miss is filled from the database only if no notification arrived while the query ran (`epoch`): otherwise
the row read might predate a change whose notification has just evicted it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import psycopg
import structlog
from litestar.connection import ASGIConnection
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

CHANNEL = "medplat_live"
"""Where the triggers of migration 0008 notify: `s:<session id>`, `d:<doctor id>`, `f`, `s:*`, `d:*`."""

APPLICATION_NAME = "medplat-live"
"""The listener connections' name in pg_stat_activity."""

_log = structlog.stdlib.get_logger("medplat.live")
_K = TypeVar("_K")
_V = TypeVar("_V")

_SESSION = text("SELECT doctor_id, revoked_at FROM personal.sign_in_session WHERE id = :id")
_DOCTOR = text("SELECT verification_status, specializations FROM personal.doctor WHERE id = :id")


async def request_is_fresh(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """Whether this request may trust the caches: one barrier per request, remembered in its scope (the guard asks
    first, the handler again)."""
    scope_state = connection.scope.setdefault("state", {})
    known: bool | None = scope_state.get("live_fresh")
    if known is None:
        live: Live | None = connection.app.state.get("live")
        known = live is not None and await live.fresh()
        scope_state["live_fresh"] = known
    return known


class Lru(Generic[_K, _V]):
    """A bounded mapping that forgets the least recently used key (the standard library has none that can evict one key)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[_K, _V] = OrderedDict()

    def get(self, key: _K) -> _V | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: _K, value: _V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def pop(self, key: _K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True, slots=True)
class SessionState:
    doctor_id: str | None
    """None when no such session exists (never created, or erased)."""
    revoked: bool


@dataclass(frozen=True, slots=True)
class DoctorProfile:
    verification_status: str
    specializations: tuple[str, ...]


class Live:
    """The caches and the one listener connection of this process; `start()` on startup, `stop()` on shutdown."""

    def __init__(
        self, url: str, *, size: int = 100_000, barrier_timeout: float = 1.0, idle_interval: float = 1.0, gather: float = 0.001
    ) -> None:
        self.url = url
        self.barrier_timeout = barrier_timeout
        self.idle_interval = idle_interval
        self.gather = gather
        self.sessions: Lru[str, SessionState] = Lru(size)
        self.doctors: Lru[str, DoctorProfile] = Lru(size)
        self.feed_generation = 0
        self.incarnation = 0
        """Bumped on every (re)connection: versions from before it name nothing any more."""
        self.epoch = 0
        """Bumped on every notification and reconnection: a fill started in an older epoch is not stored."""
        self.connected = False
        self.notifications = 0
        self.barriers = 0
        self.waiters = 0
        """Requests served by those barriers: `waiters / barriers` is how many share one."""
        self.barrier_seconds = 0.0
        self.fallbacks = 0
        """Requests that asked the database because the listener was down or a barrier failed."""
        self.last_notification_at: float | None = None
        self.last_barrier_at: float | None = None
        self._echo_channel = f"{CHANNEL}_echo_{os.getpid()}_{id(self):x}"
        self._echo_sent = 0
        self._echo_seen = 0
        self._waiting: list[asyncio.Future[bool]] = []
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._wanted = asyncio.Event()  # bound to the running loop
        self._task = asyncio.create_task(self._run(), name="medplat-live-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        _log.info(
            "live.stats",
            barriers=self.barriers,
            waiters=self.waiters,
            mean_barrier_ms=round(self.barrier_seconds / self.barriers * 1000, 3) if self.barriers else None,
            notifications=self.notifications,
            fallbacks=self.fallbacks,
            incarnation=self.incarnation,
        )

    async def wait_connected(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.connected:
            if time.monotonic() > deadline:
                raise TimeoutError("the cache listener did not connect")
            await asyncio.sleep(0.01)

    # -- freshness ------------------------------------------------------------------------------------

    async def fresh(self) -> bool:
        """True once every change committed before this call is in the caches; False: ask the database."""
        if not self.connected:
            self.fallbacks += 1
            return False
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        self._wanted.set()
        if not await waiter:
            self.fallbacks += 1
            return False
        return True

    def feed_version(self) -> str:
        return f"live.{self.incarnation}.{self.feed_generation}"

    # -- reads through the caches (call only after fresh() answered True) ----------------------------

    async def session(self, engine: AsyncEngine, session_id: str) -> SessionState:
        """The session named by a token's `sid` (absent, and so refused, when it is not a UUID)."""
        state = self.sessions.get(session_id)
        if state is None:
            try:
                sid = uuid.UUID(session_id)
            except ValueError:
                return SessionState(None, True)
            epoch = self.epoch
            async with engine.connect() as conn:
                row = (await conn.execute(_SESSION, {"id": sid})).first()
            state = SessionState(None, True) if row is None else SessionState(str(row.doctor_id), row.revoked_at is not None)
            # Only under the id's canonical spelling, the one the notifications carry.
            if epoch == self.epoch and str(sid) == session_id:
                self.sessions.put(session_id, state)
        return state

    async def doctor(self, engine: AsyncEngine, doctor_id: str) -> DoctorProfile | None:
        """The doctor named by a token's `sub`; None when there is no such doctor (or `sub` is not a UUID)."""
        profile = self.doctors.get(doctor_id)
        if profile is None:
            try:
                did = uuid.UUID(doctor_id)
            except ValueError:
                return None
            epoch = self.epoch
            async with engine.connect() as conn:
                row = (await conn.execute(_DOCTOR, {"id": did})).first()
            if row is None:
                return None
            profile = DoctorProfile(row.verification_status, tuple(row.specializations))
            if epoch == self.epoch and str(did) == doctor_id:
                self.doctors.put(doctor_id, profile)
        return profile

    # -- the listener -----------------------------------------------------------------------------------

    def _reset(self) -> None:
        self.sessions.clear()
        self.doctors.clear()
        self.incarnation += 1
        self.epoch += 1

    def _on_notify(self, notify: psycopg.Notify) -> None:
        if notify.channel == self._echo_channel:
            self._echo_seen = max(self._echo_seen, int(notify.payload))
            return
        self.epoch += 1
        self.notifications += 1
        self.last_notification_at = time.monotonic()
        kind, _, key = notify.payload.partition(":")
        if kind == "f":
            self.feed_generation += 1
        elif kind == "s" and key != "*":
            self.sessions.pop(key)
        elif kind == "d" and key != "*":
            self.doctors.pop(key)
        else:  # s:*, d:* (a TRUNCATE) or a payload this version does not know: forget everything
            self.sessions.clear()
            self.doctors.clear()
            self.feed_generation += 1

    def _release(self, waiters: list[asyncio.Future[bool]], ok: bool) -> None:
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(ok)

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            batch: list[asyncio.Future[bool]] = []
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=5, application_name=APPLICATION_NAME
                ) as conn:
                    conn.add_notify_handler(self._on_notify)
                    # The echo's commit has nothing to make durable; do not wait for a WAL flush.
                    await conn.execute("SET synchronous_commit = off")
                    await conn.execute(f"LISTEN {CHANNEL}")
                    await conn.execute(f"LISTEN {self._echo_channel}")
                    self._reset()  # after LISTEN: whatever changed before it is read afresh from the database
                    self.connected = True
                    backoff = 0.1
                    _log.info("live.listening", incarnation=self.incarnation)
                    started = 0.0
                    while True:
                        if not self._waiting:
                            self._wanted.clear()
                            with contextlib.suppress(TimeoutError):
                                async with asyncio.timeout(self.idle_interval):
                                    await self._wanted.wait()
                        # Gather: requests that became ready in the same turn of the event loop share this barrier.
                        # Under load a barrier starts at most every `gather` seconds, which bounds its share of CPU.
                        await asyncio.sleep(max(0.0, self.gather - (time.monotonic() - started)))
                        started = time.monotonic()
                        batch, self._waiting = self._waiting, []
                        self._echo_sent += 1
                        sent = self._echo_sent
                        async with asyncio.timeout(self.barrier_timeout):
                            await conn.execute("SELECT pg_notify(%s, %s)", (self._echo_channel, str(sent)), prepare=True)
                        ok = self._echo_seen >= sent
                        self._release(batch, ok)
                        served, batch = len(batch), []
                        if not ok:
                            raise RuntimeError("the barrier's echo did not come back with its statement")
                        self.barriers += 1
                        self.waiters += served
                        self.last_barrier_at = time.monotonic()
                        self.barrier_seconds += self.last_barrier_at - started
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - any failure means: fall back to the database, reconnect
                _log.warning("live.listener_down", error=type(error).__name__, retry_in=backoff)
            finally:
                self.connected = False
                self._release(batch, False)
                waiting, self._waiting = self._waiting, []
                self._release(waiting, False)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
