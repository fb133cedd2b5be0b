"""The signed residency report of one node, its offline verification, its CSV and PDF renderings, and the federation
summary built only from verified reports.

The report is RFC 8785 JSON signed with the node's Ed25519 key as a DSSE envelope (the same envelope as manifests,
payload type `application/vnd.medfed.residency-report+json`). It carries counts, addresses and hashes; no personal
value. The audit checkpoint inside it is the node's signed note with the other nodes' cosignatures, so an auditor
can check the log head against keys the node does not control.
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
from medplat.compliance.datamap import DataMap
from medplat.compliance.scan import ScanResult
from medplat.config import Settings
from medsync import envelope as dsse
from medsync.canonical import canonical_bytes, parse_canonical
from medsync.errors import CanonicalError, SyncError

SPEC = "medfed-residency-report/1"
PAYLOAD_TYPE = "application/vnd.medfed.residency-report+json"
ACT_SPEC = "medfed-destruction-act/1"
ACT_PAYLOAD_TYPE = "application/vnd.medfed.destruction-act+json"
SPECS = {PAYLOAD_TYPE: SPEC, ACT_PAYLOAD_TYPE: ACT_SPEC}
MAX_REPORT_BYTES = 8 * 1024 * 1024

KeysOf = Callable[[str], list[Ed25519PublicKey]]


class ReportError(SyncError):
    """A report that does not verify; the message is the one line `medfed compliance verify` prints."""

    code = "report.invalid"


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    from medplat.domain.accounts.models import DataSubjectRequest

    now = datetime.datetime.now(datetime.UTC)
    until = until or now
    region = settings.region
    moved = transfer_register.register(session, region.code, transfer_register.Query(since=since, until=until))
    dsr_rows = session.execute(
        select(DataSubjectRequest.kind, DataSubjectRequest.status, func.count()).group_by(
            DataSubjectRequest.kind, DataSubjectRequest.status
        )
    ).all()
    checkpoint = log.latest_checkpoint(session)
    location = datamap.location
    assert location is not None
    return {
        "spec": SPEC,
        "region": region.code,
        "country": region.country,
        "law": region.law,
        "generated_at": _iso(now),
        "period": {"from": _iso(since) if since else None, "to": _iso(until)},
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
        "dsr": {f"{kind}.{status}": count for kind, status, count in sorted(dsr_rows)},
        "audit": {
            "size": log.size(session),
            "checkpoint": log.cosigned_note(session, checkpoint) if checkpoint is not None else None,
        },
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


def verify(data: bytes, keys_of: KeysOf, explicit: list[Ed25519PublicKey] | None = None) -> Verified:
    """Check a report file offline; ReportError with one line otherwise.

    Every byte counts: the file must be exactly the envelope's own encoding, the signature must be by a trusted key
    of the region the report names, the key id written beside it must be that key's, and the audit checkpoint inside
    must carry the node's valid signature (cosignatures by other nodes are checked against their keys). `explicit`
    keys, when given, replace the trust file's keys for the report's own region.
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
        raise ReportError(f"payload type {envelope.payloadType[:80]!a} is neither a residency report nor a destruction act")
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


def federation_summary(reports: list[Verified]) -> dict[str, Any]:
    """Counts and verdicts from verified reports only: no finding's object, no row id, no personal value."""
    regions = [r.document["region"] for r in reports]
    duplicates = sorted({r for r in regions if regions.count(r) > 1})
    if duplicates:
        raise ReportError(f"more than one report for {', '.join(duplicates)}: give one per node")
    nodes: dict[str, Any] = {}
    totals: dict[str, int] = {
        "manifests_out": 0,
        "manifests_in": 0,
        "items_out": 0,
        "bytes_out": 0,
        "critical": 0,
        "violation": 0,
        "warning": 0,
    }
    for report in sorted(reports, key=lambda r: r.document["region"]):
        doc = report.document
        by_peer = doc["transfers"]["by_peer"]
        out_ = [p for p in by_peer if p["direction"] == "out"]
        in_ = [p for p in by_peer if p["direction"] == "in"]
        verdicts: dict[str, int] = {}
        for peer in by_peer:
            for verdict, count in peer["verdicts"].items():
                verdicts[verdict] = verdicts.get(verdict, 0) + count
        nodes[doc["region"]] = {
            "generated_at": doc["generated_at"],
            "period": doc["period"],
            "signing_key_id": report.key_id,
            "report_sha256": report.sha256,
            "cluster": doc["cluster"]["system_identifier"],
            "scan_ok": doc["scan"]["ok"],
            "by_severity": doc["scan"]["by_severity"],
            "tables_by_residency": doc["datamap"]["tables_by_residency"],
            "transfers": [{k: p[k] for k in ("direction", "peer", "manifests", "items", "bytes", "statuses", "verdicts")} for p in by_peer],
            "verdicts": verdicts,
            "dsr": doc["dsr"],
            "audit_size": doc["audit"]["size"],
            "checkpoint_cosigned_by": report.cosigners,
        }
        totals["manifests_out"] += sum(p["manifests"] for p in out_)
        totals["manifests_in"] += sum(p["manifests"] for p in in_)
        totals["items_out"] += sum(p["items"] for p in out_)
        totals["bytes_out"] += sum(p["bytes"] for p in out_)
        for severity in ("critical", "violation", "warning"):
            totals[severity] += doc["scan"]["by_severity"].get(severity, 0)
    clusters = [n["cluster"] for n in nodes.values()]
    return {
        "nodes": nodes,
        "totals": totals,
        "all_ok": all(n["scan_ok"] for n in nodes.values()),
        "separate_clusters": len(set(clusters)) == len(clusters),
    }
