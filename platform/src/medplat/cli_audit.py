"""`medfed audit`: verify a node's audit log offline, sign its head.

`--region X` picks the node as in cli_content: the environment when MEDFED_REGION is X, otherwise the local
federation's `.medfed/X/node.env`.
"""

from __future__ import annotations

import datetime
import sys
from collections.abc import Callable
from pathlib import Path

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from medplat.cli_content import region_engine, use_region
from medplat.config import Settings


@click.group()
def audit() -> None:
    """The node's tamper-evident audit log."""


def _keys_of(settings: Settings, trust_dir: Path | None) -> tuple[Callable[[str], list[Ed25519PublicKey]], str]:
    """Whose keys signatures are checked against, and a line saying where they come from."""
    from medsync.errors import TrustError
    from medsync.trust import MISSING, load_chain

    directory = trust_dir or Path(settings.trust_dir)
    try:
        document = load_chain(directory, now=datetime.datetime.now(datetime.UTC))
    except TrustError as exc:
        # Only a node that has no trust file at all falls back to its own key; a broken one is an error.
        if trust_dir is not None or exc.code != MISSING:
            raise
        own = settings.signing_key.public_key()
        region = settings.region.code
        return (lambda r: [own] if r == region else []), f"no federation trust file in {directory}: checking against this node's own key"

    def keys_of(region: str) -> list[Ed25519PublicKey]:
        node = document.nodes.get(region)
        return [key.public() for key in node.keys] if node else []

    return keys_of, f"keys from federation trust file version {document.version}"


@audit.command("verify")
@click.option("--region", required=True, help="the node whose log to check")
@click.option("--trust-dir", type=click.Path(file_okay=False, path_type=Path), help="trust file folder (default: the node's)")
def verify_command(region: str, trust_dir: Path | None) -> None:
    """Recompute every leaf, the tree, every checkpoint's signature and their consistency; one line per failure."""
    from sqlalchemy.orm import Session

    from medplat.audit.verify import verify_log

    settings = use_region(region)
    keys_of, source = _keys_of(settings, trust_dir)
    with region_engine(settings) as engine, engine.connect() as conn:
        # One snapshot for the whole check, and nothing written.
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        with Session(bind=conn) as session:
            report = verify_log(session, region, keys_of)
    for failure in report.failures:
        click.echo(f"{region} audit: {failure}")
    summary = f"{report.leaves} leaves, {report.checkpoints} checkpoints, {report.cosignatures} cosignatures ({source})"
    if report.failures:
        click.echo(f"medfed: {region} audit log FAILED verification: {len(report.failures)} problems; {summary}", err=True)
        sys.exit(1)
    click.echo(f"{region} audit log valid: {summary}")


@audit.command("checkpoint")
@click.option("--region", required=True)
def checkpoint_command(region: str) -> None:
    """Sign the log's current head now (beat does this periodically)."""
    from sqlalchemy.orm import Session

    from medplat.audit.log import checkpoint
    from medsync.errors import TrustError
    from medsync.trust import MISSING, load_chain

    settings = use_region(region)
    try:
        trust = load_chain(Path(settings.trust_dir), now=datetime.datetime.now(datetime.UTC))
    except TrustError as exc:
        if exc.code != MISSING:
            raise
        trust = None
    with region_engine(settings) as engine, Session(engine) as session, session.begin():
        row = checkpoint(session, region, settings.signing_key, trust)
        message = f"{region}: signed checkpoint at size {row.size}" if row else f"{region}: nothing new to sign"
    click.echo(message)
