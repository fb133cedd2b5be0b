"""The guard's and the feed's per-process caches (medplat.domain.feed.live) on real PostgreSQL: two app instances
share one database as two workers do; a change committed through either, or by plain SQL, is refused or shown by
the other on its very next request; with the listener down every answer comes from the database, still right."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from medplat.app import create_app
from medplat.config import Settings
from medplat.domain.feed.live import APPLICATION_NAME, Live, SessionState
from medplat.node import sync_db
from medplat.security import ACCESS, REFRESH, Role, VerifiedTokens, issue_token, verify_token
from tests.integration.test_accounts import KZ_DOCTOR, bearer, staff
from tests.integration.test_feed import applied_item, publish_here, titles, verified_doctor

ENDED = (401, "this sign-in has ended; sign in again")


@pytest.fixture
async def other(settings: Settings, clean_db: None) -> AsyncIterator[Any]:
    """A second app instance on the same database: what another worker process is."""
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client


def live_of(client: Any) -> Live:
    live: Live = client.app.state.live
    return live


async def listening(*clients: Any) -> None:
    for client in clients:
        await live_of(client).wait_connected()


def refused(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["detail"]


async def test_a_sign_out_on_one_instance_is_refused_by_the_other_from_its_cache(client: Any, other: Any, settings: Settings) -> None:
    await listening(client, other)
    doctor = await verified_doctor(client, settings)
    assert (await other.get("/api/v1/feed", headers=doctor["headers"])).status_code == 200
    theirs = live_of(other)
    sid = jwt.decode(doctor["access_token"], options={"verify_signature": False})["sid"]
    assert theirs.sessions.get(sid) is not None, "the other instance answered from its cache"
    fallbacks, notifications = theirs.fallbacks, theirs.notifications

    assert (await client.post("/api/v1/auth/sign-out", headers=doctor["headers"])).status_code == 204
    # No sleep, no polling: the other instance's next request waits for its barrier, which comes back after the
    # sign-out's notification.
    assert refused(await other.get("/api/v1/feed", headers=doctor["headers"])) == ENDED
    assert refused(await other.get("/api/v1/me", headers=doctor["headers"])) == ENDED
    assert theirs.notifications > notifications and theirs.fallbacks == fallbacks
    assert theirs.sessions.get(sid) == SessionState(doctor["id"], revoked=True), "evicted by the notification, read again"
    with sync_db(settings).connect() as conn:
        assert conn.execute(text("SELECT revoked_reason FROM personal.sign_in_session")).scalar_one() == "signed-out"


async def test_a_revocation_by_plain_sql_is_refused_at_once(client: Any, settings: Settings) -> None:
    await listening(client)
    doctor = await verified_doctor(client, settings)
    assert (await client.get("/api/v1/feed", headers=doctor["headers"])).status_code == 200
    with sync_db(settings).begin() as conn:  # what an operator revoking every sign-in of a doctor would run
        conn.execute(text("UPDATE personal.sign_in_session SET revoked_at = now(), revoked_reason = 'erased'"))
    assert refused(await client.get("/api/v1/feed", headers=doctor["headers"])) == ENDED
    assert live_of(client).fallbacks == 0


async def test_a_refresh_reuse_on_one_instance_revokes_on_the_other(client: Any, other: Any, settings: Settings) -> None:
    await listening(client, other)
    doctor = await verified_doctor(client, settings)
    rotated = await client.post("/api/v1/auth/refresh", json={"refresh_token": doctor["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    fresh_access = bearer(rotated.json()["access_token"])
    assert (await other.get("/api/v1/feed", headers=fresh_access)).status_code == 200
    reused = await client.post("/api/v1/auth/refresh", json={"refresh_token": doctor["refresh_token"]})
    assert reused.status_code == 401 and reused.json()["type"].endswith("/refresh-reused")
    assert refused(await other.get("/api/v1/feed", headers=fresh_access)) == ENDED


async def test_erasure_on_one_instance_is_refused_by_the_other(client: Any, other: Any, settings: Settings) -> None:
    await listening(client, other)
    doctor = await verified_doctor(client, settings)
    assert (await other.get("/api/v1/feed", headers=doctor["headers"])).status_code == 200
    asked = await client.post("/api/v1/me/erasure", headers=doctor["headers"])
    assert asked.status_code == 202, asked.text
    assert refused(await other.get("/api/v1/feed", headers=doctor["headers"])) == ENDED
    with sync_db(settings).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM personal.doctor")).scalar_one() == 0


async def test_a_verification_change_closes_the_feed_on_the_other_instance(client: Any, other: Any, settings: Settings) -> None:
    await listening(client, other)
    doctor = await verified_doctor(client, settings)
    assert (await other.get("/api/v1/feed", headers=doctor["headers"])).status_code == 200
    assert live_of(other).doctors.get(doctor["id"]) is not None
    with sync_db(settings).begin() as conn:  # a moderator's decision, or an operator's SQL
        conn.execute(text("UPDATE personal.doctor SET verification_status = 'rejected'"))
    closed = await other.get("/api/v1/feed", headers=doctor["headers"])
    assert (closed.status_code, closed.json()["verification_status"]) == (403, "rejected")


async def test_a_new_published_item_changes_the_etag_on_every_instance(client: Any, other: Any, settings: Settings) -> None:
    await listening(client, other)
    doctor = await verified_doctor(client, settings)
    applied_item(settings, texts={"ru": "Первая"}, specializations=())
    first = await other.get("/api/v1/feed", headers=doctor["headers"])
    assert titles(first) == ["Первая"]
    etag, generation = first.headers["etag"], live_of(other).feed_generation
    cached = await other.get("/api/v1/feed", headers={**doctor["headers"], "If-None-Match": etag})
    assert cached.status_code == 304

    await publish_here(client, settings, "Новая", [])  # an editor publishes through the first instance
    changed = await other.get("/api/v1/feed", headers={**doctor["headers"], "If-None-Match": etag})
    assert titles(changed) == ["Новая", "Первая"] and changed.headers["etag"] != etag
    assert live_of(other).feed_generation > generation and live_of(other).fallbacks == 0


async def test_with_the_listener_stopped_every_answer_comes_from_the_database(client: Any, settings: Settings) -> None:
    await listening(client)
    doctor = await verified_doctor(client, settings)
    applied_item(settings, texts={"ru": "Первая"}, specializations=())
    assert titles(await client.get("/api/v1/feed", headers=doctor["headers"])) == ["Первая"]
    live = live_of(client)
    client.blocking_portal.call(live.stop)  # the app runs on the test client's portal loop
    assert not live.connected
    fallbacks, notifications = live.fallbacks, live.notifications

    applied_item(settings, texts={"ru": "Вторая"}, specializations=())
    assert titles(await client.get("/api/v1/feed", headers=doctor["headers"])) == ["Вторая", "Первая"]
    with sync_db(settings).begin() as conn:
        conn.execute(text("UPDATE personal.doctor SET verification_status = 'rejected'"))
    assert (await client.get("/api/v1/feed", headers=doctor["headers"])).status_code == 403
    with sync_db(settings).begin() as conn:
        conn.execute(text("UPDATE personal.sign_in_session SET revoked_at = now(), revoked_reason = 'signed-out'"))
    assert refused(await client.get("/api/v1/feed", headers=doctor["headers"])) == ENDED
    assert live.fallbacks == fallbacks + 3 and live.notifications == notifications, "nothing was listening"


async def test_a_killed_listener_falls_back_then_reconnects_with_empty_caches(client: Any, settings: Settings) -> None:
    await listening(client)
    doctor = await verified_doctor(client, settings)
    assert (await client.get("/api/v1/feed", headers=doctor["headers"])).status_code == 200
    live = live_of(client)
    incarnation = live.incarnation
    assert len(live.sessions) == 1 and len(live.doctors) == 1
    with sync_db(settings).begin() as conn:  # PostgreSQL drops the listener's connection (a restart, a failover)
        killed = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = :name AND pid <> pg_backend_pid()"
            ),
            {"name": APPLICATION_NAME},
        ).scalar_one()
        conn.execute(text("UPDATE personal.sign_in_session SET revoked_at = now(), revoked_reason = 'signed-out'"))
    assert killed >= 1
    # Whichever path answers (the failed barrier's fallback, or the reconnected listener), the revocation holds.
    assert refused(await client.get("/api/v1/feed", headers=doctor["headers"])) == ENDED
    await asyncio.wait_for(_until(lambda: live.connected and live.incarnation > incarnation), 10)
    assert refused(await client.get("/api/v1/feed", headers=doctor["headers"])) == ENDED
    assert live.fallbacks >= 1


async def _until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.02)


# -- verified tokens --------------------------------------------------------------------------------------


def test_a_cached_token_answers_what_verification_would(settings: Settings) -> None:
    cache = VerifiedTokens(size=2)
    access = issue_token(settings, "doctor-1", [Role.DOCTOR], session_id="s-1")
    claims = verify_token(settings, access, cache=cache)
    assert len(cache) == 1 and cache.get(access) == claims
    claims["roles"] = ["ops"]  # a caller's copy; the cached claims stay as verified
    assert verify_token(settings, access, cache=cache)["roles"] == ["doctor"]

    refresh = issue_token(settings, "doctor-1", [Role.DOCTOR], kind=REFRESH, session_id="s-1")
    verify_token(settings, refresh, kind=REFRESH, cache=cache)
    with pytest.raises(Exception, match="not an access token"):
        verify_token(settings, refresh, kind=ACCESS, cache=cache)  # cached, and still not an access token
    tampered = access[:-2] + ("AA" if not access.endswith("AA") else "BB")
    with pytest.raises(Exception, match="invalid token"):
        verify_token(settings, tampered, cache=cache)

    third = issue_token(settings, "doctor-2", [Role.DOCTOR])
    verify_token(settings, third, cache=cache)
    assert len(cache) == 2 and cache.get(access) is None, "bounded: the least recently used token went"


def test_a_cached_token_leaves_at_its_expiry(settings: Settings) -> None:
    cache = VerifiedTokens()
    short = issue_token(settings, "doctor-1", [Role.DOCTOR], ttl=datetime.timedelta(seconds=1))
    verify_token(settings, short, cache=cache)
    assert cache.get(short) is not None
    expired = issue_token(settings, "doctor-1", [Role.DOCTOR], ttl=datetime.timedelta(seconds=-5))  # within PyJWT's leeway
    assert verify_token(settings, expired, cache=cache)["sub"] == "doctor-1"
    assert cache.get(expired) is None, "never cached past its exp, even when the leeway let it through"


async def test_sign_out_through_the_api_is_refused_with_the_cached_token(client: Any, settings: Settings) -> None:
    await listening(client)
    doctor = await verified_doctor(client, settings, KZ_DOCTOR)
    assert (await client.get("/api/v1/me", headers=doctor["headers"])).status_code == 200
    assert client.app.state.verified_tokens.get(doctor["access_token"]) is not None
    assert (await client.post("/api/v1/auth/sign-out", headers=doctor["headers"])).status_code == 204
    assert refused(await client.get("/api/v1/me", headers=doctor["headers"])) == ENDED
    assert (await client.get("/api/v1/me", headers=staff(settings, Role.OPS))).status_code == 403


def test_the_sync_role_applying_content_fires_the_notification(settings: Settings, clean_db: None) -> None:
    """The sync apply writes shared content as its own, narrower role: the trigger runs for it too."""
    import psycopg

    item = applied_item(settings, texts={"ru": "Статья"})
    with psycopg.connect(settings.database_url, autocommit=True) as listener:
        listener.execute("LISTEN medplat_live")
        with psycopg.connect(settings.sync_database_url) as sync:
            sync.execute("UPDATE shared.content_item SET status = 'retracted', version = 2 WHERE id = %s", (item,))
            sync.commit()
        received = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
    assert received == ["f"]
