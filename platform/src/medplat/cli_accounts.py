"""`medfed otp`: the one-time codes a node's local sender kept in its outbox (node.otp_outbox).

For the local federation and for trying sign-in by hand: a node configured with the outbox sender sends no
SMS or e-mail; this prints the codes it would have sent. `--region X` picks the node as `medfed content` does.
"""

from __future__ import annotations

import datetime
import json

import click
from sqlalchemy import select

from medplat.cli_content import use_region


@click.group()
def otp() -> None:
    """One-time sign-in codes."""


@otp.command("outbox")
@click.option("--region", required=True, help="the node to ask")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 1000), help="how many of the newest codes")
@click.option("--all", "include_expired", is_flag=True, help="also codes that have expired")
@click.option("--json", "as_json", is_flag=True)
def outbox(region: str, limit: int, include_expired: bool, as_json: bool) -> None:
    """The newest codes in the node's local outbox, newest first: challenge id, channel, code, expiry."""
    from medplat.domain.accounts.models import OtpOutbox
    from medplat.node import sync_db

    settings = use_region(region)
    now = datetime.datetime.now(datetime.UTC)
    query = select(OtpOutbox).order_by(OtpOutbox.id.desc()).limit(limit)
    if not include_expired:
        query = query.where(OtpOutbox.expires_at > now)
    with sync_db(settings).connect() as conn:
        rows = conn.execute(query).all()
    codes = [
        {
            "challenge_id": str(r.challenge_id),
            "channel": r.channel,
            "code": r.code,
            "created_at": r.created_at.isoformat(),
            "expires_at": r.expires_at.isoformat(),
            "expired": r.expires_at <= now,
        }
        for r in rows
    ]
    if as_json:
        click.echo(json.dumps({"region": settings.region.code, "codes": codes}, indent=2))
        return
    if not codes:
        click.echo(f"{settings.region.code}: no {'' if include_expired else 'unexpired '}codes in the outbox")
        return
    for c in codes:
        state = "expired" if c["expired"] else f"until {c['expires_at']}"
        click.echo(f"{c['code']}  {c['channel']:<5}  challenge {c['challenge_id']}  {state}")
