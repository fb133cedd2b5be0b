"""The node's Celery application: one per node, on the node's own broker.

`medfed worker` checks the configuration, then runs this app; tasks live beside their domains and are
registered through `include`. Tasks ack late and are re-queued if a worker dies, so a killed worker never
loses a delivery (the sync outbox in the database stays the source of truth either way).
"""

from __future__ import annotations

import os

from celery import Celery

from medplat.config import Settings, get_settings

SWEEP_SECONDS = float(os.environ.get("MEDFED_SWEEP_SECONDS", "10"))
"""How often beat re-creates wake-ups from the database (the backstop for lost broker messages)."""
TASK_MODULES = ["medplat.domain.system.tasks", "medsync.tasks", "medplat.audit.tasks", "medplat.compliance.tasks"]


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
            "heartbeat": {
                "task": "node.heartbeat",
                "schedule": 10.0,
                "options": {"expires": 10},
            },
            # The backstop for wake-ups lost with a broker: the database says what is waiting.
            "sync-sweep": {"task": "sync.sweep", "schedule": SWEEP_SECONDS, "options": {"expires": SWEEP_SECONDS}},
            "sync-reconcile": {"task": "sync.reconcile_all", "schedule": 600.0, "options": {"expires": 600}},
            # Sign the audit log's head and have the peers cosign it (docs/audit.md).
            "audit-checkpoint": {"task": "audit.checkpoint", "schedule": 300.0, "options": {"expires": 300}},
            # The residency scanner and the data-subject request reminders (docs/compliance.md).
            "compliance-scan": {"task": "compliance.scan", "schedule": 3600.0, "options": {"expires": 3600}},
            "compliance-dsr-reminders": {"task": "compliance.dsr_reminders", "schedule": 3600.0, "options": {"expires": 3600}},
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
