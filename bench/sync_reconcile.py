"""Cost of an anti-entropy pass (medsync.reconcile.reconcile) on a channel ru>kz of 100,000 items.

    .venv/bin/python bench/sync_reconcile.py [--items 100000] [--runs 7] [--repair-runs 3] [--explain]

On a fresh local federation, both ends of the channel are filled directly with SQL, as if every item had
been published and applied long ago:
- ru: `--items` rows in shared.content_item (origin ru, published, version 1) and, per item, one
  federation.outbox row for kz and one for uz (status applied, 100 items per manifest sequence);
- kz: the same items in shared.content_item (origin ru, published, version 1).
Then reconcile(ctx of ru, "kz", http) runs `--runs` times on the channel in sync (expected: one digest
request, nothing queued), and `--repair-runs` times after one row on kz was changed (its version set
back to 0: the bucket digests are compared, one bucket is listed, one item is queued again; the change
and the queued outbox row are undone after each run). Also timed alone: each side's digest query and the
digest request over HTTP.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable

import httpx
from _federation import NodeHandle, federation_client, local_federation, print_footer, print_header, say
from sqlalchemy import text
from sqlalchemy.orm import Session

from medplat.logs import configure_logging
from medsync.context import SyncContext, context_for

# The module's own queries, to time (and explain) each side's digest exactly as reconcile() runs it.
from medsync.reconcile import _ACTUAL, _EXPECTED, ReconcileResult, _digest_sql, digest, reconcile
from medsync.transport import mint_token

ITEMS_ON_RU = """
    INSERT INTO shared.content_item
        (id, origin_region, kind, title, category, specializations, languages, origin_only, status, version, draft, targets,
         created_at, updated_at)
    SELECT gen_random_uuid(), 'ru', 'product_note', 'Заметка ' || n, 'product_note', '{cardiology}', '{ru}', false, 'published', 1,
           jsonb_build_object('kind', 'product_note', 'category', 'product_note'), '{kz,uz}', now(), now()
    FROM generate_series(1, %s) AS n
"""
OUTBOX_ON_RU = """
    INSERT INTO federation.outbox (target, item_id, version, op, status, manifest_sequence, reasons, created_at, updated_at)
    SELECT t.target, i.id, 1, 'upsert', 'applied', (i.n - 1) / 100 + 1, '[]', now(), now()
    FROM (SELECT id, row_number() OVER (ORDER BY created_at, id) AS n FROM shared.content_item WHERE origin_region = 'ru') AS i
    CROSS JOIN (VALUES ('kz'), ('uz')) AS t(target)
    ORDER BY i.n, t.target
"""
RECEIVED_COLUMNS = (
    "id, origin_region, kind, title, category, specializations, languages, origin_only, status, version, created_at, updated_at"
)
COPY_OUT = f"COPY (SELECT {RECEIVED_COLUMNS} FROM shared.content_item WHERE origin_region = 'ru') TO STDOUT (FORMAT binary)"  # noqa: S608
COPY_IN = f"COPY shared.content_item ({RECEIVED_COLUMNS}) FROM STDIN (FORMAT binary)"


def populate(ru: NodeHandle, kz: NodeHandle, items: int) -> None:
    started = time.perf_counter()
    with ru.connect() as origin, kz.connect() as target:
        with origin.transaction():
            origin.execute(ITEMS_ON_RU, (items,))
            origin.execute(OUTBOX_ON_RU)
        with (
            target.transaction(),
            origin.cursor().copy(COPY_OUT) as out,
            target.cursor().copy(COPY_IN) as into,
        ):
            for data in out:
                into.write(data)
        for conn in (origin, target):
            conn.execute("VACUUM ANALYZE shared.content_item")
        origin.execute("VACUUM ANALYZE federation.outbox")
    say(f"populated ru ({items} items, {2 * items} outbox rows) and kz ({items} items) in {time.perf_counter() - started:.1f} s")


def timed(runs: int, call: Callable[[], object]) -> list[float]:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return seconds


def ms(values: list[float]) -> str:
    return (
        f"median {statistics.median(values) * 1000:7.1f} ms  (min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f}, n={len(values)})"
    )


class Counter:
    """Counts the HTTP requests reconcile() makes (the in-sync pass should make exactly one)."""

    def __init__(self) -> None:
        self.requests = 0

    def __call__(self, request: httpx.Request) -> None:
        self.requests += 1


def break_one_row(kz: NodeHandle, number: int, items: int) -> str:
    """Set one received item's version back to 0 on kz (a different item each run); returns its id."""
    with kz.connect() as conn:
        row = conn.execute(
            "SELECT id FROM shared.content_item WHERE origin_region = 'ru' ORDER BY id OFFSET %s LIMIT 1", ((number * 7919) % items,)
        ).fetchone()
        assert row is not None
        conn.execute("UPDATE shared.content_item SET version = 0 WHERE id = %s", (row[0],))
        return str(row[0])


def undo(ru: NodeHandle, kz: NodeHandle, item_id: str) -> None:
    """Put the item back on kz and drop the outbox row reconcile() queued for it (no worker was woken for it)."""
    with kz.connect() as conn:
        conn.execute("UPDATE shared.content_item SET version = 1 WHERE id = %s", (uuid.UUID(item_id),))
    with ru.connect() as conn:
        conn.execute("DELETE FROM federation.outbox WHERE item_id = %s AND status = 'pending'", (uuid.UUID(item_id),))


def explain(ctx: SyncContext, kz_ctx: SyncContext) -> None:
    sides = (("ru (what ru expects kz to hold)", ctx.engine, _EXPECTED, "kz"), ("kz (what kz holds from ru)", kz_ctx.engine, _ACTUAL, "ru"))
    for name, engine, source, peer in sides:
        with Session(engine) as session:
            plan = session.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF) {_digest_sql(source, by_bucket=False)}"), {"peer": peer})
            say(f"\nplan of the digest query on {name}:")
            for (line,) in plan:
                say(f"  {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000, help="items in the channel (default 100000)")
    parser.add_argument("--runs", type=int, default=7, help="timed passes on the channel in sync (default 7)")
    parser.add_argument("--repair-runs", type=int, default=3, help="timed passes after one row on kz was changed (default 3)")
    parser.add_argument("--explain", action="store_true", help="print the plans of both digest queries")
    args = parser.parse_args()

    print_header(f"anti-entropy: reconcile() on channel ru>kz with {args.items} items")
    with local_federation("reconcile") as nodes:
        ru, kz = nodes["ru"], nodes["kz"]
        configure_logging("ru", "WARNING")
        populate(ru, kz, args.items)
        ctx, kz_ctx = context_for(ru.settings), context_for(kz.settings)
        counter = Counter()
        with federation_client(nodes, timeout=120, event_hooks={"request": [counter]}) as http:
            results: list[ReconcileResult] = []

            def in_sync_pass() -> object:
                results.append(reconcile(ctx, "kz", http))
                return results[-1]

            def origin_digest() -> object:
                with Session(ctx.engine) as session:
                    return digest(session, _EXPECTED, "kz")

            def target_digest() -> object:
                with Session(kz_ctx.engine) as session:
                    return digest(session, _ACTUAL, "ru")

            def digest_request() -> object:
                token = mint_token("ru", "kz", ctx.key)
                response = http.get(
                    f"{kz.node_url}/federation/v1/digest", params={"origin": "ru"}, headers={"Authorization": f"Bearer {token}"}
                )
                response.raise_for_status()
                return response.json()

            in_sync_pass()  # warm-up: trust file, connections, caches
            results.clear()
            requests_before = counter.requests
            # Interleaved rounds, so that other work on a shared machine spreads over every measurement alike.
            calls = {"reconcile": in_sync_pass, "ru query": origin_digest, "kz query": target_digest, "over http": digest_request}
            times: dict[str, list[float]] = {name: [] for name in calls}
            for _ in range(args.runs):
                for name, call in calls.items():
                    times[name] += timed(1, call)
            requests_in_sync = (counter.requests - requests_before - args.runs) / args.runs  # minus the direct digest requests
            if not all(r.in_sync and r.compared == args.items for r in results):
                raise SystemExit(f"the channel should be in sync with {args.items} items: {results}")
            in_sync, ru_query, kz_query, over_http = (times[name] for name in calls)

            repaired: list[float] = []
            repair_requests: list[int] = []
            for number in range(args.repair_runs):
                item_id = break_one_row(kz, number, args.items)
                before = counter.requests
                started = time.perf_counter()
                result = reconcile(ctx, "kz", http)
                repaired.append(time.perf_counter() - started)
                repair_requests.append(counter.requests - before)
                if result.in_sync or result.requeued != 1:
                    raise SystemExit(f"the changed row should have been found and queued again: {result}")
                undo(ru, kz, item_id)
        if args.explain:
            explain(ctx, kz_ctx)

    say(f"\nchannel ru>kz with {args.items} items (ru's outbox also holds {args.items} applied rows for uz)")
    say(f"  reconcile(), in sync:         {ms(in_sync)}; {requests_in_sync:.0f} HTTP request(s) per pass")
    say(f"    digest query on ru (origin): {ms(ru_query)}")
    say(f"    digest query on kz (target): {ms(kz_query)}")
    say(f"    digest request over HTTP:    {ms(over_http)} (kz's query, JWT check, HTTP)")
    say(f"  reconcile(), one row changed: {ms(repaired)}; {statistics.median(repair_requests):.0f} HTTP requests, 1 item queued again")
    print_footer()


if __name__ == "__main__":
    main()
