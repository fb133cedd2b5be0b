"""Offline checks of ansible/: syntax of every playbook against every inventory, ansible-lint, the Ansible
copy of the country table against terraform's, the vault files, and the residency_check playbook run for
real (connection local), passing on in-country values and failing, with the exact message, on planted
violations. Skipped, with the reason, where ansible-core (or ansible-lint) is not installed."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.residency import REPO, load_countries

# PyYAML comes with ansible-core; it is not a dependency of the project itself.
yaml = pytest.importorskip("yaml", reason="tests/infra/test_ansible.py did not run: PyYAML is not installed (it comes with ansible-core)")

ANSIBLE = REPO / "ansible"
INVENTORIES = sorted(p.name for p in (ANSIBLE / "inventories").iterdir() if (p / "hosts.yml").is_file())
PROD_INVENTORIES = [name for name in INVENTORIES if name.endswith("-prod")]
PLAYBOOKS = sorted(str(p.relative_to(ANSIBLE)) for p in (ANSIBLE / "playbooks").glob("*.yml"))
BIN = Path(sys.executable).parent
TIMEOUT = 120


def ansible_bin(name: str) -> str:
    if importlib.util.find_spec("ansible") is None:
        pytest.skip(f"`{name}` did not run: ansible-core is not installed in this Python (pip install 'ansible-core>=2.19,<2.20')")
    path = BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"`{name}` did not run: no {name} script next to {sys.executable} or on PATH")
    return found


def run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"),
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "NO_COLOR": "1",
        "PY_COLORS": "0",
    }
    return subprocess.run(args, cwd=ANSIBLE, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False)


def residency_check(inventory: str, tmp_path: Path, extra: dict[str, object] | None = None) -> subprocess.CompletedProcess[str]:
    args = [ansible_bin("ansible-playbook"), "-i", f"inventories/{inventory}", "-c", "local", "playbooks/residency_check.yml"]
    if extra:
        args += ["-e", json.dumps(extra)]
    return run(args, tmp_path)


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_syntax_check_every_playbook(inventory: str, tmp_path: Path) -> None:
    result = run([ansible_bin("ansible-playbook"), "-i", f"inventories/{inventory}", "--syntax-check", *PLAYBOOKS], tmp_path)
    assert result.returncode == 0, f"--syntax-check with inventories/{inventory}:\n{result.stdout}{result.stderr}"
    for playbook in PLAYBOOKS:
        assert f"playbook: {playbook}" in result.stdout


def test_ansible_lint_offline(tmp_path: Path) -> None:
    if importlib.util.find_spec("ansiblelint") is None:
        pytest.skip("`ansible-lint --offline` did not run: ansible-lint is not installed (pip install ansible-lint)")
    result = run([ansible_bin("ansible-lint"), "--offline", "--nocolor", "-f", "pep8"], tmp_path)
    assert result.returncode == 0, f"ansible-lint --offline in ansible/:\n{result.stdout}{result.stderr}"


def test_residency_guard_reads_the_country_table_from_regions(tmp_path: Path) -> None:
    """No copy of the table in the role: the guard's rows are regions/<code>/infra.json, as Terraform's are."""
    role = "\n".join(p.read_text() for p in (ANSIBLE / "roles/residency_guard").rglob("*.yml"))
    for country in load_countries().values():
        for zone in country.zones:
            assert zone not in role, f"roles/residency_guard names {zone}: the table belongs in regions/{country.code}/infra.json"
    playbook = tmp_path / "table.yml"
    playbook.write_text(
        json.dumps([{"hosts": "localhost", "gather_facts": False, "roles": ["residency_guard"],
                     "post_tasks": [{"ansible.builtin.copy": {"content": "{{ residency_guard_countries | to_json }}",
                                                              "dest": str(tmp_path / "table.json"), "mode": "0600"}}]}])
    )  # fmt: skip
    regions = REPO / "regions"
    result = run(
        [ansible_bin("ansible-playbook"), "-i", "inventories/local", str(playbook), "-e", f"medfed_regions_dir={regions}"], tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    table = json.loads((tmp_path / "table.json").read_text())
    expected = {code: json.loads((regions / code / "infra.json").read_text()) for code in load_countries()}
    assert table == expected


def test_an_inventory_per_region() -> None:
    regions = sorted(p.parent.name for p in (REPO / "regions").glob("*/region.toml"))
    assert [f"{code}-prod" for code in regions] == PROD_INVENTORIES
    for code in regions:
        group_vars = yaml.safe_load((ANSIBLE / f"inventories/{code}-prod/group_vars/all.yml").read_text())
        assert group_vars["medfed_country"] == code
        assert group_vars["medfed_vault_id"] == code
        hosts = yaml.safe_load((ANSIBLE / f"inventories/{code}-prod/hosts.yml").read_text())
        assert set(hosts["all"]["children"]) >= {"app", "workers", "database", "objectstore", "broker"}


def test_site_check_diff_against_the_local_inventory(tmp_path: Path) -> None:
    """`--check --diff` of site.yml (process mode, a fresh prefix): every play runs, nothing is written or started."""
    from tests.infra.rehearsal import Node, build_wheel, hatchling_python

    if hatchling_python() is None:
        pytest.skip("site.yml --check did not run: no hatchling to build the wheel offline (`make tools` installs it into .venv-tools)")
    wheel = build_wheel(REPO, tmp_path / "build")
    (tmp_path / "node").mkdir()
    node = Node.create(tmp_path / "node")
    result = node.playbook("site.yml", wheel, "--check", "--diff", "-e", "app_run_migrations=true", timeout=TIMEOUT)
    assert result.returncode == 0, f"site.yml --check --diff:\n{result.stdout[-6000:]}{result.stderr[-2000:]}"
    assert "failed=0" in result.stdout
    for play in ("Residency first", "Base", "Database", "Object store", "Broker", "App and workers", "Celery workers and beat"):
        assert f"PLAY [{play}" in result.stdout, play
    assert f'"path": "{node.prefix}/etc/medfed"' in result.stdout, "the diff shows the node's folders under the prefix"
    assert list(node.prefix.iterdir()) == [], "check mode wrote nothing"
    assert node.pids() == {}


def test_minio_refuses_to_run_without_a_pinned_checksum(tmp_path: Path) -> None:
    playbook = tmp_path / "minio.yml"
    playbook.write_text(
        json.dumps([{"hosts": "localhost", "gather_facts": False,
                     "tasks": [{"ansible.builtin.include_role": {"name": "minio", "tasks_from": "system"}}]}])
    )  # fmt: skip
    for extra, expected in (
        ({}, "kz: minio_checksum is not set: set it in inventories/kz-local/group_vars/all.yml to the sha256 of"),
        ({"minio_checksum": "sha256:CHANGE-ME"}, "kz: minio_checksum is not sha256:<64 hex digits>: set it in"),
    ):
        result = run(
            [ansible_bin("ansible-playbook"), "-i", "inventories/local", str(playbook), "--check", "-e", json.dumps(extra)], tmp_path
        )
        assert result.returncode != 0
        assert expected in result.stdout, result.stdout
        assert "MinIO group" not in result.stdout, "nothing ran after the failed assertion"
    defaults = yaml.safe_load((ANSIBLE / "roles/minio/defaults/main.yml").read_text())
    assert "minio_checksum" not in defaults


def test_vaults_are_encrypted_with_the_country_id() -> None:
    for inventory in PROD_INVENTORIES:
        code = inventory.split("-")[0]
        example = ANSIBLE / f"inventories/{inventory}/vault.yml.example"
        assert example.read_text().startswith("# TEMPLATE ONLY - NOT A VAULT, NO REAL SECRETS.")
        for vault in (ANSIBLE / "inventories" / inventory).rglob("vault.yml"):
            header = vault.read_text().splitlines()[0]
            assert header.startswith(f"$ANSIBLE_VAULT;1.2;AES256;{code}"), f"{vault}: not encrypted with vault id {code}: {header[:40]}"


def test_node_env_sets_every_required_variable() -> None:
    env = yaml.safe_load((ANSIBLE / "roles/app/defaults/main.yml").read_text())["app_node_env"]
    required = {
        "MEDFED_REGION",
        "MEDFED_DATABASE_URL",
        "MEDFED_SYNC_DATABASE_URL",
        "MEDFED_S3_ENDPOINT",
        "MEDFED_S3_ACCESS_KEY",
        "MEDFED_S3_SECRET_KEY",
        "MEDFED_BROKER_URL",
        "MEDFED_SIGNING_KEY_FILE",
        "MEDFED_DATA_KEY",
    }
    assert required <= set(env)


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_residency_check_passes(inventory: str, tmp_path: Path) -> None:
    result = residency_check(inventory, tmp_path)
    assert result.returncode == 0, f"residency_check.yml with inventories/{inventory}:\n{result.stdout}{result.stderr}"
    assert "failed=0" in result.stdout


KZ = "(allowed host suffixes: yandexcloud.kz, ps.kz, medfed.kz)"
PLANTED = {
    "kz_object_store_on_russian_host": (
        {"medfed_object_store_endpoint": "https://storage.yandexcloud.net"},
        f"kz: medfed_object_store_endpoint = https://storage.yandexcloud.net points to storage.yandexcloud.net, outside Kazakhstan {KZ}",
    ),
    "backup_target_abroad": (
        {"medfed_backup_target": "s3://backup.medfed.ru/medfed-kz-prod-backups"},
        f"kz: medfed_backup_target = s3://backup.medfed.ru/medfed-kz-prod-backups points to backup.medfed.ru, outside Kazakhstan {KZ}",
    ),
    "log_sink_abroad": (
        {"medfed_log_sink": "tcp://logs.medfed.uz:6514"},
        f"kz: medfed_log_sink = tcp://logs.medfed.uz:6514 points to logs.medfed.uz, outside Kazakhstan {KZ}",
    ),
    "backup_zone_in_another_country": (
        {"medfed_backup_zones": ["ru-central1-d"]},
        "kz: medfed_backup_zones contains ru-central1-d, not a zone of Kazakhstan (allowed: kz1-a, kz-ala-1a, kz-ala-1b, kz-ast-1a)",
    ),
    "loopback_outside_the_local_inventory": (
        {"residency_guard_allow_loopback": False},
        f"kz: medfed_public_url = http://127.0.0.1:8000 points to 127.0.0.1, outside Kazakhstan {KZ}",
    ),
    "replication": (
        {"medfed_replication_targets": ["https://s3.medfed.ru"]},
        "kz: medfed_replication_targets = https://s3.medfed.ru: no bucket or database of Kazakhstan may replicate anywhere",
    ),
}


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_residency_check_fails_on_planted_violation(case: str, tmp_path: Path) -> None:
    extra, message = PLANTED[case]
    result = residency_check("local", tmp_path, extra)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"{case}: residency_check.yml passed:\n{output}"
    assert f'"msg": "{message}"' in output, f"{case}: expected {message!r} in:\n{output}"
