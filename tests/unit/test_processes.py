"""Children in their own process groups, stopped by group id; waits that name what they waited for."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from medplat.devfed.processes import Child, free_ports, port_is_free, wait_until


def test_wait_until_returns_once_the_condition_holds() -> None:
    calls = iter([ConnectionError("refused"), False, True])

    def probe() -> bool:
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    wait_until(probe, timeout=5, interval=0.01)


def test_wait_until_names_what_and_the_last_error() -> None:
    def refused() -> bool:
        raise ConnectionError("connection refused")

    with pytest.raises(TimeoutError, match=r"^PostgreSQL on port 1 not ready after 0 s: connection refused$"):
        wait_until(refused, timeout=0.2, interval=0.05, what="PostgreSQL on port 1")


def test_stopping_a_child_stops_its_whole_process_group(tmp_path: Path) -> None:
    # The child forks a grandchild that ignores SIGTERM; stopping the child must still leave nothing.
    script = (
        "import os, signal, time\n"
        "if os.fork() == 0:\n"
        "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "    time.sleep(60)\n"
        "time.sleep(60)\n"
    )
    child = Child("forker", [sys.executable, "-c", script], tmp_path / "log", stop_timeout=1).start()
    wait_until(child.alive, timeout=5)
    os.killpg(child.pid, 0)  # the group exists
    child.stop()
    assert not child.alive()
    with pytest.raises(ProcessLookupError):
        os.killpg(child.pid, 0)


def test_a_child_dies_with_its_parent(tmp_path: Path) -> None:
    # A middle process starts a Child and is then killed with SIGKILL; the Child must not outlive it.
    pid_file = tmp_path / "grandchild.pid"
    middle = (
        "import sys, time; from pathlib import Path; from medplat.devfed.processes import Child\n"
        f"c = Child('sleeper', [sys.executable, '-c', 'import time; time.sleep(60)'], Path({str(tmp_path / 'g.log')!r})).start()\n"
        f"Path({str(pid_file)!r}).write_text(str(c.pid)); time.sleep(60)\n"
    )
    parent = Child("middle", [sys.executable, "-c", middle], tmp_path / "m.log").start()
    wait_until(pid_file.exists, timeout=20)
    grandchild = int(pid_file.read_text())
    os.kill(parent.pid, signal.SIGKILL)

    def gone() -> bool:
        try:
            os.killpg(grandchild, 0)
        except ProcessLookupError:
            return True
        return False

    wait_until(gone, timeout=10, what="the orphan to die")
    parent.stop()


def test_free_ports_are_free_and_distinct() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
    assert all(port_is_free(p) for p in ports)
