"""The terraform binary's own offline checks: fmt over terraform/, and `terraform test` on the
provider-free region-policy module. Skipped, with the reason, where no terraform binary is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.infra.residency import REPO, TERRAFORM

TERRAFORM_BIN = shutil.which("terraform")
REGION_POLICY = TERRAFORM / "modules" / "region-policy"


def run_terraform(args: list[str], cwd: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    if TERRAFORM_BIN is None:
        pytest.skip(f"`terraform {' '.join(args)}` did not run: no terraform binary on PATH")
    env = {
        **os.environ,
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "TF_CLI_CONFIG_FILE": os.devnull,  # no ~/.terraformrc needed, no mirrors consulted
        "TF_DATA_DIR": str(tmp_path / "tf-data"),  # nothing written into the repository
        "CHECKPOINT_DISABLE": "1",
    }
    return subprocess.run([TERRAFORM_BIN, *args, "-no-color"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_terraform_fmt(tmp_path: Path) -> None:
    result = run_terraform(["fmt", "-check", "-recursive", "-diff", "terraform/"], REPO, tmp_path)
    assert result.returncode == 0, f"terraform fmt -check -recursive terraform/ failed:\n{result.stdout}{result.stderr}"


def test_terraform_fmt_planted_fixtures(tmp_path: Path) -> None:
    result = run_terraform(["fmt", "-check", "-recursive", "tests/infra/planted/"], REPO, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_region_policy_terraform_test(tmp_path: Path) -> None:
    result = run_terraform(["test"], REGION_POLICY, tmp_path)
    assert result.returncode == 0, f"terraform test in {REGION_POLICY}:\n{result.stdout}{result.stderr}"
    assert "0 failed" in result.stdout
