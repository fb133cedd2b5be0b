"""The rollout rehearsal (docs/ops/ansible.md, "Rehearsal"): site.yml run for real on this machine into a
throwaway prefix brings up one kz node from the built wheel and /health answers; rolling_upgrade.yml then
upgrades it to a rebuilt wheel (a bumped local version) through its /ready health gate. Every process the
playbooks start is stopped at the end by its recorded pid (process group).

The full rehearsal takes minutes (about 140 Ansible tasks, a venv, three engines), so it is `slow`
(`make test-full`); `test_process_start_stop_round_trip` is the short variant in `make test`: the same
process_start/process_stop tasks the roles use, on a real process, through ansible-playbook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra.rehearsal import ANSIBLE, Node, alive, build_wheel, clean_environ, group_members, hatchling_python
from tests.infra.residency import REPO

pytest.importorskip("ansible", reason="the rehearsal did not run: ansible-core is not installed")


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    node = Node.create(tmp_path)
    try:
        yield node
    finally:
        survivors = node.stop_all()
        for name, pid in node.pids().items():
            assert not alive(pid), f"{name} (pid {pid}) still running after teardown"
        assert survivors == [], f"needed SIGKILL: {survivors}"


def test_process_start_stop_round_trip(tmp_path: Path) -> None:
    """roles/common/tasks/process_start.yml and process_stop.yml: pid file = process group, idempotent start, stop by pid."""
    prefix = tmp_path / "prefix"
    playbook = tmp_path / "process.yml"
    env_file = tmp_path / "proc.env"
    env_file.write_text("ROUND_TRIP_MARK=from-env-file\n")
    script = 'echo "$ROUND_TRIP_MARK"; sleep 300 & wait'

    def one_task(step: str, params: dict[str, object]) -> str:
        role = {"name": "common", "tasks_from": step}
        task = {"ansible.builtin.include_role": role, "vars": {"common_process_name": "sleeper", **params}}
        return json.dumps([{"name": step, "hosts": "localhost", "gather_facts": False, "tasks": [task]}])

    start = {"common_process_argv": ["/bin/bash", "-c", script], "common_process_env_file": str(env_file)}
    playbook.write_text(one_task("process_start", start))
    stop = tmp_path / "stop.yml"
    stop.write_text(one_task("process_stop", {"common_process_stop_timeout": 10}))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"), "ANSIBLE_HOME": str(tmp_path / "ah"), "ANSIBLE_NOCOLOR": "1"}
    # A playbook outside ansible/playbooks/ does not see playbooks/group_vars: the three folders it uses are given.
    folders = {"medfed_run_dir": "run/medfed", "medfed_log_dir": "var/log/medfed", "medfed_home": "var/lib/medfed"}
    extra = json.dumps({name: str(prefix / path) for name, path in folders.items()})
    for path in folders.values():
        (prefix / path).mkdir(parents=True)
    bin_ = str(Path(sys.executable).parent / "ansible-playbook")

    def play(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([bin_, "-i", "inventories/local", str(path), "-e", extra], cwd=ANSIBLE, env=env,
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip

    pidfile = prefix / "run" / "medfed" / "sleeper.pid"
    pid = 0
    try:
        first = play(playbook)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "changed=1" in first.stdout
        pid = int(pidfile.read_text())
        assert os.getpgid(pid) == pid, "the recorded pid leads its own process group"
        assert len(group_members(pid)) == 2, "bash and its sleep child share the group"
        again = play(playbook)
        assert again.returncode == 0 and "changed=0" in again.stdout, "a running process is not started twice"
        assert int(pidfile.read_text()) == pid
        log = prefix / "var" / "log" / "medfed" / "sleeper.log"
        deadline = time.monotonic() + 10
        while "from-env-file" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert log.read_text() == "from-env-file\n", "the environment file was loaded and output went to the log"
        stopped = play(stop)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert not pidfile.exists()
        assert not alive(pid) and group_members(pid) == [], "the whole group is gone"
    finally:
        if pid and group_members(pid):
            os.killpg(pid, 9)


@pytest.mark.slow
def test_rollout_rehearsal_site_then_rolling_upgrade(node: Node, tmp_path: Path) -> None:
    if hatchling_python() is None:
        pytest.skip("the rehearsal did not run: no hatchling to build the wheel offline (`make tools` installs it into .venv-tools)")
    wheel = build_wheel(REPO, tmp_path / "build")
    started = time.monotonic()
    site = node.playbook("site.yml", wheel, "-e", "app_run_migrations=true")
    site_seconds = time.monotonic() - started
    assert site.returncode == 0, f"site.yml:\n{site.stdout[-6000:]}\n{site.stderr[-3000:]}"
    pids = node.pids()
    assert set(pids) == {"postgresql", "objectstore", "broker", "medfed-node", "medfed-worker", "medfed-beat"}
    assert all(alive(pid) and os.getpgid(pid) == pid for pid in pids.values())

    status, health = node.get("/health")
    assert status == 200 and health["status"] == "ok", health
    assert health["region"] == "kz" and health["version"] == "0.1.0"
    assert {name: dep["status"] for name, dep in health["dependencies"].items() if name != "workers"} == {
        "database": "ok", "object_store": "ok", "broker": "ok",
    }  # fmt: skip
    venv = node.prefix / "opt" / "medfed" / "venv"
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import medplat; print(medplat.__file__)"],
                           capture_output=True, text=True, check=True, env=clean_environ())  # fmt: skip
    assert where.stdout.startswith(str(venv)), "the node runs the installed wheel, not a source tree"

    again = node.playbook("site.yml", wheel)
    assert again.returncode == 0, again.stdout[-4000:]
    assert node.pids() == pids, "a second site.yml run keeps the running processes"

    upgraded = build_wheel(REPO, tmp_path / "build2", local_version="rehearsal2")
    started = time.monotonic()
    upgrade = node.playbook("rolling_upgrade.yml", upgraded, "-e", "upgrade_lb_wait_seconds=0")
    upgrade_seconds = time.monotonic() - started
    assert upgrade.returncode == 0, f"rolling_upgrade.yml:\n{upgrade.stdout[-6000:]}\n{upgrade.stderr[-3000:]}"
    assert "Health gate - /ready answers 200" in upgrade.stdout
    status, health = node.get("/health")
    assert status == 200 and health["version"] == "0.1.0+rehearsal2", health
    after = node.pids()
    assert after["medfed-node"] != pids["medfed-node"] and after["medfed-worker"] != pids["medfed-worker"], "node and worker restarted"
    assert after["postgresql"] == pids["postgresql"], "the database kept running"
    assert not (node.prefix / "etc" / "nginx" / "medfed-drain").exists(), "undrained after the health gate"
    print(f"rehearsal: site.yml {site_seconds:.0f} s, rolling_upgrade.yml {upgrade_seconds:.0f} s")


@pytest.mark.slow
def test_rolling_upgrade_stops_at_the_health_gate(node: Node, tmp_path: Path) -> None:
    """A node that never becomes ready stops the upgrade with the host still drained (max_fail_percentage: 0)."""
    if hatchling_python() is None:
        pytest.skip("the rehearsal did not run: no hatchling to build the wheel offline (`make tools` installs it into .venv-tools)")
    wheel = build_wheel(REPO, tmp_path / "build")
    site = node.playbook("site.yml", wheel, "-e", "app_run_migrations=true")
    assert site.returncode == 0, site.stdout[-6000:]
    # The broker goes away (migrations need only the database and the object store): after the restart
    # /ready answers 503, so the gate must fail.
    broker = node.pids()["broker"]
    os.killpg(broker, 15)
    deadline = time.monotonic() + 20
    while alive(broker) and time.monotonic() < deadline:
        time.sleep(0.1)
    upgrade = node.playbook(
        "rolling_upgrade.yml", wheel, "-e", "upgrade_lb_wait_seconds=0", "-e", "upgrade_ready_retries=3", "-e", "upgrade_ready_delay=1",
    )  # fmt: skip
    assert upgrade.returncode != 0
    assert "TASK [Health gate - /ready answers 200]" in upgrade.stdout
    assert "FAILED - RETRYING: [localhost]: Health gate - /ready answers 200" in upgrade.stdout
    assert "TASK [Undrain]" not in upgrade.stdout
    assert (node.prefix / "etc" / "nginx" / "medfed-drain").exists(), "the failed host stays drained"
