"""Anti-entropy: each channel compares what the origin believes the target holds with what it does hold.

Both sides reduce their view of the channel, (item id, version, upsert/tombstone), to one digest computed
inside PostgreSQL; when the digests agree (the usual case) that is the whole cost. When they differ, the
items are split into 256 buckets by the first byte of md5(item id), only the differing buckets are
listed, and every item the target lacks or holds at another state is queued again in the outbox (a
target that already has a newer version skips it). Items still in flight are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from sqlalchemy import text
from sqlalchemy.orm import Session

from medsync.context import SyncContext
from medsync.errors import SyncError
from medsync.models import OutboxRow
from medsync.transport import mint_token

_log = structlog.stdlib.get_logger("medsync.reconcile")

# What the origin believes: the newest applied outbox row per item for this target, unless a newer row is in flight.
_EXPECTED = """
    WITH newest AS (
        SELECT DISTINCT ON (item_id) item_id, version, op, status
        FROM federation.outbox WHERE target = :peer ORDER BY item_id, id DESC
    ), settled AS (
        SELECT DISTINCT ON (item_id) item_id, version, op
        FROM federation.outbox WHERE target = :peer AND status = 'applied' ORDER BY item_id, id DESC
    )
    SELECT s.item_id::text AS id, s.version, s.op FROM settled s JOIN newest n USING (item_id)
    WHERE n.status IN ('applied', 'rejected')
"""
# What the target holds from this origin.
_ACTUAL = """
    SELECT id::text AS id, version, CASE WHEN status = 'retracted' THEN 'tombstone' ELSE 'upsert' END AS op
    FROM shared.content_item WHERE origin_region = :peer
"""
_IN_FLIGHT = "SELECT DISTINCT item_id::text FROM federation.outbox WHERE target = :peer AND status IN ('pending', 'sent', 'delivered')"


def _digest_sql(source: str, *, by_bucket: bool) -> str:
    rows = f"SELECT id, version, op, substr(md5(id), 1, 2) AS bucket FROM ({source}) AS r"  # noqa: S608 - composed from this module's constants
    line = "id || ':' || version || ':' || op"
    if by_bucket:
        return f"SELECT bucket, count(*), md5(string_agg({line}, ',' ORDER BY id)) FROM ({rows}) AS b GROUP BY bucket"  # noqa: S608 - composed from this module's constants
    return f"SELECT count(*), coalesce(md5(string_agg({line}, ',' ORDER BY id)), '') FROM ({rows}) AS b"  # noqa: S608 - composed from this module's constants


def digest(session: Session, source: str, peer: str) -> dict[str, Any]:
    count, value = session.execute(text(_digest_sql(source, by_bucket=False)), {"peer": peer}).one()
    return {"count": int(count), "digest": str(value)}


def bucket_digests(session: Session, source: str, peer: str) -> dict[str, str]:
    return {b: d for b, _, d in session.execute(text(_digest_sql(source, by_bucket=True)), {"peer": peer})}


def bucket_items(session: Session, source: str, peer: str, buckets: list[str]) -> dict[str, tuple[int, str]]:
    query = f"SELECT id, version, op FROM ({source}) AS r WHERE substr(md5(id), 1, 2) = ANY(:buckets)"  # noqa: S608 - composed from this module's constants
    return {i: (int(v), str(o)) for i, v, o in session.execute(text(query), {"peer": peer, "buckets": buckets})}


def target_view(ctx: SyncContext, origin: str, *, buckets: list[str] | None = None, detail: bool = False) -> dict[str, Any]:
    """What the target answers on GET /federation/v1/digest."""
    with Session(ctx.engine) as session:
        if buckets:
            return {"items": {i: [v, o] for i, (v, o) in bucket_items(session, _ACTUAL, origin, buckets).items()}}
        if detail:
            return {"buckets": bucket_digests(session, _ACTUAL, origin)}
        return digest(session, _ACTUAL, origin)


@dataclass(frozen=True)
class ReconcileResult:
    in_sync: bool
    compared: int
    requeued: int


def reconcile(ctx: SyncContext, target: str, http: httpx.Client) -> ReconcileResult:
    url = f"{ctx.url_of(target)}/federation/v1/digest"

    def ask(**params: Any) -> dict[str, Any]:
        response = http.get(
            url, params={"origin": ctx.region, **params}, headers={"Authorization": f"Bearer {mint_token(ctx.region, target, ctx.key)}"}
        )
        if response.status_code != 200:
            raise SyncError(f"{target} answered {response.status_code} to a digest request", code="reconcile.unavailable")
        return dict(response.json())

    with Session(ctx.engine) as session:
        mine = digest(session, _EXPECTED, target)
    theirs = ask()
    if theirs == mine:
        return ReconcileResult(True, mine["count"], 0)
    with Session(ctx.engine) as session:
        my_buckets = bucket_digests(session, _EXPECTED, target)
    their_buckets: dict[str, str] = ask(detail="buckets")["buckets"]
    differing = sorted(b for b in set(my_buckets) | set(their_buckets) if my_buckets.get(b) != their_buckets.get(b))
    their_items = {i: (int(v), str(o)) for i, (v, o) in ask(buckets=",".join(differing))["items"].items()}
    with Session(ctx.engine) as session, session.begin():
        expected = bucket_items(session, _EXPECTED, target, differing)
        in_flight = set(session.scalars(text(_IN_FLIGHT), {"peer": target}))
        requeue = [(i, state) for i, state in expected.items() if their_items.get(i) != state and i not in in_flight]
        unknown = [i for i in their_items if i not in expected and i not in in_flight]
        for item_id, (version, op) in requeue:
            session.add(OutboxRow(target=target, item_id=item_id, version=version, op=op))
        for item_id in unknown:
            _log.warning("reconcile.unexpected_item", target=target, item_id=item_id)
    _log.info("reconcile.repaired", target=target, buckets=len(differing), requeued=len(requeue), unexpected=len(unknown))
    return ReconcileResult(False, mine["count"], len(requeue))
