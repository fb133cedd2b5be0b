"""`medfed up`: three regions, each with its own PostgreSQL, object store, broker, node and worker.

Started the way a developer starts it, as a separate process; stopped with SIGTERM (and once with SIGKILL);
after each stop no process of any child's process group is left. Every node serves HTTPS only, with a
certificate of the federation's own CA; every call here verifies it with `.medfed/ca.pem`.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from medplat.devfed.launcher import PORT_OFFSETS, PORTS_PER_REGION
from medplat.devfed.processes import Child, free_port_block, wait_until
from medsync.trust import load_chain
from tests.integration.test_accounts import KZ_DOCTOR

pytestmark = pytest.mark.federation
REGIONS = {"ru", "kz", "uz"}
DOCTOR = {**KZ_DOCTOR, "full_name": "Aliya Test", "phone": "+7 701 555 00 11", "email": "aliya@clinic.kz"}


def free_base_port() -> int:
    return free_port_block(PORTS_PER_REGION * len(REGIONS), step=PORTS_PER_REGION)


class Launcher:
    def __init__(self, state_dir: Path, base_port: int) -> None:
        self.state_dir = state_dir
        self.base_port = base_port
        self.runs = 0
        self.child: Child | None = None

    def start(self, *extra: str) -> Child:
        self.runs += 1
        argv = [sys.executable, "-m", "medplat.cli", "up", "--state-dir", str(self.state_dir), "--base-port", str(self.base_port), *extra]
        self.child = Child(
            "medfed up", argv, self.state_dir.parent / f"up-{self.runs}.log", env=dict(os.environ), cwd=self.state_dir.parent
        )
        return self.child.start()

    @property
    def federation_file(self) -> Path:
        return self.state_dir / "federation.json"

    @property
    def tls(self) -> ssl.SSLContext:
        """Verification with the federation's CA (read anew: --fresh makes a new one)."""
        return ssl.create_default_context(cafile=self.state_dir / "ca.pem")

    def wait_ready(self) -> dict[str, Any]:
        assert self.child is not None
        child = self.child

        def ready() -> bool:
            assert child.alive(), f"medfed up exited early:\n{child.log_tail(30)}"
            return self.federation_file.exists()

        wait_until(ready, timeout=180, interval=0.25, what="federation.json")
        return dict(json.loads(self.federation_file.read_text()))

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.child is not None and self.child.popen is not None
        os.kill(self.child.pid, sig)
        return self.child.popen.wait(60)


def groups_left(document: dict[str, Any]) -> list[str]:
    """Every child ran in a process group of its own (its pid); list the groups that still have members."""
    left = []
    for code, region in document["regions"].items():
        for name, pid in region["pids"].items():
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                continue
            left.append(f"{code} {name} (pgid {pid})")
    return left


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    launcher = Launcher(tmp_path_factory.mktemp("federation") / ".medfed", free_base_port())
    yield launcher
    if launcher.child is not None:
        launcher.child.stop()


def test_up_starts_three_regions_with_three_separate_sets_of_stores(launcher: Launcher) -> None:
    launcher.start("--fresh")
    document = launcher.wait_ready()
    assert set(document["regions"]) == REGIONS
    identities = {}
    for code, region in document["regions"].items():
        health = httpx.get(f"{region['node_url']}/health", timeout=10, verify=launcher.tls).json()
        assert health["region"] == code
        assert health["status"] == "ok", health
        deps = health["dependencies"]
        identities[code] = (
            deps["database"]["identity"]["system_identifier"],
            deps["object_store"]["identity"]["endpoint"],
            deps["broker"]["identity"]["url"],
        )
        assert deps["object_store"]["identity"]["endpoint"] == region["object_store_endpoint"]
        assert deps["object_store"]["identity"]["buckets"] == {"personal": f"medfed-{code}-personal", "shared": f"medfed-{code}-shared"}
        assert httpx.get(f"{region['node_url']}/ready", timeout=10, verify=launcher.tls).status_code == 200
    for position in range(3):
        assert len({identity[position] for identity in identities.values()}) == 3, identities
    log = (launcher.state_dir.parent / "up-1.log").read_text()
    assert "federation ready in" in log
    for region in document["regions"].values():
        assert region["node_url"] in log
        assert region["database_url"].split("@")[1] in log
        password = region["database_url"].split(":")[2].split("@")[0]
        assert password not in log


def plain_http_answer(port: int) -> bytes:
    """What a plain-HTTP request to `port` gets back before the connection ends."""
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        with contextlib.suppress(ConnectionResetError):
            while chunk := conn.recv(4096):
                answer += chunk
    return answer


def verification_error(exc: BaseException) -> ssl.SSLCertVerificationError:
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
        cause = cause.__cause__ or cause.__context__
    assert cause is not None, f"no certificate verification error behind {exc!r}"
    return cause


def test_every_node_serves_https_only_verified_with_the_federation_ca(launcher: Launcher) -> None:
    document = json.loads(launcher.federation_file.read_text())
    ca_file = launcher.state_dir / "ca.pem"
    assert document["ca_file"] == str(ca_file)
    assert (launcher.state_dir / "ca-key.pem").stat().st_mode & 0o777 == 0o600
    urls = {code: region["node_url"] for code, region in document["regions"].items()}
    for code, region in document["regions"].items():
        port = launcher.base_port + sorted(REGIONS).index(code) * PORTS_PER_REGION
        assert region["node_url"] == f"https://127.0.0.1:{port}"
        env = dict(line.split("=", 1) for line in Path(region["env_file"]).read_text().splitlines())
        assert env["MEDFED_PUBLIC_URL"] == region["node_url"]
        assert env["MEDFED_PEERS"] == ",".join(f"{c}={u}" for c, u in sorted(urls.items()) if c != code)
        assert env["MEDFED_FEDERATION_CA_FILE"] == str(ca_file)
        for key in ("MEDFED_TLS_KEY_FILE", "MEDFED_SIGNING_KEY_FILE"):
            assert Path(env[key]).stat().st_mode & 0o777 == 0o600, key
        verified = httpx.get(f"{region['node_url']}/health", timeout=10, verify=ssl.create_default_context(cafile=ca_file))
        assert (verified.status_code, verified.json()["region"]) == (200, code)
        with pytest.raises(httpx.ConnectError) as untrusted:
            httpx.get(f"{region['node_url']}/health", timeout=10, verify=ssl.create_default_context())
        assert verification_error(untrusted.value).verify_code == 20  # unable to get local issuer certificate
        assert plain_http_answer(port) == b""
    assert {
        code: node.url for code, node in load_chain(launcher.state_dir / "trust", now=datetime.datetime.now(datetime.UTC)).nodes.items()
    } == urls


def test_workers_report_in_on_every_node(launcher: Launcher) -> None:
    document = json.loads(launcher.federation_file.read_text())

    def all_reported() -> bool:
        states = [
            httpx.get(f"{r['node_url']}/health", timeout=10, verify=launcher.tls).json()["dependencies"]["workers"]["status"]
            for r in document["regions"].values()
        ]
        return states == ["ok"] * 3

    wait_until(all_reported, timeout=60, interval=1, what="a heartbeat from every region's worker")


def test_a_registration_lands_only_on_the_home_node(launcher: Launcher) -> None:
    document = json.loads(launcher.federation_file.read_text())
    kz, ru = document["regions"]["kz"]["node_url"], document["regions"]["ru"]["node_url"]
    created = httpx.post(f"{kz}/api/v1/doctors", json=DOCTOR, timeout=10, verify=launcher.tls)
    assert created.status_code == 201, created.text
    redirected = httpx.post(f"{ru}/api/v1/doctors", json=DOCTOR, timeout=10, follow_redirects=False, verify=launcher.tls)
    assert redirected.status_code == 307
    assert redirected.headers["location"] == f"{kz}/api/v1/doctors"


def test_sigterm_stops_every_process_of_the_federation(launcher: Launcher) -> None:
    document = json.loads(launcher.federation_file.read_text())
    assert launcher.stop(signal.SIGTERM) == 0
    assert groups_left(document) == []
    assert not launcher.federation_file.exists()
    assert "all processes stopped." in (launcher.state_dir.parent / "up-1.log").read_text()


def tls_files(launcher: Launcher) -> list[bytes]:
    """The CA's certificate and key and every node's certificate and key, as they are on disk."""
    names = ["ca.pem", "ca-key.pem", *(f"{code}/tls/{name}" for code in sorted(REGIONS) for name in ("node.pem", "node-key.pem"))]
    return [(launcher.state_dir / name).read_bytes() for name in names]


def test_state_survives_a_restart(launcher: Launcher) -> None:
    before = tls_files(launcher)
    launcher.start()
    document = launcher.wait_ready()
    again = httpx.post(f"{document['regions']['kz']['node_url']}/api/v1/doctors", json=DOCTOR, timeout=10, verify=launcher.tls)
    assert again.status_code == 409, "the doctor registered before the restart must still be there"
    assert tls_files(launcher) == before, "the CA and the node certificates are kept across a restart"


def medfed_cli(launcher: Launcher, *args: str) -> subprocess.CompletedProcess[str]:
    """`medfed` as a user runs it next to the federation's state folder (no MEDFED_* of the test session)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDFED_")}
    env["MEDFED_STATE_DIR"] = str(launcher.state_dir)
    return subprocess.run([sys.executable, "-m", "medplat.cli", *args], capture_output=True, text=True, env=env, timeout=120, check=False)


def test_publish_show_retract_across_the_federation(launcher: Launcher, tmp_path: Path) -> None:
    """The issue's acceptance, as an operator types it, with the federation's own workers delivering."""
    body = tmp_path / "body.txt"
    body.write_text("Рекомендации по уходу за кожей зимой.")
    picture = tmp_path / "skin.png"
    picture.write_bytes(os.urandom(200_000))
    published = medfed_cli(launcher, "content", "publish", "--region", "ru", "--title", "Уход за кожей", "--body-file", str(body),
                           "--media", str(picture), "--to", "kz")  # fmt: skip
    assert published.returncode == 0, published.stderr
    item_id = published.stdout.strip()

    def shown(region: str) -> dict[str, Any]:
        result = medfed_cli(launcher, "content", "show", "--region", region, item_id, "--json")
        return json.loads(result.stdout) if result.returncode == 0 else {"error": result.stderr.strip()}

    wait_until(lambda: shown("kz").get("status") == "published", timeout=60, interval=0.5, what="the item on kz")
    on_kz = shown("kz")
    assert (on_kz["origin"], len(on_kz["media"])) == ("ru", 1)
    assert shown("uz") == {"error": "medfed: no content item with this id on this node"}
    retracted = medfed_cli(launcher, "content", "retract", "--region", "ru", item_id, "--from", "kz")
    assert retracted.returncode == 0, retracted.stderr
    wait_until(lambda: shown("kz").get("status") == "retracted", timeout=60, interval=0.5, what="the retraction on kz")
    assert shown("kz")["media"] == []
    status = json.loads(medfed_cli(launcher, "sync", "status", "--json").stdout)
    ru_to_kz = next(c for c in status["ru"]["outgoing"] if c["target"] == "kz")
    assert (ru_to_kz["lag"], ru_to_kz["queue_depth"], ru_to_kz["last_error"]) == (0, 0, None)


def test_a_second_federation_on_the_same_ports_is_refused_and_the_first_runs_on(launcher: Launcher, tmp_path: Path) -> None:
    document = json.loads(launcher.federation_file.read_text())
    argv = [sys.executable, "-m", "medplat.cli", "up", "--state-dir", str(tmp_path / "other"), "--base-port", str(launcher.base_port)]
    second = Child("second up", argv, tmp_path / "second.log", env=dict(os.environ)).start()
    assert second.popen is not None
    assert second.popen.wait(60) == 1
    output = second.log_path.read_text()
    assert f"medfed: port {launcher.base_port} (kz node) is already in use; stop what holds it or choose another --base-port" in output
    assert "Traceback" not in output
    assert len(groups_left(document)) == 15, "every process of the first federation is still running"
    assert httpx.get(f"{document['regions']['kz']['node_url']}/ready", timeout=10, verify=launcher.tls).status_code == 200


def test_a_killed_launcher_leaves_nothing_behind(launcher: Launcher) -> None:
    document = json.loads(launcher.federation_file.read_text())
    launcher.stop(signal.SIGKILL)
    wait_until(lambda: groups_left(document) == [], timeout=60, interval=0.5, what="children to die with their parent")


def test_fresh_wipes_the_state(launcher: Launcher) -> None:
    launcher.federation_file.unlink(missing_ok=True)
    before = tls_files(launcher)
    launcher.start("--fresh")
    document = launcher.wait_ready()
    after = tls_files(launcher)
    assert [old == new for old, new in zip(before, after, strict=True)] == [False] * len(before), "--fresh makes a new CA and certificates"
    created = httpx.post(f"{document['regions']['kz']['node_url']}/api/v1/doctors", json=DOCTOR, timeout=10, verify=launcher.tls)
    assert created.status_code == 201, created.text
    assert launcher.stop(signal.SIGINT) == 0
    assert groups_left(document) == []


def test_a_port_held_by_another_program_gives_a_clear_error(tmp_path: Path) -> None:
    base = free_base_port()
    with socket.socket() as holder:
        held = base + PORTS_PER_REGION + PORT_OFFSETS["redis"]
        holder.bind(("127.0.0.1", held))
        holder.listen()
        result = Child(
            "up",
            [sys.executable, "-m", "medplat.cli", "up", "--state-dir", str(tmp_path / "s"), "--base-port", str(base)],
            tmp_path / "up.log",
            env=dict(os.environ),
        ).start()
        assert result.popen is not None
        assert result.popen.wait(60) == 1
    output = result.log_path.read_text()
    assert output.strip().splitlines()[-2:] == [
        f"medfed: port {held} (ru redis) is already in use; stop what holds it or choose another --base-port",
        "all processes stopped.",
    ]
    with contextlib.suppress(FileNotFoundError):
        assert not (tmp_path / "s" / "federation.json").exists()
