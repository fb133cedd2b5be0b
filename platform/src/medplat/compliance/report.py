"""The signed residency report of one node and its signed summary, their offline verification, the report's CSV and
PDF renderings, and the federation view built only from verified summaries.

Both are RFC 8785 JSON signed with the node's Ed25519 key as a DSSE envelope (the same envelope as manifests, payload
types `application/vnd.medfed.residency-report+json` and `...residency-summary+json`). The report is for the
node's own officer: counts, and the scan's findings by address (row ids, object keys). The summary is for the HQ
officer: counts and verdicts only, no address, no id, no key. The audit checkpoint inside either is the node's
signed note with the other nodes' cosignatures, so an auditor can check the log head against keys the node does not
control.
"""

from __future__ import annotations

import base64
import csv
import datetime
import hashlib
import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from medplat.audit import log
from medplat.audit.note import NoteError, parse_note, signer_of
from medplat.audit.note import verify as verify_note
from medplat.compliance import transfers as transfer_register
from medplat.compliance.datamap import DataMap, Location
from medplat.compliance.scan import ScanResult
from medplat.config import Settings
from medsync import envelope as dsse
from medsync.canonical import canonical_bytes, parse_canonical
from medsync.errors import CanonicalError, SyncError

SPEC = "medfed-residency-report/1"
PAYLOAD_TYPE = "application/vnd.medfed.residency-report+json"
SUMMARY_SPEC = "medfed-residency-summary/1"
SUMMARY_PAYLOAD_TYPE = "application/vnd.medfed.residency-summary+json"
ACT_SPEC = "medfed-destruction-act/1"
ACT_PAYLOAD_TYPE = "application/vnd.medfed.destruction-act+json"
SPECS = {PAYLOAD_TYPE: SPEC, SUMMARY_PAYLOAD_TYPE: SUMMARY_SPEC, ACT_PAYLOAD_TYPE: ACT_SPEC}
NAMES = {PAYLOAD_TYPE: "residency report", SUMMARY_PAYLOAD_TYPE: "residency summary", ACT_PAYLOAD_TYPE: "destruction act"}
WHY_EXPECTED = {SUMMARY_PAYLOAD_TYPE: "the federation view is built from each node's signed summary (`medfed compliance summary`) only"}
MAX_REPORT_BYTES = 8 * 1024 * 1024

KeysOf = Callable[[str], list[Ed25519PublicKey]]


class ReportError(SyncError):
    """A report that does not verify; the message is the one line `medfed compliance verify` prints."""

    code = "report.invalid"


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _about(
    spec: str, settings: Settings, now: datetime.datetime, since: datetime.datetime | None, until: datetime.datetime
) -> dict[str, Any]:
    """What a report or summary is about: its kind, the node's region and law, when, and the period of its transfers."""
    region = settings.region
    return {
        "spec": spec,
        "region": region.code,
        "country": region.country,
        "law": region.law,
        "generated_at": _iso(now),
        "period": {"from": _iso(since) if since else None, "to": _iso(until)},
    }


def _dsr_by_kind_and_status(session: Session) -> dict[str, int]:
    from medplat.domain.accounts.models import DataSubjectRequest

    kind, status = DataSubjectRequest.kind, DataSubjectRequest.status
    rows = session.execute(select(kind, status, func.count()).group_by(kind, status)).all()
    return {f"{k}.{s}": count for k, s, count in sorted(rows)}


def _audit(session: Session) -> dict[str, Any]:
    checkpoint = log.latest_checkpoint(session)
    return {"size": log.size(session), "checkpoint": log.cosigned_note(session, checkpoint) if checkpoint is not None else None}


def _period(
    session: Session, settings: Settings, datamap: DataMap, since: datetime.datetime | None, until: datetime.datetime | None
) -> tuple[datetime.datetime, list[transfer_register.Transfer], Location]:
    """What a report and a summary both start from: the time now, the period's transfers, the stores' location."""
    now = datetime.datetime.now(datetime.UTC)
    moved = transfer_register.register(session, settings.region.code, transfer_register.Query(since=since, until=until or now))
    location = datamap.location
    assert location is not None
    return now, moved, location


def build(
    session: Session,
    settings: Settings,
    datamap: DataMap,
    scan: ScanResult,
    *,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
) -> dict[str, Any]:
    """The report document (not yet signed)."""
    now, moved, location = _period(session, settings, datamap, since, until)
    until = until or now
    return {
        **_about(SPEC, settings, now, since, until),
        "node": {"public_url": settings.public_url, "signing_key_id": dsse.key_id(settings.signing_key.public_key())},
        "cluster": {"system_identifier": location.cluster_id, "database": location.database, "server_version": location.server_version},
        "object_store": {"endpoint": location.s3_endpoint, "buckets": dict(sorted(location.buckets.items()))},
        "datamap": datamap.summary(),
        "scan": {
            **scan.summary(),
            "started_at": scan.started_at,
            "milliseconds": round(scan.seconds * 1000),
            "findings": [{"check": f.check, "severity": str(f.severity), "object": f.object, "problem": f.problem} for f in scan.findings],
        },
        "transfers": {"manifests": len(moved), "by_peer": list(transfer_register.totals(moved).values())},
        "dsr": _dsr_by_kind_and_status(session),
        "audit": _audit(session),
    }


def build_summary(
    session: Session,
    settings: Settings,
    datamap: DataMap,
    scan: ScanResult,
    *,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
) -> dict[str, Any]:
    """The summary document (not yet signed): what the HQ officer may see of the node, counts and verdicts only.

    Everything in it is a count, a verdict, a code name of a check, region or status, a time, the cluster's system
    identifier or the audit checkpoint; every string it could take from a row (a finding's object, an item id, a key)
    stays out, and the test walks every string of a summary to hold it to that.
    """
    now, moved, location = _period(session, settings, datamap, since, until)
    until = until or now
    audit = _audit(session)
    head = parse_note(audit["checkpoint"])[0] if audit["checkpoint"] else None
    return {
        **_about(SUMMARY_SPEC, settings, now, since, until),
        "cluster": {"system_identifier": location.cluster_id},
        "datamap": datamap.summary(),
        "scan": {"ok": scan.ok, "by_severity": scan.by_severity(), "checks": scan.per_check()},
        "transfers": _transfer_counts(moved),
        "dsr": _dsr_deadlines(session, settings, scan),
        "audit": audit | {
            "checkpoint_size": head.size if head else None,
            "checkpoint_root": base64.b64encode(head.root).decode() if head else None,
        },
    }  # fmt: skip


def _transfer_counts(moved: list[transfer_register.Transfer]) -> list[dict[str, Any]]:
    """Per direction and peer region: manifests, items and bytes in all and by manifest status, item verdicts."""
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for t in moved:
        entry = table.setdefault(
            (t.direction, t.peer),
            {"direction": t.direction, "peer": t.peer, "manifests": 0, "items": 0, "bytes": 0, "by_status": {}, "verdicts": {}},
        )
        status = entry["by_status"].setdefault(t.status, {"manifests": 0, "items": 0, "bytes": 0})
        for target in (entry, status):
            target["manifests"] += 1
            target["items"] += t.items
            target["bytes"] += t.bytes
        for verdict in t.verdicts.values():
            entry["verdicts"][verdict] = entry["verdicts"].get(verdict, 0) + 1
    return [table[key] for key in sorted(table)]


def _dsr_deadlines(session: Session, settings: Settings, scan: ScanResult) -> dict[str, Any]:
    """Requests against their deadlines: open ones as the scan judged them (same snapshot), answered ones by the
    node's local date of the answer against the deadline (extended where the law allowed it)."""
    from medplat.domain.accounts.models import DataSubjectRequest as Dsr

    answered_on = func.date(func.timezone(settings.region.timezone, Dsr.completed_at))
    on_time = answered_on <= func.coalesce(Dsr.extended_due_on, Dsr.due_on)
    open_, answered, in_time = session.execute(
        select(
            func.count().filter(Dsr.status == "received"),
            func.count().filter(Dsr.status != "received"),
            func.count().filter(Dsr.status != "received", on_time),
        )
    ).one()
    overdue, due_soon = scan.counts.get("dsr_deadlines.overdue", 0), scan.counts.get("dsr_deadlines.due_soon", 0)
    return {
        "open": {"on_time": open_ - overdue - due_soon, "due_soon": due_soon, "overdue": overdue},
        "answered": {"on_time": in_time, "late": answered - in_time},
        "by_kind_and_status": _dsr_by_kind_and_status(session),
    }


def sign(document: dict[str, Any], key: Ed25519PrivateKey, payload_type: str = PAYLOAD_TYPE) -> bytes:
    """The file: the DSSE envelope's JSON, exactly as `verify` expects it."""
    return dsse.sign(payload_type, canonical_bytes(document), [key]).encode()


@dataclass
class Verified:
    document: dict[str, Any]
    key_id: str
    cosigners: list[str] = field(default_factory=list)
    sha256: str = ""


def verify(data: bytes, keys_of: KeysOf, explicit: list[Ed25519PublicKey] | None = None, *, expect: str | None = None) -> Verified:
    """Check a report, summary or destruction act offline; ReportError with one line otherwise.

    Every byte counts: the file must be exactly the envelope's own encoding, the signature must be by a trusted key
    of the region the document names, the key id written beside it must be that key's, and the audit checkpoint
    inside must carry the node's valid signature (cosignatures by other nodes are checked against their keys).
    `explicit` keys, when given, replace the trust file's keys for the document's own region. `expect` (a payload
    type) refuses any other kind of document before its signature is even checked.
    """
    try:
        envelope = dsse.Envelope.decode(data, max_bytes=MAX_REPORT_BYTES)
    except SyncError as exc:
        raise ReportError(f"not a signed report: {exc.message}") from None
    if envelope.encode() != data:
        raise ReportError("the file holds bytes outside the signed envelope's encoding (altered or padded)")
    try:
        unverified = parse_canonical(envelope.payload_bytes(), max_bytes=MAX_REPORT_BYTES)
    except CanonicalError as exc:
        raise ReportError(f"the signed payload is not canonical JSON: {exc.message}") from None
    spec = SPECS.get(envelope.payloadType)
    if spec is None:
        raise ReportError(f"payload type {envelope.payloadType[:80]!a} is not a residency report, residency summary or destruction act")
    if expect is not None and envelope.payloadType != expect:
        why = f": {WHY_EXPECTED[expect]}" if expect in WHY_EXPECTED else ""
        raise ReportError(f"a {NAMES[envelope.payloadType]}, not a {NAMES[expect]}{why}")
    if not isinstance(unverified, dict) or unverified.get("spec") != spec or not isinstance(unverified.get("region"), str):
        raise ReportError(f"not a {spec} document")
    region = unverified["region"]
    keys = explicit or keys_of(region)
    if not keys:
        raise ReportError(f"no trusted key for region {region!r}: pass --key or a trust folder that lists it")
    try:
        dsse.verify(envelope, payload_type=envelope.payloadType, trusted=keys)
    except SyncError as exc:
        raise ReportError(f"signature: {exc.message}") from None
    trusted_ids = {dsse.key_id(k) for k in keys}
    for signature in envelope.signatures:
        if signature.keyid not in trusted_ids:
            raise ReportError(f"signature: key id {signature.keyid[:16]}... is not a trusted key of {region}")
    if spec == ACT_SPEC:
        return _verified_act(unverified, region=region, keys=keys, keys_of=keys_of, key_id=envelope.signatures[0].keyid, data=data)
    if spec == SUMMARY_SPEC:
        cosigners = _check_checkpoint(unverified, region, keys, keys_of)
        _check_summary_head(unverified)
        return Verified(unverified, envelope.signatures[0].keyid, cosigners, hashlib.sha256(data).hexdigest())
    if unverified["node"].get("signing_key_id") not in trusted_ids:
        raise ReportError(
            f"the report names signing key {str(unverified['node'].get('signing_key_id'))[:16]}..., not a trusted key of {region}"
        )
    cosigners = _check_checkpoint(unverified, region, keys, keys_of)
    return Verified(unverified, envelope.signatures[0].keyid, cosigners, hashlib.sha256(data).hexdigest())


def _verified_act(
    document: dict[str, Any], *, region: str, keys: list[Ed25519PublicKey], keys_of: KeysOf, key_id: str, data: bytes
) -> Verified:
    """A destruction act: its extract's leaves are in the tree its checkpoint signs, and the checkpoint is the node's."""
    from medplat.audit.merkle import ProofError
    from medplat.compliance.dsr import verify_act_extract

    extract = document.get("event_log_extract") or {}
    if not isinstance(extract.get("checkpoint"), str):
        raise ReportError("event log extract: no signed checkpoint")
    cosigners = _check_checkpoint(
        {"audit": {"checkpoint": extract.get("checkpoint"), "size": extract.get("tree_size", -1)}}, region, keys, keys_of
    )
    try:
        verify_act_extract(document)
    except (ProofError, KeyError, TypeError, ValueError) as exc:
        raise ReportError(f"event log extract: {exc}") from None
    return Verified(document, key_id, cosigners, hashlib.sha256(data).hexdigest())


def _check_summary_head(document: dict[str, Any]) -> None:
    """The size and root a summary states are those of the checkpoint it carries (already verified)."""
    audit = document.get("audit") or {}
    note = audit.get("checkpoint")
    head = parse_note(note)[0] if isinstance(note, str) else None
    stated = (audit.get("checkpoint_size"), audit.get("checkpoint_root"))
    if stated != ((head.size, base64.b64encode(head.root).decode()) if head else (None, None)):
        raise ReportError("audit: the checkpoint size and root the summary states are not those of its signed checkpoint")


def _check_checkpoint(document: dict[str, Any], region: str, keys: list[Ed25519PublicKey], keys_of: KeysOf) -> list[str]:
    audit = document.get("audit") or {}
    note = audit.get("checkpoint")
    if note is None:
        return []
    try:
        head, signatures = parse_note(note)
        verify_note(head, next(s for s in signatures if s.name == signer_of(region)), signer_of(region), keys)
    except (NoteError, StopIteration, TypeError) as exc:
        raise ReportError(f"audit checkpoint: no valid signature by {region}'s key ({exc})") from None
    if head.size > audit.get("size", -1):
        raise ReportError(f"audit checkpoint signs {head.size} leaves but the report says the log holds {audit.get('size')}")
    cosigners = []
    for signature in signatures:
        peer = signature.name.rsplit("/", 1)[-1]
        if signature.name == signer_of(region) or not (peer_keys := keys_of(peer)):
            continue
        try:
            verify_note(head, signature, signer_of(peer), peer_keys)
        except NoteError as exc:
            raise ReportError(f"audit checkpoint: the cosignature of {peer} does not verify ({exc.message})") from None
        cosigners.append(peer)
    return sorted(cosigners)


# -- renderings for people ------------------------------------------------------------------------------------


def rows(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(section, name, value) lines: what the CSV holds and the PDF shows."""
    out: list[tuple[str, str, str]] = []
    for name in ("region", "country", "law", "generated_at"):
        out.append(("node", name, str(document[name])))
    out.append(("node", "period", f"{document['period']['from'] or 'start'} .. {document['period']['to']}"))
    out.append(("node", "signing_key_id", document["node"]["signing_key_id"]))
    for name, value in document["cluster"].items():
        out.append(("cluster", name, str(value)))
    out.append(("object_store", "endpoint", document["object_store"]["endpoint"]))
    for kind, bucket in document["object_store"]["buckets"].items():
        out.append(("object_store", f"bucket.{kind}", bucket))
    for name, value in _flat(document["datamap"]):
        out.append(("datamap", name, value))
    scan = document["scan"]
    out.append(("scan", "ok", str(scan["ok"]).lower()))
    for name, value in _flat({"by_severity": scan["by_severity"], "by_check": scan["by_check"]}):
        out.append(("scan", name, value))
    for finding in scan["findings"]:
        out.append(("finding", f"{finding['severity']} {finding['check']}", f"{finding['object']}: {finding['problem']}"))
    for peer in document["transfers"]["by_peer"]:
        key = f"{peer['direction']}.{peer['peer']}"
        out.append(("transfers", key, f"{peer['manifests']} manifests, {peer['items']} items, {peer['bytes']} bytes"))
        for name, value in _flat({"status": peer["statuses"], "verdict": peer["verdicts"]}):
            out.append(("transfers", f"{key}.{name}", value))
    for name, value in document["dsr"].items():
        out.append(("dsr", name, str(value)))
    out.append(("audit", "size", str(document["audit"]["size"])))
    note = document["audit"]["checkpoint"]
    if note:
        head, signatures = parse_note(note)
        out.append(("audit", "checkpoint", f"size {head.size}, root {base64.b64encode(head.root).decode()}"))
        out.append(("audit", "signed_by", " ".join(s.name for s in signatures)))
    return out


def _flat(value: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, str]]:
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping):
            yield from _flat(item, name + ".")
        else:
            yield name, str(item)


def to_csv(document: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("section", "name", "value"))
    writer.writerows(rows(document))
    return out.getvalue()


def to_pdf(document: dict[str, Any], signed_sha256: str, title: str = "Residency report") -> bytes:
    """A readable PDF of the report; it names the SHA-256 of the signed JSON, which is the evidence."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 15)
    pdf.cell(0, 10, _latin(f"MedFed {title}: node {document['region']} ({document['country']})"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 8)
    pdf.multi_cell(
        0, 4, _latin(f"Signed JSON sha256 {signed_sha256}. Verify the JSON with `medfed compliance verify`; this PDF is a rendering.")
    )
    pdf.ln(2)
    section = None
    for name, key, value in rows(document):
        if name != section:
            section = name
            pdf.ln(1)
            pdf.set_font("Helvetica", "B", 10)
            pdf.cell(0, 6, _latin(section), new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("Helvetica", "", 8)
        pdf.multi_cell(0, 4, _latin(f"{key}: {value}"), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _latin(text: str) -> str:
    # The PDF core fonts are Latin-1; the report is ASCII except for what a region file may spell otherwise.
    return text.replace("\u2014", "-").encode("latin-1", "replace").decode("latin-1")


# -- the federation view --------------------------------------------------------------------------------------


def federation_summary(summaries: list[Verified]) -> dict[str, Any]:
    """Counts and verdicts from verified summaries only; a report (or anything else) is refused, so no finding's
    object, row id or key can reach the HQ officer through here."""
    for summary in summaries:
        if summary.document.get("spec") != SUMMARY_SPEC:
            raise ReportError(f"a {summary.document.get('spec')} document, not a residency summary: {WHY_EXPECTED[SUMMARY_PAYLOAD_TYPE]}")
    regions = [s.document["region"] for s in summaries]
    duplicates = sorted({r for r in regions if regions.count(r) > 1})
    if duplicates:
        raise ReportError(f"two summaries of {', '.join(duplicates)}: give one summary per node")
    nodes: dict[str, Any] = {}
    totals = dict.fromkeys(
        ("manifests_out", "manifests_in", "items_out", "items_in", "bytes_out", "bytes_in", "critical", "violation", "warning",
         "dsr_open_overdue", "dsr_answered_late"), 0,
    )  # fmt: skip
    for summary in sorted(summaries, key=lambda s: s.document["region"]):
        doc = summary.document
        verdicts: dict[str, int] = {}
        for peer in doc["transfers"]:
            for verdict, count in peer["verdicts"].items():
                verdicts[verdict] = verdicts.get(verdict, 0) + count
            for name in ("manifests", "items", "bytes"):
                totals[f"{name}_{peer['direction']}"] += peer[name]
        nodes[doc["region"]] = {
            "generated_at": doc["generated_at"],
            "period": doc["period"],
            "signing_key_id": summary.key_id,
            "summary_sha256": summary.sha256,
            "cluster": doc["cluster"]["system_identifier"],
            "scan_ok": doc["scan"]["ok"],
            "by_severity": doc["scan"]["by_severity"],
            "failed_checks": sorted(name for name, check in doc["scan"]["checks"].items() if not check["passed"]),
            "checks": doc["scan"]["checks"],
            "datamap": doc["datamap"],
            "transfers": doc["transfers"],
            "verdicts": dict(sorted(verdicts.items())),
            "dsr": doc["dsr"],
            "audit": {k: doc["audit"][k] for k in ("size", "checkpoint_size", "checkpoint_root")} | {"cosigned_by": summary.cosigners},
        }
        for severity in ("critical", "violation", "warning"):
            totals[severity] += doc["scan"]["by_severity"].get(severity, 0)
        totals["dsr_open_overdue"] += doc["dsr"]["open"]["overdue"]
        totals["dsr_answered_late"] += doc["dsr"]["answered"]["late"]
    clusters = [n["cluster"] for n in nodes.values()]
    return {
        "nodes": nodes,
        "totals": totals,
        "all_ok": all(n["scan_ok"] for n in nodes.values()),
        "separate_clusters": len(set(clusters)) == len(clusters),
    }
