"""HTTP endpoints for doctors' accounts, sign-in, moderation and data-subject requests.

Every handler says who may call it: `roles(...)` on the controller or the handler, or `opt={"access": PUBLIC}`
for the few that need no token (registration and the sign-in steps before a token exists).
"""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT
from sqlalchemy.ext.asyncio import AsyncSession

from medplat.api.problems import Problem
from medplat.compliance.hooks import personal_access_async
from medplat.config import Settings
from medplat.domain.accounts.moderation import ModerationService
from medplat.domain.accounts.schemas import (
    ChangeRead,
    ChangeRequest,
    CodeAnswer,
    CodeRequest,
    CodeSent,
    Decision,
    DiplomaRead,
    DoctorRead,
    DoctorRegistration,
    DsrRead,
    ProfileChanges,
    ProfileRead,
    RefreshRequest,
    ReviewItem,
    Tokens,
)
from medplat.domain.accounts.services import MAX_DIPLOMA_BYTES, AccountService, change_read, diploma_read, dsr_read
from medplat.domain.accounts.signin import SignInService
from medplat.security import PUBLIC, Role, roles


def provide_accounts(db_session: NamedDependency[AsyncSession], settings: NamedDependency[Settings], state: State) -> AccountService:
    return AccountService(db_session, settings, state.object_store)


def provide_moderation(db_session: NamedDependency[AsyncSession], settings: NamedDependency[Settings], state: State) -> ModerationService:
    return ModerationService(db_session, settings, state.object_store)


def provide_sign_in(db_session: NamedDependency[AsyncSession], settings: NamedDependency[Settings]) -> SignInService:
    return SignInService(db_session, settings)


def claims_of(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The claims the role guard checked for this request."""
    claims: dict[str, Any] = request.state.claims
    return claims


def me(request: Request[Any, Any, Any]) -> uuid.UUID:
    """The signed-in doctor's id (the `sub` of a doctor's token)."""
    try:
        return uuid.UUID(str(claims_of(request)["sub"]))
    except ValueError:
        raise Problem("this token does not belong to a doctor", status=403, slug="forbidden", title="Forbidden") from None


def client_ip(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


class DoctorController(Controller):
    path = "/api/v1/doctors"
    tags = ["accounts"]
    opt = {"access": PUBLIC}
    dependencies = {"accounts": Provide(provide_accounts, sync_to_thread=False)}

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Register a doctor on their home node (public)",
    )
    async def register(
        self,
        data: JSONBody[DoctorRegistration],
        accounts: NamedDependency[AccountService],
        request: Request,  # type: ignore[type-arg]
    ) -> DoctorRead:
        """Creates an unverified account. A doctor whose citizenship belongs to another node gets a 307 to
        that node and nothing is stored here."""
        doctor = await accounts.register(data, request.url.path)
        return DoctorRead(
            id=doctor.id,
            home_region=doctor.home_region,
            citizenship=doctor.citizenship,
            specializations=doctor.specializations,
            verification_status=doctor.verification_status,
            created_at=doctor.created_at,
        )


class AuthController(Controller):
    path = "/api/v1/auth"
    tags = ["sign-in"]
    dependencies = {"sign_in": Provide(provide_sign_in, sync_to_thread=False)}

    @post("/code", status_code=HTTP_202_ACCEPTED, summary="Send a one-time code by SMS or e-mail (public)", opt={"access": PUBLIC})
    async def code(self, data: JSONBody[CodeRequest], sign_in: NamedDependency[SignInService], request: Request[Any, Any, Any]) -> CodeSent:
        """Always 202 for a well-formed address, registered or not; only a registered doctor gets a code."""
        return await sign_in.request_code(data, client_ip(request))

    @post("/token", status_code=HTTP_200_OK, summary="Exchange the code for access and refresh tokens (public)", opt={"access": PUBLIC})
    async def token(self, data: JSONBody[CodeAnswer], sign_in: NamedDependency[SignInService], request: Request[Any, Any, Any]) -> Tokens:
        return await sign_in.exchange(data, client_ip(request))

    @post(
        "/refresh",
        status_code=HTTP_200_OK,
        summary="Rotate the refresh token (public: the refresh token is the credential)",
        opt={"access": PUBLIC},
    )
    async def refresh(self, data: JSONBody[RefreshRequest], sign_in: NamedDependency[SignInService]) -> Tokens:
        return await sign_in.refresh(data.refresh_token)

    @post("/sign-out", status_code=HTTP_204_NO_CONTENT, summary="End this sign-in: its tokens stop working", guards=[roles(Role.DOCTOR)])
    async def sign_out(self, sign_in: NamedDependency[SignInService], request: Request[Any, Any, Any]) -> None:
        claims = claims_of(request)
        if "sid" not in claims:
            raise Problem("this token belongs to no sign-in session", status=400, slug="no-session", title="No session")
        await sign_in.sign_out(claims)


class MeController(Controller):
    path = "/api/v1/me"
    tags = ["accounts"]
    guards = [roles(Role.DOCTOR)]
    dependencies = {"accounts": Provide(provide_accounts, sync_to_thread=False)}

    @get("/", summary="My profile, with the verification status (doctor)")
    async def profile(self, accounts: NamedDependency[AccountService], request: Request[Any, Any, Any]) -> ProfileRead:
        return await accounts.profile(me(request))

    @put(
        "/diploma",
        status_code=HTTP_201_CREATED,
        summary="Upload my diploma scan: the raw body, Content-Type application/pdf, image/jpeg or image/png (doctor)",
        request_max_body_size=MAX_DIPLOMA_BYTES,
    )
    async def diploma(self, accounts: NamedDependency[AccountService], request: Request[Any, Any, Any]) -> DiplomaRead:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        diploma = await accounts.upload_diploma(me(request), media_type, request.stream())
        read = diploma_read(diploma)
        assert read is not None
        return read

    @post("/profile-changes", status_code=HTTP_201_CREATED, summary="Ask for changes to my profile; a moderator decides (doctor)")
    async def propose(
        self, data: JSONBody[ChangeRequest], accounts: NamedDependency[AccountService], request: Request[Any, Any, Any]
    ) -> ChangeRead:
        doctor_id = me(request)
        return change_read(await accounts.propose_change(doctor_id, data.changes, str(doctor_id)))

    @get("/export", summary="Everything this node holds about me, as JSON (doctor; recorded as an access request)")
    async def export(self, accounts: NamedDependency[AccountService], request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        document = await accounts.export(me(request))
        return Response(document, headers={"Content-Disposition": 'attachment; filename="medfed-export.json"'})

    @post("/erasure", status_code=HTTP_202_ACCEPTED, summary="Erase my account and my files on this node (doctor; recorded)")
    async def erasure(self, accounts: NamedDependency[AccountService], request: Request[Any, Any, Any]) -> DsrRead:
        return dsr_read(await accounts.erase(me(request)))


class ModerationController(Controller):
    path = "/api/v1/moderation"
    tags = ["moderation"]
    guards = [roles(Role.MODERATOR)]
    dependencies = {"moderation": Provide(provide_moderation, sync_to_thread=False)}

    @get("/doctors", summary="Doctors by verification status, oldest first (moderator)")
    async def doctors(
        self, moderation: NamedDependency[ModerationService], request: Request[Any, Any, Any], status: FromQuery[str] = "pending"
    ) -> list[ReviewItem]:
        return await moderation.reviews(status, str(claims_of(request)["sub"]))

    @get("/doctors/{doctor_id:uuid}/diploma", summary="A doctor's diploma scan (moderator; the access is logged)")
    async def diploma(
        self, doctor_id: FromPath[uuid.UUID], moderation: NamedDependency[ModerationService], request: Request[Any, Any, Any]
    ) -> Stream:
        diploma, chunks = await moderation.diploma_scan(doctor_id, str(claims_of(request)["sub"]))
        return Stream(chunks, media_type=diploma.media_type, headers={"Content-Length": str(diploma.length), "Cache-Control": "no-store"})

    @post("/doctors/{doctor_id:uuid}/verification", status_code=HTTP_200_OK, summary="Approve or reject a diploma (moderator)")
    async def verify(
        self,
        doctor_id: FromPath[uuid.UUID],
        data: JSONBody[Decision],
        moderation: NamedDependency[ModerationService],
        request: Request[Any, Any, Any],
    ) -> ReviewItem:
        doctor = await moderation.decide_verification(doctor_id, data, str(claims_of(request)["sub"]))
        diploma = diploma_read(await moderation.diploma_of(doctor.id))
        return ReviewItem(
            doctor.id, doctor.full_name, list(doctor.specializations), doctor.academic_degree, doctor.years_of_practice,
            doctor.verification_status, diploma,
        )  # fmt: skip

    @post("/doctors/{doctor_id:uuid}/changes", status_code=HTTP_201_CREATED, summary="Ask for a change to a doctor's profile (moderator)")
    async def propose(
        self,
        doctor_id: FromPath[uuid.UUID],
        data: JSONBody[ChangeRequest],
        moderation: NamedDependency[ModerationService],
        request: Request[Any, Any, Any],
    ) -> ChangeRead:
        changes: ProfileChanges = data.changes
        return change_read(await moderation.propose_change(doctor_id, changes, str(claims_of(request)["sub"])))

    @get("/changes", summary="Profile changes by status (moderator)")
    async def changes(
        self, moderation: NamedDependency[ModerationService], request: Request[Any, Any, Any], status: FromQuery[str] = "pending"
    ) -> list[ChangeRead]:
        return [change_read(c) for c in await moderation.changes(status, str(claims_of(request)["sub"]))]

    @post(
        "/changes/{change_id:uuid}/decision", status_code=HTTP_200_OK, summary="Approve (and apply) or reject a profile change (moderator)"
    )
    async def decide(
        self,
        change_id: FromPath[uuid.UUID],
        data: JSONBody[Decision],
        moderation: NamedDependency[ModerationService],
        request: Request[Any, Any, Any],
    ) -> ChangeRead:
        return change_read(await moderation.decide_change(change_id, data, str(claims_of(request)["sub"])))


class ComplianceController(Controller):
    path = "/api/v1/compliance"
    tags = ["compliance"]
    guards = [roles(Role.COMPLIANCE)]
    dependencies = {"accounts": Provide(provide_accounts, sync_to_thread=False)}

    @get("/data-subject-requests", summary="Data-subject requests recorded on this node (compliance officer)")
    async def requests(
        self, accounts: NamedDependency[AccountService], request: Request[Any, Any, Any], status: FromQuery[str | None] = None
    ) -> list[DsrRead]:
        found = await accounts.requests(status)
        await personal_access_async(
            accounts.session,
            accounts.settings.data_key,
            str(claims_of(request)["sub"]),
            "dsr_list",
            status=status or "any",
            requests=len(found),
        )
        return [dsr_read(r) for r in found]
