"""Clinical cases (the personal-data check, photos into the personal bucket, moderation, who sees what, never
in a manifest), event registration and attendance, the director's counts, and export and erasure of them."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import msgspec
import psycopg
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from medplat.app import create_app
from medplat.audit.models import AuditLeaf
from medplat.compliance.hooks import staff_ref
from medplat.config import Settings, StatisticsConfig
from medplat.domain.cases.models import CasePhoto, ClinicalCase
from medplat.domain.events.models import EventRegistration
from medplat.logs import configure_logging
from medplat.node import object_store, sync_db
from medplat.security import Role
from medplat.storage import CASE_PHOTOS
from medsync.items import SharedDocument, from_builtins
from tests.integration.test_accounts import JPEG, KZ_DOCTOR, PDF, PNG, RU_DOCTOR, bearer, count, register, sign_in, staff
from tests.integration.test_feed import applied_item, verified_doctor
from tests.unit.test_border import IIN
from tests.unit.test_suppression import recoverable
from tests.unit.test_uploads import CUT_BOX, CUT_RIFF, HEIC, NO_FTYP, NOT_HEIC, NOT_WEBP, WEBP, heif

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
        [{"field": "content-type", "reason": "must be one of image/heic, image/heif, image/jpeg, image/png, image/webp"}],
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


async def test_webp_and_heic_photos_from_phones_are_stored_and_broken_ones_refused(client: Any, settings: Settings) -> None:
    doctor = await verified_doctor(client, settings)
    case = await submit(client, doctor)
    url = f"/api/v1/cases/{case['id']}/photos"

    async def put(data: bytes, media_type: str, stage: str = "before") -> Any:
        return await client.put(f"{url}/{stage}", content=data, headers={**doctor["headers"], "Content-Type": media_type})

    for data, media_type, problem in [
        (HEIC, "image/webp", NOT_WEBP),  # a HEIC declared as WebP
        (WEBP, "image/heic", NO_FTYP),  # and the other way round
        (heif(b"mif1", (b"mif1",)), "image/heic", NOT_HEIC),  # HEIF, but not HEVC-coded
        (WEBP[:-2], "image/webp", CUT_RIFF),  # cut short in transit
        (HEIC[:-10], "image/heic", CUT_BOX),
        (bytes(range(256)) * 4, "image/heif", NO_FTYP),  # garbage
    ]:
        refused = await put(data, media_type)
        assert refused.status_code == 415, refused.text
        body = refused.json()
        assert {k: body[k] for k in ("type", "title", "status", "detail", "errors")} == {
            "type": "https://medfed.dev/problems/content-mismatch",
            "title": "Content does not match its type",
            "status": 415,
            "detail": f"the file's content is not {media_type}",
            "errors": [{"field": "body", "reason": f"not {media_type}: the file {problem}"}],
        }
    assert case_objects(settings) == [] and count(settings, CasePhoto) == 0

    before, after = await put(WEBP, "image/webp"), await put(HEIC, "image/heic", "after")
    assert (before.status_code, after.status_code) == (201, 201), (before.text, after.text)
    assert [(p["stage"], p["media_type"], p["length"]) for p in (before.json(), after.json())] == [
        ("before", "image/webp", len(WEBP)),
        ("after", "image/heic", len(HEIC)),
    ]
    store = object_store(settings)
    for key, data, media_type in zip(case_objects(settings), (HEIC, WEBP), ("image/heic", "image/webp"), strict=True):
        assert CASE_PHOTOS.matches(key) and key.startswith(f"cases/{doctor['id']}_{case['id']}_")
        info = store.stat(settings.personal_bucket, key)
        assert info is not None and (store.get(settings.personal_bucket, key), info.content_type) == (data, media_type)
    photo = await client.get(f"{url}/after", headers=doctor["headers"])
    assert (photo.content, photo.headers["content-type"]) == (HEIC, "image/heic")
    as_heif = await put(HEIC, "image/heif")  # every HEIC is a HEIF: a phone may label it either way
    assert (as_heif.status_code, as_heif.json()["media_type"], count(settings, CasePhoto)) == (201, "image/heif", 2)
    assert len(case_objects(settings)) == 2


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


async def test_log_lines_name_staff_as_the_audit_log_does(client: Any, settings: Settings) -> None:
    author = await verified_doctor(client, settings)
    case = await submit(client, author)
    assert (await client.put(f"/api/v1/cases/{case['id']}/photos/before", content=PNG,
                             headers={**author["headers"], "Content-Type": "image/png"})).status_code == 201  # fmt: skip
    congress = applied_item(settings, texts={"ru": "Конгресс дерматологов"}, kind="event", event=CONGRESS)
    assert (await client.put(f"/api/v1/events/{congress}/registration", headers=author["headers"])).status_code == 201
    stream = io.StringIO()
    configure_logging(settings.region.code, "DEBUG", stream=stream)
    subject = "rep.almaty@clinic.kz"
    moderator = staff(settings, Role.MODERATOR, subject)
    assert (await client.get(f"/api/v1/moderation/cases/{case['id']}/photos/before", headers=moderator)).status_code == 200
    marked = await client.post(f"/api/v1/moderation/events/{congress}/attendance", json={"doctor_id": author["id"]}, headers=moderator)
    assert marked.status_code == 200
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    ref = staff_ref(subject, settings.data_key)
    assert [(line["event"], line["staff"]) for line in lines if "staff" in line] == [
        ("staff.personal_access", ref), ("event.attendance_marked", ref),
    ]  # fmt: skip
    leaked = subject in stream.getvalue()
    assert not leaked, "a moderator's subject reached the log"
    # Seeing the photo is a staff access to personal data, and an audit leaf says so, naming the moderator the same way.
    with Session(sync_db(settings)) as session:
        accesses = [
            json.loads(entry)["payload"]
            for entry in session.scalars(select(AuditLeaf.entry).where(AuditLeaf.kind == "personal_data_access").order_by(AuditLeaf.idx))
        ]
    assert accesses[-1] == {"staff": ref, "what": "case_photo", "case_id": case["id"], "stage": "before"}


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
    # two doctors, one case, one attendee: every count is below 5, so every count is withheld; zeros are shown
    assert (stats["node"], stats["suppression_threshold"], stats["doctors_total"]) == ("kz", 5, None)
    assert stats["doctors_by_verification_status"] == {"unverified": None, "verified": None}
    assert stats["doctors_by_specialization"] == {"cosmetology": None, "dermatology": None}
    assert stats["cases_by_status"] == {"pending": None}
    assert stats["events"] == [
        {"event_id": congress, "title": "Конгресс", "status": "published", "registered": None, "cancelled": 0, "attended": None}
    ]
    for person in (KZ_DOCTOR, SECOND):
        assert person["full_name"] not in response.text and person["email"] not in response.text
    assert one["id"] not in response.text
    assert (await client.get("/api/v1/director/stats", headers=one["headers"])).status_code == 403
    assert (await client.get("/api/v1/director/stats", headers=moderator)).status_code == 403


def colleague(i: int, specializations: list[str]) -> dict[str, Any]:
    return {**KZ_DOCTOR, "full_name": f"Colleague Number {i}", "phone": f"+7 701 555 30 0{i}", "email": f"colleague{i}@clinic.kz",
            "specializations": specializations}  # fmt: skip


async def test_small_counts_are_withheld_and_cannot_be_recovered_from_the_totals(client: Any, settings: Settings) -> None:
    # eight doctors: dermatology 8, cosmetology 6, trichology 1; verified 1, unverified 7; one pending case;
    # a congress with 6 registered (5 of them attended, 1 did not) and 1 cancelled
    verified = await verified_doctor(client, settings)
    await submit(client, verified)
    specializations = [["dermatology", "cosmetology"]] * 5 + [["dermatology", "trichology"], ["dermatology"]]
    people = [colleague(i, s) for i, s in enumerate(specializations)]
    congress = applied_item(settings, texts={"ru": "Конгресс"}, kind="event", event=CONGRESS)
    moderator = staff(settings, Role.MODERATOR)
    for i, person in enumerate(people):
        doctor_id = await register(client, person)
        headers = bearer((await sign_in(client, settings, person))["access_token"])
        assert (await client.put(f"/api/v1/events/{congress}/registration", headers=headers)).status_code == 201
        if i == 0:
            assert (await client.delete(f"/api/v1/events/{congress}/registration", headers=headers)).status_code == 200
        elif i < 6:
            marked = await client.post(f"/api/v1/moderation/events/{congress}/attendance", json={"doctor_id": doctor_id}, headers=moderator)
            assert marked.status_code == 200, marked.text

    director = staff(settings, Role.DIRECTOR, "director-kz")
    stats = (await client.get("/api/v1/director/stats", headers=director)).json()
    assert (stats["suppression_threshold"], stats["doctors_total"]) == (5, 8)  # 8 >= 5: exact
    # verified 1 is withheld; then unverified 7 too, or it would be 8 - 7 = 1 again
    assert stats["doctors_by_verification_status"] == {"unverified": None, "verified": None}
    # trichology 1 is withheld, and the next smallest, cosmetology 6, with it; dermatology 8 is exact
    assert stats["doctors_by_specialization"] == {"cosmetology": None, "dermatology": 8, "trichology": None}
    assert stats["cases_by_status"] == {"pending": None}
    # 6 registered is exact; 1 cancelled is withheld; 5 attended is withheld because 6 - 5 = 1 did not come
    assert stats["events"] == [
        {"event_id": congress, "title": "Конгресс", "status": "published", "registered": 6, "cancelled": None, "attended": None}
    ]
    # what a reader can work out from the totals shown: every withheld count still has several possible values
    by_status = recoverable(stats["doctors_by_verification_status"], stats["doctors_total"])
    assert by_status == {"unverified": set(range(1, 8)), "verified": set(range(1, 8))}
    attendance = recoverable({"attended": None, "absent": None}, stats["events"][0]["registered"])
    assert attendance["attended"] == {1, 2, 3, 4, 5}

    # the threshold is the region's: with 9 the same node withholds every count of 1 to 8; zeros stay exact
    strict = msgspec.structs.replace(settings, region=msgspec.structs.replace(settings.region, statistics=StatisticsConfig(9)))
    async with AsyncTestClient(app=create_app(strict)) as other:
        stats = (await other.get("/api/v1/director/stats", headers=director)).json()
    assert (stats["suppression_threshold"], stats["doctors_total"]) == (9, None)
    assert set(stats["doctors_by_verification_status"].values()) == set(stats["doctors_by_specialization"].values()) == {None}
    assert [(e["registered"], e["cancelled"], e["attended"]) for e in stats["events"]] == [(None, None, None)]


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
