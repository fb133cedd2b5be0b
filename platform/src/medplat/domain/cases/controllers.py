"""HTTP endpoints of clinical cases: the verified doctors' side and the moderators' side."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from medplat.api.problems import Problem
from medplat.config import Settings
from medplat.domain.accounts.controllers import claims_of, me
from medplat.domain.accounts.schemas import Decision
from medplat.domain.cases.schemas import CaseInput, CaseRead, CaseReview, PhotoRead
from medplat.domain.cases.service import MAX_PHOTO_BYTES, CaseService
from medplat.security import Role, roles

STAGES = ("before", "after")


def provide_cases(db_session: NamedDependency[AsyncSession], settings: NamedDependency[Settings], state: State) -> CaseService:
    return CaseService(db_session, settings, state.object_store)


def checked_stage(stage: str) -> str:
    if stage not in STAGES:
        raise Problem(
            "stage: must be before or after", status=400, slug="invalid-field", title="Invalid field",
            errors=[{"field": "stage", "source": "path", "reason": "must be before or after"}],
        )  # fmt: skip
    return stage


def photo_stream(photo: Any, chunks: Any) -> Stream:
    return Stream(chunks, media_type=photo.media_type, headers={"Content-Length": str(photo.length), "Cache-Control": "private, no-store"})


class CaseController(Controller):
    path = "/api/v1/cases"
    tags = ["cases"]
    guards = [roles(Role.DOCTOR)]
    dependencies = {"cases": Provide(provide_cases, sync_to_thread=False)}

    @post("/", status_code=HTTP_201_CREATED, summary="Submit an anonymised clinical case for moderation (verified doctor)")
    async def submit(self, data: JSONBody[CaseInput], cases: NamedDependency[CaseService], request: Request[Any, Any, Any]) -> CaseRead:
        """Names, phones, e-mails and national ids in the text are refused (422 `personal-data`, naming the field)."""
        return await cases.submit(me(request), data)

    @get("/", summary="Approved cases of this node, newest first; `mine=true`: my own cases in any status (verified doctor)")
    async def listing(
        self, cases: NamedDependency[CaseService], request: Request[Any, Any, Any], mine: FromQuery[bool] = False
    ) -> list[CaseRead]:
        return await cases.listing(me(request), mine)

    @get("/{case_id:uuid}", summary="An approved case, or one of mine (verified doctor)")
    async def read(self, case_id: FromPath[uuid.UUID], cases: NamedDependency[CaseService], request: Request[Any, Any, Any]) -> CaseRead:
        return await cases.get(me(request), case_id)

    @put(
        "/{case_id:uuid}/photos/{stage:str}",
        status_code=HTTP_201_CREATED,
        summary="Upload the before or after photo of my pending case: the raw body, JPEG, PNG, WebP or HEIC/HEIF (verified doctor)",
        request_max_body_size=MAX_PHOTO_BYTES,
    )
    async def put_photo(
        self, case_id: FromPath[uuid.UUID], stage: FromPath[str], cases: NamedDependency[CaseService], request: Request[Any, Any, Any]
    ) -> PhotoRead:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        return await cases.put_photo(me(request), case_id, checked_stage(stage), media_type, request.stream())

    @get("/{case_id:uuid}/photos/{stage:str}", summary="A photo of an approved case, or of mine (verified doctor)")
    async def photo(
        self, case_id: FromPath[uuid.UUID], stage: FromPath[str], cases: NamedDependency[CaseService], request: Request[Any, Any, Any]
    ) -> Stream:
        return photo_stream(*await cases.photo(case_id, checked_stage(stage), me(request)))


class CaseModerationController(Controller):
    path = "/api/v1/moderation/cases"
    tags = ["moderation"]
    guards = [roles(Role.MODERATOR)]
    dependencies = {"cases": Provide(provide_cases, sync_to_thread=False)}

    @get("/", summary="Clinical cases by status, oldest first (moderator)")
    async def reviews(self, cases: NamedDependency[CaseService], status: FromQuery[str] = "pending") -> list[CaseReview]:
        return await cases.reviews(status)

    @get("/{case_id:uuid}/photos/{stage:str}", summary="A case's photo (moderator; the access is logged)")
    async def photo(
        self, case_id: FromPath[uuid.UUID], stage: FromPath[str], cases: NamedDependency[CaseService], request: Request[Any, Any, Any]
    ) -> Stream:
        return photo_stream(*await cases.photo(case_id, checked_stage(stage), None, str(claims_of(request)["sub"])))

    @post("/{case_id:uuid}/decision", status_code=HTTP_200_OK, summary="Approve or reject a case, with a reason to reject (moderator)")
    async def decide(
        self, case_id: FromPath[uuid.UUID], data: JSONBody[Decision], cases: NamedDependency[CaseService], request: Request[Any, Any, Any]
    ) -> CaseReview:
        return await cases.decide(case_id, data, str(claims_of(request)["sub"]))
