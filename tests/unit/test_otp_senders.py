"""The code senders' real adapters against stand-ins for the outer gateways (a local HTTP server, a local SMTP
server), and the configuration that picks a sender per region and deployment."""

from __future__ import annotations

import base64
import datetime
import json
import socketserver
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from medplat.config import ConfigError, load_region, settings_from_env
from medplat.domain.accounts.senders import CodeMessage, HttpSmsSender, OutboxSender, SendError, SmtpEmailSender, sender_for


def message(channel: Any = "sms", to: str = "+77015551234", language: str = "ru") -> CodeMessage:
    """A code that expires in five minutes from now."""
    expires_at = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)
    return CodeMessage(uuid.UUID("01900000-0000-7000-8000-000000000001"), channel, to, "482913", expires_at, language)


class Gateway(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Gateway.received.append({"path": self.path, "auth": self.headers.get("Authorization"), "json": json.loads(body)})
        self.send_response(Gateway.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[str]:
    Gateway.received, Gateway.status = [], 200
    server = HTTPServer(("127.0.0.1", 0), Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


async def test_the_http_sms_adapter_posts_the_text_with_its_token(gateway: str) -> None:
    await HttpSmsSender(f"{gateway}/v1/send", "gw-token").send(message())
    (call,) = Gateway.received
    assert call["path"] == "/v1/send" and call["auth"] == "Bearer gw-token"
    assert call["json"]["to"] == "+77015551234"
    assert call["json"]["text"] == "Код входа MedFed: 482913. Действует 5 мин. Никому его не сообщайте."


async def test_a_refusing_or_absent_sms_gateway_is_a_send_error_without_the_address(gateway: str) -> None:
    Gateway.status = 502
    with pytest.raises(SendError) as refused:
        await HttpSmsSender(f"{gateway}/v1/send", "").send(message())
    assert str(refused.value) == "SMS gateway answered 502"
    with pytest.raises(SendError) as absent:
        await HttpSmsSender("http://127.0.0.1:9/none", "").send(message())
    assert str(absent.value) == "SMS gateway unreachable (ConnectError)"
    assert "7015551234" not in str(refused.value) + str(absent.value)


class _Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) to take one message: the server side of a real smtplib conversation."""

    mails: list[dict[str, Any]] = []

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        mail: dict[str, Any] = {"rcpt": [], "data": b""}
        self.reply("220 test ESMTP")
        while line := self.rfile.readline():
            verb = line.decode().strip().split(" ")[0].upper()
            if verb == "EHLO":
                self.reply("250-test")
                self.reply("250 AUTH PLAIN")
            elif verb == "AUTH":
                mail["auth"] = base64.b64decode(line.decode().split()[2]).split(b"\0")[1:]
                self.reply("235 ok")
            elif verb == "MAIL":
                mail["from"] = line.decode().strip()
                self.reply("250 ok")
            elif verb == "RCPT":
                mail["rcpt"].append(line.decode().strip())
                self.reply("250 ok")
            elif verb == "DATA":
                self.reply("354 go on")
                while (chunk := self.rfile.readline()) != b".\r\n":
                    mail["data"] += chunk
                _Smtp.mails.append(mail)
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")


@pytest.fixture
def smtp_server() -> Iterator[int]:
    _Smtp.mails = []
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


async def test_the_smtp_adapter_sends_the_code_as_mail(smtp_server: int) -> None:
    sender = SmtpEmailSender("127.0.0.1", smtp_server, "no-reply@kz.medfed.example", user="mailer", password="pw", starttls=False)
    await sender.send(message("email", "aigerim.n@clinic.kz", "en"))
    (mail,) = _Smtp.mails
    assert mail["auth"] == [b"mailer", b"pw"]
    assert [r.lower() for r in mail["rcpt"]] == ["rcpt to:<aigerim.n@clinic.kz>"]
    data = mail["data"].decode()
    assert "Subject: Your MedFed sign-in code" in data
    assert "Your MedFed sign-in code: 482913. Valid for 5 min." in data


async def test_an_absent_smtp_server_is_a_send_error() -> None:
    with pytest.raises(SendError, match=r"^SMTP server refused or unreachable \(ConnectionRefusedError\)$"):
        await SmtpEmailSender("127.0.0.1", 9, "x@y.kz", starttls=False).send(message())


# -- which sender a node uses ---------------------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    key = tmp_path / "signing.pem"
    key.write_bytes(Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return {
        "MEDFED_REGION": "kz",
        "MEDFED_DATABASE_URL": "postgresql://medfed:secret@db.kz.internal:5432/medfed",
        "MEDFED_SYNC_DATABASE_URL": "postgresql://medfed_sync:secret@db.kz.internal:5432/medfed",
        "MEDFED_S3_ENDPOINT": "https://s3.kz.internal",
        "MEDFED_S3_ACCESS_KEY": "ak",
        "MEDFED_S3_SECRET_KEY": "sk",
        "MEDFED_BROKER_URL": "redis://mq.kz.internal:6379/0",
        "MEDFED_SIGNING_KEY_FILE": str(key),
        "MEDFED_DATA_KEY": base64.b64encode(bytes(32)).decode(),
    }


def test_every_region_ships_with_the_outbox_sender_and_sane_limits() -> None:
    for code in ("kz", "ru", "uz"):
        sign_in = load_region(code).sign_in
        assert (sign_in.sms_sender, sign_in.email_sender) == ("outbox", "outbox")
        assert sign_in.code_ttl_seconds <= 600 and sign_in.max_tries_per_code <= 5
        assert sign_in.access_ttl_seconds <= 900 < sign_in.refresh_ttl_seconds


def test_a_deployment_picks_real_gateways_through_the_environment(env: dict[str, str]) -> None:
    settings = settings_from_env(
        {
            **env,
            "MEDFED_SMS_SENDER": "http",
            "MEDFED_SMS_GATEWAY_URL": "https://sms.kz.example/send",
            "MEDFED_SMS_GATEWAY_TOKEN": "t",
            "MEDFED_EMAIL_SENDER": "smtp",
            "MEDFED_SMTP_HOST": "smtp.kz.example",
            "MEDFED_SMTP_PORT": "2525",
            "MEDFED_SMTP_FROM": "no-reply@kz.medfed.example",
        }
    )
    sms, email = sender_for("sms", settings, None), sender_for("email", settings, None)  # type: ignore[arg-type]
    assert isinstance(sms, HttpSmsSender) and sms.url == "https://sms.kz.example/send" and sms.token == "t"
    assert isinstance(email, SmtpEmailSender) and (email.host, email.port, email.starttls) == ("smtp.kz.example", 2525, True)
    local = settings_from_env(env)
    assert isinstance(sender_for("sms", local, None), OutboxSender)  # type: ignore[arg-type]
    assert isinstance(sender_for("email", local, None), OutboxSender)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"MEDFED_SMS_SENDER": "carrier-pigeon"}, "MEDFED_SMS_SENDER must be outbox or http, not 'carrier-pigeon'"),
        ({"MEDFED_EMAIL_SENDER": "http"}, "MEDFED_EMAIL_SENDER must be outbox or smtp, not 'http'"),
        ({"MEDFED_SMS_SENDER": "http"}, "MEDFED_SMS_GATEWAY_URL is not set"),
        ({"MEDFED_SMS_SENDER": "http", "MEDFED_SMS_GATEWAY_URL": "ftp://x"}, "MEDFED_SMS_GATEWAY_URL must be an http(s) URL"),
        ({"MEDFED_EMAIL_SENDER": "smtp", "MEDFED_SMTP_FROM": "a@b.kz"}, "MEDFED_SMTP_HOST is not set"),
        (
            {"MEDFED_EMAIL_SENDER": "smtp", "MEDFED_SMTP_HOST": "h", "MEDFED_SMTP_FROM": "a@b.kz", "MEDFED_SMTP_PORT": "x"},
            "MEDFED_SMTP_PORT must be a port number",
        ),
    ],
)
def test_a_half_configured_gateway_stops_the_node_with_one_line(env: dict[str, str], extra: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        settings_from_env({**env, **extra})
    assert str(error.value) == message


def test_an_unknown_sign_in_key_in_region_toml_is_refused(tmp_path: Path) -> None:
    source = (Path(__file__).resolve().parents[2] / "regions" / "kz" / "region.toml").read_text()
    (tmp_path / "kz").mkdir()
    (tmp_path / "kz" / "region.toml").write_text(source.replace("[sign_in]\n", "[sign_in]\ncode_length = 4\n"))
    with pytest.raises(ConfigError, match=r"Object contains unknown field `code_length` - at `\$.sign_in`"):
        load_region("kz", tmp_path)
    (tmp_path / "kz" / "region.toml").write_text(source.replace("code_ttl_seconds = 300", "code_ttl_seconds = 86400"))
    with pytest.raises(ConfigError, match=r"Expected `int` <= 900 - at `\$.sign_in.code_ttl_seconds`"):
        load_region("kz", tmp_path)
