"""The node's Litestar application factory: identical for every region, configured by its Settings."""

from __future__ import annotations

import gc
import os
from collections.abc import Sequence
from typing import Any

import anyio
from advanced_alchemy.extensions.litestar import (
    AsyncSessionConfig,
    SQLAlchemyAsyncConfig,
    SQLAlchemyPlugin,
)
from litestar import Litestar, Router, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.openapi.spec import Server

from medplat import __version__
from medplat.api.middleware import request_id_middleware
from medplat.api.problems import EXCEPTION_HANDLERS
from medplat.audit.api import AuditController
from medplat.compliance.controllers import ComplianceNodeController, FederationSummaryController
from medplat.config import Settings, get_settings
from medplat.db.engine import async_engine, read_engine
from medplat.db.migrate import head_revision
from medplat.domain.accounts.controllers import (
    AuthController,
    ComplianceController,
    DoctorController,
    MeController,
    ModerationController,
)
from medplat.domain.cases.controllers import CaseController, CaseModerationController
from medplat.domain.content.controllers import ContentController
from medplat.domain.director.controllers import DirectorController
from medplat.domain.events.controllers import AttendanceController, EventController, MyEventsController
from medplat.domain.feed.controllers import FeedController
from medplat.domain.feed.live import Live
from medplat.domain.feed.service import PageCache
from medplat.domain.system.controllers import HealthController
from medplat.logs import configure_logging
from medplat.node import object_store
from medplat.security import PUBLIC, VerifiedTokens
from medsync.api import FederationController
from medsync.context import context_for

MAX_REQUEST_BODY = 10 * 1024 * 1024


async def wake_delivery(targets: Sequence[str]) -> None:
    """Ask the sync workers to deliver to these targets now (the beat sweep would, a little later)."""
    from medplat.worker import app as celery

    def send(target: str) -> None:
        celery.send_task("sync.deliver", args=[target], queue=f"sync.{target}")

    for target in targets:
        await anyio.to_thread.run_sync(send, target)


async def wake_apply(origin: str) -> None:
    from medplat.worker import app as celery

    await anyio.to_thread.run_sync(lambda: celery.send_task("sync.apply", args=[origin], queue="inbox"))


BENCH_ENV = "MEDFED_BENCH_CEILING"


def bench_routes() -> list[Any]:
    """A bare JSON endpoint, `GET /bench/ceiling`, only when MEDFED_BENCH_CEILING=1 (bench/feed_load.py sets it
    for the node it starts): the ceiling the feed is compared with on the same server. Never on otherwise."""
    if os.environ.get(BENCH_ENV) != "1":
        return []

    @get("/bench/ceiling", opt={"access": PUBLIC}, sync_to_thread=False, include_in_schema=False)
    def ceiling() -> dict[str, object]:
        return {"status": "ok", "items": []}

    return [ceiling]


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    configure_logging(settings.region.code, settings.log_level)
    engine = async_engine(settings.database_url, pool_size=10, max_overflow=10)
    # Sized for a worker's concurrent requests: a connection opened past `pool_size` is closed again on return,
    # and opening one (SCRAM authentication) costs more than the query.
    reads = read_engine(settings.database_url, pool_size=32, max_overflow=16)
    # The guard's and the feed's per-process caches, kept exact by one LISTEN connection (medplat.domain.feed.live).
    live = Live(settings.database_url.replace("postgresql+psycopg://", "postgresql://", 1))
    sqlalchemy = SQLAlchemyPlugin(
        config=SQLAlchemyAsyncConfig(
            engine_instance=engine,
            session_config=AsyncSessionConfig(expire_on_commit=False),
            before_send_handler="autocommit",
            create_all=False,
        )
    )
    state = State(
        {
            "settings": settings,
            "db_engine": engine,
            "read_engine": reads,
            "object_store": object_store(settings),
            "schema_head": head_revision(),
            "draining": False,
            "sync": context_for(settings),
            "wake_delivery": wake_delivery,
            "wake_apply": wake_apply,
            "feed_cache": PageCache(),
            "verified_tokens": VerifiedTokens(),
            "live": live,
        }
    )

    def provide_settings() -> Settings:
        return settings

    return Litestar(
        route_handlers=[
            Router("/", route_handlers=[HealthController], opt={"access": PUBLIC}),
            DoctorController,
            AuthController,
            MeController,
            ModerationController,
            ComplianceController,
            ComplianceNodeController,
            FederationSummaryController,
            ContentController,
            FeedController,
            CaseController,
            CaseModerationController,
            EventController,
            MyEventsController,
            AttendanceController,
            DirectorController,
            FederationController,
            AuditController,
            *bench_routes(),
        ],
        plugins=[sqlalchemy],
        dependencies={"settings": Provide(provide_settings, sync_to_thread=False)},
        middleware=[request_id_middleware],
        exception_handlers=EXCEPTION_HANDLERS,
        state=state,
        request_max_body_size=MAX_REQUEST_BODY,
        openapi_config=OpenAPIConfig(
            title=f"MedFed node {settings.region.code}",
            version=__version__,
            description=f"The {settings.region.name} node of the MedFed federation.",
            servers=[Server(url=settings.public_url or "/")],
            path="/schema",
            render_plugins=[ScalarRenderPlugin(path="/")],
            openapi_router=Router("/schema", route_handlers=[], opt={"access": PUBLIC}),
        ),
        on_startup=[live.start],
        on_shutdown=[live.stop, engine.dispose, reads.dispose],
        logging_config=None,  # medplat.logs owns logging: one JSON stream for every library
        debug=False,
    )


def freeze_heap() -> None:
    """Move everything built at startup (modules, routes, the app, ~190,000 tracked objects) out of the
    cyclic collector's reach.

    Under load a worker otherwise runs a full collection every few seconds, each walking that whole startup
    heap for 50-150 ms while every request in flight waits: that was the feed's p99 (docs/benchmarks.md).
    Frozen objects are still freed by reference counting; only a reference cycle among them would outlive
    its use, and what exists at startup lives as long as the process anyway.
    """
    gc.collect()
    gc.freeze()


def create_server_app() -> Litestar:
    """The app as `medfed serve` runs it: `create_app` plus the heap freeze once startup is done.

    Kept out of `create_app`, which tests build many times in one process, where freezing would pin their
    garbage.
    """
    app = create_app()
    app.on_startup.append(freeze_heap)
    return app
