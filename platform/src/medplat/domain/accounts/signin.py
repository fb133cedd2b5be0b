"""Passwordless sign-in: a one-time code by SMS or e-mail, then access and refresh tokens.

Codes are six digits, kept only as a keyed hash (HMAC with a subkey of the node's data key), valid for a
few minutes and for a few tries. Requests for codes are limited per address and per IP, tries per IP, and
too many wrong codes for one address lock it out until the window ends. Counters are committed before an
error is answered, so a refused request still counts.

Refresh tokens rotate: each refresh answers a new pair and the session keeps only the newest refresh
token's id; presenting an older one is a reuse, which revokes the whole session.
"""

from __future__ import annotations

import datetime
import hmac
import secrets
import uuid
from typing import Any

import structlog
from litestar.exceptions import NotAuthorizedException
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from medplat.api.problems import Problem
from medplat.config import Settings
from medplat.domain.accounts.limits import hit, limit_key, peek
from medplat.domain.accounts.models import Doctor, OtpChallenge, SignInSession
from medplat.domain.accounts.schemas import CodeAnswer, CodeRequest, CodeSent, Tokens
from medplat.domain.accounts.senders import Channel, CodeMessage, CodeSender, SendError, sender_for
from medplat.domain.accounts.services import normalise_email, normalise_phone
from medplat.fields import lookup_hash
from medplat.security import REFRESH, Role, issue_token, verify_token

_log = structlog.stdlib.get_logger("medplat.signin")


def code_hash(challenge_id: uuid.UUID, code: str, data_key: bytes) -> str:
    """Keyed hash of a code, bound to its challenge (the same code of another challenge hashes differently)."""
    return lookup_hash(f"otp-code|{challenge_id}|{code}", data_key)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _too_many(detail: str, retry_after: int, slug: str = "too-many-requests", title: str = "Too many requests") -> Problem:
    return Problem(detail, status=429, slug=slug, title=title, headers={"Retry-After": str(retry_after)}, retry_after=retry_after)


def _locked(retry_after: int) -> Problem:
    until = (_now() + datetime.timedelta(seconds=retry_after)).replace(microsecond=0)
    return Problem(
        f"Too many wrong codes for this phone or e-mail. Sign-in for it is locked until {until.isoformat()}; "
        "ask for a new code after that.",
        status=429, slug="sign-in-locked", title="Sign-in locked",
        headers={"Retry-After": str(retry_after)}, retry_after=retry_after, locked_until=until.isoformat(),
    )  # fmt: skip


def _bad_code(detail: str, slug: str, **extra: Any) -> Problem:
    return Problem(
        detail, status=400, slug=slug, title="Code not accepted", errors=[{"field": "code", "reason": detail}], **extra
    )  # fmt: skip


class SignInService:
    def __init__(self, session: AsyncSession, settings: Settings, sender: CodeSender | None = None) -> None:
        self.session = session
        self.settings = settings
        self.config = settings.region.sign_in
        self._sender = sender

    def sender(self, channel: Channel) -> CodeSender:
        return self._sender or sender_for(channel, self.settings, self.session)

    # -- codes ------------------------------------------------------------------------------------------

    def _address(self, data: CodeRequest) -> tuple[Channel, str, str]:
        """(channel, normalised address, its lookup hash on personal.doctor)."""
        if (data.phone is None) == (data.email is None):
            reason = "give exactly one of phone or email"
            raise Problem(
                reason, status=400, slug="validation", title="Invalid request",
                errors=[{"field": "phone", "reason": reason}, {"field": "email", "reason": reason}],
            )  # fmt: skip
        if data.phone is not None:
            phone = normalise_phone(data.phone, self.settings.region.country)
            return "sms", phone, lookup_hash(phone)
        email = normalise_email(data.email or "")
        return "email", email, lookup_hash(email.lower())

    async def _check_lock(self, address_key: str) -> None:
        failures = await peek(self.session, f"fail:{address_key}", self.config.window_seconds)
        if failures.hits >= self.config.failures_before_lockout:
            raise _locked(failures.retry_after)

    async def request_code(self, data: CodeRequest, ip: str) -> CodeSent:
        """Send a code to a registered doctor's phone or e-mail. An unknown address gets the same answer and no
        code, so the endpoint does not tell who is registered."""
        channel, address, address_key = self._address(data)
        await self._check_lock(address_key)
        per_ip = await hit(self.session, limit_key("code-ip", ip), self.config.window_seconds)
        per_address = await hit(self.session, limit_key("code-addr", address_key), self.config.window_seconds)
        await self.session.commit()
        if per_ip.hits > self.config.codes_per_ip:
            raise _too_many("Too many codes asked for from this network; try again later.", per_ip.retry_after)
        if per_address.hits > self.config.codes_per_address:
            raise _too_many("Too many codes asked for this phone or e-mail; try again later.", per_address.retry_after)
        challenge_id = uuid7()
        expires_at = _now() + datetime.timedelta(seconds=self.config.code_ttl_seconds)
        lookup = Doctor.phone_lookup if channel == "sms" else Doctor.email_lookup
        doctor_id = await self.session.scalar(select(Doctor.id).where(lookup == address_key))
        if doctor_id is None:
            _log.info("sign_in.code_for_unknown_address", channel=channel)
            return CodeSent(challenge_id, channel, expires_at)
        # Only the newest code of a doctor works.
        await self.session.execute(delete(OtpChallenge).where(OtpChallenge.doctor_id == doctor_id, OtpChallenge.consumed_at.is_(None)))
        code = f"{secrets.randbelow(10**6):06d}"
        self.session.add(
            OtpChallenge(
                id=challenge_id, doctor_id=doctor_id, channel=channel, address_key=address_key,
                code_hash=code_hash(challenge_id, code, self.settings.data_key), expires_at=expires_at,
            )
        )  # fmt: skip
        await self.session.flush()
        try:
            message = CodeMessage(challenge_id, channel, address, code, expires_at, self.settings.region.default_language)
            await self.sender(channel).send(message)
        except SendError as exc:
            _log.warning("sign_in.send_failed", channel=channel, reason=str(exc))
            raise Problem(
                f"the code could not be sent: {exc}; try again shortly", status=503, slug="code-not-sent", title="Code not sent"
            ) from None
        _log.info("sign_in.code_sent", channel=channel, challenge_id=str(challenge_id), doctor_id=str(doctor_id))
        return CodeSent(challenge_id, channel, expires_at)

    async def exchange(self, data: CodeAnswer, ip: str) -> Tokens:
        """Tokens for a right code; every wrong one counts against the code, the address and the IP."""
        tries = await hit(self.session, limit_key("try-ip", ip), self.config.window_seconds)
        await self.session.commit()
        if tries.hits > self.config.tries_per_ip:
            raise _too_many("Too many sign-in attempts from this network; try again later.", tries.retry_after)
        challenge = await self.session.scalar(select(OtpChallenge).where(OtpChallenge.id == data.challenge_id).with_for_update())
        if challenge is None:
            raise _bad_code("the code is wrong or no longer valid; ask for a new one", "wrong-code")
        await self._check_lock(challenge.address_key)
        if challenge.consumed_at is not None:
            raise _bad_code("this code was already used; ask for a new one", "code-used")
        if challenge.expires_at <= _now():
            raise _bad_code("this code has expired; ask for a new one", "code-expired")
        if challenge.tries >= self.config.max_tries_per_code:
            raise _bad_code("too many wrong tries for this code; ask for a new one", "code-tries-exhausted")
        if not hmac.compare_digest(challenge.code_hash, code_hash(challenge.id, data.code, self.settings.data_key)):
            challenge.tries += 1
            tries_left = self.config.max_tries_per_code - challenge.tries
            failures = await hit(self.session, f"fail:{challenge.address_key}", self.config.window_seconds)
            await self.session.commit()
            _log.info("sign_in.wrong_code", challenge_id=str(challenge.id), tries_left=tries_left)
            if failures.hits >= self.config.failures_before_lockout:
                _log.warning("sign_in.locked", challenge_id=str(challenge.id), retry_after=failures.retry_after)
                raise _locked(failures.retry_after)
            if tries_left <= 0:
                raise _bad_code("wrong code, and no tries are left for it; ask for a new one", "code-tries-exhausted", tries_left=0)
            raise _bad_code(f"wrong code; {tries_left} tries left", "wrong-code", tries_left=tries_left)
        challenge.consumed_at = _now()
        session = SignInSession(id=uuid7(), doctor_id=challenge.doctor_id, refresh_jti=uuid.uuid4().hex)
        self.session.add(session)
        await self.session.flush()
        _log.info("sign_in.signed_in", doctor_id=str(challenge.doctor_id), session_id=str(session.id))
        return self._tokens(session)

    # -- tokens -----------------------------------------------------------------------------------------

    def _tokens(self, session: SignInSession) -> Tokens:
        subject, sid = str(session.doctor_id), str(session.id)
        access_ttl = datetime.timedelta(seconds=self.config.access_ttl_seconds)
        refresh_ttl = datetime.timedelta(seconds=self.config.refresh_ttl_seconds)
        return Tokens(
            access_token=issue_token(self.settings, subject, [Role.DOCTOR], access_ttl, session_id=sid),
            refresh_token=issue_token(
                self.settings, subject, [Role.DOCTOR], refresh_ttl, kind=REFRESH, session_id=sid, jti=session.refresh_jti
            ),
            expires_in=self.config.access_ttl_seconds,
            refresh_expires_in=self.config.refresh_ttl_seconds,
        )

    async def refresh(self, token: str) -> Tokens:
        """A new pair for the newest refresh token of a live session; an older one revokes the session."""
        claims = verify_token(self.settings, token, kind=REFRESH)
        try:
            sid = uuid.UUID(str(claims.get("sid")))
        except ValueError:
            raise NotAuthorizedException("invalid token") from None
        session = await self.session.scalar(select(SignInSession).where(SignInSession.id == sid).with_for_update())
        if session is None or str(session.doctor_id) != claims["sub"]:
            raise NotAuthorizedException("this sign-in no longer exists; sign in again")
        if session.revoked_at is not None:
            raise Problem(
                f"this sign-in has ended ({session.revoked_reason}); sign in again",
                status=401, slug="session-revoked", title="Signed out", headers={"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
        if not hmac.compare_digest(session.refresh_jti, str(claims["jti"])):
            session.revoked_at, session.revoked_reason = _now(), "refresh-reused"
            await self.session.commit()
            _log.warning("sign_in.refresh_reused", session_id=str(session.id), doctor_id=str(session.doctor_id))
            raise Problem(
                "this refresh token was already used; every token of this sign-in is now revoked, sign in again",
                status=401, slug="refresh-reused", title="Refresh token reused", headers={"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
        session.refresh_jti = uuid.uuid4().hex
        session.generation += 1
        session.refreshed_at = _now()
        await self.session.flush()
        return self._tokens(session)

    async def sign_out(self, claims: dict[str, Any]) -> None:
        """End the session the access token belongs to: its access and refresh tokens stop working at once."""
        session = await self.session.scalar(
            select(SignInSession).where(SignInSession.id == uuid.UUID(str(claims["sid"]))).with_for_update()
        )
        if session is not None and session.revoked_at is None:
            session.revoked_at, session.revoked_reason = _now(), "signed-out"
            await self.session.flush()
            _log.info("sign_in.signed_out", session_id=str(session.id))
