"""/health for people and monitoring, /ready for load balancers."""

from __future__ import annotations

from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from medplat.config import Settings
from medplat.domain.system.health import Health, node_health


class HealthController(Controller):
    tags = ["system"]

    @get(
        "/health",
        summary="Region, version and the identity and status of every dependency",
        cache=False,
    )
    async def health(self, settings: NamedDependency[Settings], state: State) -> Health:
        """Always 200 while the process runs; `status` says whether every dependency answered."""
        return await node_health(settings, state.db_engine, state.object_store, state.schema_head)

    @get(
        "/ready",
        summary="200 when the node can serve traffic, 503 otherwise",
        cache=False,
    )
    async def ready(self, settings: NamedDependency[Settings], state: State) -> Response[dict[str, str]]:
        if state.draining:
            return Response({"status": "draining"}, status_code=HTTP_503_SERVICE_UNAVAILABLE)
        health = await node_health(settings, state.db_engine, state.object_store, state.schema_head)
        failing = {name: dep.error or dep.status for name, dep in health.dependencies.items() if name != "workers" and dep.status != "ok"}
        if failing:
            return Response(
                {"status": "unavailable", **failing},
                status_code=HTTP_503_SERVICE_UNAVAILABLE,
            )
        return Response({"status": "ready"}, status_code=HTTP_200_OK)
