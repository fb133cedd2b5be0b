"""`medfed up`: the local federation, every region with its own engines, node server and Celery worker.

Everything runs as children of this process, in process groups of their own, and stops with it: on Ctrl-C,
on SIGTERM, when a child dies unexpectedly, and (through the parent-death signal) when this process is
killed outright. State lives under `<state-dir>/<region>/` and survives a restart; `--fresh` wipes it.
Every node serves HTTPS with a certificate of the federation's own CA (`<state-dir>/ca.pem`, medplat.devfed.tls).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import fcntl
import json
import os
import secrets
import shutil
import signal
import ssl
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from medplat.config import known_regions
from medplat.db.migrate import SYNC_ROLE
from medplat.devfed import tls
from medplat.devfed.engines import Postgres, Redis, Seaweed, SeaweedPorts
from medplat.devfed.processes import Child, die_with_parent, port_is_free, wait_until
from medplat.urls import without_password
from medsync import trust
from medsync.envelope import key_id as envelope_key_id
from medsync.errors import SyncError

PORT_OFFSETS = {
    "node": 0, "postgres": 1, "redis": 2, "s3": 3, "s3 master": 4, "s3 master grpc": 5,
    "s3 volume": 6, "s3 volume grpc": 7, "s3 filer": 8, "s3 filer grpc": 9, "s3 grpc": 10,
}  # fmt: skip
PORTS_PER_REGION = 20
READY_TIMEOUT = 90.0
DATABASE = "medfed"
APP_ROLE = "medfed"
CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"


class LauncherError(Exception):
    """A reason the federation cannot start, in one line."""


class _Stop(Exception):
    """Raised in the main thread by SIGINT/SIGTERM."""


def _secret() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class RegionRuntime:
    code: str
    index: int
    base_port: int
    root: Path
    secrets: dict[str, str] = field(default_factory=dict)
    children: list[Child] = field(default_factory=list)

    def port(self, what: str) -> int:
        return self.base_port + self.index * PORTS_PER_REGION + PORT_OFFSETS[what]

    @property
    def node_url(self) -> str:
        return f"https://127.0.0.1:{self.port('node')}"

    @property
    def ca_file(self) -> Path:
        """The federation's CA certificate, which every node's certificate is issued by."""
        return self.root.parent / CA_FILE

    @property
    def tls_cert_file(self) -> Path:
        return self.root / "tls" / "node.pem"

    @property
    def tls_key_file(self) -> Path:
        return self.root / "tls" / "node-key.pem"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def load_or_create_secrets(self) -> None:
        path = self.root / "secrets.json"
        if path.exists():
            self.secrets = json.loads(path.read_text())
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self.secrets = {
            "postgres_password": _secret(),
            "app_password": _secret(),
            "sync_password": _secret(),
            "s3_access_key": "medfed" + secrets.token_hex(6),
            "s3_secret_key": _secret(),
            "redis_password": _secret(),
            "data_key": base64.b64encode(os.urandom(32)).decode(),
        }
        path.write_text(json.dumps(self.secrets, indent=2))
        path.chmod(0o600)
        key = self.root / "keys" / "signing.pem"
        key.parent.mkdir(parents=True, exist_ok=True)
        key.write_bytes(Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        key.chmod(0o600)

    def signing_key(self) -> Ed25519PrivateKey:
        key = load_pem_private_key((self.root / "keys" / "signing.pem").read_bytes(), password=None)
        assert isinstance(key, Ed25519PrivateKey)
        return key

    @property
    def postgres(self) -> Postgres:
        return Postgres(
            self.root / "pg",
            self.port("postgres"),
            self.secrets["postgres_password"],
            self.logs / "postgres.log",
        )

    @property
    def seaweed(self) -> Seaweed:
        ports = SeaweedPorts(
            master=self.port("s3 master"), master_grpc=self.port("s3 master grpc"),
            volume=self.port("s3 volume"), volume_grpc=self.port("s3 volume grpc"),
            filer=self.port("s3 filer"), filer_grpc=self.port("s3 filer grpc"),
            s3=self.port("s3"), s3_grpc=self.port("s3 grpc"),
        )  # fmt: skip
        return Seaweed(
            self.root / "s3",
            ports,
            self.secrets["s3_access_key"],
            self.secrets["s3_secret_key"],
            self.logs / "seaweedfs.log",
        )

    @property
    def redis(self) -> Redis:
        return Redis(
            self.root / "redis",
            self.port("redis"),
            self.secrets["redis_password"],
            self.logs / "redis.log",
        )

    @property
    def database_url(self) -> str:
        return self.postgres.url(DATABASE, user=APP_ROLE, password=self.secrets["app_password"])

    @property
    def sync_database_url(self) -> str:
        return self.postgres.url(DATABASE, user=SYNC_ROLE, password=self.secrets["sync_password"])

    def node_env(self, peers: dict[str, str]) -> dict[str, str]:
        return {
            "MEDFED_REGION": self.code,
            "MEDFED_DATABASE_URL": self.database_url,
            "MEDFED_SYNC_DATABASE_URL": self.sync_database_url,
            "MEDFED_S3_ENDPOINT": self.seaweed.endpoint,
            "MEDFED_S3_ACCESS_KEY": self.secrets["s3_access_key"],
            "MEDFED_S3_SECRET_KEY": self.secrets["s3_secret_key"],
            "MEDFED_BROKER_URL": self.redis.url,
            "MEDFED_SIGNING_KEY_FILE": str((self.root / "keys" / "signing.pem").resolve()),
            "MEDFED_DATA_KEY": self.secrets["data_key"],
            "MEDFED_PUBLIC_URL": self.node_url,
            "MEDFED_PEERS": ",".join(f"{c}={u}" for c, u in sorted(peers.items()) if c != self.code),
            "MEDFED_TRUST_DIR": str(self.root.parent / "trust"),
            # Every store is an engine on this machine's loopback (docs/compliance.md, the stores check).
            "MEDFED_DEPLOYMENT": "local",
            "MEDFED_FEDERATION_CA_FILE": str(self.ca_file),
            "MEDFED_TLS_CERT_FILE": str(self.tls_cert_file),
            "MEDFED_TLS_KEY_FILE": str(self.tls_key_file),
        }


def prepare_database(pg: Postgres, app_password: str, sync_password: str) -> None:
    """The application role, the sync role and the database (idempotent)."""
    with psycopg.connect(pg.url(), autocommit=True) as conn:
        for role, password in ((APP_ROLE, app_password), (SYNC_ROLE, sync_password)):
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            statement = psycopg.sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}")
            conn.execute(statement.format(psycopg.sql.Identifier(role), psycopg.sql.Literal(password)))
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
            conn.execute(
                psycopg.sql.SQL("CREATE DATABASE {} OWNER {}").format(psycopg.sql.Identifier(DATABASE), psycopg.sql.Identifier(APP_ROLE))
            )


def stop_children(children: list[Child]) -> None:
    """Signal every child (newest first), then wait for each within its own time-out, then kill what is left."""
    for child in reversed(children):
        if child.alive():
            child.signal_group(child.stop_signal)
    for child in reversed(children):
        child.stop()


class Federation:
    def __init__(
        self,
        state_dir: Path,
        base_port: int = 18100,
        regions: list[str] | None = None,
        out: Any = None,
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.base_port = base_port
        self.codes = regions or list(known_regions())
        self.out = out or sys.stdout
        unknown = [c for c in self.codes if c not in known_regions()]
        if unknown:
            raise LauncherError(f"unknown region(s) {', '.join(unknown)}; known: {', '.join(known_regions())}")
        self.regions = [RegionRuntime(code, i, base_port, self.state_dir / code) for i, code in enumerate(self.codes)]
        self.children: list[Child] = []

    def say(self, message: str) -> None:
        print(message, file=self.out, flush=True)

    # -- start-up ---------------------------------------------------------------------------------------

    def check_ports(self) -> None:
        for region in self.regions:
            for what in PORT_OFFSETS:
                port = region.port(what)
                if not port_is_free(port):
                    raise LauncherError(
                        f"port {port} ({region.code} {what}) is already in use; stop what holds it or choose another --base-port"
                    )

    @contextlib.contextmanager
    def state_lock(self) -> Iterator[None]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / "launcher.lock", "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                raise LauncherError(f"another `medfed up` (pid {lock.read().strip() or '?'}) is using {self.state_dir}") from None
            lock.seek(0)
            lock.truncate()
            lock.write(str(os.getpid()))
            lock.flush()
            yield

    def start(self, child: Child, region: RegionRuntime) -> Child:
        child.name = f"{region.code} {child.name}"
        self.children.append(child.start())
        region.children.append(child)
        return child

    def boot(self, fresh: bool) -> None:
        started = time.monotonic()
        if fresh:
            for region in self.regions:
                shutil.rmtree(region.root, ignore_errors=True)
            (self.state_dir / "federation.json").unlink(missing_ok=True)
            for name in (CA_FILE, CA_KEY_FILE):
                (self.state_dir / name).unlink(missing_ok=True)
        self.check_ports()
        for region in self.regions:
            region.load_or_create_secrets()
        self.write_certificates()
        self.write_trust()
        fresh_clusters = [r for r in self.regions if not r.postgres.initialised()]
        if fresh_clusters:
            self.say(f"initialising PostgreSQL clusters for {', '.join(r.code for r in fresh_clusters)} ...")
            runs = [(r, r.postgres.initdb_child().start()) for r in fresh_clusters]
            for region, run in runs:
                if run.popen is not None and run.popen.wait() != 0:
                    raise LauncherError(f"initdb for {region.code} failed; see {run.log_path}")
                region.postgres.finish_initdb()
        for region in self.regions:
            self.start(region.postgres.child(), region)
            self.start(region.seaweed.child(), region)
            self.start(region.redis.child(), region)
        peers = {r.code: r.node_url for r in self.regions}
        for region in self.regions:
            self.watch(lambda r=region: r.postgres.wait_ready(30))
            region.secrets.setdefault("sync_password", _secret())
            prepare_database(region.postgres, region.secrets["app_password"], region.secrets["sync_password"])
            self.run_cli(region, peers, ["db", "upgrade"])
        for region in self.regions:
            self.watch(lambda r=region: r.redis.wait_ready(30))
            self.watch(lambda r=region: r.seaweed.wait_ready(60))
            self.run_cli(region, peers, ["storage", "init"])
        for region in self.regions:
            env = {**os.environ, **region.node_env(peers)}
            (region.root / "node.env").write_text("".join(f"{k}={v}\n" for k, v in region.node_env(peers).items()))
            (region.root / "node.env").chmod(0o600)
            cli = [sys.executable, "-m", "medplat.cli"]
            self.start(
                Child(
                    "node",
                    [*cli, "serve", "--port", str(region.port("node"))],
                    region.logs / "node.log",
                    env=env,
                    cwd=region.root,
                ),
                region,
            )
            worker = [*cli, "worker", "--concurrency", "2", "--beat"]
            self.start(
                Child(
                    "worker",
                    worker,
                    region.logs / "worker.log",
                    env=env,
                    cwd=region.root,
                    stop_timeout=20,
                    death_signal=signal.SIGTERM,
                ),
                region,
            )
        for region in self.regions:
            self.watch(
                lambda r=region: self.node_ready(r),
                timeout=READY_TIMEOUT,
                what=f"{region.code} node at {region.node_url}",
            )
        self.write_federation_file()
        self.print_table(time.monotonic() - started)

    def write_certificates(self) -> None:
        """The federation's CA and every node's server certificate, kept from the last run while still good."""
        authority = tls.ensure_authority(self.state_dir / CA_FILE, self.state_dir / CA_KEY_FILE)
        for region in self.regions:
            tls.ensure_server(region.tls_cert_file, region.tls_key_file, authority, region.code)

    def write_trust(self) -> None:
        """The local federation's trust file: every region's key, threshold 2 (or 1 for a single region).

        Version 1 is written anew whenever the set of keys or a node's URL changed (a region started --fresh,
        a state folder from before the nodes served HTTPS); otherwise the existing chain, including any
        rotation made with `medfed keys rotate`, is kept.
        """
        directory = self.state_dir / "trust"
        now = datetime.datetime.now(datetime.UTC)
        keys = {r.code: r.signing_key() for r in self.regions}
        if self._trust_matches(directory, keys, {r.code: r.node_url for r in self.regions}, now):
            return
        shutil.rmtree(directory, ignore_errors=True)
        window = {"not_before": now - datetime.timedelta(days=1), "not_after": now + datetime.timedelta(days=365)}
        nodes = {
            r.code: trust.TrustNode(keys=(trust.trust_key(keys[r.code].public_key(), **window),), url=r.node_url) for r in self.regions
        }
        document = trust.new_document(
            version=1, threshold=min(2, len(nodes)), nodes=nodes, issued_at=now, expires_at=now + datetime.timedelta(days=365)
        )
        trust.write_version(directory, trust.sign_document(document, keys.values()))

    @staticmethod
    def _trust_matches(directory: Path, keys: dict[str, Ed25519PrivateKey], urls: dict[str, str], now: datetime.datetime) -> bool:
        try:
            current = trust.load_chain(directory, now=now)
        except SyncError:
            return False
        if set(current.nodes) != set(keys) or any(current.nodes[code].url != url for code, url in urls.items()):
            return False
        return all(envelope_key_id(key.public_key()) in current.keys_for(code, now) for code, key in keys.items())

    def run_cli(self, region: RegionRuntime, peers: dict[str, str], args: list[str]) -> None:
        """One `medfed` command against a region, as a child (so its failure cannot take this process down)."""
        env = {**os.environ, **region.node_env(peers)}
        log = region.logs / "setup.log"
        child = Child(
            " ".join(args),
            [sys.executable, "-m", "medplat.cli", *args],
            log,
            env=env,
            cwd=region.root,
        ).start()
        assert child.popen is not None
        if child.popen.wait(120) != 0:
            raise LauncherError(f"`medfed {' '.join(args)}` failed for {region.code}: {child.log_tail(3)}")

    def node_ready(self, region: RegionRuntime) -> bool:
        verified = ssl.create_default_context(cafile=region.ca_file)
        with urllib.request.urlopen(f"{region.node_url}/ready", timeout=5, context=verified) as response:  # noqa: S310 - our own https URL
            return bool(response.status == 200)

    def watch(self, wait: Any, timeout: float | None = None, what: str = "") -> None:
        """Run a readiness wait, failing early with the child's log if any child has died meanwhile."""
        self.check_children()
        if timeout is None:
            wait()
        else:

            def children_alive_and_ready() -> bool:
                self.check_children()
                return bool(wait())

            wait_until(children_alive_and_ready, timeout, interval=0.25, what=what)

    def check_children(self) -> None:
        for child in self.children:
            code = child.returncode()
            if code is not None:
                raise LauncherError(f"{child.name} exited with status {code}; last lines of {child.log_path}:\n{child.log_tail()}")

    # -- reporting ----------------------------------------------------------------------------------------

    def federation_document(self) -> dict[str, Any]:
        return {
            "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "launcher_pid": os.getpid(),
            "ca_file": str(self.state_dir / CA_FILE),
            "regions": {
                r.code: {
                    "node_url": r.node_url,
                    "database_url": r.database_url,
                    "object_store_endpoint": r.seaweed.endpoint,
                    "broker_url": r.redis.url,
                    "env_file": str(r.root / "node.env"),
                    "pids": {c.name.split(" ", 1)[1]: c.pid for c in r.children},
                }
                for r in self.regions
            },
        }

    def write_federation_file(self) -> None:
        path = self.state_dir / "federation.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.federation_document(), indent=2))
        tmp.chmod(0o600)
        tmp.replace(path)

    def print_table(self, seconds: float) -> None:
        rows = [("region", "node", "database", "object store", "broker")]
        for r in self.regions:
            rows.append(
                (
                    r.code,
                    r.node_url,
                    without_password(r.database_url),
                    r.seaweed.endpoint,
                    without_password(r.redis.url),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        self.say("")
        for row in rows:
            self.say("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        self.say(f"\nfederation ready in {seconds:.1f} s; state in {self.state_dir}; {self.state_dir / 'federation.json'} written.")
        ca = self.state_dir / CA_FILE
        self.say(f"Nodes serve HTTPS; their CA is {ca}: curl --cacert {ca} {self.regions[0].node_url}/health")
        self.say("Ctrl-C stops everything.")

    # -- the run ------------------------------------------------------------------------------------------

    def run(self, fresh: bool = False) -> int:
        def on_signal(signum: int, _: Any) -> None:
            # Once stopping, a second signal (Ctrl-C twice, or the group's SIGTERM followed by the parent-death
            # signal when make goes first) must not interrupt the shutdown.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            raise _Stop(signal.Signals(signum).name)

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        # If whatever started us (make, a shell, a test) dies, stop the federation as if told to.
        die_with_parent(signal.SIGTERM)
        status = 0
        try:
            with self.state_lock():
                try:
                    self.boot(fresh)
                    while True:
                        self.check_children()
                        time.sleep(0.5)
                except _Stop as stop:
                    self.say(f"\n{stop}: stopping the federation ...")
                except (LauncherError, TimeoutError) as exc:
                    print(f"medfed: {exc}", file=sys.stderr, flush=True)
                    status = 1
                finally:
                    signal.signal(signal.SIGINT, signal.SIG_IGN)
                    signal.signal(signal.SIGTERM, signal.SIG_IGN)
                    stop_children(self.children)
                    (self.state_dir / "federation.json").unlink(missing_ok=True)
                    self.say("all processes stopped.")
        except LauncherError as exc:
            print(f"medfed: {exc}", file=sys.stderr, flush=True)
            status = 1
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return status
