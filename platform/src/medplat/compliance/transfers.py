"""The transfer register: every manifest this node sent or received, with its items, categories, bytes, verdicts and
signatures, queryable by period, peer region and item; exported as CSV.

Built from the sync protocol's own records (federation.manifest_out, manifest_in, verdict): the stored envelope is
the evidence, so items and signatures are read from its bytes, never from a summary someone could edit separately.
A row's verdicts are that manifest's own: the receipt stored with it (the target's decision on exactly this
sequence and hash), else the origin's send-stage verdicts written with it. federation.verdict rows name an item
version and a channel but no manifest, so an item sent in several manifests cannot be told apart by them alone.
"""

from __future__ import annotations

import csv
import datetime
import io
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import msgspec
from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from medsync.envelope import Envelope
from medsync.manifest import MAX_MANIFEST_BYTES, ManifestBody
from medsync.models import ManifestIn, ManifestOut, Verdict
from medsync.receipts import MAX_RECEIPT_BYTES, Receipt

RECEIPT_VERDICTS = {"applied": "accepted", "refused": "rejected", "skipped": "skipped"}
"""A receipt item's status as a register verdict. skipped: not applied though the policy did not refuse it (the
target held a later version or a tombstone, or another item of the manifest was refused)."""


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
    versions: dict[str, int] = field(default_factory=dict)
    """item id -> the version this manifest carried."""
    signatures: list[dict[str, str]] = field(default_factory=list)
    """The envelope's signatures as stored: {"keyid": ..., "sig": base64 Ed25519 signature}."""
    verdicts: dict[str, str] = field(default_factory=dict)
    """item id -> accepted / rejected / skipped, for this manifest only."""
    verdicts_from: str = ""
    """receipt (this manifest's receipt), send (the origin's verdicts written with it; no receipt yet) or empty."""
    reasons: list[str] = field(default_factory=list)


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _body(envelope: bytes | None) -> tuple[ManifestBody | None, list[dict[str, str]]]:
    if not envelope:
        return None, []
    try:
        env = Envelope.decode(bytes(envelope), max_bytes=MAX_MANIFEST_BYTES)
        return msgspec.json.decode(env.payload_bytes(), type=ManifestBody), [{"keyid": s.keyid, "sig": s.sig} for s in env.signatures]
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError):
        return None, []


def _receipt(stored: dict[str, object] | None) -> Receipt | None:
    """The receipt kept with a manifest: as builtins on the origin (manifest_out), as its signed envelope on the
    target (manifest_in). Either way the node's own record; the origin verified the target's signature on arrival."""
    if not stored:
        return None
    try:
        if isinstance(envelope := stored.get("envelope"), str):
            payload = Envelope.decode(envelope.encode(), max_bytes=MAX_RECEIPT_BYTES).payload_bytes()
            return msgspec.json.decode(payload, type=Receipt)
        return msgspec.convert(stored, type=Receipt)
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError):
        return None


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
    unanswered: list[tuple[Transfer, datetime.datetime]] = []
    for sent in session.scalars(out_q):
        body, signatures = _body(sent.envelope)
        transfer = _transfer(
            "out", sent.target, sent.sequence, sent.manifest_hash, sent.created_at, sent.status, sent.items, sent.bytes, body, signatures
        )
        if not _receipt_verdicts(transfer, _receipt(sent.receipt)):
            unanswered.append((transfer, sent.created_at))
        transfers.append(transfer)
    for got in session.scalars(in_q):
        body, signatures = _body(got.envelope)
        transfer = _transfer(
            "in", got.origin, got.sequence, got.manifest_hash, got.received_at, got.status, got.items, got.bytes, body, signatures
        )
        transfer.reasons = sorted({str(r.get("code", "")) for r in got.reasons if r.get("code")})
        _receipt_verdicts(transfer, _receipt(got.receipt))
        transfers.append(transfer)
    if query.item:
        wanted = str(query.item)
        transfers = [t for t in transfers if wanted in t.item_ids]
        unanswered = [(t, at) for t, at in unanswered if wanted in t.item_ids]
    _send_verdicts(session, region, unanswered)
    transfers.sort(key=lambda t: (t.at, t.direction, t.peer, t.sequence or 0))
    return transfers


def _transfer(  # noqa: PLR0917 - the columns of one register row
    direction: str, peer: str, sequence: int | None, digest: str, at: datetime.datetime, status: str, items: int, size: int,
    body: ManifestBody | None, signatures: list[dict[str, str]],
) -> Transfer:  # fmt: skip
    transfer = Transfer(direction, peer, sequence, digest, _iso(at), status, items, size, signatures=signatures)
    if body is not None:
        transfer.item_ids = [item.id for item in body.items]
        transfer.versions = {item.id: item.version for item in body.items}
        transfer.categories = sorted({item.category for item in body.items})
        transfer.items = len(body.items)
    return transfer


def _receipt_verdicts(transfer: Transfer, receipt: Receipt | None) -> bool:
    """The decision on this manifest, when its receipt is for exactly this sequence and hash."""
    if receipt is None or receipt.sequence != transfer.sequence or receipt.manifest_hash != transfer.manifest_hash:
        return False
    transfer.verdicts = {item.id: RECEIPT_VERDICTS[item.status] for item in receipt.items}
    transfer.verdicts_from = "receipt"
    return True


def _send_verdicts(session: Session, region: str, transfers: list[tuple[Transfer, datetime.datetime]]) -> None:
    """Sent manifests not answered yet: the origin's send-stage verdict on each of their item versions, the latest one
    written no later than the manifest (the outbound worker writes them in the manifest's own transaction)."""
    wanted = {(uuid.UUID(i), v, t.peer) for t, _ in transfers for i, v in t.versions.items()}
    if not wanted:
        return
    found: dict[tuple[str, int, str], list[tuple[datetime.datetime, bool]]] = {}
    rows = session.execute(
        select(Verdict.item_id, Verdict.version, Verdict.target, Verdict.created_at, Verdict.accepted)
        .where(Verdict.origin == region, Verdict.stage == "send")
        .where(tuple_(Verdict.item_id, Verdict.version, Verdict.target).in_(list(wanted)))
        .order_by(Verdict.created_at, Verdict.id)
    )
    for item_id, version, target, created, accepted in rows:
        found.setdefault((str(item_id), version, target), []).append((created, accepted))
    for t, built in transfers:
        for item_id, version in t.versions.items():
            earlier = [accepted for created, accepted in found.get((item_id, version, t.peer), []) if created <= built]
            if earlier:
                t.verdicts[item_id] = "accepted" if earlier[-1] else "rejected"
        if t.verdicts:
            t.verdicts_from = "send"


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
    "versions",
    "signatures",
    "verdicts",
    "verdicts_from",
    "reasons",
)


def to_csv(transfers: list[Transfer]) -> str:
    """One line per manifest; list cells are space-separated, a signature as `keyid:base64`, a version or verdict as
    `item=value`."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for t in transfers:
        row = to_json([t])[0]
        for name in ("categories", "item_ids", "reasons"):
            row[name] = " ".join(row[name])
        row["versions"] = " ".join(f"{k}={v}" for k, v in t.versions.items())
        row["signatures"] = " ".join(f"{s['keyid']}:{s['sig']}" for s in t.signatures)
        row["verdicts"] = " ".join(f"{k}={v}" for k, v in sorted(t.verdicts.items()))
        writer.writerow(row)
    return out.getvalue()


def to_json(transfers: list[Transfer]) -> list[dict[str, Any]]:
    return [asdict(t) for t in transfers]
