"""Celery tasks of the sync service: deliver per target, apply per origin, send receipts, sweep.

Delivery runs on one queue per target (`sync.<target>`), so a target that is down delays only its own
queue. Tasks retry with exponential backoff and a cap, forever: the outbox and the inbox in the database
hold the work, the broker only carries wake-ups, and the beat sweep re-creates any lost wake-up.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import structlog

from medplat.worker import app
from medsync import inbound, outbound
from medsync.context import default_context
from medsync.transport import shared_client

_log = structlog.stdlib.get_logger("medsync.tasks")
# Every failure of these idempotent tasks is retried, with exponential backoff capped at two minutes, forever:
# a delivery is never dropped. What failed is in the logs and in `medfed sync status`.
RETRY = {"autoretry_for": (Exception,), "retry_backoff": 2, "retry_backoff_max": 120, "retry_jitter": True, "max_retries": None}


def delivery_queue(target: str) -> str:
    return f"sync.{target}"


INBOX_QUEUE = "inbox"


@app.task(name="sync.deliver", bind=True, **RETRY)  # type: ignore[untyped-decorator]
def deliver(self: object, target: str) -> int:
    """Build manifests for the target's pending outbox rows and send what it has not taken yet."""
    ctx = default_context()
    http = shared_client(ctx.federation_ca_file)
    sent = outbound.send_manifests(ctx, target, http).sent  # what an earlier run built but could not send
    # One manifest at a time, each posted as soon as it is signed, by one sender thread (so still in
    # order) while this thread builds the next: a backlog keeps the target's inbox and this worker busy
    # at once instead of each waiting for the other. A failed post ends the task at the next manifest.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"send-{target}") as sender:
        posting: Future[outbound.SendResult] | None = None
        while outbound.build_manifests(ctx, target, limit=1):
            if posting is None or posting.done():
                sent += posting.result().sent if posting is not None else 0
                posting = sender.submit(outbound.send_manifests, ctx, target, http)
        sent += posting.result().sent if posting is not None else 0
    return sent + outbound.send_manifests(ctx, target, http).sent  # what was built while the last post ran


@app.task(name="sync.apply", **RETRY)  # type: ignore[untyped-decorator]
def apply(origin: str) -> int:
    """Decide the origin's received manifests in order, then send the receipts."""
    ctx = default_context()
    http = shared_client(ctx.federation_ca_file)
    decided = inbound.apply_pending(ctx, origin, http)
    if decided:
        send_receipts.apply_async(queue=INBOX_QUEUE)
    return decided


@app.task(name="sync.send_receipts", **RETRY)  # type: ignore[untyped-decorator]
def send_receipts() -> int:
    ctx = default_context()
    sent = 0
    http = shared_client(ctx.federation_ca_file)
    for manifest_id in inbound.unsent_receipts(ctx):
        inbound.send_receipt(ctx, manifest_id, http)
        sent += 1
    return sent


@app.task(name="sync.reconcile", **RETRY)  # type: ignore[untyped-decorator]
def reconcile(target: str) -> bool:
    """Compare the channel's digest with the target's and queue again whatever differs."""
    from medsync.reconcile import reconcile as compare

    ctx = default_context()
    http = shared_client(ctx.federation_ca_file)
    result = compare(ctx, target, http)
    if result.requeued:
        deliver.apply_async(args=[target], queue=delivery_queue(target))
    return result.in_sync


@app.task(name="sync.reconcile_all")  # type: ignore[untyped-decorator]
def reconcile_all() -> None:
    ctx = default_context()
    for target in ctx.peers_in_trust():
        reconcile.apply_async(args=[target], queue=delivery_queue(target), expires=600)


@app.task(name="sync.sweep")  # type: ignore[untyped-decorator]
def sweep() -> None:
    """The backstop: wake delivery, apply and receipts for whatever the database says is waiting."""
    ctx = default_context()
    for target in outbound.pending_targets(ctx):
        deliver.apply_async(args=[target], queue=delivery_queue(target), expires=60)
    for origin in inbound.channels_with_work(ctx):
        apply.apply_async(args=[origin], queue=INBOX_QUEUE, expires=60)
    if inbound.unsent_receipts(ctx):
        send_receipts.apply_async(queue=INBOX_QUEUE, expires=60)
