"""Configuration: the region's file plus the environment; anything wrong is one clear line."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from medplat.config import ConfigError, known_regions, load_infra, load_region, region_for_citizenship, regions_dir, settings_from_env


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    key = tmp_path / "signing.pem"
    key.write_bytes(Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return {
        "MEDFED_REGION": "uz",
        "MEDFED_DATABASE_URL": "postgresql://medfed:secret@db.uz.internal:5432/medfed",
        "MEDFED_SYNC_DATABASE_URL": "postgresql://medfed_sync:secret@db.uz.internal:5432/medfed",
        "MEDFED_S3_ENDPOINT": "https://s3.uz.internal",
        "MEDFED_S3_ACCESS_KEY": "ak",
        "MEDFED_S3_SECRET_KEY": "sk",
        "MEDFED_BROKER_URL": "amqp://medfed:secret@mq.uz.internal:5672/medfed",
        "MEDFED_SIGNING_KEY_FILE": str(key),
        "MEDFED_DATA_KEY": base64.b64encode(bytes(32)).decode(),
        "MEDFED_PEERS": "ru=https://ru.example/, kz=https://kz.example",
    }


def test_the_three_regions_ship_with_the_code() -> None:
    assert known_regions() == ("kz", "ru", "uz")
    for code in ("ru", "kz", "uz"):
        region = load_region(code)
        assert region.code == code
        assert region.country == code.upper()
        assert region.storage.personal_bucket != region.storage.shared_bucket


def test_home_region_follows_citizenship() -> None:
    assert region_for_citizenship("RU") == "ru"
    assert region_for_citizenship("KZ") == "kz"
    assert region_for_citizenship("UZ") == "uz"
    assert region_for_citizenship("BY") is None


def test_a_complete_environment_gives_settings(env: dict[str, str]) -> None:
    settings = settings_from_env(env)
    assert settings.region.code == "uz"
    assert settings.broker_url.startswith("amqp://")
    assert settings.peers == {"ru": "https://ru.example", "kz": "https://kz.example"}
    assert settings.shared_bucket == "medfed-uz-shared"
    assert len(settings.data_key) == 32
    assert settings.deployment == "production"  # loopback stores are a finding unless MEDFED_DEPLOYMENT=local
    assert settings_from_env({**env, "MEDFED_DEPLOYMENT": "local"}).deployment == "local"


def test_every_region_declares_its_countrys_hosts() -> None:
    """The residency scanner's stores check reads the same infra.json as terraform, checkov and ansible."""
    assert load_infra("kz").host_suffixes == ("yandexcloud.kz", "ps.kz", "medfed.kz")
    assert load_infra("kz").allows_host("db.kz.prod.medfed.kz") and load_infra("kz").allows_host("PS.KZ.")
    assert not load_infra("kz").allows_host("notps.kz") and not load_infra("kz").allows_host("medfed.kz.example.com")
    regions = {code: load_infra(code).regions for code in known_regions()}
    assert regions == {"kz": ("kz1", "kz-ala"), "ru": ("ru-central1",), "uz": ("uz-tas",)}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"MEDFED_REGION": "xx"}, f"unknown region code 'xx': known regions are kz, ru, uz (in {regions_dir()})"),
        ({"MEDFED_REGION": ""}, "MEDFED_REGION is not set"),
        ({"MEDFED_DATABASE_URL": ""}, "MEDFED_DATABASE_URL is not set"),
        ({"MEDFED_DATABASE_URL": "mysql://x"}, "MEDFED_DATABASE_URL must be a postgresql:// URL"),
        ({"MEDFED_BROKER_URL": " "}, "MEDFED_BROKER_URL is not set"),
        ({"MEDFED_S3_SECRET_KEY": ""}, "MEDFED_S3_SECRET_KEY is not set"),
        ({"MEDFED_SIGNING_KEY_FILE": ""}, "MEDFED_SIGNING_KEY_FILE is not set"),
        ({"MEDFED_SIGNING_KEY_FILE": "/nonexistent/key.pem"}, "MEDFED_SIGNING_KEY_FILE /nonexistent/key.pem: No such file or directory"),
        ({"MEDFED_DATA_KEY": ""}, "MEDFED_DATA_KEY is not set"),
        ({"MEDFED_DATA_KEY": "not base64!"}, "MEDFED_DATA_KEY is not base64"),
        ({"MEDFED_DATA_KEY": base64.b64encode(b"short").decode()}, "MEDFED_DATA_KEY must decode to 32 bytes, it has 5"),
        ({"MEDFED_PEERS": "ru"}, "MEDFED_PEERS must look like 'ru=https://ru.example,uz=https://uz.example'; got a part 'ru'"),
        ({"MEDFED_DEPLOYMENT": "dev"}, "MEDFED_DEPLOYMENT must be production or local, not 'dev'"),
    ],
)
def test_bad_configuration_is_one_clear_line(env: dict[str, str], change: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_env({**env, **change})
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


def test_a_key_that_is_not_a_pem_key_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("hello")
    with pytest.raises(ConfigError, match=r"^MEDFED_SIGNING_KEY_FILE .*bad.pem: not a PEM private key$"):
        settings_from_env({**env, "MEDFED_SIGNING_KEY_FILE": str(bad)})


def test_tls_files_are_checked_when_the_settings_are_read(env: dict[str, str], tmp_path: Path) -> None:
    from medplat.devfed import tls

    authority = tls.ensure_authority(tmp_path / "ca.pem", tmp_path / "ca-key.pem")
    server = tls.ensure_server(tmp_path / "node.pem", tmp_path / "node-key.pem", authority, "uz")
    files = {
        "MEDFED_FEDERATION_CA_FILE": str(authority.cert_file),
        "MEDFED_TLS_CERT_FILE": str(server.cert_file),
        "MEDFED_TLS_KEY_FILE": str(server.key_file),
    }
    settings = settings_from_env({**env, **files})
    assert (settings.federation_ca_file, settings.tls_cert_file, settings.tls_key_file) == tuple(files.values())
    plain = settings_from_env(env)
    assert (plain.federation_ca_file, plain.tls_cert_file, plain.tls_key_file) == ("", "", "")
    (tmp_path / "garbage.pem").write_text("hello")
    refusals = {
        "MEDFED_FEDERATION_CA_FILE /nonexistent/ca.pem: No such file or directory": {"MEDFED_FEDERATION_CA_FILE": "/nonexistent/ca.pem"},
        f"MEDFED_FEDERATION_CA_FILE {tmp_path}/garbage.pem: not a PEM bundle of certificates": {
            "MEDFED_FEDERATION_CA_FILE": str(tmp_path / "garbage.pem")
        },
        "MEDFED_TLS_CERT_FILE and MEDFED_TLS_KEY_FILE are set together or not at all": {"MEDFED_TLS_CERT_FILE": str(server.cert_file)},
        f"MEDFED_TLS_CERT_FILE {server.cert_file} and MEDFED_TLS_KEY_FILE {authority.cert_file}: "
        "not a PEM certificate and its private key": {
            "MEDFED_TLS_CERT_FILE": str(server.cert_file),
            "MEDFED_TLS_KEY_FILE": str(authority.cert_file),
        },
    }
    for message, change in refusals.items():
        with pytest.raises(ConfigError) as caught:
            settings_from_env({**env, **change})
        assert str(caught.value) == message


def test_a_region_file_with_unknown_fields_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ab").mkdir()
    text = (Path(__file__).resolve().parents[2] / "regions" / "kz" / "region.toml").read_text()
    (tmp_path / "ab" / "region.toml").write_text(text.replace('code = "kz"', 'code = "ab"\nflavour = "x"'))
    with pytest.raises(ConfigError, match=r"region.toml: Object contains unknown field `flavour`"):
        load_region("ab", tmp_path)


def test_the_suppression_threshold_is_5_unless_the_region_says_otherwise(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "regions" / "kz" / "region.toml").read_text()
    assert "suppression_threshold = 5" in text
    for code, statistics in (
        ("aa", ""),
        ("ab", "[statistics]\nsuppression_threshold = 11\n"),
        ("ac", "[statistics]\nsuppression_threshold = 1\n"),
    ):
        (tmp_path / code).mkdir()
        head = text.split("[statistics]")[0].replace('code = "kz"', f'code = "{code}"')
        (tmp_path / code / "region.toml").write_text(head + statistics)
    assert load_region("aa", tmp_path).statistics.suppression_threshold == 5
    assert load_region("ab", tmp_path).statistics.suppression_threshold == 11
    with pytest.raises(ConfigError, match=r"region.toml: Expected `int` >= 2 - at `\$.statistics.suppression_threshold`$"):
        load_region("ac", tmp_path)


def test_beat_runs_the_sync_sweep_and_anti_entropy(env: dict[str, str]) -> None:
    from celery import Celery

    from medplat.worker import configure

    app = configure(Celery("t"), settings_from_env(env))
    tasks = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert {"node.heartbeat", "sync.sweep", "sync.reconcile_all"} <= tasks


def test_beat_runs_the_compliance_and_audit_tasks_at_the_intervals_named_once(env: dict[str, str]) -> None:
    from celery import Celery

    from medplat import worker

    app = worker.configure(Celery("t"), settings_from_env(env))
    every = {entry["task"]: (entry["schedule"], entry["options"]["expires"]) for entry in app.conf.beat_schedule.values()}
    # The scan and the reminders hourly, the checkpoint (signed, then cosigned by the peers) every 5 minutes;
    # a run that could not start within its interval expires rather than piling up behind the next one.
    assert every["compliance.scan"] == (worker.SCAN_SECONDS, worker.SCAN_SECONDS) == (3600.0, 3600.0)
    assert every["compliance.dsr_reminders"] == (worker.REMINDER_SECONDS, worker.REMINDER_SECONDS) == (3600.0, 3600.0)
    assert every["audit.checkpoint"] == (worker.CHECKPOINT_SECONDS, worker.CHECKPOINT_SECONDS) == (300.0, 300.0)
    assert len(every) == len(app.conf.beat_schedule) == 6
