"""Bulk replication ru -> kz and uz: many product notes and 1 MB media files, against two baselines.

    .venv/bin/python bench/sync_throughput.py [--items 10000] [--media 1000] [--media-mb 1] [--to kz,uz] [--wake each|once]

On a fresh local federation:

1. (not timed) ru gets `--items` drafts, each a product note for the `--to` regions (kz and uz); the first
   `--media` of them get one image of `--media-mb` MiB each (random bytes, so no two blobs are alike). The
   drafts are created in-process with ru's ContentService and ru's settings (the editor API would only add
   HTTP round trips).
2. (timed) ru publishes every draft with the same ContentService.publish the editor API calls: version,
   verdicts and outbox rows in one transaction, then a `sync.deliver` wake-up per target on ru's broker.
   Everything after that is the product's: ru's Celery worker builds, signs and posts manifests (at most
   100 items each), the targets' inboxes check them, their apply workers fetch every blob from ru over
   HTTP, verify it, store it and apply the manifest, and send signed receipts back.
   With `--wake each` (the default) each publish wakes the workers at once, as the editor API does, and
   the clock runs from the first publish until every target holds every item; publishing overlaps with
   delivery and its duration is reported separately. With `--wake once` the drafts are published
   without wake-ups, with the beat sweep of the local federation set to once a day, and the clock starts at
   one wake-up per target (a backlog, as after an outage).
3. Baselines on the same machine and the same engines, after our replication has finished, doing the same
   copying: from ru to every `--to` target at once, as our delivery does.
   (a) PostgreSQL logical replication of the same rows (ru's shared.content_item and its
       shared.content_version) between the federation's own clusters (ru's publishes, each target's
       subscribes into a scratch database; the local federation runs with wal_level=logical): the initial
       copy of a subscription (publication with the row filter origin_region = 'ru'), and the streaming of
       the same rows written into a publisher database after the subscriptions exist;
   (b) the same blobs copied by a plain S3 get/put loop (minio client) from ru's object store into a
       scratch bucket of each target's store, one loop per target, all at once.

What differs: we sign and verify every manifest and receipt, run both sides' policy and the border check
on every item, and fetch each blob over HTTP through ru's node with a length and hash check; the
baselines copy rows or bytes and check nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import dataclasses
import io
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any

import psycopg
from _federation import NodeHandle, cpu_report, cpu_snapshot, local_federation, poll, print_footer, print_header, say
from celery import Celery
from minio import Minio
from psycopg.rows import TupleRow

from medplat.config import Settings
from medplat.db.engine import async_engine
from medplat.db.migrate import upgrade
from medplat.domain.content.schemas import DraftCreate
from medplat.domain.content.services import ContentService
from medplat.logs import configure_logging
from medplat.node import object_store
from medsync.items import Text

MIB = 1024 * 1024
BASELINE_BUCKET = "bench-baseline"
Wake = Callable[[Sequence[str]], Awaitable[None]]


# -- 1 and 2: our replication ---------------------------------------------------------------------------


def draft(number: int, targets: Sequence[str]) -> DraftCreate:
    body = (
        "Таблетки теперь выпускаются в упаковке по тридцать штук. Состав, дозировка и условия хранения не изменились; "
        "старая упаковка остаётся в обороте до конца срока годности. "
    ) * 4
    text = Text(language="ru", title=f"Новая форма выпуска, заметка {number}", body=body)
    return DraftCreate(kind="product_note", category="product_note", texts=(text,), specializations=("cardiology",), targets=tuple(targets))


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _in_parallel(count: int, concurrency: int, job: Callable[[int], Awaitable[None]]) -> None:
    """Run job(0..count-1) with at most `concurrency` at a time, in order of the index."""
    numbers = iter(range(count))

    async def lane() -> None:
        for number in numbers:
            await job(number)

    await asyncio.gather(*(lane() for _ in range(concurrency)))


async def create_drafts(settings: Settings, args: argparse.Namespace) -> list[uuid.UUID]:
    targets, items, media, media_bytes, concurrency = args.to, args.items, args.media, args.media_mb * MIB, args.publishers
    from sqlalchemy.ext.asyncio import AsyncSession

    engine = async_engine(settings.database_url, pool_size=concurrency)
    store = object_store(settings)
    ids: list[uuid.UUID | None] = [None] * items

    async def create(number: int) -> None:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            service = ContentService(session, settings, store)
            item = await service.create_draft(draft(number, targets))
            if number < media:
                await service.attach_media(item.id, "image/png", _one_chunk(os.urandom(media_bytes)))
            await session.commit()
            ids[number] = item.id
        if (number + 1) % 1000 == 0:
            say(f"  {number + 1} drafts")

    try:
        await _in_parallel(items, concurrency, create)
    finally:
        await engine.dispose()
    return [i for i in ids if i is not None]


async def publish_all(settings: Settings, ids: list[uuid.UUID], concurrency: int, wake: Wake | None) -> tuple[float, float]:
    """Publish every item; returns the perf_counter times of the first publish call and of the last commit."""
    from sqlalchemy.ext.asyncio import AsyncSession

    engine = async_engine(settings.database_url, pool_size=concurrency)
    store = object_store(settings)
    first = time.perf_counter()

    async def publish(number: int) -> None:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            outcome = await ContentService(session, settings, store, wake=wake).publish(ids[number])
        refused = [t for t, v in outcome.verdicts.items() if not v.accepted]
        if refused:
            raise SystemExit(f"ru's policy refused item {ids[number]} for {refused}: {outcome.verdicts}")
        if (number + 1) % 1000 == 0:
            say(f"  {number + 1} published ({time.perf_counter() - first:.0f} s)")

    try:
        await _in_parallel(len(ids), concurrency, publish)
    finally:
        await engine.dispose()
    return first, time.perf_counter()


def celery_wake(ru: NodeHandle) -> tuple[Celery, Callable[[Sequence[str]], Coroutine[Any, Any, None]]]:
    """The editor API's wake-up (medplat.app.wake_delivery): `sync.deliver` on queue sync.<target> of ru's broker."""
    app = Celery("bench-wake", broker=ru.broker_url, set_as_current=False)

    async def wake(targets: Sequence[str]) -> None:
        for target in targets:
            await asyncio.to_thread(app.send_task, "sync.deliver", args=[target], queue=f"sync.{target}")

    return app, wake


@dataclasses.dataclass
class Ours:
    items: int
    media: int
    media_bytes: int
    wake: str
    publish_seconds: float = 0.0
    total: float = 0.0
    """From the first publish (or the single wake-up) until every item is visible on both targets."""
    per_target: dict[str, float] = dataclasses.field(default_factory=dict)
    receipts: float = 0.0
    after_last_publish: float = 0.0
    manifests: dict[str, tuple[int, float]] = dataclasses.field(default_factory=dict)
    timeline: dict[str, tuple[float, float, float]] = dataclasses.field(default_factory=dict)
    """Per target, seconds after the start: first and last manifest built on ru, first manifest in the target's inbox."""
    cpu: list[str] = dataclasses.field(default_factory=list)


def count(conn: psycopg.Connection[TupleRow], sql: str) -> int:
    row = conn.execute(sql).fetchone()
    return int(row[0]) if row is not None and isinstance(row[0], int) else 0


def replicate(nodes: dict[str, NodeHandle], args: argparse.Namespace) -> Ours:
    ru = nodes["ru"]
    settings = ru.settings
    configure_logging("ru", "WARNING")
    ours = Ours(args.items, args.media, args.media_mb * MIB, args.wake)
    say(f"creating {args.items} drafts on ru ({args.media} with a {args.media_mb} MiB image) ...")
    started = time.perf_counter()
    ids = asyncio.run(create_drafts(settings, args))
    say(f"  drafts created in {time.perf_counter() - started:.1f} s (not timed)")

    app, wake = celery_wake(ru)
    conns = {t: nodes[t].connect() for t in args.to}
    origin = ru.connect()
    try:
        cpu_before, own_before = cpu_snapshot(nodes), time.process_time()
        start_wall = time.time()
        say(f"publishing {len(ids)} items on ru (wake-ups: {args.wake}) ...")
        first, last = asyncio.run(publish_all(settings, ids, args.publishers, wake if args.wake == "each" else None))
        ours.publish_seconds = last - first
        start = first
        if args.wake == "once":
            # The clock, and the CPU accounting, start at the wake-up: publishing is not part of it.
            cpu_before, own_before = cpu_snapshot(nodes), time.process_time()
            start, start_wall = time.perf_counter(), time.time()
            asyncio.run(wake(args.to))
        say(f"  published in {ours.publish_seconds:.1f} s; waiting for {' and '.join(args.to)} ...")

        def everything_applied() -> bool:
            now = time.perf_counter()
            for target, conn in conns.items():
                if target not in ours.per_target:
                    held = count(conn, "SELECT count(*) FROM shared.content_item WHERE origin_region = 'ru' AND status = 'published'")
                    if held >= len(ids):
                        ours.per_target[target] = now - start
            if count(origin, "SELECT count(*) FROM federation.outbox WHERE status = 'rejected'"):
                raise SystemExit("a target rejected items; see federation.outbox.reasons on ru")
            return len(ours.per_target) == len(args.to)

        finished = poll(everything_applied, interval=0.25, timeout=args.timeout, what="every item on every target")
        ours.total = finished - start
        ours.after_last_publish = finished - max(last, start)
        cpu_after, own = cpu_snapshot(nodes), time.process_time() - own_before
        ours.cpu = cpu_report(cpu_before, cpu_after, ours.total)
        ours.cpu.append(f"  (this benchmark's own process, publishing and polling: {own:.1f} s)")

        def receipts_back() -> bool:
            return count(origin, "SELECT count(*) FROM federation.outbox WHERE status <> 'applied'") == 0

        ours.receipts = poll(receipts_back, interval=0.25, timeout=args.timeout, what="every receipt on ru") - start
        for target, conn in conns.items():
            media_rows = count(conn, "SELECT count(*) FROM shared.content_media WHERE key LIKE 'received/ru/%'")
            if media_rows != args.media:
                raise SystemExit(f"{target} holds {media_rows} media rows, expected {args.media}")
            row = origin.execute(
                "SELECT count(*), coalesce(avg(items), 0), extract(epoch FROM min(created_at)), extract(epoch FROM max(created_at)) "
                "FROM federation.manifest_out WHERE target = %s",
                (target,),
            ).fetchone()
            inbox = conn.execute("SELECT extract(epoch FROM min(received_at)) FROM federation.manifest_in WHERE in_chain").fetchone()
            assert row is not None and inbox is not None
            ours.manifests[target] = (int(row[0]), float(row[1]))
            ours.timeline[target] = (float(row[2]) - start_wall, float(row[3]) - start_wall, float(inbox[0]) - start_wall)
    finally:
        for conn in (*conns.values(), origin):
            conn.close()
        app.close()
    return ours


# -- 3a: PostgreSQL logical replication -----------------------------------------------------------------

# Inserts only: a row filter on a publication that also publishes updates would need origin_region in
# ru's replica identity, and ru's node keeps updating these tables.
PUBLICATION = (
    "CREATE PUBLICATION bench_ru FOR TABLE shared.content_item WHERE (origin_region = 'ru'), shared.content_version "
    "WITH (publish = 'insert')"
)
ITEM_ROWS = "SELECT * FROM shared.content_item WHERE origin_region = 'ru'"
VERSION_ROWS = "SELECT v.* FROM shared.content_version v JOIN shared.content_item i ON i.id = v.item_id WHERE i.origin_region = 'ru'"


def copy_rows(source: str, target: str) -> tuple[int, int]:
    """Copy ru's content rows from `source` into the same tables at `target` in one transaction; returns the counts."""
    counts = []
    with psycopg.connect(source) as src, psycopg.connect(target) as dst:
        for select, table in ((ITEM_ROWS, "shared.content_item"), (VERSION_ROWS, "shared.content_version")):
            with (
                src.cursor().copy(f"COPY ({select}) TO STDOUT (FORMAT binary)") as out,
                dst.cursor().copy(f"COPY {table} FROM STDIN (FORMAT binary)") as into,
            ):
                for data in out:
                    into.write(data)
            counts.append(count(dst, f"SELECT count(*) FROM {table}"))  # noqa: S608 - our own table names
    return counts[0], counts[1]


def scratch_database(node: NodeHandle, name: str) -> str:
    """A new database `name` with the node's schema on the node's own cluster; returns its superuser URL."""
    with psycopg.connect(node.superuser_url("postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    url = node.superuser_url(name)
    upgrade(url)
    return url


def subscribe(urls: dict[str, str], database: str, publisher_url: str, *, copy_data: bool) -> None:
    """Subscribe each target's scratch database (`urls`, by region) to publication bench_ru."""
    for code, url in urls.items():
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                f"CREATE SUBSCRIPTION {database}_{code} CONNECTION '{publisher_url}' PUBLICATION bench_ru "
                f"WITH (copy_data = {'true' if copy_data else 'false'})"
            )


def wait_for_rows(urls: dict[str, str], items: int, versions: int, timeout: float) -> dict[str, float]:
    """The perf_counter time at which each subscriber held every row."""
    conns = {code: psycopg.connect(url, autocommit=True) for code, url in urls.items()}
    done: dict[str, float] = {}
    try:

        def caught_up() -> bool:
            for code, conn in conns.items():
                if code not in done and (
                    count(conn, "SELECT count(*) FROM shared.content_item") >= items
                    and count(conn, "SELECT count(*) FROM shared.content_version") >= versions
                ):
                    done[code] = time.perf_counter()
            return len(done) == len(conns)

        poll(caught_up, interval=0.02, timeout=timeout, what="the subscribers")
    finally:
        for conn in conns.values():
            conn.close()
    return done


def unsubscribe(urls: Sequence[str]) -> None:
    """Drop the benchmark's subscriptions (and so their slots on ru's cluster)."""
    for url in urls:
        with psycopg.connect(url, autocommit=True) as conn:
            mine = "SELECT subname FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            for (name,) in conn.execute(mine).fetchall():
                conn.execute(f"DROP SUBSCRIPTION {name}")


@dataclasses.dataclass
class Logical:
    items: int = 0
    versions: int = 0
    initial_copy: float = 0.0
    """Until every subscriber held every row."""
    streaming: float = 0.0
    streaming_write: float = 0.0
    per_target_copy: dict[str, float] = dataclasses.field(default_factory=dict)


def logical_replication(nodes: dict[str, NodeHandle], targets: Sequence[str], timeout: float) -> Logical:
    """ru's own cluster publishes; each target's own cluster subscribes, all at once, as our delivery runs."""
    ru, subscribers = nodes["ru"], [nodes[t] for t in targets]
    result = Logical()
    source = ru.superuser_url()
    result.items = count_rows(source, ITEM_ROWS)
    result.versions = count_rows(source, VERSION_ROWS)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("DROP PUBLICATION IF EXISTS bench_ru")
        conn.execute(PUBLICATION)
    urls: dict[str, str] = {}
    streamed: dict[str, str] = {}
    try:
        # The initial copy: ru's rows as they are in ru's node database when the subscriptions are created.
        urls = {node.code: scratch_database(node, "bench_copy") for node in subscribers}
        started = time.perf_counter()
        subscribe(urls, "bench_copy", source, copy_data=True)
        done = wait_for_rows(urls, result.items, result.versions, timeout)
        result.per_target_copy = {code: at - started for code, at in done.items()}
        result.initial_copy = max(done.values()) - started
        per_target = ", ".join(f"{code} {seconds:.2f} s" for code, seconds in result.per_target_copy.items())
        say(f"  logical replication, initial copy to {', '.join(targets)}: {result.initial_copy:.2f} s ({per_target})")
        # Streaming: the subscriptions exist first, then the same rows are written into a publisher database.
        publisher = scratch_database(ru, "bench_streamed")
        with psycopg.connect(publisher, autocommit=True) as conn:
            conn.execute(PUBLICATION)
        streamed = {node.code: scratch_database(node, "bench_stream") for node in subscribers}
        subscribe(streamed, "bench_stream", publisher, copy_data=False)
        for url in streamed.values():
            with psycopg.connect(url, autocommit=True) as conn:
                poll(
                    lambda: count(conn, "SELECT count(*) FROM pg_stat_subscription WHERE pid IS NOT NULL") > 0,
                    interval=0.05,
                    timeout=60,
                    what="a streaming subscription's worker",
                )
        time.sleep(1.0)  # let the apply workers connect and their slots become active
        started = time.perf_counter()
        copy_rows(ru.database_url, publisher)
        result.streaming_write = time.perf_counter() - started
        result.streaming = max(wait_for_rows(streamed, result.items, result.versions, timeout).values()) - started
        written = f"{result.streaming_write:.2f} s of it writing into the publisher"
        say(f"  logical replication, streaming to {', '.join(targets)}: {result.streaming:.2f} s ({written})")
    finally:
        unsubscribe([*urls.values(), *streamed.values()])
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute("DROP PUBLICATION IF EXISTS bench_ru")
    return result


def count_rows(url: str, select: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return count(conn, f"SELECT count(*) FROM ({select}) AS rows")  # noqa: S608 - our own queries


# -- 3b: S3 get/put loop --------------------------------------------------------------------------------


def minio_for(node: NodeHandle) -> Minio:
    settings = node.settings
    return Minio(settings.s3_endpoint.removeprefix("http://"), settings.s3_access_key, settings.s3_secret_key, secure=False)


@dataclasses.dataclass
class S3Loop:
    objects: int = 0
    bytes_per_target: int = 0
    seconds: float = 0.0
    """Until every target held every blob."""
    per_target: dict[str, float] = dataclasses.field(default_factory=dict)


def s3_copy(nodes: dict[str, NodeHandle], targets: Sequence[str]) -> S3Loop:
    """Copy every blob of ru's media to a scratch bucket in each target's store: one plain loop per target, all at once."""
    ru = nodes["ru"]
    bucket = ru.settings.shared_bucket
    keys = [o.object_name for o in minio_for(ru).list_objects(bucket, prefix="media/", recursive=True) if o.object_name]
    result = S3Loop(objects=len(keys))

    def loop(target: str) -> tuple[int, float]:
        source, into = minio_for(ru), minio_for(nodes[target])
        if not into.bucket_exists(BASELINE_BUCKET):
            into.make_bucket(BASELINE_BUCKET)
        copied = 0
        for key in keys:
            response = source.get_object(bucket, key)
            try:
                data = response.read()
            finally:
                response.close()
                response.release_conn()
            into.put_object(BASELINE_BUCKET, key, io.BytesIO(data), len(data), content_type="image/png")
            copied += len(data)
        return copied, time.perf_counter()

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(targets)) as pool:
        finished = dict(zip(targets, pool.map(loop, targets), strict=True))
    result.bytes_per_target = next(iter(finished.values()))[0]
    result.per_target = {target: at - started for target, (_, at) in finished.items()}
    result.seconds = max(result.per_target.values())
    return result


# -- the run --------------------------------------------------------------------------------------------


def targets_argument(value: str) -> tuple[str, ...]:
    targets = tuple(t.strip() for t in value.split(",") if t.strip())
    if not targets or set(targets) - {"kz", "uz"} or len(set(targets)) != len(targets):
        raise argparse.ArgumentTypeError("--to takes kz, uz or kz,uz")
    return targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000, help="product notes to replicate (default 10000)")
    parser.add_argument("--media", type=int, default=1000, help="how many of them carry one image (default 1000)")
    parser.add_argument("--media-mb", type=int, default=1, help="size of each image in MiB (default 1)")
    parser.add_argument("--to", type=targets_argument, default=("kz", "uz"), help="target regions (default kz,uz)")
    parser.add_argument("--wake", choices=("each", "once"), default="each", help="wake the workers per publish (default) or once")
    parser.add_argument("--publishers", type=int, default=4, help="concurrent sessions creating and publishing on ru (default 4)")
    parser.add_argument("--timeout", type=float, default=3600, help="give up after this many seconds of replication")
    parser.add_argument("--no-baselines", action="store_true", help="skip the logical replication and S3 baselines")
    args = parser.parse_args()
    if args.media > args.items:
        parser.error("--media cannot exceed --items")

    to = " and ".join(args.to)
    print_header(f"sync throughput: {args.items} items, {args.media} x {args.media_mb} MiB media, ru -> {to}")
    if args.wake == "once":
        # A backlog: the beat sweep (every 10 s) would otherwise start delivery while publishing.
        os.environ["MEDFED_SWEEP_SECONDS"] = "86400"
    with local_federation("throughput") as nodes:
        ours = replicate(nodes, args)
        report_ours(ours, args.to)
        if args.no_baselines:
            print_footer()
            return
        say(f"\nbaselines (the federation's own clusters and stores, ru -> {to} at once, after our replication finished):")
        logical = logical_replication(nodes, args.to, args.timeout)
        s3 = s3_copy(nodes, args.to) if args.media else S3Loop()
        if s3.objects:
            per_target = ", ".join(f"{code} {seconds:.2f} s" for code, seconds in s3.per_target.items())
            mib = s3.bytes_per_target / MIB
            say(f"  S3 get/put loops ru -> {to}: {s3.objects} objects, {mib:.0f} MiB per target, {s3.seconds:.2f} s ({per_target})")
    report_baselines(ours, args.to, logical, s3)


def report_ours(ours: Ours, targets: Sequence[str]) -> None:
    mib = ours.media * ours.media_bytes / MIB
    every = "both targets" if len(targets) > 1 else targets[0]
    start = "the first publish" if ours.wake == "each" else "the wake-up after publishing everything"
    say(f"\nours: {ours.items} items + {ours.media} blobs ({mib:.0f} MiB) ru -> {' and '.join(targets)}, wake-ups: {ours.wake}")
    say(f"  publishing on ru took {ours.publish_seconds:.1f} s ({ours.items / ours.publish_seconds:.0f} items/s)")
    say(f"  from {start} until every item is applied on {every}: {ours.total:.1f} s")
    for target, seconds in ours.per_target.items():
        manifests, per_manifest = ours.manifests.get(target, (0, 0.0))
        first_built, last_built, first_in = ours.timeline.get(target, (0.0, 0.0, 0.0))
        say(
            f"    {target}: {seconds:.1f} s ({manifests} manifests, {per_manifest:.0f} items each on average; manifests built on ru "
            f"from {first_built:.1f} s to {last_built:.1f} s, the first one in {target}'s inbox at {first_in:.1f} s)"
        )
    if ours.wake == "each":
        say(f"    of which after the last publish: {ours.after_last_publish:.1f} s")
    say(f"  every receipt back on ru after {ours.receipts:.1f} s")
    moved = len(targets) * mib
    media_rate = f", {mib / ours.total:.1f} MiB/s of media per target ({moved / ours.total:.1f} MiB/s moved)" if ours.media else ""
    deliveries = f"{len(targets) * ours.items / ours.total:.0f} item deliveries/s"
    say(f"  throughput: {ours.items / ours.total:.0f} items/s to {every} ({deliveries}){media_rate}")
    for line in ours.cpu:
        say(f"  {line}")


def report_baselines(ours: Ours, targets: Sequence[str], logical: Logical, s3: S3Loop) -> None:
    to = " and ".join(targets)
    say("\nsummary (every figure: ru -> " + to + ", all targets at once)")
    say(f"  ours: {ours.total:.1f} s for {ours.items} items and {ours.media} blobs")
    say(
        f"  (a) logical replication of {logical.items} content_item + {logical.versions} content_version rows: "
        f"initial copy {logical.initial_copy:.2f} s, streaming {logical.streaming:.2f} s"
    )
    if s3.objects:
        mib = s3.bytes_per_target * len(targets) / MIB
        rate = f"{mib / s3.seconds:.1f} MiB/s"
        say(f"  (b) S3 get/put loops: {s3.objects} objects to each target, {mib:.0f} MiB in all, {s3.seconds:.2f} s ({rate})")
        say(f"  ratio ours / (a initial copy + b): {ours.total / (logical.initial_copy + s3.seconds):.2f}x   (goal: within 2x)")
        say(f"  ratio ours / (a streaming + b):    {ours.total / (logical.streaming + s3.seconds):.2f}x")
        say(f"  ratio ours / b alone:              {ours.total / s3.seconds:.2f}x")
    say(f"  ratio ours / a initial copy:       {ours.total / logical.initial_copy:.1f}x")
    say(f"  ratio ours / a streaming:          {ours.total / logical.streaming:.1f}x")
    print_footer()


if __name__ == "__main__":
    main()
