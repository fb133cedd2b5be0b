"""Compliance endpoints: a node's officer sees their own node (data map, scan, transfer register, signed report, signed
summary); the HQ officer gets the federation summary, built only from nodes' signed summaries, and nothing of any
one node.

A node's officer holds a token of that node (issuer and audience are the node), so "own node only" is the token
check itself; the HQ role is refused every per-node route and the per-node role the federation route.
"""

from __future__ import annotations

import datetime
import uuid
from pathlib import Path
from typing import Annotated, Any

import anyio
import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK
from sqlalchemy.orm import Session

from medplat.api.problems import Problem
from medplat.compliance import keys as trust_keys
from medplat.compliance import report as reports
from medplat.compliance import service
from medplat.compliance import transfers as register
from medplat.compliance.hooks import personal_access
from medplat.config import Settings
from medplat.node import sync_db
from medplat.security import Role, roles
from medsync.errors import SyncError

MAX_SUMMARIES = 16


def _day(value: datetime.date | None) -> datetime.datetime | None:
    return datetime.datetime.combine(value, datetime.time(), datetime.UTC) if value else None


def _staff(request: Request[Any, Any, Any]) -> str:
    return str(request.state.claims["sub"])


class ComplianceNodeController(Controller):
    path = "/api/v1/compliance"
    tags = ["compliance"]
    guards = [roles(Role.COMPLIANCE)]

    @get("/transfers", summary="The transfer register: manifests in and out (compliance officer)")
    async def transfers(
        self,
        state: State,
        *,
        since: Annotated[datetime.date | None, QueryParameter(name="from", description="first day (UTC), inclusive")] = None,
        until: Annotated[datetime.date | None, QueryParameter(name="to", description="last day (UTC), inclusive")] = None,
        region: Annotated[str | None, QueryParameter(name="region", pattern="^[a-z]{2}$", description="the peer region")] = None,
        item: Annotated[uuid.UUID | None, QueryParameter(name="item", description="a content item id")] = None,
        fmt: Annotated[str, QueryParameter(name="format", pattern="^(json|csv)$")] = "json",
    ) -> Response[Any]:
        settings: Settings = state.settings
        query = register.Query(_day(since), _day(until + datetime.timedelta(days=1)) if until else None, region, item)
        if query.since and query.until and query.until <= query.since:
            raise Problem(
                "to: must not be before from", status=400, slug="invalid-field", errors=[{"field": "to", "reason": "before from"}]
            )

        def run() -> list[register.Transfer]:
            with Session(sync_db(settings)) as session:
                return register.register(session, settings.region.code, query)

        found = await anyio.to_thread.run_sync(run)
        if fmt == "csv":
            return Response(register.to_csv(found), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": 'attachment; filename="transfers.csv"'})  # fmt: skip
        return Response({"region": settings.region.code, "transfers": register.to_json(found), "totals": register.totals(found)})

    @get("/datamap", summary="The data map generated from the code's declarations (compliance officer)")
    async def datamap(
        self, state: State, fmt: Annotated[str, QueryParameter(name="format", pattern="^(json|csv)$")] = "json"
    ) -> Response[Any]:
        settings: Settings = state.settings

        def run() -> Any:
            with Session(sync_db(settings)) as session:
                return service.datamap(session, settings)

        current = await anyio.to_thread.run_sync(run)
        if fmt == "csv":
            return Response(current.to_csv(), media_type="text/csv; charset=utf-8")
        return Response(current.to_json())

    @get("/scan", summary="Run the residency scanner now (compliance officer; the objects it names are logged as an access)")
    async def scan(self, state: State, request: Request[Any, Any, Any]) -> Response[Any]:
        settings: Settings = state.settings
        staff = _staff(request)

        def run() -> dict[str, Any]:
            engine = sync_db(settings)
            with service.snapshot(engine) as session:
                _, result = service.run_scan(session, settings, state.object_store)
            with Session(engine) as session, session.begin():
                personal_access(session, settings.data_key, staff, "residency_scan", findings=len(result.findings))
            return result.to_json()

        return Response(await anyio.to_thread.run_sync(run))

    @get("/report", summary="This node's signed residency report, a DSSE envelope (compliance officer; logged as an access like /scan)")
    async def report(self, state: State, request: Request[Any, Any, Any]) -> Response[bytes]:
        settings: Settings = state.settings
        staff = _staff(request)

        def run() -> bytes:
            engine = sync_db(settings)
            with service.snapshot(engine) as session:
                document, signed = service.signed_report(session, settings, state.object_store)
            with Session(engine) as session, session.begin():
                personal_access(session, settings.data_key, staff, "residency_report", findings=len(document["scan"]["findings"]))
            return signed

        return Response(await anyio.to_thread.run_sync(run), media_type="application/json",
                        headers={"Content-Disposition": f'attachment; filename="residency-{settings.region.code}.json"'})  # fmt: skip

    @get(
        "/summary", summary="This node's signed summary for the HQ officer: counts and verdicts only, a DSSE envelope (compliance officer)"
    )
    async def node_summary(self, state: State) -> Response[bytes]:
        settings: Settings = state.settings

        def run() -> bytes:
            # Counts only, no row id: not an access to personal data, so no audit leaf (unlike /scan and /report).
            with service.snapshot(sync_db(settings)) as session:
                return service.signed_summary(session, settings, state.object_store)[1]

        return Response(await anyio.to_thread.run_sync(run), media_type="application/json",
                        headers={"Content-Disposition": f'attachment; filename="summary-{settings.region.code}.json"'})  # fmt: skip


class SummaryRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    summaries: Annotated[
        tuple[Annotated[str, msgspec.Meta(max_length=reports.MAX_REPORT_BYTES)], ...], msgspec.Meta(min_length=1, max_length=MAX_SUMMARIES)
    ]
    """Each node's signed summary file (`medfed compliance summary`, `GET /summary`), as text: its exact bytes are
    what is verified. A report is refused."""


class FederationSummaryController(Controller):
    path = "/api/v1/compliance/federation"
    tags = ["compliance"]
    guards = [roles(Role.HQ)]

    @post("/summary", status_code=HTTP_200_OK, summary="Verify nodes' signed summaries and sum their counts and verdicts (HQ officer)")
    async def summary(self, data: JSONBody[SummaryRequest], state: State) -> dict[str, Any]:
        settings: Settings = state.settings

        def run() -> dict[str, Any]:
            try:
                keys_of, _ = trust_keys.from_trust_dir(Path(settings.trust_dir))
            except SyncError as exc:
                raise Problem(exc.message, status=503, slug="trust-unavailable", title="No federation trust file to verify with") from None
            verified = []
            for index, text in enumerate(data.summaries):
                try:
                    verified.append(reports.verify(text.encode(), keys_of, expect=reports.SUMMARY_PAYLOAD_TYPE))
                except SyncError as exc:
                    raise Problem(
                        f"summaries[{index}]: {exc.message}", status=422, slug="summary-invalid", title="A summary does not verify"
                    ) from None
            try:
                return reports.federation_summary(verified)
            except SyncError as exc:
                raise Problem(exc.message, status=422, slug="summary-invalid", title="The summaries do not make one federation") from None

        return await anyio.to_thread.run_sync(run)
