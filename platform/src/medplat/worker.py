"""The node's Celery application: one per node, on the node's own broker.

`medfed worker` checks the configuration, then runs this app; tasks live beside their domains and are
registered through `include`. Tasks ack late and are re-queued if a worker dies, so a killed worker never
loses a delivery (the sync outbox in the database stays the source of truth either way).
"""

from __future__ import annotations

import os

from celery import Celery

from medplat.config import Settings, get_settings

# The beat schedule's intervals, in seconds: named here once, next to the schedule that uses them.
SWEEP_SECONDS = float(os.environ.get("MEDFED_SWEEP_SECONDS", "10"))
"""How often beat re-creates wake-ups from the database (the backstop for lost broker messages)."""
HEARTBEAT_SECONDS = 10.0
RECONCILE_SECONDS = 600.0
"""Anti-entropy: each channel's digest compared with its target's."""
CHECKPOINT_SECONDS = 300.0
"""Sign the audit log's head and ask every peer to cosign it (medplat.audit.tasks)."""
SCAN_SECONDS = 3600.0
"""The residency scanner (medplat.compliance.tasks)."""
REMINDER_SECONDS = 3600.0
"""The data-subject request deadline reminders (medplat.compliance.tasks)."""
TASK_MODULES = ["medplat.domain.system.tasks", "medsync.tasks", "medplat.audit.tasks", "medplat.compliance.tasks"]


def _every(seconds: float, task: str) -> dict[str, object]:
    # A run not started within its own interval is dropped: the next one is due by then anyway.
    return {"task": task, "schedule": seconds, "options": {"expires": seconds}}


def configure(app: Celery, settings: Settings) -> Celery:
    app.conf.update(
        broker_url=settings.broker_url,
        broker_connection_retry_on_startup=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue="node",
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        timezone="UTC",
        beat_schedule={
            "heartbeat": _every(HEARTBEAT_SECONDS, "node.heartbeat"),
            # The backstop for wake-ups lost with a broker: the database says what is waiting.
            "sync-sweep": _every(SWEEP_SECONDS, "sync.sweep"),
            "sync-reconcile": _every(RECONCILE_SECONDS, "sync.reconcile_all"),
            # Sign the audit log's head and have the peers cosign it (docs/audit.md).
            "audit-checkpoint": _every(CHECKPOINT_SECONDS, "audit.checkpoint"),
            # The residency scanner and the data-subject request reminders (docs/compliance.md).
            "compliance-scan": _every(SCAN_SECONDS, "compliance.scan"),
            "compliance-dsr-reminders": _every(REMINDER_SECONDS, "compliance.dsr_reminders"),
        },
    )
    return app


def queues_for(region: str, regions: list[str]) -> list[str]:
    """Every queue a worker of this node consumes by default: its own, its inbox, one per delivery target."""
    return ["node", "inbox", *(f"sync.{r}" for r in regions if r != region)]


app = Celery("medfed", include=TASK_MODULES)


@app.on_configure.connect  # type: ignore[untyped-decorator]
def _configure_from_environment(sender: Celery, **_: object) -> None:
    configure(sender, get_settings())
