"""The rollout rehearsal: ansible/playbooks/site.yml and rolling_upgrade.yml run for real against this machine.

The local inventory runs the roles in process mode (medfed_service_manager: process) under a throwaway
prefix: the node's venv from the built wheel, PostgreSQL, SeaweedFS and Redis from the wheel's own
dependencies, the node and its worker as processes whose pids the playbook records under
<prefix>/run/medfed/*.pid. `stop_all` stops every one of them by process group.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from medplat.devfed.processes import free_ports
from tests.infra.checkov_scan import TOOLS_BIN
from tests.infra.residency import REPO

ANSIBLE = REPO / "ansible"
VERSION_FILE = Path("platform/src/medplat/__init__.py")


def hatchling_python() -> str | None:
    """An interpreter that has hatchling (the build backend), so the wheel builds without an index."""
    for python in (Path(sys.executable), TOOLS_BIN / "python"):
        if python.exists() and subprocess.run([str(python), "-c", "import hatchling"], capture_output=True, check=False).returncode == 0:
            return str(python)
    return None


def build_wheel(source: Path, out: Path, local_version: str | None = None) -> Path:
    """`pip wheel --no-deps --no-build-isolation` of a copy of the project (with a bumped local version if asked)."""
    python = hatchling_python()
    if python is None:
        raise FileNotFoundError("no interpreter with hatchling (`make tools` installs it into .venv-tools)")
    tree = out / f"src-{local_version or 'base'}"
    shutil.copytree(
        source, tree, ignore=shutil.ignore_patterns(".git", ".venv*", "node_modules", "__pycache__", ".*_cache", "dist", "bench")
    )
    if local_version:
        init = tree / VERSION_FILE
        text = init.read_text()
        init.write_text(re.sub(r'__version__ = "([^"+]+)[^"]*"', rf'__version__ = "\1+{local_version}"', text, count=1))
    dist = out / "dist"
    result = subprocess.run(
        [python, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist), str(tree)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"wheel build failed:\n{result.stdout}{result.stderr}")
    shutil.rmtree(tree)
    (wheel,) = [w for w in dist.glob("medfed-*.whl") if (local_version or "") in w.name and ("+" in w.name) == bool(local_version)]
    return wheel


def vault(path: Path) -> Path:
    """Throwaway secrets for the rehearsal's node, in the shape of inventories/<code>-prod/vault.yml."""
    key = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    values = {
        "vault_postgresql_superuser_password": secrets.token_hex(16),
        "vault_medfed_db_password": secrets.token_hex(16),
        "vault_medfed_sync_db_password": secrets.token_hex(16),
        "vault_medfed_s3_access_key": "medfed" + secrets.token_hex(6),
        "vault_medfed_s3_secret_key": secrets.token_hex(20),
        "vault_broker_password": secrets.token_hex(16),
        "vault_medfed_data_key": base64.b64encode(os.urandom(32)).decode(),
        "vault_medfed_signing_key_pem": key,
    }
    path.write_text(json.dumps(values))
    path.chmod(0o600)
    return path


def clean_environ() -> dict[str, str]:
    """This process's environment without PYTHONPATH: the node must import the installed wheel, not a source tree."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@dataclass
class Node:
    prefix: Path
    vault: Path
    ports: dict[str, int]
    tmp: Path

    @classmethod
    def create(cls, tmp: Path) -> Node:
        prefix = tmp / "prefix"
        prefix.mkdir()
        names = ["app", "postgres", "broker", "s3", "master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3_grpc"]
        return cls(prefix=prefix, vault=vault(tmp / "vault.json"), ports=dict(zip(names, free_ports(len(names)), strict=True)), tmp=tmp)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['app']}"

    def extra_vars(self, wheel: Path) -> dict[str, Any]:
        p = self.ports
        return {
            "medfed_prefix": str(self.prefix),
            "app_wheel": str(wheel),
            "app_venv_inherit": sys.prefix,
            "app_port": p["app"],
            "postgresql_port": p["postgres"],
            "broker_port": p["broker"],
            "medfed_public_url": self.url,
            "medfed_object_store_endpoint": f"http://127.0.0.1:{p['s3']}",
            "minio_process_ports": {k: p[k] for k in ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3_grpc")},
        }

    def playbook(self, playbook: str, wheel: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
        env = {
            **clean_environ(),
            "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"),
            "ANSIBLE_HOME": str(self.tmp / "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": str(self.tmp / "ansible-tmp"),
            "ANSIBLE_NOCOLOR": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
        argv = [
            str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventories/local", f"playbooks/{playbook}",
            "-e", f"@{self.vault}", "-e", json.dumps(self.extra_vars(wheel)), *args,
        ]  # fmt: skip
        return subprocess.run(argv, cwd=ANSIBLE, env=env, capture_output=True, text=True, timeout=timeout, check=False)

    def get(self, path: str) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def pids(self) -> dict[str, int]:
        return {p.stem: int(p.read_text().strip()) for p in sorted((self.prefix / "run" / "medfed").glob("*.pid")) if p.read_text().strip()}

    def stop_all(self, timeout: float = 30) -> list[str]:
        """SIGTERM to the process group of every recorded pid (SIGINT for PostgreSQL), then SIGKILL; returns what was still alive."""
        pids = self.pids()
        for name, pid in pids.items():
            _signal_group(pid, signal.SIGINT if name == "postgresql" else signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(alive(pid) for pid in pids.values()):
            time.sleep(0.1)
        survivors = [name for name, pid in pids.items() if alive(pid)]
        for name in survivors:
            _signal_group(pids[name], signal.SIGKILL)
        return survivors


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def alive(pid: int) -> bool:
    """Running and not a zombie (a stopped process nobody reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def group_members(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members
