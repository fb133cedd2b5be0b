"""The transfer register: every manifest this node sent or received, with its items, categories, bytes, verdicts and
signing key ids, queryable by period, peer region and item; exported as CSV.

Built from the sync protocol's own records (federation.manifest_out, manifest_in, verdict): the stored envelope is
the evidence, so items and key ids are read from its bytes, never from a summary someone could edit separately.
"""

from __future__ import annotations

import csv
import datetime
import io
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.orm import Session

from medsync.envelope import Envelope
from medsync.manifest import MAX_MANIFEST_BYTES, ManifestBody
from medsync.models import ManifestIn, ManifestOut, Verdict


@dataclass(frozen=True, slots=True)
class Query:
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None
    """Exclusive."""
    peer: str | None = None
    item: uuid.UUID | None = None


@dataclass
class Transfer:
    direction: str
    """out (this node sent it) or in (it reached this node's inbox)."""
    peer: str
    sequence: int | None
    manifest_hash: str
    at: str
    status: str
    items: int
    bytes: int
    categories: list[str] = field(default_factory=list)
    item_ids: list[str] = field(default_factory=list)
    key_ids: list[str] = field(default_factory=list)
    verdicts: dict[str, str] = field(default_factory=dict)
    """item id -> accepted / rejected (the authoritative apply verdict where known)."""
    reasons: list[str] = field(default_factory=list)


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _body(envelope: bytes | None) -> tuple[ManifestBody | None, list[str]]:
    if not envelope:
        return None, []
    try:
        env = Envelope.decode(bytes(envelope), max_bytes=MAX_MANIFEST_BYTES)
        return msgspec.json.decode(env.payload_bytes(), type=ManifestBody), [s.keyid for s in env.signatures]
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError):
        return None, []


def register(session: Session, region: str, query: Query) -> list[Transfer]:
    out_q = select(ManifestOut).order_by(ManifestOut.created_at, ManifestOut.id)
    in_q = select(ManifestIn).order_by(ManifestIn.received_at, ManifestIn.id)
    if query.since:
        out_q, in_q = out_q.where(ManifestOut.created_at >= query.since), in_q.where(ManifestIn.received_at >= query.since)
    if query.until:
        out_q, in_q = out_q.where(ManifestOut.created_at < query.until), in_q.where(ManifestIn.received_at < query.until)
    if query.peer:
        out_q, in_q = out_q.where(ManifestOut.target == query.peer), in_q.where(ManifestIn.origin == query.peer)
    transfers: list[Transfer] = []
    for sent in session.scalars(out_q):
        body, keys = _body(sent.envelope)
        transfers.append(
            _transfer(
                "out", sent.target, sent.sequence, sent.manifest_hash, sent.created_at, sent.status, sent.items, sent.bytes, body, keys
            )
        )
    for got in session.scalars(in_q):
        body, keys = _body(got.envelope)
        transfer = _transfer(
            "in", got.origin, got.sequence, got.manifest_hash, got.received_at, got.status, got.items, got.bytes, body, keys
        )
        transfer.reasons = sorted({str(r.get("code", "")) for r in got.reasons if r.get("code")})
        transfers.append(transfer)
    if query.item:
        wanted = str(query.item)
        transfers = [t for t in transfers if wanted in t.item_ids]
    _attach_verdicts(session, region, transfers)
    transfers.sort(key=lambda t: (t.at, t.direction, t.peer, t.sequence or 0))
    return transfers


def _transfer(  # noqa: PLR0917 - the columns of one register row
    direction: str, peer: str, sequence: int | None, digest: str, at: datetime.datetime, status: str, items: int, size: int,
    body: ManifestBody | None, keys: list[str],
) -> Transfer:  # fmt: skip
    transfer = Transfer(direction, peer, sequence, digest, _iso(at), status, items, size, key_ids=keys)
    if body is not None:
        transfer.item_ids = [item.id for item in body.items]
        transfer.categories = sorted({item.category for item in body.items})
        transfer.items = len(body.items)
    return transfer


def _attach_verdicts(session: Session, region: str, transfers: list[Transfer]) -> None:
    """The most authoritative verdict per item and channel: apply (the target's) over publish over preview."""
    ids = {uuid.UUID(i) for t in transfers for i in t.item_ids}
    if not ids:
        return
    stages = {"preview": 0, "publish": 1, "apply": 2}
    best: dict[tuple[str, str, str], tuple[int, bool]] = {}
    for v in session.scalars(select(Verdict).where(Verdict.item_id.in_(ids)).order_by(Verdict.id)):
        key = (str(v.item_id), v.origin, v.target)
        rank = stages.get(v.stage, 0)
        if key not in best or rank >= best[key][0]:
            best[key] = (rank, v.accepted)
    for t in transfers:
        origin, target = (region, t.peer) if t.direction == "out" else (t.peer, region)
        for item_id in t.item_ids:
            if (found := best.get((item_id, origin, target))) is not None:
                t.verdicts[item_id] = "accepted" if found[1] else "rejected"


def totals(transfers: list[Transfer]) -> dict[str, Any]:
    """Per direction and peer: manifests, items, bytes, statuses and item verdicts (counts only)."""
    table: dict[str, dict[str, Any]] = {}
    for t in transfers:
        entry = table.setdefault(
            f"{t.direction}:{t.peer}",
            {"direction": t.direction, "peer": t.peer, "manifests": 0, "items": 0, "bytes": 0, "statuses": {}, "verdicts": {}},
        )
        entry["manifests"] += 1
        entry["items"] += t.items
        entry["bytes"] += t.bytes
        entry["statuses"][t.status] = entry["statuses"].get(t.status, 0) + 1
        for verdict in t.verdicts.values():
            entry["verdicts"][verdict] = entry["verdicts"].get(verdict, 0) + 1
    return {key: table[key] for key in sorted(table)}


CSV_FIELDS = (
    "direction",
    "peer",
    "sequence",
    "manifest_hash",
    "at",
    "status",
    "items",
    "bytes",
    "categories",
    "item_ids",
    "key_ids",
    "verdicts",
    "reasons",
)


def to_csv(transfers: list[Transfer]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for t in transfers:
        row = asdict(t)
        for name in ("categories", "item_ids", "key_ids", "reasons"):
            row[name] = " ".join(row[name])
        row["verdicts"] = " ".join(f"{k}={v}" for k, v in sorted(t.verdicts.items()))
        writer.writerow(row)
    return out.getvalue()


def to_json(transfers: list[Transfer]) -> list[dict[str, Any]]:
    return [asdict(t) for t in transfers]
