"""Celery tasks of the audit log: sign the head periodically and collect the other nodes' cosignatures."""

from __future__ import annotations

from medplat.audit.exchange import checkpoint_and_collect
from medplat.worker import app
from medsync.context import default_context
from medsync.transport import shared_client


@app.task(name="audit.checkpoint")  # type: ignore[untyped-decorator]
def checkpoint() -> dict[str, object]:
    ctx = default_context()
    return checkpoint_and_collect(ctx, shared_client(ctx.federation_ca_file))
