"""HTTP endpoints for doctors' accounts."""

from __future__ import annotations

from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from medplat.config import Settings
from medplat.domain.accounts.schemas import DoctorRead, DoctorRegistration
from medplat.domain.accounts.services import AccountService


class DoctorController(Controller):
    path = "/api/v1/doctors"
    tags = ["accounts"]

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Register a doctor on their home node",
    )
    async def register(
        self,
        data: JSONBody[DoctorRegistration],
        db_session: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
        request: Request,  # type: ignore[type-arg]
    ) -> DoctorRead:
        """Creates an unverified account. A doctor whose citizenship belongs to another node gets a 307 to
        that node and nothing is stored here."""
        doctor = await AccountService(db_session, settings).register(data, request.url.path)
        return DoctorRead(
            id=doctor.id,
            home_region=doctor.home_region,
            citizenship=doctor.citizenship,
            specializations=doctor.specializations,
            verification_status=doctor.verification_status,
            created_at=doctor.created_at,
        )
