"""Child processes that stop with their parent: own process group, parent-death signal, stop by group id.

Every engine, node server and worker that the launcher or a test starts is one `Child`. It is started in a
process group of its own, so that stopping it stops whatever it forked (PostgreSQL backends, Celery pool
processes), and with a parent-death signal, so that a launcher killed with SIGKILL leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import pwd
import random
import signal
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tenacity import RetryError, Retrying, retry_if_exception_type, retry_if_result, stop_after_delay, wait_fixed

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int) -> None:
    """Ask the kernel to send `sig` to this process when its parent dies (Linux PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)


class PortBusyError(RuntimeError):
    def __init__(self, port: int, what: str) -> None:
        super().__init__(f"port {port} ({what}) is already in use on 127.0.0.1")
        self.port = port
        self.what = what


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports that are free now, chosen below the kernel's ephemeral range.

    Ports the kernel hands out for outgoing connections would be a poor choice: a client socket of any
    process may take one between our check and the server's bind.
    """
    low = 20000
    high = min(_ephemeral_range()[0], 65536) - 1
    chosen: list[int] = []
    for port in random.sample(range(low, high), k=min(high - low, 2000)):
        if port_is_free(port, host):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise RuntimeError(f"fewer than {count} free ports in {low}-{high}")


def free_port_block(size: int, step: int = 20, host: str = "127.0.0.1") -> int:
    """The first port of `size` consecutive free ports below the ephemeral range (for `medfed up --base-port`)."""
    high = min(_ephemeral_range()[0], 65536) - size
    for base in random.sample(range(20000, high, step), k=(high - 20000) // step):
        if all(port_is_free(base + i, host) for i in range(size)):
            return base
    raise RuntimeError(f"no block of {size} free ports below {high + size}")


@dataclass
class Child:
    """One started process (and its process group)."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    user: str | None = None
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 15.0
    death_signal: int = signal.SIGKILL
    """Sent by the kernel if this process's parent dies first (PR_SET_PDEATHSIG)."""
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    def start(self) -> Child:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(self.env) if self.env is not None else None,
                cwd=self.cwd,
                user=self.user,
                # Drop root's groups too: a group of root would otherwise decide access to root's folders.
                group=pwd.getpwnam(self.user).pw_gid if self.user else None,
                extra_groups=[] if self.user else None,
                start_new_session=True,
                # Children are started from the main thread only, so preexec_fn is safe here.
                preexec_fn=lambda: die_with_parent(self.death_signal),  # noqa: PLW1509
            )
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def signal_group(self, sig: int) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def stop(self) -> None:
        """Ask the group to stop, wait, then kill whatever of the group is left."""
        if self.popen is None:
            return
        if self.alive():
            self.signal_group(self.stop_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(self.stop_timeout)
        # The leader may be gone while members of its group (forked workers) linger.
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.1, what: str = "condition") -> None:
    """Poll `predicate()` until it returns something true; raise TimeoutError naming `what` and the last error.

    A not-yet-ready server raises all sorts of errors, so any exception counts as "not yet".
    """
    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(interval),
        retry=retry_if_exception_type(Exception) | retry_if_result(lambda ok: not ok),
        reraise=False,
    )
    try:
        retrying(predicate)
    except RetryError as exc:
        last = exc.last_attempt
        detail = f": {last.exception()}" if last.failed else ""
        raise TimeoutError(f"{what} not ready after {timeout:.0f} s{detail}") from None
