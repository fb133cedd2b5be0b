"""Data-subject requests on the compliance side: reminders before and after the deadline, extensions where the law
allows one, and the destruction act Russian law asks for after an erasure.

Reminders are recorded on the request row and as an audit leaf (a DSR step); the log line names the request id
only. The destruction act (Roskomnadzor order No. 179 of 28 Oct 2022: an act plus an extract from the event log)
is built from the erasure's audit leaves with inclusion proofs against a signed, cosigned checkpoint.
"""

from __future__ import annotations

import base64
import datetime
import json
import uuid
from typing import Any

import structlog
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from medplat.audit import log, merkle
from medplat.compliance import deadlines
from medplat.compliance.hooks import dsr_step
from medplat.config import Settings

_log = structlog.stdlib.get_logger("medplat.compliance")

ACT_SPEC = "medfed-destruction-act/1"


class DsrError(Exception):
    """A request we cannot act on; the message is one line for the operator."""


def _today(settings: Settings) -> datetime.date:
    return deadlines.local_date(datetime.datetime.now(datetime.UTC), settings.region.timezone)


def reminders(session: Session, settings: Settings, today: datetime.date | None = None, within: int = 2) -> dict[str, int]:
    """Record a reminder for every open request that newly became due soon (within `within` working days) or overdue."""
    from medplat.domain.accounts.models import DataSubjectRequest

    today = today or _today(settings)
    country = settings.region.country
    counts = {"open": 0, "due_soon": 0, "overdue": 0, "recorded": 0}
    now = datetime.datetime.now(datetime.UTC)
    rows = session.scalars(select(DataSubjectRequest).where(DataSubjectRequest.status == "received").with_for_update(skip_locked=True))
    for row in rows:
        counts["open"] += 1
        deadline = row.extended_due_on or row.due_on
        if today > deadline:
            level = "overdue"
        elif deadlines.working_days_between(country, today, deadline) <= within:
            level = "due_soon"
        else:
            continue
        counts[level] += 1
        if row.reminder == level:
            continue
        row.reminder, row.reminded_at = level, now
        dsr_step(session, row.id, row.kind, f"reminder_{level}")
        counts["recorded"] += 1
        _log.warning("dsr.reminder", dsr_id=str(row.id), kind=row.kind, level=level, due_on=deadline.isoformat())
    return counts


def extend(session: Session, settings: Settings, dsr_id: uuid.UUID) -> datetime.date:
    """Extend an open request's deadline as far as the country's law allows (after a reasoned notice to the person)."""
    from medplat.domain.accounts.models import DataSubjectRequest

    row = session.get(DataSubjectRequest, dsr_id, with_for_update=True)
    if row is None:
        raise DsrError(f"no data-subject request {dsr_id} on this node")
    if row.status != "received":
        raise DsrError(f"request {dsr_id} is already {row.status}")
    if row.extended_due_on is not None:
        raise DsrError(f"request {dsr_id} was already extended to {row.extended_due_on.isoformat()}")
    extended = deadlines.extended_due_on(settings.region.country, row.kind, row.due_on)
    if extended is None:
        raise DsrError(f"the law of {settings.region.country} allows no extension for {row.kind} requests")
    row.extended_due_on, row.reminder = extended, None
    dsr_step(session, row.id, row.kind, "extended")
    return extended


def destruction_act(session: Session, settings: Settings, dsr_id: uuid.UUID) -> dict[str, Any]:
    """The act for a completed erasure: what was destroyed, when and how, with the audit extract that proves it.

    Signs a checkpoint first if the log has grown past the last one, so every leaf of the request is covered.
    """
    from medplat.domain.accounts.models import DataSubjectRequest

    row = session.get(DataSubjectRequest, dsr_id)
    if row is None or row.kind != "erasure":
        raise DsrError(f"no erasure request {dsr_id} on this node")
    if row.status != "completed" or row.completed_at is None:
        raise DsrError(f"erasure request {dsr_id} is not completed yet ({row.status})")
    leaves = session.execute(
        text(
            "SELECT idx, entry FROM audit.leaf WHERE kind = 'dsr_step' "
            "AND convert_from(entry, 'UTF8')::jsonb -> 'payload' ->> 'dsr_id' = :id ORDER BY idx"
        ),
        {"id": str(dsr_id)},
    ).all()
    if not leaves:
        raise DsrError(f"the audit log holds no step of request {dsr_id}")
    checkpoint = log.latest_checkpoint(session)
    if checkpoint is None or checkpoint.size <= leaves[-1].idx:
        checkpoint = log.checkpoint(session, settings.region.code, settings.signing_key) or log.latest_checkpoint(session)
    assert checkpoint is not None
    extract = []
    completed: dict[str, Any] = {}
    for idx, entry in leaves:
        proof = log.inclusion_proof(session, idx, checkpoint.size)
        leaf_hash = merkle.leaf_hash(bytes(entry))
        merkle.verify_inclusion(idx, checkpoint.size, leaf_hash, proof, checkpoint.root_hash)
        document = json.loads(bytes(entry))
        if document["payload"].get("step") == "completed":
            completed = document["payload"]
        extract.append(
            {
                "index": idx,
                "entry": bytes(entry).decode("utf-8"),
                "leaf_hash": base64.b64encode(leaf_hash).decode("ascii"),
                "inclusion_proof": [base64.b64encode(p).decode("ascii") for p in proof],
            }
        )
    return {
        "spec": ACT_SPEC,
        "region": settings.region.code,
        "country": settings.region.country,
        "operator_node": settings.public_url or settings.region.code,
        "request": {
            "id": str(row.id),
            "subject_ref": str(row.doctor_id),
            "kind": row.kind,
            "requested_at": row.requested_at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "due_on": (row.extended_due_on or row.due_on).isoformat(),
            "completed_at": row.completed_at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "destroyed": {
            "rows_by_table": completed.get("rows", {}),
            "objects": completed.get("objects", 0),
            "bucket": completed.get("bucket", settings.personal_bucket),
            "search_index": "none: the node has no search index",
            "method": "rows deleted in one PostgreSQL transaction; objects removed from the S3 bucket before it "
            "(medplat AccountService.erase)",
            "reason": "the data subject's request for erasure",
        },
        "event_log_extract": {
            "checkpoint": log.cosigned_note(session, checkpoint),
            "tree_size": checkpoint.size,
            "leaves": extract,
        },
    }


def verify_act_extract(act: dict[str, Any]) -> None:
    """Each leaf of the extract is in the tree the checkpoint signs (the checkpoint's signatures are checked by the caller)."""
    from medplat.audit.note import parse_note

    head, _ = parse_note(act["event_log_extract"]["checkpoint"])
    for leaf in act["event_log_extract"]["leaves"]:
        entry = leaf["entry"].encode("utf-8")
        proof = [base64.b64decode(p) for p in leaf["inclusion_proof"]]
        merkle.verify_inclusion(leaf["index"], head.size, merkle.leaf_hash(entry), proof, head.root)
        if json.loads(entry)["payload"].get("dsr_id") != act["request"]["id"]:
            raise merkle.ProofError(f"leaf {leaf['index']} is not a step of request {act['request']['id']}")
