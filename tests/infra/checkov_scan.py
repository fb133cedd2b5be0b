"""One checkov run over many Terraform roots, with MedFed's custom rules (terraform/checkov), results as messages.

checkov builds one graph per `-d` folder and keeps state between several `-d` in one process, so the roots
to scan (the real ones and the planted fixtures) are copied side by side under one temporary
`terraform/envs/` (planted fixtures as `planted-<case>`, their module sources pointed at the copied
modules) and scanned in one run (about 15 s instead of about 8 s per folder). Each failure becomes one line
naming the repository file, the resource and the country:

    tests/infra/planted/bucket_replication/main.tf: yandex_storage_bucket.personal_mirror: ru: replication
    setting replication_configuration is forbidden: data of Russia must not be copied out [CKV_MEDFED_3]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.infra.residency import REPO

TOOLS_BIN = REPO / ".venv-tools" / "bin"
CHECKOV_BIN = TOOLS_BIN / "checkov"
CHECKS = [f"CKV_MEDFED_{n}" for n in range(1, 7)]
PLANTED_PREFIX = "planted-"


@dataclass
class Scan:
    messages: list[str]
    passed: dict[str, set[str]] = field(default_factory=dict)
    """check id -> '<repository file>: <resource>' of every entity that passed it."""


def build_tree(tmp: Path, repo: Path, roots: list[Path], planted: list[Path]) -> tuple[Path, dict[Path, Path]]:
    """The scan folder (tmp/terraform/envs) and a map from copied folders back to the originals."""
    back: dict[Path, Path] = {}
    shutil.copytree(repo / "terraform" / "modules", tmp / "terraform" / "modules")
    back[tmp / "terraform" / "modules"] = repo / "terraform" / "modules"
    envs = tmp / "terraform" / "envs"
    for root in roots:
        shutil.copytree(root, envs / root.name)
        back[envs / root.name] = root
    for case in planted:
        target = envs / f"{PLANTED_PREFIX}{case.name}"
        shutil.copytree(case, target)
        for tf in target.glob("*.tf"):
            tf.write_text(tf.read_text().replace('"../../../../terraform/modules/', '"../../modules/'))
        back[target] = case
    return envs, back


def original(path: str, back: dict[Path, Path], repo: Path) -> str:
    p = Path(path)
    for copy, source in back.items():
        if p.is_relative_to(copy):
            p = source / p.relative_to(copy)
            break
    try:
        return p.relative_to(repo).as_posix()
    except ValueError:
        return p.as_posix()


def parse_reports(stdout: str) -> list[dict[str, Any]]:
    """checkov prints one JSON document per framework (a list for several, a dict for one)."""
    data = json.loads(stdout)
    return data if isinstance(data, list) else [data]


def run_checkov(tmp: Path, roots: list[Path], planted: list[Path], repo: Path = REPO) -> Scan:

    envs, back = build_tree(tmp, repo, roots, planted)
    env = {
        **os.environ,
        "MEDFED_REGIONS_DIR": str(repo / "regions"),
        "MEDFED_CHECKOV_BASE": str(envs),
        "BC_SKIP_MAPPING": "TRUE",
        "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
        "LOG_LEVEL": "WARNING",
    }
    args = [
        str(CHECKOV_BIN), "-d", ".", "--framework", "terraform", "--skip-download", "--compact",
        "--external-checks-dir", str(repo / "terraform" / "checkov"), "--check", ",".join(CHECKS), "-o", "json",
    ]  # fmt: skip
    result = subprocess.run(args, cwd=envs, env=env, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode not in (0, 1) or not result.stdout.strip():
        raise AssertionError(f"checkov did not run (exit {result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    scan = Scan(messages=[])
    for report in parse_reports(result.stdout):
        results = report.get("results", {})
        for failed in results.get("failed_checks", []):
            file = original(failed["file_abs_path"], back, repo)
            via = f" (called from {original(failed['caller_file_path'], back, repo)})" if failed.get("caller_file_path") else ""
            for detail in failed.get("details") or ["?: (no detail)"]:
                scan.messages.append(f"{file}: {failed['resource']}: {detail} [{failed['check_id']}]{via}")
        for passed in results.get("passed_checks", []):
            scan.passed.setdefault(passed["check_id"], set()).add(f"{original(passed['file_abs_path'], back, repo)}: {passed['resource']}")
    scan.messages.sort()
    return scan
