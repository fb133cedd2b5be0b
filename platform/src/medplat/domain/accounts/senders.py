"""Delivering one-time codes: one small interface, one adapter per kind of gateway, and the local outbox.

Which adapter a node uses for SMS and for e-mail is configuration (`[sign_in]` in region.toml, overridden by
MEDFED_SMS_SENDER / MEDFED_EMAIL_SENDER). Adapters never log the address or the code.
"""

from __future__ import annotations

import datetime
import smtplib
import ssl
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal, Protocol

import anyio
import httpx
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from medplat.config import Settings
from medplat.domain.accounts.models import OtpOutbox

Channel = Literal["sms", "email"]

_TEXTS = {
    "ru": "Код входа MedFed: {code}. Действует {minutes} мин. Никому его не сообщайте.",
    "en": "Your MedFed sign-in code: {code}. Valid for {minutes} min. Do not share it.",
}
_SUBJECTS = {"ru": "Код входа MedFed", "en": "Your MedFed sign-in code"}
SEND_TIMEOUT = 10.0


class SendError(Exception):
    """The gateway did not take the message; the text names the gateway's answer, never the address."""


@dataclass(frozen=True, slots=True)
class CodeMessage:
    challenge_id: uuid.UUID
    channel: Channel
    to: str
    """An E.164 phone number or an e-mail address."""
    code: str
    expires_at: datetime.datetime
    language: str = "ru"

    def text(self) -> str:
        minutes = max(1, round((self.expires_at - datetime.datetime.now(datetime.UTC)).total_seconds() / 60))
        return _TEXTS.get(self.language, _TEXTS["en"]).format(code=self.code, minutes=minutes)

    def subject(self) -> str:
        return _SUBJECTS.get(self.language, _SUBJECTS["en"])


class CodeSender(Protocol):
    """Delivers one code. Raises SendError when the gateway refuses or cannot be reached."""

    async def send(self, message: CodeMessage) -> None: ...


class OutboxSender:
    """Writes the code to node.otp_outbox (in the caller's transaction) for the local federation to show.

    Expired rows are dropped on the way, so the outbox never holds a code that could still be useful for
    longer than its TTL.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def send(self, message: CodeMessage) -> None:
        now = datetime.datetime.now(datetime.UTC)
        await self.session.execute(delete(OtpOutbox).where(OtpOutbox.expires_at < now))
        self.session.add(
            OtpOutbox(
                challenge_id=message.challenge_id, channel=message.channel, code=message.code, created_at=now, expires_at=message.expires_at
            )
        )


class HttpSmsSender:
    """Posts `{"to", "text"}` as JSON with a bearer token to an SMS gateway's HTTP API (httpx).

    Gateways differ in their field names; a deployment whose gateway wants another shape gets another small
    adapter beside this one.
    """

    def __init__(self, url: str, token: str, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url
        self.token = token
        self.transport = transport

    async def send(self, message: CodeMessage) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            async with httpx.AsyncClient(timeout=SEND_TIMEOUT, transport=self.transport) as client:
                response = await client.post(self.url, json={"to": message.to, "text": message.text()}, headers=headers)
        except httpx.HTTPError as exc:
            raise SendError(f"SMS gateway unreachable ({type(exc).__name__})") from None
        if not response.is_success:
            raise SendError(f"SMS gateway answered {response.status_code}")


class SmtpEmailSender:
    """Sends the code as a plain-text e-mail through an SMTP server (stdlib smtplib, STARTTLS unless disabled)."""

    def __init__(self, host: str, port: int, sender: str, *, user: str = "", password: str = "", starttls: bool = True) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.user, self.password, self.starttls = user, password, starttls

    def _send(self, message: CodeMessage) -> None:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.to
        mail["Subject"] = message.subject()
        mail.set_content(message.text())
        try:
            with smtplib.SMTP(self.host, self.port, timeout=SEND_TIMEOUT) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.user:
                    smtp.login(self.user, self.password)
                smtp.send_message(mail)
        except (OSError, smtplib.SMTPException) as exc:
            raise SendError(f"SMTP server refused or unreachable ({type(exc).__name__})") from None

    async def send(self, message: CodeMessage) -> None:
        await anyio.to_thread.run_sync(self._send, message)


def sender_for(channel: Channel, settings: Settings, session: AsyncSession) -> CodeSender:
    """The sender this node is configured to use for `channel`."""
    if channel == "sms" and settings.sms_sender == "http":
        return HttpSmsSender(settings.sms_gateway_url, settings.sms_gateway_token)
    if channel == "email" and settings.email_sender == "smtp":
        return SmtpEmailSender(
            settings.smtp_host, settings.smtp_port, settings.smtp_from,
            user=settings.smtp_user, password=settings.smtp_password, starttls=settings.smtp_starttls,
        )  # fmt: skip
    return OutboxSender(session)
