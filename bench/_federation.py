"""What the sync benchmarks share: a fresh local federation (`medfed up`), each node's settings, machine facts.

The federation is started exactly as a developer starts it (`python -m medplat.cli up --fresh`), in a
temporary folder on free ports, as a child of the benchmark that stops with it (SIGTERM, the launcher's
own shutdown, then SIGKILL of its process group if it hangs). Its nodes serve HTTPS: call them with
`federation_client`, which verifies their certificates with the federation's own CA.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import os
import platform
import shlex
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import psycopg
from psycopg.rows import TupleRow

from medplat.config import Settings, settings_from_env
from medplat.devfed.launcher import PORTS_PER_REGION
from medplat.devfed.processes import Child, free_port_block, wait_until
from medsync.transport import tls_context

START_TIMEOUT = 300.0


@dataclass
class NodeHandle:
    """One running node of the local federation, as federation.json and its node.env describe it."""

    code: str
    node_url: str
    database_url: str
    object_store_endpoint: str
    broker_url: str
    env: dict[str, str]
    pids: dict[str, int]
    """The node's processes (postgres, seaweedfs, redis, node, worker), each the leader of its own process group."""
    root: Path
    """The node's state folder (.medfed/<region>/): its secrets.json holds the cluster's superuser password."""

    @functools.cached_property
    def settings(self) -> Settings:
        return settings_from_env(self.env)

    def editor_token(self) -> str:
        from medplat.security import Role, issue_token

        return issue_token(self.settings, "bench-editor", [Role.EDITOR], ttl=datetime.timedelta(hours=6))

    def superuser_url(self, database: str | None = None) -> str:
        """The node's cluster as its superuser, in the node's database unless told (the baselines create publications)."""
        password = json.loads((self.root / "secrets.json").read_text())["postgres_password"]
        url = urlsplit(self.database_url)
        netloc = f"postgres:{quote(password, safe='')}@{url.hostname}:{url.port}"
        return urlunsplit(url._replace(netloc=netloc, path=f"/{database}" if database else url.path))

    def connect(self) -> psycopg.Connection[TupleRow]:
        """A new autocommit connection to the node's database as the application role."""
        return psycopg.connect(self.database_url, autocommit=True)

    @property
    def ca_file(self) -> str:
        """The federation's CA certificate (`.medfed/ca.pem`), as the node's own environment names it."""
        return self.env["MEDFED_FEDERATION_CA_FILE"]


def federation_client(nodes: dict[str, NodeHandle], **options: Any) -> httpx.Client:
    """An httpx client for the federation's nodes, verifying their certificates with the federation's CA."""
    (ca_file,) = {node.ca_file for node in nodes.values()}
    return httpx.Client(verify=tls_context(ca_file), **options)


def read_env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep:
            env[name] = value
    return env


@contextlib.contextmanager
def local_federation(label: str = "bench") -> Iterator[dict[str, NodeHandle]]:
    """Start `medfed up --fresh` in a temporary folder; yield the nodes by region; stop everything on exit."""
    # A benchmark stopped with SIGTERM unwinds like one stopped with Ctrl-C, so the federation stops too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    with tempfile.TemporaryDirectory(prefix=f"medfed-{label}-") as tmp:
        state = Path(tmp) / ".medfed"
        base = free_port_block(PORTS_PER_REGION * 3, step=PORTS_PER_REGION)
        argv = [sys.executable, "-m", "medplat.cli", "up", "--state-dir", str(state), "--base-port", str(base), "--fresh"]
        log = Path(tmp) / "up.log"
        started = time.perf_counter()
        launcher = Child("medfed up", argv, log, env=dict(os.environ), stop_timeout=120).start()
        try:

            def ready() -> bool:
                if not launcher.alive():
                    raise SystemExit(f"medfed up exited early:\n{launcher.log_tail(30)}")
                return (state / "federation.json").exists()

            wait_until(ready, timeout=START_TIMEOUT, interval=0.1, what="local federation")
            document = json.loads((state / "federation.json").read_text())
            nodes = {
                code: NodeHandle(
                    code=code,
                    node_url=region["node_url"],
                    database_url=region["database_url"],
                    object_store_endpoint=region["object_store_endpoint"],
                    broker_url=region["broker_url"],
                    env=read_env_file(Path(region["env_file"])),
                    pids={name: int(pid) for name, pid in region["pids"].items()},
                    root=Path(region["env_file"]).parent,
                )
                for code, region in document["regions"].items()
            }
            say(f"local federation ready in {time.perf_counter() - started:.1f} s (base port {base}, state {state})")
            yield nodes
        finally:
            # SIGTERM: the launcher stops every engine, node and worker it started, then exits.
            launcher.stop()


# -- CPU accounting --------------------------------------------------------------------------------------


def _group_cpu_ticks(leaders: set[int]) -> dict[int, int]:
    """CPU ticks per process group: user + system of every live member, plus what it collected from reaped children.

    A process that leads a session of its own under one of `leaders` (PostgreSQL makes every backend one)
    counts for that leader's group: otherwise a backend's work would show only once it exits and is reaped,
    and then all of it at once, whenever that happens (the publishing sessions' work, say, during delivery).
    """
    ticks: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
        except OSError:
            continue  # the process ended meanwhile
        fields = raw[raw.rfind(")") + 2 :].split()
        parent, group = int(fields[1]), int(fields[2])
        owner = parent if group == int(stat.parent.name) and parent in leaders else group
        ticks[owner] = ticks.get(owner, 0) + sum(int(f) for f in fields[11:15])
    return ticks


def cpu_snapshot(nodes: dict[str, NodeHandle]) -> dict[str, float]:
    """CPU seconds used so far by each process group of the federation, as "<region> <process>"."""
    per_tick = os.sysconf("SC_CLK_TCK")
    ticks = _group_cpu_ticks({pid for node in nodes.values() for pid in node.pids.values()})
    return {f"{code} {name}": ticks.get(pid, 0) / per_tick for code, node in nodes.items() for name, pid in node.pids.items()}


def cpu_report(before: dict[str, float], after: dict[str, float], wall: float) -> list[str]:
    """Lines of CPU seconds used per process between two snapshots, the busiest first, as a share of the wall time."""
    used = {name: after.get(name, 0.0) - before.get(name, 0.0) for name in after}
    total = sum(used.values())
    lines = [f"CPU seconds used by the federation in {wall:.1f} s of wall time: {total:.1f} ({total / wall:.2f} cores on average)"]
    for name, seconds in sorted(used.items(), key=lambda kv: -kv[1]):
        if seconds >= 0.05 * total:
            lines.append(f"  {name:<16} {seconds:7.1f} s  ({seconds / wall:.2f} cores)")
    return lines


# -- reporting -------------------------------------------------------------------------------------------


def say(message: str) -> None:
    print(message, flush=True)


def _memory_gib() -> float:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> str:
    return (
        f"{os.cpu_count()} cores ({_cpu_model()}), {_memory_gib():.0f} GiB, {platform.platform()}, "
        f"Python {platform.python_version()}, host {platform.node()}"
    )


def command_line() -> str:
    return shlex.join([os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else sys.executable, *sys.argv])


def print_header(title: str) -> None:
    now = datetime.datetime.now(datetime.UTC)
    say(f"# {title}")
    say(f"command: {command_line()}")
    say(f"machine: {machine()}")
    say(f"date:    {now.isoformat(timespec='seconds')} (load average {', '.join(f'{x:.2f}' for x in os.getloadavg())})")


def print_footer() -> None:
    """The load average at the end: other work on a shared machine shows up here."""
    say(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


def print_results(results: dict[str, object], as_json: bool) -> None:
    """A standalone bench's results: one JSON document, or one `name: value` line each."""
    if as_json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return
    for name, value in results.items():
        print(f"{name}: {value}")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between the closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(values: Sequence[float]) -> str:
    """p50 / p99 / max (and mean) of durations in seconds, printed in milliseconds."""
    ms = [v * 1000 for v in values]
    return (
        f"p50 {percentile(ms, 50):7.1f} ms   p99 {percentile(ms, 99):7.1f} ms   max {max(ms):7.1f} ms   "
        f"mean {statistics.fmean(ms):7.1f} ms   (n={len(ms)})"
    )


def poll(predicate: Callable[[], bool], *, interval: float, timeout: float, what: str) -> float:
    """Call `predicate` every `interval` seconds until it is true; returns the perf_counter time it became true."""
    deadline = time.perf_counter() + timeout
    next_tick = time.perf_counter()
    while True:
        if predicate():
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{what} not reached after {timeout:.0f} s")
        next_tick += interval
        time.sleep(max(0.0, next_tick - time.perf_counter()))
