"""Doctors' accounts on the home node: registration with the full profile and consents, the redirect that
stores and logs nothing, the diploma scan, verification and profile changes by moderators, and the doctor's
data-subject rights (export, erasure)."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from medplat.api.problems import Problem
from medplat.compliance.deadlines import due_on, local_date, working_days_between
from medplat.compliance.hooks import staff_ref
from medplat.config import Settings
from medplat.db.engine import async_engine
from medplat.domain.accounts.models import Consent, DataSubjectRequest, Diploma, Doctor, ProfileChange, SignInSession
from medplat.domain.accounts.services import MAX_DIPLOMA_BYTES, AccountService
from medplat.logs import configure_logging
from medplat.node import object_store, sync_db
from medplat.security import Role, issue_token

KZ_DOCTOR: dict[str, Any] = {
    "full_name": "Aigerim Nurlanovna",
    "phone": "+7 701 555 12 34",
    "email": "Aigerim.N@Clinic.kz",
    "citizenship": "KZ",
    "date_of_birth": "1985-04-17",
    "specializations": ["dermatology", "cosmetology"],
    "consents": [
        {"purpose": "personal_data", "granted": True},
        {"purpose": "byline", "granted": True, "cross_border": True},
        {"purpose": "notifications", "granted": False},
    ],
    "years_of_practice": 12,
    "academic_degree": "Candidate of Medical Sciences",
    "position": "Head of dermatology",
    "workplaces": [{"name": "City Clinic No. 4", "city": "Almaty"}, {"name": "Derma Centre", "city": "Almaty"}],
    "reception_schedule": [
        {"weekday": "mon", "start": "09:00", "end": "13:00", "workplace": 0},
        {"weekday": "thu", "start": "14:00", "end": "18:30", "workplace": 1},
    ],
}
RU_DOCTOR: dict[str, Any] = {
    **KZ_DOCTOR,
    "full_name": "Ivan Petrovich",
    "phone": "+7 916 555 43 21",
    "email": "ivan.p@clinic.ru",
    "citizenship": "RU",
    "date_of_birth": "1979-11-02",
}
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(40)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(40) + b"\xff\xd9"


# -- helpers shared with test_auth.py -------------------------------------------------------------------


def outbox_code(settings: Settings, challenge_id: str) -> str:
    with sync_db(settings).connect() as conn:
        return str(conn.execute(text("SELECT code FROM node.otp_outbox WHERE challenge_id = :c"), {"c": challenge_id}).scalar_one())


async def register(client: Any, person: dict[str, Any] = KZ_DOCTOR) -> str:
    response = await client.post("/api/v1/doctors", json=person)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def sign_in(client: Any, settings: Settings, person: dict[str, Any] = KZ_DOCTOR, by: str = "phone") -> dict[str, Any]:
    """Ask for a code, read it from the node's local outbox, exchange it: the tokens."""
    sent = await client.post("/api/v1/auth/code", json={by: person[by]})
    assert sent.status_code == 202, sent.text
    challenge = sent.json()["challenge_id"]
    answer = await client.post("/api/v1/auth/token", json={"challenge_id": challenge, "code": outbox_code(settings, challenge)})
    assert answer.status_code == 200, answer.text
    tokens: dict[str, Any] = answer.json()
    return tokens


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def staff(settings: Settings, role: Role, subject: str = "moderator-1") -> dict[str, str]:
    return bearer(issue_token(settings, subject, [role]))


def count(settings: Settings, model: Any) -> int:
    with sync_db(settings).connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


def diploma_objects(settings: Settings) -> list[str]:
    return [o.key for o in object_store(settings).list(settings.personal_bucket, "diplomas/")]


def assert_no_personal_data(text_: str, *people: dict[str, Any]) -> None:
    for person in people:
        digits = "".join(c for c in person["phone"] if c.isdigit())
        values = (person["phone"], digits, person["email"], person["email"].lower(), person["full_name"], person["date_of_birth"])
        for secret in values:
            assert secret not in text_, "personal data found in captured output"


@pytest.fixture(autouse=True)
def no_diplomas(settings: Settings) -> Iterator[None]:
    """The bucket is not emptied with the database: start and end every test with no diploma object."""

    def clear() -> None:
        for key in diploma_objects(settings):
            object_store(settings).delete(settings.personal_bucket, key)

    clear()
    yield
    clear()


@pytest.fixture
def captured_logs(client: Any, settings: Settings) -> io.StringIO:
    """Every log line the node writes from now on (the app under test is already built)."""
    stream = io.StringIO()
    configure_logging(settings.region.code, "DEBUG", stream=stream)
    return stream


@pytest.fixture
async def doctor(client: Any, settings: Settings) -> dict[str, Any]:
    """A registered, signed-in kz doctor: id and tokens."""
    doctor_id = await register(client)
    return {"id": doctor_id, **await sign_in(client, settings)}


# -- registration ---------------------------------------------------------------------------------------


async def test_a_doctor_registers_with_the_full_profile_and_consents(client: Any, settings: Settings, captured_logs: io.StringIO) -> None:
    response = await client.post("/api/v1/doctors", json=KZ_DOCTOR)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["home_region"] == "kz"
    assert body["verification_status"] == "unverified"
    assert body["specializations"] == ["cosmetology", "dermatology"]
    assert_no_personal_data(response.text, KZ_DOCTOR)
    with sync_db(settings).connect() as conn:
        raw = conn.execute(text("SELECT phone, email, date_of_birth, full_name FROM personal.doctor")).one()
        consents = conn.execute(select(Consent.purpose, Consent.granted, Consent.cross_border).order_by(Consent.purpose)).all()
        doctor = conn.execute(select(Doctor)).one()
    assert raw.phone != "+77015551234" and "7015551234" not in raw.phone, "phone must be encrypted at rest"
    assert "clinic.kz" not in raw.email.lower(), "e-mail must be encrypted at rest"
    assert "1985" not in raw.date_of_birth, "date of birth must be encrypted at rest"
    assert (doctor.phone, doctor.email, doctor.date_of_birth) == ("+77015551234", "Aigerim.N@clinic.kz", "1985-04-17")
    assert doctor.years_of_practice == 12 and doctor.academic_degree == "Candidate of Medical Sciences"
    assert doctor.workplaces == KZ_DOCTOR["workplaces"]
    assert doctor.reception_schedule[1] == {"weekday": "thu", "start": "14:00", "end": "18:30", "workplace": 1}
    assert consents == [("byline", True, True), ("notifications", False, False), ("personal_data", True, False)]
    lines = captured_logs.getvalue()
    events = [json.loads(line) for line in lines.splitlines()]
    assert any(e["event"] == "doctor.registered" for e in events)
    assert any(e["event"] == "request" and e["path"] == "/api/v1/doctors" for e in events)
    assert_no_personal_data(lines, KZ_DOCTOR)


async def test_a_registration_for_another_node_is_redirected_and_stores_nothing(
    client: Any, settings: Settings, captured_logs: io.StringIO
) -> None:
    response = await client.post("/api/v1/doctors", json=RU_DOCTOR, follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "http://ru.node.test/api/v1/doctors"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/wrong-node")
    assert response.json()["region"] == "ru"
    for model in (Doctor, Consent):
        assert count(settings, model) == 0
    lines = captured_logs.getvalue()
    assert any(json.loads(line)["event"] == "registration.redirected" for line in lines.splitlines())
    assert_no_personal_data(lines + response.text, RU_DOCTOR)
    assert "Almaty" not in lines and "Candidate" not in lines


async def test_the_national_id_is_checked_for_the_citizenship_stored_encrypted_and_unique(client: Any, settings: Settings) -> None:
    response = await client.post("/api/v1/doctors", json={**KZ_DOCTOR, "national_id": "850417 401236"})
    assert response.status_code == 201, response.text
    with sync_db(settings).connect() as conn:
        raw = conn.execute(text("SELECT national_id, national_id_lookup FROM personal.doctor")).one()
    assert "850417401236" not in raw.national_id, "the national id must be encrypted at rest"
    assert len(raw.national_id_lookup) == 64
    tokens = await sign_in(client, settings)
    profile = (await client.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})).json()
    assert profile["national_id"] == "850417401236"
    # Another phone and e-mail, the same person: refused, nothing stored.
    again = await client.post(
        "/api/v1/doctors", json={**KZ_DOCTOR, "email": "other@clinic.kz", "phone": "+7 701 555 99 88", "national_id": "850417-401236"}
    )
    assert again.status_code == 409
    assert again.json()["type"].endswith("/already-registered")
    assert "850417" not in again.text
    assert count(settings, Doctor) == 1


async def test_the_same_phone_cannot_register_twice(client: Any, settings: Settings) -> None:
    await register(client)
    again = await client.post("/api/v1/doctors", json={**KZ_DOCTOR, "email": "other@clinic.kz", "phone": "8 701 555 1234"})
    assert again.status_code == 409
    assert again.json()["type"].endswith("/already-registered")
    assert count(settings, Doctor) == 1
    assert count(settings, Consent) == 3


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
        ({"date_of_birth": "17.04.1985"}, 400, "date_of_birth"),
        ({"date_of_birth": "2015-01-01"}, 422, "date_of_birth"),
        ({"years_of_practice": -1}, 400, "years_of_practice"),
        ({"consents": [{"purpose": "notifications", "granted": True}]}, 422, "consents"),
        ({"consents": [{"purpose": "personal_data", "granted": False}]}, 422, "consents"),
        ({"consents": [{"purpose": "personal_data", "granted": True}, {"purpose": "personal_data", "granted": True}]}, 400, "consents"),
        ({"consents": [{"purpose": "marketing", "granted": True}]}, 400, "consents[0].purpose"),
        ({"workplaces": [{"name": "Clinic", "floor": 3}]}, 400, "workplaces[0].floor"),
        ({"reception_schedule": [{"weekday": "mon", "start": "13:00", "end": "09:00"}]}, 422, "reception_schedule[0].end"),
        (
            {"reception_schedule": [{"weekday": "mon", "start": "09:00", "end": "13:00", "workplace": 5}]},
            422,
            "reception_schedule[0].workplace",
        ),
        ({"reception_schedule": [{"weekday": "someday", "start": "09:00", "end": "13:00"}]}, 400, "reception_schedule[0].weekday"),
        ({"national_id": "850417401237"}, 422, "national_id"),  # an IIN with a wrong check digit
        ({"national_id": "851317401236"}, 422, "national_id"),  # month 13
        ({"national_id": "11223344595"}, 422, "national_id"),  # a valid SNILS, but the doctor is a KZ citizen
        ({"national_id": "85O417401236"}, 400, "national_id"),  # a letter O
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
    assert all(error["reason"] for error in problem["errors"])
    assert "Traceback" not in response.text
    assert_no_personal_data(response.text, KZ_DOCTOR)
    assert count(settings, Doctor) == 0
    assert count(settings, Consent) == 0


async def test_a_body_that_is_not_json_is_refused(client: Any, settings: Settings) -> None:
    response = await client.post("/api/v1/doctors", content=b"full_name=x", headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert count(settings, Doctor) == 0


async def test_an_oversized_body_is_refused_before_it_is_read(client: Any, settings: Settings) -> None:
    response = await client.post(
        "/api/v1/doctors", content=b"{" + b" " * (11 * 1024 * 1024) + b"}", headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["type"].endswith("/too-large")
    assert count(settings, Doctor) == 0


# -- the profile and the diploma ------------------------------------------------------------------------


async def test_the_doctor_sees_their_profile_and_nobody_else_can_read_it(client: Any, settings: Settings, doctor: dict[str, Any]) -> None:
    response = await client.get("/api/v1/me", headers=bearer(doctor["access_token"]))
    assert response.status_code == 200, response.text
    profile = response.json()
    assert profile["id"] == doctor["id"]
    assert profile["phone"] == "+77015551234" and profile["date_of_birth"] == "1985-04-17"
    assert profile["verification_status"] == "unverified" and profile["diploma"] is None
    assert [c["purpose"] for c in profile["consents"]] == ["byline", "notifications", "personal_data"]
    assert (await client.get("/api/v1/me")).status_code == 401
    for role in (Role.MODERATOR, Role.EDITOR, Role.COMPLIANCE):
        refused = await client.get("/api/v1/me", headers=staff(settings, role))
        assert refused.status_code == 403, role
        assert refused.json()["type"].endswith("/forbidden")


@pytest.mark.parametrize(("media_type", "body"), [("application/pdf", PDF), ("image/png", PNG), ("image/jpeg", JPEG)])
async def test_a_diploma_scan_goes_to_the_personal_bucket(
    client: Any, settings: Settings, doctor: dict[str, Any], media_type: str, body: bytes
) -> None:
    response = await client.put("/api/v1/me/diploma", content=body, headers={**bearer(doctor["access_token"]), "content-type": media_type})
    assert response.status_code == 201, response.text
    assert response.json()["length"] == len(body) and response.json()["media_type"] == media_type
    (key,) = diploma_objects(settings)
    assert key == f"diplomas/{doctor['id']}_{response.json()['sha256']}"
    assert object_store(settings).get(settings.personal_bucket, key) == body
    assert object_store(settings).stat(settings.shared_bucket, key) is None
    profile = (await client.get("/api/v1/me", headers=bearer(doctor["access_token"]))).json()
    assert profile["verification_status"] == "pending"
    assert profile["diploma"]["sha256"] == response.json()["sha256"]


@pytest.mark.parametrize(
    ("media_type", "body", "status", "slug"),
    [
        ("text/plain", b"just text", 415, "unsupported-media-type"),
        ("", PDF, 415, "unsupported-media-type"),
        ("image/gif", b"GIF89a" + bytes(20), 415, "unsupported-media-type"),
        ("application/pdf", PNG, 415, "content-mismatch"),
        ("image/png", b"<html><script>alert(1)</script></html>", 415, "content-mismatch"),
        ("image/jpeg", PDF, 415, "content-mismatch"),
        ("application/pdf", b"", 400, "invalid-field"),
        ("application/pdf", PDF + bytes(MAX_DIPLOMA_BYTES), 413, "too-large"),
    ],
)
async def test_a_wrong_or_oversized_diploma_is_refused_before_it_is_stored(
    client: Any, settings: Settings, doctor: dict[str, Any], media_type: str, body: bytes, status: int, slug: str
) -> None:
    headers = {**bearer(doctor["access_token"]), "content-type": media_type}
    response = await client.put("/api/v1/me/diploma", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith(f"/{slug}")
    assert diploma_objects(settings) == []
    assert count(settings, Diploma) == 0
    with sync_db(settings).connect() as conn:
        assert conn.execute(select(Doctor.verification_status)).scalar_one() == "unverified"


async def test_an_oversized_diploma_without_a_length_is_cut_off_while_read_and_not_stored(
    client: Any, settings: Settings, doctor: dict[str, Any]
) -> None:
    """A chunked upload has no Content-Length for the server to refuse up front; the service stops reading at the
    limit. (The test client cannot stream a body, so the service is called as the controller calls it.)"""
    read = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal read
        yield PDF
        for _ in range(64):
            read += 1
            yield bytes(1024 * 1024)

    engine = async_engine(settings.database_url)
    try:
        async with AsyncSession(engine) as session:
            service = AccountService(session, settings, object_store(settings))
            with pytest.raises(Problem) as refused:
                await service.upload_diploma(uuid.UUID(doctor["id"]), "application/pdf", chunks())
            await session.rollback()
    finally:
        await engine.dispose()
    assert (refused.value.status, refused.value.slug) == (413, "too-large")
    assert read == MAX_DIPLOMA_BYTES // (1024 * 1024), "reading stops at the first chunk past the limit"
    assert diploma_objects(settings) == []
    assert count(settings, Diploma) == 0


# -- verification by a moderator ------------------------------------------------------------------------


async def upload(client: Any, doctor: dict[str, Any], body: bytes = PDF, media_type: str = "application/pdf") -> None:
    response = await client.put("/api/v1/me/diploma", content=body, headers={**bearer(doctor["access_token"]), "content-type": media_type})
    assert response.status_code == 201, response.text


async def test_a_moderator_rejects_with_a_reason_then_approves_a_new_scan(client: Any, settings: Settings, doctor: dict[str, Any]) -> None:
    moderator = staff(settings, Role.MODERATOR)
    url = f"/api/v1/moderation/doctors/{doctor['id']}/verification"
    assert (await client.post(url, json={"decision": "approve"}, headers=moderator)).status_code == 409  # nothing uploaded yet
    await upload(client, doctor)
    queue = (await client.get("/api/v1/moderation/doctors", headers=moderator)).json()
    assert [d["id"] for d in queue] == [doctor["id"]]
    assert "phone" not in queue[0] and "email" not in queue[0]
    scan = await client.get(f"/api/v1/moderation/doctors/{doctor['id']}/diploma", headers=moderator)
    assert scan.status_code == 200 and scan.content == PDF and scan.headers["content-type"] == "application/pdf"

    no_reason = await client.post(url, json={"decision": "reject"}, headers=moderator)
    assert no_reason.status_code == 422
    assert no_reason.json()["errors"] == [{"field": "reason", "reason": "a rejection needs a reason the doctor will see"}]
    me = (await client.get("/api/v1/me", headers=bearer(doctor["access_token"]))).json()
    assert me["verification_status"] == "pending"

    rejected = await client.post(url, json={"decision": "reject", "reason": "The scan is unreadable"}, headers=moderator)
    assert rejected.status_code == 200 and rejected.json()["verification_status"] == "rejected"
    me = (await client.get("/api/v1/me", headers=bearer(doctor["access_token"]))).json()
    assert (me["verification_status"], me["verification_reason"]) == ("rejected", "The scan is unreadable")

    await upload(client, doctor, PNG, "image/png")
    assert len(diploma_objects(settings)) == 1, "the rejected scan is replaced, not kept"
    approved = await client.post(url, json={"decision": "approve"}, headers=moderator)
    assert approved.status_code == 200
    me = (await client.get("/api/v1/me", headers=bearer(doctor["access_token"]))).json()
    assert (me["verification_status"], me["verification_reason"]) == ("verified", None)
    again = await client.put(
        "/api/v1/me/diploma", content=PDF, headers={**bearer(doctor["access_token"]), "content-type": "application/pdf"}
    )
    assert again.status_code == 409


@pytest.mark.parametrize("subject", ["moderator.one@clinic.kz", "Erlan Bekovich"])
async def test_log_lines_name_a_moderator_as_the_audit_log_does(
    client: Any, settings: Settings, doctor: dict[str, Any], captured_logs: io.StringIO, subject: str
) -> None:
    moderator = staff(settings, Role.MODERATOR, subject)
    await upload(client, doctor)
    assert (await client.get(f"/api/v1/moderation/doctors/{doctor['id']}/diploma", headers=moderator)).status_code == 200
    url = f"/api/v1/moderation/doctors/{doctor['id']}/verification"
    assert (await client.post(url, json={"decision": "approve"}, headers=moderator)).status_code == 200
    proposed = await client.post(
        "/api/v1/me/profile-changes", json={"changes": {"years_of_practice": 13}}, headers=bearer(doctor["access_token"])
    )
    decided = await client.post(f"/api/v1/moderation/changes/{proposed.json()['id']}/decision", json={"decision": "approve"},
                                headers=moderator)  # fmt: skip
    assert decided.status_code == 200
    ref = staff_ref(subject, settings.data_key)
    assert ref.startswith("hmac:")
    lines = [json.loads(line) for line in captured_logs.getvalue().splitlines()]
    assert [(line["event"], line["staff"]) for line in lines if "staff" in line] == [
        ("staff.personal_access", ref), ("doctor.verification_decided", ref), ("doctor.change_decided", ref),
    ]  # fmt: skip
    leaked = subject in captured_logs.getvalue()
    assert not leaked, "a moderator's subject reached the log"
    with sync_db(settings).connect() as conn:
        staff_of = "convert_from(entry, 'UTF8')::jsonb #>> '{payload,staff}'"
        leaves = conn.execute(text(f"SELECT DISTINCT {staff_of} FROM audit.leaf WHERE kind = 'personal_data_access'"))
        assert leaves.scalars().all() == [ref], "the log lines and the audit leaves name the moderator alike"


@pytest.mark.parametrize("role", [Role.DOCTOR, Role.EDITOR, Role.DIRECTOR, Role.COMPLIANCE, Role.OPS])
async def test_only_moderators_verify(client: Any, settings: Settings, doctor: dict[str, Any], role: Role) -> None:
    await upload(client, doctor)
    headers = bearer(doctor["access_token"]) if role is Role.DOCTOR else staff(settings, role)
    response = await client.post(f"/api/v1/moderation/doctors/{doctor['id']}/verification", json={"decision": "approve"}, headers=headers)
    assert response.status_code == 403
    assert response.json()["detail"] == "requires one of the roles: moderator"
    assert (await client.get(f"/api/v1/moderation/doctors/{doctor['id']}/diploma", headers=headers)).status_code == 403
    with sync_db(settings).connect() as conn:
        assert conn.execute(select(Doctor.verification_status)).scalar_one() == "pending"


# -- profile changes through moderation -----------------------------------------------------------------


async def test_a_change_asked_for_by_a_representative_waits_for_another_moderator(
    client: Any, settings: Settings, doctor: dict[str, Any]
) -> None:
    rep, other = staff(settings, Role.MODERATOR, "rep-1"), staff(settings, Role.MODERATOR, "moderator-2")
    proposed = await client.post(
        f"/api/v1/moderation/doctors/{doctor['id']}/changes",
        json={"changes": {"position": "Chief physician", "specializations": ["trichology", "dermatology"]}},
        headers=rep,
    )
    assert proposed.status_code == 201, proposed.text
    change = proposed.json()
    assert change["status"] == "pending" and change["requested_by"] == "rep-1"
    me = (await client.get("/api/v1/me", headers=bearer(doctor["access_token"]))).json()
    assert me["position"] == "Head of dermatology", "nothing applies before a moderator approves"
    assert [c["id"] for c in me["pending_changes"]] == [change["id"]]

    own = await client.post(f"/api/v1/moderation/changes/{change['id']}/decision", json={"decision": "approve"}, headers=rep)
    assert own.status_code == 403 and own.json()["type"].endswith("/four-eyes")
    with sync_db(settings).connect() as conn:
        assert conn.execute(select(ProfileChange.status)).scalar_one() == "pending"

    approved = await client.post(f"/api/v1/moderation/changes/{change['id']}/decision", json={"decision": "approve"}, headers=other)
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    me = (await client.get("/api/v1/me", headers=bearer(doctor["access_token"]))).json()
    assert (me["position"], me["specializations"]) == ("Chief physician", ["dermatology", "trichology"])
    assert me["pending_changes"] == []
    twice = await client.post(
        f"/api/v1/moderation/changes/{change['id']}/decision", json={"decision": "reject", "reason": "too late"}, headers=other
    )
    assert twice.status_code == 409


async def test_a_doctor_asks_for_a_change_and_a_moderator_rejects_it(client: Any, settings: Settings, doctor: dict[str, Any]) -> None:
    proposed = await client.post(
        "/api/v1/me/profile-changes", json={"changes": {"years_of_practice": 40}}, headers=bearer(doctor["access_token"])
    )
    assert proposed.status_code == 201, proposed.text
    pending = (await client.get("/api/v1/moderation/changes", headers=staff(settings, Role.MODERATOR))).json()
    assert [c["id"] for c in pending] == [proposed.json()["id"]]
    rejected = await client.post(
        f"/api/v1/moderation/changes/{proposed.json()['id']}/decision",
        json={"decision": "reject", "reason": "Does not match the diploma date"},
        headers=staff(settings, Role.MODERATOR),
    )
    assert rejected.status_code == 200 and rejected.json()["reason"] == "Does not match the diploma date"
    me = (await client.get("/api/v1/me", headers=bearer(doctor["access_token"]))).json()
    assert me["years_of_practice"] == 12


@pytest.mark.parametrize(
    ("changes", "status", "field"),
    [
        ({}, 400, "changes"),
        ({"phone": "+77015550000"}, 400, "changes.phone"),
        ({"citizenship": "RU"}, 400, "changes.citizenship"),
        ({"years_of_practice": 200}, 400, "changes.years_of_practice"),
        ({"reception_schedule": [{"weekday": "mon", "start": "09:00", "end": "08:00"}]}, 422, "changes.reception_schedule[0].end"),
    ],
)
async def test_bad_changes_are_refused_and_nothing_is_recorded(
    client: Any, settings: Settings, doctor: dict[str, Any], changes: dict[str, Any], status: int, field: str
) -> None:
    response = await client.post(
        f"/api/v1/moderation/doctors/{doctor['id']}/changes", json={"changes": changes}, headers=staff(settings, Role.MODERATOR)
    )
    assert response.status_code == status, response.text
    assert any(e["field"] == field for e in response.json()["errors"]), response.json()
    assert count(settings, ProfileChange) == 0


# -- data-subject rights --------------------------------------------------------------------------------


async def test_the_export_holds_everything_and_is_recorded(client: Any, settings: Settings, doctor: dict[str, Any]) -> None:
    await upload(client, doctor)
    response = await client.get("/api/v1/me/export", headers=bearer(doctor["access_token"]))
    assert response.status_code == 200, response.text
    assert "attachment" in response.headers["content-disposition"]
    export = response.json()
    assert export["node"] == "kz"
    profile = export["profile"]
    assert (profile["full_name"], profile["phone"], profile["email"]) == ("Aigerim Nurlanovna", "+77015551234", "Aigerim.N@clinic.kz")
    assert profile["date_of_birth"] == "1985-04-17" and profile["diploma"]["media_type"] == "application/pdf"
    assert {c["purpose"] for c in profile["consents"]} == {"personal_data", "byline", "notifications"}
    assert len(export["sign_in_sessions"]) == 1 and export["sign_in_sessions"][0]["revoked_at"] is None
    assert [(r["kind"], r["status"]) for r in export["data_subject_requests"]] == [("access", "completed")]
    with sync_db(settings).connect() as conn:
        row = conn.execute(select(DataSubjectRequest)).one()
    assert (str(row.doctor_id), row.kind, row.status) == (doctor["id"], "access", "completed")
    # Kazakhstan: three working days (medplat.compliance.deadlines), counted from the node's local date.
    assert row.due_on == due_on("KZ", "access", row.requested_at, "Asia/Almaty")
    assert working_days_between("KZ", local_date(row.requested_at, "Asia/Almaty"), row.due_on) == 3


async def test_erasure_removes_the_account_and_the_scan_and_is_recorded(client: Any, settings: Settings, doctor: dict[str, Any]) -> None:
    await upload(client, doctor)
    await client.post("/api/v1/me/profile-changes", json={"changes": {"position": "Consultant"}}, headers=bearer(doctor["access_token"]))
    # Scans no row points at any more: one in the flat layout, one in the folder-per-doctor layout of earlier releases.
    store = object_store(settings)
    for left_behind in (f"diplomas/{doctor['id']}_{'a' * 64}", f"diplomas/{doctor['id']}/{'b' * 64}"):
        store.put(settings.personal_bucket, left_behind, PDF, len(PDF), "application/pdf")
    assert len(diploma_objects(settings)) == 3
    response = await client.post("/api/v1/me/erasure", headers=bearer(doctor["access_token"]))
    assert response.status_code == 202, response.text
    assert (response.json()["kind"], response.json()["status"]) == ("erasure", "completed")
    for model in (Doctor, Consent, Diploma, ProfileChange, SignInSession):
        assert count(settings, model) == 0, model.__name__
    assert diploma_objects(settings) == []
    assert (await client.get("/api/v1/me", headers=bearer(doctor["access_token"]))).status_code == 401
    recorded = await client.get("/api/v1/compliance/data-subject-requests", headers=staff(settings, Role.COMPLIANCE, "officer-1"))
    assert recorded.status_code == 200
    # The doctor's own profile change was a rectification request; the erasure closes it.
    assert [(r["doctor_id"], r["kind"], r["status"]) for r in recorded.json()] == [
        (doctor["id"], "rectification", "completed"),
        (doctor["id"], "erasure", "completed"),
    ]
    assert (await client.get("/api/v1/compliance/data-subject-requests", headers=bearer(doctor["access_token"]))).status_code == 401
    refused = await client.get("/api/v1/compliance/data-subject-requests", headers=staff(settings, Role.MODERATOR))
    assert refused.status_code == 403
    # The phone number is free again: the person can register anew.
    assert uuid.UUID(await register(client)) != uuid.UUID(doctor["id"])


@pytest.mark.parametrize(
    ("without", "field"),
    [("date_of_birth", "date_of_birth"), ("consents.0.granted", "consents[0].granted")],
)
async def test_a_missing_required_field_is_named_with_its_path(client: Any, settings: Settings, without: str, field: str) -> None:
    body = json.loads(json.dumps(KZ_DOCTOR))
    *parents, last = without.split(".")
    target = body
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    del target[last]
    response = await client.post("/api/v1/doctors", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["errors"] == [{"field": field, "source": "body", "reason": "required field missing"}]
    assert count(settings, Doctor) == 0
