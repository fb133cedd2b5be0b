"""`medfed compliance`: the data map, the residency scan, the transfer register, signed reports and summaries and their
offline verification, the federation view, and data-subject request deadlines.

`--region X` picks the node as in cli_content (the environment when MEDFED_REGION is X, otherwise the local
federation's `.medfed/X/node.env`). `verify` and `federation` need no node at all: they read files and the trust
folder.
"""

from __future__ import annotations

import datetime
import json
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from medplat.cli_content import region_engine, use_region

if TYPE_CHECKING:
    from medplat.config import Settings

DAY = click.DateTime(formats=["%Y-%m-%d"])


@click.group()
def compliance() -> None:
    """Where the node's data lives, what crossed its border, and the signed evidence of both."""


def _echo_or_write(text: str, out: Path | None) -> None:
    if out is None:
        click.echo(text, nl=not text.endswith("\n"))
    else:
        out.write_text(text)
        click.echo(f"wrote {out}", err=True)


def _utc(day: datetime.datetime | None, *, end: bool = False) -> datetime.datetime | None:
    if day is None:
        return None
    moment = day.replace(tzinfo=datetime.UTC)
    return moment + datetime.timedelta(days=1) if end else moment


def _log_access(engine: Any, settings: Settings, what: str, **counts: int) -> None:
    """A staff personal-data-access leaf for what this command is about to show, committed before it is shown; the
    operator is the OS account that runs the command, as `medfed token issue` names it."""
    import getpass

    from sqlalchemy.orm import Session

    from medplat.compliance.hooks import personal_access

    with Session(engine) as session, session.begin():
        personal_access(session, settings.data_key, getpass.getuser(), what, **counts)


@compliance.command("datamap")
@click.option("--region", required=True)
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path))
def datamap_command(region: str, fmt: str, out: Path | None) -> None:
    """Every table, column, bucket and key prefix with category, residency, location, legal basis and retention."""
    from sqlalchemy.orm import Session

    from medplat.compliance import service

    settings = use_region(region)
    with region_engine(settings) as engine, Session(engine) as session:
        current = service.datamap(session, settings)
    _echo_or_write(current.to_csv() if fmt == "csv" else json.dumps(current.to_json(), indent=2, ensure_ascii=False) + "\n", out)


@compliance.command("scan")
@click.option("--region", required=True)
@click.option("--json", "as_json", is_flag=True, help="the whole result as JSON")
def scan_command(region: str, as_json: bool) -> None:
    """Check the node's real stores against its declarations; exit 1 on a critical finding or a violation."""
    from medplat.compliance import service
    from medplat.node import object_store

    settings = use_region(region)
    with region_engine(settings) as engine:
        with service.snapshot(engine) as session:
            _, result = service.run_scan(session, settings, object_store(settings))
        # The findings name personal rows: no leaf, no findings (as the API's /scan).
        _log_access(engine, settings, "residency_scan", findings=len(result.findings))
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        listed: dict[str, int] = {}
        for finding in result.findings:
            listed[finding.check] = listed.get(finding.check, 0) + 1
            click.echo(f"{region} {finding.line()}")
        for check, count in sorted(result.counts.items()):
            shown = sum(1 for f in result.findings if f.check == check.split(".")[0])
            if count > shown and check.split(".")[0] in listed:
                click.echo(f"{region} {check}: {count} in all")
        severities = ", ".join(f"{n} {s}" for s, n in result.by_severity().items())
        verdict = "passed" if result.ok else "FAILED"
        click.echo(f"{region} residency scan {verdict}: {severities} ({len(result.checks)} checks, {result.seconds:.2f} s)")
    if not result.ok:
        sys.exit(1)


@compliance.command("transfers")
@click.option("--region", required=True)
@click.option("--from", "since", type=DAY, help="first day, UTC")
@click.option("--to", "until", type=DAY, help="last day, UTC (inclusive)")
@click.option("--peer", help="the other region")
@click.option("--item", type=click.UUID, help="a content item id")
@click.option("--csv", "as_csv", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def transfers_command(
    region: str, since: datetime.datetime | None, until: datetime.datetime | None, peer: str | None, item: uuid.UUID | None, as_csv: bool,
    as_json: bool,
) -> None:  # fmt: skip
    """Every manifest sent or received: items, categories, bytes, that manifest's verdicts, its signatures."""
    from sqlalchemy.orm import Session

    from medplat.compliance import transfers as register

    settings = use_region(region)
    with region_engine(settings) as engine, Session(engine) as session:
        found = register.register(session, region, register.Query(_utc(since), _utc(until, end=True), peer, item))
    if as_csv:
        click.echo(register.to_csv(found), nl=False)
        return
    if as_json:
        click.echo(json.dumps({"region": region, "transfers": register.to_json(found), "totals": register.totals(found)}, indent=2))
        return
    for t in found:
        arrow = f"{region} > {t.peer}" if t.direction == "out" else f"{t.peer} > {region}"
        verdicts = ", ".join(f"{v} {sum(1 for x in t.verdicts.values() if x == v)}" for v in sorted(set(t.verdicts.values())))
        click.echo(
            f"{t.at}  {arrow}  #{t.sequence}  {t.status:9} {t.items} items {t.bytes} B  [{' '.join(t.categories)}]  "
            f"{verdicts or 'no verdicts'}  key {t.signatures[0]['keyid'][:12] if t.signatures else '-'}"
        )
    click.echo(f"{len(found)} manifests")


@compliance.command("report")
@click.option("--region", required=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "pdf"]), default="json", show_default=True,
              help="json: the signed report; csv/pdf: a rendering for people, with the signed JSON written beside it")  # fmt: skip
@click.option("--from", "since", type=DAY)
@click.option("--to", "until", type=DAY)
def report_command(region: str, out: Path, fmt: str, since: datetime.datetime | None, until: datetime.datetime | None) -> None:
    """Build this node's residency report and sign it with the node's key."""
    import hashlib

    from medplat.compliance import report as reports
    from medplat.compliance import service
    from medplat.node import object_store

    settings = use_region(region)
    with region_engine(settings) as engine:
        with service.snapshot(engine) as session:
            document, signed = service.signed_report(session, settings, object_store(settings), _utc(since), _utc(until, end=True))
        _log_access(engine, settings, "residency_report", findings=len(document["scan"]["findings"]))
    json_path = out if fmt == "json" else out.with_suffix(".json")
    json_path.write_bytes(signed)
    if fmt == "csv":
        out.write_text(reports.to_csv(document))
    elif fmt == "pdf":
        out.write_bytes(reports.to_pdf(document, hashlib.sha256(signed).hexdigest()))
    scan = document["scan"]
    written = f"{json_path}" + (f" and {out}" if out != json_path else "")
    click.echo(
        f"{region}: signed residency report written to {written} "
        f"(scan {'ok' if scan['ok'] else 'FAILED'}, audit size {document['audit']['size']})"
    )


@compliance.command("summary")
@click.option("--region", required=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--from", "since", type=DAY)
@click.option("--to", "until", type=DAY)
def summary_command(region: str, out: Path, since: datetime.datetime | None, until: datetime.datetime | None) -> None:
    """Build this node's summary for the HQ officer (counts and verdicts only) and sign it with the node's key."""
    from medplat.compliance import service
    from medplat.node import object_store

    settings = use_region(region)
    with region_engine(settings) as engine, service.snapshot(engine) as session:
        document, signed = service.signed_summary(session, settings, object_store(settings), _utc(since), _utc(until, end=True))
    out.write_bytes(signed)
    click.echo(
        f"{region}: signed residency summary written to {out} "
        f"(scan {'ok' if document['scan']['ok'] else 'FAILED'}, audit size {document['audit']['size']})"
    )


def default_trust_dir() -> Path:
    """$MEDFED_TRUST_DIR, else the local federation's (`.medfed/trust`) when there is one here, else regions/trust."""
    import os

    from medplat.cli_content import STATE_DIR
    from medplat.config import regions_dir

    if explicit := os.environ.get("MEDFED_TRUST_DIR"):
        return Path(explicit)
    local = STATE_DIR / "trust"
    return local if (local / "1.trust.json").is_file() else regions_dir() / "trust"


def _keys(trust_dir: Path | None, key: Path | None) -> tuple[Any, list[Any] | None, str]:
    from medplat.compliance import keys as trust_keys
    from medsync.errors import TrustError

    explicit = [trust_keys.from_key_file(key)] if key else None
    directory = trust_dir or default_trust_dir()
    try:
        keys_of, source = trust_keys.from_trust_dir(directory)
    except TrustError:
        if explicit is None or trust_dir is not None:
            raise
        keys_of, source = (lambda _region: []), "no trust file"
    return keys_of, explicit, f"the key in {key}" if key else source


@compliance.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--trust-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="trust folder (default: $MEDFED_TRUST_DIR, .medfed/trust, regions/trust)",
)
@click.option("--key", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="the node's public key instead of the trust file")
def verify_command(file: Path, trust_dir: Path | None, key: Path | None) -> None:
    """Check a signed report, summary or destruction act offline: prints `valid` or one line naming what is wrong."""
    from medplat.compliance import report as reports

    keys_of, explicit, source = _keys(trust_dir, key)
    try:
        verified = reports.verify(file.read_bytes(), keys_of, explicit)
    except reports.ReportError as exc:
        click.echo(f"invalid: {file}: {exc.message}", err=True)
        sys.exit(1)
    doc = verified.document
    cosigned = f", checkpoint cosigned by {', '.join(verified.cosigners)}" if verified.cosigners else ""
    click.echo(f"valid: {doc['spec']} of {doc['region']} generated {doc.get('generated_at', doc.get('request', {}).get('completed_at'))}, "
               f"signed by key {verified.key_id[:16]} ({source}){cosigned}")  # fmt: skip


@compliance.command("federation")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--trust-dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def federation_command(files: tuple[Path, ...], trust_dir: Path | None, as_json: bool) -> None:
    """The federation view: verify each node's signed summary, then sum counts and verdicts (never a record)."""
    from medplat.compliance import report as reports

    keys_of, _, source = _keys(trust_dir, None)
    verified = []
    seen: dict[str, Path] = {}
    for file in files:
        try:
            summary = reports.verify(file.read_bytes(), keys_of, expect=reports.SUMMARY_PAYLOAD_TYPE)
        except reports.ReportError as exc:
            click.echo(f"invalid: {file}: {exc.message}", err=True)
            sys.exit(1)
        region = summary.document["region"]
        if region in seen:
            click.echo(f"invalid: {file}: a second summary of {region} (the first is {seen[region]}): give one summary per node", err=True)
            sys.exit(1)
        seen[region] = file
        verified.append(summary)
    view = reports.federation_summary(verified)
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    for code, node in view["nodes"].items():
        sev = node["by_severity"]
        failed = f", failed: {', '.join(node['failed_checks'])}" if node["failed_checks"] else ""
        moved = (
            "; ".join(
                f"{t['direction']} {t['peer']}: {t['manifests']} manifests {t['items']} items {t['bytes']} B" for t in node["transfers"]
            )
            or "no transfers"
        )
        dsr = node["dsr"]
        click.echo(
            f"{code}: scan {'ok' if node['scan_ok'] else 'FAILED'} ({sev['critical']} critical, {sev['violation']} violations, "
            f"{sev['warning']} warnings{failed}); {moved}; requests open {sum(dsr['open'].values())} "
            f"({dsr['open']['overdue']} overdue), answered late {dsr['answered']['late']}; audit {node['audit']['size']} leaves, "
            f"cosigned by {', '.join(node['audit']['cosigned_by']) or 'nobody'}"
        )
    t = view["totals"]
    click.echo(
        f"federation ({len(view['nodes'])} nodes, {source}): {'all ok' if view['all_ok'] else 'NOT all ok'}; "
        f"{t['manifests_out']} manifests out, {t['manifests_in']} in; separate clusters: {'yes' if view['separate_clusters'] else 'NO'}"
    )


@compliance.group("dsr")
def dsr_group() -> None:
    """Data-subject requests against each country's deadline."""


@dsr_group.command("list")
@click.option("--region", required=True)
@click.option("--open", "only_open", is_flag=True)
def dsr_list(region: str, only_open: bool) -> None:
    """Requests with their deadlines (ids only; the list is logged as an access to personal data)."""
    import getpass

    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from medplat.compliance import deadlines
    from medplat.compliance.hooks import personal_access
    from medplat.domain.accounts.models import DataSubjectRequest

    settings = use_region(region)
    today = deadlines.local_date(datetime.datetime.now(datetime.UTC), settings.region.timezone)
    with region_engine(settings) as engine, Session(engine) as session, session.begin():
        query = select(DataSubjectRequest).order_by(DataSubjectRequest.requested_at)
        if only_open:
            query = query.where(DataSubjectRequest.status == "received")
        rows = list(session.scalars(query))
        personal_access(session, settings.data_key, getpass.getuser(), "dsr_list", requests=len(rows))
        for row in rows:
            deadline = row.extended_due_on or row.due_on
            left = deadlines.working_days_between(settings.region.country, today, deadline) if row.status == "received" else None
            state = "" if left is None else (f"  OVERDUE by {-left} working days" if left < 0 else f"  {left} working days left")
            click.echo(f"{row.id}  {row.kind:13} {row.status:9} received {row.requested_at:%Y-%m-%d} due {deadline}{state}")


@dsr_group.command("remind")
@click.option("--region", required=True)
def dsr_remind(region: str) -> None:
    """Record reminders for requests due soon or overdue now (beat runs this hourly)."""
    from sqlalchemy.orm import Session

    from medplat.compliance import dsr

    settings = use_region(region)
    with region_engine(settings) as engine, Session(engine) as session, session.begin():
        counts = dsr.reminders(session, settings)
    click.echo(
        f"{region}: {counts['open']} open, {counts['due_soon']} due soon, {counts['overdue']} overdue, {counts['recorded']} new reminders"
    )


@dsr_group.command("extend")
@click.option("--region", required=True)
@click.argument("dsr_id", type=click.UUID)
def dsr_extend(region: str, dsr_id: uuid.UUID) -> None:
    """Extend a request's deadline where the law allows (send the person the reasoned notice first)."""
    from sqlalchemy.orm import Session

    from medplat.cli import OperatorError
    from medplat.compliance import dsr

    settings = use_region(region)
    try:
        with region_engine(settings) as engine, Session(engine) as session, session.begin():
            extended = dsr.extend(session, settings, dsr_id)
    except dsr.DsrError as exc:
        raise OperatorError(str(exc)) from None
    click.echo(f"{region}: request {dsr_id} now due {extended.isoformat()}")


@dsr_group.command("act")
@click.option("--region", required=True)
@click.argument("dsr_id", type=click.UUID)
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="the signed act (JSON); a PDF is written beside it"
)
def dsr_act(region: str, dsr_id: uuid.UUID, out: Path) -> None:
    """The destruction act of a completed erasure, with the event log extract and its inclusion proofs, signed."""
    import hashlib

    from sqlalchemy.orm import Session

    from medplat.cli import OperatorError
    from medplat.compliance import dsr
    from medplat.compliance import report as reports

    settings = use_region(region)
    try:
        with region_engine(settings) as engine, Session(engine) as session, session.begin():
            act = dsr.destruction_act(session, settings, dsr_id)
    except dsr.DsrError as exc:
        raise OperatorError(str(exc)) from None
    signed = reports.sign(act, settings.signing_key, reports.ACT_PAYLOAD_TYPE)
    out.write_bytes(signed)
    pdf = out.with_suffix(".pdf")
    pdf.write_bytes(act_pdf(act, hashlib.sha256(signed).hexdigest()))
    click.echo(f"{region}: destruction act for {dsr_id} written to {out} and {pdf} ({len(act['event_log_extract']['leaves'])} log entries)")


def act_pdf(act: dict[str, Any], signed_sha256: str) -> bytes:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    pdf.cell(0, 10, f"Act of destruction of personal data ({act['region']}, {act['country']})", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 8)
    lines = [f"Signed JSON sha256 {signed_sha256}; verify with `medfed compliance verify`."]
    lines += [f"request.{k}: {v}" for k, v in act["request"].items()]
    lines += [f"destroyed.{k}: {v}" for k, v in act["destroyed"].items()]
    lines += [f"event log: tree size {act['event_log_extract']['tree_size']}"]
    lines += [f"leaf {leaf['index']}: {leaf['entry']}" for leaf in act["event_log_extract"]["leaves"]]
    lines += ["checkpoint:", *act["event_log_extract"]["checkpoint"].replace("\u2014", "-").splitlines()]
    for line in lines:
        pdf.multi_cell(0, 4, line.encode("latin-1", "replace").decode("latin-1"), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
