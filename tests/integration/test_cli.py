"""The command line: invalid configuration stops the node with one clear line and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from medplat.config import Settings
from medplat.devfed.processes import free_ports


def medfed(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "medplat.cli", *args], check=False, capture_output=True, text=True, env=env, timeout=60)


@pytest.fixture
def node_env(settings: Settings) -> dict[str, str]:
    return {k: v for k, v in os.environ.items()}


@pytest.mark.parametrize(
    ("change", "line"),
    [
        ({"MEDFED_REGION": "by"}, "medfed: configuration error: unknown region code 'by': known regions are kz, ru, uz"),
        ({"MEDFED_SIGNING_KEY_FILE": ""}, "medfed: configuration error: MEDFED_SIGNING_KEY_FILE is not set"),
        ({"MEDFED_DATA_KEY": ""}, "medfed: configuration error: MEDFED_DATA_KEY is not set"),
    ],
)
@pytest.mark.parametrize("command", [["serve"], ["worker"], ["db", "upgrade"]])
def test_invalid_configuration_is_one_line_and_exit_2(
    node_env: dict[str, str], change: dict[str, str], line: str, command: list[str]
) -> None:
    result = medfed(*command, env={**node_env, **change})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(line)
    assert "Traceback" not in result.stderr + result.stdout


def test_an_unreachable_database_stops_the_node_with_one_line(node_env: dict[str, str]) -> None:
    port = free_ports(1)[0]
    result = medfed("serve", env={**node_env, "MEDFED_DATABASE_URL": f"postgresql://medfed:topsecret@127.0.0.1:{port}/medfed"})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"medfed: configuration error: database postgresql://medfed@127.0.0.1:{port}/medfed is unreachable:")
    assert "topsecret" not in result.stderr


def test_db_upgrade_reports_the_revision(node_env: dict[str, str]) -> None:
    from medplat.db.migrate import head_revision

    result = medfed("db", "upgrade", env=node_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"kz: database at revision {head_revision()}"
    assert medfed("db", "current", env=node_env).stdout.strip() == head_revision()


def test_storage_init_creates_both_buckets(node_env: dict[str, str], settings: Settings) -> None:
    result = medfed("storage", "init", env=node_env)
    assert result.returncode == 0, result.stderr
    assert f"kz: bucket {settings.personal_bucket} ready at {settings.s3_endpoint}" in result.stdout
    assert f"kz: bucket {settings.shared_bucket} ready at {settings.s3_endpoint}" in result.stdout
