"""`medfed content`, `medfed sync` and `medfed token`: scripts' and operators' access to the same services.

`--region X` picks the node: the environment when MEDFED_REGION is X (a production host), otherwise the
local federation's `.medfed/X/node.env`.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import mimetypes
import os
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import msgspec

from medplat.config import ConfigError, Settings, get_settings, settings_from_env

if TYPE_CHECKING:
    from sqlalchemy import Engine

STATE_DIR = Path(os.environ.get("MEDFED_STATE_DIR", ".medfed"))


def use_region(region: str) -> Settings:
    """Settings of the node `region`, also installed as this process's environment."""
    if os.environ.get("MEDFED_REGION") != region:
        env_file = STATE_DIR / region / "node.env"
        if not env_file.is_file():
            raise ConfigError(
                f"no configuration for region {region!r}: set MEDFED_* for it, or run `medfed up` here first ({env_file} is missing)"
            )
        for line in env_file.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and name.startswith("MEDFED_"):
                os.environ[name] = value
        get_settings.cache_clear()
    settings = settings_from_env()
    from medplat.logs import configure_logging

    configure_logging(settings.region.code, "WARNING")
    return settings


@contextmanager
def region_engine(settings: Settings) -> Iterator[Engine]:
    """The node's database for one command, disposed of when the command is done with it."""
    from medplat.db.engine import sync_engine

    engine = sync_engine(settings.database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _service_call(settings: Settings, call: Any) -> Any:
    from medplat.db.engine import async_engine
    from medplat.domain.content.services import ContentService
    from medplat.node import object_store

    engine = async_engine(settings.database_url)
    try:
        from sqlalchemy.ext.asyncio import AsyncSession

        async with AsyncSession(engine, expire_on_commit=False) as session:
            service = ContentService(session, settings, object_store(settings), wake=_wake)
            result = await call(service)
            await session.commit()
            return result
    finally:
        await engine.dispose()


async def _wake(targets: Sequence[str]) -> None:
    from medplat.worker import app

    for target in targets:
        await asyncio.to_thread(app.send_task, "sync.deliver", args=[target], queue=f"sync.{target}")


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(1024 * 1024):
            yield chunk


@click.group()
def content() -> None:
    """Shared content on a node."""


@content.command("publish")
@click.option("--region", required=True, help="the origin node")
@click.option("--title", required=True)
@click.option("--body-file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--media", "media", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path), help="a file to attach (repeatable)"
)
@click.option("--to", "targets", default="", help="comma-separated target regions")
@click.option("--kind", default="article", type=click.Choice(["article", "course", "event", "product_note"]))
@click.option("--category", default="product_note", show_default=True)
@click.option("--language", default="ru", show_default=True, type=click.Choice(["ru", "kk", "uz", "en"]))
@click.option("--specialization", "specializations", multiple=True)
@click.option("--origin-only", is_flag=True, help="never leaves this node")
def publish(
    region: str, title: str, body_file: Path, media: tuple[Path, ...], targets: str, kind: str, category: str,
    language: str, specializations: tuple[str, ...], origin_only: bool,
) -> None:  # fmt: skip
    """Create, attach media to and publish an item; prints its id."""
    from medplat.domain.content.schemas import DraftCreate
    from medsync.items import Text

    settings = use_region(region)
    chosen = tuple(t.strip() for t in targets.split(",") if t.strip())
    draft = msgspec.convert(
        {
            "kind": kind, "category": category, "texts": [msgspec.to_builtins(Text(language, title, body_file.read_text()))],  # type: ignore[arg-type]
            "specializations": list(specializations), "origin_only": origin_only, "targets": list(chosen),
        },
        DraftCreate,
    )  # fmt: skip

    async def call(service: Any) -> Any:
        item = await service.create_draft(draft)
        for path in media:
            media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            await service.attach_media(item.id, media_type, _chunks(path))
        await service.session.commit()
        return await service.publish(item.id)

    outcome = _run(_service_call(settings, call))
    for target, verdict in sorted(outcome.verdicts.items()):
        if not verdict.accepted:
            reasons = "; ".join(f"{r.code}: {r.message}" for r in verdict.reasons)
            click.echo(f"medfed: {target} refuses this item: {reasons}", err=True)
    click.echo(str(outcome.item_id))


@content.command("retract")
@click.option("--region", required=True, help="the origin node")
@click.argument("item_id", type=click.UUID)
@click.option("--from", "regions", default="", help="comma-separated regions (default: everywhere)")
def retract(region: str, item_id: uuid.UUID, regions: str) -> None:
    """Retract an item from some regions or everywhere."""
    settings = use_region(region)
    chosen = [r.strip() for r in regions.split(",") if r.strip()] or None
    done = _run(_service_call(settings, lambda service: service.retract(item_id, chosen)))
    click.echo(f"retracted from {', '.join(done) or 'this node only'}")


@content.command("show")
@click.option("--region", required=True, help="the node to ask")
@click.argument("item_id", type=click.UUID)
@click.option("--json", "as_json", is_flag=True)
def show(region: str, item_id: uuid.UUID, as_json: bool) -> None:
    """Show an item as the node holds it (status, version, media, deliveries)."""
    settings = use_region(region)

    async def call(service: Any) -> dict[str, Any]:
        item = await service.get(item_id)
        media = await service.media_of(item_id)
        deliveries = await service.deliveries(item_id) if item.origin_region == settings.region.code else []
        return {
            "id": str(item.id), "region": settings.region.code, "origin": item.origin_region, "kind": item.kind,
            "title": item.title, "category": item.category, "status": item.status, "version": item.version,
            "languages": item.languages,
            "media": [{"sha256": m.sha256, "length": m.length, "media_type": m.media_type, "key": m.key} for m in media],
            "deliveries": [
                {"target": d.target, "version": d.version, "op": d.op, "status": d.status, "reasons": d.reasons} for d in deliveries
            ],
        }  # fmt: skip

    data = _run(_service_call(settings, call))
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    click.echo(
        f"{data['id']}  {data['status']} v{data['version']}  origin {data['origin']}  {data['kind']}/{data['category']}  {data['title']}"
    )
    for d in data["deliveries"]:
        click.echo(f"  -> {d['target']}: {d['status']} (v{d['version']} {d['op']})")


@click.group("sync")
def sync_group() -> None:
    """The sync protocol's channels."""


@sync_group.command("status")
@click.option("--region", default="", help="the node to ask (default: every node of the local federation)")
@click.option("--json", "as_json", is_flag=True)
def status(region: str, as_json: bool) -> None:
    """Per channel: last sequence sent and applied, lag, queue depth, last error."""
    from medsync.status import channel_status

    regions = [region] if region else sorted(p.parent.name for p in STATE_DIR.glob("*/node.env"))
    if not regions:
        raise ConfigError("no region given and no local federation here")
    report: dict[str, Any] = {}
    for code in regions:
        report[code] = channel_status(use_region(code))
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    for code, channels in report.items():
        for ch in channels["outgoing"]:
            click.echo(
                f"{code}>{ch['target']}: sent #{ch['last_sequence_sent']}, applied #{ch['last_sequence_applied']}, "
                f"lag {ch['lag']}, queue {ch['queue_depth']}, last error {ch['last_error'] or '-'}"
            )
        for ch in channels["incoming"]:
            click.echo(f"{ch['origin']}>{code}: received #{ch['received_sequence']}, applied #{ch['applied_sequence']}")


@sync_group.command("allow-reset")
@click.option("--region", required=True, help="this node, the channel's target")
@click.option("--origin", required=True, help="the node whose channel to this one may be re-based")
@click.option("--revert-from", type=click.IntRange(min=1), default=None, help="remove the items applied from this sequence on")
def allow_reset(region: str, origin: str, revert_from: int | None) -> None:
    """Permit ORIGIN to re-base its channel to this node (24 hours); see docs/sync-protocol.md, section 11."""
    from medsync.context import context_for
    from medsync.reset import allow

    until = allow(context_for(use_region(region)), origin, revert_from=revert_from)
    reverting = f"; items applied from #{revert_from} on will be removed" if revert_from else ""
    click.echo(f"{origin}>{region} may be reset until {until:%Y-%m-%d %H:%M} UTC{reverting}")


@sync_group.command("reset")
@click.option("--region", required=True, help="this node, the channel's origin")
@click.option("--target", required=True)
@click.option("--reason", required=True, type=click.Choice(["equivocation", "compromise", "restore"]))
def reset_channel(region: str, target: str, reason: str) -> None:
    """Re-base this node's channel to TARGET (TARGET's operators must allow it first)."""
    from typing import cast

    from medsync import reset
    from medsync.context import context_for
    from medsync.transport import client

    ctx = context_for(use_region(region))
    with client(ctx.federation_ca_file) as http:
        sequence = reset.start(ctx, target, http, reason=cast("reset.Reason", reason))
        reset.send_pending(ctx, target, http)
    click.echo(f"{region}>{target} continues at #{sequence}; anti-entropy sends again whatever {target} lacks")


@click.group()
def token() -> None:
    """Staff tokens for the node's API."""


STAFF_ROLES = ["editor", "moderator", "director", "compliance", "hq", "ops"]
"""Roles a staff token may carry (a doctor's role comes only from signing in)."""


@token.command("issue")
@click.option("--region", required=True)
@click.option("--role", "roles", multiple=True, required=True, type=click.Choice(STAFF_ROLES))
@click.option("--subject", default="ops", show_default=True)
@click.option("--ttl", default=3600, show_default=True, type=click.IntRange(min=1), help="seconds")
def issue(region: str, roles: tuple[str, ...], subject: str, ttl: int) -> None:
    """Print a bearer token of the node for a member of staff; the grant is logged in the node's audit log first.

    The hq role goes on a token of its own: HQ sees the federation summary only."""
    import getpass

    from sqlalchemy.orm import Session

    from medplat.cli import BadInput
    from medplat.compliance.hooks import role_granted
    from medplat.security import Role, issue_token, roles_conflict

    granted = sorted({Role(r) for r in roles})
    if (conflict := roles_conflict(granted)) is not None:
        raise BadInput(conflict)  # before the region is even read: nothing is logged, no token exists
    settings = use_region(region)
    token_id = uuid.uuid4().hex
    lifetime = datetime.timedelta(seconds=ttl)
    # Whole seconds, as the token's claims carry them: the logged expiry is the token's `exp`.
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    # No log, no token: the token is printed only once the grant is committed to the audit log.
    with region_engine(settings) as engine, Session(engine) as session, session.begin():
        role_granted(
            session,
            settings.data_key,
            subject,
            granted,
            token_id=token_id,
            expires=int((now + lifetime).timestamp()),
            operator=getpass.getuser(),
        )
    click.echo(issue_token(settings, subject, granted, lifetime, jti=token_id, issued_at=now))
