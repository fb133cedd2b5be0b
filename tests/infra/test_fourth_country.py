"""A fourth country is a new regions/<code>/, a new Terraform root and a new Ansible inventory, nothing else.

In a temporary copy of regions/, terraform/ and ansible/ exactly those three are added for a made-up
country `xx` (docs/ops/adding-a-country.md does the same by hand), and every infrastructure check then
knows it: the python-hcl2 residency checks, the region-policy module (terraform plan, where a terraform
binary is present), the checkov rules (where checkov is installed) and the Ansible residency guard, each
passing the new root or inventory and failing a planted violation with a message naming xx.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medplat.config import known_regions, load_region
from tests.infra.checkov_scan import CHECKOV_BIN, run_checkov
from tests.infra.residency import REPO, check_root, load_countries, roots

CODE = "xx"
INFRA = {
    "about": "A made-up fourth country for tests/infra/test_fourth_country.py.",
    "name": "Examplestan",
    "zones": ["xx-dyu-1a", "xx-dyu-1b"],
    "backup_zones": ["xx-dyu-1a", "xx-dyu-1b"],
    "regions": ["xx-dyu"],
    "host_suffixes": ["cloud.example.xx", "medfed.xx"],
}
REPLACEMENTS = [  # uz -> xx, in the copied uz root and inventory
    ("uz-tas-1a", "xx-dyu-1a"), ("uz-tas-1b", "xx-dyu-1b"), ("uz-sam-1a", "xx-dyu-1b"), ("uz-tas", "xx-dyu"),
    ("uzcloud.uz", "cloud.example.xx"), ("medfed.uz", "medfed.xx"), ("medfed-uz-", "medfed-xx-"), ("Uzbekistan", "Examplestan"),
    ('"uz"', '"xx"'), (": uz", ": xx"), ("uz-prod", "xx-prod"), ("state stays in uz", "state stays in xx"), ("uz node", "xx node"),
    ("--vault-id uz", "--vault-id xx"), ("uz.", "xx."), ("id \"uz\"", "id \"xx\""),
]  # fmt: skip


def copy_with(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst)
    for path in dst.rglob("*"):
        if path.is_file():
            text = path.read_text()
            for old, new in REPLACEMENTS:
                text = text.replace(old, new)
            path.write_text(text)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's infrastructure folders plus xx's three things, and nothing else changed."""
    base = tmp_path_factory.mktemp("fourth")
    for folder in ("regions", "terraform", "ansible"):
        shutil.copytree(REPO / folder, base / folder, ignore=shutil.ignore_patterns(".terraform", "__pycache__"))
    # 1. regions/xx/: the app's files (as for any region) and the infrastructure facts.
    region = base / "regions" / CODE
    region.mkdir()
    uz = REPO / "regions" / "uz"
    (region / "region.toml").write_text(
        (uz / "region.toml").read_text().replace('code = "uz"', 'code = "xx"').replace('name = "Uzbekistan"', 'name = "Examplestan"')
    )
    (region / "policy.toml").write_text((uz / "policy.toml").read_text().replace('region = "uz"', 'region = "xx"'))
    (region / "infra.json").write_text(json.dumps(INFRA, indent=2) + "\n")
    # 2. terraform/envs/xx-prod/, from uz-prod.
    copy_with(REPO / "terraform" / "envs" / "uz-prod", base / "terraform" / "envs" / "xx-prod")
    # 3. ansible/inventories/xx-prod/, from uz-prod.
    copy_with(REPO / "ansible" / "inventories" / "uz-prod", base / "ansible" / "inventories" / "xx-prod")
    return base


def bad_root(world: Path, tmp: Path) -> Path:
    """xx-prod with a backup zone in Uzbekistan."""
    root = tmp / "xx_backup_in_uz"
    shutil.copytree(world / "terraform" / "envs" / "xx-prod", root)
    main = root / "main.tf"
    main.write_text(main.read_text().replace('backup_zones           = ["xx-dyu-1b"]', 'backup_zones           = ["uz-sam-1a"]'))
    assert "uz-sam-1a" in main.read_text()
    return root


def test_only_the_three_things_were_added(world: Path) -> None:
    added = sorted(
        str(p.relative_to(world))
        for p in world.rglob("*")
        if p.is_file() and not (REPO / p.relative_to(world)).exists() and "__pycache__" not in p.parts
    )
    assert {a.split("/")[0] + "/" + a.split("/")[1] for a in added if a.startswith("regions/")} == {"regions/xx"}
    assert {"/".join(a.split("/")[:3]) for a in added if a.startswith("terraform/")} == {"terraform/envs/xx-prod"}
    assert {"/".join(a.split("/")[:3]) for a in added if a.startswith("ansible/")} == {"ansible/inventories/xx-prod"}
    for existing in world.rglob("*"):
        original = REPO / existing.relative_to(world)
        if existing.is_file() and original.exists() and "__pycache__" not in existing.parts:
            assert existing.read_bytes() == original.read_bytes(), f"{existing.relative_to(world)} was changed"


def test_the_node_knows_the_region(world: Path) -> None:
    assert CODE in known_regions(world / "regions")
    assert load_region(CODE, world / "regions").name == "Examplestan"


def test_hcl2_residency_checks(world: Path, tmp_path: Path) -> None:
    countries = load_countries(world / "regions")
    assert countries[CODE].name == "Examplestan"
    assert [r.name for r in roots(world / "terraform" / "envs")][-1] == "xx-prod"
    assert check_root(world / "terraform" / "envs" / "xx-prod", countries) == []
    assert check_root(bad_root(world, tmp_path), countries) == [
        f"{tmp_path.as_posix()}/xx_backup_in_uz/main.tf: module.node: xx: backup zone uz-sam-1a is outside Examplestan"
        " (allowed: xx-dyu-1a, xx-dyu-1b)",
    ]


def terraform(args: list[str], cwd: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip("`terraform plan` of region-policy did not run: no terraform binary on PATH")
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "TF_CLI_CONFIG_FILE": os.devnull,
           "TF_DATA_DIR": str(tmp / "tf-data"), "CHECKPOINT_DISABLE": "1"}  # fmt: skip
    return subprocess.run([binary, *args, "-no-color"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_region_policy_module_reads_the_new_country(world: Path, tmp_path: Path) -> None:
    module = world / "terraform" / "modules" / "region-policy"
    assert terraform(["init", "-backend=false"], module, tmp_path).returncode == 0
    good = {
        "country": CODE, "zones": ["xx-dyu-1a"], "backup_zones": ["xx-dyu-1b"], "region": "xx-dyu",
        "endpoint_hosts": {"auth": "https://auth.cloud.example.xx:5000/v3"},
        "state_backend_endpoint": "https://s3.cloud.example.xx", "log_sink_host": "logs.medfed.xx",
    }  # fmt: skip
    (tmp_path / "good.tfvars.json").write_text(json.dumps(good))
    plan = terraform(["plan", f"-var-file={tmp_path / 'good.tfvars.json'}"], module, tmp_path)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    (tmp_path / "bad.tfvars.json").write_text(json.dumps({**good, "backup_zones": ["uz-sam-1a"]}))
    plan = terraform(["plan", f"-var-file={tmp_path / 'bad.tfvars.json'}"], module, tmp_path)
    assert plan.returncode != 0
    assert "xx: backup zone(s) uz-sam-1a not allowed for Examplestan; allowed: xx-dyu-1a, xx-dyu-1b." in " ".join(plan.stderr.split())
    tests = terraform(["test"], module, tmp_path)
    assert tests.returncode == 0 and "0 failed" in tests.stdout, tests.stdout + tests.stderr


def test_checkov_rules_know_the_new_country(world: Path, tmp_path: Path) -> None:
    if not CHECKOV_BIN.exists():
        pytest.skip(f"checkov did not run: {CHECKOV_BIN.relative_to(REPO)} is not installed (`make tools` installs it from PyPI)")
    shutil.copytree(REPO / "terraform" / "checkov", world / "terraform" / "checkov", dirs_exist_ok=True)
    scan = run_checkov(tmp_path / "scan", [world / "terraform" / "envs" / "xx-prod"], [bad_root(world, tmp_path)], repo=world)
    bad = f"{tmp_path.as_posix()}/xx_backup_in_uz/main.tf"
    assert scan.messages == [
        f"{bad}: node: xx: backup zone uz-sam-1a (backup_zones) is outside Examplestan (allowed: xx-dyu-1a, xx-dyu-1b) [CKV_MEDFED_1]"
    ]
    assert "terraform/envs/xx-prod/main.tf: node" in scan.passed["CKV_MEDFED_6"]


def test_ansible_residency_guard_knows_the_new_country(world: Path, tmp_path: Path) -> None:
    pytest.importorskip("ansible", reason="residency_check.yml did not run: ansible-core is not installed")
    ansible = world / "ansible"
    env = {**os.environ, "ANSIBLE_CONFIG": str(ansible / "ansible.cfg"), "ANSIBLE_HOME": str(tmp_path / "ah"), "ANSIBLE_NOCOLOR": "1"}
    argv = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        "inventories/xx-prod",
        "-c",
        "local",
        "playbooks/residency_check.yml",
    ]
    good = subprocess.run(argv, cwd=ansible, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert good.returncode == 0, good.stdout + good.stderr
    bad = subprocess.run([*argv, "-e", "medfed_log_sink=tcp://logs.medfed.uz:6514"], cwd=ansible, env=env,
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert bad.returncode != 0
    expected = (
        "xx: medfed_log_sink = tcp://logs.medfed.uz:6514 points to logs.medfed.uz, outside Examplestan"
        " (allowed host suffixes: cloud.example.xx, medfed.xx)"
    )
    assert f'"msg": "{expected}"' in bad.stdout
