"""Clinical cases (the personal-data check, photos into the personal bucket, moderation, who sees what, never
in a manifest), event registration and attendance, the director's counts, and export and erasure of them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import psycopg
import pytest
from sqlalchemy import select

from medplat.config import Settings
from medplat.domain.cases.models import CasePhoto, ClinicalCase
from medplat.domain.events.models import EventRegistration
from medplat.node import object_store, sync_db
from medplat.security import Role
from medsync.items import SharedDocument, from_builtins
from tests.integration.test_accounts import JPEG, KZ_DOCTOR, PDF, PNG, RU_DOCTOR, bearer, count, register, sign_in, staff
from tests.integration.test_feed import applied_item, verified_doctor
from tests.unit.test_border import IIN

CASE: dict[str, Any] = {
    "sex": "female",
    "age_band": "30-39",
    "condition": "Acne vulgaris, moderate",
    "recommendations": "Adapalene 0.1% gel at night, La Roche-Posay Effaclar Duo in the morning, SPF 50.",
    "product": "Effaclar Duo(+)",
    "outcome": "After 12 weeks inflammatory lesions down by about two thirds.",
}
SECOND: dict[str, Any] = {**KZ_DOCTOR, "full_name": "Dana Serikovna", "phone": "+7 702 555 77 88", "email": "dana@clinic.kz"}


def case_objects(settings: Settings) -> list[str]:
    return sorted(o.key for o in object_store(settings).list(settings.personal_bucket, "cases/"))


@pytest.fixture(autouse=True)
def no_objects(settings: Settings) -> Iterator[None]:
    def clear() -> None:
        for prefix in ("cases/", "diplomas/"):
            for o in object_store(settings).list(settings.personal_bucket, prefix):
                object_store(settings).delete(settings.personal_bucket, o.key)

    clear()
    yield
    clear()


async def submit(client: Any, doctor: dict[str, Any], case: dict[str, Any] = CASE) -> dict[str, Any]:
    response = await client.post("/api/v1/cases", json=case, headers=doctor["headers"])
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# -- cases ------------------------------------------------------------------------------------------------


async def test_a_verified_doctor_submits_a_case_that_waits_for_a_moderator(client: Any, settings: Settings) -> None:
    doctor = await verified_doctor(client, settings)
    case = await submit(client, doctor)
    assert (case["status"], case["mine"], case["photos"], case["age_band"]) == ("pending", True, [], "30-39")
    assert count(settings, ClinicalCase) == 1
    with sync_db(settings).connect() as conn:
        assert str(conn.execute(select(ClinicalCase.doctor_id)).scalar_one()) == doctor["id"]


async def test_an_unverified_doctor_cannot_submit(client: Any, settings: Settings) -> None:
    await register(client)
    tokens = await sign_in(client, settings)
    response = await client.post("/api/v1/cases", json=CASE, headers=bearer(tokens["access_token"]))
    assert response.status_code == 403
    assert response.json()["detail"] == "clinical cases are for verified doctors; your verification status is unverified"
    assert count(settings, ClinicalCase) == 0


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("recommendations", "Пациентка Иванова, крем дважды в день.", "looks like a person's name; a case must be anonymised"),
        ("outcome", "Aigerim Nurlanovna is doing well.", "looks like a person's name; a case must be anonymised"),
        ("outcome", "Result reported by И. И. Петров at follow-up.", "looks like a person's name; a case must be anonymised"),
        ("recommendations", "Call back on +7 701 555 12 34 if worse.", "a phone number; a case must be anonymised"),
        ("condition", "Rosacea, write to patient@mail.kz", "an e-mail address; a case must be anonymised"),
        ("outcome", f"ИИН {IIN}, improved.", "a Kazakh IIN (individual identification number); a case must be anonymised"),
    ],
)
async def test_personal_data_in_a_case_is_refused_naming_the_field(
    client: Any, settings: Settings, field: str, value: str, reason: str
) -> None:
    doctor = await verified_doctor(client, settings)
    response = await client.post("/api/v1/cases", json={**CASE, field: value}, headers=doctor["headers"])
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["type"], body["errors"]) == ("https://medfed.dev/problems/personal-data", [{"field": field, "reason": reason}])
    assert value not in response.text
    assert count(settings, ClinicalCase) == 0


async def test_several_findings_are_all_named(client: Any, settings: Settings) -> None:
    doctor = await verified_doctor(client, settings)
    bad = {**CASE, "condition": "Mrs Smith, eczema", "outcome": "mail me: a@b.kz or +7 701 555 12 34"}
    response = await client.post("/api/v1/cases", json=bad, headers=doctor["headers"])
    assert [(e["field"], e["reason"].split(";")[0]) for e in response.json()["errors"]] == [
        ("condition", "looks like a person's name"),
        ("outcome", "a phone number"),
        ("outcome", "an e-mail address"),
    ]


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({**CASE, "patient_name": "x"}, "patient_name", "unknown field"),
        ({**CASE, "age_band": "34"}, "age_band", "Invalid enum value '34'"),
        ({k: v for k, v in CASE.items() if k != "outcome"}, "outcome", "required field missing"),
    ],
)
async def test_bad_case_input_is_a_problem_naming_the_field(
    client: Any, settings: Settings, body: dict[str, Any], field: str, reason: str
) -> None:
    doctor = await verified_doctor(client, settings)
    response = await client.post("/api/v1/cases", json=body, headers=doctor["headers"])
    assert response.status_code == 400, response.text
    error = response.json()["errors"][0]
    assert error["field"] == field and error["reason"].startswith(reason)
    assert count(settings, ClinicalCase) == 0


async def test_photos_are_checked_before_they_reach_the_personal_bucket(client: Any, settings: Settings) -> None:
    doctor = await verified_doctor(client, settings)
    case = await submit(client, doctor)
    url = f"/api/v1/cases/{case['id']}/photos/before"

    async def put(data: bytes, media_type: str, where: str = url) -> Any:
        return await client.put(where, content=data, headers={**doctor["headers"], "Content-Type": media_type})

    wrong_type = await put(PDF, "application/pdf")
    assert (wrong_type.status_code, wrong_type.json()["errors"]) == (
        415,
        [{"field": "content-type", "reason": "must be one of image/jpeg, image/png"}],
    )
    mismatch = await put(PDF, "image/png")
    assert (mismatch.status_code, mismatch.json()["type"]) == (415, "https://medfed.dev/problems/content-mismatch")
    too_large = await put(PNG + bytes(10 * 1024 * 1024), "image/png")
    assert too_large.status_code == 413
    assert (await put(PNG, "image/png", f"/api/v1/cases/{case['id']}/photos/during")).json()["errors"] == [
        {"field": "stage", "source": "path", "reason": "must be before or after"}
    ]
    assert case_objects(settings) == [] and count(settings, CasePhoto) == 0

    before = await put(PNG, "image/png")
    after = await put(JPEG, "image/jpeg", f"/api/v1/cases/{case['id']}/photos/after")
    assert (before.status_code, after.status_code) == (201, 201)
    assert (before.json()["stage"], before.json()["length"], after.json()["media_type"]) == ("before", len(PNG), "image/jpeg")
    keys = case_objects(settings)
    assert keys == sorted(f"cases/{doctor['id']}_{case['id']}_{r.json()['stage']}-{r.json()['sha256']}" for r in (before, after))
    replaced = await put(JPEG, "image/jpeg")  # a new before photo replaces the old object
    assert replaced.status_code == 201 and len(case_objects(settings)) == 2 and count(settings, CasePhoto) == 2


async def test_only_verified_doctors_of_the_node_see_approved_cases(client: Any, settings: Settings) -> None:
    author = await verified_doctor(client, settings)
    reader = await verified_doctor(client, settings, SECOND)
    case = await submit(client, author)
    assert (await client.put(f"/api/v1/cases/{case['id']}/photos/before", content=PNG,
                             headers={**author["headers"], "Content-Type": "image/png"})).status_code == 201  # fmt: skip
    url = f"/api/v1/cases/{case['id']}"
    assert (await client.get(url, headers=reader["headers"])).status_code == 404
    assert (await client.get(f"{url}/photos/before", headers=reader["headers"])).status_code == 404
    assert (await client.get("/api/v1/cases", headers=reader["headers"])).json() == []
    assert [c["id"] for c in (await client.get("/api/v1/cases?mine=true", headers=author["headers"])).json()] == [case["id"]]

    moderator = staff(settings, Role.MODERATOR)
    pending = (await client.get("/api/v1/moderation/cases", headers=moderator)).json()
    assert [(c["id"], c["doctor_id"], len(c["photos"])) for c in pending] == [(case["id"], author["id"], 1)]
    assert (await client.get(f"/api/v1/moderation/cases/{case['id']}/photos/before", headers=moderator)).content == PNG
    no_reason = await client.post(f"/api/v1/moderation/cases/{case['id']}/decision", json={"decision": "reject"}, headers=moderator)
    assert (no_reason.status_code, no_reason.json()["errors"]) == (422, [{"field": "reason", "reason": "required to reject"}])
    approved = await client.post(f"/api/v1/moderation/cases/{case['id']}/decision", json={"decision": "approve"}, headers=moderator)
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    again = await client.post(f"/api/v1/moderation/cases/{case['id']}/decision", json={"decision": "approve"}, headers=moderator)
    assert (again.status_code, again.json()["type"]) == (409, "https://medfed.dev/problems/case-decided")

    seen = await client.get(url, headers=reader["headers"])
    assert seen.status_code == 200 and (seen.json()["mine"], seen.json()["status"]) == (False, "approved")
    assert "doctor_id" not in seen.json()
    photo = await client.get(f"{url}/photos/before", headers=reader["headers"])
    assert (photo.content, photo.headers["cache-control"]) == (PNG, "private, no-store")
    locked = await client.put(f"{url}/photos/after", content=PNG, headers={**author["headers"], "Content-Type": "image/png"})
    assert locked.status_code == 409

    await register(client, {**KZ_DOCTOR, "phone": "+7 705 555 00 00", "email": "new@clinic.kz"})
    unverified = await sign_in(client, settings, {**KZ_DOCTOR, "phone": "+7 705 555 00 00"})
    assert (await client.get(url, headers=bearer(unverified["access_token"]))).status_code == 403
    assert (await client.get(url, headers=staff(settings, Role.EDITOR))).status_code == 403


async def test_a_rejected_case_shows_its_reason_to_its_author_only(client: Any, settings: Settings) -> None:
    author = await verified_doctor(client, settings)
    case = await submit(client, author)
    moderator = staff(settings, Role.MODERATOR)
    decision = {"decision": "reject", "reason": "The photos show a tattoo that identifies the patient"}
    assert (await client.post(f"/api/v1/moderation/cases/{case['id']}/decision", json=decision, headers=moderator)).status_code == 200
    mine = (await client.get(f"/api/v1/cases/{case['id']}", headers=author["headers"])).json()
    assert (mine["status"], mine["reason"]) == ("rejected", decision["reason"])


async def test_cases_can_never_enter_a_manifest(settings: Settings, clean_db: None) -> None:
    """The sync workers' role cannot read them, and the allow-listed document has no field that could carry one."""
    for table in ("personal.clinical_case", "personal.case_photo", "personal.event_registration"):
        with psycopg.connect(settings.sync_database_url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
            conn.execute(f"SELECT * FROM {table}")  # type: ignore[arg-type]
        assert "permission denied for schema personal" in str(caught.value)
    document = {"kind": "article", "category": "case", "specializations": [], "languages": ["ru"], "texts": []}
    for field, value in [("clinical_case", CASE), *CASE.items()]:
        with pytest.raises(msgspec.ValidationError, match=f"Object contains unknown field `{field}`"):
            from_builtins({**document, field: value})
    assert not set(CASE) & set(SharedDocument.__struct_fields__)


# -- events -----------------------------------------------------------------------------------------------

CONGRESS = {"starts_at": "2026-12-10T09:00:00+05:00", "ends_at": "2026-12-11T18:00:00+05:00", "city": "Almaty", "venue": "Palace"}


async def test_registration_attendance_and_cancellation(client: Any, settings: Settings) -> None:
    doctor = await verified_doctor(client, settings)
    congress = applied_item(settings, texts={"ru": "Конгресс дерматологов"}, kind="event", event=CONGRESS)
    article = applied_item(settings, texts={"ru": "Статья"})
    url = f"/api/v1/events/{congress}/registration"
    registered = await client.put(url, headers=doctor["headers"])
    assert registered.status_code == 201, registered.text
    assert (registered.json()["title"], registered.json()["status"], registered.json()["event"]) == (
        "Конгресс дерматологов",
        "registered",
        CONGRESS,
    )
    twice = await client.put(url, headers=doctor["headers"])
    assert (twice.status_code, twice.json()["type"]) == (409, "https://medfed.dev/problems/already-registered")
    not_event = await client.put(f"/api/v1/events/{article}/registration", headers=doctor["headers"])
    assert (not_event.status_code, not_event.json()["detail"]) == (404, "no published event with this id on this node")
    assert count(settings, EventRegistration) == 1

    moderator = staff(settings, Role.MODERATOR, "rep-almaty")
    listed = (await client.get(f"/api/v1/moderation/events/{congress}/registrations", headers=moderator)).json()
    assert [(a["doctor_id"], a["full_name"], a["attended_at"]) for a in listed] == [(doctor["id"], KZ_DOCTOR["full_name"], None)]
    assert "phone" not in listed[0] and "email" not in listed[0]
    marked = await client.post(f"/api/v1/moderation/events/{congress}/attendance", json={"doctor_id": doctor["id"]}, headers=moderator)
    assert marked.status_code == 200 and marked.json()["marked_by"] == "rep-almaty" and marked.json()["attended_at"]
    mine = (await client.get("/api/v1/me/events", headers=doctor["headers"])).json()
    assert [(r["event_id"], r["status"], bool(r["attended_at"])) for r in mine] == [(congress, "registered", True)]
    attended = await client.delete(url, headers=doctor["headers"])
    assert (attended.status_code, attended.json()["type"]) == (409, "https://medfed.dev/problems/already-attended")

    unmark = await client.post(
        f"/api/v1/moderation/events/{congress}/attendance", json={"doctor_id": doctor["id"], "attended": False}, headers=moderator
    )
    assert unmark.json()["attended_at"] is None
    cancelled = await client.delete(url, headers=doctor["headers"])
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    late = await client.post(f"/api/v1/moderation/events/{congress}/attendance", json={"doctor_id": doctor["id"]}, headers=moderator)
    assert (late.status_code, late.json()["errors"]) == (409, [{"field": "doctor_id", "reason": "not registered for this event"}])
    unknown = await client.post(
        f"/api/v1/moderation/events/{congress}/attendance", json={"doctor_id": doctor["id"], "seat": 4}, headers=moderator
    )
    assert (unknown.status_code, unknown.json()["errors"][0]["field"]) == (400, "seat")
    assert (await client.put(url, headers=doctor["headers"])).status_code == 201  # registering again after a cancellation
    assert (await client.get(f"/api/v1/moderation/events/{congress}/registrations", headers=doctor["headers"])).status_code == 403


# -- the director -----------------------------------------------------------------------------------------


async def test_the_director_sees_counts_and_no_person(client: Any, settings: Settings) -> None:
    one = await verified_doctor(client, settings)
    await register(client, SECOND)  # unverified
    congress = applied_item(settings, texts={"ru": "Конгресс"}, kind="event", event=CONGRESS)
    assert (await client.put(f"/api/v1/events/{congress}/registration", headers=one["headers"])).status_code == 201
    moderator = staff(settings, Role.MODERATOR)
    await client.post(f"/api/v1/moderation/events/{congress}/attendance", json={"doctor_id": one["id"]}, headers=moderator)
    await submit(client, one)

    response = await client.get("/api/v1/director/stats", headers=staff(settings, Role.DIRECTOR, "director-kz"))
    assert response.status_code == 200, response.text
    stats = response.json()
    assert stats["node"] == "kz" and stats["doctors_total"] == 2
    assert stats["doctors_by_verification_status"] == {"unverified": 1, "verified": 1}
    assert stats["doctors_by_specialization"] == {"cosmetology": 2, "dermatology": 2}
    assert stats["cases_by_status"] == {"pending": 1}
    assert stats["events"] == [
        {"event_id": congress, "title": "Конгресс", "status": "published", "registered": 1, "cancelled": 0, "attended": 1}
    ]
    for person in (KZ_DOCTOR, SECOND):
        assert person["full_name"] not in response.text and person["email"] not in response.text
    assert one["id"] not in response.text
    assert (await client.get("/api/v1/director/stats", headers=one["headers"])).status_code == 403
    assert (await client.get("/api/v1/director/stats", headers=moderator)).status_code == 403


# -- export and erasure -----------------------------------------------------------------------------------


async def test_export_and_erasure_cover_cases_photos_and_registrations(client: Any, settings: Settings) -> None:
    doctor = await verified_doctor(client, settings)
    other = await verified_doctor(client, settings, SECOND)
    case = await submit(client, doctor)
    await client.put(f"/api/v1/cases/{case['id']}/photos/before", content=PNG, headers={**doctor["headers"], "Content-Type": "image/png"})
    kept = await submit(client, other)
    await client.put(f"/api/v1/cases/{kept['id']}/photos/after", content=JPEG, headers={**other["headers"], "Content-Type": "image/jpeg"})
    congress = applied_item(settings, texts={"ru": "Конгресс"}, kind="event", event=CONGRESS)
    for who in (doctor, other):
        await client.put(f"/api/v1/events/{congress}/registration", headers=who["headers"])

    export = (await client.get("/api/v1/me/export", headers=doctor["headers"])).json()
    assert [
        (c["id"], c["condition"], [(p["stage"], p["media_type"], p["length"]) for p in c["photos"]]) for c in export["clinical_cases"]
    ] == [(case["id"], CASE["condition"], [("before", "image/png", len(PNG))])]
    assert [(r["event_id"], r["status"]) for r in export["event_registrations"]] == [(congress, "registered")]
    assert "key" not in export["clinical_cases"][0]["photos"][0]

    erased = await client.post("/api/v1/me/erasure", headers=doctor["headers"])
    assert erased.status_code == 202, erased.text
    assert [k.removeprefix("cases/").split("_")[0] for k in case_objects(settings)] == [other["id"]]
    with sync_db(settings).connect() as conn:
        assert [str(x) for x in conn.execute(select(ClinicalCase.doctor_id)).scalars()] == [other["id"]]
        assert [str(x) for x in conn.execute(select(CasePhoto.doctor_id)).scalars()] == [other["id"]]
        assert [str(x) for x in conn.execute(select(EventRegistration.doctor_id)).scalars()] == [other["id"]]
    assert RU_DOCTOR["citizenship"] == "RU"  # the RU person never registers here; kept as the redirect case in test_accounts
