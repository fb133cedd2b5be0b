"""Node configuration: the region's own file (regions/<code>/region.toml) plus the deployment's environment.

The same code runs in every country; only `regions/<code>/` and the environment differ. Anything that
names a server, a credential or a key comes from the environment, so one wheel runs against the local
federation's engines and against production PostgreSQL, MinIO and RabbitMQ alike.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import re
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

REGION_CODE = re.compile(r"^[a-z]{2}$")
ENV_PREFIX = "MEDFED_"


class ConfigError(Exception):
    """Configuration that stops the node from starting; the message is one line meant for an operator."""


class StorageConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    personal_bucket: str
    shared_bucket: str


class SignInConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """How doctors of a region sign in: which sender delivers one-time codes, and the limits around them.

    `outbox` keeps codes on the node (node.otp_outbox) for the local federation; `http` posts SMS to the
    gateway named by MEDFED_SMS_GATEWAY_URL; `smtp` sends e-mail through MEDFED_SMTP_HOST. The environment
    may override the kind per deployment (MEDFED_SMS_SENDER, MEDFED_EMAIL_SENDER).
    """

    sms_sender: Literal["outbox", "http"] = "outbox"
    email_sender: Literal["outbox", "smtp"] = "outbox"
    code_ttl_seconds: Annotated[int, msgspec.Meta(ge=60, le=900)] = 300
    max_tries_per_code: Annotated[int, msgspec.Meta(ge=1, le=10)] = 5
    window_seconds: Annotated[int, msgspec.Meta(ge=60, le=86400)] = 900
    """The fixed window every limit below counts in."""
    codes_per_address: Annotated[int, msgspec.Meta(ge=1)] = 5
    codes_per_ip: Annotated[int, msgspec.Meta(ge=1)] = 30
    tries_per_ip: Annotated[int, msgspec.Meta(ge=1)] = 60
    failures_before_lockout: Annotated[int, msgspec.Meta(ge=1)] = 10
    """Wrong codes for one phone or e-mail within a window before sign-in for it is locked until the window ends."""
    access_ttl_seconds: Annotated[int, msgspec.Meta(ge=60, le=3600)] = 600
    refresh_ttl_seconds: Annotated[int, msgspec.Meta(ge=3600)] = 14 * 86400


class StatisticsConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """How the node's aggregated statistics (the director's counts) protect small numbers.

    A count below `suppression_threshold` could single out a person for someone who knows the node's
    doctors, so it is withheld, together with enough other counts that it cannot be recovered from a total
    (medplat.domain.director.suppression). 2 is the least that still hides anyone; 5 is the common default
    of health statistics offices.
    """

    suppression_threshold: Annotated[int, msgspec.Meta(ge=2, le=100)] = 5


class RegionConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """What regions/<code>/region.toml says about a region."""

    code: Annotated[str, msgspec.Meta(pattern=r"^[a-z]{2}$")]
    name: str
    country: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$")]
    citizenships: tuple[str, ...]
    languages: tuple[str, ...]
    default_language: str
    timezone: str
    law: str
    storage: StorageConfig
    sign_in: SignInConfig = SignInConfig()
    statistics: StatisticsConfig = StatisticsConfig()


class InfraConfig(msgspec.Struct, frozen=True):
    """What regions/<code>/infra.json says about where the country's infrastructure may be (the same file
    terraform/modules/region-policy, the checkov rules, tests/infra and ansible's residency_guard read)."""

    name: str
    regions: tuple[str, ...]
    """The cloud regions in the country (an object store reports its buckets' region by one of these names)."""
    host_suffixes: tuple[str, ...]
    """Every endpoint's host is one of these or a name under one of them."""

    def allows_host(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(host == s or host.endswith("." + s) for s in self.host_suffixes)


def load_infra(code: str, directory: Path | None = None) -> InfraConfig:
    path = (directory or regions_dir()) / code / "infra.json"
    try:
        return msgspec.json.decode(path.read_bytes(), type=InfraConfig)
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing: every region declares its country's hosts there") from None
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


def regions_dir() -> Path:
    """Where the regions' data lives: $MEDFED_REGIONS_DIR, the copy inside the wheel, or the source tree."""
    if explicit := os.environ.get(f"{ENV_PREFIX}REGIONS_DIR"):
        return Path(explicit)
    return _installed_regions_dir()


@functools.cache
def _installed_regions_dir() -> Path:
    packaged = Path(__file__).parent / "regions_data"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "regions"


def known_regions(directory: Path | None = None) -> tuple[str, ...]:
    directory = directory or regions_dir()
    if not directory.is_dir():
        return ()
    return tuple(sorted(p.name for p in directory.iterdir() if REGION_CODE.match(p.name) and (p / "region.toml").is_file()))


def load_region(code: str, directory: Path | None = None) -> RegionConfig:
    directory = directory or regions_dir()
    known = known_regions(directory)
    if code not in known:
        raise ConfigError(f"unknown region code {code!r}: known regions are {', '.join(known) or 'none'} (in {directory})")
    path = directory / code / "region.toml"
    try:
        region = msgspec.toml.decode(path.read_bytes(), type=RegionConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if region.code != code:
        raise ConfigError(f"{path}: says code = {region.code!r} but lives in the folder of {code!r}")
    return region


def region_for_citizenship(citizenship: str, directory: Path | None = None) -> str | None:
    """The code of the region whose node is home to citizens of `citizenship`, if the federation has one."""
    for code in known_regions(directory):
        if citizenship in load_region(code, directory).citizenships:
            return code
    return None


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a node process needs, validated once at start."""

    region: RegionConfig
    database_url: str
    sync_database_url: str
    """The same database as the sync role (no privilege on `personal`), for sync workers and federation endpoints."""
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str
    s3_region: str = "us-east-1"
    broker_url: str
    signing_key_pem: bytes
    data_key: bytes
    public_url: str = ""
    peers: Mapping[str, str] = msgspec.field(default_factory=dict)
    log_level: str = "INFO"
    trust_dir: str = ""
    """The federation trust file's folder (versions 1.trust.json, 2.trust.json, ...)."""
    deployment: Literal["production", "local"] = "production"
    """local: the stores are on this machine (the local federation, tests); the residency scanner then accepts loopback
    hosts, which in production say nothing about the country a store is in."""
    federation_ca_file: str = ""
    """PEM bundle that other nodes' TLS certificates are verified against; empty: the system trust store."""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    """The certificate chain and key `medfed serve` serves HTTPS with; empty: plain HTTP (behind nginx)."""
    sms_sender: str = "outbox"
    email_sender: str = "outbox"
    sms_gateway_url: str = ""
    sms_gateway_token: str = ""
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_from: str = ""
    smtp_starttls: bool = True

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        return _load_signing_key(self.signing_key_pem)

    @property
    def personal_bucket(self) -> str:
        return self.region.storage.personal_bucket

    @property
    def shared_bucket(self) -> str:
        return self.region.storage.shared_bucket


@functools.cache
def _load_signing_key(pem: bytes) -> Ed25519PrivateKey:
    key = load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError("the signing key is not an Ed25519 private key")
    return key


def _require(env: Mapping[str, str], name: str) -> str:
    value = env.get(ENV_PREFIX + name, "").strip()
    if not value:
        raise ConfigError(f"{ENV_PREFIX}{name} is not set")
    return value


def _parse_peers(raw: str) -> dict[str, str]:
    peers: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        code, sep, url = part.partition("=")
        if not sep or not REGION_CODE.match(code.strip()) or not url.strip():
            raise ConfigError(f"{ENV_PREFIX}PEERS must look like 'ru=https://ru.example,uz=https://uz.example'; got a part {part!r}")
        peers[code.strip()] = url.strip().rstrip("/")
    return peers


def settings_from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Read and check the configuration; raises ConfigError with one line naming what is wrong."""
    env = os.environ if env is None else env
    region = load_region(_require(env, "REGION"))
    key_file = Path(_require(env, "SIGNING_KEY_FILE"))
    try:
        signing_key_pem = key_file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{ENV_PREFIX}SIGNING_KEY_FILE {key_file}: {exc.strerror}") from None
    try:
        _load_signing_key(signing_key_pem)
    except ValueError:
        raise ConfigError(f"{ENV_PREFIX}SIGNING_KEY_FILE {key_file}: not a PEM private key") from None
    try:
        data_key = base64.b64decode(_require(env, "DATA_KEY"), validate=True)
    except binascii.Error:
        raise ConfigError(f"{ENV_PREFIX}DATA_KEY is not base64") from None
    if len(data_key) != 32:
        raise ConfigError(f"{ENV_PREFIX}DATA_KEY must decode to 32 bytes, it has {len(data_key)}")
    senders = _senders(env, region)
    raw_deployment = env.get(f"{ENV_PREFIX}DEPLOYMENT", "").strip() or "production"
    if raw_deployment not in ("production", "local"):
        raise ConfigError(f"{ENV_PREFIX}DEPLOYMENT must be production or local, not {raw_deployment!r}")
    deployment: Literal["production", "local"] = "local" if raw_deployment == "local" else "production"
    federation_ca_file, tls_cert_file, tls_key_file = _tls(env)
    database_url = _require(env, "DATABASE_URL")
    if not database_url.startswith(("postgresql://", "postgresql+psycopg://")):
        raise ConfigError(f"{ENV_PREFIX}DATABASE_URL must be a postgresql:// URL")
    return Settings(
        region=region,
        database_url=database_url,
        sync_database_url=_require(env, "SYNC_DATABASE_URL"),
        s3_endpoint=_require(env, "S3_ENDPOINT"),
        s3_access_key=_require(env, "S3_ACCESS_KEY"),
        s3_secret_key=_require(env, "S3_SECRET_KEY"),
        s3_region=env.get(f"{ENV_PREFIX}S3_REGION", "us-east-1"),
        broker_url=_require(env, "BROKER_URL"),
        signing_key_pem=signing_key_pem,
        data_key=data_key,
        public_url=env.get(f"{ENV_PREFIX}PUBLIC_URL", "").rstrip("/"),
        peers=_parse_peers(env.get(f"{ENV_PREFIX}PEERS", "")),
        log_level=env.get(f"{ENV_PREFIX}LOG_LEVEL", "INFO").upper(),
        trust_dir=env.get(f"{ENV_PREFIX}TRUST_DIR", "") or str(regions_dir() / "trust"),
        deployment=deployment,
        federation_ca_file=federation_ca_file,
        tls_cert_file=tls_cert_file,
        tls_key_file=tls_key_file,
        **senders,
    )


def _tls(env: Mapping[str, str]) -> tuple[str, str, str]:
    """The federation's CA bundle, the server's certificate and its key, each checked by loading it as TLS would."""
    ca_file = env.get(f"{ENV_PREFIX}FEDERATION_CA_FILE", "").strip()
    cert_file = env.get(f"{ENV_PREFIX}TLS_CERT_FILE", "").strip()
    key_file = env.get(f"{ENV_PREFIX}TLS_KEY_FILE", "").strip()
    if ca_file:
        try:
            ssl.create_default_context(cafile=ca_file)
        except ssl.SSLError:  # before OSError, of which it is a kind
            raise ConfigError(f"{ENV_PREFIX}FEDERATION_CA_FILE {ca_file}: not a PEM bundle of certificates") from None
        except OSError as exc:
            raise ConfigError(f"{ENV_PREFIX}FEDERATION_CA_FILE {ca_file}: {exc.strerror or 'unreadable'}") from None
    if bool(cert_file) != bool(key_file):
        raise ConfigError(f"{ENV_PREFIX}TLS_CERT_FILE and {ENV_PREFIX}TLS_KEY_FILE are set together or not at all")
    if cert_file:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_file, key_file)
        except ssl.SSLError:
            raise ConfigError(
                f"{ENV_PREFIX}TLS_CERT_FILE {cert_file} and {ENV_PREFIX}TLS_KEY_FILE {key_file}: not a PEM certificate and its private key"
            ) from None
        except OSError as exc:
            raise ConfigError(f"{ENV_PREFIX}TLS_CERT_FILE {cert_file} or {ENV_PREFIX}TLS_KEY_FILE {key_file}: {exc.strerror}") from None
    return ca_file, cert_file, key_file


def _senders(env: Mapping[str, str], region: RegionConfig) -> dict[str, Any]:
    """Which code senders this deployment uses (region.toml, overridden by the environment) and their servers."""
    sms = env.get(f"{ENV_PREFIX}SMS_SENDER", "").strip() or region.sign_in.sms_sender
    email = env.get(f"{ENV_PREFIX}EMAIL_SENDER", "").strip() or region.sign_in.email_sender
    if sms not in ("outbox", "http"):
        raise ConfigError(f"{ENV_PREFIX}SMS_SENDER must be outbox or http, not {sms!r}")
    if email not in ("outbox", "smtp"):
        raise ConfigError(f"{ENV_PREFIX}EMAIL_SENDER must be outbox or smtp, not {email!r}")
    values: dict[str, Any] = {"sms_sender": sms, "email_sender": email}
    if sms == "http":
        url = _require(env, "SMS_GATEWAY_URL")
        if not url.startswith(("https://", "http://")):
            raise ConfigError(f"{ENV_PREFIX}SMS_GATEWAY_URL must be an http(s) URL")
        values |= {"sms_gateway_url": url, "sms_gateway_token": env.get(f"{ENV_PREFIX}SMS_GATEWAY_TOKEN", "")}
    if email == "smtp":
        port = env.get(f"{ENV_PREFIX}SMTP_PORT", "587").strip()
        if not port.isdigit():
            raise ConfigError(f"{ENV_PREFIX}SMTP_PORT must be a port number")
        values |= {
            "smtp_host": _require(env, "SMTP_HOST"),
            "smtp_port": int(port),
            "smtp_user": env.get(f"{ENV_PREFIX}SMTP_USER", ""),
            "smtp_password": env.get(f"{ENV_PREFIX}SMTP_PASSWORD", ""),
            "smtp_from": _require(env, "SMTP_FROM"),
            "smtp_starttls": env.get(f"{ENV_PREFIX}SMTP_STARTTLS", "true").strip().lower() not in ("0", "false", "no"),
        }
    return values


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read from the environment on first use."""
    return settings_from_env()
