"""Time from `medfed up` to a ready federation (every node's /ready answering and federation.json written).

    .venv/bin/python bench/federation_startup.py [--runs 3]

Measures cold starts (`--fresh`: initdb, migrations, buckets) and warm restarts (state kept), each run in a
fresh temporary folder on free ports, and prints one line per run and the median of each kind.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from medplat.devfed.launcher import PORTS_PER_REGION
from medplat.devfed.processes import Child, free_port_block, wait_until


def free_base() -> int:
    return free_port_block(PORTS_PER_REGION * 3, step=PORTS_PER_REGION)


def one_start(state: Path, base: int, *extra: str) -> float:
    argv = [sys.executable, "-m", "medplat.cli", "up", "--state-dir", str(state), "--base-port", str(base), *extra]
    started = time.perf_counter()
    child = Child("up", argv, state.parent / "up.log", env=dict(os.environ)).start()
    try:

        def ready() -> bool:
            if not child.alive():
                raise SystemExit(f"medfed up exited early:\n{child.log_tail(20)}")
            return (state / "federation.json").exists()

        wait_until(ready, timeout=300, interval=0.05, what="federation")
        return time.perf_counter() - started
    finally:
        os.kill(child.pid, signal.SIGTERM)
        assert child.popen is not None
        child.popen.wait(120)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    cold, warm = [], []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            state, base = Path(tmp) / ".medfed", free_base()
            cold.append(one_start(state, base, "--fresh"))
            warm.append(one_start(state, base))
        print(f"run {run + 1}: cold {cold[-1]:.1f} s, warm {warm[-1]:.1f} s", flush=True)
    print(f"median cold start {statistics.median(cold):.1f} s, warm restart {statistics.median(warm):.1f} s")
    print(f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}")


if __name__ == "__main__":
    main()
