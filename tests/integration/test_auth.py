"""Passwordless sign-in on real PostgreSQL: one-time codes (hashed, short-lived, limited tries), rate limits per
address and per IP, lock-out, access and refresh tokens with rotation and reuse detection, sign-out, tokens
that only their own node accepts, and the `medfed otp outbox` command of the acceptance walk-through."""

from __future__ import annotations

import datetime
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import jwt
import msgspec
import pytest
from click.testing import CliRunner
from litestar.testing import AsyncTestClient
from sqlalchemy import select, text

from medplat.app import create_app
from medplat.config import Settings, load_region
from medplat.domain.accounts.models import OtpChallenge, OtpOutbox, SignInLimit, SignInSession
from medplat.node import sync_db
from medplat.security import Role, issue_token, node_identity
from tests.integration.test_accounts import KZ_DOCTOR, bearer, count, outbox_code, register, sign_in

ClientFactory = Callable[..., AbstractAsyncContextManager[Any]]


def with_sign_in(settings: Settings, **limits: Any) -> Settings:
    region = settings.region
    return msgspec.structs.replace(
        settings, region=msgspec.structs.replace(region, sign_in=msgspec.structs.replace(region.sign_in, **limits))
    )


@pytest.fixture
def make_client(clean_db: None) -> ClientFactory:
    """A test client of a node with other settings (tighter limits, another region) on the same engines."""

    @asynccontextmanager
    async def factory(node_settings: Settings) -> AsyncIterator[Any]:
        async with AsyncTestClient(app=create_app(node_settings)) as test_client:
            yield test_client

    return factory


async def ask_code(client: Any, **address: str) -> Any:
    return await client.post("/api/v1/auth/code", json=address)


async def answer(client: Any, challenge_id: str, code: str) -> Any:
    return await client.post("/api/v1/auth/token", json={"challenge_id": challenge_id, "code": code})


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def sessions(settings: Settings) -> int:
    return count(settings, SignInSession)


# -- the code -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("by", "channel"), [("phone", "sms"), ("email", "email")])
async def test_a_doctor_signs_in_with_a_code_from_the_outbox(client: Any, settings: Settings, by: str, channel: str) -> None:
    doctor_id = await register(client)
    sent = await ask_code(client, **{by: KZ_DOCTOR[by]})
    assert sent.status_code == 202, sent.text
    assert sent.json()["channel"] == channel
    challenge = sent.json()["challenge_id"]
    code = outbox_code(settings, challenge)
    assert len(code) == 6 and code.isdigit()
    with sync_db(settings).connect() as conn:
        stored = conn.execute(text("SELECT * FROM personal.otp_challenge")).mappings().one()
        outbox_columns = set(conn.execute(text("SELECT * FROM node.otp_outbox")).keys())
    assert code not in json.dumps({k: str(v) for k, v in stored.items()}), "only a keyed hash of the code is kept"
    assert outbox_columns == {"id", "challenge_id", "channel", "code", "created_at", "expires_at"}, "the outbox names no person"
    expires = datetime.datetime.fromisoformat(sent.json()["expires_at"])
    assert datetime.timedelta(seconds=290) < expires - datetime.datetime.now(datetime.UTC) <= datetime.timedelta(seconds=300)

    tokens = await answer(client, challenge, code)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 600
    claims = jwt.decode(body["access_token"], settings.signing_key.public_key(), algorithms=["EdDSA"], audience=node_identity(settings))
    assert (claims["iss"], claims["sub"], claims["roles"], claims["typ"]) == ("medfed:kz:api", doctor_id, ["doctor"], "access")
    assert claims["exp"] - claims["iat"] == 600
    me = await client.get("/api/v1/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200 and me.json()["id"] == doctor_id
    used = await answer(client, challenge, code)
    assert used.status_code == 400 and used.json()["type"].endswith("/code-used")
    assert sessions(settings) == 1


async def test_an_unknown_address_gets_the_same_answer_and_no_code(client: Any, settings: Settings) -> None:
    sent = await ask_code(client, phone="+7 701 000 00 01")
    assert sent.status_code == 202 and sent.json()["channel"] == "sms"
    assert count(settings, OtpChallenge) == 0 and count(settings, OtpOutbox) == 0
    refused = await answer(client, sent.json()["challenge_id"], "123456")
    assert refused.status_code == 400 and refused.json()["type"].endswith("/wrong-code")
    assert sessions(settings) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "phone"),
        ({"phone": "+7 701 555 12 34", "email": "a@b.kz"}, "email"),
        ({"phone": "12"}, "phone"),
        ({"email": "nope"}, "email"),
        ({"phone": "+7 701 555 12 34", "password": "x"}, "password"),
    ],
)
async def test_a_bad_code_request_names_the_field(client: Any, settings: Settings, body: dict[str, str], field: str) -> None:
    await register(client)
    response = await client.post("/api/v1/auth/code", json=body)
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert any(e["field"] == field for e in response.json()["errors"]), response.json()
    assert count(settings, OtpChallenge) == 0


@pytest.mark.parametrize("code", ["12345", "1234567", "abcdef", 123456])
async def test_a_malformed_code_is_refused_before_it_counts(client: Any, settings: Settings, code: Any) -> None:
    await register(client)
    challenge = (await ask_code(client, phone=KZ_DOCTOR["phone"])).json()["challenge_id"]
    response = await client.post("/api/v1/auth/token", json={"challenge_id": challenge, "code": code})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "code"
    with sync_db(settings).connect() as conn:
        assert conn.execute(select(OtpChallenge.tries)).scalar_one() == 0


async def test_wrong_codes_count_and_the_code_dies_after_its_tries(client: Any, settings: Settings) -> None:
    await register(client)
    challenge = (await ask_code(client, phone=KZ_DOCTOR["phone"])).json()["challenge_id"]
    code = outbox_code(settings, challenge)
    for left in (4, 3, 2, 1):
        response = await answer(client, challenge, wrong(code))
        assert response.status_code == 400
        assert response.json()["type"].endswith("/wrong-code")
        assert response.json()["tries_left"] == left
        assert response.json()["errors"] == [{"field": "code", "reason": f"wrong code; {left} tries left"}]
    last = await answer(client, challenge, wrong(code))
    assert last.json()["type"].endswith("/code-tries-exhausted")
    right_too_late = await answer(client, challenge, code)
    assert right_too_late.status_code == 400
    assert right_too_late.json()["type"].endswith("/code-tries-exhausted")
    assert sessions(settings) == 0
    with sync_db(settings).connect() as conn:
        assert conn.execute(select(OtpChallenge.tries)).scalar_one() == 5


async def test_an_expired_code_is_refused(client: Any, settings: Settings) -> None:
    await register(client)
    challenge = (await ask_code(client, phone=KZ_DOCTOR["phone"])).json()["challenge_id"]
    with sync_db(settings).begin() as conn:
        conn.execute(text("UPDATE personal.otp_challenge SET expires_at = now() - interval '1 second'"))
    response = await answer(client, challenge, outbox_code(settings, challenge))
    assert response.status_code == 400
    assert response.json()["type"].endswith("/code-expired")
    assert response.json()["detail"] == "this code has expired; ask for a new one"
    assert sessions(settings) == 0


async def test_only_the_newest_code_works(client: Any, settings: Settings) -> None:
    await register(client)
    first = (await ask_code(client, phone=KZ_DOCTOR["phone"])).json()["challenge_id"]
    second = (await ask_code(client, email=KZ_DOCTOR["email"])).json()["challenge_id"]
    old = await answer(client, first, outbox_code(settings, first))
    assert old.status_code == 400 and old.json()["type"].endswith("/wrong-code")
    assert sessions(settings) == 0
    assert (await answer(client, second, outbox_code(settings, second))).status_code == 200


# -- rate limits and lock-out ---------------------------------------------------------------------------


async def test_codes_per_address_are_limited(client: Any, settings: Settings) -> None:
    await register(client)
    for _ in range(5):
        assert (await ask_code(client, phone=KZ_DOCTOR["phone"])).status_code == 202
    outbox_rows = count(settings, OtpOutbox)
    refused = await ask_code(client, phone="8 701 555 1234")  # the same number, written differently
    assert refused.status_code == 429
    assert refused.json()["type"].endswith("/too-many-requests")
    assert refused.json()["detail"] == "Too many codes asked for this phone or e-mail; try again later."
    assert 0 < int(refused.headers["retry-after"]) <= 900 and refused.json()["retry_after"] == int(refused.headers["retry-after"])
    assert count(settings, OtpOutbox) == outbox_rows
    by_mail = await ask_code(client, email=KZ_DOCTOR["email"])
    assert by_mail.status_code == 202, "the e-mail address has its own budget"
    with sync_db(settings).begin() as conn:
        conn.execute(text("UPDATE personal.sign_in_limit SET window_start = now() - interval '901 seconds'"))
    assert (await ask_code(client, phone=KZ_DOCTOR["phone"])).status_code == 202, "a new window starts afresh"


async def test_codes_and_tries_per_ip_are_limited(make_client: ClientFactory, settings: Settings) -> None:
    async with make_client(with_sign_in(settings, codes_per_ip=3, tries_per_ip=4)) as client:
        for n in range(3):
            assert (await ask_code(client, phone=f"+7 701 000 00 0{n}")).status_code == 202
        refused = await ask_code(client, phone="+7 701 000 00 09")
        assert refused.status_code == 429
        assert refused.json()["detail"] == "Too many codes asked for from this network; try again later."
        for _ in range(4):
            assert (await answer(client, "01900000-0000-7000-8000-000000000000", "000000")).status_code == 400
        blocked = await answer(client, "01900000-0000-7000-8000-000000000000", "000000")
        assert blocked.status_code == 429
        assert blocked.json()["detail"] == "Too many sign-in attempts from this network; try again later."
        with sync_db(settings).connect() as conn:
            keys = list(conn.execute(select(SignInLimit.key)).scalars())
        assert {k.split(":")[0] for k in keys} == {"code-ip", "code-addr", "try-ip"}
        assert not any("testclient" in k or "7010000" in k for k in keys), "limits are keyed by keyed hashes only"


async def test_too_many_wrong_codes_lock_the_address_out(make_client: ClientFactory, settings: Settings) -> None:
    async with make_client(with_sign_in(settings, failures_before_lockout=3)) as client:
        await register(client)
        challenge = (await ask_code(client, phone=KZ_DOCTOR["phone"])).json()["challenge_id"]
        code = outbox_code(settings, challenge)
        for _ in range(2):
            assert (await answer(client, challenge, wrong(code))).json()["type"].endswith("/wrong-code")
        locked = await answer(client, challenge, wrong(code))
        assert locked.status_code == 429
        problem = locked.json()
        assert problem["type"].endswith("/sign-in-locked") and problem["title"] == "Sign-in locked"
        assert problem["detail"].startswith("Too many wrong codes for this phone or e-mail. Sign-in for it is locked until ")
        until = datetime.datetime.fromisoformat(problem["locked_until"])
        assert datetime.timedelta(minutes=14) < until - datetime.datetime.now(datetime.UTC) <= datetime.timedelta(minutes=15)
        assert int(locked.headers["retry-after"]) == problem["retry_after"]

        right = await answer(client, challenge, code)
        assert right.status_code == 429 and right.json()["type"].endswith("/sign-in-locked"), "the right code does not open a lock"
        new_code = await ask_code(client, phone=KZ_DOCTOR["phone"])
        assert new_code.status_code == 429 and new_code.json()["type"].endswith("/sign-in-locked")
        assert sessions(settings) == 0

        with sync_db(settings).begin() as conn:
            conn.execute(text("UPDATE personal.sign_in_limit SET window_start = now() - interval '901 seconds'"))
        assert (await answer(client, challenge, code)).status_code == 200, "the lock ends with its window"


# -- tokens ---------------------------------------------------------------------------------------------


async def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_family(client: Any, settings: Settings) -> None:
    await register(client)
    first = await sign_in(client, settings)
    second = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200, second.text
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"] and rotated["access_token"] != first["access_token"]
    assert (await client.get("/api/v1/me", headers=bearer(rotated["access_token"]))).status_code == 200

    reused = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401
    assert reused.json()["type"].endswith("/refresh-reused")
    with sync_db(settings).connect() as conn:
        row = conn.execute(select(SignInSession.revoked_reason, SignInSession.generation)).one()
    assert tuple(row) == ("refresh-reused", 2)
    for token in (first["access_token"], rotated["access_token"]):
        refused = await client.get("/api/v1/me", headers=bearer(token))
        assert refused.status_code == 401 and refused.json()["detail"] == "this sign-in has ended; sign in again"
    newest = await client.post("/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert newest.status_code == 401 and newest.json()["type"].endswith("/session-revoked")


async def test_sign_out_revokes_access_and_refresh_at_once(client: Any, settings: Settings) -> None:
    await register(client)
    tokens = await sign_in(client, settings)
    other_device = await sign_in(client, settings, by="email")
    out = await client.post("/api/v1/auth/sign-out", headers=bearer(tokens["access_token"]))
    assert out.status_code == 204
    assert (await client.get("/api/v1/me", headers=bearer(tokens["access_token"]))).status_code == 401
    refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refresh.status_code == 401 and refresh.json()["detail"] == "this sign-in has ended (signed-out); sign in again"
    assert (await client.get("/api/v1/me", headers=bearer(other_device["access_token"]))).status_code == 200, "other sign-ins stand"
    assert (await client.post("/api/v1/auth/sign-out")).status_code == 401


async def test_a_refresh_token_is_not_an_access_token_and_the_other_way_round(client: Any, settings: Settings) -> None:
    await register(client)
    tokens = await sign_in(client, settings)
    as_access = await client.get("/api/v1/me", headers=bearer(tokens["refresh_token"]))
    assert as_access.status_code == 401 and as_access.json()["detail"] == "not an access token"
    as_refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["access_token"]})
    assert as_refresh.status_code == 401 and as_refresh.json()["detail"] == "not a refresh token"
    staff = issue_token(settings, "ops-1", [Role.OPS])
    assert (await client.post("/api/v1/auth/refresh", json={"refresh_token": staff})).status_code == 401


@pytest.mark.parametrize("other", ["ru", "uz"])
async def test_a_kz_token_is_refused_by_ru_and_uz(make_client: ClientFactory, settings: Settings, other: str) -> None:
    """The other node is given even the same signing key: the issuer and audience alone refuse the token."""
    async with make_client(settings) as kz:
        await register(kz)
        tokens = await sign_in(kz, settings)
        staff = issue_token(settings, "moderator-1", [Role.MODERATOR])
        assert (await kz.get("/api/v1/me", headers=bearer(tokens["access_token"]))).status_code == 200
    elsewhere = msgspec.structs.replace(settings, region=load_region(other))
    async with make_client(elsewhere) as node:
        refused = await node.get("/api/v1/me", headers=bearer(tokens["access_token"]))
        assert refused.status_code == 401
        assert refused.json()["detail"] == "token was not issued by this node"
        assert (await node.get("/api/v1/moderation/doctors", headers=bearer(staff))).status_code == 401
        refresh = await node.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert refresh.status_code == 401 and refresh.json()["detail"] == "token was not issued by this node"
    with sync_db(settings).connect() as conn:
        assert conn.execute(select(SignInSession.revoked_at)).scalar_one() is None


async def test_a_token_signed_by_another_key_or_algorithm_is_refused(client: Any, settings: Settings) -> None:
    await register(client)
    tokens = await sign_in(client, settings)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    forged_hs = jwt.encode(claims, "a-guessable-secret-of-32-bytes-or-more!", algorithm="HS256")
    unsigned = jwt.encode(claims, None, algorithm="none")
    for token in (forged_hs, unsigned, tokens["access_token"][:-4] + "AAAA"):
        response = await client.get("/api/v1/me", headers=bearer(token))
        assert response.status_code == 401 and response.json()["detail"] == "invalid token"
    expired = {**claims, "exp": int(datetime.datetime.now(datetime.UTC).timestamp()) - 120}
    response = await client.get("/api/v1/me", headers=bearer(jwt.encode(expired, settings.signing_key, algorithm="EdDSA")))
    assert response.status_code == 401 and response.json()["detail"] == "token expired"


async def test_a_failing_gateway_is_a_503_and_leaves_no_code(make_client: ClientFactory, settings: Settings) -> None:
    from medplat.devfed.processes import free_ports

    closed = free_ports(1)[0]
    gateway = msgspec.structs.replace(settings, sms_sender="http", sms_gateway_url=f"http://127.0.0.1:{closed}/send")
    async with make_client(gateway) as client:
        await register(client)
        response = await ask_code(client, phone=KZ_DOCTOR["phone"])
        assert response.status_code == 503
        assert response.json()["type"].endswith("/code-not-sent")
        assert response.json()["detail"] == "the code could not be sent: SMS gateway unreachable (ConnectError); try again shortly"
        assert count(settings, OtpChallenge) == 0 and count(settings, OtpOutbox) == 0


# -- the acceptance walk-through with the CLI -----------------------------------------------------------


async def test_register_read_the_code_with_the_cli_and_sign_in(client: Any, settings: Settings) -> None:
    from medplat.cli_accounts import otp

    await register(client)
    challenge = (await ask_code(client, phone=KZ_DOCTOR["phone"])).json()["challenge_id"]
    result = CliRunner().invoke(otp, ["outbox", "--region", "kz", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert listed["region"] == "kz"
    (entry,) = listed["codes"]
    assert entry["challenge_id"] == challenge and entry["channel"] == "sms" and entry["expired"] is False
    plain = CliRunner().invoke(otp, ["outbox", "--region", "kz"])
    assert plain.exit_code == 0 and entry["code"] in plain.output and challenge in plain.output
    assert KZ_DOCTOR["phone"] not in plain.output and "7015551234" not in plain.output
    tokens = await answer(client, challenge, entry["code"])
    assert tokens.status_code == 200
    assert (await client.get("/api/v1/me", headers=bearer(tokens.json()["access_token"]))).status_code == 200

    with sync_db(settings).begin() as conn:
        conn.execute(text("UPDATE node.otp_outbox SET expires_at = now() - interval '1 second'"))
    assert "no unexpired codes" in CliRunner().invoke(otp, ["outbox", "--region", "kz"]).output
    assert json.loads(CliRunner().invoke(otp, ["outbox", "--region", "kz", "--json", "--all"]).output)["codes"][0]["expired"] is True
