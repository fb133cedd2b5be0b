"""Where each channel of a node stands: what `medfed sync status` and the editor's status views show."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from medplat.config import Settings
from medsync.context import context_for
from medsync.models import ChannelIn, ChannelOut, ManifestOut, OutboxRow


def channel_status(settings: Settings) -> dict[str, Any]:
    ctx = context_for(settings)
    with Session(ctx.engine) as session:
        pending = dict(
            session.execute(select(OutboxRow.target, func.count()).where(OutboxRow.status == "pending").group_by(OutboxRow.target))
            .tuples()
            .all()
        )
        unsent = dict(
            session.execute(select(ManifestOut.target, func.count()).where(ManifestOut.status == "built").group_by(ManifestOut.target))
            .tuples()
            .all()
        )
        outgoing = []
        for channel in session.scalars(select(ChannelOut).order_by(ChannelOut.target)):
            sent = channel.next_sequence - 1
            outgoing.append(
                {
                    "target": channel.target,
                    "last_sequence_sent": sent,
                    "last_sequence_applied": channel.acked_sequence,
                    "lag": sent - channel.acked_sequence,
                    "queue_depth": pending.get(channel.target, 0) + unsent.get(channel.target, 0),
                    "last_error": channel.last_error,
                }
            )
        for target in sorted(set(pending) - {c["target"] for c in outgoing}):
            outgoing.append(
                {
                    "target": target,
                    "last_sequence_sent": 0,
                    "last_sequence_applied": 0,
                    "lag": 0,
                    "queue_depth": pending[target],
                    "last_error": None,
                }
            )
        incoming = [
            {"origin": c.origin, "received_sequence": c.received_sequence, "applied_sequence": c.applied_sequence}
            for c in session.scalars(select(ChannelIn).order_by(ChannelIn.origin))
        ]
    return {"region": settings.region.code, "outgoing": outgoing, "incoming": incoming}
