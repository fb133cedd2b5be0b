"""Registering a doctor on the home node; a registration for another node stores nothing, logs nothing personal."""

from __future__ import annotations

import io
from typing import Any

import pytest
from sqlalchemy import func, select, text

from medplat.config import Settings
from medplat.domain.accounts.models import Doctor
from medplat.logs import configure_logging
from medplat.node import sync_db

KZ_DOCTOR = {
    "full_name": "Aigerim Nurlanovna",
    "phone": "+7 701 555 12 34",
    "email": "Aigerim.N@Clinic.kz",
    "citizenship": "KZ",
    "specializations": ["dermatology", "cosmetology"],
}
RU_DOCTOR = {
    "full_name": "Ivan Petrovich",
    "phone": "+7 916 555 43 21",
    "email": "ivan.p@clinic.ru",
    "citizenship": "RU",
    "specializations": ["dermatology"],
}


@pytest.fixture
def captured_logs(client: Any, settings: Settings) -> io.StringIO:
    """Every log line the node writes from now on (the app under test is already built)."""
    stream = io.StringIO()
    configure_logging(settings.region.code, "DEBUG", stream=stream)
    return stream


def doctor_count(settings: Settings) -> int:
    with sync_db(settings).connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Doctor)).scalar_one())


def assert_no_personal_data(text_: str, *people: dict[str, Any]) -> None:
    for person in people:
        digits = "".join(c for c in person["phone"] if c.isdigit())
        for secret in (person["phone"], digits, person["email"], person["email"].lower(), person["full_name"]):
            assert secret not in text_, "personal data found in captured output"


async def test_a_doctor_registers_on_the_home_node(client: Any, settings: Settings, captured_logs: io.StringIO) -> None:
    response = await client.post("/api/v1/doctors", json=KZ_DOCTOR)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["home_region"] == "kz"
    assert body["verification_status"] == "unverified"
    assert body["specializations"] == ["cosmetology", "dermatology"]
    assert_no_personal_data(response.text, KZ_DOCTOR)
    with sync_db(settings).connect() as conn:
        raw = conn.execute(text("SELECT phone, email, full_name FROM personal.doctor")).one()
    assert raw.phone != "+77015551234" and "7015551234" not in raw.phone, "phone must be encrypted at rest"
    assert "clinic.kz" not in raw.email.lower(), "e-mail must be encrypted at rest"
    with sync_db(settings).connect() as conn:
        doctor = conn.execute(select(Doctor.phone, Doctor.email)).one()
    assert (doctor.phone, doctor.email) == ("+77015551234", "Aigerim.N@clinic.kz")
    lines = captured_logs.getvalue()
    assert '"event": "doctor.registered"' in lines
    assert '"path": "/api/v1/doctors"' in lines
    assert_no_personal_data(lines, KZ_DOCTOR)


async def test_a_registration_for_another_node_is_redirected_and_stores_nothing(
    client: Any, settings: Settings, captured_logs: io.StringIO
) -> None:
    before = doctor_count(settings)
    response = await client.post("/api/v1/doctors", json=RU_DOCTOR, follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "http://ru.node.test/api/v1/doctors"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/wrong-node")
    assert response.json()["region"] == "ru"
    assert doctor_count(settings) == before == 0
    lines = captured_logs.getvalue()
    assert '"event": "registration.redirected"' in lines
    assert_no_personal_data(lines + response.text, RU_DOCTOR)


async def test_the_same_phone_cannot_register_twice(client: Any, settings: Settings) -> None:
    assert (await client.post("/api/v1/doctors", json=KZ_DOCTOR)).status_code == 201
    again = await client.post("/api/v1/doctors", json={**KZ_DOCTOR, "email": "other@clinic.kz", "phone": "8 701 555 1234"})
    assert again.status_code == 409
    assert again.json()["type"].endswith("/already-registered")
    assert doctor_count(settings) == 1


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"phone": "12345"}, 422, "phone"),
        ({"email": "not-an-email"}, 400, "email"),
        ({"citizenship": "kz"}, 400, "citizenship"),
        ({"citizenship": "BY"}, 422, "citizenship"),
        ({"specializations": []}, 400, "specializations"),
        ({"specializations": ["Not A Code"]}, 400, "specializations"),
        ({"nickname": "x"}, 400, "nickname"),
    ],
)
async def test_bad_input_is_a_problem_naming_the_field_and_stores_nothing(
    client: Any, settings: Settings, change: dict[str, Any], status: int, field: str
) -> None:
    response = await client.post("/api/v1/doctors", json={**KZ_DOCTOR, **change})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    assert any(error["field"].startswith(field) for error in problem["errors"]), problem
    assert "Traceback" not in response.text
    assert_no_personal_data(response.text, KZ_DOCTOR)
    assert doctor_count(settings) == 0


async def test_a_body_that_is_not_json_is_refused(client: Any, settings: Settings) -> None:
    response = await client.post("/api/v1/doctors", content=b"full_name=x", headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert doctor_count(settings) == 0


async def test_an_oversized_body_is_refused_before_it_is_read(client: Any, settings: Settings) -> None:
    response = await client.post(
        "/api/v1/doctors", content=b"{" + b" " * (11 * 1024 * 1024) + b"}", headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["type"].endswith("/too-large")
    assert doctor_count(settings) == 0
